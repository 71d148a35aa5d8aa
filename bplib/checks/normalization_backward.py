"""Checks for the normalization_backward assignment.

    batchnorm_backward(dout, cache) -> (dx, dgamma, dbeta)
        dout: (N, D) or (N, C, H, W), cache from bplib.layers.batchnorm_forward(x, gamma, beta, eps)
    layernorm_backward(dout, cache) -> (dx, dgamma, dbeta)
        dout: (..., D), cache from bplib.layers.layernorm_forward(x, gamma, beta, eps)
    dropout_backward(dout, mask, p) -> dx
        dout, mask: the same shape (mask: bool, True where kept), p: the probability of dropping

The right answers come from bplib.layers (the course's reference). Each known mistake is a model of one
wrong answer (the reference's pieces with that one mistake put in); none of them gives the right answer on
the cases where it is checked.
"""
import numpy as np

from .. import layers
from .calls.normalization_backward import CALLS, bn_cache, ln_cache
from .core import Ladder, Mistake, visible_and_hidden

A = "normalization_backward"


# -- batch norm --------------------------------------------------------------------------------
def _bn_case(rng, shape, name=None, scale=1.0, shift=0.0, eps=1e-5):
    F = shape[1]
    return dict(name=name or f"x of shape {shape}", x=rng.standard_normal(shape) * scale + shift,
                gamma=rng.uniform(0.5, 2.0, F) * rng.choice([-1.0, 1.0], F), beta=rng.standard_normal(F),
                dout=rng.standard_normal(shape), eps=eps)


def _bn_visible(rng):
    x = np.array([[1.0, 0.0], [2.0, 4.0], [3.0, -1.0], [6.0, 1.0]])
    return [dict(name="N=4, D=2, small numbers, gamma = [2, -0.5]", x=x, gamma=np.array([2.0, -0.5]),
                 beta=np.array([0.0, 1.0]), dout=np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 2.0], [0.5, 0.0]]),
                 eps=1e-5),
            _bn_case(rng, (6, 5), scale=2.0, shift=1.0),
            _bn_case(rng, (2, 3, 2, 2), "images: x of shape (N, C, H, W) = (2, 3, 2, 2), one gamma per channel")]


def _bn_parts(c):
    """The reference's pieces: x_hat, g = dL/dx_hat, inv_std (broadcastable), the axes, m, N."""
    k = bn_cache(c)
    x, dout = c["x"], c["dout"]
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    m = x.size // x.shape[1]
    return dict(x_hat=k["x_hat"], g=dout * c["gamma"].reshape(shape), inv_std=k["inv_std"].reshape(shape),
                axes=axes, m=m, N=x.shape[0], dout=dout)


def _norm_dx(p, mean_path=1.0, var_path=1.0, var_div=None, mean_div=None, inv_std=True, g=None):
    """dx of a normalisation with switches: the paths through the mean and the variance scaled (0 drops one,
    -1 flips its sign), the divisors of the two means replaced (m - 1, N), the factor inv_std left out."""
    axes, m = p["axes"], p["m"]
    g = p["g"] if g is None else g
    g_mean = g.sum(axis=axes, keepdims=True) / (m if mean_div is None else mean_div)
    gx_mean = (g * p["x_hat"]).sum(axis=axes, keepdims=True) / (m if var_div is None else var_div)
    core = g - mean_path * g_mean - var_path * p["x_hat"] * gx_mean
    return p["inv_std"] * core if inv_std else core


def _bn_ref(c):
    dx, dgamma, dbeta = layers.batchnorm_backward(c["dout"], bn_cache(c))
    return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}


_MEAN = ("The batch mean mu is computed from every example of the batch: when x[n, d] changes, mu[d] changes "
         "too, and with it every x_hat[k, d] of that column. That is a second path from x to the loss, besides "
         "the direct one; the chain rule adds the paths.")
_VAR = ("The batch variance var is computed from every example of the batch: when x[n, d] changes, var[d] "
        "changes, and with it the scale 1/sqrt(var + eps) that every x_hat[k, d] of that column is divided by. "
        "That is a path from x to the loss of its own; the chain rule adds it to the others.")
