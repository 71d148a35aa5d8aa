# %% [markdown]
# # Exercise 3: backward through a dense network
#
# **What you learn.** To derive a backward pass yourself: write one element of the forward
# pass, take its derivative by the chain rule, then recognise the sum you get as a whole-matrix
# operation on a batch. You do it for the three pieces of every classifier: a dense (fully
# connected) layer, ReLU, and softmax cross-entropy. Then your functions, plugged into `bplib`
# layers, train a network that reads handwritten digits.
#
# **Time:** about 80 minutes (about 45 of them for the derivations on paper; chapter 4 shows the method
# on dL/dW).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `dense_backward(dout, x, W)` | `(dx, dW, db)` for `out = x @ W + b` | 5 |
# | `relu_backward(dout, x)` | `dx` for `out = max(0, x)` | 3 |
# | `softmax_cross_entropy(logits, labels)` | `(loss, dlogits)` | 5 |
#
# **You derive:**
#
# - `dense_backward`: dL/dx and dL/db, which the book leaves to you (chapter 4 derives dL/dW
#   from one element; you vectorise that one too).
# - `relu_backward`: dL/dx, including which array decides where the gradient stops and what
#   happens at exactly 0.
# - `softmax_cross_entropy`: dL/dlogits, the main derivation of this notebook. The book does
#   not give it.
#
# **You may call:** numpy; the forward passes `bplib.layers.dense_forward`,
# `bplib.layers.relu_forward` and `bplib.losses.softmax`; and `bplib.gradcheck` (for example
# `numerical_gradient`) to test your own work. Everything else in bplib that computes these
# gradients is the course's reference: its functions of the same names, the layers'
# `backward`, and the checking code in `bplib.checks`. When your notebook is graded, your
# functions run again in a clean process where those are removed, so a function that calls
# them scores 0 on that test, with a status that says so. Returning numerical derivatives
# instead of your own gradient does not work either: the hidden tests include layers so large
# that it runs out of time.
#
# **Hints:** a failed check names the symptom (wrong shape, off by the batch size, wrong
# sign, ...). For more, call `hint("dense_backward")` (or the name of another function): each
# call gives the next level, first the idea, then the local rule, and only last the formula.
# Hints never cost points; the summary at the end counts them for your own record.
#
# Shapes: `N` examples in a batch, `D` features in, `M` features out, `K` classes.
# `dout` is dL/dout, the gradient arriving from the layer above; `dx` is dL/dx, and so on.
# Run the notebook from the top after a change; the last cell sums up what passes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.checks import hint
from bplib.layers import Dense, ReLU, Sequential
from bplib.gradcheck import check_layer, numerical_gradient

