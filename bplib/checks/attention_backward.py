"""Checks for the attention_backward assignment.

    softmax_backward(dout, y) -> dx                     dout, y: (..., S), y = softmax(x) along the last axis
    attention_backward(dout, cache) -> (dq, dk, dv)     cache of bplib.layers.attention_forward(q, k, v, mask)
    mha_projections_backward(dout, cache, attention_backward_fn) -> (dx, dWqkv, dbqkv, dWo, dbo)
                                                        cache of calls.attention_backward.mha_forward; the
                                                        checks pass a stand-in attention backward (calls.mixing)
"""
import numpy as np

from .. import layers
from .calls.attention_backward import CALLS, mha_cache, mixing
from .core import Ladder, Mistake, visible_and_hidden

A = "attention_backward"


# -- softmax ----------------------------------------------------------------------
def _softmax_case(rng, shape, name=None, masked=0):
    x = rng.standard_normal(shape) * 2
    if masked:                                   # the last `masked` entries of every row are -inf (weight 0)
        x[..., -masked:] = -np.inf
    return dict(name=name or f"shape {shape}", x=x, dout=rng.standard_normal(shape))


def _softmax_visible(rng):
    return [dict(name="two rows of 3: the hand case x = [0, ln 2, 0] (y = [1/4, 1/2, 1/4]), then x = [ln 3, 0, 0]",
                 x=np.array([[0.0, np.log(2.0), 0.0], [np.log(3.0), 0.0, 0.0]]),
                 dout=np.array([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]])),
            _softmax_case(rng, (4, 5)),
            _softmax_case(rng, (2, 3, 6), "shape (2, 3, 6), the last 2 entries of each row masked (-inf)", 2)]


def _y(c):
    return layers.softmax_forward(c["x"])[0]


def _softmax_ref(c):
    return {"dx": layers.softmax_backward(c["dout"], dict(y=_y(c)))}


_SM_COUPLED = ("Every output y[j] of a softmax row depends on every input x[i] of that row (through the shared "
               "denominator), so dL/dx[i] is a sum over all j of dout[j] times dy[j]/dx[i], not one term.")
_SM_RULE = ("dy[j]/dx[i] = y[j] (1[i == j] - y[i]). Put it into dL/dx[i] = sum over j of dout[j] dy[j]/dx[i]: "
            "the i == j part gives one term, the -y[i] y[j] part a sum over the row that is the same for "
            "every i.")
_softmax_mistakes = [
    Mistake("dx is what an element-wise function would give: only the diagonal of the softmax Jacobian was "
            "used, as if y[i] depended on x[i] alone.",
            lambda c: {"dx": c["dout"] * _y(c) * (1 - _y(c))}, concept=_SM_COUPLED, rule=_SM_RULE),
    Mistake("The rows of dx do not sum to 0: the term that comes from the shared denominator (a sum over the "
            "row) is missing.", lambda c: {"dx": c["dout"] * _y(c)},
            concept="Softmax outputs always sum to 1, so moving all inputs of a row together changes nothing: "
                    "each row of dx must sum to 0. The shared denominator is the path that makes it so.",
            rule=_SM_RULE),
    Mistake("dx has the wrong sign everywhere.", lambda c: {"dx": -_softmax_ref(c)["dx"]},
            concept="Raising x[i] raises y[i] (and lowers the others): with dout = 1 at i and 0 elsewhere, dx[i] "
                    "must be positive.",
            rule=_SM_RULE),
    Mistake("dx was summed over the wrong axis: the row sum runs over the batch instead of along each row.",
            lambda c: {"dx": _y(c) * (c["dout"] - (c["dout"] * _y(c)).sum(axis=0, keepdims=True))},
            concept="Softmax normalises each row (the last axis) on its own: rows do not talk to each other.",
            rule=_SM_RULE),
]


# -- attention ----------------------------------------------------------------------
def _attn_case(rng, N, T, S, d, dv, mask=None, lead=(), name=None):
    m = mask
    if isinstance(mask, str) and mask == "random":
        m = rng.random((T, S)) < 0.6
        m[np.arange(T), rng.integers(0, S, T)] = True          # every query sees at least one key
    label = name or f"N={N}, T={T}, S={S}, d={d}, d_v={dv}, mask={'boolean' if isinstance(m, np.ndarray) else m}"
    return dict(name=label, q=rng.standard_normal((N, *lead, T, d)), k=rng.standard_normal((N, *lead, S, d)),
                v=rng.standard_normal((N, *lead, S, dv)), mask=m, dout=rng.standard_normal((N, *lead, T, dv)))


