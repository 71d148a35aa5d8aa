"""bplib.layers: every backward pass against numerical gradients, forward passes
against slow loops, broken backward passes that the same check must reject,
and bad input that must raise a clear ValueError.

Shapes, strides and paddings are drawn by hypothesis; data come from a seeded
numpy generator (the seed is drawn too), always in float64, so a correct
backward pass agrees with central differences to about 1e-9 and the pass mark
is 1e-6 (bplib.gradcheck's default).
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bplib import layers as L
from bplib.gradcheck import check_gradients, check_layer

F64 = np.float64
FEW = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def away_from_zero(rng, shape):
    """Normal values with |x| >= 0.05, so a +-1e-5 step never crosses ReLU's kink."""
    x = rng.standard_normal(shape)
    return x + 0.05 * np.where(x >= 0, 1.0, -1.0)


def distinct(rng, shape):
    """Values at least 0.2 apart (a shuffled ramp plus jitter): no ties in any max-pool window."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) + rng.uniform(0.1, 0.9, n) - n / 2) / 4).reshape(shape)


def randomize_bias(layer, rng):
    for name, p in layer.params.items():
        if name == "b":
            p[...] = rng.standard_normal(p.shape)


def rejected(report):
    """The check failed; return the text of the failing arrays for message asserts."""
    assert not report.ok, f"a broken backward pass was accepted:\n{report}"
    return "\n".join(r.message for r in report.reports if not r.ok)


@st.composite
def conv_cases(draw):
    N, C, F = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    k, s, p = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, k - 2 * p), 7))
    W = draw(st.integers(max(1, k - 2 * p), 7))
    return N, C, F, H, W, k, s, p


@st.composite
def pool_cases(draw, overlap=None):
    k = draw(st.integers(2 if overlap else 1, 3))
    s = draw(st.integers(1, k - 1)) if overlap else draw(st.integers(1, 3))
    N, C = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return N, C, draw(st.integers(k, k + 5)), draw(st.integers(k, k + 5)), k, s


# slow, obviously-correct loop implementations ---------------------------------
def conv_loops(x, W, b, s, p):
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    xp = np.zeros((N, C, H + 2 * p, Wd + 2 * p))
    xp[:, :, p:p + H, p:p + Wd] = x
    Ho, Wo = (H + 2 * p - k) // s + 1, (Wd + 2 * p - k) // s + 1
    out = np.zeros((N, F, Ho, Wo))
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, f, i, j] = np.sum(xp[n, :, i * s:i * s + k, j * s:j * s + k] * W[f]) + b[f]
    return out


def conv_backward_loops(dout, x, W, s, p, accumulate=True):
    """The conv backward one output pixel at a time; accumulate=False overwrites (a bug)."""
    N, C, H, Wd = x.shape
    F, _, k, _ = W.shape
    xp = np.zeros((N, C, H + 2 * p, Wd + 2 * p))
    xp[:, :, p:p + H, p:p + Wd] = x
    dxp, dW = np.zeros_like(xp), np.zeros_like(W)
    for n in range(N):
        for f in range(F):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    win = (n, slice(None), slice(i * s, i * s + k), slice(j * s, j * s + k))
                    dW[f] += xp[win] * dout[n, f, i, j]
                    if accumulate:
                        dxp[win] += W[f] * dout[n, f, i, j]
                    else:
                        dxp[win] = W[f] * dout[n, f, i, j]
    return dxp[:, :, p:p + H, p:p + Wd], dW, dout.sum(axis=(0, 2, 3))


def pool_loops(x, k, s):
    N, C, H, W = x.shape
    Ho, Wo = (H - k) // s + 1, (W - k) // s + 1
    out = np.zeros((N, C, Ho, Wo))
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    out[n, c, i, j] = x[n, c, i * s:i * s + k, j * s:j * s + k].max()
    return out


def pool_backward_loops(dout, x, k, s, route="argmax", accumulate=True):
    """Max-pool backward by loops; route/accumulate select deliberate bugs."""
    dx = np.zeros_like(x)
    N, C, Ho, Wo = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    win = x[n, c, i * s:i * s + k, j * s:j * s + k]
                    if route == "argmax":
                        g = (win == win.max()) * dout[n, c, i, j]
                    elif route == "argmin":
                        g = (win == win.min()) * dout[n, c, i, j]
                    elif route == "all":        # forgot the mask: every input gets the gradient
                        g = np.ones_like(win) * dout[n, c, i, j]
                    else:                       # "mean": the backward of average pooling
                        g = np.ones_like(win) * dout[n, c, i, j] / (k * k)
                    if accumulate:
                        dx[n, c, i * s:i * s + k, j * s:j * s + k] += g
                    else:
                        dx[n, c, i * s:i * s + k, j * s:j * s + k] = g
    return dx


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def lstm_loops(x, Wx, Wh, b):
    """LSTM forward one step at a time with the textbook formulas, gates i, f, o, g."""
    N, T, _ = x.shape
    Hs = Wh.shape[0]
    h, c = np.zeros((N, Hs)), np.zeros((N, Hs))
    out = np.zeros((N, T, Hs))
    for t in range(T):
        a = x[:, t] @ Wx + h @ Wh + b
        i, f, o = sigmoid(a[:, :Hs]), sigmoid(a[:, Hs:2 * Hs]), sigmoid(a[:, 2 * Hs:3 * Hs])
        g = np.tanh(a[:, 3 * Hs:])
        c = f * c + i * g
        h = o * np.tanh(c)
        out[:, t] = h
    return out


def lstm_bptt(dout, x, Wx, Wh, b, bug=None):
    """Backpropagation through time written in the test; ``bug`` selects a classic mistake."""
    N, T, _ = x.shape
    Hs = Wh.shape[0]
    h, c, steps = np.zeros((N, Hs)), np.zeros((N, Hs)), []
    for t in range(T):
        a = x[:, t] @ Wx + h @ Wh + b
        i, f, o = sigmoid(a[:, :Hs]), sigmoid(a[:, Hs:2 * Hs]), sigmoid(a[:, 2 * Hs:3 * Hs])
        g = np.tanh(a[:, 3 * Hs:])
        c_new = f * c + i * g
        steps.append((h, c, i, f, o, g, np.tanh(c_new)))
        h, c = o * np.tanh(c_new), c_new
    dx, dWx, dWh, db = np.zeros_like(x), np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    dh_next, dc_next = np.zeros((N, Hs)), np.zeros((N, Hs))
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, o, g, tc = steps[t]
        dh = dout[:, t] + dh_next
        dtanh_c = (1 - tc) if bug == "tanh_prime" else (1 - tc * tc)
        dc = dc_next + dh * o * dtanh_c
        da = np.concatenate([dc * g * i * (1 - i),
                             np.zeros_like(dc) if bug == "forget_gate" else dc * c_prev * f * (1 - f),
                             dh * tc * o * (1 - o),
                             dc * i * (1 - g * g)], axis=1)
        dx[:, t] = da @ Wx.T
        dWx += x[:, t].T @ da
        dWh += h_prev.T @ da
        db += da.sum(axis=0)
        dh_next = np.zeros_like(dh) if bug == "no_recurrence" else da @ Wh.T
        dc_next = {"no_forget_factor": dc, "cell_path_dropped": 0 * dc}.get(bug, dc * f)
    return dx, np.zeros((N, Hs)), dWx, dWh, db


# ----------------------------------------------------------------------------
# 1. every layer's backward against numerical gradients (hypothesis shapes)
# ----------------------------------------------------------------------------
@FEW
@given(N=st.integers(1, 4), D=st.integers(1, 5), M=st.integers(1, 5), seed=seeds)
def test_dense_backward_matches_numerical(N, D, M, seed):
    rng = np.random.default_rng(seed)
    layer = L.Dense(D, M, rng=rng, dtype=F64)
    randomize_bias(layer, rng)
    check_layer(layer, rng.standard_normal((N, D)), seed=seed + 1).assert_ok()


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=seeds,
       cls=st.sampled_from([L.ReLU, L.Sigmoid, L.Tanh]))
def test_activation_backward_matches_numerical(shape, seed, cls):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape) * 2
    check_layer(cls(), x, seed=seed + 1).assert_ok()


def test_activations_survive_extreme_inputs():
    x = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):   # no overflow, no NaN
        s = L.Sigmoid().forward(x)
        t = L.Tanh().forward(x)
    np.testing.assert_allclose(s, [[0, sigmoid(-50.0), 0.5, sigmoid(50.0), 1]], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(t, np.tanh(x))


@FEW
@given(case=conv_cases(), seed=seeds)
def test_conv2d_backward_matches_numerical(case, seed):
    N, C, F, H, W, k, s, p = case
    rng = np.random.default_rng(seed)
    layer = L.Conv2D(C, F, k, stride=s, padding=p, rng=rng, dtype=F64)
    randomize_bias(layer, rng)
    check_layer(layer, rng.standard_normal((N, C, H, W)), seed=seed + 1).assert_ok()


@FEW
@given(case=pool_cases(), seed=seeds)
def test_maxpool2d_backward_matches_numerical(case, seed):
    N, C, H, W, k, s = case
    rng = np.random.default_rng(seed)
    check_layer(L.MaxPool2D(k, stride=s), distinct(rng, (N, C, H, W)), seed=seed + 1).assert_ok()


@FEW
@given(case=pool_cases(overlap=True), seed=seeds)
def test_maxpool2d_backward_overlapping_windows(case, seed):
    """stride < kernel: one input can win several windows; its gradients must add up."""
    N, C, H, W, k, s = case
    rng = np.random.default_rng(seed)
    check_layer(L.MaxPool2D(k, stride=s), distinct(rng, (N, C, H, W)), seed=seed + 1).assert_ok()


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=5), seed=seeds)
def test_flatten_backward_matches_numerical(shape, seed):
    rng = np.random.default_rng(seed)
    check_layer(L.Flatten(), rng.standard_normal(shape), seed=seed + 1).assert_ok()


@FEW
@given(V=st.integers(1, 6), D=st.integers(1, 4), N=st.integers(1, 3), T=st.integers(1, 5), seed=seeds)
def test_embedding_backward_matches_numerical(V, D, N, T, seed):
    rng = np.random.default_rng(seed)
    layer = L.Embedding(V, D, rng=rng, dtype=F64)
    ids = rng.integers(0, V, (N, T))              # repeated ids are likely: their rows must add up
    report = check_layer(layer, ids, seed=seed + 1).assert_ok()
    assert [r.name for r in report.reports] == ["dW"]     # ids have no gradient
    assert layer.backward(np.ones((N, T, D))) is None


@FEW
@given(N=st.integers(1, 3), T=st.integers(1, 4), D=st.integers(1, 3), H=st.integers(1, 3), seed=seeds)
def test_lstm_backward_matches_numerical(N, T, D, H, seed):
    rng = np.random.default_rng(seed)
    layer = L.LSTM(D, H, rng=rng, dtype=F64)
    randomize_bias(layer, rng)
    check_layer(layer, rng.standard_normal((N, T, D)), seed=seed + 1).assert_ok()


@settings(max_examples=15, deadline=None)
@given(case=conv_cases(), M=st.integers(1, 4), seed=seeds)
def test_sequential_cnn_backward_matches_numerical(case, M, seed):
    N, C, F, H, W, k, s, p = case
    rng = np.random.default_rng(seed)
    conv = L.Conv2D(C, F, k, stride=s, padding=p, rng=rng, dtype=F64)
    randomize_bias(conv, rng)
    Ho, Wo = L.conv_output_size(H, k, s, p), L.conv_output_size(W, k, s, p)
    pool = L.MaxPool2D(2, stride=1) if min(Ho, Wo) >= 2 else L.MaxPool2D(1)
    Hp, Wp = (Ho - 2 + 1, Wo - 2 + 1) if min(Ho, Wo) >= 2 else (Ho, Wo)
    dense = L.Dense(F * Hp * Wp, M, rng=rng, dtype=F64)
    randomize_bias(dense, rng)
    model = L.Sequential(conv, L.ReLU(), pool, L.Flatten(), dense, L.Sigmoid())
    x = rng.standard_normal((N, C, H, W))
    dout = rng.standard_normal(model.forward(x).shape)
    model.backward(dout)
    # ReLU can leave a filter almost dead: a gradient of 1e-6 is below what differences can measure
    assume(all(np.abs(g).max() > 1e-3 for g in model.grads.values()))
    report = check_layer(model, x, dout=dout).assert_ok()
    assert {r.name for r in report.reports} == {"dx", "d0.W", "d0.b", "d4.W", "d4.b"}


@settings(max_examples=10, deadline=None)
@given(V=st.integers(2, 6), N=st.integers(1, 2), T=st.integers(1, 4), seed=seeds)
def test_sequential_embedding_lstm_backward_matches_numerical(V, N, T, seed):
    rng = np.random.default_rng(seed)
    model = L.Sequential(L.Embedding(V, 3, rng=rng, dtype=F64), L.LSTM(3, 2, rng=rng, dtype=F64), L.Tanh())
    check_layer(model, rng.integers(0, V, (N, T)), seed=seed + 1).assert_ok()


# ----------------------------------------------------------------------------
# 2. the module-level functions (what the exercises ask learners to write)
# ----------------------------------------------------------------------------
@FEW
@given(N=st.integers(1, 4), D=st.integers(1, 5), M=st.integers(1, 5), seed=seeds)
def test_dense_backward_function(N, D, M, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((N, D)), rng.standard_normal((D, M)), rng.standard_normal(M)
    dout = rng.standard_normal((N, M))
    dx, dW, db = L.dense_backward(dout, x, W)
    check_gradients(lambda: np.sum(L.dense_forward(x, W, b) * dout), dict(dx=x, dW=W, db=b),
                    dict(dx=dx, dW=dW, db=db)).assert_ok()


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
def test_activation_backward_functions(shape, seed):
    rng = np.random.default_rng(seed)
    x, dout = away_from_zero(rng, shape), rng.standard_normal(shape)
    for fwd, bwd, uses_out in [(L.relu_forward, L.relu_backward, False),
                               (L.sigmoid_forward, L.sigmoid_backward, True),
                               (L.tanh_forward, L.tanh_backward, True)]:
        dx = bwd(dout, fwd(x) if uses_out else x)
        check_gradients(lambda: np.sum(fwd(x) * dout), dict(dx=x), dict(dx=dx),
                        title=fwd.__name__).assert_ok()


@FEW
@given(case=conv_cases(), seed=seeds)
def test_conv2d_backward_function(case, seed):
    N, C, F, H, W_, k, s, p = case
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((N, C, H, W_)), rng.standard_normal((F, C, k, k)), rng.standard_normal(F)
    dout = rng.standard_normal(L.conv2d_forward(x, W, b, s, p).shape)
    dx, dW, db = L.conv2d_backward(dout, x, W, s, p)
    check_gradients(lambda: np.sum(L.conv2d_forward(x, W, b, s, p) * dout), dict(dx=x, dW=W, db=b),
                    dict(dx=dx, dW=dW, db=db)).assert_ok()


@FEW
@given(case=pool_cases(), seed=seeds)
def test_maxpool2d_backward_function(case, seed):
    N, C, H, W, k, s = case
    rng = np.random.default_rng(seed)
    x = distinct(rng, (N, C, H, W))
    dout = rng.standard_normal(L.maxpool2d_forward(x, k, s).shape)
    dx = L.maxpool2d_backward(dout, x, k, s)
    check_gradients(lambda: np.sum(L.maxpool2d_forward(x, k, s) * dout), dict(dx=x), dict(dx=dx)).assert_ok()
    np.testing.assert_allclose(dx, pool_backward_loops(dout, x, k, s), rtol=1e-12, atol=1e-12)


def test_maxpool2d_ties_go_to_the_first_maximum():
    x = np.zeros((1, 1, 2, 2))
    dx = L.maxpool2d_backward(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(dx, [[[[1, 0], [0, 0]]]])


@FEW
@given(N=st.integers(1, 3), D=st.integers(1, 3), H=st.integers(1, 3), seed=seeds)
def test_lstm_step_backward_function(N, D, H, seed):
    rng = np.random.default_rng(seed)
    x, h_prev, c_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))

    def loss():
        h, c, _ = L.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
        return np.sum(h * dh) + np.sum(c * dc)

    _, _, cache = L.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
    grads = L.lstm_step_backward(dh, dc, cache, Wx)
    names = ["dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"]
    check_gradients(loss, dict(zip(names, [x, h_prev, c_prev, Wx, Wh, b])),
                    dict(zip(names, grads))).assert_ok()


@FEW
@given(N=st.integers(1, 3), T=st.integers(1, 4), D=st.integers(1, 3), H=st.integers(1, 3), seed=seeds)
def test_lstm_backward_function(N, T, D, H, seed):
    rng = np.random.default_rng(seed)
    x, h0 = rng.standard_normal((N, T, D)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    dout = rng.standard_normal((N, T, H))
    _, cache = L.lstm_forward(x, h0, Wx, Wh, b)
    grads = L.lstm_backward(dout, cache)
    names = ["dx", "dh0", "dWx", "dWh", "db"]
    check_gradients(lambda: np.sum(L.lstm_forward(x, h0, Wx, Wh, b)[0] * dout),
                    dict(zip(names, [x, h0, Wx, Wh, b])), dict(zip(names, grads))).assert_ok()


def test_lstm_backward_agrees_with_the_loop_written_here():
    """The test's own BPTT (used below for the broken variants) is itself right."""
    rng = np.random.default_rng(3)
    x, Wx, Wh, b = (rng.standard_normal(s) for s in [(2, 4, 3), (3, 8), (2, 8), (8,)])
    dout = rng.standard_normal((2, 4, 2))
    h0 = np.zeros((2, 2))
    _, cache = L.lstm_forward(x, h0, Wx, Wh, b)
    for mine, theirs in zip(lstm_bptt(dout, x, Wx, Wh, b), L.lstm_backward(dout, cache)):
        if mine.any():                            # lstm_bptt does not compute dh0
            np.testing.assert_allclose(theirs, mine, rtol=1e-10, atol=1e-12)


