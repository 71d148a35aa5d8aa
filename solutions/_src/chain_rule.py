# %% [markdown]
# # Exercise 1: the chain rule, one node at a time
#
# **What you learn.** Backpropagation is the chain rule applied node by node: each operation
# only needs its *local* derivative, multiplied by the gradient arriving from above. You write
# those local rules for four operations, then the backward pass that visits a whole graph in the
# right order.
#
# **Time:** about 45 minutes.
#
# **You write** (each has visible tests you can run, and hidden tests used for grading):
#
# | function | computes | points |
# |---|---|---|
# | `mul_backward(a, b, dout)` | `(da, db)` for `out = a * b` | 2 |
# | `pow_backward(a, k, dout)` | `da` for `out = a ** k` | 2 |
# | `exp_backward(out, dout)` | `da` for `out = exp(a)` | 2 |
# | `tanh_backward(out, dout)` | `da` for `out = tanh(a)` | 2 |
# | `backward(root)` | `node.grad` for every node of a `Value` graph | 5 |
#
# Write your code where it says `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# run the test cell below it, and read the verdict. Run the notebook from the top after a change
# (Kernel, Restart Kernel and Run All Cells): the last cell sums up what passes.

# %% locked
import math

import numpy as np

from bplib import Value
from bplib import checks

checks.start("chain_rule")     # forget results of an earlier run of this notebook

# %% [markdown]
# ## 1. Local derivatives
#
# A node computes `out = f(a, b)`. During the backward pass it receives `dout` = dL/dout, the
# derivative of the final loss L with respect to its output, and must send each input its share:
#
# $$\frac{\partial L}{\partial a} = \frac{\partial L}{\partial \text{out}}\cdot\frac{\partial \text{out}}{\partial a}$$
#
# In code, `da = dout * (local derivative)`. Your functions take numbers *or* numpy arrays
# (everything is elementwise), so write them with `*`, `**` and numpy functions, not `math`.
#
# ### Multiplication
#
# For `out = a * b`: d(out)/da = b and d(out)/db = a.
#
# $$\frac{\partial L}{\partial a} = \frac{\partial L}{\partial \text{out}}\, b, \qquad
#   \frac{\partial L}{\partial b} = \frac{\partial L}{\partial \text{out}}\, a$$

# %% solution
def mul_backward(a, b, dout):
    """Backward of out = a * b.  a, b, dout: numbers or arrays of one shape  ->  (da, db)."""
    ### BEGIN SOLUTION
    da = b * dout
    db = a * dout
    return da, db
    ### END SOLUTION

# %% check mul_backward_visible

# %% check mul_backward_hidden

# %% [markdown]
# ### Power
#
# For `out = a ** k` with a constant number `k` (the power rule):
#
# $$\frac{\partial L}{\partial a} = \frac{\partial L}{\partial \text{out}}\; k\, a^{k-1}$$

# %% solution
def pow_backward(a, k, dout):
    """Backward of out = a ** k (k a plain number).  a, dout: numbers or arrays  ->  da."""
    ### BEGIN SOLUTION
    return k * a ** (k - 1) * dout
    ### END SOLUTION

# %% check pow_backward_visible

# %% check pow_backward_hidden

# %% [markdown]
# ### Exponential
#
# `exp` is its own derivative, and the forward pass has already computed it: it is `out`.
# Backward functions often take the forward *output* because it is cheaper than recomputing.
#
# $$\frac{\partial L}{\partial a} = \frac{\partial L}{\partial \text{out}}\; e^{a} = \frac{\partial L}{\partial \text{out}}\;\text{out}$$

# %% solution
def exp_backward(out, dout):
    """Backward of out = exp(a), given the forward output.  out, dout: numbers or arrays  ->  da."""
    ### BEGIN SOLUTION
    return out * dout
    ### END SOLUTION

# %% check exp_backward_visible

# %% check exp_backward_hidden

# %% [markdown]
# ### tanh
#
# The derivative of tanh is also written with its output:
#
# $$\frac{\partial L}{\partial a} = \frac{\partial L}{\partial \text{out}}\,\bigl(1 - \tanh^2 a\bigr)
#   = \frac{\partial L}{\partial \text{out}}\,\bigl(1 - \text{out}^2\bigr)$$

