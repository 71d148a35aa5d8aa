"""Generated classes for the tests and the benchmark: honest, wrong and hostile submissions.

    python -m grading.synthetic dense_backward /tmp/class --correct 60 --wrong 30 --unfinished 10

Every submission starts from the released notebook (what learners download) and
fills the solution cells with the instructor's solution (markers removed), then
a ``kind`` changes it: a wrong function, a hang, a dead kernel, a cheat, ...
The kinds are the robustness cases of book/instructors.md; each is graded by
tests/test_grading_hostile.py.
"""
import argparse
import json
import os
import re

import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _nbg(cell):
    return cell.metadata.get("nbgrader", {})


def release_notebook(assignment, source_dir, work):
    """Run nbgrader generate_assignment into ``work``; returns (release nb, source nb)."""
    from .course import make_template
    os.makedirs(work, exist_ok=True)
    path = make_template(work, assignment, source_dir, 30)
    return (nbformat.read(path, as_version=4),
            nbformat.read(os.path.join(source_dir, assignment, f"{assignment}.ipynb"), as_version=4))


def solution_code(cell):
    lines = [ln for ln in cell.source.splitlines() if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln]
    return "\n".join(lines)


def correct(release, source):
    nb = nbformat.from_dict(json.loads(json.dumps(release)))
    sols = {_nbg(c).get("grade_id"): c for c in source.cells if _nbg(c).get("solution")}
    for c in nb.cells:
        gid = _nbg(c).get("grade_id")
        if _nbg(c).get("solution") and gid in sols:
            c.source = solution_code(sols[gid])
    return nb


def functions(nb):
    """Names of the functions defined in solution cells, in order."""
    out = []
    for c in nb.cells:
        if _nbg(c).get("solution"):
            out += re.findall(r"^def (\w+)\(", c.source, re.M)
    return out


def _solution_cells(nb):
    return [c for c in nb.cells if _nbg(c).get("solution")]


def _tests(nb):
    return [c for c in nb.cells if _nbg(c).get("grade")]


def _insert_after_first_solution(nb, src):
    idx = nb.cells.index(_solution_cells(nb)[0])
    nb.cells.insert(idx + 1, nbformat.v4.new_code_cell(src))


def _wrap_first(nb, body):
    """Replace the first learner function by a wrapper whose body is ``body`` (may call ``_ok``)."""
    fn = functions(nb)[0]
    cell = _solution_cells(nb)[0]
    cell.source += (f"\n\n_ok = {fn}\n\ndef {fn}(*args, **kwargs):\n"
                    + "\n".join("    " + ln for ln in body.splitlines()))
    return fn


# -- the kinds of submission ------------------------------------------------------
def k_correct(nb, ctx):
    return nb


def k_unfinished(nb, ctx):
    return nbformat.from_dict(json.loads(json.dumps(ctx["release"])))


def k_wrong(nb, ctx):
    """The first function answers twice the right value: its tests fail, the others pass."""
    _wrap_first(nb, "out = _ok(*args, **kwargs)\nreturn tuple(2 * o for o in out) if isinstance(out, tuple) else 2 * out")
    return nb


def k_hang_solution(nb, ctx):
    """An endless loop at the end of the first solution cell (after its def): interrupted, rest grades."""
    _solution_cells(nb)[0].source += "\n\nwhile True:\n    pass\n"
    return nb


def k_hang_import(nb, ctx):
    """An endless wait in a new first code cell, next to the imports."""
    nb.cells.insert(0, nbformat.v4.new_code_cell("import time\nwhile True:\n    time.sleep(0.1)\n"))
    return nb


def k_hang_uninterruptible(nb, ctx):
    """An endless loop that ignores the interrupt (SIGINT): only the kernel's CPU limit ends it."""
    _insert_after_first_solution(nb, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                     "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n")
    return nb


def k_kill_kernel(nb, ctx):
    _insert_after_first_solution(nb, "import os\nos._exit(1)\n")
    return nb


def k_sys_exit(nb, ctx):
    _wrap_first(nb, "import sys\nsys.exit('bye')")
    return nb


