"""How long does grading a class take? Generates a class, grades it with `python -m grading`, prints the time.

    python benchmarks/bench_grading.py                 # 100 students of dense_backward, all cores
    python benchmarks/bench_grading.py --students 40 --workers 1
    python benchmarks/bench_grading.py --dask 1,2      # also through a local Dask scheduler with 1 and 2
                                                       # `dask worker` processes: submissions/s per worker, speedup

The class: 60% correct, 30% with one wrong function, 10% unfinished (grading.synthetic).
Prints the wall time of the whole command (collection, nbgrader autograde, clean
verification, feedback, grades.csv), seconds per notebook, the machine's load
average before and after (the machine is shared: a busy one is slower), and the
CPU time the command and its kernels used (divided by the workers: the wall
time to expect on idle cores).
Then the per-stage profile of one learner (issue 18; mean over the graded notebooks, from the
``timing`` of results.json that grading/worker.py and grading/engine.py record): wall seconds and
CPU seconds of each stage, the CPU split into the learner's grading process and its children (the
sandboxed kernel, the clean re-run's process), and what the coordinator's run costs besides.
Where a stage's CPU goes: ``GRADING_CPROFILE=<folder> [GRADING_CPROFILE_CPU=1] python
benchmarks/bench_grading.py --students 10 --workers 1`` writes a cProfile of every learner's
process there (``python -m pstats``), timed by the CPU clock with ``GRADING_CPROFILE_CPU=1``.
Not a test: nothing is asserted.
"""
import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from grading import synthetic  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--assignment", default="dense_backward")
    p.add_argument("--students", type=int, default=100)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--keep", action="store_true", help="keep the generated class and the run folder")
    p.add_argument("--dask", default="", help="comma-separated worker counts to run through a local Dask "
                                              "scheduler as well (e.g. 1,2)")
    args = p.parse_args()
    n = args.students
    n_wrong, n_unfinished = int(0.3 * n), int(0.1 * n)
    plan = ([(f"c{i:03d}", "correct") for i in range(n - n_wrong - n_unfinished)]
            + [(f"w{i:03d}", "wrong") for i in range(n_wrong)]
            + [(f"u{i:03d}", "unfinished") for i in range(n_unfinished)])
    tmp = tempfile.mkdtemp(prefix="bench-grading-")
    synthetic.make_class(args.assignment, os.path.join(tmp, "class"), plan, work=os.path.join(tmp, "release"))
    out = os.path.join(tmp, "runs", args.assignment)
    load0 = os.getloadavg()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grading", args.assignment, os.path.join(tmp, "class"), "--out", out,
                    "--workers", str(args.workers), "--quiet"], cwd=REPO, check=True)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    with open(os.path.join(out, "grades.csv")) as f:
        rows = list(csv.DictReader(f))
    # every synthetic learner's code is the reference's, so nearly every row carries a "similar code" flag:
    # count the rows the grader graded (any status but its own error) and its errors apart
    faults = sum(r["status"].startswith(("grader error", "grading error")) for r in rows)
    print()
    print(f"bench_grading: {len(rows)} notebooks of {args.assignment} graded in {wall:.0f} s "
          f"with {args.workers} workers on {os.cpu_count()} cores: {wall / len(rows):.2f} s per notebook, "
          f"{len(rows) / wall * 60:.0f} notebooks per minute; graded: {len(rows) - faults}/{len(rows)}, "
          f"grader errors: {faults}")
    print(f"bench_grading: load average (1 min) before {load0[0]:.1f}, after {load1[0]:.1f}; "
          f"CPU time of the command and its kernels {cpu:.0f} s, so about {cpu / args.workers:.0f} s of wall "
          f"time on {args.workers} otherwise idle cores")
    for line in profile_lines(os.path.join(out, "results.json"), wall, cpu):
        print(line)
    rates = {f"local, {args.workers} workers": (len(rows) / wall, args.workers)}
    for k in [int(x) for x in args.dask.split(",") if x.strip()]:
        w = dask_run(args.assignment, os.path.join(tmp, "class"), os.path.join(tmp, f"dask{k}"), k)
        rates[f"dask, {k} workers"] = (len(rows) / w, k)
        print(f"bench_grading: through a local Dask scheduler with {k} worker(s): {w:.0f} s, "
              f"{len(rows) / w / k:.3f} submissions per second per worker")
    if len(rates) > 1:
        base = min(rates.values(), key=lambda r: r[1])
        for name, (rate, k) in rates.items():
            print(f"bench_grading: {name}: {rate:.3f} submissions/s, {rate / k:.3f} per worker, "
                  f"speedup {rate / base[0]:.2f} over {base[1]} worker(s)")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(tmp)


