# %% [markdown]
# # Exercise: backward through attention
#
# **What you learn.** To derive the backward pass of the layer at the heart of a transformer:
# the softmax, whose outputs are coupled through one shared denominator; scaled dot-product
# attention with a causal mask; and the projections of a multi-head self-attention layer, with
# their reshapes into heads. Then your three functions, plugged into a `bplib` transformer block,
# train a tiny transformer that has to look back in its input to answer.
#
# **Time:** about 2 hours (about 65 minutes of them for the derivations on paper; see the note at
# the end of this cell).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `softmax_backward(dout, y)` | `dx` for `y = softmax(x)` along the last axis | 4 |
# | `attention_backward(dout, cache)` | `(dq, dk, dv)` | 7 |
# | `mha_projections_backward(dout, cache, attention_backward_fn)` | `(dx, dWqkv, dbqkv, dWo, dbo)` | 6 |
#
# **You derive:**
#
# - `softmax_backward`: dL/dx of a softmax row, from its Jacobian, in a form that never builds
#   the (S, S) Jacobian matrix.
# - `attention_backward`: dL/dq, dL/dk and dL/dv of scaled dot-product attention, and why a
#   masked position receives no gradient.
# - `mha_projections_backward`: dL/dx and the gradients of the four parameters of one
#   multi-head self-attention layer (PyTorch's layout, y = x W^T + b), through the split into
#   heads and back.
#
# **You may call:** numpy; the forward passes `bplib.layers.softmax_forward` and
# `attention_forward` (your functions receive what they return) and `mha_forward` (shown in
# section 3); and `bplib.gradcheck` (for example `numerical_gradient`, `check_layer`) to test
# your own work. Everything else in bplib that computes these gradients is the course's
# reference: its functions of the same names, `bplib.layers.attention_backward` and the
# layers' `backward` (`MultiHeadSelfAttention`, `TransformerBlock`), `bplib.Tensor`, and the
# checking code in `bplib.checks`. When your notebook is graded, your functions run again in a
# clean process where those are removed, so a function that calls them scores 0 on that test,
# with a status that says so. The hidden tests include large inputs, so returning numerical
# derivatives instead of your own gradient runs out of time.
#
# **Hints:** a failed check names the symptom (the 1/sqrt(d) scale missing, masked positions
# receiving gradient, the softmax treated as element-wise, k transposed, ...). For more, call
# `hint("attention_backward")` (or the name of another function): each call gives the next
# level, first the idea, then the local rule, and only last the formula. Hints never cost
# points; the summary at the end counts them for your own record.
#
# Shapes: `N` sequences in a batch, `T` query positions, `S` key positions (`S = T` in
# self-attention), `d` features per query and key, `dv` per value, `D` features per position,
# `h` heads of `dh = D / h` features. `dout` is dL/dout, the gradient arriving from above; `dq`
# is dL/dq, and so on. Run the notebook from the top after a change; the last cell sums up what
# passes.
#
# *How the time was estimated:* reading, 15 minutes. Softmax: the Jacobian from the quotient rule,
# its two cases (10 minutes), the vector-Jacobian product without the matrix and the hand case (10
# minutes). Attention: three steps back through the forward, each an element form and its
# product (about 20 minutes), the mask and the scale (5 minutes). The projections: two linear maps
# in the transposed layout (10 minutes), undoing the reshapes into heads (10 minutes). Writing
# the code and fixing a first wrong attempt from the verdicts, about 30 minutes; the training
# run, 5 minutes.

# %% locked
import inspect
import os

import numpy as np

import bplib
from bplib import checks
from bplib.checks import hint
from bplib.checks.calls.attention_backward import mha_forward
from bplib.layers import attention_forward, softmax_forward
from bplib.gradcheck import check_layer, numerical_gradient

checks.start("attention_backward")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a shorter training run

