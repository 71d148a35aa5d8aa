"""Feedback pages are inert: what the learner's notebook holds is shown, never run, in the reader's browser.

A feedback page is opened by the instructor and by the learner; everything in it that came from
the learner's notebook (markdown cells, raw cells, the outputs of code cells) is learner-controlled.
``make_inert(nb)`` rewrites a graded notebook before it is rendered:

- **HTML is sanitised** (bleach, an allow-list): outputs' ``text/html``, the HTML inside markdown
  cells and markdown outputs keep text, tables, lists, headings, links and embedded images; every
  ``<script>``, ``<style>``, ``<iframe>``, ``<object>``, ``<form>``, ``<svg>``, event handler
  (``onerror=``), ``style=`` and ``javascript:``/``vbscript:`` link is removed (its text stays as text).
- **JavaScript and widget outputs are not shown** (``application/javascript``, every
  ``application/vnd.*``, unknown types): a one-line note says what was there. SVG images are shown
  through ``<img src="data:image/svg+xml;base64,...">``, where a browser never runs their scripts;
  PNG/JPEG/GIF only if the data is base64 (it goes into an attribute). Output metadata (file names,
  sizes) is dropped; notebook metadata too (widget state would add scripts).
- **Raw cells are shown as text** (nbconvert puts a raw cell's source in the page as HTML).
- **Everything counts against the page's output budget**: text, HTML, images, display data, in page
  order; past ``budget`` characters the rest of a cell's outputs is replaced by one note saying how
  much was cut, and so for every later cell.

The page also carries a Content-Security-Policy (``CSP``, in ``<head>`` before anything of the
learner's): no script at all (the page's math is SVG typeset when the page is made, there is no
MathJax script), no request to anywhere (images only ``data:``), no form, frame or plugin. And
``cap_page`` keeps the page under 2 MB: FeedbackExporter renders again with a smaller budget and
shortened cell sources if it is larger, and says so at the top.
"""
import base64
import binascii
import html
import re

import bleach

CSP = ("default-src 'none'; script-src 'none'; object-src 'none'; frame-src 'none'; child-src 'none'; "
       "worker-src 'none'; connect-src 'none'; font-src data:; img-src data:; media-src 'none'; "
       "style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'")
CSP_META = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
MAX_PAGE = 2 * 1024 * 1024
BUDGET = 1_000_000                 # characters of outputs on one page (the rest: code, math, style)

TAGS = frozenset({"a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div", "dl",
                  "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p",
                  "pre", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table", "tbody",
                  "td", "tfoot", "th", "thead", "tr", "u", "ul", "var"})
ATTRS = {"*": ["class", "title"], "a": ["href", "title", "class"], "img": ["src", "alt", "width", "height"],
         "td": ["colspan", "rowspan", "align"], "th": ["colspan", "rowspan", "align"],
         **{f"h{i}": ["id", "class"] for i in range(1, 7)}}
PROTOCOLS = frozenset({"http", "https", "mailto", "data"})
IMAGES = ("image/png", "image/jpeg", "image/gif")
TEXTS = ("text/plain", "text/markdown", "text/latex")
_B64 = re.compile(r"[A-Za-z0-9+/=\s]*\Z")
_CLEANER = None


def _attr_ok(tag, name, value):
    allowed = ATTRS.get(tag, []) + ATTRS["*"]
    if name not in allowed:
        return False
    if name in ("href", "src"):
        v = re.sub(r"[\x00-\x20]", "", value).lower()
        if v.startswith("data:"):                 # data: only for an image's pixels, never a link
            return tag == "img" and v.startswith(("data:image/png", "data:image/jpeg", "data:image/gif",
                                                  "data:image/svg+xml"))
    return True


def sanitize(fragment):
    """HTML with only the allow-listed tags and attributes (scripts, handlers, frames, forms, styles
    and javascript: links removed; the text of removed tags kept, escaped)."""
    global _CLEANER
    if _CLEANER is None:
        _CLEANER = bleach.Cleaner(tags=TAGS, attributes=_attr_ok, protocols=PROTOCOLS, strip=True,
                                  strip_comments=True)
    fragment = re.sub(r"(?is)<(script|style)\b[^>]*>.*?</\1\s*>",
                      lambda m: html.escape(m.group(0)), str(fragment))    # shown as text, not run
    return _CLEANER.clean(fragment)


