"""Near-copy detection (grading/similarity.py) on a generated class.

HONEST holds, for five graded functions, solutions written several genuinely different ways (loops or
vectorised, other helpers, other algorithms); every one is checked correct against bplib. ``disguise``
makes a copy of a source the way a copier would: independent statements swapped, every local name
(arguments included) renamed, docstring replaced, comments and blank lines added, spacing changed;
the copy is run through the same correctness check, so it provably computes the same thing.

    honest distinct pairs        -> similarity below THRESHOLD
    disguised copies             -> 1.0
    disguised copies of bplib's own source or the instructor solution -> flagged as "reference:..."

    PYTHONPATH=. .venv/bin/python tests/test_similarity.py      prints the score ranges that justify THRESHOLD
"""
import ast
import inspect
import io
import itertools
import keyword
import random
import textwrap
import tokenize

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bplib import layers, losses
from bplib.autodiff import Value
from grading import similarity as S

# -- honest solutions, several ways each ----------------------------------------------------------------------
HONEST = {
    "dense_backward": {
        "loops": '''
def dense_backward(dout, x, W):
    """Backward of out = x @ W + b, one element at a time."""
    N, D = x.shape
    M = W.shape[1]
    dx = np.zeros((N, D))
    dW = np.zeros((D, M))
    db = np.zeros(M)
    for n in range(N):
        for m in range(M):
            db[m] += dout[n, m]
            for d in range(D):
                dx[n, d] += dout[n, m] * W[d, m]
                dW[d, m] += x[n, d] * dout[n, m]
    return dx, dW, db
''',
        "einsum": '''
def dense_backward(dout, x, W):
    # out[n, m] = sum_d x[n, d] W[d, m] + b[m]: each gradient sums over the index it does not keep
    dx = np.einsum("nm,dm->nd", dout, W)
    dW = np.einsum("nd,nm->dm", x, dout)
    db = np.einsum("nm->m", dout)
    return dx, dW, db
''',
        "per_sample": '''
def dense_backward(dout, x, W):
    dW = np.zeros_like(W)
    db = np.zeros(W.shape[1])
    rows = []
    for xi, gi in zip(x, dout):       # one sample's outer product at a time
        dW += np.outer(xi, gi)
        db += gi
        rows.append(W @ gi)
    return np.stack(rows), dW, db
''',
        "dot_helper": '''
def dense_backward(dout, x, W):
    def t(a):
        return np.transpose(a)
    grad_x = np.dot(dout, t(W))
    grad_W = np.dot(t(x), dout)
    grad_b = np.sum(dout, axis=0)
    return grad_x, grad_W, grad_b
''',
        "columns": '''
def dense_backward(dout, x, W):
    M = W.shape[1]
    dx = sum(np.outer(dout[:, m], W[:, m]) for m in range(M))
    dW = np.column_stack([x.T @ dout[:, m] for m in range(M)])
    db = np.array([dout[:, m].sum() for m in range(M)])
    return dx, dW, db
''',
    },
    "softmax_cross_entropy": {
        "onehot": '''
def softmax_cross_entropy(logits, labels):
    N, K = logits.shape
    onehot = np.zeros((N, K))
    onehot[np.arange(N), labels] = 1.0
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = -np.sum(onehot * log_probs) / N
    dlogits = (np.exp(log_probs) - onehot) / N
    return float(loss), dlogits
''',
        "row_loop": '''
def softmax_cross_entropy(logits, labels):
    n = logits.shape[0]
    total = 0.0
    grad = np.empty_like(logits)
    for i in range(n):
        row = logits[i] - logits[i].max()
        e = np.exp(row)
        s = e.sum()
        total += np.log(s) - row[labels[i]]
        grad[i] = e / s
        grad[i, labels[i]] -= 1.0
    return float(total / n), grad / n
''',
        "logsumexp": '''
def softmax_cross_entropy(logits, labels):
    K = logits.shape[1]
    m = logits.max(axis=1)[:, None]
    lse = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
    picked = np.take_along_axis(logits, labels[:, None], axis=1)
    loss = float(np.mean(lse - picked))
    probs = np.exp(logits - lse)
    target = np.eye(K)[labels]
    return loss, (probs - target) / len(labels)
''',
        "helper": '''
def softmax_cross_entropy(logits, labels):
    def softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        ez = np.exp(z)
        return ez / ez.sum(axis=-1, keepdims=True)
    p = softmax(logits)
    idx = (np.arange(len(labels)), labels)
    loss = -np.mean(np.log(p[idx]))
    d = p.copy()
    d[idx] -= 1
    return float(loss), d / len(labels)
''',
    },
    "lstm_step_backward": {
        "helpers": '''
def lstm_step_backward(dh, dc, cache, Wx):
    def dsig(s):
        return s * (1.0 - s)
    def dtanh(t):
        return 1.0 - t * t
    i, f, o, g = (cache[k] for k in "ifog")
    tc = cache["tanh_c"]
    dc_sum = dc + dh * o * dtanh(tc)
    grads = [dc_sum * g * dsig(i), dc_sum * cache["c_prev"] * dsig(f), dh * tc * dsig(o), dc_sum * i * dtanh(g)]
    da = np.hstack(grads)
    return (da @ Wx.T, da @ cache["Wh"].T, dc_sum * f, cache["x"].T @ da, cache["h_prev"].T @ da,
            np.sum(da, axis=0))
''',
        "slices": '''
def lstm_step_backward(dh, dc, cache, Wx):
    N, H = dh.shape
    o_gate, in_gate, cand = cache["o"], cache["i"], cache["g"]
    forget = cache["f"]
    through_c = dc + dh * o_gate * (1 - np.square(cache["tanh_c"]))
    da = np.empty((N, 4 * H))
    da[:, 0:H] = through_c * cand * in_gate * (1 - in_gate)
    da[:, H:2 * H] = through_c * cache["c_prev"] * forget * (1 - forget)
    da[:, 2 * H:3 * H] = dh * cache["tanh_c"] * o_gate * (1 - o_gate)
    da[:, 3 * H:] = through_c * in_gate * (1 - np.square(cand))
    dx = np.dot(da, Wx.T)
    dh_prev = np.dot(da, cache["Wh"].T)
    dWx = np.dot(cache["x"].T, da)
    dWh = np.dot(cache["h_prev"].T, da)
    return dx, dh_prev, through_c * forget, dWx, dWh, np.sum(da, axis=0)
''',
        "gate_table": '''
def lstm_step_backward(dh, dc, cache, Wx):
    tanh_c = cache["tanh_c"]
    total_dc = dc + dh * cache["o"] * (1 - tanh_c ** 2)
    upstream = {"i": total_dc * cache["g"], "f": total_dc * cache["c_prev"], "o": dh * tanh_c,
                "g": total_dc * cache["i"]}
    parts = []
    for gate in ("i", "f", "o", "g"):
        y = cache[gate]
        local = 1 - y ** 2 if gate == "g" else y * (1 - y)
        parts.append(upstream[gate] * local)
    da = np.concatenate(parts, axis=1)
    dWx = np.einsum("nd,nk->dk", cache["x"], da)
    dWh = np.einsum("nh,nk->hk", cache["h_prev"], da)
    return da @ Wx.T, da @ cache["Wh"].T, total_dc * cache["f"], dWx, dWh, da.sum(0)
''',
        "per_sample": '''
def lstm_step_backward(dh, dc, cache, Wx):
    Wh, xs, hs = cache["Wh"], cache["x"], cache["h_prev"]
    results = [np.zeros_like(xs), np.zeros_like(hs), np.zeros_like(dc), np.zeros_like(Wx),
               np.zeros_like(Wh), np.zeros(Wh.shape[1])]
    for n in range(dh.shape[0]):
        i, f, o, g = cache["i"][n], cache["f"][n], cache["o"][n], cache["g"][n]
        tc = cache["tanh_c"][n]
        dcn = dc[n] + dh[n] * o * (1 - tc * tc)
        a_grad = np.r_[dcn * g * i * (1 - i), dcn * cache["c_prev"][n] * f * (1 - f),
                       dh[n] * tc * o * (1 - o), dcn * i * (1 - g * g)]
        results[0][n] = Wx @ a_grad
        results[1][n] = Wh @ a_grad
        results[2][n] = dcn * f
        results[3] += np.outer(xs[n], a_grad)
        results[4] += np.outer(hs[n], a_grad)
        results[5] += a_grad
    return tuple(results)
''',
    },
    "discounted_returns": {
        "forward_sums": '''
def discounted_returns(rewards, dones, gamma):
    T = len(rewards)
    out = np.zeros(T)
    for t in range(T):
        total, weight = 0.0, 1.0
        for k in range(t, T):         # add the rewards to the end of the episode
            total += weight * rewards[k]
            weight *= gamma
            if dones[k]:
                break
        out[t] = total
    return out
''',
        "episodes": '''
def discounted_returns(rewards, dones, gamma):
    rewards = np.asarray(rewards, dtype=float)
    ends = list(np.flatnonzero(dones) + 1)
    if not ends or ends[-1] != len(rewards):
        ends.append(len(rewards))
    out = np.empty(len(rewards))
    start = 0
    for end in ends:
        seg = rewards[start:end]
        powers = gamma ** np.arange(len(seg))
        for k in range(len(seg)):
            out[start + k] = np.dot(seg[k:], powers[:len(seg) - k])
        start = end
    return out
''',
        "mask_while": '''
def discounted_returns(rewards, dones, gamma):
    keep = 1.0 - np.asarray(dones, dtype=float)   # 0 where an episode ends: nothing flows back across it
    G = np.array(rewards, dtype=float)
    t = len(G) - 2
    while t >= 0:
        G[t] += gamma * keep[t] * G[t + 1]
        t -= 1
    return G
''',
        "recursive": '''
def discounted_returns(rewards, dones, gamma):
    def value_from(t):
        if t == len(rewards):
            return []
        rest = value_from(t + 1)
        nxt = 0.0 if dones[t] or not rest else rest[0]
        return [rewards[t] + gamma * nxt] + rest
    return np.array(value_from(0))
''',
        "conditional": '''
def discounted_returns(rewards, dones, gamma):
    returns = np.zeros_like(rewards, dtype=float)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + (0.0 if dones[t] else gamma * g)
        returns[t] = g
    return returns
''',
    },
    "backward": {
        "recursive": '''
def backward(root):
    order, seen = [], set()
    def visit(node):
        if id(node) in seen:
            return
        seen.add(id(node))
        for child in node._prev:
            visit(child)
        order.append(node)
    visit(root)
    root.grad = 1.0
    for node in order[::-1]:
        node._backward()
''',
        "consumer_counts": '''
def backward(root):
    consumers = {}                       # id(node) -> how many nodes of the graph use it
    stack, seen = [root], {id(root)}
    while stack:
        n = stack.pop()
        for c in n._prev:
            consumers[id(c)] = consumers.get(id(c), 0) + 1
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
    root.grad = 1.0
    ready = [root]
    while ready:                         # a node is ready once every consumer has passed its gradient on
        n = ready.pop()
        n._backward()
        for c in n._prev:
            consumers[id(c)] -= 1
            if consumers[id(c)] == 0:
                ready.append(c)
''',
        "depths": '''
def backward(root):
    depth = {id(root): 0}
    by_id = {id(root): root}
    frontier = [root]
    while frontier:                      # longest distance from the root: a node comes after its consumers
        nxt = []
        for node in frontier:
            for child in node._prev:
                if depth.get(id(child), -1) < depth[id(node)] + 1:
                    depth[id(child)] = depth[id(node)] + 1
                    by_id[id(child)] = child
                    nxt.append(child)
        frontier = nxt
    root.grad = 1.0
    for key in sorted(by_id, key=depth.get):
        by_id[key]._backward()
''',
    },
}
ASSIGNMENT = {"dense_backward": "dense_backward", "softmax_cross_entropy": "dense_backward",
              "lstm_step_backward": "lstm_backward", "discounted_returns": "policy_gradient",
              "backward": "chain_rule"}


