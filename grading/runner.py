"""The clean re-run of one learner's graded functions: ``python -I runner.py <job dir>``.

Started by grading/kernel_launcher.py (``--runner``) inside the same sandbox as a
learner's kernel (hidden paths, limits, a uid of its own), with the grader's stripped
bplib (grading/strip.py) mounted over the real one. Standalone: it imports nothing of
the grading package, which is hidden from it, and it never sees an expected answer.

Reads ``job.json`` and ``cases.npz`` in the job dir:

    {"cells": [source, ...],                      the notebook's code cells, test cells left out
     "functions": {name: {"checks": [check id, ...], "local_rules": bool}},
     "cases": {check id: [encoded case, ...]},     arrays as {"__array__": key} into cases.npz
     "time_limit": seconds per check, "cell_time_limit": seconds per cell}

runs the cells in one namespace (errors are noted and skipped, as in a notebook run to the
end), then calls each graded function on each case through ``bplib.checks.calls`` and writes
``result.json`` + ``result.npz``:

    {"checks": {check id: {"results": [encoded return value | "raised X: ..." | "took more than ..."],
                           "status": "ok" | "raised X" | "timeout" | "missing",
                           "hits": [references reached]}},
     "cells": [[index, "ok" | exception name], ...]}

The grader decodes, judges against the reference in its own process, and trusts nothing else.
"""
import json
import os
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


class _Timeout(BaseException):
    pass


def _alarm(seconds):
    def on_alarm(signum, frame):
        raise _Timeout()
    signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))


def _cancel():
    signal.setitimer(signal.ITIMER_REAL, 0)


def decode(value, arrays):
    if isinstance(value, dict):
        if "__array__" in value:
            return arrays[value["__array__"]].copy()
        if "__tuple__" in value:
            return tuple(decode(v, arrays) for v in value["__tuple__"])
        if "__list__" in value:
            return [decode(v, arrays) for v in value["__list__"]]
        return {k: decode(v, arrays) for k, v in value.items()}
    return value


def encode_result(value, arrays, prefix):
    """What the learner's function returned: numbers as arrays, anything else by its type name."""
    import numpy as np

    def one(v, key):
        if v is None:
            return None
        try:
            a = np.asarray(v, dtype=np.float64)
        except Exception:   # noqa: BLE001  (not numbers)
            return {"__opaque__": type(v).__name__}
        if a.size > 5_000_000:
            return {"__opaque__": f"array of {a.size} elements (too large)"}
        arrays[key] = a
        return {"__array__": key}

    if isinstance(value, (tuple, list)):
        kind = "__tuple__" if isinstance(value, tuple) else "__list__"
        return {kind: [one(v, f"{prefix}.{i}") for i, v in enumerate(value)]}
    return one(value, prefix)


def _transform(src):
    try:
        from IPython.core.inputtransformer2 import TransformerManager
        return TransformerManager().transform_cell(src)
    except Exception:   # noqa: BLE001  (no IPython: plain Python)
        return src


def _first_line(e):
    msg = str(e).strip().splitlines()
    return f"raised {type(e).__name__}" + (f": {msg[0][:300]}" if msg else "")


def _progress(job_dir, text):
    """Where the run got to (the grader tells its own failures from the learner's code by it)."""
    with open(os.path.join(job_dir, "progress"), "w") as f:
        f.write(text)


def run(job_dir):
    import numpy as np

    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    with np.load(os.path.join(job_dir, "cases.npz"), allow_pickle=False) as d:
        arrays = {k: d[k] for k in d.files}

    import bplib
    from bplib import _tripwire
    from bplib.checks.calls import CALLS

    ns = {"__name__": "__main__", "__builtins__": __builtins__}
    cells = []
    for i, src in enumerate(job["cells"]):
        _progress(job_dir, f"learner code: cell {i + 1}")
        try:
            code = compile(_transform(src), f"<cell {i + 1}>", "exec")
            _alarm(job.get("cell_time_limit", 30))
            try:
                exec(code, ns)
            finally:
                _cancel()
            cells.append([i, "ok"])
        except _Timeout:
            cells.append([i, "timeout"])
        except BaseException as e:   # noqa: BLE001  (SystemExit too: the notebook goes on)
            cells.append([i, type(e).__name__])

    out = {"checks": {}, "cells": cells, "bplib": os.path.dirname(bplib.__file__)}
    result_arrays = {}
    for fn_name, spec in job["functions"].items():
        fn = ns.get(fn_name)
        for cid in spec["checks"]:
            entry = {"results": [], "status": "ok", "hits": []}
            out["checks"][cid] = entry
            if not callable(fn):
                entry["status"] = "missing"
                entry["results"].append(f"{fn_name} is not defined (renamed, or its cell raised an error?)")
                continue
            call = CALLS[fn_name]
            _progress(job_dir, f"learner code: {cid}")
            deadline = time.monotonic() + job.get("time_limit", 20)
            for k, enc in enumerate(job["cases"][cid]):
                case = decode(enc, arrays)
                del _tripwire.HITS[:]
                _tripwire.LOCAL_RULES[0] = bool(spec.get("local_rules"))
                try:
                    _alarm(deadline - time.monotonic())
                    try:
                        got = call(fn, case)
                    finally:
                        _cancel()
                    entry["results"].append(encode_result(got, result_arrays, f"{cid}.{k}"))
                except _Timeout:
                    entry["status"] = "timeout"
                    entry["results"].append(f"took more than {job.get('time_limit', 20):g} s (an endless loop?)")
                except NotImplementedError:
                    entry["status"] = "raised NotImplementedError"
                    entry["results"].append("raised NotImplementedError")
                except BaseException as e:   # noqa: BLE001  (the learner's error, in words)
                    entry["status"] = f"raised {type(e).__name__}"
                    entry["results"].append(_first_line(e) + _where(e))
                finally:
                    _tripwire.LOCAL_RULES[0] = False
                    for h in _tripwire.HITS:
                        if h not in entry["hits"]:
                            entry["hits"].append(h)
                if entry["status"] != "ok":
                    break
    tmp = os.path.join(job_dir, "result.tmp.npz")
    np.savez(tmp, **result_arrays)
    os.replace(tmp, os.path.join(job_dir, "result.npz"))
    with open(os.path.join(job_dir, "result.tmp.json"), "w") as f:
        json.dump(out, f)
    os.replace(os.path.join(job_dir, "result.tmp.json"), os.path.join(job_dir, "result.json"))


def _where(exc):
    """' (in dense_backward, line 7: `dx = dout @ W`)' for the deepest frame of the learner's cells."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell ")]
    if not frames:
        return ""
    f = frames[-1]
    return f" (in {f.name}, {f.filename[1:-1]}, line {f.lineno})"


def main(argv):
    job_dir = argv[1]
    devnull = os.open(os.devnull, os.O_WRONLY)
    log = os.dup(2)
    os.dup2(devnull, 1)          # what the learner's code prints is not kept
    os.dup2(devnull, 2)
    try:
        run(job_dir)
    except BaseException:   # noqa: BLE001  (the runner's own failure: the grader reports it as its own)
        os.write(log, traceback.format_exc().encode()[-4000:])
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
