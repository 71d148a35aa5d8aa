"""bplib.layers' attention: softmax, scaled dot-product attention (with and without a
mask, T != S), MultiHeadSelfAttention, TransformerBlock and PositionalEmbedding.

Every backward against numerical gradients in float64 over hypothesis-drawn shapes;
forward passes against slow loops; broken backward passes (the symptoms the
attention assignment names) that the same check must reject; masked positions that
must get exactly zero gradient; clear errors on bad input; and, when torch is
installed, agreement with nn.MultiheadAttention and nn.TransformerEncoderLayer in
float64 (skipped otherwise: torch is not a dependency of the course).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bplib import layers as L
from bplib.gradcheck import check_gradients, check_layer

F64 = np.float64
FEW = settings(max_examples=15, deadline=None)
seeds = st.integers(0, 2**32 - 1)


def rejected(report):
    assert not report.ok, f"a broken backward pass was accepted:\n{report}"
    return "\n".join(r.message for r in report.reports if not r.ok)


def attention_check(q, k, v, mask=None, backward=L.attention_backward, seed=0):
    """check_gradients of L = sum(attention(q, k, v) * dout) for ``backward``."""
    rng = np.random.default_rng(seed)
    out, cache = L.attention_forward(q, k, v, mask)
    dout = rng.standard_normal(out.shape)
    dq, dk, dv = backward(dout, cache)

    def loss():
        return float((L.attention_forward(q, k, v, mask)[0] * dout).sum())
    return check_gradients(loss, dict(dq=q, dk=k, dv=v), dict(dq=dq, dk=dk, dv=dv), title="attention backward")


def attention_loops(q, k, v, allowed=None):
    """Slow, obviously correct attention: one query at a time."""
    N, T, d = q.shape
    S = k.shape[1]
    out = np.zeros((N, T, v.shape[2]))
    for n in range(N):
        for t in range(T):
            keys = [s for s in range(S) if allowed is None or allowed[t, s]]
            scores = np.array([q[n, t] @ k[n, s] / np.sqrt(d) for s in keys])
            w = np.exp(scores - scores.max())
            w /= w.sum()
            out[n, t] = sum(wi * v[n, s] for wi, s in zip(w, keys))
    return out


@st.composite
def attention_cases(draw):
    lead = draw(st.sampled_from([(1,), (2,), (2, 2)]))
    T, S = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    d, dv = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    mask = draw(st.sampled_from([None, "causal", "random"]))
    return lead, T, S, d, dv, mask


def draw_qkv(rng, lead, T, S, d, dv):
    return (rng.standard_normal(lead + (T, d)), rng.standard_normal(lead + (S, d)),
            rng.standard_normal(lead + (S, dv)))


def random_mask(rng, T, S):
    m = rng.random((T, S)) < 0.6
    m[np.arange(T), rng.integers(0, S, T)] = True      # every query sees at least one key
    return m


def randomize(layer, rng, scale=0.5):
    """Non-trivial params (random biases, gamma != 1): a gradient that ignores them shows."""
    for p in layer.params.values():
        p += scale * rng.standard_normal(p.shape)


# ----------------------------------------------------------------------------
# 1. backward passes against numerical gradients
# ----------------------------------------------------------------------------
@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
def test_softmax_backward_matches_numerical(shape, seed):
    rng = np.random.default_rng(seed)
    x, dout = 2 * rng.standard_normal(shape), rng.standard_normal(shape)
    y, cache = L.softmax_forward(x)
    dx = L.softmax_backward(dout, cache)
    check_gradients(lambda: float((L.softmax_forward(x)[0] * dout).sum()), dict(dx=x), dict(dx=dx)).assert_ok()
    np.testing.assert_allclose(y.sum(axis=-1), 1.0)


def test_softmax_is_stable_and_gives_masked_entries_zero_weight():
    y, _ = L.softmax_forward(np.array([[1000.0, 0.0, -np.inf], [-1000.0, -1000.0, -np.inf]]))
    np.testing.assert_allclose(y, [[1, 0, 0], [0.5, 0.5, 0]])
    assert y[0, 2] == 0 and y[1, 2] == 0


@FEW
@given(case=attention_cases(), seed=seeds)
def test_attention_backward_matches_numerical(case, seed):
    lead, T, S, d, dv, mask = case
    rng = np.random.default_rng(seed)
    q, k, v = draw_qkv(rng, lead, T, S, d, dv)
    if mask == "random":
        mask = random_mask(rng, T, S)
    attention_check(q, k, v, mask, seed=seed).assert_ok()


@pytest.mark.parametrize("T, S", [(3, 3), (2, 5), (5, 2)])
@pytest.mark.parametrize("mask", [None, "causal"])
def test_attention_backward_named_cases(T, S, mask):
    rng = np.random.default_rng(T * 10 + S)
    attention_check(*draw_qkv(rng, (2,), T, S, 3, 2), mask).assert_ok()


@FEW
@given(case=attention_cases(), seed=seeds)
def test_attention_forward_matches_loops(case, seed):
    lead, T, S, d, dv, mask = case
    rng = np.random.default_rng(seed)
    q, k, v = draw_qkv(rng, (lead[0],), T, S, d, dv)
    allowed = {None: None, "causal": np.tril(np.ones((T, S), bool)), "random": random_mask(rng, T, S)}[mask]
    out, cache = L.attention_forward(q, k, v, mask if mask != "random" else allowed)
    np.testing.assert_allclose(out, attention_loops(q, k, v, allowed), rtol=1e-10, atol=1e-12)


def test_masked_positions_get_exactly_zero_gradient():
    rng = np.random.default_rng(0)
    q, k, v = draw_qkv(rng, (2,), 3, 5, 4, 2)
    out, cache = L.attention_forward(q, k, v, "causal")      # keys 3 and 4 come after every query
    assert np.all(cache["p"][..., ~np.tril(np.ones((3, 5), bool))] == 0)
    dq, dk, dv = L.attention_backward(rng.standard_normal(out.shape), cache)
    assert np.all(dk[:, 3:] == 0) and np.all(dv[:, 3:] == 0)
    assert np.all(dk[:, :3] != 0)
    # a custom mask hiding key 1 from every query
    mask = np.ones((3, 5), bool)
    mask[:, 1] = False
    out, cache = L.attention_forward(q, k, v, mask)
    dq, dk, dv = L.attention_backward(rng.standard_normal(out.shape), cache)
    assert np.all(dk[:, 1] == 0) and np.all(dv[:, 1] == 0)


def test_causal_output_does_not_depend_on_later_positions():
    rng = np.random.default_rng(1)
    layer = L.MultiHeadSelfAttention(6, 2, causal=True, rng=rng, dtype=F64)
    x = rng.standard_normal((2, 5, 6))
    out = layer.forward(x)
    x2 = x.copy()
    x2[:, 3:] += rng.standard_normal((2, 2, 6))
    np.testing.assert_allclose(layer.forward(x2)[:, :3], out[:, :3], rtol=1e-12)
    assert not np.allclose(layer.forward(x2)[:, 3:], out[:, 3:])


@st.composite
def mhsa_cases(draw):
    h, dh = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return draw(st.integers(1, 2)), draw(st.integers(1, 4)), h * dh, h, draw(st.booleans())


@FEW
@given(case=mhsa_cases(), seed=seeds)
def test_multihead_self_attention_backward_matches_numerical(case, seed):
    N, T, D, h, causal = case
    rng = np.random.default_rng(seed)
    layer = L.MultiHeadSelfAttention(D, h, causal=causal, rng=rng, dtype=F64)
    randomize(layer, rng)
    check_layer(layer, rng.standard_normal((N, T, D)), seed=seed).assert_ok()


@settings(max_examples=10, deadline=None)
@given(case=mhsa_cases(), M=st.integers(1, 5), seed=seeds)
def test_transformer_block_backward_matches_numerical(case, M, seed):
    N, T, D, h, causal = case
    rng = np.random.default_rng(seed)
    block = L.TransformerBlock(D, h, M, causal=causal, rng=rng, dtype=F64)
    randomize(block, rng, 0.3)
    check_layer(block, rng.standard_normal((N, T, D)), seed=seed).assert_ok()


@FEW
@given(N=st.integers(1, 3), T=st.integers(1, 5), extra=st.integers(0, 3), D=st.integers(1, 4), seed=seeds)
def test_positional_embedding_backward_matches_numerical(N, T, extra, D, seed):
    rng = np.random.default_rng(seed)
    layer = L.PositionalEmbedding(T + extra, D, rng=rng, dtype=F64)
    x = rng.standard_normal((N, T, D))
    check_layer(layer, x, seed=seed).assert_ok()
    np.testing.assert_allclose(layer.forward(x), x + layer.params["W"][:T])
    layer.backward(np.ones((N, T, D)))
    assert np.all(layer.grads["W"][T:] == 0) and np.all(layer.grads["W"][:T] == N)


def test_a_small_transformer_backward_matches_numerical():
    """Positional embedding, two causal blocks, as a learner would stack them."""
    rng = np.random.default_rng(2)
    net = L.Sequential(L.PositionalEmbedding(6, 4, rng=rng, dtype=F64),
                       L.TransformerBlock(4, 2, 5, causal=True, rng=rng, dtype=F64),
                       L.TransformerBlock(4, 1, 3, rng=rng, dtype=F64))
    for layer in net.layers:
        randomize(layer, rng, 0.2)
    check_layer(net, rng.standard_normal((2, 5, 4))).assert_ok()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("T", [1, 5])
def test_the_class_attention_equals_the_book_functions(causal, T):
    """MultiHeadSelfAttention runs a faster layout (scores transposed); same numbers, same cache."""
    rng = np.random.default_rng(T)
    q, k, v = draw_qkv(rng, (2, 3), T, T, 4, 4)
    dout = rng.standard_normal((2, 3, T, 4))
    out, cache = L.attention_forward(q, k, v, "causal" if causal else None)
    fout, fcache = L._attention_fast_forward(q, k, v, causal, {})
    np.testing.assert_allclose(fout, out, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(fcache["p"], cache["p"], rtol=1e-12, atol=1e-14)
    assert fcache["scale"] == cache["scale"] and fcache["q"] is q
    assert (fcache["mask"] is None) == (not causal)
    if causal:
        np.testing.assert_array_equal(fcache["mask"], cache["mask"])
    for book, fast in zip(L.attention_backward(dout, cache), L._attention_fast_backward(dout, fcache)):
        np.testing.assert_allclose(fast, book, rtol=1e-10, atol=1e-13)
    for book, fast in zip(L.attention_backward(dout, cache), L.attention_backward(dout, fcache)):
        np.testing.assert_allclose(fast, book, rtol=1e-10, atol=1e-13)     # a learner's function may get fcache


# ----------------------------------------------------------------------------
# 2. broken backward passes: the same check must reject each
# ----------------------------------------------------------------------------
def _pieces(dout, cache):
    q, k, v, p, scale = cache["q"], cache["k"], cache["v"], cache["p"], cache["scale"]
    dp = dout @ np.swapaxes(v, -1, -2)
    return q, k, v, p, scale, dp


def forgot_scale(dout, cache):
    q, k, v, p, scale, dp = _pieces(dout, cache)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True))                       # no 1/sqrt(d)
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, np.swapaxes(p, -1, -2) @ dout


def masked_positions_get_gradient(dout, cache):
    q, k, v, p, scale, dp = _pieces(dout, cache)
    p_all, _ = L.softmax_forward(q @ np.swapaxes(k, -1, -2) * scale)        # the softmax without the mask
    ds = p_all * (dp - (dp * p_all).sum(-1, keepdims=True)) * scale
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, np.swapaxes(p, -1, -2) @ dout


def softmax_jacobian_elementwise(dout, cache):
    q, k, v, p, scale, dp = _pieces(dout, cache)
    ds = dp * p * (1 - p) * scale                                          # only the diagonal of the Jacobian
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, np.swapaxes(p, -1, -2) @ dout


def transposed_k(dout, cache):
    q, k, v, p, scale, dp = _pieces(dout, cache)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * scale
    return ds @ k, ds @ q, np.swapaxes(p, -1, -2) @ dout                   # dk = ds q, not ds^T q


def p_not_transposed(dout, cache):
    q, k, v, p, scale, dp = _pieces(dout, cache)
    ds = p * (dp - (dp * p).sum(-1, keepdims=True)) * scale
    return ds @ k, np.swapaxes(ds, -1, -2) @ q, p @ dout                   # dv = p dout, not p^T dout


BROKEN = {
    "forgot the 1/sqrt(d) scale": (forgot_scale, None, ["dq", "dk"]),
    "masked positions receive gradient": (masked_positions_get_gradient, "causal", ["dq", "dk"]),
    "softmax Jacobian applied elementwise": (softmax_jacobian_elementwise, None, ["dq", "dk"]),
    "transposed k": (transposed_k, None, ["dk"]),
    "p not transposed in dv": (p_not_transposed, None, ["dv"]),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_attention_backward_is_rejected(name):
    bug, mask, wrong = BROKEN[name]
    rng = np.random.default_rng(3)
    q, k, v = draw_qkv(rng, (2,), 4, 4, 3, 2)                 # T == S, so transposes keep the shape
    report = attention_check(q, k, v, mask, backward=bug)
    rejected(report)
    assert sorted(r.name for r in report.reports if not r.ok) == sorted(wrong)
    if name == "forgot the 1/sqrt(d) scale":
        assert "scaled by 1.732" in report["dq"].message       # sqrt(3)


def test_masked_positions_gradient_is_named():
    """Keys no query may see: the broken backward gives them gradient where the true one is 0."""
    rng = np.random.default_rng(4)
    q, k, v = draw_qkv(rng, (2,), 2, 4, 3, 2)
    mask = np.array([[True, True, False, False], [True, True, False, False]])
    report = attention_check(q, k, v, mask, backward=masked_positions_get_gradient)
    rejected(report)
    idx, expected, got = report["dk"].worst
    assert idx[1] in (2, 3) and expected == 0 and got != 0      # the worst element is a hidden key


def test_the_layers_reject_a_broken_attention_backward():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 6))
    for cls, args in [(L.MultiHeadSelfAttention, (6, 2)), (L.TransformerBlock, (6, 2, 5))]:
        good = cls(*args, rng=np.random.default_rng(0), dtype=F64,     # the book's function on the class's cache
                   attention_backward_fn=lambda dout, cache: L.attention_backward(dout, cache))
        check_layer(good, x).assert_ok()
        bad = cls(*args, rng=np.random.default_rng(0), dtype=F64, attention_backward_fn=softmax_jacobian_elementwise)
        rejected(check_layer(bad, x))


def test_broken_softmax_backward_is_rejected():
    rng = np.random.default_rng(6)
    x, dout = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y, cache = L.softmax_forward(x)
    loss = lambda: float((L.softmax_forward(x)[0] * dout).sum())       # noqa: E731
    for bad in (dout * y * (1 - y), dout * y, y * (dout - dout.sum(-1, keepdims=True))):
        rejected(check_gradients(loss, dict(dx=x), dict(dx=bad)))


# ----------------------------------------------------------------------------
# 3. layers: dtypes, modes, weights
# ----------------------------------------------------------------------------
def test_float32_by_default_and_float64_on_request():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 4))
    for dtype in (np.float32, np.float64):
        for layer in (L.MultiHeadSelfAttention(4, 2, dtype=dtype), L.TransformerBlock(4, 2, 8, True, dtype=dtype),
                      L.PositionalEmbedding(5, 4, dtype=dtype)):
            out = layer.forward(x)
            dx = layer.backward(np.ones_like(out))
            assert out.dtype == dtype and dx.dtype == dtype, layer
            assert all(g.dtype == dtype for g in layer.grads.values()), layer
    assert L.MultiHeadSelfAttention(4, 2).params["Wqkv"].dtype == np.float32
    q = rng.standard_normal((1, 2, 3)).astype(np.float32)
    out, _ = L.attention_forward(q, q, q, "causal")
    assert out.dtype == np.float32


def test_transformer_block_params_train_eval_and_repr():
    block = L.TransformerBlock(8, 2, 16, causal=True)
    assert set(block.params) == {"ln1.gamma", "ln1.beta", "attn.Wqkv", "attn.bqkv", "attn.Wo", "attn.bo",
                                 "ln2.gamma", "ln2.beta", "fc1.W", "fc1.b", "fc2.W", "fc2.b"}
    assert block.params["attn.Wqkv"] is block.attn.params["Wqkv"]          # the very arrays (for optimizers)
    assert block.params["attn.Wqkv"].shape == (24, 8) and block.params["fc1.W"].shape == (8, 16)
    block.eval()
    assert not block.training and not block.attn.training and not block.ln1.training
    block.train()
    assert block.attn.training
    assert "causal=True" in repr(block) and "MultiHeadSelfAttention(8, num_heads=2" in repr(block.attn)


def test_torch_names_round_trip():
    a, b = L.MultiHeadSelfAttention(6, 3, rng=np.random.default_rng(0)), L.MultiHeadSelfAttention(6, 3)
    sd = a.torch_state_dict()
    assert set(sd) == {"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}
    Wqkv = b.params["Wqkv"]
    b.load_torch_state_dict(sd)
    assert b.params["Wqkv"] is Wqkv                     # copied in place
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    with pytest.raises(ValueError, match="in_proj_bias"):
        b.load_torch_state_dict({"in_proj_weight": sd["in_proj_weight"]})
    with pytest.raises(ValueError, match=r"out_proj.weight has shape \(6, 5\)"):
        b.load_torch_state_dict(dict(sd, **{"out_proj.weight": np.zeros((6, 5))}))


# ----------------------------------------------------------------------------
# 4. clear errors
# ----------------------------------------------------------------------------
def test_attention_errors_name_the_problem():
    rng = np.random.default_rng(8)
    q, k, v = draw_qkv(rng, (2,), 3, 4, 5, 2)
    with pytest.raises(ValueError, match="same length S"):
        L.attention_forward(q, k, v[:, :3])
    with pytest.raises(ValueError, match="same d"):
        L.attention_forward(q, k[..., :4], v)
    with pytest.raises(ValueError, match="same leading axes"):
        L.attention_forward(q, k[:1], v[:1])
    with pytest.raises(ValueError, match=r"q must be a floating-point array of shape \(N, T, d\)"):
        L.attention_forward(q[0], k[0], v[0])
    with pytest.raises(ValueError, match="k must be a floating-point"):
        L.attention_forward(q, k.astype(int), v)
    with pytest.raises(ValueError, match=r"mask of shape \(T, S\) = \(3, 4\)"):
        L.attention_forward(q, k, v, np.ones((4, 3), bool))
    with pytest.raises(ValueError, match="boolean array"):
        L.attention_forward(q, k, v, np.ones((3, 4)))
    with pytest.raises(ValueError, match="'causal'"):
        L.attention_forward(q, k, v, "future")
    bad = np.ones((3, 4), bool)
    bad[1] = False
    with pytest.raises(ValueError, match="no key at all"):
        L.attention_forward(q, k, v, bad)


def test_layer_errors_name_the_problem():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        L.MultiHeadSelfAttention(6, 4)
    mha = L.MultiHeadSelfAttention(6, 2)
    with pytest.raises(ValueError, match=r"expected input x of shape \(N, T, 6\), got \(2, 3, 5\)"):
        mha.forward(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"expected input x of shape \(N, T, 6\), got \(3, 6\)"):
        mha.forward(np.zeros((3, 6)))
    with pytest.raises(RuntimeError, match="before forward"):
        L.MultiHeadSelfAttention(6, 2).backward(np.zeros((1, 2, 6)))
    mha.forward(np.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match=r"expected dout of shape \(2, 3, 6\)"):
        mha.backward(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match="longer than max_len=4"):
        L.PositionalEmbedding(4, 6).forward(np.zeros((1, 5, 6)))
    with pytest.raises(ValueError, match=r"TransformerBlock: expected input x of shape \(N, T, 8\)"):
        L.TransformerBlock(8, 2, 16).forward(np.zeros((1, 5, 6)))


# ----------------------------------------------------------------------------
# 5. agreement with PyTorch (only where torch is installed)
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_multihead_self_attention_agrees_with_torch(causal):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    N, T, D, h = 2, 5, 8, 2
    mha = torch.nn.MultiheadAttention(D, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        mha.in_proj_bias.normal_()
        mha.out_proj.bias.normal_()
    layer = L.MultiHeadSelfAttention(D, h, causal=causal, dtype=F64).load_torch_state_dict(mha.state_dict())
    rng = np.random.default_rng(9)
    x, dout = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, D))
    xt = torch.tensor(x, requires_grad=True)
    blocked = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None   # torch: True = blocked
    yt, _ = mha(xt, xt, xt, need_weights=False, attn_mask=blocked)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(layer.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.backward(dout), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    tparams = dict(mha.named_parameters())
    for name, tname in layer.TORCH_NAMES.items():
        np.testing.assert_allclose(layer.grads[name], tparams[tname].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_transformer_block_agrees_with_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(1)
    N, T, D, h, M = 2, 4, 6, 3, 10
    tl = torch.nn.TransformerEncoderLayer(D, h, M, dropout=0.0, activation="relu", batch_first=True,
                                          norm_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p in tl.parameters():
            p.add_(0.1 * torch.randn_like(p))
    block = L.TransformerBlock(D, h, M, causal=True, dtype=F64)
    block.attn.load_torch_state_dict(tl.self_attn.state_dict())
    pairs = {"ln1.gamma": tl.norm1.weight, "ln1.beta": tl.norm1.bias, "ln2.gamma": tl.norm2.weight,
             "ln2.beta": tl.norm2.bias, "fc1.W": tl.linear1.weight.T, "fc1.b": tl.linear1.bias,
             "fc2.W": tl.linear2.weight.T, "fc2.b": tl.linear2.bias}           # Dense: x W + b
    for name, t in pairs.items():
        block.params[name][...] = t.detach().numpy()
    rng = np.random.default_rng(10)
    x, dout = rng.standard_normal((N, T, D)), rng.standard_normal((N, T, D))
    xt = torch.tensor(x, requires_grad=True)
    blocked = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    yt = tl(xt, src_mask=blocked)
    yt.backward(torch.tensor(dout))
    np.testing.assert_allclose(block.forward(x), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(block.backward(dout), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(block.grads["fc1.W"], tl.linear1.weight.grad.numpy().T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(block.grads["attn.Wqkv"], tl.self_attn.in_proj_weight.grad.numpy(),
                               rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------
# 6. the grader's clean re-run: these references are tripwires there
# ----------------------------------------------------------------------------
def test_the_new_references_are_stripped_for_grading():
    import inspect

    from bplib import tensor
    from grading import strip
    _, removed = strip.strip_source(inspect.getsource(L), "layers")
    for name in ("softmax_backward", "attention_backward", "_attention_fast_backward",
                 "MultiHeadSelfAttention.backward", "TransformerBlock.backward", "PositionalEmbedding.backward"):
        assert f"bplib.layers.{name}" in removed, name
    for name in ("softmax_forward", "attention_forward", "_attention_fast_forward", "MultiHeadSelfAttention.forward"):
        assert f"bplib.layers.{name}" not in removed, name      # forward passes stay usable
    source, removed = strip.strip_source(inspect.getsource(tensor), "tensor")
    assert {"bplib.tensor.Tensor.backward", "bplib.tensor.Tensor.topological_order"} <= set(removed)
    # every local rule (the _backward closures) is guarded, like Value's
    assert source.count("local_rule(") == source.count("def _backward():") > 10
