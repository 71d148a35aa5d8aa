"""Checks for the backprop_ninja assignment (the capstone).

    backward_by_hand(v, y) -> dict "d<name>" -> array
        v: name -> array, the forward values of calls.backprop_ninja.forward (x, the parameters, every
        intermediate); the gradient of the loss with respect to every intermediate and parameter
    cross_entropy_backward(logits, y) -> dlogits, the fused form (one expression)
    batchnorm_backward_fused(dh_bn, h_hat, gamma, inv_std) -> dh_pre, the fused form (one expression)

The right answers: Tensor autograd on the same graph (backward_by_hand), bplib.losses.softmax_cross_entropy
and bplib.layers.batchnorm_backward (the fused forms). Each row of backward_by_hand is judged on its own:
``exact`` (max abs difference below 1e-12), ``approximate`` (relative error below 1e-6) or ``wrong``; a known
mistake is a model of the FIRST wrong gradient (the right upstream gradients, one local rule broken): the
rows after it inherit its error. ``compare(grads, tensors)`` prints the same judgement as a table.
"""
import numpy as np

from .. import layers, losses
from ..gradcheck import ArrayReport, compare as _gc_compare, rel_error
from .calls.backprop_ninja import CALLS, GRADS, NAMES, PARAMS, forward, ninja_values
from .core import Ladder, Mistake, visible_and_hidden

A = "backprop_ninja"
EXACT = 1e-12          # max abs difference: "exact" (float64 rounding of the same operations)
APPROX = 1e-6          # relative error: "approximate" (the same value, computed in another order)

# the forward line(s) that use each gradient's variable (its gradient flows back through them)
FORWARD_LINE = {
    "picked": "loss = -picked.mean()", "logprobs": "picked = logprobs[np.arange(N), y]",
    "probs": "logprobs = probs.log()", "counts_sum_inv": "probs = counts * counts_sum_inv",
    "counts_sum": "counts_sum_inv = counts_sum ** -1",
    "counts": "probs = counts * counts_sum_inv; counts_sum = counts.sum(axis=1, keepdims=True)",
    "shifted": "counts = shifted.exp()", "logit_max": "shifted = logits - logit_max",
    "logits": "logit_max = logits.max(axis=1, keepdims=True); shifted = logits - logit_max",
    "h": "logits = h @ W2 + b2", "W2": "logits = h @ W2 + b2", "b2": "logits = h @ W2 + b2",
    "h_bn": "h = h_bn.tanh()", "gamma": "h_bn = gamma * h_hat + beta", "beta": "h_bn = gamma * h_hat + beta",
    "h_hat": "h_bn = gamma * h_hat + beta", "inv_std": "h_hat = diff * inv_std",
    "var_eps": "inv_std = var_eps ** -0.5", "var": "var_eps = var + eps",
    "diff2": "var = diff2.mean(axis=0, keepdims=True)",
    "diff": "diff2 = diff ** 2; h_hat = diff * inv_std", "mu": "diff = h_pre - mu",
    "h_pre": "mu = h_pre.mean(axis=0, keepdims=True); diff = h_pre - mu",
    "W1": "h_pre = x @ W1 + b1", "b1": "h_pre = x @ W1 + b1",
}


# -- cases ---------------------------------------------------------------------------------------------
def _ninja_case(rng, N, D, H, K, name=None, scale=1.0, eps=1e-5):
    """A batch and parameters of moderate size (no probability underflows: log stays finite)."""
    return dict(name=name or f"N={N}, D={D}, H={H}, K={K}", x=rng.standard_normal((N, D)) * scale,
                y=rng.integers(0, K, N), W1=rng.standard_normal((D, H)) / np.sqrt(D),
                b1=rng.standard_normal(H) * 0.1, gamma=rng.uniform(0.5, 1.5, H), beta=rng.standard_normal(H) * 0.1,
                W2=rng.standard_normal((H, K)) / np.sqrt(H), b2=rng.standard_normal(K) * 0.1, eps=eps)


