"""bplib.autodiff.Value: every operation against numerical derivatives, the
backward pass on shared nodes and deep graphs, and draw_graph."""
import math

import matplotlib.pyplot as plt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure

from bplib import Value, draw_graph

H = 1e-6
FEW = settings(max_examples=25, deadline=None)
floats = st.floats(-3, 3, allow_nan=False)
positive = st.floats(0.2, 4, allow_nan=False)
nonzero = floats.filter(lambda v: abs(v) > 0.05)


def numerical(f, *args):
    """Central differences of the float function f at args, one argument at a time."""
    grads = []
    for i in range(len(args)):
        up, down = list(args), list(args)
        up[i] += H
        down[i] -= H
        grads.append((f(*up) - f(*down)) / (2 * H))
    return grads


def check(f, *args):
    """f builds a graph from Values; every input's grad must match central differences."""
    vs = [Value(a) for a in args]
    out = f(*vs)
    out.backward()
    expected = numerical(lambda *xs: f(*[Value(x) for x in xs]).data, *args)
    for v, e in zip(vs, expected):
        assert v.grad == pytest.approx(e, rel=1e-5, abs=1e-6), (f, args)
    return out, vs


# (name, function of Values, domain of each argument)
BINARY = [
    ("a + b", lambda a, b: a + b, floats),
    ("a * b", lambda a, b: a * b, floats),
    ("a - b", lambda a, b: a - b, floats),
    ("a / b", lambda a, b: a / b, nonzero),
]
UNARY = [
    ("a ** 3", lambda a: a ** 3, floats),
    ("a ** -2", lambda a: a ** -2, nonzero),
    ("a ** 0.5", lambda a: a ** 0.5, positive),
    ("-a", lambda a: -a, floats),
    ("a.exp()", lambda a: a.exp(), floats),
    ("a.log()", lambda a: a.log(), positive),
    ("a.tanh()", lambda a: a.tanh(), floats),
    ("a.relu()", lambda a: a.relu(), nonzero),
    ("a.sigmoid()", lambda a: a.sigmoid(), floats),
    ("2 + a", lambda a: 2 + a, floats),
    ("2 * a", lambda a: 2 * a, floats),
    ("2 - a", lambda a: 2 - a, floats),
    ("2 / a", lambda a: 2 / a, nonzero),
    ("a - 2", lambda a: a - 2, floats),
    ("a / 2", lambda a: a / 2, floats),
]
VALUES = {
    "a + b": lambda a, b: a + b, "a * b": lambda a, b: a * b, "a - b": lambda a, b: a - b,
    "a / b": lambda a, b: a / b, "a ** 3": lambda a: a ** 3, "a ** -2": lambda a: a ** -2,
    "a ** 0.5": math.sqrt, "-a": lambda a: -a, "a.exp()": math.exp, "a.log()": math.log,
    "a.tanh()": math.tanh, "a.relu()": lambda a: max(a, 0.0), "a.sigmoid()": lambda a: 1 / (1 + math.exp(-a)),
    "2 + a": lambda a: 2 + a, "2 * a": lambda a: 2 * a, "2 - a": lambda a: 2 - a, "2 / a": lambda a: 2 / a,
    "a - 2": lambda a: a - 2, "a / 2": lambda a: a / 2,
}


@pytest.mark.parametrize("name, f, domain", BINARY, ids=[b[0] for b in BINARY])
def test_binary_ops_against_numerical(name, f, domain):
    @FEW
    @given(a=floats, b=domain)
    def run(a, b):
        out, _ = check(f, a, b)
        assert out.data == pytest.approx(VALUES[name](a, b))
    run()


