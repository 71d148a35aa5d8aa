"""Grading ONE learner, a plain function: ``grade_learner(job, machine) -> result``.

Run in a process of its own (``python -m grading.worker <job.json> <result.json>``, started by
grading/engine.py, which schedules learners on this machine or on a Dask cluster, retries the
grader's own faults and merges the results):

1. a fresh nbgrader course folder from the run's template (the same gradebook ids everywhere);
2. ``nbgrader autograde`` of the learner's notebook; the kernel starts in a fresh sandbox
   (kernel_launcher.py): it gives the feedback page its outputs, never the grade. A kernel that
   never started (no ``kernel_ready`` in its sandbox) is the grader's fault: exit ``FAULT``;
3. every process of the sandbox uid is killed;
4. the clean re-run (rerun.py): the graded functions run again in a fresh sandbox with the
   course's reference implementations removed, on cases from the run's secret seed, and are
   judged here; every test cell's score is that verdict (``manual_score`` in the gradebook
   where nbgrader's kernel-side score differs; the test cells' outputs become the verdicts);
5. ``nbgrader generate_feedback`` for this learner.

The result carries the row, the feedback page, the graded notebook and the gradebook's rows.
"""
import html
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

import nbformat

from . import nbgrader_schema, rerun
from .course import api_for

nbgrader_schema.install()      # each cell-metadata schema checked once per process, not once per cell

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


SWEEP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/var/lock", "/run/shm", "/var/crash")


def sweep_uid_files(uid, roots=SWEEP, depth=2):
    """Remove what the sandbox uid left in the machine's world-writable folders (a kernel has private
    ones; this catches a sandbox without a mount namespace). Never follows a link; returns the count."""
    if uid <= 0:
        return 0
    n = 0

    def walk(d, level):
        nonlocal n
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_uid == uid:
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(e.path)
                    except OSError:
                        continue
                n += 1
            elif level < depth and e.is_dir(follow_symlinks=False) and st.st_mode & 0o002:
                walk(e.path, level + 1)     # another world-writable folder inside (/tmp/.X11-unix, ...)
    for r in roots:
        if os.path.isdir(r) and not os.path.islink(r):
            walk(r, 1)
    return n


CONTROL = None


def clean_text(text, limit=None):
    """Text that came from a kernel, safe to print: control characters (terminal escapes) removed."""
    import re
    global CONTROL
    if CONTROL is None:
        CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
    text = CONTROL.sub("", str(text))
    return text if limit is None else text[:limit]


def read_notes(path):
    """The sandbox's notes (kernel_launcher.py writes them in a folder the kernel cannot reach)."""
    try:
        return clean_text(rerun._read_regular(path, 64 << 10).decode("utf-8", "replace")).strip()
    except OSError:
        return ""


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
    notes = os.path.join(s["notes"], "rerun-isolation")
    env["GRADING_REPORT"] = notes
    budget = s["timeout"] * (task.get("code_cells", 10) + 2) + 60
    last = ""
    cpu_limit = int(os.environ.get("GRADING_CPU_S", "0") or 0)
    for attempt in range(RERUN_TRIES):
        job = tempfile.mkdtemp(prefix=f"r{s['slot']}-", dir=s["sandbox_root"])
        try:
            rerun.make_job(job, nb, s["assignment"], drawn, time_limit=20.0, cell_time_limit=s["timeout"])
            if fault_injected("rerun_killed"):
                _kill_once_started(os.path.join(job, "progress"), lambda j=job: _runner_pid(j))
            used = _children_cpu()
            result, killed = rerun.run_job(job, env, budget)
            used = _children_cpu() - used
            isolation = read_notes(notes)
            if (result is None and attempt == 0 and killed.startswith("killed by signal 9 ")
                    and (cpu_limit <= 0 or used < cpu_limit - 1)):
                # SIGKILL below its CPU-time limit: from outside (the machine's memory, an operator), not
                # the learner's code, which would die again; run it once more in a fresh process
                last = killed
                continue
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
            sweep_uid_files(s["uid"])
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
            flag("the graded function is not defined (renamed, or its cell raised an error?)", gid)
        elif status.startswith("raised ") and "NotImplementedError" not in status:
            flag(f"the function {status} when re-run", gid)
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


