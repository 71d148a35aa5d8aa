"""Checks for the lstm_backward assignment.

    lstm_step_backward(dh, dc, cache, Wx) -> (dx, dh_prev, dc_prev, dWx, dWh, db)
        cache from bplib.layers.lstm_step_forward(x, h_prev, c_prev, Wx, Wh, b)
    lstm_backward(dh, cache) -> (dx, dh0, dWx, dWh, db)
        dh: (N, T, H), cache from bplib.layers.lstm_forward(x, h0, Wx, Wh, b)
"""
import numpy as np

from .. import layers
from .core import visible_and_hidden

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


def _step_hidden(rng):
    c = _step_case(rng, 4, 3, 5, "dc = 0: the gradient reaches c only through h")
    c["dc"] = np.zeros_like(c["dc"])
    return [_step_case(rng, 1, 5, 1, "batch of one, H=1"), _step_case(rng, 6, 4, 16),
            _step_case(rng, 3, 3, 3, "saturated gates (large weights)", scale=4.0), c]


def _cache(c):
    return layers.lstm_step_forward(c["x"], c["h_prev"], c["c_prev"], c["Wx"], c["Wh"], c["b"])[2]


def _step_ref(c):
    dx, dh_prev, dc_prev, dWx, dWh, db = layers.lstm_step_backward(c["dh"], c["dc"], _cache(c), c["Wx"])
    return dict(dx=dx, dh_prev=dh_prev, dc_prev=dc_prev, dWx=dWx, dWh=dWh, db=db)


def _step_model(dh, dc, cache, Wx, wrong=()):
    """The step backward with classic mistakes as switches (for the hints)."""
    i, f, o, g, tc = (cache[k] for k in ("i", "f", "o", "g", "tanh_c"))
    tanh_prime = (1 - tc) if "tanh_prime" in wrong else (1 - tc ** 2)
    dct = dc if "no_h_path" in wrong else dc + dh * o * tanh_prime
    sp = (lambda s: 1.0) if "no_sigmoid_prime" in wrong else (lambda s: s * (1 - s))
    parts = [dct * g * sp(i), dct * cache["c_prev"] * sp(f), dh * tc * sp(o), dct * i * (1 - g ** 2)]
    if "gate_order" in wrong:
        parts = [parts[1], parts[0], parts[2], parts[3]]
    da = np.concatenate(parts, axis=1)
    dc_prev = dct if "no_forget" in wrong else dct * f
    return dict(dx=da @ Wx.T, dh_prev=da @ cache["Wh"].T, dc_prev=dc_prev, dWx=cache["x"].T @ da,
                dWh=cache["h_prev"].T @ da, db=da.sum(axis=0))


_STEP_HINTS = {
    "no_forget": "The forget-gate path of the cell state is missing: c = f * c_prev + ..., so dc_prev = dc * f.",
    "tanh_prime": "tanh'(c) is 1 - tanh(c)**2 (squared!), not 1 - tanh(c).",
    "no_h_path": "c also reaches the loss through h = o * tanh(c): add dh * o * (1 - tanh(c)**2) to dc first.",
    "no_sigmoid_prime": "The gates i, f, o are sigmoids: multiply by sigmoid'(a) = s * (1 - s) on the way to da.",
    "gate_order": "The gates are stacked in the order i, f, o, g along the last axis of Wx, Wh and b.",
}
_step_mistakes = [(hint, (lambda c, w=w: _step_model(c["dh"], c["dc"], _cache(c), c["Wx"], (w,))))
                  for w, hint in _STEP_HINTS.items()]


def _call_step(fn, c):
    return fn(c["dh"], c["dc"], _cache(c), c["Wx"])


# -- backpropagation through time -----------------------------------------------------------
def _seq_case(rng, N, T, D, H, name=None, last_only=False):
    dh = rng.standard_normal((N, T, H))
    if last_only:
        dh[:, :-1] = 0
    return dict(name=name or f"N={N}, T={T}, D={D}, H={H}", x=rng.standard_normal((N, T, D)),
                h0=rng.standard_normal((N, H)) * 0.5, dh=dh, **_params(rng, N, D, H))