def k_raise_everywhere(nb, ctx):
    for c in nb.cells:
        if c.cell_type == "code" and not _nbg(c).get("locked"):
            c.source = "raise RuntimeError('boom')\n" + c.source
    return nb


def k_print_100mb(nb, ctx):
    _wrap_first(nb, "print('x' * 100_000_000)\nfor _ in range(100):\n    print('y' * 1_000_000)")
    return nb


def k_memory_hog(nb, ctx):
    """Asks for far more than the machine has: one 8 TB array, then 256 MB blocks up to 8 GB, touched."""
    _wrap_first(nb, "import numpy as np\nhog = []\ntry:\n    hog.append(np.empty(10**12))\nexcept MemoryError:\n"
                    "    pass\nfor _ in range(32):\n    hog.append(np.ones(32 * 2**20))\nreturn _ok(*args, **kwargs)")
    return nb


def k_delete_test(nb, ctx):
    nb.cells.remove(_tests(nb)[0])
    return nb


def k_edit_test(nb, ctx):
    for c in _tests(nb):
        c.source = "pass  # no tests here"
    return nb


def k_change_metadata(nb, ctx):
    """Points raised to 100, and a test cell marked as not graded."""
    tests = _tests(nb)
    tests[0].metadata["nbgrader"]["points"] = 100
    tests[1].metadata["nbgrader"]["grade"] = False
    return nb


def k_rename_function(nb, ctx):
    fn = functions(nb)[0]
    c = _solution_cells(nb)[0]
    c.source = re.sub(rf"^def {fn}\(", f"def my_{fn}(", c.source, flags=re.M)
    return nb


def k_monkeypatch(nb, ctx):
    """Wrong answers, and everything that judges them patched to say yes."""
    nb = k_wrong(nb, ctx)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import numpy as np, numpy.testing\n"
        "np.allclose = lambda *a, **k: True\n"
        "np.testing.assert_allclose = lambda *a, **k: None\n"
        "import bplib.gradcheck, bplib.checks.core as core\n"
        "class _Yes:\n    ok, error, message, worst = True, 0.0, 'ok', None\n"
        "core.compare = bplib.gradcheck.compare = lambda *a, **k: _Yes()\n"
        "core.rel_error = bplib.gradcheck.rel_error = lambda *a, **k: 0.0\n"))
    return nb


def k_replace_check(nb, ctx):
    """Wrong answers, and bplib's check replaced by one that always passes (and records nothing)."""
    nb = k_wrong(nb, ctx)
    nb.cells.insert(0, nbformat.v4.new_code_cell(
        "import bplib.checks\nbplib.checks.check = lambda check_id, fn: print('passed!')\n"))
    return nb


def k_file_answers(nb, ctx):
    """Answers read from a file shipped next to the notebook (the grader copies only the notebook)."""
    _wrap_first(nb, "import numpy as np\nd = np.load('expected.npz')\nreturn tuple(d[k] for k in sorted(d.files))")
    return nb


def k_steal(nb, ctx):
    """Looks for the instructor's solution and the other students' notebooks on disk and runs what it finds."""
    targets = [os.path.join(REPO, "solutions"), ctx["class_dir"], os.path.join(REPO, "runs"),
               os.path.join(REPO, ".git"), os.path.expanduser("~"), "/tmp"]
    stub = "\n\n".join(f"def {fn}(*args, **kwargs):\n    raise NotImplementedError" for fn in functions(nb))
    for c in _solution_cells(nb):
        c.source = ""
    _solution_cells(nb)[0].source = stub
    nb.cells.append(nbformat.v4.new_code_cell(
        "import json, os, re\n"
        f"targets = {targets!r}\n"
        "import bplib\n"
        "targets.append(os.path.join(os.path.dirname(os.path.dirname(bplib.__file__)), 'solutions'))\n"
        "found = []\n"
        "import sys\n"
        "public = os.path.realpath(sys.prefix) + os.sep   # installed packages: public code, not answers\n"
        "for t in targets:\n"
        "    for root, dirs, files in os.walk(t):\n"
        "        if os.path.realpath(root).startswith(public):\n"
        "            dirs[:] = []\n"
        "            continue\n"
        "        for f in files:\n"
        "            if f.endswith('.ipynb') and len(found) < 200:\n"
        "                found.append(os.path.join(root, f))\n"
        "stolen = 0\n"
        "for path in found:\n"
        "    try:\n"
        "        cells = json.load(open(path))['cells']\n"
        "    except Exception:\n"
        "        continue\n"
        "    for c in cells:\n"
        "        src = ''.join(c['source'])\n"
        "        if src.lstrip().startswith('def ') and 'NotImplementedError' not in src:\n"
        "            try:\n"
        "                exec(src.replace('### BEGIN SOLUTION', '').replace('### END SOLUTION', ''), globals())\n"
        "                stolen += 1\n"
        "            except Exception:\n"
        "                pass\n"
        "print('notebooks found:', len(found), 'functions stolen:', stolen)\n"))
    # the test cells come after the stealing cell
    tests = _tests(nb)
    for t in tests:
        nb.cells.remove(t)
    nb.cells.extend(tests)
    return nb


