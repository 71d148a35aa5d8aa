# %% [markdown]
# # Exercise 5: backward through an LSTM
#
# **What you learn.** How gradients flow through the gates and the cell state of an LSTM, and
# how backpropagation through time (BPTT) runs one step's backward pass in a loop, carrying
# gradients from each time step to the one before and summing the gradients of the shared
# weights. Then your BPTT trains an LSTM to remember the first element of a sequence.
#
# **Time:** about 2 hours (an hour of it on paper for the step; see the note at the end of this
# cell).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `lstm_step_backward(dh, dc, cache, Wx)` | `(dx, dh_prev, dc_prev, dWx, dWh, db)` | 9 |
# | `lstm_backward(dh, cache)` | `(dx, dh0, dWx, dWh, db)` | 8 |
#
# **You derive:**
#
# - `lstm_step_backward`: every gradient of one step. Chapter 7 derives only the path along the
#   cell state (from c back to the forget gate and to c_prev); you derive the gradient that
#   reaches c through h, the gradients of the gates i and g, the slopes of the gates'
#   nonlinearities, and from there dL/dx, dL/dh_prev, dL/dWx, dL/dWh and dL/db. The output gate
#   is worked out below as an example.
# - `lstm_backward`: what arrives at each step's h and c from the loss and from the later steps,
#   dL/dx for every step, dL/dh0, and the weight gradients of the whole sequence. Chapter 7 does
#   backpropagation through time for a plain RNN only.
#
# **You may call:** numpy; the forward passes `bplib.layers.lstm_step_forward`,
# `bplib.layers.lstm_forward`, `bplib.layers.sigmoid_forward` and `bplib.layers.tanh_forward`;
# inside `lstm_backward`, your own `lstm_step_backward`; and `bplib.gradcheck` to test your work.
# Everything else in bplib that computes these gradients is the course's reference: its
# functions of the same names, `sigmoid_backward`, `tanh_backward`, exercise 3's
# `dense_backward`, the `LSTM` layer's `backward`, and the checking code in `bplib.checks`. When
# your notebook is graded, your functions run again in a clean process where those are removed,
# so a function that calls them scores 0 on that test, with a status that says so.
#
# **Hints:** a failed check names the symptom (which array is wrong, by what kind of error,
# which path is missing). For more, call `hint("lstm_step_backward")` or
# `hint("lstm_backward")`: each call gives the next level, first the idea, then the local
# rule, and only last the formula. Hints never cost points; the summary at the end counts them
# for your own record.
#
# Shapes: `N` sequences in a batch, `T` time steps, `D` input features, `H` hidden units.
# Run the notebook from the top after a change; the last cell sums up what passes.
#
# *How the time was estimated:* reading, 15 minutes. The step: 9 local derivatives to write and
# combine (two paths into c, four gates, three slopes of nonlinearities) at about 4 minutes each,
# the 5 dense-layer gradients again at about 3 minutes each (exercise 3 did them), and the hand
# example, 10 minutes: about an hour. BPTT: 4 questions on a two-step graph and the loop, about
# 30 minutes. Debugging from the verdicts, about 15 minutes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.checks import hint
from bplib.layers import LSTM, Dense, Sequential, lstm_step_forward, lstm_forward
from bplib.gradcheck import check_layer

