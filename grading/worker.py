"""One grading worker: ``python -m grading.worker <settings.json>``.

Reads one task per line on stdin (``{"student": ..., "notebook": ...}``) and
answers one JSON line per task on stdout. For each student:

1. copy the prepared notebook to ``submitted/<student>/<a>/`` of this worker's course dir;
2. ``nbgrader autograde`` (in process, nbgrader's API); the kernel starts in a fresh
   sandbox (kernel_launcher.py): it gives the feedback page its outputs, never the grade;
3. kill whatever the kernel left running (every process of this worker's uid);
4. the clean re-run (rerun.py): the learner's graded functions run again in a fresh sandbox
   with the course's reference implementations removed, on cases from the run's secret seed,
   and are judged here. A failure of that machinery is retried, then reported as the grader's.

Then, on ``{"finish": [the results of step 1-4]}`` (once, after all its learners):

5. every test cell's score is the re-run's verdict: the gradebook gets ``manual_score`` where
   nbgrader's kernel-side score differs (so nbgrader's own export and feedback agree), and the
   test cells' outputs in the feedback are the re-run's verdicts;
6. ``nbgrader generate_feedback`` once for all (hidden tests cleared), copied to ``feedback/<student>.html``.
"""
import html
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import nbformat

from . import rerun
from .course import api_for

RERUN_TRIES = 3


def kill_uid(uid):
    """SIGKILL every process owned by ``uid`` (the worker slot's sandbox user)."""
    if uid <= 0:
        return 0
    n = 0
    for _ in range(3):
        found = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    os.kill(int(pid), signal.SIGKILL)
                    found, n = True, n + 1
            except (OSError, ProcessLookupError):
                pass
        if not found:
            break
        time.sleep(0.1)
    return n


def kill_kernel(sandbox):
    try:
        with open(os.path.join(sandbox, "kernel.pid")) as f:
            pid = int(f.read().strip() or 0)
        if pid > 1:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass


def analyse(nb_path, timeout):
    """Per test cell: the error it raised (if any); plus errors, timeouts in other cells."""
    info = {"test_errors": {}, "other_errors": [], "timeouts": [], "cut": [], "order": []}
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:   # noqa: BLE001
        return info
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        nbg = cell.metadata.get("nbgrader", {})
        if nbg.get("grade"):
            info["order"].append(nbg.get("grade_id"))
        if any("[grader: " in str(o.get("text", "")) for o in cell.get("outputs", [])):
            info["cut"].append(nbg.get("grade_id") or f"cell {i + 1}")
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            continue
        e = errors[-1]
        ename, evalue = str(e.get("ename", "")), str(e.get("evalue", ""))[:200]
        if ename in ("CellTimeoutError", "KeyboardInterrupt") or \
                any(o.get("ename") == "CellTimeoutError" for o in errors):
            info["timeouts"].append(nbg.get("grade_id") or f"cell {i + 1}")
        if nbg.get("grade"):
            info["test_errors"][nbg["grade_id"]] = (ename, evalue)
        else:
            info["other_errors"].append((nbg.get("grade_id") or f"cell {i + 1}", ename))
    return info


def read_grades(db_url, assignment, student):
    from nbgrader.api import Gradebook, MissingEntry
    with Gradebook(db_url) as gb:
        try:
            nb = gb.find_submission_notebook(assignment, assignment, student)
        except MissingEntry:
            return {}
        return {g.cell.name: {"score": float(g.score or 0), "max": float(g.max_score or 0),
                              "auto": g.auto_score, "manual_needed": bool(g.needs_manual_grade)}
                for g in nb.grades}


def override(db_url, assignment, student, scores):
    """Set ``manual_score`` of each test cell in ``scores`` (grade id -> points) in the gradebook."""
    from nbgrader.api import Gradebook
    with Gradebook(db_url) as gb:
        for gid, score in scores.items():
            g = gb.find_grade(gid, assignment, assignment, student)
            g.manual_score = float(score)
            g.needs_manual_grade = False
        gb.db.commit()


