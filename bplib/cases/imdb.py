"""Worked case: IMDB review sentiment with an LSTM, trained with bplib alone.

    python -m bplib.cases.imdb --epochs 3 --seed 0 --out book/results/imdb

The model (layers from ``bplib.layers``)::

    ids (N, T)  word ids, padded with 0 at the end, lengths (N,)
    Embedding(V, E)                  -> e (N, T, E)
    LSTM(E, H)                       -> h (N, T, H), one hidden state per step
    pool: [h at the last real step, mean of h over the real steps]   -> (N, 2H)
    Dense(2H, 1)                     -> logit (N,);  p(positive) = sigmoid(logit)

Padding and masking. Reviews have from ten to over a thousand words. They
are sorted by length and cut into batches of similar length (bucketing), so a
batch is padded only up to its own longest review. Padding sits at the *end*:
an LSTM runs left to right, so the padded steps come after every real step
and cannot change the state at the last real step. The pooling reads only real
steps (``mask``), and its backward sends gradient only to them, so the padded
steps get dL/dh = 0 and change nothing.

Validation protocol: ``--val-size`` (default 2,500) of the training reviews,
drawn with a fixed seed (``--val-seed``), are set aside as a validation set;
the vocabulary and the weights are learned from the rest. After every epoch
the validation accuracy is logged; the epoch with the best one is chosen and
its weights kept. The 5,000 held-out test reviews are used once, at the end.
"""
import argparse
import json
import os
import time

import numpy as np

from bplib.cases import validation_split, write_metrics
from bplib.data import Vocabulary, load_imdb
from bplib.layers import LSTM, Dense, Embedding, sigmoid_forward
from bplib.losses import binary_cross_entropy
from bplib.optim import Adam


