"""bplib.checks: verdicts, the per-kernel record, BPLIB_RECORD_DIR and `python -m bplib.checks.verify`.

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


def verify(record_dir):
    r = subprocess.run([sys.executable, "-m", "bplib.checks.verify", str(record_dir)],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_all_checks_table():
    assert set(a for a, _ in ALL_CHECKS.values()) == set(ASSIGNMENTS)
    for cid, (a, pts) in ALL_CHECKS.items():
        assert isinstance(pts, int) and pts > 0
        assert re.fullmatch(r"\w+_(visible|hidden)", cid)
    fns = {(c.assignment, c.fn_name) for c in CHECKS.values()}
    for a, fn in fns:                                    # every function: one visible and one hidden check
        assert f"{fn}_visible" in CHECKS and f"{fn}_hidden" in CHECKS


def test_cases_are_deterministic():
    for c in CHECKS.values():
        a, b = c.cases(), c.cases()
        assert len(a) == len(b) > 0
        for x, y in zip(a, b):
            for k in x:
                if isinstance(x[k], np.ndarray):
                    assert np.array_equal(x[k], y[k]), (c.id, k)


@pytest.mark.parametrize("check_id", sorted(CHECKS))
def test_solution_passes_and_is_recorded(check_id, solutions, tmp_path, monkeypatch, capsys):
    c = CHECKS[check_id]
    monkeypatch.setenv("BPLIB_RECORD_DIR", str(tmp_path))
    check(check_id, solutions[c.assignment][c.fn_name])
    assert capsys.readouterr().out.startswith(f"✓ {c.fn_name}")
    assert checks.passed(check_id)
    with np.load(tmp_path / f"{check_id}.npz", allow_pickle=False) as rec:
        assert str(rec["__status__"]) == "ok"
        assert any(k.startswith("case0.") for k in rec.files)


def test_not_implemented_is_a_friendly_failure(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BPLIB_RECORD_DIR", str(tmp_path))

    def dense_backward(dout, x, W):
        raise NotImplementedError()
    with pytest.raises(AssertionError, match="not implemented yet"):
        check("dense_backward_visible", dense_backward)
    assert "not implemented yet" in capsys.readouterr().out
    assert not checks.passed("dense_backward_visible")
    with np.load(tmp_path / "dense_backward_visible.npz") as rec:
        assert str(rec["__status__"]) == "raised NotImplementedError"
    out = verify(tmp_path)
    assert out == {"dense_backward_visible": {"passed": False, "message": "✗ dense_backward: not implemented yet"}}


def test_wrong_answer_names_array_worst_element_and_hint(capsys):
    def relu_backward(dout, x):
        return dout                        # the mask forgotten
    with pytest.raises(AssertionError) as e:
        check("relu_backward_visible", relu_backward)
    msg = str(e.value)
    assert "dx" in msg and "worst element dx[" in msg and "expected" in msg and "got" in msg
    assert "mask is missing" in msg
    assert len(msg.splitlines()) <= 6      # short: a verdict, not a traceback


def test_other_exception_and_bad_return(tmp_path, monkeypatch):
    monkeypatch.setenv("BPLIB_RECORD_DIR", str(tmp_path))
    with pytest.raises(AssertionError, match=r"raised ZeroDivisionError: division by zero \(in <lambda>, line \d+.*\) on case 1"):
        check("sgd_step_visible", lambda w, dw, lr: 1 / 0)
    with np.load(tmp_path / "sgd_step_visible.npz") as rec:
        assert str(rec["__status__"]) == "raised ZeroDivisionError"
    with pytest.raises(AssertionError, match=r"must return 3 values \(dx, dW, db\), got 2"):
        check("dense_backward_visible", lambda dout, x, W: (dout, x))
    assert verify(tmp_path)["sgd_step_visible"]["passed"] is False


def test_timeout_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("BPLIB_RECORD_DIR", str(tmp_path))
    monkeypatch.setattr(core, "TIME_LIMIT", 0.5)

    def sgd_step(w, dw, lr):
        while True:
            pass
    t = time.perf_counter()
    with pytest.raises(AssertionError, match="took more than 0.5 s"):
        check("sgd_step_visible", sgd_step)
    assert time.perf_counter() - t < 10
    with np.load(tmp_path / "sgd_step_visible.npz") as rec:
        assert str(rec["__status__"]) == "timeout"
    assert verify(tmp_path)["sgd_step_visible"]["passed"] is False


def test_verify_agrees_with_the_kernel(solutions, tmp_path, monkeypatch, capsys):
    """Right and wrong answers recorded in-process are re-judged identically by verify."""
    monkeypatch.setenv("BPLIB_RECORD_DIR", str(tmp_path))
    verdicts = {}
    fns = {"dense_backward_hidden": solutions["dense_backward"]["dense_backward"],
           "tanh_backward_visible": lambda out, dout: (1 - out) * dout,
           "backward_hidden": solutions["chain_rule"]["backward"],
           "lstm_backward_visible": solutions["lstm_backward"]["lstm_backward"],
           "conv2d_backward_hidden": lambda dout, x, W, s, p: (np.zeros_like(x), np.zeros_like(W),
                                                                dout.sum(axis=(0, 2, 3)))}
    for cid, fn in fns.items():
        try:
            check(cid, fn)
        except AssertionError:
            pass
        verdicts[cid] = checks.results()[cid]
    out = verify(tmp_path)
    assert set(out) == set(fns)
    for cid, v in verdicts.items():
        assert out[cid] == {"passed": v.passed, "message": v.message}
    assert out["dense_backward_hidden"]["passed"] and not out["tanh_backward_visible"]["passed"]
    assert "squared" in out["tanh_backward_visible"]["message"]


def test_verify_trusts_nothing(tmp_path):
    # forged arrays: judged against the regenerated reference, not accepted
    np.savez(tmp_path / "relu_backward_visible.npz", __status__=np.array("ok"), **{"case0.dx": np.zeros((2, 4))})
    # a pickled object: never unpickled
    np.save(tmp_path / "x.npy", np.array([object()], dtype=object), allow_pickle=True)
    os.replace(tmp_path / "x.npy", tmp_path / "sgd_step_visible.npz")
    np.savez(tmp_path / "no_such_check.npz", __status__=np.array("ok"))
    out = verify(tmp_path)
    assert out["relu_backward_visible"]["passed"] is False
    assert out["sgd_step_visible"]["passed"] is False and "unreadable" in out["sgd_step_visible"]["message"]
    assert out["no_such_check"]["passed"] is False


def test_verify_usage_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bplib.checks.verify", str(tmp_path / "missing")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr


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
