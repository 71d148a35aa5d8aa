"""One grading worker: ``python -m grading.worker <settings.json>``.

Reads one task per line on stdin (``{"student": ..., "notebook": ...}``) and
answers one JSON line per task on stdout. For each student:

1. copy the prepared notebook to ``submitted/<student>/<a>/`` of this worker's course dir;
2. ``nbgrader autograde`` (in process, nbgrader's API); the kernel starts in a fresh
   sandbox (kernel_launcher.py) with ``BPLIB_RECORD_DIR`` pointing inside it;
3. kill whatever the kernel left running (every process of this worker's uid); copy the records.

Then, on ``{"finish": [the results of step 1-3]}`` (once, after all its learners):

4. bplib.checks' verification of every learner's records in ONE clean process (``python -I``);
5. a test cell keeps its points only if nbgrader AND the verification passed it; where they
   disagree the gradebook gets ``manual_score = 0`` (so nbgrader's own export and feedback agree);
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

from .course import api_for

VERIFY_TIMEOUT = 300


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


def copy_records(src, dst, max_bytes=64 << 20):
    """Copy regular ``*.npz`` files only (no links, bounded size)."""
    os.makedirs(dst, exist_ok=True)
    if not os.path.isdir(src) or os.path.islink(src):
        return
    for name in sorted(os.listdir(src)):
        p = os.path.join(src, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if name.endswith(".npz") and not name.endswith(".tmp.npz") and os.path.isfile(p) \
                and not os.path.islink(p) and st.st_size <= max_bytes:
            shutil.copyfile(p, os.path.join(dst, name))


def verify(record_dir, module):
    """Run the checks' verification in a clean process; returns (verdicts, error)."""
    clean = tempfile.mkdtemp(prefix="bpverify-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": clean, "LANG": "C.UTF-8",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    try:
        p = subprocess.run([sys.executable, "-I", "-m", module, record_dir], cwd=clean, env=env,
                           capture_output=True, text=True, timeout=VERIFY_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}, "verification timed out"
    finally:
        shutil.rmtree(clean, ignore_errors=True)
    out = p.stdout.strip()
    try:
        verdicts = json.loads(out[out.index("{"):]) if "{" in out else None
    except ValueError:
        verdicts = None
    if p.returncode != 0 or not isinstance(verdicts, dict):
        return {}, f"verification failed (exit {p.returncode}): {(p.stderr or out)[-300:]}"
    return verdicts, ""


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


def override_zero(db_url, assignment, student, grade_ids):
    from nbgrader.api import Gradebook
    with Gradebook(db_url) as gb:
        for gid in grade_ids:
            g = gb.find_grade(gid, assignment, assignment, student)
            g.manual_score = 0.0
            g.needs_manual_grade = False
        gb.db.commit()


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
    records = os.path.join(sandbox, "records")
    os.environ.update(GRADING_SANDBOX=sandbox, BPLIB_RECORD_DIR=records)
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
    rec_copy = os.path.join(s["records"], student)
    shutil.rmtree(rec_copy, ignore_errors=True)
    copy_records(records, rec_copy)
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

    result.update(graded=True, autograded=autograded, records=rec_copy)
    return result


def verify_many(record_dirs, module):
    """Verify many record folders in ONE clean process (``python -I``); returns {dir: (verdicts, error)}.

    Uses the module's ``verify_dir`` (what ``python -m bplib.checks.verify <dir>`` runs) when it has
    one, so a worker starts one verification process, not one per learner."""
    if not record_dirs:
        return {}
    clean = tempfile.mkdtemp(prefix="bpverify-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": clean, "LANG": "C.UTF-8",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    code = ("import json, sys, importlib\n"
            "m = importlib.import_module(sys.argv[1])\n"
            "print(json.dumps({d: m.verify_dir(d) for d in sys.argv[2:]}))\n")
    try:
        p = subprocess.run([sys.executable, "-I", "-c", code, module] + list(record_dirs), cwd=clean, env=env,
                           capture_output=True, text=True, timeout=VERIFY_TIMEOUT + 5 * len(record_dirs))
        out = json.loads(p.stdout) if p.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError):
        out = None
    finally:
        shutil.rmtree(clean, ignore_errors=True)
    if isinstance(out, dict):
        return {d: (v, "") if isinstance(v, dict) else ({}, "verification failed") for d, v in out.items()}
    return {d: verify(d, module) for d in record_dirs}        # one process per learner, the CLI


def finish(api, s, partials):
    """Verification, overrides and feedback for every learner this worker autograded."""
    a = s["assignment"]
    graded = [r for r in partials if r.get("graded")]
    t1 = time.time()
    checked = verify_many([r["records"] for r in graded], s["verify_module"])
    per = (time.time() - t1) / max(1, len(graded))
    for r in graded:
        try:
            settle(s, r, *checked.get(r["records"], ({}, "verification did not run")))
        except Exception:   # noqa: BLE001  (one learner's failure must not stop the others)
            r.update(graded=False, problem="grading error: " + traceback.format_exc(limit=3)[-600:])
        r["verify_seconds"] = round(per, 2)
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


def settle(s, result, verdicts, verr):
    """One learner: nbgrader's grades AND the clean verification; overrides; flags."""
    a, student, autograded = s["assignment"], result["student"], result["autograded"]
    if verr:
        result["flags"].append(verr)
    grades = read_grades(s["db_url"], a, student)
    info = analyse(autograded, s["timeout"])
    order = {gid: i for i, gid in enumerate(info["order"])}
    disagree, feedback_notes = [], []
    groups = {}          # reason -> (detail of the first, [grade ids]): one flag per reason

    def flag(reason, gid, detail=""):
        groups.setdefault(reason, (detail, []))[1].append(gid)

    for gid, g in sorted(grades.items(), key=lambda kv: order.get(kv[0], 0)):
        v = verdicts.get(gid) if isinstance(verdicts.get(gid), dict) else None
        verified = bool(v and v.get("passed") is True)
        cell = {"nbgrader": g["score"], "max": g["max"], "verified": verified}
        if g["score"] > 0 and not verified:
            disagree.append(gid)
            why = (v or {}).get("message") or "no record: the check never reported for this cell"
            flag("nbgrader passed it but the clean verification did not: 0 points", gid,
                 str(why).splitlines()[0][:120])
            feedback_notes.append(f"{gid}: the check did not pass when its results were verified "
                                  f"outside your notebook, so it scores 0.")
            cell["score"] = 0.0
        else:
            cell["score"] = g["score"]
        vmsg = str((v or {}).get("message", ""))
        if "raised MemoryError" in vmsg:
            flag("the function raised MemoryError (the kernel's memory limit)", gid)
        elif "timeout" in vmsg.lower():
            flag("the function ran out of time", gid)
        if gid in info["test_errors"]:
            ename, evalue = info["test_errors"][gid]
            cell["error"] = ename
            if ename == "NameError":
                flag(f"NameError ({evalue}): a function renamed or not defined?", gid)
            elif ename not in ("AssertionError", "CellTimeoutError", "KeyboardInterrupt"):
                flag(f"the test cell raised {ename}: {evalue[:120]}", gid)
        result["cells"][gid] = cell
    for reason, (detail, gids) in groups.items():
        result["flags"].append(f"{', '.join(gids)}: {reason}" + (f" (first: {detail})" if detail else ""))
    if disagree:
        override_zero(s["db_url"], a, student, disagree)
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
    if any(g["manual_needed"] for gid, g in grades.items() if gid not in disagree):
        result["flags"].append("nbgrader marked a cell as needing manual grading")
    # final scores from the gradebook after the overrides
    final = read_grades(s["db_url"], a, student)
    for gid, g in final.items():
        result["cells"].setdefault(gid, {"max": g["max"], "verified": False})["score"] = g["score"]
    result["score"] = round(sum(g["score"] for g in final.values()), 3)
    result["max_score"] = round(sum(g["max"] for g in final.values()), 3)
    if feedback_notes or result.get("feedback_notes"):
        add_feedback_notes(autograded, result.get("feedback_notes", []) + feedback_notes)




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
