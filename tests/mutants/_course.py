"""A temporary copy of the course, graded by the course's own grading command.

``graded(assignment)`` runs, once per pytest session and assignment:
``nbgrader generate_assignment``, then ONE ``python -m grading`` (what ``make
grade`` runs: nbgrader autograde in a sandboxed kernel, then the clean re-run of
the graded functions that gives the scores) over every "student" (the solution,
the untouched exercise, and every wrong implementation of
tests/mutants/<assignment>.py injected into the solution's code cells). Grading
tests (e2e and wrong implementations) share that one run: grading costs a kernel
start per notebook. Feedback pages are made for the solution and the untouched
exercise only (``--no-feedback-for mutant_*``, an option for this harness): the
mutants' verdicts are read from their graded notebooks, the same with or without a page.

Only the first mistake of each graded function (``e2e_mutants``) goes through that whole run; the
others are judged by ``judged(assignment)``: the grader's clean re-run alone (grading/rerun.py:
the stripped bplib, the sandbox, the hidden and visible cases of the same seed, ``judge_job``),
which is what gives every test cell its score in the real run. A mistake judged so costs about
0.5 CPU-s instead of a kernel start, nbgrader and the re-run (about 2.5 CPU-s), and what it
asserts is the same verdict text the graded notebook would show.

BPLIB_FAST=1 is set for the kernels: the notebooks' training cells then use
a few hundred examples and one epoch (see each notebook's first cell).
"""
import atexit
import csv
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ASSIGNMENTS = ("chain_rule", "gradient_descent", "dense_backward", "conv_backward",
               "lstm_backward", "policy_gradient", "normalization_backward", "attention_backward",
               "backprop_ninja")


# the environment of the test session as it started (tests/conftest.py imports this module first):
# a test that changes os.environ for a moment (a fault-injection switch, a secret, a missing node)
# must not reach the grading runs the background threads start meanwhile; they were: the engine
# test's GRADING_FAULTS=kernel_start=1000 made every kernel of a concurrent course run "not start"
SESSION_ENV = dict(os.environ)


def env():
    """The environment of every grading run a test starts (the session's starting one, the venv first)."""
    e = dict(SESSION_ENV)
    e["PATH"] = f"{VENV_BIN}{os.pathsep}{e.get('PATH', '')}"   # nbgrader calls `alembic`
    e["BPLIB_FAST"] = "1"
    e.pop("BPLIB_RECORD_DIR", None)
    return e


def nbgrader(course, *args, timeout=600):
    r = subprocess.run([str(VENV_BIN / "nbgrader"), *args, "--log-level=WARN"], cwd=course, env=env(),
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def make_course(assignments):
    """A fresh course folder holding nbgrader_config.py and the solutions of ``assignments``."""
    course = Path(tempfile.mkdtemp(prefix="bp-course-"))
    atexit.register(shutil.rmtree, course, ignore_errors=True)
    shutil.copy(ROOT / "nbgrader_config.py", course)
    for a in assignments:
        shutil.copytree(ROOT / "solutions" / a, course / "solutions" / a)
    return course


def mutants(assignment):
    try:
        mod = importlib.import_module(f"mutants.{assignment}")
    except ModuleNotFoundError:
        return []
    return mod.MUTANTS


def e2e_mutants(assignment):
    """The mistakes graded end to end by ``python -m grading``: the first one of each graded function."""
    seen, out = set(), []
    for m in mutants(assignment):
        if m["function"] not in seen:
            seen.add(m["function"])
            out.append(m)
    return out


def rerun_mutants(assignment):
    """The other mistakes: judged by the grader's clean re-run alone (``judged``)."""
    e2e = {m["name"] for m in e2e_mutants(assignment)}
    return [m for m in mutants(assignment) if m["name"] not in e2e]


def solution_cells(nb):
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def student_notebook(exercise_nb, solution_nb, mutant=None):
    """The exercise with its code cells filled in from the solution (one of them mutated)."""
    nb = nbformat.from_dict(exercise_nb)
    sol = solution_cells(solution_nb)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in sol:
            cell.source = sol[gid].source
    if mutant is not None:
        gid = f"{mutant['function']}_code"
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid]
        assert cells, f"mutant {mutant['name']}: no solution cell {gid}"
        old, new = mutant["replace"]
        n = cells[0].source.count(old)
        assert n == 1, f"mutant {mutant['name']}: {old!r} occurs {n} times in {gid} (must be once)"
        cells[0].source = cells[0].source.replace(old, new)
    return nb


