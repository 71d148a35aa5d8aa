"""The grade comes from the learner's own code: a generated attacker for every route to the reference.

For each of the six assignments, one graded function is replaced by an attacker that gets its
answer from the course's reference implementation by one route (a direct import, importlib,
getattr on a computed name, __import__, eval, exec, a layer class or optimizer, Value.backward,
the reference's source copied with inspect, the file read from disk, a reload, the checking
code's own helpers, the checking code's frames and objects through sys._getframe,
inspect.currentframe and gc). Each attacker is first shown to WORK in a learner's kernel (the
real bplib, the visible check passes), then graded by the clean re-run (grading/rerun.py): the
attacked function's checks score 0 with a status naming the route, and the learner's other
functions keep their points. The honest solution gets every point with status ok.
"""
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from grading import engine, rerun, strip
from mutants._course import clean_rerun

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261201

# what each assignment's attacked function is, and how its reference answers
TARGETS = {
    "dense_backward": dict(
        fn="dense_backward", params="dout, x, W", mod="bplib.layers", attr="dense_backward",
        ret="_r(dout, x, W)", case="dict(dout=dout, x=x, W=W)",
        cls="import numpy as np, bplib.layers as L\n"
            "lay = L.Dense(W.shape[0], W.shape[1], dtype=np.float64)\n"
            "lay.params['W'][...] = W\nlay.forward(x)\ndx = lay.backward(dout)\n"
            "return dx, lay.grads['W'], lay.grads['b']"),
    "conv_backward": dict(
        fn="conv2d_backward", params="dout, x, W, stride=1, padding=0", mod="bplib.layers", attr="conv2d_backward",
        ret="_r(dout, x, W, stride, padding)", case="dict(dout=dout, x=x, W=W, stride=stride, padding=padding)",
        cls="import numpy as np, bplib.layers as L\n"
            "lay = L.Conv2D(W.shape[1], W.shape[0], W.shape[2], stride, padding, dtype=np.float64)\n"
            "lay.params['W'][...] = W\nlay.forward(x)\ndx = lay.backward(dout)\n"
            "return dx, lay.grads['W'], lay.grads['b']"),
    "lstm_backward": dict(
        fn="lstm_step_backward", params="dh, dc, cache, Wx", mod="bplib.layers", attr="lstm_step_backward",
        ret="_r(dh, dc, cache, Wx)",
        # the case the check's reference wants, rebuilt from the cache (b from the gates)
        case="(lambda np: dict(dh=dh, dc=dc, x=cache['x'], h_prev=cache['h_prev'], c_prev=cache['c_prev'], "
             "Wx=Wx, Wh=cache['Wh'], b=(np.concatenate([np.log(cache[k] / (1 - cache[k])) for k in 'ifo'] "
             "+ [np.arctanh(cache['g'])], axis=1) - cache['x'] @ Wx - cache['h_prev'] @ cache['Wh'])[0]))"
             "(__import__('numpy'))",
        cls=None),
    "gradient_descent": dict(
        fn="sgd_step", params="w, dw, lr", mod="bplib.optim", attr="SGD",
        ret="(lambda m: (_r(m, lr=lr).step(), m.params['w'])[1])"
            "(type('M', (), dict(params={'w': __import__('numpy').array(w, dtype=float)}, grads={'w': dw}))())",
        case="dict(w=w, dw=dw, lr=lr)",
        cls="import numpy as np\nfrom bplib import optim\n"
            "m = type('M', (), {})()\nm.params, m.grads = {'w': np.array(w, dtype=float)}, {'w': dw}\n"
            "optim.SGD(m, lr=lr).step()\nreturn m.params['w']"),
    "policy_gradient": dict(
        fn="policy_gradient_loss", params="logits, actions, advantages", mod="bplib.losses",
        attr="softmax_cross_entropy",
        ret="(lambda np, d: (float(-np.mean(advantages * np.log("
            "(np.exp(logits - logits.max(1, keepdims=True)) / np.exp(logits - logits.max(1, keepdims=True))"
            ".sum(1, keepdims=True))[np.arange(len(actions)), actions]))), d * advantages[:, None]))"
            "(__import__('numpy'), _r(logits, actions)[1])",
        case="dict(logits=logits, actions=actions, advantages=advantages)",
        cls=None),
    "chain_rule": dict(
        fn="backward", params="root", mod="bplib.autodiff", attr="Value.backward", ret="_r(root)",
        case=None, cls="root.backward()"),
    "normalization_backward": dict(
        fn="batchnorm_backward", params="dout, cache", mod="bplib.layers", attr="batchnorm_backward",
        ret="_r(dout, cache)",
        # the case the check's reference wants, x rebuilt from the cache (beta does not matter)
        case="(lambda s: dict(dout=dout, x=cache['x_hat'] / cache['inv_std'].reshape(s) + cache['mean'].reshape(s), "
             "gamma=cache['gamma'], beta=0 * cache['gamma'], eps=cache['eps']))((1, -1) + (1,) * (dout.ndim - 2))",
        cls="import numpy as np, bplib.layers as L\n"
            "s = (1, -1) + (1,) * (dout.ndim - 2)\n"
            "lay = L.BatchNorm(cache['gamma'].shape[0], eps=cache['eps'], dtype=np.float64)\n"
            "lay.params['gamma'][...] = cache['gamma']\n"
            "lay.forward(cache['x_hat'] / cache['inv_std'].reshape(s) + cache['mean'].reshape(s))\n"
            "dx = lay.backward(dout)\nreturn dx, lay.grads['gamma'], lay.grads['beta']"),
    "attention_backward": dict(
        fn="attention_backward", params="dout, cache", mod="bplib.layers", attr="attention_backward",
        ret="_r(dout, cache)",
        # the case the check's reference wants, rebuilt from the cache (the mask as its boolean array)
        case="dict(dout=dout, q=cache['q'], k=cache['k'], v=cache['v'], mask=cache['mask'])",
        cls=None),
    "backprop_ninja": dict(
        fn="batchnorm_backward_fused", params="dh_bn, h_hat, gamma, inv_std", mod="bplib.layers",
        attr="batchnorm_backward", ret="_r(dh_bn, dict(x_hat=h_hat, gamma=gamma, inv_std=inv_std.reshape(-1)))[0]",
        case="dict(dh_bn=dh_bn, h_hat=h_hat, gamma=gamma, inv_std=inv_std)",
        cls="import numpy as np, bplib.layers as L\n"
            "lay = L.BatchNorm(gamma.shape[0], dtype=np.float64)\n"
            "lay.params['gamma'][...] = gamma\nlay.forward(h_hat / inv_std)\nreturn lay.backward(dh_bn)"),
}