def _ninja_visible(rng):
    return [_ninja_case(rng, 4, 3, 5, 3, "a tiny batch: N=4, D=3, H=5, K=3"),
            _ninja_case(rng, 32, 8, 16, 4, "N=32, D=8, H=16, K=4")]


def _ce_case(rng, N, K, name=None, scale=1.0):
    return dict(name=name or f"N={N}, K={K}", logits=rng.standard_normal((N, K)) * scale, y=rng.integers(0, K, N))


def _ce_visible(rng):
    return [dict(name="N=2, K=3, small numbers", logits=np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]),
                 y=np.array([1, 2])),
            _ce_case(rng, 16, 5, scale=2.0)]


def _bn_case(rng, N, H, name=None, scale=1.0, shift=0.0, eps=1e-5):
    h_pre = rng.standard_normal((N, H)) * scale + shift
    mu = h_pre.mean(axis=0, keepdims=True)
    inv_std = 1.0 / np.sqrt(((h_pre - mu) ** 2).mean(axis=0, keepdims=True) + eps)
    return dict(name=name or f"N={N}, H={H}", dh_bn=rng.standard_normal((N, H)), h_hat=(h_pre - mu) * inv_std,
                gamma=rng.uniform(0.5, 2.0, H) * rng.choice([-1.0, 1.0], H), inv_std=inv_std)


def _bn_visible(rng):
    return [_bn_case(rng, 4, 2, "N=4, H=2"), _bn_case(rng, 20, 6, scale=2.0, shift=1.0)]


# -- references ----------------------------------------------------------------------------------------
def autograd(c):
    """The Tensors of the case's forward pass after loss.backward(): every .grad filled."""
    t = forward(c["x"], c, c["y"], c.get("eps", 1e-5))
    t["loss"].backward()
    return t


def _ninja_ref(c):
    t = autograd(c)
    return {g: t[g[1:]].grad for g in GRADS}


def _ce_ref(c):
    return {"dlogits": losses.softmax_cross_entropy(c["logits"], c["y"])[1]}


def _bn_fused_ref(c):
    cache = dict(x_hat=c["h_hat"], gamma=c["gamma"], inv_std=c["inv_std"].reshape(-1))
    return {"dh_pre": layers.batchnorm_backward(c["dh_bn"], cache)[0]}


# -- one row's verdict: exact, approximate or wrong --------------------------------------------------------
def row_verdict(want, got):
    """("exact" | "approximate" | "wrong" | "missing", max abs difference or None)."""
    if got is None:
        return "missing", None
    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return "wrong", None
    want = np.asarray(want, dtype=np.float64)
    if g.shape != want.shape or not np.all(np.isfinite(g)):
        return "wrong", None
    d = float(np.abs(g - want).max(initial=0))
    if d < EXACT:
        return "exact", d
    if rel_error(want, g) < APPROX:
        return "approximate", d
    return "wrong", d


def _row_compare(name, want, got, tol=APPROX, batch_size=None):
    """gradcheck.compare for one gradient, with "exact" for tiny values (dlogit_max is 0 up to rounding)."""
    kind, d = row_verdict(want, got)
    if kind in ("exact", "approximate"):
        return ArrayReport(name, True, 0.0 if d is None else d, kind)
    return _gc_compare(name, want, got, tol=tol, batch_size=batch_size)


def _shape_symptom(name, want, got):
    """A wrong shape in words: a broadcast not summed back, a transpose, a lost axis."""
    try:
        g = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        return "is not an array of numbers"
    want = np.asarray(want)
    if g.shape == want.shape:
        return None
    var = name[1:]
    try:
        broadcast = np.broadcast_shapes(want.shape, g.shape) == g.shape and g.size > want.size
    except ValueError:
        broadcast = False
    if broadcast:
        return (f"has shape {g.shape}, not {want.shape} (the shape of {var}): {var} was broadcast (used "
                f"along an axis it does not have) in the forward pass, and its gradient was not summed back "
                f"over that axis.")
    if g.T.shape == want.shape:
        return f"has shape {g.shape}, not {want.shape}: it is transposed (a gradient has the shape of its variable)."
    return f"has shape {g.shape}, not {want.shape} (the shape of {var})."


