"""A generated class of honest, wrong and hostile submissions, graded in ONE parallel run.

Every robustness promise of book/instructors.md is one student here; each test
asserts that student's score and flag (grades.csv) after a single
``python -m grading`` run over the whole class (tests/fixtures in the real
dense_backward assignment; cell limit lowered to keep CI fast).
"""
import atexit
import csv
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import background
from mutants import _course
from grading import synthetic

pytestmark = pytest.mark.skipif(not os.path.isfile(os.path.join(synthetic.REPO, "solutions", "dense_backward",
                                                                "dense_backward.ipynb")),
                                reason="solutions/dense_backward not built")

TIMEOUT = 8          # seconds per cell (nbgrader_config.py says 30; the pipeline passes a smaller limit)
FULL, FIRST = 13, 5  # dense_backward: 13 points, 5 of them for dense_backward (the first function)

# student -> (kind, expected score, a phrase the status must contain, or "ok")
CASES = {
    "correct": ("correct", FULL, "ok"),
    "wrong": ("wrong", FULL - FIRST, "ok"),
    "unfinished": ("unfinished", 0, "not attempted"),
    "hangsolution": ("hang_solution", FULL, "interrupted after the 8 s cell limit"),
    "hangimport": ("hang_import", FULL, "interrupted after the 8 s cell limit"),
    "killkernel": ("kill_kernel", 0, "kernel died"),
    "hanguninterruptible": ("hang_uninterruptible", 0, "the kernel"),   # died (CPU limit) or stopped
    "sysexit": ("sys_exit", FULL - FIRST, "SystemExit"),
    "raiseeverywhere": ("raise_everywhere", 0, "RuntimeError"),
    "print100mb": ("print_100mb", FULL - FIRST, "output limit"),
    "memoryhog": ("memory_hog", FULL - FIRST, "MemoryError"),
    "deletetest": ("delete_test", FULL, "test cells deleted (put back and graded): dense_backward_visible"),
    "edittest": ("edit_test", FULL, "locked cells edited (restored"),
    "changemetadata": ("change_metadata", FULL, "grading metadata changed (restored)"),
    "renamefunction": ("rename_function", FULL - FIRST, "NameError"),
    "monkeypatch": ("monkeypatch", FULL - FIRST, "passed in the learner's kernel, not in the clean re-run"),
    "replacecheck": ("replace_check", FULL - FIRST, "passed in the learner's kernel, not in the clean re-run"),
    "fileanswers": ("file_answers", FULL - FIRST, "reads files"),
    "steal": ("steal", 0, "reads files"),
    "notnotebook": ("not_notebook", 0, "not a notebook"),
    "empty": ("empty", 0, "empty file"),
    "badjson": ("bad_json", 0, "not valid JSON"),
    "otherassignment": ("other_assignment", 0, "a notebook from assignment chain_rule"),
    "wrongname": ("wrong_name", FULL, "ok"),
    "moodle_smith_4242": ("moodle", FULL, "ok"),
}


def grade_the_class():
    """The whole class generated and graded by one ``python -m grading`` (started in the background
    once the tests are collected: tests/background.py)."""
    base = Path(tempfile.mkdtemp(prefix="bp-hostile-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    plan = [("moodle" if k == "moodle" else s, k) for s, (k, _, _) in CASES.items()]
    synthetic.make_class("dense_backward", str(base / "class"), plan, work=str(base / "release"))
    before = _snapshot(base / "class")
    out = base / "out"
    r = subprocess.run([sys.executable, "-m", "grading", "dense_backward", str(base / "class"), "--out", str(out),
                        "--seed", "7", "--timeout", str(TIMEOUT), "--quiet"], cwd=synthetic.REPO, env=_course.env(),
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, f"python -m grading failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    with open(out / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    with open(out / "results.json") as f:
        results = json.load(f)
    return {"rows": rows, "results": results, "out": out, "class": base / "class", "before": before}


background.register("hostile_class", __name__, grade_the_class)


@pytest.fixture(scope="module")
def graded():
    return background.result("hostile_class")


def _snapshot(folder):
    snap = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                snap[os.path.relpath(p, folder)] = fh.read()
    return snap


def _text(html_path):
    with open(html_path, encoding="utf-8") as f:
        return html.unescape(re.sub(r"<[^>]+>", "", f.read()))


@pytest.mark.parametrize("student", sorted(CASES))
def test_each_student_score_and_flag(graded, student):
    kind, score, phrase = CASES[student]
    row = graded["rows"][student]
    if kind == "steal" and "mount-namespace" not in " ".join(graded["results"]["isolation"]):
        pytest.skip("no mount namespace here: the solutions are readable (see test_stealing_finds_nothing)")
    assert float(row["max_score"]) == FULL, row            # never extra points, whatever the metadata says
    assert float(row["score"]) == score, (kind, row["score"], row["status"])
    if phrase == "ok":
        # every generated learner types the instructor's solution: the similarity flag says so, and is
        # the only flag an honest submission gets (honest variants written differently: test_similarity.py)
        rest = [p for p in row["status"].split("; ") if not p.startswith("similar code: ")]
        assert rest in ([], ["ok"]), (kind, row["status"])
        if kind == "correct":
            assert "reference:solutions/dense_backward" in row["similarity"], row["similarity"]
    else:
        assert phrase in row["status"], (kind, row["status"])


def test_whole_class_graded_and_originals_untouched(graded):
    assert set(graded["rows"]) == set(CASES)
    assert _snapshot(graded["class"]) == graded["before"]


def test_wrong_file_name_is_reported(graded):
    assert "wrong file name: wrongname/my_homework_final(2).ipynb was graded as dense_backward.ipynb" \
        in graded["rows"]["wrongname"]["notes"]


def test_stealing_finds_nothing_to_steal(graded):
    iso = " ".join(graded["results"]["isolation"])
    if "mount-namespace" not in iso:
        pytest.skip(f"no mount namespace here ({iso}): other files are readable, see book/instructors.md")
    text = _text(graded["out"] / "feedback" / "steal.html")
    assert "functions stolen: 0" in text
    assert "notebooks found: 0" in text


def test_feedback_has_no_hidden_tests_or_solution_code(graded):
    fb = graded["out"] / "feedback"
    pages = sorted(os.listdir(fb))
    assert len(pages) >= 15
    for page in pages:
        text = _text(fb / page)
        assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text, page
        assert 'check("dense_backward_hidden"' not in text, page
    # the instructor's solution (from solutions/) appears in no feedback of a learner who did not write it
    solution = "dx = dout @ W.T"
    for page in ("unfinished.html", "steal.html"):
        assert solution not in _text(fb / page), page
    assert solution in _text(fb / "correct.html")   # the test can fail: this learner wrote it


def test_hostile_output_is_bounded(graded):
    size = os.path.getsize(graded["out"] / "feedback" / "print100mb.html")
    assert size < 2_000_000, size


def test_kernels_ran_in_the_sandbox(graded):
    iso = " ".join(graded["results"]["isolation"])
    assert "limits: memory 2048 MB" in iso                  # RLIMIT_AS, as root or not
    if os.geteuid() == 0 and "mount-namespace" in iso:
        assert "runs as uid 62" in iso                       # not root: cannot undo the hidden paths
        hidden = iso.split("mount-namespace hides: ")[1].split("\n")[0].split()
        solutions = os.path.realpath(os.path.join(synthetic.REPO, "solutions"))
        assert any(solutions == h or solutions.startswith(h + os.sep) for h in hidden), hidden
