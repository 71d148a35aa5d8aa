"""The three worked cases: each model learns (on a small slice, in seconds) and
the weights stored under book/results/ reproduce the accuracy the book shows."""
import json
import os

import numpy as np
import pytest

from bplib.losses import binary_cross_entropy, softmax_cross_entropy
from bplib.optim import Adam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "book", "results")


def _result(case):
    with open(os.path.join(RESULTS, case, "result.json")) as f:
        return json.load(f)


# ----------------------------------------------------------------------------
# MNIST convnet
# ----------------------------------------------------------------------------
def test_mnist_cnn_learns_from_2000_digits():
    """Two passes over 2,000 digits: softmax regression on the pixels reaches 0.83
    with the same data and steps; the convnet must do clearly better."""
    from bplib.cases import mnist
    (xtr, ytr), (xte, yte) = mnist.load_mnist()
    x, y = mnist.to_input(xtr[:2000]), ytr[:2000]
    model = mnist.build_model(16, 32, 64, rng=np.random.default_rng(0))
    opt = Adam(model, lr=2e-3)
    rng = np.random.default_rng(0)
    for _ in range(2):
        order = rng.permutation(2000)
        for s in range(0, 2000, 32):
            idx = order[s:s + 32]
            _, dlogits = softmax_cross_entropy(model.forward(x[idx]), y[idx])
            model.backward(dlogits)
            opt.step()
    acc = mnist.accuracy(model, mnist.to_input(xte[:2000]), yte[:2000])
    assert acc > 0.90, f"convnet reached only {acc:.3f} on 2,000 test digits after two passes over 2,000"


def test_mnist_random_shift_moves_digits_and_keeps_their_ink():
    from bplib.cases.mnist import random_shift
    x = np.full((2, 1, 28, 28), -0.5, np.float32)       # background, as random_shift's fill
    x[:, 0, 10:18, 10:18] = 1.0
    out = random_shift(x, 2, np.random.default_rng(3), fill=-0.5)
    assert out.shape == x.shape
    assert not np.array_equal(out, x)
    np.testing.assert_allclose(out.sum(axis=(1, 2, 3)), x.sum(axis=(1, 2, 3)))   # nothing falls off
    assert random_shift(x, 0, None) is x


def test_mnist_stored_weights_reproduce_the_stored_accuracy():
    from bplib.cases import mnist
    stored = _result("mnist")
    model = mnist.load_weights(os.path.join(RESULTS, "mnist", "weights.npz"))
    _, (xte, yte) = mnist.load_mnist()
    acc = mnist.accuracy(model, mnist.to_input(xte), yte)
    assert abs(acc - stored["test_accuracy"]) <= 3e-4, (acc, stored["test_accuracy"])
    assert acc >= 0.99
    assert os.path.getsize(os.path.join(RESULTS, "mnist", "weights.npz")) < 2_000_000


# ----------------------------------------------------------------------------
# IMDB LSTM
# ----------------------------------------------------------------------------
def _order_task(n, rng, vocab=12, max_len=12):
    """Label 1 if token 2 comes before token 3, else 0; filler tokens 4.., padded with 0 at the end.
    A bag of words cannot solve it: both classes hold the same tokens."""
    lengths = rng.integers(4, max_len + 1, size=n)
    ids = np.zeros((n, max_len), dtype=np.int64)
    y = rng.integers(0, 2, size=n)
    for i, L in enumerate(lengths):
        ids[i, :L] = rng.integers(4, vocab, size=L)
        a, b = np.sort(rng.choice(L, size=2, replace=False))
        ids[i, a], ids[i, b] = (2, 3) if y[i] else (3, 2)
    return ids, lengths, y


def test_lstm_classifier_learns_token_order():
    from bplib.cases.imdb import SentimentLSTM, trim, bucket_batches
    rng = np.random.default_rng(0)
    ids, lengths, y = _order_task(2000, rng)
    model = SentimentLSTM(12, 8, 16, rng=np.random.default_rng(0))
    opt = Adam(model, lr=1e-2)
    for epoch in range(6):
        for idx in bucket_batches(lengths, 32, rng):
            _, dlogits = binary_cross_entropy(model.forward(*trim(ids, lengths, idx)), y[idx])
            model.backward(dlogits)
            opt.step()
    ids_t, len_t, y_t = _order_task(500, np.random.default_rng(1))
    acc = float(((model.forward(ids_t, len_t) > 0) == y_t).mean())
    assert acc > 0.95, f"LSTM classifier reached only {acc:.3f} on the token-order task"


def test_lstm_classifier_ignores_padding():
    from bplib.cases.imdb import SentimentLSTM
    rng = np.random.default_rng(0)
    ids, lengths, _ = _order_task(5, rng)
    model = SentimentLSTM(12, 8, 16, rng=rng)
    out = model.forward(ids, lengths)
    longer = np.concatenate([ids, np.zeros((5, 7), np.int64)], axis=1)      # more padding
    np.testing.assert_allclose(model.forward(longer, lengths), out, rtol=1e-5, atol=1e-6)
    garbage = longer.copy()
    garbage[np.arange(longer.shape[1])[None, :] >= lengths[:, None]] = 7      # pad with a real token
    np.testing.assert_allclose(model.forward(garbage, lengths), out, rtol=1e-5, atol=1e-6)


