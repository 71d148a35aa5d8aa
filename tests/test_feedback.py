"""Feedback a learner can read offline, and a failed check that says its verdict once.

1. The feedback page (``grading/feedback/``, nbgrader's generate_feedback with our exporter and
   template): its math is typeset to MathJax SVG when the page is made, so it shows with no network
   and no script; every test is named by its check (``dense_backward: visible tests``) in the
   contents list and the headings; long lines wrap; a failing test shows its verdict before the
   error; hidden test code never appears, nor solution code on an untouched learner's page; every
   page is under 2 MB. Checked on the page's HTML, and in headless Chromium with every request
   refused, at 390 px and 1280 px wide (screenshots under pytest's tmp dir).
2. In a real kernel (nbclient) a failing ``check`` cell has one output, an error whose traceback is
   the verdict and nothing else (no frame of bplib/checks), so JupyterLab shows it once; nbgrader
   still scores it 0, and Validate's failure text starts with the verdict.

Needs node and the npm copy of MathJax (``npm ci``; `make book` and `make test` do it).
"""
import atexit
import copy
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from pathlib import Path

import nbformat
import pytest
from traitlets.config import Config

import background
from mutants import _course
from bplib.checks import CHECKS
from grading import feedback
from grading.preprocessors import HideTestTracebacks

ROOT = Path(__file__).resolve().parents[1]
A = "dense_backward"
CHROMIUM = "/usr/bin/chromium"
MAX_PAGE = 2 * 1024 * 1024
WIDTHS = (390, 1280)


def _nbg(cell):
    return cell.metadata.get("nbgrader", {})


def _text(page_html):
    """What a reader can find in the page: tags removed, entities decoded."""
    page_html = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", page_html)
    return html.unescape(re.sub(r"(?s)<[^>]+>", "", page_html))


def _need_mathjax():
    if not (shutil.which("node") and feedback.mathjax_dir()):
        pytest.fail("feedback pages typeset their math with node and MathJax's npm copy: "
                    "install node and run `npm ci` (make book does)")


# -- 1a. the parts, fast --------------------------------------------------------------------------

def test_tests_are_named_by_their_check():
    def cell(gid, **kw):
        c = nbformat.v4.new_code_cell("")
        c.metadata["nbgrader"] = dict(grade_id=gid, **kw)
        return c
    assert feedback.cell_label(cell("dense_backward_visible", grade=True)) == "dense_backward: visible tests"
    assert feedback.cell_label(cell("relu_backward_hidden", grade=True)) == "relu_backward: hidden tests"
    assert feedback.cell_label(cell("dense_backward_code", solution=True)) == "dense_backward: your code"
    assert feedback.cell_label(cell("dense_backward_code", solution=True), "comment") == \
        "dense_backward: comment on your code"
    assert feedback.cell_label(cell("tiny_visible", grade=True)) == "tiny: visible tests"   # not a known check
    for cid, c in CHECKS.items():
        assert feedback.cell_label(cell(cid, grade=True)) == \
            f"{c.fn_name}: {'hidden' if c.hidden else 'visible'} tests"


def _test_cell(outputs):
    c = nbformat.v4.new_code_cell("### BEGIN HIDDEN TESTS\ncheck('f_hidden', f)\n### END HIDDEN TESTS")
    c.metadata["nbgrader"] = {"grade": True, "grade_id": "f_hidden", "points": 1}
    c.outputs = outputs
    return c


def test_the_verdict_comes_before_the_error_and_is_not_repeated():
    verdict = "✗ f (hidden tests): wrong on case 1 of 2 (a long description of the case).\n  - dx is wrong"
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue=verdict.splitlines()[0],
                                   traceback=["----> 2 check('f_hidden', f)", "AssertionError: ..."])
    stream = nbformat.v4.new_output("stream", name="stdout", text=verdict + "\n")
    cell, _ = HideTestTracebacks().preprocess_cell(_test_cell([error, stream]), {}, 0)
    assert [o.output_type for o in cell.outputs] == ["stream", "error"]
    assert cell.outputs[0].text == verdict + "\n"
    tb = "\n".join(cell.outputs[1].traceback)
    assert "check(" not in tb and "wrong on case" not in tb, tb      # no hidden code, said once
    # a kernel's own failure (no stream): the error is the verdict, and only the verdict
    only = nbformat.v4.new_output("error", ename="CheckAssertionError", evalue=verdict,
                                  traceback=["----> 2 check('f_hidden', f)", *verdict.splitlines()])
    cell, _ = HideTestTracebacks().preprocess_cell(_test_cell([only]), {}, 0)
    assert cell.outputs[0].traceback == [f"CheckAssertionError: {verdict}"]


