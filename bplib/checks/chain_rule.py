"""Checks for the chain_rule assignment: local derivatives and the backward pass.

Learner functions (elementwise, so they work on floats and on numpy arrays):
    mul_backward(a, b, dout) -> (da, db)      out = a * b
    pow_backward(a, k, dout) -> da            out = a ** k   (k a plain number)
    exp_backward(out, dout) -> da             out = exp(a)
    tanh_backward(out, dout) -> da            out = tanh(a)
    backward(root)                            sets node.grad = droot/dnode on every node of a Value graph
"""
import numpy as np

from ..autodiff import Value
from .core import Check

A = "chain_rule"


def _arr(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, shape)


# -- mul ----------------------------------------------------------------------
def _mul_cases_visible(rng):
    return [dict(name="a=2, b=-3, dout=1", a=2.0, b=-3.0, dout=1.0),
            dict(name="a=2, b=-3, dout=0.5", a=2.0, b=-3.0, dout=0.5),
            dict(name="arrays of shape (3,)", a=np.array([1.0, -2.0, 0.5]), b=np.array([4.0, 3.0, -1.0]),
                 dout=np.array([1.0, 2.0, -1.0]))]


def _mul_cases_hidden(rng):
    cases = []
    for shape in [(7,), (4, 5), (1,), (2, 3, 4)]:
        cases.append(dict(name=f"random arrays of shape {shape}", a=_arr(rng, shape), b=_arr(rng, shape),
                          dout=_arr(rng, shape)))
    cases.append(dict(name="a = b (the same number twice)", a=np.full(3, 1.5), b=np.full(3, 1.5), dout=np.ones(3)))
    return cases


_mul_ref = lambda c: {"da": c["b"] * c["dout"], "db": c["a"] * c["dout"]}   # noqa: E731
_mul_mistakes = [
    ("da and db are swapped: d(a*b)/da is b (the OTHER input), so da = b * dout.",
     lambda c: {"da": c["a"] * c["dout"], "db": c["b"] * c["dout"]}),
    ("The chain rule's factor dout is missing: multiply the local derivative by dout.",
     lambda c: {"da": c["b"] * np.ones_like(np.asarray(c["dout"])), "db": c["a"] * np.ones_like(np.asarray(c["dout"]))}),
]


def _call_mul(fn, c):
    return fn(c["a"], c["b"], c["dout"])


# -- pow ----------------------------------------------------------------------
def _pow_cases_visible(rng):
    return [dict(name="a=3, k=2, dout=1", a=3.0, k=2, dout=1.0),
            dict(name="a=2, k=3, dout=0.5", a=2.0, k=3, dout=0.5),
            dict(name="a=4, k=-1, dout=1", a=4.0, k=-1, dout=1.0)]


def _pow_cases_hidden(rng):
    cases = []
    for k, shape in [(2, (6,)), (0.5, (3, 4)), (-2, (5,)), (1, (4,)), (3.5, (2, 2))]:
        cases.append(dict(name=f"k={k}, arrays of shape {shape}", a=_arr(rng, shape, 0.5, 3.0), k=k,
                          dout=_arr(rng, shape)))
    return cases


_pow_ref = lambda c: {"da": c["k"] * c["a"] ** (c["k"] - 1) * c["dout"]}   # noqa: E731
_pow_mistakes = [
    ("The exponent must drop by one: d(a^k)/da = k * a**(k - 1), not k * a**k.",
     lambda c: {"da": c["k"] * c["a"] ** c["k"] * c["dout"]}),
    ("The factor k in front is missing: d(a^k)/da = k * a**(k - 1).",
     lambda c: {"da": c["a"] ** (c["k"] - 1) * c["dout"]}),
    ("The chain rule's factor dout is missing: multiply the local derivative by dout.",
     lambda c: {"da": c["k"] * c["a"] ** (c["k"] - 1) * np.ones_like(np.asarray(c["dout"]))}),
]


def _call_pow(fn, c):
    return fn(c["a"], c["k"], c["dout"])


# -- exp and tanh ----------------------------------------------------------------
def _unary_cases(fwd, low, high):
    def visible(rng):
        a = np.array([-1.0, 0.0, 0.5, 2.0])
        return [dict(name="a=0 (out=1), dout=1", out=float(fwd(0.0)), dout=1.0),
                dict(name="a=1, dout=2", out=float(fwd(1.0)), dout=2.0),
                dict(name="arrays of shape (4,)", out=fwd(a), dout=np.array([1.0, -1.0, 0.5, 2.0]))]

    def hidden(rng):
        cases = []
        for shape in [(9,), (3, 5), (1,), (2, 2, 3)]:
            cases.append(dict(name=f"random arrays of shape {shape}", out=fwd(_arr(rng, shape, low, high)),
                              dout=_arr(rng, shape)))
        return cases
    return visible, hidden


