"""The released notebooks hand over none of the graded answers, and a first failure never prints one.

1. Every code span in an exercise's markdown (inline `...` and fenced blocks), tried as the body or
   the return expression of each graded function, on the visible cases, yields none of that
   function's graded outputs.
2. For every mutant of the catalogue (tests/mutants/<assignment>.py), the first failing verdict
   names the symptom (the mutant's `expect` word) and contains no formula: not the ladder's last
   level, no assignment to a graded output; then hint() escalates: level 1 (the concept) holds the
   mutant's `concept` word, each call gives a new level, and only the third is the formula.
"""
import contextlib
import io
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest

from bplib import checks
from bplib.checks import CHECKS
from bplib.checks.core import _matches, run_check
from grading import rerun
from mutants._course import ASSIGNMENTS, mutants

ROOT = Path(__file__).resolve().parents[1]
PRESENT = [a for a in ASSIGNMENTS if (ROOT / "exercises" / a / f"{a}.ipynb").exists()]


def code_spans(markdown):
    """Fenced blocks first (then removed), then inline spans."""
    spans = [m.group(1) for m in re.finditer(r"```[^\n]*\n(.*?)```", markdown, re.S)]
    rest = re.sub(r"```.*?```", "", markdown, flags=re.S)
    spans += [m.group(1) for m in re.finditer(r"``?([^`\n]+?)``?", rest)]
    return [s.strip() for s in spans if s.strip()]


def setup_namespace(assignment):
    """The exercise's locked setup cells run (imports, helpers), as a learner's function would see them."""
    nb = nbformat.read(str(ROOT / "exercises" / assignment / f"{assignment}.ipynb"), as_version=4)
    ns = {"__name__": "__main__"}
    for c in nb.cells:
        meta = c.metadata.get("nbgrader") or {}
        if c.cell_type == "code" and meta.get("locked") and not meta.get("grade"):
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    exec(c.source, ns)
                except Exception:     # noqa: BLE001  (a demo cell that needs the learner's functions)
                    pass
    return nb, ns


def graded_functions(assignment):
    return {c.fn_name: c for c in CHECKS.values() if c.assignment == assignment and not c.hidden}


def params_of(nb, fn):
    for c in nb.cells:
        m = re.search(rf"^def {fn}\((.*?)\):", c.source, re.M) if c.cell_type == "code" else None
        if m:
            return [p.split("=")[0].strip() for p in m.group(1).split(",") if p.strip()]
    raise AssertionError(f"no def {fn} in the exercise")


def leaks(span, check, params, base_ns):
    """Which graded outputs the span computes on the visible cases (a list of names; [] = none)."""
    try:
        code = compile(span, "<span>", "eval")
        is_expr = True
    except SyntaxError:
        try:
            code = compile(span, "<span>", "exec")
            is_expr = False
        except SyntaxError:
            return []
    found = None
    for case in check.cases():
        want = check.reference(case)
        ns = dict(base_ns)
        args = {}

        def grab(*a):          # the graded function's arguments on this case, as the check passes them
            args.update(zip(params, a))
            return None if len(check.outputs) == 1 else (None,) * len(check.outputs)
        try:
            check.call(grab, case)
        except Exception:      # noqa: BLE001
            pass
        ns.update(args)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if is_expr:
                    value = eval(code, ns)
                    ns = {"__value__": value}
                else:
                    exec(code, ns)
        except Exception:      # noqa: BLE001  (the span alone is not an answer)
            return []
        values = [v for k, v in ns.items() if not k.startswith("__") or k == "__value__"]
        here = {o for o in want for v in values if not isinstance(v, type(np)) and not callable(v)
                and _matches(v, want[o], 1e-6) and not any(_matches(v, args.get(p), 1e-12) for p in params)}
        found = here if found is None else found & here
        if not found:
            return []
    return sorted(found or [])


@pytest.mark.parametrize("assignment", PRESENT)
def test_no_code_span_of_the_exercise_is_a_graded_answer(assignment):
    nb, ns = setup_namespace(assignment)
    spans = [s for c in nb.cells if c.cell_type == "markdown" for s in code_spans(c.source)]
    assert spans, "the exercise has no code spans at all?"
    bad = []
    for fn, check in graded_functions(assignment).items():
        params = params_of(nb, fn)
        for span in spans:
            got = leaks(span, check, params, ns)
            if got:
                bad.append(f"{fn}: `{span}` computes {got}")
    assert not bad, "\n".join(bad)


