"""Gradient checking: compare a backward pass with central differences.

    numerical_gradient(f, x)       dL/dx by (f(x + h) - f(x - h)) / 2h, one element at a time
    compare(name, expected, got)   an ArrayReport: relative error, worst element, a diagnosis
    check_layer(layer, x)          every gradient of a layer against numerical ones
    check_gradients(f, arrays, analytic)   the same for any scalar function of named arrays

The relative error of an array is ``max |got - expected| / max(|expected|, |got|)``:
the worst element's error measured against the array's own scale, so one
wrong element shows and tiny elements do not blow it up. In float64 a correct
backward pass gives about 1e-9; 1e-6 is the pass mark. In float32 expect 1e-3
(see the gradient-checking chapter).
"""
import numpy as np

__all__ = ["numerical_gradient", "rel_error", "compare", "check_layer", "check_gradients",
           "ArrayReport", "GradReport"]


def numerical_gradient(f, x, h=1e-5):
    """Central-difference gradient of the scalar ``f(x)`` with respect to array ``x``.

    ``x`` is perturbed in place one element at a time and restored, so ``f``
    may also read ``x`` through a reference it already holds (a layer's params).
    Returns an array shaped like ``x`` (float64).
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"numerical_gradient: x must be a floating-point numpy array, got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    if flat.size and not np.shares_memory(flat, x):
        raise ValueError("numerical_gradient: x must be contiguous so it can be perturbed in place")
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        fp = float(f(x))
        flat[i] = old - h
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * h)
    return grad


def rel_error(expected, got):
    """max |got - expected| / max(max|expected|, max|got|, 1e-12)."""
    expected, got = np.asarray(expected, dtype=np.float64), np.asarray(got, dtype=np.float64)
    scale = max(np.abs(expected).max(initial=0), np.abs(got).max(initial=0), 1e-12)
    return float(np.abs(got - expected).max(initial=0) / scale)


class ArrayReport:
    """The verdict on one gradient array: ``ok``, ``error``, ``message``."""

    def __init__(self, name, ok, error, message, worst=None):
        self.name, self.ok, self.error, self.message, self.worst = name, ok, error, message, worst

    def __str__(self):
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.message}"

    __repr__ = __str__


def _close(a, b, tol):
    return rel_error(b, a) < tol


def compare(name, expected, got, tol=1e-6, batch_size=None):
    """Compare ``got`` with ``expected`` and explain any difference in words.

    The diagnosis names the common mistakes: wrong shape, transposed, wrong
    sign, off by the batch size or another constant factor, all zeros, NaN,
    and wrong only where the true gradient is zero (a forgotten mask) or
    only on some elements.
    """
    expected = np.asarray(expected, dtype=np.float64)
    if got is None:
        return ArrayReport(name, False, np.inf, "is None: the function returned nothing for it "
                           "(a missing `return`, or a value not returned?)")
    try:
        got = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return ArrayReport(name, False, np.inf, f"is not an array of numbers (got {type(got).__name__})")
    if got.shape != expected.shape:
        msg = f"has shape {got.shape}, expected {expected.shape}."
        if got.T.shape == expected.shape and _close(got.T, expected, tol):
            msg += " It is the transpose of the right answer."
        elif got.ndim == expected.ndim + 1 and got.shape[1:] == expected.shape:
            msg += " It still has the batch axis: sum over the batch (axis 0)."
        elif got.size == expected.size:
            msg += " Same number of elements: check the order of axes (a reshape or transpose)."
        return ArrayReport(name, False, np.inf, msg)
    if not np.all(np.isfinite(got)):
        bad = int((~np.isfinite(got)).sum())
        return ArrayReport(name, False, np.inf, f"contains {bad} NaN or infinite value(s): look for a "
                           f"division by zero or an overflowing exp")
    err = rel_error(expected, got)
    diff = np.abs(got - expected)
    idx = np.unravel_index(int(diff.argmax()), diff.shape) if diff.size else ()
    worst = (idx, float(expected[idx]) if diff.size else 0.0, float(got[idx]) if diff.size else 0.0)
    if err < tol:
        return ArrayReport(name, True, err, f"relative error {err:.1e}", worst)
    where = f"[{', '.join(str(int(i)) for i in idx)}]"
    msg = (f"relative error {err:.1e} (must be below {tol:.0e}); worst element {name}{where}: "
           f"expected {worst[1]:.6g}, got {worst[2]:.6g}.")
    hint = _diagnose(expected, got, tol, batch_size)
    return ArrayReport(name, False, err, msg + (" " + hint if hint else ""), worst)


def _diagnose(expected, got, tol, batch_size):
    if not np.any(got):
        return "It is all zeros: is the gradient computed and returned (not just initialised)?"
    if not np.any(expected):
        return "The true gradient is all zeros here, but yours is not."
    if _close(got, -expected, tol):
        return "Right magnitude, wrong sign: check the sign of each term (or of the update)."
    if expected.ndim == 2 and expected.shape[0] == expected.shape[1] and _close(got, expected.T, tol):
        return "It is the transpose of the right answer."
    if _close(got, expected, tol * 100):
        return ("Close, but not within the tolerance: float32 rounding, a gradient too small to measure, "
                "or an input at a kink (ReLU at 0, a tie in max pooling)?")
    ratio = float((got * expected).sum() / (expected * expected).sum())
    if _close(got, ratio * expected, tol * 10) and abs(ratio) > 1e-12:
        if batch_size and abs(ratio - batch_size) < 1e-3 * batch_size:
            return f"It is exactly {batch_size} (the batch size) times too large: the 1/N of the mean is missing."
        if batch_size and abs(ratio * batch_size - 1) < 1e-3:
            return f"It is exactly {batch_size} (the batch size) times too small: an average over the batch where a sum belongs (or 1/N applied twice)."
        if expected.size == 1:
            return ""                      # one number is always "a multiple" of another
        if ratio < 0:
            return f"Opposite direction, scaled by {ratio:.4g}: a sign and a constant factor are off."
        return f"Right direction, but scaled by {ratio:.4g}: a constant factor is missing or extra."
    wrong = np.abs(got - expected) > tol * max(np.abs(expected).max(), np.abs(got).max())
    zero_true = expected == 0
    if wrong.any() and np.all(zero_true[wrong]):
        return ("Wrong only where the true gradient is zero: something that should block the gradient "
                "(a mask) is missing.")
    if wrong.any() and np.all(got[wrong] == 0):
        return f"Zero on {int(wrong.sum())} element(s) where the gradient is not: some path is dropped."
    frac = wrong.mean()
    if frac < 0.5:
        return f"{int(wrong.sum())} of {wrong.size} elements are wrong, the rest are right: look at edges, padding or overlapping windows."
    return ""


class GradReport:
    """All ``ArrayReport``s of one check; ``ok`` if all are, ``str()`` explains."""

    def __init__(self, title, reports):
        self.title, self.reports = title, list(reports)

    @property
    def ok(self):
        return all(r.ok for r in self.reports)

    @property
    def max_error(self):
        return max((r.error for r in self.reports), default=0.0)

    def __getitem__(self, name):
        return next(r for r in self.reports if r.name == name)

    def __str__(self):
        head = f"{self.title}: {'all gradients match' if self.ok else 'some gradients are wrong'}"
        return "\n".join([head] + ["  " + str(r) for r in self.reports])

    __repr__ = __str__

    def assert_ok(self):
        """Raise AssertionError carrying the whole report unless every array passes."""
        if not self.ok:
            raise AssertionError(str(self))
        return self


def check_gradients(f, arrays, analytic, title="gradient check", tol=1e-6, h=1e-5, batch_size=None):
    """Check ``analytic[name]`` against the numerical dL/d``arrays[name]`` for ``L = f()``.

    ``f`` takes no argument and reads the arrays by reference (they are
    perturbed in place).
    """
    reports = []
    for name, arr in arrays.items():
        num = numerical_gradient(lambda _x: f(), arr, h=h)
        reports.append(compare(name, num, analytic.get(name), tol=tol, batch_size=batch_size))
    return GradReport(title, reports)


def check_layer(layer, x, dout=None, seed=0, tol=1e-6, h=1e-5):
    """Check a layer's ``backward`` (dx and every ``grads`` entry) numerically.

    Uses ``L = sum(forward(x) * dout)`` for a fixed random ``dout``, so dL/dout
    = dout. Use float64 layers and inputs: float32 rounding is larger than tol.
    Returns a GradReport; ``check_layer(...).assert_ok()`` in a test.
    """
    rng = np.random.default_rng(seed)
    out = layer.forward(x)
    if dout is None:
        dout = rng.standard_normal(out.shape).astype(out.dtype)

    def loss():
        return float(np.sum(layer.forward(x) * dout))

    layer.forward(x)
    dx = layer.backward(dout)
    analytic = {f"d{k}": None if g is None else np.array(g, copy=True) for k, g in layer.grads.items()}
    arrays = {f"d{k}": p for k, p in layer.params.items()}
    if np.issubdtype(np.asarray(x).dtype, np.floating):
        arrays = {"dx": x, **arrays}
        analytic["dx"] = dx
    return check_gradients(loss, arrays, analytic, title=f"{layer!r} backward", tol=tol, h=h)
