"""Worked case: Atari Pong from pixels by policy gradient (REINFORCE), in numpy.

    python -m bplib.cases.pong --hours 3 --seed 0 --out runs/pong          # train, checkpoint every 5 minutes
    python -m bplib.cases.pong --hours 1 --seed 0 --out runs/pong --resume # carry on from the last checkpoint
    python -m bplib.cases.pong --out runs/pong --export book/results/pong  # results for the book (float16 weights)
    python -m bplib.cases.pong --evaluate book/results/pong_sticky_off --sticky 0.25 --eval-episodes 100
                                                     # stored weights in fresh games of another protocol

The policy is a two-layer network from bplib layers (Karpathy, "Pong from
Pixels", 2016)::

    x (N, 6400)  difference of two preprocessed 80x80 frames, values in {-1, 0, 1}
    Dense(6400, H) -> ReLU -> Dense(H, 1) -> logit (N, 1);  p(UP) = sigmoid(logit)

Each step samples UP or DOWN from p(UP). When a point is scored (reward +1 or
-1) the rally is over: every step of that rally gets the discounted return
``G_t = gamma^(T-t) r_T`` (the sum restarts at each point). Returns are
normalised over the batch (a baseline: better-than-average actions are made
more likely, worse-than-average ones less), and the loss
``L = -sum_t A_t log pi(a_t | x_t) / n`` has the gradient
``dL/dlogit_t = (p_t - a_t) A_t / n`` with ``a_t = 1`` for UP: that is the
``dout`` fed to the network's ``backward``.

Several emulators run side by side (``--envs``) so that the policy sees a
batch of frames per forward pass; an update is made as soon as ``--batch-steps``
steps of *finished* rallies are collected. Unfinished rallies wait for the
next update. The game is ``ALE/Pong-v5`` with its defaults: the emulator
repeats each action for 4 frames, and with probability 0.25 a frame repeats
the previous action instead of the chosen one ("sticky actions", the protocol
of published Atari results). ``--sticky 0`` gives the deterministic game of
the course's first run, kept as a labelled comparison.
"""
import argparse
import csv
import json
import os
import time

import numpy as np

from bplib.layers import Dense, ReLU, Sequential, sigmoid_forward
from bplib.optim import RMSProp

UP, DOWN = 2, 3           # ALE Pong's RIGHT and LEFT move the paddle up and down
D = 80 * 80
STICKY = 0.25             # ALE/Pong-v5's repeat_action_probability


# ----------------------------------------------------------------------------
# the pieces a reader can check one by one
# ----------------------------------------------------------------------------
def preprocess(frame):
    """frame: (210, 160, 3) uint8 RGB  ->  (6400,) float32 in {0, 1}.

    Crop the playing field (rows 35..194), keep every other pixel (80x80),
    erase the two background colours, set paddles and ball to 1.
    """
    if not (isinstance(frame, np.ndarray) and frame.shape == (210, 160, 3)):
        raise ValueError(f"preprocess: expected a (210, 160, 3) Atari frame, got "
                         f"{getattr(frame, 'shape', type(frame).__name__)}")
    f = frame[35:195:2, ::2, 0]
    return ((f != 144) & (f != 109)).astype(np.float32).ravel()