def test_the_leak_detector_can_fail():
    """A span that IS an answer is caught (so the test above means something)."""
    check = CHECKS["dense_backward_visible"]
    assert leaks("dout @ W.T", check, ["dout", "x", "W"], {"np": np}) == ["dx"]
    assert leaks("db = dout.sum(axis=0)", check, ["dout", "x", "W"], {"np": np}) == ["db"]
    assert leaks("W.T", check, ["dout", "x", "W"], {"np": np}) == []


# -- 2. mutants: the first verdict names the symptom, no formula; hints escalate ------------------------
def solution_function(assignment, mutant):
    nb = nbformat.read(str(ROOT / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    ns = {"__name__": "__main__"}
    for c in nb.cells:
        meta = c.metadata.get("nbgrader") or {}
        if c.cell_type != "code" or meta.get("grade") or not (meta.get("solution") or meta.get("locked")):
            continue
        src = c.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
        if re.search(rf"^def {mutant['function']}\(", src, re.M):
            old, new = mutant["replace"]
            assert old in src, f"{mutant['name']}: {old!r} not in the solution of {mutant['function']}"
            src = src.replace(old, new)
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(src, ns)
            except Exception:      # noqa: BLE001
                pass
    return ns[mutant["function"]]


def first_failure(assignment, mutant):
    """The first failing verdict of the mutant: visible checks, then the grader's hidden cases."""
    fn = solution_function(assignment, mutant)
    for c in rerun.assignment_checks(assignment):
        if c.fn_name != mutant["function"]:
            continue
        cases = None if not c.hidden else c.cases(np.random.default_rng(7))
        with contextlib.redirect_stdout(io.StringIO()):
            v, _, _ = run_check(c, fn, cases=cases)
        if not v.passed:
            return c, v
    return None, None


CASES = [(a, m) for a in PRESENT for m in mutants(a)]


def formula_fragments(formula):
    """Code-looking pieces of a ladder's formula (an output assigned, a product, a sum...)."""
    parts = re.split(r"[;,:]\s+|\bthen\b|\band\b", formula)
    return [p.strip().rstrip(".") for p in parts if re.search(r"[@*/+\-]|\.sum|\.T\b", p) and len(p.strip()) >= 7]


@pytest.mark.parametrize("assignment,mutant", CASES, ids=[f"{a}-{m['name']}" for a, m in CASES])
def test_first_failure_names_the_symptom_without_the_formula_then_hints_escalate(assignment, mutant):
    check, verdict = first_failure(assignment, mutant)
    assert verdict is not None, f"{mutant['name']} passes every check"
    msg = verdict.message
    assert mutant["expect"].lower() in msg.lower(), f"no {mutant['expect']!r} in:\n{msg}"
    ladder = check.ladder
    assert ladder is not None, f"{check.fn_name} has no hint ladder"
    assert ladder.formula not in msg
    for frag in formula_fragments(ladder.formula):
        assert frag not in msg, f"the first verdict quotes the formula ({frag!r}):\n{msg}"
    outputs = "|".join(re.escape(o) for o in check.outputs)
    assert not re.search(rf"(?<![\w.])({outputs})\s*=(?!=)\s*\S", msg), f"an output is assigned a formula:\n{msg}"
    assert f'hint("{check.fn_name}")' in msg
    # the ladder, asked for three times after this failure
    checks.start(assignment)
    checks._RESULTS[check.id] = verdict
    levels = []
    for _ in range(3):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            checks.hint(check.fn_name)
        levels.append(out.getvalue())
    assert "concept" in mutant, f"{mutant['name']}: add the `concept` keyword of its level-1 hint"
    assert mutant["concept"].lower() in levels[0].lower(), levels[0]
    assert "Hint 1 of 3" in levels[0] and "Hint 2 of 3" in levels[1] and "Hint 3 of 3" in levels[2]
    assert len(set(levels)) == 3
    assert ladder.formula in levels[2] and ladder.formula not in levels[0] + levels[1]
    assert checks.hints_used(assignment)[check.fn_name] == 3
    checks.start(assignment)