# %% [markdown]
# ## 1. Softmax
#
# The forward pass works on the last axis: each row `x: (S,)` becomes probabilities `y: (S,)`
# that sum to 1 (all other axes are just more rows):
#
# $$y[j] = \frac{e^{x[j]}}{\sum_{s=1}^{S} e^{x[s]}}$$
#
# | array | shape | what it is |
# |---|---|---|
# | `x` | (..., S) | the scores (an entry of `-inf` gets weight exactly 0: that is how a mask works) |
# | `y` | (..., S) | the forward's output, which your function receives instead of `x` |
# | `dout`, `dx` | (..., S) | dL/dy, which you receive, and dL/dx, which you return |
#
# **Your derivation**, on paper:
#
# 1. Which outputs $y[j]$ depend on the input $x[i]$? (All of them: through the denominator.) So
#    dL/dx[i] is a sum over $j$ of $\text{dout}[j]\; \partial y[j] / \partial x[i]$.
# 2. With the quotient rule, find $\partial y[j] / \partial x[i]$ for $j = i$ and for $j \ne i$.
#    Write both as one expression in $y[i]$ and $y[j]$ only (no exponentials left).
# 3. Put it into the sum of step 1. One part has a single term; the other holds a sum over $j$
#    that is the same number for every $i$ of the row. You never need the (S, S) Jacobian.
# 4. Check: the rows of your dx must sum to 0 (why? the outputs of a row always sum to 1). And
#    where $y[i] = 0$ (a masked score), what is dx[i]?
# 5. By hand: $x = [0, \ln 2, 0]$, so $y = [\tfrac14, \tfrac12, \tfrac14]$, and
#    $\text{dout} = [1, 0, 2]$. What is dx? The cell after your function prints yours.

# %% solution
def softmax_backward(dout, y):
    """Backward of y = softmax(x) along the last axis.

    dout: (..., S) dL/dy, y: (..., S) the forward's output  ->  dx: (..., S) dL/dx
    """
    ### BEGIN SOLUTION
    s = (dout * y).sum(axis=-1, keepdims=True)
    return y * (dout - s)
    ### END SOLUTION

# %%
# The hand case of step 5, then the same with numerical derivatives of L = sum(dout * softmax(x)).
try:
    x5, dout5 = np.array([[0.0, np.log(2.0), 0.0]]), np.array([[1.0, 0.0, 2.0]])
    print("your dx:      ", np.round(softmax_backward(dout5, softmax_forward(x5)[0]), 4).tolist())
    num5 = numerical_gradient(lambda x: float((dout5 * softmax_forward(x)[0]).sum()), x5.copy())
    print("numerical dx: ", np.round(num5, 4).tolist())
except NotImplementedError:
    print("softmax_backward is not written yet.")

# %% check softmax_backward_visible

# %% check softmax_backward_hidden

# %% [markdown]
# ## 2. Scaled dot-product attention
#
# The forward pass, `attention_forward(q, k, v, mask)`, for one sequence (a batch, or a batch of
# heads, just adds leading axes):
#
# $$\text{scores}[t, s] = \frac{1}{\sqrt{d}} \sum_{i=1}^{d} q[t, i]\, k[s, i], \qquad
#   p[t, \cdot] = \text{softmax}(\text{scores}[t, \cdot]), \qquad
#   \text{out}[t, j] = \sum_{s=1}^{S} p[t, s]\, v[s, j]$$
#
# With a mask, a score where query $t$ may not attend to key $s$ is set to $-\infty$ before the
# softmax. `mask="causal"` lets query $t$ see keys $0, \dots, t$ only (no peeking at the
# future); a boolean (T, S) array is True where attending is allowed.
#
# | array | shape | what it is |
# |---|---|---|
# | `q` | (N, T, d) | queries: one row per position that asks |
# | `k` | (N, S, d) | keys: one row per position that can be looked at |
# | `v` | (N, S, dv) | values: what each key position hands over |
# | `p` | (N, T, S) | the attention weights, each row sums to 1 (0 where masked) |
# | `out`, `dout` | (N, T, dv) | the output, and dL/dout, which your function receives |
# | `cache` | dict | `q`, `k`, `v`, `p`, `scale` (the number 1/sqrt(d)) and `mask` from the forward |
#
# **Your derivation**, on paper (leave out the batch axis; numpy's `@` on (N, T, S) arrays does
# one product per sequence, and `np.swapaxes(a, -1, -2)` transposes the last two axes):
#
# 1. Start at the end, $\text{out} = p\,v$. Which outputs use $v[s, j]$, with which coefficient?
#    Write dL/dv[s, j] as a sum over $t$ and find the product. Then the same for
#    dL/dp[t, s] (a sum over $j$).
# 2. The softmax of step 1 runs along each row of the scores: turn dL/dp into dL/dscores with
#    your `softmax_backward`.
# 3. $\text{scores} = q\,k^T / \sqrt{d}$: write dL/dq[t, i] as a sum over $s$ and dL/dk[s, i] as a
#    sum over $t$. Which products are they? Where does the $1/\sqrt{d}$ go?
# 4. The mask. A masked score is $-\infty$ and its weight $p[t, s]$ is exactly 0, whatever $q$ and
#    $k$ are. What does your softmax backward give there? So what does the mask need in the
#    backward pass: anything besides the cache's `p`?
# 5. Shapes: when $T \ne S$, only one of the products you could write for dk has the shape
#    (N, S, d). When $T = S$ the wrong one fits too: the element form of step 3 decides.

