"""Checks for the chain_rule assignment: local derivatives and the backward pass.

Learner functions (elementwise, so they work on floats and on numpy arrays):
    mul_backward(a, b, dout) -> (da, db)      out = a * b
    pow_backward(a, k, dout) -> da            out = a ** k   (k a plain number)
    exp_backward(out, dout) -> da             out = exp(a)
    tanh_backward(out, dout) -> da            out = tanh(a)
    backward(root)                            sets node.grad = droot/dnode on every node of a Value graph

A graph case is a little program, a list of ops; node i is the result of op i:
    ("leaf", x) | ("add", i, j) | ("mul", i, j) | ("tanh", i) | ("exp", i) | ("pow", i, k)
(``build_graph`` in calls/chain_rule.py turns it into Values). The program lists every node after
its inputs, so the reference here walks it backwards with plain floats: it needs neither
``Value.backward`` nor the Values' own closures.
"""
import math

import numpy as np

from .calls.chain_rule import CALLS
from .core import Ladder, Mistake, visible_and_hidden

A = "chain_rule"


def _ones(c):
    return np.ones_like(np.asarray(c["dout"], dtype=float))


# -- mul ----------------------------------------------------------------------
def _mul_visible(rng):
    return [dict(name="a=2, b=-3, dout=1", a=2.0, b=-3.0, dout=1.0),
            dict(name="a=2, b=-3, dout=0.5", a=2.0, b=-3.0, dout=0.5),
            dict(name="arrays of shape (3,)", a=np.array([1.0, -2.0, 0.5]), b=np.array([4.0, 3.0, -1.0]),
                 dout=np.array([1.0, 2.0, -1.0]))]


_mul_ref = lambda c: {"da": c["b"] * c["dout"], "db": c["a"] * c["dout"]}   # noqa: E731
_NO_DOUT = ("does not change when dout changes: the gradient arriving from above (dout) is not used, "
            "only the local slope.")
_NO_DOUT_CONCEPT = ("The chain rule for one node: the gradient of the loss with respect to an input is the "
                    "gradient arriving at the output times the local slope of the output with respect to "
                    "that input. The local slope alone is not yet a gradient of the loss.")
_mul_mistakes = [
    Mistake("da and db are swapped: each input received the share that belongs to the other one.",
            lambda c: {"da": c["a"] * c["dout"], "db": c["b"] * c["dout"]},
            concept="Hold b fixed and nudge a by a small h: a * b changes by h times something. That "
                    "something is the slope of out with respect to a; is it a or b?",
            rule="d(a * b)/da is the factor a is multiplied by, and d(a * b)/db is the factor b is multiplied by."),
    Mistake("da and db " + _NO_DOUT, lambda c: {"da": c["b"] * _ones(c), "db": c["a"] * _ones(c)},
            concept=_NO_DOUT_CONCEPT),
    Mistake("da and db both equal dout: that is how a sum passes its gradient on, not a product.",
            lambda c: {"da": c["dout"] * _ones(c), "db": c["dout"] * _ones(c)},
            concept="A sum a + b moves by h when a moves by h: its slope is 1. A product a * b does not: "
                    "how far it moves depends on the other input."),
]


# -- pow ----------------------------------------------------------------------
def _pow_visible(rng):
    return [dict(name="a=3, k=2, dout=1", a=3.0, k=2, dout=1.0),
            dict(name="a=2, k=3, dout=0.5", a=2.0, k=3, dout=0.5),
            dict(name="a=4, k=-1, dout=1", a=4.0, k=-1, dout=1.0)]


_pow_ref = lambda c: {"da": c["k"] * c["a"] ** (c["k"] - 1) * c["dout"]}   # noqa: E731
def _slope_in_k(c):
    with np.errstate(all="ignore"):
        return {"da": c["a"] ** c["k"] * np.log(c["a"]) * c["dout"]}


_pow_mistakes = [
    Mistake("da is a times too large at every element: the power of a is one too high.",
            lambda c: {"da": c["k"] * c["a"] ** c["k"] * c["dout"]},
            concept="Expand (a + h)^k for a small h: the term that is proportional to h has a LOWER power of "
                    "a than a^k. Try k = 2: (a + h)^2 = a^2 + 2ah + h^2."),
    Mistake("da is exactly k times too small: the factor that comes down from the exponent is missing.",
            lambda c: {"da": c["a"] ** (c["k"] - 1) * c["dout"]},
            concept="For k = 2: (a + h)^2 = a^2 + 2ah + h^2; the slope is the coefficient of h, 2a, and the 2 "
                    "is the exponent. The same holds for any k."),
    Mistake("da " + _NO_DOUT, lambda c: {"da": c["k"] * c["a"] ** (c["k"] - 1) * _ones(c)},
            concept=_NO_DOUT_CONCEPT),
    Mistake("da grows like log(a): that is the slope with respect to the exponent k. Here k is a constant "
            "and a is the variable.", _slope_in_k,
            concept="a ** k with k fixed is a power of a (like a^2, a^3), not an exponential in k (like 2^k)."),
]


