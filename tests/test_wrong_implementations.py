"""Each catalogued learner mistake loses points, and its verdict names the symptom.

The catalogue: tests/mutants/<assignment>.py. Each wrong implementation is
injected into the solution's code cell, the notebook is graded by the real
`nbgrader autograde` (all mutants of an assignment in one run), and we assert
(1) it scores below full marks and (2) the text of its failing test cells
contains the mutant's keyword (for example "mask is missing").
"""
import pytest

from mutants._course import ASSIGNMENTS, ROOT, graded, mutants

CASES = [(a, m) for a in ASSIGNMENTS if (ROOT / "solutions" / a / f"{a}.ipynb").exists()
         for m in mutants(a)]


@pytest.mark.parametrize("assignment", [a for a in ASSIGNMENTS
                                        if (ROOT / "solutions" / a / f"{a}.ipynb").exists()])
def test_catalogue_has_six_mistakes(assignment):
    assert len(mutants(assignment)) >= 6


@pytest.mark.parametrize("assignment,mutant", CASES, ids=[f"{a}-{m['name']}" for a, m in CASES])
def test_mistake_loses_points_and_is_named(assignment, mutant):
    g = graded(assignment)
    sid = f"mutant_{mutant['name']}"
    score, max_score = g.score(sid)
    assert score < max_score, f"{mutant['name']} scored full marks {score}/{max_score}"
    failing = {cid: text for cid, (failed, text) in g.feedback(sid).items() if failed}
    assert failing, "no test cell failed"
    # the mutated function's own checks must be among the failing ones
    assert any(cid.startswith(mutant["function"] + "_") for cid in failing), sorted(failing)
    text = "\n".join(failing.values())
    assert mutant["expect"].lower() in text.lower(), \
        f"{mutant['name']}: feedback does not mention {mutant['expect']!r}:\n{text}"
