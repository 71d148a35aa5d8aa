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
# validation protocol (both cases)
# ----------------------------------------------------------------------------
def test_validation_split_is_disjoint_complete_and_fixed():
    from bplib.cases import validation_split
    tr, val = validation_split(100, 20, seed=0)
    assert len(val) == 20 and len(tr) == 80
    assert not set(tr) & set(val) and sorted(set(tr) | set(val)) == list(range(100))
    tr2, val2 = validation_split(100, 20, seed=0)
    np.testing.assert_array_equal(val, val2)
    assert not np.array_equal(val, validation_split(100, 20, seed=1)[1])
    assert not np.array_equal(val, np.arange(20))                 # drawn at random, not the first 20
    for bad in (0, 100, -5):
        with pytest.raises(ValueError, match="val_size"):
            validation_split(100, bad)


def _stored(case):
    import csv
    with open(os.path.join(RESULTS, case, "metrics.csv")) as f:
        return _result(case), list(csv.DictReader(f))


@pytest.mark.parametrize("case", ["mnist", "imdb"])
def test_stored_runs_chose_their_epoch_on_validation(case):
    """metrics.csv logs validation accuracy, never a per-epoch test accuracy; the stored
    chosen_epoch is the (first) best validation epoch; test_accuracy is kept for other pages."""
    result, rows = _stored(case)
    assert "val_accuracy" in rows[0] and not any("test" in k for k in rows[0]), list(rows[0])
    val = [float(r["val_accuracy"]) for r in rows]
    assert len(rows) == result["epochs"]
    assert result["chosen_epoch"] == 1 + int(np.argmax(val))
    assert result["val_accuracy"] == pytest.approx(max(val))
    assert {"test_accuracy", "val_size", "train_size", "epochs", "parameters"} <= set(result)


def test_mnist_train_keeps_the_best_validation_epoch_and_tests_once(monkeypatch, tmp_path):
    """With validation accuracies scripted to peak at epoch 2 of 3, train() must return (and store)
    the weights it had after epoch 2, and evaluate the 10,000 test digits exactly once, at the end."""
    from bplib.cases import mnist
    real = mnist.accuracy
    scripted = iter([0.50, 0.90, 0.70])
    calls, snapshots = [], []

    def fake(model, x, y, batch_size=500):
        calls.append(len(x))
        if len(x) == 10000:                                       # the test digits
            return real(model, x, y, batch_size)
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        return next(scripted)

    monkeypatch.setattr(mnist, "accuracy", fake)
    result, model = mnist.train(epochs=3, n_train=256, val_size=300, c1=2, c2=4, hidden=8,
                                out=str(tmp_path), quiet=True)
    assert calls == [300, 300, 300, 10000], calls
    assert result["chosen_epoch"] == 2 and result["val_accuracy"] == 0.9
    assert result["val_size"] == 300 and result["train_size"] == 256
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, snapshots[1][k])
    assert not all(np.array_equal(v, snapshots[2][k]) for k, v in model.params.items())
    stored = mnist.load_weights(os.path.join(str(tmp_path), "weights.npz"))
    for k, v in stored.params.items():
        np.testing.assert_array_equal(v, snapshots[1][k])
    with open(os.path.join(str(tmp_path), "metrics.csv")) as f:
        header = f.readline().strip().split(",")
    assert "val_accuracy" in header and "test_accuracy" not in header


def test_mnist_validation_digits_are_not_trained_on(monkeypatch):
    """Digits that carry their own index in two pixels: those train() validates on are
    never in a training batch, and the test digits are seen once."""
    from bplib.cases import mnist
    n = 1000
    xtr = np.zeros((n, 28, 28), np.uint8)
    xtr[:, 0, 0], xtr[:, 0, 1] = np.arange(n) % 256, np.arange(n) // 256
    xte = np.full((50, 28, 28), 255, np.uint8)
    monkeypatch.setattr(mnist, "load_mnist", lambda: ((xtr, np.arange(n) % 10), (xte, np.arange(50) % 10)))
    seen = {64: set(), 200: set(), 50: set()}
    real_forward = mnist.Sequential.forward

    def spy(self, x):
        pix = np.rint((x[:, 0, 0, :2] * mnist.STD + mnist.MEAN) * 255).astype(int)
        seen[len(x)].update((pix[:, 0] + 256 * pix[:, 1]).tolist())
        return real_forward(self, x)

    monkeypatch.setattr(mnist.Sequential, "forward", spy)
    result, _ = mnist.train(epochs=2, n_train=128, val_size=200, c1=2, c2=2, hidden=4, quiet=True)
    train, val = seen[64], seen[200]
    assert len(train) == 128 and len(val) == 200 and not train & val
    assert result["val_size"] == 200 and result["train_size"] == 128


