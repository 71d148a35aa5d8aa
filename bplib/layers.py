"""Layers: each forward pass next to its backward pass.

Two forms of every layer:

* **functions** (``dense_forward`` / ``dense_backward``, ...) that take and
  return plain arrays. These are what the book derives and what the exercises
  ask learners to write; their signatures are the contract.
* **classes** (``Dense``, ``Conv2D``, ...) with ``forward(x) -> out``,
  ``backward(dout) -> dx``, ``params`` (the very arrays the layer computes
  with) and ``grads`` (same keys and shapes, overwritten by every backward).
  A layer's ``backward_fn`` can be replaced by a learner's own function with
  the same signature as the module-level ``*_backward`` function, so that
  their code trains a real network.

Notation (book, docstrings and exercises alike): ``N`` batch, ``D`` features
in, ``M`` features out, ``C`` channels in, ``F`` filters (channels out),
``H, W`` image height and width, ``k`` kernel size, ``T`` time steps, ``H``
(in the LSTM) hidden size. ``dout`` is dL/dout, ``dx`` is dL/dx, ``dW`` is dL/dW.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Layer", "Dense", "ReLU", "Sigmoid", "Tanh", "Conv2D", "MaxPool2D", "Flatten",
    "Embedding", "LSTM", "Sequential",
    "dense_forward", "dense_backward", "relu_forward", "relu_backward",
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
    "conv2d_forward", "conv2d_backward", "maxpool2d_forward", "maxpool2d_backward",
    "lstm_step_forward", "lstm_step_backward", "lstm_forward", "lstm_backward",
    "im2col", "col2im", "conv_output_size",
    "BatchNorm", "LayerNorm", "Dropout",
    "batchnorm_forward", "batchnorm_backward", "layernorm_forward", "layernorm_backward",
    "dropout_forward", "dropout_backward",
]


# ----------------------------------------------------------------------------
# input checks: a clear ValueError instead of a broadcasting error
# ----------------------------------------------------------------------------
def _fmt(shape):
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _check_array(layer, name, x, expected, kind="float"):
    """Check ``x`` against ``expected`` (a tuple of ints, or letters for free sizes)."""
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{layer}: {name} must be a numpy array, got {type(x).__name__}")
    if kind == "float" and not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{layer}: {name} must be a floating-point array, got dtype {x.dtype}")
    if kind == "int" and not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"{layer}: {name} must hold integer ids, got dtype {x.dtype}")
    want = "(" + ", ".join(str(e) for e in expected) + ")"
    if x.ndim != len(expected) or any(isinstance(e, int) and e != s for e, s in zip(expected, x.shape)):
        raise ValueError(f"{layer}: expected {name} of shape {want}, got {_fmt(x.shape)}")


def _init_rng(rng):
    return rng if rng is not None else np.random.default_rng()


# ----------------------------------------------------------------------------
# Dense:  out = x W + b
# ----------------------------------------------------------------------------
def dense_forward(x, W, b):
    """out = x @ W + b.   x: (N, D), W: (D, M), b: (M,)  ->  out: (N, M)"""
    return x @ W + b


def dense_backward(dout, x, W):
    """Backward of ``dense_forward``.

    dout: (N, M), x: (N, D), W: (D, M)  ->  dx: (N, D), dW: (D, M), db: (M,)
    dx = dout W^T,  dW = x^T dout,  db = sum of dout over the batch.
    """
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


# ----------------------------------------------------------------------------
# activations (elementwise)
# ----------------------------------------------------------------------------
def relu_forward(x):
    """out = max(0, x), any shape."""
    return np.maximum(x, 0)


def relu_backward(dout, x):
    """dx = dout where x > 0, else 0.  dout, x: same shape."""
    return dout * (x > 0)


def sigmoid_forward(x):
    """out = 1 / (1 + exp(-x)), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_backward(dout, out):
    """dx = dout * out * (1 - out), where ``out`` is the forward output."""
    return dout * out * (1 - out)


def tanh_forward(x):
    """out = tanh(x)."""
    return np.tanh(x)


def tanh_backward(dout, out):
    """dx = dout * (1 - out**2), where ``out`` is the forward output."""
    return dout * (1 - out * out)


# ----------------------------------------------------------------------------
# Conv2D via im2col: the convolution becomes one matrix product
# ----------------------------------------------------------------------------
def conv_output_size(size, k, stride, padding):
    """Output length along one axis: (size + 2*padding - k) // stride + 1."""
    return (size + 2 * padding - k) // stride + 1


def im2col(x, k, stride=1, padding=0):
    """Unfold every k x k window of ``x`` into one row.

    x: (N, C, H, W)  ->  cols: (N*Ho*Wo, C*k*k), rows ordered (n, i, j),
    columns ordered (c, di, dj) like ``W.reshape(F, C*k*k)``.
    """
    N, C, H, W_ = x.shape
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]  # (N, C, Ho, Wo, k, k) view
    Ho, Wo = win.shape[2], win.shape[3]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(N * Ho * Wo, C * k * k)


def col2im(cols, x_shape, k, stride=1, padding=0):
    """Adjoint of ``im2col``: add every row back onto the window it came from.

    cols: (N*Ho*Wo, C*k*k)  ->  dx: x_shape = (N, C, H, W). Overlapping
    windows add up, which is exactly the chain rule for a reused input.
    """
    N, C, H, W_ = x_shape
    Ho, Wo = conv_output_size(H, k, stride, padding), conv_output_size(W_, k, stride, padding)
    cols = cols.reshape(N, Ho, Wo, C, k, k)
    dxp = np.zeros((N, C, H + 2 * padding, W_ + 2 * padding), dtype=cols.dtype)
    for di in range(k):                   # k*k vectorised adds, no per-pixel loop
        for dj in range(k):
            dxp[:, :, di:di + stride * Ho:stride, dj:dj + stride * Wo:stride] += \
                cols[:, :, :, :, di, dj].transpose(0, 3, 1, 2)
    if padding:
        return dxp[:, :, padding:-padding, padding:-padding]
    return dxp


def conv2d_forward(x, W, b, stride=1, padding=0):
    """out[n, f] = sum over c, di, dj of x_pad[n, c, s*i+di, s*j+dj] W[f, c, di, dj] + b[f].

    x: (N, C, H, W), W: (F, C, k, k), b: (F,)  ->  out: (N, F, Ho, Wo)
    """
    out, _ = _conv2d_forward_cols(x, W, b, stride, padding)
    return out


