"""An independent numerical check of every layer, written against the public API only.

It shares no code with bplib.gradcheck: its own central differences (indexing
with np.ndindex, step 1e-6), its own error measure, and a *nonlinear* loss

    L = sum(c * out) + 1/2 sum(out ** 2),   so dL/dout = c + out,

where gradcheck uses a linear one. It uses only what a learner sees: the
constructors, ``forward``, ``backward``, ``params`` and ``grads``. All in float64.
"""
import numpy as np
import pytest

from bplib.layers import LSTM, Conv2D, Dense, Embedding, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Tanh

STEP = 1e-6
TOL = 1e-6
F64 = np.float64


def central_differences(loss, arr):
    """dloss/darr, perturbing arr in place one entry at a time."""
    grad = np.zeros(arr.shape)
    for idx in np.ndindex(*arr.shape):
        keep = arr[idx]
        arr[idx] = keep + STEP
        up = loss()
        arr[idx] = keep - STEP
        down = loss()
        arr[idx] = keep
        grad[idx] = (up - down) / (2 * STEP)
    return grad


def relative_difference(a, b):
    """||a - b|| / (||a|| + ||b||): 0 when equal, 1 when opposite or unrelated."""
    denom = np.linalg.norm(a) + np.linalg.norm(b)
    return 0.0 if denom == 0 else float(np.linalg.norm(a - b) / denom)


def spread(rng, shape):
    """Distinct values well apart from each other and from 0 (no max-pool ties, no ReLU kinks)."""
    n = int(np.prod(shape))
    v = (rng.permutation(n) + rng.uniform(0.2, 0.8, n) - n / 2 + 0.5) / np.sqrt(n)
    return v.reshape(shape)


def rng_for(name):
    return np.random.default_rng(sum(map(ord, name)))


def with_random_biases(layer, rng):
    for key, p in layer.params.items():
        if key.endswith("b"):
            p[...] = rng.standard_normal(p.shape) * 0.5
    return layer


def make_case(name):
    """(layer, input) for each case, float64 throughout."""
    r = rng_for(name)
    conv = lambda *a, **k: with_random_biases(Conv2D(*a, rng=r, dtype=F64, **k), r)  # noqa: E731
    if name == "dense":
        return with_random_biases(Dense(5, 3, rng=r, dtype=F64), r), r.standard_normal((4, 5))
    if name == "dense-1x1":
        return with_random_biases(Dense(1, 1, rng=r, dtype=F64), r), r.standard_normal((1, 1))
    if name == "relu":
        return ReLU(), spread(r, (3, 4, 2))
    if name == "sigmoid":
        return Sigmoid(), r.standard_normal((4, 3)) * 3
    if name == "tanh":
        return Tanh(), r.standard_normal((2, 3, 4)) * 2
    if name == "conv-k3-s1-p1":
        return conv(2, 3, 3, stride=1, padding=1), r.standard_normal((2, 2, 5, 5))
    if name == "conv-k3-s2-p1":
        return conv(2, 2, 3, stride=2, padding=1), r.standard_normal((2, 2, 6, 5))
    if name == "conv-k2-s3-p2":
        return conv(1, 2, 2, stride=3, padding=2), r.standard_normal((1, 1, 7, 4))
    if name == "conv-k1":
        return conv(3, 2, 1), r.standard_normal((2, 3, 3, 3))
    if name == "conv-k5-whole-image":
        return conv(1, 2, 5), r.standard_normal((3, 1, 5, 5))
    if name == "pool-k2-s2":
        return MaxPool2D(2), spread(r, (2, 2, 4, 5))
    if name == "pool-k3-s1-overlap":
        return MaxPool2D(3, stride=1), spread(r, (2, 2, 5, 6))
    if name == "pool-k3-s2-overlap":
        return MaxPool2D(3, stride=2), spread(r, (1, 3, 7, 7))
    if name == "pool-k2-s3-gaps":
        return MaxPool2D(2, stride=3), spread(r, (1, 2, 8, 8))
    if name == "flatten":
        return Flatten(), r.standard_normal((2, 3, 2, 2))
    if name == "embedding":
        return Embedding(6, 3, rng=r, dtype=F64), np.array([[0, 2, 2, 5], [5, 5, 1, 2]])
    if name == "lstm":
        return with_random_biases(LSTM(3, 4, rng=r, dtype=F64), r), r.standard_normal((2, 5, 3))
    if name == "lstm-1-step":
        return with_random_biases(LSTM(2, 2, rng=r, dtype=F64), r), r.standard_normal((3, 1, 2))
    if name == "sequential-mlp":
        model = Sequential(with_random_biases(Dense(4, 6, rng=r, dtype=F64), r), Tanh(),
                           with_random_biases(Dense(6, 5, rng=r, dtype=F64), r), ReLU(),
                           with_random_biases(Dense(5, 2, rng=r, dtype=F64), r), Sigmoid())
        return model, r.standard_normal((3, 4))
    if name == "sequential-cnn":
        model = Sequential(conv(1, 2, 3, padding=1), Tanh(), MaxPool2D(2, stride=1), Flatten(),
                           with_random_biases(Dense(2 * 4 * 4, 3, rng=r, dtype=F64), r))
        return model, r.standard_normal((2, 1, 5, 5))
    if name == "sequential-text":
        model = Sequential(Embedding(7, 3, rng=r, dtype=F64), with_random_biases(LSTM(3, 2, rng=r, dtype=F64), r),
                           Flatten(), with_random_biases(Dense(2 * 4, 1, rng=r, dtype=F64), r))
        return model, np.array([[1, 6, 6, 0], [3, 2, 1, 4]])
    raise KeyError(name)