class Graded:
    """The result of grading one assignment: scores and feedback per student."""

    def __init__(self, course, assignment, students, rows):
        self.course, self.assignment, self.students, self.rows = course, assignment, students, rows

    def score(self, student):
        row = self.rows[student.lower()]          # the grader's learner ids are lower case
        return float(row["score"]), float(row["max_score"])

    def notebook(self, student):
        """The graded copy (its test cells show the clean re-run's verdicts, as the feedback page does)."""
        sid = student.lower()
        found = list(self.course.glob(f"course/autograded/{sid}/{self.assignment}/{self.assignment}.ipynb"))
        assert found, f"no graded notebook of {student}: {self.rows.get(sid, {}).get('status')}"
        return nbformat.read(str(found[0]), as_version=4)

    def feedback(self, student):
        """check_id -> (did the cell fail?, the text it printed and the error it raised)."""
        out = {}
        for cell in self.notebook(student).cells:
            meta = cell.metadata.get("nbgrader", {})
            if not meta.get("grade"):
                continue
            text = []
            failed = False
            for o in cell.get("outputs", []):
                if o.output_type == "stream":
                    text.append(o.text)
                elif o.output_type == "error":
                    failed = True
                    text.append(f"{o.ename}: {o.evalue}")
            out[meta["grade_id"]] = (failed, "\n".join(text))
        return out


_POOL = None
_FUTURES = {}                   # assignment -> Future of its Graded; ("rerun", assignment) -> its verdicts
_COURSES = {}                   # assignment -> course folder where generate_assignment has run
_LOCKS = {a: threading.Lock() for a in ASSIGNMENTS}
_START_LOCK = threading.Lock()


def generated(assignment):
    """A temporary course folder where `nbgrader generate_assignment <assignment>` has run
    (once per session: the sync test and the grading share it)."""
    with _LOCKS[assignment]:
        if assignment not in _COURSES:
            course = make_course([assignment])
            nbgrader(course, "generate_assignment", assignment, "--force")
            _COURSES[assignment] = course
        return _COURSES[assignment]


def start(assignments=None):
    """Start grading ``assignments`` (default: every assignment) in the background, two at a
    time (CI has 2 cores; each grading run grades one learner at a time), in the order given.
    tests/conftest.py calls it once the tests are collected, for the assignments the selected
    grading tests need, so the grading overlaps the single-threaded tests that run first."""
    global _POOL
    _START_LOCK.acquire()
    try:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2)
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        for a in ASSIGNMENTS if assignments is None else assignments:
            if a not in _FUTURES and (ROOT / "solutions" / a / f"{a}.ipynb").exists():
                _FUTURES[a] = _POOL.submit(_grade, a)
                _FUTURES[("rerun", a)] = _POOL.submit(_judge_by_rerun, a)
    finally:
        _START_LOCK.release()


def submit(fn, *args):
    """Queue ``fn(*args)`` on the pool that grades the course (tests/background.py); a Future."""
    global _POOL
    with _START_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2)
            atexit.register(_POOL.shutdown, wait=False, cancel_futures=True)
        return _POOL.submit(fn, *args)


def graded(assignment):
    """``assignment`` generated, autograded and exported (once per session). If nothing was
    started yet (no conftest), the first call starts every assignment, ``assignment`` first."""
    if _POOL is None:
        start([assignment] + [a for a in ASSIGNMENTS if a != assignment])
    elif assignment not in _FUTURES:
        start([assignment])
    return _FUTURES[assignment].result()


