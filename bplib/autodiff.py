"""Scalar reverse-mode autodiff: the computational graph of the chain-rule chapter.

A :class:`Value` holds one number (``data``), the derivative of the final output
with respect to it (``grad``, written dL/dv in the book), and a ``_backward``
closure that applies the local chain rule for the operation that produced it::

    a = Value(2.0); b = Value(-3.0)
    L = (a * b + 1).tanh()
    L.backward()          # a.grad == dL/da, b.grad == dL/db

``draw_graph(L)`` draws the graph with every node's value and gradient.
"""
import math

__all__ = ["Value", "draw_graph"]


class Value:
    """One scalar node of a computational graph."""

    def __init__(self, data, _children=(), _op="", label=""):
        if isinstance(data, Value):
            raise TypeError("Value(data): data is already a Value; use it directly")
        try:
            self.data = float(data)
        except (TypeError, ValueError):
            raise TypeError(f"Value(data): data must be a number, got {type(data).__name__}") from None
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = tuple(_children)
        self._op = _op
        self.label = label

    # -- operations: each sets out._backward to its local chain rule ---------
    def __add__(self, other):
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad          # d(a+b)/da = 1
            other.grad += out.grad         # d(a+b)/db = 1
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad   # d(ab)/da = b
            other.grad += self.data * out.grad   # d(ab)/db = a
        out._backward = _backward
        return out

    def __pow__(self, k):
        if not isinstance(k, (int, float)):
            raise TypeError("Value ** k: k must be a plain number (int or float)")
        out = Value(self.data ** k, (self,), f"**{k:g}")

        def _backward():
            self.grad += k * self.data ** (k - 1) * out.grad
        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad     # d(e^a)/da = e^a
        out._backward = _backward
        return out

    def log(self):
        if self.data <= 0:
            raise ValueError(f"Value.log: log of a non-positive number ({self.data})")
        out = Value(math.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data    # d(log a)/da = 1/a
        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward():
            self.grad += (1.0 - t * t) * out.grad
        out._backward = _backward
        return out

    def relu(self):
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward():
            self.grad += (self.data > 0) * out.grad
        out._backward = _backward
        return out

    def sigmoid(self):
        s = 1.0 / (1.0 + math.exp(-self.data)) if self.data >= 0 else math.exp(self.data) / (1.0 + math.exp(self.data))
        out = Value(s, (self,), "sigmoid")

        def _backward():
            self.grad += s * (1.0 - s) * out.grad
        out._backward = _backward
        return out

    # -- the backward pass ----------------------------------------------------
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

    def backward(self):
        """Set ``.grad`` = dself/dnode on every node. Safe to call twice."""
        order = self.topological_order()
        for node in order:
            node.grad = 0.0                # reset, so a second call gives the same result
        self.grad = 1.0                    # dL/dL = 1
        for node in reversed(order):
            node._backward()

    # -- the rest follows from the above --------------------------------------
    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-_as_value(other))

    def __truediv__(self, other):
        return self * _as_value(other) ** -1

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __rsub__(self, other):
        return _as_value(other) - self

    def __rtruediv__(self, other):
        return _as_value(other) / self

    def __repr__(self):
        name = f"{self.label}=" if self.label else ""
        return f"Value({name}{self.data:.4g}, grad={self.grad:.4g})"


def _as_value(x):
    return x if isinstance(x, Value) else Value(x)


def draw_graph(root, ax=None, figsize=None):
    """Draw the graph ending at ``root`` with matplotlib; returns the Figure.

    Each node is a box ``label | data | grad``; operations are circles. Inputs
    sit on the left, ``root`` on the right (columns are depths in the graph).
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    order = root.topological_order()
    depth = {}
    for node in order:                      # children come first: longest path from an input
        depth[id(node)] = 1 + max((depth[id(c)] for c in node._prev), default=-1)
    columns = {}
    for node in order:
        columns.setdefault(depth[id(node)], []).append(node)
    ncol = max(columns) + 1
    nrow = max(len(v) for v in columns.values())
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize or (2.9 * ncol + 1, 1.2 * nrow + 1))
    else:
        fig = ax.figure
    pos = {}
    for d, nodes in columns.items():
        for r, node in enumerate(nodes):
            pos[id(node)] = (3.0 * d, -(r - (len(nodes) - 1) / 2) * 1.4)
    for node in order:
        x, y = pos[id(node)]
        for child in node._prev:
            cx, cy = pos[id(child)]
            ax.annotate("", xy=(x - 1.05, y), xytext=(cx + 1.05, cy),
                        arrowprops=dict(arrowstyle="->", color="0.45", lw=1))
        text = (f"{node.label + ' | ' if node.label else ''}data {node.data:.4g}\n"
                f"grad {node.grad:.4g}")
        ax.add_patch(FancyBboxPatch((x - 1.0, y - 0.38), 2.0, 0.76, boxstyle="round,pad=0.04",
                                    fc="#e8f0fe" if node._prev else "#fff4e0", ec="0.3"))
        ax.text(x, y, text, ha="center", va="center", fontsize=8.5, family="monospace")
        if node._op:
            ax.text(x - 1.0, y + 0.5, node._op, ha="left", va="bottom", fontsize=9,
                    color="#b03a2e", weight="bold")
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.3, max(xs) + 1.3)
    ax.set_ylim(min(ys) - 0.9, max(ys) + 0.9)
    ax.set_axis_off()
    return fig
