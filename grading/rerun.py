"""The grade comes from the learner's code, re-run where learner code cannot reach the verdict.

For one learner's notebook (the copy nbgrader graded):

1. ``make_job``: the notebook's code cells (test cells left out) and, for every check of the
   assignment, its cases drawn from the grading run's SECRET seed: visible checks' generators
   and the hidden cases of ``grading/hidden/<assignment>.py`` (never shipped to learners);
2. ``run_job``: grading/runner.py in the learner's sandbox (kernel_launcher.py --runner): a
   fresh process with the stripped bplib (grading/strip.py) mounted over the real one, so the
   course's reference implementations are not there to be called, copied or read;
3. ``judge_job``: in the grader's process, each returned array is compared with the reference
   computed here (bplib.checks.core.judge). A check that reached a reference scores 0 with a
   status naming it; the verdicts replace whatever the learner's kernel printed.

A fault of this machinery (the runner did not start, wrote no result) is the grader's own
(``RerunError``): the worker retries it and never scores it as the learner's 0.
"""
import ast
import json
import os
import secrets
import shutil
import subprocess
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_RESULT_BYTES = 256 << 20


class RerunError(Exception):
    """The re-run machinery failed (not the learner's code)."""


# -- the secret seed ------------------------------------------------------------------------------
def load_seed(path, seed=None):
    """The grading run's secret seed: ``seed`` if given, else the one stored at ``path`` (0600), made
    with ``secrets`` on first use. Regrading with the same seed gives the same cases (same grades);
    a new term deletes the file (or passes --seed) so last term's cases say nothing."""
    if seed is not None:
        return int(seed)
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        pass
    value = secrets.randbits(63)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"{value}\n")
    return value


def rng_for(seed, check_id):
    return np.random.default_rng([int(seed), zlib.crc32(check_id.encode())])


# -- the assignment's checks with the grader's cases -----------------------------------------------
def assignment_checks(assignment, check_ids=None):
    """[check] for every check of ``assignment`` (or exactly ``check_ids``, the test cells of a release
    notebook); hidden ones get grading/hidden's cases."""
    from bplib.checks import CHECKS
    from .hidden import cases_for
    ids = check_ids if check_ids is not None else [cid for cid, c in CHECKS.items() if c.assignment == assignment]
    out = []
    for cid in ids:
        if cid not in CHECKS:
            raise KeyError(f"the notebook's test cell {cid!r} is not a check of bplib.checks")
        c = CHECKS[cid]
        out.append(c.with_cases(cases_for(c.assignment, c.fn_name)) if c.hidden else c)
    return out


def allowed(assignment):
    """Dotted names of bplib callables the assignment's graded functions may use (grading/hidden/<a>.py)."""
    import importlib
    try:
        return list(getattr(importlib.import_module(f"{__package__}.hidden.{assignment}"), "ALLOWED", []))
    except ModuleNotFoundError:
        return []


LOCAL_RULES = {("chain_rule", "backward")}      # functions that may use Value's local rules


def draw_cases(assignment, seed, check_ids=None):
    """{check_id: (check, [case, ...])} from the secret seed."""
    return {c.id: (c, c.cases(rng_for(seed, c.id))) for c in assignment_checks(assignment, check_ids)}