def _seq_visible(rng):
    return [_seq_case(rng, 2, 3, 3, 4), _seq_case(rng, 3, 5, 2, 3, "loss on the last step only", last_only=True)]


def _seq_hidden(rng):
    return [_seq_case(rng, 2, 1, 3, 4, "one time step"), _seq_case(rng, 1, 8, 4, 2, "batch of one"),
            _seq_case(rng, 2, 60, 3, 5, "a long sequence: T=60"),
            _seq_case(rng, 3, 20, 2, 6, "T=20, loss on the last step only", last_only=True)]


def _seq_cache(c):
    return layers.lstm_forward(c["x"], c["h0"], c["Wx"], c["Wh"], c["b"])[1]


def _seq_ref(c):
    dx, dh0, dWx, dWh, db = layers.lstm_backward(c["dh"], _seq_cache(c))
    return dict(dx=dx, dh0=dh0, dWx=dWx, dWh=dWh, db=db)


def _seq_model(c, wrong=()):
    cache = _seq_cache(c)
    x, Wx, steps, dh = cache["x"], cache["Wx"], cache["steps"], c["dh"]
    N, T, D = x.shape
    H = dh.shape[2]
    dx = np.zeros_like(x)
    dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(cache["Wh"]), np.zeros(4 * H)
    dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        dh_t = dh[:, t] if "no_dh_next" in wrong else dh[:, t] + dh_next
        dc_t = np.zeros((N, H)) if "no_dc_next" in wrong else dc_next
        g = _step_model(dh_t, dc_t, dict(steps[t], x=x[:, t]), Wx)
        dx[:, t], dh_next, dc_next = g["dx"], g["dh_prev"], g["dc_prev"]
        if "overwrite" in wrong:
            dWx, dWh, db = g["dWx"], g["dWh"], g["db"]
        else:
            dWx, dWh, db = dWx + g["dWx"], dWh + g["dWh"], db + g["db"]
    return dict(dx=dx, dh0=dh_next, dWx=dWx, dWh=dWh, db=db)


_SEQ_HINTS = {
    "no_dh_next": "h_t feeds step t+1 as well as the loss: the gradient into step t is dh[:, t] + dh_prev "
                  "returned by step t+1.",
    "no_dc_next": "The cell state carries gradient back in time: pass dc_prev of step t+1 as dc of step t "
                  "(zero only at the last step).",
    "overwrite": "Wx, Wh and b are shared by every time step: SUM their gradients over t (+=), do not overwrite.",
}
_seq_mistakes = [(hint, (lambda c, w=w: _seq_model(c, (w,)))) for w, hint in _SEQ_HINTS.items()]


def _call_seq(fn, c):
    return fn(c["dh"], _seq_cache(c))


def _checks():
    hints = {
        "lstm_step_backward": "Work backwards through the forward equations: h = o*tanh(c), then "
                              "c = f*c_prev + i*g, then the gate nonlinearities, then a = x Wx + h_prev Wh + b.",
        "lstm_backward": "Loop t = T-1 .. 0, call lstm_step_backward with dict(steps[t], x=x[:, t]), carry "
                         "dh_prev and dc_prev to the step before, and sum the weight gradients (it uses your "
                         "lstm_step_backward: make that one pass first).",
    }
    spec = [
        ("lstm_step_backward", ("dx", "dh_prev", "dc_prev", "dWx", "dWh", "db"), _call_step, _step_ref,
         _step_mistakes, _step_visible, _step_hidden, (4, 5)),
        ("lstm_backward", ("dx", "dh0", "dWx", "dWh", "db"), _call_seq, _seq_ref, _seq_mistakes,
         _seq_visible, _seq_hidden, (3, 5)),
    ]
    return visible_and_hidden(A, spec, hints, tol=1e-6)


CHECKS = _checks()