def _attn_visible(rng):
    return [_attn_case(rng, 2, 4, 4, 3, 2, "causal", name="self-attention, causal: N=2, T=S=4, d=3, d_v=2"),
            _attn_case(rng, 2, 3, 5, 4, 2, None, name="no mask, T=3 queries, S=5 keys, d=4, d_v=2"),
            _attn_case(rng, 1, 4, 6, 2, 3, "random", lead=(2,),
                       name="(N, h) = (1, 2) leading axes, a boolean mask, T=4, S=6")]


def _parts(c, scale=None, mask="same"):
    """p, dp = dL/dp, and the attention cache of a case (optionally another scale or mask)."""
    _, cache = layers.attention_forward(c["q"], c["k"], c["v"], c["mask"] if mask == "same" else mask)
    p = cache["p"]
    dp = c["dout"] @ np.swapaxes(c["v"], -1, -2)
    return p, dp, cache["scale"] if scale is None else scale


def _attn_from(c, p, dscores):
    return {"dq": dscores @ c["k"], "dk": np.swapaxes(dscores, -1, -2) @ c["q"],
            "dv": np.swapaxes(p, -1, -2) @ c["dout"]}


def _attn_ref(c):
    dq, dk, dv = layers.attention_backward(c["dout"], layers.attention_forward(c["q"], c["k"], c["v"],
                                                                             c["mask"])[1])
    return {"dq": dq, "dk": dk, "dv": dv}


def _no_scale(c):
    p, dp, _ = _parts(c)
    return _attn_from(c, p, layers.softmax_backward(dp, dict(y=p)))


def _mask_ignored(c):
    p, dp, s = _parts(c, mask=None)
    return _attn_from(c, p, layers.softmax_backward(dp, dict(y=p)) * s)


def _dk_transposed(c):
    p, dp, s = _parts(c)
    return {"dk": (layers.softmax_backward(dp, dict(y=p)) * s) @ c["q"]}


def _elementwise(c):
    p, dp, s = _parts(c)
    return _attn_from(c, p, dp * p * (1 - p) * s)


_ATTN_SCORES = ("scores = q k^T / sqrt(d): score[t, s] is the dot product of query t with key s, scaled. The "
                "gradient reaches q and k only through the scores, so it carries the same scale.")
_attn_mistakes = [
    Mistake("dq and dk are exactly sqrt(d) times too large (dv is right): the 1/sqrt(d) scale of the scores is "
            "missing in the backward.", _no_scale, concept=_ATTN_SCORES,
            rule="d score[t, s] / d q[t, i] = k[s, i] / sqrt(d), and d score[t, s] / d k[s, i] = q[t, i] / sqrt(d)."),
    Mistake("Masked positions receive gradient: the probabilities were recomputed without the mask, so keys "
            "a query may not see (the future, for the causal mask) get a share.", _mask_ignored,
            concept="A masked score is -inf: its weight p is exactly 0 whatever q and k are, so no gradient can "
                    "flow through it. The cache's p already holds those zeros.",
            rule="Use the forward's own p (cache[\"p\"]): where it is 0 the softmax backward gives exactly 0."),
    Mistake("dk is transposed: its rows follow the queries t, not the keys s (with T = S the shape even fits).",
            _dk_transposed,
            concept="dk has one row per key s, like k. Key s is used by every query t, through score[t, s]: "
                    "dL/dk[s] is a sum over the queries t.",
            rule="score[t, s] = sum over i of q[t, i] k[s, i] / sqrt(d), so dL/dk[s, i] is a sum over t of "
                 "dscores[t, s] q[t, i] / sqrt(d). Which axis of dscores does that sum run over?"),
    Mistake("dv is wrong: its rows follow the queries t, not the values s. Value s is used by every query t with "
            "weight p[t, s].", lambda c: {"dv": _parts(c)[0] @ c["dout"]},
            concept="out[t] = sum over s of p[t, s] v[s]: value s is used by every query t. The chain rule adds "
                    "up those uses, so dL/dv[s] is a sum over t.",
            rule="d out[t, j] / d v[s, j] = p[t, s]: dL/dv[s, j] is a sum over t of p[t, s] dout[t, j]."),
    Mistake("The softmax inside the attention was differentiated element-wise (only the diagonal of its "
            "Jacobian), as if each weight depended on its own score alone.", _elementwise,
            concept=_SM_COUPLED, rule=_SM_RULE),
]


