"""Checks for the graded exercises: one call per test cell, a verdict in words.

    from bplib.checks import check
    check("dense_backward_visible", dense_backward)

``check`` runs the learner's function on the check's cases, compares every
returned array with the reference (``bplib.gradcheck.compare``), prints a short
verdict and raises ``AssertionError`` with that verdict when something is wrong,
so nbgrader scores the cell 0. The cases live here, not in the notebook, so
nbgrader's feedback shows only the call.

    ALL_CHECKS            check_id -> (assignment, points)
    start(assignment)     forget this kernel's results for an assignment (first cell)
    passed(*check_ids)    did these checks pass in this kernel?
    summary(assignment)   a table of which parts pass (last cell)

If ``BPLIB_RECORD_DIR`` is set, ``check`` also writes what the function
returned to ``$BPLIB_RECORD_DIR/<check_id>.npz`` for
``python -m bplib.checks.verify <dir>`` (see verify.py).
"""
import os

from . import chain_rule, conv_backward, dense_backward, gradient_descent, lstm_backward, policy_gradient
from . import core
from ._verdict import fail
from .core import run_check, save_record

__all__ = ["check", "ALL_CHECKS", "CHECKS", "ASSIGNMENTS", "start", "passed", "summary", "results"]

ASSIGNMENTS = ("chain_rule", "gradient_descent", "dense_backward", "conv_backward",
               "lstm_backward", "policy_gradient")
_MODULES = (chain_rule, gradient_descent, dense_backward, conv_backward, lstm_backward, policy_gradient)

CHECKS = {c.id: c for m in _MODULES for c in m.CHECKS}
ALL_CHECKS = {cid: (c.assignment, c.points) for cid, c in CHECKS.items()}

_RESULTS = {}   # check_id -> Verdict, for this kernel


def check(check_id, fn):
    """Run one check on the learner's function ``fn``; print the verdict; fail loudly."""
    __tracebackhide__ = True           # IPython and pytest: hide this frame in tracebacks
    if check_id not in CHECKS:
        raise KeyError(f"unknown check {check_id!r}; known: {', '.join(sorted(CHECKS))}")
    c = CHECKS[check_id]
    verdict, res, status = run_check(c, fn, time_limit=core.TIME_LIMIT)
    record_dir = os.environ.get("BPLIB_RECORD_DIR")
    if record_dir:
        save_record(record_dir, c, res, status)
    _RESULTS[check_id] = verdict
    print(verdict.message)
    if not verdict.passed:
        fail(verdict.message)          # IPython hides this frame: the traceback is the cell line and the verdict
    return None


def results():
    """This kernel's verdicts: check_id -> Verdict."""
    return dict(_RESULTS)


def start(assignment):
    """Forget this kernel's results for ``assignment`` (run from the top: no stale passes)."""
    if assignment not in ASSIGNMENTS:
        raise KeyError(f"unknown assignment {assignment!r}; known: {', '.join(ASSIGNMENTS)}")
    for cid, (a, _) in ALL_CHECKS.items():
        if a == assignment:
            _RESULTS.pop(cid, None)


def passed(*check_ids):
    """True if every named check has passed in this kernel."""
    return all(cid in _RESULTS and _RESULTS[cid].passed for cid in check_ids)


def summary(assignment):
    """Print which parts of ``assignment`` pass in this kernel; returns (points won, points run)."""
    rows, won, total = [], 0, 0
    for cid, c in CHECKS.items():
        if c.assignment != assignment:
            continue
        total += c.points
        v = _RESULTS.get(cid)
        kind = "hidden tests" if c.hidden else "visible tests"
        if c.hidden and v is None:
            state = "runs when graded"
        elif v is None:
            state = "not run yet"
        elif v.passed:
            state = "passed"
            won += c.points
        else:
            state = "FAILED"
        rows.append((c.fn_name, kind, c.points, state))
    visible = [r for r in rows if r[1] == "visible tests"]
    n_ok = sum(r[3] == "passed" for r in visible)
    print(f"{assignment}: {n_ok} of {len(visible)} visible checks pass")
    w = max(len(r[0]) for r in rows)
    for name, kind, pts, state in rows:
        mark = {"passed": "✓", "FAILED": "✗"}.get(state, "·")
        print(f"  {mark} {name:<{w}}  {kind:<13} {pts:>2} pt  {state}")
    if n_ok == len(visible):
        print("All visible checks pass. Hidden tests (other shapes, edge cases) run when the notebook is graded.")
    return won, total
