"""Near-copy detection for graded functions: a learner's function against the course's own source and
against the other learners' (a flag for the instructor to look at, never a grade by itself).

    normalise(source, fn_name)                 the function as canonical lines (what is compared)
    similarity(a, b, fn_name)                  a score in [0, 1], or NOT_COMPARABLE (None) for trivial code
    find_similar(functions, references, fn_name, threshold)
                                               {learner: [(other party, score), ...]} at or above threshold
    reference_sources(fn_name, assignment)     the course's implementations a learner might copy

How a function is normalised (``normalise``), so that cosmetic disguises vanish:

* parse with ``ast``: comments, whitespace, line breaks and brackets are gone; formatting is ``ast.unparse``'s;
* docstrings, bare constants, ``pass``, imports and code after ``return``/``raise``/``break``/``continue``
  are dropped, and so are assignments to plain names that are never read (repeated until none is left);
* ``x op= y`` becomes ``x = x op y``, ``x: T = y`` becomes ``x = y``, and ``a, b = f, g`` becomes
  ``a = f`` and ``b = g`` when the right side reads none of the targets;
* every local name (arguments, assigned names, loop, comprehension, ``with``/``except`` and lambda
  variables, nested function names) becomes ``v0, v1, ...`` in order of first appearance; attribute
  names, keyword names, constants and outside names stay (``np`` is written ``numpy``, and a cell's
  ``import numpy as xp`` makes ``xp`` ``numpy`` too);
* operands of ``+`` and ``*`` chains are sorted (``dout * mask`` == ``mask * dout``);
* the statements of every block are put in one canonical order that any reordering of independent
  statements reaches: statement j must follow an earlier statement i when one writes a name the other
  reads or writes; among the statements free to go next, the smallest by a name-independent key goes
  first (a topological sort). Names are numbered in that order, so the numbering cannot tell either.

``similarity`` compares the token sequences of two normalised functions with ``difflib.SequenceMatcher``
(``2 * matching tokens / total tokens``), every local name counting as the same token ``v`` (so that an
inserted variable, which renumbers all later ones, costs only its own tokens): 1.0 for copies that
differ only as above, less the more that was really rewritten. Functions with fewer than
``MIN_STATEMENTS`` normalised lines or ``MIN_TOKENS`` tokens (``return dout * (x > 0)``) are
NOT_COMPARABLE: honest learners write the same one-liner.

THRESHOLD, measured by tests/test_similarity.py (``PYTHONPATH=. python tests/test_similarity.py``
prints the numbers): honest solutions written differently score 0.25-0.6 against each other and at
most 0.7 against the course's sources; disguised copies 1.0; one further real edit (a no-op, a split
expression, another numpy call) leaves about 0.95-0.99, five edits about 0.9, eight about 0.84.

Limits (what a determined copier can still do): edit enough. Live but useless code (``dx = dx + 0``,
a dead branch ``if False:``), split or inlined expressions, equivalent forms (``np.sum(x, axis=0)`` for
``x.sum(axis=0)``, ``a - b`` for ``-b + a``, a ``while`` for a ``for``) are not normalised; each costs a
few hundredths, so a handful of them together gets under the threshold. The reference's helpers are
not followed (a copy of ``bplib.layers.lstm_step_backward`` that inlines ``_lstm_step_da`` is compared
as written). And the converse: where the natural honest answer is short and canonical
(``dense_backward``'s three products, the reversed running sum of ``discounted_returns``) honest
learners coincide with each other and with the instructor solution; a flag there is a reason to look,
not evidence.
"""
import ast
import copy
import difflib
import importlib
import inspect
import json
import os
import re
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

THRESHOLD = 0.9          # see tests/test_similarity.py: honest distinct pairs stay well below, disguised copies at 1.0
MIN_STATEMENTS = 4       # fewer normalised lines than this, or fewer tokens than MIN_TOKENS: not comparable
MIN_TOKENS = 12
NOT_COMPARABLE = None    # what similarity() returns for a trivial (or unparseable) function

