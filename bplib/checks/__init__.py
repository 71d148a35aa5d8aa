"""Checks for the graded exercises: one call per test cell, a verdict in words, hints on request.

    from bplib.checks import check, hint
    check("dense_backward_visible", dense_backward)
    hint("dense_backward")          # the next hint: concept, then local rule, then (last) the formula

``check`` runs the learner's function on the check's visible cases, compares
every returned array with the reference (``bplib.gradcheck.compare``), prints a
verdict that names the symptom (never the formula) and raises
``AssertionError`` with it when something is wrong. A hidden check ships no
cases: in a learner's kernel it only says that it runs when graded. When a
notebook is graded, every graded function runs again outside the learner's
kernel, on inputs only the grading run knows (``grading/``); nothing a kernel
prints or returns is trusted.

    ALL_CHECKS            check_id -> (assignment, points)
    start(assignment)     forget this kernel's results and hints for an assignment (first cell)
    passed(*check_ids)    did these checks pass in this kernel?
    hint(name)            the next level of the hint ladder for a function (or a check id)
    summary(assignment)   a table of which parts pass and how many hints were asked for (last cell)
"""
from . import chain_rule, conv_backward, dense_backward, gradient_descent, lstm_backward, policy_gradient
from . import normalization_backward
from . import attention_backward
from . import backprop_ninja
from . import core
from ._verdict import fail
from .core import Ladder, run_check
from .backprop_ninja import compare   # backprop_ninja's table: each gradient against Tensor autograd

__all__ = ["check", "hint", "ALL_CHECKS", "CHECKS", "ASSIGNMENTS", "start", "passed", "summary", "results",
           "hints_used"]

ASSIGNMENTS = ("chain_rule", "gradient_descent", "dense_backward", "conv_backward",
               "lstm_backward", "policy_gradient", "normalization_backward", "attention_backward",
               "backprop_ninja")
_MODULES = (chain_rule, gradient_descent, dense_backward, conv_backward, lstm_backward, policy_gradient,
            normalization_backward, attention_backward, backprop_ninja)

CHECKS = {c.id: c for m in _MODULES for c in m.CHECKS}
ALL_CHECKS = {cid: (c.assignment, c.points) for cid, c in CHECKS.items()}

_RESULTS = {}   # check_id -> Verdict, for this kernel
_HINTS = {}     # function name -> how many hint levels were shown, for this kernel
LADDERS = {c.fn_name: c.ladder for c in CHECKS.values() if c.ladder is not None}
_FN_OF = {cid: c.fn_name for cid, c in CHECKS.items()}


def check(check_id, fn):
    """Run one check on the learner's function ``fn``; print the verdict; fail loudly."""
    __tracebackhide__ = True           # IPython and pytest: hide this frame in tracebacks
    if check_id not in CHECKS:
        raise KeyError(f"unknown check {check_id!r}; known: {', '.join(sorted(CHECKS))}")
    c = CHECKS[check_id]
    if c.hidden:
        print(f"· {c.fn_name} (hidden tests, {c.points} pt): these run when your notebook is graded, "
              f"on other shapes and edge cases, with inputs only the grader has.")
        return None
    verdict, res, status = run_check(c, fn, time_limit=core.TIME_LIMIT)
    _RESULTS[check_id] = verdict
    if not verdict.passed:
        # the verdict once: in IPython the error output is the verdict and nothing else (no frames
        # of bplib/checks); in a plain script it is printed, then raised (bplib/checks/_verdict.py)
        fail(verdict.message)
    print(verdict.message)
    return None


def hint(name):
    """Print the next hint for a graded function (``"dense_backward"`` or a check id).

    Level 1 is the concept, level 2 the local rule, level 3 the formula; each call shows the next one
    (and repeats the last). Levels 1 and 2 speak to the mistake the last failed check diagnosed, if any.
    """
    fn = _FN_OF.get(name, name)
    if fn not in LADDERS:
        known = ", ".join(sorted(LADDERS))
        print(f"No hints for {name!r}. Hints exist for: {known}.")
        return None
    ladder = LADDERS[fn]
    level = min(_HINTS.get(fn, 0) + 1, 3)
    _HINTS[fn] = level
    last = [v for cid, v in _RESULTS.items() if _FN_OF.get(cid) == fn and not v.passed]
    mistake = last[-1].mistake if last else None
    text = ladder.level(level, mistake)
    head = f"Hint {level} of 3 for {fn} ({Ladder.LEVELS[level - 1]}):"
    more = (f"\n(Call hint(\"{fn}\") again for the {Ladder.LEVELS[level]}.)" if level < 3
            else "\n(That was the last level: the formula. Make sure you can say why it holds.)")
    print(f"{head} {text}{more}")
    return None


def hints_used(assignment=None):
    """This kernel's hint levels shown: function name -> 0..3."""
    return {fn: n for fn, n in _HINTS.items()
            if assignment is None or any(c.fn_name == fn and c.assignment == assignment for c in CHECKS.values())}


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
            _HINTS.pop(_FN_OF[cid], None)


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
    used = {fn: n for fn, n in hints_used(assignment).items() if n}
    if used:
        print("Hints asked for: " + ", ".join(f"{fn} {n} of 3" for fn, n in used.items())
              + " (for your own record; hints never cost points).")
    else:
        print("Hints asked for: none.")
    return won, total