# -- exp and tanh ----------------------------------------------------------------
def _unary_visible(fwd):
    def visible(rng):
        a = np.array([-1.0, 0.0, 0.5, 2.0])
        return [dict(name="a=0 (out=1), dout=1" if fwd is np.exp else "a=0 (out=0), dout=1",
                     out=float(fwd(0.0)), dout=1.0),
                dict(name="a=1, dout=2", out=float(fwd(1.0)), dout=2.0),
                dict(name="arrays of shape (4,)", out=fwd(a), dout=np.array([1.0, -1.0, 0.5, 2.0]))]
    return visible


_exp_visible = _unary_visible(np.exp)
_tanh_visible = _unary_visible(np.tanh)
_exp_ref = lambda c: {"da": c["out"] * c["dout"]}                             # noqa: E731
_tanh_ref = lambda c: {"da": (1 - c["out"] ** 2) * c["dout"]}                  # noqa: E731
_exp_mistakes = [
    Mistake("da equals dout: the local slope of exp was taken as 1, but exp gets steeper as a grows.",
            lambda c: {"da": c["dout"] * _ones(c)},
            concept="e^(a + h) = e^a * e^h, and e^h is about 1 + h for a small h. So how much does e^a grow "
                    "when a grows by h? Then look at which argument of exp_backward already holds that number."),
    Mistake("da " + _NO_DOUT, lambda c: {"da": c["out"] * _ones(c)}, concept=_NO_DOUT_CONCEPT),
    Mistake("da is far too large: out is already the exponential of a, and exp was applied to it a second time.",
            lambda c: {"da": np.exp(c["out"]) * c["dout"]},
            concept="exp_backward receives the forward OUTPUT, out = e^a, not the input a. Nothing needs to "
                    "be recomputed."),
    Mistake("da shrinks where out grows: that is the slope of log, the inverse of exp.",
            lambda c: {"da": c["dout"] / c["out"]},
            concept="exp grows faster the larger it already is: its slope rises with out, it does not fall."),
]
_tanh_mistakes = [
    Mistake("da would change if out changed sign: the slope of tanh is the same at a and at -a (tanh is "
            "odd, its slope even), and it is never above 1.",
            lambda c: {"da": (1 - c["out"]) * c["dout"]},
            concept="tanh is odd (tanh(-a) = -tanh(a)), so its slope is even: it can depend on out only "
                    "through something that does not change when out changes sign."),
    Mistake("out is already tanh(a): tanh was applied to it a second time.",
            lambda c: {"da": (1 - np.tanh(c["out"]) ** 2) * c["dout"]},
            concept="tanh_backward receives the forward OUTPUT, out = tanh(a), not the input a. Write the "
                    "slope with out itself."),
    Mistake("da " + _NO_DOUT, lambda c: {"da": (1 - c["out"] ** 2) * _ones(c)}, concept=_NO_DOUT_CONCEPT),
    Mistake("da has the wrong sign: tanh is increasing everywhere, so its slope is positive.",
            lambda c: {"da": (c["out"] ** 2 - 1) * c["dout"]},
            concept="tanh rises from -1 to 1: a bigger a always gives a bigger out, so the local slope is "
                    "positive and da has the sign of dout."),
]


# -- the backward pass over a Value graph -----------------------------------------------
def _neuron():
    # L = tanh(x1 w1 + x2 w2 + b) with x1=2, x2=0, w1=-3, w2=1, b=6.8813735870195432: the sum is 0.8814 and
    # L = 1/sqrt(2) = 0.7071 (the neuron of Karpathy's micrograd lecture, not chapter 2's)
    return [("leaf", 2.0), ("leaf", -3.0), ("leaf", 0.0), ("leaf", 1.0), ("leaf", 6.8813735870195432),
            ("mul", 0, 1), ("mul", 2, 3), ("add", 5, 6), ("add", 7, 4), ("tanh", 8)]


