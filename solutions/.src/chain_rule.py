# %% [markdown]
# # Exercise 1: the chain rule, one node at a time
#
# **What you learn.** Backpropagation is the chain rule applied node by node: each operation
# only needs its *local* derivative, multiplied by the gradient arriving from above. You derive
# those local rules for four operations, then write the backward pass that visits a whole graph
# in the right order.
#
# **Time:** about 60 minutes (the last paragraph of this cell says how that was estimated).
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
# **You derive:**
# - `mul_backward`: the local slopes of a product with respect to each of its two inputs;
# - `pow_backward`: the slope of a power for any real exponent, negative and fractional ones too
#   (the book only uses the square);
# - `exp_backward`: the slope of exp, written with the forward *output* `out` instead of the input;
# - `tanh_backward`: the slope of tanh written with its output, from the definition of tanh through
#   exp (the book does not derive it);
# - `backward`: the order in which a graph's nodes may pass their gradients on, and a way to find it
#   for any graph (the book only says that `Value.backward` visits every node once, from the loss
#   back to the inputs).
#
# **You may call:** Python arithmetic and numpy (`np.exp`, `np.tanh`, ...) in the four local rules.
# In `backward`, a node's own attributes: `node._prev` (its inputs), `node.grad`, and
# `node._backward()` (the local rule of the operation that made the node: for this function the
# `Value` class's rules are given, and calling them is the task). Not `Value.backward` or
# `Value.topological_order`: they are the course's answer to `backward`. When your notebook is
# graded, your functions run again in a clean process where those two are removed (and where
# `Value`'s own local rules are not there while `mul_backward` ... `tanh_backward` are checked);
# a function that reaches them scores 0 for that test, with a status that says so.
#
# **Hints:** a failed check names what is wrong (the symptom), never the answer.
# `hint("mul_backward")` (or any function's name) gives the next hint each time you call it:
# first the idea, then the local rule, and last the formula. Hints never cost points; the summary
# only counts them for your own record.
#
# Write your code where it says `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# run the test cell below it, and read the verdict. Run the notebook from the top after a change
# (Kernel, Restart Kernel and Run All Cells): the last cell sums up what passes.
#
# *How the time was estimated:* the author, who wrote the checks, worked the notebook in a kernel as a
# learner would (three wrong first attempts: the product's shares swapped, tanh's slope not squared,
# the nodes visited level by level; two hints) in a few minutes, which says nothing about a newcomer.
# So the estimate counts steps: about 22 short derivation, hand-computation and coding steps (the
# division example, two slopes of the product, the power rule from k = 2 and 3 and tested at -1 and
# 0.5, exp, tanh by the quotient rule and rewritten with its output, the four questions on the graph,
# then the search and its code) at about 2 minutes each, plus 10 minutes of reading and 5 of fixing
# a first wrong attempt.

# %% locked
import math

import numpy as np

from bplib import Value
from bplib import checks
from bplib.checks import hint

checks.start("chain_rule")     # forget results of an earlier run of this notebook


def slope(f, a, h=1e-6):
    """The numerical slope of f at a: (f(a + h) - f(a - h)) / 2h. Use it to test a slope you derived."""
    return (f(a + h) - f(a - h)) / (2 * h)

# %% [markdown]
# ## 1. Local derivatives
#
# A node computes `out = f(a, b)`. During the backward pass it receives `dout` = dL/dout, the
# derivative of the final loss L with respect to its output, and must send each input its share.
# By the chain rule, each share is `dout` times the node's *local slope* with respect to that input:
#
# $$\frac{\partial L}{\partial a} = \frac{\partial L}{\partial \text{out}}\cdot\frac{\partial \text{out}}{\partial a}$$
#
# Your functions take numbers *or* numpy arrays (everything is elementwise), so write them with
# `*`, `**` and numpy functions, not `math`.
#
# **How to find a local slope: nudge one input.** Worked example (not graded), a division
# `out = a / b`. Hold `b` fixed and move `a` by a small `h`: `(a + h) / b = a / b + h * (1 / b)`, so
# `out` moves by `1 / b` times `h`: d(out)/da is 1/b. Now hold `a` fixed and move `b`:
# for small `h`, `a / (b + h)` is about `a / b - h * a / b**2`, so d(out)/db is -a/b².
# With `a = 6`, `b = 2` and `dout = 0.5`, the backward pass of the division sends
# 0.5 · 0.5 = 0.25 to `a` and 0.5 · (-1.5) = -0.75 to `b`. The cell below checks both slopes with numbers.

# %%
a, b = 6.0, 2.0
print("d(a/b)/da: derived", 1 / b, "  numerical", slope(lambda t: t / b, a))
print("d(a/b)/db: derived", -a / b ** 2, "  numerical", slope(lambda t: a / t, b))

# %% [markdown]
# ### Multiplication
#
# For `out = a * b`, find d(out)/da and d(out)/db the same way: hold one input, nudge the other.
# Then compute by hand, for `a = 2`, `b = -3` and `dout = 0.5`, the two shares `da` and `db`
# (the visible test uses these numbers), and write the function.

# %%
# Scratch cell: test your two slopes with `slope` at a = 2, b = -3 before you write the function.

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
# `out = a ** k`, where `k` is a constant number and `a` the variable. Expand `(a + h) ** 2` and
# `(a + h) ** 3` for a small `h` and read off the coefficient of `h`: that is the slope. Guess the
# pattern for any `k`, then test your guess with `slope` at `k = -1` and `k = 0.5` (the pattern
# holds for every real `k`). By hand: `a = 2`, `k = 3`, `dout = 0.5` gives `da` = ?

