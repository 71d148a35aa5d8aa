# %% [markdown]
# # Exercise: backprop ninja, every gradient of a network by hand
#
# **What you learn.** To run backpropagation yourself, one line at a time, through a whole
# network: a dense layer, batch norm, tanh, a second dense layer and the cross-entropy, written as
# twenty primitive tensor operations. You write the gradient of the loss with respect to every
# intermediate, in reverse order, each from the ones before it; a table compares each one with
# `bplib.Tensor`'s autograd, element by element. Then you fold the two long chains (the
# cross-entropy and batch norm) into one expression each, and train the network with your own
# gradients.
#
# **Time:** about 3 hours, the longest exercise of the course (see the note at the end of this
# cell).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `backward_by_hand(v, y)` | a dict: the gradient of every intermediate and parameter | 10 |
# | `cross_entropy_backward(logits, y)` | `dlogits`, in one expression | 3 |
# | `batchnorm_backward_fused(dh_bn, h_hat, gamma, inv_std)` | `dh_pre`, in one expression | 4 |
#
# **You derive:**
#
# - `backward_by_hand`: the local derivative of each of the twenty lines of the forward pass,
#   and how the gradient flows back through it: where a variable is used twice, where it was
#   broadcast, where a sum or a mean spreads it. The book gives the rule of each operation
#   (chapter 9) but not these gradients.
# - `cross_entropy_backward`: dL/dlogits in closed form, from your step-by-step gradients.
# - `batchnorm_backward_fused`: dL/dh_pre in closed form, from your step-by-step gradients.
#
# **You may call:** numpy; `bplib.Tensor` and its forward operations (the forward cell below
# uses them); `bplib.losses.softmax`; `checks.compare` and `bplib.gradcheck` to test your own
# work. Everything else in bplib that computes these gradients is the course's reference:
# `Tensor.backward` and the local rules behind it, `bplib.layers.batchnorm_backward`,
# `bplib.losses.softmax_cross_entropy`, the layers' `backward` and the checking code in
# `bplib.checks`. When your notebook is graded, your functions run again in a clean process where
# those are removed, so a function that calls them scores 0 on that test, with a status that says
# so. The hidden tests include a large batch.
#
# **Hints:** a failed check names the first wrong gradient and its symptom (a factor 1/N
# missing, a broadcast not summed back, a path missing, a sign, ...). For more, call
# `hint("backward_by_hand")` (or the name of another function): each call gives the next level,
# first the idea, then the local rule, and only last the formula. Hints never cost points; the
# summary at the end counts them for your own record.
#
# Notation: `dW1` is dL/dW1, `dh_pre` is dL/dh_pre, and so on: `d` and the variable's name. Run
# the notebook from the top after a change; the last cell sums up what passes.
#
# *How the time was estimated:* reading and the forward pass, 20 minutes. The 25 gradients of
# part 1 at about 4 minutes each (the local derivative on paper, the shape, the line of code,
# the table): about 100 minutes, more for the four with two paths or a broadcast. The fused
# cross-entropy, 15 minutes; the fused batch norm (adding up the three paths and simplifying),
# 25 minutes; fixing first wrong attempts from the table, about 20 minutes.

# %% locked
import os

import numpy as np

import bplib
from bplib import Tensor, checks
from bplib.checks import hint
from bplib.losses import softmax

checks.start("backprop_ninja")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a shorter training run

# %% [markdown]
# ## 1. The network, in primitive steps
#
# A batch of `N` examples with `D` features each goes through a dense layer to `H` hidden units,
# batch norm, tanh, and a dense layer to `K` class scores; the loss is the mean cross-entropy.
# Batch norm and the cross-entropy are written out as the small steps they are made of, so that
# every step is one operation whose local derivative you know. The forward pass below builds it
# with `bplib.Tensor`, so that autograd can give the gradient of every intermediate to compare
# with yours.
#
# | name | shape | name | shape |
# |---|---|---|---|
# | `x` | (N, D) | `W1`, `b1` | (D, H), (H,) |
# | `h_pre`, `diff`, `diff2`, `h_hat`, `h_bn`, `h` | (N, H) | `gamma`, `beta` | (H,) |
# | `mu`, `var`, `var_eps`, `inv_std` | (1, H) | `W2`, `b2` | (H, K), (K,) |
# | `logits`, `shifted`, `counts`, `probs`, `logprobs` | (N, K) | `logit_max`, `counts_sum`, `counts_sum_inv` | (N, 1) |
# | `picked` | (N,) | `y` | (N,) integer labels |
#
# The variance is the biased one (it divides by N), as in `bplib.layers.batchnorm_forward`.

