# %% [markdown]
# # Exercise 6: policy gradients
#
# **What you learn.** How backpropagation trains an agent when there is no right answer to
# compare with, only rewards: the REINFORCE policy gradient. You compute discounted returns
# (how good each action turned out to be) and the gradient of the policy loss for a softmax
# policy; then your two functions teach a network to balance a pole (CartPole).
#
# **Time:** about 60 minutes.
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `discounted_returns(rewards, dones, gamma)` | `returns: (T,)` | 5 |
# | `policy_gradient_loss(logits, actions, advantages)` | `(loss, dlogits)` | 7 |
#
# Run the notebook from the top after a change; the last cell sums up what passes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.layers import Dense, ReLU, Sequential

checks.start("policy_gradient")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a shorter training run

# %% [markdown]
# ## 1. Discounted returns
#
# An action is credited with the rewards that came *after* it, the later ones discounted by
# `gamma` in [0, 1] per step. Computed backwards in one pass:
#
# $$G_t = r_t + \gamma\, G_{t+1}, \qquad G_t = r_t \text{ at the last step of an episode}$$
#
# The arrays hold several episodes one after another: `dones[t]` is True when an episode ends
# after step t, and the running return restarts from 0 there. (If the last step has no `done`,
# the episode was cut off: treat it the same way, G = r at the last step.)

# %% solution
def discounted_returns(rewards, dones, gamma):
    """rewards: (T,) floats, dones: (T,) bools, gamma: float  ->  returns: (T,) floats"""
    ### BEGIN SOLUTION
    returns = np.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        if dones[t]:
            running = 0.0
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns
    ### END SOLUTION

# %% check discounted_returns_visible

# %% check discounted_returns_hidden

# %% [markdown]
# ## 2. The policy-gradient loss
#
# The policy is a network that outputs `logits: (N, A)` for the `A` possible actions; the agent
# samples action `a_n` with probability `p = softmax(logits)`. REINFORCE makes actions more
# likely in proportion to their *advantage* `A_n` (the return, minus a baseline). As a loss to
# minimise, and its gradient (the softmax cross-entropy gradient of exercise 3, each row
# weighted by its advantage):
#
# $$L = -\frac{1}{N}\sum_n A_n \log p_{n, a_n}, \qquad
#   \frac{\partial L}{\partial \text{logits}_n} = \frac{A_n}{N}\,\bigl(p_n - \text{onehot}(a_n)\bigr)$$
#
# Shift logits by their row maximum before `exp`. Return the loss as a Python float.

# %% solution
def policy_gradient_loss(logits, actions, advantages):
    """logits: (N, A), actions: (N,) ints, advantages: (N,)  ->  loss: float, dlogits: (N, A)"""
    ### BEGIN SOLUTION
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -np.mean(advantages * log_p[np.arange(N), actions])
    dlogits = np.exp(log_p)
    dlogits[np.arange(N), actions] -= 1
    dlogits *= advantages[:, None] / N
    return float(loss), dlogits
    ### END SOLUTION

# %% check policy_gradient_loss_visible

# %% check policy_gradient_loss_hidden

# %% [markdown]
# ## 3. Balance a pole with your gradient
#
# CartPole (gymnasium): push a cart left or right to keep a pole upright; +1 reward per step,
# at most 500 steps. The policy is a small network, 4 observations -> 32 -> 2 logits. Each
# update plays 8 episodes, computes the returns with your `discounted_returns`, normalises
# them into advantages, and backpropagates your `policy_gradient_loss`. A random policy lasts
# about 20 steps; after 40 updates (a few seconds) it should last about 100 or more.

# %%
import gymnasium as gym

def play(env, model, rng, episodes):
    obs_all, act_all, rew_all, done_all, lengths = [], [], [], [], []
    for _ in range(episodes):
        obs, _ = env.reset(seed=int(rng.integers(1 << 31)))
        done, T = False, 0
        while not done:
            p = bplib.losses.softmax(model.forward(obs[None].astype(np.float64)))[0]
            a = int(rng.choice(2, p=p))
            next_obs, r, terminated, truncated, _ = env.step(a)
            done = terminated or truncated
            obs_all.append(obs); act_all.append(a); rew_all.append(r); done_all.append(done)
            obs, T = next_obs, T + 1
        lengths.append(T)
    return (np.array(obs_all), np.array(act_all), np.array(rew_all), np.array(done_all), lengths)

def train_cartpole(updates=40, episodes=8, gamma=0.99, seed=0):
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1")
    model = Sequential(Dense(4, 32, rng=rng, dtype=np.float64), ReLU(), Dense(32, 2, rng=rng, dtype=np.float64))
    opt = bplib.optim.Adam(model, lr=0.01)
    for u in range(1, updates + 1):
        obs, actions, rewards, dones, lengths = play(env, model, rng, episodes)
        G = discounted_returns(rewards, dones, gamma)
        adv = (G - G.mean()) / (G.std() + 1e-8)             # baseline and scale: lower variance
        loss, dlogits = policy_gradient_loss(model.forward(obs), actions, adv)
        model.backward(dlogits)
        opt.step()
        if u % 10 == 0 or u == updates:
            print(f"update {u:3d}: mean episode length {np.mean(lengths):6.1f}")
    return np.mean(lengths)

if checks.passed("discounted_returns_visible", "policy_gradient_loss_visible"):
    mean_length = train_cartpole(updates=3, episodes=3) if FAST else train_cartpole()
else:
    print("Make both functions pass their visible tests first.")

# %% [markdown]
# ## Summary
#
# Hidden tests (a single step, 200-step and cut-off episodes, gamma 0 and 1, a single decision,
# large logits, zero advantages) run when your notebook is graded.

# %%
checks.summary("policy_gradient");
