"""Wrong implementations of gradient_descent that real learners write (see chain_rule.py)."""
MUTANTS = [
    dict(name="update_sign_flipped", function="sgd_step",
         replace=("return w - lr * dw", "return w + lr * dw"), expect="sign flipped"),
    dict(name="momentum_not_decayed", function="momentum_step",
         replace=("v_new = mu * v - lr * dw", "v_new = v - lr * dw"), expect="not decayed"),
    dict(name="momentum_old_velocity", function="momentum_step",
         replace=("w_new = w + v_new", "w_new = w + v"), expect="OLD velocity"),
    dict(name="mse_factor_two_missing", function="linear_loss_grad",
         replace=("dw = 2 * X.T @ r / N", "dw = X.T @ r / N"), expect="factor 2"),
    dict(name="mse_not_divided_by_N", function="linear_loss_grad",
         replace=("dw = 2 * X.T @ r / N", "dw = 2 * X.T @ r"), expect="1/N"),
    dict(name="residual_sign_flipped", function="linear_loss_grad",
         replace=("r = X @ w + b - y", "r = y - X @ w - b"), expect="wrong sign"),
    dict(name="loss_summed", function="linear_loss_grad",
         replace=("loss = float(np.mean(r ** 2))", "loss = float(np.sum(r ** 2))"), expect="MEAN"),
    dict(name="bias_never_updated", function="fit_linear",
         replace=("b = sgd_step(b, db, lr)", "pass"), expect="b never moves"),
]