def _backward_visible(rng):
    return [dict(name="a*b + c: every node used once", program=[("leaf", 2.0), ("leaf", -3.0), ("leaf", 10.0),
                                                               ("mul", 0, 1), ("add", 3, 2)]),
            dict(name="a*a: one node used twice", program=[("leaf", 3.0), ("mul", 0, 0)]),
            dict(name="u = tanh(a), L = u * exp(u): u is used directly and through exp(u)",
                 program=[("leaf", 0.5), ("tanh", 0), ("exp", 1), ("mul", 1, 2)]),
            dict(name="a tanh neuron, tanh(x1*w1 + x2*w2 + b)", program=_neuron())]


def _forward(program):
    vals = []
    for op in program:
        kind = op[0]
        if kind == "leaf":
            vals.append(float(op[1]))
        elif kind == "add":
            vals.append(vals[op[1]] + vals[op[2]])
        elif kind == "mul":
            vals.append(vals[op[1]] * vals[op[2]])
        elif kind == "tanh":
            vals.append(math.tanh(vals[op[1]]))
        elif kind == "exp":
            vals.append(math.exp(vals[op[1]]))
        elif kind == "pow":
            vals.append(vals[op[1]] ** op[2])
        else:
            raise ValueError(f"unknown op {kind}")
    return vals


def _reverse(program, vals, order):
    """Gradients of the root when the nodes' local rules run in ``order`` (a list of node indices)."""
    grad = [0.0] * len(program)
    grad[-1] = 1.0
    for i in order:
        op, g = program[i], grad[i]
        kind = op[0]
        if kind == "add":
            grad[op[1]] += g
            grad[op[2]] += g
        elif kind == "mul":
            grad[op[1]] += vals[op[2]] * g
            grad[op[2]] += vals[op[1]] * g
        elif kind == "tanh":
            grad[op[1]] += (1.0 - vals[i] ** 2) * g
        elif kind == "exp":
            grad[op[1]] += vals[i] * g
        elif kind == "pow":
            grad[op[1]] += op[2] * vals[op[1]] ** (op[2] - 1) * g
    return np.array(grad)


def _inputs(op):
    kind = op[0]
    return [] if kind == "leaf" else [op[1], op[2]] if kind in ("add", "mul") else [op[1]]


def _reachable(program):
    seen, todo = {len(program) - 1}, [len(program) - 1]
    while todo:
        for j in _inputs(program[todo.pop()]):
            if j not in seen:
                seen.add(j)
                todo.append(j)
    return seen


def _backward_ref(c):
    prog = c["program"]
    vals, live = _forward(prog), _reachable(prog)        # a random graph may have dead ends
    order = [i for i in reversed(range(len(prog))) if i in live]
    return {"grad": _reverse(prog, vals, order), "calls": np.array([float(i in live) for i in range(len(prog))])}


def _bfs_order(prog):
    """Breadth-first from the root, each node once: a natural order that is NOT topological."""
    order, seen, queue = [], {len(prog) - 1}, [len(prog) - 1]
    while queue:
        i = queue.pop(0)
        order.append(i)
        for j in reversed(_inputs(prog[i])):          # Value._prev lists the inputs in order; either is wrong
            if j not in seen:
                seen.add(j)
                queue.append(j)
    return order


def _bfs_order_fwd(prog):
    order, seen, queue = [], {len(prog) - 1}, [len(prog) - 1]
    while queue:
        i = queue.pop(0)
        order.append(i)
        for j in _inputs(prog[i]):
            if j not in seen:
                seen.add(j)
                queue.append(j)
    return order


def _in_order(order_of):
    def model(c):
        prog = c["program"]
        return {"grad": _reverse(prog, _forward(prog), order_of(prog))}
    return model


_ORDER_CONCEPT = ("A node may pass its gradient on (run its _backward) only when its own grad is complete: "
                  "after EVERY node that uses it has added its share. Find an order of the nodes in which "
                  "each node comes after all of its users.")
_backward_mistakes = [
    Mistake("The nodes were processed in the wrong order: some node passed its gradient on before every "
            "node that uses it had added its share.",
            _in_order(lambda prog: sorted(_reachable(prog))), concept=_ORDER_CONCEPT),
    Mistake("The nodes were processed in the wrong order: a node used both directly and through a longer "
            "path passed its gradient on before the longer path had reached it (visiting the nodes level by "
            "level from the root is not enough).", _in_order(_bfs_order), concept=_ORDER_CONCEPT),
    Mistake("The nodes were processed in the wrong order: a node used both directly and through a longer "
            "path passed its gradient on before the longer path had reached it (visiting the nodes level by "
            "level from the root is not enough).", _in_order(_bfs_order_fwd), concept=_ORDER_CONCEPT),
    Mistake("Every gradient is 0, the root's too: the backward pass had nothing to start from at the root.",
            lambda c: {"grad": np.zeros(len(c["program"]))},
            concept="Before any node passes a gradient on, one gradient must be known: the root's with "
                    "respect to itself. What is d(root)/d(root)?"),
]