@FEW
@given(case=conv_cases(), seed=seeds)
def test_im2col_and_col2im_are_adjoint(case, seed):
    """<im2col(x), c> == <x, col2im(c)> for all x, c: col2im is exactly im2col's backward."""
    N, C, _, H, W, k, s, p = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W))
    cols = L.im2col(x, k, s, p)
    assert cols.shape == (N * L.conv_output_size(H, k, s, p) * L.conv_output_size(W, k, s, p), C * k * k)
    c = rng.standard_normal(cols.shape)
    back = L.col2im(c, x.shape, k, s, p)
    assert back.shape == x.shape
    assert np.isclose(np.sum(cols * c), np.sum(x * back), rtol=1e-10, atol=1e-10)


def test_conv_output_size():
    assert L.conv_output_size(28, 3, 1, 1) == 28
    assert L.conv_output_size(28, 5, 1, 0) == 24
    assert L.conv_output_size(7, 3, 2, 0) == 3
    assert L.conv_output_size(8, 3, 2, 0) == 3       # the last column is not reached
    assert L.conv_output_size(5, 3, 2, 1) == 3


# ----------------------------------------------------------------------------
# 2b. the layer classes compute exactly what the book's functions compute
#     (the classes run faster layouts: any memory order, float32 or float64, ties)
# ----------------------------------------------------------------------------
def in_order(a, order):
    """The same values in another memory layout: C order, batch innermost, or Fortran."""
    if order == "C":
        return np.ascontiguousarray(a)
    if order == "F":
        return np.asfortranarray(a)
    axes = tuple(range(1, a.ndim)) + (0,)                   # batch innermost, seen as (N, ...)
    return np.ascontiguousarray(a.transpose(axes)).transpose((a.ndim - 1,) + tuple(range(a.ndim - 1)))


