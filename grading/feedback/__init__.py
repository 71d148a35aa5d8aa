"""The learner's feedback page: one self-contained HTML file that reads offline.

nbgrader's ``generate_feedback`` renders each graded notebook with an nbconvert exporter and a
template. Its own (``feedback``) loads MathJax from a CDN, so offline the math stays raw
``$$...$$``; it names every test "Test cell"; and long output lines run off the page. Here
(``grading/course.py`` sets ``GenerateFeedback.exporter_class`` to ``FeedbackExporter``):

- **Math is typeset when the page is made, not when it is read.** Every formula of the markdown
  cells (and of markdown or LaTeX outputs) is turned into an SVG by MathJax 3 under node
  (``tex2svg.js``, with the npm copy the site uses: ``node_modules/mathjax``, pinned in
  package-lock.json, installed by ``npm ci``). The page carries the SVGs, each with the glyphs it
  uses, plus MathJax's small stylesheet: no script, no font file, no request, so the one HTML file
  a learner is sent (by mail, on the learning platform) shows its math in any browser, offline.
  Why not the script: MathJax's one-file bundle is 2.2 MB, so inlining it in every page would
  make each page ~2.4 MB; a shared ``feedback/mathjax/`` copy beside the pages would work only
  if the learner got the whole folder, which holds every other learner's page too. The SVGs
  cost ~2-10 kB a formula (0.2-0.5 MB for a whole exercise's page). The first page of a run
  starts one node process (~0.3 s) and typesets its formulas (~1 s for dense_backward); they are
  kept on disk (``runs/.feedback-math/``), and as nearly all are the same on every page, the
  next learners' pages need no node at all (~0.3 s a page, as fast as nbgrader's own).
  Without node or the npm copy, the formulas stay as TeX source (the page says so at the top
  and the grader logs a warning): grading never fails for it.
- **Tests are named by their check**: ``dense_backward: visible tests`` in the contents list and
  in the cell headings (``cell_label``), from ``bplib.checks`` (grade id = check id).
- **Long lines wrap** (``feedback.css``), and the layout fits a phone's width.
- **The page is inert** (``inert.py``): the learner's HTML, markdown and raw cells and every output
  are sanitised or shown as text, JavaScript outputs are not shown, a Content-Security-Policy
  forbids every script and request, and outputs count against one budget: the page stays under
  2 MB and says what was cut.
"""
import atexit
import hashlib
import html
import itertools
import json
import logging
import os
import queue
import re
import shutil
import subprocess
import threading

import jinja2
from nbconvert.exporters import HTMLExporter

from . import inert
from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

try:
    from jinja2 import pass_context
except ImportError:                       # pragma: no cover  (jinja2 < 3)
    from jinja2 import contextfilter as pass_context

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TEMPLATES = os.path.join(HERE, "templates")
TEMPLATE_NAME = "bp_feedback"
log = logging.getLogger("grading.feedback")


def mathjax_dir():
    """The npm copy of MathJax (``npm ci`` at the repository root), or None."""
    d = os.environ.get("BPLIB_MATHJAX_DIR") or os.path.join(ROOT, "node_modules", "mathjax")
    return d if os.path.isfile(os.path.join(d, "es5", "node-main.js")) else None


