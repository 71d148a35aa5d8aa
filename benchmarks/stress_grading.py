"""Repeatability under load: the same class graded several times while a CPU hog keeps every core busy.

    python benchmarks/stress_grading.py                # 5 runs of a 12-learner dense_backward class
    python benchmarks/stress_grading.py --runs 3 --students 6

The class mixes honest, wrong, unfinished and hostile learners (grading.synthetic). The script starts
one busy-looping process per core (the hog), grades the class ``--runs`` times with the same seed,
stops the hog, and compares the grades.csv files byte for byte (every column: grades.csv holds no
timing). It prints the wall time of each run, the load average, and whether every run was identical.
Not a test (it takes minutes); its figures are quoted in book/instructors.md.
"""
import argparse
import hashlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from grading import synthetic  # noqa: E402

KINDS = ["correct", "wrong", "unfinished", "hang_solution", "kill_kernel", "sys_exit", "raise_everywhere",
         "print_100mb", "monkeypatch", "replace_check", "rename_function", "delete_test"]


def _hog(stop):
    while not stop.is_set():
        sum(i * i for i in range(10000))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--assignment", default="dense_backward")
    p.add_argument("--students", type=int, default=len(KINDS))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timeout", type=int, default=10, help="cell limit (s) for the run")
    args = p.parse_args()
    plan = [(f"s{i:02d}_{KINDS[i % len(KINDS)]}", KINDS[i % len(KINDS)]) for i in range(args.students)]
    tmp = tempfile.mkdtemp(prefix="stress-grading-")
    synthetic.make_class(args.assignment, os.path.join(tmp, "class"), plan, work=os.path.join(tmp, "release"))
    stop = multiprocessing.Event()
    hogs = [multiprocessing.Process(target=_hog, args=(stop,), daemon=True) for _ in range(os.cpu_count() or 1)]
    for h in hogs:
        h.start()
    digests, walls = [], []
    try:
        for k in range(args.runs):
            out = os.path.join(tmp, f"run{k}")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "grading", args.assignment, os.path.join(tmp, "class"),
                            "--out", out, "--seed", "1234", "--timeout", str(args.timeout), "--quiet"],
                           cwd=REPO, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
            with open(os.path.join(out, "grades.csv"), "rb") as f:
                text = f.read().replace(out.encode(), b"<out>")     # the feedback column holds the run's path
            digests.append(hashlib.sha256(text).hexdigest()[:16])
            print(f"stress_grading: run {k + 1}: {walls[-1]:.0f} s, load {os.getloadavg()[0]:.1f}, "
                  f"grades.csv {digests[-1]}", flush=True)
    finally:
        stop.set()
        for h in hogs:
            h.join(timeout=5)
    same = len(set(digests)) == 1
    print(f"stress_grading: {args.runs} runs of {len(plan)} learners with {len(hogs)} CPU hogs: "
          f"{'identical' if same else 'DIFFERENT'} grades.csv; wall {min(walls):.0f}-{max(walls):.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