def discount_rewards(rewards, gamma=0.99, reset_at_points=True):
    """Discounted returns G_t = r_t + gamma r_(t+1) + gamma^2 r_(t+2) + ...

    rewards: (T,)  ->  G: (T,). In Pong (``reset_at_points``) a reward is +1 or
    -1 where a point ends and 0 elsewhere, and the sum restarts at every point:
    what happens after a point is not to the credit of the moves before it.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    G = np.zeros_like(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        if reset_at_points and rewards[t] != 0:
            running = 0.0              # a new rally: what follows a point is not its doing
        running = rewards[t] + gamma * running
        G[t] = running
    return G


def make_policy(hidden=200, rng=None, input_size=D):
    """Dense(input_size, hidden) -> ReLU -> Dense(hidden, 1): one logit for UP."""
    rng = rng if rng is not None else np.random.default_rng(0)
    policy = Sequential(Dense(input_size, hidden, rng=rng), ReLU(), Dense(hidden, 1, rng=rng))
    # Xavier-like output layer: start with p(UP) close to 1/2 everywhere
    policy[2].params["W"][:] = rng.standard_normal((hidden, 1)).astype(np.float32) / np.sqrt(hidden)
    return policy


def prob_up(policy, x):
    """x: (N, D) float32 -> p(UP): (N,)"""
    return sigmoid_forward(policy.forward(x)[:, 0])


def policy_gradient(policy, x, actions, advantages, chunk=2048):
    """Put dL/dtheta of L = -mean_t A_t log pi(a_t | x_t) into ``policy.grads``.

    x: (n, D) inputs, actions: (n,) 1 for UP / 0 for DOWN, advantages: (n,)
    Runs forward and backward in chunks (the batch can hold ~10^4 frames) and
    adds the chunks' gradients. Returns the loss (a number to watch, not to trust).
    """
    n = len(actions)
    total = {}
    loss = 0.0
    for s in range(0, n, chunk):
        xb = x[s:s + chunk].astype(np.float32)
        a, A = actions[s:s + chunk], advantages[s:s + chunk]
        p = prob_up(policy, xb)
        dlogit = ((p - a) * A / n).astype(np.float32)[:, None]      # (m, 1)
        policy.backward(dlogit)
        loss -= float(np.sum(A * np.log(np.where(a == 1, p, 1 - p) + 1e-8))) / n
        for k, g in policy.grads.items():
            total[k] = total[k] + g if k in total else g.copy()
    for k, g in total.items():                                     # hand the sums to the optimizer
        i, name = k.split(".")
        policy[int(i)].grads[name] = g
    return loss


# ----------------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------------
def save_policy(path, policy, dtype=np.float32, **extra):
    arrays = {k.replace(".", "_"): v.astype(dtype) for k, v in policy.params.items()}
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays, **extra)
    os.replace(tmp, path)


def load_policy(path):
    """Rebuild the policy from a weights file written by ``save_policy``."""
    z = np.load(path)
    hidden = z["0_W"].shape[1]
    policy = make_policy(hidden, input_size=z["0_W"].shape[0])
    for k in policy.params:
        policy.params[k][:] = z[k.replace(".", "_")].astype(np.float32)
    return policy, z


def _save_checkpoint(path, policy, opt, state):
    extra = {f"opt_{k.replace('.', '_')}": v for k, v in opt.state.items()}
    save_policy(path, policy, state=np.array(json.dumps(state)), **extra)


def _load_checkpoint(path, policy, opt):
    policy_loaded, z = load_policy(path)
    for k in policy.params:
        policy.params[k][:] = policy_loaded.params[k]
    for k in policy.params:
        key = f"opt_{k.replace('.', '_')}"
        if key in z:
            opt.state[k] = z[key].copy()
    return json.loads(str(z["state"]))


# ----------------------------------------------------------------------------
# environments
# ----------------------------------------------------------------------------
def make_env(seed, render=False, sticky=STICKY):
    import ale_py
    import gymnasium as gym
    gym.register_envs(ale_py)
    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)   # no start-up banner in logs and pages
    if not 0.0 <= sticky < 1.0:
        raise ValueError(f"make_env: sticky (repeat_action_probability) must be in [0, 1), got {sticky}")
    env = gym.make("ALE/Pong-v5", repeat_action_probability=float(sticky),
                   render_mode="rgb_array" if render else None)
    env.reset(seed=seed)
    return env


class _Runner:
    """One emulator plus what its current episode and rally have collected."""

    def __init__(self, seed, sticky=STICKY):
        self.env = make_env(seed, sticky=sticky)
        obs, _ = self.env.reset(seed=seed)
        self.prev = None
        self.cur = preprocess(obs)
        self.xs, self.acts = [], []           # the rally in progress
        self.ep_reward, self.ep_steps = 0.0, 0

    def observation(self):
        x = self.cur - self.prev if self.prev is not None else np.zeros(D, np.float32)
        return x

    def step(self, action):
        obs, r, term, trunc, _ = self.env.step(UP if action == 1 else DOWN)
        self.prev, self.cur = self.cur, preprocess(obs)
        self.ep_reward += r
        self.ep_steps += 1
        return r, term or trunc

    def reset(self):
        obs, _ = self.env.reset()
        self.prev, self.cur = None, preprocess(obs)
        self.ep_reward, self.ep_steps = 0.0, 0
        self.xs, self.acts = [], []


def play_episode(policy, seed, greedy=False, render=False, max_steps=20000, rng=None, sticky=STICKY):
    """One full game (first to 21). Returns (total reward, frames if render else None).

    ``policy=None`` plays uniformly at random between UP and DOWN.
    """
    rng = rng if rng is not None else np.random.default_rng(seed)
    env = make_env(seed, render=render, sticky=sticky)
    obs, _ = env.reset(seed=seed)
    prev, total, frames = None, 0.0, []
    for _ in range(max_steps):
        cur = preprocess(obs)
        x = cur - prev if prev is not None else np.zeros(D, np.float32)
        prev = cur
        if policy is None:
            up = rng.random() < 0.5
        else:
            p = prob_up(policy, x[None])[0]
            up = p > 0.5 if greedy else rng.random() < p
        if render:
            frames.append(env.render())
        obs, r, term, trunc, _ = env.step(UP if up else DOWN)
        total += r
        if term or trunc:
            break
    env.close()
    return total, (frames if render else None)


# ----------------------------------------------------------------------------
# training loop
# ----------------------------------------------------------------------------
def learning_rate(steps, lr=1e-3, lr_final=None, anneal_steps=12_000_000):
    """The learning rate after ``steps`` moves: ``lr`` falling linearly to ``lr_final``
    over the first ``anneal_steps`` moves, then held there (``lr_final=None``: constant ``lr``).

    A large step finds a policy that beats the built-in player quickly; a small one
    then stops each batch's noise from undoing what the earlier ones learned.
    """
    if lr_final is None:
        return lr
    frac = min(1.0, steps / anneal_steps)
    return lr + frac * (lr_final - lr)


def train(out="runs/pong", hours=2.0, episodes=None, seed=0, envs=6, hidden=128, lr=1e-3, decay=0.99,
          gamma=0.99, batch_steps=5000, resume=False, checkpoint_minutes=5.0, quiet=False, sticky=STICKY,
          lr_final=None, anneal_steps=12_000_000):
    from tqdm import tqdm
    os.makedirs(out, exist_ok=True)
    ckpt = os.path.join(out, "checkpoint.npz")
    metrics_path = os.path.join(out, "metrics.csv")
    rng = np.random.default_rng(seed)
    policy = make_policy(hidden, rng=np.random.default_rng(seed))
    opt = RMSProp(policy, lr=lr, decay=decay, eps=1e-5)
    state = dict(episode=0, updates=0, seconds=0.0, steps=0, seed=seed, sticky=sticky,
                 lr=lr, lr_final=lr_final, anneal_steps=anneal_steps)
    rewards_hist = []
    if resume and os.path.exists(ckpt):
        state = _load_checkpoint(ckpt, policy, opt)
        if state.get("sticky", 0.0) != sticky:
            raise ValueError(f"--resume: {ckpt} was trained with sticky={state.get('sticky', 0.0)}, "
                             f"not {sticky}; resume with the same --sticky or start a new --out")
        rng = np.random.default_rng([seed, state["updates"]])       # a fresh but reproducible stream
        state.update(lr=lr, lr_final=lr_final, anneal_steps=anneal_steps)  # the schedule this command gives
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["episode"]) <= state["episode"]]
            rewards_hist = [float(r["reward"]) for r in rows]
            with open(metrics_path, "w", newline="") as f:          # drop episodes after the checkpoint
                w = csv.writer(f)
                w.writerow(["episode", "reward", "steps", "mean_reward_100", "updates", "seconds"])
                for r in rows:
                    w.writerow([r["episode"], r["reward"], r["steps"], r["mean_reward_100"], r["updates"],
                                r["seconds"]])
        if not quiet:
            print(f"resumed from {ckpt}: episode {state['episode']}, {state['updates']} updates, "
                  f"{state['seconds'] / 3600:.2f} h trained")
    elif os.path.exists(metrics_path):
        os.remove(metrics_path)
    new_file = not os.path.exists(metrics_path)
    mf = open(metrics_path, "a", newline="")
    writer = csv.writer(mf)
    if new_file:
        writer.writerow(["episode", "reward", "steps", "mean_reward_100", "updates", "seconds"])

    runners = [_Runner(seed * 1000 + state["episode"] + i, sticky) for i in range(envs)]
    pool_x, pool_a, pool_G = [], [], []
    pool_n = 0
    t0 = time.time()
    seconds0 = state["seconds"]
    last_ckpt = t0
    deadline = t0 + hours * 3600 if hours else float("inf")
    target_ep = (state["episode"] + episodes) if episodes else None
    bar = tqdm(total=episodes, disable=quiet, unit="ep", dynamic_ncols=True)

    def mean100():
        return float(np.mean(rewards_hist[-100:])) if rewards_hist else float("nan")

    done_training = False
    while not done_training:
        X = np.stack([r.observation() for r in runners])                # (envs, 6400)
        p = prob_up(policy, X)
        acts = (rng.random(len(runners)) < p).astype(np.int8)
        for i, run in enumerate(runners):
            run.xs.append(X[i].astype(np.int8))
            run.acts.append(acts[i])
            r, over = run.step(acts[i])
            state["steps"] += 1
            if r != 0:                                                   # a point: the rally is complete
                T = len(run.acts)
                G = r * gamma ** np.arange(T - 1, -1, -1)              # = discount_rewards([0, .., 0, r])
                pool_x.append(np.stack(run.xs))
                pool_a.append(np.array(run.acts, dtype=np.int8))
                pool_G.append(G)
                pool_n += T
                run.xs, run.acts = [], []
            if over:
                state["episode"] += 1
                rewards_hist.append(run.ep_reward)
                state["seconds"] = seconds0 + time.time() - t0
                writer.writerow([state["episode"], run.ep_reward, run.ep_steps, f"{mean100():.3f}",
                                 state["updates"], f"{state['seconds']:.1f}"])
                mf.flush()
                bar.update(1)
                bar.set_postfix(reward=run.ep_reward, mean100=f"{mean100():.2f}", updates=state["updates"])
                run.reset()
                if target_ep is not None and state["episode"] >= target_ep:
                    done_training = True
        if pool_n >= batch_steps:
            x = np.concatenate(pool_x)
            a = np.concatenate(pool_a).astype(np.float32)
            G = np.concatenate(pool_G)
            A = (G - G.mean()) / (G.std() + 1e-8)
            policy_gradient(policy, x, a, A)
            opt.lr = learning_rate(state["steps"], lr, lr_final, anneal_steps)
            opt.step()
            state["updates"] += 1
            pool_x, pool_a, pool_G, pool_n = [], [], [], 0
        now = time.time()
        if now - last_ckpt > checkpoint_minutes * 60 or now > deadline or done_training:
            state["seconds"] = seconds0 + now - t0
            _save_checkpoint(ckpt, policy, opt, state)
            last_ckpt = now
            if now > deadline:
                done_training = True
    bar.close()
    mf.close()
    save_policy(os.path.join(out, "weights.npz"), policy)
    for run in runners:
        run.env.close()
    return dict(case="pong", sticky=sticky, episodes=state["episode"], updates=state["updates"], steps=state["steps"],
                mean_reward_100=mean100(), train_seconds=round(state["seconds"], 1),
                train_hours=round(state["seconds"] / 3600, 3))


def evaluate(weights, episodes=100, seed=12345, envs=6, greedy=False, sticky=STICKY):
    """Scores of the stored policy in ``episodes`` fresh games (game seeds seed, seed+1, ...),
    played ``envs`` at a time; actions are sampled from the policy unless ``greedy``.
    Returns the list of final scores (ours - theirs)."""
    policy, _ = load_policy(weights) if isinstance(weights, (str, os.PathLike)) else (weights, None)
    rng = np.random.default_rng(seed)
    next_game = 0
    runners, scores = [], []
    while len(scores) < episodes:
        while len(runners) < envs and next_game < episodes:
            runners.append(_Runner(seed + next_game, sticky))
            next_game += 1
        X = np.stack([r.observation() for r in runners])
        p = prob_up(policy, X)
        acts = (p > 0.5) if greedy else (rng.random(len(runners)) < p)
        for run, a in zip(list(runners), acts):
            _, over = run.step(int(a))
            if over:
                scores.append(run.ep_reward)
                run.env.close()
                runners.remove(run)
    return scores


def mean_last_100(rewards):
    """rewards: (games,) -> (games,): the mean of each game's score and the 99 before it (fewer at the start)."""
    c = np.concatenate([[0.0], np.cumsum(np.asarray(rewards, dtype=np.float64))])
    i = np.arange(1, len(c))
    return (c[i] - c[np.maximum(0, i - 100)]) / np.minimum(i, 100)


