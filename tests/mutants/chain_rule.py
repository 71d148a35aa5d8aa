"""Wrong implementations of chain_rule that real learners write.

Each: the function whose solution cell is changed, an exact (old, new) text
replacement, a keyword its verdict must contain (the symptom named), and
``concept``: a word of the first hint, hint("<function>"), after that failure.
"""
_DFS = """    order, visited = [], set()
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
        node._backward()"""
_BFS = """    root.grad = 1.0
    queue, seen = [root], {id(root)}
    while queue:
        node = queue.pop(0)
        node._backward()
        for child in node._prev:
            if id(child) not in seen:
                seen.add(id(child))
                queue.append(child)"""
_RECURSIVE = """    root.grad = 1.0

    def go(node):
        node._backward()
        for child in node._prev:
            go(child)
    go(root)"""

MUTANTS = [
    dict(name="tanh_not_squared", function="tanh_backward",
         replace=("(1 - out ** 2) * dout", "(1 - out) * dout"), expect="changed sign", concept="even"),
    dict(name="tanh_applied_twice", function="tanh_backward",
         replace=("(1 - out ** 2) * dout", "(1 - np.tanh(out) ** 2) * dout"), expect="already tanh",
         concept="OUTPUT"),
    dict(name="tanh_sign_flipped", function="tanh_backward",
         replace=("(1 - out ** 2) * dout", "(out ** 2 - 1) * dout"), expect="wrong sign", concept="rises"),
    dict(name="tanh_no_dout", function="tanh_backward",
         replace=("(1 - out ** 2) * dout", "(1 - out ** 2)"), expect="is not used", concept="chain rule"),
    dict(name="mul_swapped", function="mul_backward",
         replace=("da = b * dout\n    db = a * dout", "da = a * dout\n    db = b * dout"), expect="swapped",
         concept="nudge"),
    dict(name="mul_no_dout", function="mul_backward",
         replace=("da = b * dout\n    db = a * dout", "da = b\n    db = a"), expect="is not used",
         concept="chain rule"),
    dict(name="mul_like_a_sum", function="mul_backward",
         replace=("da = b * dout\n    db = a * dout", "da = dout\n    db = dout"), expect="sum passes",
         concept="product"),
    dict(name="pow_exponent_not_lowered", function="pow_backward",
         replace=("k * a ** (k - 1) * dout", "k * a ** k * dout"), expect="one too high", concept="LOWER"),
    dict(name="pow_factor_k_missing", function="pow_backward",
         replace=("k * a ** (k - 1) * dout", "a ** (k - 1) * dout"), expect="k times too small",
         concept="exponent"),
    dict(name="exp_derivative_one", function="exp_backward",
         replace=("return out * dout", "return dout"), expect="taken as 1", concept="e^h"),
    dict(name="exp_applied_twice", function="exp_backward",
         replace=("return out * dout", "return np.exp(out) * dout"), expect="second time", concept="OUTPUT"),
    dict(name="backward_not_reversed", function="backward",
         replace=("for node in reversed(order):", "for node in order:"), expect="wrong order", concept="complete"),
    dict(name="backward_no_visited_set", function="backward",
         replace=("elif id(node) not in visited:", "else:"), expect="processed twice", concept="complete"),
    dict(name="backward_root_grad_not_set", function="backward",
         replace=("root.grad = 1.0", "pass"), expect="nothing to start from", concept="d(root)/d(root)"),
    dict(name="backward_level_by_level", function="backward",
         replace=(_DFS, _BFS), expect="level by level", concept="complete"),
    dict(name="backward_recursive_no_order", function="backward",
         replace=(_DFS, _RECURSIVE), expect="processed twice", concept="complete"),
    dict(name="backward_skips_leaves", function="backward",
         replace=("    for node in reversed(order):\n        node._backward()",
                  "    for node in reversed(order):\n        if node._prev:\n            node._backward()"),
         expect="never ran", concept="complete"),
]
