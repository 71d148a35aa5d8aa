"""Hidden cases of backprop_ninja: the smallest batch (N=2: batch norm of two examples), one hidden unit, two
classes, more classes than examples, inputs far from 0, a large eps, tied logits, one large case per function.

The large cases cost an honest (vectorised) solution milliseconds. backward_by_hand receives values, not a
graph: numerical derivatives of every intermediate would need a forward pass of its own per element of each
(the loss is not a function of the values it is given), far past the check's time limit (core.TIME_LIMIT).
"""
import numpy as np

from bplib.checks.backprop_ninja import _bn_case, _ce_case, _ninja_case

# Nothing of what the grader removes is needed: Tensor's forward operations (for the forward pass in
# bplib.checks.calls.backprop_ninja) and bplib.gradcheck are always available. Removed: Tensor.backward,
# Tensor's local rules, bplib.layers.batchnorm_backward and bplib.losses.softmax_cross_entropy.
ALLOWED = []


def backward_by_hand(rng):
    return [_ninja_case(rng, 2, 3, 4, 3, "the smallest batch: N=2 (batch norm of two examples)"),
            _ninja_case(rng, 6, 2, 1, 2, "one hidden unit, two classes: H=1, K=2"),
            _ninja_case(rng, 3, 4, 5, 7, "more classes than examples: N=3, K=7"),
            _ninja_case(rng, 10, 5, 6, 4, "inputs far from 0: x spread 20", scale=20.0),
            _ninja_case(rng, 8, 3, 4, 3, "a large eps (0.5)", eps=0.5),
            _ninja_case(rng, 16, 6, 6, 6, "square weights: D=H=K=6"),
            _ninja_case(rng, 256, 64, 128, 10, "a large batch: N=256, D=64, H=128, K=10")]


def cross_entropy_backward(rng):
    tied = dict(name="tied logits: every row the same number", logits=np.full((4, 3), 2.5), y=np.array([0, 1, 2, 0]))
    return [_ce_case(rng, 1, 2, "one example, two classes"),
            _ce_case(rng, 5, 4, "huge logits (around 1000: exp overflows without the shift)", scale=1000.0),
            tied, _ce_case(rng, 3, 10, "ten classes, three examples"),
            _ce_case(rng, 4096, 100, "a large batch: N=4096, K=100")]


def batchnorm_backward_fused(rng):
    return [_bn_case(rng, 2, 3, "the smallest batch: N=2"),
            _bn_case(rng, 7, 1, "one feature: H=1"),
            _bn_case(rng, 16, 4, "inputs far from 0 and wide: around 50, spread 10", scale=10.0, shift=50.0),
            _bn_case(rng, 8, 3, "a large eps (0.5) next to a small variance", scale=0.3, eps=0.5),
            _bn_case(rng, 1024, 512, "a large batch: N=1024, H=512")]


HIDDEN = {"backward_by_hand": backward_by_hand, "cross_entropy_backward": cross_entropy_backward,
          "batchnorm_backward_fused": batchnorm_backward_fused}
