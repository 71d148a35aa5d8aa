# %% [markdown]
# # Exercise 6: policy gradients
#
# **What you learn.** How backpropagation trains an agent when there is no right answer to
# compare with, only rewards: the REINFORCE policy gradient. You compute discounted returns
# (how good each action turned out to be) and derive the loss and its gradient for a policy
# that picks one of several actions by a softmax; then your two functions teach a network to
# balance a pole (CartPole).
#
# **Time:** about 75 minutes (see the note at the end of this cell).
#
# **You write:**
#
# | function | returns | points |
# |---|---|---|
# | `discounted_returns(rewards, dones, gamma)` | `returns: (T,)` | 5 |
# | `policy_gradient_loss(logits, actions, advantages)` | `(loss, dlogits)` | 7 |
#
# **You derive:**
#
# - `discounted_returns`: the recursion that computes every return in one pass, and where it
#   restarts between episodes. Chapter 8 defines the return as a sum and leaves both to you.
# - `policy_gradient_loss`: dL/dlogits of the REINFORCE loss for a softmax policy over K
#   actions, the main derivation of this notebook. Chapter 8 derives it only for a policy with
#   two actions and a sigmoid.
#
# **You may call:** numpy; the forward pass `bplib.losses.softmax` (probabilities, row by row,
# with the row maximum subtracted first); and `bplib.gradcheck` to test your own work.
# Everything else in bplib that computes these results is the course's reference:
# `bplib.losses.softmax_cross_entropy` and `binary_cross_entropy` (they return gradients),
# `bplib.cases.pong.discount_rewards` and `policy_gradient`, the layers' `backward`, and the
# checking code in `bplib.checks`. When your notebook is graded, your functions run again in a
# clean process where those are removed, so a function that calls them scores 0 on that test,
# with a status that says so.
#
# **Hints:** a failed check names the symptom (wrong sign, off by the batch size, rewards that
# leak between episodes, ...). For more, call `hint("discounted_returns")` or
# `hint("policy_gradient_loss")`: each call gives the next level, first the idea, then the
# local rule, and only last the formula. Hints never cost points; the summary at the end
# counts them for your own record.
#
# Run the notebook from the top after a change; the last cell sums up what passes.
#
# *How the time was estimated:* reading, 15 minutes; the returns: a hand example, the
# recursion and the episode ends, about 20 minutes; the loss: five derivation steps at about
# 5 minutes each plus its hand example, about 30 minutes; debugging from the verdicts and the
# CartPole run, about 10 minutes.

# %% locked
import os

import numpy as np

import bplib
from bplib import checks
from bplib.checks import hint
from bplib.layers import Dense, ReLU, Sequential
from bplib.losses import softmax

checks.start("policy_gradient")
FAST = os.environ.get("BPLIB_FAST") == "1"   # set by the graders' tests: a shorter training run

# %% [markdown]
# ## 1. Discounted returns
#
# An action is credited with the rewards that came *after* it, in its own episode, the later
# ones counting less: a reward k steps in the future is weighted by $\gamma^k$, with the
# discount $\gamma$ in [0, 1]. For a step t of an episode that ends at step E:
#
# $$G_t = \sum_{k=0}^{E - t} \gamma^{k}\, r_{t+k} = r_t + \gamma\, r_{t+1} + \dots + \gamma^{E-t} r_E$$
#
# | array | shape | what it is |
# |---|---|---|
# | `rewards` | (T,) floats | the reward after each step, several episodes one after another |
# | `dones` | (T,) bools | True where an episode ends after step t (its last step) |
# | `gamma` | a float | the discount |
# | what you return | (T,) floats | $G_t$ for every step |
#
# If the last step has no done, the episode was cut off there: treat it the same way, as if it
# ended at the last step (nothing more is known).
#
# **Your derivation:**
#
# 1. By hand, for one episode with rewards [1, 1, 1] and $\gamma = 0.9$: write $G_2$, $G_1$
#    and $G_0$ from the sum above.
# 2. Write $G_t$ and $G_{t+1}$ as sums, one under the other. What do you add to which multiple
#    of $G_{t+1}$ to get $G_t$? Which return do you know without knowing any other?
# 3. So in which order can one pass over the arrays compute every return, each from one you
#    already have?
# 4. Two episodes, rewards [1, 2 | 3, 4], dones [False, True, False, True], $\gamma = 0.5$: which
#    rewards does $G_1$ hold? $G_0$? Where must your pass forget what it has summed so far?
#
# A Python loop over t is fine here: each return needs the one after it.

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