FAULT = 75          # exit status of a grader fault (the engine retries it)


class GraderFault(Exception):
    """The grading machinery failed for this learner (not the learner's code)."""


from .kernel_launcher import fault_injected  # noqa: E402  (one switch for both; the launcher is standalone)


def _why_not_graded(log, kernel_started, kernel_log=""):
    never = "before replying to kernel_info" in log or "Kernel didn't respond" in log or "kernel_info" in log
    if never and not kernel_started:
        said = [ln.strip() for ln in log.splitlines() if "kernel_info" in ln or "Kernel didn't respond" in ln]
        own = _last_line(kernel_log) if kernel_log.strip() else "it wrote nothing"
        raise GraderFault("the kernel did not start" + (f" ({said[-1][:160]})" if said else "")
                          + f"; the kernel's own log: {own}")
    if "DeadKernel" in log or "Kernel died" in log or "kernel died" in log.lower():
        return "the kernel died while running the notebook (os._exit, a crash, or the kernel's CPU-time limit)"
    if "timeout" in log.lower() or "didn't respond" in log:
        return "the kernel stopped responding (an endless loop that ignores interrupts?), and was stopped"
    return f"nbgrader could not grade it ({_last_line(log)})"


def _kill_once_started(ready, find_pid):
    """Test-only (GRADING_FAULTS=kernel_killed=k, rerun_killed=k): SIGKILL a kernel or a clean re-run
    from outside once the file ``ready`` exists, as the machine's OOM killer or an operator would; the
    process is ``find_pid()`` (a kernel by the pid its launcher wrote: only this test path reads it)."""
    import threading

    def kill():
        for _ in range(600):
            pid = find_pid() if os.path.exists(ready) else None
            if pid:
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.05)
    threading.Thread(target=kill, daemon=True).start()


