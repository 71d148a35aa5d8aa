"""Calls of the lstm_backward assignment's functions: the caches come from bplib's forward passes."""
from ... import layers


def step_cache(c):
    """The cache of one forward step (bplib.layers.lstm_step_forward) for a case."""
    return layers.lstm_step_forward(c["x"], c["h_prev"], c["c_prev"], c["Wx"], c["Wh"], c["b"])[2]


def seq_cache(c):
    """The cache of a whole sequence (bplib.layers.lstm_forward) for a case."""
    return layers.lstm_forward(c["x"], c["h0"], c["Wx"], c["Wh"], c["b"])[1]


CALLS = {
    "lstm_step_backward": lambda fn, c: fn(c["dh"], c["dc"], step_cache(c), c["Wx"]),
    "lstm_backward": lambda fn, c: fn(c["dh"], seq_cache(c)),
}
