"""A copy of bplib with the course's reference implementations removed, for the clean re-run.

    build(dest, allowed=()) -> path of dest/bplib

When a notebook is graded, its graded functions run again in a clean process
(grading/runner.py) whose ``bplib`` is this copy, mounted over the real one: every
function that computes a gradient, an update or a loss gradient has its body replaced
by a *tripwire* that records which reference was reached and raises
``ReferenceUnavailable``. However a learner's code reaches the reference (an import,
``importlib``, ``getattr`` on a computed name, ``eval`` of a string, a layer class's
``backward``, ``inspect.getsource`` then ``exec``, a reload) it finds the tripwire,
because the source itself is gone. ``bplib.checks`` is replaced by a stub (no cases,
no reference helpers); only ``bplib.checks.calls`` (how to call a function) is kept.

What is removed (``STRIP``): in every module of bplib, every function or method whose
name contains ``backward``, ``col2im`` or ends in ``_da``; the losses that return
gradients; the optimizers' ``step``; ``Value.backward`` and ``Value.topological_order``
(and ``Tensor``'s, bplib/tensor.py);
the Pong case's ``discount_rewards`` and ``policy_gradient``. The local rules of
``Value`` and ``Tensor`` (the ``_backward`` closures their operations create) stay, guarded: they run
only while a function that the assignment allows to use them is checked
(``runner.py``: ``local_rules``). An assignment's ``ALLOWED`` list (grading/hidden/<a>.py)
keeps named functions whole.
"""
import ast
import os
import shutil

import bplib

PACKAGE = os.path.dirname(os.path.abspath(bplib.__file__))

# (module relative to bplib, qualified name) removed besides the name patterns below
EXPLICIT = {
    ("losses", "softmax_cross_entropy"), ("losses", "binary_cross_entropy"), ("losses", "mse"),
    ("autodiff", "Value.backward"), ("autodiff", "Value.topological_order"),
    ("tensor", "Tensor.backward"), ("tensor", "Tensor.topological_order"),
    ("cases.pong", "discount_rewards"), ("cases.pong", "policy_gradient"),
}
KEEP_MODULES = {"gradcheck"}          # numerical gradients: allowed everywhere


def _stripped(module, qualname, allowed):
    dotted = f"bplib.{module}.{qualname}"
    if dotted in allowed or module in KEEP_MODULES:
        return False
    name = qualname.rsplit(".", 1)[-1]
    if (module, qualname) in EXPLICIT:
        return True
    if module == "optim" and name == "step":
        return True
    return "backward" in name or "col2im" in name or name.endswith("_da")


def _tripwire_body(dotted):
    return ast.parse(f"raise __import__('bplib._tripwire', fromlist=['_']).unavailable({dotted!r})").body


def _guard(owner):
    return ast.parse(f"__import__('bplib._tripwire', fromlist=['_']).local_rule({owner!r})").body


class _Strip(ast.NodeTransformer):
    """Replace the bodies of reference functions (module level or methods) by tripwires."""

    def __init__(self, module, allowed):
        self.module, self.allowed, self.scope, self.removed = module, allowed, [], []

    def _visit_def(self, node):
        names = [n for _, n in self.scope] + [node.name]
        qual = ".".join(names)
        in_function = any(kind == "fn" for kind, _ in self.scope)
        if not in_function and _stripped(self.module, qual, self.allowed):
            dotted = f"bplib.{self.module}.{qual}"
            node.body = _tripwire_body(dotted)          # no docstring either: it may state the formula
            self.removed.append(dotted)
            return node
        if in_function and node.name == "_backward" and self.module in ("autodiff", "tensor"):
            owner = ".".join(n for _, n in self.scope)
            node.body = _guard(f"bplib.{self.module}.{owner}") + node.body
            return node
        self.scope.append(("fn", node.name))
        self.generic_visit(node)
        self.scope.pop()
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_def

    def visit_ClassDef(self, node):
        self.scope.append(("class", node.name))
        self.generic_visit(node)
        self.scope.pop()
        return node


def strip_source(source, module, allowed=()):
    """The module's source with the reference functions replaced by tripwires; (source, removed names)."""
    tree = ast.parse(source)
    t = _Strip(module, set(allowed))
    tree = t.visit(tree)
    ast.fix_missing_locations(tree)
    return ast.unparse(tree) + "\n", t.removed


