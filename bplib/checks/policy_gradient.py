"""Checks for the policy_gradient assignment.

    discounted_returns(rewards, dones, gamma) -> returns
        rewards: (T,) floats, dones: (T,) bools (an episode ends after step t); returns: (T,)
    policy_gradient_loss(logits, actions, advantages) -> (loss, dlogits)
        logits: (N, K), actions: (N,) ints, advantages: (N,)  ->  loss: float, dlogits: (N, K)

The right answers come from the course's reference (bplib.cases.pong.discount_rewards, one episode at a
time, and bplib.losses.softmax_cross_entropy). Each known mistake is a model of one wrong answer, built
from the reference's output or from the inputs with that one mistake put in.
"""
import numpy as np

from .. import losses
from .calls.policy_gradient import CALLS
from .core import Ladder, Mistake, visible_and_hidden

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


def _per_episode(rewards, dones, gamma):
    """The reference's returns, one episode at a time (an episode ends after each step where dones is True)."""
    from ..cases.pong import discount_rewards
    ends = np.flatnonzero(np.asarray(dones)[:-1]) + 1
    return np.concatenate([discount_rewards(r, float(gamma), reset_at_points=False)
                           for r in np.split(np.asarray(rewards, dtype=np.float64), ends)])


def _ret_ref(c):
    return {"returns": _per_episode(c["rewards"], c["dones"], c["gamma"])}


def _forwards(c, restart_at_done):
    """Credit summed from the START of the arrays: the returns run the wrong way in time. The sum restarts
    at each step where dones is True (``restart_at_done``) or at each step after one."""
    r, d, g = c["rewards"], c["dones"], c["gamma"]
    out, running = np.zeros(len(r)), 0.0
    for t in range(len(r)):
        if (d[t] if restart_at_done else t > 0 and d[t - 1]):
            running = 0.0
        running = r[t] + g * running
        out[t] = running
    return {"returns": out}


_BEFORE = "Each return collects the rewards BEFORE its step, not after: the credit of step t is what happened " \
          "from step t on."
_BEFORE_CONCEPT = "An action can only be credited with what came after it. G_t for the last step of an episode " \
                  "needs nothing but its own reward, G_t for the first step needs all the others."
_BEFORE_RULE = "G_t depends on G_(t+1), which is only known once the later steps are done: sweep from the end."
_ret_mistakes = [
    Mistake("The returns are not discounted: a reward k steps in the future counts fully instead of being "
            "weighed down by gamma once per step.",
            lambda c: {"returns": _per_episode(c["rewards"], c["dones"], 1.0)} if c["gamma"] != 1.0 else {},
            concept="gamma in [0, 1] says how much less a reward counts for each step it lies further in the "
                    "future.",
            rule="In G_t, the reward r_(t+k) is weighted by gamma**k."),
    Mistake(_BEFORE, lambda c: _forwards(c, restart_at_done=False), concept=_BEFORE_CONCEPT, rule=_BEFORE_RULE),
    Mistake(_BEFORE, lambda c: _forwards(c, restart_at_done=True), concept=_BEFORE_CONCEPT, rule=_BEFORE_RULE),
    Mistake("Rewards of the next episode leak into this episode's returns: the sum must restart where an "
            "episode ends (after each step where dones[t] is True).",
            lambda c: {"returns": _per_episode(c["rewards"], np.zeros(len(c["rewards"]), bool), c["gamma"])},
            concept="Episodes are independent games laid one after another in the arrays: the rewards of the "
                    "next game are not the consequence of this game's actions.",
            rule="The last step of an episode (dones[t] True) has G_t = r_t: nothing after it counts."),
    Mistake("The restart at an episode's end is one step off: dones[t] True means the episode ends AFTER "
            "step t, so step t still belongs to it and step t+1 starts afresh.",
            lambda c: {"returns": _per_episode(c["rewards"], np.r_[c["dones"][1:], False], c["gamma"])},
            concept="dones[t] marks the last step of an episode, which belongs to the episode.",
            rule="Where dones[t] is True, G_t = r_t; G_(t+1) is the first return of the next episode."),
    Mistake("Every return is exactly gamma times too small: the reward of step t itself was discounted, "
            "although it is not in the future.", lambda c: {"returns": _ret_ref(c)["returns"] * c["gamma"]},
            concept="The reward at step t is the present: it counts fully in G_t.",
            rule="In G_t, r_t is weighted by gamma**0 = 1."),
]