def _conv2d_forward_cols(x, W, b, stride, padding):
    N, F, k = x.shape[0], W.shape[0], W.shape[2]
    Ho = conv_output_size(x.shape[2], k, stride, padding)
    Wo = conv_output_size(x.shape[3], k, stride, padding)
    cols = im2col(x, k, stride, padding)                       # (N*Ho*Wo, C*k*k)
    out = cols @ W.reshape(F, -1).T + b                         # (N*Ho*Wo, F)
    return out.reshape(N, Ho, Wo, F).transpose(0, 3, 1, 2), cols


def conv2d_backward(dout, x, W, stride=1, padding=0):
    """Backward of ``conv2d_forward``.

    dout: (N, F, Ho, Wo), x: (N, C, H, W), W: (F, C, k, k)
    ->  dx: (N, C, H, W), dW: (F, C, k, k), db: (F,)
    """
    return _conv2d_backward_cols(dout, im2col(x, W.shape[2], stride, padding), x.shape, W, stride, padding)


def _conv2d_backward_cols(dout, cols, x_shape, W, stride, padding):
    F, k = W.shape[0], W.shape[2]
    d2 = dout.transpose(0, 2, 3, 1).reshape(-1, F)              # (N*Ho*Wo, F)
    dW = (d2.T @ cols).reshape(W.shape)
    db = d2.sum(axis=0)
    dx = col2im(d2 @ W.reshape(F, -1), x_shape, k, stride, padding)
    return dx, dW, db


# ----------------------------------------------------------------------------
# MaxPool2D: the gradient goes to the one input that won each window
# ----------------------------------------------------------------------------
def maxpool2d_forward(x, k, stride=None):
    """out[n, c, i, j] = max of x over the window at (s*i, s*j).

    x: (N, C, H, W)  ->  out: (N, C, Ho, Wo), Ho = (H - k) // s + 1
    """
    stride = stride or k
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return win.max(axis=(4, 5))


def maxpool2d_backward(dout, x, k, stride=None):
    """Backward of ``maxpool2d_forward``: dout flows to each window's argmax.

    dout: (N, C, Ho, Wo), x: (N, C, H, W)  ->  dx: (N, C, H, W).
    Ties go to the first maximum; overlapping windows add up.
    """
    stride = stride or k
    N, C, Ho, Wo = dout.shape
    win = sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    arg = win.reshape(N, C, Ho, Wo, k * k).argmax(axis=4)       # winner inside each window
    dx = np.zeros_like(x, dtype=dout.dtype)
    for di in range(k):
        for dj in range(k):
            dx[:, :, di:di + stride * Ho:stride, dj:dj + stride * Wo:stride] += dout * (arg == di * k + dj)
    return dx


# ----------------------------------------------------------------------------
# what the layer classes run: the same arithmetic, laid out for speed
# ----------------------------------------------------------------------------
# The functions above are the clear forms the book derives. Conv2D and MaxPool2D
# compute the very same numbers, but keep images in memory as (C, H, W, N), the
# batch innermost, and hand them on as (N, C, H, W) views (``.transpose(3, 0, 1, 2)``):
#   * a convolution is one matmul, W (F, C*k*k) @ cols (C*k*k, Ho*Wo*N), whose
#     result is already (F, Ho, Wo, N) in memory: no transpose before the next layer;
#   * every window offset (di, dj) of a k x k window is a strided slice whose rows
#     are long contiguous runs (Wo*N numbers), so im2col, col2im and pooling are
#     k*k fast slice copies, adds or maxima. ReLU keeps the memory order it is given.
# In the book's layout, cols (N*Ho*Wo, C*k*k), each convolution paid a transpose
# copy both ways, pooling reduced a transposed 6-axis window view, and col2im added
# runs of only Wo numbers: those copies cost more than the arithmetic
# (see benchmarks/README.md).
def _tap(d, s, n):
    """slice(d, d + s*(n-1) + 1, s): offset d inside each of n windows placed s apart."""
    return slice(d, d + s * (n - 1) + 1, s)


def _to_chwn(x, padding=0):
    """x: (N, C, H, W) (any memory order)  ->  (C, H + 2p, W + 2p, N) contiguous, zero-padded."""
    N, C, H, W = x.shape
    xc = x.transpose(1, 2, 3, 0)                              # no copy if x came from these layers
    if not xc.flags.c_contiguous:
        # in two copies that each read long runs: one copy would read x with a
        # stride of C*H*W numbers, and power-of-two strides thrash the cache
        # (6x slower for x of shape (64, 16, 8, 8))
        xc = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(C, N, H * W)
        xc = np.ascontiguousarray(xc.transpose(0, 2, 1)).reshape(C, H, W, N)
    if padding:
        xc = np.pad(xc, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    return xc


def _im2col_chwn(xc, k, s, Ho, Wo):
    """xc: (C, H, W, N) padded  ->  cols: (C*k*k, Ho*Wo*N), rows ordered (c, di, dj)
    like ``W.reshape(F, C*k*k)``, columns ordered (i, j, n)."""
    C, N = xc.shape[0], xc.shape[3]
    cols = np.empty((C, k, k, Ho, Wo, N), dtype=xc.dtype)
    for di in range(k):
        for dj in range(k):
            cols[:, di, dj] = xc[:, _tap(di, s, Ho), _tap(dj, s, Wo)]
    return cols.reshape(C * k * k, Ho * Wo * N)


def _col2im_chwn(dcols, xc_shape, k, s, Ho, Wo):
    """Adjoint of ``_im2col_chwn``: dcols (C*k*k, Ho*Wo*N)  ->  dxc: xc_shape = (C, H, W, N)."""
    C, N = xc_shape[0], xc_shape[3]
    dcols = dcols.reshape(C, k, k, Ho, Wo, N)
    dxc = np.zeros(xc_shape, dtype=dcols.dtype)
    for di in range(k):
        for dj in range(k):
            dxc[:, _tap(di, s, Ho), _tap(dj, s, Wo)] += dcols[:, di, dj]   # overlapping windows add up
    return dxc


def _maxpool_fast_forward(x, k, s):
    """``maxpool2d_forward`` as k*k elementwise maxima of strided views (memory order kept)."""
    Ho, Wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    out = x[:, :, _tap(0, s, Ho), _tap(0, s, Wo)].copy(order="K")
    for di in range(k):
        for dj in range(k):
            if di or dj:
                np.maximum(out, x[:, :, _tap(di, s, Ho), _tap(dj, s, Wo)], out=out)
    return out


def _maxpool_fast_backward(dout, x, out, k, s):
    """``maxpool2d_backward`` given the forward ``out``: offsets are visited in the order
    argmax reads a window, and each window's dout goes to the first offset holding its max."""
    Ho, Wo = out.shape[2], out.shape[3]
    dout_ = np.empty_like(out, dtype=dout.dtype)
    dout_[...] = dout                                       # dout in out's memory order: read k*k times
    dout = dout_
    dx = np.zeros_like(x, dtype=dout.dtype)                 # same memory order as x
    unclaimed = np.ones_like(out, dtype=bool)
    for di in range(k):
        for dj in range(k):
            rows, cols = _tap(di, s, Ho), _tap(dj, s, Wo)
            won = x[:, :, rows, cols] == out
            won &= unclaimed                                # ties go to the first maximum
            unclaimed ^= won
            if s >= k:                                      # windows do not overlap: write
                np.multiply(dout, won, out=dx[:, :, rows, cols])
            else:                                           # overlapping windows add up
                dx[:, :, rows, cols] += dout * won
    return dx


# ----------------------------------------------------------------------------
# LSTM: gates i, f, o, g stacked in that order along the last axis of Wx, Wh, b
# ----------------------------------------------------------------------------
def lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b):
    """One LSTM step.

    x: (N, D), h_prev, c_prev: (N, H), Wx: (D, 4H), Wh: (H, 4H), b: (4H,)
    ->  h, c: (N, H), cache (a dict of what the backward step needs)

        a = x Wx + h_prev Wh + b;  i, f, o = sigmoid(a_i, a_f, a_o);  g = tanh(a_g)
        c = f * c_prev + i * g;    h = o * tanh(c)
    """
    return _lstm_step(x @ Wx, h_prev, c_prev, Wh, b, x=x)