# %% solution
def attention_backward(dout, cache):
    """Backward of attention_forward.

    dout: (N, T, dv), cache from the forward  ->  dq: (N, T, d), dk: (N, S, d), dv: (N, S, dv)
    (more leading axes, such as (N, h), are allowed).
    """
    ### BEGIN SOLUTION
    q, k, v, scale = cache["q"], cache["k"], cache["v"], cache["scale"]
    p = cache["p"]
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    dscores = softmax_backward(dp, p) * scale
    dq = dscores @ k
    dk = np.swapaxes(dscores, -1, -2) @ q
    return dq, dk, dv
    ### END SOLUTION

# %%
# The causal mask: with T = S = 3, query 0 sees key 0 only. Row s of your dk may only hold
# gradient from the queries that see key s (your dk[0, 2] comes from query 2 alone).
try:
    rng = np.random.default_rng(1)
    q3, k3, v3 = rng.standard_normal((1, 3, 2)), rng.standard_normal((1, 3, 2)), rng.standard_normal((1, 3, 2))
    out3, cache3 = attention_forward(q3, k3, v3, "causal")
    print("p =\n", np.round(cache3["p"][0], 3))
    dout3 = np.zeros_like(out3)
    dout3[0, 0] = 1.0                   # a loss that looks at query 0's output only
    dq3, dk3, dv3 = attention_backward(dout3, cache3)
    print("with dL/dout nonzero at query 0 only, your dk =\n", np.round(dk3[0], 4),
          "\n(query 0 sees key 0 alone, whose weight is 1 whatever the scores are: what must dk be?)")
except NotImplementedError:
    print("attention_backward is not written yet.")

# %% check attention_backward_visible

# %% check attention_backward_hidden

# %% [markdown]
# ## 3. The projections of a multi-head self-attention layer
#
# A self-attention layer makes q, k and v from the same input `x: (N, T, D)` with one weight
# matrix, splits them into `h` heads of `dh = D / h` features, runs the attention on every head
# at once, merges the heads back and projects. The weights are stored as in PyTorch's
# `nn.MultiheadAttention`, $y = x\, W^T + b$: **one row of W per output feature** (the
# transpose of `Dense`'s layout). Here is the forward pass your function goes back through:

# %% locked
print(inspect.getsource(mha_forward))

# %% [markdown]
# | array | shape | what it is |
# |---|---|---|
# | `x` | (N, T, D) | the input sequence (`cache["x"]`) |
# | `Wqkv`, `bqkv` | (3D, D), (3D,) | rows 0..D-1 make q, D..2D-1 make k, 2D..3D-1 make v |
# | `q`, `k`, `v`, heads | (N, h, T, dh) | head $i$ holds features $i\,dh, \dots, (i+1)\,dh - 1$ |
# | `concat` | (N, T, D) | the heads side by side again (`cache["concat"]`) |
# | `Wo`, `bo` | (D, D), (D,) | the output projection |
# | `dout`, `dx` | (N, T, D) | dL/dout, which you receive, and dL/dx |
# | `cache` | dict | `x`, `Wqkv`, `Wo`, `concat`, `num_heads`, and `attn`: the attention's cache |
#
# The attention in the middle is not yours to redo: your function receives
# `attention_backward_fn(dheads, cache["attn"]) -> (dq, dk, dv)` and calls it on the gradient
# of the heads, (N, h, T, dh). In section 5 you hand it your `attention_backward`. The checks hand
# it a **stand-in** instead (the exact backward of a simpler mixing of q, k and v), so that this
# function is graded on its own: a mistake in `attention_backward` costs no points here.
#
# **Your derivation**, on paper:
#
# 1. One linear map in this layout, with the N·T positions as rows $r$:
#    $y[r, j] = \sum_i x[r, i]\, W[j, i] + b[j]$. Write dL/dW[j, i], dL/db[j] and dL/dx[r, i] as
#    sums, then as products. Each has the shape of its variable, and W is square for the output
#    projection: only the element form tells dL/dW from its transpose.
# 2. The output projection first: the gradients of `Wo`, `bo` and of `concat`. How many times is
#    `bo[j]` used? (Once per position of every sequence.)
# 3. The merge `concat = heads.transpose(0, 2, 1, 3).reshape(N, T, D)` moves numbers without
#    changing them: its backward moves the gradient back with the inverse reshape and
#    transpose. The same for the split of the (N, T, 3D) array into q, k, v and heads.
# 4. The input projection: the gradients of `Wqkv`, `bqkv` and x from dL/d(qkv).
# 5. Tiny case: with $N = T = 1$, $D = 2$ and one head, `concat` is one row: what is dL/dWo in
#    terms of dout and concat? Compare it with your function in the cell below.