# where the course's own implementation of a graded function lives, when its name differs (or is a method)
REFERENCE_ALIASES = {
    "discounted_returns": ["bplib.cases.pong.discount_rewards"],
    "policy_gradient_loss": ["bplib.cases.pong.policy_gradient"],
    "backward": ["bplib.autodiff.Value.backward"],
    "attention_backward": ["bplib.layers._attention_fast_backward"],
    "mha_projections_backward": ["bplib.layers.MultiHeadSelfAttention.backward"],
    "cross_entropy_backward": ["bplib.losses.softmax_cross_entropy"],
    "batchnorm_backward_fused": ["bplib.layers.batchnorm_backward"],
    "backward_by_hand": ["bplib.tensor.Tensor.backward"],
}
# searched for a function of the graded function's own name
REFERENCE_MODULES = ["bplib.layers", "bplib.losses", "bplib.optim", "bplib.autodiff", "bplib.gradcheck",
                     "bplib.cases.pong"]

DEFAULT_ALIASES = {"np": "numpy"}
INDENT = "    "
_COMMUTATIVE = (ast.Add, ast.Mult)
_JUMPS = (ast.Return, ast.Raise, ast.Break, ast.Continue)


# ---------------------------------------------------------------------------------------------------------
# normalise
# ---------------------------------------------------------------------------------------------------------
def normalise(source, fn_name=None):
    """The function ``fn_name`` of ``source`` (a cell: other code may surround it) as a list of canonical
    lines, indented by four spaces a level; the ``def`` line itself is left out (every learner has it).

    Without ``fn_name``: the source's only top-level function if it has exactly one, else the whole
    source. Source that does not parse, or has no such function: ``[]``. Never raises.
    """
    try:
        return _normalise(source, fn_name)
    except Exception:   # noqa: BLE001  learner code of any shape must not stop a grading run
        return []


def _normalise(source, fn_name=None):
    try:
        tree = _parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return []
    aliases = dict(DEFAULT_ALIASES)
    for node in tree.body:
        _note_imports(node, aliases)
    fn = _pick_function(tree, fn_name)
    if fn is None:
        return []
    for node in ast.walk(fn):                          # imports inside the function name modules too
        _note_imports(node, aliases)
    scope = ast.Module(body=_clean(fn.body), type_ignores=[])
    if fn is not tree:                                 # a module's names are read by the cells after it
        _remove_dead_assignments(scope)
    args = fn.args if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
    canon = _Canon(_local_names(scope, args), aliases)
    if args is not None:
        for a in _arg_nodes(args):                      # arguments first, in signature order
            canon.name(a.arg)
    return canon.block(scope.body, 0)


def _parse(source):
    source = textwrap.dedent(source)
    try:
        return ast.parse(source)
    except SyntaxError:                                 # a notebook cell: IPython magics and shell escapes
        blanked = re.sub(r"(?m)^[ \t]*[%!].*$", "", source)
        return ast.parse(blanked)


def _pick_function(tree, fn_name):
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if fn_name is not None:
        found = [n for n in defs if n.name == fn_name]
        return found[-1] if found else None             # the last definition is the one that runs
    rest = [n for n in tree.body if n not in defs and not isinstance(n, (ast.Import, ast.ImportFrom))
            and not _is_constant_expr(n)]
    return defs[0] if len(defs) == 1 and not rest else tree


def _note_imports(node, aliases):
    if isinstance(node, ast.Import):
        for a in node.names:
            if a.asname:
                aliases[a.asname] = a.name
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
        for a in node.names:
            if a.name != "*":
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"


def _is_constant_expr(node):
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)