# -- policy-gradient loss ---------------------------------------------------------------------
def _pg_visible(rng):
    logits = np.array([[1.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    return [dict(name="N=2, 3 actions, advantages [1, -2]", logits=logits, actions=np.array([0, 2]),
                 advantages=np.array([1.0, -2.0])),
            dict(name="N=5, 2 actions", logits=rng.standard_normal((5, 2)), actions=rng.integers(0, 2, 5),
                 advantages=rng.standard_normal(5)),
            dict(name="N=3, large logits (around 800)", logits=rng.standard_normal((3, 4)) + 800,
                 actions=rng.integers(0, 4, 3), advantages=rng.standard_normal(3))]


def _nll(c):
    """Each decision's -log p of its action (reference cross-entropy, one row at a time): (N,)."""
    lg, a = c["logits"], np.asarray(c["actions"])
    return np.array([losses.softmax_cross_entropy(lg[n:n + 1], a[n:n + 1])[0] for n in range(len(a))])


def _pg_ref(c):
    A_ = np.asarray(c["advantages"], dtype=np.float64)
    _, d = losses.softmax_cross_entropy(c["logits"], np.asarray(c["actions"]))
    return {"loss": np.float64(np.mean(A_ * _nll(c))), "dlogits": d * A_[:, None]}


def _pg_scaled(c, k):
    return {"dlogits": _pg_ref(c)["dlogits"] * k}


_pg_mistakes = [
    Mistake("dlogits has the wrong sign: a gradient step against it would make the actions with a positive "
            "advantage LESS likely.", lambda c: _pg_scaled(c, -1),
            concept="The loss is minimised: it must fall when the chosen actions with A > 0 become more "
                    "likely, and dlogits is the gradient of that loss.",
            rule="d log p[n, a] / d logits[n, a] is positive (raising an action's own logit makes it likelier), "
                 "and the loss carries a minus sign in front of A * log p."),
    Mistake("dlogits is exactly N (the batch size) times too large: the loss is a mean over the N decisions.",
            lambda c: _pg_scaled(c, len(c["actions"])),
            concept="The loss averages N per-decision terms, so each decision's share of the gradient carries "
                    "the same factor as its term.",
            rule="L = (1/N) * sum over n of L_n, so dL/dlogits[n] = (1/N) * dL_n/dlogits[n]."),
    Mistake("dlogits does not depend on the advantages: each decision's gradient must be weighted by its own "
            "advantage.", lambda c: {"dlogits": losses.softmax_cross_entropy(c["logits"], c["actions"])[1]},
            concept="The advantage A[n] multiplies decision n's term of the loss; it is a number that does not "
                    "depend on the logits.",
            rule="d (A[n] * u) / d logits[n, k] = A[n] * d u / d logits[n, k] when A[n] is a constant."),
    Mistake("The rows of dlogits do not sum to 0: the chosen action's logit is missing its own term "
            "(log p[n, a] depends on logits[n, a] twice: in the numerator and inside the softmax's sum).",
            lambda c: {"dlogits": losses.softmax(c["logits"]) * c["advantages"][:, None] / len(c["actions"])},
            concept="log p[n, a] = logits[n, a] - log(sum over k of exp(logits[n, k])). Differentiate both pieces.",
            rule="d logits[n, a] / d logits[n, k] is 1 when k == a and 0 otherwise; the log-sum-exp piece gives "
                 "p[n, k] for every k."),
    Mistake("The loss has the wrong sign: it is minimised, so it must fall as the actions with positive "
            "advantage become more likely.", lambda c: {"loss": -_pg_ref(c)["loss"]},
            concept="REINFORCE maximises the advantage-weighted log-probability; a loss to minimise is its "
                    "negative.",
            rule="L = -(1/N) * sum over n of A[n] * log p[n, actions[n]]."),
    Mistake("The loss does not depend on the advantages: each decision's -log p must be weighted by its own "
            "advantage.", lambda c: {"loss": np.float64(np.mean(_nll(c)))},
            concept="A decision's term in the loss is its advantage times its log-probability.",
            rule="L = -(1/N) * sum over n of A[n] * log p[n, actions[n]]."),
    Mistake("The loss is exactly N (the batch size) times too large: it is a sum over the decisions, not a "
            "mean.", lambda c: {"loss": _pg_ref(c)["loss"] * len(c["actions"])},
            concept="The loss is the MEAN over the N decisions.",
            rule="L = -(1/N) * sum over n of A[n] * log p[n, actions[n]]."),
]


_LADDERS = {
    "discounted_returns": Ladder(
        concept="G_t collects the rewards from step t to the end of its episode, each one counted gamma times "
                "less for every step it lies in the future. G_t and G_(t+1) share all their terms but one: a "
                "sweep from the end of the arrays computes every return from the one after it, the same "
                "direction as backpropagation.",
        rule="Write G_t and G_(t+1) as sums and compare them: G_t is r_t plus gamma times what? At the last "
             "step of an episode (dones[t] True, or t = T-1) G_t = r_t: nothing after it belongs to it.",
        formula="returns = zeros(T); running = 0.0; for t in reversed(range(T)): if dones[t]: running = 0.0; "
                "running = rewards[t] + gamma * running; returns[t] = running"),
    "policy_gradient_loss": Ladder(
        concept="The loss is a mean over N decisions of -A[n] * log p[n, actions[n]], p = softmax of the row of "
                "logits. A[n] is a number that does not depend on the logits: a weight. Write log p[n, a] with "
                "the logits of row n only (the chosen logit minus the log of a sum of exps) and differentiate "
                "each piece; the other rows do not depend on logits[n].",
        rule="d log p[n, a] / d logits[n, k] = (1 if k == a else 0) - p[n, k]. Multiply by -A[n] and by the "
             "1/N of the mean. For the loss, take log p from the shifted logits (the row maximum subtracted), "
             "so that nothing overflows.",
        formula="p = softmax(logits); loss = -mean(advantages * log(p[arange(N), actions])); dlogits = p with 1 "
                "subtracted at [arange(N), actions], then times advantages[:, None] / N"),
}


def _checks():
    spec = [
        ("discounted_returns", ("returns",), CALLS["discounted_returns"], _ret_ref, _ret_mistakes,
         _ret_visible, (2, 3)),
        ("policy_gradient_loss", ("loss", "dlogits"), CALLS["policy_gradient_loss"], _pg_ref, _pg_mistakes,
         _pg_visible, (3, 4), dict(batch_size=lambda c: len(c["actions"]))),
    ]
    return visible_and_hidden(A, spec, _LADDERS)


CHECKS = _checks()
