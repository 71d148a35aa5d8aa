"""Hidden cases of conv_backward: odd shapes, strides that skip pixels, large padding, 1x1 kernels,
tied maxima, and one large case per function.

The large cases cost an honest solution (a loop over the kernel offsets or over the windows) well under a
second, but a function that returns numerical derivatives (bplib.gradcheck, allowed for checking one's own
work) needs two forward passes per input element: minutes, far past the check's time limit.
"""
from bplib.checks.conv_backward import _conv_case, _pool_case, _pool_relu_case

# What the graded functions may use besides numpy and the forward passes (conv2d_forward,
# maxpool2d_forward, conv_output_size are never removed): the unfolding of the forward pass.
# NOT allowed (removed when graded): bplib.layers.col2im, the adjoint of im2col. It is the scatter-add
# half of dx (overlapping windows add up, stride, padding cropped), which is what this exercise is about;
# and of course conv2d_backward, maxpool2d_backward, their helpers and the layers' backward.
ALLOWED = ["bplib.layers.im2col"]


def conv2d_backward(rng):
    return [_conv_case(rng, 1, 1, 5, 5, 1, 3, 1, 0, "batch of one, one channel, one filter"),
            _conv_case(rng, 3, 2, 7, 7, 2, 3, 3, 0, "stride 3 = k: windows touch, the last row and column unused"),
            _conv_case(rng, 2, 2, 8, 8, 2, 2, 3, 0, "stride 3 > k = 2: pixels between windows get no gradient"),
            _conv_case(rng, 2, 3, 6, 8, 4, 3, 2, 2, "rectangular 6x8 input, stride 2, padding 2"),
            _conv_case(rng, 2, 4, 5, 5, 3, 1, 1, 0, "1x1 kernel"),
            _conv_case(rng, 4, 2, 9, 9, 5, 5, 2, 1),
            _conv_case(rng, 2, 3, 4, 4, 2, 4, 1, 1, "kernel as large as the image, padding 1"),
            _conv_case(rng, 8, 8, 16, 16, 16, 3, 1, 1, "a large layer: N=8, C=8, 16x16, F=16, k=3")]


def maxpool2d_backward(rng):
    return [_pool_case(rng, 1, 1, 4, 4, 2, 2, "batch of one"),
            _pool_case(rng, 2, 2, 6, 6, 2, 1, "stride 1: every input in up to 4 windows"),
            _pool_case(rng, 3, 2, 7, 5, 2, 2, "odd 7x5 input: last row unused"),
            _pool_case(rng, 2, 4, 9, 9, 3, 3),
            _pool_case(rng, 2, 1, 6, 6, 3, 1, "k=3, stride=1"),
            _pool_case(rng, 2, 2, 7, 7, 2, 3, "stride 3 > k = 2: inputs between windows"),
            _pool_relu_case(rng, 2, 3, 6, 6, 2, 2, "after a ReLU: many tied zeros"),
            _pool_relu_case(rng, 2, 2, 7, 7, 3, 2, "after a ReLU, overlapping windows: ties and overlaps"),
            _pool_case(rng, 8, 8, 32, 32, 2, 2, "a large batch: N=8, C=8, 32x32, k=2")]


HIDDEN = {"conv2d_backward": conv2d_backward, "maxpool2d_backward": maxpool2d_backward}