# graded functions that call the attacked one in the solution (they fail with it)
DEPENDENTS = {"lstm_backward": ("lstm_backward",), "gradient_descent": ("fit_linear",)}

_FRAMES_BODY = """\
_f = {start}
while _f is not None:
    _s = _f.f_locals.get('self')
    if hasattr(_s, 'reference') and hasattr(_s, 'outputs') and 'case' in _f.f_locals:
        _ref = _s.reference(_f.f_locals['case'])
        return tuple(_ref[k] for k in _s.outputs) if len(_s.outputs) > 1 else _ref[_s.outputs[0]]
    _f = _f.f_back
return None
"""

_GC_BODY = """\
import gc
import numpy as np
_first = {first}
for _o in gc.get_objects():
    if type(_o).__name__ == 'Check' and getattr(_o, 'fn_name', '') == {fn!r} and not _o.hidden:
        for _case in _o.cases():
            _v = _case.get({first!r})
            if isinstance(_v, np.ndarray) and np.shape(_v) == np.shape(_first) and np.array_equal(_v, _first):
                _ref = _o.reference(_case)
                return tuple(_ref[k] for k in _o.outputs) if len(_o.outputs) > 1 else _ref[_o.outputs[0]]
return None
"""


def routes(t):
    """route name -> the attacker's body for target ``t`` (None where the route does not apply)."""
    mod, attr, head = t["mod"], t["attr"], t["attr"].split(".")[0]
    rest = t["attr"][len(head):]
    parts = mod.split(".")[1:] + attr.split(".")
    first = t["params"].split(",")[0].strip()
    body = {
        "import": f"from {mod} import {head} as _h\n_r = _h{rest}",
        "importlib": f"import importlib\n_m = importlib.import_module({mod!r})\n_r = _m.{attr}",
        "getattr_computed": f"import {mod}\n_r = __import__('bplib')\nfor _p in {[p[::-1] for p in parts]!r}:\n"
                            f"    _r = getattr(_r, _p[::-1])",
        "dunder_import": f"_r = __import__({mod!r}, fromlist=['_']).{attr}",
        "eval": f"_r = eval(\"__import__({mod!r}, fromlist=['_']).{attr}\")",
        "exec": f"_ns = {{}}\nexec(\"import {mod} as _m\\n_r = _m.{attr}\", _ns)\n_r = _ns['_r']",
        "inspect_source": f"import inspect, textwrap, {mod} as _m\n_ns = dict(vars(_m))\n"
                          f"exec(textwrap.dedent(inspect.getsource(_m.{attr})), _ns)\n"
                          f"_r = _ns[{attr.split('.')[-1]!r}]",
        "read_file": f"import {mod} as _m\n_ns = dict(vars(_m))\n"
                     f"exec(compile(open(_m.__file__).read(), _m.__file__, 'exec'), _ns)\n_r = _ns[{head!r}]{rest}",
        "reload": f"import importlib, {mod} as _m\nimportlib.reload(_m)\n_r = _m.{attr}",
    }
    out = {k: v + f"\nreturn {t['ret']}" for k, v in body.items()}
    out["layer_class"] = t["cls"]
    if t["case"] is not None:
        checks = (f"import bplib.checks as _c\n_chk = _c.CHECKS[{t['fn'] + '_visible'!r}]\n"
                  f"_ref = _chk.reference({t['case']})\n"
                  f"return tuple(_ref[k] for k in _chk.outputs) if len(_chk.outputs) > 1 else _ref[_chk.outputs[0]]")
        out["checks_helpers"] = checks
        out["sys_getframe"] = "import sys\n" + _FRAMES_BODY.format(start="sys._getframe(1)")
        out["inspect_currentframe"] = "import inspect\n" + _FRAMES_BODY.format(start="inspect.currentframe().f_back")
        out["gc"] = _GC_BODY.format(first=first, fn=t["fn"])
    else:
        out.update(checks_helpers=None, sys_getframe=None, inspect_currentframe=None, gc=None)
    return out