_PATHS_RULE = ("x_hat = (x - mu) * inv_std with inv_std = 1/sqrt(var + eps). d mu / d x[n] = 1/m, and "
               "d var / d x[n] = 2 (x[n] - mu) / m: the forward pass uses the biased variance (divides by m). "
               "Find dL/dvar and dL/dmu as sums over the m values of the feature, then add the paths.")
_SUMS = ("gamma[d] and beta[d] are used once for every value of feature d: every example of the batch and, for "
         "images (N, C, H, W), every pixel of it. The chain rule adds up the gradient of each use.")
_SUMS_RULE = ("d out / d beta[c] = 1 and d out / d gamma[c] = x_hat at every position (n, c, h, w) of channel c: "
              "sum over every axis except the channel axis 1.")
_bn_mistakes = [
    Mistake("dx misses the path through the mean: it does not sum to 0 over the batch for each feature (a shift "
            "of a whole column of x changes nothing after normalising, so it must not change the loss).",
            lambda c: {"dx": _norm_dx(_bn_parts(c), mean_path=0)}, concept=_MEAN, rule=_PATHS_RULE),
    Mistake("dx misses the path through the variance: scaling a whole column of x changes nothing after "
            "normalising, but your dx says it would.",
            lambda c: {"dx": _norm_dx(_bn_parts(c), var_path=0)}, concept=_VAR, rule=_PATHS_RULE),
    Mistake("dx treats the batch's mean and variance as constants: both paths through them are missing, only the "
            "direct one is there.", lambda c: {"dx": _norm_dx(_bn_parts(c), mean_path=0, var_path=0)},
            concept=_MEAN + " The same holds for the variance.", rule=_PATHS_RULE),
    Mistake("dx used the unbiased variance (divided by m - 1) where the forward pass uses the biased one "
            "(divided by m): the path through the variance is m/(m-1) times too strong.",
            lambda c: {"dx": _norm_dx(_bn_parts(c), var_div=_bn_parts(c)["m"] - 1)},
            concept="Differentiate the function the forward pass computed. batchnorm_forward normalises with the "
                    "biased variance of the batch, the mean of the squared deviations (the unbiased estimate "
                    "is only kept for the running statistics).",
            rule=_PATHS_RULE),
    Mistake("The path through the variance has the wrong sign: a larger variance divides x - mu by a larger "
            "number, so it pulls x_hat toward 0.",
            lambda c: {"dx": _norm_dx(_bn_parts(c), var_path=-1)}, concept=_VAR,
            rule="d inv_std / d var = -inv_std^3 / 2: negative. Keep that minus through the rest of the chain."),
    Mistake("The path through the mean is m times too large (m = values per feature): the mean's 1/m is "
            "missing from it.",
            lambda c: {"dx": _norm_dx(_bn_parts(c), mean_div=1)}, concept=_MEAN,
            rule="mu[d] is the MEAN of m values: d mu[d] / d x[n, d] = 1/m, for each of the m values."),
    Mistake("dx is wrong only for images (N, C, H, W): the means over the batch were divided by N, but a channel "
            "has N*H*W values (every pixel of every example).",
            lambda c: {"dx": _norm_dx(_bn_parts(c), mean_div=len(c["x"]), var_div=len(c["x"]))}
            if c["x"].ndim == 4 else {},
            concept="For images, batch norm has one mean and one variance per channel, taken over every pixel of "
                    "every example: m = N*H*W values per channel.",
            rule=_PATHS_RULE),
    Mistake("dx is not scaled by the batch's spread: the factor that dividing by the standard deviation "
            "puts on every path is missing.", lambda c: {"dx": _norm_dx(_bn_parts(c), inv_std=False)},
            concept="x_hat is x - mu divided by sqrt(var + eps): every path from x to x_hat goes through that "
                    "division, so every term of dx carries its factor.",
            rule="d x_hat[n] / d x[n] = inv_std (holding mu and var fixed); the two other paths carry it too."),
    Mistake("dx ignores gamma: it would not change if gamma did, but gamma scales every x_hat on its way to "
            "the output.", lambda c: {"dx": _norm_dx(_bn_parts(c), g=c["dout"])},
            concept="out = gamma * x_hat + beta: the chain rule goes from out to x_hat through gamma first.",
            rule="d out[n, d] / d x_hat[n, d] = gamma[d], so dL/dx_hat = dout * gamma (broadcast per feature)."),
    Mistake("dgamma still has one value per pixel (shape (C, H, W)): it was summed over the batch only, not over "
            "the spatial axes.", lambda c: {"dgamma": (c["dout"] * _bn_parts(c)["x_hat"]).sum(axis=0)},
            concept=_SUMS, rule=_SUMS_RULE),
    Mistake("dbeta still has one value per pixel (shape (C, H, W)): it was summed over the batch only, not over "
            "the spatial axes.", lambda c: {"dbeta": c["dout"].sum(axis=0)}, concept=_SUMS, rule=_SUMS_RULE),
    Mistake("dbeta was summed over the features (axis 1) instead of over the batch: it has one value per "
            "example, not one per feature.", lambda c: {"dbeta": c["dout"].sum(axis=1)},
            concept=_SUMS + " A gradient has the shape of its variable: one value per feature, like beta.",
            rule=_SUMS_RULE),
    Mistake("dgamma is the same as dbeta: it ignores what gamma multiplies, so it would not change if the "
            "inputs did.", lambda c: {"dgamma": c["dout"].sum(axis=_bn_parts(c)["axes"])},
            concept="out = gamma * x_hat + beta: gamma's local derivative is what it multiplies.",
            rule=_SUMS_RULE),
]


