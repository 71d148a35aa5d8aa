"""`make check`: run exercise notebooks headless, as they are saved, and print each one's summary.

    python scripts/check_notebooks.py                     every notebook in exercises/
    python scripts/check_notebooks.py dense_backward ...  some of them

Each notebook runs from the top in a fresh kernel (a copy in memory: the file is not changed),
with errors allowed, so every check cell runs and the summary cell at the end prints which visible
checks pass. The training cells run their short version (BPLIB_FAST=1). Hidden tests run only when
the instructor grades. Exit status 0 when every notebook ran, 1 when one could not be run at all.
"""
import os
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXERCISES = os.path.join(ROOT, "exercises")


def _text(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o.get("text", ""))
        elif o.get("output_type") in ("execute_result", "display_data"):
            out.append(o.get("data", {}).get("text/plain", ""))
        elif o.get("output_type") == "error":          # a failed check: its verdict is the error
            out.append(o.get("evalue", "") + "\n")
    return "".join(out)


def run(assignment, timeout=300):
    path = os.path.join(EXERCISES, assignment, f"{assignment}.ipynb")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": os.path.dirname(path)}})
    client.execute(stderr=subprocess.DEVNULL)      # the kernel's own start-up warnings are not for the learner
    failed = [c for c in nb.cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    summary = [c for c in nb.cells if c.cell_type == "code" and "checks.summary(" in c.source]
    return nb, failed, (_text(summary[-1]) if summary else "")


def main(argv):
    names = argv or sorted(d for d in os.listdir(EXERCISES)
                           if os.path.isfile(os.path.join(EXERCISES, d, f"{d}.ipynb")))
    os.environ.setdefault("BPLIB_FAST", "1")
    status = 0
    for a in names:
        print(f"== {a} ==", flush=True)
        if not os.path.isfile(os.path.join(EXERCISES, a, f"{a}.ipynb")):
            print(f"no notebook exercises/{a}/{a}.ipynb")
            status = 1
            continue
        try:
            _, failed, summary = run(a)
        except Exception as e:  # noqa: BLE001  (a kernel that died, a cell over the time limit)
            print(f"could not run the notebook: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
            status = 1
            continue
        print(summary.rstrip() or "(the summary cell printed nothing: is it still there?)")
        print(f"cells that raised an error: {len(failed)} (a failing check raises one; open the notebook to read it)\n",
              flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