def _first_wrong(case, got, want):
    """The verdicts' extra line: the first wrong gradient, in backward order, and why the rest follow."""
    for k in GRADS:
        kind, _ = row_verdict(want[k], got.get(k))
        if kind in ("wrong", "missing"):
            after = [j for j in GRADS[GRADS.index(k) + 1:] if row_verdict(want[j], got.get(j))[0] == "wrong"]
            var = k[1:]
            msg = (f"The first wrong gradient in backward order is {k} (the gradient of {var}, used in "
                   f"`{FORWARD_LINE[var]}`)" + (": it is missing from the returned dict." if kind == "missing"
                                              else "."))
            s = _shape_symptom(k, want[k], got.get(k)) if kind == "wrong" else None
            if s:
                msg += f" {k} {s}"
            if after:
                msg += (f" {len(after)} later row(s) are wrong too, but they are computed from it: they may only "
                        f"inherit its error. Fix {k} first.")
            return [msg]
    return []


# -- known mistakes: the first wrong gradient, the right ones upstream -----------------------------------------
def _m(name, fn):
    """A mistake model: {name: fn(reference gradients, forward values, case)}."""
    def model(c):
        return {name: fn(_ninja_ref(c), ninja_values(c), c)}
    return model


def _onehot(c, K):
    o = np.zeros((len(c["y"]), K))
    o[np.arange(len(c["y"])), c["y"]] = 1.0
    return o


_CE_GROUP = ("The loss is a chain of small steps: each gradient is the gradient of the step after it times that "
             "step's local derivative. Go back one line of the forward pass at a time.")
_MEAN_RULE = "loss = -(1/N) sum_n picked[n]: d loss / d picked[n] = -1/N for each n."
_PICK_RULE = ("picked[n] = logprobs[n, y[n]]: the entry at row n, column y[n] gets dpicked[n]; every other "
              "entry of logprobs was not used and gets 0.")
_BROADCAST = ("A variable that the forward pass broadcast, used again along an axis it does not have (a (N, 1) "
              "column used in every entry of its row, a (1, H) row used by every example), collects the "
              "gradients of all its uses: their sum. A gradient always has the shape of its variable.")
_BROADCAST_RULE = ("When a = b * c with c of shape (N, 1) and b of shape (N, K): dc = (b * da) summed over axis 1, "
                   "keepdims, so that dc is (N, 1) like c.")
_TWO_PATHS = ("A variable used by two later lines gets two contributions: the chain rule adds the gradient "
              "through each use. Compute both, then add them.")
_BN_GROUP = ("Batch norm in primitive steps: the mean and the variance are (1, H) rows used by every example, "
             "and diff is used twice (by diff2 and by h_hat).")