def assert_same(got, want, dtype):
    rtol, atol = (1e-12, 1e-12) if dtype == F64 else (2e-5, 2e-5)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


orders = st.sampled_from(["C", "F", "batch-innermost"])
dtypes = st.sampled_from([np.float32, np.float64])


@FEW
@given(case=conv_cases(), seed=seeds, dtype=dtypes, xo=orders, do=orders)
def test_conv2d_class_equals_the_functions(case, seed, dtype, xo, do):
    N, C, F, H, W, k, s, p = case
    rng = np.random.default_rng(seed)
    layer = L.Conv2D(C, F, k, stride=s, padding=p, rng=rng, dtype=dtype)
    randomize_bias(layer, rng)
    x = in_order(rng.standard_normal((N, C, H, W)).astype(dtype), xo)
    Wt, b = (layer.params[n].astype(F64) for n in "Wb")
    out = layer.forward(x)
    assert out.dtype == dtype
    assert_same(out, L.conv2d_forward(x.astype(F64), Wt, b, s, p), dtype)
    dout = in_order(rng.standard_normal(out.shape).astype(dtype), do)
    dx = layer.backward(dout)
    for got, want in zip((dx, layer.grads["W"], layer.grads["b"]),
                         L.conv2d_backward(dout.astype(F64), x.astype(F64), Wt, s, p)):
        assert_same(got, want, dtype)


@FEW
@given(case=pool_cases(), seed=seeds, dtype=dtypes, xo=orders, do=orders, ties=st.booleans())
def test_maxpool2d_class_equals_the_functions(case, seed, dtype, xo, do, ties):
    N, C, H, W, k, s = case
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (N, C, H, W)) if ties else rng.standard_normal((N, C, H, W))  # ties: first max wins
    x = in_order(x.astype(dtype), xo)
    layer = L.MaxPool2D(k, stride=s)
    out = layer.forward(x)
    np.testing.assert_array_equal(out, L.maxpool2d_forward(x, k, s))
    dout = in_order(rng.standard_normal(out.shape).astype(dtype), do)
    assert_same(layer.backward(dout), L.maxpool2d_backward(dout, x, k, s), dtype)


@FEW
@given(N=st.integers(1, 3), T=st.integers(1, 4), D=st.integers(1, 3), H=st.integers(1, 3), seed=seeds,
       dtype=dtypes)