def _text(value):
    return "".join(value) if isinstance(value, list) else str(value)


def _note(text):
    return {"output_type": "stream", "name": "stdout", "text": f"[grader: {text}]\n"}


def _inert_output(out):
    """One output, rewritten to be inert; returns (output, its size in characters)."""
    kind = out.get("output_type")
    if kind == "stream":
        text = _text(out.get("text", ""))
        return {"output_type": "stream", "name": "stderr" if out.get("name") == "stderr" else "stdout",
                "text": text}, len(text)
    if kind == "error":
        tb = [str(t) for t in out.get("traceback", [])]
        return {"output_type": "error", "ename": str(out.get("ename", "")), "evalue": str(out.get("evalue", "")),
                "traceback": tb}, sum(map(len, tb)) + len(str(out.get("evalue", "")))
    if kind not in ("display_data", "execute_result"):
        return _note(f"an output of type {str(kind)[:40]!r} is not shown here"), 60
    data, new, dropped = out.get("data") or {}, {}, []
    for mime, value in data.items():
        value = _text(value) if not isinstance(value, (dict, list)) or mime != "application/json" else value
        if mime in TEXTS:
            new[mime] = value
        elif mime == "text/html":
            new[mime] = sanitize(value)
        elif mime in IMAGES:
            v = value if isinstance(value, str) else ""
            try:
                ok = bool(_B64.match(v)) and bool(base64.b64decode(re.sub(r"\s", "", v), validate=True))
            except (binascii.Error, ValueError):
                ok = False
            if ok:
                new[mime] = v
            else:
                dropped.append(f"{mime} (not base64 image data)")
        elif mime == "image/svg+xml":
            b64 = base64.b64encode(str(value).encode("utf-8", "replace")).decode()
            new.setdefault("text/html", f'<img alt="SVG image" src="data:image/svg+xml;base64,{b64}">')
        else:
            dropped.append(mime)
    if dropped:
        note = "not shown in feedback: " + ", ".join(m[:60] for m in dropped[:5])
        if new.get("text/plain"):
            new["text/plain"] = _text(new["text/plain"]) + f"\n[grader: {note}]"
        elif not new:
            return _note(note), len(note)
    if not new:
        return None, 0
    size = sum(len(v) if isinstance(v, str) else len(str(v)) for v in new.values())
    res = {"output_type": kind, "data": new, "metadata": {}}
    if kind == "execute_result":
        res["execution_count"] = out.get("execution_count")
    return res, size


def make_inert(nb, budget=BUDGET, max_source=None):
    """Rewrite the notebook (in place) for an inert feedback page; returns what was cut (a list of str)."""
    import nbformat
    cut, used = [], 0
    nb.metadata = nbformat.from_dict({k: nb.metadata[k] for k in ("kernelspec", "language_info")
                                      if k in nb.metadata})
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "raw":
            src = html.escape(_text(cell.source))
            nb.cells[i] = cell = nbformat.from_dict({
                "cell_type": "markdown", "metadata": cell.metadata, "source": f"<pre>{src}</pre>"})
        graded = bool((cell.metadata.get("nbgrader") or {}).get("grade"))
        if max_source is not None and not graded and len(_text(cell.source)) > max_source:
            n = len(_text(cell.source))
            cell.source = _text(cell.source)[:max_source] + f"\n# [grader: {n - max_source} more characters " \
                                                            f"of this cell are not shown: the page is capped at 2 MB]"
            if cell.cell_type == "markdown":
                cell.source = cell.source.replace("\n# [grader:", "\n\n[grader:")
            cut.append(f"cell {i + 1}: source shortened")
        if cell.cell_type != "code":
            cell.pop("attachments", None) if max_source is not None else None
            continue
        outs, skipped, skipped_chars = [], 0, 0
        for out in cell.get("outputs", []):
            new, size = _inert_output(out)
            if new is None:
                continue
            if used + size > budget and not graded:
                skipped, skipped_chars = skipped + 1, skipped_chars + size
                continue
            used += size
            outs.append(nbformat.from_dict(new))
        if skipped:
            outs.append(nbformat.from_dict(_note(
                f"{skipped} output(s) of this cell ({skipped_chars} characters) are not shown: the outputs of a "
                f"feedback page are capped at {budget} characters")))
            cut.append(f"cell {i + 1}: {skipped} output(s) cut")
        cell.outputs = outs
    return cut
