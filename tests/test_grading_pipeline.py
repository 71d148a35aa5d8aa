"""The grading pipeline's parts, and a small class end to end (a Moodle-style zip, regraded twice).

The end-to-end run uses the tiny assignment in tests/fixtures/grading/source/mini
(two functions of the chain-rule chapter, checked by bplib.checks), so it is fast.
The hostile class on the real assignment is tests/test_grading_hostile.py.
"""
import csv
import hashlib
import json
import os
import zipfile

import nbformat
import pytest

from grading import cli, collect, inspect_nb, report, synthetic
from grading.preprocessors import CapOutput

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "fixtures", "grading", "source")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    work = tmp_path_factory.mktemp("release")
    rel, src = synthetic.release_notebook("mini", SOURCE, str(work))
    return rel, src


# -- collect ---------------------------------------------------------------------------
def test_student_ids():
    assert collect.student_id("Alice Smith_12345_assignsubmission_file_") == "alice_smith_12345"
    assert collect.student_id("bob") == "bob"
    assert collect.student_id("Ça va?! ") == "a_va"
    assert collect.student_id("...") == "student"


def test_collect_shapes(tmp_path):
    (tmp_path / "alice.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "mini.ipynb").write_text("{}")
    (tmp_path / "bob" / "notes.txt").write_text("x")
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "homework.ipynb").write_text("{}")
    (tmp_path / "dave.pdf").write_bytes(b"%PDF")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / "erin").mkdir()
    subs = {s.student: s for s in collect.collect(str(tmp_path), "mini")}
    assert sorted(subs) == ["alice", "bob", "carol", "dave", "erin"]
    assert subs["bob"].path.endswith("bob/mini.ipynb") and not subs["bob"].notes
    assert "wrong file name: carol/homework.ipynb was graded as mini.ipynb" in subs["carol"].notes
    assert subs["dave"].problem.startswith("not a notebook")
    assert subs["erin"].problem == "empty folder: no files submitted"


def test_zip_is_unpacked_safely(tmp_path):
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("Alice Smith_1_assignsubmission_file_/mini.ipynb", "{}")
        zf.writestr("../escape.ipynb", "{}")
        zf.writestr("/abs.ipynb", "{}")
        zf.writestr("__MACOSX/._mini.ipynb", "junk")
    dest = collect.unpack_zip(str(z), str(tmp_path / "in"))
    assert not (tmp_path / "escape.ipynb").exists()
    subs = collect.collect(dest, "mini")
    assert [s.student for s in subs] == ["alice_smith_1"]       # absolute and .. paths skipped


def test_not_a_zip(tmp_path):
    bad = tmp_path / "x.zip"
    bad.write_text("no")
    with pytest.raises(collect.CollectionError, match="not a readable zip"):
        collect.unpack_zip(str(bad), str(tmp_path / "in"))


# -- inspect ---------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    (b"", "empty file"),
    (b"   \n", "empty file"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe", "binary file"),
    (b'{"cells": [1,,]}', "not valid JSON (line 1"),
    (b'[1, 2]', "not a Jupyter notebook"),
    (b'{"hello": 1}', "not a Jupyter notebook"),
])
def test_unreadable_files_get_a_message(tmp_path, release, content, message):
    p = tmp_path / "x.ipynb"
    p.write_bytes(content)
    prep = inspect_nb.prepare(str(p), release[0], "mini")
    assert prep.notebook is None and message in prep.problem


def _nb_file(tmp_path, nb):
    p = tmp_path / "sub.ipynb"
    nbformat.write(nb, str(p))
    return str(p)


