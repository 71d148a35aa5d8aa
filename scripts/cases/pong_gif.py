"""Make book/results/pong/play.gif: the trained policy (left) next to a random one (right).

    python scripts/cases/pong_gif.py [--weights book/results/pong/weights.npz] [--steps 700]

Both agents play the same game seed; actions are sampled from the policy with a
fixed seed, so the GIF is the same on every run. Green is our agent (the right
paddle in Pong); the score at the top is the game's own.
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw

from bplib.cases.pong import D, DOWN, UP, load_policy, make_env, preprocess, prob_up


def play_frames(policy, seed, steps, rng):
    """Frames (steps, 210, 160, 3) of one game and its running score (ours - theirs)."""
    env = make_env(seed, render=False)
    obs, _ = env.reset(seed=seed)
    prev, frames, scores, score = None, [], [], [0, 0]
    for _ in range(steps):
        cur = preprocess(obs)
        x = cur - prev if prev is not None else np.zeros(D, np.float32)
        prev = cur
        p = prob_up(policy, x[None])[0] if policy is not None else 0.5
        obs, r, term, trunc, _ = env.step(UP if rng.random() < p else DOWN)
        score[0 if r > 0 else 1] += r != 0
        frames.append(obs)
        scores.append(tuple(score))
        if term or trunc:
            break
    env.close()
    return frames, scores


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--weights", default="book/results/pong/weights.npz")
    ap.add_argument("--out", default="book/results/pong/play.gif")
    ap.add_argument("--steps", type=int, default=700, help="agent steps (4 frames each) to show")
    ap.add_argument("--every", type=int, default=2, help="keep every n-th step")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    policy, _ = load_policy(args.weights)
    trained, s1 = play_frames(policy, args.seed, args.steps, np.random.default_rng(args.seed))
    random, s2 = play_frames(None, args.seed, args.steps, np.random.default_rng(args.seed))
    n = min(len(trained), len(random))
    images = []
    for t in range(0, n, args.every):
        canvas = Image.new("RGB", (2 * 160 + 8, 210 + 16), "white")
        canvas.paste(Image.fromarray(trained[t]), (0, 16))
        canvas.paste(Image.fromarray(random[t]), (168, 16))
        d = ImageDraw.Draw(canvas)
        d.text((4, 2), f"trained  {s1[t][0]}:{s1[t][1]}", fill=(0, 110, 0))
        d.text((172, 2), f"random  {s2[t][0]}:{s2[t][1]}", fill=(160, 0, 0))
        images.append(canvas.convert("P", palette=Image.ADAPTIVE, colors=32))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    images[0].save(args.out, save_all=True, append_images=images[1:], duration=50, loop=0, optimize=True)
    print(f"wrote {args.out}: {len(images)} frames, {os.path.getsize(args.out) / 1e6:.2f} MB, "
          f"score trained {s1[n - 1]}, random {s2[n - 1]} after {n} steps")


if __name__ == "__main__":
    main()
