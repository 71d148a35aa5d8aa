"""How each graded function is called on one case: ``CALLS[fn_name](fn, case)`` -> what fn returned.

One module per assignment. A call builds the function's inputs (a forward pass where the
function takes a cache, a Value graph from a small program) and never computes an answer:
this package is the only part of ``bplib.checks`` that the grader's clean process keeps
(``grading/runner.py``), next to a bplib whose graded reference functions are removed.
"""
from . import chain_rule, conv_backward, dense_backward, gradient_descent, lstm_backward, policy_gradient
from . import normalization_backward
from . import attention_backward
from . import backprop_ninja

CALLS = {}
for _m in (chain_rule, gradient_descent, dense_backward, conv_backward, lstm_backward, policy_gradient,
           normalization_backward, attention_backward, backprop_ninja):
    CALLS.update(_m.CALLS)