TRIPWIRE = '''"""Tripwires of the grader's clean re-run (grading/strip.py). Not part of the real bplib."""
HITS = []                  # dotted names of the references reached, in order
LOCAL_RULES = [False]      # True while a function allowed to use Value's local rules is checked


class ReferenceUnavailable(Exception):
    """The course's reference implementation is not available when a notebook is graded."""


def unavailable(name):
    HITS.append(name)
    raise ReferenceUnavailable(f"{name} is the course's reference implementation: it is not available when "
                               f"your notebook is graded. Compute the result with your own code.")


def local_rule(name):
    if not LOCAL_RULES[0]:
        unavailable(name + (" (a local rule of Tensor)" if ".tensor." in name else " (a local rule of Value)"))
'''

CHECKS_STUB = '''"""bplib.checks in the grader's clean re-run: no cases, no references (grading/strip.py)."""
from .. import _tripwire


class _Gone(dict):
    """The checks' tables: reading them reaches for the checking code, which is not here."""

    def __init__(self, name):
        super().__init__()
        self._name = name

    def _gone(self, *args, **kwargs):
        _tripwire.unavailable(f"bplib.checks.{self._name}")

    __getitem__ = __iter__ = __len__ = __contains__ = get = items = keys = values = _gone


ALL_CHECKS, CHECKS, ASSIGNMENTS = _Gone("ALL_CHECKS"), _Gone("CHECKS"), ()


def check(check_id, fn):
    return None


def hint(name):
    return None


def start(assignment):
    return None


def passed(*check_ids):
    return False           # the notebook's demonstration cells wait for passing checks: skipped here


def summary(assignment):
    return (0, 0)


def results():
    return {}


def hints_used(assignment=None):
    return {}


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    _tripwire.unavailable(f"bplib.checks.{name}")
'''

CHECKS_SUBMODULE_STUB = '''"""A stub: the checking code is not available in the grader's clean re-run."""
from .. import _tripwire


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    _tripwire.unavailable(f"{__name__}.{name}")
'''


def compile_bytecode(package):
    """Write ``package``'s bytecode (``__pycache__``) now, so that the processes that import it do not
    compile it again, each: Python writes none on import where PYTHONDONTWRITEBYTECODE is set (on this
    course's machines, and always in the sandbox), and compiling bplib costs a kernel or a clean re-run
    about 0.05 CPU-s. A .pyc is used only while its source is unchanged (size and mtime in its header)."""
    import compileall
    compileall.compile_dir(package, quiet=2, workers=1)


def build(dest, allowed=()):
    """Write the stripped copy to ``dest/bplib``; returns (that path, the removed dotted names)."""
    out = os.path.join(dest, "bplib")
    shutil.rmtree(out, ignore_errors=True)
    removed = []
    for root, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(root, PACKAGE)
        parts = [] if rel == "." else rel.split(os.sep)
        if parts[:1] == ["checks"] and parts[1:2] != ["calls"]:
            continue                               # checks/ is written below (stub + calls)
        os.makedirs(os.path.join(out, *parts), exist_ok=True)
        for f in sorted(files):
            src = os.path.join(root, f)
            dst = os.path.join(out, *parts, f)
            if not f.endswith(".py"):
                shutil.copyfile(src, dst)
                continue
            module = ".".join(parts + ([] if f == "__init__.py" else [f[:-3]]))
            with open(src) as fh:
                text = fh.read()
            if parts[:2] != ["checks", "calls"]:
                text, gone = strip_source(text, module, allowed)
                removed += gone
            with open(dst, "w") as fh:
                fh.write(text)
    with open(os.path.join(out, "_tripwire.py"), "w") as fh:
        fh.write(TRIPWIRE)
    checks_dir = os.path.join(out, "checks")
    os.makedirs(checks_dir, exist_ok=True)
    with open(os.path.join(checks_dir, "__init__.py"), "w") as fh:
        fh.write(CHECKS_STUB)
    for f in sorted(os.listdir(os.path.join(PACKAGE, "checks"))):
        if f.endswith(".py") and f != "__init__.py":
            with open(os.path.join(checks_dir, f), "w") as fh:
                fh.write(CHECKS_SUBMODULE_STUB)
    compile_bytecode(out)
    for root, dirs, files in os.walk(out):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return out, removed