# -- every solution here is correct ---------------------------------------------------------------------------
def load(source, fn_name):
    ns = {"np": np}
    exec(compile(source, "<submission>", "exec"), ns)
    return ns[fn_name]


def _close(got, want):
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(np.asarray(g, dtype=float), np.asarray(w, dtype=float), rtol=1e-9, atol=1e-12)


def _check_dense(fn, rng):
    dout, x, W = rng.standard_normal((4, 5)), rng.standard_normal((4, 3)), rng.standard_normal((3, 5))
    _close(fn(dout, x, W), layers.dense_backward(dout, x, W))


def _check_softmax(fn, rng):
    logits, labels = rng.standard_normal((6, 4)) * 3, rng.integers(0, 4, 6)
    _close(fn(logits, labels), losses.softmax_cross_entropy(logits, labels))


def _check_lstm(fn, rng):
    N, D, H = 3, 4, 5
    x, h0, c0 = rng.standard_normal((N, D)), rng.standard_normal((N, H)), rng.standard_normal((N, H))
    Wx, Wh, b = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    _, _, cache = layers.lstm_step_forward(x, h0, c0, Wx, Wh, b)
    dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    _close(fn(dh, dc, cache, Wx), layers.lstm_step_backward(dh, dc, cache, Wx))


def _returns_by_definition(rewards, dones, gamma):
    """G_t = sum over k from t to the end of t's episode (the first k >= t with dones[k]) of gamma^(k-t) r_k."""
    out = []
    for t in range(len(rewards)):
        end = next((k for k in range(t, len(rewards)) if dones[k]), len(rewards) - 1)
        out.append(sum(gamma ** (k - t) * rewards[k] for k in range(t, end + 1)))
    return np.array(out)


