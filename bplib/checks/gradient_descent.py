"""Checks for the gradient_descent assignment.

    sgd_step(w, dw, lr) -> w_new                               w_new = w - lr dw
    momentum_step(w, dw, v, lr, mu) -> (w_new, v_new)          v_new = mu v - lr dw;  w_new = w + v_new
    linear_loss_grad(X, y, w, b) -> (loss, dw, db)             L = mean((X w + b - y)^2)
    fit_linear(X, y, lr, steps) -> (w, b)                      `steps` updates from w = 0, b = 0
"""
import numpy as np

from .core import visible_and_hidden

A = "gradient_descent"


# -- sgd_step --------------------------------------------------------------------------
def _sgd_visible(rng):
    return [dict(name="w=[1, 2], dw=[0.5, -1], lr=0.1", w=np.array([1.0, 2.0]), dw=np.array([0.5, -1.0]), lr=0.1),
            dict(name="a 2x3 matrix, lr=0.5", w=rng.standard_normal((2, 3)), dw=rng.standard_normal((2, 3)), lr=0.5)]


def _sgd_hidden(rng):
    return [dict(name=f"shape {s}, lr={lr}", w=rng.standard_normal(s), dw=rng.standard_normal(s), lr=lr)
            for s, lr in [((1,), 0.01), ((5, 4), 1.0), ((3, 2, 2), 0.003), ((7,), 2.5)]]


_sgd_ref = lambda c: {"w_new": c["w"] - c["lr"] * c["dw"]}    # noqa: E731
_sgd_mistakes = [
    ("Update sign flipped: step AGAINST the gradient, w - lr * dw (w + lr * dw climbs uphill).",
     lambda c: {"w_new": c["w"] + c["lr"] * c["dw"]}),
    ("The learning rate is missing: w - lr * dw.", lambda c: {"w_new": c["w"] - c["dw"]}),
]


# -- momentum_step -------------------------------------------------------------------------
def _mom_case(rng, shape, lr, mu, name=None):
    return dict(name=name or f"shape {shape}, lr={lr}, mu={mu}", w=rng.standard_normal(shape),
                dw=rng.standard_normal(shape), v=rng.standard_normal(shape) * 0.1, lr=lr, mu=mu)


def _mom_visible(rng):
    return [dict(name="first step: v = 0", w=np.array([1.0, -1.0]), dw=np.array([2.0, 0.5]), v=np.zeros(2),
                 lr=0.1, mu=0.9),
            _mom_case(rng, (3,), 0.1, 0.9)]


def _mom_hidden(rng):
    return [_mom_case(rng, (4, 3), 0.05, 0.99), _mom_case(rng, (1,), 0.5, 0.5),
            _mom_case(rng, (6,), 0.01, 0.0, "mu=0: plain gradient descent"), _mom_case(rng, (2, 2, 2), 1.0, 0.8)]


def _mom_ref(c):
    v = c["mu"] * c["v"] - c["lr"] * c["dw"]
    return {"w_new": c["w"] + v, "v_new": v}


_mom_mistakes = [
    ("The velocity is not decayed: v_new = mu * v - lr * dw (you left out mu).",
     lambda c: {"v_new": c["v"] - c["lr"] * c["dw"]}),
    ("Update sign flipped: v_new = mu * v - lr * dw (minus: against the gradient).",
     lambda c: {"v_new": c["mu"] * c["v"] + c["lr"] * c["dw"]}),
    ("w moved with the OLD velocity: compute v_new first, then w_new = w + v_new.",
     lambda c: {"w_new": c["w"] + c["v"]}),
    ("This is the other momentum convention (v = mu v + (1 - mu) dw); here v_new = mu * v - lr * dw "
     "and w_new = w + v_new, as in bplib.optim.SGD.",
     lambda c: {"v_new": c["mu"] * c["v"] + (1 - c["mu"]) * c["dw"]}),
]


# -- linear model: loss and gradients --------------------------------------------------
def _lin_case(rng, N, D, name=None):
    X = rng.standard_normal((N, D))
    w_true = rng.standard_normal(D)
    y = X @ w_true + 0.5 + 0.1 * rng.standard_normal(N)
    return dict(name=name or f"N={N}, D={D}", X=X, y=y, w=rng.standard_normal(D), b=float(rng.standard_normal()))


def _lin_visible(rng):
    X = np.array([[1.0, 2.0], [3.0, -1.0], [0.0, 1.0]])
    return [dict(name="N=3, D=2, small numbers", X=X, y=np.array([1.0, 0.0, 2.0]), w=np.array([0.5, -0.5]), b=1.0),
            _lin_case(rng, 8, 3)]