# %% locked
def forward(x, p, y, eps=1e-5):
    """name -> Tensor for x, the parameters p (a dict of arrays), every intermediate and the loss."""
    t = {"x": Tensor(x)}
    t.update({k: Tensor(p[k]) for k in ("W1", "b1", "gamma", "beta", "W2", "b2")})
    N = x.shape[0]
    t["h_pre"] = t["x"] @ t["W1"] + t["b1"]                          # (N, H)
    t["mu"] = t["h_pre"].mean(axis=0, keepdims=True)                  # (1, H)
    t["diff"] = t["h_pre"] - t["mu"]                                  # (N, H)
    t["diff2"] = t["diff"] ** 2                                       # (N, H)
    t["var"] = t["diff2"].mean(axis=0, keepdims=True)                 # (1, H), biased: divides by N
    t["var_eps"] = t["var"] + eps                                     # (1, H)
    t["inv_std"] = t["var_eps"] ** -0.5                               # (1, H)
    t["h_hat"] = t["diff"] * t["inv_std"]                             # (N, H)
    t["h_bn"] = t["gamma"] * t["h_hat"] + t["beta"]                   # (N, H)
    t["h"] = t["h_bn"].tanh()                                         # (N, H)
    t["logits"] = t["h"] @ t["W2"] + t["b2"]                          # (N, K)
    t["logit_max"] = t["logits"].max(axis=1, keepdims=True)           # (N, 1)
    t["shifted"] = t["logits"] - t["logit_max"]                       # (N, K)
    t["counts"] = t["shifted"].exp()                                  # (N, K)
    t["counts_sum"] = t["counts"].sum(axis=1, keepdims=True)          # (N, 1)
    t["counts_sum_inv"] = t["counts_sum"] ** -1                       # (N, 1)
    t["probs"] = t["counts"] * t["counts_sum_inv"]                    # (N, K)
    t["logprobs"] = t["probs"].log()                                  # (N, K)
    t["picked"] = t["logprobs"][np.arange(N), y]                      # (N,)
    t["loss"] = -t["picked"].mean()                                   # ()
    return t


def values(t):
    """The forward's numbers: name -> numpy array (what backward_by_hand receives)."""
    return {k: v.data for k, v in t.items()}


def init_params(D, H, K, rng):
    return dict(W1=rng.standard_normal((D, H)) / np.sqrt(D), b1=np.zeros(H), gamma=np.ones(H),
                beta=np.zeros(H), W2=rng.standard_normal((H, K)) / np.sqrt(H) * 0.5, b2=np.zeros(K))


rng = np.random.default_rng(0)
N, D, H, K = 8, 4, 6, 3
x_demo, y_demo = rng.standard_normal((N, D)), rng.integers(0, K, N)
p_demo = init_params(D, H, K, rng)
t_demo = forward(x_demo, p_demo, y_demo)
t_demo["loss"].backward()           # autograd: every t_demo[name].grad is now dL/dname
print(f"loss {t_demo['loss'].item():.4f} (log K = {np.log(K):.4f}: the network has not learned yet)")

