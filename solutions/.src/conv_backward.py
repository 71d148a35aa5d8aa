# %% [markdown]
# # Exercise 4: backward through convolution and max pooling
#
# **What you learn.** A convolution reuses every weight at every position and every input
# pixel in several windows, so its backward pass *adds up* contributions; stride and padding
# decide which ones. Max pooling routes each gradient to one winner. You derive both from one
# element of the forward pass, then your two functions train a small convolutional network on
# handwritten digits.
#
# **Time:** about 100 minutes (an hour of it for the derivations on paper).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `conv2d_backward(dout, x, W, stride, padding)` | `(dx, dW, db)` | 8 |
# | `maxpool2d_backward(dout, x, k, stride)` | `dx` | 5 |
#
# **You derive:**
#
# - `conv2d_backward`: dL/dx, with stride and padding, and dL/db. The book gives neither
#   (chapter 6 derives dL/dW element by element; you vectorise it, with stride and padding).
# - `maxpool2d_backward`: dL/dx when windows overlap and when a window's maximum is tied. The
#   book gives only the local derivative of a maximum.
#
# **You may call:** numpy (`np.pad`, `np.einsum`, `np.tensordot`, ...); the forward passes
# `bplib.layers.conv2d_forward` and `maxpool2d_forward`, and `conv_output_size`;
# `bplib.layers.im2col`, which unfolds the windows of the forward pass; and `bplib.gradcheck`
# (for example `numerical_gradient`) to test your own work. **Not** `bplib.layers.col2im`,
# the adjoint of `im2col`: it adds every window's gradient back onto its pixels, and that
# scatter is half of dx, the half this exercise is about. Nor bplib's own
# `conv2d_backward` and `maxpool2d_backward`, their helpers, the layers' `backward`, or the
# checking code in `bplib.checks`: they are the course's reference. When your notebook is
# graded, your functions run again in a clean process where all of those are removed, so a
# function that calls them scores 0 on that test, with a status that says so. Returning
# numerical derivatives instead of your own gradient does not work either: the hidden tests
# include layers so large that it runs out of time.
#
# **Hints:** a failed check names the symptom (wrong shape, stride ignored, padding not
# removed, overlapping windows overwritten, ...). For more, call `hint("conv2d_backward")` or
# `hint("maxpool2d_backward")`: each call gives the next level, first the idea, then the local
# rule, and only last the formula. Hints never cost points; the summary counts them for your
# own record.
#
# Shapes: `x: (N, C, H, W)` images with `C` channels, `W: (F, C, k, k)` filters, `b: (F,)`,
# `out: (N, F, Ho, Wo)`. (`W` is the weight array; inside your functions the image width is
# `x.shape[3]`.) Run the notebook from the top after a change; the last cell sums up what
# passes.

# %% locked
import os
import time

import numpy as np

import bplib
from bplib import checks
from bplib.checks import hint
from bplib.layers import Conv2D, MaxPool2D, ReLU, Flatten, Dense, Sequential
from bplib.layers import conv2d_forward, conv_output_size, maxpool2d_forward
from bplib.gradcheck import check_layer, numerical_gradient

