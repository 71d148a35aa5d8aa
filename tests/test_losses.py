"""bplib.losses: values against hand-computed ones, gradients against numerical
ones, stability for huge logits, and clear errors for bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bplib.gradcheck import check_gradients, compare
from bplib.losses import binary_cross_entropy, mse, softmax, softmax_cross_entropy

FEW = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2**32 - 1)


# ----------------------------------------------------------------------------
# values computed by hand
# ----------------------------------------------------------------------------
def test_softmax_cross_entropy_hand_values():
    loss, d = softmax_cross_entropy(np.array([[0.0, 0.0]]), np.array([1]))
    assert loss == pytest.approx(math.log(2))
    np.testing.assert_allclose(d, [[0.5, -0.5]])

    # two rows: the loss is the mean, the gradient carries 1/N
    logits = np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]])
    z = math.exp(1) + math.exp(2) + math.exp(3)
    loss, d = softmax_cross_entropy(logits, np.array([2, 0]))
    assert loss == pytest.approx((-math.log(math.exp(3) / z) + math.log(3)) / 2)
    p0 = np.array([math.exp(1), math.exp(2), math.exp(3)]) / z
    np.testing.assert_allclose(d, [(p0 - [0, 0, 1]) / 2, (np.full(3, 1 / 3) - [1, 0, 0]) / 2])
    assert isinstance(loss, float)


def test_binary_cross_entropy_hand_values():
    loss, d = binary_cross_entropy(np.array([0.0]), np.array([1]))
    assert loss == pytest.approx(math.log(2))
    np.testing.assert_allclose(d, [-0.5])
    s = 1 / (1 + math.exp(-2.0))
    loss, d = binary_cross_entropy(np.array([2.0, -1.0]), np.array([1, 0]))
    assert loss == pytest.approx((-math.log(s) - math.log(1 - 1 / (1 + math.exp(1.0)))) / 2)
    np.testing.assert_allclose(d, [(s - 1) / 2, (1 / (1 + math.exp(1.0))) / 2])
    # soft targets are allowed: the minimum over logits is at sigmoid(z) = t
    loss, d = binary_cross_entropy(np.array([0.0]), np.array([0.5]))
    assert d[0] == 0


def test_mse_hand_values():
    loss, d = mse(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 0.0], [3.0, 7.0]]))
    assert loss == pytest.approx((0 + 4 + 0 + 9) / 4)
    np.testing.assert_allclose(d, [[0, 1.0], [0, -1.5]])


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]]))
    np.testing.assert_allclose(p.sum(axis=1), 1)
    np.testing.assert_allclose(p[1], [0.5, 0.5, 0])


# ----------------------------------------------------------------------------
# gradients against numerical ones
# ----------------------------------------------------------------------------
@FEW
@given(N=st.integers(1, 5), K=st.integers(1, 5), seed=seeds, scale=st.sampled_from([0.1, 1.0, 5.0]))
def test_softmax_cross_entropy_gradient(N, K, seed, scale):
    rng = np.random.default_rng(seed)
    logits, labels = rng.standard_normal((N, K)) * scale, rng.integers(0, K, N)
    _, d = softmax_cross_entropy(logits, labels)
    check_gradients(lambda: softmax_cross_entropy(logits, labels)[0], dict(dlogits=logits),
                    dict(dlogits=d), batch_size=N).assert_ok()


@FEW
@given(N=st.integers(1, 6), seed=seeds, soft=st.booleans())
def test_binary_cross_entropy_gradient(N, seed, soft):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(N) * 3
    targets = rng.uniform(0, 1, N) if soft else rng.integers(0, 2, N)
    _, d = binary_cross_entropy(logits, targets)
    check_gradients(lambda: binary_cross_entropy(logits, targets)[0], dict(dlogits=logits),
                    dict(dlogits=d)).assert_ok()


@FEW
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), seed=seeds)
def test_mse_gradient(shape, seed):
    rng = np.random.default_rng(seed)
    pred, target = rng.standard_normal(shape), rng.standard_normal(shape)
    _, d = mse(pred, target)
    check_gradients(lambda: mse(pred, target)[0], dict(dpred=pred), dict(dpred=d)).assert_ok()


def test_a_gradient_missing_the_mean_is_named():
    """The classic loss bug (forgetting 1/N) is caught and named by gradcheck."""
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((8, 4)), rng.integers(0, 4, 8)
    _, d = softmax_cross_entropy(logits, labels)
    report = check_gradients(lambda: softmax_cross_entropy(logits, labels)[0], dict(dlogits=logits),
                             dict(dlogits=d * 8), batch_size=8)
    assert not report.ok and "the 1/N of the mean is missing" in report["dlogits"].message
    assert not compare("dlogits", d, d * 8).ok


# ----------------------------------------------------------------------------
# stability: logits of size 1e4
# ----------------------------------------------------------------------------
def test_softmax_cross_entropy_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4], [1e4, 0.0, -1e4], [-1e4, -1e4, -1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, d = softmax_cross_entropy(logits, np.array([0, 2, 1]))
    # row 0 right with certainty (0), row 1 wrong by 2e4 nats, row 2 uniform (log 3)
    assert loss == pytest.approx((0 + 2e4 + math.log(3)) / 3)
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d, np.array([[0, 0, 0], [1, 0, -1], [1 / 3, -2 / 3, 1 / 3]]) / 3, atol=1e-12)


def test_binary_cross_entropy_huge_logits():
    logits = np.array([1e4, 1e4, -1e4, -1e4])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, d = binary_cross_entropy(logits, np.array([1, 0, 0, 1]))
    assert loss == pytest.approx((0 + 1e4 + 0 + 1e4) / 4)
    np.testing.assert_allclose(d, [0, 0.25, 0, -0.25], atol=1e-12)


def test_float32_logits_stay_float32_and_finite():
    logits = (np.random.default_rng(0).standard_normal((4, 3)) * 1e4).astype(np.float32)
    loss, d = softmax_cross_entropy(logits, np.array([0, 1, 2, 0]))
    assert np.isfinite(loss) and d.dtype == np.float32 and np.all(np.isfinite(d))


# ----------------------------------------------------------------------------
# bad input: a ValueError naming the problem
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("logits, labels, words", [
    (np.zeros(3), np.array([0, 1, 2]), r"logits of shape \(N, K\), got \(3,\)"),
    (np.zeros((2, 3), np.int64), np.array([0, 1]), "floating-point.*int64"),
    ([[0.0, 1.0]], np.array([0]), "floating-point.*list"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), r"labels of shape \(2,\).*got \(3,\)"),     # number of labels
    (np.zeros((2, 3)), np.array([[0], [1]]), r"labels of shape \(2,\).*got \(2, 1\)"),
    (np.zeros((2, 3)), np.array([0.0, 1.0]), "integer class ids.*float64"),
    (np.zeros((2, 3)), np.array([0, 3]), r"\[0, 3\).*0\.\.3"),                           # out of range
    (np.zeros((2, 3)), np.array([-1, 2]), r"\[0, 3\).*-1\.\.2"),
])
def test_softmax_cross_entropy_bad_input(logits, labels, words):
    with pytest.raises(ValueError, match="softmax_cross_entropy: .*" + words):
        softmax_cross_entropy(logits, labels)


@pytest.mark.parametrize("logits, targets, words", [
    (np.zeros(3), np.array([0, 1]), r"targets of shape \(3,\).*got \(2,\)"),
    (np.zeros(3, np.int64), np.array([0, 1, 1]), "floating-point"),
    (np.zeros(3), np.array([0, 1, 2]), r"\[0, 1\].*from 0 to 2"),              # a class id, not 0/1
    (np.zeros(3), np.array([-1, 1, 1]), r"\[0, 1\].*from -1 to 1"),            # -1/+1 labels
    (np.zeros(2), np.array(["pos", "neg"]), r"\[0, 1\].*dtype"),
])
def test_binary_cross_entropy_bad_input(logits, targets, words):
    with pytest.raises(ValueError, match="binary_cross_entropy: .*" + words):
        binary_cross_entropy(logits, targets)


def test_binary_cross_entropy_accepts_bool_targets():
    a, _ = binary_cross_entropy(np.array([0.5, -0.5]), np.array([True, False]))
    b, _ = binary_cross_entropy(np.array([0.5, -0.5]), np.array([1, 0]))
    assert a == b


def test_mse_bad_input():
    with pytest.raises(ValueError, match=r"mse: expected target of shape \(2, 3\) like pred, got \(3, 2\)"):
        mse(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="mse: pred must be a numpy array, got list"):
        mse([1.0], np.zeros(1))