# %% solution
def mha_projections_backward(dout, cache, attention_backward_fn):
    """Backward of mha_forward: the projections and the split into heads.

    dout: (N, T, D), cache from mha_forward, attention_backward_fn(dheads, cache["attn"]) -> (dq, dk, dv)
    ->  dx: (N, T, D), dWqkv: (3D, D), dbqkv: (3D,), dWo: (D, D), dbo: (D,)
    """
    ### BEGIN SOLUTION
    N, T, D = dout.shape
    h = cache["num_heads"]
    d2 = dout.reshape(N * T, D)
    x2 = cache["x"].reshape(N * T, D)
    concat = cache["concat"].reshape(N * T, D)
    dWo = d2.T @ concat
    dbo = d2.sum(axis=0)
    dheads = (d2 @ cache["Wo"]).reshape(N, T, h, D // h).transpose(0, 2, 1, 3)
    dq, dk, dv = attention_backward_fn(dheads, cache["attn"])
    dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(N * T, 3 * D)
    dWqkv = dqkv.T @ x2
    dbqkv = dqkv.sum(axis=0)
    dx = (dqkv @ cache["Wqkv"]).reshape(N, T, D)
    return dx, dWqkv, dbqkv, dWo, dbo
    ### END SOLUTION

# %%
# The tiny case of step 5 (N = T = 1, D = 2, one head), with your attention_backward in the middle.
try:
    rng = np.random.default_rng(5)
    x5 = rng.standard_normal((1, 1, 2))
    out5, cache5 = mha_forward(x5, rng.standard_normal((6, 2)), np.zeros(6), rng.standard_normal((2, 2)),
                               np.zeros(2), num_heads=1)
    dout5 = np.array([[[1.0, -1.0]]])
    grads5 = mha_projections_backward(dout5, cache5, attention_backward)
    print("concat =", np.round(cache5["concat"][0, 0], 4).tolist(), " dout =", dout5[0, 0].tolist())
    print("your dWo =", np.round(grads5[3], 4).tolist(), " your dbo =", np.round(grads5[4], 4).tolist())
except NotImplementedError:
    print("mha_projections_backward (or attention_backward) is not written yet.")

# %% check mha_projections_backward_visible

# %% check mha_projections_backward_hidden

# %% [markdown]
# ## 4. Your functions inside a real layer
#
# `YourSelfAttention` below is bplib's `MultiHeadSelfAttention` (same parameters, same
# initialisation) whose forward is `mha_forward` and whose backward is your
# `mha_projections_backward`, with your `attention_backward` (and so your `softmax_backward`)
# in the middle. `check_layer` compares every gradient of the layer with numerical derivatives
# (central differences), independently of the tests above.

# %% locked
class YourSelfAttention(bplib.layers.MultiHeadSelfAttention):
    """MultiHeadSelfAttention with the forward mha_forward and the backward of your functions."""

    def forward(self, x):
        p = self.params
        out, self._yours = mha_forward(x.astype(self.dtype, copy=False), p["Wqkv"], p["bqkv"], p["Wo"], p["bo"],
                                       self.num_heads, self.causal)
        return out

    def backward(self, dout):
        dx, *grads = mha_projections_backward(dout, self._yours, attention_backward)
        self.grads.update(zip(("Wqkv", "bqkv", "Wo", "bo"), grads))
        return dx

# %%
if checks.passed("attention_backward_visible", "mha_projections_backward_visible"):
    rng = np.random.default_rng(0)
    print(check_layer(YourSelfAttention(6, 2, causal=True, rng=rng, dtype=np.float64),
                      rng.standard_normal((2, 4, 6))))
else:
    print("Make attention_backward and mha_projections_backward pass their visible tests first.")

# %% [markdown]
# ## 5. Train a tiny transformer with your backward pass
#
# The task: read a sequence of random tokens (10 kinds, 8 positions) and, at every position
# $t \ge 2$, say which token stood two positions earlier. Nothing at position $t$ itself tells:
# the model must attend to position $t - 2$, so it only learns if the gradients through the
# attention are right. The model: token and position embeddings (D = 32), one causal
# `TransformerBlock` with two heads whose attention is `YourSelfAttention`, layer norm, and a
# dense layer to 10 scores per position; Adam, fresh random sequences at every step. Guessing
# gives 10% accuracy; the accuracy is measured on validation sequences that training never sees.

# %%
class TinyTransformer:
    """ids (N, T) -> scores (N, T, V): embeddings, one causal block (your attention), layer norm, dense."""

    def __init__(self, V=10, T=8, D=32, num_heads=2, seed=0):
        rng = np.random.default_rng(seed)
        L = bplib.layers
        self.V, self.D = V, D
        self.emb, self.pos = L.Embedding(V, D, rng=rng), L.PositionalEmbedding(T, D, rng=rng)
        self.emb.params["W"] *= 0.1
        self.block = L.TransformerBlock(D, num_heads, 4 * D, causal=True, rng=rng)
        self.block.attn = YourSelfAttention(D, num_heads, causal=True, rng=rng)
        self.ln, self.head = L.LayerNorm(D), L.Dense(D, V, rng=rng)
        self.parts = dict(emb=self.emb, pos=self.pos, block=self.block, ln=self.ln, head=self.head)

    @property
    def params(self):
        return {f"{n}.{k}": v for n, part in self.parts.items() for k, v in part.params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n, part in self.parts.items() for k, v in part.grads.items()}

    def forward(self, ids):
        N, T = ids.shape
        z = self.ln.forward(self.block.forward(self.pos.forward(self.emb.forward(ids))))
        return self.head.forward(z.reshape(N * T, self.D)).reshape(N, T, self.V)

    def backward(self, dscores):
        N, T, V = dscores.shape
        dz = self.ln.backward(self.head.backward(dscores.reshape(N * T, V)).reshape(N, T, self.D))
        self.emb.backward(self.pos.backward(self.block.backward(dz)))


def delayed_copy(rng, N, V=10, T=8, delay=2):
    ids = rng.integers(0, V, (N, T))
    return ids, ids[:, :T - delay]           # targets of positions delay..T-1


def train_tiny_transformer(steps=200, batch_size=64, lr=3e-3, delay=2, seed=0):
    model = TinyTransformer(seed=seed)
    opt = bplib.optim.Adam(model, lr=lr)
    rng = np.random.default_rng(seed + 1)
    val_ids, val_y = delayed_copy(np.random.default_rng(seed + 2), 500, delay=delay)
    for step in range(1, steps + 1):
        ids, y = delayed_copy(rng, batch_size, delay=delay)
        scores = model.forward(ids)
        loss, d = bplib.losses.softmax_cross_entropy(scores[:, delay:].reshape(-1, model.V), y.reshape(-1))
        dscores = np.zeros_like(scores)
        dscores[:, delay:] = d.reshape(y.shape + (model.V,))
        model.backward(dscores)
        opt.step()
        if step % max(steps // 4, 1) == 0:
            acc = (model.forward(val_ids)[:, delay:].argmax(axis=-1) == val_y).mean()
            print(f"step {step}: training loss {loss:.3f}, validation accuracy {acc:.1%}")
    return acc

if checks.passed("softmax_backward_visible", "attention_backward_visible", "mha_projections_backward_visible"):
    accuracy = train_tiny_transformer(steps=20) if FAST else train_tiny_transformer()
else:
    print("Make the three functions pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (a row of one, masked rows, more queries than keys, d = 1, boolean masks, one
# head and many, a sequence of one, large inputs) run when your notebook is graded.

# %%
checks.summary("attention_backward");