def test_lstm_class_equals_the_functions(N, T, D, H, seed, dtype):
    rng = np.random.default_rng(seed)
    layer = L.LSTM(D, H, rng=rng, dtype=dtype)
    randomize_bias(layer, rng)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    Wx, Wh, b = (layer.params[n].astype(F64) for n in ("Wx", "Wh", "b"))
    out = layer.forward(x)
    want, cache = L.lstm_forward(x.astype(F64), np.zeros((N, H)), Wx, Wh, b)
    assert_same(out, want, dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = layer.backward(dout)
    dx_, _, dWx, dWh, db = L.lstm_backward(dout.astype(F64), cache)
    for got, want in [(dx, dx_), (layer.grads["Wx"], dWx), (layer.grads["Wh"], dWh), (layer.grads["b"], db)]:
        assert_same(got, want, dtype)


def test_lstm_plugged_in_backward_gets_the_book_cache():
    """A learner's lstm_backward is handed lstm_forward's cache, and trains the same layer."""
    seen = []

    def mine(dout, cache):
        seen.append(sorted(cache))
        return L.lstm_backward(dout, cache)
    rng = np.random.default_rng(0)
    layer = L.LSTM(3, 2, rng=rng, dtype=F64, backward_fn=mine)
    randomize_bias(layer, rng)
    check_layer(layer, rng.standard_normal((2, 4, 3))).assert_ok()
    _, book = L.lstm_forward(np.zeros((1, 1, 3)), np.zeros((1, 2)), *layer.params.values())
    assert seen and seen[0] == sorted(book)


def test_conv2d_without_input_grad_still_gives_weight_grads():
    rng = np.random.default_rng(0)
    full = L.Conv2D(2, 3, 3, padding=1, rng=np.random.default_rng(1), dtype=F64)
    first = L.Conv2D(2, 3, 3, padding=1, rng=np.random.default_rng(1), dtype=F64, input_grad=False)
    x = rng.standard_normal((2, 2, 5, 5))
    dout = rng.standard_normal(full.forward(x).shape)
    first.forward(x)
    assert full.backward(dout) is not None and first.backward(dout) is None
    for k in ("W", "b"):
        np.testing.assert_allclose(first.grads[k], full.grads[k], rtol=1e-12)
    model = L.Sequential(first, L.ReLU(), L.Flatten(), L.Dense(75, 2, rng=rng, dtype=F64))
    report = check_layer(model, x)
    assert [r.name for r in report.reports if not r.ok] == ["dx"]     # only dx is missing, by request
    assert "is None" in report["dx"].message


# ----------------------------------------------------------------------------
# 3. forward passes against slow loops
# ----------------------------------------------------------------------------
@FEW
@given(case=conv_cases(), seed=seeds)
def test_conv2d_forward_matches_loops(case, seed):
    N, C, F, H, W_, k, s, p = case
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((N, C, H, W_)), rng.standard_normal((F, C, k, k)), rng.standard_normal(F)
    expected = conv_loops(x, W, b, s, p)
    np.testing.assert_allclose(L.conv2d_forward(x, W, b, s, p), expected, rtol=1e-10, atol=1e-12)
    layer = L.Conv2D(C, F, k, stride=s, padding=p, dtype=F64)
    layer.params["W"][...], layer.params["b"][...] = W, b
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-12)
    # and the layer's backward agrees with the loop backward
    dout = rng.standard_normal(expected.shape)
    dx = layer.backward(dout)
    for got, want in zip((dx, layer.grads["W"], layer.grads["b"]), conv_backward_loops(dout, x, W, s, p)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_conv2d_forward_known_values():
    """A 3x3 box filter with padding 1 sums each pixel's neighbourhood."""
    x = np.arange(16, dtype=F64).reshape(1, 1, 4, 4)
    out = L.conv2d_forward(x, np.ones((1, 1, 3, 3)), np.array([0.5]), 1, 1)
    assert out.shape == (1, 1, 4, 4)
    assert out[0, 0, 0, 0] == 0 + 1 + 4 + 5 + 0.5
    assert out[0, 0, 1, 1] == sum(range(0, 3)) + sum(range(4, 7)) + sum(range(8, 11)) + 0.5


@FEW
@given(case=pool_cases(), seed=seeds)
def test_maxpool2d_forward_matches_loops(case, seed):
    N, C, H, W, k, s = case
    x = np.random.default_rng(seed).standard_normal((N, C, H, W))
    np.testing.assert_array_equal(L.maxpool2d_forward(x, k, s), pool_loops(x, k, s))
    np.testing.assert_array_equal(L.MaxPool2D(k, stride=s).forward(x), pool_loops(x, k, s))


def test_maxpool2d_stride_defaults_to_kernel():
    x = np.arange(16, dtype=F64).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(L.MaxPool2D(2).forward(x), [[[[5, 7], [13, 15]]]])


@FEW
@given(N=st.integers(1, 3), T=st.integers(1, 4), D=st.integers(1, 3), H=st.integers(1, 3), seed=seeds)
def test_lstm_forward_matches_loops(N, T, D, H, seed):
    rng = np.random.default_rng(seed)
    layer = L.LSTM(D, H, rng=rng, dtype=F64)
    randomize_bias(layer, rng)
    x = rng.standard_normal((N, T, D))
    expected = lstm_loops(x, layer.params["Wx"], layer.params["Wh"], layer.params["b"])
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-10, atol=1e-12)


def test_dense_embedding_flatten_forward():
    rng = np.random.default_rng(0)
    d = L.Dense(3, 2, rng=rng, dtype=F64)
    randomize_bias(d, rng)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(d.forward(x), x @ d.params["W"] + d.params["b"])
    e = L.Embedding(5, 2, rng=rng, dtype=F64)
    ids = np.array([[0, 4, 4], [1, 2, 3]])
    np.testing.assert_array_equal(e.forward(ids)[1, 2], e.params["W"][3])
    assert e.forward(ids).shape == (2, 3, 2)
    assert L.Flatten().forward(np.zeros((2, 3, 4, 5))).shape == (2, 60)


# ----------------------------------------------------------------------------
# 4. broken backward passes: the same check must reject each of them
# ----------------------------------------------------------------------------
def test_reference_loops_pass_the_same_check():
    """The loop backward passes used for the broken variants are correct when not broken."""
    rng = np.random.default_rng(1)
    conv = L.Conv2D(2, 3, 3, stride=1, padding=1, rng=rng, dtype=F64, backward_fn=conv_backward_loops)
    check_layer(conv, rng.standard_normal((2, 2, 5, 5))).assert_ok()
    pool = L.MaxPool2D(3, stride=1, backward_fn=pool_backward_loops)
    check_layer(pool, distinct(rng, (2, 2, 6, 6))).assert_ok()
    lstm = L.LSTM(3, 2, rng=rng, dtype=F64)
    x = rng.standard_normal((2, 4, 3))
    lstm.backward_fn = lambda dout, cache: lstm_bptt(dout, x, *lstm.params.values())
    check_layer(lstm, x).assert_ok()


def _dense(D=4, M=3, fn=None, seed=0):
    rng = np.random.default_rng(seed)
    layer = L.Dense(D, M, rng=rng, dtype=F64, backward_fn=fn)
    randomize_bias(layer, rng)
    return layer, rng.standard_normal((5, D))


@pytest.mark.parametrize("D, M", [(4, 3), (3, 3)])
def test_dense_transposed_weight_gradient_is_rejected(D, M):
    def bad(dout, x, W):
        return dout @ W.T, dout.T @ x, dout.sum(axis=0)        # dW^T: (M, D)
    layer, x = _dense(D, M, bad)
    msg = rejected(check_layer(layer, x))
    assert "transpose" in msg