@pytest.mark.parametrize("name, f, domain", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_against_numerical(name, f, domain):
    @FEW
    @given(a=domain)
    def run(a):
        out, _ = check(f, a)
        assert out.data == pytest.approx(VALUES[name](a))
    run()


def test_sigmoid_is_stable_for_large_inputs():
    for x in (-800.0, 800.0):
        v = Value(x)
        s = v.sigmoid()
        s.backward()
        assert s.data == (0.0 if x < 0 else 1.0) and v.grad == 0.0


def test_relu_gradient_at_and_below_zero():
    for x in (-1.0, 0.0):
        v = Value(x)
        v.relu().backward()
        assert v.grad == 0.0


@FEW
@given(a=floats, b=floats, c=positive)
def test_composite_expression(a, b, c):
    """A neuron-like expression that reuses nodes: every path must be summed."""
    def f(a, b, c):
        n = a * b + c.log() * a
        return (n.tanh() * n + (b - a) ** 2 / c).sigmoid() + a.exp() * 0.1
    check(f, a, b, c)


# ----------------------------------------------------------------------------
# the backward pass itself
# ----------------------------------------------------------------------------
def test_node_used_twice_accumulates():
    a = Value(3.0)
    (a * a).backward()
    assert a.grad == 6.0
    a = Value(3.0)
    (a + a).backward()
    assert a.grad == 2.0
    a = Value(2.0)
    b = a * 3
    (b * a + b).backward()                 # d/da (3a^2 + 3a) = 6a + 3
    assert a.grad == 15.0


def test_backward_twice_gives_the_same_grads():
    a, b = Value(2.0), Value(-3.0)
    out = (a * b + a.tanh()) * a
    out.backward()
    first = (a.grad, b.grad, out.grad)
    out.backward()
    assert (a.grad, b.grad, out.grad) == first


def test_backward_of_a_subexpression_then_the_whole():
    a = Value(2.0)
    mid = a * a
    top = mid * 3
    mid.backward()
    assert a.grad == 4.0
    top.backward()
    assert a.grad == 12.0 and mid.grad == 3.0


def test_topological_order_puts_children_first():
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = e.topological_order()
    assert len(order) == len({id(n) for n in order}) == 5     # a, b, c, d, e: each once
    pos = {id(n): i for i, n in enumerate(order)}
    for n in order:
        for child in n._prev:
            assert pos[id(child)] < pos[id(n)]
    assert order[-1] is e


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y + x * 0.001
    y.backward()
    assert x.grad == pytest.approx(1 + 5000 * 0.001)


# ----------------------------------------------------------------------------
# bad input and repr
# ----------------------------------------------------------------------------
def test_bad_input():
    with pytest.raises(TypeError, match="already a Value"):
        Value(Value(1.0))
    with pytest.raises(TypeError, match="must be a number, got str"):
        Value("1.0x")
    with pytest.raises(ValueError, match="non-positive"):
        Value(0.0).log()
    with pytest.raises(TypeError, match="plain number"):
        Value(2.0) ** Value(3.0)


def test_repr_and_label():
    v = Value(1.5, label="w")
    assert repr(v) == "Value(w=1.5, grad=0)"
    assert repr(Value(2.0)) == "Value(2, grad=0)"


# ----------------------------------------------------------------------------
# draw_graph
# ----------------------------------------------------------------------------
def test_draw_graph_returns_a_figure_with_every_node():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    L = (a * b + 1).tanh()
    L.label = "L"
    L.backward()
    fig = draw_graph(L)
    try:
        assert isinstance(fig, Figure)
        texts = [t.get_text() for t in fig.axes[0].texts]
        joined = "\n".join(texts)
        for op in ("*", "+", "tanh"):
            assert op in texts
        assert "a | data 2" in joined and "b | data -3" in joined and "L | data" in joined
        assert f"grad {a.grad:.4g}" in joined
        assert len(fig.axes[0].patches) == len(L.topological_order())
    finally:
        plt.close(fig)


def test_draw_graph_on_given_axes():
    fig, ax = plt.subplots()
    try:
        assert draw_graph(Value(1.0) * 2, ax=ax) is fig
    finally:
        plt.close(fig)


def test_draw_graph_of_a_single_node():
    fig = draw_graph(Value(4.0, label="x"))
    try:
        assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 1
    finally:
        plt.close(fig)