class SentimentLSTM:
    """Embedding -> LSTM -> masked pooling -> Dense; ``params``/``grads`` keyed
    ``"embed.W"``, ``"lstm.Wx"``, ... so that any bplib optimizer can train it."""

    def __init__(self, vocab_size, embed_dim=32, hidden=64, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.dtype = np.dtype(dtype)
        self.embed = Embedding(vocab_size, embed_dim, rng=rng, dtype=dtype)
        self.embed.params["W"] *= 0.1                 # small start: the LSTM sees inputs of size ~1
        self.lstm = LSTM(embed_dim, hidden, rng=rng, dtype=dtype)
        self.head = Dense(2 * hidden, 1, rng=rng, dtype=dtype)
        self.layers = {"embed": self.embed, "lstm": self.lstm, "head": self.head}

    @property
    def params(self):
        return {f"{n}.{k}": v for n, l in self.layers.items() for k, v in l.params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n, l in self.layers.items() for k, v in l.grads.items()}

    def forward(self, ids, lengths):
        """ids: (N, T) int, lengths: (N,) int in [1, T]  ->  logits: (N,)"""
        ids, lengths = np.asarray(ids), np.asarray(lengths)
        if ids.ndim != 2 or lengths.shape != (ids.shape[0],):
            raise ValueError(f"SentimentLSTM: expected ids (N, T) and lengths (N,), got {ids.shape} and "
                             f"{lengths.shape}")
        if lengths.min() < 1 or lengths.max() > ids.shape[1]:
            raise ValueError(f"SentimentLSTM: lengths must lie in [1, {ids.shape[1]}], got "
                             f"{lengths.min()}..{lengths.max()}")
        N, T = ids.shape
        h = self.lstm.forward(self.embed.forward(ids))                    # (N, T, H)
        self._mask = (np.arange(T)[None, :] < lengths[:, None]).astype(h.dtype)   # (N, T): 1 on real steps
        self._lengths = lengths
        h_last = h[np.arange(N), lengths - 1]                               # (N, H)
        h_mean = (h * self._mask[:, :, None]).sum(axis=1) / lengths[:, None].astype(h.dtype)
        self._h_shape = h.shape
        return self.head.forward(np.concatenate([h_last, h_mean], axis=1))[:, 0]

    def backward(self, dlogits):
        """dlogits: (N,) -> fills ``grads`` (ids get no gradient)."""
        N, T, H = self._h_shape
        dpool = self.head.backward(dlogits[:, None].astype(self.dtype))     # (N, 2H)
        dh = (self._mask[:, :, None] * (dpool[:, None, H:] / self._lengths[:, None, None])).astype(self.dtype)
        dh[np.arange(N), self._lengths - 1] += dpool[:, :H]                 # the last real step
        self.embed.backward(self.lstm.backward(dh))

    def predict_proba(self, ids, lengths):
        return sigmoid_forward(self.forward(ids, lengths))


def bucket_batches(lengths, batch_size, rng=None):
    """Index arrays of reviews of similar length: sort by length, cut into batches,
    shuffle the order of the batches (and break ties in length at random)."""
    lengths = np.asarray(lengths)
    noise = rng.random(len(lengths)) if rng is not None else np.zeros(len(lengths))
    order = np.lexsort((noise, lengths))
    batches = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def trim(ids, lengths, idx):
    """The rows ``idx`` of ids, cut to the longest of them: (n, max length)."""
    return ids[idx, :lengths[idx].max()], lengths[idx]


def predict_proba(model, ids, lengths, batch_size=250):
    """p(positive) for every review, computed in length buckets: (N,)"""
    p = np.empty(len(lengths), dtype=np.float64)
    for idx in bucket_batches(lengths, batch_size):
        p[idx] = model.predict_proba(*trim(ids, lengths, idx))
    return p


def save_weights(path, model, vocab, **config):
    np.savez(path, **{k.replace(".", "_"): v for k, v in model.params.items()},
             vocab=np.frombuffer("\n".join(vocab.itos[2:]).encode("utf-8"), dtype=np.uint8),
             config=np.array(json.dumps(config)))


def load_weights(path):
    """Rebuild ``(model, vocab, config)`` from a file written by ``save_weights``."""
    z = np.load(path)
    config = json.loads(str(z["config"]))
    vocab = Vocabulary(z["vocab"].tobytes().decode("utf-8").split("\n"))   # tokens never hold a newline
    model = SentimentLSTM(len(vocab), config["embed_dim"], config["hidden"])
    for k, v in model.params.items():
        v[:] = z[k.replace(".", "_")]
    return model, vocab, config


def encode(vocab, texts, max_len):
    return vocab.encode_batch(texts, max_len=max_len)


def train(epochs=3, seed=0, batch_size=64, lr=2e-3, lr_decay=0.5, vocab_size=10000, embed_dim=32, hidden=64,
          max_len=400, clip=5.0, n_train=None, val_size=2500, val_seed=0, out=None, quiet=False):
    """Train on load_imdb's training part minus a validation part of ``val_size`` (drawn with
    ``val_seed``), choose the epoch with the best validation accuracy, keep its weights and
    report their accuracy on the held-out 5,000 test reviews (used once, at the end)."""
    from tqdm import tqdm
    t_start = time.time()
    (tr_texts, ytr), (te_texts, yte) = load_imdb()
    tr_idx, val_idx = validation_split(len(tr_texts), val_size, val_seed)
    val_texts, yval = [tr_texts[i] for i in val_idx], ytr[val_idx]
    tr_texts, ytr = [tr_texts[i] for i in tr_idx], ytr[tr_idx]
    if n_train:
        tr_texts, ytr = tr_texts[:n_train], ytr[:n_train]
    vocab = Vocabulary.build(tr_texts, max_size=vocab_size)
    ids_tr, len_tr = encode(vocab, tr_texts, max_len)
    ids_val, len_val = encode(vocab, val_texts, max_len)
    rng = np.random.default_rng(seed)
    model = SentimentLSTM(len(vocab), embed_dim, hidden, rng=np.random.default_rng(seed))
    opt = Adam(model, lr=lr)
    rows, t0, cpu0 = [], time.time(), time.process_time()
    best_val, best_epoch, best_params = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        losses, correct, seen = [], 0, 0
        bar = tqdm(bucket_batches(len_tr, batch_size, rng), desc=f"epoch {epoch}/{epochs}", disable=quiet,
                   unit="batch", dynamic_ncols=True, mininterval=1.0)
        for i, idx in enumerate(bar):
            x, lens = trim(ids_tr, len_tr, idx)
            logits = model.forward(x, lens)
            loss, dlogits = binary_cross_entropy(logits, ytr[idx])
            model.backward(dlogits)
            if clip:                                   # clip the global gradient norm (LSTMs can spike)
                norm = np.sqrt(sum(float((g * g).sum()) for g in model.grads.values()))
                if norm > clip:
                    for layer in model.layers.values():
                        for k in layer.grads:
                            layer.grads[k] = layer.grads[k] * (clip / norm)
            opt.step()
            losses.append(loss)
            correct += int(((logits > 0) == ytr[idx]).sum())
            seen += len(idx)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", acc=f"{correct / seen:.4f}")
        opt.lr *= lr_decay
        val_acc = float(((predict_proba(model, ids_val, len_val) > 0.5) == yval).mean())
        if val_acc > best_val:                        # the first epoch wins a tie
            best_val, best_epoch = val_acc, epoch
            best_params = {k: v.copy() for k, v in model.params.items()}
        rows.append(dict(epoch=epoch, train_loss=round(float(np.mean(losses)), 5),
                         train_accuracy=round(correct / seen, 5), val_accuracy=round(val_acc, 5),
                         seconds=round(time.time() - t0, 1), cpu_seconds=round(time.process_time() - cpu0, 1)))
        if not quiet:
            tqdm.write(f"epoch {epoch}: train loss {rows[-1]['train_loss']:.4f}, train acc "
                       f"{rows[-1]['train_accuracy']:.4f}, val acc {val_acc:.4f}, {rows[-1]['seconds']:.0f} s")
    train_seconds = round(time.time() - t0, 1)
    for k, v in model.params.items():                 # back to the chosen epoch's weights
        v[...] = best_params[k]
    ids_te, len_te = encode(vocab, te_texts, max_len)
    p = predict_proba(model, ids_te, len_te)          # the only look at the test reviews
    test_acc = float(((p > 0.5) == yte).mean())
    result = dict(case="imdb", epochs=epochs, seed=seed, chosen_epoch=best_epoch,
                  val_accuracy=round(best_val, 5), val_size=len(yval), train_size=len(ytr),
                  test_accuracy=round(test_acc, 5), test_size=len(yte), train_seconds=train_seconds,
                  train_cpu_seconds=rows[-1]["cpu_seconds"],
                  total_seconds=round(time.time() - t_start, 1),
                  parameters=int(sum(v.size for v in model.params.values())))
    if out:
        write_metrics(out, rows, result)
        save_weights(os.path.join(out, "weights.npz"), model, vocab, embed_dim=embed_dim, hidden=hidden,
                     max_len=max_len)
        np.save(os.path.join(out, "test_proba.npy"), p.astype(np.float32))
    return result, model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lr-decay", type=float, default=0.5, help="learning rate factor after each epoch")
    ap.add_argument("--vocab-size", type=int, default=10000)
    ap.add_argument("--embed-dim", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--max-len", type=int, default=400, help="keep the last MAX_LEN tokens of a review")
    ap.add_argument("--clip", type=float, default=5.0, help="clip the gradient norm (0 = off)")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--val-size", type=int, default=2500, help="training reviews set aside for validation")
    ap.add_argument("--val-seed", type=int, default=0, help="seed of the validation split")
    ap.add_argument("--out", default="runs/imdb")
    args = ap.parse_args(argv)
    result, _ = train(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                      lr_decay=args.lr_decay, vocab_size=args.vocab_size, embed_dim=args.embed_dim,
                      hidden=args.hidden, max_len=args.max_len, clip=args.clip, n_train=args.n_train,
                      val_size=args.val_size, val_seed=args.val_seed, out=args.out)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