def _check_returns(fn, rng):
    for last_done in (True, False):
        rewards, dones = rng.standard_normal(9), rng.random(9) < 0.3
        dones[-1] = last_done
        _close(fn(rewards, dones, 0.9), _returns_by_definition(rewards, dones, 0.9))


def _graph(a, b, c):
    """A graph with shared nodes and a node used twice by one operation."""
    ab = a * b
    return ((ab + b.tanh()) * a + (c * c).exp() * ab - (a ** 2).sigmoid()).relu() + ab.log()


def _check_backward(fn, rng):
    data = rng.uniform(0.5, 1.5, 3)
    mine, ref = [Value(v) for v in data], [Value(v) for v in data]
    fn(_graph(*mine))
    _graph(*ref).backward()
    _close(tuple(v.grad for v in mine), tuple(v.grad for v in ref))


CHECK = {"dense_backward": _check_dense, "softmax_cross_entropy": _check_softmax,
         "lstm_step_backward": _check_lstm, "discounted_returns": _check_returns, "backward": _check_backward}
VARIANTS = [(fn, name) for fn, variants in HONEST.items() for name in variants]


@pytest.mark.parametrize("fn_name, variant", VARIANTS)
def test_honest_variants_are_correct_and_comparable(fn_name, variant):
    CHECK[fn_name](load(HONEST[fn_name][variant], fn_name), np.random.default_rng(0))
    assert S.comparable(S.normalise(HONEST[fn_name][variant], fn_name))


