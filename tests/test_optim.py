"""bplib.optim: each optimizer reaches the known minimum of a quadratic, takes
exactly the documented first steps, and updates the model's arrays in place."""
import numpy as np
import pytest

from bplib import layers as L
from bplib.losses import mse
from bplib.optim import SGD, Adam, RMSProp


class Quadratic:
    """L = 1/2 sum a (p - p*)^2 over two parameter arrays, minimum at p*.

    The curvatures a range from 0.5 to 10 (an ill-conditioned bowl)."""

    def __init__(self, dtype=np.float64):
        rng = np.random.default_rng(0)
        self.target = {"w": np.array([1.0, -2.0, 0.5]), "W": np.array([[3.0, -1.0], [0.0, 2.0]])}
        self.a = {"w": np.array([0.5, 2.0, 10.0]), "W": np.array([[1.0, 4.0], [8.0, 0.7]])}
        self.params = {k: (v + rng.standard_normal(v.shape) * 3).astype(dtype) for k, v in self.target.items()}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def loss_and_grads(self):
        loss = 0.0
        for k, p in self.params.items():
            diff = p - self.target[k]
            loss += 0.5 * float(np.sum(self.a[k] * diff * diff))
            self.grads[k] = self.a[k] * diff               # a new array each time, like a layer
        return loss

    def distance(self):
        return max(float(np.abs(p - self.target[k]).max()) for k, p in self.params.items())


def minimise(opt, model, steps):
    ids = {k: id(p) for k, p in model.params.items()}
    originals = dict(model.params)
    losses = []
    for _ in range(steps):
        losses.append(model.loss_and_grads())
        opt.step()
    # in place: the very same array objects, now holding the new values
    assert {k: id(p) for k, p in model.params.items()} == ids
    assert all(model.params[k] is originals[k] for k in ids)
    return losses


@pytest.mark.parametrize("make, steps, tol", [
    (lambda m: SGD(m, lr=0.05), 800, 1e-6),
    (lambda m: SGD(m, lr=0.01, momentum=0.9), 400, 1e-6),
    (lambda m: RMSProp(m, lr=0.01), 1500, 2e-2),
    (lambda m: Adam(m, lr=0.05), 1500, 1e-3),
], ids=["sgd", "sgd-momentum", "rmsprop", "adam"])
def test_reaches_the_known_minimum(make, steps, tol):
    model = Quadratic()
    start = model.distance()
    opt = make(model)
    losses = minimise(opt, model, steps)
    assert start > 1.0
    assert model.distance() < tol, f"{type(opt).__name__} ended {model.distance():.2e} from the minimum"
    assert losses[-1] < 1e-3 * losses[0]


def test_adaptive_methods_settle_closer_when_lr_is_lowered():
    """RMSProp and Adam hover within about lr of the minimum; a smaller lr gets closer."""
    for cls in (RMSProp, Adam):
        model = Quadratic()
        opt = cls(model, lr=0.02)
        minimise(opt, model, 800)
        opt.lr = 0.0005
        minimise(opt, model, 800)
        assert model.distance() < 2e-3, cls.__name__


def test_momentum_is_faster_on_an_ill_conditioned_bowl():
    plain, heavy = Quadratic(), Quadratic()
    minimise(SGD(plain, lr=0.01), plain, 200)
    minimise(SGD(heavy, lr=0.01, momentum=0.9), heavy, 200)
    assert heavy.distance() < 0.01 * plain.distance()


# ----------------------------------------------------------------------------
# the first steps, by hand
# ----------------------------------------------------------------------------
class Fixed:
    def __init__(self, p, g):
        self.params, self.grads = {"p": np.array(p, dtype=float)}, {"p": np.array(g, dtype=float)}


def test_sgd_steps():
    m = Fixed([1.0, -1.0], [2.0, 0.5])
    SGD(m, lr=0.1).step()
    np.testing.assert_allclose(m.params["p"], [0.8, -1.05])
    m = Fixed([1.0, -1.0], [2.0, 0.5])
    opt = SGD(m, lr=0.1, momentum=0.5)
    opt.step()                                   # v = -0.1 g
    opt.step()                                   # v = 0.5 (-0.1 g) - 0.1 g = -0.15 g
    np.testing.assert_allclose(m.params["p"], np.array([1.0, -1.0]) - 0.25 * np.array([2.0, 0.5]))


def test_rmsprop_first_step():
    m = Fixed([1.0, -1.0], [2.0, -0.5])
    RMSProp(m, lr=0.01, decay=0.9, eps=0.0).step()  # s = 0.1 g^2: step = lr g / (sqrt(0.1) |g|)
    np.testing.assert_allclose(m.params["p"], [1.0 - 0.01 / np.sqrt(0.1), -1.0 + 0.01 / np.sqrt(0.1)])


def test_adam_first_steps_are_lr_times_sign():
    m = Fixed([1.0, -1.0, 0.0], [2.0, -1e-3, 50.0])
    opt = Adam(m, lr=0.1, eps=0.0)
    opt.step()                                   # bias correction: m_hat = g, v_hat = g^2
    np.testing.assert_allclose(m.params["p"], [0.9, -0.9, -0.1])
    opt.step()                                   # same gradient again: the same step again
    np.testing.assert_allclose(m.params["p"], [0.8, -0.8, -0.2])


def test_float32_params_stay_float32():
    model = Quadratic(dtype=np.float32)
    minimise(SGD(model, lr=0.05), model, 800)
    assert all(p.dtype == np.float32 for p in model.params.values())
    assert model.distance() < 1e-5


# ----------------------------------------------------------------------------
# with a real layer: the optimizer trains the arrays the layer computes with
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda m: SGD(m, lr=0.1, momentum=0.5), lambda m: Adam(m, lr=0.05)],
                         ids=["sgd", "adam"])
def test_trains_a_dense_layer_to_the_true_weights(make):
    rng = np.random.default_rng(0)
    W_true, b_true = rng.standard_normal((3, 2)), rng.standard_normal(2)
    x = rng.standard_normal((64, 3))
    y = x @ W_true + b_true
    model = L.Sequential(L.Dense(3, 2, rng=rng, dtype=np.float64))
    opt = make(model)
    W = model.params["0.W"]
    for _ in range(500):
        loss, dout = mse(model.forward(x), y)
        model.backward(dout)
        opt.step()
    assert model.params["0.W"] is W and model[0].params["W"] is W
    np.testing.assert_allclose(W, W_true, atol=1e-3)
    np.testing.assert_allclose(model.params["0.b"], b_true, atol=1e-3)


# ----------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SGD, RMSProp, Adam])
def test_bad_arguments(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: learning rate must be positive, got 0"):
        cls(Fixed([1.0], [1.0]), lr=0)
    with pytest.raises(ValueError, match=f"{cls.__name__}: model must have `params` and `grads`.*list"):
        cls([np.zeros(2)], lr=0.1)
    m = Fixed([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match=r"gradient for 'p' has shape \(1,\), parameter has \(2,\)"):
        cls(m, lr=0.1).step()
    m.grads = {}
    with pytest.raises(ValueError, match="gradient for 'p' has shape None"):
        cls(m, lr=0.1).step()