def test_dense_bias_gradient_not_summed_over_batch_is_rejected():
    layer, x = _dense(fn=lambda dout, x, W: (dout @ W.T, x.T @ dout, dout))
    report = check_layer(layer, x)
    msg = rejected(report)
    assert "batch" in msg and not report["db"].ok and report["dW"].ok and report["dx"].ok


def test_dense_bias_gradient_averaged_over_batch_is_rejected():
    layer, x = _dense(fn=lambda dout, x, W: (dout @ W.T, x.T @ dout, dout.mean(axis=0)))
    assert "scaled by 0.2" in rejected(check_layer(layer, x))       # N = 5


def test_dense_wrong_sign_is_rejected():
    layer, x = _dense(fn=lambda dout, x, W: (-(dout @ W.T), x.T @ dout, dout.sum(axis=0)))
    assert "sign" in rejected(check_layer(layer, x))


def test_dense_zero_weight_gradient_is_rejected():
    layer, x = _dense(fn=lambda dout, x, W: (dout @ W.T, np.zeros_like(W), dout.sum(axis=0)))
    assert "all zeros" in rejected(check_layer(layer, x))


def _relu_input(seed=1):
    return away_from_zero(np.random.default_rng(seed), (4, 5))


def test_relu_mask_forgotten_is_rejected():
    assert "mask" in rejected(check_layer(L.ReLU(backward_fn=lambda dout, x: dout), _relu_input()))


def test_relu_mask_on_dout_instead_of_x_is_rejected():
    rejected(check_layer(L.ReLU(backward_fn=lambda dout, x: dout * (dout > 0)), _relu_input()))


@pytest.mark.parametrize("bad", [
    lambda dout, out: dout * out,                                  # forgot (1 - out)
    lambda dout, out: dout * sigmoid(out) * (1 - sigmoid(out)),    # sigmoid applied twice
    lambda dout, out: dout * out * (out - 1),                      # sign
], ids=["missing-1-minus", "sigmoid-of-output", "sign"])
def test_sigmoid_broken_backward_is_rejected(bad):
    rejected(check_layer(L.Sigmoid(backward_fn=bad), np.random.default_rng(5).standard_normal((3, 4))))


def test_sigmoid_wrong_sign_is_named():
    bad = L.Sigmoid(backward_fn=lambda dout, out: dout * out * (out - 1))
    assert "sign" in rejected(check_layer(bad, np.random.default_rng(5).standard_normal((3, 4))))


@pytest.mark.parametrize("bad", [
    lambda dout, out: dout * (1 - out),                  # tanh' written as 1 - tanh
    lambda dout, out: dout * (1 - np.tanh(out) ** 2),    # tanh applied to the output again
    lambda dout, out: dout * (1 + out * out),
], ids=["1-tanh", "tanh-of-output", "plus"])
def test_tanh_broken_backward_is_rejected(bad):
    rejected(check_layer(L.Tanh(backward_fn=bad), np.random.default_rng(5).standard_normal((3, 4))))


def _conv(fn, C=2, F=2, k=3, s=1, p=1, seed=0):
    rng = np.random.default_rng(seed)
    layer = L.Conv2D(C, F, k, stride=s, padding=p, rng=rng, dtype=F64, backward_fn=fn)
    randomize_bias(layer, rng)
    return layer, rng.standard_normal((2, C, 5, 5))


def test_conv2d_padding_not_cropped_is_rejected():
    def bad(dout, x, W, s, p):                 # the backward of the padded input, never cropped
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        return L.conv2d_backward(dout, xp, W, s, 0)
    layer, x = _conv(bad)
    report = check_layer(layer, x)
    msg = rejected(report)
    assert "has shape (2, 2, 7, 7), expected (2, 2, 5, 5)" in msg
    assert report["dW"].ok and report["db"].ok


def test_conv2d_bias_gradient_not_summed_over_batch_is_rejected():
    def bad(dout, x, W, s, p):
        dx, dW, _ = L.conv2d_backward(dout, x, W, s, p)
        return dx, dW, dout.sum(axis=(2, 3))       # (N, F): forgot the batch axis
    assert "batch" in rejected(check_layer(*_conv(bad)))


@pytest.mark.parametrize("bug", ["swap-channels", "flip-kernel", "stride-ignored-in-dW"])
def test_conv2d_broken_weight_gradient_is_rejected(bug):
    def bad(dout, x, W, s, p):
        dx, dW, db = L.conv2d_backward(dout, x, W, s, p)
        if bug == "swap-channels":
            dW = dW.transpose(1, 0, 2, 3)           # F and C swapped (same shape when F == C)
        elif bug == "flip-kernel":
            dW = dW[:, :, ::-1, ::-1]               # true convolution instead of cross-correlation
        else:
            dW = conv_backward_loops(dout, x, W, 1, p)[1]
        return dx, dW, db
    layer, x = _conv(bad, s=2 if bug == "stride-ignored-in-dW" else 1)
    rejected(check_layer(layer, x))


def test_conv2d_overwriting_overlapping_windows_is_rejected():
    bad = lambda dout, x, W, s, p: conv_backward_loops(dout, x, W, s, p, accumulate=False)  # noqa: E731
    report = check_layer(*_conv(bad, F=1))
    rejected(report)
    assert report["dW"].ok and not report["dx"].ok


def _pool_input(shape=(2, 2, 6, 6), seed=0):
    return distinct(np.random.default_rng(seed), shape)


def test_maxpool2d_gradient_to_every_input_is_rejected():
    bad = L.MaxPool2D(2, backward_fn=lambda dout, x, k, s: pool_backward_loops(dout, x, k, s, route="all"))
    assert "mask" in rejected(check_layer(bad, _pool_input()))


@pytest.mark.parametrize("route", ["argmin", "mean"])
def test_maxpool2d_gradient_to_wrong_inputs_is_rejected(route):
    bad = L.MaxPool2D(2, backward_fn=lambda dout, x, k, s: pool_backward_loops(dout, x, k, s, route=route))
    rejected(check_layer(bad, _pool_input()))


def test_maxpool2d_overwriting_overlapping_windows_is_rejected():
    """Assigning instead of adding is right for stride == kernel, wrong when windows overlap."""
    def overwrite(dout, x, k, s):
        return pool_backward_loops(dout, x, k, s, accumulate=False)
    check_layer(L.MaxPool2D(2, backward_fn=overwrite), _pool_input()).assert_ok()
    rejected(check_layer(L.MaxPool2D(3, stride=1, backward_fn=overwrite), _pool_input()))


def test_flatten_wrong_axis_order_is_rejected(monkeypatch):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    # reshape back in the wrong order: the right shape, but the elements are shuffled
    monkeypatch.setattr(L.Flatten, "backward",
                        lambda self, dout: dout.reshape(2, 5, 4, 3).transpose(0, 3, 2, 1))
    rejected(check_layer(L.Flatten(), x))


@pytest.mark.parametrize("bug", ["buffered-add", "assign"])
def test_embedding_repeated_ids_not_added_up_is_rejected(monkeypatch, bug):
    def bad_backward(self, dout):
        dW = np.zeros_like(self.params["W"])
        if bug == "buffered-add":
            dW[self._x] += dout              # fancy-index += adds a repeated id only once
        else:
            dW[self._x] = dout
        self.grads["W"] = dW

    monkeypatch.setattr(L.Embedding, "backward", bad_backward)
    layer = L.Embedding(4, 3, rng=np.random.default_rng(0), dtype=F64)
    ids = np.array([[0, 1, 1], [3, 1, 0]])
    rejected(check_layer(layer, ids))
    check_layer(layer, np.array([[0, 1, 2]])).assert_ok()     # no repeats: the bug does not show


