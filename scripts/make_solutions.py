"""Build the instructor notebooks solutions/<a>/<a>.ipynb from solutions/.src/<a>.py.

The sources are jupytext-style percent files with a few tags of our own:

    # %% [markdown]            a markdown cell (lines start with "# ")
    # %%                       a plain code cell (the learner may edit it)
    # %% locked                a read-only code cell (nbgrader restores it when grading)
    # %% solution              a graded function; code between ### BEGIN SOLUTION / ### END SOLUTION
                               is replaced by `raise NotImplementedError()` in the exercise
    # %% check <check_id>      an autograded test cell: `check("<check_id>", <function>)`,
                               points and function from bplib.checks; "_hidden" checks are
                               wrapped in ### BEGIN/END HIDDEN TESTS; visible ones are tagged
                               raises-exception (Run All shows every verdict)

Usage:  python scripts/make_solutions.py [assignment ...]   (default: all)
Then `make exercises` runs `nbgrader generate_assignment` to write exercises/.
"""
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "solutions" / ".src"   # a dot folder: nbgrader does not list it as an assignment
sys.path.insert(0, str(ROOT))
from bplib.checks import ASSIGNMENTS, CHECKS  # noqa: E402

_HEADER = re.compile(r"^# %%(.*)$")


def _nbgrader(grade_id, *, solution=False, grade=False, locked=False, points=None):
    meta = {"schema_version": 3, "grade_id": grade_id, "task": False,
            "solution": solution, "grade": grade, "locked": locked}
    if points is not None:
        meta["points"] = points
    return meta


def _check_cell(check_id, assignment):
    c = CHECKS.get(check_id)
    if c is None or c.assignment != assignment:
        raise SystemExit(f"{assignment}: unknown check {check_id!r} (define it in bplib/checks/{assignment}.py)")
    if c.hidden:
        src = (f"# Hidden tests (other shapes and edge cases) run here when your notebook is graded.\n"
               f"### BEGIN HIDDEN TESTS\n"
               f"from bplib.checks import check\n"
               f"check(\"{check_id}\", {c.fn_name})\n"
               f"### END HIDDEN TESTS")
    else:
        src = (f"# Visible tests: run this cell to check {c.fn_name}.\n"
               f"from bplib.checks import check\n"
               f"check(\"{check_id}\", {c.fn_name})")
    cell = nbformat.v4.new_code_cell(src)
    cell.metadata["nbgrader"] = _nbgrader(check_id, grade=True, locked=True, points=c.points)
    if not c.hidden:
        # JupyterLab's Run All goes on past a failing check, so one run shows every verdict and
        # the summary (nbgrader still scores the cell 0: it looks at the error, not the tag)
        cell.metadata["tags"] = ["raises-exception"]
    return cell


def parse(assignment):
    text = (SRC / f"{assignment}.py").read_text()
    blocks, cur = [], None
    for line in text.splitlines():
        m = _HEADER.match(line)
        if m:
            cur = [m.group(1).strip(), []]
            blocks.append(cur)
        elif cur is not None:
            cur[1].append(line)
    cells, used_ids, checks_seen = [], set(), set()
    for n, (tag, lines) in enumerate(blocks):
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        body = "\n".join(lines)
        if tag == "[markdown]":
            md = "\n".join(re.sub(r"^# ?", "", l) if l.startswith("#") else l for l in lines)
            cells.append(nbformat.v4.new_markdown_cell(md))
        elif tag == "":
            cells.append(nbformat.v4.new_code_cell(body))
        elif tag == "locked":
            cell = nbformat.v4.new_code_cell(body)
            cell.metadata["nbgrader"] = _nbgrader(f"{assignment}_readonly_{n}", locked=True)
            cells.append(cell)
        elif tag == "solution":
            m = re.search(r"^def (\w+)", body, re.M)
            if not m or "### BEGIN SOLUTION" not in body:
                raise SystemExit(f"{assignment}: a solution cell needs a `def` and ### BEGIN SOLUTION:\n{body[:200]}")
            gid = f"{m.group(1)}_code"
            if gid in used_ids:
                raise SystemExit(f"{assignment}: two solution cells for {m.group(1)}")
            used_ids.add(gid)
            cell = nbformat.v4.new_code_cell(body)
            cell.metadata["nbgrader"] = _nbgrader(gid, solution=True)
            cells.append(cell)
        elif tag.startswith("check "):
            cid = tag.split()[1]
            checks_seen.add(cid)
            cells.append(_check_cell(cid, assignment))
        else:
            raise SystemExit(f"{assignment}: unknown cell tag {tag!r}")
    missing = {cid for cid, c in CHECKS.items() if c.assignment == assignment} - checks_seen
    if missing:
        raise SystemExit(f"{assignment}: checks with no test cell: {sorted(missing)}")
    # the opening table of functions states each function's points: they must match bplib.checks
    intro = cells[0].source if cells and cells[0].cell_type == "markdown" else ""
    points = {}
    for c in CHECKS.values():
        if c.assignment == assignment:
            points[c.fn_name] = points.get(c.fn_name, 0) + c.points
    for fn, pts in points.items():
        row = re.search(rf"^\| `{fn}\(.*\| (\d+) \|$", intro, re.M)
        if not row or int(row.group(1)) != pts:
            raise SystemExit(f"{assignment}: the opening table must list `{fn}(...)` with {pts} points")
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):          # stable ids: diffs stay small
        cell.id = f"{assignment[:12]}-{i:02d}".replace("_", "-")
    return nb


def main(names):
    for a in names or [a for a in ASSIGNMENTS if (SRC / f"{a}.py").exists()]:
        nb = parse(a)
        out = ROOT / "solutions" / a / f"{a}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.validate(nb)
        nbformat.write(nb, str(out))
        print(f"wrote {out.relative_to(ROOT)} ({len(nb.cells)} cells)")


if __name__ == "__main__":
    main(sys.argv[1:])