# -- cleaning: what carries no logic goes, equivalent forms become one ---------------------------------------
def _clean(stmts):
    """A block without docstrings, constants, pass, imports, declarations or unreachable code, and with
    augmented, annotated and parallel assignments rewritten as plain ones (recursively)."""
    out = []
    for s in stmts:
        if _is_constant_expr(s) or isinstance(s, (ast.Pass, ast.Import, ast.ImportFrom, ast.Global,
                                                  ast.Nonlocal)):
            continue
        if isinstance(s, ast.AnnAssign):
            if s.value is None:
                continue
            s = ast.Assign(targets=[s.target], value=s.value, lineno=0)
        if isinstance(s, ast.AugAssign):
            target = copy.deepcopy(s.target)
            _set_ctx(target, ast.Load())
            s = ast.Assign(targets=[s.target], value=ast.BinOp(left=target, op=s.op, right=s.value), lineno=0)
        for field in ("body", "orelse", "finalbody"):
            if isinstance(getattr(s, field, None), list):
                setattr(s, field, _clean(getattr(s, field)))
        for h in getattr(s, "handlers", []):
            h.body = _clean(h.body)
        for case in getattr(s, "cases", []):
            case.body = _clean(case.body)
        out += _split_parallel(s)
        if isinstance(s, _JUMPS):
            break                                        # the rest of the block never runs
    return out


def _set_ctx(node, ctx):
    for n in ast.walk(node):
        if hasattr(n, "ctx"):
            n.ctx = ctx


def _split_parallel(s):
    """``a, b = f, g`` -> ``a = f``, ``b = g`` when f and g read neither a nor b (``a, b = b, a`` stays)."""
    if not (isinstance(s, ast.Assign) and len(s.targets) == 1 and isinstance(s.targets[0], ast.Tuple)
            and isinstance(s.value, ast.Tuple) and len(s.targets[0].elts) == len(s.value.elts)):
        return [s]
    targets, values = s.targets[0].elts, s.value.elts
    if any(isinstance(n, ast.Starred) for n in targets + values):
        return [s]
    if _names(targets, ast.Store) & _names(values, ast.Load) or not all(isinstance(t, ast.Name) for t in targets):
        return [s]
    return [ast.Assign(targets=[t], value=v, lineno=0) for t, v in zip(targets, values)]


def _names(nodes, ctx):
    return {n.id for node in nodes for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}


def _remove_dead_assignments(scope):
    """Drop ``name = ...`` (all targets plain names) when no code reads the name; repeat until stable.
    (Not in class bodies: there an assignment defines an attribute.)"""
    while True:
        read = _names([scope], ast.Load)
        changed = False
        for node in ast.walk(scope):
            for field in ("body", "orelse", "finalbody") if not isinstance(node, ast.ClassDef) else ():
                block = getattr(node, field, None)
                if not isinstance(block, list) or not block or not isinstance(block[0], ast.AST):
                    continue
                kept = [s for s in block if not _dead(s, read)]
                if len(kept) < len(block):
                    setattr(node, field, kept)
                    changed = True
        if not changed:
            return


def _dead(s, read):
    return (isinstance(s, ast.Assign) and all(_plain_target(t) for t in s.targets)
            and not _names(s.targets, ast.Store) & read)


def _plain_target(t):
    if isinstance(t, ast.Starred):
        t = t.value
    return isinstance(t, ast.Name) or (isinstance(t, (ast.Tuple, ast.List)) and all(map(_plain_target, t.elts)))


# -- names ---------------------------------------------------------------------------------------------------
def _arg_nodes(args):
    return [*args.posonlyargs, *args.args, *([args.vararg] if args.vararg else []), *args.kwonlyargs,
            *([args.kwarg] if args.kwarg else [])]


def _local_names(scope, args):
    """Every name the function binds, in any of its nested scopes (one flat namespace is enough here)."""
    names = {a.arg for a in _arg_nodes(args)} if args is not None else set()
    declared_global = set()
    for n in ast.walk(scope):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            names.add(n.id)
        elif isinstance(n, ast.arg):
            names.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(n.name)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            names.add(n.name)
        elif isinstance(n, ast.Global):
            declared_global.update(n.names)
    return names - declared_global


