"""Reverse-mode autodiff on numpy arrays: the tensor version of ``Value``.

A :class:`Tensor` holds one numpy array (``data``), the derivative of the final
output with respect to every element of it (``grad``, dL/dt in the book, an
array of ``data``'s shape), and a ``_backward`` closure that applies the local
chain rule of the operation that produced it::

    W = Tensor(rng.standard_normal((3, 2))); b = Tensor(np.zeros(2))
    x = Tensor(rng.standard_normal((4, 3)))
    L = (x @ W + b).tanh().sum()
    L.backward()          # W.grad == dL/dW (3, 2), b.grad == dL/db (2,), x.grad == dL/dx (4, 3)

Everything works as in ``Value`` (bplib/autodiff.py), one array at a time, with
one new rule: **broadcasting**. When ``b`` of shape (2,) is added to an array of
shape (4, 2), each b[j] is used four times, so its gradient is the *sum* of the
four gradients that reach it (``_unbroadcast``). Every operation's local
derivative is written next to its forward computation.

Operations: ``+ - * /`` (also with numbers and numpy arrays, either side), ``@``,
``** k`` for a number k, ``exp``, ``log``, ``tanh``, ``relu``, ``sigmoid``,
``sum``/``mean``/``max`` with ``axis``/``keepdims``, ``reshape``, ``transpose``/
``.T``, indexing ``t[idx]`` (slices, integer arrays, ``logp[np.arange(N), y]``),
``softmax``/``log_softmax`` along an axis.

``data`` keeps a floating dtype it is given (float32 stays float32); integers,
booleans and Python numbers become float64. A number combined with a Tensor takes
the Tensor's dtype.
"""
import numpy as np

__all__ = ["Tensor"]


