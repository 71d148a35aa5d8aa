"""Wrong implementations of policy_gradient that real learners write (see chain_rule.py)."""
MUTANTS = [
    dict(name="returns_not_discounted", function="discounted_returns",
         replace=("running = rewards[t] + gamma * running", "running = rewards[t] + running"),
         expect="not discounted"),
    dict(name="returns_accumulated_forward", function="discounted_returns",
         replace=("for t in reversed(range(len(rewards))):", "for t in range(len(rewards)):"), expect="backwards"),
    dict(name="returns_not_reset_between_episodes", function="discounted_returns",
         replace=("if dones[t]:\n            running = 0.0", "pass"), expect="end of each episode"),
    dict(name="pg_sign_flipped", function="policy_gradient_loss",
         replace=("dlogits *= advantages[:, None] / N", "dlogits *= -advantages[:, None] / N"), expect="sign flipped"),
    dict(name="pg_advantage_ignored", function="policy_gradient_loss",
         replace=("dlogits *= advantages[:, None] / N", "dlogits /= N"), expect="advantages are not applied"),
    dict(name="pg_no_1_over_N", function="policy_gradient_loss",
         replace=("dlogits *= advantages[:, None] / N", "dlogits *= advantages[:, None]"), expect="1/N"),
    dict(name="pg_onehot_not_subtracted", function="policy_gradient_loss",
         replace=("dlogits[np.arange(N), actions] -= 1", "pass"), expect="one-hot"),
]