checks.start("conv_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a smaller training run

# %% [markdown]
# ## 1. Convolution
#
# Let $xp$ be the input with `padding` zeros added on every side of each image, $(N, C, H + 2p,
# W + 2p)$, and $s$ the stride. Output $(i, j)$ of filter $f$ reads the $k \times k$ window that
# starts at row $s\,i$ and column $s\,j$ of $xp$:
#
# $$\text{out}[n, f, i, j] = b[f] + \sum_{c}\sum_{d_i = 0}^{k-1}\sum_{d_j = 0}^{k-1}
#   W[f, c, d_i, d_j]\; xp[n, c,\, s\,i + d_i,\, s\,j + d_j]$$
#
# for $0 \le i < H_o$, $0 \le j < W_o$, with $H_o = \lfloor (H + 2p - k) / s \rfloor + 1$ (and the
# same for $W_o$): a window must fit inside $xp$, so when the stride does not divide evenly the
# last rows or columns of $xp$ are read by no window.
#
# | array | shape | what it is |
# |---|---|---|
# | `x`, `dx` | (N, C, H, W) | the input images, and dL/dx which you return |
# | `W`, `dW` | (F, C, k, k) | F filters of C channels, k x k each |
# | `b`, `db` | (F,) | one bias per filter |
# | `out`, `dout` | (N, F, Ho, Wo) | the output, and dL/dout which your function receives |
#
# The same sum organised by kernel offset: for each $(d_i, d_j)$, the weights `W[:, :, di, dj]`,
# an (F, C) matrix, multiply one strided slice of $xp$ that has the shape (N, C, Ho, Wo). The
# cell below is the forward pass written that way (compare it with `conv2d_forward`): your
# backward pass can follow its structure line by line.

# %% locked
def conv2d_forward_by_offsets(x, W, b, stride=1, padding=0):
    """The forward pass, one kernel offset (di, dj) at a time (the same numbers as conv2d_forward)."""
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    s, p = stride, padding
    Ho, Wo = conv_output_size(H, k, s, p), conv_output_size(Wd, k, s, p)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((N, F, Ho, Wo)) + b[None, :, None, None]
    for di in range(k):
        for dj in range(k):
            seen = xp[:, :, di:di + s * Ho:s, dj:dj + s * Wo:s]        # (N, C, Ho, Wo): what W[:, :, di, dj] meets
            out += np.einsum("fc,ncij->nfij", W[:, :, di, dj], seen)
    return out

_r = np.random.default_rng(0)
_x, _W, _b = _r.standard_normal((2, 3, 7, 6)), _r.standard_normal((4, 3, 3, 3)), _r.standard_normal(4)
print("same as conv2d_forward:", np.allclose(conv2d_forward_by_offsets(_x, _W, _b, 2, 1), conv2d_forward(_x, _W, _b, 2, 1)))

# %% [markdown]
# **A worked example (one dimension, not graded).** One channel, one filter `w` of length $k$,
# stride $s$, no padding: $\text{out}[i] = \sum_{d} w[d]\; x[s\,i + d]$. Each $w[d]$ is used once per
# output $i$, always times the input its window puts under it, so the chain rule adds up
#
# $$\frac{\partial L}{\partial w[d]} = \sum_{i} \text{dout}[i]\; x[s\,i + d].$$
#
# Chapter 6 derives the 2-D version of this, for `dW`.
#
# **Your derivation**, on paper:
#
# 1. `db`: how many times is $b[f]$ used? Write $\partial L / \partial b[f]$.
# 2. `dW`: write $\partial L / \partial W[f, c, d_i, d_j]$ as a sum over $n, i, j$ (follow the 1-D
#    example). For one fixed offset $(d_i, d_j)$, it pairs `dout` with the same slice of $xp$ that
#    the forward cell calls `seen`: which sums does that pairing do, and which `np.einsum`
#    subscripts say so?
# 3. `dx`, in one dimension first. Input $x[t]$ is used by every pair $(i, d)$ with $s\,i + d = t$.
#    Write $\partial L / \partial x[t]$ as a sum over those pairs. By hand: $x$ of length 5,
#    $w = [1, 2, 3]$, $s = 2$, so two outputs, and $\text{dout} = [1, 10]$. What is dx? Which
#    input is used twice? (The cell below compares your answer with numerical derivatives.)
# 4. `dx` in two dimensions: every $(i, j, d_i, d_j)$ sends $\text{dout}[n, f, i, j]\,W[f, c, d_i, d_j]$
#    to $xp[n, c, s\,i + d_i, s\,j + d_j]$, summed over $f$. For one fixed offset, all those
#    targets form the `seen` slice again. What must happen where two offsets (or two windows)
#    reach the same element of $xp$?
# 5. Padding: that gives dL/dxp, shaped like $xp$. The padded zeros are not inputs: which part of
#    it is dx?
# 6. Vectorise: a loop over the $k^2$ offsets is enough (no loop over $n$, $f$, $i$ or $j$). Check
#    every shape against the table.

# %%
# Step 3's tiny 1-D case. Write your hand result for dL/dx (five numbers), then run the cell:
# it compares them with numerical derivatives.
my_dx1 = None

x1, w1, s1, dout1 = np.array([0.5, -1.0, 2.0, 0.0, 1.5]), np.array([1.0, 2.0, 3.0]), 2, np.array([1.0, 10.0])

def conv1d(x):                      # out[i] = sum over d of w1[d] * x[s1*i + d], for i = 0, 1
    return np.array([w1 @ x[s1 * i:s1 * i + 3] for i in range(2)])

num1 = numerical_gradient(lambda x: conv1d(x) @ dout1, x1.copy())
if my_dx1 is None:
    print("Put your hand result in my_dx1 and run this cell again.")
elif np.allclose(my_dx1, num1):
    print("Right: your hand result matches the numerical derivatives.")
else:
    print(f"Not quite: the numerical derivatives are {num1.round(6).tolist()}. Which input is used twice?")

# %% solution
def conv2d_backward(dout, x, W, stride=1, padding=0):
    """Backward of conv2d_forward.

    dout: (N, F, Ho, Wo), x: (N, C, H, W), W: (F, C, k, k)
    ->  dx: (N, C, H, W), dW: (F, C, k, k), db: (F,)
    """
    ### BEGIN SOLUTION
    N, C, H, Wd = x.shape
    k, s, p = W.shape[2], stride, padding
    Ho, Wo = dout.shape[2], dout.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    dW = np.zeros_like(W)
    for di in range(k):
        for dj in range(k):
            window = (slice(None), slice(None), slice(di, di + s * Ho, s), slice(dj, dj + s * Wo, s))
            dW[:, :, di, dj] = np.einsum("nfij,ncij->fc", dout, xp[window])
            dxp[window] += np.einsum("nfij,fc->ncij", dout, W[:, :, di, dj])
    db = dout.sum(axis=(0, 2, 3))
    dx = dxp[:, :, p:p + H, p:p + Wd]
    return dx, dW, db
    ### END SOLUTION

# %% check conv2d_backward_visible

# %% check conv2d_backward_hidden

# %% [markdown]
# ## 2. Max pooling
#
# Output $(i, j)$ is the largest input of the $k \times k$ window that starts at row $s\,i$ and
# column $s\,j$ (no padding; the stride $s$ is $k$ unless given):
#
# $$\text{out}[n, c, i, j] = \max_{0 \le a, b < k} x[n, c,\, s\,i + a,\, s\,j + b], \qquad
#   H_o = \lfloor (H - k) / s \rfloor + 1 .$$
#
# `dout` has the shape (N, C, Ho, Wo) of `out`; `dx` has the shape of `x`.
#
# **Your derivation:**
#
# 1. The local rule. For $m = \max(u_1, \dots, u_K)$ with one largest $u_a$: what is
#    $\partial m / \partial u_a$, and $\partial m / \partial u_b$ for $b \ne a$? (Nudge each input a
#    little: does $m$ move?)
# 2. Ties. When several inputs equal the maximum, the max has no derivative there, and a
#    library has to pick. This course, like `np.argmax` on the flattened window, picks the *first*
#    of them in row-major order and gives it the whole gradient. After a ReLU, windows of zeros
#    are common; the visible test has one.
# 3. Overlap. With $k = 3$ and $s = 2$, which inputs belong to two windows? If one of them is the
#    maximum of both, what does it receive?
# 4. By hand, with $k = s = 2$: for the 4 x 4 image with rows $[1, 2, 0, 1]$, $[4, 3, 2, 5]$,
#    $[0, 1, 9, 8]$, $[2, 6, 7, 3]$ and $\text{dout} = [[10, 20], [30, 40]]$, which elements of dx are
#    not zero, and what are they? (This is the first visible test.)
# 5. Vectorise over the batch and the channels: a loop over the $H_o W_o$ windows (or over the
#    $k^2$ offsets) is enough.

# %% solution
def maxpool2d_backward(dout, x, k, stride=None):
    """Backward of maxpool2d_forward.

    dout: (N, C, Ho, Wo), x: (N, C, H, W)  ->  dx: (N, C, H, W)
    """
    ### BEGIN SOLUTION
    s = stride or k
    N, C, Ho, Wo = dout.shape
    dx = np.zeros(x.shape, dtype=dout.dtype)
    for i in range(Ho):
        for j in range(Wo):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(N, C, k * k)
            winner = np.arange(k * k) == win.argmax(axis=2)[:, :, None]           # (N, C, k*k)
            dx[:, :, i * s:i * s + k, j * s:j * s + k] += \
                (winner * dout[:, :, i, j][:, :, None]).reshape(N, C, k, k)
    return dx
    ### END SOLUTION

# %% check maxpool2d_backward_visible

# %% check maxpool2d_backward_hidden

# %% [markdown]
# ## 3. Your functions inside real layers
#
# `Conv2D(..., backward_fn=conv2d_backward)` and `MaxPool2D(..., backward_fn=maxpool2d_backward)`
# call your functions in their backward pass. `check_layer` compares them with numerical
# derivatives.

# %%
if checks.passed("conv2d_backward_visible", "maxpool2d_backward_visible"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 6, 6))
    print(check_layer(Conv2D(2, 3, 3, stride=2, padding=1, rng=rng, dtype=np.float64,
                             backward_fn=conv2d_backward), x))
    print(check_layer(MaxPool2D(2, backward_fn=maxpool2d_backward), x))
