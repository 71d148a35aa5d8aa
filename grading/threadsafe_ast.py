"""One lock around ``ast.parse`` for the whole process.

CPython 3.11's ``ast.parse`` is not thread-safe: two threads converting syntax trees at once can
fail with ``SystemError: AST constructor recursion depth mismatch`` (CPython gh-106905). A lock
in one module is not enough, because other code parses too: the ``traceback`` module of 3.11
parses a line of source for every frame it formats, and so do pytest and the grader's own
stages. ``install()`` wraps the ``ast.parse`` attribute itself, so every caller in the process
(including the standard library) takes the same lock. Installing twice is harmless.
"""
import ast
import threading

LOCK = threading.RLock()


def install():
    """Make ``ast.parse`` take :data:`LOCK` (idempotent); returns the wrapped function."""
    if getattr(ast.parse, "_threadsafe", False):
        return ast.parse
    unlocked = ast.parse

    def parse(*args, **kwargs):
        with LOCK:
            return unlocked(*args, **kwargs)
    parse.__doc__ = unlocked.__doc__
    parse.__wrapped__ = unlocked
    parse._threadsafe = True
    ast.parse = parse
    return parse


install()
