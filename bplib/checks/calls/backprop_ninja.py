"""Calls of the backprop_ninja assignment's functions: the forward pass, in primitive steps, with bplib.Tensor.

``forward(x, params, y)`` builds the capstone's graph (the same lines as the notebook's forward cell):
a dense layer, batch norm in seven primitive steps, tanh, a second dense layer and the cross-entropy in
nine primitive steps. Only Tensor's forward operations are used (they stay in the grader's clean
re-run); nothing here computes a gradient.
"""
import numpy as np

from ...tensor import Tensor

PARAMS = ("W1", "b1", "gamma", "beta", "W2", "b2")
# the intermediates, in the order of the forward pass
NAMES = ("h_pre", "mu", "diff", "diff2", "var", "var_eps", "inv_std", "h_hat", "h_bn", "h",
         "logits", "logit_max", "shifted", "counts", "counts_sum", "counts_sum_inv", "probs", "logprobs", "picked")


def forward(x, params, y, eps=1e-5):
    """name -> Tensor for x, every parameter, every intermediate and the loss."""
    t = {"x": Tensor(x)}
    t.update({k: Tensor(params[k]) for k in PARAMS})
    N = x.shape[0]
    t["h_pre"] = t["x"] @ t["W1"] + t["b1"]                          # (N, H)
    t["mu"] = t["h_pre"].mean(axis=0, keepdims=True)                  # (1, H)
    t["diff"] = t["h_pre"] - t["mu"]                                  # (N, H)
    t["diff2"] = t["diff"] ** 2                                       # (N, H)
    t["var"] = t["diff2"].mean(axis=0, keepdims=True)                 # (1, H), biased: divides by N
    t["var_eps"] = t["var"] + eps                                     # (1, H)
    t["inv_std"] = t["var_eps"] ** -0.5                               # (1, H)
    t["h_hat"] = t["diff"] * t["inv_std"]                             # (N, H)
    t["h_bn"] = t["gamma"] * t["h_hat"] + t["beta"]                   # (N, H)
    t["h"] = t["h_bn"].tanh()                                         # (N, H)
    t["logits"] = t["h"] @ t["W2"] + t["b2"]                          # (N, K)
    t["logit_max"] = t["logits"].max(axis=1, keepdims=True)           # (N, 1)
    t["shifted"] = t["logits"] - t["logit_max"]                       # (N, K)
    t["counts"] = t["shifted"].exp()                                  # (N, K)
    t["counts_sum"] = t["counts"].sum(axis=1, keepdims=True)          # (N, 1)
    t["counts_sum_inv"] = t["counts_sum"] ** -1                       # (N, 1)
    t["probs"] = t["counts"] * t["counts_sum_inv"]                    # (N, K)
    t["logprobs"] = t["probs"].log()                                  # (N, K)
    t["picked"] = t["logprobs"][np.arange(N), y]                      # (N,)
    t["loss"] = -t["picked"].mean()                                   # ()
    return t


def values(t):
    """name -> numpy array of a forward's Tensors (what backward_by_hand receives)."""
    return {k: v.data for k, v in t.items()}


def ninja_values(c):
    """The forward values of a case (x, params, y, eps)."""
    return values(forward(c["x"], c, c["y"], c.get("eps", 1e-5)))


# the gradients backward_by_hand returns, in backward order (each from the ones before it)
GRADS = tuple("d" + n for n in reversed(NAMES[10:])) + ("dh", "dW2", "db2", "dh_bn", "dgamma", "dbeta") + \
    tuple("d" + n for n in reversed(NAMES[:8])) + ("dW1", "db1")


def _as_tuple(got):
    """The learner's dict of gradients, as a tuple in backward order (a missing key: None)."""
    if not isinstance(got, dict):
        return got                      # judged as a wrong return (Check.unpack says what it expected)
    return tuple(got.get(k) for k in GRADS)


CALLS = {
    "backward_by_hand": lambda fn, c: _as_tuple(fn(ninja_values(c), c["y"])),
    "cross_entropy_backward": lambda fn, c: fn(c["logits"], c["y"]),
    "batchnorm_backward_fused": lambda fn, c: fn(c["dh_bn"], c["h_hat"], c["gamma"], c["inv_std"]),
}
