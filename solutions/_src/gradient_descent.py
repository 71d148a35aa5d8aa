# %% [markdown]
# # Exercise 2: gradient descent
#
# **What you learn.** What a gradient is *for*: stepping downhill. You write the update rule,
# see what the learning rate does (too small: slow; too large: divergence), see momentum
# cross a long narrow valley, and fit a linear model with gradients you derive by hand.
#
# **Time:** about 45 minutes.
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
# Run the notebook from the top after a change; the last cell sums up what passes.

# %% locked
import numpy as np
import matplotlib.pyplot as plt

from bplib import checks

checks.start("gradient_descent")

# %% [markdown]
# ## 1. The update rule
#
# The gradient dL/dw points uphill, so we take a small step the other way. `lr` (the
# learning rate, often written alpha) sets the step size:
#
# $$w \leftarrow w - \alpha\,\frac{\partial L}{\partial w}$$
#
# Return a new array (`w - ...`); do not modify `w` in place.

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
# ## 3. Momentum
#
# Momentum keeps a velocity `v`, a running sum of past steps, so steps that agree add up and
# steps that alternate cancel. With `mu` in [0, 1) (typically 0.9):
#
# $$v \leftarrow \mu\, v - \alpha\,\frac{\partial L}{\partial w}, \qquad w \leftarrow w + v$$
#
# (This is `bplib.optim.SGD`'s convention. With `mu = 0` it is plain gradient descent.)

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
# Predict `y` from features `X: (N, D)` with `pred = X @ w + b`, `w: (D,)`, `b` a number,
# and measure the mean squared error. With the residual `r = pred - y`:
#
# $$L = \frac{1}{N}\sum_n r_n^2, \qquad
#   \frac{\partial L}{\partial w} = \frac{2}{N}\,X^\top r, \qquad
#   \frac{\partial L}{\partial b} = \frac{2}{N}\sum_n r_n$$
#
# Return `loss` and `db` as Python floats.

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
# Now the training loop. Start from `w = np.zeros(D)` and `b = 0.0`, then `steps` times:
# compute the gradients with `linear_loss_grad` and update both `w` and `b` with `sgd_step`.

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
