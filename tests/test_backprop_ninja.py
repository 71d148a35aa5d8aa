"""The backprop_ninja capstone: its forward pass, its table of verdicts, and the routes to the reference.

1. The notebook's forward cell is the graph the checks build (bplib/checks/calls/backprop_ninja.py).
2. ``checks.compare`` calls every row of the honest answer exact (or approximate), and for a wrong answer
   marks the first wrong row, names its symptom and says that the rows after it inherit the error.
3. The graded functions earn nothing through the course's reference: an attacker that calls
   Tensor.backward, Tensor's local rules (its ``_backward`` closures, run by hand),
   bplib.losses.softmax_cross_entropy or bplib.layers.batchnorm_backward works in a learner's kernel
   (its visible check passes) and scores 0 in the clean re-run, with a status naming the reference;
   the learner's other functions keep their points. (tests/test_rerun.py attacks
   batchnorm_backward_fused by every other route: importlib, eval, inspect, the BatchNorm layer, ...)
"""
import contextlib
import io
import os
import tempfile
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bplib import checks
from bplib.checks import CHECKS
from bplib.checks.backprop_ninja import _ninja_case, _ninja_ref, autograd, row_verdict
from bplib.checks.calls.backprop_ninja import GRADS, NAMES, forward, values
from bplib.checks.core import run_check
from grading import engine, rerun, strip

ROOT = Path(__file__).resolve().parents[1]
A = "backprop_ninja"
NB = ROOT / "solutions" / A / f"{A}.ipynb"
pytestmark = pytest.mark.skipif(not NB.exists(), reason="no backprop_ninja notebook")


def notebook_namespace():
    """The solution's locked and solution cells run (the forward cell, the graded functions)."""
    nb = nbformat.read(str(NB), as_version=4)
    ns = {"__name__": "__main__"}
    for c in nb.cells:
        meta = c.metadata.get("nbgrader") or {}
        if c.cell_type == "code" and not meta.get("grade") and (meta.get("locked") or meta.get("solution")):
            with contextlib.redirect_stdout(io.StringIO()):
                exec(c.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), ns)
    return ns


# -- 1. one graph ---------------------------------------------------------------------------------------------
def test_the_notebooks_forward_is_the_checks_graph():
    ns = notebook_namespace()
    case = _ninja_case(np.random.default_rng(3), 5, 3, 4, 3)
    mine, theirs = ns["forward"](case["x"], case, case["y"]), forward(case["x"], case, case["y"])
    assert set(mine) == set(theirs) == set(NAMES) | {"x", "loss", "W1", "b1", "gamma", "beta", "W2", "b2"}
    for k in theirs:
        assert np.array_equal(mine[k].data, theirs[k].data), k
    assert len(GRADS) == 25 and [g[1:] for g in GRADS if g[1:] in NAMES] == list(reversed(NAMES))


# -- 2. the table --------------------------------------------------------------------------------------------------
def table(grads, t):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rows = checks.compare(grads, t)
    return rows, out.getvalue()


@pytest.fixture(scope="module")
def demo():
    ns = notebook_namespace()
    case = _ninja_case(np.random.default_rng(11), 6, 3, 5, 4)
    t = autograd(case)
    return ns["backward_by_hand"], values(t), case["y"], t


def test_the_honest_answer_is_exact_in_every_row(demo):
    fn, v, y, t = demo
    rows, text = table(fn(v, y), t)
    assert [r[0] for r in rows] == list(GRADS)
    assert all(r[2] in ("exact", "approximate") for r in rows), text
    assert "25 of 25 gradients agree" in text and "first" not in text


def test_a_wrong_row_is_marked_first_named_and_followed_by_inheritors(demo):
    fn, v, y, t = demo
    g = fn(v, y)
    g["dcounts_sum_inv"] = v["counts"] * g["dprobs"]               # not summed back over the row
    g["dW2"] = g["dW2"] * 2
    rows, text = table(g, t)
    verdict = dict((r[0], r[2]) for r in rows)
    assert verdict["dcounts_sum_inv"] == "wrong" and verdict["dW2"] == "wrong" and verdict["dprobs"] == "exact"
    line = next(l for l in text.splitlines() if l.startswith("dcounts_sum_inv"))
    assert "<- first" in line and "summed back" in line
    assert "<- first" not in next(l for l in text.splitlines() if l.startswith("dW2"))
    assert "Start with dcounts_sum_inv" in text and "inherit" in text


def test_a_missing_row_and_an_approximate_row(demo):
    fn, v, y, t = demo
    g = fn(v, y)
    del g["dmu"]
    g["dh"] = g["dh"] * (1 + 1e-9)
    rows, text = table(g, t)
    verdict = dict((r[0], r[2]) for r in rows)
    assert verdict["dmu"] == "missing" and verdict["dh"] == "approximate"
    assert "Start with dmu" in text


def test_row_verdicts_and_the_zero_of_dlogit_max(demo):
    fn, v, y, t = demo
    assert row_verdict(np.ones(3), np.ones(3)) == ("exact", 0.0)
    assert row_verdict(np.ones(3), np.ones(3) + 1e-8)[0] == "approximate"
    assert row_verdict(np.ones(3), np.ones(3) * 2)[0] == "wrong"
    assert row_verdict(np.ones((3, 1)), np.ones((3, 2)))[0] == "wrong"
    assert row_verdict(np.ones(3), None)[0] == "missing"
    # dL/dlogit_max is 0 up to rounding: an exact 0 and autograd's 1e-17 are both "exact"
    assert np.abs(t["logit_max"].grad).max() < 1e-15
    assert row_verdict(t["logit_max"].grad, np.zeros_like(t["logit_max"].grad))[0] == "exact"


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="grads must be the dict"):
        checks.compare([1, 2], {})
    t = forward(np.ones((2, 1)), _ninja_case(np.random.default_rng(0), 2, 1, 2, 2), np.array([0, 1]))
    with pytest.raises(ValueError, match="backward"):
        checks.compare({}, t)


