"""Warm the forkserver once, so that no learner's process pays for it (issue 18).

Every learner is graded in a process of its own, forked from one forkserver per run
(grading/engine.py). Importing a module there is done once for the whole run; so is any cache a
module fills on first use. A profile of one learner (``GRADING_CPROFILE=<folder>``, see
benchmarks/bench_grading.py) showed about a second of each learner's CPU going to work that is the
same for every learner:

- modules imported only when the feedback page is made (bleach and html5lib, BeautifulSoup and
  soupsieve, pygments' lexers, sqlalchemy's sqlite dialect, IPython's pieces);
- regular expressions compiled on first use: pygments compiles a lexer's rules the first time the
  lexer is made; soupsieve compiles the CSS selectors nbconvert's HTMLExporter runs on every page;
- the feedback templates, which jinja compiles again for every exporter (one per learner);
- SQLAlchemy's configuration of the gradebook's ORM mappers, done on a process's first query
  (about 0.1 CPU-s);
- the check of nbgrader's cell-metadata schema (grading/nbgrader_schema.py caches its validator).

Importing this module (``set_forkserver_preload`` names it) does all five: it imports those
modules, renders one small made-up notebook through the same ``FeedbackExporter`` (with math
switched off, so no node process starts here), which fills the exporters' shared jinja bytecode
cache (``feedback.TEMPLATE_CACHE``): a learner's exporter loads compiled templates instead of
compiling them. Nothing here
touches a learner's files, and nothing is written to disk. A warm-up that fails only costs time:
it is logged, never raised (the learner's process then does the work itself, as before).
"""
import logging
import sys

log = logging.getLogger("grading.warm")


class _NoMath:
    """The warm-up's stand-in for the MathJax engine: formulas stay TeX, no node process starts."""
    css = ""
    problem = "warm-up"

    def ready(self):
        return False

    def render(self, tex, display):
        return None


def _sample_notebook():
    import nbformat.v4 as v4
    nb = v4.new_notebook()
    nb.metadata.update(kernelspec={"name": "python3", "display_name": "Python 3", "language": "python"},
                       language_info={"name": "python", "pygments_lexer": "ipython3"})
    graded = {"grade": True, "solution": False, "grade_id": "warm_visible", "points": 1, "score": 1,
              "locked": True, "schema_version": 3}
    nb.cells = [
        v4.new_markdown_cell("# Warm-up\n\nA list:\n\n- one *item*\n- `code` and a [link](#top)\n\n"
                             "| a | b |\n|---|---|\n| 1 | 2 |\n"),
        v4.new_code_cell("import numpy as np\nx = np.ones(3)  # comment\nprint(f'{x.sum():.1f}')",
                         outputs=[v4.new_output("stream", name="stdout", text="3.0\n"),
                                  v4.new_output("execute_result", data={"text/plain": "1", "text/html": "<b>1</b>"},
                                                execution_count=1),
                                  v4.new_output("error", ename="ValueError", evalue="x",
                                                traceback=["\x1b[31mValueError\x1b[0m: x"])]),
        v4.new_code_cell("assert True", metadata={"nbgrader": graded}),
    ]
    return nb


def warm():
    """Import, compile and render once; returns True if the whole warm-up ran."""
    try:
        import IPython.core.interactiveshell  # noqa: F401  (nbconvert and nbclient reach for its pieces)
        import bleach  # noqa: F401
        import bs4  # noqa: F401
        import jupyter_client.manager  # noqa: F401
        import nbclient  # noqa: F401
        import pygments.lexers.python  # noqa: F401
        import soupsieve  # noqa: F401
        import sqlalchemy.dialects.sqlite  # noqa: F401
        from sqlalchemy.orm import configure_mappers
        from traitlets.config import Config

        import nbgrader.api  # noqa: F401  (the gradebook's ORM classes)
        configure_mappers()    # done once here, not on each learner's first gradebook query

        from . import feedback
        from .feedback import inert  # noqa: F401

        exporter = feedback.FeedbackExporter(config=feedback.configure(Config()))
        exporter.math = _NoMath()
        resources = {"nbgrader": {"notebook": "warm", "score": 1, "max_score": 1, "late_penalty": 0,
                                  "student": "warm", "assignment": "warm"}}
        sample = _sample_notebook()
        exporter.from_notebook_node(sample, resources)
        import nbformat.v4 as v4
        from nbgrader.nbgraderformat import MetadataValidator

        from . import nbgrader_schema
        nbgrader_schema.install()
        graded = {k: v for k, v in sample.cells[-1].metadata["nbgrader"].items() if k != "score"}
        MetadataValidator().validate_cell(v4.new_code_cell(metadata={"nbgrader": graded}))   # schema checked once
        return True
    except Exception as e:   # noqa: BLE001  (only a cost: the learner's process does the work itself)
        log.warning("grading.warm: the forkserver warm-up failed (%s: %s); grading is only slower",
                    type(e).__name__, e)
        return False


WARMED = warm()