STAGES = [
    ("engine", "the engine: course folder copied, learner's process forked, result read"),
    ("setup", "the learner's process: course folder, nbgrader API, cases drawn"),
    ("autograde", "nbgrader autograde (sandboxed kernel)"),
    ("rerun", "clean re-run of the graded functions"),
    ("settle", "scores, overrides in the gradebook, verdicts into the notebook"),
    ("feedback", "nbgrader generate_feedback (the page)"),
    ("gradebook", "the learner's gradebook rows"),
]
SPLIT = [("before_kernel", "before the kernel starts (nbgrader's preprocessing, gradebook)"),
         ("kernel_start", "kernel start (sandbox, interpreter, IPython)"),
         ("cells_and_save", "the notebook's cells, then saving the grades")]


def profile_lines(results_json, wall, cpu):
    """The per-stage profile of one learner, mean over the graded notebooks of a run (see the docstring)."""
    with open(results_json) as f:
        rows = [r for r in json.load(f)["rows"].values() if (r.get("timing") or {}).get("profile")]
    if not rows:
        return ["bench_grading: no per-stage profile in results.json (no notebook was graded)"]
    n = len(rows)

    def mean(get):
        vals = [v for v in (get(r["timing"]) for r in rows) if v is not None]
        return sum(vals) / len(vals) if vals else 0.0
    out = [f"bench_grading: per-learner profile, mean over {n} graded notebooks "
           f"(wall s; CPU s of the learner's grading process + of its kernel and re-run processes):"]
    total_wall = total_cpu = 0.0
    for key, what in STAGES:
        if key == "engine":
            w = mean(lambda t: (t.get("task_seconds") or 0) - sum(v["wall"] for v in t["profile"].values())
                     if t.get("task_seconds") else None)
            out.append(f"  {what:<66} wall {w:6.2f}")
            total_wall += w
            continue
        w = mean(lambda t: t["profile"].get(key, {}).get("wall"))
        c = mean(lambda t: t["profile"].get(key, {}).get("cpu"))
        k = mean(lambda t: t["profile"].get(key, {}).get("cpu_children"))
        total_wall, total_cpu = total_wall + w, total_cpu + c + k
        out.append(f"  {what:<66} wall {w:6.2f}   CPU {c:5.2f} + {k:5.2f}")
        if key == "autograde":
            for sk, swhat in SPLIT:
                out.append(f"    {swhat:<64} wall {mean(lambda t: (t.get('autograde_split') or {}).get(sk)):6.2f}")
    out.append(f"  {'one learner in all':<66} wall {total_wall:6.2f}   CPU {total_cpu:5.2f}")
    # the command's rusage counts only the processes that were waited for (not the learners' processes,
    # children of a forkserver), so the two are printed side by side, not subtracted
    out.append(f"bench_grading: CPU the learners' processes measured ({n} x {total_cpu:.2f} s): {n * total_cpu:.0f} s; "
               f"CPU rusage counted for the command (coordinator, Dask, whatever it waited for): {cpu:.0f} s; "
               f"wall {wall:.0f} s")
    return out


def dask_run(assignment, class_dir, out, n_workers):
    """Wall time of grading the class through a scheduler and ``n_workers`` `dask worker` processes here."""
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=REPO, DASK_DISTRIBUTED__WORKER__DAEMON="False", OPENBLAS_NUM_THREADS="1")
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    addr = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([dask, "worker", addr, "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
              for _ in range(n_workers)]
    try:
        from dask.distributed import Client
        for _ in range(120):
            try:
                with Client(addr, timeout=5) as c:
                    if len(c.scheduler_info()["workers"]) == n_workers:
                        break
            except OSError:
                pass
            time.sleep(0.5)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grading", assignment, class_dir, "--out", out, "--scheduler", addr,
                        "--quiet"], cwd=REPO, check=True)
        return time.perf_counter() - t0
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