def test_imdb_train_validates_every_epoch_and_tests_once(monkeypatch):
    from bplib.cases import imdb
    real = imdb.predict_proba
    calls, snapshots = [], []

    def spy(model, ids, lengths, batch_size=250):
        calls.append(len(lengths))
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        return real(model, ids, lengths, batch_size)

    monkeypatch.setattr(imdb, "predict_proba", spy)
    result, model = imdb.train(epochs=2, n_train=200, val_size=150, vocab_size=500, embed_dim=4, hidden=4,
                               max_len=50, quiet=True)
    assert calls == [150, 150, 5000], calls
    assert result["val_size"] == 150 and result["train_size"] == 200 and result["test_size"] == 5000
    chosen = result["chosen_epoch"]
    for k, v in model.params.items():
        np.testing.assert_array_equal(v, snapshots[chosen - 1][k])


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
    assert first["sticky"] == second["sticky"] == 0.25                # ALE/Pong-v5's default protocol
    with pytest.raises(ValueError, match="sticky"):                  # a run cannot change the game halfway
        pong.train(out=out, hours=0, episodes=1, envs=1, hidden=8, batch_steps=500, resume=True, quiet=True, sticky=0.0)


def test_pong_learning_rate_anneals_linearly_then_holds():
    from bplib.cases.pong import learning_rate
    assert learning_rate(0, 1e-3, 1e-4, 1000) == pytest.approx(1e-3)
    assert learning_rate(500, 1e-3, 1e-4, 1000) == pytest.approx(5.5e-4)
    assert learning_rate(1000, 1e-3, 1e-4, 1000) == pytest.approx(1e-4)
    assert learning_rate(10**9, 1e-3, 1e-4, 1000) == pytest.approx(1e-4)
    assert learning_rate(10**9, 1e-3, None, 1000) == 1e-3              # no --lr-final: a constant rate


def test_pong_training_uses_the_annealed_rate(tmp_path):
    """With the rate annealed to 0 from the first move on, training leaves the initial weights as they are."""
    from bplib.cases import pong
    res = pong.train(out=str(tmp_path), hours=0, episodes=1, envs=1, hidden=8, batch_steps=500, quiet=True,
                     lr_final=0.0, anneal_steps=1)
    assert res["updates"] > 0
    trained, z = pong.load_policy(os.path.join(tmp_path, "checkpoint.npz"))
    initial = pong.make_policy(8, rng=np.random.default_rng(0))
    for k in initial.params:
        np.testing.assert_array_equal(trained.params[k], initial.params[k])
    assert json.loads(str(z["state"]))["lr_final"] == 0.0


def test_pong_first_reached_reads_the_mean_of_the_last_100_games():
    from bplib.cases.pong import first_reached, mean_last_100
    rewards = [-21.0] * 100 + [21.0] * 150
    m = mean_last_100(rewards)
    np.testing.assert_allclose(m[[0, 99, 149, 199, 249]], [-21, -21, 0, 21, 21])
    np.testing.assert_allclose(mean_last_100([1.0, 3.0]), [1, 2])          # fewer than 100 games: their mean
    seconds = 36.0 * np.arange(1, 251)                                       # a game every 36 s = 0.01 h
    got = first_reached(rewards, seconds, levels=(-10, 0, 15, 22))
    assert got[0] == dict(games=150, hours=1.5)
    assert got[-10]["games"] == 127 and got[15]["games"] == 186              # -21 + 42 k / 100 >= level
    assert got[22] is None


def test_pong_sticky_actions_reach_the_emulator():
    from bplib.cases.pong import make_env
    for sticky in (0.0, 0.25):
        env = make_env(0, sticky=sticky)
        assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(sticky)
        env.close()
    with pytest.raises(ValueError, match="repeat_action_probability"):
        make_env(0, sticky=1.0)


# ----------------------------------------------------------------------------
# what batch norm and dropout change (scripts/mnist_bn_dropout.py, read by a chapter)
# ----------------------------------------------------------------------------
def _bn_dropout_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("mnist_bn_dropout", os.path.join(ROOT, "scripts", "mnist_bn_dropout.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bn_dropout_variants_start_from_the_same_weights():
    from bplib.layers import BatchNorm, Conv2D, Dense, Dropout
    script = _bn_dropout_script()
    weights = {}
    for v in script.VARIANTS:
        model = script.build(v)
        kinds = [type(l) for l in model.layers]
        assert (BatchNorm in kinds) == ("batchnorm" in v) and (Dropout in kinds) == ("dropout" in v)
        weights[v] = [l.params["W"] for l in model.layers if isinstance(l, (Conv2D, Dense))]
    for v in script.VARIANTS[1:]:
        for a, b in zip(weights["plain"], weights[v]):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="unknown variant"):
        script.build("layernorm")


def test_bn_dropout_stored_results_are_consistent():
    import csv
    result = _result("mnist_bn_dropout")
    with open(os.path.join(RESULTS, "mnist_bn_dropout", "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert not any("test" in k for k in rows[0])                # model selection never sees the test set
    for v, best in result["variants"].items():
        mine = [r for r in rows if r["variant"] == v]
        assert len(mine) == result["epochs"]
        val = [float(r["val_accuracy"]) for r in mine]
        assert best["chosen_epoch"] == 1 + int(np.argmax(val)) and best["val_accuracy"] == max(val)
