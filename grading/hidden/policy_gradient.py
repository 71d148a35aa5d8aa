"""Hidden cases of policy_gradient: single steps, long and cut-off episodes, gamma 0 and 1, large logits."""
import numpy as np

from bplib.checks.policy_gradient import _episodes


def discounted_returns(rng):
    return [_episodes(rng, [1], 0.99, "a single step"),
            _episodes(rng, [200], 0.99, "one long episode, T=200"),
            _episodes(rng, [5, 1, 7, 3], 0.9, "four episodes, one of length 1"),
            _episodes(rng, [6, 4], 0.0, "gamma = 0: the return is the reward"),
            _episodes(rng, [4, 5], 1.0, "gamma = 1: plain sums"),
            _episodes(rng, [4, 6], 0.8, "the last episode is cut off (no done at the end)", last_done=False),
            _episodes(rng, [1, 1, 1, 2], 0.5, "episodes of one step each, then one of two")]


def policy_gradient_loss(rng):
    return [dict(name="a single decision: N=1, 6 actions", logits=rng.standard_normal((1, 6)),
                 actions=np.array([4]), advantages=np.array([2.5])),
            dict(name="N=100, 4 actions", logits=rng.standard_normal((100, 4)) * 2,
                 actions=rng.integers(0, 4, 100), advantages=rng.standard_normal(100)),
            dict(name="large logits (around 800): exp overflows without care",
                 logits=rng.standard_normal((8, 3)) * 3 + 800, actions=rng.integers(0, 3, 8),
                 advantages=rng.standard_normal(8)),
            dict(name="all advantages zero: no gradient", logits=rng.standard_normal((4, 3)),
                 actions=rng.integers(0, 3, 4), advantages=np.zeros(4)),
            dict(name="two actions, every action the same", logits=rng.standard_normal((6, 2)),
                 actions=np.ones(6, dtype=np.int64), advantages=rng.standard_normal(6))]


HIDDEN = {"discounted_returns": discounted_returns, "policy_gradient_loss": policy_gradient_loss}

# bplib.losses.softmax is a forward pass (probabilities, no gradient): the loss may use it. Nothing else of
# the reference: not bplib.losses.softmax_cross_entropy or binary_cross_entropy (they return gradients),
# not bplib.cases.pong.discount_rewards or policy_gradient.
ALLOWED = ["bplib.losses.softmax"]
