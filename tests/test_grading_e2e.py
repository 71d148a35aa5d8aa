"""The real nbgrader pipeline grades the exercises correctly.

On a temporary copy of the course: `nbgrader generate_assignment`, then
`nbgrader autograde` of two students per assignment (the solution typed into
the exercise, and the untouched exercise), then `nbgrader export`. The
solution must score full marks, the untouched exercise zero, and both must
appear in the exported CSV. (The same autograde run also grades the wrong
implementations of test_wrong_implementations.py: see mutants/_course.py.)
"""
import pytest

from mutants._course import ASSIGNMENTS, ROOT, graded

PRESENT = [a for a in ASSIGNMENTS if (ROOT / "solutions" / a / f"{a}.ipynb").exists()]


@pytest.mark.parametrize("assignment", PRESENT)
def test_solution_full_marks_untouched_zero(assignment):
    g = graded(assignment)
    score, max_score = g.score("solution")
    assert max_score > 0
    assert score == max_score, f"the solution scored {score}/{max_score}: " + \
        "; ".join(f"{k}: {t}" for k, (failed, t) in g.feedback("solution").items() if failed)
    score, _ = g.score("untouched")
    assert score == 0, f"the untouched exercise scored {score}"
    assert g.rows["untouched"]["status"].startswith("not attempted"), g.rows["untouched"]["status"]
    fb = g.feedback("untouched")
    assert fb and all(failed for failed, _ in fb.values())
    visible = [t for cid, (_, t) in fb.items() if cid.endswith("_visible")]
    assert visible and all("not implemented yet" in t for t in visible)


@pytest.mark.parametrize("assignment", PRESENT)
def test_points_match_the_contract(assignment):
    """Every check of the assignment has a graded cell whose grade_id and points match ALL_CHECKS."""
    from bplib.checks import ALL_CHECKS
    g = graded(assignment)
    cells = {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"].get("points")
             for c in g.notebook("solution").cells if c.metadata.get("nbgrader", {}).get("grade")}
    expected = {cid: pts for cid, (a, pts) in ALL_CHECKS.items() if a == assignment}
    assert cells == expected
    assert float(g.rows["solution"]["max_score"]) == sum(expected.values())


def test_all_six_assignments_exist():
    assert PRESENT == list(ASSIGNMENTS), f"missing: {sorted(set(ASSIGNMENTS) - set(PRESENT))}"