# %%
# Step 1 of your derivation: compare with your hand result.
try:
    print("G =", discounted_returns(np.array([1.0, 1.0, 1.0]), np.array([False, False, True]), 0.9).tolist())
except NotImplementedError:
    print("discounted_returns is not written yet.")

# %% check discounted_returns_visible

# %% check discounted_returns_hidden

# %% [markdown]
# ## 2. The policy-gradient loss
#
# The policy is a network that outputs one row of scores per decision, `logits: (N, K)` for
# the K possible actions. The agent picked action $a_n$ with the probabilities of the softmax
# of row n, and afterwards each decision got an *advantage* $A_n$ (its return minus a baseline:
# positive if things went better than usual). REINFORCE makes actions more likely in
# proportion to their advantage. As a loss to minimise, a mean over the N decisions:
#
# $$p[n, k] = \frac{e^{z[n, k]}}{\sum_{j} e^{z[n, j]}}, \qquad
#   L = \frac{1}{N} \sum_{n=1}^{N} L_n, \qquad L_n = -A_n \log p[n, a_n]$$
#
# with $z$ the logits. The advantages come from the returns, not from the logits: for the
# gradient they are fixed numbers.
#
# | array | shape | what it is |
# |---|---|---|
# | `logits` | (N, K) | the policy's scores, before the softmax |
# | `actions` | (N,) ints in [0, K) | the action taken at each decision |
# | `advantages` | (N,) floats | $A_n$ |
# | `loss` | a Python float | L |
# | `dlogits` | (N, K) | dL/dlogits |
#
# **A worked example (two actions and a sigmoid, from chapter 8; not graded).** With one logit
# $z$ per decision and $p = \sigma(z)$ the probability of action 1, the log-probability of
# action 1 is $\log \sigma(z)$ and of action 0 is $\log(1 - \sigma(z))$. Since
# $\sigma'(z) = \sigma(z)(1 - \sigma(z))$,
#
# $$\frac{d}{dz}\bigl(-\log \sigma(z)\bigr) = -(1 - \sigma(z)), \qquad
#   \frac{d}{dz}\bigl(-\log(1 - \sigma(z))\bigr) = \sigma(z),$$
#
# which is $\sigma(z) - a$ in both cases, for the action $a \in \{0, 1\}$; the advantage, a
# constant, multiplies it. Here the policy has K actions and a softmax instead.
#
# **Your derivation** of dL/dlogits, on paper:
#
# 1. Write $\log p[n, a_n]$ as two terms: one holds only $z[n, a_n]$, the other every $z[n, j]$
#    of row n.
# 2. Differentiate $L_n$ with respect to $z[n, k]$, once for $k = a_n$ and once for
#    $k \ne a_n$. Which quantity that you already compute appears?
# 3. Does $L_n$ depend on the logits of another decision $m \ne n$? What does the $\frac1N$ of
#    the mean do?
# 4. By hand, with one decision and three actions: logits [[0, 0, 0]], action 0, advantage 2.
#    What are p, L and dL/dlogits? Then the same logits with advantage -1: which way does a
#    gradient step now push the logit of action 0, and is that what REINFORCE wants? What does
#    each row of your dlogits add up to, and why?
# 5. Vectorise over the batch: one (N, K) array, no loop over n. Indexing with two arrays,
#    `z[np.arange(N), actions]`, picks one entry per row, and you can also assign or subtract
#    through it.
#
# For the loss, take the log of the chosen action's probability without letting anything
# overflow (a visible test has logits around 800; `softmax` already subtracts the row
# maximum). Return the loss as a Python float.

# %% solution
def policy_gradient_loss(logits, actions, advantages):
    """logits: (N, K), actions: (N,) ints, advantages: (N,)  ->  loss: float, dlogits: (N, K)"""
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

# %%
# Step 4 of your derivation: compare with your hand results.
try:
    for adv in (2.0, -1.0):
        loss, dlogits = policy_gradient_loss(np.zeros((1, 3)), np.array([0]), np.array([adv]))
        print(f"advantage {adv:+}: loss = {loss:.4f}, dlogits = {np.round(dlogits, 4).tolist()}")
except NotImplementedError:
    print("policy_gradient_loss is not written yet.")

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
# Hidden tests run when your notebook is graded, on inputs only the grader has: a single step,
# a 200-step episode, a cut-off episode, episodes of one step, gamma 0 and 1; a single decision,
# large logits, zero advantages, and a batch where every decision took the same action.

# %%
checks.summary("policy_gradient");