# -- layer norm -------------------------------------------------------------------------------------
def _ln_case(rng, shape, name=None, scale=1.0, shift=0.0, eps=1e-5):
    D = shape[-1]
    return dict(name=name or f"x of shape {shape}", x=rng.standard_normal(shape) * scale + shift,
                gamma=rng.uniform(0.5, 2.0, D) * rng.choice([-1.0, 1.0], D), beta=rng.standard_normal(D),
                dout=rng.standard_normal(shape), eps=eps)


def _ln_visible(rng):
    x = np.array([[1.0, 2.0, 6.0], [0.0, -3.0, 1.0]])
    return [dict(name="N=2, D=3, small numbers, gamma = [1, 2, -1]", x=x, gamma=np.array([1.0, 2.0, -1.0]),
                 beta=np.zeros(3), dout=np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]]), eps=1e-5),
            _ln_case(rng, (5, 4), scale=3.0, shift=-1.0),
            _ln_case(rng, (3, 4, 6), "a sequence: x of shape (N, T, D) = (3, 4, 6), one gamma per feature")]


def _ln_parts(c):
    """The reference's pieces for layer norm: the statistics are per row (the last axis), m = D."""
    k = ln_cache(c)
    return dict(x_hat=k["x_hat"], g=c["dout"] * c["gamma"], inv_std=k["inv_std"], axes=(-1,),
                m=c["x"].shape[-1], dout=c["dout"])


def _ln_ref(c):
    dx, dgamma, dbeta = layers.layernorm_backward(c["dout"], ln_cache(c))
    return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def _ln_over_batch(c):
    """The means of dx taken down the batch (axis 0) instead of along each row."""
    p = _ln_parts(c)
    p.update(axes=(0,), m=c["x"].shape[0])
    return {"dx": _norm_dx(p)}


_LN_ROW = ("Layer norm takes its mean and variance over the D features of ONE example (the last axis), not over "
           "the batch: x[n, d] changes only the statistics of its own row n, so only that row's x_hat feel it.")
_LN_SUMS = ("gamma[d] and beta[d] are shared by every example, and in a sequence (N, T, D) by every time step: "
            "add up the gradient of each use, over every axis but the last.")
