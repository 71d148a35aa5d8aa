"""Checks for the lstm_backward assignment.

    lstm_step_backward(dh, dc, cache, Wx) -> (dx, dh_prev, dc_prev, dWx, dWh, db)
        cache from bplib.layers.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
    lstm_backward(dh, cache) -> (dx, dh0, dWx, dWh, db)
        dh: (N, T, H), cache from bplib.layers.lstm_forward(x, h0, Wx, Wh, b)

The right answers come from bplib.layers (the course's reference). Each known mistake is a model of
one wrong answer, built from the reference's output with that one mistake put in: none of them can
give the right answer.
"""
import numpy as np

from .. import layers
from .calls.lstm_backward import CALLS, seq_cache, step_cache
from .core import Ladder, Mistake, visible_and_hidden

A = "lstm_backward"


def _params(rng, N, D, H, scale=1.0):
    return dict(Wx=rng.standard_normal((D, 4 * H)) * scale / np.sqrt(D),
                Wh=rng.standard_normal((H, 4 * H)) * scale / np.sqrt(H),
                b=rng.standard_normal(4 * H) * 0.5)


# -- one step ------------------------------------------------------------------------------
def _step_case(rng, N, D, H, name=None, scale=1.0):
    return dict(name=name or f"N={N}, D={D}, H={H}", x=rng.standard_normal((N, D)),
                h_prev=rng.standard_normal((N, H)), c_prev=rng.standard_normal((N, H)),
                dh=rng.standard_normal((N, H)), dc=rng.standard_normal((N, H)), **_params(rng, N, D, H, scale))


def _step_visible(rng):
    return [_step_case(rng, 2, 3, 4), _step_case(rng, 3, 2, 2)]


_STEP_OUT = ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db")


def _step_ref(c, dc=None):
    """The reference step backward; ``dc`` replaces the case's dc (to model a wrong cell gradient)."""
    dc = c["dc"] if dc is None else dc
    return dict(zip(_STEP_OUT, layers.lstm_step_backward(c["dh"], dc, step_cache(c), c["Wx"])))


def _blocks(c):
    """The reference's gradient at a (N, 4H) as its four gate blocks i, f, o, g, and the cache."""
    cache = step_cache(c)
    da = layers._lstm_step_da(c["dh"], c["dc"], cache)[0]
    return list(np.split(da, 4, axis=1)), cache


def _through_dense(c, blocks, cache):
    """The outputs that follow from a (wrong) gradient at a: a = x Wx + h_prev Wh + b, by the reference."""
    da = np.concatenate(blocks, axis=1)
    dx, dWx, db = layers.dense_backward(da, cache["x"], c["Wx"])
    dh_prev, dWh, _ = layers.dense_backward(da, cache["h_prev"], cache["Wh"])
    return dict(dx=dx, dh_prev=dh_prev, dWx=dWx, dWh=dWh, db=db)


def _dh_to_c(c):
    """What dh sends to the cell through h = o * tanh(c), and a wrong version with tanh's slope unsquared."""
    k = step_cache(c)
    return c["dh"] * k["o"] * (1 - k["tanh_c"] ** 2), c["dh"] * k["o"] * (1 - k["tanh_c"])


def _no_forget(c):
    return {"dc_prev": _step_ref(c)["dc_prev"] / step_cache(c)["f"]}


def _no_h_path(c):
    right, _ = _dh_to_c(c)
    out = _step_ref(c, dc=c["dc"] - right)
    del out["dc_prev"]             # dc_prev alone wrong is the next mistake's symptom
    return out


def _dc_prev_no_h_path(c):
    return {"dc_prev": c["dc"] * step_cache(c)["f"]}


def _tanh_c_unsquared(c):
    right, wrong = _dh_to_c(c)
    return _step_ref(c, dc=c["dc"] - right + wrong)


def _no_sigmoid_slope(c):
    (di, df, do, dg), k = _blocks(c)
    s = lambda v: v * (1 - v)      # noqa: E731
    return _through_dense(c, [di / s(k["i"]), df / s(k["f"]), do / s(k["o"]), dg], k)


