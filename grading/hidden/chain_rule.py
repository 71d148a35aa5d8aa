"""Hidden cases of chain_rule: other shapes, k = 0, 1, fractional and negative, saturated tanh, and
graphs that split and join, a lone leaf, a deep chain and random graphs with dead ends."""
import numpy as np

# The local rules are elementwise maths and the backward pass walks a graph: nothing of bplib computes
# them for the learner except what the grader strips (Value.backward, Value.topological_order). While
# `backward` is checked, the graph's nodes carry bplib.Value's own local closures (node._backward):
# calling them is the task, not a shortcut.
ALLOWED = []


def _arr(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, shape)


def mul_backward(rng):
    cases = [dict(name="plain numbers", a=float(_arr(rng, ())), b=float(_arr(rng, ())), dout=float(_arr(rng, ())))]
    for shape in [(7,), (4, 5), (1,), (2, 3, 4)]:
        cases.append(dict(name=f"random arrays of shape {shape}", a=_arr(rng, shape), b=_arr(rng, shape),
                          dout=_arr(rng, shape)))
    cases.append(dict(name="a = b (the same number twice)", a=np.full(3, 1.5), b=np.full(3, 1.5),
                      dout=np.array([1.0, -2.0, 0.5])))
    cases.append(dict(name="b = 0 somewhere", a=np.array([2.0, -1.0, 3.0]), b=np.array([0.0, 4.0, 0.0]),
                      dout=np.array([1.0, 1.0, -2.0])))
    return cases


def pow_backward(rng):
    cases = []
    for k, shape in [(2, (6,)), (0.5, (3, 4)), (-2, (5,)), (1, (4,)), (3.5, (2, 2)), (0, (3,))]:
        cases.append(dict(name=f"k={k}, arrays of shape {shape}", a=_arr(rng, shape, 0.5, 3.0), k=k,
                          dout=_arr(rng, shape)))
    cases.append(dict(name="k=3, negative and positive a", a=_arr(rng, (5,)), k=3, dout=_arr(rng, (5,))))
    cases.append(dict(name="k=-0.5, a plain number", a=2.5, k=-0.5, dout=-1.5))
    return cases


def _unary(fwd, low, high):
    def cases(rng):
        out = []
        for shape in [(9,), (3, 5), (1,), (2, 2, 3)]:
            out.append(dict(name=f"random arrays of shape {shape}", out=fwd(_arr(rng, shape, low, high)),
                            dout=_arr(rng, shape)))
        out.append(dict(name="a plain number, negative a", out=float(fwd(-1.7)), dout=0.3))
        return out
    return cases


exp_backward = _unary(np.exp, -3, 3)


def tanh_backward(rng):
    cases = _unary(np.tanh, -3, 3)(rng)
    a = np.array([-6.0, -4.0, -0.1, 0.1, 4.0, 6.0])
    cases.append(dict(name="saturated: |a| up to 6 (slope near 0)", out=np.tanh(a), dout=_arr(rng, a.shape)))
    return cases


def _random_program(rng, n_leaves, n_ops):
    prog = [("leaf", float(np.round(rng.uniform(-1.5, 1.5), 3))) for _ in range(n_leaves)]
    for _ in range(n_ops):
        n = len(prog)
        i, j = (int(t) for t in rng.integers(0, n, 2))
        i = max(i, n - 4) if rng.random() < 0.6 else i      # mostly build on recent nodes: deep graphs
        kind = str(rng.choice(["add", "mul", "mul", "tanh", "exp", "pow"]))
        if kind in ("add", "mul"):
            prog.append((kind, i, j))
        elif kind == "pow":
            prog.append(("pow", i, 2))
        elif kind == "exp":
            prog.append(("tanh", i))
            prog.append(("exp", len(prog) - 1))          # exp of a tanh: never overflows
        else:
            prog.append(("tanh", i))
    prog.append(("tanh", len(prog) - 1))
    return prog


def backward(rng):
    diamond = [("leaf", 0.7), ("tanh", 0), ("exp", 0), ("mul", 1, 2), ("add", 3, 1), ("mul", 4, 2)]
    chain = [("leaf", 0.3)] + [("tanh", i) if i % 2 else ("add", i, 0) for i in range(150)]
    fan = [("leaf", 0.4)] + [("tanh", 0), ("mul", 0, 0), ("exp", 0), ("pow", 0, 3)] \
        + [("add", 1, 2), ("add", 5, 3), ("add", 6, 4), ("mul", 7, 0)]
    ladder = [("leaf", 0.2), ("tanh", 0)]
    for _ in range(6):          # each rung uses the one before directly and through a tanh
        n = len(ladder)
        ladder += [("tanh", n - 1), ("mul", n, n - 1)]
    cases = [dict(name="a diamond: paths that split and join", program=diamond),
             dict(name="a single leaf (the root is the input)", program=[("leaf", 1.25)]),
             dict(name="a deep chain of 151 nodes reusing the input", program=chain),
             dict(name="one input used by five nodes, and again at the end", program=fan),
             dict(name="a ladder: every node used directly and through a tanh", program=ladder),
             dict(name="x ** 2 with x = a * b", program=[("leaf", 1.5), ("leaf", -0.5), ("mul", 0, 1),
                                                         ("pow", 2, 2)])]
    for n in (12, 40):
        cases.append(dict(name=f"a random graph of {n} operations", program=_random_program(rng, 4, n)))
    return cases


HIDDEN = {"mul_backward": mul_backward, "pow_backward": pow_backward, "exp_backward": exp_backward,
          "tanh_backward": tanh_backward, "backward": backward}