def put_verdicts(nb_path, verdicts):
    """The test cells of the graded copy show the clean re-run's verdict, not what the kernel printed."""
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:   # noqa: BLE001
        return
    for cell in nb.cells:
        gid = (cell.metadata.get("nbgrader") or {}).get("grade_id")
        v = verdicts.get(gid) if cell.cell_type == "code" else None
        if v is None:
            continue
        text = v["message"] + "\n"
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        if not v["passed"]:
            cell.outputs.append(nbformat.v4.new_output("error", ename="AssertionError",
                                                       evalue=v["message"].splitlines()[0], traceback=[]))
    nbformat.write(nb, nb_path)


def clean_rerun(s, task, drawn):
    """The learner's graded functions re-run outside their kernel; returns (verdicts, isolation, error)."""
    nb = nbformat.read(task["notebook"], as_version=4)
    names = sorted({c.fn_name for c, _ in drawn.values()})
    sources, text = rerun.function_sources(nb, names)
    env = dict(os.environ, GRADING_BPLIB_OVERLAY=s["stripped"])
    env.pop("BPLIB_RECORD_DIR", None)
    budget = s["timeout"] * (task.get("code_cells", 10) + 2) + 60
    last = ""
    for attempt in range(RERUN_TRIES):
        job = tempfile.mkdtemp(prefix=f"r{s['slot']}-", dir=s["sandbox_root"])
        try:
            rerun.make_job(job, nb, s["assignment"], drawn, time_limit=20.0, cell_time_limit=s["timeout"])
            result, killed = rerun.run_job(job, env, budget)
            try:
                with open(os.path.join(job, "isolation.txt")) as f:
                    isolation = f.read().strip()
            except OSError:
                isolation = ""
            if result is None:         # the learner's code used up its time, CPU or memory
                why = ("the re-run of your functions was stopped after its time limit" if killed == "timeout"
                       else f"the re-run of your functions {killed} (your code exited, or hit the CPU-time "
                            f"or memory limit)")
                verdicts = {cid: {"passed": False, "status": why, "hits": [],
                                  "message": f"✗ {c.fn_name}: {why}: 0 points."} for cid, (c, _) in drawn.items()}
                return verdicts, isolation, "", sources
            meta, arrays = result
            return rerun.judge_job(drawn, meta, arrays, text), isolation, "", sources
        except rerun.RerunError as e:
            last = str(e)
            time.sleep(0.5 * 2 ** attempt)
        finally:
            kill_uid(s["uid"])
            shutil.rmtree(job, ignore_errors=True)
    return {}, "", last, sources


def add_feedback_notes(nb_path, lines):
    """Put the grader's notes (verification overrides, restored cells) at the top of the feedback."""
    try:
        nb = nbformat.read(nb_path, as_version=4)
    except Exception:   # noqa: BLE001
        return
    text = "**Notes from the grader**\n\n" + "\n".join(f"- {html.escape(x)}" for x in lines)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(text))
    nbformat.write(nb, nb_path)


