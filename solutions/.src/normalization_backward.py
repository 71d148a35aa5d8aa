# %% [markdown]
# # Exercise: backward through batch norm, layer norm and dropout
#
# **What you learn.** Batch norm couples the examples of a batch: every output of a column
# depends on every input of that column, through the batch's mean and variance. You derive its
# backward pass by following the three paths from an input to the loss (directly, through the
# mean, through the variance), and then the same for layer norm, which normalises each example
# over its own features, and for dropout. Then your functions, plugged into `bplib` layers, train
# a digit classifier with batch norm and dropout.
#
# **Time:** about 2 hours (about 70 minutes of them for the batch-norm derivation on paper; see
# the note at the end of this cell).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `batchnorm_backward(dout, cache)` | `(dx, dgamma, dbeta)` | 7 |
# | `layernorm_backward(dout, cache)` | `(dx, dgamma, dbeta)` | 5 |
# | `dropout_backward(dout, mask, p)` | `dx` | 3 |
#
# **You derive:**
#
# - `batchnorm_backward`: dL/dx in its compact form (one line of numpy, no loop), for a batch
#   `(N, D)` and for images `(N, C, H, W)`, and dL/dgamma, dL/dbeta. The book gives none of them.
# - `layernorm_backward`: the same for layer norm, for inputs of any number of axes.
# - `dropout_backward`: dL/dx of inverted dropout.
#
# **You may call:** numpy; the forward passes `bplib.layers.batchnorm_forward`,
# `layernorm_forward` and `dropout_forward` (your functions receive the caches they return);
# and `bplib.gradcheck` (for example `numerical_gradient`, `check_layer`) to test your own
# work. Everything else in bplib that computes these gradients is the course's reference: its
# functions of the same names, the `BatchNorm`, `LayerNorm` and `Dropout` layers' `backward`,
# and the checking code in `bplib.checks`. When your notebook is graded, your functions run
# again in a clean process where those are removed, so a function that calls them scores 0 on
# that test, with a status that says so. The hidden tests include large batches, so returning
# numerical derivatives instead of your own gradient runs out of time.
#
# **Hints:** a failed check names the symptom (a path through the mean or the variance
# missing, the wrong variance, gradients summed over the wrong axes, dropout not rescaled, ...).
# For more, call `hint("batchnorm_backward")` (or the name of another function): each call
# gives the next level, first the idea, then the local rule, and only last the formula. Hints
# never cost points; the summary at the end counts them for your own record.
#
# Notation: `dout` is dL/dout, the gradient arriving from the layer above; `dx` is dL/dx, and so
# on. Run the notebook from the top after a change; the last cell sums up what passes.
#
# *How the time was estimated:* reading, 15 minutes. Batch norm: the five nodes of the forward
# graph, their local derivatives (6, at about 4 minutes each), the two sums over the batch for
# dL/dvar and dL/dmu and adding up the three paths (about 20 minutes), simplifying to the compact
# form (15 minutes), the hand case and the images' axes (10 minutes): about 70 minutes. Layer
# norm, the same derivation along the other axis, 15 minutes; dropout, 5 minutes; fixing a first
# wrong attempt from the verdicts, about 15 minutes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.checks import hint
from bplib.gradcheck import check_gradients, check_layer
from bplib.layers import (BatchNorm, Dense, Dropout, LayerNorm, ReLU, Sequential,
                          batchnorm_forward, dropout_forward, layernorm_forward)

