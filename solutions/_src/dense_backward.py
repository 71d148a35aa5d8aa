# %% [markdown]
# # Exercise 3: backward through a dense network
#
# **What you learn.** The backward pass of the three pieces of every classifier, a dense
# (fully connected) layer, ReLU, and softmax cross-entropy, written as whole-matrix operations
# on a batch. Then your functions, plugged into `bplib` layers, train a network that reads
# handwritten digits.
#
# **Time:** about 60 minutes.
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `dense_backward(dout, x, W)` | `(dx, dW, db)` for `out = x @ W + b` | 5 |
# | `relu_backward(dout, x)` | `dx` for `out = max(0, x)` | 3 |
# | `softmax_cross_entropy(logits, labels)` | `(loss, dlogits)` | 5 |
#
# Shapes: `N` examples in a batch, `D` features in, `M` features out, `K` classes.
# `dout` is dL/dout, the gradient arriving from the layer above; `dx` is dL/dx, and so on.
# Run the notebook from the top after a change; the last cell sums up what passes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.layers import Dense, ReLU, Sequential
from bplib.gradcheck import check_layer

checks.start("dense_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a smaller training run

# %% [markdown]
# ## 1. Dense layer
#
# Forward: `out = x @ W + b` with `x: (N, D)`, `W: (D, M)`, `b: (M,)`, `out: (N, M)`.
# Each gradient is `dout` multiplied by the *other* factor, arranged so the shapes fit, and
# `b`, which is added to every row, collects the gradient of every row:
#
# $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial \text{out}}\,W^\top,\qquad
#   \frac{\partial L}{\partial W} = x^\top \frac{\partial L}{\partial \text{out}},\qquad
#   \frac{\partial L}{\partial b} = \sum_{n=1}^{N} \frac{\partial L}{\partial \text{out}_n}$$
#
# A quick sanity test: every gradient has exactly the shape of the variable it belongs to.

# %% solution
def dense_backward(dout, x, W):
    """Backward of out = x @ W + b.

    dout: (N, M), x: (N, D), W: (D, M)  ->  dx: (N, D), dW: (D, M), db: (M,)
    """
    ### BEGIN SOLUTION
    dx = dout @ W.T
    dW = x.T @ dout
    db = dout.sum(axis=0)
    return dx, dW, db
    ### END SOLUTION

# %% check dense_backward_visible

# %% check dense_backward_hidden

# %% [markdown]
# ## 2. ReLU
#
# `out = max(0, x)` elementwise. Its local derivative is 1 where `x > 0` and 0 elsewhere
# (at exactly 0 we use 0, as `bplib` does), so the gradient passes through a mask:
#
# $$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial \text{out}} \odot \mathbb{1}[x > 0]$$

# %% solution
def relu_backward(dout, x):
    """Backward of out = max(0, x).  dout, x: any shape (the same)  ->  dx: same shape."""
    ### BEGIN SOLUTION
    return dout * (x > 0)
    ### END SOLUTION

# %% check relu_backward_visible

# %% check relu_backward_hidden

# %% [markdown]
# ## 3. Softmax cross-entropy
#
# The classifier's loss takes raw scores `logits: (N, K)` and integer `labels: (N,)`.
# With `p = softmax(logits)` row by row, the loss is the mean of `-log p[n, labels[n]]`,
# and its gradient is famously simple, with `Y` the one-hot matrix of the labels:
#
# $$L = -\frac{1}{N}\sum_{n} \log p_{n, y_n}, \qquad
#   \frac{\partial L}{\partial \text{logits}} = \frac{1}{N}\,(p - Y)$$
#
# Subtract each row's maximum before `np.exp`: softmax does not change, and `exp` of large
# logits no longer overflows. Return the loss as a Python float.

# %% solution
def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer labels.

    logits: (N, K), labels: (N,) ints in [0, K)  ->  loss: float, dlogits: (N, K)
    """
    ### BEGIN SOLUTION
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    loss = -np.log(p[np.arange(N), labels]).mean()
    dlogits = p.copy()
    dlogits[np.arange(N), labels] -= 1
    return float(loss), dlogits / N
    ### END SOLUTION

# %% check softmax_cross_entropy_visible

# %% check softmax_cross_entropy_hidden

# %% [markdown]
# ## 4. Your functions inside real layers
#
# `bplib.layers.Dense` and `ReLU` take a `backward_fn=`: the layer then calls *your*
# function in its backward pass. `check_layer` compares every gradient of the layer with
# numerical derivatives (central differences), independently of the tests above.

# %%
if checks.passed("dense_backward_visible", "relu_backward_visible"):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 5))
    print(check_layer(Dense(5, 3, rng=rng, dtype=np.float64, backward_fn=dense_backward), x))
    print(check_layer(ReLU(backward_fn=relu_backward), x))
else:
    print("Make dense_backward and relu_backward pass their visible tests first.")

# %% [markdown]
# ## 5. Train a digit classifier with your backward pass
#
# A two-layer network, 784 pixels -> 64 hidden units -> 10 classes, trained with mini-batch
# SGD with momentum on a few thousand MNIST digits. Every gradient comes from your three
# functions. It takes a few seconds and should reach about 90% accuracy on digits it has
# never seen.

# %%
def train_mlp(n_train=4000, n_test=1000, epochs=3, batch_size=64, lr=0.05, seed=0):
    (x_train, y_train), (x_test, y_test) = bplib.data.load_mnist()
    x_train = x_train[:n_train].reshape(n_train, -1).astype(np.float32) / 255
    x_test = x_test[:n_test].reshape(n_test, -1).astype(np.float32) / 255
    y_train, y_test = y_train[:n_train], y_test[:n_test]
    rng = np.random.default_rng(seed)
    model = Sequential(Dense(784, 64, rng=rng, backward_fn=dense_backward),
                       ReLU(backward_fn=relu_backward),
                       Dense(64, 10, rng=rng, backward_fn=dense_backward))
    opt = bplib.optim.SGD(model, lr=lr, momentum=0.9)
    for epoch in range(epochs):
        losses = []
        for idx in bplib.data.batches(n_train, batch_size, rng):
            loss, dlogits = softmax_cross_entropy(model.forward(x_train[idx]), y_train[idx])
            model.backward(dlogits)
            opt.step()
            losses.append(loss)
        acc = (model.forward(x_test).argmax(axis=1) == y_test).mean()
        print(f"epoch {epoch + 1}: mean training loss {np.mean(losses):.3f}, test accuracy {acc:.1%}")
    return acc

if checks.passed("dense_backward_visible", "relu_backward_visible", "softmax_cross_entropy_visible"):
    accuracy = train_mlp(n_train=600, n_test=300, epochs=1) if FAST else train_mlp()
else:
    print("Make the three functions pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (a batch of one, square and one-column weight matrices, huge logits) run when
# your notebook is graded.

# %%
checks.summary("dense_backward");