_ninja_mistakes = [
    Mistake("dlogprobs is N times too large: the 1/N of the mean over the batch is missing.",
            _m("dlogprobs", lambda r, v, c: r["dlogprobs"] * len(c["y"])), concept=_CE_GROUP + " " + _MEAN_RULE,
            rule=_MEAN_RULE + " " + _PICK_RULE),
    Mistake("dlogprobs has the wrong sign: the loss is MINUS the mean of the picked log-probabilities, so raising "
            "a picked log-probability lowers the loss.",
            _m("dlogprobs", lambda r, v, c: -r["dlogprobs"]), concept=_CE_GROUP + " " + _MEAN_RULE,
            rule=_MEAN_RULE + " " + _PICK_RULE),
    Mistake("dpicked is N times too large: the 1/N of the mean over the batch is missing.",
            _m("dpicked", lambda r, v, c: r["dpicked"] * len(c["y"])), concept=_CE_GROUP + " " + _MEAN_RULE,
            rule=_MEAN_RULE),
    Mistake("dprobs multiplies by probs where the local derivative of log divides by it.",
            _m("dprobs", lambda r, v, c: r["dlogprobs"] * v["probs"]), concept=_CE_GROUP,
            rule="logprobs = log(probs): d logprobs / d probs = 1 / probs, element by element."),
    Mistake("dcounts_sum_inv has the shape of counts, not (N, 1): counts_sum_inv was broadcast along each row, "
            "and its gradient was not summed back over the row (axis 1).",
            _m("dcounts_sum_inv", lambda r, v, c: v["counts"] * r["dprobs"]), concept=_BROADCAST,
            rule=_BROADCAST_RULE),
    Mistake("dcounts misses the path through counts_sum: counts is used twice (in probs directly, and in "
            "counts_sum), and only one contribution is there.",
            _m("dcounts", lambda r, v, c: v["counts_sum_inv"] * r["dprobs"]), concept=_TWO_PATHS,
            rule="counts_sum = counts.sum(axis=1, keepdims=True): every counts[n, k] gets dcounts_sum[n] through "
                 "it (the sum's local derivative is 1, copied along the row)."),
    Mistake("dlogit_max has shape (N, K), not (N, 1): logit_max was broadcast along each row, and its gradient "
            "was not summed back over the row (axis 1).",
            _m("dlogit_max", lambda r, v, c: -r["dshifted"]), concept=_BROADCAST, rule=_BROADCAST_RULE),
    Mistake("dh_bn uses 1 - h as the slope of tanh: the derivative of tanh is 1 minus the SQUARE of its output.",
            _m("dh_bn", lambda r, v, c: (1 - v["h"]) * r["dh"]),
            concept="h = tanh(h_bn), element by element: dh_bn is dh times the slope of tanh at h_bn, written "
                    "with the output h that the forward pass kept.",
            rule="d tanh(a) / da = 1 - tanh(a)^2 (differentiate sinh/cosh, or use tanh' = 1 - tanh^2)."),
    Mistake("dW2 is transposed: a gradient has the shape of its variable, (H, K) like W2.",
            _m("dW2", lambda r, v, c: r["dW2"].T),
            concept="logits[n, k] = sum_j h[n, j] W2[j, k] + b2[k]: W2[j, k] is used once per example n. Write "
                    "dW2[j, k] as a sum over n, then find the matrix product.",
            rule="d logits[n, k] / d W2[j, k] = h[n, j]: dW2[j, k] = sum_n h[n, j] dlogits[n, k]."),
    Mistake("db2 was not summed over the batch: b2 is added to every row, so it collects the gradient of every "
            "example.", _m("db2", lambda r, v, c: r["dlogits"]), concept=_BROADCAST,
            rule="logits = h @ W2 + b2 with b2 (K,): db2[k] = sum over n of dlogits[n, k]."),
    Mistake("dbeta was not summed over the batch: beta is added to every example, so it collects the gradient "
            "of every row.", _m("dbeta", lambda r, v, c: r["dh_bn"]), concept=_BROADCAST,
            rule="h_bn = gamma * h_hat + beta with beta (H,): dbeta[j] = sum over n of dh_bn[n, j]."),
    Mistake("dgamma was not summed over the batch: gamma scales every example, so it collects the gradient of "
            "every row.", _m("dgamma", lambda r, v, c: r["dh_bn"] * v["h_hat"]), concept=_BROADCAST,
            rule="h_bn = gamma * h_hat + beta: dgamma[j] = sum over n of dh_bn[n, j] h_hat[n, j]."),
    Mistake("dinv_std was not summed over the batch: inv_std is a (1, H) row used by every example.",
            _m("dinv_std", lambda r, v, c: v["diff"] * r["dh_hat"]), concept=_BN_GROUP + " " + _BROADCAST,
            rule=_BROADCAST_RULE.replace("(N, 1)", "(1, H)").replace("axis 1", "axis 0")
            .replace("(N, K)", "(N, H)")),
    Mistake("dvar_eps has the wrong sign: a larger variance makes inv_std SMALLER.",
            _m("dvar_eps", lambda r, v, c: -r["dvar_eps"]), concept=_BN_GROUP,
            rule="inv_std = var_eps ** -0.5: d inv_std / d var_eps = -0.5 var_eps ** -1.5 (negative)."),
    Mistake("ddiff2 divides by N - 1 where the forward pass divides by N: var is the biased variance (the mean of "
            "diff2 over the batch).",
            _m("ddiff2", lambda r, v, c: r["ddiff2"] * len(c["y"]) / (len(c["y"]) - 1)),
            concept=_BN_GROUP + " Differentiate the function the forward pass computed: var = diff2.mean(axis=0).",
            rule="var[j] = (1/N) sum_n diff2[n, j]: d var[j] / d diff2[n, j] = 1/N for each n."),
    Mistake("ddiff misses the path through the variance: diff is used twice (by h_hat and by diff2), and only "
            "the contribution through h_hat is there.",
            _m("ddiff", lambda r, v, c: v["inv_std"] * r["dh_hat"]), concept=_TWO_PATHS + " " + _BN_GROUP,
            rule="diff2 = diff ** 2: d diff2 / d diff = 2 diff. Add that path's contribution to the one through "
                 "h_hat."),
    Mistake("dmu has the wrong sign: diff = h_pre - mu, so raising mu lowers every diff of its column.",
            _m("dmu", lambda r, v, c: -r["dmu"]), concept=_BN_GROUP + " " + _BROADCAST,
            rule="diff = h_pre - mu: d diff / d mu = -1; mu is (1, H): sum over the batch."),
    Mistake("dh_pre misses the path through the mean: h_pre is used twice (by diff directly, and by mu), and only "
            "the direct contribution is there.",
            _m("dh_pre", lambda r, v, c: r["ddiff"]), concept=_TWO_PATHS + " " + _BN_GROUP,
            rule="mu = h_pre.mean(axis=0, keepdims=True): every h_pre[n, j] gets dmu[j] / N through it."),
    Mistake("db1 was not summed over the batch: b1 is added to every row, so it collects the gradient of every "
            "example.", _m("db1", lambda r, v, c: r["dh_pre"]), concept=_BROADCAST,
            rule="h_pre = x @ W1 + b1 with b1 (H,): db1[j] = sum over n of dh_pre[n, j]."),
    Mistake("dW1 is transposed: a gradient has the shape of its variable, (D, H) like W1.",
            _m("dW1", lambda r, v, c: r["dW1"].T),
            concept="h_pre[n, j] = sum_i x[n, i] W1[i, j] + b1[j]: W1[i, j] is used once per example n.",
            rule="d h_pre[n, j] / d W1[i, j] = x[n, i]: dW1[i, j] = sum_n x[n, i] dh_pre[n, j]."),
]