checks.start("normalization_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a smaller training run

# %% [markdown]
# ## 1. Batch norm: the forward pass as a graph
#
# Batch norm normalises each feature (column) `d` of a batch with the batch's own statistics,
# then scales and shifts it with two learned vectors:
#
# $$\mu_d = \frac{1}{m}\sum_{n} x[n, d], \qquad
#   \sigma^2_d = \frac{1}{m}\sum_{n} \left(x[n, d] - \mu_d\right)^2, \qquad
#   \hat x[n, d] = \frac{x[n, d] - \mu_d}{\sqrt{\sigma^2_d + \epsilon}}, \qquad
#   \text{out}[n, d] = \gamma_d\, \hat x[n, d] + \beta_d$$
#
# with $m = N$ values per feature. The variance is the *biased* one (it divides by $m$), as in
# `bplib.layers.batchnorm_forward` and every deep-learning library.
#
# | array | shape | what it is |
# |---|---|---|
# | `x`, `dout`, `dx` | (N, D) | the input, dL/dout, and dL/dx, which you return |
# | `gamma`, `beta`, `dgamma`, `dbeta` | (D,) | the scale and shift, and their gradients |
# | `cache["x_hat"]` | (N, D) | the normalised input $\hat x$ |
# | `cache["inv_std"]` | (D,) | $1/\sqrt{\sigma^2_d + \epsilon}$, one number per feature |
# | `cache["gamma"]`, `cache["mean"]`, `cache["var"]`, `cache["eps"]` | (D,), (D,), (D,), float | $\gamma$, $\mu$, $\sigma^2$, $\epsilon$ |
#
# Your function gets `dout` and the `cache` the forward pass returned; `x` itself is not in it
# (you do not need it: $x - \mu$ is $\hat x$ divided by `inv_std`).
#
# **A worked example (a different layer, not graded).** Centering alone, for one column:
# $c[n] = x[n] - \mu$ with $\mu = \frac{1}{m}\sum_k x[k]$. The input $x[n]$ reaches the loss
# directly through $c[n]$ (slope 1), and through $\mu$, which every $c[k]$ uses (slope
# $\frac{1}{m}$ into $\mu$, then $-1$ into each $c[k]$). The chain rule adds the two paths:
#
# $$\frac{\partial L}{\partial x[n]} = \frac{\partial L}{\partial c[n]}
#   - \frac{1}{m}\sum_{k} \frac{\partial L}{\partial c[k]}$$
#
# The second term, the path through the mean, is the same for every $n$; it makes the gradient
# sum to 0 over the column, as it must: shifting a whole column does not change $c$.
#
# **Your derivation**, on paper. Fix one feature $d$ and drop the index $d$: the columns do not
# interact, so everything below is for one column of $m$ numbers.
#
# 1. **gamma and beta.** Each $\gamma$ is used once per example. Write
#    $\partial L / \partial \beta$ and $\partial L / \partial \gamma$ as sums over $n$.
# 2. **The last node.** Write $g[n] = \partial L / \partial \hat x[n]$ in terms of dout and
#    $\gamma$.
# 3. **The graph.** Draw it: $x \to \mu$, $x \to \sigma^2$ (which also uses $\mu$),
#    $(x, \mu, \sigma^2) \to \hat x$. An input $x[n]$ reaches the loss by three paths: directly
#    through its own $\hat x[n]$, through $\mu$ (used by *every* $\hat x[k]$), and through
#    $\sigma^2$ (likewise).
# 4. **The local derivatives.** $\partial \hat x[k] / \partial \sigma^2$ (differentiate
#    $(\sigma^2 + \epsilon)^{-1/2}$), $\partial \sigma^2 / \partial x[n]$ (the biased
#    variance: the $\frac{1}{m}$ stays), $\partial \mu / \partial x[n]$, and
#    $\partial \hat x[k] / \partial \mu$. Does $\sigma^2$ depend on $\mu$ in a way that matters
#    here? (Use $\sum_n (x[n] - \mu) = 0$.)
# 5. **The sums.** $\partial L / \partial \sigma^2 = \sum_k g[k]\, \partial \hat x[k] /
#    \partial \sigma^2$; the same for $\mu$. Then add the three paths into
#    $\partial L / \partial x[n]$.
# 6. **The compact form.** Replace $x[n] - \mu$ by $\hat x[n]$ divided by `inv_std`. Your
#    result should come out as `inv_std` times $g[n]$ minus two corrections, each a mean over
#    the $m$ values of the column. Write it so that it needs no loop over $n$ or $d$.
# 7. **A tiny case by hand**, $N = 2$, $D = 1$: $x = [[1], [3]]$, $\gamma = 1$,
#    $\text{dout} = [[1], [0]]$ (take $\epsilon = 0$). What are $\hat x$, dgamma, dbeta, and dx?
#    Why is dx zero for *any* batch of two? (Look at $\hat x$ as a function of $x$.) The cell
#    after your function prints what your function computes for it.
#
# **Images.** For `x` of shape (N, C, H, W), batch norm has one $\mu$, $\sigma^2$, $\gamma$ and
# $\beta$ per *channel* `c` (axis 1), taken over every pixel of every example: $m = N H W$
# values per channel. `gamma`, `inv_std`, `dgamma` and `dbeta` have shape (C,). Your function
# must handle both shapes: the sums run over every axis except axis 1 (`axis=` takes a tuple),
# and a (C,) array broadcasts against (N, C, H, W) after a reshape to (1, C, 1, 1).

# %% solution
def batchnorm_backward(dout, cache):
    """Backward of bplib.layers.batchnorm_forward (training mode), the compact form.

    dout: (N, D) or (N, C, H, W), cache: the forward's dict  ->  dx: dout's shape, dgamma, dbeta: (D,) or (C,)
    """
    ### BEGIN SOLUTION
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    axes = (0,) + tuple(range(2, dout.ndim))      # every axis but the feature axis 1
    shape = (1, -1) + (1,) * (dout.ndim - 2)      # a (D,) array, broadcastable against x
    m = dout.size // dout.shape[1]                # values per feature: N, or N*H*W
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    g = dout * gamma.reshape(shape)               # dL/dx_hat
    g_mean = g.sum(axis=axes, keepdims=True) / m
    gx_mean = (g * x_hat).sum(axis=axes, keepdims=True) / m
    dx = inv_std.reshape(shape) * (g - g_mean - x_hat * gx_mean)
    return dx, dgamma, dbeta
    ### END SOLUTION

# %%
# The tiny case of step 7: work it out by hand first.
try:
    _, cache7 = batchnorm_forward(np.array([[1.0], [3.0]]), np.ones(1), np.zeros(1), eps=0.0)
    dx7, dgamma7, dbeta7 = batchnorm_backward(np.array([[1.0], [0.0]]), cache7)
    print("x_hat =", cache7["x_hat"].tolist(), " dx =", np.round(dx7, 6).tolist(),
          " dgamma =", np.round(dgamma7, 6).tolist(), " dbeta =", np.round(dbeta7, 6).tolist())
except NotImplementedError:
    print("batchnorm_backward is not written yet.")

# %% check batchnorm_backward_visible

# %% check batchnorm_backward_hidden

# %% [markdown]
# ## 2. Layer norm
#
# Layer norm normalises each *example* over its own features: the mean and variance are taken
# along the last axis, so they are per row, and nothing couples the examples of a batch. It
# works on any input `(..., D)`, such as a batch of sequences `(N, T, D)`:
#
# $$\hat x[n, d] = \frac{x[n, d] - \mu_n}{\sqrt{\sigma^2_n + \epsilon}}, \qquad
#   \mu_n = \frac{1}{D}\sum_{d} x[n, d], \qquad \text{out}[n, d] = \gamma_d\, \hat x[n, d] + \beta_d$$
#
# (with the biased $\sigma^2_n$ again). `gamma`, `beta`, `dgamma`, `dbeta` have shape (D,), one
# number per feature, shared by every example (and every time step). The cache holds
# `cache["x_hat"]` (x's shape), `cache["gamma"]` (D,) and `cache["inv_std"]`, of shape `(..., 1)`:
# one number per row, kept with a last axis of length 1 so that it broadcasts.
#
# **Your derivation:**
#
# 1. Which inputs does $\mu_n$ depend on, and which outputs use it? Compare with batch norm:
#    which axis do the paths through the mean and the variance run along now, and what is $m$?
# 2. Reuse your batch-norm derivation of one column: for one row it is the same algebra. Write
#    dL/dx for one row, then vectorise over every leading axis.
# 3. $\gamma_d$ is used by every example and every time step: over which axes do dgamma and
#    dbeta sum? (For `(N, T, D)` the answer is not "axis 0".)

# %% solution
def layernorm_backward(dout, cache):
    """Backward of bplib.layers.layernorm_forward: normalised over the last axis.

    dout: (..., D), cache: the forward's dict  ->  dx: (..., D), dgamma, dbeta: (D,)
    """
    ### BEGIN SOLUTION
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    lead = tuple(range(dout.ndim - 1))            # every axis but the last (the features)
    dbeta = dout.sum(axis=lead)
    dgamma = (dout * x_hat).sum(axis=lead)
    g = dout * gamma                              # dL/dx_hat
    g_mean = g.mean(axis=-1, keepdims=True)
    gx_mean = (g * x_hat).mean(axis=-1, keepdims=True)
    dx = inv_std * (g - g_mean - x_hat * gx_mean)
    return dx, dgamma, dbeta
    ### END SOLUTION

# %% check layernorm_backward_visible

# %% check layernorm_backward_hidden

# %% [markdown]
# ## 3. Dropout
#
# Inverted dropout, in training mode, zeroes each value with probability $p$ and scales the
# values it keeps by $\frac{1}{1 - p}$, so that the expected output is $x$ and evaluation needs no
# rescaling:
#
# $$\text{out}[i] = \frac{\text{mask}[i]}{1 - p}\, x[i], \qquad \text{mask}[i] = 1 \text{ with probability } 1 - p$$
#
# `mask` is the boolean array `dropout_forward` returned (True where the value was kept), of
# the shape of `x`; $p$ is the probability of *dropping* a value.
#
# **Your derivation:**
#
# 1. Does $\text{out}[i]$ depend on any $x[j]$ with $j \ne i$? Is the mask a function of $x$?
# 2. What is $\partial\, \text{out}[i] / \partial x[i]$ where the value was kept, and where it
#    was dropped?
# 3. By hand: mask $= [\text{True}, \text{False}, \text{True}]$, $p = \frac13$ and
#    $\text{dout} = [2, 2, 2]$. What is dx? (The visible test uses $p = 0.25$ and $p = 0.6$.)

# %% solution
def dropout_backward(dout, mask, p):
    """Backward of bplib.layers.dropout_forward (inverted dropout; p = the probability of dropping).

    dout, mask: the same shape (mask: bool, True where kept)  ->  dx: dout's shape
    """
    ### BEGIN SOLUTION
    keep = 1.0 - p
    return dout * mask / keep
    ### END SOLUTION

# %% check dropout_backward_visible

# %% check dropout_backward_hidden

# %% [markdown]
# ## 4. Your functions inside real layers
#
# `bplib.layers.BatchNorm`, `LayerNorm` and `Dropout` take a `backward_fn=`: the layer then
# calls *your* function in its backward pass. `check_layer` compares every gradient of a layer
# with numerical derivatives (central differences), independently of the tests above. Dropout
# draws a new mask at every forward pass, so it is checked with the mask held fixed (the same
# seed at every call).

# %%
if checks.passed("batchnorm_backward_visible", "layernorm_backward_visible", "dropout_backward_visible"):
    rng = np.random.default_rng(1)     # not check_layer's seed 0: its dout would be a function of x
    x = rng.standard_normal((6, 4)) * 2 + 1
    print(check_layer(BatchNorm(4, dtype=np.float64, backward_fn=batchnorm_backward), x))
    print(check_layer(BatchNorm(3, dtype=np.float64, backward_fn=batchnorm_backward),
                      rng.standard_normal((2, 3, 4, 4))))
    print(check_layer(LayerNorm(4, dtype=np.float64, backward_fn=layernorm_backward), x))
    dout = rng.standard_normal(x.shape)
    _, mask = dropout_forward(x, 0.3, np.random.default_rng(5))
    print(check_gradients(lambda: float(np.sum(dropout_forward(x, 0.3, np.random.default_rng(5))[0] * dout)),
                          {"dx": x}, {"dx": dropout_backward(dout, mask, 0.3)}, title="dropout, p=0.3, fixed mask"))
else:
    print("Make the three functions pass their visible tests first.")

# %% [markdown]
# ## 5. Train a digit classifier with batch norm and dropout
#
# A network 784 pixels -> 64 hidden units -> batch norm -> ReLU -> dropout -> 10 classes,
# trained with mini-batch SGD with momentum on a few thousand MNIST digits. The batch norm and
# dropout gradients come from your functions (the dense layers and the loss from bplib). For the
# accuracy the network is put in evaluation mode: batch norm then uses its running statistics
# and dropout lets everything through. The accuracy is measured on a validation split, digits
# held out of the training set.

# %%
def train_bn_mlp(n_train=4000, n_val=1000, epochs=3, batch_size=64, lr=0.05, seed=0):
    (x_all, y_all), _ = bplib.data.load_mnist()
    x_all = x_all[:n_train + n_val].reshape(n_train + n_val, -1).astype(np.float32) / 255
    x_train, y_train = x_all[:n_train], y_all[:n_train]
    x_val, y_val = x_all[n_train:], y_all[n_train:n_train + n_val]
    rng = np.random.default_rng(seed)
    model = Sequential(Dense(784, 64, rng=rng),
                       BatchNorm(64, backward_fn=batchnorm_backward),
                       ReLU(),
                       Dropout(0.2, rng=rng, backward_fn=dropout_backward),
                       Dense(64, 10, rng=rng))
    opt = bplib.optim.SGD(model, lr=lr, momentum=0.9)
    for epoch in range(epochs):
        model.train()
        losses = []
        for idx in bplib.data.batches(n_train, batch_size, rng):
            loss, dlogits = bplib.losses.softmax_cross_entropy(model.forward(x_train[idx]), y_train[idx])
            model.backward(dlogits)
            opt.step()
            losses.append(loss)
        model.eval()
        acc = (model.forward(x_val).argmax(axis=1) == y_val).mean()
        print(f"epoch {epoch + 1}: mean training loss {np.mean(losses):.3f}, validation accuracy {acc:.1%}")
    return acc

if checks.passed("batchnorm_backward_visible", "dropout_backward_visible"):
    accuracy = train_bn_mlp(n_train=600, n_val=300, epochs=1) if FAST else train_bn_mlp()
else:
    print("Make batchnorm_backward and dropout_backward pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (the smallest batches, one image, inputs far from 0, a large eps, sequences and
# four-axis inputs, p = 0 and p close to 1, large batches) run when your notebook is graded.

# %%
checks.summary("normalization_backward");
