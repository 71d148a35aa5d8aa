# %% [markdown]
# # Exercise 5: backward through an LSTM
#
# **What you learn.** How gradients flow through the gates and the cell state of an LSTM, and
# how backpropagation through time (BPTT) runs one step's backward pass in a loop, carrying
# gradients from each time step to the one before and summing the gradients of the shared
# weights. Then your BPTT trains an LSTM to remember the first element of a sequence.
#
# **Time:** about 90 minutes.
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `lstm_step_backward(dh, dc, cache, Wx)` | `(dx, dh_prev, dc_prev, dWx, dWh, db)` | 9 |
# | `lstm_backward(dh, cache)` | `(dx, dh0, dWx, dWh, db)` | 8 |
#
# Shapes: `N` sequences in a batch, `T` time steps, `D` input features, `H` hidden units.
# Run the notebook from the top after a change; the last cell sums up what passes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.layers import LSTM, Dense, Sequential, lstm_step_forward, lstm_forward
from bplib.gradcheck import check_layer

checks.start("lstm_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a shorter training run

# %% [markdown]
# ## 1. One step
#
# The forward step (`bplib.layers.lstm_step_forward`) computes all four gates from one product,
# with the gates stacked in the order **i, f, o, g** along the last axis of `Wx: (D, 4H)`,
# `Wh: (H, 4H)` and `b: (4H,)`:
#
# $$a = x W_x + h_{prev} W_h + b,\quad i, f, o = \sigma(a_i), \sigma(a_f), \sigma(a_o),\quad g = \tanh(a_g)$$
# $$c = f \odot c_{prev} + i \odot g, \qquad h = o \odot \tanh(c)$$
#
# It returns `h, c, cache` where `cache` is a dict holding `x, h_prev, c_prev, i, f, o, g,
# tanh_c, Wh`. The backward step receives `dh` and `dc`, the gradients arriving at `h` and `c`
# (from the loss and from step t+1), and walks the equations backwards. The cell state reaches
# the loss two ways, directly and through `h`, so first
#
# $$\frac{\partial L}{\partial c} = dc + dh \odot o \odot (1 - \tanh^2 c)$$
#
# then each gate gets its share (`dL/di = dL/dc * g`, `dL/df = dL/dc * c_prev`,
# `dL/do = dh * tanh(c)`, `dL/dg = dL/dc * i`), times the derivative of its nonlinearity
# (sigma' = s (1 - s), tanh' = 1 - g^2) to give `da: (N, 4H)`. From `da`, the dense-layer rules
# of exercise 3 give `dx`, `dh_prev`, `dWx`, `dWh`, `db`; and `dc_prev = dL/dc * f`.

# %% solution
def lstm_step_backward(dh, dc, cache, Wx):
    """Backward of one LSTM step.

    dh, dc: (N, H); cache: the dict from lstm_step_forward; Wx: (D, 4H)
    ->  dx: (N, D), dh_prev: (N, H), dc_prev: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,)
    """
    ### BEGIN SOLUTION
    i, f, o, g, tanh_c = cache["i"], cache["f"], cache["o"], cache["g"], cache["tanh_c"]
    dc_total = dc + dh * o * (1 - tanh_c ** 2)        # c -> loss directly, and through h = o tanh(c)
    di = dc_total * g
    df = dc_total * cache["c_prev"]
    do = dh * tanh_c
    dg = dc_total * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)], axis=1)
    dx = da @ Wx.T
    dh_prev = da @ cache["Wh"].T
    dc_prev = dc_total * f
    dWx = cache["x"].T @ da
    dWh = cache["h_prev"].T @ da
    db = da.sum(axis=0)
    return dx, dh_prev, dc_prev, dWx, dWh, db
    ### END SOLUTION

# %% check lstm_step_backward_visible

# %% check lstm_step_backward_hidden

