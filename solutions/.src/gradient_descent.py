# %% [markdown]
# # Exercise 2: gradient descent
#
# **What you learn.** What a gradient is *for*: stepping downhill. You write the update rule,
# see what the learning rate does (too small: slow; too large: divergence), turn the picture of a
# heavy ball into the momentum update and watch it cross a long narrow valley, and fit a linear
# model with gradients you derive by hand.
#
# **Time:** about 55 minutes (the last paragraph of this cell says how that was estimated).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `sgd_step(w, dw, lr)` | the updated `w` | 2 |
# | `momentum_step(w, dw, v, lr, mu)` | `(w_new, v_new)` | 3 |
# | `linear_loss_grad(X, y, w, b)` | `(loss, dw, db)` of the mean squared error | 5 |
# | `fit_linear(X, y, lr, steps)` | `(w, b)` after `steps` updates | 3 |
#
# **You derive:**
# - `sgd_step`: nothing new: the step downhill of chapter 3, put into code;
# - `momentum_step`: the update rule itself, from the picture of a heavy ball with friction and a
#   table you fill in by hand (chapter 3 shows what momentum does, not its rule);
# - `linear_loss_grad`: dL/dw and dL/db of the mean squared error over a batch of N examples, from
#   one element by the chain rule (not given in the book: chapter 1 follows a single example through
#   bplib's own functions);
# - `fit_linear`: nothing new: the training loop around your two functions.
#
# **You may call:** numpy, and inside `fit_linear` your own `sgd_step` and `linear_loss_grad`.
# Not `bplib.optim` (`SGD`, `Adam`, ... and their `step`), `bplib.losses.mse` (it returns the
# gradient of the mean squared error) or bplib's layers: they are the course's reference answers.
# When your notebook is graded, your functions run again in a clean process where those are
# removed; a function that reaches them scores 0 for that test, with a status that says so.
#
# **Hints:** a failed check names what is wrong (the symptom), never the answer.
# `hint("momentum_step")` (or any function's name) gives the next hint each time you call it:
# first the idea, then the local rule, and last the formula. Hints never cost points; the summary
# only counts them for your own record.
#
# Run the notebook from the top after a change; the last cell sums up what passes.
#
# *How the time was estimated:* the author, who wrote the checks, worked the notebook in a kernel as a
# learner would (three wrong first attempts: momentum in the other convention, the factor of the
# square missing, b never updated; two hints) in a few minutes, which says nothing about a newcomer.
# So the estimate counts steps: about 14 short steps (the step by hand, two rows of the momentum
# table, the five steps of the gradient element by element, the tiny case by hand, the vectorised
# code, the loop) at about 2.5 minutes each, plus 15 minutes of reading and running the experiments
# and 5 of fixing a first wrong attempt.

# %% locked
import numpy as np
import matplotlib.pyplot as plt

from bplib import checks
from bplib.checks import hint

checks.start("gradient_descent")

# %% [markdown]
# ## 1. The update rule
#
# The gradient dL/dw points uphill: in the direction in which the loss grows fastest. So we take a
# small step the other way. The learning rate `lr` (often written alpha) turns the gradient into a
# step: a larger `lr`, a longer step. Every element of `w` moves on its own, by its own element of
# the gradient.
#
# By hand first: for `w = [1, 2]`, `dw = [0.5, -1]` and `lr = 0.1` (the first visible test), what is
# the new `w`? Which element goes up, and why?
#
# Return a new array; do not modify `w` in place.

# %% solution
def sgd_step(w, dw, lr):
    """One gradient-descent step.  w, dw: arrays of one shape, lr: float  ->  w_new (same shape)."""
    ### BEGIN SOLUTION
    return w - lr * dw
    ### END SOLUTION

# %% check sgd_step_visible

# %% check sgd_step_hidden

# %% [markdown]
# ## 2. The learning rate
#
# On the bowl `L(w) = w1^2 + 10 w2^2` (gradient `(2 w1, 20 w2)`), plain gradient descent from
# `(-4, 1.5)` with four learning rates. Above `lr = 0.1` the steep direction overshoots
# further at every step: the loss explodes.

# %%
def bowl_grad(w):
    return np.array([2 * w[0], 20 * w[1]])

def bowl_loss(w):
    return w[0] ** 2 + 10 * w[1] ** 2

def descend(lr, steps=40, mu=None):
    w, v, path = np.array([-4.0, 1.5]), np.zeros(2), []
    for _ in range(steps):
        path.append(w)
        if mu is None:
            w = sgd_step(w, bowl_grad(w), lr)
        else:
            w, v = momentum_step(w, bowl_grad(w), v, lr, mu)
    path.append(w)
    return np.array(path)

