"""Shared test set-up: a headless matplotlib backend and the hypothesis profiles.

Each test sets its own small ``max_examples`` to keep the suite fast. Profiles
(choose with HYPOTHESIS_PROFILE=...):
  default  derandomized: the same examples on every run and machine, so `make test`
           and CI never flake; no deadline (shared 2-core machines are slow)
  explore  fresh random examples on every run, for a search on your own machine
           (a failing example is saved in .hypothesis/ and replayed first next time)
"""
import os

# one BLAS thread (before numpy loads), as `make test` sets: the tests share the cores with the
# background grading runs, and spinning OpenBLAS threads slow both down many times over
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from mutants import _course  # noqa: E402,F401  (first: it keeps the session's starting environment)
import matplotlib  # noqa: E402

import grading.threadsafe_ast  # noqa: F401  (ast.parse under one lock for the test threads: CPython gh-106905)

matplotlib.use("Agg")          # before anything imports pyplot: no window, no display needed

from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("default", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", parent=settings.get_profile("default"), derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# the tests that read tests/mutants/_course.py's grading runs (one `python -m grading` per assignment)
GRADING_MODULES = ("test_grading_e2e", "test_wrong_implementations")


# the modules whose set-ups run in the background (the course's grading runs, then tests/background.py's
# set-ups, in that queue order) go last, in the same order: the tests before them run while the
# background works, instead of waiting for it at a module's first test (the feedback pages' set-up
# waited 78 s when its module ran a third of the way in)
RUN_LAST = GRADING_MODULES + ("test_feedback", "test_grading_hostile")


def pytest_collection_modifyitems(session, config, items):
    def late(item):
        module = getattr(getattr(item, "module", None), "__name__", "").rpartition(".")[2]
        return RUN_LAST.index(module) + 1 if module in RUN_LAST else 0
    items[:] = sorted(items, key=late)          # stable: the order within a module is kept


def pytest_collection_finish(session):
    """Start grading, in the background, the assignments the selected grading tests need, as soon as
    the tests are collected: the grading runs (two at a time) overlap the single-threaded tests
    that come first, instead of starting when the first grading test asks for its result."""
    if session.config.option.collectonly:
        return
    wanted = []
    for item in session.items:
        module = getattr(getattr(item, "module", None), "__name__", "")
        if module.rpartition(".")[2] not in GRADING_MODULES:
            continue
        a = getattr(getattr(item, "callspec", None), "params", {}).get("assignment")
        if a and a not in wanted:
            wanted.append(a)
    if wanted:
        _course.start(wanted)
    import background                 # heavy self-contained set-ups, queued after the grading runs
    background.start({getattr(getattr(item, "module", None), "__name__", "").rpartition(".")[2]
                      for item in session.items})