def _runner_pid(job):
    """Test-only: the pid of the clean re-run of ``job`` (its command line names the job folder)."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.join(job, "runner.py").encode() in cmd:
            return int(pid)
    return None


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _tail(path, n=4000):
    """The end of a file the kernel wrote (its uid's; read as the grader), or "" if there is none."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _last_line(log):
    return ([ln for ln in log.strip().splitlines() if ln.strip()][-1:] or ["no log"])[0][:200]


def _clock():
    """(wall s, CPU s of this process, CPU s of its waited-for children: the kernel, the re-run)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time(), me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


class Profile:
    """Where one learner's grading time goes: per stage, wall seconds and CPU seconds (this process
    and its children). Goes into the result as ``profile``; benchmarks/bench_grading.py sums it."""

    def __init__(self):
        self.stages, self.last = {}, _clock()

    def lap(self, name):
        now = _clock()
        w, me, kids = (now[i] - self.last[i] for i in range(3))
        self.stages[name] = {"wall": round(w, 3), "cpu": round(me, 3), "cpu_children": round(kids, 3)}
        self.last = now


def grade_learner(job, m):
    """Grade one learner. ``job``: what the coordinator sent (assignment, student, notebook, settings);
    ``m``: this machine's paths (course folder, sandbox root, stripped bplib, hide list, uid)."""
    from .course import write_kernelspec
    prof = Profile()
    a, student = job["assignment"], job["student"]
    root = m["course"]
    sub_dir = os.path.join(root, "submitted", student, a)
    os.makedirs(sub_dir)
    nb_path = os.path.join(sub_dir, f"{a}.ipynb")
    with open(nb_path, "w") as f:
        f.write(job["notebook"])
    jupyter = write_kernelspec(root)
    runtime = os.path.join(root, "runtime")
    os.makedirs(runtime, exist_ok=True)
    os.environ.update(JUPYTER_PATH=jupyter, JUPYTER_RUNTIME_DIR=runtime,
                      GRADING_HIDE=os.pathsep.join(m["hide"]), GRADING_UID=str(m["uid"]),
                      GRADING_MEM_MB=str(job["memory_mb"]), GRADING_CPU_S=str(job["cpu_s"]),
                      GRADING_OUTPUT_CHARS=str(job["output_chars"]),
                      GRADING_ALLOW_WEAK_SANDBOX="1" if job.get("allow_weak_sandbox") else "0",
                      OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    os.environ.update(job.get("kernel_env", {}))
    if m.get("mnist"):
        os.environ["GRADING_MNIST_CACHE"] = m["mnist"]
    notes_dir = tempfile.mkdtemp(prefix="notes-", dir=os.path.dirname(m["sandbox_root"]))   # 0700, root's
    s = {"assignment": a, "timeout": job["timeout"], "uid": m["uid"], "slot": 0, "notes": notes_dir,
         "sandbox_root": m["sandbox_root"], "stripped": m["stripped"],
         "db_url": "sqlite:///" + os.path.join(root, "gradebook.db")}
    api = api_for(root, job["timeout"], job.get("alembic_head"))
    drawn = rerun.draw_cases(a, job["seed"], job.get("check_ids"))

    sandbox = tempfile.mkdtemp(prefix="s-", dir=m["sandbox_root"])
    os.makedirs(os.path.join(sandbox, "ipc"))
    # the kernel's channels are unix sockets in its own sandbox (0700, its uid), not tcp ports on a
    # loopback every kernel shares: with them the kernel gets a network namespace of its own
    ipc = os.path.join(sandbox, "ipc", "k")
    if len(ipc.encode()) < 100:            # a unix socket's path holds 107 bytes (-<port> appended)
        api.config.KernelManager.transport = "ipc"
        api.config.KernelManager.ip = ipc
    os.environ.update(GRADING_SANDBOX=sandbox, GRADING_REPORT=os.path.join(notes_dir, "isolation"),
                      GRADING_KERNEL_ENV=",".join(sorted(job.get("kernel_env", {}))))
    prof.lap("setup")
    if fault_injected("kernel_killed"):
        _kill_once_started(os.path.join(sandbox, "kernel_ready"),
                           lambda: int(_tail(os.path.join(sandbox, "kernel.pid")) or 0))
    t0 = time.time()
    res = api.autograde(a, student, force=True, create=True)
    seconds = time.time() - t0
    kill_uid(m["uid"])
    sweep_uid_files(m["uid"])
    result = {"student": student, "seconds": round(seconds, 1), "flags": [], "notes": [], "cells": {},
              "feedback_notes": job.get("feedback_notes", [])}
    started = os.path.exists(os.path.join(sandbox, "kernel_ready"))
    try:      # the launcher writes kernel.pid when it starts, the kernel kernel_ready when IPython is up
        launched, ready = (os.path.getmtime(os.path.join(sandbox, f)) for f in ("kernel.pid", "kernel_ready"))
        result["autograde_split"] = {"before_kernel": round(launched - t0, 3),
                                     "kernel_start": round(ready - launched, 3),
                                     "cells_and_save": round(t0 + seconds - ready, 3)}
    except OSError:
        pass
    prof.lap("autograde")
    result["profile"] = prof.stages
    result["isolation"] = read_notes(os.environ["GRADING_REPORT"])
    kernel_log = _tail(os.path.join(sandbox, "kernel.log"))
    shutil.rmtree(sandbox, ignore_errors=True)
    refused = [ln for ln in result["isolation"].splitlines() if ln.startswith("refused: ")]
    if refused:                                 # never a root kernel (the instructor did not accept one)
        result.update(graded=False, grader_error=True,
                      problem="grader error: the sandbox " + refused[0] + "; regrade (book/instructors.md)")
        return result
    if result["isolation"] and "runs as uid" not in result["isolation"]:
        result["flags"].append("weak sandbox (accepted with --allow-weak-sandbox): the kernel did not run as "
                               "a user of its own; this learner could reach other learners' work or the grader")
    log = (res.get("log") or "") + (res.get("error") or "")
    autograded = os.path.join(root, "autograded", student, a, f"{a}.ipynb")
    if not res.get("success") or not os.path.isfile(autograded):
        why = _why_not_graded(log, started, kernel_log)
        kernel_cpu = prof.stages["autograde"]["cpu_children"]
        died_before = job.get("previous_fault", "").startswith("the kernel died")
        cpu_limit = job.get("cpu_s") or 0
        if why.startswith("the kernel died") and not died_before and (cpu_limit <= 0 or kernel_cpu < cpu_limit - 1):
            # not its CPU-time limit: a crash of the learner's code dies again in a fresh kernel, a kill
            # from outside (the machine's memory, an operator) does not; scored only if it dies twice
            raise GraderFault(f"{why}, after {kernel_cpu:.1f} CPU-s; graded again in a fresh kernel")
        if why.startswith("the kernel died") and died_before:
            why += " (in two fresh kernels)"
        result.update(graded=False, problem=why + ": scored 0",
                      log_tail=clean_text(log[-2000:]), kernel_log_tail=clean_text(kernel_log[-2000:]))
        return result

    t1 = time.time()
    task = {"notebook": nb_path, "code_cells": job.get("code_cells", 10)}
    verdicts, rerun_isolation, err, sources = clean_rerun(s, task, drawn)
    result["rerun_seconds"] = round(time.time() - t1, 2)
    prof.lap("rerun")
    if err:
        raise GraderFault(f"the clean re-run of the functions failed {RERUN_TRIES} times ({err[:200]})")
    result.update(graded=True, sources=sources, rerun_isolation=rerun_isolation)
    result["autograded"] = autograded
    settle(s, result, verdicts)
    del result["autograded"]
    prof.lap("settle")
    t2 = time.time()
    if job.get("feedback", True):          # False only from the test harness (cli.py --no-feedback-for)
        fb = api.generate_feedback(a, student, force=True)
        page = os.path.join(root, "feedback", student, a, f"{a}.html")
        if os.path.isfile(page):
            with open(page, encoding="utf-8") as f:
                result["feedback_html"] = f.read()
        else:
            result["flags"].append("no feedback page: nbgrader generate_feedback failed "
                                   + ("" if fb.get("success") else (fb.get("error") or "")[-200:]))
    result["feedback_seconds"] = round(time.time() - t2, 2)
    prof.lap("feedback")
    with open(autograded, encoding="utf-8") as f:
        result["autograded_nb"] = f.read()
    result["gradebook"] = gradebook_rows(os.path.join(root, "gradebook.db"), student)
    prof.lap("gradebook")
    return result


TABLES = ("student", "submitted_assignment", "submitted_notebook", "grade", "comment")


def gradebook_rows(db_path, student):
    """This learner's rows of the gradebook tables (the template's rows are the same everywhere)."""
    import sqlite3
    con = sqlite3.connect(db_path)
    try:
        out = {}
        names = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        for t in TABLES:
            if t not in names:
                continue
            cols = [r[1] for r in con.execute(f"pragma table_info({t})")]
            out[t] = {"cols": cols, "rows": [list(r) for r in con.execute(f"select * from {t}")]}
        return out
    finally:
        con.close()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        payload = json.load(f)
    job, m = payload["job"], payload["machine"]
    if fault_injected("worker"):
        os._exit(FAULT)
    try:
        result = grade_learner(job, m)
    except GraderFault as e:
        with open(argv[1] + ".fault", "w") as f:
            f.write(str(e))
        return FAULT
    tmp = argv[1] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