# -- the copier -----------------------------------------------------------------------------------------------
WORDS = ["tmp", "val", "arr", "res", "q", "z", "acc", "buf", "thing", "my_var", "foo", "grad_", "out_"]


def _reads_writes(s):
    reads = {n.id for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    writes = {n.id for n in ast.walk(s) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return reads, writes


def _movable(s):
    """A one-line assignment to plain names whose value mutates nothing."""
    if not (isinstance(s, ast.Assign) and s.lineno == s.end_lineno):
        return False
    if not all(isinstance(n, (ast.Name, ast.Tuple, ast.Store, ast.Load)) for t in s.targets for n in ast.walk(t)):
        return False
    return not any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                   and n.func.attr in ("pop", "append", "add", "update", "extend") for n in ast.walk(s.value))


def swap_independent(source, rng, swaps=6):
    """Swap adjacent one-line assignments that neither read nor write each other's names (the copier's
    own, simpler notion of independence: the module under test is not used)."""
    for _ in range(swaps):
        tree = ast.parse(source)
        pairs = []
        for node in ast.walk(tree):
            for field in ("body", "orelse"):
                block = getattr(node, field, None)
                if not isinstance(block, list):
                    continue
                for a, b in zip(block, block[1:]):
                    if _movable(a) and _movable(b):
                        (ra, wa), (rb, wb) = _reads_writes(a), _reads_writes(b)
                        if not (wa & (rb | wb) or ra & wb):
                            pairs.append((a.lineno, b.lineno))
        if not pairs:
            break
        i, j = rng.choice(pairs)
        lines = source.splitlines()
        lines[i - 1], lines[j - 1] = lines[j - 1], lines[i - 1]
        source = "\n".join(lines) + "\n"
    return source


def rename_locals(source, fn_name, rng):
    """Every name the function binds (arguments too) gets a fresh name; the function keeps its own."""
    tree = ast.parse(source)
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == fn_name)
    local = {n.arg for n in ast.walk(fn) if isinstance(n, ast.arg)}
    local |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local |= {n.name for n in ast.walk(fn) if isinstance(n, ast.FunctionDef) and n is not fn}
    taken = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {fn_name, "np"}
    new = {}
    for name in sorted(local):
        while name not in new or new[name] in taken or keyword.iskeyword(new[name]):
            new[name] = f"{rng.choice(WORDS)}{rng.randrange(100)}"
        taken.add(new[name])
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and n.id in new:
            n.id = new[n.id]
        elif isinstance(n, ast.arg):
            n.arg = new[n.arg]
        elif isinstance(n, ast.FunctionDef) and n is not fn:
            n.name = new[n.name]
    return ast.unparse(tree), new


def restyle(source, rng):
    """Another docstring, comments, blank lines and spacing: everything the parser throws away."""
    tree = ast.parse(source)
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        if ast.get_docstring(fn) is not None:
            fn.body = fn.body[1:]
        if rng.random() < 0.7:
            fn.body.insert(0, ast.Expr(ast.Constant(f"My own work, honest ({rng.randrange(1000)}).")))
    toks = [(t.type, t.string) for t in tokenize.generate_tokens(io.StringIO(ast.unparse(tree)).readline)]
    respaced = tokenize.untokenize(toks)                # compat mode: a space after most tokens
    out = []
    for line in respaced.splitlines():
        indent = line[:len(line) - len(line.lstrip())]
        if rng.random() < 0.3:
            out.append("")
        if rng.random() < 0.3 and line.strip():
            out.append(f"{indent}# step {rng.randrange(100)}: see lecture")
        out.append(line + (f"   # {rng.choice(WORDS)}" if rng.random() < 0.3 and line.strip() else ""))
    return "\n".join(out) + "\n"


def disguise(source, fn_name, seed):
    rng = random.Random(seed)
    source = swap_independent(textwrap.dedent(source), rng)
    source, _ = rename_locals(source, fn_name, rng)
    return restyle(source, rng)


# -- the generated class: honest pairs apart, copies together -----------------------------------------------------
SEEDS = range(4)


