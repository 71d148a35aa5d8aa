"""Hidden cases of lstm_backward: a batch of one, H = 1, saturated gates, dc = 0, one and sixty time steps."""
import numpy as np

from bplib.checks.lstm_backward import _seq_case, _step_case


def lstm_step_backward(rng):
    no_dc = _step_case(rng, 4, 3, 5, "dc = 0: the gradient reaches c only through h")
    no_dc["dc"] = np.zeros_like(no_dc["dc"])
    no_dh = _step_case(rng, 3, 4, 2, "dh = 0: only the cell state's gradient arrives")
    no_dh["dh"] = np.zeros_like(no_dh["dh"])
    return [_step_case(rng, 1, 5, 1, "batch of one, H=1"),
            _step_case(rng, 6, 4, 16),
            _step_case(rng, 3, 3, 3, "saturated gates (large weights)", scale=4.0),
            _step_case(rng, 5, 7, 7, "D = H: Wx and Wh have the same shape"),
            no_dc, no_dh]


def lstm_backward(rng):
    return [_seq_case(rng, 2, 1, 3, 4, "one time step"),
            _seq_case(rng, 1, 8, 4, 2, "batch of one"),
            _seq_case(rng, 2, 60, 3, 5, "a long sequence: T=60"),
            _seq_case(rng, 3, 20, 2, 6, "T=20, loss on the last step only", last_only=True),
            _seq_case(rng, 2, 6, 4, 4, "D = H")]


HIDDEN = {"lstm_step_backward": lstm_step_backward, "lstm_backward": lstm_backward}

# Beyond the forward passes (always available), the graded functions may use nothing of bplib's reference:
# not lstm_step_backward, lstm_backward, _lstm_step_da, _lstm_fast_backward, LSTM.backward,
# sigmoid_backward, tanh_backward, nor exercise 3's dense_backward.
ALLOWED = []
