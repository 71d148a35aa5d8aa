"""Checks for the dense_backward assignment.

    dense_backward(dout, x, W) -> (dx, dW, db)     dout: (N, M), x: (N, D), W: (D, M)
    relu_backward(dout, x) -> dx                   dout, x: any shape (the same)
    softmax_cross_entropy(logits, labels) -> (loss, dlogits)   logits: (N, K), labels: (N,) ints
"""
import numpy as np

from .. import layers, losses
from .calls.dense_backward import CALLS
from .core import Ladder, Mistake, visible_and_hidden

A = "dense_backward"


# -- dense ----------------------------------------------------------------------
def _dense_case(rng, N, D, M, name=None):
    return dict(name=name or f"N={N}, D={D}, M={M}", dout=rng.standard_normal((N, M)),
                x=rng.standard_normal((N, D)), W=rng.standard_normal((D, M)))


def _dense_visible(rng):
    x = np.array([[1.0, 2.0, 0.0], [-1.0, 0.5, 3.0]])
    W = np.array([[1.0, 0.0, -1.0], [0.5, 1.0, 0.0], [0.0, 2.0, 1.0]])
    dout = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, 1.0]])
    return [dict(name="N=2, D=M=3, small numbers; W is square, so the shapes alone do not decide",
                 dout=dout, x=x, W=W),
            _dense_case(rng, 5, 4, 3),
            _dense_case(rng, 4, 2, 6)]


def _dense_ref(c):
    dx, dW, db = layers.dense_backward(c["dout"], c["x"], c["W"])
    return {"dx": dx, "dW": dW, "db": db}


_DENSE_SUM = ("b is added to every row of the batch: one value used N times. When one value is used in many "
              "places, the chain rule adds up the gradient of each use.")
_DENSE_W = ("out[n, m] = sum over i of x[n, i] W[i, m], so d out[n, m] / d W[i, j] is x[n, i] when m == j and 0 "
            "otherwise. Write dL/dW[i, j] as a sum over n, then read it as a matrix product.")
_dense_mistakes = [
    Mistake("db is exactly N times too small: it was averaged over the batch where the batch's "
            "contributions add up.", lambda c: {"db": c["dout"].mean(axis=0)},
            concept=_DENSE_SUM,
            rule="d out[n, m] / d b[m] = 1 for every n, and the 1/N of the mean loss is already inside dout."),
    Mistake("db still has one row per example: the contributions of the batch were not added up.",
            lambda c: {"db": c["dout"]}, concept=_DENSE_SUM,
            rule="d out[n, m] / d b[m] = 1 for every n: dL/db[m] is a sum over n of dout[n, m]."),
    Mistake("dW comes out transposed: its rows follow the outputs m and its columns the inputs i, while W's "
            "rows are the inputs. (When D = M the shape is even right, so only the values show it.)",
            lambda c: {"dW": c["dout"].T @ c["x"]},
            concept="A gradient always has the shape of its variable: dW is (D, M) like W, row i for input i. "
                    "When D = M, two products of x and dout have that shape: only the element form says "
                    "which one is dW.",
            rule=_DENSE_W),
    Mistake("dx uses W the wrong way round: it does not map dout's (N, M) back to x's (N, D) (when D = M the "
            "shape fits but the values are wrong).",
            lambda c: {"dx": c["dout"] @ c["W"]},
            concept="dx must carry the (N, M) gradient arriving at out back to the (N, D) shape of x, through "
                    "the same weights that carried x forward.",
            rule="d out[n, m] / d x[n, i] = W[i, m]: dL/dx[n, i] is a sum over m of dout[n, m] times W[i, m]."),
    Mistake("dW is exactly N times too small: it was averaged over the batch (the 1/N of the loss is already "
            "inside dout).", lambda c: {"dW": c["x"].T @ c["dout"] / len(c["x"])},
            concept="W is used by every example of the batch; the chain rule adds the N uses up. The mean of "
                    "the loss already put 1/N into dout.",
            rule=_DENSE_W),
]


# -- relu -------------------------------------------------------------------------
def _relu_visible(rng):
    x = np.array([[1.0, -2.0, 0.0, 3.0], [-0.5, 0.5, 2.0, -1.0]])
    dout = np.array([[10.0, 20.0, 30.0, -40.0], [-1.0, -2.0, 3.0, 4.0]])
    return [dict(name="2x4 with one x exactly 0 (ReLU'(0) = 0)", dout=dout, x=x)]


