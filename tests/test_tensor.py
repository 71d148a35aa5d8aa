"""bplib.Tensor: every operation against numerical gradients over hypothesis-drawn
shapes (broadcasting included), the backward pass itself (shared nodes, calling it
twice), a small MLP whose Tensor gradients equal the layers' hand-written backward
passes, broken variants the same check rejects, and clear errors on bad input.

Everything in float64: a correct backward agrees with central differences to about
1e-9 and the pass mark is 1e-6 (bplib.gradcheck's default).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import bplib
from bplib import Tensor
from bplib import layers as L
from bplib import tensor as tensor_module
from bplib.gradcheck import compare, numerical_gradient
from bplib.losses import softmax_cross_entropy

FEW = settings(max_examples=15, deadline=None)
seeds = st.integers(0, 2**32 - 1)
shapes = array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
pairs = mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=4)


def grad_check(f, arrays, seed=0, tol=1e-6):
    """Build ``out = f(*Tensors)``, run backward from a random dout, compare every input's
    grad with the numerical gradient of sum(f(arrays) * dout). Returns the ArrayReports."""
    rng = np.random.default_rng(seed)
    arrays = [np.array(a, dtype=np.float64) for a in arrays]      # 0-d arrays too, not Python floats
    ts = [Tensor(a) for a in arrays]
    out = f(*ts)
    dout = rng.standard_normal(out.shape)
    (out * dout).sum().backward()
    reports = []
    for i, (a, t) in enumerate(zip(arrays, ts)):
        num = numerical_gradient(lambda _: float((f(*[Tensor(b) for b in arrays]).data * dout).sum()), a)
        reports.append(compare(f"d{i}", num, t.grad, tol=tol))
    return reports


def assert_ok(reports):
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, "\n".join(bad)


def away_from_zero(rng, shape):
    x = rng.standard_normal(shape)
    return x + 0.1 * np.where(x >= 0, 1.0, -1.0)


def distinct(rng, shape):
    """Values at least 0.1 apart: no ties for max, no kink crossed by a 1e-5 step."""
    n = int(np.prod(shape))
    return ((rng.permutation(n) + rng.uniform(0.2, 0.8, n) - n / 2) / 5).reshape(shape)


# ----------------------------------------------------------------------------
# 1. every operation against numerical gradients
# ----------------------------------------------------------------------------
BINARY = {
    "a + b": lambda a, b: a + b,
    "a - b": lambda a, b: a - b,
    "a * b": lambda a, b: a * b,
    "a / b": lambda a, b: a / b,
    "mixed": lambda a, b: (a * b - a) / (b * b + 1) + b,
}


@pytest.mark.parametrize("name", BINARY)
@FEW
@given(shapes=pairs, seed=seeds)
def test_binary_ops_with_broadcasting(name, shapes, seed):
    rng = np.random.default_rng(seed)
    sa, sb = shapes.input_shapes
    a, b = rng.standard_normal(sa), away_from_zero(rng, sb)
    assert_ok(grad_check(BINARY[name], [a, b], seed))
    out = BINARY[name](Tensor(a), Tensor(b))
    assert out.shape == shapes.result_shape


@pytest.mark.parametrize("sa, sb", [((3, 1), (4,)), ((), (2, 3)), ((2, 3), ()), ((1,), (3, 1, 2)),
                                    ((2, 1, 4), (3, 1)), ((1, 1), (1, 1))])
@pytest.mark.parametrize("name", BINARY)
def test_binary_ops_named_broadcasting_cases(name, sa, sb):
    rng = np.random.default_rng(1)
    assert_ok(grad_check(BINARY[name], [rng.standard_normal(sa), away_from_zero(rng, sb)]))


@pytest.mark.parametrize("f", [lambda a: 2 + a, lambda a: a + 2, lambda a: 3 * a, lambda a: a * 3,
                               lambda a: 2 - a, lambda a: a - 2, lambda a: 2 / a, lambda a: a / 2, lambda a: -a,
                               lambda a: np.ones((4, 1, 1)) + a, lambda a: a * np.arange(3.0), lambda a: np.ones(3) - a,
                               lambda a: np.full(3, 2.0) / a],
                         ids=["2+a", "a+2", "3*a", "a*3", "2-a", "a-2", "2/a", "a/2", "-a", "array+a", "a*array",
                              "array-a", "array/a"])
def test_numbers_and_arrays_on_either_side(f):
    rng = np.random.default_rng(2)
    a = away_from_zero(rng, (2, 3))
    assert_ok(grad_check(f, [a]))
    assert isinstance(f(Tensor(a)), Tensor)


UNARY = {
    "exp": (lambda a: a.exp(), "any"),
    "log": (lambda a: a.log(), "positive"),
    "tanh": (lambda a: a.tanh(), "any"),
    "relu": (lambda a: a.relu(), "nonzero"),
    "sigmoid": (lambda a: a.sigmoid(), "any"),
    "a ** 3": (lambda a: a ** 3, "any"),
    "a ** -2": (lambda a: a ** -2, "nonzero"),
    "a ** 0.5": (lambda a: a ** 0.5, "positive"),
}


@pytest.mark.parametrize("name", UNARY)
@FEW
@given(shape=shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    f, domain = UNARY[name]
    rng = np.random.default_rng(seed)
    a = {"any": rng.standard_normal, "nonzero": lambda s: away_from_zero(rng, s),
         "positive": lambda s: rng.uniform(0.3, 3.0, s)}[domain](shape)
    assert_ok(grad_check(f, [a], seed))


def test_unary_forward_values():
    a = np.array([-800.0, -1.0, 0.5, 800.0])
    with np.errstate(over="raise", invalid="raise"):   # no overflow warning either
        s = Tensor(a).sigmoid().data
    np.testing.assert_allclose(s, [0.0, 1 / (1 + np.e), 1 / (1 + np.exp(-0.5)), 1.0], rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(Tensor(a).relu().data, np.maximum(a, 0))
    np.testing.assert_allclose(Tensor(a).tanh().data, np.tanh(a))


@st.composite
def matmul_shapes(draw):
    n, d, m = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["2d", "batch_left", "batch_both", "broadcast_batch", "vec_left", "vec_right", "vec_vec"]))
    B, C = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return {"2d": ((n, d), (d, m)), "batch_left": ((B, n, d), (d, m)), "batch_both": ((B, n, d), (B, d, m)),
            "broadcast_batch": ((B, 1, n, d), (C, d, m)), "vec_left": ((d,), (B, d, m)),
            "vec_right": ((B, n, d), (d,)), "vec_vec": ((d,), (d,))}[kind]


@FEW
@given(s=matmul_shapes(), seed=seeds)
def test_matmul(s, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(s[0]), rng.standard_normal(s[1])
    assert_ok(grad_check(lambda x, y: x @ y, [a, b], seed))
    np.testing.assert_allclose((Tensor(a) @ Tensor(b)).data, a @ b)


def test_matmul_with_arrays_on_either_side():
    rng = np.random.default_rng(3)
    a, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    assert_ok(grad_check(lambda w: a @ w, [W]))
    assert_ok(grad_check(lambda x: x @ W, [a]))


axes_for = st.one_of(st.none(), st.integers(-3, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)))


@st.composite
def reduction_cases(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    nd = len(shape)
    axis = draw(st.one_of(st.none(), st.integers(-nd, nd - 1),
                          st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)))
    return shape, axis, draw(st.booleans())


@pytest.mark.parametrize("op", ["sum", "mean", "max"])
@FEW
@given(case=reduction_cases(), seed=seeds)
def test_reductions_with_axis_and_keepdims(op, case, seed):
    shape, axis, keepdims = case
    rng = np.random.default_rng(seed)
    a = distinct(rng, shape)
    assert_ok(grad_check(lambda t: getattr(t, op)(axis=axis, keepdims=keepdims), [a], seed))
    np.testing.assert_allclose(getattr(Tensor(a), op)(axis=axis, keepdims=keepdims).data,
                               getattr(a, op)(axis=axis, keepdims=keepdims))


def test_max_shares_the_gradient_between_ties():
    a = Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]]))
    a.max(axis=1).sum().backward()
    np.testing.assert_array_equal(a.grad, [[0, 0.5, 0.5], [1, 0, 0]])


@FEW
@given(shape=array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=3), seed=seeds, data=st.data())
def test_reshape_and_transpose(shape, seed, data):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    w = rng.standard_normal(a.size)
    assert_ok(grad_check(lambda t: t.reshape(-1) * w, [a], seed))
    assert_ok(grad_check(lambda t: t.reshape((a.size, 1)), [a], seed))
    assert_ok(grad_check(lambda t: t.transpose(perm), [a], seed))
    assert_ok(grad_check(lambda t: t.transpose(*perm), [a], seed))
    assert_ok(grad_check(lambda t: t.T, [a], seed))
    np.testing.assert_array_equal(Tensor(a).transpose(perm).data, a.transpose(perm))
    np.testing.assert_array_equal(Tensor(a).T.data, a.T)


INDEXES = {
    "int": lambda t: t[1],
    "slice": lambda t: t[1:, ::2],
    "negative": lambda t: t[-1, -2:],
    "int array with repeats": lambda t: t[np.array([0, 2, 0, 0])],
    "tuple gather": lambda t: t[np.arange(3), np.array([1, 0, 3])],
    "tuple gather with repeats": lambda t: t[np.array([0, 0, 2, 0]), np.array([1, 1, 3, 1])],
    "boolean mask": lambda t: t[t.data > 0],
    "ellipsis and newaxis": lambda t: t[..., None, 1],
}


@pytest.mark.parametrize("name", INDEXES)
def test_indexing_gathers_and_accumulates(name):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 4))
    assert_ok(grad_check(INDEXES[name], [a]))


def test_repeated_index_adds_up():
    a = Tensor(np.zeros(3))
    a[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(a.grad, [2, 0, 1])


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@FEW
@given(shape=array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), seed=seeds, data=st.data())
def test_softmax_and_log_softmax(op, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    a = 2 * rng.standard_normal(shape)
    assert_ok(grad_check(lambda t: getattr(t, op)(axis=axis), [a], seed))
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(getattr(Tensor(a), op)(axis=axis).data, s if op == "softmax" else np.log(s))


def test_softmax_does_not_overflow():
    a = Tensor(np.array([[1000.0, 0.0, -1000.0]]))
    assert np.all(np.isfinite(a.softmax().data)) and np.all(np.isfinite(a.log_softmax().data))


@FEW
@given(seed=seeds)
def test_composite_expression_reusing_nodes(seed):
    rng = np.random.default_rng(seed)

    def f(x, W, b):
        h = (x @ W + b).tanh()
        return (h * h + h.sigmoid() * x.sum(axis=1, keepdims=True)).log_softmax(axis=1) - h.max(axis=0)
    assert_ok(grad_check(f, [rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(5)], seed))


# ----------------------------------------------------------------------------
# 2. the backward pass itself
# ----------------------------------------------------------------------------
def test_backward_twice_gives_the_same_grads():
    rng = np.random.default_rng(5)
    a, b = Tensor(rng.standard_normal((3, 1))), Tensor(rng.standard_normal(4))
    out = ((a * b).tanh() * a + b).sum()
    out.backward()
    first = a.grad.copy(), b.grad.copy()
    out.backward()
    np.testing.assert_array_equal(a.grad, first[0])
    np.testing.assert_array_equal(b.grad, first[1])


def test_node_used_twice_accumulates():
    a = Tensor(np.array([1.0, -2.0, 3.0]))
    (a * a).sum().backward()
    np.testing.assert_array_equal(a.grad, 2 * a.data)
    b = a * 3
    (b * a + b).sum().backward()                 # d/da (3a^2 + 3a) = 6a + 3
    np.testing.assert_array_equal(a.grad, 6 * a.data + 3)


def test_backward_with_a_given_gradient():
    rng = np.random.default_rng(6)
    x, g = Tensor(rng.standard_normal((2, 3))), rng.standard_normal((2, 3))
    x.tanh().backward(g)
    np.testing.assert_allclose(x.grad, (1 - np.tanh(x.data) ** 2) * g)


def test_deep_graph_does_not_hit_the_recursion_limit():
    x = Tensor(np.ones(2))
    y = x
    for _ in range(600):                         # 1200 operations deep: past Python's recursion limit (1000)
        y = y * 1.0 + 0.0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 1.0])


def test_float32_stays_float32():
    x = Tensor(np.ones((2, 3), np.float32))
    y = (2 * x + 1).exp().softmax() / 3 - x.mean(axis=0)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32
    assert Tensor([1, 2]).dtype == np.float64          # integers become float64


def test_exported_and_repr():
    assert bplib.Tensor is Tensor and "Tensor" in bplib.__all__
    t = Tensor(np.zeros((2, 3)), label="W")
    assert "W" in repr(t) and "(2, 3)" in repr(t) and t.shape == (2, 3) and t.ndim == 2 and t.size == 6
    assert Tensor(np.array(2.5)).item() == 2.5


# ----------------------------------------------------------------------------
# 3. a small MLP: Tensor's gradients equal the hand-written layer backward passes
# ----------------------------------------------------------------------------
@FEW
@given(N=st.integers(1, 5), D=st.integers(1, 4), H=st.integers(1, 5), C=st.integers(2, 4), seed=seeds)
def test_mlp_gradients_equal_the_manual_layer_backward(N, D, H, C, seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((N, D)), rng.integers(0, C, N)
    W1, b1 = rng.standard_normal((D, H)), rng.standard_normal(H)
    W2, b2 = rng.standard_normal((H, C)), rng.standard_normal(C)

    # by hand, with bplib.layers and bplib.losses
    a1 = L.dense_forward(x, W1, b1)
    h1 = L.relu_forward(a1)
    logits = L.dense_forward(h1, W2, b2)
    loss, dlogits = softmax_cross_entropy(logits, y)
    dh1, dW2, db2 = L.dense_backward(dlogits, h1, W2)
    dx, dW1, db1 = L.dense_backward(L.relu_backward(dh1, a1), x, W1)

    # with Tensor
    tx, tW1, tb1, tW2, tb2 = (Tensor(a) for a in (x, W1, b1, W2, b2))
    tlogits = (tx @ tW1 + tb1).relu() @ tW2 + tb2
    tloss = -tlogits.log_softmax(axis=1)[np.arange(N), y].mean()
    tloss.backward()

    assert tloss.item() == pytest.approx(loss, rel=1e-12)
    for name, manual, t in [("dx", dx, tx), ("dW1", dW1, tW1), ("db1", db1, tb1), ("dW2", dW2, tW2), ("db2", db2, tb2)]:
        np.testing.assert_allclose(t.grad, manual, rtol=1e-10, atol=1e-12, err_msg=name)


# ----------------------------------------------------------------------------
# 4. broken variants: the same check must fail
# ----------------------------------------------------------------------------
def _unbroadcast_forgets_stretched_axes(g, shape):
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    return g                       # (3, 1) gets a (3, 4) gradient: the stretched axis is not summed


_real_unbroadcast = tensor_module._unbroadcast


def _unbroadcast_averages(g, shape):
    summed = _real_unbroadcast(g, shape)
    return summed * summed.size / g.size     # a mean where a sum belongs


@pytest.mark.parametrize("broken", [_unbroadcast_forgets_stretched_axes, _unbroadcast_averages],
                         ids=["forgets stretched axes", "averages instead of summing"])
def test_broken_broadcast_backward_is_rejected(broken, monkeypatch):
    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((3, 1)), rng.standard_normal(4)
    assert_ok(grad_check(lambda s, t: s * t, [a, b]))
    monkeypatch.setattr(tensor_module, "_unbroadcast", broken)
    try:
        reports = grad_check(lambda s, t: s * t, [a, b])
    except ValueError:             # numpy refuses to add a (3, 4) gradient into (3, 1): also a failure
        return
    assert not all(r.ok for r in reports), "a broken broadcast backward was accepted"


def test_broken_keep_axes_is_rejected(monkeypatch):
    rng = np.random.default_rng(8)
    a = distinct(rng, (3, 4))
    monkeypatch.setattr(tensor_module, "_keep_axes", lambda g, axis, keepdims, ndim: g if keepdims else
                        np.expand_dims(g, -1))      # puts the reduced axis back in the wrong place
    with pytest.raises((AssertionError, ValueError)):
        assert_ok(grad_check(lambda t: t.sum(axis=0), [a]))


# ----------------------------------------------------------------------------
# 5. clear errors
# ----------------------------------------------------------------------------
def test_clear_errors():
    with pytest.raises(TypeError, match="already a Tensor"):
        Tensor(Tensor(1.0))
    with pytest.raises(TypeError, match="numbers"):
        Tensor("abc")
    with pytest.raises(TypeError, match="plain number"):
        Tensor(np.ones(2)) ** Tensor(np.ones(2))
    with pytest.raises(ValueError, match="non-positive"):
        Tensor(np.array([1.0, -1.0])).log()
    with pytest.raises(ValueError, match="not one number"):
        Tensor(np.ones(3)).exp().backward()
    with pytest.raises(ValueError, match=r"grad has shape \(2,\), expected \(3,\)"):
        Tensor(np.ones(3)).exp().backward(np.ones(2))
    with pytest.raises(ValueError, match="at least one axis"):
        Tensor(np.ones(3)) @ 2.0
    with pytest.raises(TypeError, match="not with a Tensor"):
        Tensor(np.ones(3))[Tensor(np.array([True, False, True]))]
    with pytest.raises(TypeError, match="not with a Tensor"):
        Tensor(np.ones((2, 2)))[0, Tensor(np.array([1]))]
