"""Checks for the dense_backward assignment.

    dense_backward(dout, x, W) -> (dx, dW, db)     dout: (N, M), x: (N, D), W: (D, M)
    relu_backward(dout, x) -> dx                   dout, x: any shape (the same)
    softmax_cross_entropy(logits, labels) -> (loss, dlogits)   logits: (N, K), labels: (N,) ints
"""
import numpy as np

from .. import layers, losses
from .core import visible_and_hidden

A = "dense_backward"


# -- dense ----------------------------------------------------------------------
def _dense_case(rng, N, D, M, name=None):
    return dict(name=name or f"N={N}, D={D}, M={M}", dout=rng.standard_normal((N, M)),
                x=rng.standard_normal((N, D)), W=rng.standard_normal((D, M)))


def _dense_visible(rng):
    x = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0]])
    W = np.array([[1.0, 0.0, -1.0, 2.0], [0.5, 1.0, 0.0, -1.0], [0.0, 2.0, 1.0, 0.5]])
    dout = np.array([[1.0, 0.0, 0.5, -1.0], [0.0, 2.0, 1.0, 1.0]])
    return [dict(name="N=2, D=3, M=4, small numbers", dout=dout, x=x, W=W),
            _dense_case(rng, 5, 4, 3)]


def _dense_hidden(rng):
    return [_dense_case(rng, 1, 6, 2, "batch of one: N=1, D=6, M=2"),
            _dense_case(rng, 17, 8, 8, "square W: N=17, D=M=8"),
            _dense_case(rng, 64, 30, 10),
            _dense_case(rng, 3, 1, 5, "one input feature: N=3, D=1, M=5")]


def _dense_ref(c):
    dx, dW, db = layers.dense_backward(c["dout"], c["x"], c["W"])
    return {"dx": dx, "dW": dW, "db": db}


_dense_mistakes = [
    ("db is the SUM of dout over the batch, not its mean: the 1/N of the loss is already inside dout.",
     lambda c: {"db": c["dout"].mean(axis=0)}),
    ("dW = x.T @ dout (D, M): the input's transpose on the left.", lambda c: {"dW": c["dout"].T @ c["x"]}),
    ("dx = dout @ W.T: W must be transposed to map (N, M) back to (N, D).",
     lambda c: {"dx": c["dout"] @ c["W"]}),
]


def _call_dense(fn, c):
    return fn(c["dout"], c["x"], c["W"])


# -- relu -------------------------------------------------------------------------
def _relu_visible(rng):
    x = np.array([[1.0, -2.0, 0.0, 3.0], [-0.5, 0.5, 2.0, -1.0]])
    dout = np.array([[10.0, 20.0, 30.0, -40.0], [-1.0, -2.0, 3.0, 4.0]])
    return [dict(name="2x4 with one x exactly 0 (ReLU'(0) = 0)", dout=dout, x=x)]


def _relu_hidden(rng):
    cases = []
    for shape in [(1, 7), (16, 5), (2, 3, 4, 4)]:
        cases.append(dict(name=f"random, shape {shape}", dout=rng.standard_normal(shape),
                          x=rng.standard_normal(shape)))
    x = rng.standard_normal((8, 6))
    cases.append(dict(name="dout negative where x is positive", dout=-np.abs(rng.standard_normal((8, 6))) * np.sign(x), x=x))
    return cases


_relu_ref = lambda c: {"dx": layers.relu_backward(c["dout"], c["x"])}     # noqa: E731
_relu_mistakes = [
    ("The mask comes from the forward INPUT x (x > 0), not from dout.",
     lambda c: {"dx": c["dout"] * (c["dout"] > 0)}),
    ("The ReLU mask is missing: dx = dout * (x > 0), zero where x <= 0.", lambda c: {"dx": c["dout"]}),
    ("dx = dout * (x > 0): the mask alone is the local derivative, multiply it by dout (chain rule).",
     lambda c: {"dx": (c["x"] > 0).astype(float)}),
    ("dx = dout * (x > 0), not x * dout: the local derivative of max(0, x) is 0 or 1.",
     lambda c: {"dx": np.maximum(c["x"], 0) * c["dout"]}),
]


def _call_relu(fn, c):
    return fn(c["dout"], c["x"])


# -- softmax cross-entropy ------------------------------------------------------------
def _sce_visible(rng):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    return [dict(name="N=2, K=3", logits=logits, labels=np.array([0, 2])),
            dict(name="N=4, K=5, random", logits=rng.standard_normal((4, 5)), labels=rng.integers(0, 5, 4))]


def _sce_hidden(rng):
    return [dict(name="batch of one: N=1, K=10", logits=rng.standard_normal((1, 10)), labels=np.array([7])),
            dict(name="large logits (up to 1000): needs the max shift", logits=rng.standard_normal((6, 4)) * 3 + 800,
                 labels=rng.integers(0, 4, 6)),
            dict(name="N=50, K=10", logits=rng.standard_normal((50, 10)) * 3, labels=rng.integers(0, 10, 50)),
            dict(name="two classes, N=8", logits=rng.standard_normal((8, 2)), labels=rng.integers(0, 2, 8))]


def _sce_ref(c):
    loss, d = losses.softmax_cross_entropy(c["logits"], c["labels"])
    return {"loss": np.float64(loss), "dlogits": d}


def _onehot(c):
    y = np.zeros_like(c["logits"])
    y[np.arange(len(c["labels"])), c["labels"]] = 1
    return y


_sce_mistakes = [
    ("dlogits = (softmax - onehot) / N: the one-hot of the labels must be subtracted.",
     lambda c: {"dlogits": losses.softmax(c["logits"]) / len(c["labels"])}),
    ("The loss is the MEAN over the batch, so dlogits needs the factor 1/N.",
     lambda c: {"dlogits": losses.softmax(c["logits"]) - _onehot(c)}),
    ("The loss is the mean over the batch: divide the summed loss by N.",
     lambda c: {"loss": _sce_ref(c)["loss"] * len(c["labels"])}),
    ("Subtract 1 only at each row's own label: dlogits[np.arange(N), labels] -= 1.",
     lambda c: {"dlogits": (losses.softmax(c["logits"]) - np.isin(np.arange(c["logits"].shape[1]), c["labels"])[None]) / len(c["labels"])}),
]


def _call_sce(fn, c):
    return fn(c["logits"], c["labels"])


def _checks():
    bs = lambda c: c["x"].shape[0] if "x" in c else len(c["labels"])   # noqa: E731
    hints = {
        "dense_backward": "Each gradient has the shape of its variable: dx (N, D) like x, dW (D, M) like W, "
                          "db (M,) like b. Each is a product of dout with the OTHER factor of x @ W.",
        "relu_backward": "ReLU passes dout through where the input was positive and blocks it elsewhere.",
        "softmax_cross_entropy": "p = softmax(logits - row max); loss = mean of -log p[n, label n]; "
                                 "dlogits = (p - onehot(labels)) / N.",
    }
    spec = [
        ("dense_backward", ("dx", "dW", "db"), _call_dense, _dense_ref, _dense_mistakes, _dense_visible, _dense_hidden, (2, 3)),
        ("relu_backward", ("dx",), _call_relu, _relu_ref, _relu_mistakes, _relu_visible, _relu_hidden, (1, 2)),
        ("softmax_cross_entropy", ("loss", "dlogits"), _call_sce, _sce_ref, _sce_mistakes, _sce_visible, _sce_hidden, (2, 3)),
    ]
    return visible_and_hidden(A, spec, hints, batch_size=bs)


CHECKS = _checks()