KINDS = {name[2:]: fn for name, fn in globals().items() if name.startswith("k_")}


def write(nb, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nbformat.write(nb, path)


def make_class(assignment, dest, plan, source_dir=None, work=None):
    """Write a class into ``dest``: ``plan`` is a list of (student, kind). Returns {student: kind}.

    Besides the KINDS, ``plan`` may name files that are not gradable notebooks:
    ``not_notebook``, ``empty``, ``bad_json``, ``other_assignment`` (needs chain_rule), ``wrong_name``,
    ``moodle`` (a folder named like a Moodle export)."""
    source_dir = source_dir or os.path.join(REPO, "solutions")
    work = work or dest + "-release"
    release, source = release_notebook(assignment, source_dir, work)
    good = correct(release, source)
    os.makedirs(dest, exist_ok=True)
    out = {}
    for student, kind in plan:
        ctx = {"release": release, "source": source, "class_dir": dest}
        base = nbformat.from_dict(json.loads(json.dumps(good)))
        if kind == "not_notebook":
            with open(os.path.join(dest, f"{student}.pdf"), "wb") as f:
                f.write(b"%PDF-1.4 not a notebook\n")
        elif kind == "empty":
            open(os.path.join(dest, f"{student}.ipynb"), "w").close()
        elif kind == "bad_json":
            with open(os.path.join(dest, f"{student}.ipynb"), "w") as f:
                f.write('{"cells": [ {"cell_type": "code", "source": "x = 1",,, }')
        elif kind == "other_assignment":
            other = "chain_rule" if assignment != "chain_rule" else "dense_backward"
            rel, src = release_notebook(other, source_dir if os.path.isdir(os.path.join(source_dir, other))
                                        else os.path.join(REPO, "solutions"), work + "-" + other)
            write(correct(rel, src), os.path.join(dest, f"{student}.ipynb"))
        elif kind == "wrong_name":
            write(base, os.path.join(dest, student, "my_homework_final(2).ipynb"))
        elif kind == "moodle":
            write(base, os.path.join(dest, f"{student.title()} Smith_4242_assignsubmission_file_",
                                     f"{assignment}.ipynb"))
        elif kind == "file_answers":
            write(KINDS[kind](base, ctx), os.path.join(dest, student, f"{assignment}.ipynb"))
            import numpy as np
            np.savez(os.path.join(dest, student, "expected.npz"), a=np.zeros(3))
        else:
            write(KINDS[kind](base, ctx), os.path.join(dest, f"{student}.ipynb"))
        out[student] = kind
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("assignment")
    p.add_argument("dest")
    p.add_argument("--correct", type=int, default=60)
    p.add_argument("--wrong", type=int, default=30)
    p.add_argument("--unfinished", type=int, default=10)
    p.add_argument("--source-dir", default=None)
    args = p.parse_args(argv)
    plan = ([(f"c{i:03d}", "correct") for i in range(args.correct)]
            + [(f"w{i:03d}", "wrong") for i in range(args.wrong)]
            + [(f"u{i:03d}", "unfinished") for i in range(args.unfinished)])
    make_class(args.assignment, args.dest, plan, args.source_dir)
    print(args.dest)


if __name__ == "__main__":
    main()