class MathJaxSVG:
    """TeX -> MathJax SVG: ``render(tex, display)`` -> an ``<mjx-container>`` (HTML), or None.

    One node process (tex2svg.js), started at the first formula not yet cached. Every learner is
    graded in a process of its own, and nearly all formulas are the same on every page, so the
    SVGs are also kept on disk (``cache_dir``: ``$BPLIB_FEEDBACK_CACHE``, else ``runs/.feedback-math/``
    of the repository), keyed by the formula, MathJax's version and tex2svg.js: with a warm cache a
    page needs no node process at all. A cache that cannot be written is only slower.
    """

    START_TIMEOUT = 60.0
    TIMEOUT = 20.0

    def __init__(self, cache_dir=None):
        self.cache_dir = cache_dir
        self.proc = None
        self.css = ""
        self.problem = None            # why math cannot be typeset here (then formulas stay TeX)
        self.tag = None                # MathJax's version and tex2svg.js: part of every cache key
        self.node = self.mathjax = None
        self.cache = {}
        self.lines = None
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    # -- the node process -------------------------------------------------------------------
    def _start(self):
        try:
            self.proc = subprocess.Popen([self.node, os.path.join(HERE, "tex2svg.js"), self.mathjax],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, cwd=HERE, text=True, encoding="utf-8",
                                         bufsize=1)
            atexit.register(self._stop)
            self.lines = queue.Queue()
            threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True).start()
            first = self._read(self.START_TIMEOUT)
            if "css" not in first:
                raise RuntimeError(first.get("error", "no stylesheet"))
            self.css = first["css"]
            self._store("stylesheet", self.css)
        except Exception as e:   # noqa: BLE001
            self._give_up(f"MathJax under node did not start ({str(e)[:200]})")

    @staticmethod
    def _pump(stream, lines):
        for line in stream:
            lines.put(line)
        lines.put("")                  # node exited

    def _read(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no answer from node in {timeout:.0f} s") from None
        if not line:
            raise RuntimeError("node exited")
        return json.loads(line)

    def _stop(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except Exception:   # noqa: BLE001
                pass
        self.proc = None

    def _give_up(self, why):
        self.problem = why
        log.warning("feedback pages: math left as TeX: %s", why)
        self._stop()

    # -- the disk cache ---------------------------------------------------------------------
    def _path(self, name):
        d = self.cache_dir or os.environ.get("BPLIB_FEEDBACK_CACHE") or os.path.join(ROOT, "runs", ".feedback-math")
        key = hashlib.sha256(json.dumps([self.tag, name], ensure_ascii=False).encode("utf-8")).hexdigest()
        return os.path.join(d, key[:2], key + ".html")

    def _load(self, name):
        try:
            with open(self._path(name), encoding="utf-8") as f:
                return f.read()
        except OSError:
            return None

    def _store(self, name, text):
        path = self._path(name)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)      # whole or not at all, whichever process writes it
        except OSError:
            pass

    # -- what the exporter calls ------------------------------------------------------------
    def ready(self):
        """True if formulas can be typeset here (node and MathJax's npm copy are there); ``css`` is set."""
        with self.lock:
            if self.problem is None and self.tag is None:
                self.node = shutil.which(os.environ.get("BPLIB_NODE", "node"))
                self.mathjax = mathjax_dir()
                if not self.node or not self.mathjax:
                    self._give_up("node is not installed" if not self.node else
                                  "MathJax's npm copy is missing (node_modules/mathjax: run `npm ci` or `make book`)")
                else:
                    try:
                        with open(os.path.join(self.mathjax, "package.json"), encoding="utf-8") as f:
                            version = json.load(f).get("version", "?")
                        with open(os.path.join(HERE, "tex2svg.js"), "rb") as f:
                            script = hashlib.sha256(f.read()).hexdigest()[:16]
                    except (OSError, ValueError) as e:
                        version, script = f"unknown ({e})", "?"
                    self.tag = f"mathjax {version}, tex2svg.js {script}"
            if self.problem is None and not self.css:
                self.css = self._load("stylesheet") or ""
                if not self.css:
                    self._start()
            return self.problem is None

    def render(self, tex, display):
        """The formula as MathJax SVG (an ``<mjx-container>``), or None if it cannot be typeset."""
        if not self.ready():
            return None
        key = (tex, bool(display))
        name = f"{'display' if display else 'inline'}: {tex}"
        with self.lock:
            if key not in self.cache:
                svg = self._load(name)
                if svg is None:
                    if self.proc is None:
                        self._start()
                        if self.problem:
                            return None
                    try:
                        self.proc.stdin.write(json.dumps({"tex": tex, "display": bool(display)}) + "\n")
                        self.proc.stdin.flush()
                        svg = self._read(self.TIMEOUT).get("html")   # None: MathJax refused this one
                    except Exception as e:   # noqa: BLE001  (node died or hung: TeX for the rest of the run)
                        self._give_up(f"MathJax under node stopped ({str(e)[:200]})")
                        return None
                    if svg:
                        self._store(name, svg)
                self.cache[key] = svg
            out = self.cache[key]
            if not out:
                return None
            # every use gets ids of its own (a formula used twice on a page must not repeat an id)
            n = next(self.ids)
            return re.sub(r'(["#])MJX-\d+-', lambda m: f"{m.group(1)}MJX-{n}-", out)


MATH = MathJaxSVG()
NOTE = ('<p class="bp-math-note">The formulas on this page are shown as TeX source: they could not be '
        'typeset when the page was made.</p>')


class OfflineMathRenderer(IPythonRenderer):
    """nbconvert's markdown renderer, with each formula typeset to SVG instead of left for MathJax."""

    def __init__(self, *args, math=None, **kw):
        super().__init__(*args, **kw)
        self.math = math or MATH

    def _math(self, tex, display, source):
        svg = self.math.render(tex, display)
        if svg is None:
            svg = f'<span class="bp-tex">{self.escape_html(source)}</span>'
        if self.placeholders is None:
            return svg
        self.placeholders.append(svg)       # put back after the markdown's HTML is sanitised
        return f"BPMATHSLOT{len(self.placeholders) - 1}X"

    placeholders = None

    def block_math(self, body):
        return self._math(body, True, f"$${body}$$")

    def inline_math(self, body):
        return self._math(body, False, f"${body}$")

    def latex_environment(self, name, body):
        tex = f"\\begin{{{name}}}{body}\\end{{{name}}}"
        return self._math(tex, True, tex)


def _check_of(grade_id):
    try:
        from bplib.checks import CHECKS
        return CHECKS.get(grade_id)
    except Exception:   # noqa: BLE001  (no bplib here: the grade id still names the test)
        return None


def cell_label(cell, part=None):
    """A cell's name in the contents list and its heading: the check it runs.

    ``dense_backward_visible`` -> ``dense_backward: visible tests``, ``dense_backward_hidden`` ->
    ``dense_backward: hidden tests``, the solution cell ``dense_backward_code`` ->
    ``dense_backward: your code`` (``part="comment"``: ``dense_backward: comment on your code``);
    any other graded cell: its grade id.
    """
    nbg = (cell.get("metadata") or {}).get("nbgrader") or {}
    gid = str(nbg.get("grade_id") or "")
    if nbg.get("solution"):
        name = gid[:-len("_code")] if gid.endswith("_code") else gid
        what = "comment on your code" if part == "comment" else "your code"
        return f"{name}: {what}" if name else what
    c = _check_of(gid)
    if c is not None:
        return f"{c.fn_name}: {'hidden' if c.hidden else 'visible'} tests"
    for suffix, kind in (("_visible", "visible tests"), ("_hidden", "hidden tests")):
        if gid.endswith(suffix) and len(gid) > len(suffix):
            return f"{gid[:-len(suffix)]}: {kind}"
    name = gid or "graded cell"
    return f"{name}: comment" if part == "comment" else name


class MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates kept in this process's memory. nbgrader makes a new exporter (and so a
    new jinja environment) for every learner; with this cache only the first compiles the
    templates, and the forkserver's warm-up (grading/warm.py) is that first for a whole run. Jinja
    checks each entry against its template's source, so an edited template is compiled again."""

    def __init__(self):
        self.store = {}

    def load_bytecode(self, bucket):
        code = self.store.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket):
        self.store[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CACHE = MemoryBytecodeCache()


class FeedbackExporter(HTMLExporter):
    """nbgrader's HTML feedback with the math typeset in the page and the tests named."""

    math = MATH                        # the TeX -> SVG engine (one node process for the whole run)

    def _create_environment(self):
        environment = super()._create_environment()
        environment.bytecode_cache = TEMPLATE_CACHE
        return environment

    @pass_context
    def markdown2html(self, context, source):
        cell = context.get("cell", {})
        renderer = OfflineMathRenderer(
            escape=False, attachments=cell.get("attachments", {}), embed_images=self.embed_images,
            path=context.get("resources", {}).get("metadata", {}).get("path", ""),
            anchor_link_text=self.anchor_link_text, exclude_anchor_links=self.exclude_anchor_links,
            math=self.math, **self.lexer_options)
        renderer.placeholders = []
        out = inert.sanitize(MarkdownWithMath(renderer=renderer).render(source))
        slots = renderer.placeholders
        return re.sub(r"BPMATHSLOT(\d+)X", lambda m: slots[int(m.group(1))] if int(m.group(1)) < len(slots)
                      else m.group(0), out)

    def default_filters(self):
        yield from super().default_filters()
        yield ("markdown2html", self.markdown2html)
        yield ("feedback_label", cell_label)

    def from_notebook_node(self, nb, resources=None, **kw):
        import copy
        # inert, and under 2 MB: a smaller output budget and shortened sources until it fits
        for budget, max_source in ((inert.BUDGET, None), (200_000, 20_000), (20_000, 2_000)):
            page = copy.deepcopy(nb)
            cut = inert.make_inert(page, budget, max_source)
            output, res = self._render(page, resources, **kw)
            if len(output.encode("utf-8")) <= inert.MAX_PAGE:
                break
        else:
            output = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" />' + inert.CSP_META
                      + "<title>feedback</title></head><body><p>This feedback page would be larger than 2 MB "
                        "even without the notebook's outputs, so it is not shown; your instructor has your "
                        "graded notebook.</p></body></html>")
            cut = ["the whole page"]
        if cut:
            text = ("This page is cut to stay under 2 MB (outputs of all kinds count): "
                    + html.escape("; ".join(cut[:8]) + (" ..." if len(cut) > 8 else "")))
            output = output.replace('<nav id="toc"', f'<p class="bp-cut-note">{text}</p>\n<nav id="toc"', 1)
        if 'http-equiv="Content-Security-Policy"' not in output:
            output = output.replace("<head>", "<head>\n" + inert.CSP_META, 1)
        return output, res

    def _render(self, nb, resources=None, **kw):
        resources = dict(resources or {})
        ok = self.math.ready()
        resources["offline_math"] = {"css": self.math.css, "problem": None if ok else self.math.problem}
        resources["bp_csp"] = inert.CSP
        output, resources = super().from_notebook_node(nb, resources, **kw)
        # bootstrap's icon font is never used here; its relative URLs would be the page's only links out
        output = re.sub(r"@font-face\s*\{\s*font-family:\s*'Glyphicons Halflings'[^}]*\}", "", output)
        if 'class="bp-tex"' in output and 'class="bp-math-note"' not in output:   # MathJax stopped mid-page
            output = output.replace('<nav id="toc"', NOTE + '\n<nav id="toc"', 1)
        return output, resources


