"""Checks for the gradient_descent assignment.

    sgd_step(w, dw, lr) -> w_new                               one step of gradient descent
    momentum_step(w, dw, v, lr, mu) -> (w_new, v_new)          one step with a velocity (the velocity is a step, in the units of w)
    linear_loss_grad(X, y, w, b) -> (loss, dw, db)             L = mean((X w + b - y)^2) and its gradients
    fit_linear(X, y, lr, steps) -> (w, b)                      `steps` updates from w = 0, b = 0
"""
import numpy as np

from .calls.gradient_descent import CALLS
from .core import Ladder, Mistake, visible_and_hidden

A = "gradient_descent"


# -- sgd_step --------------------------------------------------------------------------
def _sgd_visible(rng):
    return [dict(name="w=[1, 2], dw=[0.5, -1], lr=0.1", w=np.array([1.0, 2.0]), dw=np.array([0.5, -1.0]), lr=0.1),
            dict(name="a 2x3 matrix, lr=0.5", w=rng.standard_normal((2, 3)), dw=rng.standard_normal((2, 3)), lr=0.5)]


_sgd_ref = lambda c: {"w_new": c["w"] - c["lr"] * c["dw"]}    # noqa: E731
_UPHILL = ("The gradient points in the direction in which the loss grows fastest. To lower the loss, "
           "move the other way.")
_sgd_mistakes = [
    Mistake("w moved uphill: the step went the way the gradient points, where the loss grows.",
            lambda c: {"w_new": c["w"] + c["lr"] * c["dw"]}, concept=_UPHILL),
    Mistake("The step from w to w_new is 1/lr times too long: the learning rate does not set its size.",
            lambda c: {"w_new": c["w"] - c["dw"]},
            concept="The gradient gives the direction; the learning rate says how far to go: a small "
                    "learning rate, a short step."),
    Mistake("w_new does not depend on w: it is the step alone, not the point where the step lands.",
            lambda c: {"w_new": -c["lr"] * c["dw"]},
            concept="A step starts where you are: the new point is the old point moved by the step."),
    Mistake("The step grows when lr shrinks: the learning rate divides where it should scale the step.",
            lambda c: {"w_new": c["w"] - c["dw"] / c["lr"]}),
]


# -- momentum_step -------------------------------------------------------------------------
def _mom_case(rng, shape, lr, mu, name=None):
    return dict(name=name or f"shape {shape}, lr={lr}, mu={mu}", w=rng.standard_normal(shape),
                dw=rng.standard_normal(shape), v=rng.standard_normal(shape) * 0.1, lr=lr, mu=mu)


def _mom_visible(rng):
    return [dict(name="first step: v = 0", w=np.array([1.0, -1.0]), dw=np.array([2.0, 0.5]), v=np.zeros(2),
                 lr=0.05, mu=0.9),
            dict(name="the table's second row: w=0.8, dw=0.8, v=-0.2, lr=0.2, mu=0.9", w=np.array([0.8]),
                 dw=np.array([0.8]), v=np.array([-0.2]), lr=0.2, mu=0.9),
            _mom_case(rng, (3,), 0.1, 0.9)]


def _mom_ref(c):
    v = c["mu"] * c["v"] - c["lr"] * c["dw"]
    return {"w_new": c["w"] + v, "v_new": v}