def measure():
    """Scores of every honest distinct pair, every disguised copy against its original, every honest
    variant against the course's references, and of the references' disguised copies."""
    honest, copies, vs_reference, reference_copies = {}, {}, {}, {}
    for fn_name, variants in HONEST.items():
        refs = S.reference_sources(fn_name, ASSIGNMENT[fn_name])
        for (a, sa), (b, sb) in itertools.combinations(variants.items(), 2):
            honest[(fn_name, a, b)] = S.similarity(sa, sb, fn_name)
        for name, src in variants.items():
            for seed in SEEDS:
                copies[(fn_name, name, seed)] = S.similarity(src, disguise(src, fn_name, seed), fn_name)
            for ref, ref_src in refs.items():
                score = S._score(S.normalise(src, fn_name), S.normalise(ref_src))
                if score is not None:
                    vs_reference[(fn_name, name, ref)] = score
        for ref, ref_src in refs.items():
            own = S.normalise(ref_src)
            if S.comparable(own):
                copy_src = _as_graded(ref_src, fn_name)
                reference_copies[(fn_name, ref)] = S._score(own, S.normalise(disguise(copy_src, fn_name, 0), fn_name))
    return honest, copies, vs_reference, reference_copies


def _as_graded(ref_src, fn_name):
    """The reference's source with its def renamed to the graded function (a method's too)."""
    tree = ast.parse(textwrap.dedent(ref_src))
    tree.body[0].name = fn_name
    return ast.unparse(tree)


@pytest.fixture(scope="module")
def measured():
    return measure()


def test_honest_distinct_solutions_are_not_flagged(measured):
    honest = measured[0]
    assert all(score is not None for score in honest.values())
    worst = max(honest, key=honest.get)
    print(f"\nhighest honest distinct pair: {honest[worst]:.3f} {worst}")
    assert honest[worst] < S.THRESHOLD, worst


def test_disguised_copies_score_one(measured):
    copies = measured[1]
    worst = min(copies, key=copies.get)
    print(f"\nlowest disguised copy: {copies[worst]:.3f} {worst}")
    assert copies[worst] == 1.0, worst


@pytest.mark.parametrize("fn_name, variant", VARIANTS)
def test_disguised_copies_still_compute_the_same(fn_name, variant):
    for seed in SEEDS:
        copy = disguise(HONEST[fn_name][variant], fn_name, seed)
        assert copy.count("#") >= 1 and copy != HONEST[fn_name][variant]
        CHECK[fn_name](load(copy, fn_name), np.random.default_rng(seed))


def test_honest_variants_are_not_flagged_against_the_references(measured):
    vs_reference = measured[2]
    worst = max(vs_reference, key=vs_reference.get)
    print(f"\nhighest honest variant against a reference: {vs_reference[worst]:.3f} {worst}")
    assert vs_reference[worst] < S.THRESHOLD, worst


def test_disguised_copies_of_the_references_score_one(measured):
    reference_copies = measured[3]
    assert {ref for _, ref in reference_copies} >= {
        "bplib.losses.softmax_cross_entropy", "bplib.layers.lstm_step_backward", "bplib.autodiff.Value.backward",
        "solutions/dense_backward", "solutions/lstm_backward", "solutions/policy_gradient", "solutions/chain_rule"}
    assert all(score == 1.0 for score in reference_copies.values()), reference_copies


def test_find_similar_names_the_copiers_and_their_sources():
    fn_name = "softmax_cross_entropy"
    refs = S.reference_sources(fn_name, "dense_backward")
    functions = {f"honest_{name}": src for name, src in HONEST[fn_name].items()}
    functions["copier_a"] = disguise(HONEST[fn_name]["row_loop"], fn_name, 1)
    functions["copier_b"] = disguise(HONEST[fn_name]["row_loop"], fn_name, 2)       # a chain of three
    functions["lib_copier"] = (inspect.getsource(losses._check_logits) + "\n\n"       # the helper comes along
                               + disguise(_as_graded(refs["bplib.losses.softmax_cross_entropy"], fn_name), fn_name, 3))
    functions["key_copier"] = disguise(refs["solutions/dense_backward"], fn_name, 4)
    functions["one_liner"] = "def softmax_cross_entropy(logits, labels):\n    return 0.0, logits\n"
    functions["broken"] = "def softmax_cross_entropy(logits, labels)\n    return"
    CHECK[fn_name](load(functions["lib_copier"], fn_name), np.random.default_rng(0))

    flags = S.find_similar(functions, refs, fn_name)
    parties = {who: {other for other, _ in found} for who, found in flags.items()}
    assert parties == {
        "honest_onehot": set(), "honest_logsumexp": set(), "honest_helper": set(),
        "honest_row_loop": {"copier_a", "copier_b"},
        "copier_a": {"honest_row_loop", "copier_b"}, "copier_b": {"honest_row_loop", "copier_a"},
        "lib_copier": {"reference:bplib.losses.softmax_cross_entropy"},
        "key_copier": {"reference:solutions/dense_backward"},
        "one_liner": set(), "broken": set()}
    assert all(score == 1.0 for found in flags.values() for _, score in found)
    assert dict(flags["copier_a"]) == {"honest_row_loop": 1.0, "copier_b": 1.0}
    assert S.similarity(functions["one_liner"], functions["one_liner"], fn_name) is S.NOT_COMPARABLE