def _nbgrader_dir(*parts):
    import nbgrader
    return os.path.join(os.path.dirname(os.path.abspath(nbgrader.__file__)), *parts)


def configure(c):
    """Point nbgrader's GenerateFeedback at this exporter and template (in the traitlets Config ``c``).

    ``bp_feedback`` extends nbgrader's ``feedback/index.html.j2``: nbgrader's template folder is a
    search path (it holds only .tpl files besides ``feedback/``, so nothing else is shadowed), and
    so is the bootstrap CSS folder that nbgrader's own set-up adds (GenerateFeedback.__init__)."""
    theirs = _nbgrader_dir("server_extensions", "formgrader", "templates")
    bootstrap = _nbgrader_dir("server_extensions", "formgrader", "static", "node_modules", "bootstrap", "dist", "css")
    c.GenerateFeedback.exporter_class = f"{__name__}.FeedbackExporter"   # a name: the Config stays plain data
    c.FeedbackExporter.template_name = TEMPLATE_NAME
    c.FeedbackExporter.extra_template_basedirs = [TEMPLATES, theirs]
    c.FeedbackExporter.extra_template_paths = [theirs, bootstrap]
    return c


__all__ = ["FeedbackExporter", "MathJaxSVG", "MATH", "cell_label", "configure"]