def test_deleted_edited_and_relabelled_test_cells_are_restored(tmp_path, release):
    rel, src = release
    nb = synthetic.correct(rel, src)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    nb.cells.remove(tests[0])                                   # deleted
    tests[1].source = "pass"                                    # edited
    tests[2].metadata["nbgrader"]["points"] = 50                # more points, please
    tests[3].metadata["nbgrader"]["grade"] = False              # not graded, please
    prep = inspect_nb.prepare(_nb_file(tmp_path, nb), rel, "mini")
    got = [(c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"].get("points"), c.source)
           for c in prep.notebook.cells if c.metadata.get("nbgrader", {}).get("grade")]
    want = [(c.metadata["nbgrader"]["grade_id"], c.metadata["nbgrader"].get("points"), c.source)
            for c in rel.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert got == want                                          # same cells, same order, same points
    flags = " | ".join(prep.flags)
    assert "test cells deleted (put back and graded): mul_backward_visible" in flags
    assert "locked cells edited" in flags and "mul_backward_hidden" in flags
    assert "grading metadata changed (restored): tanh_backward_visible, tanh_backward_hidden" in flags


def test_duplicate_and_foreign_graded_cells_lose_their_grading(tmp_path, release):
    rel, src = release
    nb = synthetic.correct(rel, src)
    test = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")][0]
    dup = nbformat.from_dict(json.loads(json.dumps(test)))
    dup.id = "a-copy"
    fake = nbformat.v4.new_code_cell("x = 1")
    fake.metadata["nbgrader"] = {"grade": True, "grade_id": "free_points", "points": 99, "locked": False,
                                 "solution": False, "schema_version": 3}
    nb.cells += [dup, fake]
    prep = inspect_nb.prepare(_nb_file(tmp_path, nb), rel, "mini")
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in prep.notebook.cells]
    assert ids.count(test.metadata["nbgrader"]["grade_id"]) == 1 and "free_points" not in ids
    assert any("appears twice" in f for f in prep.flags) and any("free_points" in f for f in prep.flags)


def test_notebook_without_metadata_gets_the_tests_added(tmp_path, release):
    rel, src = release
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def mul_backward(a, b, dout):\n    return b * dout, a * dout")]
    prep = inspect_nb.prepare(_nb_file(tmp_path, nb), rel, "mini")
    assert sum(bool(c.metadata.get("nbgrader", {}).get("grade")) for c in prep.notebook.cells) == 4
    assert any("no nbgrader metadata" in f for f in prep.flags)


@pytest.mark.parametrize("code, why", [
    ("import numpy as np\nnp.allclose = lambda *a, **k: True", "monkeypatching"),
    ("import bplib.checks as c", "grading checks"),
    ("check = lambda *a: None", "replaces a checking function"),
    ("x = open('/etc/passwd').read()", "reads files"),
    ("import os\nos._exit(0)", "exits"),
    ("!cat /etc/passwd", "runs programs"),
])
def test_scan_names_suspicious_code(code, why):
    assert any(why in r for r in inspect_nb.scan(code))


def test_scan_ignores_comments_and_honest_code():
    assert inspect_nb.scan("# np.allclose = 1\nda = b * dout  # open( later\n") == []
    assert inspect_nb.scan("np.isclose(a, b) == True") == []


# -- output cap, status ----------------------------------------------------------------------
def test_cap_output_cuts_long_streams():
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 10**6)]
    cell, _ = CapOutput(max_chars=1000).preprocess_cell(cell, {}, 0)
    assert len(cell.outputs[0].text) < 1100 and "output cut" in cell.outputs[0].text


def test_status_lists_problem_then_flags():
    assert report.status_of({"problem": "", "flags": []}) == "ok"
    assert report.status_of({"problem": "empty file", "flags": ["a", "a", "b"]}) == "empty file; a; b"


# -- end to end: a small class from a zip, graded twice ---------------------------------------
@pytest.fixture(scope="module")
def small_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("small")
    cls = base / "class"
    synthetic.make_class("mini", str(cls), [("ann", "correct"), ("ben", "wrong"), ("cat", "unfinished")],
                         source_dir=SOURCE, work=str(base / "release"))
    z = base / "moodle-export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for name, folder in [("ann", "Ann Lee_101"), ("ben", "Ben Ng_102"), ("cat", "Cat Roy_103")]:
            zf.write(cls / f"{name}.ipynb", f"{folder}_assignsubmission_file_/mini.ipynb")
    return base, z


def _run(capsys, zip_path, out):
    rc = cli.main(["mini", "--seed", "7", str(zip_path), "--source-dir", SOURCE, "--out", str(out), "--timeout", "20"])
    printed = capsys.readouterr().out
    assert rc == 0
    return printed