else:
    print("Make both functions pass their visible tests first.")

# %% [markdown]
# ## 4. Train a small CNN with your backward pass
#
# Conv (8 filters, 3x3, padding 1) -> ReLU -> max pool 2x2 -> dense layer to 10 classes, trained
# with Adam on 1,500 MNIST digits for 2 epochs (about 10 seconds). Expect roughly 85% accuracy
# on 500 test digits. Your `conv2d_backward` and `maxpool2d_backward` compute every gradient
# below the dense layer.

# %%
def train_cnn(n_train=1500, n_test=500, epochs=2, batch_size=50, seed=0):
    (x_train, y_train), (x_test, y_test) = bplib.data.load_mnist()
    x_train = x_train[:n_train, None].astype(np.float32) / 255      # (N, 1, 28, 28)
    x_test = x_test[:n_test, None].astype(np.float32) / 255
    y_train, y_test = y_train[:n_train], y_test[:n_test]
    rng = np.random.default_rng(seed)
    model = Sequential(Conv2D(1, 8, 3, padding=1, rng=rng, backward_fn=conv2d_backward), ReLU(),
                       MaxPool2D(2, backward_fn=maxpool2d_backward), Flatten(),
                       Dense(8 * 14 * 14, 10, rng=rng))
    opt = bplib.optim.Adam(model, lr=2e-3)
    start = time.perf_counter()
    for epoch in range(epochs):
        for idx in bplib.data.batches(n_train, batch_size, rng):
            loss, dlogits = bplib.losses.softmax_cross_entropy(model.forward(x_train[idx]), y_train[idx])
            model.backward(dlogits)
            opt.step()
        acc = (model.forward(x_test).argmax(axis=1) == y_test).mean()
        print(f"epoch {epoch + 1}: last batch loss {loss:.3f}, test accuracy {acc:.1%} "
              f"({time.perf_counter() - start:.1f} s)")
    return acc

if checks.passed("conv2d_backward_visible", "maxpool2d_backward_visible"):
    accuracy = train_cnn(n_train=200, n_test=100, epochs=1) if FAST else train_cnn()
else:
    print("Make both functions pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (a batch of one, strides that leave rows unused or skip pixels, rectangular
# images, 1x1 kernels, tied and overlapping pooling windows, large layers) run when your
# notebook is graded.

# %%
checks.summary("conv_backward");
