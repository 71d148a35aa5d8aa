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


# ----------------------------------------------------------------------------
# PyTorch's formulas, written out by hand (torch.optim.SGD / Adam / AdamW / StepLR)
# ----------------------------------------------------------------------------
from bplib.optim import AdamW, StepLR  # noqa: E402


def torch_sgd(p, grads, lrs, mu=0.0, wd=0.0):
    """torch.optim.SGD: g += wd p; v = g (first step) then mu v + g; p -= lr v."""
    p, v = np.array(p, dtype=float), None
    for g, lr in zip(grads, lrs):
        g = np.asarray(g, dtype=float) + wd * p
        v = g.copy() if v is None else mu * v + g
        p = p - lr * (v if mu else g)
    return p


def torch_adam(p, grads, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, decoupled=False):
    p = np.array(p, dtype=float)
    m = v = np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        g = np.asarray(g, dtype=float)
        if decoupled:
            p = p * (1 - lr * wd)
        else:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p = p - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


def run(opt_cls, p, grads, lrs=None, **kw):
    m = Fixed(p, grads[0])
    opt = opt_cls(m, lr=lrs[0] if lrs else kw.pop("lr"), **kw)
    for i, g in enumerate(grads):
        m.grads["p"] = np.array(g, dtype=float)
        if lrs:
            opt.lr = lrs[i]
        opt.step()
    return m.params["p"]


def test_sgd_momentum_follows_pytorch_when_lr_changes():
    p0, g = [1.0, -2.0, 0.5], [[4.0, -1.0, 2.0]] * 2
    got = run(SGD, p0, g, lrs=[0.05, 0.01], momentum=0.9)
    # by hand: v1 = g, p1 = p0 - 0.05 g; v2 = 1.9 g, p2 = p1 - 0.01 * 1.9 g
    want = np.array(p0) - (0.05 + 0.019) * np.array(g[0])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(got, torch_sgd(p0, g, [0.05, 0.01], mu=0.9), rtol=1e-12)
    # the old form (lr inside the velocity) would have stepped 0.05*0.9 g + 0.01 g
    assert not np.allclose(got, np.array(p0) - (0.05 + 0.045 + 0.01) * np.array(g[0]))


def test_sgd_momentum_with_changing_gradients_and_lrs():
    rng = np.random.default_rng(3)
    p0, g = rng.standard_normal(4), rng.standard_normal((6, 4))
    lrs = [0.1, 0.1, 0.03, 0.03, 0.2, 0.01]
    np.testing.assert_allclose(run(SGD, p0, g, lrs=lrs, momentum=0.8, weight_decay=0.05),
                               torch_sgd(p0, g, lrs, mu=0.8, wd=0.05), rtol=1e-12)


def test_sgd_weight_decay_adds_l2_gradient():
    got = run(SGD, [1.0, -2.0], [[0.5, 0.5]], lr=0.1, weight_decay=0.2)
    np.testing.assert_allclose(got, [1.0 - 0.1 * (0.5 + 0.2), -2.0 - 0.1 * (0.5 - 0.4)], rtol=1e-12)


def test_adam_weight_decay_enters_the_gradient():
    # one step with eps = 0 moves lr * sign(g + wd p): the decay can flip the sign
    got = run(Adam, [1.0, -1.0], [[-0.05, 0.5]], lr=0.1, eps=0.0, weight_decay=0.1)
    np.testing.assert_allclose(got, [0.9, -1.1], rtol=1e-12)     # g + wd p = [0.05, 0.4]
    rng = np.random.default_rng(4)
    p0, g = rng.standard_normal(5), rng.standard_normal((5, 5))
    np.testing.assert_allclose(run(Adam, p0, g, lr=0.01, weight_decay=0.3),
                               torch_adam(p0, g, 0.01, wd=0.3), rtol=1e-12)


def test_adamw_one_step_by_formula():
    # p <- p (1 - lr wd) - lr * m_hat / (sqrt(v_hat) + eps), m_hat = g, v_hat = g^2
    p0, g, lr, wd, eps = np.array([1.0, -2.0, 3.0]), np.array([0.3, -0.2, 4.0]), 0.01, 0.1, 1e-8
    got = run(AdamW, p0, [g], lr=lr, weight_decay=wd, eps=eps)
    np.testing.assert_allclose(got, p0 * (1 - lr * wd) - lr * g / (np.abs(g) + eps), rtol=1e-12)


def test_adamw_several_steps_and_default_decay():
    rng = np.random.default_rng(5)
    p0, g = rng.standard_normal(5), rng.standard_normal((7, 5))
    np.testing.assert_allclose(run(AdamW, p0, g, lr=0.02),        # PyTorch's default wd = 0.01
                               torch_adam(p0, g, 0.02, wd=0.01, decoupled=True), rtol=1e-12)
    assert not np.allclose(run(AdamW, p0, g, lr=0.02, weight_decay=0.5),
                           run(Adam, p0, g, lr=0.02, weight_decay=0.5))
    np.testing.assert_allclose(run(AdamW, p0, g, lr=0.02, weight_decay=0.0), run(Adam, p0, g, lr=0.02))


def test_weight_decay_does_not_change_the_models_grads():
    m = Fixed([1.0, 2.0], [0.5, 0.5])
    for cls in (SGD, Adam, AdamW):
        g = m.grads["p"].copy()
        cls(m, lr=0.1, weight_decay=0.3).step()
        np.testing.assert_array_equal(m.grads["p"], g)


def test_steplr_sets_the_optimizers_lr_per_epoch():
    m = Fixed([1.0], [1.0])
    opt = SGD(m, lr=0.1, momentum=0.9)
    sched = StepLR(opt, step_size=3, gamma=0.5)
    lrs = []
    for _ in range(7):
        lrs.append(opt.lr)
        opt.step()
        sched.step()
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    with pytest.raises(ValueError, match="StepLR: step_size"):
        StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="StepLR: gamma"):
        StepLR(opt, step_size=2, gamma=0)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_negative_weight_decay_is_rejected(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: weight_decay must be >= 0"):
        cls(Fixed([1.0], [1.0]), lr=0.1, weight_decay=-1.0)