_exp_visible, _exp_hidden = _unary_cases(np.exp, -3, 3)
_tanh_visible, _tanh_hidden = _unary_cases(np.tanh, -3, 3)
_exp_ref = lambda c: {"da": c["out"] * c["dout"]}                             # noqa: E731
_tanh_ref = lambda c: {"da": (1 - c["out"] ** 2) * c["dout"]}                  # noqa: E731
_ones = lambda c: np.ones_like(np.asarray(c["dout"]))                          # noqa: E731
_exp_mistakes = [
    ("d(e^a)/da is e^a itself, which is `out`: da = out * dout.", lambda c: {"da": c["dout"] * _ones(c)}),
    ("The chain rule's factor dout is missing: da = out * dout.", lambda c: {"da": c["out"] * _ones(c)}),
    ("`out` is already e^a: do not apply exp again.", lambda c: {"da": np.exp(c["out"]) * c["dout"]}),
]
_tanh_mistakes = [
    ("tanh'(a) is 1 - tanh(a)**2 (squared!): you wrote 1 - tanh.", lambda c: {"da": (1 - c["out"]) * c["dout"]}),
    ("`out` is already tanh(a): use 1 - out**2, do not apply tanh again.",
     lambda c: {"da": (1 - np.tanh(c["out"]) ** 2) * c["dout"]}),
    ("The chain rule's factor dout is missing: da = (1 - out**2) * dout.", lambda c: {"da": (1 - c["out"] ** 2) * _ones(c)}),
    ("Right magnitude, wrong sign: tanh'(a) = 1 - out**2, not out**2 - 1.",
     lambda c: {"da": (c["out"] ** 2 - 1) * c["dout"]}),
]


def _call_unary(fn, c):
    return fn(c["out"], c["dout"])


# -- the backward pass over a Value graph -----------------------------------------------
# A graph is a little program: a list of ops; node i is the result of op i.
#   ("leaf", x) | ("add", i, j) | ("mul", i, j) | ("tanh", i) | ("exp", i) | ("pow", i, k)
def build_graph(program):
    """Build the Value graph of ``program``; returns the list of nodes (the last is the root)."""
    nodes = []
    for op in program:
        kind = op[0]
        if kind == "leaf":
            v = Value(op[1], label=f"v{len(nodes)}")
        elif kind == "add":
            v = nodes[op[1]] + nodes[op[2]]
        elif kind == "mul":
            v = nodes[op[1]] * nodes[op[2]]
        elif kind == "tanh":
            v = nodes[op[1]].tanh()
        elif kind == "exp":
            v = nodes[op[1]].exp()
        elif kind == "pow":
            v = nodes[op[1]] ** op[2]
        else:
            raise ValueError(f"unknown op {kind}")
        nodes.append(v)
    return nodes


def _neuron():
    # L = tanh(x1 w1 + x2 w2 + b)   (the chapter's neuron)
    return [("leaf", 2.0), ("leaf", -3.0), ("leaf", 0.0), ("leaf", 1.0), ("leaf", 6.8813735870195432),
            ("mul", 0, 1), ("mul", 2, 3), ("add", 5, 6), ("add", 7, 4), ("tanh", 8)]


def _random_program(rng, n_leaves, n_ops):
    prog = [("leaf", float(np.round(rng.uniform(-1.5, 1.5), 3))) for _ in range(n_leaves)]
    for _ in range(n_ops):
        n = len(prog)
        i, j = (int(t) for t in rng.integers(0, n, 2))
        i = max(i, n - 4) if rng.random() < 0.6 else i      # mostly build on recent nodes: deep graphs
        kind = rng.choice(["add", "mul", "mul", "tanh", "exp", "pow"])
        if kind in ("add", "mul"):
            prog.append((str(kind), i, j))
        elif kind == "pow":
            prog.append(("pow", i, 2))
        elif kind == "exp":
            prog.append(("tanh", i))
            prog.append(("exp", len(prog) - 1))          # exp of a tanh: never overflows
        else:
            prog.append(("tanh", i))
    prog.append(("tanh", len(prog) - 1))
    return prog


def _backward_cases_visible(rng):
    return [dict(name="a*b + c: every node used once", program=[("leaf", 2.0), ("leaf", -3.0), ("leaf", 10.0),
                                                               ("mul", 0, 1), ("add", 3, 2)]),
            dict(name="a*a: one node used twice", program=[("leaf", 3.0), ("mul", 0, 0)]),
            dict(name="the tanh neuron of the chapter", program=_neuron())]