def _lstm_step(xWx, h_prev, c_prev, Wh, b, x=None):
    Hs = h_prev.shape[1]
    a = xWx + h_prev @ Wh + b
    ifo = sigmoid_forward(a[:, :3 * Hs])
    i, f, o = ifo[:, :Hs], ifo[:, Hs:2 * Hs], ifo[:, 2 * Hs:]
    g = np.tanh(a[:, 3 * Hs:])
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    h = o * tanh_c
    cache = dict(x=x, h_prev=h_prev, c_prev=c_prev, i=i, f=f, o=o, g=g, tanh_c=tanh_c, Wh=Wh)
    return h, c, cache


def lstm_step_backward(dh, dc, cache, Wx=None):
    """Backward of one LSTM step.

    dh, dc: (N, H) gradients arriving at h and c (from the loss and from step t+1)
    ->  dx: (N, D), dh_prev, dc_prev: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,)
    ``Wx`` (D, 4H) is needed for dx; pass the same array as in the forward step.
    """
    da, dh_prev, dc_prev = _lstm_step_da(dh, dc, cache)
    dx = da @ Wx.T if Wx is not None else None
    dWx = cache["x"].T @ da if cache["x"] is not None else None
    return dx, dh_prev, dc_prev, dWx, cache["h_prev"].T @ da, da.sum(axis=0)


def _lstm_step_da(dh, dc, cache):
    i, f, o, g, tanh_c = cache["i"], cache["f"], cache["o"], cache["g"], cache["tanh_c"]
    dc = dc + dh * o * (1 - tanh_c * tanh_c)              # h = o tanh(c)
    da = np.concatenate([dc * g * i * (1 - i),            # di * sigmoid'
                         dc * cache["c_prev"] * f * (1 - f),  # df * sigmoid'
                         dh * tanh_c * o * (1 - o),       # do * sigmoid'
                         dc * i * (1 - g * g)], axis=1)   # dg * tanh'
    return da, da @ cache["Wh"].T, dc * f                 # dc_prev through the forget gate


def lstm_forward(x, h0, Wx, Wh, b):
    """Run the LSTM over a sequence from state (h0, c0 = 0).

    x: (N, T, D), h0: (N, H)  ->  h: (N, T, H) every hidden state, cache
    """
    N, T, D = x.shape
    Hs = h0.shape[1]
    xWx = (x.reshape(N * T, D) @ Wx).reshape(N, T, 4 * Hs)    # one matmul for all steps
    h = np.empty((N, T, Hs), dtype=np.result_type(x, Wx))
    h_t, c_t = h0, np.zeros_like(h0)
    steps = []
    for t in range(T):
        h_t, c_t, step = _lstm_step(xWx[:, t], h_t, c_t, Wh, b, x=x[:, t])
        h[:, t] = h_t
        steps.append(step)
    return h, dict(x=x, h0=h0, Wx=Wx, Wh=Wh, steps=steps)


def lstm_backward(dh, cache):
    """Backpropagation through time.

    dh: (N, T, H) dL/dh_t from the loss at every step (zeros where unused)
    ->  dx: (N, T, D), dh0: (N, H), dWx: (D, 4H), dWh: (H, 4H), db: (4H,)
    """
    x, Wx, steps = cache["x"], cache["Wx"], cache["steps"]
    N, T, D = x.shape
    Hs = dh.shape[2]
    da = np.empty((N, T, 4 * Hs), dtype=dh.dtype)
    dh_next = np.zeros((N, Hs), dtype=dh.dtype)
    dc_next = np.zeros((N, Hs), dtype=dh.dtype)
    for t in reversed(range(T)):
        da[:, t], dh_next, dc_next = _lstm_step_da(dh[:, t] + dh_next, dc_next, steps[t])
    h_prev = np.concatenate([cache["h0"][:, None], np.stack([s["h_prev"] for s in steps[1:]], axis=1)], axis=1) \
        if T > 1 else cache["h0"][:, None]
    da2 = da.reshape(N * T, 4 * Hs)
    dx = (da2 @ Wx.T).reshape(N, T, D)
    dWx = x.reshape(N * T, D).T @ da2
    dWh = h_prev.reshape(N * T, Hs).T @ da2
    return dx, dh_next, dWx, dWh, da2.sum(axis=0)