# -- the projections of one multi-head self-attention layer ------------------------------
def _mha_case(rng, N, T, D, h, causal, name=None):
    return dict(name=name or f"N={N}, T={T}, D={D}, h={h} heads, causal={causal}",
                x=rng.standard_normal((N, T, D)), Wqkv=rng.standard_normal((3 * D, D)) / np.sqrt(D),
                bqkv=rng.standard_normal(3 * D), Wo=rng.standard_normal((D, D)) / np.sqrt(D),
                bo=rng.standard_normal(D), num_heads=h, causal=causal, dout=rng.standard_normal((N, T, D)),
                M=rng.standard_normal((T, T)))


def _mha_visible(rng):
    return [_mha_case(rng, 2, 3, 4, 2, True, "N=2, T=3, D=4, h=2 heads of 2 features, causal"),
            _mha_case(rng, 3, 5, 6, 3, False),
            _mha_case(rng, 1, 4, 4, 1, True, "one head: N=1, T=4, D=4, h=1")]


def _mha_parts(c, order=(1, 3, 0, 2, 4)):
    cache = mha_cache(c)
    N, T, D = c["dout"].shape
    h = c["num_heads"]
    d2 = c["dout"].reshape(N * T, D)
    dheads = (d2 @ c["Wo"]).reshape(N, T, h, D // h).transpose(0, 2, 1, 3)
    dq, dk, dv = mixing(c)(dheads, cache["attn"])
    dqkv = np.stack([dq, dk, dv]).transpose(*order).reshape(N * T, 3 * D)
    return cache, d2, dqkv, c["x"].reshape(N * T, D)


def _mha_ref(c):
    cache, d2, dqkv, x2 = _mha_parts(c)
    N, T, D = c["dout"].shape
    return {"dx": (dqkv @ c["Wqkv"]).reshape(N, T, D), "dWqkv": dqkv.T @ x2, "dbqkv": dqkv.sum(axis=0),
            "dWo": d2.T @ cache["concat"].reshape(N * T, D), "dbo": d2.sum(axis=0)}


def _heads_swapped(c):
    _, _, dqkv, x2 = _mha_parts(c, order=(1, 3, 2, 0, 4))
    N, T, D = c["dout"].shape
    return {"dx": (dqkv @ c["Wqkv"]).reshape(N, T, D), "dWqkv": dqkv.T @ x2, "dbqkv": dqkv.sum(axis=0)}


_MHA_LAYOUT = ("These weights are stored as in PyTorch: y = x W^T + b, so W has one ROW per output feature "
               "(Dense's W has one row per input). A gradient has the shape of its variable: dWo is (D, D) "
               "like Wo, dWqkv (3D, D) like Wqkv, and row j belongs to output feature j.")
_MHA_RULE = ("y[r, j] = sum over i of x[r, i] W[j, i] + b[j] (r runs over the N*T positions): d y[r, j] / d W[j, i] "
             "= x[r, i], and b[j] is used once per position, N*T times.")
_mha_mistakes = [
    Mistake("dWo comes out transposed: its rows follow the input features of the output projection, while Wo "
            "(y = x Wo^T) has one row per output feature. (Wo is square, so only the values show it.)",
            lambda c: {"dWo": _mha_ref(c)["dWo"].T}, concept=_MHA_LAYOUT, rule=_MHA_RULE),
    Mistake("dWqkv comes out transposed: (D, 3D) instead of the (3D, D) of Wqkv, which has one row per output "
            "feature of q, k and v.", lambda c: {"dWqkv": _mha_ref(c)["dWqkv"].T}, concept=_MHA_LAYOUT,
            rule=_MHA_RULE),
    Mistake("dbo still has one row per time step: it was summed over the batch but not over the time steps "
            "(positions) of the sequence.", lambda c: {"dbo": c["dout"].sum(axis=0)},
            concept="The bias is added at every position of every sequence: one value used N*T times. The "
                    "chain rule adds up all N*T uses.", rule=_MHA_RULE),
    Mistake("dbqkv still has one row per time step: it was summed over the batch but not over the time steps.",
            lambda c: {"dbqkv": _mha_parts(c)[2].reshape(*c["dout"].shape[:2], -1).sum(axis=0)},
            concept="The bias is added at every position of every sequence: one value used N*T times. The "
                    "chain rule adds up all N*T uses.", rule=_MHA_RULE),
    Mistake("The heads were merged back in the wrong order: the gradients of q, k, v and of the heads land in "
            "other rows of dWqkv than the forward took them from (dx and dbqkv are wrong too).",
            _heads_swapped,
            concept="The backward must undo the forward's reshapes exactly: the forward split the 3D columns of "
                    "x Wqkv^T into (q, k, v) first, then into heads. Putting dq, dk, dv back must rebuild that "
                    "same column order.",
            rule="Column j of qkv = x Wqkv^T + bqkv is (part, head, feature) with j = part*D + head*dh + "
                 "feature, part 0, 1, 2 for q, k, v. dqkv's column j must hold the gradient of that same "
                 "column."),
]


_LADDERS = {
    "softmax_backward": Ladder(
        concept=_SM_COUPLED + " The function receives y, the forward's output: everything you need is in y.",
        rule=_SM_RULE,
        formula="dx = y * (dout - (dout * y).sum(axis=-1, keepdims=True))"),
    "attention_backward": Ladder(
        concept="Go back through the forward one step at a time: out = p v, then p = softmax(scores), then "
                "scores = q k^T / sqrt(d). Each step is a product or your softmax_backward. " + _ATTN_SCORES,
        rule="From out[t] = sum over s of p[t, s] v[s]: dL/dp[t, s] = dout[t] . v[s] and dL/dv[s] = sum over t "
             "of p[t, s] dout[t]. Then dscores = the softmax backward of dL/dp, row by row, times 1/sqrt(d). "
             "From score[t, s] = q[t] . k[s] / sqrt(d): dL/dq[t] sums over keys s, dL/dk[s] over queries t.",
        formula="dv = p^T @ dout; dscores = softmax_backward(dout @ v^T, p) * scale; dq = dscores @ k; "
                "dk = dscores^T @ q (^T: np.swapaxes(a, -1, -2), for the leading axes)"),
    "mha_projections_backward": Ladder(
        concept="Go back through the forward in reverse: the output projection, the merge of the heads, the "
                "attention (the function you are given), the split into q, k, v and heads, the input "
                "projection. A reshape or transpose is undone by the inverse reshape or transpose. "
                + _MHA_LAYOUT,
        rule=_MHA_RULE + " With y = x W^T: dL/dx = dy W, dL/dW = dy^T x (flatten (N, T) to N*T rows first).",
        formula="d2 = dout.reshape(N*T, D); dWo = d2.T @ concat; dbo = d2.sum(0); dheads = (d2 @ Wo) reshaped "
                "(N, T, h, dh) and transposed to (N, h, T, dh); dq, dk, dv = attention_backward_fn(dheads, "
                "cache['attn']); dqkv = np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4).reshape(N*T, 3D); "
                "dWqkv = dqkv.T @ x; dbqkv = dqkv.sum(0); dx = dqkv @ Wqkv"),
}


def _checks():
    spec = [
        ("softmax_backward", ("dx",), CALLS["softmax_backward"], _softmax_ref, _softmax_mistakes,
         _softmax_visible, (2, 2)),
        ("attention_backward", ("dq", "dk", "dv"), CALLS["attention_backward"], _attn_ref, _attn_mistakes,
         _attn_visible, (3, 4)),
        ("mha_projections_backward", ("dx", "dWqkv", "dbqkv", "dWo", "dbo"), CALLS["mha_projections_backward"],
         _mha_ref, _mha_mistakes, _mha_visible, (3, 3)),
    ]
    return visible_and_hidden(A, spec, _LADDERS)


CHECKS = _checks()