checks.start("dense_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a smaller training run

# %% [markdown]
# ## 1. Dense layer
#
# The forward pass, for a batch:
#
# | array | shape | what it is |
# |---|---|---|
# | `x` | (N, D) | the input: one row per example |
# | `W` | (D, M) | the weights: row `i` belongs to input feature `i` |
# | `b` | (M,) | the bias, added to every row |
# | `out`, `dout` | (N, M) | the output, and dL/dout, which your function receives |
# | `dx`, `dW`, `db` | (N, D), (D, M), (M,) | what it returns: each has the shape of its variable |
#
# One element of the output, written out:
#
# $$\text{out}[n, m] = \sum_{i=1}^{D} x[n, i]\, W[i, m] + b[m]$$
#
# **A worked example (a different layer, not graded).** A layer that scales each feature,
# $\text{out}[n, m] = x[n, m]\, g[m]$ with `g: (M,)`. The number $g[m]$ is used once in every row
# $n$, and only by outputs of column $m$. The chain rule adds up its uses:
#
# $$\frac{\partial L}{\partial g[m]} = \sum_{n} \frac{\partial L}{\partial \text{out}[n, m]}\,
#   \frac{\partial \text{out}[n, m]}{\partial g[m]} = \sum_{n} \text{dout}[n, m]\; x[n, m]$$
#
# One term per use. The sum over $n$ is also why the result has the shape `(M,)` of `g`.
#
# **Your derivation**, on paper, for the dense layer:
#
# 1. Which elements $\text{out}[n, m]$ depend on $W[i, j]$, and what is
#    $\partial\, \text{out}[n, m] / \partial W[i, j]$ for them? Write $\partial L / \partial W[i, j]$ as
#    a sum over $n$. Then find the matrix product of `x` and `dout` (transposed or not) whose
#    entry $(i, j)$ is that sum. When $D = M$, two such products have the shape (D, M): only the
#    element form tells which one is right.
# 2. The same for $x[n, i]$: which outputs use it, and with which coefficient? Write
#    $\partial L / \partial x[n, i]$ as a sum over $m$, recognise the product, check it is (N, D).
# 3. How many times is $b[m]$ used? Write $\partial L / \partial b[m]$.
# 4. A tiny case by hand, with $N = 2$ and $D = M = 1$: $x = [[1], [2]]$, $W = [[3]]$,
#    $\text{dout} = [[1], [-2]]$. Work out dx, dW and db from your element forms, then compare with
#    what your function prints in the cell after it.
#
# Then vectorise: no Python loop is needed.

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

# %%
# The tiny case of step 4: compute it by hand first.
try:
    dx, dW, db = dense_backward(np.array([[1.0], [-2.0]]), np.array([[1.0], [2.0]]), np.array([[3.0]]))
    print("dx =", dx.tolist(), " dW =", dW.tolist(), " db =", db.tolist())
except NotImplementedError:
    print("dense_backward is not written yet.")

# %% check dense_backward_visible

# %% check dense_backward_hidden

# %% [markdown]
# ## 2. ReLU
#
# The forward pass is element-wise: $\text{out}[i] = \max(0, x[i])$ for every element, whatever
# the shape of `x` (`dout` and `dx` have that same shape).
#
# **Your derivation:**
#
# 1. Which elements of `x` does $\text{out}[i]$ depend on? (So: is there a sum in the chain rule
#    this time?)
# 2. What is the slope of $\max(0, x)$ for $x < 0$, and for $x > 0$? At exactly 0 there is a kink;
#    this course, like bplib, takes the slope there to be 0 (the visible test has an input that is
#    exactly 0).
# 3. Which array tells where the gradient stops: the forward input `x`, or `dout`?
# 4. By hand: $x = [-1, 0, 2]$ and $\text{dout} = [5, 6, 7]$. What is dx?

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
# The classifier's loss takes raw scores `logits: (N, K)` and integer `labels: (N,)`, and
# returns the loss (a Python float) and dL/dlogits (N, K). Write $z$ for the logits and $y_n$ for
# the label of example $n$. Softmax turns each row of scores into probabilities, and the loss is
# the mean over the batch of minus the log-probability of the right class:
#
# $$p[n, k] = \frac{e^{z[n, k]}}{\sum_{j=1}^{K} e^{z[n, j]}}, \qquad
#   L = \frac{1}{N} \sum_{n=1}^{N} L_n, \qquad L_n = -\log p[n, y_n]$$
#
# **Stable forward pass.** Subtracting the same number $c$ from every logit of a row changes
# nothing: $e^{z - c}$ is $e^{z}$ times $e^{-c}$ in the numerator and in every term of the
# denominator, and that factor cancels. With $c$ the row's maximum, every exponent is at most 0,
# so `np.exp` cannot overflow even for logits of 1000 (a hidden test has such logits).
#
# **Your derivation** of dL/dlogits, on paper:
#
# 1. Use $\log(a / b) = \log a - \log b$ to write $L_n$ as two terms: one holds only $z[n, y_n]$,
#    the other holds every $z[n, j]$ of the row.
# 2. Differentiate each term with respect to $z[n, k]$. The first: what do you get for $k = y_n$,
#    and for $k \ne y_n$? The second: the chain rule through the log, then through the sum, of
#    which only one term holds $z[n, k]$. Which quantity that you already compute appears?
# 3. Does $L_n$ depend on the logits $z[n', k]$ of another example $n' \ne n$? What does the
#    $\frac{1}{N}$ of the mean do to each row?
# 4. By hand, with $N = 1$ and $K = 2$: for logits $[[0, 0]]$ and label 0, $p = [\tfrac12, \tfrac12]$.
#    What are $L$ and dL/dlogits? Then for logits $[[\ln 3, 0]]$ and label 1 (so
#    $p = [\tfrac34, \tfrac14]$)? Check the sign: raising the right class's logit must lower the loss.
# 5. Vectorise over the batch: one (N, K) array, no loop over $n$. Indexing with two arrays,
#    `a[np.arange(N), labels]`, picks one entry per row (row $n$, column $y_n$); you can read with
#    it and also assign or subtract through it.
#
# The cell after your function compares your hand result of step 4 with numerical derivatives of
# your own loss (once the loss is right).

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

# %%
# Step 4's second case: your loss, your dlogits, and numerical derivatives of your loss.
try:
    z4, y4 = np.array([[np.log(3.0), 0.0]]), np.array([1])
    loss4, d4 = softmax_cross_entropy(z4, y4)
    print(f"your loss {loss4:.4f} (log 4 = {np.log(4):.4f}), your dlogits {np.round(d4, 4).tolist()}")
    num4 = numerical_gradient(lambda z: softmax_cross_entropy(z, y4)[0], z4.copy())
    print(f"numerical derivatives of your loss: {np.round(num4, 4).tolist()}")
except NotImplementedError:
    print("softmax_cross_entropy is not written yet.")

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
# Hidden tests (a batch of one, square and one-column weight matrices, inputs at ReLU's kink,
# huge logits, large layers) run when your notebook is graded.

# %%
checks.summary("dense_backward");
