"""Checks for the conv_backward assignment.

    conv2d_backward(dout, x, W, stride, padding) -> (dx, dW, db)
        dout: (N, F, Ho, Wo), x: (N, C, H, W), W: (F, C, k, k)
    maxpool2d_backward(dout, x, k, stride) -> dx
        dout: (N, C, Ho, Wo), x: (N, C, H, W)
"""
import numpy as np

from .. import layers
from .calls.conv_backward import CALLS
from .core import Ladder, Mistake, visible_and_hidden

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
    W = np.array([[[[1.0, 2.0], [0.0, -1.0]]]])
    dout = np.array([[[[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, -1.0]]]])
    return [dict(name="one 4x4 image, one 2x2 filter, stride=1, padding=0", x=x, W=W, dout=dout, stride=1, padding=0),
            _conv_case(rng, 2, 3, 5, 5, 4, 3, 1, 1),
            _conv_case(rng, 2, 2, 6, 6, 3, 3, 2, 1)]


def _conv_ref(c):
    dx, dW, db = layers.conv2d_backward(c["dout"], c["x"], c["W"], c["stride"], c["padding"])
    return {"dx": dx, "dW": dW, "db": db}


def _offsets(c, unit_stride=False):
    """(di, dj, the slice of the padded input that W[:, :, di, dj] multiplied), for every offset."""
    s = 1 if unit_stride else c["stride"]
    k, Ho, Wo = c["W"].shape[2], c["dout"].shape[2], c["dout"].shape[3]
    for di in range(k):
        for dj in range(k):
            yield di, dj, (slice(None), slice(None), slice(di, di + s * Ho, s), slice(dj, dj + s * Wo, s))


def _pad(c):
    p = c["padding"]
    return np.pad(c["x"], ((0, 0), (0, 0), (p, p), (p, p)))


def _conv_dx_model(c, unit_stride=False, flip=False, crop="middle", overwrite=False):
    """dx with classic mistakes as switches (the wrong answers the verdict recognises)."""
    x, W, dout, p = c["x"], c["W"], c["dout"], c["padding"]
    H, W_ = x.shape[2], x.shape[3]
    Wd = W[:, :, ::-1, ::-1] if flip else W
    xp = _pad(c)
    dxp = np.zeros_like(xp)
    for di, dj, sl in _offsets(c, unit_stride):
        g = np.einsum("nfij,fc->ncij", dout, Wd[:, :, di, dj])
        if overwrite:
            dxp[sl] = g
        else:
            dxp[sl] += g
    if crop == "none":
        return {"dx": dxp}
    if crop == "corner":
        return {"dx": dxp[:, :, :H, :W_]}
    return {"dx": dxp[:, :, p:p + H, p:p + W_]}


def _conv_dW_model(c, unit_stride=False):
    xp = _pad(c)
    dW = np.zeros_like(c["W"])
    for di, dj, sl in _offsets(c, unit_stride):
        dW[:, :, di, dj] = np.einsum("nfij,ncij->fc", c["dout"], xp[sl])
    return {"dW": dW}


def _only_if(cond, model):
    """A model that applies only to some cases (stride > 1, padding > 0): {} elsewhere."""
    return lambda c: model(c) if cond(c) else {}


_strided = lambda c: c["stride"] > 1        # noqa: E731
_padded = lambda c: c["padding"] > 0        # noqa: E731

_S_PADDED = ("dx has the shape of the padded input (H + 2*padding, W + 2*padding): the padding's zeros are "
             "not inputs of the layer, so there is no gradient to return for them.")
_S_DB_POSITIONS = ("db still has the output's spatial axes: b[f] is added at every output position of every "
                   "example, and all those uses add up.")
_S_DB_BATCH = "db still has one row per example: the examples' contributions were not added up."
_S_DW_FLIPPED = ("dW is turned by 180 degrees (each k x k kernel upside down and mirrored): in the forward pass "
                 "W[f, c, di, dj] meets the input at offset (di, dj) of each window, unturned.")

