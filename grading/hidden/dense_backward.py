"""Hidden cases of dense_backward: a batch of one, square and one-column weights, huge logits, kinks,
and one large case per function.

The large cases cost an honest (vectorised, or even looped) solution milliseconds, but a function that
returns numerical derivatives (bplib.gradcheck, allowed for checking one's own work) needs one forward
pass per input element, twice: minutes, far past the check's time limit (core.TIME_LIMIT).
"""
import numpy as np

from bplib.checks.dense_backward import _dense_case

# Nothing of what the grader removes is needed: the forward passes (dense_forward, relu_forward,
# bplib.losses.softmax) and bplib.gradcheck are always available.
ALLOWED = []


def dense_backward(rng):
    return [_dense_case(rng, 1, 6, 2, "batch of one: N=1, D=6, M=2"),
            _dense_case(rng, 17, 8, 8, "square W: N=17, D=M=8"),
            _dense_case(rng, 64, 30, 10),
            _dense_case(rng, 3, 1, 5, "one input feature: N=3, D=1, M=5"),
            _dense_case(rng, 5, 7, 1, "one output: N=5, D=7, M=1"),
            _dense_case(rng, 256, 256, 128, "a large layer: N=256, D=256, M=128")]


def relu_backward(rng):
    cases = []
    for shape in [(1, 7), (16, 5), (2, 3, 4, 4)]:
        cases.append(dict(name=f"random, shape {shape}", dout=rng.standard_normal(shape),
                          x=rng.standard_normal(shape)))
    x = rng.standard_normal((8, 6))
    cases.append(dict(name="dout negative where x is positive",
                      dout=-np.abs(rng.standard_normal((8, 6))) * np.sign(x), x=x))
    x = rng.choice([-1e-7, 0.0, 1e-7, -2.0, 3.0], size=(6, 5))
    cases.append(dict(name="inputs at and just beside the kink (0 and +-1e-7)", dout=rng.standard_normal((6, 5)),
                      x=x))
    cases.append(dict(name="a large batch, shape (512, 512)", dout=rng.standard_normal((512, 512)),
                      x=rng.standard_normal((512, 512))))
    return cases


def softmax_cross_entropy(rng):
    return [dict(name="batch of one: N=1, K=10", logits=rng.standard_normal((1, 10)),
                 labels=rng.integers(0, 10, 1)),
            dict(name="large logits (around 800): exp overflows without care",
                 logits=rng.standard_normal((6, 4)) * 3 + 800, labels=rng.integers(0, 4, 6)),
            dict(name="N=50, K=10", logits=rng.standard_normal((50, 10)) * 3, labels=rng.integers(0, 10, 50)),
            dict(name="two classes, N=8", logits=rng.standard_normal((8, 2)), labels=rng.integers(0, 2, 8)),
            dict(name="every label the same class, N=6, K=4", logits=rng.standard_normal((6, 4)),
                 labels=np.full(6, 2)),
            dict(name="a large batch: N=2000, K=100", logits=rng.standard_normal((2000, 100)) * 2,
                 labels=rng.integers(0, 100, 2000))]


HIDDEN = {"dense_backward": dense_backward, "relu_backward": relu_backward,
          "softmax_cross_entropy": softmax_cross_entropy}