# ----------------------------------------------------------------------------
# the LSTM as the class runs it: the same arithmetic, one column per sequence
# ----------------------------------------------------------------------------
# ``lstm_forward``/``lstm_backward`` above read like the equations. The LSTM class
# runs this version. With batch 32 and hidden size 64 every numpy call costs more
# in overhead than in arithmetic, and a gate block a[:, :H] of an (N, 4H) array is
# N short rows (numpy's tanh runs 2.5x slower on it than on one contiguous block).
# So here the states are transposed: h_t is (H, N), one column per sequence, and
# a_t = Wh^T h_t + Wx^T x_t + b is (4H, N), so that each gate is a contiguous block
# of rows. The steps write into preallocated (T, ., N) arrays and compute the gates
# in place; the backward pass computes every factor that does not depend on the
# incoming gradient for all steps at once before its loop, and dx, dWx, dWh with
# one matmul each after it. Large arrays that never leave the layer are reused from
# call to call (``work``): fresh ones cost a page fault per 4 KB on first touch,
# about a fifth of the LSTM's time here.
def _scratch(work, name, shape, dtype):
    """An uninitialised array, reused from ``work[name]`` when its shape and dtype fit."""
    a = None if work is None else work.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = np.empty(shape, dtype)
        if work is not None:
            work[name] = a
    return a


def _lstm_fast_forward(x, h0, Wx, Wh, b, work=None):
    """= lstm_forward, transposed. x: (N, T, D), h0: (N, H) -> h: (N, T, H), state.

    sigmoid(a) = (1 + tanh(a/2)) / 2, so with the i, f, o rows of Wx^T, Wh^T and b
    halved (exactly: a power of 2) one tanh per step computes all four gates.
    """
    N, T, D = x.shape
    Hs = h0.shape[1]
    dtype = np.result_type(x, Wx)
    half = np.repeat(np.array([0.5, 0.5, 0.5, 1], dtype), Hs)[:, None]   # (4H, 1)
    xT = _scratch(work, "xT", (T, D, N), x.dtype)                 # x_t as columns
    xT[...] = x.transpose(1, 2, 0)
    gates = _scratch(work, "gates", (T, 4 * Hs, N), dtype)
    np.matmul(Wx.T * half, xT, out=gates)                          # Wx^T x_t, all steps at once
    gates += b[:, None] * half
    h = np.empty((T + 1, Hs, N), dtype)                            # h[t + 1] = h_t^T, h[0] = h0^T (returned)
    c = _scratch(work, "c", (T + 1, Hs, N), dtype)
    tanh_c = _scratch(work, "tanh_c", (T, Hs, N), dtype)
    h[0], c[0] = h0.T, 0
    WhT = np.ascontiguousarray(Wh.T * half)                        # (4H, H)
    Wh_h, ig = np.empty((4 * Hs, N), dtype), np.empty((Hs, N), dtype)
    for t in range(T):
        a = gates[t]                                               # a_t (i, f, o rows halved)
        a += np.matmul(WhT, h[t], out=Wh_h)
        np.tanh(a, out=a)                                          # overwritten by i, f, o, g
        a[:3 * Hs] += 1
        a[:3 * Hs] *= 0.5
        i, f, o, g = a[:Hs], a[Hs:2 * Hs], a[2 * Hs:3 * Hs], a[3 * Hs:]
        np.multiply(f, c[t], out=c[t + 1])                         # c = f c_prev + i g
        c[t + 1] += np.multiply(i, g, out=ig)
        np.tanh(c[t + 1], out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=h[t + 1])                    # h = o tanh(c)
    state = dict(x=x, xT=xT, h0=h0, Wx=Wx, Wh=Wh, gates=gates, h=h, c=c, tanh_c=tanh_c)
    return h[1:].transpose(2, 0, 1).copy(order="K"), state         # a copy: the caller may change it


def _lstm_book_cache(state):
    """The cache ``lstm_forward`` returns, as (N, .) views into the fast forward's arrays."""
    gates, h, c, tanh_c, Hs = state["gates"], state["h"], state["c"], state["tanh_c"], state["h"].shape[1]
    steps = [dict(x=state["x"][:, t], h_prev=h[t].T, c_prev=c[t].T, i=gates[t, :Hs].T, f=gates[t, Hs:2 * Hs].T,
                  o=gates[t, 2 * Hs:3 * Hs].T, g=gates[t, 3 * Hs:].T, tanh_c=tanh_c[t].T, Wh=state["Wh"])
             for t in range(gates.shape[0])]
    return dict(x=state["x"], h0=state["h0"], Wx=state["Wx"], Wh=state["Wh"], steps=steps)


