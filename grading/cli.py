"""``python -m grading ASSIGNMENT SUBMISSIONS``: grade a class, write grades.csv, print a summary.

The coordinator: collect and prepare every submission, make one self-contained job per
learner, let the engine (grading/engine.py: Dask, on this machine or a cluster) run
``grade one learner`` for each, and merge: feedback pages, the graded notebooks and the
gradebook in runs/<a>/course/, similarity flags, grades.csv, results.json, the summary.
"""
import argparse
import fnmatch
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import nbformat

from . import class_report, collect, course, engine, inspect_nb, report, rerun, similarity

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UID_BASE = 62000
MARKER = ".grading-run"


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m grading", description="Grade a class: nbgrader autograde in "
                                "parallel sandboxed kernels, clean verification, feedback pages, grades.csv. "
                                "See book/instructors.md.")
    p.add_argument("assignment", help="assignment name, e.g. dense_backward")
    p.add_argument("submissions", help="a folder of submissions, a .zip exported by a learning platform, "
                                       "or one .ipynb")
    p.add_argument("--source-dir", default=os.path.join(REPO, "solutions"),
                   help="folder holding <assignment>/<assignment>.ipynb (default: solutions/)")
    p.add_argument("--out", default=None, help="working folder (default: runs/<assignment>)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="parallel workers on this machine (default: cores)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="grade on the workers of an existing Dask cluster, e.g. tcp://host:8786 "
                        "(see book/instructors.md); default: a local cluster of --workers processes")
    p.add_argument("--timeout", type=int, default=None,
                   help="seconds per cell (default: Execute.timeout of the repo's nbgrader_config.py, else 30)")
    p.add_argument("--memory-mb", type=int, default=2048, help="address-space limit of a student kernel")
    p.add_argument("--cpu-seconds", type=int, default=None,
                   help="CPU-time limit of a student kernel (default: 4 x the cell limit, at least 30)")
    p.add_argument("--output-chars", type=int, default=100000, help="characters one cell may print")
    p.add_argument("--seed", type=int, default=None,
                   help="the secret seed of the grader's cases (default: the one kept in runs/.grading-seed, "
                        "made on first use; delete that file for a new term)")
    p.add_argument("--seed-file", default=os.path.join(REPO, "runs", ".grading-seed"),
                   help="where the secret seed is kept (mode 0600; hidden from learners' code)")
    p.add_argument("--verify-module", default=None, help=argparse.SUPPRESS)   # before issue 12; ignored
    p.add_argument("--full-run", action="store_true",
                   help="run the ungraded demonstration cells in full (default: BPLIB_FAST=1, their small version)")
    p.add_argument("--allow-weak-sandbox", action="store_true",
                   help="grade even if kernels cannot run as an unprivileged user of their own (the grader is "
                        "not root, or its Python is not readable by other users); every row is then flagged. "
                        "Default: stop and say why (book/instructors.md, 'Installing the grader')")
    p.add_argument("--quiet", action="store_true", help="print only the summary")
    # the test harness only (tests/mutants/_course.py): no feedback page for the learners whose id matches
    # GLOB (their grades, graded notebooks and gradebook rows are the same; grades.csv's feedback is empty)
    p.add_argument("--no-feedback-for", default=None, metavar="GLOB", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def repo_cell_timeout(default=30):
    """Execute.timeout from the repository's nbgrader_config.py (the course's one setting)."""
    try:
        from traitlets.config.loader import PyFileConfigLoader
        cfg = PyFileConfigLoader("nbgrader_config.py", path=REPO).load_config()
        return int(cfg.Execute.timeout) if "timeout" in cfg.Execute else default
    except Exception:   # noqa: BLE001  (no or unreadable config: nbgrader's default)
        return default


def _inside(path, folder):
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return path == folder or path.startswith(folder + os.sep)


def _other_assignments(source_dir, assignment):
    """(assignment, check ids) of the course's other assignments, to name a wrong notebook."""
    out = []
    try:
        from bplib.checks import ALL_CHECKS
        names = sorted({a for a, _ in ALL_CHECKS.values()} - {assignment})
        out = [(a, [c for c, (aa, _) in ALL_CHECKS.items() if aa == a]) for a in names]
    except Exception:   # noqa: BLE001  (naming the other assignment is a nicety)
        pass
    return out


def attempted(nb, release):
    """False if every solution cell is exactly as released (the learner wrote nothing)."""
    def sols(n):
        return {(c.metadata.get("nbgrader") or {}).get("grade_id"): c.source.strip() for c in n.cells
                if (c.metadata.get("nbgrader") or {}).get("solution")}
    given, mine = sols(release), sols(nb)
    return any(mine.get(gid) != src for gid, src in given.items())


def flag_similar(assignment, rows, results, source_dir):
    """Near-copies of the course's source or of another learner's function: a flag and the
    ``similarity`` column (never an automatic zero)."""
    by_fn = {}
    for sid, r in results.items():
        for fn, src in (r.get("sources") or {}).items():
            by_fn.setdefault(fn, {})[sid] = src
    for fn, functions in sorted(by_fn.items()):
        try:
            refs = similarity.reference_sources(fn, assignment, solutions_dir=source_dir)
            found = similarity.find_similar(functions, refs, fn)
        except Exception as e:   # noqa: BLE001  (a nicety must not stop the grades)
            for row in rows.values():
                row.setdefault("notes", []).append(f"similarity check of {fn} failed: {type(e).__name__}")
            break
        for sid, pairs in found.items():
            if not pairs or sid not in rows:
                continue
            pairs = sorted(pairs, key=lambda p: (not p[0].startswith("reference:"), -p[1]))   # the course's first
            text = ", ".join(f"{other} ({score:.2f})" for other, score in pairs[:3])
            if len(pairs) > 3:
                text += f" and {len(pairs) - 3} more"
            rows[sid].setdefault("similarity", []).append(f"{fn} ~ {text}")
            rows[sid]["flags"].append(f"similar code: {fn} is a near-copy of {text}")


def sandbox_problem(args):
    """Why kernels would not run as an unprivileged user of their own here (None: they do). With a
    Dask scheduler the workers' machines are checked by each worker (a refused kernel: grader error)."""
    from .kernel_launcher import check_sandbox
    if os.geteuid() != 0:
        return check_sandbox([], -1, None)[0]
    work = tempfile.mkdtemp(prefix="bpgrade-probe-")
    os.chmod(work, 0o711)
    uid, lock = engine.reserve_uid()
    try:
        return check_sandbox(engine.hidden_paths(), uid, work)[0]
    finally:
        if lock is not None:
            lock.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.timeout is None:
        args.timeout = repo_cell_timeout()
    a = args.assignment
    t_start = time.time()
    say = (lambda *x: None) if args.quiet else (lambda *x: print(*x, flush=True))
    out = os.path.abspath(args.out or os.path.join(REPO, "runs", a))
    subs_path = os.path.abspath(args.submissions)
    if not os.path.exists(subs_path):
        print(f"grading: {args.submissions} does not exist", file=sys.stderr)
        return 2
    if _inside(subs_path, out) or _inside(out, subs_path):
        print(f"grading: the working folder {out} and the submissions {subs_path} must not overlap "
              "(the originals are never modified)", file=sys.stderr)
        return 2

    # a fresh working folder every run: regrading gives the same result. Only a folder this
    # command made (it holds MARKER) or an empty one is ever emptied.
    if os.path.isdir(out):
        if os.listdir(out) and not os.path.isfile(os.path.join(out, MARKER)):
            print(f"grading: {out} exists and was not made by the grading command: choose another --out",
                  file=sys.stderr)
            return 2
        shutil.rmtree(out)
    os.makedirs(out)
    os.chmod(out, 0o700)
    with open(os.path.join(out, MARKER), "w") as f:
        f.write("made by python -m grading; emptied at the start of every run\n")

    # 0. never a root kernel: start the sandbox once as a kernel's starts, before any learner
    weak = sandbox_problem(args)
    if weak and not args.allow_weak_sandbox:
        print(f"grading: the sandbox cannot run learners' kernels as an unprivileged user: {weak}.\n"
              "Run the grader as root with the course's .venv readable by every user (book/instructors.md), "
              "or pass --allow-weak-sandbox to grade with the weaker sandbox (every row is then flagged).",
              file=sys.stderr)
        return 2
    if weak:
        say(f"grading: WEAK SANDBOX accepted (--allow-weak-sandbox): {weak}")

    # 1. the submissions, one per student
    folder = subs_path
    if os.path.isfile(subs_path) and subs_path.lower().endswith(".ipynb"):
        folder = os.path.join(out, "incoming")               # one notebook: a class of one
        os.makedirs(folder)
        shutil.copyfile(subs_path, os.path.join(folder, os.path.basename(subs_path)))
    elif os.path.isfile(subs_path):
        try:
            folder = collect.unpack_zip(subs_path, os.path.join(out, "incoming"))
        except collect.CollectionError as e:
            print(f"grading: {e}", file=sys.stderr)
            return 2
    subs = collect.collect(folder, a)
    say(f"grading {a}: {len(subs)} students found in {args.submissions}")

    # 2. nbgrader's view of the assignment, the sandboxed kernel
    release_path = course.make_template(out, a, os.path.abspath(args.source_dir), args.timeout)
    release = nbformat.read(release_path, as_version=4)
    max_score = sum(float(c.metadata.get("nbgrader", {}).get("points", 0) or 0) for c in release.cells
                    if c.metadata.get("nbgrader", {}).get("grade"))

    # 3. check and rebuild each notebook
    others = _other_assignments(args.source_dir, a)
    norm = os.path.join(out, "normalized")
    os.makedirs(norm)
    rows, tasks = {}, []
    for sub in subs:
        row = {"student": sub.student, "submitted_as": sub.submitted_as, "score": 0.0, "max_score": max_score,
               "flags": [], "notes": list(sub.notes), "problem": sub.problem, "cells": {}}
        rows[sub.student] = row
        if sub.problem:
            continue
        prep = inspect_nb.prepare(sub.path, release, a, others)
        row["flags"] += prep.flags
        row["notes"] += prep.notes
        if prep.problem:
            row["problem"] = prep.problem
            continue
        if not attempted(prep.notebook, release):
            row["flags"].insert(0, "not attempted")
        p = os.path.join(norm, f"{sub.student}.ipynb")
        nbformat.write(prep.notebook, p)
        restored = [f for f in prep.flags if "put back" in f or "restored" in f]
        tasks.append({"student": sub.student, "notebook": p, "code_cells": prep.code_cells,
                      "feedback_notes": restored})

    # 4. grade: one self-contained job per learner, scheduled by the engine (Dask, here or on a cluster)
    check_ids = [c.metadata["nbgrader"]["grade_id"] for c in release.cells
                 if c.metadata.get("nbgrader", {}).get("grade")]
    try:
        checked = rerun.assignment_checks(a, check_ids)
    except KeyError as e:
        print(f"grading: {e.args[0]}", file=sys.stderr)
        return 2
    allowed = sorted({name for c in checked for name in rerun.allowed(c.assignment)})
    seed_file = os.path.abspath(args.seed_file)
    seed = rerun.load_seed(seed_file, args.seed)
    template = engine.pack(os.path.join(out, "course"))
    kernel_env = {} if args.full_run else {"BPLIB_FAST": "1"}
    n = max(1, min(args.workers, len(tasks)))
    run_id = f"{a}-{os.getpid()}-{int(time.time())}"
    jobs = []
    for t in tasks:
        with open(t["notebook"]) as f:
            notebook = f.read()
        budget = 2 * (args.timeout * (t["code_cells"] + 2)) + 180
        jobs.append({"run": run_id, "assignment": a, "student": t["student"], "notebook": notebook,
                     "code_cells": t["code_cells"], "feedback_notes": t["feedback_notes"], "timeout": args.timeout,
                     "memory_mb": args.memory_mb, "cpu_s": args.cpu_seconds or max(30, args.timeout * 4),
                     "output_chars": args.output_chars, "seed": seed, "seed_file": seed_file,
                     "check_ids": check_ids, "allowed": allowed, "kernel_env": kernel_env,
                     "needs_mnist": "load_mnist" in json.dumps(release), "template": template,
                     "alembic_head": course.prepare_environment(), "budget": budget,
                     "allow_weak_sandbox": bool(args.allow_weak_sandbox),
                     "feedback": not (args.no_feedback_for and fnmatch.fnmatchcase(t["student"],
                                                                                   args.no_feedback_for)),
                     "backoff_scale": float(os.environ.get("GRADING_BACKOFF_SCALE", "1"))})
    where = f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{n} workers"
    say(f"grading {len(tasks)} notebooks with {where} (cell limit {args.timeout} s, "
        f"kernel memory {args.memory_mb} MB)")
    done = []

    def progress(r):
        done.append(r["student"])
        if not args.quiet:
            state = "graded" if r.get("graded") else r.get("problem", "not graded")
            print(f"  [{len(done)}/{len(tasks)}] {report.clean(r['student'])}: {report.clean(state)}", flush=True)

    def stop(signum, frame):              # Ctrl-C or a SIGTERM: stop the workers and their kernels
        raise KeyboardInterrupt
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    try:
        results = engine.run(jobs, workers=n, scheduler=args.scheduler, on_result=progress) if jobs else {}
    except KeyboardInterrupt:
        engine.reap_orphans()
        print("grading: stopped; nothing was written to grades.csv", file=sys.stderr)
        return 130
    os.makedirs(os.path.join(out, "feedback"), exist_ok=True)
    for sid, r in results.items():
        html_text = r.pop("feedback_html", None)
        if html_text is not None:
            dst = os.path.join(out, "feedback", f"{sid}.html")
            with open(dst, "w", encoding="utf-8") as f:
                f.write(html_text)
            r["feedback"] = dst
        nb_text = r.pop("autograded_nb", None)
        if nb_text is not None:
            d = os.path.join(out, "course", "autograded", sid, a)
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, f"{a}.ipynb"), "w", encoding="utf-8") as f:
                f.write(nb_text)
        course.merge_gradebook(os.path.join(out, "course", "gradebook.db"), r.pop("gradebook", None))

    # 5. merge
    isolation = sorted({r.get("isolation", "") for r in results.values() if r.get("isolation")})
    rerun_isolation = sorted({r.get("rerun_isolation", "") for r in results.values() if r.get("rerun_isolation")})
    for sid, r in results.items():
        row = rows[sid]
        row["flags"] += r.get("flags", [])
        row["notes"] += r.get("notes", [])
        if not r.get("graded"):
            row["problem"] = r.get("problem", "not graded")
            row["log_tail"] = r.get("log_tail", "")
            continue
        row.update(score=r["score"], max_score=r["max_score"], cells=r["cells"],
                   feedback=r.get("feedback", ""),
                   timing={k: r.get(k) for k in ("seconds", "rerun_seconds", "feedback_seconds", "attempts",
                                                  "task_seconds", "autograde_split", "profile")})
    flag_similar(a, rows, results, os.path.abspath(args.source_dir))
    csv_path = report.write_csv(os.path.join(out, "grades.csv"), rows, release)
    _, report_lines = class_report.write_report(out, a, rows, release)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"rows": rows, "isolation": isolation, "rerun_isolation": rerun_isolation}, f, indent=1,
                  sort_keys=True)
    report.print_summary(a, rows, csv_path, time.time() - t_start, where, isolation, rerun_isolation,
                         report_lines)
    return 0