# -- encoding for the runner -------------------------------------------------------------------
def encode(value, arrays, key):
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        arrays[key] = np.asarray(value)
        return {"__array__": key}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, arrays, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return {"__list__": [encode(v, arrays, f"{key}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        return {k: encode(v, arrays, f"{key}.{k}") for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a case value of type {type(value).__name__} cannot be sent to the runner ({key})")


def _code_cells(nb):
    """The notebook's code cells that are not graded test cells, in order."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if (cell.metadata.get("nbgrader") or {}).get("grade"):
            continue
        out.append(cell.source if isinstance(cell.source, str) else "".join(cell.source))
    return out


def make_job(job_dir, nb, assignment, drawn, time_limit=20.0, cell_time_limit=30.0):
    """Write job.json, cases.npz and runner.py into ``job_dir`` (the learner's runner sandbox)."""
    arrays, cases, functions = {}, {}, {}
    for cid, (check, cs) in drawn.items():
        cases[cid] = [encode({k: v for k, v in c.items() if k != "name"}, arrays, f"{cid}.{i}")
                      for i, c in enumerate(cs)]
        f = functions.setdefault(check.fn_name, {"checks": [],
                                                 "local_rules": (check.assignment, check.fn_name) in LOCAL_RULES})
        f["checks"].append(cid)
    job = {"assignment": assignment, "cells": _code_cells(nb), "functions": functions, "cases": cases,
           "time_limit": time_limit, "cell_time_limit": cell_time_limit}
    os.makedirs(job_dir, exist_ok=True)
    with open(os.path.join(job_dir, "job.json"), "w") as f:
        json.dump(job, f)
    np.savez(os.path.join(job_dir, "cases.npz"), **arrays)
    shutil.copyfile(os.path.join(HERE, "runner.py"), os.path.join(job_dir, "runner.py"))
    return job


def run_job(job_dir, env, timeout):
    """Start the runner in the sandbox; returns its result (dict, arrays). RerunError on the grader's faults."""
    launcher = os.path.join(HERE, "kernel_launcher.py")
    e = dict(env, GRADING_SANDBOX=job_dir)
    try:
        p = subprocess.run([sys.executable, launcher, "--runner", job_dir], env=e, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout, start_new_session=True)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    result = _read_result(job_dir)
    if result is None:
        try:
            progress = _read_regular(os.path.join(job_dir, "progress"), 4096).decode("utf-8", "replace")
        except OSError:
            progress = ""
        if progress.startswith("learner code"):       # it stopped inside the learner's code: theirs
            how = f"killed by signal {-p.returncode}" if p.returncode < 0 else f"ended (exit {p.returncode})"
            return None, f"{how} while running {progress[len('learner code: '):][:60]}"
        raise RerunError(f"the clean re-run wrote no result (exit {p.returncode}): "
                         f"{(p.stderr or '').strip()[-300:]}")
    return result, ""


def _read_regular(path, limit):
    """A regular file's bytes, never through a link, at most ``limit`` bytes (the runner may tamper)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        import stat
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            raise OSError("not a regular file of a sane size")
        chunks, total = [], 0
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            total += len(b)
            if total > limit:
                raise OSError("too large")
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_result(job_dir):
    import io
    try:
        meta = json.loads(_read_regular(os.path.join(job_dir, "result.json"), 16 << 20))
        raw = _read_regular(os.path.join(job_dir, "result.npz"), MAX_RESULT_BYTES)
        with np.load(io.BytesIO(raw), allow_pickle=False) as d:
            arrays = {k: d[k] for k in d.files}
    except (OSError, ValueError, KeyError):
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("checks"), dict):
        return None
    return meta, arrays


class Opaque:
    """A returned value that is not numbers (shown by its type name)."""

    def __init__(self, name):
        self.name = str(name)[:80]

    def __repr__(self):
        return f"<{self.name}>"


def _decode(value, arrays):
    if isinstance(value, dict):
        if "__array__" in value:
            a = arrays.get(str(value["__array__"]))
            return Opaque("missing array") if a is None else a
        if "__tuple__" in value and isinstance(value["__tuple__"], list):
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__list__" in value and isinstance(value["__list__"], list):
            return [_decode(v, arrays) for v in value["__list__"]]
        return Opaque(value.get("__opaque__", "object"))
    return value if value is None or isinstance(value, (int, float, bool)) else Opaque(type(value).__name__)


# -- routes to the reference, named from the learner's code ------------------------------------
ROUTES = [
    ("importlib", "importlib"), ("__import__", "__import__"), ("eval", "eval of a string"),
    ("exec", "exec of a string"), ("getattr", "getattr"), ("getsource", "inspect.getsource"),
    ("inspect", "inspect"), ("_getframe", "sys._getframe"), ("currentframe", "inspect.currentframe"),
    ("gc", "gc"), ("f_back", "frame objects"), ("f_locals", "frame objects"), ("reload", "importlib.reload"),
]


def routes_in(source):
    """How the learner's code could reach a reference, from its text: names, not proof."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    seen = []
    for node in ast.walk(tree):
        name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) \
            else node.name if isinstance(node, ast.alias) else None
        if isinstance(node, ast.alias):
            name = node.name.split(".")[0] if node.name.split(".")[0] in ("gc", "inspect", "importlib") \
                else node.name
        for key, label in ROUTES:
            if name == key and label not in seen:
                seen.append(label)
    return seen


def judge_job(drawn, result, arrays, sources=""):
    """{check_id: {"passed", "message", "status", "hits"}} in the grader's own process."""
    from bplib.checks.core import _BadReturn, judge, Verdict
    routes = routes_in(sources)
    out = {}
    checks = result.get("checks", {})
    for cid, (check, cases) in drawn.items():
        entry = checks.get(cid) if isinstance(checks.get(cid), dict) else None
        if entry is None:
            out[cid] = {"passed": False, "status": "not run", "hits": [],
                        "message": f"✗ {check.fn_name}: the clean re-run did not report this check."}
            continue
        hits = [str(h)[:200] for h in entry.get("hits", []) if isinstance(h, str)][:10]
        results = []
        for raw in entry.get("results", [])[:len(cases)]:
            if isinstance(raw, str):
                results.append(raw[:500])
                continue
            try:
                results.append(check.unpack(_decode(raw, arrays)))
            except _BadReturn as e:
                results.append(str(e))
        v = judge(check, results, cases)
        status = str(entry.get("status", "ok"))[:200]
        message = v.message
        if hits:
            via = f" (in its code: {', '.join(routes)})" if routes else ""
            status = f"reference used: {', '.join(hits)}{via}"
            message = (f"✗ {check.fn_name} ({'hidden' if check.hidden else 'visible'} tests): it called "
                       f"{hits[0]}, the course's reference implementation, which is not available when "
                       f"notebooks are graded: 0 points. Only your own code earns points.")
            v = Verdict(cid, False, message)
        elif not v.passed and any(r in routes for r in ("sys._getframe", "inspect.currentframe", "gc",
                                                        "frame objects")):
            status = "looks into the grader's frames or objects (" + ", ".join(routes) + ")"
        out[cid] = {"passed": bool(v.passed), "message": message, "status": status if not v.passed else "ok",
                    "hits": hits, "symptoms": list(getattr(v, "symptoms", []))}
    return out


def function_sources(nb, names):
    """The source of each graded function as the learner wrote it (for similarity and routes)."""
    text = "\n\n".join(_code_cells(nb))
    out = {}
    try:
        tree = ast.parse(text)
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in names:
                out[node.name] = ast.get_source_segment(text, node) or ""
    return out, text
