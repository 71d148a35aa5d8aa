"""The transformer sentiment case (bplib.cases.imdb_transformer): the model's gradients are right
(float64, against central differences, with padding), padding changes no prediction, a tiny run
validates every epoch and looks at the test set once, the command line runs, and the stored result
has the keys the book reads and reproduces with the stored weights."""
import json
import os

import numpy as np
import pytest

from bplib.gradcheck import check_gradients
from bplib.losses import binary_cross_entropy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "book", "results", "imdb_transformer")


def _tiny(dtype=np.float64, blocks=2, seed=0):
    from bplib.cases.imdb_transformer import SentimentTransformer
    return SentimentTransformer(30, embed_dim=8, num_heads=2, mlp_hidden=16, blocks=blocks, max_len=10,
                                dropout=0.0, rng=np.random.default_rng(seed), dtype=dtype)


def _padded_batch(rng):
    ids = rng.integers(2, 30, (3, 7))
    lengths = np.array([7, 3, 5])
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
    return ids, lengths, np.array([1, 0, 1])


def test_transformer_gradients_match_central_differences_with_padding():
    rng = np.random.default_rng(1)
    model = _tiny()
    ids, lengths, y = _padded_batch(rng)

    def loss():
        return binary_cross_entropy(model.forward(ids, lengths), y)[0]

    _, dlogits = binary_cross_entropy(model.forward(ids, lengths), y)
    model.backward(dlogits)
    analytic = {k: g.copy() for k, g in model.grads.items()}
    report = check_gradients(loss, model.params, analytic, title="SentimentTransformer", tol=1e-5)
    report.assert_ok()


def test_the_gradient_check_rejects_attention_whose_backward_reads_the_padding():
    """The same check must fail when the backward's softmax forgets the padding mask (the forward
    masks the padded keys, the backward recomputes p without the mask): it can fail."""
    from bplib.cases import imdb_transformer as it
    from bplib.layers import attention_backward, softmax_forward
    rng = np.random.default_rng(1)
    model = _tiny(blocks=1)
    ids, lengths, y = _padded_batch(rng)

    def unmasked_backward(dout, cache):
        p, _ = softmax_forward(cache["q"] @ np.swapaxes(cache["k"], -1, -2) * cache["scale"])
        return attention_backward(dout, dict(cache, p=p))

    model.blocks[0].attn.attention_backward_fn = unmasked_backward

    def loss():
        return binary_cross_entropy(model.forward(ids, lengths), y)[0]

    _, dlogits = binary_cross_entropy(model.forward(ids, lengths), y)
    model.backward(dlogits)
    analytic = {k: g.copy() for k, g in model.grads.items()}
    report = check_gradients(loss, model.params, analytic, title="broken", tol=1e-5)
    assert not report.ok
    assert it.KeyPaddingSelfAttention.lengths is None     # the class default is untouched


def test_padding_changes_no_prediction():
    """Whatever fills the padded positions, and however many there are, the logits stay the same."""
    rng = np.random.default_rng(2)
    model = _tiny(dtype=np.float32).eval()
    ids, lengths, _ = _padded_batch(rng)
    base = model.forward(ids, lengths)
    junk = ids.copy()
    for i, n in enumerate(lengths):
        junk[i, n:] = rng.integers(2, 30, 7 - n)
    np.testing.assert_array_equal(model.forward(junk, lengths), base)
    longer = np.concatenate([ids, np.zeros((3, 3), ids.dtype)], axis=1)
    np.testing.assert_allclose(model.forward(longer, lengths), base, rtol=1e-5, atol=1e-6)


def test_bad_input_gets_a_clear_error():
    model = _tiny()
    with pytest.raises(ValueError, match="lengths must lie in"):
        model.forward(np.ones((2, 4), np.int64), np.array([0, 4]))
    with pytest.raises(ValueError, match="expected ids"):
        model.forward(np.ones(4, np.int64), np.array([4]))


def test_tiny_run_validates_every_epoch_and_tests_once(monkeypatch):
    from bplib.cases import imdb_transformer as it
    real = it.predict_proba
    calls, snapshots = [], []

    def spy(model, ids, lengths, batch_size=100):
        calls.append(len(lengths))
        snapshots.append({k: v.copy() for k, v in model.params.items()})
        return real(model, ids, lengths, batch_size)

    monkeypatch.setattr(it, "predict_proba", spy)
    result, model = it.train(epochs=2, n_train=200, n_test=300, val_size=150, vocab_size=500, embed_dim=8,
                             num_heads=2, mlp_hidden=16, max_len=40, warmup=2, quiet=True)
    assert calls == [150, 150, 300], calls
    assert result["val_size"] == 150 and result["train_size"] == 200 and result["test_size"] == 300
    for k, v in model.params.items():           # the chosen epoch's weights are the ones tested
        np.testing.assert_array_equal(v, snapshots[result["chosen_epoch"] - 1][k])


def test_command_line_fast_path_runs_and_writes_its_files(tmp_path, capsys):
    from bplib.cases import imdb_transformer as it
    out = tmp_path / "run"
    result = it.main(["--fast", "--epochs", "1", "--n-train", "300", "--embed-dim", "8", "--heads", "2",
                      "--mlp-hidden", "16", "--max-len", "60", "--out", str(out)])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["test_accuracy"] == result["test_accuracy"]
    assert {"result.json", "metrics.csv", "weights.npz"} <= {p.name for p in out.iterdir()}
    model, vocab, config = it.load_weights(out / "weights.npz")
    assert config["embed_dim"] == 8 and len(vocab) <= 10000


STORED_KEYS = {"test_accuracy", "val_accuracy", "chosen_epoch", "train_seconds", "train_cpu_seconds",
               "parameters", "seed", "epochs"}


def test_stored_result_has_the_keys_the_book_reads_and_was_chosen_on_validation():
    with open(os.path.join(RESULTS, "result.json")) as f:
        result = json.load(f)
    assert STORED_KEYS <= set(result), STORED_KEYS - set(result)
    assert result["seed"] == 0 and 1 <= result["chosen_epoch"] <= result["epochs"]
    with open(os.path.join(RESULTS, "metrics.csv")) as f:
        rows = f.read().strip().splitlines()
    assert len(rows) == 1 + result["epochs"]
    vals = [float(r.split(",")[3]) for r in rows[1:]]
    assert abs(max(vals) - result["val_accuracy"]) < 1e-9
    assert vals.index(max(vals)) + 1 == result["chosen_epoch"]
    assert os.path.getsize(os.path.join(RESULTS, "weights.npz")) < 5e6
    assert result["test_accuracy"] > 0.85


def test_stored_weights_reproduce_the_stored_accuracy():
    from bplib.cases import imdb_transformer as it
    with open(os.path.join(RESULTS, "result.json")) as f:
        stored = json.load(f)
    model, vocab, config = it.load_weights(os.path.join(RESULTS, "weights.npz"))
    assert sum(v.size for v in model.params.values()) == stored["parameters"]
    _, (texts, y) = it.load_imdb()
    ids, lengths = vocab.encode_batch(texts, max_len=config["max_len"])
    acc = float(((it.predict_proba(model, ids, lengths) > 0.5) == y).mean())
    assert abs(acc - stored["test_accuracy"]) < 5e-4
