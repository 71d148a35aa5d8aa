"""Small fixes to the HTML of jupyter-book 1.x, found by the browser test (tests/test_site.py).

* MathJax is served by the site itself (no CDN, so math renders offline):
  `make book` copies the npm bundle (package-lock.json) to
  _build/mathjax/mathjax/tex-svg-full.js, which _config.yml puts on
  html_static_path. A build started without `make` copies it from
  node_modules, or stops with a message that says what to run.
* sphinx-thebe registers its configuration script twice, so every page logged
  "Identifier 'THEBE_JS_URL' has already been declared": keep one copy of
  every script.
* Accessibility (axe-core, run by the browser test): the sidebar's expand
  buttons (<summary> holding only an icon) get a name, and the theme's
  scrollable table boxes can be reached with the keyboard (tabindex="0").
  Both are rewritten in the written HTML once the build has finished.
"""
import re
import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

MATHJAX = Path("_build/mathjax/mathjax/tex-svg-full.js")
NPM_BUNDLE = Path("node_modules/mathjax/es5/tex-svg-full.js")


def _ensure_mathjax(app, config):
    root = Path(app.confdir)
    target, bundle = root / MATHJAX, root / NPM_BUNDLE
    if target.is_file():
        return
    if not bundle.is_file():
        raise ExtensionError(f"MathJax is missing ({MATHJAX}): build the site with `make book`, "
                             f"or run `npm ci` first (it installs the version in package-lock.json)")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle, target)


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        name = str(getattr(js, "filename", js) or "")      # inline scripts: None or ""
        key = (name.split("_static/")[-1],
               tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


_SUMMARY = re.compile(r'<summary>(\s*<span class="toctree-toggle")')
_TABLE_BOX = re.compile(r'<div class="pst-scrollable-table-container">')


def _accessible_html(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        fixed = _SUMMARY.sub(r'<summary aria-label="Show or hide the sections">\1', text)
        fixed = _TABLE_BOX.sub('<div class="pst-scrollable-table-container" tabindex="0">', fixed)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _accessible_html)
    app.connect("config-inited", _ensure_mathjax)
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
