"""grading/class_report.py: runs/<a>/report.html (what the class got wrong), its printed lines, and the
``mistakes`` column of grades.csv. The rows are built by hand in the shape grading/cli.py merges (the
cells as grading/worker.py ``settle`` writes them), so no grading run is needed."""
import base64
import csv
import html
import re

import nbformat
import pytest

from grading import class_report, report

DB_MEAN = ("db is exactly N times too small: it was averaged over the batch where the batch's "
           "contributions add up.")
DW_T = ("dW comes out transposed: its rows follow the outputs m and its columns the inputs i, while W's "
        "rows are the inputs. (When D = M the shape is even right, so only the values show it.)")
RELU_MASK = "dx equals dout everywhere: nothing is blocked where the input was negative (the mask is missing)."
TESTS = [("dense_backward_visible", 2), ("dense_backward_hidden", 3), ("relu_backward_visible", 1),
         ("relu_backward_hidden", 2)]
# the columns grades.csv had before the report: other tools read them by name and position
EXISTING = ["student", "score", "max_score", "status", "notes", "submitted_as", "feedback", "similarity"]


def release_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# dense_backward"))
    for fn, tests in (("dense_backward", TESTS[:2]), ("relu_backward", TESTS[2:])):
        code = nbformat.v4.new_code_cell(f"def {fn}(*a):\n    raise NotImplementedError()")
        code.metadata["nbgrader"] = {"grade": False, "solution": True, "grade_id": f"{fn}_code",
                                     "locked": False, "schema_version": 3}
        nb.cells.append(code)
        for gid, points in tests:
            cell = nbformat.v4.new_code_cell(f"check('{gid}')")
            cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": gid, "points": points,
                                         "locked": True, "schema_version": 3}
            nb.cells.append(cell)
    return nb


def cell(gid, ok=True, status=None, symptoms=()):
    points = dict(TESTS)[gid]
    return {"nbgrader": points if ok else 0.0, "max": float(points), "verified": ok,
            "score": float(points) if ok else 0.0, "status": status or "ok", "symptoms": list(symptoms)}


def row(sid, dense=None, relu=None, problem="", flags=()):
    """dense/relu: None (passes) or a dict of cell() keywords for both the visible and hidden cell."""
    cells = {}
    for fn, spec in (("dense_backward", dense), ("relu_backward", relu)):
        for gid in (f"{fn}_visible", f"{fn}_hidden"):
            cells[gid] = cell(gid) if spec is None else cell(gid, ok=False, **spec)
    if problem:
        cells = {}
    score = sum(c["score"] for c in cells.values())
    return {"student": sid, "score": score, "max_score": 8.0, "problem": problem, "flags": list(flags),
            "notes": [], "cells": cells, "submitted_as": f"{sid}.ipynb", "feedback": "", "similarity": []}


def class_rows():
    not_written = {"status": "raised NotImplementedError"}
    rows = [
        row("alice"),
        row("carol", dense={"symptoms": [DB_MEAN]}),
        row("dave", dense={"symptoms": [DB_MEAN]}),
        row("erin", dense={"symptoms": [DB_MEAN]}, relu={"symptoms": [RELU_MASK]}),
        row("fay", dense={"symptoms": [DW_T]}),
        row("hank", dense={"status": "reference used: bplib.layers.dense_backward"}),
        row("bob", dense=not_written, relu=not_written, flags=["not attempted"]),
        row("ned", dense=not_written, relu=not_written),               # untouched, no flag: still not attempted
        row("ivy", dense={"status": "ok"}),                            # wrong, and no known symptom
        row("kim", relu={"status": "raised ValueError"}),
        row("gina", problem="grader error: the kernel did not start (3 attempts); regrade"),
        row("pat", problem="empty file"),
    ]
    rows[1]["cells"]["dense_backward_hidden"]["symptoms"] = []   # hidden cases matched no symptom: still carol's
    return {r["student"]: r for r in rows}


@pytest.fixture
def made(tmp_path):
    rows = class_rows()
    path, lines = class_report.write_report(str(tmp_path), "dense_backward", rows, release_notebook())
    with open(path, encoding="utf-8") as f:
        page = f.read()
    return path, lines, page, rows


def section(page, heading):
    """The text of one <h2> section, tags removed."""
    m = re.search(r"<h2[^>]*>" + re.escape(heading) + r"</h2>(.*?)(?=<h2|</main>)", page, re.S)
    assert m, f"no section {heading!r}"
    text = re.sub(r"</?(?:wbr|code|strong)>", "", m.group(1))
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def squash(text):
    return re.sub(r"\s+", " ", text).replace(" :", ":").strip()


