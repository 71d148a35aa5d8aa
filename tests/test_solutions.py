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

import nbformat
import pytest
from nbclient import NotebookClient

from mutants._course import ASSIGNMENTS, ROOT, env

PRESENT = [a for a in ASSIGNMENTS if (ROOT / "solutions" / a / f"{a}.ipynb").exists()]


@pytest.mark.parametrize("assignment", PRESENT)
def test_solution_runs_and_passes_every_check(assignment):
    path = ROOT / "solutions" / assignment / f"{assignment}.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    e = dict(os.environ)
    e.pop("BPLIB_FAST", None)
    e.pop("BPLIB_RECORD_DIR", None)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                         resources={"metadata": {"path": str(path.parent)}})
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(e)
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
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
            kind = "hidden" if c.hidden else "visible"
            assert f"✓ {c.fn_name} ({kind} tests): passed" in out, f"{cid} did not print a pass"
    assert "✗" not in out
    assert "All visible checks pass" in out


def test_nbval_lax_on_solutions():
    paths = [str(ROOT / "solutions" / a / f"{a}.ipynb") for a in PRESENT]
    r = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider",
                        "--rootdir", str(ROOT / "solutions"), *paths],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout
