"""The learner's path in JupyterLab, driven in a real browser (headless Chromium).

A temporary copy of the course is served by ``scripts/lab.sh`` (what ``make
lab`` runs) on 127.0.0.1 with a token, so nothing in the repository changes.
The test opens the dense_backward exercise, runs every cell and reads the
"not implemented yet" verdicts; types the solution (taken from
solutions/dense_backward/dense_backward.ipynb) into the graded cells through
the editor but with dW transposed, and reads the verdict that names dW; fixes
it, runs everything again from the top and reads the passing verdicts and the
summary; then clicks nbgrader's Validate button and reads "Success".

Screenshots of every step are saved under pytest's tmp_path; the folder is
printed (``pytest -s`` shows it). The three pictures of book/doing_exercises.md
come from the same run, from the repository root:

    LAB_BOOK_IMAGES=book/images .venv/bin/python -m pytest tests/test_lab_browser.py

LAB_TEST_FIXTURE=1 runs the flow on the tiny stand-in exercise of
tests/fixtures/lab/ instead (also used while exercises/ is not generated).
Skips only where /usr/bin/chromium is absent; CI installs it.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "lab"
ASSIGNMENT = "dense_backward"
REAL_EXERCISE = ROOT / "exercises" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
REAL_SOLUTION = ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"no Chromium at {CHROMIUM} (apt-get install chromium); CI installs it")

TOKEN = "browser-test-token"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"   # the notebook in the front tab
CELL = f"{PANEL} .jp-Notebook .jp-Cell"


# ----------------------------------------------------------------------------
# the course copy and the server
# ----------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url, proc, log, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a temporary copy of the course: base url, course folder, the notebook."""
    tmp = tmp_path_factory.mktemp("lab")
    course = tmp / "course"
    (course / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "lab.sh", course / "scripts" / "lab.sh")
    shutil.copytree(ROOT / "scripts" / "lab_config", course / "scripts" / "lab_config")
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    (course / ".venv").symlink_to(Path(sys.prefix))
    if REAL_EXERCISE.exists() and not os.environ.get("LAB_TEST_FIXTURE"):
        shutil.copytree(REAL_EXERCISE.parent, course / "exercises" / ASSIGNMENT)
        notebook = (f"{ASSIGNMENT}/{ASSIGNMENT}.ipynb", REAL_SOLUTION)
    else:   # the same flow on a tiny stand-in (LAB_TEST_FIXTURE=1, or no exercise generated yet)
        shutil.copytree(FIXTURE / "tiny", course / "exercises" / "tiny")
        notebook = ("tiny/tiny.ipynb", FIXTURE / "tiny_solution.ipynb")

    env = dict(os.environ)
    for var, name in [("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                      ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython"),
                      ("HOME", "home"), ("JUPYTER_CONFIG_DIR", "jupyter-config")]:
        (tmp / name).mkdir()
        env[var] = str(tmp / name)
    settings = tmp / "settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"}))
    # every cell stays in the page (no virtual scrolling), so outputs can be read anywhere
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env.update(PORT=str(port), LAB_TOKEN=TOKEN, LAB_OPEN_BROWSER="0")
    env.pop("BPLIB_RECORD_DIR", None)
    env["BPLIB_FAST"] = "1"   # the kernels train the small demonstration network (as the graders' tests do)
    log = tmp / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(course / "scripts" / "lab.sh")], cwd=course, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    try:
        _wait_for_server(url, proc, log)
        print(f"\nJupyterLab answered after {time.time() - t0:.1f} s; log: {log}")
        link = f"http://127.0.0.1:{port}/lab?token={TOKEN}"
        for _ in range(50):   # lab.sh prints the link once the server answers
            if link in log.read_text():
                break
            time.sleep(0.2)
        assert link in log.read_text(), f"lab.sh did not print {link}:\n{log.read_text()[-2000:]}"
        yield {"url": url, "course": course, "notebook": notebook, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--disable-gpu", "--disable-quic"])
        yield b
        b.close()


# ----------------------------------------------------------------------------
# the notebooks on disk: which cells are graded, and the solution code
# ----------------------------------------------------------------------------
def _nbgrader(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_cells(path):
    """(solution cells, visible check cells) of an exercise: lists of (index, grade_id)."""
    cells = json.loads(Path(path).read_text())["cells"]
    sol = [(i, _nbgrader(c)["grade_id"]) for i, c in enumerate(cells)
           if c["cell_type"] == "code" and _nbgrader(c).get("solution")]
    checks = [(i, _nbgrader(c)["grade_id"]) for i, c in enumerate(cells)
              if c["cell_type"] == "code" and _nbgrader(c).get("grade")
              and "check(" in "".join(c["source"])]
    return sol, checks


def solution_code(solution_nb, grade_id):
    """The instructor's code for one solution cell, without nbgrader's markers."""
    for c in json.loads(Path(solution_nb).read_text())["cells"]:
        if _nbgrader(c).get("grade_id") == grade_id:
            lines = "".join(c["source"]).splitlines()
            return "\n".join(l for l in lines if l.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))
    raise AssertionError(f"no cell with grade_id {grade_id!r} in {solution_nb}")


# dW transposed, as if the learner wrote dout.T @ x for x.T @ dout (the check must name dW).
# Wrapping the solution keeps this independent of how the solution is written.
WRONG_DW = """

# --- a slip: dW = dout.T @ x (transposed) instead of x.T @ dout ---
_right_{fn} = {fn}
def {fn}(*args, **kwargs):
    dx, dW, db = _right_{fn}(*args, **kwargs)
    return dx, dW.T, db
"""


# ----------------------------------------------------------------------------
# driving JupyterLab
# ----------------------------------------------------------------------------
class Notebook:
    def __init__(self, page, shots):
        self.page, self.shots, self.n, self.t0 = page, shots, 0, time.time()

    def cell(self, i):
        return self.page.locator(CELL).nth(i)

    def shot(self, name, cell=None):
        if cell is not None:
            self.cell(cell).scroll_into_view_if_needed()
        self.n += 1
        path = self.shots / f"{self.n:02d}_{name}.png"
        self.page.screenshot(path=str(path))
        print(f"  {time.time() - self.t0:5.1f} s  {path.name}")
        return path

    def counts(self):
        """Execution prompts of all code cells, e.g. ['[1]:', '[*]:', '[ ]:']."""
        return self.page.eval_on_selector_all(
            f"{PANEL} .jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.textContent.trim())")

    def _max_count(self):
        return max([int(m.group(1)) for p in self.counts() if (m := re.search(r"\[(\d+)\]", p))],
                   default=0)

    def wait_idle(self, before, timeout=60):
        """Wait until something ran after ``before`` and nothing is queued or running."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            counts = self.counts()
            idle = self.page.locator(f"{PANEL} .jp-Notebook-ExecutionIndicator[data-status='idle']").count()
            if self._max_count() > before and not any("*" in c for c in counts) and idle:
                time.sleep(0.3)   # let the last output render
                if not any("*" in c for c in self.counts()):
                    return
            time.sleep(0.2)
        raise AssertionError(f"cells did not finish within {timeout} s: prompts {self.counts()}")

    def prompts(self):
        """Per cell: its prompt ('[3]:', '[*]:', '[ ]:'), or None for markdown and empty cells."""
        return self.page.eval_on_selector_all(CELL, """els => els.map(e => {
            const p = e.querySelector('.jp-InputArea-prompt');
            const src = e.querySelector('.cm-content')?.textContent.trim();
            return e.classList.contains('jp-CodeCell') && p && src ? p.textContent.trim() : null; })""")

    def _menu_run(self, command):
        before = self._max_count()
        self.page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        self.page.locator(f".lm-Menu-item[data-command='{command}']").click()
        self.wait_idle(before)

    def run_all(self):
        """Run > Run All Cells, and carry on the way a learner does where the run stops.

        JupyterLab stops Run All at the first cell that raises (unless the cell
        is tagged ``raises-exception``); a learner then selects the next cell
        and uses Run > Run Selected Cell and All Below. Returns the indices of
        the cells where the run had to be restarted like that.
        """
        self._menu_run("runmenu:run-all")
        restarts = []
        while True:
            pending = [i for i, p in enumerate(self.prompts()) if p == "[ ]:"]
            if not pending:
                return restarts
            assert not restarts or pending[0] > restarts[-1], f"cell {pending[0]} does not run"
            restarts.append(pending[0])
            self.cell(pending[0]).locator(".jp-InputPrompt").click()   # select it, command mode
            self._menu_run("notebook:run-all-below")

    def set_source(self, i, src):
        editor = self.cell(i).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.keyboard.press("Control+a")
        self.page.keyboard.insert_text(src)
        self.page.keyboard.press("Escape")

    def source(self, i):
        return self.cell(i).locator(".cm-content").inner_text()

    def output(self, i, mime=None):
        """Text of cell i's outputs (only those of one mime type, e.g. stdout, if given)."""
        sel = ".jp-OutputArea-output" + (f"[data-mime-type='{mime}']" if mime else "")
        return "\n".join(t or "" for t in self.cell(i).locator(sel).all_text_contents())

    def verdict(self, i):
        """What a check cell says: what it printed, and its error without the traceback frames
        (the exception line and its message; all of the error if it is not a traceback)."""
        printed = self.output(i, "application/vnd.jupyter.stdout")
        error = self.output(i, "application/vnd.jupyter.stderr")
        if "Traceback (most recent call last)" in error:
            lines = error.splitlines()
            starts = [k for k, line in enumerate(lines) if re.match(r"[A-Za-z_][\w.]*: ", line)]
            error = "\n".join(lines[starts[-1]:]) if starts else error
        return "\n".join(t for t in (printed, error) if t)

    def validate(self):
        self.page.locator(f"{PANEL} .jp-NotebookPanel-toolbar [data-jp-item-name='runAll'] jp-button").click()
        dialog = self.page.locator(".jp-Dialog")
        dialog.locator(".validation-success, .validation-failed, pre").first.wait_for(timeout=60_000)
        return dialog

    def close_dialog(self):
        self.page.locator(".jp-Dialog .jp-mod-accept").first.click()
        self.page.locator(".jp-Dialog").wait_for(state="detached")


def open_notebook(browser, lab, rel, shots):
    """A fresh browser context and workspace (no tabs restored from another test)."""
    book = bool(os.environ.get("LAB_BOOK_IMAGES"))   # pictures for the book: narrow and sharp
    context = browser.new_context(viewport={"width": 940 if book else 1400, "height": 1000},
                                  device_scale_factor=2 if book else 1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    workspace = re.sub(r"\W", "-", rel)
    t0 = time.time()
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{rel}?token={TOKEN}")
    page.locator(CELL).first.wait_for()
    # the kernel is up when the status bar says so (the toolbar indicator says idle before)
    page.wait_for_function("() => /\\| Idle/.test(document.querySelector('#jp-main-statusbar')?.textContent)")
    if book:
        page.keyboard.press("Control+b")   # hide the file browser: the notebook gets the width
    print(f"  {time.time() - t0:5.1f} s  to open {rel} with its kernel ready")
    return Notebook(page, shots)


def _book_image(nb, name, *locators, pad=8, right_of=None):
    """With LAB_BOOK_IMAGES=<folder> set, save the region around ``locators`` for the book
    (cut 40 px right of ``right_of`` if given)."""
    folder = os.environ.get("LAB_BOOK_IMAGES")
    if not folder:
        return
    boxes = [loc.bounding_box() for loc in locators]
    x0, y0 = min(b["x"] for b in boxes) - pad, min(b["y"] for b in boxes) - pad
    x1 = max(b["x"] + b["width"] for b in boxes) + pad
    y1 = max(b["y"] + b["height"] for b in boxes) + pad
    if right_of is not None:
        edge = right_of.bounding_box()
        x1 = min(x1, edge["x"] + edge["width"] + 40)
    Path(folder).mkdir(parents=True, exist_ok=True)
    nb.page.screenshot(path=str(Path(folder) / f"{name}.png"),
                       clip={"x": max(x0, 0), "y": max(y0, 0), "width": x1 - max(x0, 0), "height": y1 - max(y0, 0)})


def _shots(tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    return shots


def _verdicts(nb, checks):
    return {gid: nb.verdict(i) for i, gid in checks}


# ----------------------------------------------------------------------------
# the tests
# ----------------------------------------------------------------------------
def test_learner_path_in_jupyterlab(lab, browser, tmp_path):
    """Run the fresh exercise, get dense_backward wrong, fix it, pass every check, Validate."""
    rel, solution_nb = lab["notebook"]
    sols, checks = graded_cells(lab["course"] / "exercises" / rel)
    assert sols and checks, f"{rel}: no graded cells found"
    fn = "dense_backward"
    dense_sol = [(i, gid) for i, gid in sols if f"def {fn}(" in solution_code(solution_nb, gid)]
    dense_check = [(i, gid) for i, gid in checks if gid == f"{fn}_visible"]
    assert dense_sol and dense_check, f"{rel}: no solution cell defining {fn} or no {fn}_visible check"
    nb = open_notebook(browser, lab, rel, _shots(tmp_path))
    try:
        nb.shot("opened")
        # a learner's JupyterLab: nbgrader's Validate button, none of the instructor's tools
        assert nb.page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").count() == 0
        assert nb.page.get_by_text("Create Assignment").count() == 0
        last = nb.page.locator(CELL).count() - 1

        # 1. run everything as handed out: every check cell says "not implemented yet"
        restarts = nb.run_all()
        if restarts:
            warnings.warn(f"{rel}: Run All stopped at a failing check and had to be restarted "
                          f"{len(restarts)} time(s) (cells {restarts}) before it reached the summary. "
                          f"Tag the check cells 'raises-exception' so one Run All shows every verdict.")
        nb.shot("fresh_first_check", cell=checks[0][0])
        for gid, out in _verdicts(nb, checks).items():
            assert "not implemented" in out.lower(), \
                f"after Run All on the fresh exercise, check {gid} said: {out[:500]!r}"
        nb.shot("fresh_summary", cell=last)
        assert nb.output(last).strip(), "Run All on the fresh exercise did not reach the summary cell"

        # 2. type every solution, but with dW transposed: the dense check names dW, the others pass
        for i, gid in sols:
            src = solution_code(solution_nb, gid)
            nb.set_source(i, src + WRONG_DW.format(fn=fn) if (i, gid) == dense_sol[0] else src)
        nb.run_all()
        i, gid = dense_check[0]
        nb.shot("wrong_dW_verdict", cell=i)
        _book_image(nb, "lab_check_verdict", nb.cell(i).locator(".jp-InputArea"),
                    nb.cell(i).locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"), pad=2)
        out = nb.verdict(i)
        assert "passed" not in out.lower(), f"a transposed dW passed: {out[:800]!r}"
        assert "dW" in out, f"the verdict does not name dW: {out[:800]!r}"
        assert "transpose" in out.lower(), f"the verdict does not say transposed: {out[:800]!r}"
        assert not re.search(r"\b(dx|db)\b", out.split("Hint")[0]), \
            f"the verdict blames arrays that are right: {out[:800]!r}"
        for j, g in checks:
            if g != gid:
                assert "passed" in nb.verdict(j).lower(), f"check {g} should pass: {nb.verdict(j)[:500]!r}"

        # 3. fix dense_backward, run everything again from the top: every check passes
        nb.set_source(dense_sol[0][0], solution_code(solution_nb, dense_sol[0][1]))
        nb.shot("solution_typed", cell=dense_sol[0][0])
        nb.run_all()
        nb.shot("solved_first_check", cell=checks[0][0])
        for gid, out in _verdicts(nb, checks).items():
            assert "passed" in out.lower() and "not implemented" not in out.lower(), \
                f"with the solution typed in, check {gid} said: {out[:500]!r}"
        summary = nb.output(last)
        nb.shot("solved_summary", cell=last)
        assert summary.strip(), "the summary (last cell) printed nothing"
        assert not re.search(r"not implemented|fail|not run", summary, re.I), summary

        # 4. Validate: nbgrader's button saves the notebook, then runs it on the server
        _book_image(nb, "lab_toolbar", nb.page.locator(f"{PANEL} .jp-NotebookPanel-toolbar"), pad=0,
                    right_of=nb.page.locator(f"{PANEL} .jp-NotebookPanel-toolbar [data-jp-item-name='runAll']"))
        dialog = nb.validate()
        nb.shot("validated")
        _book_image(nb, "lab_validate_success", dialog.locator(".jp-Dialog-content"), pad=0)
        text = dialog.inner_text()
        assert dialog.locator(".validation-success").count() == 1, text[:2000]
        assert "passes all the tests" in text, text[:2000]
        nb.close_dialog()
    finally:
        nb.page.context.close()