def test_the_report_is_written_where_the_run_is(made, tmp_path):
    path, lines, page, _ = made
    assert path == str(tmp_path / "report.html")
    assert lines[0] == f"report: {path}"


def test_shared_symptom_counted_once_per_learner_with_the_names(made):
    _, _, page, _ = made
    mistakes = squash(section(page, "Diagnosed mistakes"))
    # carol, dave and erin: visible and hidden cells of dense_backward count once each
    assert f"3 learners: {DB_MEAN}" in mistakes
    assert "Learners: carol, dave, erin" in mistakes
    assert f"1 learner: {DW_T}" in mistakes
    assert "Learners: fay" in mistakes
    assert RELU_MASK in mistakes and "6 learners" not in mistakes
    # grouped under the graded function, the most common first
    assert mistakes.index("dense_backward") < mistakes.index(DB_MEAN) < mistakes.index(DW_T) \
        < mistakes.index("relu_backward") < mistakes.index(RELU_MASK)


def test_every_category_names_its_learners(made):
    _, _, page, _ = made
    assert squash(section(page, "Not attempted")) == "2 learners Learners: bob, ned"
    ref = squash(section(page, "Used the course's reference"))
    assert "dense_backward" in ref and "Learners: hank" in ref
    unrec = squash(section(page, "Unrecognised wrong answers: for a look"))
    assert "Learners: ivy" in unrec
    for sid in ("carol", "fay", "hank", "bob", "kim"):       # explained, referenced, not attempted, crashed
        assert sid not in unrec
    other = squash(section(page, "Other failures"))
    assert "raised ValueError" in other and "Learners: kim" in other
    not_graded = squash(section(page, "Not graded"))
    assert "pat: empty file" in not_graded
    assert "gina" not in not_graded
    errors = squash(section(page, "Grader errors: regrade"))
    assert "gina" in errors and "kernel did not start" in errors and "pat" not in errors


def test_pass_rate_per_test_in_release_order_with_points(made):
    _, lines, page, _ = made
    # 10 rows have cells: alice carol dave erin fay hank bob ned ivy kim
    assert lines[1] == ("pass rate: dense_backward_visible 20%, dense_backward_hidden 20%, "
                        "relu_backward_visible 60%, relu_backward_hidden 60%")
    table = squash(html.unescape(re.sub(r"<wbr>", "", section_raw(page, "Pass rate per test"))))
    rows = re.findall(r"<tr><th scope=\"row\"><code>(\w+)</code></th><td class=\"num\">([\d.]+)</td>"
                      r"<td class=\"num\">(\d+) of (\d+)</td><td class=\"num\">(\d+)%</td></tr>", table)
    assert rows == [("dense_backward_visible", "2", "2", "10", "20"), ("dense_backward_hidden", "3", "2", "10", "20"),
                    ("relu_backward_visible", "1", "6", "10", "60"), ("relu_backward_hidden", "2", "6", "10", "60")]
    assert '<th scope="col">Test cell</th>' in page


def section_raw(page, heading):
    m = re.search(r"<h2[^>]*>" + re.escape(heading) + r"</h2>(.*?)(?=<h2|</main>)", page, re.S)
    assert m
    return m.group(1)


def test_summary_lines_most_common_first(made):
    _, lines, _, _ = made
    top = [ln for ln in lines if ln.startswith("most common mistakes: ")]
    assert top == ["most common mistakes: 3 learners: db is exactly N times too small (dense_backward); "
                   "2: not attempted; 1: dW comes out transposed (dense_backward); "
                   "1: dx equals dout everywhere (relu_backward); 1: used the course's reference"]
    assert "unrecognised wrong answers, for a look: ivy (dense_backward)" in lines
    assert "grader errors, regrade: gina" in lines


def test_page_is_self_contained_and_accessible(made):
    _, _, page, _ = made
    low = page.lower()
    assert "<script" not in low and "javascript:" not in low
    assert "http://" not in low and "https://" not in low
    assert "<link" not in low and "@import" not in low and "url(" not in low
    imgs = re.findall(r"<img\b[^>]*>", page)
    assert len(imgs) == 1
    src = re.search(r'src="([^"]+)"', imgs[0]).group(1)
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    alt = html.unescape(re.search(r'alt="([^"]*)"', imgs[0]).group(1))
    assert alt.startswith("Bar chart of the scores out of 8 of 10 learners:")
    assert "1 scored 8" in alt                                  # alice
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == [src]  # nothing else is loaded or linked
    assert '<html lang="en">' in page and 'name="viewport"' in page and "max-width" in page
    assert page.count("<h1") == 1 and "<h2" in page and "<caption>" in page and '<th scope="col"' in page