_relu_ref = lambda c: {"dx": layers.relu_backward(c["dout"], c["x"])}     # noqa: E731
_relu_mistakes = [
    Mistake("dx is blocked in the wrong places: where dout is negative, not where the forward input was.",
            lambda c: {"dx": c["dout"] * (c["dout"] > 0)},
            concept="What ReLU lets through is decided in the forward pass, by its input.",
            rule="d max(0, x) / d x is 1 where the forward input x was positive, 0 elsewhere (0 at exactly 0)."),
    Mistake("dx equals dout everywhere: nothing is blocked where the input was negative (the mask is missing).",
            lambda c: {"dx": c["dout"]},
            concept="Where ReLU's output was clamped to 0, a small change of x changes nothing: no gradient "
                    "passes there.",
            rule="d max(0, x) / d x is 1 where x > 0 and 0 where x <= 0."),
    Mistake("dx is only 0s and 1s: it is the local derivative alone, not yet multiplied by the gradient "
            "arriving from above.", lambda c: {"dx": (c["x"] > 0).astype(float)},
            concept="The chain rule: the gradient of the loss with respect to x is the gradient arriving at the "
                    "output times the local derivative.",
            rule="dL/dx[i] = dL/dout[i] * d out[i] / d x[i]."),
    Mistake("dx grows with the size of x: the input's value was used where only its sign matters.",
            lambda c: {"dx": np.maximum(c["x"], 0) * c["dout"]},
            concept="The slope of max(0, x) is the same (1) for every positive x, whatever its size.",
            rule="d max(0, x) / d x is 1 or 0, never x itself."),
    Mistake("dx lets the gradient through where x is exactly 0: this course takes ReLU's slope at 0 to be 0.",
            lambda c: {"dx": c["dout"] * (c["x"] >= 0)},
            concept="max(0, x) has a kink at 0: its slope is 0 on the left and 1 on the right. At the kink itself "
                    "we must pick one; bplib (like most libraries) picks 0.",
            rule="d max(0, x) / d x is 1 where x > 0 (strictly) and 0 where x <= 0."),
]


# -- softmax cross-entropy ------------------------------------------------------------
def _sce_visible(rng):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    return [dict(name="N=2, K=3", logits=logits, labels=np.array([0, 2])),
            dict(name="N=4, K=5, random", logits=rng.standard_normal((4, 5)), labels=rng.integers(0, 5, 4))]


def _sce_ref(c):
    loss, d = losses.softmax_cross_entropy(c["logits"], c["labels"])
    return {"loss": np.float64(loss), "dlogits": d}


def _onehot(c):
    y = np.zeros_like(c["logits"])
    y[np.arange(len(c["labels"])), c["labels"]] = 1
    return y


def _softmax_cols(z):
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


_SCE_PATHS = ("Two things in -log p[n, y] depend on the logits: the label's own numerator exp(logits[n, y]) and "
              "the denominator, a sum over every class. Take the log of the quotient apart and each path "
              "contributes a term.")