@pytest.mark.parametrize("bug", ["forget_gate", "no_forget_factor", "cell_path_dropped",
                                 "tanh_prime", "no_recurrence"])
def test_lstm_broken_backward_is_rejected(bug):
    rng = np.random.default_rng(0)
    lstm = L.LSTM(3, 2, rng=rng, dtype=F64)
    randomize_bias(lstm, rng)
    x = rng.standard_normal((2, 4, 3))
    lstm.backward_fn = lambda dout, cache: lstm_bptt(dout, x, *lstm.params.values(), bug=bug)
    rejected(check_layer(lstm, x))


def _module_check(which, bug):
    """check_gradients on a module-level backward function, with an optional bug spliced in."""
    rng = np.random.default_rng(4)
    if which == "dense":
        x, W, b = rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
        dout = rng.standard_normal((5, 3))
        dx, dW, db = L.dense_backward(dout, x, W)
        if bug:
            dW = dout.T @ x
        return check_gradients(lambda: np.sum(L.dense_forward(x, W, b) * dout), dict(dx=x, dW=W, db=b),
                               dict(dx=dx, dW=dW, db=db))
    if which == "conv":
        x, W, b = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
        dout = rng.standard_normal((2, 3, 3, 3))
        grads = L.conv2d_backward(dout, x, W, 2, 1)
        if bug:
            grads = L.conv2d_backward(dout, np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), W, 2, 0)
        return check_gradients(lambda: np.sum(L.conv2d_forward(x, W, b, 2, 1) * dout),
                               dict(dx=x, dW=W, db=b), dict(zip(["dx", "dW", "db"], grads)))
    if which == "maxpool":
        x = distinct(rng, (2, 2, 5, 5))
        dout = rng.standard_normal((2, 2, 2, 2))
        dx = pool_backward_loops(dout, x, 2, 2, route="all") if bug else L.maxpool2d_backward(dout, x, 2, 2)
        return check_gradients(lambda: np.sum(L.maxpool2d_forward(x, 2, 2) * dout), dict(dx=x), dict(dx=dx))
    N, D, H = 3, 2, 3
    x, h_prev, c_prev = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    _, _, cache = L.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
    grads = list(L.lstm_step_backward(dh, dc, cache, Wx))
    f = sigmoid((x @ Wx + h_prev @ Wh + b)[:, H:2 * H])
    if bug == "no_forget_factor":
        grads[2] = grads[2] / f                  # dc_prev = dc, the forget gate's factor left out
    elif bug == "dh_prev_dropped":
        grads[1] = np.zeros_like(grads[1])

    def loss():
        h, c, _ = L.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
        return np.sum(h * dh) + np.sum(c * dc)
    names = ["dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"]
    return check_gradients(loss, dict(zip(names, [x, h_prev, c_prev, Wx, Wh, b])), dict(zip(names, grads)))


@pytest.mark.parametrize("which, bug, words", [
    ("dense", "transposed dW", "transpose"),
    ("conv", "padding not cropped", "has shape (2, 2, 7, 7), expected (2, 2, 5, 5)"),
    ("maxpool", "gradient to every input", "mask"),
    ("lstm_step", "no_forget_factor", "dc_prev"),
    ("lstm_step", "dh_prev_dropped", "all zeros"),
])
def test_broken_module_functions_are_rejected(which, bug, words):
    _module_check(which, None).assert_ok()
    assert words in str(_module_check(which, bug)) and not _module_check(which, bug).ok


def test_sequential_names_the_broken_layer():
    rng = np.random.default_rng(0)
    d0 = L.Dense(4, 3, rng=rng, dtype=F64, backward_fn=lambda dout, x, W: (dout @ W.T, x.T @ dout, dout))
    d2 = L.Dense(3, 2, rng=rng, dtype=F64)
    model = L.Sequential(d0, L.Tanh(), d2)
    report = check_layer(model, rng.standard_normal((5, 4)))
    rejected(report)
    assert [r.name for r in report.reports if not r.ok] == ["d0.b"]
    assert "batch" in report["d0.b"].message


def test_sequential_with_a_broken_activation_is_rejected():
    rng = np.random.default_rng(0)
    model = L.Sequential(L.Dense(4, 3, rng=rng, dtype=F64), L.ReLU(backward_fn=lambda dout, x: dout),
                         L.Dense(3, 2, rng=rng, dtype=F64))
    report = check_layer(model, rng.standard_normal((6, 4)))
    rejected(report)
    assert report["d2.W"].ok and not report["d0.W"].ok


# ----------------------------------------------------------------------------
# 5. layer objects: params, grads, backward_fn, state
# ----------------------------------------------------------------------------
def test_params_are_the_arrays_the_layer_computes_with():
    rng = np.random.default_rng(0)
    layer = L.Dense(3, 2, rng=rng)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    layer.params["W"] *= 0
    layer.params["b"] += 1
    np.testing.assert_array_equal(layer.forward(x), np.ones((4, 2)))


@pytest.mark.parametrize("make, x", [
    (lambda: L.Dense(3, 2), np.ones((2, 3), np.float32)),
    (lambda: L.Conv2D(1, 2, 3, padding=1), np.ones((2, 1, 4, 4), np.float32)),
    (lambda: L.LSTM(3, 2), np.ones((2, 5, 3), np.float32)),
    (lambda: L.Embedding(5, 2), np.array([[1, 2]])),
])
def test_grads_match_params_in_keys_shapes_and_dtype(make, x):
    layer = make()
    out = layer.forward(x)
    assert out.dtype == np.float32                 # float32 by default
    layer.backward(np.ones_like(out))
    assert layer.grads.keys() == layer.params.keys()
    for k in layer.params:
        assert layer.grads[k].shape == layer.params[k].shape
        assert layer.grads[k].dtype == layer.params[k].dtype


def test_sequential_params_are_the_layers_arrays():
    d0, d1 = L.Dense(3, 4), L.Dense(4, 2)
    model = L.Sequential(d0, L.ReLU(), d1)
    assert list(model.params) == ["0.W", "0.b", "2.W", "2.b"]
    assert model.params["2.W"] is d1.params["W"]
    model.forward(np.ones((2, 3), np.float32))
    model.backward(np.ones((2, 2), np.float32))
    assert model.grads["0.W"] is d0.grads["W"]
    assert len(model) == 3 and model[1].__class__ is L.ReLU


@pytest.mark.parametrize("make, shape", [
    (lambda r: L.Dense(3, 2, rng=r), (4, 3)),
    (lambda r: L.Conv2D(2, 3, 3, padding=1, rng=r), (2, 2, 5, 5)),
    (lambda r: L.MaxPool2D(2), (2, 2, 4, 4)),
    (lambda r: L.LSTM(3, 4, rng=r), (2, 5, 3)),
    (lambda r: L.Sequential(L.Conv2D(1, 2, 3, rng=r), L.ReLU(), L.Flatten(), L.Dense(18, 2, rng=r)), (2, 1, 5, 5)),
], ids=["Dense", "Conv2D", "MaxPool2D", "LSTM", "Sequential"])
def test_results_you_hold_survive_the_next_call(make, shape):
    """Layers may reuse internal buffers for speed, but never ones they have handed out."""
    r = np.random.default_rng(0)
    layer = make(r)
    x1, x2 = (r.standard_normal(shape).astype(np.float32) for _ in range(2))
    out = layer.forward(x1)
    dx = layer.backward(np.ones_like(out))
    grads = dict(layer.grads)
    kept = [out.copy(), dx.copy()] + [g.copy() for g in grads.values()]
    out2 = layer.forward(x2)
    layer.backward(-2 * np.ones_like(out2))
    for held, copy in zip([out, dx] + list(grads.values()), kept):
        np.testing.assert_array_equal(held, copy)