def _lstm_fast_backward(dout, state, work=None):
    """= lstm_backward, transposed. dout: (N, T, H) -> dx: (N, T, D) (a view), dh0, dWx, dWh, db."""
    gates, h, c, tanh_c, Wh = state["gates"], state["h"], state["c"], state["tanh_c"], state["Wh"]
    T, H4, N = gates.shape
    Hs, D = H4 // 4, state["xT"].shape[1]
    dtype = np.result_type(dout, gates)
    i, f, o, g = (gates[:, k * Hs:(k + 1) * Hs] for k in range(4))      # (T, H, N) views
    # da_t = [dc K_i, dc K_f, dh K_o, dc K_g], with dc = dL/dc_t and dh = dL/dh_t.
    # The K do not depend on dout: compute them for all steps at once, in da itself
    da = _scratch(work, "da", gates.shape, dtype)
    np.subtract(1, gates[:, :3 * Hs], out=da[:, :3 * Hs])
    da[:, :3 * Hs] *= gates[:, :3 * Hs]                            # s (1 - s): sigmoid' of i, f, o
    da[:, :Hs] *= g                                                # c = f c_prev + i g
    da[:, Hs:2 * Hs] *= c[:-1]
    da[:, 2 * Hs:3 * Hs] *= tanh_c                                 # h = o tanh(c)
    np.multiply(g, g, out=da[:, 3 * Hs:])
    np.subtract(1, da[:, 3 * Hs:], out=da[:, 3 * Hs:])             # 1 - g^2: tanh' of g
    da[:, 3 * Hs:] *= i
    dc_from_dh = np.multiply(tanh_c, tanh_c, out=_scratch(work, "dc_from_dh", tanh_c.shape, dtype))
    np.subtract(1, dc_from_dh, out=dc_from_dh)                     # h = o tanh(c): dh_t/dc_t
    dc_from_dh *= o
    doutT = _scratch(work, "doutT", (T, Hs, N), dtype)
    doutT[...] = dout.transpose(1, 2, 0)
    dh = np.zeros((Hs, N), dtype)                                  # dL/dh_t arriving from step t+1
    dc = np.zeros((Hs, N), dtype)                                  # dL/dc_t arriving from step t+1
    tmp = np.empty((Hs, N), dtype)
    for t in reversed(range(T)):
        dh += doutT[t]                                             # ... plus the loss's share at t
        dc += np.multiply(dh, dc_from_dh[t], out=tmp)              # ... plus through h_t = o tanh(c_t)
        da_t = da[t].reshape(4, Hs, N)                             # gates i, f, o, g
        da_t[:2] *= dc
        da_t[2] *= dh
        da_t[3] *= dc
        np.matmul(Wh, da[t], out=dh)                               # dL/dh_{t-1} = Wh da_t
        dc *= f[t]                                                 # dL/dc_{t-1}
    dx = np.matmul(state["Wx"], da).transpose(2, 0, 1)             # Wx da_t for every t: (N, T, D)
    daT = _scratch(work, "daT", (H4, T, N), dtype)
    daT[...] = da.transpose(1, 0, 2)
    da = daT.reshape(H4, T * N)                                    # columns (t, n)
    dWx = (da @ state["xT"].transpose(1, 0, 2).reshape(D, T * N).T).T.copy()  # = x^T da; this order
    dWh = (da @ h[:-1].transpose(1, 0, 2).reshape(Hs, T * N).T).T.copy()     # runs faster in OpenBLAS
    return dx, dh.T, dWx, dWh, da.sum(axis=1)


# ----------------------------------------------------------------------------
# BatchNorm, LayerNorm, Dropout
# ----------------------------------------------------------------------------
def _bn_axes(x):
    """Every axis but the feature/channel axis 1: (0,) for (N, D), (0, 2, 3) for (N, C, H, W)."""
    return (0,) + tuple(range(2, x.ndim))


def _bn_shape(x):
    return (1, -1) + (1,) * (x.ndim - 2)


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """Batch normalisation with the batch's own statistics (training mode).

    x: (N, D) or (N, C, H, W), gamma, beta: (D,) or (C,)  ->  out: x's shape, cache (a dict)
        mu, var = mean and biased variance of x over every axis but axis 1
        x_hat = (x - mu) / sqrt(var + eps);   out = gamma x_hat + beta
    """
    axes, shape = _bn_axes(x), _bn_shape(x)
    mu = x.mean(axis=axes)
    var = x.var(axis=axes)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu.reshape(shape)) * inv_std.reshape(shape)
    out = gamma.reshape(shape) * x_hat + beta.reshape(shape)
    cache = dict(x_hat=x_hat, gamma=gamma, inv_std=inv_std, mean=mu, var=var, eps=eps)
    return out, cache