_C_REUSE = ("A convolution reuses every weight at every output position, and every input pixel in every window "
            "that covers it. The chain rule adds up the gradient of each use.")
_C_CORR = ("The forward pass is a cross-correlation: nothing in it is flipped. Each product W[f, c, di, dj] * "
           "xp[n, c, s*i + di, s*j + dj] sends dout[n, f, i, j] back to its two factors, each times the other.")
_R_DX = ("d out[n, f, i, j] / d xp[n, c, s*i + di, s*j + dj] = W[f, c, di, dj]: the same (di, dj) on both sides. "
         "An element of xp reached from several (i, j, di, dj) gets the sum of them.")
_C_STRIDE = ("Output (i, j) read the window that starts at (stride*i, stride*j) of the padded input: with a stride "
             "above 1, neighbouring outputs read windows stride pixels apart. The backward pass sends each "
             "gradient back to exactly the inputs its output read.")
_R_STRIDE = ("For a fixed offset (di, dj), W[:, :, di, dj] multiplied the padded inputs at rows s*i + di and "
             "columns s*j + dj, for i < Ho and j < Wo: every s-th row and column, starting at (di, dj).")

_conv_mistakes = [
    Mistake("dx is what the kernel turned by 180 degrees would give: in the forward pass (a cross-correlation) "
            "W[f, c, di, dj] meets the input at offset (di, dj) of each window, and its gradient goes back "
            "through that same weight.", lambda c: _conv_dx_model(c, flip=True), concept=_C_CORR, rule=_R_DX),
    Mistake("dx is placed as if the stride were 1: the gradient of output (i, j) must go back to the window it "
            "read, which starts at (stride*i, stride*j).",
            _only_if(_strided, lambda c: _conv_dx_model(c, unit_stride=True)), concept=_C_STRIDE, rule=_R_STRIDE),
    Mistake("dW is computed as if the stride were 1: output (i, j) read the window that starts at "
            "(stride*i, stride*j), so that window's pixels are the ones paired with dout[:, :, i, j].",
            _only_if(_strided, lambda c: _conv_dW_model(c, unit_stride=True)), concept=_C_STRIDE, rule=_R_STRIDE),
    Mistake(_S_DW_FLIPPED, lambda c: {"dW": _conv_ref(c)["dW"][:, :, ::-1, ::-1]}, concept=_C_CORR,
            rule="d out[n, f, i, j] / d W[f, c, di, dj] = xp[n, c, s*i + di, s*j + dj]: offset (di, dj) of the "
                 "window, the same (di, dj) as the weight."),
    Mistake(_S_PADDED, _only_if(_padded, lambda c: _conv_dx_model(c, crop="none")),
            concept="Padding adds zeros around x before the convolution. They are constants, not inputs: x is "
                    "(N, C, H, W), so dx is too.",
            rule="x[n, c, h, w] sits at xp[n, c, h + padding, w + padding]; its gradient is the gradient of that "
                 "element of xp."),
    Mistake("dx has the right shape but is shifted by the padding: it was cut from a corner of the padded "
            "gradient, not from its middle (x sits padding rows and columns in from every side).",
            _only_if(_padded, lambda c: _conv_dx_model(c, crop="corner")),
            concept="Padding adds the same number of zeros on every side, so x sits in the middle of xp.",
            rule="x[n, c, h, w] sits at xp[n, c, h + padding, w + padding]."),
    Mistake("dx is wrong where windows or kernel offsets overlap: an input pixel used several times must receive "
            "the sum of all its gradients, but each new one replaced those before it.",
            lambda c: _conv_dx_model(c, overwrite=True), concept=_C_REUSE, rule=_R_DX),
    Mistake(_S_DB_POSITIONS, lambda c: {"db": c["dout"].sum(axis=0)}, concept=_C_REUSE,
            rule="d out[n, f, i, j] / d b[f] = 1 for every n, i and j."),
    Mistake(_S_DB_BATCH, lambda c: {"db": c["dout"].sum(axis=(2, 3))}, concept=_C_REUSE,
            rule="d out[n, f, i, j] / d b[f] = 1 for every n, i and j."),
    Mistake("db is an average where the uses of b add up: it is too small by the number of terms averaged.",
            lambda c: {"db": c["dout"].mean(axis=(0, 2, 3))}, concept=_C_REUSE,
            rule="d out[n, f, i, j] / d b[f] = 1 for every n, i and j; the 1/N of the loss is already in dout."),
    Mistake("dW is exactly N (the batch size) times too small: it was averaged over the batch, where the "
            "examples' contributions add up (the 1/N of the loss is already inside dout).",
            lambda c: {"dW": _conv_ref(c)["dW"] / len(c["x"])}, concept=_C_REUSE,
            rule="d out[n, f, i, j] / d W[f, c, di, dj] = xp[n, c, s*i + di, s*j + dj], summed over n, i and j."),
]