def test_backward_fn_is_the_function_called():
    calls = []

    def mine(dout, x, W):
        calls.append(x.shape)
        return L.dense_backward(dout, x, W)
    layer = L.Dense(3, 2, backward_fn=mine)
    layer.forward(np.ones((4, 3), np.float32))
    layer.backward(np.ones((4, 2), np.float32))
    assert calls == [(4, 3)]


def test_same_seed_same_initial_weights():
    a = L.Conv2D(2, 3, 3, rng=np.random.default_rng(7))
    b = L.Conv2D(2, 3, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    lstm = L.LSTM(2, 3, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(lstm.params["b"][3:6], 1)      # forget-gate bias 1


@pytest.mark.parametrize("layer", [L.Dense(2, 2), L.ReLU(), L.Conv2D(1, 1, 1), L.MaxPool2D(2),
                                   L.Flatten(), L.Embedding(3, 2), L.LSTM(2, 2)], ids=repr)
def test_backward_before_forward_raises(layer):
    with pytest.raises(RuntimeError, match="before forward"):
        layer.backward(np.ones((1, 2), np.float32))


# ----------------------------------------------------------------------------
# 6. bad input: ValueError naming the layer, the expected and the actual shape
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("layer, x, words", [
    (L.Dense(4, 3), np.ones((2, 5), np.float32), ["Dense", "(N, 4)", "(2, 5)"]),
    (L.Dense(4, 3), np.ones(4, np.float32), ["Dense", "(N, 4)", "(4)"]),
    (L.Conv2D(3, 2, 3), np.ones((2, 1, 5, 5), np.float32), ["Conv2D", "(N, 3, H, W)", "(2, 1, 5, 5)"]),
    (L.Conv2D(3, 2, 3), np.ones((3, 5, 5), np.float32), ["Conv2D", "(N, 3, H, W)", "(3, 5, 5)"]),
    (L.Conv2D(1, 2, 5), np.ones((1, 1, 3, 3), np.float32), ["Conv2D", "3x3", "5x5"]),
    (L.MaxPool2D(2), np.ones((2, 4, 4), np.float32), ["MaxPool2D", "(N, C, H, W)", "(2, 4, 4)"]),
    (L.MaxPool2D(3), np.ones((1, 1, 2, 5), np.float32), ["MaxPool2D", "2x5", "3x3"]),
    (L.Flatten(), np.ones(3, np.float32), ["Flatten", "(N, ...)", "(3)"]),
    (L.Embedding(5, 2), np.ones(3, np.int64), ["Embedding", "(N, T)", "(3)"]),
    (L.LSTM(3, 2), np.ones((2, 4, 5), np.float32), ["LSTM", "(N, T, 3)", "(2, 4, 5)"]),
    (L.LSTM(3, 2), np.ones((2, 3), np.float32), ["LSTM", "(N, T, 3)", "(2, 3)"]),
], ids=lambda v: repr(v) if isinstance(v, L.Layer) else None)
def test_wrong_input_shape_names_layer_and_shapes(layer, x, words):
    with pytest.raises(ValueError) as err:
        layer.forward(x)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


@pytest.mark.parametrize("layer, x", [
    (L.Dense(2, 2), np.ones((3, 2), np.int64)),
    (L.ReLU(), np.ones((3, 2), np.int64)),
    (L.Sigmoid(), np.array([[True]])),
    (L.Conv2D(1, 1, 1), np.ones((1, 1, 2, 2), np.int32)),
    (L.MaxPool2D(2), np.ones((1, 1, 2, 2), np.uint8)),
    (L.LSTM(2, 2), np.ones((1, 1, 2), np.int64)),
], ids=lambda v: repr(v) if isinstance(v, L.Layer) else None)
def test_integer_input_to_a_float_layer_is_rejected(layer, x):
    with pytest.raises(ValueError, match=rf"{type(layer).__name__}.*floating-point.*{x.dtype}"):
        layer.forward(x)


@pytest.mark.parametrize("layer", [L.Dense(2, 2), L.Tanh()], ids=repr)
def test_list_input_is_rejected(layer):
    with pytest.raises(ValueError, match="numpy array"):
        layer.forward([[1.0, 2.0]])


def test_embedding_rejects_float_and_out_of_range_ids():
    e = L.Embedding(5, 2)
    with pytest.raises(ValueError, match="Embedding.*integer"):
        e.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"Embedding.*\[0, 5\).*5"):
        e.forward(np.array([[0, 5]]))
    with pytest.raises(ValueError, match=r"Embedding.*-1"):
        e.forward(np.array([[-1, 2]]))


@pytest.mark.parametrize("layer, x, dout", [
    (L.Dense(3, 2), np.ones((4, 3), np.float32), np.ones((4, 3), np.float32)),
    (L.ReLU(), np.ones((4, 3), np.float32), np.ones((3, 4), np.float32)),
    (L.Conv2D(1, 2, 3), np.ones((1, 1, 5, 5), np.float32), np.ones((1, 2, 5, 5), np.float32)),
    (L.MaxPool2D(2), np.ones((1, 1, 4, 4), np.float32), np.ones((1, 1, 4, 4), np.float32)),
    (L.LSTM(3, 2), np.ones((2, 4, 3), np.float32), np.ones((2, 2), np.float32)),
], ids=lambda v: repr(v) if isinstance(v, L.Layer) else None)
def test_wrong_dout_shape_names_layer_and_shapes(layer, x, dout):
    out = layer.forward(x)
    with pytest.raises(ValueError) as err:
        layer.backward(dout)
    msg = str(err.value)
    assert type(layer).__name__ in msg and str(out.shape).replace(",)", ")") in msg
    assert "(" + ", ".join(map(str, dout.shape)) + ")" in msg


@pytest.mark.parametrize("kwargs", [dict(kernel_size=0), dict(stride=0), dict(padding=-1)])
def test_conv2d_rejects_bad_hyperparameters(kwargs):
    args = dict(kernel_size=3, stride=1, padding=0) | kwargs
    with pytest.raises(ValueError, match="Conv2D"):
        L.Conv2D(1, 1, **args)


def test_maxpool2d_and_sequential_reject_bad_arguments():
    for stride in (-1, 0):                     # 0 is an error, not "the default"
        with pytest.raises(ValueError, match=f"MaxPool2D: kernel_size and stride must be >= 1, got 2, {stride}"):
            L.MaxPool2D(2, stride=stride)
    with pytest.raises(ValueError, match=r"Sequential: item 1 \(int\)"):
        L.Sequential(L.ReLU(), 3)


# ----------------------------------------------------------------------------
# 7. BatchNorm, LayerNorm, Dropout; train and eval modes
# ----------------------------------------------------------------------------
def _norm_layer(layer, rng):
    layer.params["gamma"][...] = rng.standard_normal(layer.params["gamma"].shape)
    layer.params["beta"][...] = rng.standard_normal(layer.params["beta"].shape)
    return layer


bn_shapes = st.one_of(
    st.tuples(st.integers(3, 5), st.integers(1, 4)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(2, 3)),
)


@FEW
@given(shape=bn_shapes, seed=seeds, train=st.booleans())
def test_batchnorm_backward_matches_numerical(shape, seed, train):
    rng = np.random.default_rng(seed)
    layer = _norm_layer(L.BatchNorm(shape[1], dtype=F64), rng)
    layer.running_mean[...] = rng.standard_normal(shape[1])
    layer.running_var[...] = rng.uniform(0.5, 2.0, shape[1])
    layer.train(train)
    check_layer(layer, rng.standard_normal(shape) * 2 + 1, seed=seed + 1).assert_ok()


# D >= 3: with two features the normalised output is always +-1, so dx is ~0 and only rounding is measured
@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), D=st.integers(3, 6), seed=seeds)
def test_layernorm_backward_matches_numerical(shape, D, seed):
    rng = np.random.default_rng(seed)
    layer = _norm_layer(L.LayerNorm(D, dtype=F64), rng)
    check_layer(layer, rng.standard_normal(tuple(shape) + (D,)), seed=seed + 1).assert_ok()


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), p=st.sampled_from([0.0, 0.2, 0.5, 0.9]),
       seed=seeds)
