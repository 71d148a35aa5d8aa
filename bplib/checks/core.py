"""The machinery every check shares: cases, a judge, a verdict, a hint ladder.

A :class:`Check` knows

* ``cases(rng)``: the inputs. Visible checks ship their cases here; a hidden
  check ships none (its cases live with the grader, ``grading/hidden/``, and
  are drawn from a seed only the grading run knows), so in a learner's kernel
  a hidden check only says that it runs when the notebook is graded;
* ``call(fn, case)``: how to run the learner's function on one case
  (``bplib/checks/calls/``: it builds inputs, it never computes an answer);
* ``reference(case)``: the right answer, a dict ``name -> array``;
* ``mistakes``: known wrong answers, :class:`Mistake` (a symptom in words and a
  model of the wrong answer); if the learner's arrays match one, the verdict
  names that symptom, never the formula;
* ``ladder``: a :class:`Ladder` of three hints the learner asks for one at a
  time with ``hint("<function or check id>")``: the concept, the local rule,
  and only last the formula.

:func:`judge` turns (cases, learner arrays) into a verdict; the notebook
(``check``) and the grader (``grading/``) both use it, so the two agree.
"""
import os
import signal
import threading
import time
import traceback
import zlib

import numpy as np

from ..gradcheck import compare, rel_error

__all__ = ["Check", "Verdict", "Mistake", "Ladder", "judge", "run_check", "TIME_LIMIT", "HiddenCases"]

TIME_LIMIT = 20.0   # seconds per check; under nbgrader's 30 s cell timeout, so we can say "timeout"


class Mistake:
    """A known wrong answer: ``symptom`` (what is wrong, in words, no formula), ``model(case)`` -> the
    wrong arrays; optional ``concept`` and ``rule``: the first two hint levels for this mistake."""

    def __init__(self, symptom, model, concept=None, rule=None):
        self.symptom, self.model, self.concept, self.rule = symptom, model, concept, rule

    @classmethod
    def of(cls, m):
        return m if isinstance(m, Mistake) else cls(*m)


class Ladder:
    """Three hints, asked for one at a time: the concept, the local rule, the formula (last)."""

    LEVELS = ("concept", "local rule", "formula")

    def __init__(self, concept, rule, formula):
        self.concept, self.rule, self.formula = concept, rule, formula

    def level(self, n, mistake=None):
        """Hint ``n`` (1..3); levels 1 and 2 speak to the learner's last diagnosed mistake if it has its own."""
        if n == 1:
            return (mistake.concept if mistake is not None and mistake.concept else self.concept)
        if n == 2:
            return (mistake.rule if mistake is not None and mistake.rule else self.rule)
        return self.formula


class HiddenCases(Exception):
    """A hidden check was asked for its cases outside the grader."""


class Check:
    def __init__(self, check_id, assignment, points, fn_name, outputs, cases, call, reference,
                 mistakes=(), tol=1e-6, describe=None, ladder=None, batch_size=None, diagnose=None,
                 hint=None):   # TODO(issue 12 conversion): drop `hint` once every module has a Ladder
        self.id, self.assignment, self.points = check_id, assignment, points
        self.fn_name, self.outputs = fn_name, tuple(outputs)
        self._cases, self._call, self._reference = cases, call, reference
        self.mistakes, self.tol, self.ladder = [Mistake.of(m) for m in mistakes], tol, ladder
        self.describe = describe or (lambda case: case.get("name", ""))
        self.batch_size = batch_size or (lambda case: None)
        self.hidden = check_id.endswith("_hidden")
        self.diagnose = diagnose          # optional fn(case, got, want) -> list of symptoms

    def cases(self, rng=None):
        """The check's inputs. Without ``rng``: the visible cases as the notebook shows them (a seed
        from the check id). The grader passes its own secret ``rng``. A hidden check has no cases here."""
        if self._cases is None:
            raise HiddenCases(f"{self.id}: hidden cases are not shipped with bplib; they run when graded")
        if rng is None:
            rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        return self._cases(rng)

    def with_cases(self, cases_fn):
        """A copy of this check whose cases come from ``cases_fn(rng)`` (the grader's hidden cases)."""
        c = object.__new__(Check)
        c.__dict__.update(self.__dict__)
        c._cases = cases_fn
        return c

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
    def __init__(self, check_id, passed, message, mistake=None, status="ok", symptoms=()):
        self.check_id, self.passed, self.message = check_id, passed, message
        self.mistake = mistake            # the first Mistake the answer matched, for the hint ladder
        self.status = status              # "ok", "raised X", "timeout", ...
        self.symptoms = list(symptoms)    # the known mistakes it matched, in words (for the class report)

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


