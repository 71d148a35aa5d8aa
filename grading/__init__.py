"""Instructor grading: one command from a folder (or zip) of submissions to grades.

    python -m grading dense_backward submissions.zip     (or: make grade ASSIGNMENT=... SUBMISSIONS=...)

Stages (one module each):
    collect.py         find each student's notebook in a folder or a platform zip
    inspect_nb.py      read it safely, compare its graded cells with the source, restore what was
                       deleted or edited, note suspicious code
    course.py          nbgrader course directories under runs/<assignment>/ (one per worker)
    worker.py          one process per core: nbgrader autograde, clean verification, feedback
    kernel_launcher.py the sandbox every student kernel starts in (limits, hidden paths, no root)
    report.py          grades.csv and the printed summary
"""

# ast.parse under one lock for the whole process (CPython 3.11 gh-106905), before any stage parses
from . import threadsafe_ast  # noqa: E402,F401
