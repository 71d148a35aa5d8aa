"""Calls of the attention_backward assignment's functions: the caches come from forward passes.

``mha_forward`` is the forward of one multi-head self-attention layer written as a function (the
same numbers as ``bplib.layers.MultiHeadSelfAttention.forward``, PyTorch's y = x W^T + b layout);
the notebook shows it to the learner and trains with it. ``mixing(c)`` is the stand-in for the
attention's backward that the checks hand to ``mha_projections_backward``: the exact gradients of a
simple linear mixing of q, k and v (below), so that this function is graded apart from the
learner's ``attention_backward``. Nothing here computes a graded answer.
"""
import numpy as np

from ... import layers


def mha_forward(x, Wqkv, bqkv, Wo, bo, num_heads, causal=False):
    """One multi-head self-attention layer: x (N, T, D) -> out (N, T, D), and its cache.

    Wqkv (3D, D), bqkv (3D,), Wo (D, D), bo (D,); h = num_heads heads of dh = D / h features.
    """
    N, T, D = x.shape
    h, dh = num_heads, D // num_heads
    qkv = x @ Wqkv.T + bqkv                                      # (N, T, 3D): q, k, v side by side
    q, k, v = qkv.reshape(N, T, 3, h, dh).transpose(2, 0, 3, 1, 4)   # each (N, h, T, dh)
    heads, attn = layers.attention_forward(q, k, v, "causal" if causal else None)   # (N, h, T, dh)
    concat = heads.transpose(0, 2, 1, 3).reshape(N, T, D)      # head i -> features i*dh .. (i+1)*dh - 1
    out = concat @ Wo.T + bo
    cache = dict(x=x, Wqkv=Wqkv, Wo=Wo, concat=concat, attn=attn, num_heads=num_heads)
    return out, cache


def mha_cache(c):
    """The cache of ``mha_forward`` for a case."""
    return mha_forward(c["x"], c["Wqkv"], c["bqkv"], c["Wo"], c["bo"], c["num_heads"], c["causal"])[1]


def mixing(c):
    """The stand-in for the attention's backward on a case: (dheads, attn_cache) -> (dq, dk, dv).

    It is the exact backward of the linear "attention" heads = 2 q - k / 2 + M v (M: the case's
    (T, T) matrix), so a right mha_projections_backward gives the true gradients of that layer.
    """
    M = c["M"]

    def grads(dheads, attn_cache):
        return 2.0 * dheads, -0.5 * dheads, M.T @ dheads

    return grads


CALLS = {
    "softmax_backward": lambda fn, c: fn(c["dout"], layers.softmax_forward(c["x"])[0]),
    "attention_backward": lambda fn, c: fn(c["dout"], layers.attention_forward(c["q"], c["k"], c["v"],
                                                                               c["mask"])[1]),
    "mha_projections_backward": lambda fn, c: fn(c["dout"], mha_cache(c), mixing(c)),
}