def batchnorm_backward(dout, cache):
    """Backward of ``batchnorm_forward``, the compact form.

    dout: x's shape, cache from the forward  ->  dx: x's shape, dgamma, dbeta: (D,) or (C,)
        m = number of values per feature;  g = gamma dout
        dx = inv_std / m * (m g - sum(g) - x_hat sum(g x_hat))
    """
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    axes, shape = _bn_axes(x_hat), _bn_shape(x_hat)
    m = x_hat.size // x_hat.shape[1]
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    g = dout * gamma.reshape(shape)
    dx = (inv_std / m).reshape(shape) * (m * g - g.sum(axis=axes).reshape(shape)
                                         - x_hat * (g * x_hat).sum(axis=axes).reshape(shape))
    return dx, dgamma, dbeta


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalisation over the last axis (each example's own statistics).

    x: (..., D), gamma, beta: (D,)  ->  out: (..., D), cache (a dict)
        x_hat = (x - mean) / sqrt(var + eps) along the last axis (biased var);  out = gamma x_hat + beta
    """
    mu = x.mean(axis=-1, keepdims=True)
    var = x.var(axis=-1, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    return gamma * x_hat + beta, dict(x_hat=x_hat, gamma=gamma, inv_std=inv_std)


def layernorm_backward(dout, cache):
    """Backward of ``layernorm_forward``.

    dout: (..., D)  ->  dx: (..., D), dgamma, dbeta: (D,)
        g = gamma dout;  dx = inv_std / D * (D g - sum(g) - x_hat sum(g x_hat)), sums over the last axis
    """
    x_hat, gamma, inv_std = cache["x_hat"], cache["gamma"], cache["inv_std"]
    D = x_hat.shape[-1]
    lead = tuple(range(x_hat.ndim - 1))
    dbeta = dout.sum(axis=lead)
    dgamma = (dout * x_hat).sum(axis=lead)
    g = dout * gamma
    dx = inv_std / D * (D * g - g.sum(axis=-1, keepdims=True) - x_hat * (g * x_hat).sum(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


def _dropout_scale(p):
    return 0.0 if p >= 1 else 1.0 / (1.0 - p)


def dropout_forward(x, p, rng):
    """Inverted dropout: zero each value with probability p, scale the kept ones by 1/(1-p).

    x: any shape, p in [0, 1], rng: a numpy Generator  ->  out: x's shape, mask: bool, x's shape
    (True where kept). out = x * mask / (1 - p), so E[out] = x and eval needs no rescaling.
    """
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must lie in [0, 1], got {p}")
    mask = rng.random(x.shape) >= p
    return x * mask * _dropout_scale(p), mask


def dropout_backward(dout, mask, p):
    """Backward of ``dropout_forward``: dx = dout * mask / (1 - p).  dout, mask: same shape."""
    return dout * mask * _dropout_scale(p)


# ----------------------------------------------------------------------------
# layer objects
# ----------------------------------------------------------------------------
class Layer:
    """Base class: ``forward``, ``backward``, ``params`` and ``grads``."""
    params = {}
    grads = {}
    training = True                 # train() / eval(); only BatchNorm and Dropout behave differently

    def train(self, mode=True):
        """Training mode (the default); ``train(False)`` is ``eval()``. Returns the layer."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Evaluation mode: BatchNorm uses its running statistics, Dropout is the identity."""
        return self.train(False)

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def _need_forward(self):
        if getattr(self, "_x", None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")

    def _check_dout(self, dout):
        expected = self._out_shape
        if not isinstance(dout, np.ndarray) or dout.shape != expected:
            got = _fmt(dout.shape) if isinstance(dout, np.ndarray) else type(dout).__name__
            raise ValueError(f"{type(self).__name__}.backward: expected dout of shape {_fmt(expected)} "
                             f"(the forward output's shape), got {got}")

    def __repr__(self):
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Fully connected layer: x (N, D) -> out = x W + b (N, M).

    params: W (D, M) initialised N(0, 2/D) (He), b (M,) zeros.
    """

    def __init__(self, in_features, out_features, *, rng=None, dtype=np.float32, backward_fn=None):
        rng = _init_rng(rng)
        self.in_features, self.out_features, self.dtype = in_features, out_features, np.dtype(dtype)
        W = rng.standard_normal((in_features, out_features)) * np.sqrt(2.0 / in_features)
        self.params = {"W": W.astype(dtype), "b": np.zeros(out_features, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.backward_fn = backward_fn or dense_backward
        self._x = None

    def forward(self, x):
        _check_array("Dense", "input x", x, ("N", self.in_features))
        self._x = x.astype(self.dtype, copy=False)
        out = dense_forward(self._x, self.params["W"], self.params["b"])
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        dx, self.grads["W"], self.grads["b"] = self.backward_fn(dout, self._x, self.params["W"])
        return dx

    def __repr__(self):
        return f"Dense({self.in_features}, {self.out_features})"


class _Activation(Layer):
    _forward = _backward = None     # set by subclasses
    uses_output = True              # backward needs the forward output (sigmoid, tanh) or input (relu)

    def __init__(self, backward_fn=None):
        self.backward_fn = backward_fn or type(self)._backward
        self._x = None

    def forward(self, x):
        _check_array(type(self).__name__, "input x", x, ("N",) + ("...",) * (x.ndim - 1) if isinstance(x, np.ndarray) else ("N",))
        out = type(self)._forward(x)
        self._x = out if self.uses_output else x
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        return self.backward_fn(dout, self._x)


class ReLU(_Activation):
    """out = max(0, x). ``backward_fn(dout, x) -> dx`` sees the forward *input*."""
    _forward = staticmethod(relu_forward)
    _backward = staticmethod(relu_backward)
    uses_output = False


class Sigmoid(_Activation):
    """out = sigmoid(x). ``backward_fn(dout, out) -> dx`` sees the forward *output*."""
    _forward = staticmethod(sigmoid_forward)
    _backward = staticmethod(sigmoid_backward)


class Tanh(_Activation):
    """out = tanh(x). ``backward_fn(dout, out) -> dx`` sees the forward *output*."""
    _forward = staticmethod(tanh_forward)
    _backward = staticmethod(tanh_backward)


class Conv2D(Layer):
    """2-D convolution (cross-correlation, as in every deep-learning library).

    x: (N, C, H, W) -> out: (N, F, Ho, Wo), Ho = (H + 2p - k) // s + 1.
    params: W (F, C, k, k) initialised N(0, 2/(C k k)), b (F,) zeros.
    ``backward_fn(dout, x, W, stride, padding) -> (dx, dW, db)`` may replace
    the built-in backward (which reuses the unfolded input from forward).
    ``input_grad=False`` makes ``backward`` skip dx and return None (dW and db
    are still computed): for a first layer, whose input is data that needs no
    gradient; ``Sequential.backward`` stops there. The default computes dx.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, *,
                 rng=None, dtype=np.float32, backward_fn=None, input_grad=True):
        if stride < 1 or padding < 0 or kernel_size < 1:
            raise ValueError(f"Conv2D: need kernel_size >= 1, stride >= 1, padding >= 0; got "
                             f"kernel_size={kernel_size}, stride={stride}, padding={padding}")
        rng = _init_rng(rng)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.stride, self.padding, self.dtype = stride, padding, np.dtype(dtype)
        fan_in = in_channels * kernel_size * kernel_size
        W = rng.standard_normal((out_channels, in_channels, kernel_size, kernel_size)) * np.sqrt(2.0 / fan_in)
        self.params = {"W": W.astype(dtype), "b": np.zeros(out_channels, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.backward_fn = backward_fn
        self.input_grad = input_grad
        self._x = None

    def forward(self, x):
        _check_array("Conv2D", "input x", x, ("N", self.in_channels, "H", "W"))
        k, p = self.kernel_size, self.padding
        if x.shape[2] + 2 * p < k or x.shape[3] + 2 * p < k:
            raise ValueError(f"Conv2D: input of spatial size {x.shape[2]}x{x.shape[3]} (padding {p}) "
                             f"is smaller than the {k}x{k} kernel")
        self._x = x.astype(self.dtype, copy=False)
        # = conv2d_forward, batch innermost (see "what the layer classes run" above)
        N, C, H, W_ = x.shape
        Ho, Wo = conv_output_size(H, k, self.stride, p), conv_output_size(W_, k, self.stride, p)
        self._cols = _im2col_chwn(_to_chwn(self._x, p), k, self.stride, Ho, Wo)   # (C*k*k, Ho*Wo*N)
        out = self.params["W"].reshape(self.out_channels, -1) @ self._cols        # (F, Ho*Wo*N)
        out += self.params["b"][:, None]
        out = out.reshape(self.out_channels, Ho, Wo, N).transpose(3, 0, 1, 2)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        W, s, p = self.params["W"], self.stride, self.padding
        if self.backward_fn is None:                 # = conv2d_backward, batch innermost
            F, k, (N, C, H, W_), (Ho, Wo) = self.out_channels, self.kernel_size, self._x.shape, self._out_shape[2:]
            d2 = _to_chwn(dout).reshape(F, Ho * Wo * N)               # no copy if dout is batch innermost
            dW = (self._cols @ d2.T).T.reshape(W.shape)   # = d2 @ cols.T; OpenBLAS runs this order 2x faster
            db = d2.sum(axis=1)
            dx = None
            if self.input_grad:
                dxc = _col2im_chwn(W.reshape(F, -1).T @ d2, (C, H + 2 * p, W_ + 2 * p, N), k, s, Ho, Wo)
                dx = dxc[:, p:p + H, p:p + W_].transpose(3, 0, 1, 2)
        else:
            dx, dW, db = self.backward_fn(dout, self._x, W, s, p)
        self.grads["W"], self.grads["b"] = dW, db
        return dx if self.input_grad else None

    def __repr__(self):
        return (f"Conv2D({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding})")


class MaxPool2D(Layer):
    """Max pooling over k x k windows; stride defaults to k (overlap allowed).

    x: (N, C, H, W) -> out: (N, C, Ho, Wo), Ho = (H - k) // s + 1.
    ``backward_fn(dout, x, kernel_size, stride) -> dx`` may replace the built-in backward.
    """

    def __init__(self, kernel_size, stride=None, *, backward_fn=None):
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        if self.kernel_size < 1 or self.stride < 1:
            raise ValueError(f"MaxPool2D: kernel_size and stride must be >= 1, got {kernel_size}, {stride}")
        self.backward_fn = backward_fn or maxpool2d_backward
        self._x = None

    def forward(self, x):
        _check_array("MaxPool2D", "input x", x, ("N", "C", "H", "W"))
        if min(x.shape[2:]) < self.kernel_size:
            raise ValueError(f"MaxPool2D: input of spatial size {x.shape[2]}x{x.shape[3]} is smaller "
                             f"than the {self.kernel_size}x{self.kernel_size} window")
        self._x = x
        out = _maxpool_fast_forward(x, self.kernel_size, self.stride)   # = maxpool2d_forward
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        if self.backward_fn is maxpool2d_backward:    # the built-in one: same result, faster
            out = _maxpool_fast_forward(self._x, self.kernel_size, self.stride)   # not the returned out:
            return _maxpool_fast_backward(dout, self._x, out, self.kernel_size, self.stride)  # it may be changed
        return self.backward_fn(dout, self._x, self.kernel_size, self.stride)

    def __repr__(self):
        return f"MaxPool2D({self.kernel_size}, stride={self.stride})"


class Flatten(Layer):
    """x: (N, ...) -> out: (N, prod(...)); backward reshapes dout back."""

    def __init__(self):
        self._x = None

    def forward(self, x):
        if not isinstance(x, np.ndarray) or x.ndim < 2:
            raise ValueError(f"Flatten: expected input of shape (N, ...) with at least 2 axes, got "
                             f"{_fmt(x.shape) if isinstance(x, np.ndarray) else type(x).__name__}")
        self._x = x
        self._in_shape = x.shape
        out = x.reshape(x.shape[0], -1)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        return dout.reshape(self._in_shape)


class Embedding(Layer):
    """Look-up table: integer ids (N, T) -> vectors (N, T, D).

    params: W (num_embeddings, D) initialised N(0, 1). ``backward`` returns
    None (ids have no gradient) and adds each dout row onto its id's row of dW.
    """

    def __init__(self, num_embeddings, embedding_dim, *, rng=None, dtype=np.float32):
        rng = _init_rng(rng)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        W = rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype)
        self.params = {"W": W}
        self.grads = {"W": np.zeros_like(W)}
        self._x = None

    def forward(self, ids):
        _check_array("Embedding", "ids", ids, ("N", "T"), kind="int")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: ids must lie in [0, {self.num_embeddings}), "
                             f"got values from {ids.min()} to {ids.max()}")
        self._x = ids
        out = self.params["W"][ids]
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        dW = np.zeros_like(self.params["W"])
        np.add.at(dW, self._x.ravel(), dout.reshape(-1, self.embedding_dim))
        self.grads["W"] = dW
        return None

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.embedding_dim})"


