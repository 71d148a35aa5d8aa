"""The engine: the grader's own faults are retried, never scored as the learner's 0; a Dask cluster
grades the same class to the same grades, even when one of its workers is killed mid-run.

Faults are injected deterministically with the test-only switch GRADING_FAULTS (grading/worker.py
fault_injected): "kernel_start=k" makes the first k kernel starts of the run fail before the
kernel exists, "kernel_killed=k" SIGKILLs the first k kernels from outside once they have started (and
"rerun_killed=k" the first k clean re-runs, inside the learner's code),
"worker=k" makes the first k learner processes die at once.
"""
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from grading import cli, synthetic
from mutants import _course

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = str(HERE / "fixtures" / "grading" / "source")
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def mini_class(tmp_path_factory):
    base = tmp_path_factory.mktemp("engine")
    synthetic.make_class("mini", str(base / "class"), [("ann", "correct"), ("ben", "wrong"), ("cat", "unfinished")],
                         source_dir=SOURCE, work=str(base / "release"))
    return base


def grade(base, name, env=None, extra=()):
    out = base / name
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        # what the background grading runs beside this test start with keeps none of it
        assert not set(env or {}) & set(_course.env()), "a test's switch leaks into concurrent grading runs"
        rc = cli.main(["mini", str(base / "class"), "--source-dir", SOURCE, "--out", str(out), "--seed", "11",
                       "--timeout", "20", "--quiet", *extra])
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert rc == 0
    with open(out / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    with open(out / "results.json") as f:
        results = json.load(f)
    return rows, results


# the runs that compare grades only: no feedback pages (cli.py --no-feedback-for, a test-harness option;
# the reference run and the first cluster run make them)
NO_PAGES = ("--no-feedback-for", "*")


def same_grades(a, b):
    keep = lambda r: {k: v for k, v in r.items() if k != "feedback"}   # noqa: E731  (the page's path)
    return {s: keep(r) for s, r in a.items()} == {s: keep(r) for s, r in b.items()}


@pytest.fixture(scope="module")
def reference(mini_class):
    return grade(mini_class, "plain")


def grade_with_faults(base, name, faults, tmp_path, extra=NO_PAGES):
    """Grade with the test-only switch GRADING_FAULTS=``faults``; also returns how many faults happened."""
    folder = tmp_path / "faults"
    folder.mkdir()
    rows, results = grade(base, name, {"GRADING_FAULTS": faults, "GRADING_FAULT_DIR": str(folder),
                                       "GRADING_BACKOFF_SCALE": "0.01"}, extra=extra)
    return rows, results, len(list(folder.iterdir()))


def test_a_kernel_that_never_starts_is_retried(mini_class, reference, tmp_path):
    rows, results, happened = grade_with_faults(mini_class, "retried", "kernel_start=2", tmp_path)
    assert happened == 2                                        # the faults did happen
    assert same_grades(rows, reference[0])
    attempts = [r["timing"]["attempts"] for r in results["rows"].values() if r.get("timing")]
    assert max(attempts) > 1


def test_a_kernel_killed_from_outside_is_graded_again_not_scored_zero(mini_class, reference, tmp_path):
    """The machine kills a running kernel once (the OOM killer, an operator): the learner is graded in a
    fresh kernel, to the same grade; only a kernel that dies twice (tests/test_grading_hostile.py's
    os._exit learner) is scored as the learner's."""
    rows, results, happened = grade_with_faults(mini_class, "killed", "kernel_killed=1", tmp_path)
    assert happened == 1                                        # one kernel was killed
    assert same_grades(rows, reference[0])
    attempts = {s: r["timing"]["attempts"] for s, r in results["rows"].items() if r.get("timing")}
    assert sorted(attempts.values()) == [1, 1, 2], attempts


def test_a_clean_rerun_killed_from_outside_runs_again_not_scored_zero(mini_class, reference, tmp_path):
    """The same for the grader's clean re-run of the functions: SIGKILLed from outside once, while it
    runs the learner's code, it runs again in a fresh process; the grades are the undisturbed ones."""
    rows, results, happened = grade_with_faults(mini_class, "rerun-killed", "rerun_killed=1", tmp_path)
    assert happened == 1
    assert same_grades(rows, reference[0])
    assert "killed by signal" not in json.dumps(results), "a kill from outside was scored as the learner's"


def test_a_dying_grading_process_is_retried(mini_class, reference, tmp_path):
    rows, _, happened = grade_with_faults(mini_class, "worker-died", "worker=2", tmp_path)
    assert happened == 2
    assert same_grades(rows, reference[0])
    # --no-feedback-for (the test harness's option) leaves out the pages and nothing else
    assert all(r["feedback"] for r in reference[0].values()), reference[0]
    assert all(r["feedback"] == "" for r in rows.values()), rows
    assert not list((mini_class / "worker-died").glob("feedback/*.html"))
    assert len(list((mini_class / "plain").glob("feedback/*.html"))) == len(reference[0])


def test_when_every_attempt_fails_the_row_says_grader_error_not_zero(mini_class, tmp_path):
    rows, _, _ = grade_with_faults(mini_class, "broken", "kernel_start=1000", tmp_path, extra=())
    for sid, r in rows.items():
        assert r["status"].startswith("grader error: the kernel did not start"), r["status"]
        assert r["status"].endswith("; regrade") or "; regrade" in r["status"], r["status"]
        assert r["score"] == "", f"{sid}: a grader error is not a score: {r['score']!r}"


# -- a Dask cluster on 127.0.0.1 -------------------------------------------------------------------------
def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster(tmp_path):
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), DASK_DISTRIBUTED__WORKER__DAEMON="False",
               OPENBLAS_NUM_THREADS="1")
    logs = tmp_path / "dask"
    logs.mkdir()
    procs = [subprocess.Popen([str(VENV_BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], cwd=ROOT, env=env, stdout=open(logs / "scheduler.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)]
    address = f"tcp://127.0.0.1:{port}"
    workers = []
    for k in range(2):
        workers.append(subprocess.Popen([str(VENV_BIN / "dask"), "worker", address, "--nthreads", "1", "--no-nanny",
                                         "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{k}"], cwd=ROOT,
                                        env=env, stdout=open(logs / f"w{k}.log", "w"), stderr=subprocess.STDOUT,
                                        start_new_session=True))
    procs += workers
    from dask.distributed import Client
    deadline = time.time() + 60
    while True:
        try:
            with Client(address, timeout=5) as c:
                if len(c.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        assert time.time() < deadline, (logs / "scheduler.log").read_text()[-2000:]
        time.sleep(0.5)
    yield address, workers
    for p in procs:
        try:
            os.killpg(p.pid, 9)
        except OSError:
            pass
        p.wait()


def test_a_dask_cluster_gives_the_same_grades_even_when_a_worker_dies(mini_class, reference, cluster):
    address, workers = cluster
    rows, results = grade(mini_class, "cluster", extra=("--scheduler", address))
    assert same_grades(rows, reference[0])
    # again, killing one worker as soon as the first learner is being graded
    killer = threading.Thread(target=_kill_when_busy, args=(address, workers[0]), daemon=True)
    killer.start()
    rows, _ = grade(mini_class, "cluster-killed", extra=("--scheduler", address, *NO_PAGES))
    killer.join(timeout=5)
    assert workers[0].poll() is not None, "the worker was not killed during the run"
    assert same_grades(rows, reference[0])


def _kill_when_busy(address, proc):
    from dask.distributed import Client
    with Client(address, timeout=10) as c:
        for _ in range(600):
            busy = c.processing()
            if any(busy.values()):
                break
            time.sleep(0.05)
    time.sleep(0.5)
    proc.kill()
