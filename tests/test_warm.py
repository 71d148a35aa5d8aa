"""grading/warm.py: the forkserver's warm-up (issue 18) changes no page, only the time.

The warm-up imports the feedback page's modules, compiles its regular expressions and templates
and renders one made-up notebook, so that every learner's process (forked from the forkserver)
starts with them ready. A page rendered with the warm template cache must be byte-identical to one
rendered cold, and the warm-up must really run (a silent failure would only cost time, so it is
checked here)."""
import copy
import subprocess
import sys

from traitlets.config import Config

from grading import feedback, warm


SAMPLE = warm._sample_notebook()       # once: every cell gets a random id


def render(cache):
    saved = feedback.TEMPLATE_CACHE
    feedback.TEMPLATE_CACHE = cache
    try:
        exporter = feedback.FeedbackExporter(config=feedback.configure(Config()))
        exporter.math = warm._NoMath()
        resources = {"nbgrader": {"notebook": "n", "score": 1, "max_score": 2, "late_penalty": 0}}
        return exporter.from_notebook_node(copy.deepcopy(SAMPLE), resources)[0]
    finally:
        feedback.TEMPLATE_CACHE = saved


def test_the_warm_up_runs_in_a_fresh_interpreter_and_fills_the_template_cache():
    r = subprocess.run([sys.executable, "-c", "import grading.warm as w, grading.feedback as f, nbgrader.api as a; "
                        "from grading import nbgrader_schema as s; "
                        "print(w.WARMED, len(f.TEMPLATE_CACHE.store), a.Base.registry._new_mappers, len(s._VALIDATORS))"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    warmed, entries, unconfigured, schemas = r.stdout.split()
    assert warmed == "True", r.stderr
    assert int(entries) >= 5, "the templates were not compiled into the shared cache"
    assert unconfigured == "False", "the gradebook's ORM mappers were left for each learner to configure"
    assert schemas == "1", "nbgrader's cell-metadata schema was left for each learner to check"


def test_a_page_from_the_warm_cache_is_the_page_from_a_cold_one():
    cold_cache = feedback.MemoryBytecodeCache()
    cold = render(cold_cache)                  # compiles every template into the empty cache
    assert cold_cache.store
    warm_page = render(cold_cache)             # loads them from it
    assert warm_page == cold
    assert "<b>1</b>" in cold and "Warm-up" in cold


def test_the_forkserver_freezes_what_it_imported():
    """A learner's process forked from it starts with the forkserver's objects frozen (grading/freeze.py):
    its garbage collector then never touches, and so never copies, the pages they are on."""
    import gc

    from grading import engine
    with engine._context().Pool(1) as pool:
        frozen = pool.apply(gc.get_freeze_count)
    assert frozen > 10_000, f"only {frozen} objects frozen: the forkserver's imports are not"
