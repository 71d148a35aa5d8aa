"""nbgrader course directories for one grading run, all under ``runs/<assignment>/``.

    runs/<assignment>/
      course/            source/ (a copy of solutions/<a>/), release/, gradebook.db: the template every
                         learner's job starts from; after the run also autograded/<learner>/ and the
                         merged gradebook of the whole class
      normalized/        the copies that are graded (one per learner, rebuilt by inspect_nb)
      feedback/<learner>.html, report.html, grades.csv, results.json
"""
import json
import logging
import os
import shutil
import sys

from traitlets.config import Config

KERNEL = "bplib-grader"
COURSE_ID = "backprop"
HERE = os.path.dirname(os.path.abspath(__file__))


def prepare_environment(alembic_head=None):
    """nbgrader runs the ``alembic`` command every time it opens a gradebook (seconds each on a busy
    machine). The head revision is fixed for an nbgrader version: ask once (in process), reuse it."""
    bindir = os.path.dirname(sys.executable)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    import nbgrader.api
    if getattr(nbgrader.api.get_alembic_version, "head", None):
        return nbgrader.api.get_alembic_version.head
    if alembic_head is None:
        from alembic.config import Config as AlembicConfig
        from alembic.script import ScriptDirectory
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", os.path.join(os.path.dirname(nbgrader.api.__file__), "alembic"))
        alembic_head = ScriptDirectory.from_config(cfg).get_current_head()
    cached = lambda: alembic_head   # noqa: E731
    cached.head = alembic_head
    nbgrader.api.get_alembic_version = cached
    return alembic_head


def nbgrader_config(root, timeout):
    """The nbgrader configuration of a grading course directory (the repo's plus the sandbox)."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, Execute,
                                        GetGrades, IgnorePattern, LimitOutput, SaveAutoGrades)
    from .preprocessors import CapOutput, HideTestTracebacks

    c = Config()
    c.CourseDirectory.root = root
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = "source"
    c.CourseDirectory.release_directory = "release"
    c.Execute.timeout = timeout
    c.Execute.kernel_name = KERNEL
    c.Execute.startup_timeout = 120
    c.Autograde.autograde_preprocessors = [Execute, CapOutput, IgnorePattern, ClearMetadataPreprocessor,
                                           LimitOutput, SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    # feedback never shows hidden test code, in the cell or in a traceback
    # (nbgrader's default feedback does: issues 917, 1363)
    c.GenerateFeedback.preprocessors = [GetGrades, HideTestTracebacks, ClearHiddenTests,
                                         CSSHTMLHeaderPreprocessor]
    c.ClearHiddenTests.enforce_metadata = False
    # a page a learner can read offline: math typeset to SVG when the page is made (no MathJax
    # script, no CDN), tests named by their check, long lines wrapped (grading/feedback/)
    from .feedback import configure as offline_feedback
    offline_feedback(c)
    c.Application.log_level = logging.WARNING
    return c


def api_for(root, timeout, alembic_head=None):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    prepare_environment(alembic_head)

    cfg = nbgrader_config(root, timeout)
    return NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)


def make_template(out, assignment, source_dir, timeout):
    """Copy the instructor's assignment folder and run generate_assignment; returns the release notebook path."""
    src = os.path.join(source_dir, assignment)
    nb = os.path.join(src, f"{assignment}.ipynb")
    if not os.path.isfile(nb):
        raise SystemExit(f"grading: no source notebook {nb} (is ASSIGNMENT={assignment} right?)")
    root = os.path.join(out, "course")
    shutil.copytree(src, os.path.join(root, "source", assignment),
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    api = api_for(root, timeout)
    res = api.generate_assignment(assignment, force=True, create=True)
    release = os.path.join(root, "release", assignment, f"{assignment}.ipynb")
    if not res.get("success") or not os.path.isfile(release):
        raise SystemExit(f"grading: nbgrader generate_assignment {assignment} failed:\n"
                         f"{res.get('error') or res.get('log')}")
    return release


def write_kernelspec(out):
    """A kernelspec whose launcher is grading/kernel_launcher.py (limits, hidden paths, own uid)."""
    d = os.path.join(out, "jupyter", "kernels", KERNEL)
    os.makedirs(d, exist_ok=True)
    spec = {"argv": [sys.executable, os.path.join(HERE, "kernel_launcher.py"), "-f", "{connection_file}"],
            "display_name": "Python 3 (grading sandbox)", "language": "python",
            "interrupt_mode": "signal"}
    with open(os.path.join(d, "kernel.json"), "w") as f:
        json.dump(spec, f, indent=1)
    return os.path.join(out, "jupyter")


def merge_gradebook(db_path, rows):
    """Add one learner's gradebook rows (grading/worker.py gradebook_rows) to the run's gradebook. Every
    learner's gradebook started as a copy of this one, so the assignment's ids agree and the learner's
    own rows (uuid ids) never collide: ``nbgrader export`` and the formgrader can use the result."""
    import sqlite3
    if not rows:
        return
    con = sqlite3.connect(db_path)
    try:
        for table, data in rows.items():
            cols = ", ".join(f'"{c}"' for c in data["cols"])
            marks = ", ".join("?" for _ in data["cols"])
            con.executemany(f'INSERT OR REPLACE INTO "{table}" ({cols}) VALUES ({marks})', data["rows"])
        con.commit()
    finally:
        con.close()
