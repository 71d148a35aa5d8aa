# %% [markdown]
# # Exercise 4: backward through convolution and max pooling
#
# **What you learn.** A convolution reuses every weight at every position and every input
# pixel in several windows, so its backward pass *adds up* contributions; stride and padding
# decide which ones. Max pooling routes each gradient to one winner. Then your two functions
# train a small convolutional network on handwritten digits.
#
# **Time:** about 90 minutes.
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `conv2d_backward(dout, x, W, stride, padding)` | `(dx, dW, db)` | 8 |
# | `maxpool2d_backward(dout, x, k, stride)` | `dx` | 5 |
#
# Shapes: `x: (N, C, H, W)` images with `C` channels, `W: (F, C, k, k)` filters,
# `b: (F,)`, `out: (N, F, Ho, Wo)` with `Ho = (H + 2 padding - k) // stride + 1`.
# (`W` is the weight array; inside your functions the image width is `x.shape[3]`.)
# Run the notebook from the top after a change; the last cell sums up what passes.

# %% locked
import os
import time

import numpy as np

import bplib
from bplib import checks
from bplib.layers import Conv2D, MaxPool2D, ReLU, Flatten, Dense, Sequential, conv2d_forward, maxpool2d_forward
from bplib.gradcheck import check_layer

checks.start("conv_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a smaller training run

# %% [markdown]
# ## 1. Convolution
#
# With `xp` the input padded by `padding` zeros on each side and `s` the stride, the forward
# pass (`bplib.layers.conv2d_forward`) is
#
# $$\text{out}[n, f, i, j] = b_f + \sum_{c,\,d_i,\,d_j} W[f, c, d_i, d_j]\; xp[n, c,\, s\,i + d_i,\, s\,j + d_j]$$
#
# Each product in that sum sends `dout[n, f, i, j]` times the *other* factor back:
#
# $$\frac{\partial L}{\partial W[f,c,d_i,d_j]} = \sum_{n,i,j} \frac{\partial L}{\partial \text{out}[n,f,i,j]}\, xp[n,c,s\,i+d_i,s\,j+d_j], \qquad
#   \frac{\partial L}{\partial xp[n,c,s\,i+d_i,s\,j+d_j]} \mathrel{+}= \sum_f \frac{\partial L}{\partial \text{out}[n,f,i,j]}\, W[f,c,d_i,d_j]$$
#
# and `db[f]` sums `dout[:, f]` over the batch and every position. A readable way to write it:
# loop over the `k * k` kernel offsets `(di, dj)`. For one offset, the inputs it touched form
# the strided slice `xp[:, :, di:di + s*Ho:s, dj:dj + s*Wo:s]`, of shape `(N, C, Ho, Wo)`, and
# `np.einsum` (or `np.tensordot`) does the sums over `n, i, j` or over `f`. Finally, `dx` is
# `dxp` with the padding cropped off: the padded zeros are not inputs.

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
# `out[n, c, i, j]` is the largest input of the `k x k` window starting at
# `(stride*i, stride*j)`. Only that winning input affects the output, so it alone receives
# the gradient (ties: the first maximum in row-major order, like `np.argmax`). When windows
# overlap (`stride < k`), an input that wins two windows receives both gradients:
#
# $$\frac{\partial L}{\partial x[n,c,h,w]} = \sum_{(i,j):\ (h,w) = \arg\max \text{ of window } (i,j)} \frac{\partial L}{\partial \text{out}[n,c,i,j]}$$

# %% solution
def maxpool2d_backward(dout, x, k, stride=None):
    """Backward of maxpool2d_forward: each dout goes to the max of its window.

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
# Hidden tests (a batch of one, stride 3 with unused rows, rectangular images, 1x1 kernels,
# overlapping pooling windows) run when your notebook is graded.

# %%
checks.summary("conv_backward");
