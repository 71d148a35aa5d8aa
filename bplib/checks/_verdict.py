"""How a failed check reaches the learner: the verdict, once, with no traceback into bplib.

A failed check raises ``CheckAssertionError`` (an ``AssertionError``, so the cell counts as failed:
nbgrader scores a test cell 0 when it has an error output, and ``pytest.raises(AssertionError)``
still catches it). IPython, in JupyterLab and in nbgrader's Validate alike, shows an exception
that has ``_render_traceback_()`` by calling it instead of formatting the frames: the error
output's traceback is the verdict's lines, and nothing else, so the learner reads the verdict
once and Validate's failure dialog starts with it. The error's ``evalue`` is the verdict too
(the grader and the tests read the "✗ ..." lines from stream or error outputs).
"""


class CheckAssertionError(AssertionError):
    """A failed check. ``str(e)`` and ``e.verdict`` are the verdict; IPython shows only that."""

    def __init__(self, verdict):
        super().__init__(verdict)
        self.verdict = str(verdict)

    def _render_traceback_(self):
        return self.verdict.splitlines() or [self.verdict]


def in_ipython():
    """True where IPython will display an uncaught exception (a Jupyter kernel, the IPython shell)."""
    import sys
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and ipython.get_ipython() is not None
    except Exception:   # noqa: BLE001  (a half-imported or odd IPython: print, as a plain script would)
        return False


def fail(message):
    """Raise the verdict. Outside IPython (a script, pytest) it is printed first, as before: there the
    exception comes with Python's own traceback, and the printed verdict is what reads first."""
    __tracebackhide__ = True
    if not in_ipython():
        print(message)
    raise CheckAssertionError(message) from None
