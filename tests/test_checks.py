"""bplib.checks: verdicts in words, hints on request, and no hidden cases in what learners install.

The learner functions used here are the instructor solutions, taken from the
solution notebooks' code cells (so the checks and the notebooks cannot drift).
"""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bplib import checks
from bplib.checks import ALL_CHECKS, ASSIGNMENTS, CHECKS, check, core

ROOT = Path(__file__).resolve().parents[1]


def solution_functions(assignment):
    """Run the solution notebook's setup and solution cells (no tests, no training) in a namespace."""
    nb = nbformat.read(str(ROOT / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    ns = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and (meta.get("solution") or (meta.get("locked") and not meta.get("grade"))):
            exec(cell.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), ns)
    return ns


@pytest.fixture(scope="module")
def solutions():
    return {a: solution_functions(a) for a in ASSIGNMENTS}


def test_all_checks_table():
    assert set(a for a, _ in ALL_CHECKS.values()) == set(ASSIGNMENTS)
    for cid, (a, pts) in ALL_CHECKS.items():
        assert isinstance(pts, int) and pts > 0
        assert re.fullmatch(r"\w+_(visible|hidden)", cid)
    fns = {(c.assignment, c.fn_name) for c in CHECKS.values()}
    for a, fn in fns:                                    # every function: one visible and one hidden check
        assert f"{fn}_visible" in CHECKS and f"{fn}_hidden" in CHECKS


def test_hidden_cases_are_not_shipped(capsys):
    """A hidden check has no cases in bplib; in a kernel it only says that it runs when graded."""
    for c in CHECKS.values():
        if c.hidden:
            with pytest.raises(core.HiddenCases):
                c.cases()
    assert check("dense_backward_hidden", lambda *a: 1 / 0) is None       # never run, never fails
    assert "run when your notebook is graded" in capsys.readouterr().out
    assert not checks.passed("dense_backward_hidden")
    src = "".join(Path(checks.__file__).parent.joinpath(f).read_text()
                  for f in os.listdir(Path(checks.__file__).parent) if f.endswith(".py"))
    assert "_hidden(rng)" not in src and "grading.hidden" not in src


def test_grader_cases_come_from_its_seed():
    """Visible and hidden cases drawn by the grader depend on its secret seed, not on the check id alone."""
    from grading import rerun
    a = rerun.draw_cases("dense_backward", 1)
    b = rerun.draw_cases("dense_backward", 1)
    c = rerun.draw_cases("dense_backward", 2)
    assert set(a) == {cid for cid, ch in CHECKS.items() if ch.assignment == "dense_backward"}
    def same(u, v):
        return all(np.array_equal(p[k], q[k]) for p, q in zip(u, v) for k in p if isinstance(p[k], np.ndarray))
    for cid in a:
        assert same(a[cid][1], b[cid][1])
        if cid.endswith("_hidden"):
            assert not same(a[cid][1], c[cid][1])


def test_cases_are_deterministic():
    for c in CHECKS.values():
        if c.hidden:
            continue
        a, b = c.cases(), c.cases()
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            for k in x:
                if isinstance(x[k], np.ndarray):
                    assert np.array_equal(x[k], y[k]), (c.id, k)


VISIBLE = sorted(cid for cid, c in CHECKS.items() if not c.hidden)


@pytest.mark.parametrize("check_id", VISIBLE)
def test_solution_passes(check_id, solutions, capsys):
    c = CHECKS[check_id]
    check(check_id, solutions[c.assignment][c.fn_name])
    assert capsys.readouterr().out.startswith(f"✓ {c.fn_name}")
    assert checks.passed(check_id)


@pytest.mark.parametrize("check_id", sorted(cid for cid, c in CHECKS.items() if c.hidden))
def test_solution_passes_the_graders_hidden_cases(check_id, solutions):
    from grading import rerun
    c = next(x for x in rerun.assignment_checks(CHECKS[check_id].assignment) if x.id == check_id)
    v, _, _ = core.run_check(c, solutions[c.assignment][c.fn_name], cases=c.cases(np.random.default_rng(3)))
    assert v.passed, v.message


def test_not_implemented_is_a_friendly_failure(capsys):
    def dense_backward(dout, x, W):
        raise NotImplementedError()
    with pytest.raises(AssertionError, match="not implemented yet"):
        check("dense_backward_visible", dense_backward)
    assert "not implemented yet" in capsys.readouterr().out
    assert not checks.passed("dense_backward_visible")


def test_wrong_answer_names_array_worst_element_and_hint(capsys):
    def relu_backward(dout, x):
        return dout                        # the mask forgotten
    with pytest.raises(AssertionError) as e:
        check("relu_backward_visible", relu_backward)
    msg = str(e.value)
    assert "dx" in msg and "worst element dx[" in msg and "expected" in msg and "got" in msg
    assert "mask is missing" in msg
    assert "(x > 0)" not in msg            # the symptom, never the formula
    assert 'hint("relu_backward")' in msg
    assert len(msg.splitlines()) <= 6      # short: a verdict, not a traceback


def test_hints_escalate_and_are_counted(capsys):
    checks.start("dense_backward")
    with pytest.raises(AssertionError):
        check("relu_backward_visible", lambda dout, x: dout)
    capsys.readouterr()
    texts = []
    for _ in range(4):
        checks.hint("relu_backward_visible")         # a check id works as well as the function name
        texts.append(capsys.readouterr().out)
    assert [t.split(" (")[0] for t in texts[:3]] == ["Hint 1 of 3 for relu_backward", "Hint 2 of 3 for relu_backward",
                                                      "Hint 3 of 3 for relu_backward"]
    assert "(x > 0)" not in texts[0] + texts[1] and "(x > 0)" in texts[2]
    assert texts[3] == texts[2]                       # the last level repeats
    assert checks.hints_used("dense_backward") == {"relu_backward": 3}
    checks.summary("dense_backward")
    assert "relu_backward 3 of 3" in capsys.readouterr().out
    checks.hint("no_such_function")
    assert "No hints for" in capsys.readouterr().out
    checks.start("dense_backward")
    assert checks.hints_used("dense_backward") == {}


def test_other_exception_and_bad_return():
    with pytest.raises(AssertionError, match=r"raised ZeroDivisionError: division by zero \(in <lambda>, line \d+.*\) on case 1"):
        check("sgd_step_visible", lambda w, dw, lr: 1 / 0)
    with pytest.raises(AssertionError, match=r"must return 3 values \(dx, dW, db\), got 2"):
        check("dense_backward_visible", lambda dout, x, W: (dout, x))


def test_timeout(monkeypatch):
    monkeypatch.setattr(core, "TIME_LIMIT", 0.5)

    def sgd_step(w, dw, lr):
        while True:
            pass
    t = time.perf_counter()
    with pytest.raises(AssertionError, match="took more than 0.5 s"):
        check("sgd_step_visible", sgd_step)
    assert time.perf_counter() - t < 10


def test_start_forgets_and_summary_counts(solutions, capsys):
    check("sgd_step_visible", solutions["gradient_descent"]["sgd_step"])
    assert checks.passed("sgd_step_visible")
    checks.start("gradient_descent")
    assert not checks.passed("sgd_step_visible")
    check("sgd_step_visible", solutions["gradient_descent"]["sgd_step"])
    capsys.readouterr()
    won, total = checks.summary("gradient_descent")
    out = capsys.readouterr().out
    assert "1 of 4 visible checks pass" in out and "not run yet" in out and "runs when graded" in out
    assert won == ALL_CHECKS["sgd_step_visible"][1]
    assert total == sum(p for a, p in ALL_CHECKS.values() if a == "gradient_descent")


def test_unknown_check_id():
    with pytest.raises(KeyError, match="unknown check"):
        check("no_such_check", print)


def test_answers_that_are_not_numbers(capsys):
    with pytest.raises(AssertionError, match="not an array of numbers"):
        check("mul_backward_visible", lambda a, b, dout: ("x", "y"))
    with pytest.raises(AssertionError, match="is None"):
        check("relu_backward_visible", lambda dout, x: None)
