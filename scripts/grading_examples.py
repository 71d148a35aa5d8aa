"""The instructor chapter's examples, made by grading a small generated class (fixed seed).

    .venv/bin/python scripts/grading_examples.py        # rewrites book/_static/grading/

Grades a class of dense_backward (grading/synthetic.py: honest learners, learners whose first
function answers twice the right value, unfinished notebooks) with the real `python -m grading`
and keeps, for book/instructors.md:

- feedback_example.html / .png: the feedback page of a learner whose dense_backward is wrong by a
  factor of 2 (the page itself, and its first screenful at 1280 px in headless Chromium);
- report_example.html / .png: the class report (runs/<a>/report.html) and its first screenful;
  five more learners each make one mistake of the catalogue (tests/mutants/dense_backward.py), so
  the report has diagnosed mistakes to show.

The seed of the hidden cases is fixed (--seed), so the pages are the same on every run; the
screenshots need Debian's Chromium (/usr/bin/chromium) and Playwright, as the site tests do.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from grading import synthetic  # noqa: E402

OUT = os.path.join(REPO, "book", "_static", "grading")
CHROMIUM = "/usr/bin/chromium"
ASSIGNMENT = "dense_backward"
WRONG = "ada_lovelace"
PLAN = ([(WRONG, "wrong"), ("alan_turing", "correct"), ("grace_hopper", "unfinished"),
         ("katherine_johnson", "correct"), ("john_von_neumann", "wrong"), ("emmy_noether", "correct"),
         ("claude_shannon", "correct"), ("barbara_liskov", "wrong"), ("edsger_dijkstra", "correct"),
         ("frances_allen", "correct"), ("donald_knuth", "unfinished"), ("hedy_lamarr", "correct")])
# learners who made a catalogued mistake (tests/mutants/dense_backward.py): the report diagnoses them
MISTAKES = [("ada_yonath", "db_mean"), ("alonzo_church", "db_mean"), ("karen_sparck_jones", "dW_transposed"),
            ("tim_berners_lee", "relu_mask_forgotten"), ("radia_perlman", "softmax_no_1_over_N")]


def add_mistakes(klass, honest):
    """Copies of ``honest``'s notebook, each with one catalogued mistake in its function's cell."""
    import importlib.util

    import nbformat
    spec = importlib.util.spec_from_file_location("mutants", os.path.join(REPO, "tests", "mutants", f"{ASSIGNMENT}.py"))
    catalogue = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(catalogue)
    by_name = {m["name"]: m for m in catalogue.MUTANTS}
    for student, name in MISTAKES:
        m = by_name[name]
        nb = nbformat.read(os.path.join(klass, f"{honest}.ipynb"), as_version=4)
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == f"{m['function']}_code")
        old, new = m["replace"]
        assert cell.source.count(old) == 1, (name, old)
        cell.source = cell.source.replace(old, new)
        nbformat.write(nb, os.path.join(klass, f"{student}.ipynb"))


def screenshot(page_path, png_path, width=1280, height=900):
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu"])
        context = browser.new_context(viewport={"width": width, "height": height}, offline=True)
        page = context.new_page()
        page.goto("file://" + page_path, wait_until="load")
        page.screenshot(path=png_path)
        browser.close()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT, help="where the examples go (default: book/_static/grading)")
    ap.add_argument("--seed", default="2026", help="the secret seed of the hidden cases (fixed: same pages)")
    ap.add_argument("--no-screenshots", action="store_true")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="grading-examples-")
    try:
        klass = os.path.join(tmp, "class")
        synthetic.make_class(ASSIGNMENT, klass, PLAN, work=os.path.join(tmp, "release"))
        add_mistakes(klass, "alan_turing")
        runs = os.path.join(tmp, "runs", ASSIGNMENT)
        subprocess.run([sys.executable, "-m", "grading", ASSIGNMENT, klass, "--out", runs, "--seed", args.seed,
                        "--quiet"], cwd=REPO, check=True)
        os.makedirs(args.out, exist_ok=True)
        pages = {"feedback_example": os.path.join(runs, "feedback", f"{WRONG}.html"),
                 "report_example": os.path.join(runs, "report.html")}
        for name, src in pages.items():
            dest = os.path.join(args.out, f"{name}.html")
            shutil.copyfile(src, dest)
            if not args.no_screenshots:
                screenshot(dest, os.path.join(args.out, f"{name}.png"))
            print(f"wrote {os.path.relpath(dest, REPO)}" + ("" if args.no_screenshots else " and .png"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