# %%
# Scratch cell: for example slope(lambda t: t ** -1, 4.0) and slope(lambda t: t ** 0.5, 4.0).

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
# `out = exp(a)`. Nudge `a`: e^(a + h) = e^a · e^h, and for a small `h`, e^h is about 1 + h.
# So how much does e^a move per unit of `h`?
#
# Notice the arguments: `exp_backward` receives the forward **output** `out`, not the input `a`.
# Backward functions often take what the forward pass already computed, because it is cheaper than
# computing it again. Write your slope with `out`. By hand: for `a = 1` (so `out` = 2.71828...) and
# `dout = 2`, `da` = ?

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
# tanh is built from exponentials:
#
# $$\tanh a = \frac{e^{a} - e^{-a}}{e^{a} + e^{-a}}$$
#
# Differentiate it with the quotient rule (the slope of e^(-a) is -e^(-a)). The result can be written
# with tanh(a) alone, that is with `out`: find that form, since `tanh_backward` receives `out`, not `a`.
#
# Test it with numbers before you write code. Three facts your slope must agree with: it is 1 at
# `a = 0`; it is the same at `a` and `-a`; it goes to 0 for large `|a|`, where tanh flattens out.
# And at `a = 0.5` (`out` = 0.46212) the numerical slope is 0.78645: which expression in `out` gives
# that number?

# %%
# Scratch cell: the numerical slope of tanh at a few points, next to the output there.
for a in [0.0, 0.5, -0.5, 2.0]:
    print(f"a = {a:+.1f}   out = tanh(a) = {np.tanh(a):+.5f}   numerical slope {slope(np.tanh, a):.5f}")

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
# `backward(root)` must leave in every node's `grad` the derivative of `root` with respect to
# that node. What you have: every `grad` starts at 0 in a freshly built graph; `root.grad` must
# end as d(root)/d(root), which is 1; a node knows its inputs (`node._prev`), not the nodes that
# use it; and calling `node._backward()` adds the node's shares, `node.grad` times its local
# slopes, to the `grad` of each of its inputs. A node used by several others collects one share
# from each of them, which is chapter 2's rule that gradients add:
#
# $$\frac{\partial L}{\partial v} = \sum_{u \text{ uses } v} \frac{\partial L}{\partial u}\,\frac{\partial u}{\partial v}$$
#
# So `node._backward()` passes on whatever `node.grad` holds *at the moment it is called*. Your
# function must call every node's `_backward` exactly once (a leaf's does nothing, but call it too:
# the check counts the calls), and each one at a moment when that node's `grad` is complete.
#
# **Work it out on paper first**, on the graph the next cell builds:
# `u = tanh(a)`, `e = exp(u)`, `L = u * e`.
# 1. Draw the graph: which nodes use `u`? Which use `a`?
# 2. When is `u.grad` complete? Write down an order of the four nodes in which every node comes
#    after all of the nodes that use it.
# 3. Visiting the nodes level by level from the root (`L`; then its inputs `u` and `e`; then theirs)
#    is a tempting order. Why is it wrong on this graph?
# 4. A node only knows its inputs. Describe, for any graph, how to produce an order in which every
#    node comes *after its inputs*, each node once even when two paths reach it. How does that order
#    relate to the one you need?
#
# Graphs can be a few hundred nodes deep, and Python stops a recursion after about 1000 nested calls.

# %%
# Scratch cell: the graph of the exercise above, with bplib's Value. Look at each node's _prev.
a = Value(0.5, label="a")
u = a.tanh(); u.label = "u"
e = u.exp(); e.label = "e"
L = u * e; L.label = "L"
for node in (L, u, e, a):
    print(f"{node.label}: data {node.data:+.4f}, inputs {[child.label for child in node._prev]}")

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
# ## 4. Everything together: two neurons
#
# First a neuron with two inputs and a tanh, `L = tanh(x1*w1 + x2*w2 + b)`, with the numbers of
# Andrej Karpathy's micrograd lecture: `x1 = 2`, `x2 = 0`, `w1 = -3`, `w2 = 1` and `b = 6.8814`,
# chosen so that the sum is 0.8814 and `L` = tanh(0.8814) = 0.7071. Then chapter 2's neuron, which
# has other numbers and a squared error after the tanh, `L = (tanh(x1*w1 + x2*w2 + b) - y)**2` with
# `y = 1`: compare with the gradients printed in chapter 2. Both are built from `MyValue`s (your local
# rules), differentiated by your `backward`, and shown next to `bplib.Value`'s own answer.

# %%
def micrograd_neuron(V):
    x1, x2, w1, w2, b = V(2.0), V(0.0), V(-3.0), V(1.0), V(6.8813735870195432)
    L = (x1 * w1 + x2 * w2 + b).tanh()
    return L, dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b)

def chapter2_neuron(V):
    x1, x2, w1, w2, b = V(2.0), V(-1.0), V(-0.5), V(0.8), V(0.9)
    L = ((x1 * w1 + x2 * w2 + b).tanh() + V(-1.0)) ** 2
    return L, dict(x1=x1, x2=x2, w1=w1, w2=w2, b=b)

if checks.passed("mul_backward_visible", "pow_backward_visible", "tanh_backward_visible", "backward_visible"):
    for neuron in (micrograd_neuron, chapter2_neuron):
        L_mine, mine = neuron(MyValue)
        backward(L_mine)
        L_ref, ref = neuron(Value)
        L_ref.backward()
        print(f"{neuron.__name__}: L = {L_mine.data:.4f}")
        for name in mine:
            print(f"  dL/d{name:<3} yours {mine[name].grad:+.6f}   bplib {ref[name].grad:+.6f}")
else:
    print("Make mul_backward, pow_backward, tanh_backward and backward pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Run this cell last. Hidden tests are not shown here: they use other shapes and graphs and
# run when your notebook is graded.

# %%
checks.summary("chain_rule");