def test_flags_are_sorted_by_score_and_reported_on_both_sides():
    fn_name = "discounted_returns"
    base = HONEST[fn_name]["episodes"]
    edited = base.replace("start = end", "start = end + 0")     # a copy with a small edit
    flags = S.find_similar({"a": base, "b": disguise(base, fn_name, 0), "c": edited}, {}, fn_name, threshold=0.8)
    assert [p for p, _ in flags["a"]] == ["b", "c"] and flags["a"][0][1] == 1.0 > flags["a"][1][1] >= 0.8
    assert dict(flags["c"])["a"] == dict(flags["a"])["c"]


# -- normalise: the parts -----------------------------------------------------------------------------------------
def test_normalise_renames_reorders_and_drops_what_carries_no_logic():
    a = '''
import numpy as xp
def f(x, W):
    """doc"""
    unused = 3           # never read: dropped
    h = xp.tanh(x @ W)   # numpy under another name
    s = x.sum(axis=0)
    pass
    return h, s
    print("unreachable")
'''
    b = '''
def f(inp, weights):
    total = inp.sum(axis=0)
    act = np.tanh(inp @ weights)
    return (act, total)
'''
    assert S.normalise(a, "f") == S.normalise(b, "f") == [
        "v2 = numpy.tanh(v0 @ v1)", "v3 = v0.sum(axis=0)", "return (v2, v3)"]


def test_normalise_equivalent_assignment_forms_are_one():
    a = "def f(x, y):\n    a, b = x * 2, y + 1\n    a += b\n    c: float = a * b\n    return c\n"
    b = "def f(x, y):\n    b = 1 + y\n    a = 2 * x\n    a = a + b\n    c = b * a\n    return c\n"
    assert S.normalise(a, "f") == S.normalise(b, "f")
    swap = "def f(x, y):\n    x, y = y, x\n    return x - y\n"         # a real swap is not split
    assert S.normalise(swap, "f") == ["v0, v1 = (v1, v0)", "return v0 - v1"]


def test_normalise_resolves_module_aliases_inside_the_function():
    a = "def f(x):\n    import numpy as xp\n    from numpy import tanh as th\n    return xp.exp(x) + th(x)\n"
    assert S.normalise(a, "f") == ["return numpy.exp(v0) + numpy.tanh(v0)"]
    assert S.normalise(a, "f") == S.normalise("def f(y):\n    return np.tanh(y) + np.exp(y)\n", "f")


def test_normalise_keeps_dependent_order_and_library_names():
    a = "def f(x):\n    y = x.T\n    y = y @ x\n    return np.linalg.norm(y)\n"
    b = "def f(x):\n    y = x.T\n    y = x @ y\n    return np.linalg.norm(y)\n"
    assert S.normalise(a, "f") == ["v1 = v0.T", "v1 = v1 @ v0", "return numpy.linalg.norm(v1)"]
    assert S.normalise(a, "f") != S.normalise(b, "f")       # @ is not commutative
    assert S.normalise(a.replace("norm", "det"), "f") != S.normalise(a, "f")


def test_normalise_picks_the_function_from_a_cell():
    cell = ("%matplotlib inline\nimport numpy as np\ndef g(x):\n    return x\n\n"
            "def f(x):\n    return x + 1\nprint(f(2))\n")
    assert S.normalise(cell, "f") == ["return 1 + v0"]          # + operands sorted
    assert S.normalise(cell, "missing") == []
    assert S.normalise("def f(x):\n    return -x\n") == ["return -v0"]          # the only function
    assert S.normalise("x = 1\ny = x + 1\n") == ["v0 = 1", "v1 = 1 + v0"]        # no function: the module
    assert S.normalise("def f(:", "f") == [] and S.normalise("", "f") == []


def test_reference_sources():
    refs = S.reference_sources("dense_backward", "dense_backward")
    assert set(refs) == {"bplib.layers.dense_backward", "solutions/dense_backward"}
    assert "### BEGIN SOLUTION" not in refs["solutions/dense_backward"]
    assert refs["solutions/dense_backward"].startswith("def dense_backward(")
    assert set(S.reference_sources("discounted_returns", "policy_gradient")) == {
        "bplib.cases.pong.discount_rewards", "solutions/policy_gradient"}
    assert set(S.reference_sources("policy_gradient_loss")) == {"bplib.cases.pong.policy_gradient"}
    assert set(S.reference_sources("backward", "chain_rule")) == {"bplib.autodiff.Value.backward",
                                                                   "solutions/chain_rule"}
    for fn in ("batchnorm_backward", "layernorm_backward", "dropout_backward"):
        assert set(S.reference_sources(fn, "normalization_backward")) == {
            f"bplib.layers.{fn}", "solutions/normalization_backward"}
    assert set(S.reference_sources("softmax_backward", "attention_backward")) == {
        "bplib.layers.softmax_backward", "solutions/attention_backward"}
    assert set(S.reference_sources("attention_backward", "attention_backward")) == {
        "bplib.layers.attention_backward", "bplib.layers._attention_fast_backward", "solutions/attention_backward"}
    assert set(S.reference_sources("mha_projections_backward", "attention_backward")) == {
        "bplib.layers.MultiHeadSelfAttention.backward", "solutions/attention_backward"}
    assert set(S.reference_sources("backward_by_hand", "backprop_ninja")) == {
        "bplib.tensor.Tensor.backward", "solutions/backprop_ninja"}
    assert set(S.reference_sources("cross_entropy_backward", "backprop_ninja")) == {
        "bplib.losses.softmax_cross_entropy", "solutions/backprop_ninja"}
    assert set(S.reference_sources("batchnorm_backward_fused", "backprop_ninja")) == {
        "bplib.layers.batchnorm_backward", "solutions/backprop_ninja"}
    assert S.reference_sources("no_such_function", "no_such_assignment") == {}


