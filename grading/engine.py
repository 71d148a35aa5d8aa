"""The engine: schedules ``grade one learner`` on this machine or on a Dask cluster.

    results = run(jobs, workers=2)                          # a Dask LocalCluster on this machine
    results = run(jobs, scheduler="tcp://host:8786")        # the workers of an existing cluster

Each job is self-contained (the learner's notebook, the run's nbgrader template, its settings and
secret seed), so a worker needs only a clone of the course and its ``.venv``. On the worker,
``grade_task`` prepares what the machine needs once (the template course, the stripped bplib, the
MNIST copy), reserves a sandbox uid, and runs grading/worker.py for the learner in a process of its
own with a time budget. A fault of the grader's own machinery (the process died, the kernel never
started, the clean re-run failed) is retried with backoff; if every attempt fails the row says
``grader error: <what>; regrade`` and is never scored as the learner's 0. What the learner's code
did (a hang past its limits, its own crash, its memory) is the learner's, and the status says so.
A worker lost mid-run loses no learner: Dask runs its task again on another worker.
"""
import base64
import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRIES = 3
BACKOFF = (1.0, 3.0, 9.0)
UID_BASE, UID_LAST = 62000, 62999


# -- what travels with every job ---------------------------------------------------------------
def pack(folder):
    """A folder as base64 of a deterministic tar.gz (the run's nbgrader template)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tf:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for f in sorted(files):
                p = os.path.join(root, f)
                info = tf.gettarinfo(p, arcname=os.path.relpath(p, folder))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                with open(p, "rb") as fh:
                    tf.addfile(info, fh)
    return base64.b64encode(buf.getvalue()).decode()


def _unpack(data, dest):
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(data)), mode="r:gz") as tf:
        tf.extractall(dest, filter="data")


# -- this machine: caches, uids, hidden paths ---------------------------------------------------
def _cache_root():
    d = os.path.join(tempfile.gettempdir(), f"bpgrade-cache-{os.getuid()}")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


class _Lock:
    def __init__(self, path):
        self.f = open(path, "w")

    def __enter__(self):
        fcntl.flock(self.f, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def _once(name, key, build):
    """``build(dest)`` once per machine for ``key`` (other worker processes wait for it); returns dest."""
    root = os.path.join(_cache_root(), name)
    os.makedirs(root, exist_ok=True)
    dest = os.path.join(root, key)
    with _Lock(os.path.join(root, key + ".lock")):
        if not os.path.exists(os.path.join(dest, ".done")):
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(dest)
            build(dest)
            open(os.path.join(dest, ".done"), "w").close()
    return dest


def _stripped(allowed):
    from . import strip
    h = hashlib.sha256(json.dumps(sorted(allowed)).encode() + b" with bytecode")   # copies made before lack it
    for root, dirs, files in os.walk(strip.PACKAGE):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".py"):
                with open(os.path.join(root, f), "rb") as fh:
                    h.update(f.encode() + fh.read())
    dest = _once("stripped", h.hexdigest()[:16], lambda d: strip.build(d, allowed))
    os.chmod(dest, 0o755)
    return os.path.join(dest, "bplib")


_COMPILED = []


def _compile_bplib():
    """The kernels import the real bplib: its bytecode once per worker process, not once per kernel."""
    if not _COMPILED:
        from . import strip
        strip.compile_bytecode(strip.PACKAGE)
        _COMPILED.append(True)


def _mnist():
    def build(dest):
        import numpy as np
        from bplib import data
        arrays = data._mnist_arrays()
        np.savez(os.path.join(dest, "mnist.npz"), x_train=arrays[0], y_train=arrays[1], x_test=arrays[2],
                 y_test=arrays[3])
    try:
        dest = _once("mnist", "v1", build)
    except Exception:   # noqa: BLE001  (no cache: kernels load MNIST the slow way)
        return None
    os.chmod(dest, 0o755)
    path = os.path.join(dest, "mnist.npz")
    os.chmod(path, 0o644)
    return path


def reserve_uid():
    """A sandbox uid no other grading task on this machine holds (an flock, released by ``release``)."""
    if os.geteuid() != 0:
        return -1, None
    lock_dir = os.path.join(tempfile.gettempdir(), "bpgrade-uid-locks")
    os.makedirs(lock_dir, mode=0o700, exist_ok=True)
    for uid in range(UID_BASE, UID_LAST + 1):
        f = open(os.path.join(lock_dir, str(uid)), "w")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            continue
        from .worker import kill_uid
        kill_uid(uid)                      # an orphan of a run that died holds nothing: clean it first
        return uid, f
    raise RuntimeError(f"no free sandbox uid in {UID_BASE}..{UID_LAST}")


def reap_orphans():
    """Kill the processes of sandbox uids that no live grading task holds (after a stopped run)."""
    from .worker import kill_uid
    lock_dir = os.path.join(tempfile.gettempdir(), "bpgrade-uid-locks")
    if os.geteuid() != 0 or not os.path.isdir(lock_dir):
        return
    for name in os.listdir(lock_dir):
        if not name.isdigit():
            continue
        with open(os.path.join(lock_dir, name), "w") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            kill_uid(int(name))


def hidden_paths(extra=()):
    hide = [os.path.join(REPO, d) for d in ("solutions", ".git", "tests", "runs", "submitted", "autograded",
                                            "feedback", "_build", "benchmarks", "grading", "dist")]
    return hide + [tempfile.gettempdir(), os.path.expanduser("~"), _cache_root()] + list(extra)


# -- one task, on a worker ----------------------------------------------------------------------------
_CTX = []
PRELOAD = ["grading.worker", "nbgrader.apps", "nbconvert", "numpy", "bplib.checks"]
# grading.warm (the feedback page's modules, regex and template caches) costs the forkserver about
# 2-4 s once and saves each learner about 0.75 CPU-s: worth it from this many learners on a worker
WARM_FROM = 8


def _context(warm=True):
    """A forkserver that has imported nbgrader and the grader once: a learner's process starts in
    milliseconds instead of the 3-4 s those imports take, and from a clean single-threaded parent.
    ``warm``: also run grading/warm.py there (the first call decides, for the process)."""
    if not _CTX:
        import multiprocessing
        # a Dask worker started without distributed.worker.daemon=False is a daemonic process, which
        # multiprocessing refuses to let start children; the learner's process is joined or killed here
        multiprocessing.current_process()._config["daemon"] = False
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD + (["grading.warm"] if warm else []) + ["grading.freeze"])
        _CTX.append(ctx)
    return _CTX[0]


def _child(payload, out, logpath, env):
    """The learner's process: grading/worker.py's main, its output in the log."""
    _set_pdeathsig()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(REPO)
    fd = os.open(logpath, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    from . import worker
    # GRADING_CPROFILE=<folder>: a cProfile of each learner's process there (issue 18), timed by the
    # wall clock, or by the process's CPU time with GRADING_CPROFILE_CPU=1 (waits for the kernel then
    # cost nothing, and what is left is the grader's own work)
    prof_dir = env.get("GRADING_CPROFILE")
    if not prof_dir:
        sys.exit(worker.main([payload, out]))
    import cProfile
    prof = cProfile.Profile(time.process_time) if env.get("GRADING_CPROFILE_CPU") else cProfile.Profile()
    try:
        rc = prof.runcall(worker.main, [payload, out])
    finally:
        prof.dump_stats(os.path.join(prof_dir, f"learner-{os.getpid()}.prof"))
    sys.exit(rc)


def _set_pdeathsig():
    try:
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)    # PR_SET_PDEATHSIG: die with the task
    except Exception:   # noqa: BLE001
        pass


def grade_task(job):
    """Grade one learner on this machine: retries the grader's own faults; returns the result dict."""
    from .worker import FAULT, kill_uid
    template = _once("templates", hashlib.sha256(job["template"].encode()).hexdigest()[:16],
                     lambda d: _unpack(job["template"], d))
    stripped = _stripped(job.get("allowed", []))
    _compile_bplib()
    mnist = _mnist() if job.get("needs_mnist") else None
    uid, lock = reserve_uid()
    last, t_start = "", time.time()
    try:
        for attempt in range(TRIES):
            t_attempt = time.time()
            work = tempfile.mkdtemp(prefix="bpgrade-", dir=tempfile.gettempdir())
            os.chmod(work, 0o711)
            try:
                course = os.path.join(work, "course")
                shutil.copytree(template, course, ignore=shutil.ignore_patterns(".done"))
                os.chmod(course, 0o700)
                sandbox_root = os.path.join(work, "sandboxes")
                os.makedirs(sandbox_root)
                os.chmod(sandbox_root, 0o711)
                private = os.path.join(work, "private")
                os.makedirs(private, mode=0o700)
                machine = {"course": course, "sandbox_root": sandbox_root, "stripped": stripped, "uid": uid,
                           "mnist": mnist, "hide": hidden_paths([job.get("seed_file", "")])}
                payload, out = os.path.join(private, "job.json"), os.path.join(private, "result.json")
                with open(payload, "w") as f:
                    json.dump({"job": dict(job, previous_fault=last), "machine": machine}, f)
                env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
                           PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
                logpath = os.path.join(private, "worker.log")
                p = _context(job.get("warm", True)).Process(target=_child, args=(payload, out, logpath, env),
                                                            daemon=False)
                p.start()
                p.join(job["budget"])
                if p.is_alive():
                    p.kill()
                    p.join()
                    kill_uid(uid)
                    return {"student": job["student"], "graded": False, "flags": [],
                            "problem": f"grading did not finish within {job['budget']:.0f} s (the notebook "
                                       f"kept running past every limit): stopped, scored 0"}
                rc = p.exitcode
                kill_uid(uid)
                if rc == 0 and os.path.isfile(out):
                    with open(out) as f:
                        result = json.load(f)
                    result["attempts"] = attempt + 1
                    result["task_seconds"] = round(time.time() - t_attempt, 3)   # course copy, process, grading
                    return result
                if rc == FAULT and os.path.isfile(out + ".fault"):
                    with open(out + ".fault") as f:
                        last = f.read().strip()[:400]
                    with open(logpath, errors="replace") as f:    # the launcher's own words, if it died
                        said = [ln for ln in f.read().splitlines() if "kernel_launcher" in ln or "Error" in ln]
                    if said:
                        last += f"; the grading process's log: {said[-1].strip()[-200:]}"
                else:
                    with open(logpath) as f:
                        tail = [ln for ln in f.read().strip().splitlines() if ln.strip()][-1:] or [""]
                    last = f"the grading process died (exit {rc}" + (f": {tail[0][-200:]})" if tail[0] else ")")
            finally:
                shutil.rmtree(work, ignore_errors=True)
            if attempt + 1 < TRIES:
                time.sleep(BACKOFF[attempt] * job.get("backoff_scale", 1.0))
        return {"student": job["student"], "graded": False, "flags": [], "grader_error": True,
                "attempts": TRIES, "problem": f"grader error: {last.strip() or 'the grading process failed'} "
                                              f"(tried {TRIES} times); regrade"}
    finally:
        if lock is not None:
            lock.close()