def test_zip_class_end_to_end_and_regrade_is_identical(small_class, capsys):
    base, z = small_class
    digest = hashlib.sha256(z.read_bytes()).hexdigest()
    out = base / "runs" / "mini"
    printed = _run(capsys, z, out)
    lines = printed.strip().splitlines()
    assert lines[-1] == str(out / "grades.csv")                       # the path is printed LAST
    assert "3 of 3 submissions graded" in printed and "needs a person's look: 1" in printed
    with open(out / "grades.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:4] == ["student", "score", "max_score", "status"]
    got = {r["student"]: (r["score"], r["max_score"], r["status"]) for r in rows}
    assert got == {"ann_lee_101": ("4", "4", "ok"), "ben_ng_102": ("2", "4", "ok"),
                   "cat_roy_103": ("0", "4", "not attempted")}
    for r in rows:
        assert os.path.isfile(r["feedback"])
    first = (out / "grades.csv").read_text()

    _run(capsys, z, out)                                                # regrade: same result
    assert (out / "grades.csv").read_text() == first
    assert hashlib.sha256(z.read_bytes()).hexdigest() == digest        # the original is untouched


def test_refuses_to_work_inside_the_submissions(tmp_path, capsys):
    (tmp_path / "a.ipynb").write_text("{}")
    rc = cli.main(["mini", "--seed", "7", str(tmp_path), "--source-dir", SOURCE, "--out", str(tmp_path / "runs")])
    assert rc == 2 and "must not overlap" in capsys.readouterr().err
    assert (tmp_path / "a.ipynb").read_text() == "{}"


def test_unknown_assignment_is_a_clear_error(tmp_path):
    (tmp_path / "a.ipynb").write_text("{}")
    with pytest.raises(SystemExit, match="no source notebook"):
        cli.main(["nope", "--seed", "7", str(tmp_path), "--source-dir", SOURCE, "--out", str(tmp_path.parent / "out-nope")])


def test_feedback_tracebacks_of_test_cells_are_reduced_to_the_verdict():
    from grading.preprocessors import HideTestTracebacks
    cell = nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\ncheck('x_hidden', f)\n### END HIDDEN TESTS")
    cell.metadata["nbgrader"] = {"grade": True, "grade_id": "x_hidden"}
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="✗ f: wrong",
                                           traceback=["----> 2 check('x_hidden', f)", "AssertionError: ✗ f: wrong"])]
    cell, _ = HideTestTracebacks().preprocess_cell(cell, {}, 0)
    assert cell.outputs[0].traceback == ["AssertionError: ✗ f: wrong"]


def test_never_empties_a_folder_it_did_not_make(tmp_path, capsys):
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / "a.ipynb").write_text("{}")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    rc = cli.main(["mini", "--seed", "7", str(tmp_path / "class"), "--source-dir", SOURCE, "--out", str(precious)])
    assert rc == 2 and "was not made by the grading command" in capsys.readouterr().err
    assert (precious / "thesis.tex").read_text() == "years of work"


def test_cell_limit_comes_from_the_repos_nbgrader_config():
    assert cli.repo_cell_timeout(default=-1) == 30      # nbgrader_config.py: c.Execute.timeout = 30


def test_zip_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "MAX_ZIP_MEMBER", 1000)
    z = tmp_path / "bomb.zip"
    with zipfile.ZipFile(z, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("eve/mini.ipynb", "0" * 100_000)          # 100 kB from a few hundred bytes
    with pytest.raises(collect.CollectionError, match="unpacks to"):
        collect.unpack_zip(str(z), str(tmp_path / "in"))


def test_nbgrader_layout_and_wrapper_folders(tmp_path):
    one = tmp_path / "submitted" / "dan" / "mini"            # nbgrader collect, a class of one
    one.mkdir(parents=True)
    (one / "mini.ipynb").write_text("{}")
    (one / "timestamp.txt").write_text("2026-01-01 10:00:00")
    subs = collect.collect(str(tmp_path / "submitted"), "mini")
    assert [(s.student, s.notes) for s in subs] == [("dan", [])]
    wrapped = tmp_path / "export" / "mini-submissions"        # a zip's wrapper folder around the class
    for name in ("Ann Lee_1_assignsubmission_file_", "Ben Ng_2_assignsubmission_file_"):
        (wrapped / name).mkdir(parents=True)
        (wrapped / name / "mini.ipynb").write_text("{}")
    assert [s.student for s in collect.collect(str(tmp_path / "export"), "mini")] == ["ann_lee_1", "ben_ng_2"]


def test_mixed_shapes_grade_every_learner_exactly_once(tmp_path):
    """nbgrader's submitted/<learner>/<a>/ layout beside flat notebooks and learner folders: every learner once,
    and two notebooks claiming one learner are one learner, said in the notes (the rule: <a>.ipynb first)."""
    nb = '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    for rel in ("alice.ipynb", "bob/homework.ipynb", "submitted/erin/mini/mini.ipynb",
                "submitted/gina/mini/mini.ipynb", "erin.ipynb"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(nb)
    subs = {s.student: s for s in collect.collect(str(tmp_path), "mini")}
    assert sorted(subs) == ["alice", "bob", "erin", "gina"]
    assert subs["erin"].path.endswith("submitted/erin/mini/mini.ipynb")
    assert any("several entries map to student id 'erin'" in n for n in subs["erin"].notes)
    assert subs["gina"].submitted_as == "submitted/gina/"