def test_histogram_png_is_deterministic(made, tmp_path):
    scores, top = [0, 0, 3, 5, 5, 5, 8, 8], 8.0
    a, b = class_report.histogram_png(scores, top), class_report.histogram_png(scores, top)
    assert a == b and a.startswith(b"\x89PNG") and b"Software" not in a
    assert class_report.histogram_png([0, 8], top) != a              # it does depend on the scores
    # the whole page too: grading again gives the same report
    _, _, page, rows = made
    again = tmp_path / "again"
    again.mkdir()
    path, _ = class_report.write_report(str(again), "dense_backward", rows, release_notebook())
    assert open(path, encoding="utf-8").read() == page


def test_histogram_of_half_points_and_of_nobody():
    alt = class_report.histogram_alt([0.5, 1.5, 13], 13.0)
    assert alt.startswith("Bar chart of the scores out of 13 of 3 learners:") and "1 scored 0 to 1.3" in alt
    assert class_report.histogram_png([], 13.0).startswith(b"\x89PNG")
    assert "no submission" in class_report.histogram_alt([], 13.0)


def test_nothing_to_report(tmp_path):
    path, lines = class_report.write_report(str(tmp_path), "dense_backward", {}, release_notebook())
    assert "most common mistakes: none diagnosed" in lines
    assert "pass rate: dense_backward_visible n/a" in lines[1]
    assert "No known mistake was recognised." in open(path, encoding="utf-8").read()


def test_short_heads_of_symptoms():
    assert class_report.short(DB_MEAN) == "db is exactly N times too small"
    assert class_report.short("The gradient is exactly half the right value (dw, db or both: see above). x") \
        == "The gradient is exactly half the right value (dw, db or both: see above)"
    assert class_report.short("x" * 300).endswith("…") and len(class_report.short("x" * 300)) == 100


def test_grades_csv_keeps_its_columns_and_adds_mistakes(tmp_path):
    rows = class_rows()
    rows["erin"]["cells"]["dense_backward_hidden"]["symptoms"] = [DB_MEAN, DW_T]
    path = report.write_csv(str(tmp_path / "grades.csv"), rows, release_notebook())
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    ids = [g for g, _ in TESTS]
    assert header[:len(EXISTING) + len(ids)] == EXISTING + ids      # the existing columns, in their order
    assert header == EXISTING + ids + ["mistakes"]
    with open(path, newline="") as f:
        got = {r["student"]: r for r in csv.DictReader(f)}
    assert got["carol"]["mistakes"] == f"dense_backward: {DB_MEAN}"            # visible + hidden: once
    assert got["erin"]["mistakes"] == (f"dense_backward: {DB_MEAN}; dense_backward: {DW_T}; "
                                       f"relu_backward: {RELU_MASK}")
    for sid in ("alice", "hank", "bob", "ivy", "kim", "gina", "pat"):
        assert got[sid]["mistakes"] == "", sid
    assert got["carol"]["dense_backward_visible"] == "0" and got["alice"]["relu_backward_hidden"] == "2"
    assert got["pat"]["status"] == "empty file" and got["carol"]["score"] == "3"


def test_mistakes_of_follows_the_notebook_order():
    r = row("x", dense={"symptoms": [DW_T]}, relu={"symptoms": [RELU_MASK]})
    ids = [g for g, _ in TESTS]
    assert class_report.mistakes_of(r, ids) == [f"dense_backward: {DW_T}", f"relu_backward: {RELU_MASK}"]
    assert class_report.mistakes_of(r, list(reversed(ids))) == [f"relu_backward: {RELU_MASK}",
                                                                f"dense_backward: {DW_T}"]


def test_functions_in_notebook_order_even_when_a_later_one_is_more_common(tmp_path):
    learners = [row("a", relu={"symptoms": [RELU_MASK]}), row("b", relu={"symptoms": [RELU_MASK]}),
            row("c", dense={"symptoms": [DW_T]})]
    rows = {r["student"]: r for r in learners}
    path, lines = class_report.write_report(str(tmp_path), "dense_backward", rows, release_notebook())
    mistakes = squash(section(open(path, encoding="utf-8").read(), "Diagnosed mistakes"))
    assert mistakes.index("dense_backward") < mistakes.index(DW_T) < mistakes.index("relu_backward") \
        < mistakes.index("2 learners: " + RELU_MASK)
    assert lines[2].startswith("most common mistakes: 2 learners: dx equals dout everywhere (relu_backward); "
                               "1: dW comes out transposed")
