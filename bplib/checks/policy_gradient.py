"""Checks for the policy_gradient assignment.

    discounted_returns(rewards, dones, gamma) -> returns
        rewards: (T,) floats, dones: (T,) bools (an episode ends after step t); returns: (T,)
    policy_gradient_loss(logits, actions, advantages) -> (loss, dlogits)
        logits: (N, A), actions: (N,) ints, advantages: (N,)  ->  loss: float, dlogits: (N, A)
"""
import numpy as np

from .. import losses
from .core import visible_and_hidden

A = "policy_gradient"


# -- discounted returns ------------------------------------------------------------------------
def _ret_visible(rng):
    return [dict(name="one episode [1, 1, 1], gamma=0.9", rewards=np.array([1.0, 1.0, 1.0]),
                 dones=np.array([False, False, True]), gamma=0.9),
            dict(name="reward only at the end: [0, 0, 0, 1], gamma=0.5", rewards=np.array([0.0, 0.0, 0.0, 1.0]),
                 dones=np.array([False, False, False, True]), gamma=0.5),
            dict(name="two episodes [1, 2 | 3, 4], gamma=0.5", rewards=np.array([1.0, 2.0, 3.0, 4.0]),
                 dones=np.array([False, True, False, True]), gamma=0.5)]


def _episodes(rng, lengths, gamma, name, last_done=True):
    T = sum(lengths)
    dones = np.zeros(T, dtype=bool)
    dones[np.cumsum(lengths) - 1] = True
    if not last_done:
        dones[-1] = False
    return dict(name=name, rewards=rng.standard_normal(T), dones=dones, gamma=gamma)


def _ret_hidden(rng):
    return [_episodes(rng, [1], 0.99, "a single step"),
            _episodes(rng, [200], 0.99, "one long episode, T=200"),
            _episodes(rng, [5, 1, 7, 3], 0.9, "four episodes, one of length 1"),
            _episodes(rng, [6, 4], 0.0, "gamma = 0: the return is the reward"),
            _episodes(rng, [4, 5], 1.0, "gamma = 1: plain sums"),
            _episodes(rng, [4, 6], 0.8, "the last episode is cut off (no done at the end)", last_done=False)]


def _returns(c, discount=True, reset=True, forward=False, reset_after=False, include_reward=True):
    """The returns, with classic mistakes as switches (for the hints)."""
    r, d, g = c["rewards"], c["dones"], (c["gamma"] if discount else 1.0)
    T = len(r)
    out = np.zeros(T)
    running = 0.0
    for t in (range(T) if forward else reversed(range(T))):
        if reset and d[t] and not reset_after:
            running = 0.0
        running = r[t] + g * running if include_reward else g * (running + r[t])
        out[t] = running
        if reset and d[t] and reset_after:
            running = 0.0
    return {"returns": out}


_ret_ref = lambda c: _returns(c)   # noqa: E731
_ret_mistakes = [
    ("The returns are not discounted: G_t = r_t + gamma * G_{t+1} (gamma multiplies the future).",
     lambda c: _returns(c, discount=False) if c["gamma"] != 1.0 else {}),
    ("The returns must be computed backwards, from the end of the episode: G_t sums the rewards from t ON.",
     lambda c: _returns(c, forward=True)),
    ("The returns must be computed backwards, from the end of the episode: G_t sums the rewards from t ON.",
     lambda c: _returns(c, forward=True, reset_after=True)),
    ("The running return must restart at 0 at the end of each episode (where dones[t] is True): "
     "rewards of the next episode do not belong to this one.", lambda c: _returns(c, reset=False)),
    ("G_t includes r_t itself undiscounted: G_t = r_t + gamma * G_{t+1}, not gamma * (r_t + G_{t+1}).",
     lambda c: _returns(c, include_reward=False)),
]


# -- policy-gradient loss ---------------------------------------------------------------------
def _pg_visible(rng):
    logits = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    return [dict(name="N=2, 3 actions, advantages [1, -2]", logits=logits, actions=np.array([0, 2]),
                 advantages=np.array([1.0, -2.0])),
            dict(name="N=5, 2 actions", logits=rng.standard_normal((5, 2)), actions=rng.integers(0, 2, 5),
                 advantages=rng.standard_normal(5))]


def _pg_hidden(rng):
    return [dict(name="a single decision: N=1, 6 actions", logits=rng.standard_normal((1, 6)), actions=np.array([4]),
                 advantages=np.array([2.5])),
            dict(name="N=100, 4 actions", logits=rng.standard_normal((100, 4)) * 2, actions=rng.integers(0, 4, 100),
                 advantages=rng.standard_normal(100)),
            dict(name="large logits (around 500)", logits=rng.standard_normal((8, 3)) * 3 + 500,
                 actions=rng.integers(0, 3, 8), advantages=rng.standard_normal(8)),
            dict(name="all advantages zero: no gradient", logits=rng.standard_normal((4, 3)), actions=rng.integers(0, 3, 4),
                 advantages=np.zeros(4))]


def _onehot(c):
    y = np.zeros_like(c["logits"])
    y[np.arange(len(c["actions"])), c["actions"]] = 1
    return y


def _pg_ref(c):
    z = c["logits"] - c["logits"].max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    N = len(c["actions"])
    A_ = c["advantages"]
    loss = -np.mean(A_ * logp[np.arange(N), c["actions"]])
    return {"loss": np.float64(loss), "dlogits": (np.exp(logp) - _onehot(c)) * A_[:, None] / N}


def _pg_scaled(c, k):
    return {"dlogits": _pg_ref(c)["dlogits"] * k}


_pg_mistakes = [
    ("Sign flipped: the LOSS is -mean(A * log pi(a|s)), so dlogits = (p - onehot) * A / N; its negative "
     "would make good actions less likely.", lambda c: _pg_scaled(c, -1)),
    ("The 1/N of the mean is missing.", lambda c: _pg_scaled(c, len(c["actions"]))),
    ("The advantages are not applied: each row of dlogits is weighted by its own advantage A[n].",
     lambda c: {"dlogits": (losses.softmax(c["logits"]) - _onehot(c)) / len(c["actions"])}),
    ("Subtract the one-hot of the chosen action: d(-log p_a)/dlogits = p - onehot(a).",
     lambda c: {"dlogits": losses.softmax(c["logits"]) * c["advantages"][:, None] / len(c["actions"])}),
]


def _checks():
    hints = {
        "discounted_returns": "Walk t = T-1 .. 0 with a running return: reset it to 0 where dones[t], "
                              "then running = rewards[t] + gamma * running.",
        "policy_gradient_loss": "p = softmax(logits); loss = -mean(A * log p[n, actions[n]]); "
                                "dlogits = (p - onehot(actions)) * A[:, None] / N.",
    }
    spec = [
        ("discounted_returns", ("returns",), lambda f, c: f(c["rewards"], c["dones"], c["gamma"]), _ret_ref,
         _ret_mistakes, _ret_visible, _ret_hidden, (2, 3)),
        ("policy_gradient_loss", ("loss", "dlogits"), lambda f, c: f(c["logits"], c["actions"], c["advantages"]),
         _pg_ref, _pg_mistakes, _pg_visible, _pg_hidden, (3, 4), dict(batch_size=lambda c: len(c["actions"]))),
    ]
    return visible_and_hidden(A, spec, hints)


CHECKS = _checks()