class LSTM(Layer):
    """LSTM over a whole sequence with zero initial state.

    x: (N, T, D) -> out: (N, T, H), the hidden state at every step.
    params: Wx (D, 4H), Wh (H, 4H), b (4H,) with gates in the order i, f, o, g;
    weights uniform in +-1/sqrt(H), forget-gate bias 1.
    ``backward(dout)`` takes dL/dh_t for every step (N, T, H) and runs
    backpropagation through time.
    """

    def __init__(self, input_size, hidden_size, *, rng=None, dtype=np.float32, backward_fn=None):
        rng = _init_rng(rng)
        self.input_size, self.hidden_size, self.dtype = input_size, hidden_size, np.dtype(dtype)
        s = 1.0 / np.sqrt(hidden_size)
        b = np.zeros(4 * hidden_size)
        b[hidden_size:2 * hidden_size] = 1.0          # remember by default
        self.params = {"Wx": rng.uniform(-s, s, (input_size, 4 * hidden_size)).astype(dtype),
                       "Wh": rng.uniform(-s, s, (hidden_size, 4 * hidden_size)).astype(dtype),
                       "b": b.astype(dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.backward_fn = backward_fn or lstm_backward
        self._x = None
        self._work = {}                               # scratch arrays reused between calls

    def forward(self, x):
        _check_array("LSTM", "input x", x, ("N", "T", self.input_size))
        self._x = x.astype(self.dtype, copy=False)
        h0 = np.zeros((x.shape[0], self.hidden_size), dtype=self.dtype)
        # = lstm_forward, in time-major buffers (see "the LSTM as the class runs it")
        out, self._state = _lstm_fast_forward(self._x, h0, self.params["Wx"], self.params["Wh"], self.params["b"],
                                              work=self._work)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        if self.backward_fn is lstm_backward:       # the built-in one: same result, faster
            dx, _, dWx, dWh, db = _lstm_fast_backward(dout, self._state, work=self._work)
        else:                                       # a plugged-in one gets lstm_forward's cache
            dx, _, dWx, dWh, db = self.backward_fn(dout, _lstm_book_cache(self._state))
        self.grads.update(Wx=dWx, Wh=dWh, b=db)
        return dx

    def __repr__(self):
        return f"LSTM({self.input_size}, {self.hidden_size})"


class BatchNorm(Layer):
    """Batch normalisation: x (N, D) or (N, C, H, W) -> out of the same shape.

    Normalises over every axis but axis 1 (features or channels). params: gamma
    (ones), beta (zeros), shape (num_features,). In training mode the batch's
    statistics are used (``batchnorm_forward``) and the running estimates updated
    as in PyTorch: running = (1 - momentum) running + momentum stat, with the
    unbiased variance for ``running_var``. In eval mode the running estimates are
    used and the layer is a fixed affine map. ``backward_fn(dout, cache) -> (dx,
    dgamma, dbeta)`` replaces the training-mode backward.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, *, dtype=np.float32, backward_fn=None):
        self.num_features, self.eps, self.momentum, self.dtype = num_features, eps, momentum, np.dtype(dtype)
        self.params = {"gamma": np.ones(num_features, dtype=dtype), "beta": np.zeros(num_features, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self.backward_fn = backward_fn or batchnorm_backward
        self._x = None

    def forward(self, x):
        if isinstance(x, np.ndarray) and x.ndim == 4:
            _check_array("BatchNorm", "input x", x, ("N", self.num_features, "H", "W"))
        else:
            _check_array("BatchNorm", "input x", x, ("N", self.num_features))
        self._x = x = x.astype(self.dtype, copy=False)
        gamma, beta, shape = self.params["gamma"], self.params["beta"], _bn_shape(x)
        if self.training:
            m = x.size // x.shape[1]
            if m < 2:
                raise ValueError(f"BatchNorm: training needs more than 1 value per feature, got input "
                                 f"of shape {_fmt(x.shape)}")
            out, self._cache = batchnorm_forward(x, gamma, beta, self.eps)
            mom = self.momentum
            self.running_mean *= 1 - mom
            self.running_mean += mom * self._cache["mean"]
            self.running_var *= 1 - mom
            self.running_var += mom * self._cache["var"] * (m / (m - 1))
        else:
            inv_std = 1.0 / np.sqrt(self.running_var + self.eps)
            x_hat = (x - self.running_mean.reshape(shape)) * inv_std.reshape(shape)
            out = gamma.reshape(shape) * x_hat + beta.reshape(shape)
            self._cache = dict(x_hat=x_hat, gamma=gamma, inv_std=inv_std, eval=True)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        c = self._cache
        if c.get("eval"):              # out = gamma (x - running_mean) inv_std + beta: no batch coupling
            axes, shape = _bn_axes(dout), _bn_shape(dout)
            dx = dout * (c["gamma"] * c["inv_std"]).reshape(shape)
            dgamma, dbeta = (dout * c["x_hat"]).sum(axis=axes), dout.sum(axis=axes)
        else:
            dx, dgamma, dbeta = self.backward_fn(dout, c)
        self.grads["gamma"], self.grads["beta"] = dgamma, dbeta
        return dx

    def __repr__(self):
        return f"BatchNorm({self.num_features}, eps={self.eps}, momentum={self.momentum})"


class LayerNorm(Layer):
    """Layer normalisation over the last axis: x (..., D) -> out (..., D).

    ``normalized_shape`` is D (or (D,)). params: gamma (ones), beta (zeros), (D,).
    Same in training and eval mode. ``backward_fn(dout, cache) -> (dx, dgamma, dbeta)``.
    """

    def __init__(self, normalized_shape, eps=1e-5, *, dtype=np.float32, backward_fn=None):
        if isinstance(normalized_shape, (tuple, list)):
            if len(normalized_shape) != 1:
                raise ValueError(f"LayerNorm: normalises over the last axis only; normalized_shape must be "
                                 f"an int or a 1-tuple, got {normalized_shape}")
            normalized_shape = normalized_shape[0]
        D = int(normalized_shape)
        self.normalized_shape, self.eps, self.dtype = D, eps, np.dtype(dtype)
        self.params = {"gamma": np.ones(D, dtype=dtype), "beta": np.zeros(D, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.backward_fn = backward_fn or layernorm_backward
        self._x = None

    def forward(self, x):
        nd = x.ndim if isinstance(x, np.ndarray) and x.ndim >= 1 else 2
        _check_array("LayerNorm", "input x", x, ("...",) * (nd - 1) + (self.normalized_shape,))
        self._x = x = x.astype(self.dtype, copy=False)
        out, self._cache = layernorm_forward(x, self.params["gamma"], self.params["beta"], self.eps)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        dx, self.grads["gamma"], self.grads["beta"] = self.backward_fn(dout, self._cache)
        return dx

    def __repr__(self):
        return f"LayerNorm({self.normalized_shape}, eps={self.eps})"


class Dropout(Layer):
    """Inverted dropout with probability ``p``; the identity in eval mode.

    x: any shape -> out: same shape. A new mask is drawn (from ``rng``) at every
    training-mode forward. ``backward_fn(dout, mask, p) -> dx``.
    """

    def __init__(self, p=0.5, *, rng=None, backward_fn=None):
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p, self.rng = p, _init_rng(rng)
        self.backward_fn = backward_fn or dropout_backward
        self._x = None
        self.mask = None

    def forward(self, x):
        if not isinstance(x, np.ndarray):
            raise ValueError(f"Dropout: input x must be a numpy array, got {type(x).__name__}")
        self._x = x
        if self.training:
            out, self.mask = dropout_forward(x, self.p, self.rng)
        else:
            out, self.mask = x, None
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        if self.mask is None:          # eval mode: identity
            return dout
        return self.backward_fn(dout, self.mask, self.p)

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Sequential(Layer):
    """Layers applied in order. ``params``/``grads`` are flat dicts keyed
    ``"<index>.<name>"`` (for example ``"0.W"``) holding the layers' own arrays."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not (hasattr(layer, "forward") and hasattr(layer, "backward")):
                raise ValueError(f"Sequential: item {i} ({type(layer).__name__}) is not a layer "
                                 f"(needs forward and backward)")
        self.layers = list(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
            if dout is None:          # an Embedding: nothing flows further back
                break
        return dout

    @property
    def params(self):
        return {f"{i}.{k}": v for i, l in enumerate(self.layers) for k, v in getattr(l, "params", {}).items()}

    @property
    def grads(self):
        return {f"{i}.{k}": v for i, l in enumerate(self.layers) for k, v in getattr(l, "grads", {}).items()}

    def train(self, mode=True):
        """Set every layer (recursively) to training (or, with False, eval) mode."""
        self.training = bool(mode)
        for layer in self.layers:
            if hasattr(layer, "train"):
                layer.train(mode)
        return self

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = ",\n  ".join(repr(l) for l in self.layers)
        return f"Sequential(\n  {inner}\n)"