def _gates_i_f_swapped(c):
    (di, df, do, dg), k = _blocks(c)
    return _through_dense(c, [df, di, do, dg], k)


def _g_tanh_unsquared(c):
    (di, df, do, dg), k = _blocks(c)
    return _through_dense(c, [di, df, do, dg / (1 + k["g"])], k)


def _g_as_sigmoid(c):
    (di, df, do, dg), k = _blocks(c)
    return _through_dense(c, [di, df, do, dg * k["g"] / (1 + k["g"])], k)


def _o_from_cell(c):
    (di, df, do, dg), k = _blocks(c)
    dc_total = _step_ref(c)["dc_prev"] / k["f"]
    return _through_dense(c, [di, df, dc_total * k["tanh_c"] * k["o"] * (1 - k["o"]), dg], k)


_step_mistakes = [
    Mistake("dc_prev is too large at every element, each by its own factor: the gradient reached c_prev "
            "without passing the forget gate that multiplies c_prev in the forward step.", _no_forget,
            concept="c_prev enters the step in one place only, the product f * c_prev inside c. Whatever "
                    "reaches c goes back to c_prev through that product.",
            rule="d c[n, j] / d c_prev[n, j] = f[n, j]."),
    Mistake("dc_prev and the gradients of the gates i, f and g ignore dh: the cell state also reaches the "
            "loss through h = o * tanh(c), and that path is missing.", _no_h_path,
            concept="c is used twice: it goes on to the next step (dc arrives from there) and it makes h "
                    "(dh arrives from there). A value used in two places collects the gradient of both uses.",
            rule="d h[n, j] / d c[n, j] = o[n, j] * tanh'(c[n, j]), and tanh'(u) = 1 - tanh(u)**2 (tanh(c) "
                 "is in the cache as tanh_c)."),
    Mistake("dc_prev ignores dh (the gates may be right): dc_prev must carry back everything that reached c, "
            "including what came through h.", _dc_prev_no_h_path,
            concept="The gradient at c that you pass back to c_prev is the same total that the gates i, f "
                    "and g used: both paths into c.",
            rule="dL/dc_prev[n, j] = (total dL/dc[n, j]) * d c[n, j] / d c_prev[n, j]."),
    Mistake("The part of the gradient that reaches c through h has a wrong slope of tanh: yours is not "
            "the same at c and at -c, as tanh's slope is, and it can exceed 1.", _tanh_c_unsquared,
            concept="tanh's slope at a point can be written with tanh's own value there, which the cache "
                    "holds as tanh_c.",
            rule="d tanh(u) / d u = 1 - tanh(u)**2: the square matters."),
    Mistake("The gradients of the gates i, f and o are too large, each element by its own factor of 4 or "
            "more: the gradient stopped at the gate's value and did not pass its sigmoid on to a.",
            _no_sigmoid_slope,
            concept="i, f and o are sigmoids of their blocks of a. To reach a, the gradient passes through "
                    "each sigmoid, which multiplies it by the sigmoid's slope (never above 1/4).",
            rule="d sigmoid(u) / d u = s * (1 - s), with s = sigmoid(u): the gate's own value from the cache."),
    Mistake("The first two quarters of the columns of dWx, dWh and db (the i and f gates) are swapped: "
            "the gates are stacked in the order i, f, o, g.", _gates_i_f_swapped,
            concept="a: (N, 4H) holds the four gates side by side, in the same order as the forward step "
                    "took them apart.",
            rule="Columns 0..H-1 of a belong to i, H..2H-1 to f, 2H..3H-1 to o, 3H..4H-1 to g."),
    Mistake("The last quarter of the columns of dWx, dWh and db (the candidate g) has a wrong slope of "
            "tanh: yours is not the same at g and at -g, as tanh's slope is.", _g_tanh_unsquared,
            concept="g = tanh(a_g): its slope can be written with g itself.",
            rule="d tanh(u) / d u = 1 - tanh(u)**2: the square matters."),
    Mistake("The last quarter of the columns of dWx, dWh and db (the candidate g) went through a sigmoid's "
            "slope: g is a tanh, the one gate that is not a sigmoid.", _g_as_sigmoid,
            concept="Three gates are sigmoids (i, f, o); the candidate g is a tanh, with its own slope.",
            rule="d tanh(u) / d u = 1 - tanh(u)**2, with g = tanh(a_g) from the cache."),
    Mistake("The third quarter of the columns of dWx, dWh and db (the output gate o) took the gradient of "
            "the cell state: o acts on h only, not on c.", _o_from_cell,
            concept="o appears in one forward equation only, h = o * tanh(c); c does not depend on o.",
            rule="d h[n, j] / d o[n, j] = tanh_c[n, j], and only dh arrives at h."),
]