def grade_one(api, s, task):
    a, student = s["assignment"], task["student"]
    root = s["course"]
    sub_dir = os.path.join(root, "submitted", student, a)
    for d in (os.path.join(root, "submitted", student), os.path.join(root, "autograded", student),
              os.path.join(root, "feedback", student)):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(sub_dir)
    shutil.copyfile(task["notebook"], os.path.join(sub_dir, f"{a}.ipynb"))

    sandbox = tempfile.mkdtemp(prefix=f"s{s['slot']}-", dir=s["sandbox_root"])
    os.environ.update(GRADING_SANDBOX=sandbox)
    t0 = time.time()
    res = api.autograde(a, student, force=True, create=True)
    seconds = time.time() - t0
    kill_kernel(sandbox)
    kill_uid(s["uid"])
    result = {"student": student, "seconds": round(seconds, 1), "flags": [], "notes": [], "cells": {},
              "feedback_notes": task.get("feedback_notes", [])}
    try:
        with open(os.path.join(sandbox, "isolation.txt")) as f:
            result["isolation"] = f.read().strip()
    except OSError:
        result["isolation"] = "the kernel did not start"
    shutil.rmtree(sandbox, ignore_errors=True)

    log = (res.get("log") or "") + (res.get("error") or "")
    autograded = os.path.join(root, "autograded", student, a, f"{a}.ipynb")
    if not res.get("success") or not os.path.isfile(autograded):
        if "DeadKernel" in log or "Kernel died" in log or "kernel died" in log.lower():
            why = ("the kernel died while running the notebook (os._exit, a crash, or the kernel's "
                   "CPU-time limit)")
        elif "timeout" in log.lower() or "didn't respond" in log:
            why = ("the kernel stopped responding (an endless loop that ignores interrupts?) or did not "
                   "start, and was stopped")
        else:
            last = [ln for ln in log.strip().splitlines() if ln.strip()][-1:] or ["no log"]
            why = f"nbgrader could not grade it ({last[0][:200]})"
        result.update(graded=False, problem=why + ": scored 0", log_tail=log[-2000:])
        return result

    t1 = time.time()
    verdicts, rerun_isolation, err, sources = clean_rerun(s, task, DRAWN[0])
    result["rerun_seconds"] = round(time.time() - t1, 2)
    if err:
        result.update(graded=False, problem=f"grader error: the clean re-run of the functions failed "
                                            f"{RERUN_TRIES} times ({err[:200]}); regrade")
        return result
    result.update(graded=True, autograded=autograded, verdicts=verdicts, sources=sources,
                  rerun_isolation=rerun_isolation)
    return result


def finish(api, s, partials):
    """Verification, overrides and feedback for every learner this worker autograded."""
    a = s["assignment"]
    graded = [r for r in partials if r.get("graded")]
    for r in graded:
        try:
            settle(s, r, r.pop("verdicts"))
        except Exception:   # noqa: BLE001  (one learner's failure must not stop the others)
            r.update(graded=False, problem="grader error: " + traceback.format_exc(limit=3)[-600:] + "; regrade")
    t2 = time.time()
    fb = api.generate_feedback(a, force=True)
    per = (time.time() - t2) / max(1, len(graded))
    for r in graded:
        html_path = os.path.join(s["course"], "feedback", r["student"], a, f"{a}.html")
        if os.path.isfile(html_path):
            dst = os.path.join(s["feedback"], f"{r['student']}.html")
            shutil.copyfile(html_path, dst)
            r["feedback"] = dst
        elif r.get("graded"):
            r["flags"].append("no feedback page: nbgrader generate_feedback failed "
                              + ("" if fb.get("success") else (fb.get("error") or "")[-200:]))
        r["feedback_seconds"] = round(per, 2)
    return partials


