"""Checks for the conv_backward assignment.

    conv2d_backward(dout, x, W, stride, padding) -> (dx, dW, db)
        dout: (N, F, Ho, Wo), x: (N, C, H, W), W: (F, C, k, k)
    maxpool2d_backward(dout, x, k, stride) -> dx
        dout: (N, C, Ho, Wo), x: (N, C, H, W)
"""
import numpy as np

from .. import layers
from .core import visible_and_hidden

A = "conv_backward"


# -- conv -----------------------------------------------------------------------------
def _conv_case(rng, N, C, H, W_, F, k, stride, padding, name=None):
    Ho = layers.conv_output_size(H, k, stride, padding)
    Wo = layers.conv_output_size(W_, k, stride, padding)
    return dict(name=name or f"N={N}, C={C}, {H}x{W_}, F={F}, k={k}, stride={stride}, padding={padding}",
                x=rng.standard_normal((N, C, H, W_)), W=rng.standard_normal((F, C, k, k)),
                dout=rng.standard_normal((N, F, Ho, Wo)), stride=stride, padding=padding)


def _conv_visible(rng):
    x = np.arange(16, dtype=float).reshape(1, 1, 4, 4) / 10
    W = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])
    dout = np.array([[[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0]]]])
    return [dict(name="one 4x4 image, one 2x2 filter, stride=1, padding=0", x=x, W=W, dout=dout, stride=1, padding=0),
            _conv_case(rng, 2, 3, 5, 5, 4, 3, 1, 1),
            _conv_case(rng, 2, 2, 6, 6, 3, 3, 2, 1)]


def _conv_hidden(rng):
    return [_conv_case(rng, 1, 1, 5, 5, 1, 3, 1, 0, "batch of one, one channel, one filter"),
            _conv_case(rng, 3, 2, 7, 7, 2, 3, 3, 0, "stride 3 leaves the last row and column unused"),
            _conv_case(rng, 2, 3, 6, 8, 4, 3, 2, 2, "rectangular 6x8 input, stride 2, padding 2"),
            _conv_case(rng, 2, 4, 5, 5, 3, 1, 1, 0, "1x1 kernel"),
            _conv_case(rng, 4, 2, 9, 9, 5, 5, 2, 1),
            _conv_case(rng, 2, 3, 4, 4, 2, 4, 1, 1, "kernel as large as the image, padding 1")]


def _conv_ref(c):
    dx, dW, db = layers.conv2d_backward(c["dout"], c["x"], c["W"], c["stride"], c["padding"])
    return {"dx": dx, "dW": dW, "db": db}


def _conv_model(c, stride_in_dx=True, flip=False):
    """A loop over kernel offsets with two classic mistakes as switches (for the hints)."""
    x, W, dout, s, p = c["x"], c["W"], c["dout"], c["stride"], c["padding"]
    k, Ho, Wo = W.shape[2], dout.shape[2], dout.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    dxp = np.zeros_like(xp)
    Wd = W[:, :, ::-1, ::-1] if flip else W
    for di in range(k):
        for dj in range(k):
            g = np.einsum("nfij,fc->ncij", dout, Wd[:, :, di, dj])
            if stride_in_dx:
                dxp[:, :, di:di + s * Ho:s, dj:dj + s * Wo:s] += g
            else:
                dxp[:, :, di:di + Ho, dj:dj + Wo] += g
    return {"dx": dxp[:, :, p:p + x.shape[2], p:p + x.shape[3]]}


_conv_mistakes = [
    ("The kernel is flipped: in the forward pass (a cross-correlation) W[f, c, di, dj] meets "
     "x[s*i + di, s*j + dj]; use the same W[:, :, di, dj] in the backward pass.",
     lambda c: _conv_model(c, flip=True)),
    ("The stride is ignored in dx: output (i, j) came from the window starting at (stride*i, stride*j), "
     "so its gradient goes back there.", lambda c: _conv_model(c, stride_in_dx=False) if c["stride"] > 1 else {}),
]


def _conv_diagnose(c, got, want):
    hints = []
    x, p = c["x"], c["padding"]
    dx, db, dW = got.get("dx"), got.get("db"), got.get("dW")
    N, C, H, W_ = x.shape
    if dx is not None and np.shape(dx) == (N, C, H + 2 * p, W_ + 2 * p) and p > 0:
        hints.append(f"dx has the shape of the PADDED input: crop the padding from dx "
                     f"(dx_padded[:, :, {p}:-{p}, {p}:-{p}]), since the padded zeros are not inputs.")
    if db is not None and np.ndim(db) > 1:
        hints.append("db must sum dout over the batch AND every output position: dout.sum(axis=(0, 2, 3)).")
    if dW is not None and np.shape(dW) == want["dW"].shape and not np.allclose(dW, want["dW"]) \
            and np.allclose(dW, want["dW"][:, :, ::-1, ::-1]):
        hints.append("dW is flipped (rotated 180 degrees): dW[f, c, di, dj] pairs dout with x shifted by (di, dj).")
    return hints


def _call_conv(fn, c):
    return fn(c["dout"], c["x"], c["W"], c["stride"], c["padding"])