def _backward_diagnose(c, got, want):
    calls = got.get("calls")
    if calls is None or np.shape(calls) != np.shape(want["calls"]):
        return []
    found = []
    if np.any(calls > 1):
        found.append(f"A node reached by two paths was processed twice (one node's _backward ran "
                     f"{int(np.max(calls))} times), so its share was passed on more than once.")
    if np.any((calls == 0) & (want["calls"] > 0)):
        found.append("Some nodes' _backward never ran: they are missing from the nodes you visited (the "
                     "leaves count too, even if their _backward does nothing).")
    return found


_LADDERS = {
    "mul_backward": Ladder(
        concept="The chain rule for one node: dL/da = dL/dout * d(out)/da, where dL/dout is dout. For out = a * b, "
                "hold b fixed and nudge a by a small h: out moves by h times some factor. That factor is the "
                "local slope d(out)/da; do the same for b.",
        rule="d(a * b)/da = b and d(a * b)/db = a: each input's local slope is the OTHER input.",
        formula="da = b * dout, db = a * dout: each input gets dout times the other input."),
    "pow_backward": Ladder(
        concept="k is a fixed number and a is the variable. Expand (a + h)^k for a small h (try k = 2 and "
                "k = 3 first): the slope is the coefficient of h. It holds for negative and fractional k too.",
        rule="d(a^k)/da = k * a^(k - 1), the power rule: the exponent comes down in front and drops by one.",
        formula="da = k * a ** (k - 1) * dout"),
    "exp_backward": Ladder(
        concept="e^(a + h) = e^a * e^h and e^h is about 1 + h for a small h: so e^a grows by about e^a * h. "
                "exp_backward receives the forward output out, not a: use what the forward pass computed.",
        rule="d(e^a)/da = e^a, which is out.",
        formula="da = out * dout"),
    "tanh_backward": Ladder(
        concept="Write tanh through exp: tanh a = (e^a - e^-a) / (e^a + e^-a). Differentiate with the quotient "
                "rule; the result can be written with tanh a alone, which is out. Sanity checks: the slope is 1 "
                "at a = 0 (out = 0) and goes to 0 where |out| approaches 1.",
        rule="d tanh(a)/da = 1 - tanh(a)^2: with the output, one minus out squared.",
        formula="da = (1 - out ** 2) * dout"),
    "backward": Ladder(
        concept=_ORDER_CONCEPT + " An order that lists every node after its inputs (node._prev) is a "
                "topological order; walked in reverse it is the order you need. And at the start, "
                "d(root)/d(root) = 1.",
        rule="Build the order by a depth-first search from the root: visit a node's inputs (node._prev) first, "
             "then append the node itself. Keep a set of the nodes already visited (by id) so a node reached "
             "by two paths is listed once. Then set root.grad = 1.0 and call node._backward() on every node of "
             "the reversed list, each exactly once (leaves too). Deep graphs: an explicit stack avoids "
             "Python's recursion limit.",
        formula="order, seen = [], set(); def visit(v): if id(v) not in seen: seen.add(id(v)); "
                "[visit(c) for c in v._prev]; order.append(v). visit(root); root.grad = 1.0; "
                "for v in reversed(order): v._backward()   (the same with an explicit stack for deep graphs)"),
}


def _checks():
    spec = [
        ("mul_backward", ("da", "db"), CALLS["mul_backward"], _mul_ref, _mul_mistakes, _mul_visible, (1, 1)),
        ("pow_backward", ("da",), CALLS["pow_backward"], _pow_ref, _pow_mistakes, _pow_visible, (1, 1)),
        ("exp_backward", ("da",), CALLS["exp_backward"], _exp_ref, _exp_mistakes, _exp_visible, (1, 1)),
        ("tanh_backward", ("da",), CALLS["tanh_backward"], _tanh_ref, _tanh_mistakes, _tanh_visible, (1, 1)),
        ("backward", ("grad", "calls"), CALLS["backward"], _backward_ref, _backward_mistakes,
         _backward_visible, (2, 3), dict(diagnose=_backward_diagnose)),
    ]
    return visible_and_hidden(A, spec, _LADDERS)


CHECKS = _checks()