# %% [markdown]
# ## 2. Back through the cross-entropy
#
# Work from the bottom of the forward pass up. For a line `out = f(a, b)` the chain rule gives
# each input its share: $\frac{\partial L}{\partial a} \mathrel{+}= \frac{\partial\,
# \text{out}}{\partial a}\, \frac{\partial L}{\partial\, \text{out}}$, element by element. Three
# patterns come back again and again:
#
# - **A variable used twice** (by two later lines) gets two contributions; add them.
# - **A broadcast variable** (a `(N, 1)` column used in every entry of its row, a `(1, H)` row
#   used by every example, a bias) gets the *sum* of the gradients of all its uses, over the
#   axis it was broadcast along, so that its gradient has its own shape.
# - **A sum or a mean** copies the gradient back to every term it added up (times $\frac1N$ for
#   a mean).
#
# **A worked example (an operation the network does not use).** Take `q = a ** c` with `a` of
# shape (N, K), positive, and a row of exponents `c` of shape (1, K). Element by element
# $q[n, k] = a[n, k]^{c[k]}$, and the local derivative is
# $\partial q[n, k] / \partial c[k] = q[n, k] \ln a[n, k]$. The exponent $c[k]$ is used by the N
# entries of its column, so it collects one contribution from each:
# $\partial L/\partial c[k] = \sum_n \partial L/\partial q[n, k]\; q[n, k] \ln a[n, k]$, of shape
# (1, K) like `c` (in numpy, a sum over axis 0 with `keepdims=True`).
#
# **Your derivation**, on paper, for the cross-entropy's lines (from the last one up):
#
# 1. `loss = -picked.mean()`: what is $\partial L / \partial\, \text{picked}[n]$? (How many
#    numbers does the mean average?)
# 2. `picked = logprobs[np.arange(N), y]`: which entries of `logprobs` were read, and what do the
#    others get?
# 3. `logprobs = probs.log()`, `probs = counts * counts_sum_inv` (a product in which one factor is broadcast),
#    `counts_sum_inv = counts_sum ** -1`, `counts_sum = counts.sum(axis=1, keepdims=True)`,
#    `counts = shifted.exp()`: one local derivative each. `counts` is used twice: by `probs`
#    and by `counts_sum`.
# 4. `shifted = logits - logit_max`, `logit_max = logits.max(axis=1, keepdims=True)`: `logits`
#    is used twice too. The max passes its gradient to the entry that was the row's maximum.
#    Your `dlogit_max` should come out as 0 up to rounding (about 1e-17): why must it? (Shifting a
#    row of logits by a constant does not change its probabilities.)
# 5. **A tiny case by hand**: $N = 1$, $K = 2$, logits $[[0, 0]]$, label 0. Then probs $= [[\tfrac12,
#    \tfrac12]]$ and counts_sum $= [[2]]$. What are dlogprobs, dprobs, dcounts_sum_inv and
#    dlogits? The cell after your function prints them.
#
# ## 3. Back through the second layer, tanh and batch norm
#
# 1. `logits = h @ W2 + b2`: the dense layer's three gradients (chapter 4's rule: write one
#    element, then recognise the matrix product). `b2` is added to every row.
# 2. `h = h_bn.tanh()`: the slope of tanh, written with its output `h`.
# 3. `h_bn = gamma * h_hat + beta`: `gamma` and `beta` are `(H,)`, used by every example.
# 4. `h_hat = diff * inv_std` (`inv_std` is a (1, H) row used by every example, like `c` above),
#    `inv_std = var_eps ** -0.5`, `var_eps = var + eps`,
#    `var = diff2.mean(axis=0, keepdims=True)`, `diff2 = diff ** 2`. `diff` is used twice: by
#    `h_hat` and by `diff2`.
# 5. `diff = h_pre - mu`, `mu = h_pre.mean(axis=0, keepdims=True)`: `h_pre` is used twice.
# 6. `h_pre = x @ W1 + b1`: the dense rule once more (`dx` is not asked for: x is data).
#
# In the table the first wrong row is marked: fix it first. Every row after it is computed from
# it, so a later row may be wrong only because it inherits the error.