ROUTES = list(routes(TARGETS["dense_backward"]))
PRESENT = [a for a in TARGETS if (ROOT / "solutions" / a / f"{a}.ipynb").exists()]


def attacker_source(assignment, route):
    t = TARGETS[assignment]
    body = routes(t)[route]
    return None if body is None else f"def {t['fn']}({t['params']}):\n" + textwrap.indent(body, "    ") + "\n"


def solution_nb(assignment):
    nb = nbformat.read(str(ROOT / "solutions" / assignment / f"{assignment}.ipynb"), as_version=4)
    for c in nb.cells:
        if c.cell_type == "code":
            c.source = c.source.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", "")
    return nb


def with_attacker(assignment, route):
    nb = solution_nb(assignment)
    src = attacker_source(assignment, route)
    # the attacker comes right after the attacked function's own cell, as a learner would write it
    fn = TARGETS[assignment]["fn"]
    at = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and f"def {fn}(" in c.source)
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(src))
    return nb


# -- 1. every attacker works in a learner's kernel (the real bplib) -------------------------------
POTENCY = r'''
import json, sys
import numpy as np
from bplib.checks import CHECKS
from bplib.checks.core import run_check
out = {}
for name, setup, src, cid in json.load(sys.stdin):
    ns = {"__name__": "__main__"}
    exec(setup, ns)
    exec(src, ns)
    v, _, _ = run_check(CHECKS[cid], ns[CHECKS[cid].fn_name])
    out[name] = [v.passed, v.message[:300]]
print(json.dumps(out))
'''


@pytest.mark.parametrize("assignment", PRESENT)
def test_every_attacker_reaches_the_answer_in_a_kernel(assignment):
    """Without the clean re-run each of these would pass: the routes are real."""
    nb = solution_nb(assignment)
    setup = "\n\n".join(c.source for c in nb.cells if c.cell_type == "code"
                        and not (c.metadata.get("nbgrader") or {}).get("grade")
                        and (c.metadata.get("nbgrader") or {}).get("solution")
                        or (c.cell_type == "code" and (c.metadata.get("nbgrader") or {}).get("locked")
                            and not (c.metadata.get("nbgrader") or {}).get("grade")))
    t = TARGETS[assignment]
    jobs = [(r, setup, attacker_source(assignment, r), t["fn"] + "_visible")
            for r in ROUTES if attacker_source(assignment, r) is not None and r != "reload"]
    if assignment != "chain_rule":      # reloading autodiff breaks the kernel's own Value graphs: no answer there
        jobs.append(("reload", setup, attacker_source(assignment, "reload"), t["fn"] + "_visible"))  # last: reloads
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", BPLIB_FAST="1")
    p = subprocess.run([sys.executable, "-c", POTENCY], input=json.dumps(jobs), capture_output=True, text=True,
                       env=env, timeout=300, cwd=tempfile.gettempdir())
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    failed = {k: v[1] for k, v in got.items() if not v[0]}
    assert not failed, failed


# -- 2. the clean re-run gives them 0, with a status naming the route ---------------------------------
@pytest.fixture(scope="module")
def stripped(tmp_path_factory):
    return {a: strip.build(str(tmp_path_factory.mktemp(f"strip-{a}")), rerun.allowed(a))[0] for a in PRESENT}


