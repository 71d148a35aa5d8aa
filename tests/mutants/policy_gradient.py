"""Wrong implementations of policy_gradient that real learners write (see chain_rule.py).

``expect``: a word of the failing verdict (the symptom); ``concept``: a word of the level-1 hint that
hint("<function>") prints after that failure.
"""
MUTANTS = [
    # -- discounted returns ----------------------------------------------------------------------
    dict(name="returns_not_discounted", function="discounted_returns",
         replace=("running = rewards[t] + gamma * running", "running = rewards[t] + running"),
         expect="not discounted", concept="gamma"),
    dict(name="returns_accumulated_forward", function="discounted_returns",
         replace=("for t in reversed(range(len(rewards))):", "for t in range(len(rewards)):"),
         expect="BEFORE", concept="credited"),
    dict(name="returns_not_reset_between_episodes", function="discounted_returns",
         replace=("if dones[t]:\n            running = 0.0", "pass"), expect="leak", concept="independent"),
    dict(name="returns_reset_one_step_late", function="discounted_returns",
         replace=("if dones[t]:\n            running = 0.0\n        running = rewards[t] + gamma * running\n"
                  "        returns[t] = running",
                  "running = rewards[t] + gamma * running\n        returns[t] = running\n"
                  "        if dones[t]:\n            running = 0.0"),
         expect="one step off", concept="last step of an episode"),
    dict(name="returns_own_reward_discounted", function="discounted_returns",
         replace=("running = rewards[t] + gamma * running", "running = gamma * (rewards[t] + running)"),
         expect="gamma times too small", concept="present"),
    # -- the loss and its gradient ----------------------------------------------------------------
    dict(name="pg_sign_flipped", function="policy_gradient_loss",
         replace=("dlogits *= advantages[:, None] / N", "dlogits *= -advantages[:, None] / N"),
         expect="wrong sign", concept="minimised"),
    dict(name="pg_advantage_ignored", function="policy_gradient_loss",
         replace=("dlogits *= advantages[:, None] / N", "dlogits /= N"),
         expect="does not depend on the advantages", concept="multiplies"),
    dict(name="pg_no_1_over_N", function="policy_gradient_loss",
         replace=("dlogits *= advantages[:, None] / N", "dlogits *= advantages[:, None]"),
         expect="times too large", concept="averages"),
    dict(name="pg_onehot_not_subtracted", function="policy_gradient_loss",
         replace=("dlogits[np.arange(N), actions] -= 1", "pass"), expect="sum to 0", concept="pieces"),
    dict(name="pg_loss_sign_flipped", function="policy_gradient_loss",
         replace=("loss = -np.mean(", "loss = np.mean("), expect="loss has the wrong sign", concept="REINFORCE"),
    dict(name="pg_loss_summed", function="policy_gradient_loss",
         replace=("loss = -np.mean(advantages * log_p[np.arange(N), actions])",
                  "loss = -np.sum(advantages * log_p[np.arange(N), actions])"),
         expect="not a mean", concept="MEAN"),
    dict(name="pg_loss_without_advantages", function="policy_gradient_loss",
         replace=("loss = -np.mean(advantages * log_p[np.arange(N), actions])",
                  "loss = -np.mean(log_p[np.arange(N), actions])"),
         expect="loss does not depend", concept="advantage times"),
    dict(name="pg_no_max_shift", function="policy_gradient_loss",
         replace=("z = logits - logits.max(axis=1, keepdims=True)", "z = logits"), expect="overflowing exp",
         concept="weight"),
]