# %% solution
def backward_by_hand(v, y):
    """The gradient of the loss with respect to every intermediate and parameter of forward(), by hand.

    v: name -> array (x, the parameters, every intermediate of forward), y: (N,) integer labels
    ->  dict "d<name>" -> array of <name>'s shape, for every name of the table below, in its order
    """
    N = len(y)
    x, W1, gamma, W2 = v["x"], v["W1"], v["gamma"], v["W2"]
    diff, var_eps, inv_std, h_hat, h = v["diff"], v["var_eps"], v["inv_std"], v["h_hat"], v["h"]
    logits, logit_max, counts, counts_sum = v["logits"], v["logit_max"], v["counts"], v["counts_sum"]
    counts_sum_inv, probs = v["counts_sum_inv"], v["probs"]
    g = {}
    # Fill g in this order, each gradient from the ones above it (g["dpicked"] = ..., and so on):
    #   gradient               shape                the forward line(s) that use its variable
    #   dpicked                (N,)                 loss = -picked.mean()
    #   dlogprobs              (N, K)               picked = logprobs[np.arange(N), y]
    #   dprobs                 (N, K)               logprobs = probs.log()
    #   dcounts_sum_inv        (N, 1)               probs = counts * counts_sum_inv
    #   dcounts_sum            (N, 1)               counts_sum_inv = counts_sum ** -1
    #   dcounts                (N, K)               probs = counts * counts_sum_inv;
    #                                               counts_sum = counts.sum(axis=1, keepdims=True)
    #   dshifted               (N, K)               counts = shifted.exp()
    #   dlogit_max             (N, 1)               shifted = logits - logit_max
    #   dlogits                (N, K)               shifted = logits - logit_max;
    #                                               logit_max = logits.max(axis=1, keepdims=True)
    #   dh, dW2, db2           (N, H), (H, K), (K,) logits = h @ W2 + b2
    #   dh_bn                  (N, H)               h = h_bn.tanh()
    #   dgamma, dbeta, dh_hat  (H,), (H,), (N, H)   h_bn = gamma * h_hat + beta
    #   dinv_std               (1, H)               h_hat = diff * inv_std
    #   dvar_eps               (1, H)               inv_std = var_eps ** -0.5
    #   dvar                   (1, H)               var_eps = var + eps
    #   ddiff2                 (N, H)               var = diff2.mean(axis=0, keepdims=True)
    #   ddiff                  (N, H)               h_hat = diff * inv_std;  diff2 = diff ** 2
    #   dmu                    (1, H)               diff = h_pre - mu
    #   dh_pre                 (N, H)               diff = h_pre - mu;  mu = h_pre.mean(axis=0, keepdims=True)
    #   dW1, db1               (D, H), (H,)         h_pre = x @ W1 + b1
    ### BEGIN SOLUTION
    g["dpicked"] = -np.ones(N) / N
    g["dlogprobs"] = np.zeros_like(probs)
    g["dlogprobs"][np.arange(N), y] = g["dpicked"]
    g["dprobs"] = g["dlogprobs"] / probs
    g["dcounts_sum_inv"] = (counts * g["dprobs"]).sum(axis=1, keepdims=True)
    g["dcounts_sum"] = -counts_sum ** -2 * g["dcounts_sum_inv"]
    g["dcounts"] = counts_sum_inv * g["dprobs"] + g["dcounts_sum"]
    g["dshifted"] = counts * g["dcounts"]
    g["dlogit_max"] = -g["dshifted"].sum(axis=1, keepdims=True)
    at_max = logits == logit_max
    g["dlogits"] = g["dshifted"] + at_max / at_max.sum(axis=1, keepdims=True) * g["dlogit_max"]
    g["dh"] = g["dlogits"] @ W2.T
    g["dW2"] = h.T @ g["dlogits"]
    g["db2"] = g["dlogits"].sum(axis=0)
    g["dh_bn"] = (1 - h ** 2) * g["dh"]
    g["dgamma"] = (h_hat * g["dh_bn"]).sum(axis=0)
    g["dbeta"] = g["dh_bn"].sum(axis=0)
    g["dh_hat"] = gamma * g["dh_bn"]
    g["dinv_std"] = (diff * g["dh_hat"]).sum(axis=0, keepdims=True)
    g["dvar_eps"] = -0.5 * var_eps ** -1.5 * g["dinv_std"]
    g["dvar"] = g["dvar_eps"]
    g["ddiff2"] = np.ones_like(diff) / N * g["dvar"]
    g["ddiff"] = inv_std * g["dh_hat"] + 2 * diff * g["ddiff2"]
    g["dmu"] = -g["ddiff"].sum(axis=0, keepdims=True)
    g["dh_pre"] = g["ddiff"] + g["dmu"] / N
    g["dW1"] = x.T @ g["dh_pre"]
    g["db1"] = g["dh_pre"].sum(axis=0)
    ### END SOLUTION
    return g