def test_lstm_classifier_gradients_match_numerical():
    from bplib.cases.imdb import SentimentLSTM
    rng = np.random.default_rng(1)
    model = SentimentLSTM(20, 5, 4, rng=rng, dtype=np.float64)
    ids = rng.integers(1, 20, (3, 7))
    lengths = np.array([7, 3, 5])
    y = np.array([1, 0, 1])
    _, d = binary_cross_entropy(model.forward(ids, lengths), y)
    model.backward(d)
    for key, p in model.params.items():
        g = model.grads[key]
        for i in [tuple(rng.integers(0, s) for s in p.shape) for _ in range(5)]:
            old = p[i]
            p[i] = old + 1e-6
            up = binary_cross_entropy(model.forward(ids, lengths), y)[0]
            p[i] = old - 1e-6
            down = binary_cross_entropy(model.forward(ids, lengths), y)[0]
            p[i] = old
            assert abs((up - down) / 2e-6 - g[i]) < 1e-6 + 1e-4 * abs(g[i]), (key, i)


def test_lstm_classifier_rejects_bad_lengths():
    from bplib.cases.imdb import SentimentLSTM
    model = SentimentLSTM(12, 4, 4)
    with pytest.raises(ValueError, match="lengths"):
        model.forward(np.ones((2, 5), np.int64), np.array([0, 5]))
    with pytest.raises(ValueError, match="lengths"):
        model.forward(np.ones((2, 5), np.int64), np.array([3, 6]))


def test_imdb_stored_weights_reproduce_the_stored_accuracy():
    from bplib.cases import imdb
    stored = _result("imdb")
    path = os.path.join(RESULTS, "imdb", "weights.npz")
    model, vocab, config = imdb.load_weights(path)
    _, (texts, y) = imdb.load_imdb()
    ids, lengths = vocab.encode_batch(texts, max_len=config["max_len"])
    acc = float(((imdb.predict_proba(model, ids, lengths) > 0.5) == y).mean())
    assert abs(acc - stored["test_accuracy"]) <= 4e-4, (acc, stored["test_accuracy"])
    assert acc >= 0.85
    assert os.path.getsize(path) < 2_000_000


# ----------------------------------------------------------------------------
# policy gradient
# ----------------------------------------------------------------------------
def test_discount_rewards_restart_at_each_point():
    from bplib.cases.pong import discount_rewards
    G = discount_rewards([0, 0, 1, 0, -1], gamma=0.5)
    np.testing.assert_allclose(G, [0.25, 0.5, 1, -0.5, -1])
    np.testing.assert_allclose(discount_rewards([1, 1, 1], 0.5, reset_at_points=False), [1.75, 1.5, 1])


def test_preprocess_keeps_paddles_and_ball_only():
    from bplib.cases.pong import make_env, preprocess
    env = make_env(0)
    obs, _ = env.reset(seed=0)
    for _ in range(60):                                   # the ball is in play after ~60 steps
        obs, *_ = env.step(0)
    env.close()
    x = preprocess(obs)
    assert x.shape == (6400,) and set(np.unique(x)) <= {0.0, 1.0}
    assert 20 < x.sum() < 200                             # two paddles and a ball, not the background
    with pytest.raises(ValueError, match="210, 160, 3"):
        preprocess(np.zeros((80, 80)))


def test_reinforce_solves_cartpole():
    """The same pieces that train Pong (policy network, returns normalised over a
    batch, policy_gradient, RMSProp) balance CartPole-v1 (mean of 20 episodes
    >= 195 steps) within 300 episodes; seeds 0-2 need 65-100."""
    import gymnasium as gym
    from bplib.cases.pong import discount_rewards, make_policy, policy_gradient, prob_up
    from bplib.optim import RMSProp
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    policy = make_policy(32, rng=np.random.default_rng(0), input_size=4)
    opt = RMSProp(policy, lr=1e-2, eps=1e-5)
    lengths, batch = [], []
    for episode in range(300):
        obs, _ = env.reset(seed=episode)
        xs, acts, rews = [], [], []
        done = False
        while not done:
            x = obs.astype(np.float32)
            a = int(rng.random() < prob_up(policy, x[None])[0])
            obs, r, term, trunc, _ = env.step(a)
            xs.append(x), acts.append(a), rews.append(r)
            done = term or trunc
        lengths.append(len(rews))
        batch.append((np.array(xs), np.array(acts, np.float32), discount_rewards(rews, 0.99, reset_at_points=False)))
        if len(batch) == 5:
            x, a, G = (np.concatenate(z) for z in zip(*batch))
            policy_gradient(policy, x, a, (G - G.mean()) / (G.std() + 1e-8))
            opt.step()
            batch = []
        if np.mean(lengths[-20:]) >= 195:
            break
    env.close()
    assert np.mean(lengths[:5]) < 60                       # before any update it falls over quickly
    assert np.mean(lengths[-20:]) >= 195, f"mean of last 20 episodes {np.mean(lengths[-20:]):.0f} steps"


def test_pong_checkpoint_resumes(tmp_path):
    from bplib.cases import pong
    out = str(tmp_path)
    first = pong.train(out=out, hours=0, episodes=1, envs=1, hidden=8, batch_steps=500, quiet=True)
    second = pong.train(out=out, hours=0, episodes=1, envs=1, hidden=8, batch_steps=500, resume=True, quiet=True)
    assert second["episodes"] == first["episodes"] + 1
    assert second["updates"] > first["updates"]
    with open(os.path.join(out, "metrics.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + 2