if checks.passed("sgd_step_visible"):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for lr in [0.01, 0.05, 0.09, 0.105]:
        path = descend(lr)
        ax.semilogy([bowl_loss(w) for w in path], label=f"lr = {lr}")
        print(f"lr = {lr:<6} loss after 40 steps: {bowl_loss(path[-1]):.3g}")
    ax.set_xlabel("step"); ax.set_ylabel("loss"); ax.legend(); plt.show()
else:
    print("Make sgd_step pass its visible tests first.")

# %% [markdown]
# ## 3. Momentum: a heavy ball
#
# Picture `w` as the position of a heavy ball on the loss surface, and give it a velocity `v`:
# how far `w` moves in one step. Plain gradient descent has no memory; the ball has. At every step:
#
# - **friction** takes away part of the velocity: the ball keeps the fraction `mu` of it
#   (`mu` in [0, 1), typically 0.9: it keeps 90%);
# - **the slope** pushes the ball downhill; the push changes the velocity by exactly the step plain
#   gradient descent would take from here, with the same `lr`;
# - then the ball **moves** by its new velocity.
#
# Steps that agree build up speed; steps that alternate (a zig-zag across a valley) cancel. With
# `mu = 0` nothing is remembered and it is plain gradient descent. (`bplib.optim.SGD`, like
# PyTorch, keeps its velocity in the units of the gradient and multiplies by the learning rate at
# the end; with a fixed learning rate the weights take the same path.)
#
# **Fill in this table by hand** before you write code. One weight, the loss `L(w) = w^2 / 2`, so
# its gradient is `w` itself; `lr = 0.2`, `mu = 0.9`, and the ball starts at `w = 1` at rest (`v = 0`).
#
# | step | w | dw | v_new | w_new | plain gradient descent, w_new |
# |---|---|---|---|---|---|
# | 1 | 1.0 | 1.0 | -0.2 | 0.8 | 0.8 |
# | 2 | 0.8 | 0.8 | ? | ? | 0.64 |
# | 3 | ? | ? | ? | ? | 0.512 |
#
# The first row has no memory yet, so both methods agree. In the second row friction and push both
# act: which of the two columns, `v_new` or `w_new`, do you need before you can compute the other?
# When your functions pass, the cell after the checks prints the table, to compare with yours.

# %% solution
def momentum_step(w, dw, v, lr, mu):
    """One step of gradient descent with momentum.

    w, dw, v: arrays of one shape; lr, mu: floats  ->  (w_new, v_new)
    """
    ### BEGIN SOLUTION
    v_new = mu * v - lr * dw
    w_new = w + v_new
    return w_new, v_new
    ### END SOLUTION

# %% check momentum_step_visible

# %% check momentum_step_hidden

# %%
if checks.passed("sgd_step_visible", "momentum_step_visible"):
    w, v, w_plain = np.array([1.0]), np.zeros(1), np.array([1.0])
    print("step      w       dw    v_new    w_new   plain w_new")
    for step in range(1, 4):
        dw = w.copy()                        # the gradient of w^2 / 2 is w
        w_new, v = momentum_step(w, dw, v, lr=0.2, mu=0.9)
        w_plain = sgd_step(w_plain, w_plain, 0.2)
        print(f"{step:4d} {w[0]:8.4f} {dw[0]:8.4f} {v[0]:8.4f} {w_new[0]:8.4f} {w_plain[0]:10.4f}")
        w = w_new
else:
    print("Make sgd_step and momentum_step pass their visible tests first.")

# %% [markdown]
# The experiment: a learning rate that is safe for the steep direction is slow along the flat
# one. Momentum builds up speed along the flat direction.

# %%
if checks.passed("sgd_step_visible", "momentum_step_visible"):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, path in [("plain, lr = 0.02", descend(0.02)),
                        ("momentum 0.9, lr = 0.02", descend(0.02, mu=0.9)),
                        ("momentum 0.5, lr = 0.02", descend(0.02, mu=0.5))]:
        ax.plot(path[:, 0], path[:, 1], ".-", label=label)
        print(f"{label:<25} loss after 40 steps: {bowl_loss(path[-1]):.3g}")
    ax.set_xlabel("w1"); ax.set_ylabel("w2"); ax.legend(); plt.show()
else:
    print("Make sgd_step and momentum_step pass their visible tests first.")