# -- properties -------------------------------------------------------------------------------------------------
ALL_SOURCES = [src for variants in HONEST.values() for src in variants.values()]


@settings(max_examples=40)
@given(st.sampled_from(VARIANTS), st.integers(0, 10 ** 6))
def test_property_any_disguise_scores_one(case, seed):
    fn_name, variant = case
    source = HONEST[fn_name][variant]
    assert S.similarity(source, disguise(source, fn_name, seed), fn_name) == 1.0


@settings(max_examples=40)
@given(st.sampled_from(VARIANTS), st.sampled_from(VARIANTS))
def test_property_score_is_symmetric_and_in_range(a, b):
    sa, sb = HONEST[a[0]][a[1]], HONEST[b[0]][b[1]]
    score = S.similarity(sa, sb)
    assert score == S.similarity(sb, sa) and 0.0 <= score <= 1.0
    assert (score == 1.0) == (a == b)


@settings(max_examples=100)
@given(st.sampled_from(ALL_SOURCES), st.integers(0, 2000), st.integers(0, 40), st.text(max_size=8))
def test_property_normalise_never_raises(source, at, length, junk):
    mangled = source[:at] + junk + source[at + length:]
    for fn_name in (None, "dense_backward", "backward"):
        lines = S._normalise(mangled, fn_name)         # the unguarded version: only parse errors give []
        assert isinstance(lines, list) and all(isinstance(ln, str) for ln in lines)
        assert S.normalise(mangled, fn_name) == lines


# -- the limits, measured -------------------------------------------------------------------------------------------
BASE = '''
def lstm_step_backward(dh, dc, cache, Wx):
    """The instructor solution (a fixed copy: the notebook may change)."""
    i, f, o, g, tanh_c = cache["i"], cache["f"], cache["o"], cache["g"], cache["tanh_c"]
    dc_total = dc + dh * o * (1 - tanh_c ** 2)        # c -> loss directly, and through h = o tanh(c)
    di = dc_total * g
    df = dc_total * cache["c_prev"]
    do = dh * tanh_c
    dg = dc_total * i
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g ** 2)], axis=1)
    dx = da @ Wx.T
    dh_prev = da @ cache["Wh"].T
    dc_prev = dc_total * f
    dWx = cache["x"].T @ da
    dWh = cache["h_prev"].T @ da
    db = da.sum(axis=0)
    return dx, dh_prev, dc_prev, dWx, dWh, db
'''
EDITS = {   # one edit each, applied to the instructor solution of lstm_step_backward: (old, new) replacements
    "dead assignment (absorbed)": [("    db = da.sum", "    junk = da * 2\n    db = da.sum")],
    "tuple merge and commutative swaps (absorbed)": [
        ("dc_prev = dc_total * f", "dc_prev = f * dc_total"),
        ("    dx = da @ Wx.T\n    dh_prev = da @ cache[\"Wh\"].T\n",
         "    dh_prev, dx = da @ cache[\"Wh\"].T, da @ Wx.T\n")],
    "early extra variable": [("    i, f,", "    one = 1.0\n    i, f,"), ("dx = da @ Wx.T", "dx = da @ Wx.T * one")],
    "live no-op (dx = dx + 0)": [("    dWx = cache", "    dx = dx + 0\n    dWx = cache")],
    "dead branch (if False: ...)": [("    dWx = cache", "    if False:\n        dx = None\n    dWx = cache")],
    "split an expression": [("do = dh * tanh_c", "tmp = dh\n    do = tmp * tanh_c")],
    "inline a temporary": [("    dx = da @ Wx.T\n", ""), ("return dx,", "return da @ Wx.T,")],
    "other API (np.sum for .sum)": [("db = da.sum(axis=0)", "db = np.sum(da, axis=0)")],
}
MORE_EDITS = [("(1 - tanh_c ** 2)", "(1 - np.square(tanh_c))"), ("dg = dc_total * i", "dg = i * dc_total * 1.0"),
              ("dh_prev = da @ cache[\"Wh\"].T", "dh_prev = np.dot(da, cache[\"Wh\"].T)")]


def _edit(source, edits):
    for old, new in edits:
        assert old in source, old
        source = source.replace(old, new)
    return source