def _conv_diagnose(c, got, want):
    """Shape symptoms even when the values are wrong in other ways too."""
    out = []
    x, p = c["x"], c["padding"]
    N, C, H, W_ = x.shape
    dx, db, dW = got.get("dx"), got.get("db"), got.get("dW")
    if dx is not None and p > 0 and np.shape(dx) == (N, C, H + 2 * p, W_ + 2 * p):
        out.append(_S_PADDED)
    if db is not None and np.ndim(db) > 1:
        out.append(_S_DB_BATCH if np.shape(db) == (N, want["db"].shape[0]) else _S_DB_POSITIONS)
    return out


# -- max pooling ------------------------------------------------------------------------
def _pool_case(rng, N, C, H, W_, k, stride, name=None):
    Ho, Wo = (H - k) // stride + 1, (W_ - k) // stride + 1
    x = rng.permutation(N * C * H * W_).reshape(N, C, H, W_) / (N * C * H * W_) - 0.5   # distinct values: no ties
    return dict(name=name or f"N={N}, C={C}, {H}x{W_}, k={k}, stride={stride}", x=x,
                dout=rng.standard_normal((N, C, Ho, Wo)), k=k, stride=stride)


def _pool_relu_case(rng, N, C, H, W_, k, stride, name):
    """Inputs after a ReLU: many exact zeros, so many windows have a tied maximum."""
    c = _pool_case(rng, N, C, H, W_, k, stride, name)
    c["x"] = np.maximum(np.round(rng.standard_normal((N, C, H, W_)), 1) - 0.5, 0)
    return c


def _pool_visible(rng):
    x = np.array([[[[1.0, 2.0, 0.0, 1.0], [4.0, 3.0, 2.0, 5.0], [0.0, 1.0, 9.0, 8.0], [2.0, 6.0, 7.0, 3.0]]]])
    dout = np.array([[[[10.0, 20.0], [30.0, 40.0]]]])
    ties = np.array([[[[0.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 3.0], [2.0, 5.0, 5.0, 0.0], [1.0, 0.0, 5.0, 5.0]]]])
    return [dict(name="one 4x4 image, k=2, stride=2", x=x, dout=dout, k=2, stride=2),
            _pool_case(rng, 2, 3, 6, 6, 2, 2),
            _pool_case(rng, 1, 2, 5, 5, 3, 2, "overlapping windows: k=3, stride=2"),
            dict(name="tied maxima (a window of zeros, as after a ReLU): the first in row-major order wins",
                 x=ties, dout=dout.copy(), k=2, stride=2)]


def _pool_ref(c):
    return {"dx": layers.maxpool2d_backward(c["dout"], c["x"], c["k"], c["stride"])}