# %% [markdown]
# ## 4. A linear model, by hand
#
# Predict `y` from features `X` with a weight vector `w` and a bias `b`, and measure the mean
# squared error. The forward pass, for example `n` of `N`:
#
# $$\text{pred}_n = \sum_{j} X_{nj}\, w_j + b, \qquad r_n = \text{pred}_n - y_n, \qquad
#   L = \frac{1}{N}\sum_{n=1}^{N} r_n^2$$
#
# | array | shape | what |
# |---|---|---|
# | `X` | (N, D) | N examples, D features each |
# | `y` | (N,) | the targets |
# | `w` | (D,) | one weight per feature |
# | `b` | a number | added to every prediction |
# | `r` | (N,) | the residuals, prediction minus target |
# | `dw` | (D,) | dL/dw, one number per weight (like `w`) |
# | `db` | a number | dL/db (like `b`) |
#
# **Derive it one element at a time**, on paper:
# 1. dL/dr_n = ? (two things matter: the square, and the 1/N of the mean).
# 2. d r_n / d w_j = ? and d r_n / d b = ?
# 3. Every weight enters every residual, so by the chain rule
#    dL/dw_j = sum over n of (dL/dr_n) · (d r_n / d w_j). Write that sum out for `j = 0`.
# 4. The same sum for all `j` at once is one matrix-vector product of `X` (or its transpose) and
#    the vector of dL/dr_n. Which one has shape (D,) and the right entries?
# 5. dL/db: the same steps with d r_n / d b.
#
# **A tiny case to do by hand:** `N = 2`, `D = 1`, `X = [[1], [2]]`, `y = [1, 1]`, `w = [0]`, `b = 0`.
# Then `r = [-1, -1]` and `L = 1`. What are dL/dw and dL/db? The cell below prints their numerical
# values (central differences of the loss alone) for you to compare with.
#
# Return `loss` and `db` as Python floats.

# %%
X0, y0, w0, b0, h = np.array([[1.0], [2.0]]), np.array([1.0, 1.0]), np.array([0.0]), 0.0, 1e-6
mse_only = lambda w, b: np.mean((X0 @ w + b - y0) ** 2)      # the forward pass and the loss, nothing else
print("numerical dL/dw:", (mse_only(w0 + h, b0) - mse_only(w0 - h, b0)) / (2 * h))
print("numerical dL/db:", (mse_only(w0, b0 + h) - mse_only(w0, b0 - h)) / (2 * h))

# %% solution
def linear_loss_grad(X, y, w, b):
    """Mean squared error of X @ w + b against y, and its gradients.

    X: (N, D), y: (N,), w: (D,), b: float  ->  loss: float, dw: (D,), db: float
    """
    ### BEGIN SOLUTION
    N = len(y)
    r = X @ w + b - y
    loss = float(np.mean(r ** 2))
    dw = 2 * X.T @ r / N
    db = float(2 * r.sum() / N)
    return loss, dw, db
    ### END SOLUTION

# %% check linear_loss_grad_visible

# %% check linear_loss_grad_hidden

# %% [markdown]
# Now the training loop. Start from all-zero weights (`np.zeros(D)`) and `b = 0.0`, then repeat
# `steps` times: compute the gradients at the current `w` and `b` with your `linear_loss_grad`,
# and move both `w` and `b` one step downhill with your `sgd_step`. Return the final `(w, b)`.

# %% solution
def fit_linear(X, y, lr, steps):
    """Fit y ~ X @ w + b by gradient descent.  X: (N, D), y: (N,)  ->  (w: (D,), b: float)"""
    ### BEGIN SOLUTION
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(steps):
        loss, dw, db = linear_loss_grad(X, y, w, b)
        w = sgd_step(w, dw, lr)
        b = sgd_step(b, db, lr)
    return w, b
    ### END SOLUTION

# %% check fit_linear_visible

# %% check fit_linear_hidden

# %% [markdown]
# ## 5. Does it find the best line?
#
# Least squares has an exact answer, so we can compare: after a few hundred steps your
# gradient descent should agree with `np.linalg.lstsq` to several digits.

# %%
if checks.passed("linear_loss_grad_visible", "fit_linear_visible"):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + 3.0 + 0.3 * rng.standard_normal(200)
    w, b = fit_linear(X, y, lr=0.1, steps=300)
    exact = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
    print("gradient descent: w =", np.round(w, 4), " b =", round(b, 4))
    print("least squares:    w =", np.round(exact[:3], 4), " b =", round(exact[3], 4))
else:
    print("Make linear_loss_grad and fit_linear pass their visible tests first.")

# %% [markdown]
# ## Summary

# %%
checks.summary("gradient_descent");