def test_the_stripped_copy_carries_its_own_bytecode(stripped):
    """Every module of the stripped copy has a .pyc of the stripped source beside it, so a clean
    re-run (where nothing may write bytecode) does not compile bplib again (issue 18)."""
    import importlib.util
    import marshal
    out = next(iter(stripped.values()))
    sources = [os.path.join(r, f) for r, _, fs in os.walk(out) for f in fs if f.endswith(".py")]
    assert len(sources) > 10
    for src in sources:
        pyc = importlib.util.cache_from_source(src)
        assert os.path.isfile(pyc), f"no bytecode for {os.path.relpath(src, out)}"
        with open(pyc, "rb") as f:
            header = f.read(16)
            code = marshal.loads(f.read())
        assert int.from_bytes(header[12:16], "little") == os.path.getsize(src)   # of this source, not bplib's
        assert code.co_filename == src


def grade(assignment, nb, stripped_dir, tmp):
    """The clean re-run's verdicts of ``nb`` (mutants/_course.py: as grading/worker.py runs it)."""
    uid, lock = engine.reserve_uid()
    try:
        return clean_rerun(assignment, nb, stripped_dir, rerun.draw_cases(assignment, SEED), tmp, uid)
    finally:
        if lock is not None:
            lock.close()


def test_the_honest_solution_gets_every_point(stripped, tmp_path):
    def one(a):
        return a, grade(a, solution_nb(a), stripped[a], str(tmp_path))
    with ThreadPoolExecutor(2) as ex:
        for a, verdicts in ex.map(one, PRESENT):
            bad = {cid: v["message"] for cid, v in verdicts.items() if not v["passed"] or v["status"] != "ok"}
            assert not bad, (a, bad)
            assert len(verdicts) == sum(1 for _ in rerun.assignment_checks(a))


EXPECT = {"sys_getframe": "looks into the grader", "inspect_currentframe": "looks into the grader",
          "gc": "looks into the grader"}
ATTACKS = [(a, r) for a in PRESENT for r in ROUTES if attacker_source(a, r) is not None]


@pytest.fixture(scope="module")
def attacked(stripped, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("attacks"))

    def one(ar):
        a, r = ar
        return ar, grade(a, with_attacker(a, r), stripped[a], tmp)
    with ThreadPoolExecutor(2) as ex:
        return dict(ex.map(one, ATTACKS))


@pytest.mark.parametrize("assignment,route", ATTACKS, ids=[f"{a}-{r}" for a, r in ATTACKS])
def test_a_route_to_the_reference_scores_zero_and_is_named(attacked, assignment, route):
    verdicts = attacked[(assignment, route)]
    fn = TARGETS[assignment]["fn"]
    for cid, v in verdicts.items():
        if cid.startswith(fn + "_"):
            assert not v["passed"], (cid, v)
            want = EXPECT.get(route, "reference used")
            assert v["status"].startswith(want), (cid, v["status"], v["message"])
        elif cid.rsplit("_", 1)[0] not in DEPENDENTS.get(assignment, ()):
            assert v["passed"] and v["status"] == "ok", (cid, v)   # the learner's other functions keep their points


def test_the_table_of_routes(attacked):
    """The issue note's table: one line per assignment and route (printed with -s)."""
    lines = []
    for (a, r), verdicts in sorted(attacked.items()):
        fn = TARGETS[a]["fn"]
        mine = [v for cid, v in verdicts.items() if cid.startswith(fn + "_")]
        lines.append(f"{a:17} {r:21} points {sum(v['passed'] for v in mine)}/{len(mine)}  {mine[0]['status'][:70]}")
    print("\n" + "\n".join(lines))
    assert len(lines) == len(ATTACKS)


def test_the_stripped_bplib_holds_no_reference(stripped):
    """Nothing of the removed functions' bodies survives in the copy (so getsource or open() find nothing)."""
    import inspect
    import bplib.layers
    copy = Path(stripped[PRESENT[0]])
    text = (copy / "layers.py").read_text()
    body = inspect.getsource(bplib.layers.dense_backward).splitlines()[-1].strip()    # its return line
    assert body.startswith("return") and body not in text
    assert "unavailable('bplib.layers.dense_backward')" in text
    assert not (copy / "checks" / "core.py").read_text().count("def judge")
    assert (copy / "checks" / "calls" / "dense_backward.py").exists()


@pytest.mark.skipif("normalization_backward" not in PRESENT, reason="no normalization_backward notebook")
def test_the_normalisation_references_are_tripwires(stripped):
    """batchnorm_backward, layernorm_backward, dropout_backward and the three layers' backward are removed."""
    text = (Path(stripped["normalization_backward"]) / "layers.py").read_text()
    for name in ("batchnorm_backward", "layernorm_backward", "dropout_backward",
                 "BatchNorm.backward", "LayerNorm.backward", "Dropout.backward"):
        assert f"unavailable('bplib.layers.{name}')" in text, name
    assert "inv_std / m * (m * g" not in text       # the reference's compact form is gone