_mom_mistakes = [
    Mistake("v_new keeps all of the old velocity: it was not decayed by mu, so old steps never fade.",
            lambda c: {"v_new": c["v"] - c["lr"] * c["dw"]},
            concept="Friction: at every step the ball keeps only the fraction mu of its velocity (mu = 0.9 "
                    "keeps 90%), then the slope pushes it."),
    Mistake("v_new pushes uphill: the gradient's share of the velocity points the way the loss grows.",
            lambda c: {"v_new": c["mu"] * c["v"] + c["lr"] * c["dw"]}, concept=_UPHILL),
    Mistake("w moved with the OLD velocity: w_new does not include this step's push from the gradient.",
            lambda c: {"w_new": c["w"] + c["v"]},
            concept="First the velocity changes (friction, then the push of the slope); then the ball moves "
                    "with the velocity it has NOW."),
    Mistake("v_new is an average of gradients (the other convention, which weights the gradient by one minus "
            "mu and applies the learning rate later). In this exercise's convention the velocity is a step, in "
            "the units of w, and the learning rate is inside it.",
            lambda c: {"v_new": c["mu"] * c["v"] + (1 - c["mu"]) * c["dw"]},
            concept="With v = 0 the first momentum step must be exactly the plain gradient-descent step "
                    "(the first row of the table)."),
    Mistake("w_new moved against v_new: the velocity already points downhill, it is the step itself.",
            lambda c: {"w_new": c["w"] - (c["mu"] * c["v"] - c["lr"] * c["dw"])},
            concept="v is the change of w per step, sign included: the ball moves the way its velocity points."),
    Mistake("v_new ignores the learning rate: the push of the slope is the whole gradient.",
            lambda c: {"v_new": c["mu"] * c["v"] - c["dw"]},
            concept="The push of the slope is the step plain gradient descent would take: the learning rate "
                    "sets its size."),
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


def _lin_ref(c, with_b=True):
    r = c["X"] @ c["w"] + (c["b"] if with_b else 0.0) - c["y"]
    N = len(c["y"])
    return {"loss": np.float64(np.mean(r ** 2)), "dw": 2 * c["X"].T @ r / N, "db": np.float64(2 * r.sum() / N)}


def _scaled(names, k):
    names = (names,) if isinstance(names, str) else names
    return lambda c: {n: _lin_ref(c)[n] * (k(c) if callable(k) else k) for n in names}


_MEAN_CONCEPT = ("L is the MEAN of N squared residuals. Every w[j] and b enters every residual, so the chain "
                 "rule adds up the N examples' contributions, and the 1/N of the mean stays in front of them.")
_SQUARE_CONCEPT = "How fast does r^2 change when r changes by a small h? (r + h)^2 = r^2 + 2rh + h^2."
_SIGN_CONCEPT = ("The residual is prediction minus target. If the prediction is too high, raising w or b makes "
                 "the loss larger: the gradient must be positive there.")
_N = lambda c: len(c["y"])    # noqa: E731
_lin_mistakes = [
    Mistake("The gradient is exactly half the right value (dw, db or both: see above): the slope of the "
            "square lost a factor.", _scaled(("dw", "db"), 0.5), concept=_SQUARE_CONCEPT),
    Mistake("The gradient is exactly N (the number of examples) times too large (dw, db or both: see above): "
            "the loss is a mean over the examples.", _scaled(("dw", "db"), _N), concept=_MEAN_CONCEPT),
    Mistake("The gradient has the right size and the opposite sign (dw, db or both: see above): the residual "
            "was taken as target minus prediction, or a minus sign was lost.", _scaled(("dw", "db"), -1),
            concept=_SIGN_CONCEPT),
    Mistake("The loss is exactly N times too large: it is the sum of the squared errors, not their mean.",
            _scaled("loss", _N), concept="The loss is the MEAN squared error over the N examples."),
    Mistake("loss, dw and db are what they would be without the bias: the prediction leaves out b.",
            lambda c: _lin_ref(c, with_b=False),
            concept="The prediction for example n is X[n] @ w + b: b shifts every prediction."),
]


def _lin_diagnose(c, got, want):
    dw = got.get("dw")
    try:
        dw = np.asarray(dw, dtype=float)
    except (TypeError, ValueError):
        return []
    if dw.shape != want["dw"].shape and dw.shape == (len(c["y"]),):
        return ["dw has one entry per example (N of them), but w has D entries: the sum over the examples "
                "is missing."]
    return []


# -- fitting --------------------------------------------------------------------------
def _fit_case(rng, N, D, lr, steps, name=None):
    X = rng.standard_normal((N, D))
    y = X @ rng.standard_normal(D) - 1.0 + 0.1 * rng.standard_normal(N)
    return dict(name=name or f"N={N}, D={D}, lr={lr}, steps={steps}", X=X, y=y, lr=lr, steps=steps)


def _fit_visible(rng):
    return [_fit_case(rng, 20, 2, 0.1, 50), _fit_case(rng, 6, 3, 0.05, 3, "N=6, D=3, three steps")]


def _fit_ref(c, update_b=True, start=0.0, sign=-1.0):
    X, y = c["X"], c["y"]
    w, b = np.full(X.shape[1], start), start
    for _ in range(c["steps"]):
        r = X @ w + b - y
        dw, db = 2 * X.T @ r / len(y), 2 * r.sum() / len(y)
        w = w + sign * c["lr"] * dw
        if update_b:
            b = b + sign * c["lr"] * db
    return {"w": w, "b": np.float64(b)}


def _fit_steps(delta):
    def model(c):
        if c["steps"] + delta < 0:
            return {}
        return _fit_ref(dict(c, steps=c["steps"] + delta))
    return model


def _fit_uphill(c):
    with np.errstate(all="ignore"):
        return _fit_ref(c, sign=1.0)


_fit_mistakes = [
    Mistake("b never moved: it is still where it started, 0.", lambda c: _fit_ref(c, update_b=False),
            concept="b is a parameter like w: the loss has a slope with respect to it, and it moves down that "
                    "slope at every step too."),
    Mistake("The run did not start from zero: w and b are those of a run that started with every parameter at 1.",
            lambda c: _fit_ref(c, start=1.0)),
    Mistake("One update too few: w and b are where the run stood one update before the end.", _fit_steps(-1),
            concept="`steps` is the number of updates: from the start, exactly that many times: gradient, step."),
    Mistake("One update too many: w and b are where the run stands one update after the end.", _fit_steps(1),
            concept="`steps` is the number of updates: from the start, exactly that many times: gradient, step."),
    Mistake("w and b went uphill: every update moved the way the gradient points.", _fit_uphill,
            concept=_UPHILL),
]


_LADDERS = {
    "sgd_step": Ladder(
        concept=_UPHILL + " The learning rate sets how long the step is, in units of the gradient.",
        rule="Each element moves on its own: w_new[i] depends on w[i], dw[i] and lr only. Example: w[i] = 1, "
             "dw[i] = 3, lr = 0.1 gives w_new[i] = 0.7.",
        formula="w_new = w - lr * dw   (a new array: do not change w in place)"),
    "momentum_step": Ladder(
        concept="A heavy ball rolling on the loss surface: v is its velocity, the change of w per step. At "
                "every step friction keeps the fraction mu of the velocity, the slope pushes it downhill by "
                "the step plain gradient descent would take, then the ball moves by its NEW velocity.",
        rule="Element by element: v_new[i] is made of v[i] (scaled by mu) and of dw[i] (scaled by lr, with "
             "the sign that goes downhill); w_new[i] is w[i] moved by v_new[i]. With v = 0 the step is exactly "
             "the plain gradient-descent step; check your table's rows.",
        formula="v_new = mu * v - lr * dw, then w_new = w + v_new"),
    "linear_loss_grad": Ladder(
        concept=_MEAN_CONCEPT + " Give the residual a name: r[n] = X[n] @ w + b - y[n], and go through it "
                "with the chain rule.",
        rule="dL/dr[n] = 2 r[n] / N; d r[n] / d w[j] = X[n, j]; d r[n] / d b = 1. So dL/dw[j] is a sum over n "
             "of (2 r[n] / N) X[n, j], and dL/db a sum over n of 2 r[n] / N. Then write the sum over n for all "
             "j at once as one matrix-vector product and check that it has shape (D,).",
        formula="r = X @ w + b - y;  loss = mean(r ** 2);  dw = 2 * X.T @ r / N;  db = 2 * r.sum() / N"),
    "fit_linear": Ladder(
        concept="Training is a loop: start at w = 0, b = 0; compute the gradient at the current point; step "
                "downhill; repeat. w and b are both parameters.",
        rule="At each of the `steps` iterations: linear_loss_grad at the current (w, b), then move w with its "
             "gradient and b with its gradient, both with sgd_step and the same lr.",
        formula="w, b = np.zeros(D), 0.0; for _ in range(steps): loss, dw, db = linear_loss_grad(X, y, w, b); "
                "w = sgd_step(w, dw, lr); b = sgd_step(b, db, lr). Return (w, b)."),
}


def _checks():
    spec = [
        ("sgd_step", ("w_new",), CALLS["sgd_step"], _sgd_ref, _sgd_mistakes, _sgd_visible, (1, 1)),
        ("momentum_step", ("w_new", "v_new"), CALLS["momentum_step"], _mom_ref, _mom_mistakes, _mom_visible, (1, 2)),
        ("linear_loss_grad", ("loss", "dw", "db"), CALLS["linear_loss_grad"], _lin_ref, _lin_mistakes,
         _lin_visible, (2, 3), dict(batch_size=lambda c: len(c["y"]), diagnose=_lin_diagnose)),
        ("fit_linear", ("w", "b"), CALLS["fit_linear"], _fit_ref, _fit_mistakes, _fit_visible, (1, 2)),
    ]
    return visible_and_hidden(A, spec, _LADDERS)


CHECKS = _checks()
