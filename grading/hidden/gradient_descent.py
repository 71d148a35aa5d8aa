"""Hidden cases of gradient_descent: other shapes, lr above 1, mu = 0 and mu near 1, one example,
one feature, and a single fitting step."""
import numpy as np

from bplib.checks.gradient_descent import _fit_case, _lin_case, _mom_case

# Nothing of bplib is needed: bplib.optim's optimizers (their `step`) and bplib.losses.mse (it returns the
# gradient of the mean squared error) are the reference and are not available when graded.
ALLOWED = []


def sgd_step(rng):
    cases = [dict(name=f"shape {s}, lr={lr}", w=rng.standard_normal(s), dw=rng.standard_normal(s), lr=lr)
             for s, lr in [((1,), 0.01), ((5, 4), 1.0), ((3, 2, 2), 0.003), ((7,), 2.5)]]
    cases.append(dict(name="a zero gradient: w stays", w=rng.standard_normal(4), dw=np.zeros(4), lr=0.3))
    return cases


def momentum_step(rng):
    return [_mom_case(rng, (4, 3), 0.05, 0.99), _mom_case(rng, (1,), 0.5, 0.5),
            _mom_case(rng, (6,), 0.01, 0.0, "mu=0: plain gradient descent"), _mom_case(rng, (2, 2, 2), 1.0, 0.8),
            dict(name="dw = 0: the ball coasts", w=rng.standard_normal(3), dw=np.zeros(3),
                 v=rng.standard_normal(3), lr=0.1, mu=0.9)]


def linear_loss_grad(rng):
    cases = [_lin_case(rng, 1, 4, "one example: N=1, D=4"), _lin_case(rng, 50, 1, "one feature: N=50, D=1"),
             _lin_case(rng, 200, 10), _lin_case(rng, 5, 5, "square X: N=D=5")]
    c = _lin_case(rng, 7, 3, "b = 0")
    cases.append(dict(c, b=0.0))
    return cases


def fit_linear(rng):
    return [_fit_case(rng, 100, 5, 0.05, 200), _fit_case(rng, 1, 3, 0.1, 10, "one example, 10 steps"),
            _fit_case(rng, 30, 1, 0.2, 1, "a single step"), _fit_case(rng, 12, 2, 0.1, 0, "zero steps")]


HIDDEN = {"sgd_step": sgd_step, "momentum_step": momentum_step, "linear_loss_grad": linear_loss_grad,
          "fit_linear": fit_linear}