_ce_mistakes = [
    Mistake("dlogits is the softmax alone (over N): the one-hot of the labels is not subtracted, so the right "
            "class's logit is pushed down like the others.",
            lambda c: {"dlogits": _ce_ref(c)["dlogits"] + _onehot(c, c["logits"].shape[1]) / len(c["y"])},
            concept="Your step-by-step gradients add up to two contributions to dlogits: one through every "
                    "probability, and one through the picked log-probability of the right class only.",
            rule="L_n = -z[n, y_n] + log sum_j exp(z[n, j]): the first term differentiates to -1 at k = y_n only."),
    Mistake("dlogits is N times too large: the 1/N of the mean over the batch is missing.",
            lambda c: {"dlogits": _ce_ref(c)["dlogits"] * len(c["y"])},
            concept="The loss is the MEAN over the batch: each example's loss is weighed by 1/N.",
            rule="L = (1/N) sum_n L_n: every row of dlogits carries the factor 1/N."),
    Mistake("dlogits has the wrong sign: raising the right class's logit must lower the loss.",
            lambda c: {"dlogits": -_ce_ref(c)["dlogits"]},
            concept="The loss is MINUS the log-probability of the right class.",
            rule="d L_n / d z[n, k] is positive for the wrong classes and negative for the right one."),
]


def _bn_parts(c):
    g = c["dh_bn"] * c["gamma"]
    return g, c["h_hat"], c["inv_std"], len(g)


def _bn_dx(c, mean=1.0, var=1.0, var_div=None, inv=True, g=None):
    g0, xh, s, N = _bn_parts(c)
    g = g0 if g is None else g
    core = g - mean * g.mean(axis=0, keepdims=True) - var * xh * (g * xh).sum(axis=0, keepdims=True) / (
        N if var_div is None else var_div)
    return {"dh_pre": s * core if inv else core}