class Tensor:
    """One array-valued node of a computational graph."""

    def __init__(self, data, _children=(), _op="", label=""):
        if isinstance(data, Tensor):
            raise TypeError("Tensor(data): data is already a Tensor; use it directly")
        arr = np.asarray(data)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"Tensor(data): data must be numbers or a numeric array, got "
                            f"{type(data).__name__} of dtype {arr.dtype}")
        if np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError("Tensor(data): complex numbers are not supported")
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float64)
        self.data = arr
        self.grad = np.zeros_like(arr)
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op
        self.label = label

    # -- shape information ----------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype

    def item(self):
        """The value of a one-element Tensor as a Python float."""
        return self.data.item()

    # -- elementwise operations with broadcasting ------------------------------
    def __add__(self, other):
        other = _as_tensor(other, like=self)
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += _unbroadcast(out.grad, self.shape)     # d(a+b)/da = 1, summed over broadcast axes
            other.grad += _unbroadcast(out.grad, other.shape)   # d(a+b)/db = 1
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = _as_tensor(other, like=self)
        out = Tensor(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += _unbroadcast(other.data * out.grad, self.shape)   # d(ab)/da = b
            other.grad += _unbroadcast(self.data * out.grad, other.shape)  # d(ab)/db = a
        out._backward = _backward
        return out

    def __pow__(self, k):
        if isinstance(k, Tensor) or not isinstance(k, (int, float, np.integer, np.floating)):
            raise TypeError("Tensor ** k: k must be a plain number (int or float)")
        out = Tensor(self.data ** k, (self,), f"**{k:g}")

        def _backward():
            self.grad += k * self.data ** (k - 1) * out.grad     # d(a^k)/da = k a^(k-1)
        out._backward = _backward
        return out

    def exp(self):
        out = Tensor(np.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad                     # d(e^a)/da = e^a
        out._backward = _backward
        return out

    def log(self):
        if np.any(self.data <= 0):
            raise ValueError(f"Tensor.log: log of a non-positive number (smallest element "
                             f"{self.data.min():.4g})")
        out = Tensor(np.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data                    # d(log a)/da = 1/a
        out._backward = _backward
        return out

    def tanh(self):
        t = np.tanh(self.data)
        out = Tensor(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t * t) * out.grad                  # d(tanh a)/da = 1 - tanh(a)^2
        out._backward = _backward
        return out

    def relu(self):
        out = Tensor(np.maximum(self.data, 0), (self,), "relu")

        def _backward():
            self.grad += (self.data > 0) * out.grad              # 1 where a > 0, else 0
        out._backward = _backward
        return out

    def sigmoid(self):
        e = np.exp(-np.abs(self.data))                           # no overflow for large |a|
        s = np.where(self.data >= 0, 1 / (1 + e), e / (1 + e))
        out = Tensor(s, (self,), "sigmoid")

        def _backward():
            self.grad += s * (1 - s) * out.grad                  # d(sigmoid a)/da = s (1 - s)
        out._backward = _backward
        return out

    # -- matrix product ---------------------------------------------------------
    def __matmul__(self, other):
        other = _as_tensor(other, like=self)
        if self.ndim == 0 or other.ndim == 0:
            raise ValueError("Tensor @ Tensor: both operands need at least one axis (use * for a number)")
        out = Tensor(self.data @ other.data, (self, other), "@")

        def _backward():
            # out = A B  ->  dA = dout B^T,  dB = A^T dout  (on the last two axes; a 1-D
            # operand is a row (on the left) or a column (on the right), as in np.matmul)
            A = self.data if self.ndim > 1 else self.data[None, :]
            B = other.data if other.ndim > 1 else other.data[:, None]
            g = out.grad
            if other.ndim == 1:
                g = g[..., None]
            if self.ndim == 1:
                g = g[..., None, :]
            dA = g @ np.swapaxes(B, -1, -2)
            dB = np.swapaxes(A, -1, -2) @ g
            self.grad += _unbroadcast(dA, A.shape).reshape(self.shape)    # batch axes broadcast too
            other.grad += _unbroadcast(dB, B.shape).reshape(other.shape)
        out._backward = _backward
        return out

    # -- reductions ---------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        out = Tensor(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            # every summed element has derivative 1: copy dout back along the summed axes
            self.grad += np.broadcast_to(_keep_axes(out.grad, axis, keepdims, self.ndim), self.shape)
        out._backward = _backward
        return out

    def mean(self, axis=None, keepdims=False):
        out = Tensor(self.data.mean(axis=axis, keepdims=keepdims), (self,), "mean")
        count = self.size // max(out.size, 1) if self.size else 1

        def _backward():
            # mean = sum / count: each element has derivative 1/count
            self.grad += np.broadcast_to(_keep_axes(out.grad, axis, keepdims, self.ndim), self.shape) / count
        out._backward = _backward
        return out

    def max(self, axis=None, keepdims=False):
        m = self.data.max(axis=axis, keepdims=True)
        out = Tensor(m if keepdims else _drop_axes(m, axis), (self,), "max")

        def _backward():
            # the gradient goes to the maximum; ties share it equally (as torch.amax does)
            winners = self.data == m
            share = winners / winners.sum(axis=axis, keepdims=True)
            self.grad += share * _keep_axes(out.grad, axis, keepdims, self.ndim)
        out._backward = _backward
        return out

    # -- moving numbers around: the backward puts each gradient back where it came from
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        out = Tensor(self.data.reshape(shape), (self,), "reshape")

        def _backward():
            self.grad += out.grad.reshape(self.shape)
        out._backward = _backward
        return out

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        axes = axes or tuple(reversed(range(self.ndim)))
        out = Tensor(self.data.transpose(axes), (self,), "transpose")

        def _backward():
            self.grad += out.grad.transpose(np.argsort(axes))    # the inverse permutation
        out._backward = _backward
        return out

    @property
    def T(self):
        return self.transpose()

    def __getitem__(self, idx):
        idx = _index(idx)
        out = Tensor(self.data[idx], (self,), "[]")

        def _backward():
            # gather: out.grad goes back to the elements it was read from; an element read
            # twice (a repeated index) gets both contributions, hence np.add.at, not +=
            np.add.at(self.grad, idx, out.grad)
        out._backward = _backward
        return out

    # -- softmax along an axis ------------------------------------------------------
    def softmax(self, axis=-1):
        z = self.data - self.data.max(axis=axis, keepdims=True)    # same result, no overflow
        e = np.exp(z)
        s = e / e.sum(axis=axis, keepdims=True)
        out = Tensor(s, (self,), "softmax")

        def _backward():
            # Jacobian ds_i/da_j = s_i (delta_ij - s_j), applied to dout without building it:
            # da = s * (dout - sum(dout * s))
            g = out.grad
            self.grad += s * (g - (g * s).sum(axis=axis, keepdims=True))
        out._backward = _backward
        return out

    def log_softmax(self, axis=-1):
        z = self.data - self.data.max(axis=axis, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=axis, keepdims=True))
        out = Tensor(z - lse, (self,), "log_softmax")

        def _backward():
            # d(a_i - logsumexp(a))/da_j = delta_ij - softmax(a)_j:  da = dout - softmax * sum(dout)
            g = out.grad
            self.grad += g - np.exp(out.data) * g.sum(axis=axis, keepdims=True)
        out._backward = _backward
        return out

    # -- the backward pass --------------------------------------------------------
    def topological_order(self):
        """Every node of the graph ending at ``self``, children before parents."""
        order, seen = [], set()
        stack = [(self, False)]
        while stack:                       # iterative: deep graphs do not hit the recursion limit
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev if id(child) not in seen)
        return order

    def backward(self, grad=None):
        """Set ``.grad`` = dself/dnode on every node. Safe to call twice.

        ``self`` is normally a one-element loss (dL/dL = 1). For any other shape pass
        ``grad``, the gradient arriving at ``self`` (an array of ``self.shape``): the
        result is then that of the loss ``(self * grad).sum()``.
        """
        if grad is None:
            if self.size != 1:
                raise ValueError(f"Tensor.backward: self has shape {self.shape}, not one number; pass "
                                 f"grad= (an array of that shape) or call backward on a loss such as .sum()")
            grad = np.ones_like(self.data)
        grad = np.asarray(grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"Tensor.backward: grad has shape {grad.shape}, expected {self.shape} "
                             f"(the shape of the tensor backward is called on)")
        order = self.topological_order()
        for node in order:
            node.grad = np.zeros_like(node.data)   # reset, so a second call gives the same result
        self.grad = grad.copy()                    # dL/dL = 1
        for node in reversed(order):
            node._backward()

    # -- the rest follows from the above -------------------------------------------
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-_as_tensor(other, like=self))

    def __truediv__(self, other):
        return self * _as_tensor(other, like=self) ** -1

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return _as_tensor(other, like=self) - self

    def __rtruediv__(self, other):
        return _as_tensor(other, like=self) / self

    def __rmatmul__(self, other):
        return _as_tensor(other, like=self) @ self

    __array_ufunc__ = None      # numpy_array + Tensor calls Tensor.__radd__, not numpy's loop

    def __repr__(self):
        name = f"{self.label}=" if self.label else ""
        return f"Tensor({name}shape={self.shape}, dtype={self.dtype}, op={self._op or 'leaf'!r})"


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------
def _as_tensor(x, like):
    """A Tensor as is; a number takes ``like``'s dtype; an array keeps its own."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float, bool, np.number)) and not isinstance(x, np.ndarray):
        return Tensor(np.asarray(x, dtype=like.dtype))
    return Tensor(x)


def _unbroadcast(g, shape):
    """Sum ``g`` down to ``shape``: the axes numpy's broadcasting added or stretched.

    An operand of shape (3, 1) used in a (4, 3, 5) result was copied along axis 0
    (added) and axis 2 (stretched from 1): its gradient sums over both.
    """
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for ax, n in enumerate(shape):
        if n == 1 and g.shape[ax] != 1:
            g = g.sum(axis=ax, keepdims=True)
    return g


def _axes(axis, ndim):
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % ndim for a in axes)


def _keep_axes(g, axis, keepdims, ndim):
    """dout of a reduction, with the reduced axes put back as length 1 (for broadcasting)."""
    if keepdims:
        return g
    return np.expand_dims(g, _axes(axis, ndim))


def _drop_axes(m, axis):
    return m.squeeze(axis=axis) if axis is not None else m.reshape(())


def _index(idx):
    """The index itself; a Tensor in it is refused (its data are floats: 0.0/1.0 from a mask
    would silently become positions 0 and 1)."""
    for i in idx if isinstance(idx, tuple) else (idx,):
        if isinstance(i, Tensor):
            raise TypeError("Tensor[idx]: index with integers, slices or numpy arrays (for example "
                            "t[np.arange(N), y]), not with a Tensor; use its .data if you mean its values")
    return idx