class _Canon:
    """Canonical names (v0, v1, ...) handed out in order of first appearance, and the canonical order of
    each block's statements."""

    def __init__(self, local, aliases):
        self.local, self.aliases, self.names = local, aliases, {}

    def name(self, original):
        if original not in self.names:
            self.names[original] = f"v{len(self.names)}"
        return self.names[original]

    def rename(self, node, anonymous=False):
        """``node`` with canonical names, in place. ``anonymous``: names not numbered yet become ``_``
        and none is numbered (the ordering key must not depend on the order it is asked in)."""
        for n in _in_source_order(node):
            if isinstance(n, ast.Name):
                n.id = self._new_id(n.id, anonymous)
            elif isinstance(n, ast.arg):
                n.arg, n.annotation = self._new_id(n.arg, anonymous), None
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)) and n.name:
                n.name = self._new_id(n.name, anonymous)
        return _sort_commutative(node)

    def _new_id(self, name, anonymous):
        if name not in self.local:
            return self.aliases.get(name, name)
        if anonymous and name not in self.names:
            return "_"
        return self.name(name)

    # -- statements ------------------------------------------------------------------------------------
    def block(self, stmts, depth):
        """The lines of a block, its statements in canonical order (a topological sort: see the module)."""
        effects = [_effects(s) for s in stmts]
        before = [{i for i in range(j) if _conflict(effects[i], effects[j])} for j in range(len(stmts))]
        mentions = [_mentioned(s) & self.local for s in stmts]
        keys = {}                                        # j -> (its names numbered when computed, key)

        def key(j):
            numbered = mentions[j] & self.names.keys()
            if j not in keys or keys[j][0] != numbered:
                keys[j] = (numbered, self._key(stmts[j]))
            return keys[j][1], j

        done, lines = set(), []
        while len(done) < len(stmts):
            ready = [j for j in range(len(stmts)) if j not in done and before[j] <= done]
            j = min(ready, key=key)
            done.add(j)
            lines += self.statement(stmts[j], depth)
        return lines

    def _key(self, s):
        """A statement's shape with its not-yet-numbered names blanked, its lines sorted (so the order of
        the statements nested inside does not matter either)."""
        return sorted(ast.unparse(self.rename(copy.deepcopy(s), anonymous=True)).splitlines())

    def statement(self, s, depth):
        pad = INDENT * depth
        expr = lambda node: ast.unparse(self.rename(node))     # noqa: E731
        inner = lambda stmts: self.block(stmts, depth + 1)      # noqa: E731
        if isinstance(s, (ast.For, ast.AsyncFor)):
            head = f"for {expr(s.target)} in {expr(s.iter)}:"
            return [pad + head, *inner(s.body), *self._else(s.orelse, depth)]
        if isinstance(s, ast.While):
            return [pad + f"while {expr(s.test)}:", *inner(s.body), *self._else(s.orelse, depth)]
        if isinstance(s, ast.If):
            return [pad + f"if {expr(s.test)}:", *inner(s.body), *self._else(s.orelse, depth)]
        if isinstance(s, (ast.With, ast.AsyncWith)):
            return [pad + "with " + ", ".join(expr(item) for item in s.items) + ":", *inner(s.body)]
        if isinstance(s, ast.Try):
            lines = [pad + "try:", *inner(s.body)]
            for h in s.handlers:
                head = "except" + (f" {expr(h.type)}" if h.type else "")
                head += f" as {self.name(h.name)}" if h.name else ""
                lines += [pad + head + ":", *inner(h.body)]
            lines += self._else(s.orelse, depth)
            if s.finalbody:
                lines += [pad + "finally:", *inner(s.finalbody)]
            return lines
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            decorators = [pad + "@" + expr(d) for d in s.decorator_list]
            head = f"def {self.name(s.name)}({expr(s.args)}):"
            return [*decorators, pad + head, *inner(s.body)]
        return [pad + line for line in ast.unparse(self.rename(s)).splitlines()]

    def _else(self, orelse, depth):
        return [INDENT * depth + "else:", *self.block(orelse, depth + 1)] if orelse else []


