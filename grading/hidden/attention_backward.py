"""Hidden cases of attention_backward: a row of one, masked rows, T != S, d = 1, boolean masks,
four leading axes, one head and many, a sequence of one, and one large case per function.

The large cases cost an honest (vectorised) solution milliseconds, but a function that returns
numerical derivatives (bplib.gradcheck) needs two forward passes per input element: minutes, far
past the check's time limit (core.TIME_LIMIT).
"""
import numpy as np

from bplib.checks.attention_backward import _attn_case, _mha_case, _softmax_case

# Nothing of what the grader removes is needed: the forward passes (softmax_forward,
# attention_forward, and mha_forward in bplib.checks.calls) and bplib.gradcheck are always available.
ALLOWED = []


def softmax_backward(rng):
    return [_softmax_case(rng, (1, 1), "a row of one entry: y = 1"),
            _softmax_case(rng, (7,), "a single row, shape (7,)"),
            _softmax_case(rng, (3, 2, 4, 5), "four axes (N, h, T, S) = (3, 2, 4, 5)"),
            _softmax_case(rng, (6, 8), "shape (6, 8), half of every row masked (-inf)", 4),
            dict(name="one weight close to 1 (scores far apart)", x=rng.standard_normal((5, 4)) * 30,
                 dout=rng.standard_normal((5, 4))),
            _softmax_case(rng, (32, 4, 64, 64), "a large batch of scores (32, 4, 64, 64)")]


def attention_backward(rng):
    return [_attn_case(rng, 1, 1, 1, 3, 2, None, name="one query, one key"),
            _attn_case(rng, 3, 6, 6, 1, 4, "causal", name="causal, d = 1 feature per query and key"),
            _attn_case(rng, 2, 5, 3, 4, 4, "causal", name="causal with T=5 > S=3 (top-left aligned)"),
            _attn_case(rng, 2, 4, 7, 3, 5, "random", name="a boolean mask, T=4, S=7, d=3, d_v=5"),
            _attn_case(rng, 2, 5, 5, 8, 8, "causal", lead=(4,), name="(N, h) = (2, 4) heads, causal, T=S=5"),
            _attn_case(rng, 8, 64, 64, 16, 16, "causal", lead=(4,), name="large: (N, h) = (8, 4), T=S=64, d=16")]


def mha_projections_backward(rng):
    return [_mha_case(rng, 1, 1, 2, 1, True, "a sequence of one: N=1, T=1, D=2, one head"),
            _mha_case(rng, 2, 6, 8, 4, True, "four heads of 2: N=2, T=6, D=8, causal"),
            _mha_case(rng, 4, 3, 6, 2, False),
            _mha_case(rng, 3, 5, 12, 6, True),
            _mha_case(rng, 16, 32, 64, 4, True, "large: N=16, T=32, D=64, h=4")]


HIDDEN = {"softmax_backward": softmax_backward, "attention_backward": attention_backward,
          "mha_projections_backward": mha_projections_backward}