def _lin_hidden(rng):
    return [_lin_case(rng, 1, 4, "one example: N=1, D=4"), _lin_case(rng, 50, 1, "one feature: N=50, D=1"),
            _lin_case(rng, 200, 10), _lin_case(rng, 5, 5)]


def _lin_ref(c):
    r = c["X"] @ c["w"] + c["b"] - c["y"]
    N = len(c["y"])
    return {"loss": np.float64(np.mean(r ** 2)), "dw": 2 * c["X"].T @ r / N, "db": np.float64(2 * r.sum() / N)}


def _lin_scaled(c, k):
    ref = _lin_ref(c)
    return {"dw": ref["dw"] * k, "db": ref["db"] * k}


_lin_mistakes = [
    ("The factor 2 of the square is missing: d(r^2)/dr = 2 r.", lambda c: _lin_scaled(c, 0.5)),
    ("The 1/N of the mean is missing: the loss is a mean over the N examples.", lambda c: _lin_scaled(c, len(c["y"]))),
    ("Wrong sign: with r = X w + b - y (prediction minus target), dw = 2/N X^T r.", lambda c: _lin_scaled(c, -1)),
    ("The loss is the MEAN of the squared errors, not their sum.",
     lambda c: {"loss": _lin_ref(c)["loss"] * len(c["y"])}),
]


# -- fitting --------------------------------------------------------------------------
def _fit_case(rng, N, D, lr, steps, name=None):
    X = rng.standard_normal((N, D))
    y = X @ rng.standard_normal(D) - 1.0 + 0.1 * rng.standard_normal(N)
    return dict(name=name or f"N={N}, D={D}, lr={lr}, steps={steps}", X=X, y=y, lr=lr, steps=steps)


def _fit_visible(rng):
    return [_fit_case(rng, 20, 2, 0.1, 50)]


def _fit_hidden(rng):
    return [_fit_case(rng, 100, 5, 0.05, 200), _fit_case(rng, 1, 3, 0.1, 10, "one example, 10 steps"),
            _fit_case(rng, 30, 1, 0.2, 1, "a single step")]


def _fit_ref(c, update_b=True, start=0.0):
    X, y = c["X"], c["y"]
    w, b = np.full(X.shape[1], start), start
    for _ in range(c["steps"]):
        r = X @ w + b - y
        dw, db = 2 * X.T @ r / len(y), 2 * r.sum() / len(y)
        w = w - c["lr"] * dw
        if update_b:
            b = b - c["lr"] * db
    return {"w": w, "b": np.float64(b)}


_fit_mistakes = [
    ("b never moves: update b as well as w at every step.", lambda c: _fit_ref(c, update_b=False)),
    ("Start from w = 0 and b = 0 (np.zeros(D) and 0.0).", lambda c: _fit_ref(c, start=1.0)),
    ("One step too few or too many: do exactly `steps` updates.",
     lambda c: _fit_ref(dict(c, steps=c["steps"] - 1)) if c["steps"] > 1 else {}),
]


def _checks():
    hints = {
        "sgd_step": "One step downhill: subtract the learning rate times the gradient.",
        "momentum_step": "v_new = mu * v - lr * dw, then w_new = w + v_new.",
        "linear_loss_grad": "With r = X @ w + b - y (N,): loss = mean(r**2), dw = 2 X^T r / N (D,), db = 2 sum(r) / N.",
        "fit_linear": "Start at w = zeros(D), b = 0.0; repeat `steps` times: loss, dw, db = linear_loss_grad(...), "
                      "then update w and b with sgd_step.",
    }
    spec = [
        ("sgd_step", ("w_new",), lambda f, c: f(c["w"], c["dw"], c["lr"]), _sgd_ref, _sgd_mistakes,
         _sgd_visible, _sgd_hidden, (1, 1)),
        ("momentum_step", ("w_new", "v_new"), lambda f, c: f(c["w"], c["dw"], c["v"], c["lr"], c["mu"]), _mom_ref,
         _mom_mistakes, _mom_visible, _mom_hidden, (1, 2)),
        ("linear_loss_grad", ("loss", "dw", "db"), lambda f, c: f(c["X"], c["y"], c["w"], c["b"]), _lin_ref,
         _lin_mistakes, _lin_visible, _lin_hidden, (2, 3), dict(batch_size=lambda c: len(c["y"]))),
        ("fit_linear", ("w", "b"), lambda f, c: f(c["X"], c["y"], c["lr"], c["steps"]), _fit_ref, _fit_mistakes,
         _fit_visible, _fit_hidden, (1, 2)),
    ]
    return visible_and_hidden(A, spec, hints)


CHECKS = _checks()