def _page(nb, exporter=None):
    """Render ``nb`` as a feedback page, as nbgrader's GenerateFeedback would (scores filled in)."""
    exporter = exporter or feedback.FeedbackExporter(config=feedback.configure(Config()))
    for c in nb.cells:
        if _nbg(c).get("grade"):
            c.metadata["nbgrader"].setdefault("score", 0.0)
    resources = {"nbgrader": {"notebook": A, "score": 0.0, "max_score": 13.0, "late_penalty": 0.0}}
    out, _ = exporter.from_notebook_node(nb, resources=resources)
    return out


def test_math_is_svg_in_the_page_with_no_script_and_no_url():
    _need_mathjax()
    nb = nbformat.read(str(ROOT / "exercises" / A / f"{A}.ipynb"), as_version=4)
    md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    n_display = len(re.findall(r"(?<!\\)\$\$", md)) // 2
    assert n_display >= 3, "the exercise has display math to typeset"
    page = _page(copy.deepcopy(nb))
    assert "<script" not in page.lower(), "the page needs no script"
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"'#][^"']*)["']|url\(\s*["']?([^)"']+)""", page, flags=re.I)
    external = [u for pair in urls for u in pair if u and not u.startswith("data:")]
    assert not external, f"the page loads something: {external[:5]}"
    assert len(re.findall(r'<mjx-container[^>]*display="true"', page)) >= n_display
    assert page.count("<mjx-container") >= n_display + 20
    assert "$" not in _text(re.sub(r"(?s)<(pre|code)\b.*?</\1>|<mjx-container.*?</mjx-container>", "", page)), \
        "raw TeX ($) left in the page"
    ids = re.findall(r'<path id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "a formula's glyph ids repeat within the page"


def test_formulas_are_cached_on_disk_for_the_next_learner(tmp_path):
    """Each learner is graded in a process of its own: the second page needs no node process."""
    _need_mathjax()
    nb = nbformat.read(str(ROOT / "exercises" / A / f"{A}.ipynb"), as_version=4)
    pages = []
    for _ in range(2):
        exporter = feedback.FeedbackExporter(config=feedback.configure(Config()))
        exporter.math = feedback.MathJaxSVG(cache_dir=str(tmp_path))
        pages.append(_page(copy.deepcopy(nb), exporter))
        started = exporter.math.proc is not None
        exporter.math._stop()
    assert not started, "the second page started node although every formula was cached"
    assert pages[0] == pages[1] and pages[0].count("<mjx-container") >= 20


def test_without_node_the_formulas_stay_tex_and_the_page_says_so(monkeypatch):
    monkeypatch.setenv("BPLIB_NODE", "/nonexistent/node")
    exporter = feedback.FeedbackExporter(config=feedback.configure(Config()))
    exporter.math = feedback.MathJaxSVG()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("Inline $x^2$ and $$\\sum_n x_n$$")])
    page = _page(nb, exporter)
    assert "could not be typeset" in page and 'class="bp-tex"' in page and "<mjx-container" not in page
    assert "<script" not in page.lower()


# -- 1b. real pages of a graded class, in Chromium with the network refused ------------------------

def _solution_cells(nb):
    return {_nbg(c)["grade_id"]: c.source for c in nb.cells if _nbg(c).get("solution")}


def _filled(release, solution, edit=None):
    nb = copy.deepcopy(release)
    sols = _solution_cells(solution)
    for c in nb.cells:
        gid = _nbg(c).get("grade_id")
        if _nbg(c).get("solution") and gid in sols:
            c.source = "\n".join(ln for ln in sols[gid].splitlines() if "### BEGIN SOLUTION" not in ln
                                 and "### END SOLUTION" not in ln)
            if edit:
                c.source = edit(gid, c.source)
    return nb


def _carol(gid, src):
    """dW transposed (a long, many-line verdict) and a 1000-character line without a space."""
    if gid == f"{A}_code":
        assert "dW = x.T @ dout" in src
        src = src.replace("dW = x.T @ dout", "dW = (x.T @ dout).T")
        src += "\n\nprint('no spaces: ' + 'ab' * 500)"
    return src


def grade_three_learners():
    """alice: the instructor's notebook; bob: the untouched exercise; carol: dW transposed. Graded
    in the background once the tests are collected (tests/background.py)."""
    _need_mathjax()
    base = Path(tempfile.mkdtemp(prefix="bp-feedback-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    solution = nbformat.read(str(ROOT / "solutions" / A / f"{A}.ipynb"), as_version=4)
    release = nbformat.read(str(ROOT / "exercises" / A / f"{A}.ipynb"), as_version=4)
    subs = base / "class"
    subs.mkdir()
    shutil.copyfile(ROOT / "solutions" / A / f"{A}.ipynb", subs / "alice.ipynb")
    shutil.copyfile(ROOT / "exercises" / A / f"{A}.ipynb", subs / "bob.ipynb")
    nbformat.write(_filled(release, solution, _carol), str(subs / "carol.ipynb"))
    out = base / "out"
    env = dict(_course.env(), BPLIB_FEEDBACK_CACHE=str(base / "math-cache"))   # typeset afresh, by node
    r = subprocess.run([sys.executable, "-m", "grading", A, str(subs), "--out", str(out), "--seed", "1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, f"python -m grading failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    pages = {s: out / "feedback" / f"{s}.html" for s in ("alice", "bob", "carol")}
    missing = [s for s, p in pages.items() if not p.is_file()]
    assert not missing, f"no feedback page for {missing}:\n{r.stdout[-3000:]}"
    assert list((base / "math-cache").rglob("*.html")), "the pages' formulas were not typeset by node"
    return {"pages": pages, "solution": solution, "release": release, "shots": base / "shots"}


background.register("feedback_pages", __name__, grade_three_learners)


@pytest.fixture(scope="module")
def graded():
    return background.result("feedback_pages")


def test_pages_are_small_and_self_contained(graded):
    for s, p in graded["pages"].items():
        size = p.stat().st_size
        assert size < MAX_PAGE, f"{s}.html is {size / 1e6:.2f} MB"
        page = p.read_text(encoding="utf-8")
        assert "<script" not in page.lower(), f"{s}.html has a script (MathJax from a CDN?)"
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, flags=re.I), \
            f"{s}.html loads something from the web"
        assert page.count("<mjx-container") >= 20, f"{s}.html: math not typeset"


def test_no_hidden_test_code_and_no_solution_on_the_untouched_page(graded):
    hidden_calls = [f'check("{cid}"' for cid, c in CHECKS.items() if c.assignment == A and c.hidden]
    for s, p in graded["pages"].items():
        text = _text(p.read_text(encoding="utf-8"))
        assert "BEGIN HIDDEN TESTS" not in text and "END HIDDEN TESTS" not in text, s
        for call in hidden_calls:
            assert call not in text, f"{s}.html shows hidden test code: {call}"
    bob = _text(graded["pages"]["bob"].read_text(encoding="utf-8"))
    for gid, src in _solution_cells(graded["solution"]).items():
        block = src.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
        for line in (ln.strip() for ln in block.splitlines()):
            if len(line) > 12:
                assert line not in bob, f"the untouched learner's page shows the solution of {gid}: {line!r}"
    alice = _text(graded["pages"]["alice"].read_text(encoding="utf-8"))
    assert "dW = x.T @ dout" in alice, "alice's own code should be on her page"


def _expected_tests(nb):
    return [feedback.cell_label(c) for c in nb.cells if _nbg(c).get("grade") and not _nbg(c).get("solution")]


# In the page, once loaded: what a reader sees and what sticks out.
_INSPECT = """() => {
  const vw = document.documentElement.clientWidth;
  const clipped = (e) => {          // inside a box that scrolls (or clips) and itself fits the window
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (['auto', 'scroll', 'hidden', 'clip'].includes(s.overflowX)) {
        const r = p.getBoundingClientRect();
        return r.left >= -1 && r.right <= vw + 1;
      }
    }
    return false;
  };
  const wide = [];
  for (const e of document.body.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.left >= -1 && r.right <= vw + 1) continue;
    if (!clipped(e)) wide.push(e.tagName.toLowerCase() + (e.className && e.className.baseVal === undefined
                                ? '.' + e.className : '') + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  const clone = document.body.cloneNode(true);
  clone.querySelectorAll('mjx-container, pre, code, style').forEach(e => e.remove());
  const cells = Array.from(document.querySelectorAll('div.cell')).map(cell => {
    const head = cell.querySelector('.bp-heading');
    return {
      id: head ? head.id : '',
      label: head ? head.querySelector('.nbgrader-label').innerText.trim() : '',
      outputs: Array.from(cell.querySelectorAll('.output_subarea')).map(o => ({
        error: o.classList.contains('output_error'), text: o.innerText,
        rows: Array.from(o.querySelectorAll('pre')).reduce((n, p) =>
                n + Math.round(p.getBoundingClientRect().height / parseFloat(getComputedStyle(p).lineHeight)), 0),
        cut: Array.from(o.querySelectorAll('pre')).some(p => p.scrollWidth > p.clientWidth + 1)})),
    };
  });
  return {
    vw, scrollWidth: document.documentElement.scrollWidth, wide,
    math: Array.from(document.querySelectorAll('mjx-container > svg'))
               .filter(s => s.getBoundingClientRect().width > 0).length,
    mathErrors: document.querySelectorAll('[data-mml-node="merror"]').length,
    text: clone.innerText,
    toc: Array.from(document.querySelectorAll('#toc li a')).map(a => a.innerText.trim()),
    tocTargets: Array.from(document.querySelectorAll('#toc li a'))
                     .map(a => !!document.getElementById(decodeURIComponent(a.hash.slice(1)))),
    cells,
  };
}"""


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def seen(graded, browser):
    """(learner, width) -> what the page shows, each page opened offline with every request refused."""
    graded["shots"].mkdir(exist_ok=True)
    out = {}
    for s, path in graded["pages"].items():
        for w in WIDTHS:
            context = browser.new_context(viewport={"width": w, "height": 900}, offline=True)
            page = context.new_page()
            requests = []

            def refuse(route):
                url = route.request.url
                if url.startswith(("data:", "about:")) or url == path.as_uri():
                    route.continue_()
                else:
                    requests.append(url)
                    route.abort()
            page.route("**/*", refuse)
            page.on("request", lambda r: None if r.url.startswith(("data:", "about:", "file:"))
                    else requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            info = page.evaluate(_INSPECT)
            info["requests"] = sorted(set(requests))
            page.screenshot(path=str(graded["shots"] / f"{s}_{w}.png"))
            out[s, w] = info
            context.close()
    return out


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("learner", ["alice", "bob", "carol"])
def test_page_in_a_browser_offline(seen, graded, learner, width):
    info = seen[learner, width]
    assert not info["requests"], f"the page asked for {info['requests'][:5]}"
    assert info["math"] >= 20, f"only {info['math']} formulas typeset"
    assert info["mathErrors"] == 0
    raw = re.findall(r".{0,30}\$.{0,30}", info["text"])
    assert not raw, f"raw TeX in the visible text: {raw[:3]}"
    assert info["scrollWidth"] <= info["vw"], f"the page scrolls sideways: {info['scrollWidth']} > {info['vw']}"
    assert not info["wide"], f"wider than the {width} px window: {info['wide'][:8]}"
    # the contents list and the headings name every test by its check, in order
    expected = _expected_tests(graded["release"])
    assert expected[0] == "dense_backward: visible tests"
    assert [t for t in info["toc"] if t.endswith(" tests")] == expected
    assert not any("Test cell" in t for t in info["toc"]), info["toc"]
    assert all(info["tocTargets"]), "a contents entry links to nothing"
    headed = [c["label"] for c in info["cells"] if c["id"].endswith(("_visible", "_hidden"))]
    assert headed == expected
    # outputs wrap: no line of any output is cut off at the right edge
    cut = [c["id"] or "a cell" for c in info["cells"] if any(o["cut"] for o in c["outputs"])]
    assert not cut, f"output lines cut off in {cut}"


def test_failing_tests_show_the_verdict_first(seen):
    for (learner, width), info in seen.items():
        tests = {c["id"]: c["outputs"] for c in info["cells"] if c["id"].endswith(("_visible", "_hidden"))}
        assert tests, learner
        for gid, outputs in tests.items():
            errors = [i for i, o in enumerate(outputs) if o["error"]]
            if learner == "alice":
                assert not errors and outputs[0]["text"].startswith("✓"), (gid, outputs)
                continue
            if learner == "carol" and not gid.startswith("dense_backward"):
                continue
            assert errors, f"{learner}: {gid} failed but shows no error"
            assert outputs[0]["text"].startswith("✗") and not outputs[0]["error"], (learner, gid, outputs)
            assert errors[0] > 0 and all(i >= errors[0] for i in errors), "the error comes after the verdict"
            verdict = outputs[0]["text"]
            assert sum(o["text"].count(verdict.splitlines()[0]) for o in outputs) == 1, "the verdict is repeated"
        if learner == "carol":
            v = tests["dense_backward_visible"][0]["text"]
            assert "dW" in v and "transpose" in v and 'hint("dense_backward")' in v, v
        if learner == "bob":
            assert all("not implemented" in o[0]["text"] for o in tests.values())


def test_long_verdict_wraps_on_a_phone(seen):
    """carol's dense_backward verdict is many long lines: at 390 px all of it is inside the window."""
    info = seen["carol", 390]
    cell = next(c for c in info["cells"] if c["id"] == "dense_backward_visible")
    out = cell["outputs"][0]
    lines = out["text"].splitlines()
    assert max(map(len, lines)) > 100, "a verdict line longer than a phone's width"
    assert not out["cut"] and out["rows"] > 2 * len(lines), f"the verdict does not wrap: {out}"
    long_print = [o for c in info["cells"] for o in c["outputs"] if "no spaces: abab" in o["text"]]
    assert long_print and not any(o["cut"] for o in long_print)


# -- 2. a failed check in a real kernel: the verdict once, no traceback into bplib -----------------

def _run(cells, tmp_path):
    import nbclient
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(nb, kernel_name="python3", allow_errors=True, timeout=120,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def _shown(outputs):
    """What JupyterLab shows of a cell's outputs (an error shows its traceback lines)."""
    parts = []
    for o in outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts.append("\n".join(o.traceback))
        else:
            parts.append(str(o.get("data", {}).get("text/plain", "")))
    return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(parts))


def test_a_failing_check_shows_its_verdict_once_in_a_kernel(tmp_path):
    nb = _run(["from bplib.checks import check\n"
               "def relu_backward(dout, x):\n    return dout\n"
               "def dense_backward(dout, x, W):\n    raise NotImplementedError()",
               'check("relu_backward_visible", relu_backward)',
               'check("dense_backward_visible", dense_backward)',
               'check("relu_backward_visible", lambda dout, x: dout * (x > 0))',
               'check("relu_backward_hidden", relu_backward)'], tmp_path)
    assert not [o for o in nb.cells[0].outputs if o.output_type == "error"], nb.cells[0].outputs
    for cell, what in ((nb.cells[1], "the mask is missing"), (nb.cells[2], "not implemented yet")):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1, cell.outputs                   # nbgrader scores the cell 0
        e = errors[0]
        assert e.ename == "AssertionError" or "Assertion" in e.ename, e.ename
        shown = _shown(cell.outputs)
        first = e.evalue.splitlines()[0]
        assert first.startswith("✗ ") and what in e.evalue, e.evalue
        assert shown.count(first) == 1, f"the verdict is shown {shown.count(first)} times:\n{shown}"
        assert shown.strip() == e.evalue.strip(), f"more than the verdict is shown:\n{shown}"
        assert "bplib/checks" not in shown and "Traceback" not in shown and 'File "' not in shown, shown
    assert _shown(nb.cells[3].outputs).strip() == "✓ relu_backward (visible tests): passed (1 case)."
    assert "run when your notebook is graded" in _shown(nb.cells[4].outputs)
    assert not [o for o in nb.cells[4].outputs if o.output_type == "error"]


def test_check_outside_ipython_prints_once_and_raises(capsys):
    from bplib.checks import check
    from bplib.checks._verdict import CheckAssertionError
    with pytest.raises(AssertionError) as e:
        check("relu_backward_visible", lambda dout, x: dout)
    assert isinstance(e.value, CheckAssertionError)
    out = capsys.readouterr().out
    first = str(e.value).splitlines()[0]
    assert first.startswith("✗ relu_backward (visible tests)") and out.count(first) == 1
    assert e.value._render_traceback_() == str(e.value).splitlines()
    assert check("relu_backward_visible", lambda dout, x: dout * (x > 0)) is None
    assert capsys.readouterr().out == "✓ relu_backward (visible tests): passed (1 case).\n"


def test_validate_shows_the_verdict_first(tmp_path):
    """nbgrader's Validate (the button in JupyterLab) on the untouched exercise: each failed cell's
    error text is the verdict, first line first, with no traceback."""
    from nbgrader.validator import Validator
    nb_path = tmp_path / f"{A}.ipynb"
    shutil.copyfile(ROOT / "exercises" / A / f"{A}.ipynb", nb_path)
    failed = Validator().validate(str(nb_path)).get("failed", [])
    visible = [cid for cid, c in CHECKS.items() if c.assignment == A and not c.hidden]
    assert len(failed) == len(visible), [f["source"][:80] for f in failed]
    for f in failed:
        raw = re.sub(r"\x1b\[[0-9;]*m", "", f["raw_error"])
        assert raw.startswith("✗ ") and "not implemented yet" in raw.splitlines()[0], raw
        assert "Traceback" not in raw and "bplib/checks" not in raw, raw
