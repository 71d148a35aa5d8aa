"""The machinery every check shares: cases, a judge, a verdict, a record.

A :class:`Check` knows

* ``cases(rng)``: the inputs, regenerated deterministically from the check id
  (never read back from a record, so a record cannot choose its own test);
* ``call(fn, case)``: how to run the learner's function on one case, returning
  what it returned as a tuple;
* ``reference(case)``: the right answer, a dict ``name -> array``;
* ``mistakes``: known wrong answers ``(hint, fn(case) -> dict)``; if the
  learner's arrays match one, the verdict names that mistake.

:func:`judge` turns (case, learner arrays) into a verdict; both the notebook
(``check``) and ``python -m bplib.checks.verify`` use it, so the two agree.
"""
import os
import signal
import threading
import time
import traceback
import zlib

import numpy as np

from ..gradcheck import compare, rel_error

__all__ = ["Check", "Verdict", "judge", "run_check", "TIME_LIMIT"]

TIME_LIMIT = 20.0   # seconds per check; under nbgrader's 30 s cell timeout, so we can say "timeout"


class Check:
    def __init__(self, check_id, assignment, points, fn_name, outputs, cases, call, reference,
                 mistakes=(), tol=1e-6, describe=None, hint="", batch_size=None, diagnose=None):
        self.id, self.assignment, self.points = check_id, assignment, points
        self.fn_name, self.outputs = fn_name, tuple(outputs)
        self._cases, self._call, self._reference = cases, call, reference
        self.mistakes, self.tol, self.hint = list(mistakes), tol, hint
        self.describe = describe or (lambda case: case.get("name", ""))
        self.batch_size = batch_size or (lambda case: None)
        self.hidden = check_id.endswith("_hidden")
        self.diagnose = diagnose          # optional fn(case, got, want) -> list of hints

    def cases(self):
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        return self._cases(rng)

    def reference(self, case):
        return {k: np.asarray(v) for k, v in self._reference(_copy(case)).items()}

    def call(self, fn, case):
        """Run ``fn`` on a copy of the case; returns the learner's arrays as a dict."""
        got = self._call(fn, _copy(case))
        return self.unpack(got)

    def unpack(self, got):
        if len(self.outputs) == 1:
            return {self.outputs[0]: got}
        if not isinstance(got, (tuple, list)):
            raise _BadReturn(f"{self.fn_name} must return {len(self.outputs)} values "
                             f"({', '.join(self.outputs)}), got one {type(got).__name__}")
        if len(got) != len(self.outputs):
            raise _BadReturn(f"{self.fn_name} must return {len(self.outputs)} values "
                             f"({', '.join(self.outputs)}), got {len(got)}")
        return dict(zip(self.outputs, got))


class _BadReturn(Exception):
    pass


def _copy(case):
    out = {}
    for k, v in case.items():
        out[k] = v.copy() if isinstance(v, np.ndarray) else v
    return out


class Verdict:
    def __init__(self, check_id, passed, message):
        self.check_id, self.passed, self.message = check_id, passed, message

    def __str__(self):
        return self.message


def _as_numeric(x):
    """The learner's value as a float array, or None if it is not numbers."""
    if x is None:
        return None
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None


def _matches(got, want, tol):
    got, want = _as_numeric(got), _as_numeric(want)
    if got is None or want is None:
        return False
    return got.shape == want.shape and bool(np.all(np.isfinite(got))) and rel_error(want, got) < tol


def judge(check, results):
    """Verdict on the learner's arrays.

    ``results``: a list, one entry per case, of dict ``name -> array or None``
    (or a string: the status of a case that did not return, such as
    "raised ValueError: ..."), in the order of ``check.cases()``.
    """
    title = f"{check.fn_name} ({'hidden' if check.hidden else 'visible'} tests)"
    cases = check.cases()
    for i, case in enumerate(cases):
        got = results[i] if i < len(results) else "not run"
        label = check.describe(case)
        where = f" on case {i + 1} of {len(cases)}" + (f" ({label})" if label else "")
        if isinstance(got, str):
            msg = f"✗ {title}: {got}{where}."
            if got.startswith("raised") and check.hint:
                msg += "\n  Hint: " + check.hint
            return Verdict(check.id, False, msg)
        want = check.reference(case)
        problems = []
        for name in check.outputs:
            if name not in want:
                continue
            g = got.get(name)
            rep = compare(name, want[name], g, tol=check.tol, batch_size=check.batch_size(case))
            if not rep.ok:
                problems.append(f"{name} {rep.message}".replace(f"{name}[]:", f"{name}:"))
        if problems:
            known = []
            for hint, wrong in check.mistakes:
                try:
                    bad = wrong(_copy(case))
                except Exception:          # a mistake model that does not apply to this case
                    continue
                if hint not in known and any(_matches(got.get(k), v, 1e-6) for k, v in bad.items()
                                             if not _matches(v, want.get(k), 1e-9)):
                    known.append(hint)
            if check.diagnose is not None:
                try:
                    known += [h for h in check.diagnose(case, got, want) if h not in known]
                except Exception:          # noqa: BLE001  (odd arrays: no extra hint)
                    pass
            shown = problems[:3]
            if len(problems) > 3:                # short: the first three, then just the names
                rest = [p.split(" ", 1)[0] for p in problems[3:]]
                shown.append(f"{', '.join(rest)} {'is' if len(rest) == 1 else 'are'} wrong too.")
            lines = [f"✗ {title}: wrong{where}."] + ["  - " + p for p in shown]
            if known:
                lines.append("  Hint: " + " ".join(known))
            elif check.hint:
                lines.append("  Hint: " + check.hint)
            return Verdict(check.id, False, "\n".join(lines))
    return Verdict(check.id, True, f"✓ {title}: passed ({len(cases)} case{'s' if len(cases) > 1 else ''}).")