_sce_mistakes = [
    Mistake("dlogits is positive everywhere and each row sums to 1/N instead of 0: the label's own term "
            "is missing.", lambda c: {"dlogits": losses.softmax(c["logits"]) / len(c["labels"])},
            concept=_SCE_PATHS,
            rule="-log p[n, y] = -logits[n, y] + log(sum over j of exp(logits[n, j])). The first term depends "
                 "on logits[n, k] only when k == y."),
    Mistake("dlogits is exactly N (the batch size) times too large: the loss is a mean over the batch.",
            lambda c: {"dlogits": losses.softmax(c["logits"]) - _onehot(c)},
            concept="The loss averages N per-example losses, so each example's share of the gradient is "
                    "scaled by the same factor as its loss.",
            rule="L = (1/N) * sum over n of L_n, so dL/dlogits[n] = (1/N) * dL_n/dlogits[n]."),
    Mistake("dlogits has the wrong sign: following it downhill would make the right class less likely.",
            lambda c: {"dlogits": -_sce_ref(c)["dlogits"]},
            concept="The loss is MINUS the log-probability of the label: raising the label's logit must lower "
                    "the loss, so that entry of dlogits is negative.",
            rule="d(-log p[n, y]) / d logits[n, y] is negative (p[n, y] < 1), and positive for every other class."),
    Mistake("The loss is exactly N (the batch size) times too large: it is a sum over the batch, not a mean.",
            lambda c: {"loss": _sce_ref(c)["loss"] * len(c["labels"])},
            concept="The loss is the MEAN cross-entropy over the batch.",
            rule="L = (1/N) * sum over n of -log p[n, labels[n]]."),
    Mistake("The loss averages -log p over every class of every example, not only over each example's label.",
            lambda c: {"loss": -np.log(losses.softmax(c["logits"])).mean()},
            concept="Cross-entropy with one right answer per example looks at one probability per row: the one "
                    "of that row's label.",
            rule="L = (1/N) * sum over n of -log p[n, labels[n]]: N terms, not N*K."),
    Mistake("The probabilities were normalised down the columns (over the batch) instead of along each row "
            "(over the classes of one example).",
            lambda c: {"loss": -np.log(_softmax_cols(c["logits"])[np.arange(len(c["labels"])), c["labels"]]).mean(),
                       "dlogits": (_softmax_cols(c["logits"]) - _onehot(c)) / len(c["labels"])},
            concept="Softmax turns the K scores of ONE example into K probabilities that sum to 1: it works row "
                    "by row.",
            rule="p[n, k] = exp(logits[n, k]) / (sum over j of exp(logits[n, j])): the sum runs over the classes j."),
    Mistake("Each row of dlogits is corrected at every label that occurs in the batch, not only at its own.",
            lambda c: {"dlogits": (losses.softmax(c["logits"])
                                   - np.isin(np.arange(c["logits"].shape[1]), c["labels"])[None]) / len(c["labels"])},
            concept="Example n's loss involves only its own label labels[n].",
            rule="Row n of dlogits differs from row n of p/N at exactly one column: labels[n]."),
]


_LADDERS = {
    "dense_backward": Ladder(
        concept="Every gradient has the shape of its variable: dx (N, D) like x, dW (D, M) like W, db (M,) like "
                "b. When one value is used in many places (W in every row of the batch, b in every row), the "
                "chain rule adds up the gradients of its uses.",
        rule="out[n, m] = sum over i of x[n, i] W[i, m] + b[m]. So d out[n, m] / d W[i, j] = x[n, i] if m == j "
             "(else 0), d out[n, m] / d x[n, i] = W[i, m], d out[n, m] / d b[m] = 1. Write dL/dW[i, j] as a sum "
             "over n of dout[n, j] times that, then recognise a matrix product.",
        formula="dx = dout @ W.T, dW = x.T @ dout, db = dout.sum(axis=0): each is dout combined with the OTHER "
                "factor of x @ W, arranged so the shapes fit; b collects every row."),
    "relu_backward": Ladder(
        concept="ReLU lets a value through where its input was positive and clamps it to 0 elsewhere; where it "
                "clamps, a small change of x changes nothing.",
        rule="d max(0, x) / d x is 1 where x > 0 and 0 where x <= 0 (we use 0 at exactly 0); then the chain "
             "rule multiplies by the gradient arriving from above.",
        formula="dx = dout * (x > 0)"),
    "softmax_cross_entropy": Ladder(
        concept="Softmax turns the scores of a row into probabilities p; the loss is the mean over the batch of "
                "-log p of the correct class. Subtract each row's maximum before exp: the probabilities do not "
                "change and exp no longer overflows. " + _SCE_PATHS,
        rule="For one example with label y: -log p[y] = -logit[y] + log(sum over j of exp(logit[j])). The first "
             "term depends on logit[k] only when k == y. For the second, differentiate the log, then the one term "
             "of the sum that holds logit[k]: you will recognise a softmax. The mean over N examples scales "
             "every row by 1/N.",
        formula="p = softmax(logits - logits.max(axis=1, keepdims=True)); loss = -log(p[arange(N), labels]).mean(); "
                "dlogits = p with 1 subtracted at [arange(N), labels], then divided by N"),
}


def _checks():
    bs = lambda c: c["x"].shape[0] if "x" in c else len(c["labels"])   # noqa: E731
    spec = [
        ("dense_backward", ("dx", "dW", "db"), CALLS["dense_backward"], _dense_ref, _dense_mistakes,
         _dense_visible, (2, 3)),
        ("relu_backward", ("dx",), CALLS["relu_backward"], _relu_ref, _relu_mistakes, _relu_visible, (1, 2)),
        ("softmax_cross_entropy", ("loss", "dlogits"), CALLS["softmax_cross_entropy"], _sce_ref, _sce_mistakes,
         _sce_visible, (2, 3)),
    ]
    return visible_and_hidden(A, spec, _LADDERS, batch_size=bs)


CHECKS = _checks()