def _mentioned(node):
    names = set()
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            names.add(n.id)
        elif isinstance(n, ast.arg):
            names.add(n.arg)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.ExceptHandler)) and n.name:
            names.add(n.name)
    return names


def _in_source_order(node):
    """Depth-first, fields in order: names are met as they appear in the text (ast.walk is breadth-first)."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _in_source_order(child)


def _sort_commutative(node):
    """Sort the operands of every ``+`` / ``*`` chain by their text, innermost first:
    ``c + b * a`` -> ``a * b + c``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, _COMMUTATIVE):
        operands = sorted((_sort_commutative(o) for o in _flatten(node, type(node.op))), key=ast.unparse)
        rebuilt = operands[0]
        for o in operands[1:-1]:
            rebuilt = ast.BinOp(left=rebuilt, op=type(node.op)(), right=o)
        node.left, node.right = rebuilt, operands[-1]
    else:
        for child in ast.iter_child_nodes(node):
            _sort_commutative(child)
    return node


def _flatten(n, op):
    if isinstance(n, ast.BinOp) and isinstance(n.op, op):
        return _flatten(n.left, op) + _flatten(n.right, op)
    return [n]


# -- which statements may change places --------------------------------------------------------------------
def _effects(s):
    """(names read, names written, whether it is a jump) of a statement, nested blocks included.
    ``a[i] = v`` and ``a.x = v`` write ``a`` (and read it). Names bound only inside a comprehension, a
    lambda or a nested function do not count: they cannot clash with another statement's."""
    reads, writes, inner = set(), set(), set()
    for n in ast.walk(s):
        if isinstance(n, ast.Name):
            (reads if isinstance(n.ctx, ast.Load) else writes).add(n.id)
        elif isinstance(n, (ast.Subscript, ast.Attribute)) and isinstance(n.ctx, (ast.Store, ast.Del)):
            base = n
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                writes.add(base.id)
        if isinstance(n, ast.comprehension):
            inner |= _names([n.target], ast.Store)
        elif isinstance(n, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef)):
            inner |= {a.arg for a in _arg_nodes(n.args)}
            if not isinstance(n, ast.Lambda):
                inner |= _names(n.body, ast.Store)
    for n in ast.walk(s):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            writes.add(n.name)
        elif isinstance(n, ast.ExceptHandler) and n.name:
            writes.add(n.name)
    return reads - inner, writes - inner, isinstance(s, _JUMPS)


def _conflict(first, second):
    (r1, w1, jump1), (r2, w2, jump2) = first, second
    return jump1 or jump2 or bool(w1 & (r2 | w2)) or bool(r1 & w2)


# ---------------------------------------------------------------------------------------------------------
# similarity
# ---------------------------------------------------------------------------------------------------------
def tokens(lines):
    """The tokens compared: each line's words and symbols, after a token for its depth. Local names are
    all ``v`` here: one inserted or removed variable renumbers every later one, and that must not cost
    more than the statement itself (the numbers still fix the order of the statements)."""
    out = []
    for line in lines:
        stripped = line.lstrip(" ")
        out.append(f"<{(len(line) - len(stripped)) // len(INDENT)}>")
        out += ["v" if re.fullmatch(r"v\d+", t) else t for t in re.findall(r"\w+|[^\w\s]", stripped)]
    return out


def comparable(lines):
    """Whether normalised ``lines`` are long enough for a match to mean anything."""
    return len(lines) >= MIN_STATEMENTS and len(tokens(lines)) >= MIN_TOKENS


def similarity(a, b, fn_name=None):
    """Similarity of the function ``fn_name`` in sources ``a`` and ``b``: 1.0 for copies that differ in
    names, comments, whitespace, docstrings and order of independent statements, lower the more was
    rewritten. NOT_COMPARABLE (None) when either is trivial or does not parse."""
    return _score(normalise(a, fn_name), normalise(b, fn_name))