class _Timeout(BaseException):
    pass


def _call_with_limit(func, seconds):
    """Run ``func()``; raise _Timeout after ``seconds`` (main thread on Unix only)."""
    if seconds is None or threading.current_thread() is not threading.main_thread() \
            or not hasattr(signal, "setitimer"):
        return func()

    def on_alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return func()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_check(check, fn, time_limit=TIME_LIMIT):
    """Run the learner's ``fn`` on every case; returns (verdict, results, status).

    ``status`` is "ok", "raised <ExceptionName>" or "timeout" (the contract's
    record status); ``results`` are what ``judge`` takes.
    """
    if not callable(fn):
        msg = f"✗ {check.fn_name}: expected a function, got {type(fn).__name__}"
        return Verdict(check.id, False, msg), [], "raised TypeError"
    results, status = [], "ok"
    deadline = time.monotonic() + time_limit if time_limit else None
    cases = check.cases()
    for case in cases:
        left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
        try:
            results.append(_call_with_limit(lambda: check.call(fn, case), left))
        except NotImplementedError:
            status = "raised NotImplementedError"
            return (Verdict(check.id, False, f"✗ {check.fn_name}: not implemented yet (it still raises "
                            f"NotImplementedError). Write your code in place of `raise NotImplementedError()`."),
                    results, status)
        except _Timeout:
            status = "timeout"
            results.append(f"took more than {time_limit:g} s (an endless loop?)")
            break
        except _BadReturn as e:
            status = "ok"
            results.append(str(e))
            break
        except Exception as e:  # noqa: BLE001  (the learner's error, reported in words)
            status = f"raised {type(e).__name__}"
            msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
            results.append(f"raised {type(e).__name__}" + (f": {msg}" if msg else "") + _where(e))
            break
    return judge(check, results), results, status


def _where(exc):
    """' (at line 7 of your dense_backward: `dx = dout @ W`)' for the learner's deepest frame."""
    here = os.path.dirname(os.path.abspath(__file__))
    lib = os.path.dirname(os.path.dirname(np.__file__))
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.abspath(f.filename).startswith((here, lib))]
    if not frames:
        return ""
    f = frames[-1]
    code = f": `{f.line.strip()}`" if f.line else ""
    return f" (in {f.name}, line {f.lineno}{code})"


def save_record(record_dir, check, results, status):
    """Write ``<record_dir>/<check_id>.npz``: the learner's arrays and ``__status__``."""
    arrays = {"__status__": np.array(status)}
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            continue
        for name, value in res.items():
            a = _as_numeric(value)
            if a is not None:
                arrays[f"case{i}.{name}"] = a
    os.makedirs(record_dir, exist_ok=True)
    path = os.path.join(record_dir, f"{check.id}.npz")
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_record(path, check):
    """Read a record back as (status, results) for ``judge``; trusts nothing in it."""
    with np.load(path, allow_pickle=False) as data:
        status = str(data["__status__"]) if "__status__" in data.files else "missing status"
        n = len(check.cases())
        results = []
        for i in range(n):
            keys = [k for k in data.files if k.startswith(f"case{i}.")]
            if not keys:
                break
            results.append({k.split(".", 1)[1]: np.array(data[k]) for k in keys})
    return status, results


def visible_and_hidden(assignment, spec, hints, **common):
    """Two checks per graded function, ``<name>_visible`` and ``<name>_hidden``.

    Each row of ``spec``: (name, outputs, call, reference, mistakes, visible_cases,
    hidden_cases, (visible_points, hidden_points)[, options]), where the optional
    ``options`` dict adds ``Check`` arguments for that function only.
    """
    out = []
    for name, outputs, call, ref, mistakes, vis, hid, (pv, ph), *options in spec:
        kw = dict(common, hint=hints[name], **(options[0] if options else {}))
        for kind, cases, pts in (("visible", vis, pv), ("hidden", hid, ph)):
            out.append(Check(f"{name}_{kind}", assignment, pts, name, outputs, cases, call, ref, mistakes, **kw))
    return out