_BN_FUSED = ("Add up your step-by-step batch-norm gradients: h_pre reaches the loss directly through diff, through "
             "the mean mu and through the variance var. Express each term with h_hat, gamma and inv_std only.")
_BN_RULE = ("With g = dh_bn * gamma: the direct path gives inv_std * g, the path through the mean subtracts its "
            "mean over the batch, the path through the variance subtracts h_hat times a mean over the batch.")
_bn_mistakes = [
    Mistake("dh_pre misses the path through the mean: it does not sum to 0 over the batch for each feature.",
            lambda c: _bn_dx(c, mean=0), concept=_BN_FUSED, rule=_BN_RULE),
    Mistake("dh_pre misses the path through the variance.", lambda c: _bn_dx(c, var=0),
            concept=_BN_FUSED, rule=_BN_RULE),
    Mistake("dh_pre used the unbiased variance (divided by N - 1) where the forward pass uses the biased one "
            "(divided by N).", lambda c: _bn_dx(c, var_div=len(c["dh_bn"]) - 1), concept=_BN_FUSED, rule=_BN_RULE),
    Mistake("dh_pre ignores gamma: gamma scales every h_hat on its way to h_bn.",
            lambda c: _bn_dx(c, g=c["dh_bn"]), concept=_BN_FUSED, rule=_BN_RULE),
    Mistake("dh_pre is not scaled by inv_std: every path from h_pre to h_hat goes through the division by the "
            "standard deviation.", lambda c: _bn_dx(c, inv=False), concept=_BN_FUSED, rule=_BN_RULE),
]

_LADDERS = {
    "backward_by_hand": Ladder(
        concept="Go back through the forward pass one line at a time, from the loss to W1. For each line "
                "`out = f(a, b)`: da += (local derivative of f in a) * dout. A variable used by two lines gets "
                "two contributions (add them); a variable broadcast along an axis (a (N, 1) column, a (1, H) "
                "row, a bias) gets the sum of its uses over that axis, so that its gradient has its shape.",
        rule="The local rules, element by element: d(-mean)/d picked[n] = -1/N; d log(p)/dp = 1/p; d(a*b)/da = b; "
             "d(b**-1)/db = -b**-2; d sum/d term = 1; d exp(a)/da = exp(a); d(a - b)/db = -1; d max/d a = 1 at "
             "the row's maximum, 0 elsewhere; for a @ B: dA = dout B^T, dB = A^T dout; d tanh(a)/da = 1 - "
             "tanh(a)^2; d(a**-0.5)/da = -0.5 a**-1.5; d mean over N / d term = 1/N; d(a**2)/da = 2a.",
        formula="dlogprobs: -1/N at (n, y[n]), 0 elsewhere; dprobs = dlogprobs / probs; dcounts_sum_inv = (counts "
                "* dprobs).sum(1, keepdims); dcounts_sum = -counts_sum**-2 * dcounts_sum_inv; dcounts = "
                "counts_sum_inv * dprobs + dcounts_sum; dshifted = counts * dcounts; dlogit_max = "
                "-dshifted.sum(1, keepdims); dlogits = dshifted + onehot(argmax) * dlogit_max; dh = dlogits @ "
                "W2.T; dW2 = h.T @ dlogits; db2 = dlogits.sum(0); dh_bn = (1 - h**2) * dh; dgamma = (h_hat * "
                "dh_bn).sum(0); dbeta = dh_bn.sum(0); dh_hat = gamma * dh_bn; dinv_std = (diff * dh_hat).sum(0, "
                "keepdims); dvar_eps = -0.5 * var_eps**-1.5 * dinv_std; dvar = dvar_eps; ddiff2 = dvar / N "
                "(broadcast); ddiff = inv_std * dh_hat + 2 * diff * ddiff2; dmu = -ddiff.sum(0, keepdims); "
                "dh_pre = ddiff + dmu / N; dW1 = x.T @ dh_pre; db1 = dh_pre.sum(0)"),
    "cross_entropy_backward": Ladder(
        concept="Put your step-by-step gradients from logprobs back to logits together into one expression of "
                "probs and the labels: most terms cancel. The max's contribution is zero (why?).",
        rule="For one row: L_n = -z[n, y_n] + log sum_j exp(z[n, j]); d/dz[n, k] of the second term is the "
             "softmax probability p[n, k]; the loss is the mean over the N rows.",
        formula="dlogits = (softmax(logits) - onehot(y)) / N"),
    "batchnorm_backward_fused": Ladder(
        concept=_BN_FUSED, rule=_BN_RULE,
        formula="g = dh_bn * gamma; dh_pre = inv_std * (g - g.mean(0, keepdims) - h_hat * (g * h_hat).mean(0, "
                "keepdims))"),
}