# -- backpropagation through time -----------------------------------------------------------
def _seq_case(rng, N, T, D, H, name=None, last_only=False):
    dh = rng.standard_normal((N, T, H))
    if last_only:
        dh[:, :-1] = 0
    return dict(name=name or f"N={N}, T={T}, D={D}, H={H}", x=rng.standard_normal((N, T, D)),
                h0=rng.standard_normal((N, H)) * 0.5, dh=dh, **_params(rng, N, D, H))


def _seq_visible(rng):
    return [_seq_case(rng, 2, 3, 3, 4), _seq_case(rng, 3, 5, 2, 3, "loss on the last step only", last_only=True)]


def _seq_ref(c):
    dx, dh0, dWx, dWh, db = layers.lstm_backward(c["dh"], seq_cache(c))
    return dict(dx=dx, dh0=dh0, dWx=dWx, dWh=dWh, db=db)


_BPTT_MISTAKES = ("no_dh_next", "no_dc_next", "forwards", "weights_of_step_0", "weights_of_step_T-1")


def _bptt_with(c, mistake):
    """The BPTT loop over the reference step with ONE classic mistake (there is no mistake-free call)."""
    if mistake not in _BPTT_MISTAKES:
        raise ValueError(f"unknown BPTT mistake {mistake!r}")
    cache = seq_cache(c)
    dh, steps, Wx = c["dh"], cache["steps"], cache["Wx"]
    N, T, H = dh.shape
    dx = np.zeros(cache["x"].shape)
    grads = []
    dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
    for t in (range(T) if mistake == "forwards" else reversed(range(T))):
        dh_t = dh[:, t] if mistake == "no_dh_next" else dh[:, t] + dh_next
        dc_t = np.zeros((N, H)) if mistake == "no_dc_next" else dc_next
        dx[:, t], dh_next, dc_next, *g = layers.lstm_step_backward(dh_t, dc_t, steps[t], Wx)
        grads.append(g)
    if mistake.startswith("weights_of_step"):
        return dict(zip(("dWx", "dWh", "db"), grads[-1] if mistake == "weights_of_step_0" else grads[0]))
    dWx, dWh, db = (sum(g[k] for g in grads) for k in range(3))
    return dict(dx=dx, dh0=dh_next, dWx=dWx, dWh=dWh, db=db)


_ONE_STEP = "dWx, dWh and db hold the gradient of one time step only: Wx, Wh and b are used at every step, " \
            "and every use contributes."