def settle(s, result, verdicts):
    """One learner: the clean re-run's verdicts are the scores; overrides in the gradebook; flags."""
    a, student, autograded = s["assignment"], result["student"], result["autograded"]
    grades = read_grades(s["db_url"], a, student)
    info = analyse(autograded, s["timeout"])
    order = {gid: i for i, gid in enumerate(info["order"])}
    changes, feedback_notes = {}, []
    groups = {}          # reason -> (detail of the first, [grade ids]): one flag per reason

    def flag(reason, gid, detail=""):
        groups.setdefault(reason, (detail, []))[1].append(gid)

    for gid, g in sorted(grades.items(), key=lambda kv: order.get(kv[0], 0)):
        v = verdicts.get(gid)
        passed = bool(v and v.get("passed") is True)
        score = g["max"] if passed else 0.0
        cell = {"nbgrader": g["score"], "max": g["max"], "verified": passed, "score": score,
                "status": (v or {}).get("status", "not run"), "symptoms": (v or {}).get("symptoms", [])}
        if abs(score - g["score"]) > 1e-9 or g["manual_needed"]:
            changes[gid] = score
        status = str((v or {}).get("status", ""))
        if status.startswith("reference used"):
            flag("used the course's reference implementation: 0 points", gid, status[len("reference used: "):])
        elif status.startswith("looks into the grader"):
            flag("looks into the grader's frames or objects: 0 points", gid)
        elif "MemoryError" in str((v or {}).get("message", "")):
            flag("the function raised MemoryError (the memory limit)", gid)
        elif status == "timeout" or "time limit" in status:
            flag("the function ran out of time", gid)
        elif status == "missing":
            flag("the graded function is not defined (renamed?)", gid)
        if g["score"] > 0 and not passed and not gid.endswith("_hidden"):   # a hidden cell passes in any kernel
            if not status.startswith(("reference used", "looks into the grader")):
                flag("passed in the learner's kernel, not in the clean re-run: 0 points", gid,
                     str((v or {}).get("message", "")).splitlines()[0][:120] if v else "")
            feedback_notes.append(f"{gid}: it passed in your notebook but not when your function was run "
                                  f"again on the grader's inputs, so it scores 0 (see the verdict below).")
        if gid in info["test_errors"]:
            cell["error"] = info["test_errors"][gid][0]
        result["cells"][gid] = cell
    for reason, (detail, gids) in groups.items():
        result["flags"].append(f"{', '.join(gids)}: {reason}" + (f" ({detail})" if detail else ""))
    if changes:
        override(s["db_url"], a, student, changes)
    put_verdicts(autograded, verdicts)
    if info["timeouts"]:
        result["flags"].append(f"interrupted after the {s['timeout']} s cell limit: "
                               + ", ".join(info["timeouts"]))
    others = [(w, e) for w, e in info["other_errors"] if e not in ("CellTimeoutError", "KeyboardInterrupt")]
    if others:
        result["flags"].append(f"errors outside the test cells: "
                               + ", ".join(f"{w} {e}" for w, e in others[:6])
                               + (" ..." if len(others) > 6 else ""))
    if info["cut"]:
        result["flags"].append("printed more than the output limit (cut): " + ", ".join(info["cut"][:6]))
    final = read_grades(s["db_url"], a, student)
    for gid, g in final.items():
        result["cells"].setdefault(gid, {"max": g["max"], "verified": False})["score"] = g["score"]
    result["score"] = round(sum(g["score"] for g in final.values()), 3)
    result["max_score"] = round(sum(g["max"] for g in final.values()), 3)
    if feedback_notes or result.get("feedback_notes"):
        add_feedback_notes(autograded, result.get("feedback_notes", []) + feedback_notes)


DRAWN = [None]     # {check_id: (check, cases)} from the run's secret seed, drawn once per worker


def main():
    with open(sys.argv[1]) as f:
        s = json.load(f)
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                     # anything else printed goes to the worker's log
    os.environ.update(JUPYTER_PATH=s["jupyter_path"], JUPYTER_RUNTIME_DIR=s["runtime"],
                      GRADING_HIDE=os.pathsep.join(s["hide"]), GRADING_UID=str(s["uid"]),
                      GRADING_MEM_MB=str(s["memory_mb"]), GRADING_CPU_S=str(s["cpu_s"]),
                      GRADING_OUTPUT_CHARS=str(s["output_chars"]),
                      OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    os.environ.update(s.get("kernel_env", {}))
    os.makedirs(s["runtime"], exist_ok=True)
    api = api_for(s["course"], s["timeout"], s.get("alembic_head"))
    DRAWN[0] = rerun.draw_cases(s["assignment"], s["seed"], s.get("check_ids"))
    for line in sys.stdin:
        task = json.loads(line)
        if "finish" in task:
            proto.write(json.dumps({"finish": finish(api, s, task["finish"])}) + "\n")
            continue
        try:
            result = grade_one(api, s, task)
        except Exception:   # noqa: BLE001  (one student's failure must not stop the worker)
            result = {"student": task.get("student"), "graded": False,
                      "problem": "grading error: " + traceback.format_exc(limit=3)[-600:], "flags": []}
        proto.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