# %% solution
def tanh_backward(out, dout):
    """Backward of out = tanh(a), given the forward output.  out, dout: numbers or arrays  ->  da."""
    ### BEGIN SOLUTION
    return (1 - out ** 2) * dout
    ### END SOLUTION

# %% check tanh_backward_visible

# %% check tanh_backward_hidden

# %% [markdown]
# ## 2. Your rules inside a `Value`
#
# `bplib.Value` stores one number, its `grad`, and a `_backward` closure that applies the
# local rule of the operation that made it. The cell below (read it, no need to change it)
# defines `MyValue`, a `Value` whose `*`, `**`, `exp` and `tanh` use **your** functions.
# Each closure *adds* (`+=`) to the inputs' `grad`: a node used twice receives both shares.

# %% locked
class MyValue(Value):
    """A Value whose local backward rules are the ones you wrote above."""

    def _wrap(self, x):
        return x if isinstance(x, Value) else MyValue(x)

    def __add__(self, other):
        other = self._wrap(other)
        out = MyValue(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad
            other.grad += out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = self._wrap(other)
        out = MyValue(self.data * other.data, (self, other), "*")

        def _backward():
            da, db = mul_backward(self.data, other.data, out.grad)
            self.grad += da
            other.grad += db
        out._backward = _backward
        return out

    def __pow__(self, k):
        out = MyValue(self.data ** k, (self,), f"**{k}")

        def _backward():
            self.grad += pow_backward(self.data, k, out.grad)
        out._backward = _backward
        return out

    def exp(self):
        out = MyValue(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += exp_backward(out.data, out.grad)
        out._backward = _backward
        return out

    def tanh(self):
        out = MyValue(math.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += tanh_backward(out.data, out.grad)
        out._backward = _backward
        return out

# %% [markdown]
# ## 3. The backward pass
#
# To run the chain rule over a whole graph, each node's `_backward` may only run once its own
# `grad` is complete, that is, after every node that *uses* it has passed its share back.
# A **topological order** lists every node after its inputs (children `node._prev` first); the
# backward pass walks it **in reverse**, starting from `root.grad = 1` (dL/dL = 1):
#
# $$\frac{\partial L}{\partial v} = \sum_{u \text{ uses } v} \frac{\partial L}{\partial u}\,\frac{\partial u}{\partial v}$$
#
# Write `backward(root)`: build the topological order with a depth-first search that visits
# each node **once** (a `visited` set), set `root.grad = 1.0`, then call `node._backward()`
# for every node in reversed order. All `grad`s start at 0 in a freshly built graph.
# (Graphs can be a few hundred nodes deep: a recursive search is fine, an iterative one is safer.)

# %% solution
def backward(root):
    """Set node.grad = d(root)/d(node) on every node of the graph ending at `root` (a Value)."""
    ### BEGIN SOLUTION
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if children_done:
            order.append(node)
        elif id(node) not in visited:
            visited.add(id(node))
            stack.append((node, True))
            for child in node._prev:
                stack.append((child, False))
    root.grad = 1.0
    for node in reversed(order):
        node._backward()
    ### END SOLUTION

# %% check backward_visible

# %% check backward_hidden

# %% [markdown]
# ## 4. Everything together: a neuron
#
# The neuron of the chapter, `L = tanh(x1*w1 + x2*w2 + b)`, built from `MyValue`s (your local
# rules) and differentiated by your `backward`, next to `bplib.Value`'s own answer.

# %%
def neuron(V):
    x1, x2, w1, w2, b = V(2.0), V(0.0), V(-3.0), V(1.0), V(6.8813735870195432)
    L = (x1 * w1 + x2 * w2 + b).tanh()
    return L, dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b)

if checks.passed("mul_backward_visible", "tanh_backward_visible", "backward_visible"):
    L_mine, mine = neuron(MyValue)
    backward(L_mine)
    L_ref, ref = neuron(Value)
    L_ref.backward()
    for name in mine:
        print(f"dL/d{name:<3} yours {mine[name].grad:+.6f}   bplib {ref[name].grad:+.6f}")
else:
    print("Make mul_backward, tanh_backward and backward pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Run this cell last. Hidden tests are not shown here: they use other shapes and graphs and
# run when your notebook is graded.

# %%
checks.summary("chain_rule");