ASK = "Ask for a hint with hint(\"{fn}\") (each call gives the next level: concept, local rule, formula)."


def judge(check, results, cases=None):
    """Verdict on the learner's arrays.

    ``results``: a list, one entry per case, of dict ``name -> array or None``
    (or a string: the status of a case that did not return, such as
    "raised ValueError: ..."), in the order of ``cases`` (default ``check.cases()``).
    A failing verdict names the symptom and how to ask for a hint, never the formula.
    """
    title = f"{check.fn_name} ({'hidden' if check.hidden else 'visible'} tests)"
    cases = check.cases() if cases is None else cases
    ask = "  " + ASK.format(fn=check.fn_name) if check.ladder else ""
    for i, case in enumerate(cases):
        got = results[i] if i < len(results) else "not run"
        label = check.describe(case)
        where = f" on case {i + 1} of {len(cases)}" + (f" ({label})" if label else "")
        if isinstance(got, str) and got.startswith("raised NotImplementedError"):
            return Verdict(check.id, False, f"✗ {title}: not implemented yet (it still raises "
                           f"NotImplementedError). Write your code in place of `raise NotImplementedError()`.",
                           status="raised NotImplementedError")
        if isinstance(got, str):
            msg = f"✗ {title}: {got}{where}."
            if got.startswith("raised") and ask:
                msg += "\n" + ask
            return Verdict(check.id, False, msg, status=got)
        want = check.reference(case)
        problems = []
        for name in check.outputs:
            if name not in want:
                continue
            g = got.get(name)
            cmp = getattr(check, "compare_fn", None) or compare     # a check may judge its rows itself
            rep = cmp(name, want[name], g, tol=check.tol, batch_size=check.batch_size(case))
            if not rep.ok:
                problems.append(f"{name} {rep.message}".replace(f"{name}[]:", f"{name}:"))
        if problems:
            known, first = [], None
            for m in check.mistakes:
                try:
                    bad = m.model(_copy(case))
                except Exception:          # a mistake model that does not apply to this case
                    continue
                if m.symptom not in known and any(_matches(got.get(k), v, 1e-6) for k, v in bad.items()
                                                  if not _matches(v, want.get(k), 1e-9)):
                    known.append(m.symptom)
                    first = first or m
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
                lines.append("  Symptom: " + " ".join(known))
            if ask:
                lines.append(ask)
            return Verdict(check.id, False, "\n".join(lines), mistake=first, symptoms=known)
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


def run_check(check, fn, time_limit=TIME_LIMIT, cases=None):
    """Run the learner's ``fn`` on every case; returns (verdict, results, status).

    ``status`` is "ok", "raised <ExceptionName>" or "timeout"; ``results`` are what ``judge`` takes.
    """
    if not callable(fn):
        msg = f"✗ {check.fn_name}: expected a function, got {type(fn).__name__}"
        return Verdict(check.id, False, msg, status="raised TypeError"), [], "raised TypeError"
    results, status = [], "ok"
    deadline = time.monotonic() + time_limit if time_limit else None
    cases = check.cases() if cases is None else cases
    for case in cases:
        left = None if deadline is None else max(deadline - time.monotonic(), 0.01)
        try:
            results.append(_call_with_limit(lambda: check.call(fn, case), left))
        except NotImplementedError:
            status = "raised NotImplementedError"
            return (Verdict(check.id, False, f"✗ {check.fn_name}: not implemented yet (it still raises "
                            f"NotImplementedError). Write your code in place of `raise NotImplementedError()`.",
                            status=status), results, status)
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
    return judge(check, results, cases), results, status


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


def visible_and_hidden(assignment, spec, ladders, **common):
    """Two checks per graded function, ``<name>_visible`` and ``<name>_hidden``.

    Each row of ``spec``: (name, outputs, call, reference, mistakes, visible_cases,
    (visible_points, hidden_points)[, options]), where the optional ``options`` dict adds
    ``Check`` arguments for that function only. ``ladders``: name -> :class:`Ladder`.
    The hidden check has no cases here: the grader supplies them (``grading/hidden/``).
    """
    out = []
    for row in spec:
        if not isinstance(row[6], tuple):        # TODO(issue 12 conversion): old rows carried hidden cases
            row = row[:6] + row[7:]
        name, outputs, call, ref, mistakes, vis, (pv, ph), *options = row
        kw = dict(common, ladder=ladders[name] if isinstance(ladders[name], Ladder) else None,
                  **(options[0] if options else {}))
        out.append(Check(f"{name}_visible", assignment, pv, name, outputs, vis, call, ref, mistakes, **kw))
        out.append(Check(f"{name}_hidden", assignment, ph, name, outputs, None, call, ref, mistakes, **kw))
    return out
