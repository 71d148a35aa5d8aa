"""Heavy set-ups that need nothing from pytest, started in the background once the tests are collected.

A test module registers a set-up at import (``register(name, module, fn)``); tests/conftest.py
starts, after collection, those whose module has selected tests, on the pool that grades the
course (tests/mutants/_course.py: two at a time, as CI has two cores), queued after the course's
grading runs. The module's fixture then takes ``result(name)``: it waits for the background run,
or runs the set-up itself if nothing started it (a single test run on its own). A set-up must be
self-contained: its own temporary folders, subprocesses rather than signal handlers, no pytest
fixtures; an exception it raises is raised again in the fixture.
"""
import threading

_SETUPS = {}                   # name -> (module name, fn)
_FUTURES = {}
_LOCK = threading.Lock()


def register(name, module, fn):
    _SETUPS[name] = (module.rpartition(".")[2], fn)


def start(selected_modules):
    """Start the registered set-ups of ``selected_modules`` (module names without the package)."""
    from mutants import _course
    with _LOCK:
        for name, (module, fn) in _SETUPS.items():
            if module in selected_modules and name not in _FUTURES:
                _FUTURES[name] = _course.submit(fn)


def result(name):
    with _LOCK:
        future = _FUTURES.get(name)
    if future is None:
        return _SETUPS[name][1]()
    return future.result()