# -- the engine ---------------------------------------------------------------------------------------
def run(jobs, workers=1, scheduler=None, on_result=None):
    """Grade every job; returns {student: result}. ``scheduler``: a Dask scheduler address, else a
    LocalCluster of ``workers`` single-threaded worker processes on this machine."""
    import dask
    from dask.distributed import Client, LocalCluster, as_completed
    logging.getLogger("distributed").setLevel(logging.ERROR)
    dask.config.set({"distributed.worker.daemon": False})        # workers start a process per learner
    cluster = None
    if scheduler:
        client = Client(scheduler, timeout=30)
    else:
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR, memory_limit=0)
        client = Client(cluster)
    results = {}
    n_workers = max(1, len(client.scheduler_info().get("workers", {})) if scheduler else workers)
    jobs = [dict(job, warm=len(jobs) / n_workers >= WARM_FROM) for job in jobs]
    try:
        futures = {client.submit(grade_task, job, key=f"grade-{job['run']}-{job['student']}", pure=False): job
                   for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                r = fut.result()
            except Exception as e:   # noqa: BLE001  (the worker died too often, or the task itself failed)
                r = {"student": job["student"], "graded": False, "flags": [], "grader_error": True,
                     "problem": f"grader error: {type(e).__name__}: {str(e)[:200]}; regrade"}
            results[job["student"]] = r
            if on_result:
                on_result(r)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return results