# %%
# Your gradients against autograd, one row per gradient (the first wrong one is marked).
try:
    grads_demo = backward_by_hand(values(t_demo), y_demo)
    checks.compare(grads_demo, t_demo)
except NotImplementedError:
    print("backward_by_hand is not written yet.")

# %%
# The tiny case of step 5 of section 2: work it out by hand first.
try:
    t5 = forward(np.zeros((1, 1)), dict(W1=np.zeros((1, 1)), b1=np.zeros(1), gamma=np.ones(1), beta=np.zeros(1),
                                        W2=np.zeros((1, 2)), b2=np.zeros(2)), np.array([0]))
    g5 = backward_by_hand(values(t5), np.array([0]))
    for name in ("dlogprobs", "dprobs", "dcounts_sum_inv", "dlogits"):
        print(f"{name} = {np.round(g5[name], 6).tolist() if name in g5 else 'not computed yet'}")
except NotImplementedError:
    print("backward_by_hand is not written yet.")

# %% check backward_by_hand_visible

# %% check backward_by_hand_hidden

# %% [markdown]
# ## 4. The cross-entropy in one expression
#
# Your gradients from `dlogprobs` to `dlogits` are nine lines, and most of what they compute
# cancels. Fold them into one expression of the logits and the labels.
#
# **Your derivation:**
#
# 1. Write one example's loss $L_n = -\log p[n, y_n]$ with
#    $p[n, k] = e^{z[n, k]} / \sum_j e^{z[n, j]}$ as two terms, using $\log(a/b) = \log a - \log b$.
# 2. Differentiate each term with respect to $z[n, k]$, for $k = y_n$ and for $k \ne y_n$.
#    Which quantity you already compute appears?
# 3. The mean over the batch: what does it do to every row?
# 4. Check against your tiny case of section 2, and against the table: the cell after your
#    function compares your expression with your `dlogits` of part 1 and with autograd.
#
# Compute the probabilities stably (`bplib.losses.softmax` subtracts each row's maximum): a hidden
# test has logits around 1000.

# %% solution
def cross_entropy_backward(logits, y):
    """dL/dlogits of the mean cross-entropy of softmax(logits), in one expression.

    logits: (N, K), y: (N,) integer labels  ->  dlogits: (N, K)
    """
    N = len(y)
    ### BEGIN SOLUTION
    return (softmax(logits) - np.eye(logits.shape[1])[y]) / N
    ### END SOLUTION

# %%
try:
    d_fused = cross_entropy_backward(t_demo["logits"].data, y_demo)
    print(f"max |fused - autograd|  = {np.abs(d_fused - t_demo['logits'].grad).max():.1e}")
    print(f"max |fused - your part 1| = {np.abs(d_fused - grads_demo['dlogits']).max():.1e}")
except (NotImplementedError, NameError, KeyError):
    print("cross_entropy_backward (or backward_by_hand's dlogits) is not written yet.")

# %% check cross_entropy_backward_visible

# %% check cross_entropy_backward_hidden

# %% [markdown]
# ## 5. Batch norm in one expression
#
# From `dh_bn` to `dh_pre` your gradients go through eight lines. Fold them into one expression of
# `dh_bn`, `h_hat`, `gamma` and `inv_std` (the variable `diff` is `h_hat / inv_std`).
#
# **Your derivation:**
#
# 1. Write $g = \partial L/\partial \hat h$ from `dh_bn` and `gamma`.
# 2. `h_pre[n, j]` reaches the loss by three paths: directly through `diff[n, j]`, through the
#    mean `mu[j]` (which every `diff[k, j]` of its column uses), and through the variance
#    `var[j]`. Write each path's contribution from your part 1 lines.
# 3. Replace `diff` by `h_hat / inv_std` everywhere and collect the terms: `inv_std` times `g`
#    minus two corrections, each a mean over the batch (axis 0).
# 4. Why does the sum of `dh_pre` over the batch come out 0 for every unit? (Shift a whole column
#    of h_pre: does the loss change?)