checks.start("lstm_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a shorter training run

# %% [markdown]
# ## 1. One step
#
# The forward step (`bplib.layers.lstm_step_forward`) computes all four gates from one
# product, with the gates stacked in the order **i, f, o, g** along the last axis of `Wx`,
# `Wh` and `b`:
#
# $$a = x W_x + h_{prev} W_h + b,\qquad i = \sigma(a_i),\; f = \sigma(a_f),\; o = \sigma(a_o),\;
#   g = \tanh(a_g)$$
# $$c = f \odot c_{prev} + i \odot g, \qquad h = o \odot \tanh(c)$$
#
# Here $a_i$ is the first quarter of the columns of $a$ (columns 0 to H-1), $a_f$ the second,
# $a_o$ the third, $a_g$ the last. It returns `h, c, cache`; the cache is a dict that holds
# what the backward step needs:
#
# | array | shape | what it is |
# |---|---|---|
# | `cache["x"]` | (N, D) | the step's input |
# | `cache["h_prev"]`, `cache["c_prev"]` | (N, H) | the state from the step before |
# | `cache["i"]`, `cache["f"]`, `cache["o"]`, `cache["g"]` | (N, H) | the gates' values |
# | `cache["tanh_c"]` | (N, H) | the value of tanh at the new cell state c |
# | `cache["Wh"]` | (H, 4H) | the recurrent weights (`Wx`: (D, 4H) is passed separately) |
# | `dh`, `dc` | (N, H) | dL/dh and dL/dc, the gradients arriving at h and c from above |
# | `dx`, `dh_prev`, `dc_prev` | (N, D), (N, H), (N, H) | what your function returns ... |
# | `dWx`, `dWh`, `db` | (D, 4H), (H, 4H), (4H,) | ... each with the shape of its variable |
#
# `dc` is what the next time step sends back to c (zero for the last step of a sequence); `dh`
# is what reaches h from the loss and from the next step.
#
# Walk the equations from the last to the first: h, then c, then the four gates, then a, then
# the inputs and weights of a. Everything up to a is element-wise: element $[n, j]$ of a gate
# touches only element $[n, j]$ of c or h.
#
# **A worked example (the output gate).** $h[n, j] = o[n, j]\,\tanh c[n, j]$, and no other
# element of h or c depends on $o[n, j]$. So
#
# $$\frac{\partial L}{\partial o[n, j]} = \frac{\partial L}{\partial h[n, j]}\,
#   \frac{\partial h[n, j]}{\partial o[n, j]} = dh[n, j]\; \tanh c[n, j]$$
#
# and since $o = \sigma(a_o)$ and the sigmoid's slope is $\sigma'(u) = \sigma(u)\,(1 - \sigma(u))$,
# written with the gate's own value,
#
# $$\frac{\partial L}{\partial a_o[n, j]} = \frac{\partial L}{\partial o[n, j]}\; o[n, j]\,
#   \bigl(1 - o[n, j]\bigr).$$
#
# That is the third quarter of $\partial L / \partial a$. No sum appears: one use, one term.
#
# **Your derivation**, on paper:
#
# 1. The cell state $c[n, j]$ is used in two places: name them. Which gradient arrives from
#    each? Write the total $\partial L / \partial c[n, j]$ as a sum of two terms (for the slope
#    of tanh, write it with tanh's own value, as the sigmoid's above).
# 2. From $c = f \odot c_{prev} + i \odot g$, write $\partial L / \partial i[n, j]$,
#    $\partial L / \partial g[n, j]$ and $\partial L / \partial c_{prev}[n, j]$ with that total.
#    (Chapter 7 does the forget gate.)
# 3. Through the nonlinearities, to $\partial L / \partial a$: i and f are sigmoids like o; g is a
#    tanh. Stack the four quarters in the order i, f, o, g into one (N, 4H) array.
# 4. $a = x W_x + h_{prev} W_h + b$ is two dense layers that share one bias: exercise 3's rules
#    apply to each. Write $\partial L / \partial W_x[d, k]$ as a sum over n and recognise the
#    product; then dx, dh_prev, dWh and db. Check every shape against the table.
# 5. A tiny case by hand, with N = D = H = 1 and made-up cache values (the backward only reads
#    them; they need not come from a real forward step): $i = f = o = g = \tfrac12$,
#    $\tanh c = \tfrac12$, $c_{prev} = 1$, $x = h_{prev} = 1$, `Wx` and `Wh` all ones, $dh = 1$,
#    $dc = 0$. Work out dc_prev and the four entries of db (each is a multiple of 1/64), then
#    compare with what the cell after your function prints.
#
# Then vectorise: no loop over n or j is needed.

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

# %%
# The tiny case of step 5: compute dc_prev and db by hand first.
one = np.ones((1, 1))
tiny = dict(x=one, h_prev=one, c_prev=one, i=one / 2, f=one / 2, o=one / 2, g=one / 2, tanh_c=one / 2,
            Wh=np.ones((1, 4)))
try:
    dx, dh_prev, dc_prev, dWx, dWh, db = lstm_step_backward(one, 0 * one, tiny, np.ones((1, 4)))
    print("dc_prev =", dc_prev.tolist(), " db * 64 =", (db * 64).tolist())
except NotImplementedError:
    print("lstm_step_backward is not written yet.")

# %% check lstm_step_backward_visible

# %% check lstm_step_backward_hidden

# %% [markdown]
# ## 2. Backpropagation through time
#
# `bplib.layers.lstm_forward(x, h0, Wx, Wh, b)` runs the step over `x: (N, T, D)`, starting
# from `h0: (N, H)` and a cell state of zeros. It returns every hidden state `h: (N, T, H)` and
# a dict `cache` with `cache["x"]`, `cache["h0"]`, `cache["Wx"]`, `cache["Wh"]` and
# `cache["steps"]`, the list of the T step caches: `cache["steps"][t]` is the cache of step t,
# exactly as in section 1 (its `x` is step t's input), ready for your `lstm_step_backward`.
#
# `dh: (N, T, H)` holds the gradient that the loss sends to each hidden state directly (zeros
# where the loss does not look, for example every step but the last). What you return:
#
# | array | shape | what it is |
# |---|---|---|
# | `dx` | (N, T, D) | the gradient of every step's input |
# | `dh0` | (N, H) | the gradient of the initial state h0 |
# | `dWx`, `dWh`, `db` | (D, 4H), (H, 4H), (4H,) | the weights' gradients for the whole sequence |
#
# **Your derivation**, on a sequence of two steps. Draw it: `x[:, 0]` and h0 go into step 0,
# which makes $h_0, c_0$; `x[:, 1]`, $h_0$ and $c_0$ go into step 1, which makes $h_1, c_1$;
# the loss reads $h_0$ and $h_1$ (`dh[:, 0]` and `dh[:, 1]`).
#
# 1. Which of the two steps' backward can you run first, and why?
# 2. Where is $h_1$ used, and $c_1$? So which `dh` and `dc` does step 1's backward receive?
# 3. Where is $h_0$ used, and $c_0$? Write the `dh` and `dc` that step 0's backward receives,
#    using what step 1's backward returned.
# 4. Wx, Wh and b are used by both steps. What is dL/dWx (chapter 2: a value used in many
#    places)? What is dh0?
#
# Then write the same for T steps, as a loop that calls your `lstm_step_backward`. Make
# `lstm_step_backward` pass its visible tests first: a wrong step makes every step wrong.

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
        dx[:, t], dh_next, dc_next, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t] + dh_next, dc_next,
                                                                             steps[t], Wx)
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
# Hidden tests run when your notebook is graded, on inputs only the grader has: for the step, a
# batch of one with H = 1, saturated gates, D = H, no gradient arriving at c (or at h); for BPTT,
# a single time step, a batch of one, a 60-step sequence, and a loss on the last step only.

# %%
checks.summary("lstm_backward");
