"""bplib.gradcheck: the numerical gradient is right, and every diagnosis fires
on the mistake it names (and passes the right answer)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bplib import gradcheck as G
from bplib import layers as L


# ----------------------------------------------------------------------------
# numerical_gradient, rel_error
# ----------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=st.integers(0, 2**32 - 1))
def test_numerical_gradient_of_known_functions(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    c = rng.standard_normal(shape)
    np.testing.assert_allclose(G.numerical_gradient(lambda v: np.sum(v ** 2), x), 2 * x, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(G.numerical_gradient(lambda v: np.sum(np.sin(v) * c), x), np.cos(x) * c,
                               rtol=1e-7, atol=1e-9)
    # the product of all entries: each partial is the product of the others (cross terms matter)
    others = np.array([np.prod(np.delete(x.ravel(), i)) for i in range(x.size)]).reshape(shape)
    np.testing.assert_allclose(G.numerical_gradient(np.prod, x), others, rtol=1e-6, atol=1e-9)


def test_numerical_gradient_restores_x_and_sees_it_by_reference():
    x = np.array([[1.0, -2.0], [3.0, 0.5]])
    before = x.copy()
    held = x                                   # f reads x through its own reference, like a layer's params
    g = G.numerical_gradient(lambda _: float(np.sum(held ** 3)), x)
    np.testing.assert_allclose(g, 3 * before ** 2, rtol=1e-8)
    np.testing.assert_array_equal(x, before)
    assert g.dtype == np.float64 and g.shape == x.shape


@pytest.mark.parametrize("x, words", [
    (np.arange(3), "floating-point"),
    ([1.0, 2.0], "floating-point"),
    (np.ones((3, 4)).T, "contiguous"),
])
def test_numerical_gradient_rejects_what_it_cannot_perturb(x, words):
    with pytest.raises(ValueError, match=words):
        G.numerical_gradient(np.sum, x)


def test_rel_error():
    assert G.rel_error([1.0, 2.0], [1.0, 2.0]) == 0
    assert G.rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2)
    assert G.rel_error([0.0], [0.0]) == 0                       # no division by zero
    assert G.rel_error([1e-20], [0.0]) < 1e-7                   # tiny arrays do not blow up


# ----------------------------------------------------------------------------
# compare: one diagnosis per mistake
# ----------------------------------------------------------------------------
rng = np.random.default_rng(0)
E = rng.standard_normal((4, 3))                # a "true" gradient
SQ = rng.standard_normal((3, 3))


def test_compare_accepts_the_right_answer_within_tol_only():
    r = G.compare("dW", E, E + 1e-12)
    assert r.ok and r.error < 1e-10 and str(r).startswith("ok")
    off = E * (1 + 1e-4)
    assert not G.compare("dW", E, off).ok
    assert G.compare("dW", E, off, tol=1e-3).ok


@pytest.mark.parametrize("expected, got, words", [
    (E, None, "is None"),
    (E, "oops", "not an array of numbers"),
    (E, E.T, "transpose"),                                          # (3, 4) for (4, 3)
    (SQ, SQ.T, "transpose"),                                        # square: same shape
    (E[0], np.stack([E[0]] * 5), "batch axis"),                     # db not summed: (N, M)
    (E, E.reshape(3, 4)[::-1].copy(), "order of axes"),
    (E, np.where(E > 0, np.nan, E), "NaN"),
    (E, np.zeros_like(E), "all zeros"),
    (np.zeros_like(E), E, "true gradient is all zeros"),
    (E, -E, "wrong sign"),
    (E, 3 * E, "scaled by 3"),
    (E, E * (1 + 1e-5), "Close, but not within the tolerance"),     # not "scaled by 1"
    (E, E + np.eye(4, 3)[::-1] * 0.5, "3 of 12 elements are wrong"),
])
def test_compare_diagnoses(expected, got, words):
    r = G.compare("dW", expected, got)
    assert not r.ok and str(r).startswith("FAIL")
    assert words in r.message, r.message


def test_compare_names_the_batch_size():
    assert "batch size) times too large" in G.compare("dW", E, 8 * E, batch_size=8).message
    assert "an average over the batch where a sum belongs" in G.compare("dW", E, E / 8, batch_size=8).message


def test_compare_finds_a_forgotten_mask():
    x = rng.standard_normal((5, 4))
    dout = rng.standard_normal((5, 4))
    r = G.compare("dx", dout * (x > 0), dout)
    assert "mask" in r.message


def test_compare_finds_a_dropped_path():
    got = E.copy()
    got[:, 1] = 0
    assert "some path is dropped" in G.compare("dx", E, got).message


def test_compare_reports_the_worst_element():
    got = E.copy()
    got[2, 1] += 1.0
    r = G.compare("dW", E, got)
    assert r.worst[0] == (2, 1) and "dW[2, 1]" in r.message
    assert f"expected {E[2, 1]:.6g}" in r.message


# ----------------------------------------------------------------------------
# GradReport, check_gradients, check_layer
# ----------------------------------------------------------------------------
def test_check_gradients_and_the_report():
    x, w = rng.standard_normal(4), rng.standard_normal(4)
    good = G.check_gradients(lambda: np.sum(x * w) ** 2, dict(dx=x, dw=w),
                             dict(dx=2 * np.sum(x * w) * w, dw=2 * np.sum(x * w) * x), title="square")
    assert good.ok and good.max_error < 1e-8 and good.assert_ok() is good
    assert "square: all gradients match" in str(good)
    bad = G.check_gradients(lambda: np.sum(x * w) ** 2, dict(dx=x, dw=w),
                            dict(dx=2 * np.sum(x * w) * w, dw=None), title="square")
    assert not bad.ok and bad["dx"].ok and not bad["dw"].ok and bad.max_error == np.inf
    with pytest.raises(AssertionError, match=r"(?s)some gradients are wrong.*dw: is None"):
        bad.assert_ok()


def test_check_layer_checks_every_param_and_dx():
    r = np.random.default_rng(1)
    layer = L.Dense(3, 2, rng=r, dtype=np.float64)
    report = G.check_layer(layer, r.standard_normal((4, 3)))
    assert report.ok and [a.name for a in report.reports] == ["dx", "dW", "db"]
    assert "Dense(3, 2)" in str(report)


def test_check_layer_uses_the_given_dout():
    r = np.random.default_rng(1)
    x = r.standard_normal((4, 3))
    layer = L.Dense(3, 2, rng=r, dtype=np.float64)
    dout = np.zeros((4, 2))
    dout[0, 0] = 1.0                       # L = out[0, 0], so dL/db = [1, 0]
    report = G.check_layer(layer, x, dout=dout)
    assert report.ok
    np.testing.assert_allclose(layer.grads["b"], [1, 0])


def test_check_layer_rejects_a_wrong_layer_with_a_named_array():
    r = np.random.default_rng(1)
    layer = L.Dense(3, 3, rng=r, dtype=np.float64,
                    backward_fn=lambda dout, x, W: (dout @ W, x.T @ dout, dout.sum(0)))   # W not transposed
    report = G.check_layer(layer, r.standard_normal((4, 3)))
    assert not report.ok and not report["dx"].ok and report["dW"].ok
    assert "FAIL dx" in str(report)


def test_check_layer_reports_none_from_a_learner_function():
    """A backward_fn that forgets to return one gradient gets 'is None', not a crash."""
    r = np.random.default_rng(1)
    layer = L.Dense(3, 2, rng=r, dtype=np.float64,
                    backward_fn=lambda dout, x, W: (dout @ W.T, None, dout.sum(0)))
    report = G.check_layer(layer, r.standard_normal((4, 3)))
    assert not report["dW"].ok and "is None" in report["dW"].message


def test_float32_layers_need_a_looser_tolerance():
    r = np.random.default_rng(2)
    layer = L.Dense(4, 3, rng=r)                  # float32 by default
    x = r.standard_normal((5, 4)).astype(np.float32)
    assert G.check_layer(layer, x, tol=1e-2, h=1e-2).ok