# %% [markdown]
# ## 2. Backpropagation through time
#
# `bplib.layers.lstm_forward(x, h0, Wx, Wh, b)` runs the step over `x: (N, T, D)` from
# `h0: (N, H)` and `c0 = 0`, and returns every hidden state `h: (N, T, H)` and a `cache` dict
# with `x`, `h0`, `Wx`, `Wh` and `steps`, the list of the T step caches. (For speed the forward
# pass multiplies all inputs by `Wx` at once, so the step caches hold `x = None`: use
# `dict(cache["steps"][t], x=x[:, t])` when you call your step function.)
#
# `dh: (N, T, H)` holds dL/dh_t coming from the loss at each step. Going from t = T-1 down to 0,
# the gradient reaching `h_t` is the loss's share plus what step t+1 sent back, and the same
# holds for the cell state:
#
# $$\frac{\partial L}{\partial h_t} = dh[:, t] + dh_{prev}^{(t+1)}, \qquad
#   \frac{\partial L}{\partial c_t} = dc_{prev}^{(t+1)} \quad (\text{zero at } t = T-1)$$
#
# The weights are the same at every step, so their gradients are sums over t. `dh0` is the
# `dh_prev` of step 0.

# %% solution
def lstm_backward(dh, cache):
    """Backpropagation through time.

    dh: (N, T, H) dL/dh_t from the loss at every step; cache: from lstm_forward
    ->  dx: (N, T, D), dh0: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,)
    """
    ### BEGIN SOLUTION
    x, Wx, Wh, steps = cache["x"], cache["Wx"], cache["Wh"], cache["steps"]
    N, T, D = x.shape
    H = dh.shape[2]
    dx = np.zeros(x.shape, dtype=dh.dtype)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros(4 * H, dtype=dh.dtype)
    dh_next = np.zeros((N, H), dtype=dh.dtype)
    dc_next = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        step = dict(steps[t], x=x[:, t])
        dx[:, t], dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dh_next, dc_next, step, Wx)
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    return dx, dh_next, dWx, dWh, db
    ### END SOLUTION

# %% check lstm_backward_visible

# %% check lstm_backward_hidden

# %% [markdown]
# ## 3. Your BPTT inside a real layer
#
# `bplib.layers.LSTM(..., backward_fn=lstm_backward)` calls your function in its backward pass;
# `check_layer` compares every gradient with numerical derivatives.

# %%
if checks.passed("lstm_step_backward_visible", "lstm_backward_visible"):
    rng = np.random.default_rng(0)
    print(check_layer(LSTM(3, 4, rng=rng, dtype=np.float64, backward_fn=lstm_backward),
                      rng.standard_normal((2, 5, 3))))
else:
    print("Make both functions pass their visible tests first.")

# %% [markdown]
# ## 4. Remembering across time
#
# A task only BPTT can learn: read a sequence of 12 random numbers and, at the end, say whether
# the **first** one was positive. The loss sits on the last step only, so the gradient must
# travel back 11 steps through your `lstm_backward` to reach the input that matters.
# An LSTM with 8 hidden units and a dense layer on its last hidden state, trained with Adam.

# %%
def train_memory(steps=300, T=12, N=64, seed=0):
    rng = np.random.default_rng(seed)
    lstm = LSTM(1, 8, rng=rng, dtype=np.float64, backward_fn=lstm_backward)
    head = Dense(8, 2, rng=rng, dtype=np.float64)
    opt = bplib.optim.Adam(Sequential(lstm, head), lr=0.02)
    for step in range(1, steps + 1):
        x = rng.standard_normal((N, T, 1))
        y = (x[:, 0, 0] > 0).astype(np.int64)
        h = lstm.forward(x)                                   # (N, T, 8)
        loss, dlogits = bplib.losses.softmax_cross_entropy(head.forward(h[:, -1]), y)
        dh = np.zeros_like(h)
        dh[:, -1] = head.backward(dlogits)                    # the loss sees only the last step
        lstm.backward(dh)
        opt.step()
        if step % 100 == 0 or step == steps:
            acc = (head.forward(lstm.forward(x)[:, -1]).argmax(axis=1) == y).mean()
            print(f"step {step}: loss {loss:.3f}, accuracy on this batch {acc:.0%}")
    return acc

if checks.passed("lstm_step_backward_visible", "lstm_backward_visible"):
    accuracy = train_memory(steps=40) if FAST else train_memory()
else:
    print("Make both functions pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (a batch of one, H = 1, saturated gates, a single time step, a 60-step sequence)
# run when your notebook is graded.

# %%
checks.summary("lstm_backward");
