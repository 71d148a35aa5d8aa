"""Every instructor notebook runs from top to bottom, and every check in it passes.

Two independent runners:
* nbclient, as a learner's "Run All" would (full-size training cells), asserting no
  cell errored, every check printed a pass, and the summary counts every visible
  check (cell times are not asserted: speed is never asserted in tests);
* nbval --nbval-lax (BPLIB_FAST=1, the graders' small training runs), in a
  subprocess. nbval-lax alone has let an erroring cell pass (nbval issue 147),
  hence the first runner.
"""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
from nbclient import NotebookClient

from mutants._course import ASSIGNMENTS, ROOT, env

PRESENT = [a for a in ASSIGNMENTS if (ROOT / "solutions" / a / f"{a}.ipynb").exists()]


def _run_in_full(assignment):
    """The instructor notebook executed as a learner's Run All would (no BPLIB_FAST: full-size training)."""
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    e = dict(os.environ)
    e.pop("BPLIB_FAST", None)
    e.pop("BPLIB_RECORD_DIR", None)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=e)          # the kernel's environment (jupyter_client start_kernel(env=...))
    return nb


@pytest.fixture(scope="module")
def full_runs(request):
    """The full runs of the selected tests' solutions, started together, two at a time (each kernel
    keeps one core busy, and CI has two); each test waits for its own notebook."""
    selected = {item.callspec.params.get("assignment") for item in request.session.items
                if getattr(item, "originalname", "") == "test_solution_runs_and_passes_every_check"
                and hasattr(item, "callspec")}
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        yield {a: pool.submit(_run_in_full, a) for a in PRESENT if a in selected}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("assignment", PRESENT)
def test_solution_runs_and_passes_every_check(assignment, full_runs):
    nb = full_runs[assignment].result()
    errors, printed = [], []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        for o in cell.outputs:
            if o.output_type == "error":
                errors.append(f"cell {i}: {o.ename}: {o.evalue}")
            elif o.output_type == "stream":
                printed.append(o.text)
    assert not errors, "\n".join(errors)
    out = "".join(printed)
    from bplib.checks import CHECKS
    for cid, c in CHECKS.items():
        if c.assignment == assignment:
            if c.hidden:             # hidden cases live with the grader: the cell only says so
                assert f"· {c.fn_name} (hidden tests, {c.points} pt): these run when your notebook is graded" in out
            else:
                assert f"✓ {c.fn_name} (visible tests): passed" in out, f"{cid} did not print a pass"
    assert "✗" not in out
    assert "All visible checks pass" in out


def test_nbval_lax_on_solutions(tmp_path):
    # copies without the check cells' "raises-exception" tag (it tells nbval an error is fine)
    paths = []
    for a in PRESENT:
        nb = nbformat.read(str(ROOT / "solutions" / a / f"{a}.ipynb"), as_version=4)
        for cell in nb.cells:
            cell.metadata.pop("tags", None)
        (tmp_path / a).mkdir()
        nbformat.write(nb, str(tmp_path / a / f"{a}.ipynb"))
        paths.append(str(tmp_path / a / f"{a}.ipynb"))
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), *paths],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout


@pytest.mark.parametrize("assignment", PRESENT)
def test_untouched_exercise_runs_to_the_summary(assignment):
    """Run All on the exercise as handed out (nbclient stops at an error, like JupyterLab, except in
    cells tagged raises-exception): every visible check says "not implemented yet", the demo
    cells wait politely, and the summary cell runs."""
    path = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out = "".join(o.get("text", "") or o.get("evalue", "") for c in nb.cells if c.cell_type == "code"
                  for o in c.outputs)          # a failed check's verdict is its error (shown once, no traceback)
    from bplib.checks import CHECKS
    n_visible = sum(1 for c in CHECKS.values() if c.assignment == assignment and not c.hidden)
    assert out.count("not implemented yet") >= n_visible
    assert f"{assignment}: 0 of {n_visible} visible checks pass" in out