_seq_mistakes = [
    Mistake("dh0 and the early time steps of dx get too little gradient: h_t also feeds step t+1, and what "
            "step t+1 sends back to h_t is missing.", lambda c: _bptt_with(c, "no_dh_next"),
            concept="h_t is used twice: by the loss at step t and by step t+1 (as its h_prev). It collects the "
                    "gradient of both uses.",
            rule="The gradient arriving at h_t is dh[:, t] plus the dh_prev that step t+1's backward returned "
                 "(nothing comes back from beyond the last step)."),
    Mistake("The cell state carries no gradient back in time: each step starts with no gradient at its c, "
            "although c_t goes on into step t+1.", lambda c: _bptt_with(c, "no_dc_next"),
            concept="c_t is used by step t+1 (as its c_prev), so step t+1's backward sends a gradient back to "
                    "it; the loss never sees c directly.",
            rule="The dc of step t is the dc_prev that step t+1's backward returned; zero at the last step."),
    Mistake("The steps were walked from first to last: a step's backward needs what the LATER steps send "
            "back, so those must run first.", lambda c: _bptt_with(c, "forwards"),
            concept="Backpropagation runs the graph in the reverse order of the forward pass.",
            rule="Step t's inputs to its backward come from step t+1: walk t = T-1, T-2, ..., 0."),
    Mistake(_ONE_STEP, lambda c: _bptt_with(c, "weights_of_step_0"),
            concept="Unrolled over T steps, the LSTM uses the same Wx, Wh and b T times. A value used in many "
                    "places collects the gradient of every use.",
            rule="dL/dWx is the sum over t of the dWx of step t's backward; the same for Wh and b."),
    Mistake(_ONE_STEP, lambda c: _bptt_with(c, "weights_of_step_T-1")),
    Mistake("dx runs backwards in time: dx[:, t] holds the gradient of another time step (the first and the "
            "last are swapped).", lambda c: {"dx": _seq_ref(c)["dx"][:, ::-1]},
            concept="dx[:, t] must be the gradient of x[:, t]. The backward loop visits the steps in reverse, "
                    "so keep the time index when you store.",
            rule="Step t's backward returns the gradient of its own input x[:, t]."),
]


_LADDERS = {
    "lstm_step_backward": Ladder(
        concept="Walk the forward equations from the last to the first and collect, at each variable, the "
                "gradients of all its uses. c is used twice (it goes on to the next step and it makes h), so "
                "its gradient has two parts. a = x Wx + h_prev Wh + b is two dense layers sharing one bias: "
                "exercise 3's rules apply to it.",
        rule="h = o * tanh(c): d h / d o = tanh(c), d h / d c = o * (1 - tanh(c)**2). c = f * c_prev + i * g: "
             "d c / d f = c_prev, d c / d i = g, d c / d g = i, d c / d c_prev = f. The gates: "
             "sigmoid'(u) = s * (1 - s), tanh'(u) = 1 - tanh(u)**2, both from the gate's own value. All "
             "element-wise; stack the four gate gradients in the order i, f, o, g into da: (N, 4H).",
        formula="dc_t = dc + dh * o * (1 - tanh_c**2); da = concatenate([dc_t * g * i * (1 - i), "
                "dc_t * c_prev * f * (1 - f), dh * tanh_c * o * (1 - o), dc_t * i * (1 - g**2)], axis=1); "
                "dx = da @ Wx.T, dh_prev = da @ Wh.T, dc_prev = dc_t * f, dWx = x.T @ da, dWh = h_prev.T @ da, "
                "db = da.sum(axis=0)."),
    "lstm_backward": Ladder(
        concept="Unrolled, the LSTM is T copies of one step that share Wx, Wh and b. Walk the steps from the "
                "last to the first: each step's backward needs the gradients arriving at its h and its c, and "
                "each shared weight collects the gradients of all T uses. Make lstm_step_backward pass first: "
                "this function calls it.",
        rule="h_t is used by the loss at step t (dh[:, t]) and by step t+1 (as h_prev); c_t only by step t+1 "
             "(as c_prev). Nothing comes back from beyond the last step. The weight gradients are sums over t; "
             "dh0 is what step 0 sends back to its h_prev.",
        formula="dh_next = dc_next = zeros((N, H)); for t in reversed(range(T)): dx[:, t], dh_next, dc_next, "
                "gWx, gWh, gb = lstm_step_backward(dh[:, t] + dh_next, dc_next, cache['steps'][t], cache['Wx']); "
                "dWx += gWx; dWh += gWh; db += gb. After the loop dh0 = dh_next."),
}


def _checks():
    spec = [
        ("lstm_step_backward", _STEP_OUT, CALLS["lstm_step_backward"], _step_ref, _step_mistakes,
         _step_visible, (4, 5), dict(batch_size=lambda c: c["x"].shape[0])),
        ("lstm_backward", ("dx", "dh0", "dWx", "dWh", "db"), CALLS["lstm_backward"], _seq_ref, _seq_mistakes,
         _seq_visible, (3, 5), dict(batch_size=lambda c: c["x"].shape[0])),
    ]
    return visible_and_hidden(A, spec, _LADDERS, tol=1e-6)


CHECKS = _checks()