_ln_mistakes = [
    Mistake("dx misses the path through the mean: each row of dx should sum to 0 (shifting one example's "
            "features together changes nothing after normalising).",
            lambda c: {"dx": _norm_dx(_ln_parts(c), mean_path=0)},
            concept="The mean of a row is computed from every feature of that example: when x[n, d] changes, the "
                    "mean of row n changes, and with it every x_hat[n, k] of the row. " + _LN_ROW,
            rule=_PATHS_RULE.replace("the m values of the feature", "the D features of the row")),
    Mistake("dx misses the path through the variance: scaling one example's features together changes nothing "
            "after normalising, but your dx says it would.",
            lambda c: {"dx": _norm_dx(_ln_parts(c), var_path=0)},
            concept="The variance of a row is computed from every feature of that example: when x[n, d] changes, "
                    "the scale of the whole row changes. " + _LN_ROW,
            rule=_PATHS_RULE.replace("the m values of the feature", "the D features of the row")),
    Mistake("dx was computed with the statistics over the batch axis (axis 0), as in batch norm: layer norm "
            "normalises each example over its own features (the last axis).", _ln_over_batch,
            concept=_LN_ROW, rule="mean and var along axis -1 (keepdims), m = D, the number of features."),
    Mistake("dx used the unbiased variance (divided by D - 1) where the forward pass uses the biased one "
            "(divided by D).", lambda c: {"dx": _norm_dx(_ln_parts(c), var_div=c["x"].shape[-1] - 1)},
            concept="Differentiate the function the forward pass computed: layernorm_forward uses the biased "
                    "variance of each row, the mean of the squared deviations.",
            rule=_PATHS_RULE.replace("the m values of the feature", "the D features of the row")),
    Mistake("dgamma still has one value per time step (shape (T, D)): it was summed over the batch axis only, "
            "not over every axis but the last.",
            lambda c: {"dgamma": (c["dout"] * ln_cache(c)["x_hat"]).sum(axis=0)} if c["x"].ndim > 2 else {},
            concept=_LN_SUMS, rule="Sum over every axis except the last (the features)."),
    Mistake("dbeta still has one value per time step (shape (T, D)): it was summed over the batch axis only, "
            "not over every axis but the last.",
            lambda c: {"dbeta": c["dout"].sum(axis=0)} if c["x"].ndim > 2 else {},
            concept=_LN_SUMS, rule="Sum over every axis except the last (the features)."),
    Mistake("dgamma or dbeta was summed over the features (the last axis) instead of over the examples: one "
            "value per example, not one per feature.",
            lambda c: {"dgamma": (c["dout"] * ln_cache(c)["x_hat"]).sum(axis=-1), "dbeta": c["dout"].sum(axis=-1)},
            concept=_LN_SUMS + " A gradient has the shape of its variable: (D,), like gamma.",
            rule="Sum over every axis except the last (the features)."),
    Mistake("dx ignores gamma: it would not change if gamma did, but gamma scales every x_hat on its way to "
            "the output.",
            lambda c: {"dx": _norm_dx(_ln_parts(c), g=c["dout"])},
            concept="out = gamma * x_hat + beta: the chain rule goes from out to x_hat through gamma first.",
            rule="d out[n, d] / d x_hat[n, d] = gamma[d], so dL/dx_hat = dout * gamma."),
]


# -- dropout ------------------------------------------------------------------------------------------
def _drop_case(rng, shape, p, name=None):
    return dict(name=name or f"shape {shape}, p={p}", dout=rng.standard_normal(shape),
                mask=rng.random(shape) >= p, p=p)


def _drop_visible(rng):
    mask = np.array([[True, False, True, True], [False, True, True, False]])
    return [dict(name="2x4, p=0.25 (a quarter of the values dropped)", dout=np.array(
                [[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, 0.5, 8.0]]), mask=mask, p=0.25),
            _drop_case(rng, (6, 5), 0.6)]


_drop_ref = lambda c: {"dx": layers.dropout_backward(c["dout"], c["mask"], c["p"])}     # noqa: E731
_DROP = ("Inverted dropout multiplies each value by a number fixed in the forward pass: 0 where the value was "
         "dropped, and where it was kept, the factor that keeps the expected output equal to x.")