CASES = ["dense", "dense-1x1", "relu", "sigmoid", "tanh",
         "conv-k3-s1-p1", "conv-k3-s2-p1", "conv-k2-s3-p2", "conv-k1", "conv-k5-whole-image",
         "pool-k2-s2", "pool-k3-s1-overlap", "pool-k3-s2-overlap", "pool-k2-s3-gaps",
         "flatten", "embedding", "lstm", "lstm-1-step",
         "sequential-mlp", "sequential-cnn", "sequential-text"]


@pytest.mark.parametrize("name", CASES)
def test_backward_agrees_with_central_differences(name):
    layer, x = make_case(name)
    out = layer.forward(x)
    c = rng_for(name + "/c").standard_normal(out.shape)

    def loss():
        o = layer.forward(x)
        return float(np.sum(c * o) + 0.5 * np.sum(o * o))

    dx = layer.backward(c + out)                         # dL/dout = c + out
    analytic = {name: np.array(g, dtype=F64) for name, g in layer.grads.items()}
    assert set(analytic) == set(layer.params)
    targets = dict(layer.params)
    if np.issubdtype(x.dtype, np.floating):
        targets["x"] = x
        analytic["x"] = dx
    else:
        assert dx is None                                # integer ids have no gradient
    checked = 0
    for key, arr in targets.items():
        numeric = central_differences(loss, arr)
        assert analytic[key].shape == arr.shape, (key, analytic[key].shape, arr.shape)
        if (name, key) == ("lstm-1-step", "Wh"):          # h0 = 0: Wh has no effect on one step
            assert not numeric.any() and not analytic[key].any()
            continue
        assert np.abs(numeric).max() > 1e-6, f"{key}: the numerical gradient is zero, the check proves nothing"
        err = relative_difference(analytic[key], numeric)
        assert err < TOL, f"{name}: d{key} differs from central differences by {err:.2e}"
        checked += 1
    checked += name == "lstm-1-step"
    assert checked == len(layer.params) + (1 if np.issubdtype(x.dtype, np.floating) else 0)


def test_the_check_itself_can_fail():
    """A Dense layer whose bias gradient is off by the batch size fails this check."""
    r = np.random.default_rng(0)
    layer = Dense(3, 2, rng=r, dtype=F64,
                  backward_fn=lambda dout, x, W: (dout @ W.T, x.T @ dout, dout.mean(axis=0)))
    x = r.standard_normal((4, 3))
    out = layer.forward(x)
    layer.backward(out)                                   # L = 1/2 sum(out^2)
    numeric = central_differences(lambda: 0.5 * float(np.sum(layer.forward(x) ** 2)), layer.params["b"])
    assert relative_difference(layer.grads["b"], numeric) > 0.1