def first_reached(rewards, seconds, levels=(-10, 0, 15)):
    """When the mean of the last 100 games first reached each level.

    rewards, seconds: (games,), each game's score and the training seconds at its end.
    Returns {level: {"games": g, "hours": h}} with None for a level never reached.
    """
    mean100, seconds = mean_last_100(rewards), np.asarray(seconds, dtype=np.float64)
    out = {}
    for level in levels:
        i = np.flatnonzero(mean100 >= level)
        out[level] = (dict(games=int(i[0]) + 1, hours=round(float(seconds[i[0]]) / 3600, 3)) if len(i)
                      else None)
    return out


def export(run_dir, dest, eval_episodes=0):
    """Copy a run's results to ``dest`` for the book: metrics.csv, weights.npz
    (float16, under 2 MB for 128 hidden units) and result.json."""
    os.makedirs(dest, exist_ok=True)
    policy, z = load_policy(os.path.join(run_dir, "checkpoint.npz"))
    state = json.loads(str(z["state"]))
    save_policy(os.path.join(dest, "weights.npz"), policy, dtype=np.float16)
    with open(os.path.join(run_dir, "metrics.csv")) as f:       # the episodes up to the checkpoint
        lines = f.read().strip().splitlines()
    lines = lines[:1] + [line for line in lines[1:] if int(line.split(",")[0]) <= state["episode"]]
    with open(os.path.join(dest, "metrics.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    rewards = [float(line.split(",")[1]) for line in lines[1:]]
    res = dict(case="pong", sticky=state.get("sticky", 0.0), episodes=state["episode"], updates=state["updates"], steps=state["steps"],
               **{k: state[k] for k in ("lr", "lr_final", "anneal_steps") if k in state},
               mean_reward_100=round(float(np.mean(rewards[-100:])), 3),
               first_100_mean_reward=round(float(np.mean(rewards[:100])), 3),
               best_mean_reward_100=round(max(float(np.mean(rewards[i - 100:i])) for i in range(100, len(rewards) + 1)), 3)
               if len(rewards) >= 100 else None,
               train_seconds=round(state["seconds"], 1), train_hours=round(state["seconds"] / 3600, 3),
               first_reached={str(k): v for k, v in first_reached(
                   rewards, [float(line.split(",")[5]) for line in lines[1:]]).items()})
    if eval_episodes:
        scores = evaluate(os.path.join(dest, "weights.npz"), eval_episodes, sticky=res["sticky"])
        res["eval_mean_reward"] = round(float(np.mean(scores)), 3)
        res["eval_episodes"] = eval_episodes
        res["eval_games_won"] = int(np.sum(np.array(scores) > 0))
    with open(os.path.join(dest, "result.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def evaluate_stored(dest, episodes=100, sticky=STICKY):
    """Play ``dest``/weights.npz in ``episodes`` fresh games with sticky actions ``sticky`` and
    record the result in ``dest``/result.json as ``eval_under_sticky_<sticky>``."""
    scores = np.array(evaluate(os.path.join(dest, "weights.npz"), episodes, sticky=sticky))
    path = os.path.join(dest, "result.json")
    with open(path) as f:
        res = json.load(f)
    res[f"eval_under_sticky_{sticky:g}"] = dict(mean_reward=round(float(scores.mean()), 3), episodes=episodes,
                                                games_won=int(np.sum(scores > 0)),
                                                min=float(scores.min()), max=float(scores.max()))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/pong", help="folder for checkpoint.npz, metrics.csv, weights.npz")
    ap.add_argument("--hours", type=float, default=3.0, help="wall-clock budget for this run (0 = no limit)")
    ap.add_argument("--episodes", type=int, default=None, help="stop after this many more episodes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--envs", type=int, default=6, help="emulators played side by side")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-final", type=float, default=None,
                    help="anneal the learning rate linearly from --lr to this over --anneal-steps moves")
    ap.add_argument("--anneal-steps", type=int, default=12_000_000)
    ap.add_argument("--gamma", type=float, default=0.99)
    ap.add_argument("--batch-steps", type=int, default=5000, help="finished-rally steps per update")
    ap.add_argument("--sticky", type=float, default=STICKY,
                    help="repeat_action_probability (0.25 = the v5 default; 0 = the deterministic game)")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0)
    ap.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz if it exists")
    ap.add_argument("--eval-episodes", type=int, default=0, help="after training, play this many fresh games")
    ap.add_argument("--export", metavar="DEST", help="do not train: copy OUT's results to DEST for the book")
    ap.add_argument("--evaluate", metavar="DEST", help="do not train: play DEST/weights.npz in --eval-episodes "
                    "fresh games with --sticky, and add the result to DEST/result.json")
    args = ap.parse_args(argv)
    if args.evaluate:
        res = evaluate_stored(args.evaluate, args.eval_episodes or 100, args.sticky)
        print(json.dumps(res))
        return res
    if args.export:
        res = export(args.out, args.export, args.eval_episodes)
        print(json.dumps(res))
        return res
    res = train(out=args.out, hours=args.hours, episodes=args.episodes, seed=args.seed, envs=args.envs,
                hidden=args.hidden, lr=args.lr, gamma=args.gamma, batch_steps=args.batch_steps,
                resume=args.resume, checkpoint_minutes=args.checkpoint_minutes, sticky=args.sticky,
                lr_final=args.lr_final, anneal_steps=args.anneal_steps)
    if args.eval_episodes:
        res["eval_mean_reward"] = float(np.mean(evaluate(os.path.join(args.out, "weights.npz"), args.eval_episodes,
                                                         sticky=args.sticky)))
        res["eval_episodes"] = args.eval_episodes
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    main()