FIVE = [e for name in ("early extra variable", "live no-op (dx = dx + 0)", "split an expression",
                       "other API (np.sum for .sum)") for e in EDITS[name]]
EVASIONS = {**{name: _edit(BASE, edits) for name, edits in EDITS.items()},
            "five of those edits at once": _edit(BASE, FIVE),
            "eight edits at once": _edit(BASE, FIVE + MORE_EDITS)}


def evasion_scores():
    return {name: S.similarity(BASE, src, "lstm_step_backward") for name, src in EVASIONS.items()}


def test_limits_what_normalising_absorbs_and_what_it_does_not():
    scores = evasion_scores()
    for name, src in EVASIONS.items():
        CHECK["lstm_step_backward"](load(src, "lstm_step_backward"), np.random.default_rng(0))
    print("\n" + "\n".join(f"{s:.3f}  {name}" for name, s in scores.items()))
    assert scores["dead assignment (absorbed)"] == scores["tuple merge and commutative swaps (absorbed)"] == 1.0
    singles = [s for name, s in scores.items() if name in EDITS and "absorbed" not in name]
    assert all(S.THRESHOLD <= s < 1.0 for s in singles)        # any one edit costs little: still flagged
    assert scores["eight edits at once"] < scores["five of those edits at once"] < 1.0   # edits add up


if __name__ == "__main__":
    honest, copies, vs_reference, reference_copies = measure()
    print(f"threshold {S.THRESHOLD}")
    print(f"honest distinct pairs: {len(honest)}, highest {max(honest.values()):.3f} "
          f"({max(honest, key=honest.get)})")
    for fn_name in HONEST:
        mine = [s for k, s in honest.items() if k[0] == fn_name]
        print(f"  {fn_name:24s} {min(mine):.3f} .. {max(mine):.3f}")
    print(f"disguised copies: {len(copies)}, lowest {min(copies.values()):.3f}")
    print(f"honest variants against references: highest {max(vs_reference.values()):.3f} "
          f"({max(vs_reference, key=vs_reference.get)})")
    print("disguised copies of the references:", {k: round(v, 3) for k, v in reference_copies.items()})
    canonical = {fn: S._score(S.normalise(src, fn), S.normalise(S.reference_sources(fn, ASSIGNMENT[fn])[
        f"solutions/{ASSIGNMENT[fn]}"])) for fn, src in [
        ("discounted_returns", HONEST["discounted_returns"]["conditional"])]}
    print("an honest near-canonical variant against the instructor solution:", canonical)
    print("evasions of the lstm_step_backward solution:")
    for name, s in evasion_scores().items():
        print(f"  {s:.3f}  {name}")


# -- in make grade: a generated class, flags in the status and in grades.csv --------------------------
def test_make_grade_flags_copies_not_honest_variants(tmp_path):
    """A class of honest variants written differently, a learner who copied bplib's source renamed, and two
    learners who share one disguised solution: only the copies are flagged, naming the other party."""
    import csv
    import inspect
    import nbformat
    from bplib import losses
    from pathlib import Path
    from grading import cli, report
    ROOT = Path(__file__).resolve().parents[1]
    fn = "softmax_cross_entropy"
    honest = HONEST[fn]
    results = {f"honest_{k}": {"sources": {fn: src}} for k, src in honest.items()}
    ref = inspect.getsource(losses.softmax_cross_entropy)
    results["copier"] = {"sources": {fn: ref.replace("logits", "scores").replace("labels", "ys")}}
    shared = next(iter(honest.values()))
    results["pair_a"] = {"sources": {fn: shared}}
    results["pair_b"] = {"sources": {fn: "# my own work\n" + shared.replace("    ", "        ")}}
    rows = {sid: {"student": sid, "score": 1.0, "max_score": 1.0, "flags": [], "notes": [], "cells": {}}
            for sid in results}
    cli.flag_similar("dense_backward", rows, results, str(ROOT / "solutions"))
    flagged = {sid for sid, r in rows.items() if r.get("similarity")}
    assert "copier" in flagged and {"pair_a", "pair_b"} <= flagged
    assert "reference:" in "; ".join(rows["copier"]["similarity"])
    assert "pair_b" in "; ".join(rows["pair_a"]["similarity"]) and "pair_a" in "; ".join(rows["pair_b"]["similarity"])
    honest_flagged = {sid for sid in flagged if sid.startswith("honest_")} - {"honest_" + next(iter(honest))}
    assert not honest_flagged, {sid: rows[sid]["similarity"] for sid in honest_flagged}
    release = nbformat.v4.new_notebook()
    path = report.write_csv(str(tmp_path / "grades.csv"), rows, release)
    with open(path) as f:
        table = {r["student"]: r for r in csv.DictReader(f)}
    assert "similarity" in table["copier"] and table["copier"]["similarity"].startswith(f"{fn} ~ reference:")
    assert "similar code" in table["copier"]["status"]
    assert table["honest_" + list(honest)[-1]]["similarity"] == ""