def _backward_cases_hidden(rng):
    diamond = [("leaf", 0.7), ("tanh", 0), ("exp", 0), ("mul", 1, 2), ("add", 3, 1), ("mul", 4, 2)]
    chain = [("leaf", 0.3)] + [("tanh", i) if i % 2 else ("add", i, 0) for i in range(150)]
    cases = [dict(name="a diamond: paths that split and join", program=diamond),
             dict(name="a single leaf (the root is the input)", program=[("leaf", 1.25)]),
             dict(name="a deep chain of 151 nodes reusing the input", program=chain)]
    for n in (12, 40):
        cases.append(dict(name=f"a random graph of {n} operations", program=_random_program(rng, 4, n)))
    return cases


def _grads(nodes):
    return {"grad": np.array([v.grad for v in nodes])}


def _backward_ref(c):
    nodes = build_graph(c["program"])
    nodes[-1].backward()
    reachable = {id(v) for v in nodes[-1].topological_order()}    # a random graph may have dead ends
    return {**_grads(nodes), "calls": np.array([float(id(v) in reachable) for v in nodes])}


def _call_backward(fn, c):
    nodes = build_graph(c["program"])
    calls = np.zeros(len(nodes))
    for i, v in enumerate(nodes):          # count how often each node's _backward runs
        def counted(i=i, inner=v._backward):
            calls[i] += 1
            inner()
        v._backward = counted
    fn(nodes[-1])
    return np.array([v.grad for v in nodes]), calls


def _backward_diagnose(c, got, want):
    calls = got.get("calls")
    if calls is None or np.shape(calls) != np.shape(want["calls"]):
        return []
    hints = []
    if np.any(calls > 1):
        n = int(np.max(calls))
        hints.append(f"A node reached by two paths was processed twice (one _backward ran {n} times): keep a "
                     f"`visited` set so each node appears once in the topological order.")
    if np.any(calls == 0):
        hints.append("Some nodes' _backward never ran: the topological order must contain every node "
                     "of the graph (follow node._prev all the way to the leaves).")
    return hints


def _wrong_forward_order(c):
    nodes = build_graph(c["program"])
    nodes[-1].grad = 1.0
    for v in nodes[-1].topological_order():
        v._backward()
    return _grads(nodes)


_backward_mistakes = [
    ("The gradients are propagated in the wrong order: call _backward from the root back to the "
     "leaves, i.e. over reversed(topological order), so a node's grad is complete before it is passed on.",
     _wrong_forward_order),
]


def _checks():
    spec = [
        ("mul_backward", ("da", "db"), _call_mul, _mul_ref, _mul_mistakes,
         _mul_cases_visible, _mul_cases_hidden, (1, 1)),
        ("pow_backward", ("da",), _call_pow, _pow_ref, _pow_mistakes, _pow_cases_visible, _pow_cases_hidden, (1, 1)),
        ("exp_backward", ("da",), _call_unary, _exp_ref, _exp_mistakes, _exp_visible, _exp_hidden, (1, 1)),
        ("tanh_backward", ("da",), _call_unary, _tanh_ref, _tanh_mistakes, _tanh_visible, _tanh_hidden, (1, 1)),
        ("backward", ("grad", "calls"), _call_backward, _backward_ref, _backward_mistakes,
         _backward_cases_visible, _backward_cases_hidden, (2, 3)),
    ]
    hints = {"mul_backward": "Each input gets dout times the OTHER input: (b * dout, a * dout).",
             "pow_backward": "The power rule times dout: k * a**(k - 1) * dout.",
             "exp_backward": "The derivative of exp is exp itself, already computed as `out`; times dout.",
             "tanh_backward": "Written with the output: (1 - out**2) * dout.",
             "backward": "Set root.grad = 1, then call node._backward() for every node from the root "
                         "back to the leaves (reversed topological order), each node once. "
                         "grad[i] is node i in the order the graph was built; the leaves come first; "
                         "calls[i] counts how often node i's _backward ran."}
    out = []
    for name, outputs, call, ref, mistakes, vis, hid, (pv, ph) in spec:
        diag = _backward_diagnose if name == "backward" else None
        out.append(Check(f"{name}_visible", A, pv, name, outputs, vis, call, ref, mistakes,
                         hint=hints.get(name, ""), diagnose=diag))
        out.append(Check(f"{name}_hidden", A, ph, name, outputs, hid, call, ref, mistakes,
                         hint=hints.get(name, ""), diagnose=diag))
    return out


CHECKS = _checks()