# -- 3. the routes to the reference -------------------------------------------------------------------------------
ATTACKERS = {
    "tensor_backward": ("backward_by_hand", "bplib.tensor.Tensor.backward", """
def backward_by_hand(v, y):
    from bplib.checks.calls.backprop_ninja import forward, GRADS
    t = forward(v["x"], v, y)
    t["loss"].backward()
    return {k: t[k[1:]].grad for k in GRADS}
"""),
    "tensor_local_rules": ("backward_by_hand", "bplib.tensor.Tensor.", """
def backward_by_hand(v, y):
    from bplib.checks.calls.backprop_ninja import forward, GRADS
    t = forward(v["x"], v, y)
    order, seen = [], set()
    def visit(n):
        if id(n) not in seen:
            seen.add(id(n))
            for c in n._prev:
                visit(c)
            order.append(n)
    visit(t["loss"])
    for n in order:
        n.grad = np.zeros_like(n.data)
    t["loss"].grad = np.ones_like(t["loss"].data)
    for n in reversed(order):
        n._backward()
    return {k: t[k[1:]].grad for k in GRADS}
"""),
    "softmax_cross_entropy": ("cross_entropy_backward", "bplib.losses.softmax_cross_entropy", """
def cross_entropy_backward(logits, y):
    from bplib.losses import softmax_cross_entropy
    return softmax_cross_entropy(logits, y)[1]
"""),
    "tensor_log_softmax": ("cross_entropy_backward", "bplib.tensor.Tensor.backward", """
def cross_entropy_backward(logits, y):
    t = Tensor(logits)
    loss = -t.log_softmax(axis=1)[np.arange(len(y)), y].mean()
    loss.backward()
    return t.grad
"""),
    "batchnorm_backward": ("batchnorm_backward_fused", "bplib.layers.batchnorm_backward", """
def batchnorm_backward_fused(dh_bn, h_hat, gamma, inv_std):
    from bplib.layers import batchnorm_backward
    return batchnorm_backward(dh_bn, dict(x_hat=h_hat, gamma=gamma, inv_std=inv_std.reshape(-1)))[0]
"""),
}


def solution_nb():
    nb = nbformat.read(str(NB), as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = c.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
    return nb


def with_attacker(name):
    fn, _, src = ATTACKERS[name]
    nb = solution_nb()
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and f"def {fn}(" in c.source)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(textwrap.dedent(src)))
    return nb


@pytest.mark.parametrize("name", sorted(ATTACKERS))
def test_every_attacker_works_in_a_learners_kernel(name):
    fn, _, src = ATTACKERS[name]
    ns = notebook_namespace()
    exec(textwrap.dedent(src), ns)
    with contextlib.redirect_stdout(io.StringIO()):
        v, _, _ = run_check(CHECKS[f"{fn}_visible"], ns[fn])
    assert v.passed, v.message


@pytest.fixture(scope="module")
def regraded(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ninja"))
    os.chmod(tmp, 0o755)
    stripped = strip.build(tmp, rerun.allowed(A))[0]
    hide = [str(ROOT / d) for d in ("solutions", "grading", "tests", ".git")]
    uid, lock = engine.reserve_uid()   # a sandbox uid no grading run beside this test holds
    env = dict(os.environ, GRADING_HIDE=os.pathsep.join(hide), GRADING_UID=str(uid), GRADING_MEM_MB="2048",
               GRADING_CPU_S="120", GRADING_BPLIB_OVERLAY=stripped, OPENBLAS_NUM_THREADS="1")
    drawn = rerun.draw_cases(A, 20261202)

    def grade(nb):
        job = tempfile.mkdtemp(prefix="job-", dir=tmp)
        os.chmod(job, 0o755)
        rerun.make_job(job, nb, A, drawn)
        result, killed = rerun.run_job(job, env, 300)
        assert result is not None, killed
        meta, arrays = result
        _, text = rerun.function_sources(nb, [])
        return rerun.judge_job(drawn, meta, arrays, text)

    try:
        out = {"honest": grade(solution_nb())}
        for name in ATTACKERS:
            out[name] = grade(with_attacker(name))
    finally:
        if lock is not None:
            lock.close()
    return out


def test_the_honest_solution_gets_every_point_in_the_clean_rerun(regraded):
    bad = {cid: v["message"] for cid, v in regraded["honest"].items() if not v["passed"] or v["status"] != "ok"}
    assert not bad
    assert len(regraded["honest"]) == 6


@pytest.mark.parametrize("name", sorted(ATTACKERS))
def test_a_route_to_the_reference_scores_zero_and_is_named(regraded, name):
    fn, reference, _ = ATTACKERS[name]
    for cid, v in regraded[name].items():
        if cid.startswith(fn + "_"):
            assert not v["passed"], (cid, v)
            assert v["status"].startswith(f"reference used: {reference}"), (cid, v["status"])
            assert "0 points" in v["message"]
            print(f"{name:22} {cid:34} {v['status'][:100]}")
        else:
            assert v["passed"] and v["status"] == "ok", (cid, v)