def _score(lines_a, lines_b, cutoff=0.0):
    """The score of two normalised functions; when it cannot reach ``cutoff``, only an upper bound."""
    if not (comparable(lines_a) and comparable(lines_b)):
        return NOT_COMPARABLE
    ta, tb = sorted([tokens(lines_a), tokens(lines_b)], key=lambda t: (len(t), t))   # symmetric
    matcher = difflib.SequenceMatcher(None, ta, tb, autojunk=False)
    if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:          # cheap upper bounds
        return matcher.quick_ratio()
    return matcher.ratio()


def find_similar(functions, references, fn_name, threshold=THRESHOLD):
    """Near-copies among learners and of the course's sources.

    functions: {learner id: source of the cell (or notebook code) holding ``fn_name``}
    references: {name: source}, from ``reference_sources``
    ->  {learner id: [(other learner id or "reference:<name>", score), ...]} for every learner given,
        the pairs scoring >= threshold, highest first (a pair of learners is listed on both). Trivial or
        unparseable functions get [] (see ``comparable``).
    """
    norm = {who: normalise(src, fn_name) for who, src in functions.items()}
    # a reference is one function, maybe under another name (bplib's discount_rewards, Value.backward)
    refs = {f"reference:{name}": normalise(src, fn_name) or normalise(src) for name, src in references.items()}
    flags = {who: [] for who in functions}
    learners = sorted(norm)
    for i, who in enumerate(learners):
        for other in learners[i + 1:]:
            score = _score(norm[who], norm[other], threshold)
            if score is not None and score >= threshold:
                flags[who].append((other, score))
                flags[other].append((who, score))
        for ref, lines in refs.items():
            score = _score(norm[who], lines, threshold)
            if score is not None and score >= threshold:
                flags[who].append((ref, score))
    for pairs in flags.values():
        pairs.sort(key=lambda p: (-p[1], p[0]))
    return flags


# ---------------------------------------------------------------------------------------------------------
# the course's own implementations
# ---------------------------------------------------------------------------------------------------------
def reference_sources(fn_name, assignment=None, solutions_dir=None):
    """{name: source} of what a learner might copy for the graded function ``fn_name``: bplib's function of
    that name (and the one in REFERENCE_ALIASES), by ``inspect.getsource``, and, given an ``assignment``,
    the instructor solution's function from ``solutions/<assignment>/<assignment>.ipynb`` (named
    ``solutions/<assignment>``). What cannot be found is skipped."""
    out = {}
    dotted = [f"{m}.{fn_name}" for m in REFERENCE_MODULES] + REFERENCE_ALIASES.get(fn_name, [])
    for path in dotted:
        obj = _resolve(path)
        if obj is None or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if path.rsplit(".", 1)[0] in REFERENCE_MODULES and getattr(obj, "__module__", None) != path.rsplit(".", 1)[0]:
            continue                                     # an import of another module's function: found there
        try:
            out[path] = textwrap.dedent(inspect.getsource(obj))
        except (OSError, TypeError):
            pass
    if assignment:
        src = _solution_function(fn_name, assignment, solutions_dir or os.path.join(REPO, "solutions"))
        if src:
            out[f"solutions/{assignment}"] = src
    return out


def _resolve(path):
    """The object at a dotted path (a module's attribute, or a class's method), or None."""
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
        return obj
    return None


def _solution_function(fn_name, assignment, solutions_dir):
    path = os.path.join(solutions_dir, assignment, f"{assignment}.ipynb")
    try:
        with open(path, encoding="utf-8") as f:
            cells = json.load(f)["cells"]
    except (OSError, ValueError, KeyError):
        return None
    for cell in cells:
        source = "".join(cell.get("source", "")) if cell.get("cell_type") == "code" else ""
        if "### BEGIN SOLUTION" not in source:
            continue
        code = "\n".join(ln for ln in source.splitlines() if "### BEGIN SOLUTION" not in ln
                         and "### END SOLUTION" not in ln)
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == fn_name:
                return ast.get_source_segment(code, node)
    return None