def judged(assignment):
    """{mutant name: {check_id: verdict}} of ``rerun_mutants(assignment)``, from the clean re-run alone
    (once per session; started with the assignment's grading run)."""
    if ("rerun", assignment) not in _FUTURES:
        start([assignment])
    return _FUTURES[("rerun", assignment)].result()


SEED = 4242                      # the grading runs' seed (``--seed 4242`` below): the same cases


def _judge_by_rerun(assignment):
    """What grading/worker.py's clean re-run decides for each mistake of ``rerun_mutants``: the
    notebook's graded functions run in the sandbox on the stripped bplib, judged here."""
    from grading import engine, rerun, strip
    todo = rerun_mutants(assignment)
    if not todo:
        return {}
    tmp = tempfile.mkdtemp(prefix=f"bp-rerun-{assignment}-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.chmod(tmp, 0o755)
    stripped = strip.build(os.path.join(tmp, "stripped"), rerun.allowed(assignment))[0]
    exercise = nbformat.read(str(ROOT / "exercises" / assignment / f"{assignment}.ipynb"), as_version=4)
    solution = nbformat.read(str(ROOT / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    drawn = rerun.draw_cases(assignment, SEED)
    uid, lock = engine.reserve_uid()
    try:
        return {m["name"]: clean_rerun(assignment, student_notebook(exercise, solution, m), stripped, drawn, tmp, uid)
                for m in todo}
    finally:
        if lock is not None:
            lock.close()


def clean_rerun(assignment, nb, stripped, drawn, workdir, uid):
    """The grader's clean re-run of ``nb``'s graded functions (as grading/worker.py runs it): in the
    sandbox as ``uid``, over the stripped bplib ``stripped``, on the cases ``drawn``; returns
    ``judge_job``'s {check_id: verdict}. RuntimeError if the re-run gives no result."""
    from grading import rerun
    hide = [str(ROOT / d) for d in ("solutions", "grading", "tests", ".git")]
    e = dict(env(), GRADING_HIDE=os.pathsep.join(hide), GRADING_UID=str(uid), GRADING_MEM_MB="2048",
             GRADING_CPU_S="120", GRADING_BPLIB_OVERLAY=stripped, OPENBLAS_NUM_THREADS="1")
    job = tempfile.mkdtemp(prefix="job-", dir=workdir)
    os.chmod(job, 0o755)
    try:
        rerun.make_job(job, nb, assignment, drawn)
        result, killed = rerun.run_job(job, e, 300)
        if result is None:
            raise RuntimeError(f"the clean re-run ({assignment}) gave no result: {killed}")
        meta, arrays = result
        _, text = rerun.function_sources(nb, [])
        return rerun.judge_job(drawn, meta, arrays, text)
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _grade(assignment):
    course = generated(assignment)
    exercise = nbformat.read(str(course / "exercises" / assignment / f"{assignment}.ipynb"), as_version=4)
    solution = nbformat.read(str(ROOT / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    students = {"solution": student_notebook(exercise, solution), "untouched": exercise}
    for m in e2e_mutants(assignment):
        students[f"mutant_{m['name']}"] = student_notebook(exercise, solution, m)
    subs = course / "class"
    subs.mkdir()
    for sid, nb in students.items():
        nbformat.write(nb, str(subs / f"{sid}.ipynb"))
    out = course / "graded"
    # no feedback page for the mutants (no test reads one: their verdicts are read from the graded
    # notebook, which is the same with or without a page); the solution's and the untouched
    # exercise's pages are made, so every assignment's page is still rendered once per session
    r = subprocess.run([sys.executable, "-m", "grading", assignment, str(subs), "--out", str(out), "--workers", "1", "--seed", "4242",
                        "--quiet", "--no-feedback-for", "mutant_*"], cwd=ROOT, env=env(), capture_output=True, text=True,
                       timeout=1500)
    if r.returncode != 0:
        raise RuntimeError(f"python -m grading {assignment} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return Graded(out, assignment, students, rows)
