"""Calls of the chain_rule assignment's functions; ``build_graph`` turns a case's program into Values."""
import numpy as np

from ...autodiff import Value


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


def call_backward(fn, c):
    """Run the learner's backward(root) on the case's graph; returns (grad per node, _backward calls)."""
    nodes = build_graph(c["program"])
    calls = np.zeros(len(nodes))
    for i, v in enumerate(nodes):          # count how often each node's _backward runs
        def counted(i=i, inner=v._backward):
            calls[i] += 1
            inner()
        v._backward = counted
    fn(nodes[-1])
    return np.array([v.grad for v in nodes]), calls


CALLS = {
    "mul_backward": lambda fn, c: fn(c["a"], c["b"], c["dout"]),
    "pow_backward": lambda fn, c: fn(c["a"], c["k"], c["dout"]),
    "exp_backward": lambda fn, c: fn(c["out"], c["dout"]),
    "tanh_backward": lambda fn, c: fn(c["out"], c["dout"]),
    "backward": call_backward,
}