def _checks():
    spec = [
        ("backward_by_hand", GRADS, CALLS["backward_by_hand"], _ninja_ref, _ninja_mistakes, _ninja_visible, (4, 6),
         dict(diagnose=_first_wrong, batch_size=lambda c: len(c["y"]))),
        ("cross_entropy_backward", ("dlogits",), CALLS["cross_entropy_backward"], _ce_ref, _ce_mistakes,
         _ce_visible, (1, 2), dict(batch_size=lambda c: len(c["y"]))),
        ("batchnorm_backward_fused", ("dh_pre",), CALLS["batchnorm_backward_fused"], _bn_fused_ref, _bn_mistakes,
         _bn_visible, (2, 2)),
    ]
    out = visible_and_hidden(A, spec, _LADDERS)
    for c in out:
        c.compare_fn = _row_compare       # "exact" below 1e-12 abs: dlogit_max is 0 up to rounding
    return out


CHECKS = _checks()


# -- the learner's table ---------------------------------------------------------------------------------------
def compare(grads, tensors):
    """Print one row per gradient, in backward order: exact, approximate or wrong against Tensor autograd.

    grads: your dict "d<name>" -> array (backward_by_hand's result); tensors: the forward's name -> Tensor after
    ``tensors["loss"].backward()``. Returns the rows as (name, shape, verdict, max abs difference).
    """
    if not isinstance(grads, dict):
        raise TypeError(f"compare(grads, tensors): grads must be the dict backward_by_hand returns, got "
                        f"{type(grads).__name__}")
    if not isinstance(tensors, dict) or "loss" not in tensors:
        raise TypeError("compare(grads, tensors): tensors must be the dict forward(...) returned (with 'loss'), "
                        "after tensors['loss'].backward()")
    if not np.any(tensors["loss"].grad):
        raise ValueError("compare: tensors['loss'].grad is 0: call tensors['loss'].backward() first")
    rows, first = [], None
    print(f"{'gradient':<16}{'shape':<12}{'verdict':<13}max abs diff   (against Tensor autograd)")
    for k in GRADS:
        want = tensors[k[1:]].grad
        got = grads.get(k)
        kind, d = row_verdict(want, got)
        shape = "-" if got is None else str(tuple(np.shape(got)))
        note = ""
        if kind == "wrong":
            s = _shape_symptom(k, want, got)
            if s is None:
                rep = _gc_compare(k, want, got, tol=APPROX, batch_size=len(tensors["picked"].data))
                s = rep.message.split(". ", 1)[1] if ". " in rep.message else ""
                s = s.split("worst element", 1)[0] if "worst element" in s else s
            note = s
        if kind in ("wrong", "missing") and first is None:
            first = k
            mark = "<- first"
        else:
            mark = ""
        diff = "" if d is None else f"{d:.1e}"
        print(f"{k:<16}{shape:<12}{kind:<13}{diff:<14} {mark}" + (f" {note}" if note and mark else ""))
        rows.append((k, shape, kind, d))
    n_ok = sum(r[2] in ("exact", "approximate") for r in rows)
    print(f"{n_ok} of {len(rows)} gradients agree with autograd.")
    if first is not None:
        print(f"Start with {first} (its variable is used in `{FORWARD_LINE[first[1:]]}`): every gradient after "
              f"it is computed from it, so a wrong row further down may only inherit its error.")
    return rows
