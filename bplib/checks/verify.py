"""Re-judge recorded check results in a clean process.

    python -m bplib.checks.verify <record_dir>

Reads every ``<check_id>.npz`` that ``bplib.checks.check`` wrote while
``BPLIB_RECORD_DIR`` was set, regenerates that check's cases from its id,
recomputes the reference, and prints one JSON object
``{check_id: {"passed": bool, "message": str}}``. Nothing the learner wrote is
imported or executed: records are read with ``allow_pickle=False`` and only
numeric arrays are used. Unknown check ids and unreadable files are reported
as not passed. Exit status 0 (the verdicts are in the JSON), 2 on bad usage.
"""
import json
import os
import sys

from . import CHECKS
from .core import judge, load_record


def verify_dir(record_dir):
    out = {}
    for fname in sorted(os.listdir(record_dir)):
        if not fname.endswith(".npz") or fname.endswith(".tmp.npz"):
            continue
        cid = fname[:-4]
        if cid not in CHECKS:
            out[cid] = {"passed": False, "message": f"unknown check id {cid!r}"}
            continue
        check = CHECKS[cid]
        try:
            status, results = load_record(os.path.join(record_dir, fname), check)
        except Exception as e:  # noqa: BLE001  (a damaged or forged file)
            out[cid] = {"passed": False, "message": f"unreadable record: {type(e).__name__}: {e}"}
            continue
        if status == "raised NotImplementedError":
            out[cid] = {"passed": False, "message": f"✗ {check.fn_name}: not implemented yet"}
            continue
        if status != "ok":
            v = judge(check, results + [status])
            out[cid] = {"passed": False, "message": v.message if not v.passed else f"✗ {check.fn_name}: {status}"}
            continue
        n = len(check.cases())
        if len(results) < n:
            results = results + ["returned no arrays"] * (n - len(results))
        v = judge(check, results)
        out[cid] = {"passed": bool(v.passed), "message": v.message}
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not os.path.isdir(argv[0]):
        print("usage: python -m bplib.checks.verify <record_dir>", file=sys.stderr)
        return 2
    print(json.dumps(verify_dir(argv[0]), ensure_ascii=False, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