# -- max pooling ------------------------------------------------------------------------
def _pool_case(rng, N, C, H, W_, k, stride, name=None):
    Ho, Wo = (H - k) // stride + 1, (W_ - k) // stride + 1
    x = rng.permutation(N * C * H * W_).reshape(N, C, H, W_) / (N * C * H * W_) - 0.5   # distinct values: no ties
    return dict(name=name or f"N={N}, C={C}, {H}x{W_}, k={k}, stride={stride}", x=x,
                dout=rng.standard_normal((N, C, Ho, Wo)), k=k, stride=stride)


def _pool_visible(rng):
    x = np.array([[[[1.0, 2.0, 0.0, 1.0], [4.0, 3.0, 2.0, 5.0], [0.0, 1.0, 9.0, 8.0], [2.0, 6.0, 7.0, 3.0]]]])
    dout = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    return [dict(name="one 4x4 image, k=2, stride=2", x=x, dout=dout, k=2, stride=2),
            _pool_case(rng, 2, 3, 6, 6, 2, 2),
            _pool_case(rng, 1, 2, 5, 5, 3, 2, "overlapping windows: k=3, stride=2")]


def _pool_hidden(rng):
    return [_pool_case(rng, 1, 1, 4, 4, 2, 2, "batch of one"),
            _pool_case(rng, 2, 2, 6, 6, 2, 1, "stride 1: every input in up to 4 windows"),
            _pool_case(rng, 3, 2, 7, 5, 2, 2, "odd 7x5 input: last row unused"),
            _pool_case(rng, 2, 4, 9, 9, 3, 3),
            _pool_case(rng, 2, 1, 6, 6, 3, 1, "k=3, stride=1")]


def _pool_ref(c):
    return {"dx": layers.maxpool2d_backward(c["dout"], c["x"], c["k"], c["stride"])}


def _pool_windows(c, fn):
    """dx from fn(window (N, C, k, k), dout (N, C)) -> share (N, C, k, k), added per window."""
    x, dout, k, s = c["x"], c["dout"], c["k"], c["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k]
            dx[:, :, i * s:i * s + k, j * s:j * s + k] += fn(win, dout[:, :, i, j][:, :, None, None])
    return {"dx": dx}


def _pool_overwrite_window(c):
    x, dout, k, s = c["x"], c["dout"], c["k"], c["stride"]
    dx = np.zeros_like(x)
    N, C = x.shape[:2]
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k].reshape(N, C, k * k)
            winner = np.arange(k * k) == win.argmax(axis=2)[:, :, None]
            dx[:, :, i * s:i * s + k, j * s:j * s + k] = (winner * dout[:, :, i, j][:, :, None]).reshape(N, C, k, k)
    return {"dx": dx}


def _pool_overwrite(c):
    x, dout, k, s = c["x"], c["dout"], c["k"], c["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k]
            mask = win == win.max(axis=(2, 3), keepdims=True)
            region = dx[:, :, i * s:i * s + k, j * s:j * s + k]
            region[mask] = (mask * dout[:, :, i, j][:, :, None, None])[mask]
    return {"dx": dx}


_pool_mistakes = [
    ("The gradient went to every input of the window: it goes only to the max of each window "
     "(the one input that won), the others get 0.", lambda c: _pool_windows(c, lambda w, d: np.ones_like(w) * d)),
    ("This is average pooling's backward (dout / k^2 to every input): max pooling sends dout only to the max.",
     lambda c: _pool_windows(c, lambda w, d: np.ones_like(w) * d / w.shape[2] ** 2)),
    ("Overlapping windows must ADD their gradients (+=): an input that is the max of two windows gets both.",
     _pool_overwrite),
    ("Overlapping windows must ADD their gradients (+=), not overwrite a whole window: an input "
     "that is the max of two windows gets both.", _pool_overwrite_window),
    ("The gradient goes to the MAX of each window, not the min.",
     lambda c: _pool_windows(c, lambda w, d: (w == w.min(axis=(2, 3), keepdims=True)) * d)),
]


def _call_pool(fn, c):
    return fn(c["dout"], c["x"], c["k"], c["stride"])


def _checks():
    hints = {
        "conv2d_backward": "Loop over the kernel offsets (di, dj): the slice of the padded input that "
                           "W[:, :, di, dj] touched is xp[:, :, di:di + s*Ho:s, dj:dj + s*Wo:s]; "
                           "dW, dx and db each have their variable's shape.",
        "maxpool2d_backward": "For each output (i, j), find the max of its window and add dout[:, :, i, j] "
                              "there (and only there).",
    }
    spec = [
        ("conv2d_backward", ("dx", "dW", "db"), _call_conv, _conv_ref, _conv_mistakes, _conv_visible,
         _conv_hidden, (3, 5), dict(diagnose=_conv_diagnose)),
        ("maxpool2d_backward", ("dx",), _call_pool, _pool_ref, _pool_mistakes, _pool_visible, _pool_hidden,
         (2, 3)),
    ]
    return visible_and_hidden(A, spec, hints)


CHECKS = _checks()