_DROP_P = "p is the probability of DROPPING a value; a value is kept with probability 1 - p."
_drop_mistakes = [
    Mistake("dx is not rescaled: the kept values' gradient misses the factor the forward pass multiplied them "
            "by (so that the expected output equals x).", lambda c: {"dx": c["dout"] * c["mask"]},
            concept=_DROP, rule="out = x * mask / (1 - p): d out[i] / d x[i] is mask[i] / (1 - p)."),
    Mistake("dx is scaled with p where the keep probability 1 - p is meant (p is the probability of dropping).",
            lambda c: {"dx": c["dout"] * c["mask"] / c["p"]}, concept=_DROP + " " + _DROP_P,
            rule="out = x * mask / (1 - p): d out[i] / d x[i] is mask[i] / (1 - p)."),
    Mistake("dx multiplies by the keep probability where the forward pass divided by it.",
            lambda c: {"dx": c["dout"] * c["mask"] * (1 - c["p"])}, concept=_DROP,
            rule="out = x * mask / (1 - p): d out[i] / d x[i] is mask[i] / (1 - p)."),
    Mistake("dx lets the gradient through where the value was dropped: the mask is missing.",
            lambda c: {"dx": c["dout"] / (1 - c["p"])},
            concept="A dropped value was set to 0 whatever x was: a small change of x there changes nothing.",
            rule="d out[i] / d x[i] is 0 where mask[i] is False."),
    Mistake("dx is blocked where the value was kept and let through where it was dropped: the mask is the wrong "
            "way round (True means kept).", lambda c: {"dx": c["dout"] * ~c["mask"] / (1 - c["p"])},
            concept="The mask says which values were KEPT (True) in the forward pass; the gradient flows exactly "
                    "where the value did.",
            rule="d out[i] / d x[i] is 0 where mask[i] is False, and the same nonzero factor where it is True."),
]


_LADDERS = {
    "batchnorm_backward": Ladder(
        concept="x[n, d] reaches the loss by three paths: directly through its own x_hat[n, d]; through the "
                "batch mean mu[d], which every x_hat of the column uses; and through the batch variance var[d], "
                "likewise. The chain rule adds the three. gamma and beta are used once per value of their "
                "feature (every example, and for images every pixel): their gradients add up over those uses.",
        rule="With g = dL/dx_hat (dout times gamma, per feature) and x_hat = (x - mu) * inv_std: "
             "d mu / d x[n] = 1/m, d var / d x[n] = 2 (x[n] - mu) / m (the biased variance, m values per "
             "feature), d inv_std / d var = -inv_std^3 / 2. Write dL/dvar and dL/dmu as sums over the m values, "
             "then add the direct path and the two others; replace (x - mu) by x_hat / inv_std and simplify.",
        formula="g = dout * gamma (broadcast per feature); dx = inv_std * (g - mean of g - x_hat * mean of "
                "(g * x_hat)), both means over every axis but 1; dgamma = (dout * x_hat) summed and "
                "dbeta = dout summed over those same axes"),
    "layernorm_backward": Ladder(
        concept="Layer norm is batch norm turned sideways: each example is normalised over its own D features "
                "(the last axis), so the paths through the mean and the variance stay inside one row. gamma and "
                "beta are shared by every example (and time step): their gradients add up over every axis but "
                "the last.",
        rule="The same three paths as batch norm, with the statistics of row n and m = D: d mu[n] / d x[n, d] = "
             "1/D, d var[n] / d x[n, d] = 2 (x[n, d] - mu[n]) / D (biased). Sum over the D features of the row "
             "for dL/dvar and dL/dmu.",
        formula="g = dout * gamma; dx = inv_std * (g - g.mean(axis=-1, keepdims=True) - x_hat * (g * x_hat)"
                ".mean(axis=-1, keepdims=True)); dgamma = (dout * x_hat) and dbeta = dout, each summed over every "
                "axis but the last"),
    "dropout_backward": Ladder(
        concept=_DROP + " The backward of multiplying by a fixed number is multiplying by the same number.",
        rule="out = x * mask / (1 - p), the mask fixed in the forward pass: d out[i] / d x[i] = mask[i] / (1 - p). "
             + _DROP_P,
        formula="dx = dout * mask / (1 - p)"),
}


def _checks():
    spec = [
        ("batchnorm_backward", ("dx", "dgamma", "dbeta"), CALLS["batchnorm_backward"], _bn_ref, _bn_mistakes,
         _bn_visible, (3, 4)),
        ("layernorm_backward", ("dx", "dgamma", "dbeta"), CALLS["layernorm_backward"], _ln_ref, _ln_mistakes,
         _ln_visible, (2, 3)),
        ("dropout_backward", ("dx",), CALLS["dropout_backward"], _drop_ref, _drop_mistakes, _drop_visible, (1, 2)),
    ]
    return visible_and_hidden(A, spec, _LADDERS)


CHECKS = _checks()