def _pool_windows(c, fn, unit_stride=False):
    """dx from fn(window (N, C, k, k), dout (N, C, 1, 1)) -> share (N, C, k, k), added per window."""
    x, dout, k = c["x"], c["dout"], c["k"]
    s = 1 if unit_stride else c["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k]
            dx[:, :, i * s:i * s + k, j * s:j * s + k] += fn(win, dout[:, :, i, j][:, :, None, None])
    return {"dx": dx}


def _first_max(w, d):
    N, C, k, _ = w.shape
    return (np.arange(k * k) == w.reshape(N, C, k * k).argmax(axis=2)[:, :, None]).reshape(w.shape) * d


def _last_max(w, d):
    N, C, k, _ = w.shape
    flat = w.reshape(N, C, k * k)[:, :, ::-1]
    last = k * k - 1 - flat.argmax(axis=2)
    return (np.arange(k * k) == last[:, :, None]).reshape(w.shape) * d


def _pool_overwrite_window(c):
    x, dout, k, s = c["x"], c["dout"], c["k"], c["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k]
            dx[:, :, i * s:i * s + k, j * s:j * s + k] = _first_max(win, dout[:, :, i, j][:, :, None, None])
    return {"dx": dx}


def _pool_overwrite(c):
    x, dout, k, s = c["x"], c["dout"], c["k"], c["stride"]
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            win = x[:, :, i * s:i * s + k, j * s:j * s + k]
            share = _first_max(win, dout[:, :, i, j][:, :, None, None])
            region = dx[:, :, i * s:i * s + k, j * s:j * s + k]
            mask = share != 0
            region[mask] = share[mask]
    return {"dx": dx}


_overlapping = lambda c: c["stride"] < c["k"]      # noqa: E731

_C_WINNER = ("Max pooling passes on one input per window, the largest. A small change of any other input changes "
             "nothing (it stays below the winner), so only the winner receives the window's gradient.")
_R_WINNER = ("d out[n, c, i, j] / d x[n, c, s*i + a, s*j + b] is 1 for the (a, b) where the maximum of window "
             "(i, j) sits and 0 for every other input of that window.")
_C_OVERLAP = ("When windows overlap (stride < k), one input can be the maximum of several windows: it is used "
              "several times, and the chain rule adds up the gradients of its uses.")
_C_TIES = ("When several inputs of a window are equal to its maximum, the max is not differentiable there; a "
           "library picks one of them, and this course (like np.argmax) picks the first in row-major order. "
           "After a ReLU, windows of zeros are common, so the choice matters.")

_pool_mistakes = [
    Mistake("Every input of a window received the window's gradient: only the input that won (its maximum) "
            "affects the output, the others get 0.", lambda c: _pool_windows(c, lambda w, d: np.ones_like(w) * d),
            concept=_C_WINNER, rule=_R_WINNER),
    Mistake("dx is average pooling's backward: each gradient was spread evenly over its window instead of going "
            "to the window's maximum.", lambda c: _pool_windows(c, lambda w, d: np.ones_like(w) * d / w.shape[2] ** 2),
            concept=_C_WINNER, rule=_R_WINNER),
    Mistake("Where windows overlap, an input that wins two windows kept only one of its gradients: a later "
            "window's gradient replaced an earlier one instead of adding to it.",
            _only_if(_overlapping, _pool_overwrite), concept=_C_OVERLAP,
            rule="dL/dx[n, c, h, w] = sum over every window (i, j) whose maximum is x[n, c, h, w] of "
                 "dout[n, c, i, j]."),
    Mistake("Where windows overlap, a later window wiped out the gradients an earlier window had given to their "
            "shared inputs (its zeros replaced them) instead of adding to them.",
            _only_if(_overlapping, _pool_overwrite_window), concept=_C_OVERLAP,
            rule="dL/dx[n, c, h, w] = sum over every window (i, j) whose maximum is x[n, c, h, w] of "
                 "dout[n, c, i, j]; the other windows add 0."),
    Mistake("The gradient went to the smallest input of each window, not the largest.",
            lambda c: _pool_windows(c, lambda w, d: (w == w.min(axis=(2, 3), keepdims=True)) * d),
            concept=_C_WINNER, rule=_R_WINNER),
    Mistake("In a window whose maximum is tied (several equal inputs, such as a window of zeros), every tied input "
            "received the gradient: it goes to one of them only, the first in row-major order.",
            lambda c: _pool_windows(c, lambda w, d: (w == w.max(axis=(2, 3), keepdims=True)) * d),
            concept=_C_TIES, rule=_R_WINNER + " Of several equal maxima, the first in row-major order."),
    Mistake("In a window whose maximum is tied, the gradient went to the last of the equal inputs: the convention "
            "is the first in row-major order (as np.argmax picks).", lambda c: _pool_windows(c, _last_max),
            concept=_C_TIES, rule=_R_WINNER + " Of several equal maxima, the first in row-major order."),
    Mistake("dx is placed as if the stride were 1: window (i, j) starts at (stride*i, stride*j), and its gradient "
            "goes to the maximum of that window.",
            _only_if(lambda c: c["stride"] != 1, lambda c: _pool_windows(c, _first_max, unit_stride=True)),
            concept="Output (i, j) is the maximum of the window that starts at (stride*i, stride*j): neighbouring "
                    "outputs read windows stride pixels apart.",
            rule=_R_WINNER),
]


_LADDERS = {
    "conv2d_backward": Ladder(
        concept=_C_REUSE + " Each gradient has its variable's shape: dx (N, C, H, W), dW (F, C, k, k), db (F,). "
                "The padding's zeros are not inputs (no gradient is returned for them); the stride decides where "
                "each window starts.",
        rule="out[n, f, i, j] = b[f] + sum over c, di, dj of W[f, c, di, dj] * xp[n, c, s*i + di, s*j + dj], with "
             "xp the padded input. So d out[n, f, i, j] / d b[f] = 1, d out[n, f, i, j] / d W[f, c, di, dj] = "
             "xp[n, c, s*i + di, s*j + dj], and d out[n, f, i, j] / d xp[n, c, s*i + di, s*j + dj] = "
             "W[f, c, di, dj]. Sum over everything that is not an index of the variable. For one offset "
             "(di, dj), the elements of xp involved are the slice xp[:, :, di:di + s*Ho:s, dj:dj + s*Wo:s].",
        formula="db = dout.sum(axis=(0, 2, 3)). For each offset (di, dj), with sl the slice above: "
                "dW[:, :, di, dj] = np.einsum('nfij,ncij->fc', dout, xp[sl]) and "
                "dxp[sl] += np.einsum('nfij,fc->ncij', dout, W[:, :, di, dj]) (dxp: zeros shaped like xp). "
                "Finally dx = dxp[:, :, p:p + H, p:p + W], the padding cropped off."),
    "maxpool2d_backward": Ladder(
        concept=_C_WINNER + " " + _C_OVERLAP,
        rule=_R_WINNER + " Of several equal maxima, the first in row-major order (as np.argmax picks).",
        formula="dx = zeros like x. For each output (i, j): win = x[:, :, s*i:s*i + k, s*j:s*j + k] reshaped to "
                "(N, C, k*k); mask = (np.arange(k*k) == win.argmax(axis=2)[:, :, None]), reshaped to (N, C, k, k); "
                "dx[:, :, s*i:s*i + k, s*j:s*j + k] += mask * dout[:, :, i, j][:, :, None, None]."),
}


def _checks():
    bs = lambda c: c["x"].shape[0]     # noqa: E731
    spec = [
        ("conv2d_backward", ("dx", "dW", "db"), CALLS["conv2d_backward"], _conv_ref, _conv_mistakes, _conv_visible,
         (3, 5), dict(diagnose=_conv_diagnose)),
        ("maxpool2d_backward", ("dx",), CALLS["maxpool2d_backward"], _pool_ref, _pool_mistakes, _pool_visible,
         (2, 3)),
    ]
    return visible_and_hidden(A, spec, _LADDERS, batch_size=bs)


CHECKS = _checks()
