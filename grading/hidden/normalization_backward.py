"""Hidden cases of normalization_backward: the smallest batches, one example of images, shifted and scaled
inputs, a large eps, sequences, p = 0 and p close to 1, and one large case per function.

The large cases cost an honest (vectorised) solution milliseconds. The functions receive a cache, not x, so
numerical derivatives are awkward to begin with; a function that rebuilt x and used them (bplib.gradcheck,
allowed for checking one's own work) would need two forward passes per input element: far past the check's
time limit (core.TIME_LIMIT).
"""
import numpy as np

from bplib.checks.normalization_backward import _bn_case, _drop_case, _ln_case

# Nothing of what the grader removes is needed: the forward passes (batchnorm_forward, layernorm_forward,
# dropout_forward) and bplib.gradcheck are always available. Removed: batchnorm_backward, layernorm_backward,
# dropout_backward and the BatchNorm, LayerNorm and Dropout layers' backward.
ALLOWED = []


def batchnorm_backward(rng):
    return [_bn_case(rng, (2, 3), "the smallest batch: N=2 (m = 2 values per feature)"),
            _bn_case(rng, (1, 2, 3, 3), "one image: N=1, C=2, 3x3 (m = N*H*W = 9 values per channel)"),
            _bn_case(rng, (16, 4), "inputs far from 0 and wide: x around 50, spread 10", scale=10.0, shift=50.0),
            _bn_case(rng, (8, 3), "a large eps (0.5) next to a small variance", scale=0.3, eps=0.5),
            _bn_case(rng, (4, 5, 3, 2), "rectangular images: (4, 5, 3, 2)"),
            _bn_case(rng, (7, 1), "one feature: D=1"),
            _bn_case(rng, (512, 256), "a large batch: N=512, D=256"),
            _bn_case(rng, (32, 16, 8, 8), "a large batch of images: (32, 16, 8, 8)")]


def layernorm_backward(rng):
    return [_ln_case(rng, (1, 5), "batch of one: N=1, D=5"),
            _ln_case(rng, (6, 2), "two features: D=2"),
            _ln_case(rng, (4, 7), "inputs far from 0 and wide: x around -30, spread 5", scale=5.0, shift=-30.0),
            _ln_case(rng, (5, 6), "a large eps (0.5) next to a small variance", scale=0.3, eps=0.5),
            _ln_case(rng, (2, 3, 4, 5), "four axes: (2, 3, 4, 5), normalised over the last"),
            _ln_case(rng, (8, 1, 6), "a sequence of one step: (8, 1, 6)"),
            _ln_case(rng, (64, 32, 128), "a large batch of sequences: (64, 32, 128)")]


def dropout_backward(rng):
    x4 = _drop_case(rng, (2, 3, 4, 4), 0.3, "images (2, 3, 4, 4), p=0.3")
    keep_all = _drop_case(rng, (5, 6), 0.0, "p=0: nothing is dropped")
    return [_drop_case(rng, (1, 9), 0.5, "batch of one, p=0.5"),
            _drop_case(rng, (10, 8), 0.1, "p=0.1"),
            _drop_case(rng, (10, 8), 0.9, "p=0.9: most values dropped"),
            x4, keep_all,
            _drop_case(rng, (1000, 1000), 0.2, "a large array: (1000, 1000), p=0.2")]


HIDDEN = {"batchnorm_backward": batchnorm_backward, "layernorm_backward": layernorm_backward,
          "dropout_backward": dropout_backward}
