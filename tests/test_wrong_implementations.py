"""Each catalogued learner mistake loses points, and its verdict names the symptom.

The catalogue: tests/mutants/<assignment>.py. Each wrong implementation is
injected into the solution's code cell. The first mistake of each graded function
is graded by the real `python -m grading` (nbgrader autograde in the sandbox, the
clean re-run, the scores; all of an assignment's in one run); the others by the
grader's clean re-run alone, which is what scores every test cell in the real
run (mutants/_course.py). We assert (1) it loses points: a test cell of the
mutated function fails, and (2) the text of its failing test cells contains the
mutant's keyword (for example "mask is missing").
"""
import pytest

from mutants._course import ASSIGNMENTS, ROOT, e2e_mutants, graded, judged, mutants

CASES = [(a, m) for a in ASSIGNMENTS if (ROOT / "solutions" / a / f"{a}.ipynb").exists()
         for m in mutants(a)]


@pytest.mark.parametrize("assignment", [a for a in ASSIGNMENTS
                                        if (ROOT / "solutions" / a / f"{a}.ipynb").exists()])
def test_catalogue_has_six_mistakes(assignment):
    assert len(mutants(assignment)) >= 6
    assert e2e_mutants(assignment), "no mistake is graded end to end"


@pytest.mark.parametrize("assignment,mutant", CASES, ids=[f"{a}-{m['name']}" for a, m in CASES])
def test_mistake_loses_points_and_is_named(assignment, mutant):
    if mutant["name"] in {m["name"] for m in e2e_mutants(assignment)}:
        g = graded(assignment)
        sid = f"mutant_{mutant['name']}"
        score, max_score = g.score(sid)
        assert score < max_score, f"{mutant['name']} scored full marks {score}/{max_score}"
        failing = {cid: text for cid, (failed, text) in g.feedback(sid).items() if failed}
    else:                                   # the clean re-run's verdicts, which give the real run its scores
        verdicts = judged(assignment)[mutant["name"]]
        failing = {cid: v["message"] for cid, v in verdicts.items() if not v["passed"]}
    assert failing, "no test cell failed"
    # the mutated function's own checks must be among the failing ones
    assert any(cid.startswith(mutant["function"] + "_") for cid in failing), sorted(failing)
    text = "\n".join(failing.values())
    assert mutant["expect"].lower() in text.lower(), \
        f"{mutant['name']}: feedback does not mention {mutant['expect']!r}:\n{text}"