def test_dropout_backward_matches_numerical_for_a_fixed_mask(shape, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    _, mask = L.dropout_forward(x, p, np.random.default_rng(seed + 1))
    dout = rng.standard_normal(shape)
    report = check_gradients(lambda: float(np.sum(x * mask / (1 - p) * dout)), {"dx": x},
                             {"dx": L.dropout_backward(dout, mask, p)})
    report.assert_ok()
    layer = L.Dropout(p, rng=np.random.default_rng(seed + 1))
    out = layer.forward(x)
    np.testing.assert_array_equal(layer.mask, mask)
    np.testing.assert_allclose(out, x * mask / (1 - p))
    np.testing.assert_allclose(layer.backward(dout), dout * mask / (1 - p))


def test_batchnorm_functions_agree_with_the_class_and_the_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 3, 2, 2))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    out, cache = L.batchnorm_forward(x, gamma, beta, 1e-5)
    mu, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
    want = gamma[None, :, None, None] * (x - mu) / np.sqrt(var + 1e-5) + beta[None, :, None, None]
    np.testing.assert_allclose(out, want, rtol=1e-12)
    # (N, C, H, W) is (N*H*W, C) for batch norm
    x2 = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    out2, cache2 = L.batchnorm_forward(x2, gamma, beta, 1e-5)
    np.testing.assert_allclose(out2, out.transpose(0, 2, 3, 1).reshape(-1, 3), rtol=1e-12)
    dout = rng.standard_normal(x.shape)
    dx, dg, db = L.batchnorm_backward(dout, cache)
    dx2, dg2, db2 = L.batchnorm_backward(dout.transpose(0, 2, 3, 1).reshape(-1, 3), cache2)
    np.testing.assert_allclose(dx.transpose(0, 2, 3, 1).reshape(-1, 3), dx2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dg, dg2, rtol=1e-12)
    np.testing.assert_allclose(db, db2, rtol=1e-12)


def test_batchnorm_running_statistics_like_pytorch():
    rng = np.random.default_rng(1)
    layer = L.BatchNorm(3, momentum=0.1, dtype=F64)
    rm, rv = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = rng.standard_normal((5, 3, 2, 2)) * 3 + 2
        layer.forward(x)
        m = 5 * 2 * 2
        rm = 0.9 * rm + 0.1 * x.mean(axis=(0, 2, 3))
        rv = 0.9 * rv + 0.1 * x.var(axis=(0, 2, 3)) * m / (m - 1)      # unbiased
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)
    np.testing.assert_allclose(layer.running_var, rv, rtol=1e-12)
    layer.eval()
    x = rng.standard_normal((2, 3, 2, 2))
    out = layer.forward(x)
    want = (x - rm[None, :, None, None]) / np.sqrt(rv[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(out, want, rtol=1e-10)
    np.testing.assert_allclose(layer.running_mean, rm, rtol=1e-12)      # eval does not update
    with pytest.raises(ValueError, match="BatchNorm: training needs more than 1 value"):
        L.BatchNorm(3).forward(np.ones((1, 3), np.float32))


def test_layernorm_forward_formula():
    rng = np.random.default_rng(2)
    x, g, b = rng.standard_normal((2, 3, 4)), rng.standard_normal(4), rng.standard_normal(4)
    out, _ = L.layernorm_forward(x, g, b, 1e-5)
    want = g * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) + b
    np.testing.assert_allclose(out, want, rtol=1e-12)
    assert L.LayerNorm((4,)).normalized_shape == 4


def _bn_backward_bug(bug):
    def bad(dout, cache):
        x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
        m = x_hat.shape[0]
        g = dout * gamma
        if bug == "no-mean-path":
            dx = inv_std / m * (m * g - x_hat * (g * x_hat).sum(0))
        elif bug == "no-variance-path":
            dx = inv_std / m * (m * g - g.sum(0))
        elif bug == "as-if-constant":
            dx = g * inv_std
        else:                                   # unbiased variance where the biased one is used
            dx = inv_std / m * (m * g - g.sum(0) - x_hat * (g * x_hat).sum(0) * m / (m - 1))
        return dx, (dout * x_hat).sum(0), dout.sum(0)
    return bad


@pytest.mark.parametrize("bug", ["no-mean-path", "no-variance-path", "as-if-constant", "unbiased"])
def test_batchnorm_broken_backward_is_rejected(bug):
    rng = np.random.default_rng(3)
    layer = _norm_layer(L.BatchNorm(3, dtype=F64, backward_fn=_bn_backward_bug(bug)), rng)
    report = check_layer(layer, rng.standard_normal((5, 3)) * 2 + 1)
    rejected(report)
    assert report["dgamma"].ok and report["dbeta"].ok and not report["dx"].ok


def test_layernorm_and_dropout_broken_backward_are_rejected():
    rng = np.random.default_rng(4)
    bad_ln = lambda dout, c: (dout * c["gamma"] * c["inv_std"], (dout * c["x_hat"]).sum(0), dout.sum(0))
    rejected(check_layer(_norm_layer(L.LayerNorm(4, dtype=F64, backward_fn=bad_ln), rng),
                         rng.standard_normal((3, 4))))
    x = rng.standard_normal((4, 5))
    _, mask = L.dropout_forward(x, 0.5, np.random.default_rng(0))
    dout = rng.standard_normal(x.shape)
    report = check_gradients(lambda: float(np.sum(x * mask / 0.5 * dout)), {"dx": x},
                             {"dx": dout * mask})                      # mask not rescaled
    assert "scaled by 0.5" in rejected(report)


def test_dropout_identity_in_eval_and_mask_scaling():
    x = np.random.default_rng(5).standard_normal((200, 50))
    layer = L.Dropout(0.3, rng=np.random.default_rng(6))
    out = layer.forward(x)
    kept = out != 0
    np.testing.assert_allclose(out[kept], x[kept] / 0.7)
    assert abs(1 - kept.mean() - 0.3) < 0.02
    layer.eval()
    assert layer.forward(x) is x
    d = np.ones_like(x)
    assert layer.backward(d) is d
    assert not L.dropout_forward(x, 1.0, np.random.default_rng(0))[0].any()
    with pytest.raises(ValueError, match=r"Dropout: p must lie in \[0, 1\]"):
        L.Dropout(1.5)


def test_train_and_eval_reach_every_layer_recursively():
    inner = L.Sequential(L.Dense(3, 3), L.Dropout(0.5))
    model = L.Sequential(L.Dense(3, 3), L.BatchNorm(3), inner, L.ReLU())
    layers = [model, model[0], model[1], inner, inner[0], inner[1], model[3]]
    assert all(l.training for l in layers)
    assert model.eval() is model
    assert not any(l.training for l in layers)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_array_equal(model.forward(x), model.forward(x))       # deterministic in eval
    model.train()
    assert all(l.training for l in layers)
