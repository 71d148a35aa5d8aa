"""Calls of the gradient_descent assignment's functions."""
CALLS = {
    "sgd_step": lambda fn, c: fn(c["w"], c["dw"], c["lr"]),
    "momentum_step": lambda fn, c: fn(c["w"], c["dw"], c["v"], c["lr"], c["mu"]),
    "linear_loss_grad": lambda fn, c: fn(c["X"], c["y"], c["w"], c["b"]),
    "fit_linear": lambda fn, c: fn(c["X"], c["y"], c["lr"], c["steps"]),
}
