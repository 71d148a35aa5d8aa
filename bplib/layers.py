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
    "MultiHeadSelfAttention", "TransformerBlock", "PositionalEmbedding",
    "softmax_forward", "softmax_backward", "attention_forward", "attention_backward",
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
#     k*k fast slice copies, adds or maxima (dx: see ``_conv_dx_col2im_chwn``). ReLU keeps
#     the memory order it is given;
#   * the channels of those arrays (the rows of the matmuls) are stored a little more than
#     Ho*Wo*N numbers apart (see ``_rows``), which makes the matmuls up to 2x faster.
# In the book's layout, cols (N*Ho*Wo, C*k*k), each convolution paid a transpose
# copy both ways, pooling reduced a transposed 6-axis window view, and col2im added
# runs of only Wo numbers: those copies cost more than the arithmetic
# (see benchmarks/README.md).
def _tap(d, s, n):
    """slice(d, d + s*(n-1) + 1, s): offset d inside each of n windows placed s apart."""
    return slice(d, d + s * (n - 1) + 1, s)


# Rows of a matrix handed to BLAS are stored an odd number of 64-byte cache lines apart
# (``_rows``): the matrices here have Ho*Wo*N columns, often a power of two, and rows a
# power of two of bytes apart fall on the same few cache sets. OpenBLAS's sgemm, for the
# conv2d benchmark's shapes: W2 (16, 200) @ cols (200, 4096) 0.57 ms with rows 4096 floats
# apart, 0.36 ms 4112 apart; dcols = W2^T (200, 16) @ d2 (16, 4096) 0.65 -> 0.31 ms; for the
# MNIST case's first convolution, (16, 25) @ (25, 36864), 0.80 -> 0.45 ms.
def _rows(work, name, shape, dtype):
    """An uninitialised array of ``shape`` whose rows (last axis) are stored an odd number of
    cache lines apart: a view of a slightly wider array. ``work``: reused as in ``_scratch``
    (None: a fresh array)."""
    dtype = np.dtype(dtype)
    n = shape[-1]
    lines = -(-n * dtype.itemsize // 64) | 1          # cache lines per row, rounded up to odd
    return _scratch(work, name, tuple(shape[:-1]) + (lines * 64 // dtype.itemsize,), dtype)[..., :n]


def _like_rows(x, dtype, zero=False):
    """An uninitialised (or zero) array laid out like x (N, C, H, W), for dx: batch innermost
    with rows padded as by ``_rows`` when x is batch innermost (Conv2D's output), so that
    Conv2D.backward can use it as is; else ``np.empty_like(x)`` (``zeros_like``)."""
    N, C, H, W = x.shape
    if x.transpose(1, 2, 3, 0)[0].flags.c_contiguous:
        a = _rows(None, "", (C, H * W * N), dtype)
        if zero:
            a[...] = 0
        return a.reshape(C, H, W, N).transpose(3, 0, 1, 2)
    return (np.zeros_like if zero else np.empty_like)(x, dtype=dtype)


def _to_chwn(x, padding=0, out=None):
    """x: (N, C, H, W) (any memory order)  ->  (C, H + 2p, W + 2p, N), zero-padded, each
    channel one contiguous block (a view of x when it already is, as Conv2D's output).
    ``out``: a (C, H*W*N) array to copy into instead (padding 0), returned as (C, H, W, N)."""
    N, C, H, W = x.shape
    xc = x.transpose(1, 2, 3, 0)                              # no copy if x came from these layers
    if not xc[0].flags.c_contiguous:                          # (only the channel stride may differ)
        # in two copies that each read long runs: one copy would read x with a
        # stride of C*H*W numbers, and power-of-two strides thrash the cache
        # (6x slower for x of shape (64, 16, 8, 8))
        xt = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(C, N, H * W)
        out = np.empty((C, H * W * N), x.dtype) if out is None else out
        out.reshape(C, H * W, N)[...] = xt.transpose(0, 2, 1)
        xc = out.reshape(C, H, W, N)
    elif out is not None:
        out.reshape(C, H, W, N)[...] = xc
        xc = out.reshape(C, H, W, N)
    if padding:
        xc = np.pad(xc, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    return xc


def _im2col_chwn(xc, k, s, Ho, Wo, work=None):
    """xc: (C, H, W, N) padded  ->  cols: (C*k*k, Ho*Wo*N), rows ordered (c, di, dj)
    like ``W.reshape(F, C*k*k)``, columns ordered (i, j, n). ``work``: see ``_scratch``."""
    C, N = xc.shape[0], xc.shape[3]
    cols = _rows(work, "cols", (C * k * k, Ho * Wo * N), xc.dtype)       # rows padded: see _rows
    c6 = cols.reshape(C, k, k, Ho, Wo, N)                                  # a view
    for di in range(k):
        for dj in range(k):
            c6[:, di, dj] = xc[:, _tap(di, s, Ho), _tap(dj, s, Wo)]
    return cols


def _conv_dx_col2im_chwn(W, d2, xc_shape, k, s, Ho, Wo, work=None):
    """dx of the convolution: col2im(W^T d2), the adjoint of ``_im2col_chwn`` applied to the
    product, one column offset dj at a time. W: (F, C, k, k), d2: (F, Ho*Wo*N)  ->  dxc:
    xc_shape = (C, H, W, N).

    For each dj, the rows (c, di) of dcols = W^T d2 (C*k, Ho*Wo*N) come from one matmul (a
    block small enough to stay in cache, where the whole dcols would not), are summed over
    di into G (C, H, Wo, N), and G is added at column offset dj. Two stages, because numpy
    adds into a strided slice of short runs several times slower than into long runs:
    G[:, di:di+Ho] (stride 1) is one run of Ho*Wo*N numbers per channel, and only the k
    adds into dxc[:, :, dj:dj+Wo] have runs of Wo*N."""
    C, Hp, Wp, N = xc_shape
    F = W.shape[0]
    dtype = np.result_type(W, d2)
    G = _scratch(work, "col2im", (C, Hp, Wo, N), dtype)
    Wdj = _scratch(work, "Wdj", (C * k, F), dtype)
    dcols = _rows(work, "dcols", (C * k, d2.shape[1]), dtype)
    dxc = np.empty(xc_shape, dtype) if s == 1 else np.zeros(xc_shape, dtype)
    for dj in range(k):
        Wdj[...] = W[:, :, :, dj].transpose(1, 2, 0).reshape(C * k, F)      # rows (c, di) of W^T
        dc = np.matmul(Wdj, d2, out=dcols).reshape(C, k, Ho, Wo, N)
        if s == 1:
            G[:, :Ho] = dc[:, 0]
            G[:, Ho:] = 0
        else:
            G[...] = 0
        for di in range(1 if s == 1 else 0, k):
            v = G[:, _tap(di, s, Ho)]
            np.add(v, dc[:, di], out=v)                                     # overlapping windows add up
        if s == 1 and dj == 0:
            dxc[:, :, :Wo] = G
            dxc[:, :, Wo:] = 0
        else:
            v = dxc[:, :, _tap(dj, s, Wo)]
            np.add(v, G, out=v)
    return dxc


def _maxpool_fast_forward(x, k, s, relu=False):
    """``maxpool2d_forward`` as k*k elementwise maxima of strided views (memory order kept).
    ``relu``: of relu(x), = relu of the maxima: the first offset's copy is max(x, 0)."""
    Ho, Wo = (x.shape[2] - k) // s + 1, (x.shape[3] - k) // s + 1
    first = x[:, :, _tap(0, s, Ho), _tap(0, s, Wo)]
    out = np.maximum(first, 0, dtype=x.dtype) if relu else first.copy(order="K")
    for di in range(k):
        for dj in range(k):
            if di or dj:
                np.maximum(out, x[:, :, _tap(di, s, Ho), _tap(dj, s, Wo)], out=out)
    return out


def _maxpool_fast_backward(dout, x, out, k, s, relu_mask=False):
    """``maxpool2d_backward`` given the forward ``out``: offsets are visited in the order
    argmax reads a window, and each window's dout goes to the first offset holding its max.

    ``taken`` marks the windows whose dout went out already: an offset wins where it holds
    the max and the window is not taken yet, so a tie goes to the first maximum. (These
    masks are bytes in out's memory order, cheap; the earlier form kept the dout not yet
    handed out as floats, ``rest -= dx``, one more pass over a strided view of dx per
    offset: 0.82 ms, now 0.70 ms, for x of shape (64, 16, 24, 24).) ``relu_mask``:
    dout * (out > 0) first (ReLU before the pooling, see Sequential.backward)."""
    Ho, Wo = out.shape[2], out.shape[3]
    d = np.empty_like(out, dtype=dout.dtype)                 # dout in out's memory order: read k*k times
    if relu_mask:
        np.multiply(dout, out > 0, out=d)
    else:
        d[...] = dout
    # windows that do not overlap and tile x exactly: every position of dx is written once
    tiled = s == k and x.shape[2] == Ho * k and x.shape[3] == Wo * k
    dx = _like_rows(x, dout.dtype, zero=not tiled)          # same memory order as x
    won = np.empty_like(out, dtype=bool)
    taken = np.zeros_like(out, dtype=bool)
    for di in range(k):
        for dj in range(k):
            rows, cols = _tap(di, s, Ho), _tap(dj, s, Wo)
            np.equal(x[:, :, rows, cols], out, out=won)
            np.greater(won, taken, out=won)                 # won and not taken
            taken |= won
            dxv = dx[:, :, rows, cols]
            if s >= k:                                      # windows do not overlap: write
                np.multiply(d, won, out=dxv)
            else:                                           # overlapping windows add up
                dxv += d * won
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
    # dWx = x^T da and dWh = h_prev^T da from one matmul: x_t and h_{t-1} as the rows of one
    # (D + H, T*N) array (the copies the two products needed anyway); this order runs faster in OpenBLAS
    xh = _scratch(work, "xh", (D + Hs, T, N), dtype)
    xh[:D] = state["xT"].transpose(1, 0, 2)
    xh[D:] = h[:-1].transpose(1, 0, 2)
    dW = (da @ xh.reshape(D + Hs, T * N).T).T                      # (D + H, 4H)
    dWx, dWh = dW[:D].copy(), dW[D:].copy()
    return dx, dh.T, dWx, dWh, da @ np.ones(T * N, dtype)           # db = da.sum(axis=1), as BLAS: 2x faster


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
# BatchNorm and LayerNorm as the classes run them: the same arithmetic, fewer passes
# ----------------------------------------------------------------------------
# ``batchnorm_*``/``layernorm_*`` above read like the equations: about a dozen whole-array
# numpy passes (x - mu, squares, x_hat, gamma x_hat + beta, and in the backward g, g x_hat,
# ...). The classes compute the same numbers with fewer, because here each whole-array
# pass costs more than all the arithmetic on the per-feature vectors:
#   * every sum over rows is a matrix-vector product with a vector of ones (BLAS reads
#     the array once, several times faster than ``sum`` over an inner axis), and each
#     sum of products, sum(x_c x_c) or sum(dout x_c), is one ``einsum`` pass;
#   * x_hat is not stored: the layer keeps x_c = x - mu and inv_std, and folds the
#     scalings into per-feature (or per-row) vectors: out = x_c (gamma inv_std) + beta;
#   * the backward is dx = inv_std gamma (dout - sum(dout)/m - x_hat sum(dout x_hat)/m),
#     the book's compact form with g = gamma dout and sum(g) = gamma sum(dout), as three
#     passes: dout - c1, times a, minus x_c c2;
#   * x_c and a scratch array are reused from call to call (never the returned arrays).
# A plugged-in ``backward_fn`` still gets ``batchnorm_forward``'s (or ``layernorm_forward``'s)
# cache, built from these arrays when it is called.
def _bn_sum(a, ones):
    """Sum of a (N, C, HW) or (N, D) array over every axis but 1, as matrix-vector products."""
    return (a @ ones).sum(axis=0) if a.ndim == 3 else ones @ a


def _bn_fast_forward(x, gamma, beta, eps, work):
    """= batchnorm_forward. x: (N, D) or (N, C, H, W) -> out (same shape), state."""
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, -1) if x.ndim == 4 else x               # (N, C, HW): sums over axes 0 and 2
    m = x.size // C
    ones = _scratch(work, "ones", (x3.shape[2] if x.ndim == 4 else N,), x.dtype)
    ones[...] = 1
    col = (lambda v: v[:, None]) if x.ndim == 4 else (lambda v: v)   # per-feature vector, broadcast
    mu = _bn_sum(x3, ones) / m
    xc = np.subtract(x3, col(mu), out=_scratch(work, "xc", x3.shape, x.dtype))
    var = np.einsum("nch,nch->c" if x.ndim == 4 else "nc,nc->c", xc, xc) / m
    inv_std = 1 / np.sqrt(var + eps)
    out = np.multiply(xc, col(gamma * inv_std))
    out += col(beta)
    return out.reshape(x.shape), dict(xc=xc, ones=ones, mean=mu, var=var, inv_std=inv_std, gamma=gamma, eps=eps,
                                      shape=x.shape, work=work)


def _bn_book_cache(state):
    """The cache ``batchnorm_forward`` returns, from the fast forward's arrays."""
    inv_std, shape = state["inv_std"], state["shape"]
    x_hat = (state["xc"] * (inv_std[:, None] if len(shape) == 4 else inv_std)).reshape(shape)
    return dict(x_hat=x_hat, gamma=state["gamma"], inv_std=inv_std, mean=state["mean"], var=state["var"],
                eps=state["eps"])


def _bn_fast_backward(dout, state):
    """= batchnorm_backward. dout: x's shape -> dx, dgamma, dbeta."""
    xc, ones, inv_std, gamma, shape = state["xc"], state["ones"], state["inv_std"], state["gamma"], state["shape"]
    d = dout.reshape(xc.shape)
    m = dout.size // shape[1]
    col = (lambda v: v[:, None]) if len(shape) == 4 else (lambda v: v)
    dbeta = _bn_sum(d, ones)
    dgamma = np.einsum("nch,nch->c" if len(shape) == 4 else "nc,nc->c", d, xc) * inv_std   # sum(dout x_hat)
    a = gamma * inv_std
    dx = np.subtract(d, col(dbeta / m))
    dx *= col(a)
    dx -= np.multiply(xc, col(a * inv_std * dgamma / m), out=_scratch(state["work"], "tmp", xc.shape, xc.dtype))
    return dx.reshape(shape), dgamma, dbeta


def _ln_fast_forward(x, gamma, beta, eps, work):
    """= layernorm_forward. x: (..., D) -> out (same shape), state.

    out = x_c S + beta with S = inv_std gamma^T, the (rows, D) outer product, made by a
    matrix product (faster than one more whole-array pass) and reused by the backward."""
    D = x.shape[-1]
    x2 = x.reshape(-1, D)
    R = x2.shape[0]
    ones = _scratch(work, "ones", (max(R, D),), x.dtype)
    ones[...] = 1
    mu = x2 @ ones[:D]
    mu /= D
    xc = np.subtract(x2, mu[:, None], out=_scratch(work, "xc", x2.shape, x.dtype))
    var = np.einsum("rd,rd->r", xc, xc)
    var /= D
    inv_std = 1 / np.sqrt(var + eps)
    # S = inv_std gamma^T as a product of (R, 2) and (2, D) with zero second column and row:
    # numpy sends a k = 1 product (an outer product) to a slow loop, k = 2 to BLAS
    a2, g2 = _scratch(work, "a2", (R, 2), x.dtype), _scratch(work, "g2", (2, D), x.dtype)
    a2[:, 0], a2[:, 1], g2[0], g2[1] = inv_std, 0, gamma, 0
    S = np.matmul(a2, g2, out=_scratch(work, "S", x2.shape, x.dtype))
    out = xc * S
    out += beta
    return out.reshape(x.shape), dict(xc=xc, S=S, ones=ones, inv_std=inv_std, gamma=gamma, shape=x.shape, work=work)


def _ln_book_cache(state):
    """The cache ``layernorm_forward`` returns, from the fast forward's arrays."""
    inv_std, shape = state["inv_std"], state["shape"]
    return dict(x_hat=(state["xc"] * inv_std[:, None]).reshape(shape), gamma=state["gamma"],
                inv_std=inv_std.reshape(shape[:-1] + (1,)))


def _ln_fast_backward(dout, state):
    """= layernorm_backward. dout: (..., D) -> dx, dgamma, dbeta.

    With x_hat = x_c inv_std: dx = S dout - x_c inv_std^3 sum_d(g x_c) / D - inv_std sum_d(g) / D,
    g = gamma dout; the row sums are matrix-vector products, sum_d g = dout gamma and
    sum_d g x_c = (dout x_c) gamma, and dgamma = inv_std^T (dout x_c)."""
    xc, S, ones, inv_std, gamma, shape = (state[k] for k in ("xc", "S", "ones", "inv_std", "gamma", "shape"))
    R, D = xc.shape
    d = dout.reshape(R, D)
    p = np.multiply(d, xc, out=_scratch(state["work"], "tmp", (R, D), np.result_type(d, xc)))
    dgamma, dbeta = inv_std @ p, ones[:R] @ d
    c2 = p @ gamma
    c2 *= inv_std * inv_std * inv_std / D
    c1 = d @ gamma
    c1 *= inv_std / D
    dx = d * S
    dx -= c1[:, None]
    dx -= np.multiply(xc, c2[:, None], out=p)
    return dx.reshape(shape), dgamma, dbeta


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
        # = dense_forward, with b added in place: a second fresh (N, M) array costs page
        # faults (on a (2048, 256) output, x W + b took 3x as long as x W then += b)
        out = self._x @ self.params["W"]
        out += self.params["b"]
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        if self.backward_fn is dense_backward:      # the built-in one: same result, faster
            W = self.params["W"]
            dx, self.grads["W"] = dout @ W.T, self._x.T @ dout
            self.grads["b"] = np.ones(dout.shape[0], dout.dtype) @ dout     # = dout.sum(axis=0), as BLAS
        else:
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
        self._work = {}                               # scratch arrays reused between calls

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
        # cols reused from call to call (a fresh 3 MB array costs a page fault per 4 KB)
        self._cols = _im2col_chwn(_to_chwn(self._x, p), k, self.stride, Ho, Wo, self._work)  # (C*k*k, Ho*Wo*N)
        W2 = self.params["W"].reshape(self.out_channels, -1)
        out = _rows(None, "out", (self.out_channels, Ho * Wo * N), np.result_type(W2, self._cols))
        np.matmul(W2, self._cols, out=out)                                      # (F, Ho*Wo*N)
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
            # d2 (F, Ho, Wo, N): dout as it is when batch innermost with rows padded (MaxPool2D's
            # dx for a Conv2D output is), else copied into rows padded (see _rows)
            d2 = dout.transpose(1, 2, 3, 0)
            if not (d2[0].flags.c_contiguous and d2.strides[0] != d2[0].nbytes):
                d2 = _to_chwn(dout, out=_rows(self._work, "d2", (F, Ho * Wo * N), dout.dtype))
            d2 = d2.reshape(F, Ho * Wo * N)                            # a view
            dW = (self._cols @ d2.T).T.reshape(W.shape)   # = d2 @ cols.T; OpenBLAS runs this order 2x faster
            db = d2 @ np.ones(d2.shape[1], d2.dtype)    # = d2.sum(axis=1); BLAS reads the rows 5x faster
            dx = None
            if self.input_grad:
                dxc = _conv_dx_col2im_chwn(W, d2, (C, H + 2 * p, W_ + 2 * p, N), k, s, Ho, Wo, self._work)
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

    def _check_input(self, x):
        _check_array("MaxPool2D", "input x", x, ("N", "C", "H", "W"))
        if min(x.shape[2:]) < self.kernel_size:
            raise ValueError(f"MaxPool2D: input of spatial size {x.shape[2]}x{x.shape[3]} is smaller "
                             f"than the {self.kernel_size}x{self.kernel_size} window")

    def forward(self, x):
        self._check_input(x)
        self._x, self._pre_relu = x, False
        out = _maxpool_fast_forward(x, self.kernel_size, self.stride)   # = maxpool2d_forward
        self._out = out.copy(order="K")               # the maxima for backward: the caller may change out
        self._fed_by = None                           # set by Sequential.forward (see Sequential.backward)
        self._out_shape = out.shape
        return out

    def _forward_after_relu(self, relu, x):
        """= forward(relu.forward(x)) without ReLU's whole-array pass (called by Sequential):
        max is monotone, so the max of relu(x) over a window is relu of the max of x."""
        _check_array("ReLU", "input x", x, ("N",) + ("...",) * (x.ndim - 1))
        relu._x, relu._out_shape = x, x.shape         # what ReLU.forward keeps: its input
        self._check_input(x)
        out = _maxpool_fast_forward(x, self.kernel_size, self.stride, relu=True)
        self._x, self._pre_relu = x, True             # the input before ReLU (see backward)
        self._out = out.copy(order="K")
        self._fed_by = relu
        self._out_shape = out.shape
        return out

    def _fast_backward(self, dout, relu_mask=False):
        """The built-in backward; ``relu_mask=True`` (after Sequential's ReLU + pooling forward)
        gives ReLU's dx too: see Sequential.backward."""
        if relu_mask:
            return _maxpool_fast_backward(dout, self._x, self._out, self.kernel_size, self.stride, relu_mask=True)
        x = np.maximum(self._x, 0) if self._pre_relu else self._x    # this layer's own input
        return _maxpool_fast_backward(dout, x, self._out, self.kernel_size, self.stride)

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        if self.backward_fn is maxpool2d_backward:    # the built-in one: same result, faster
            return self._fast_backward(dout)
        x = np.maximum(self._x, 0) if self._pre_relu else self._x    # this layer's own input
        return self.backward_fn(dout, x, self.kernel_size, self.stride)

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
        self._work = {}                               # scratch arrays reused between calls
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
            # = batchnorm_forward, in fewer passes (see "BatchNorm and LayerNorm as the classes run them")
            out, self._cache = _bn_fast_forward(x, gamma, beta, self.eps, self._work)
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
            if self.backward_fn is batchnorm_backward:    # the built-in one: same result, faster
                dx, dgamma, dbeta = _bn_fast_backward(dout, c)
            else:                                         # a plugged-in one gets batchnorm_forward's cache
                dx, dgamma, dbeta = self.backward_fn(dout, _bn_book_cache(c))
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
        self._work = {}                               # scratch arrays reused between calls
        self._x = None

    def forward(self, x):
        nd = x.ndim if isinstance(x, np.ndarray) and x.ndim >= 1 else 2
        _check_array("LayerNorm", "input x", x, ("...",) * (nd - 1) + (self.normalized_shape,))
        self._x = x = x.astype(self.dtype, copy=False)
        # = layernorm_forward, in fewer passes (see "BatchNorm and LayerNorm as the classes run them")
        out, self._cache = _ln_fast_forward(x, self.params["gamma"], self.params["beta"], self.eps, self._work)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        if self.backward_fn is layernorm_backward:        # the built-in one: same result, faster
            dx, self.grads["gamma"], self.grads["beta"] = _ln_fast_backward(dout, self._cache)
        else:                                             # a plugged-in one gets layernorm_forward's cache
            dx, self.grads["gamma"], self.grads["beta"] = self.backward_fn(dout, _ln_book_cache(self._cache))
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


def _relu_then_pool(relu, pool):
    """True when ``relu`` (built-in ReLU) fed ``pool`` (built-in MaxPool2D) in the last forward."""
    return (type(relu) is ReLU and relu.backward_fn is relu_backward and type(pool) is MaxPool2D
            and pool.backward_fn is maxpool2d_backward and getattr(pool, "_fed_by", None) is relu
            and relu._x is not None)


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
        layers, i = self.layers, 0
        while i < len(layers):
            layer = layers[i]
            if (i + 1 < len(layers) and type(layer) is ReLU and type(layers[i + 1]) is MaxPool2D
                    and isinstance(x, np.ndarray)):
                x = layers[i + 1]._forward_after_relu(layer, x)    # ReLU then pooling in one pass
                i += 2
                continue
            x = layer.forward(x)
            if type(layer) is MaxPool2D:
                layer._fed_by = layers[i - 1] if i else None       # which layer's output it pooled
            i += 1
        return x

    def backward(self, dout):
        i = len(self.layers) - 1
        while i >= 0:
            layer = self.layers[i]
            if i > 0 and _relu_then_pool(self.layers[i - 1], layer):
                # ReLU then MaxPool2D: dout reaches only each window's winner, whose ReLU slope is
                # 1 where the window's max is > 0 and 0 elsewhere; so masking the small dout by
                # (out > 0) before pooling's backward gives ReLU's dx without its whole-array pass
                layer._check_dout(dout)
                # (x before or after ReLU gives the same winners where the max is > 0)
                dout = layer._fast_backward(dout, relu_mask=True)
                i -= 2
            else:
                dout = layer.backward(dout)
                i -= 1
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


# ----------------------------------------------------------------------------
# softmax, scaled dot-product attention, multi-head self-attention, a transformer block
# ----------------------------------------------------------------------------
# Notation: N batch, T query positions, S key/value positions (S = T in
# self-attention), d features per query/key, dv features per value, D embedding
# size, h heads of size dh = D / h. ``(...)`` in a shape is any leading axes, for
# example (N,) or (N, h).
#
# Mask convention: a boolean array of shape (T, S) (or anything that broadcasts
# to the scores' (..., T, S)) that is **True where query t may attend to key s**,
# as ``np.tril(np.ones((T, S), bool))`` for ``mask="causal"`` (query t sees keys
# 0..t; top-left aligned when T != S, like PyTorch's ``is_causal``). Note that
# ``nn.MultiheadAttention``'s boolean ``attn_mask`` means the opposite (True =
# blocked): pass it ``~mask``. Masked scores become -inf before the softmax, so
# their weights are exactly 0 and they receive exactly zero gradient.
def softmax_forward(x):
    """Softmax along the last axis.

    x: (..., S)  ->  y: (..., S) (each row sums to 1), cache: dict(y=y)
        y_i = exp(x_i - max(x)) / sum_j exp(x_j - max(x))   (the max shift avoids overflow;
        entries of -inf give weight 0)
    """
    y = x - x.max(axis=-1, keepdims=True)
    np.exp(y, out=y)                                   # in place: y is a new array already
    y /= y.sum(axis=-1, keepdims=True)
    return y, dict(y=y)


def softmax_backward(dout, cache):
    """Backward of ``softmax_forward`` along the last axis.

    dout: (..., S) dL/dy, cache from the forward  ->  dx: (..., S) dL/dx
    """
    y = cache["y"]
    dx = dout * y
    dx -= y * dx.sum(axis=-1, keepdims=True)           # = y * (dout - sum(dout * y))
    return dx


def _attention_mask(mask, T, S):
    """The boolean (T, S)-broadcastable mask (True = may attend), or None; clear errors."""
    if mask is None:
        return None
    if isinstance(mask, str):
        if mask != "causal":
            raise ValueError(f"attention: mask must be None, 'causal' or a boolean array, got {mask!r}")
        return np.tril(np.ones((T, S), dtype=bool))
    if not isinstance(mask, np.ndarray) or mask.dtype != bool:
        raise ValueError(f"attention: mask must be a boolean array (True where query t may attend to key s), "
                         f"got {getattr(mask, 'dtype', type(mask).__name__)}")
    if mask.ndim < 2 or mask.shape[-2:] != (T, S):
        raise ValueError(f"attention: expected mask of shape (T, S) = ({T}, {S}) (or (..., {T}, {S})), "
                         f"got {_fmt(mask.shape)}")
    if not mask.any(axis=-1).all():
        raise ValueError("attention: some query may attend to no key at all (a mask row that is all False): "
                         "its softmax would be 0/0")
    return mask


def _check_attention(q, k, v):
    for name, a in (("q", q), ("k", k), ("v", v)):
        if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating) or a.ndim < 3:
            got = f"shape {_fmt(a.shape)}, dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
            raise ValueError(f"attention: {name} must be a floating-point array of shape (N, T, d) "
                             f"(or with more leading axes, such as (N, h, T, d)), got {got}")
    if not q.ndim == k.ndim == v.ndim or not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(f"attention: q, k, v must have the same leading axes, got shapes {_fmt(q.shape)}, "
                         f"{_fmt(k.shape)}, {_fmt(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: q (..., T, d) and k (..., S, d) need the same d for q k^T, got "
                         f"{_fmt(q.shape)} and {_fmt(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"attention: k (..., S, d) and v (..., S, dv) need the same length S (one value per "
                         f"key), got {_fmt(k.shape)} and {_fmt(v.shape)}")


def attention_forward(q, k, v, mask=None):
    """Scaled dot-product attention.

    q: (N, T, d), k: (N, S, d), v: (N, S, dv) (more leading axes allowed, e.g. (N, h, T, d)),
    mask: None, "causal", or a boolean (T, S) array, True where query t may attend to key s
    ->  out: (N, T, dv), cache (a dict)
        scores = q k^T / sqrt(d)  (N, T, S);  masked scores = -inf
        p = softmax(scores) along S;  out = p v
    """
    _check_attention(q, k, v)
    mask = _attention_mask(mask, q.shape[-2], k.shape[-2])
    scale = 1.0 / float(np.sqrt(q.shape[-1]))            # a Python float: float32 stays float32
    scores = q @ np.swapaxes(k, -1, -2)
    scores *= scale
    if mask is not None:
        np.copyto(scores, -np.inf, where=~mask)        # scores = where(mask, scores, -inf), in place
    p, _ = softmax_forward(scores)
    return p @ v, dict(q=q, k=k, v=v, p=p, scale=scale, mask=mask)


def attention_backward(dout, cache):
    """Backward of ``attention_forward``.

    dout: (N, T, dv), cache from the forward  ->  dq: (N, T, d), dk: (N, S, d), dv: (N, S, dv)
    (with the forward's leading axes). Masked positions get exactly zero gradient.
    """
    q, k, v, p, scale = cache["q"], cache["k"], cache["v"], cache["p"], cache["scale"]
    dv = np.swapaxes(p, -1, -2) @ dout
    dscores = softmax_backward(dout @ np.swapaxes(v, -1, -2), dict(y=p))   # exactly 0 where p = 0 (masked)
    dscores *= scale
    return dscores @ k, np.swapaxes(dscores, -1, -2) @ q, dv



# the attention as the class runs it: the same numbers, in a layout numpy reduces faster.
# A row max or sum over the last axis of (N, h, T, S) scores runs one short row at a time
# (S numbers): 3x slower than a reduction across rows, which is an elementwise maximum or
# sum of whole rows. So the class keeps the scores transposed, (N, h, S, T), reduces over
# axis -2, and hands ``attention_backward`` (or a learner's function) p as a (N, h, T, S)
# view. 1/sqrt(d) multiplies q (T*d numbers) instead of the scores (T*S numbers).
def _attention_fast_forward(q, k, v, causal, work):
    """= attention_forward(q, k, v, "causal" if causal else None): out, and its cache (p a view)."""
    T, S, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = 1.0 / float(np.sqrt(d))
    sT = k @ np.swapaxes(q * scale, -1, -2)                  # scores^T: (..., S, T)
    mask = None
    if causal:
        key = ("causal", T, S, sT.dtype)
        if key not in work:                                   # 0 where query t may attend to key s, -inf else
            allowed = np.tril(np.ones((T, S), dtype=bool))
            work[key] = (allowed, np.where(allowed.T, 0, -np.inf).astype(sT.dtype))
        mask, bias_T = work[key]
        sT += bias_T
    sT -= sT.max(axis=-2, keepdims=True)                      # softmax over S, across rows
    np.exp(sT, out=sT)
    sT /= sT.sum(axis=-2, keepdims=True)
    p = np.swapaxes(sT, -1, -2)                               # (..., T, S), a view
    return p @ v, dict(q=q, k=k, v=v, p=p, scale=scale, mask=mask)


def _attention_fast_backward(dout, cache):
    """= attention_backward(dout, cache) for a cache of ``_attention_fast_forward``."""
    q, k, v, pT, scale = cache["q"], cache["k"], cache["v"], np.swapaxes(cache["p"], -1, -2), cache["scale"]
    dv = pT @ dout
    dsT = v @ np.swapaxes(dout, -1, -2)                       # dL/dp^T: (..., S, T)
    dsT *= pT
    dsT -= pT * dsT.sum(axis=-2, keepdims=True)               # softmax backward, across rows
    dq = np.swapaxes(dsT, -1, -2) @ k
    dq *= scale
    dk = dsT @ q
    dk *= scale
    return dq, dk, dv

class MultiHeadSelfAttention(Layer):
    """Multi-head self-attention: x (N, T, D) -> out (N, T, D), h = ``num_heads`` heads of dh = D / h.

        q, k, v = split(x Wqkv^T + bqkv)   each (N, T, D), then (N, h, T, dh): head i uses
                                           features i*dh .. (i+1)*dh - 1
        heads = attention(q, k, v, mask)   (N, h, T, dh); mask = "causal" if ``causal``
        out = concat(heads) Wo^T + bo      concat: (N, T, D)

    params (PyTorch's ``nn.MultiheadAttention`` layout, y = x W^T + b, not Dense's x W + b):
        Wqkv (3D, D)  the query, key and value weights stacked in that order  = in_proj_weight
        bqkv (3D,)                                                            = in_proj_bias
        Wo (D, D)                                                             = out_proj.weight
        bo (D,)                                                               = out_proj.bias
    With the same weights it computes what ``nn.MultiheadAttention(D, h, batch_first=True)``
    computes for ``mha(x, x, x, need_weights=False, attn_mask=...)`` (for ``causal``:
    ``attn_mask=torch.triu(torch.ones(T, T, dtype=torch.bool), 1)``, True = blocked), and
    ``grads`` match the torch parameters' ``.grad`` under the same names.
    ``load_torch_state_dict(mha.state_dict())`` copies torch's weights in;
    ``torch_state_dict()`` gives the weights under torch's names, as numpy arrays:
    ``mha.load_state_dict({k: torch.from_numpy(v) for k, v in layer.torch_state_dict().items()})``.
    Initialisation as in PyTorch: Wqkv Xavier-uniform, Wo uniform in +-1/sqrt(D), biases 0.
    ``attention_backward_fn(dout, cache) -> (dq, dk, dv)`` (the signature of
    ``attention_backward``, called on the (N, h, T, dh) heads) may replace the attention's backward.
    """

    TORCH_NAMES = {"Wqkv": "in_proj_weight", "bqkv": "in_proj_bias", "Wo": "out_proj.weight", "bo": "out_proj.bias"}

    def __init__(self, embed_dim, num_heads, causal=False, *, rng=None, dtype=np.float32,
                 attention_backward_fn=None):
        if num_heads < 1 or embed_dim < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiHeadSelfAttention: embed_dim must be a positive multiple of num_heads, "
                             f"got embed_dim={embed_dim}, num_heads={num_heads}")
        rng = _init_rng(rng)
        D = self.embed_dim = embed_dim
        self.num_heads, self.head_dim, self.causal, self.dtype = num_heads, D // num_heads, bool(causal), np.dtype(dtype)
        a, c = np.sqrt(6.0 / (D + 3 * D)), 1.0 / np.sqrt(D)
        self.params = {"Wqkv": rng.uniform(-a, a, (3 * D, D)).astype(dtype), "bqkv": np.zeros(3 * D, dtype=dtype),
                       "Wo": rng.uniform(-c, c, (D, D)).astype(dtype), "bo": np.zeros(D, dtype=dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.attention_backward_fn = attention_backward_fn or attention_backward
        self._x = None
        self._work = {}                               # the causal mask, kept between calls

    def forward(self, x):
        _check_array("MultiHeadSelfAttention", "input x", x, ("N", "T", self.embed_dim))
        self._x = x = x.astype(self.dtype, copy=False)
        N, T, D = x.shape
        h, dh = self.num_heads, self.head_dim
        qkv = x.reshape(N * T, D) @ self.params["Wqkv"].T + self.params["bqkv"]      # (N*T, 3D)
        q, k, v = qkv.reshape(N, T, 3, h, dh).transpose(2, 0, 3, 1, 4)               # each (N, h, T, dh)
        # = attention_forward(q, k, v, "causal" if self.causal else None), scores transposed (see above)
        heads, self._cache = _attention_fast_forward(q, k, v, self.causal, self._work)
        self._concat = heads.transpose(0, 2, 1, 3).reshape(N * T, D)                 # (N*T, D)
        out = (self._concat @ self.params["Wo"].T + self.params["bo"]).reshape(N, T, D)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        N, T, D = dout.shape
        h, dh = self.num_heads, self.head_dim
        d2 = dout.reshape(N * T, D)
        self.grads["Wo"], self.grads["bo"] = d2.T @ self._concat, d2.sum(axis=0)   # out = concat Wo^T + bo
        dheads = (d2 @ self.params["Wo"]).reshape(N, T, h, dh).transpose(0, 2, 1, 3)
        if self.attention_backward_fn is attention_backward:      # the built-in one: same result, faster
            dq, dk, dv = _attention_fast_backward(dheads, self._cache)
        else:
            dq, dk, dv = self.attention_backward_fn(dheads, self._cache)
        dqkv = np.empty((N, T, 3, h, dh), dtype=dheads.dtype)       # back to (N*T, 3D): q, k, v, then heads
        for i, g in enumerate((dq, dk, dv)):
            dqkv[:, :, i] = g.transpose(0, 2, 1, 3)
        dqkv = dqkv.reshape(N * T, 3 * D)
        self.grads["Wqkv"] = dqkv.T @ self._x.reshape(N * T, D)                     # qkv = x Wqkv^T + bqkv
        self.grads["bqkv"] = dqkv.sum(axis=0)
        return (dqkv @ self.params["Wqkv"]).reshape(N, T, D)

    def load_torch_state_dict(self, state):
        """Copy weights from ``nn.MultiheadAttention.state_dict()`` (torch tensors or arrays) into ``params``."""
        for name, tname in self.TORCH_NAMES.items():
            if tname not in state:
                raise ValueError(f"MultiHeadSelfAttention.load_torch_state_dict: {tname!r} is missing "
                                 f"(needs {sorted(self.TORCH_NAMES.values())})")
            t = state[tname]
            a = np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t)
            if a.shape != self.params[name].shape:
                raise ValueError(f"MultiHeadSelfAttention.load_torch_state_dict: {tname} has shape "
                                 f"{_fmt(a.shape)}, expected {_fmt(self.params[name].shape)}")
            self.params[name][...] = a          # in place: an optimizer holding params sees the new values
        return self

    def torch_state_dict(self):
        """The weights under ``nn.MultiheadAttention``'s names, as numpy copies."""
        return {tname: self.params[name].copy() for name, tname in self.TORCH_NAMES.items()}

    def __repr__(self):
        return f"MultiHeadSelfAttention({self.embed_dim}, num_heads={self.num_heads}, causal={self.causal})"


class PositionalEmbedding(Layer):
    """A learned position table added to a sequence: x (N, T, D) -> out = x + W[:T] (N, T, D).

    params: W (max_len, D), initialised N(0, 0.02^2). Rows T..max_len-1 get zero gradient.
    """

    def __init__(self, max_len, embed_dim, *, rng=None, dtype=np.float32):
        rng = _init_rng(rng)
        self.max_len, self.embed_dim, self.dtype = max_len, embed_dim, np.dtype(dtype)
        self.params = {"W": (0.02 * rng.standard_normal((max_len, embed_dim))).astype(dtype)}
        self.grads = {"W": np.zeros_like(self.params["W"])}
        self._x = None

    def forward(self, x):
        _check_array("PositionalEmbedding", "input x", x, ("N", "T", self.embed_dim))
        if x.shape[1] > self.max_len:
            raise ValueError(f"PositionalEmbedding: sequence of length T={x.shape[1]} is longer than "
                             f"max_len={self.max_len}")
        self._x = x = x.astype(self.dtype, copy=False)
        out = x + self.params["W"][:x.shape[1]]
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        dW = np.zeros_like(self.params["W"])
        dW[:dout.shape[1]] = dout.sum(axis=0)       # each row is added to every sequence of the batch
        self.grads["W"] = dW
        return dout

    def __repr__(self):
        return f"PositionalEmbedding({self.max_len}, {self.embed_dim})"


class TransformerBlock(Layer):
    """Pre-norm transformer block: x (N, T, D) -> out (N, T, D).

        h = x + attn(ln1(x))            attn: MultiHeadSelfAttention(D, num_heads, causal)
        out = h + fc2(relu(fc1(ln2(h))))   fc1: Dense(D, mlp_hidden), fc2: Dense(mlp_hidden, D)

    Sub-layers are attributes ``ln1, attn, ln2, fc1, act, fc2``; ``params``/``grads`` are
    flat dicts keyed ``"<sub-layer>.<name>"`` (for example ``"attn.Wqkv"``, ``"fc1.W"``)
    holding the sub-layers' own arrays. ``attention_backward_fn`` is passed to ``attn``.
    """

    SUBLAYERS = ("ln1", "attn", "ln2", "fc1", "act", "fc2")

    def __init__(self, embed_dim, num_heads, mlp_hidden, causal=False, *, rng=None, dtype=np.float32,
                 attention_backward_fn=None, eps=1e-5):
        rng = _init_rng(rng)
        self.embed_dim, self.num_heads, self.mlp_hidden, self.causal = embed_dim, num_heads, mlp_hidden, bool(causal)
        self.dtype = np.dtype(dtype)
        self.ln1 = LayerNorm(embed_dim, eps, dtype=dtype)
        self.attn = MultiHeadSelfAttention(embed_dim, num_heads, causal, rng=rng, dtype=dtype,
                                           attention_backward_fn=attention_backward_fn)
        self.ln2 = LayerNorm(embed_dim, eps, dtype=dtype)
        self.fc1 = Dense(embed_dim, mlp_hidden, rng=rng, dtype=dtype)
        self.act = ReLU()
        self.fc2 = Dense(mlp_hidden, embed_dim, rng=rng, dtype=dtype)
        self._x = None

    def forward(self, x):
        _check_array("TransformerBlock", "input x", x, ("N", "T", self.embed_dim))
        self._x = x = x.astype(self.dtype, copy=False)
        N, T, D = x.shape
        h = x + self.attn.forward(self.ln1.forward(x))
        m = self.fc2.forward(self.act.forward(self.fc1.forward(self.ln2.forward(h).reshape(N * T, D))))
        out = h + m.reshape(N, T, D)
        self._out_shape = out.shape
        return out

    def backward(self, dout):
        self._need_forward()
        self._check_dout(dout)
        N, T, D = dout.shape
        dm = self.fc1.backward(self.act.backward(self.fc2.backward(dout.reshape(N * T, D))))
        dh = dout + self.ln2.backward(dm.reshape(N, T, D))            # the residual path adds dout
        return dh + self.ln1.backward(self.attn.backward(dh))

    @property
    def params(self):
        return {f"{s}.{k}": v for s in self.SUBLAYERS for k, v in getattr(self, s).params.items()}

    @property
    def grads(self):
        return {f"{s}.{k}": v for s in self.SUBLAYERS for k, v in getattr(self, s).grads.items()}

    def train(self, mode=True):
        """Set the block and its sub-layers to training (or, with False, eval) mode."""
        self.training = bool(mode)
        for s in self.SUBLAYERS:
            getattr(self, s).train(mode)
        return self

    def __repr__(self):
        return (f"TransformerBlock({self.embed_dim}, num_heads={self.num_heads}, mlp_hidden={self.mlp_hidden}, "
                f"causal={self.causal})")
