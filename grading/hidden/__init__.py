"""The hidden check cases: the grader's, never shipped to learners (nor readable by a sandboxed kernel).

One module per assignment, ``HIDDEN = {function name: cases(rng) -> [case, ...]}``. The grading run
draws them from a seed only it knows (``grading/secret.py``); ``cases_for(assignment, fn)`` loads them.
"""
import importlib


def cases_for(assignment, fn_name):
    """The hidden-case generator of ``fn_name`` in ``assignment`` (KeyError if there is none)."""
    mod = importlib.import_module(f"{__name__}.{assignment}")
    return mod.HIDDEN[fn_name]
