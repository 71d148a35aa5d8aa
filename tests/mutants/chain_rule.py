"""Wrong implementations of chain_rule that real learners write.

Each: the function whose solution cell is changed, an exact (old, new) text
replacement, and a keyword its verdict must contain (the symptom named).
"""
MUTANTS = [
    dict(name="tanh_not_squared", function="tanh_backward",
         replace=("(1 - out ** 2) * dout", "(1 - out) * dout"), expect="squared"),
    dict(name="tanh_applied_twice", function="tanh_backward",
         replace=("(1 - out ** 2) * dout", "(1 - np.tanh(out) ** 2) * dout"), expect="already tanh"),
    dict(name="mul_swapped", function="mul_backward",
         replace=("da = b * dout\n    db = a * dout", "da = a * dout\n    db = b * dout"), expect="swapped"),
    dict(name="mul_no_dout", function="mul_backward",
         replace=("da = b * dout\n    db = a * dout", "da = b\n    db = a"), expect="factor dout is missing"),
    dict(name="pow_exponent_not_lowered", function="pow_backward",
         replace=("k * a ** (k - 1) * dout", "k * a ** k * dout"), expect="exponent must drop"),
    dict(name="exp_derivative_one", function="exp_backward",
         replace=("return out * dout", "return dout"), expect="e^a itself"),
    dict(name="backward_not_reversed", function="backward",
         replace=("for node in reversed(order):", "for node in order:"), expect="wrong order"),
    dict(name="backward_no_visited_set", function="backward",
         replace=("elif id(node) not in visited:", "else:"), expect="processed twice"),
    dict(name="backward_root_grad_not_set", function="backward",
         replace=("root.grad = 1.0", "pass"), expect="all zeros"),
]