# %% solution
def batchnorm_backward_fused(dh_bn, h_hat, gamma, inv_std):
    """dL/dh_pre of the batch norm of forward(), in one expression.

    dh_bn, h_hat: (N, H), gamma: (H,), inv_std: (1, H)  ->  dh_pre: (N, H)
    """
    ### BEGIN SOLUTION
    g = dh_bn * gamma
    return inv_std * (g - g.mean(axis=0, keepdims=True) - h_hat * (g * h_hat).mean(axis=0, keepdims=True))
    ### END SOLUTION

# %%
try:
    dh_pre_fused = batchnorm_backward_fused(t_demo["h_bn"].grad, t_demo["h_hat"].data, p_demo["gamma"],
                                            t_demo["inv_std"].data)
    print(f"max |fused - autograd|  = {np.abs(dh_pre_fused - t_demo['h_pre'].grad).max():.1e}")
    print(f"max |fused - your part 1| = {np.abs(dh_pre_fused - grads_demo['dh_pre']).max():.1e}")
except (NotImplementedError, NameError, KeyError):
    print("batchnorm_backward_fused (or backward_by_hand's dh_pre) is not written yet.")

# %% check batchnorm_backward_fused_visible

# %% check batchnorm_backward_fused_hidden

# %% [markdown]
# ## 6. Train the network with your gradients
#
# Three classes of points in the plane, arranged as three interleaved spirals (made here from a
# fixed seed: no download), split into a training and a validation set. Full-batch gradient
# descent, $W \leftarrow W - \alpha\, \partial L/\partial W$ for every parameter, with the
# parameter gradients of your `backward_by_hand`. At every step your two fused forms are compared
# with it (the largest difference is printed at the end). The accuracy is measured on the
# validation points, with batch norm using the validation batch's own statistics (this small
# network keeps no running averages).

# %%
def spirals(n_per_class, rng, noise=0.2):
    t = np.linspace(0.0, 1.0, n_per_class)
    xs, ys = [], []
    for k in range(3):
        angle = 4.0 * t + k * 2 * np.pi / 3 + rng.standard_normal(n_per_class) * noise
        xs.append(np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1))
        ys.append(np.full(n_per_class, k))
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]


def train(steps=400, lr=0.5, hidden=32, seed=0):
    rng = np.random.default_rng(seed)
    x, y = spirals(200, rng)
    x_train, y_train, x_val, y_val = x[:450], y[:450], x[450:], y[450:]
    p = init_params(2, hidden, 3, rng)
    losses, worst = [], 0.0
    for step in range(steps):
        t = forward(x_train, p, y_train)
        v = values(t)
        g = backward_by_hand(v, y_train)
        worst = max(worst, np.abs(cross_entropy_backward(v["logits"], y_train) - g["dlogits"]).max(),
                    np.abs(batchnorm_backward_fused(g["dh_bn"], v["h_hat"], p["gamma"], v["inv_std"])
                           - g["dh_pre"]).max())
        for k in p:
            p[k] = p[k] - lr * g["d" + k]
        losses.append(t["loss"].item())
    acc = (forward(x_val, p, y_val)["logits"].data.argmax(axis=1) == y_val).mean()
    print(f"training loss {losses[0]:.3f} -> {losses[-1]:.3f} in {steps} steps; validation accuracy {acc:.1%}; "
          f"largest difference fused - step by step: {worst:.1e}")
    return losses, acc


if checks.passed("backward_by_hand_visible", "cross_entropy_backward_visible",
                 "batchnorm_backward_fused_visible"):
    import matplotlib.pyplot as plt
    curve, accuracy = train(steps=60) if FAST else train()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(curve)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Full-batch gradient descent with your gradients")
    plt.show()
else:
    print("Make the three functions pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (the smallest batch of two, one hidden unit, more classes than examples, inputs far
# from 0, a large eps, huge and tied logits, large batches) run when your notebook is graded.

# %%
checks.summary("backprop_ninja");
