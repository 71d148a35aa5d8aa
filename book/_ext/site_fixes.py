"""Small fixes to the HTML of jupyter-book 1.x, found by the browser test (tests/test_site.py).

* sphinx-thebe registers its configuration script twice, so every page logged
  "Identifier 'THEBE_JS_URL' has already been declared": keep one copy of
  every script.
"""


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


def setup(app):
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
