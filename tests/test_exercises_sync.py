"""The committed notebooks are exactly what the sources generate, and exercises leak nothing.

1. solutions/<a>/<a>.ipynb == scripts/make_solutions.py applied to solutions/.src/<a>.py
2. exercises/<a>/<a>.ipynb == `nbgrader generate_assignment <a>` run on a temporary copy
   of the course holding only nbgrader_config.py and solutions/<a> (so nobody edits an
   exercise by hand, or forgets to regenerate it)
3. no exercise contains solution code, hidden-test code, nbgrader markers or outputs;
   no committed notebook carries outputs.
"""
import json
import re
import sys

import nbformat
import pytest

from mutants._course import ASSIGNMENTS, ROOT, generated

sys.path.insert(0, str(ROOT / "scripts"))
import make_solutions  # noqa: E402

PRESENT = [a for a in ASSIGNMENTS if (ROOT / "solutions" / ".src" / f"{a}.py").exists()]


def _read(path):
    return nbformat.read(str(path), as_version=4)


def _cells(nb):
    return [(c.cell_type, c.source, json.dumps(c.metadata, sort_keys=True)) for c in nb.cells]


@pytest.mark.parametrize("assignment", PRESENT)
def test_solution_notebook_matches_its_source(assignment):
    built = make_solutions.parse(assignment)
    committed = _read(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    assert _cells(built) == _cells(committed), \
        f"solutions/{assignment} is stale: run `make exercises` and commit"


@pytest.mark.parametrize("assignment", PRESENT)
def test_exercise_matches_nbgrader_output(assignment):
    # a temporary course that the grading tests reuse (mutants/_course.py): one
    # generate_assignment per assignment for the whole session
    fresh = _read(generated(assignment) / "exercises" / assignment / f"{assignment}.ipynb")
    committed = _read(ROOT / "exercises" / assignment / f"{assignment}.ipynb")
    assert _cells(fresh) == _cells(committed), \
        f"exercises/{assignment} differs from what nbgrader generates: run `make exercises` and commit"
    files = sorted(p.name for p in (ROOT / "exercises" / assignment).iterdir())
    assert files == [f"{assignment}.ipynb"], f"unexpected files in exercises/{assignment}: {files}"


@pytest.mark.parametrize("assignment", PRESENT)
def test_exercise_leaks_no_solution_or_hidden_test(assignment):
    solution = _read(ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    exercise_path = ROOT / "exercises" / assignment / f"{assignment}.ipynb"
    text = exercise_path.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{marker} in exercises/{assignment}"
    assert not re.search(r'check\("\w+_hidden"', text), "a hidden check call is in the exercise"
    exercise_code = "\n".join(c.source for c in _read(exercise_path).cells if c.cell_type == "code")
    public_code = "\n".join(re.sub(r"### BEGIN SOLUTION\n.*?### END SOLUTION", "", c.source, flags=re.S)
                            for c in solution.cells if c.cell_type == "code")
    n_solution_lines = 0
    for cell in solution.cells:
        for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
            for line in block.splitlines():
                line = line.strip()
                if len(line) > 12 and not line.startswith("#") and line not in public_code:
                    n_solution_lines += 1
                    assert line not in exercise_code, f"solution line leaked into the exercise: {line!r}"
    assert n_solution_lines > 0


@pytest.mark.parametrize("folder", ["solutions", "exercises"])
def test_committed_notebooks_have_no_outputs(folder):
    for path in sorted((ROOT / folder).glob("*/*.ipynb")):
        nb = _read(path)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path} has outputs: clear them"


def test_nbgrader_lists_exactly_the_course_assignments():
    """nbgrader treats every folder of the source directory as an assignment: the notebook sources live in
    solutions/.src, which it does not list (a tool that lists assignments never tries one called _src)."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config
    cfg = Config()
    cfg.CourseDirectory.root = str(ROOT)
    cfg.CourseDirectory.source_directory = "solutions"
    api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
    assert api.get_source_assignments() == set(ASSIGNMENTS)
