"""Worked case: IMDB review sentiment with a small transformer encoder, trained with bplib alone.

    python -m bplib.cases.imdb_transformer            # the stored result (seed 0)
    python -m bplib.cases.imdb_transformer --fast     # a quick run on a slice, to see it learn

The model (layers from ``bplib.layers``)::

    ids (N, T)  word ids, padded with 0 at the end, lengths (N,)
    Embedding(V, D) + PositionalEmbedding(T_max, D)      -> x (N, T, D)
    Dropout
    TransformerBlock(D, heads, mlp) x blocks             -> x (N, T, D)   (pre-norm, padding keys masked)
    LayerNorm(D)
    pool: mean of x over the real tokens                  -> (N, D)
    Dropout, Dense(D, 1)                                  -> logit (N,);  p(positive) = sigmoid(logit)

Padding. Batches hold reviews of similar length (bucketing, as in the LSTM
case), padded at the end up to the batch's longest review. Attention would
let every token look at the padding, so the keys of padded positions get a
score of -inf before the softmax (``KeyPaddingSelfAttention``): their weights
are exactly 0, no real token reads them, and a review's prediction does not
depend on which other reviews share its batch. The pooling reads only real
tokens, so the padded positions get dL/dx = 0.

Data and protocol: the same split as the LSTM case (``bplib.cases.imdb``):
load_imdb's training part minus the same validation part (``validation_split``
with ``--val-size`` 2,500 and ``--val-seed`` 0), the same vocabulary size and
the same last-400-tokens cut. The epoch with the best validation accuracy is
chosen and its weights kept; the 5,000 test reviews are used once, at the end.
"""
import argparse
import json
import math
import os
import time

import numpy as np

from bplib.cases import validation_split, write_metrics
from bplib.cases.imdb import bucket_batches, encode, trim
from bplib.data import Vocabulary, load_imdb
from bplib.layers import (Dense, Dropout, Embedding, LayerNorm, MultiHeadSelfAttention, PositionalEmbedding,
                          TransformerBlock, sigmoid_forward)
from bplib.losses import binary_cross_entropy
from bplib.optim import AdamW


class KeyPaddingSelfAttention(MultiHeadSelfAttention):
    """``MultiHeadSelfAttention`` that ignores padded keys: set ``lengths`` (N,) before ``forward``.

    Query t of review n may attend to key s iff s < lengths[n], the mask
    ``(N, 1, T, S)`` of ``attention_forward``; it is added as a score bias of 0
    or -inf, in the transposed score layout the parent class runs. The padded
    keys get weight exactly 0, so the parent's backward (for any p) gives them
    exactly zero gradient; padded *queries* are computed and then ignored by
    the pooling. With ``lengths = None`` it is the parent layer.
    """
    lengths = None

    def forward(self, x):
        if self.lengths is None:
            return super().forward(x)
        self._x = x = x.astype(self.dtype, copy=False)
        N, T, D = x.shape
        lengths = np.asarray(self.lengths)
        if lengths.shape != (N,) or lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"KeyPaddingSelfAttention: lengths must be (N,) = ({N},) in [1, {T}], got "
                             f"shape {lengths.shape}")
        h, dh = self.num_heads, self.head_dim
        qkv = x.reshape(N * T, D) @ self.params["Wqkv"].T + self.params["bqkv"]      # (N*T, 3D)
        q, k, v = qkv.reshape(N, T, 3, h, dh).transpose(2, 0, 3, 1, 4)               # each (N, h, T, dh)
        scale = 1.0 / math.sqrt(dh)
        sT = k @ np.swapaxes(q * scale, -1, -2)                                      # scores^T (N, h, S, T)
        allowed = np.arange(T)[None, :] < lengths[:, None]                           # (N, S): real keys
        if not allowed.all():
            sT += np.where(allowed, 0, -np.inf).astype(sT.dtype)[:, None, :, None]
        sT -= sT.max(axis=-2, keepdims=True)                                         # softmax over keys
        np.exp(sT, out=sT)
        sT /= sT.sum(axis=-2, keepdims=True)
        p = np.swapaxes(sT, -1, -2)                                                  # (N, h, T, S) view
        heads = p @ v
        self._cache = dict(q=q, k=k, v=v, p=p, scale=scale, mask=allowed[:, None, None, :])
        self._concat = heads.transpose(0, 2, 1, 3).reshape(N * T, D)
        out = (self._concat @ self.params["Wo"].T + self.params["bo"]).reshape(N, T, D)
        self._out_shape = out.shape
        return out


class SentimentTransformer:
    """Embedding + positions -> transformer blocks -> LayerNorm -> masked mean -> Dense;
    ``params``/``grads`` keyed ``"embed.W"``, ``"block0.attn.Wqkv"``, ... for any bplib optimizer."""

    def __init__(self, vocab_size, embed_dim=64, num_heads=4, mlp_hidden=128, blocks=1, max_len=400,
                 dropout=0.1, rng=None, dtype=np.float32):
        rng = rng if rng is not None else np.random.default_rng(0)
        self.dtype = np.dtype(dtype)
        self.config = dict(embed_dim=embed_dim, num_heads=num_heads, mlp_hidden=mlp_hidden, blocks=blocks,
                           max_len=max_len, dropout=dropout)
        self.embed = Embedding(vocab_size, embed_dim, rng=rng, dtype=dtype)
        self.embed.params["W"] *= 0.1
        self.pos = PositionalEmbedding(max_len, embed_dim, rng=rng, dtype=dtype)
        self.blocks = []
        for _ in range(blocks):
            b = TransformerBlock(embed_dim, num_heads, mlp_hidden, rng=rng, dtype=dtype)
            attn = KeyPaddingSelfAttention(embed_dim, num_heads, rng=rng, dtype=dtype)
            b.attn = attn
            self.blocks.append(b)
        self.ln = LayerNorm(embed_dim, dtype=dtype)
        self.drop_in = Dropout(dropout, rng=rng)
        self.drop_out = Dropout(dropout, rng=rng)
        self.head = Dense(embed_dim, 1, rng=rng, dtype=dtype)
        self.head.params["W"] *= 0.1
        self.layers = {"embed": self.embed, "pos": self.pos,
                       **{f"block{i}": b for i, b in enumerate(self.blocks)}, "ln": self.ln, "head": self.head}

    @property
    def params(self):
        return {f"{n}.{k}": v for n, l in self.layers.items() for k, v in l.params.items()}

    @property
    def grads(self):
        return {f"{n}.{k}": v for n, l in self.layers.items() for k, v in l.grads.items()}

    def train(self, mode=True):
        for layer in (*self.layers.values(), self.drop_in, self.drop_out):
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, ids, lengths):
        """ids: (N, T) int, lengths: (N,) int in [1, T]  ->  logits: (N,)"""
        ids, lengths = np.asarray(ids), np.asarray(lengths)
        if ids.ndim != 2 or lengths.shape != (ids.shape[0],):
            raise ValueError(f"SentimentTransformer: expected ids (N, T) and lengths (N,), got {ids.shape} and "
                             f"{lengths.shape}")
        if lengths.min() < 1 or lengths.max() > ids.shape[1]:
            raise ValueError(f"SentimentTransformer: lengths must lie in [1, {ids.shape[1]}], got "
                             f"{lengths.min()}..{lengths.max()}")
        N, T = ids.shape
        x = self.drop_in.forward(self.pos.forward(self.embed.forward(ids)))
        for b in self.blocks:
            b.attn.lengths = lengths
            x = b.forward(x)
        x = self.ln.forward(x)                                                   # (N, T, D)
        self._mask = (np.arange(T)[None, :] < lengths[:, None]).astype(self.dtype)   # (N, T)
        self._lengths = lengths
        pooled = (x * self._mask[:, :, None]).sum(axis=1) / lengths[:, None].astype(self.dtype)   # (N, D)
        return self.head.forward(self.drop_out.forward(pooled))[:, 0]

    def backward(self, dlogits):
        """dlogits: (N,) -> fills ``grads`` (ids get no gradient)."""
        dpooled = self.drop_out.backward(self.head.backward(dlogits[:, None].astype(self.dtype)))   # (N, D)
        dx = (self._mask[:, :, None] * (dpooled[:, None, :] / self._lengths[:, None, None])).astype(self.dtype)
        dx = self.ln.backward(dx)
        for b in reversed(self.blocks):
            dx = b.backward(dx)
        self.embed.backward(self.pos.backward(self.drop_in.backward(dx)))

    def predict_proba(self, ids, lengths):
        return sigmoid_forward(self.forward(ids, lengths))


def predict_proba(model, ids, lengths, batch_size=100):
    """p(positive) for every review (eval mode, length buckets): (N,)"""
    was = model.head.training
    model.eval()
    p = np.empty(len(lengths), dtype=np.float64)
    for idx in bucket_batches(lengths, batch_size):
        p[idx] = model.predict_proba(*trim(ids, lengths, idx))
    model.train(was)
    return p


def save_weights(path, model, vocab):
    np.savez_compressed(path, **{k.replace(".", "_"): v for k, v in model.params.items()},
                        vocab=np.frombuffer("\n".join(vocab.itos[2:]).encode("utf-8"), dtype=np.uint8),
                        config=np.array(json.dumps(model.config)))


def load_weights(path):
    """Rebuild ``(model, vocab, config)`` from a file written by ``save_weights`` (model in eval mode)."""
    z = np.load(path)
    config = json.loads(str(z["config"]))
    vocab = Vocabulary(z["vocab"].tobytes().decode("utf-8").split("\n"))   # tokens never hold a newline
    model = SentimentTransformer(len(vocab), **config)
    for k, v in model.params.items():
        v[:] = z[k.replace(".", "_")]
    return model.eval(), vocab, config


def train(epochs=3, seed=0, batch_size=64, lr=2e-3, weight_decay=0.05, warmup=200, vocab_size=10000,
          embed_dim=64, num_heads=2, mlp_hidden=128, blocks=2, dropout=0.2, max_len=400, clip=1.0,
          n_train=None, n_test=None, val_size=2500, val_seed=0, out=None, quiet=False):
    """Train on load_imdb's training part minus the validation part (as the LSTM case), choose the
    epoch with the best validation accuracy, keep its weights, report their test accuracy (used once).
    Learning rate: linear warm-up over ``warmup`` steps, then cosine decay to 0 at the last step."""
    from tqdm import tqdm
    t_start = time.time()
    (tr_texts, ytr), (te_texts, yte) = load_imdb()
    tr_idx, val_idx = validation_split(len(tr_texts), val_size, val_seed)
    val_texts, yval = [tr_texts[i] for i in val_idx], ytr[val_idx]
    tr_texts, ytr = [tr_texts[i] for i in tr_idx], ytr[tr_idx]
    if n_train:
        tr_texts, ytr = tr_texts[:n_train], ytr[:n_train]
    if n_test:
        te_texts, yte = te_texts[:n_test], yte[:n_test]
    vocab = Vocabulary.build(tr_texts, max_size=vocab_size)
    ids_tr, len_tr = encode(vocab, tr_texts, max_len)
    ids_val, len_val = encode(vocab, val_texts, max_len)
    rng = np.random.default_rng(seed)
    model = SentimentTransformer(len(vocab), embed_dim, num_heads, mlp_hidden, blocks, max_len, dropout,
                                 rng=np.random.default_rng(seed))
    opt = AdamW(model, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(ytr) / batch_size)
    total_steps = epochs * steps_per_epoch

    def lr_at(step):                                  # step = 1, 2, ..., total_steps
        if step <= warmup:
            return lr * step / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    rows, t0, cpu0, step = [], time.time(), time.process_time(), 0
    best_val, best_epoch, best_params = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        model.train()
        losses, correct, seen = [], 0, 0
        bar = tqdm(bucket_batches(len_tr, batch_size, rng), desc=f"epoch {epoch}/{epochs}", disable=quiet,
                   unit="batch", dynamic_ncols=True, mininterval=1.0)
        for i, idx in enumerate(bar):
            step += 1
            opt.lr = lr_at(step)
            x, lens = trim(ids_tr, len_tr, idx)
            logits = model.forward(x, lens)
            loss, dlogits = binary_cross_entropy(logits, ytr[idx])
            model.backward(dlogits)
            if clip:                                   # clip the global gradient norm
                grads = model.grads
                norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
                if norm > clip:
                    for g in grads.values():
                        g *= clip / norm
            opt.step()
            losses.append(loss)
            correct += int(((logits > 0) == ytr[idx]).sum())
            seen += len(idx)
            if i % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", acc=f"{correct / seen:.4f}")
        val_acc = float(((predict_proba(model, ids_val, len_val) > 0.5) == yval).mean())
        if val_acc > best_val:                        # the first epoch wins a tie
            best_val, best_epoch = val_acc, epoch
            best_params = {k: v.copy() for k, v in model.params.items()}
        rows.append(dict(epoch=epoch, train_loss=round(float(np.mean(losses)), 5),
                         train_accuracy=round(correct / seen, 5), val_accuracy=round(val_acc, 5),
                         seconds=round(time.time() - t0, 1), cpu_seconds=round(time.process_time() - cpu0, 1)))
        if not quiet:
            tqdm.write(f"epoch {epoch}: train loss {rows[-1]['train_loss']:.4f}, train acc "
                       f"{rows[-1]['train_accuracy']:.4f}, val acc {val_acc:.4f}, {rows[-1]['seconds']:.0f} s "
                       f"({rows[-1]['cpu_seconds']:.0f} s CPU)", )
        if out:                                       # keep the log as it grows (a long run can be watched)
            write_metrics(out, rows, dict(case="imdb_transformer", running=True, epochs_done=epoch))
    train_seconds = round(time.time() - t0, 1)
    for k, v in model.params.items():                 # back to the chosen epoch's weights
        v[...] = best_params[k]
    ids_te, len_te = encode(vocab, te_texts, max_len)
    p = predict_proba(model, ids_te, len_te)          # the only look at the test reviews
    test_acc = float(((p > 0.5) == yte).mean())
    result = dict(case="imdb_transformer", epochs=epochs, seed=seed, chosen_epoch=best_epoch,
                  val_accuracy=round(best_val, 5), val_size=len(yval), train_size=len(ytr),
                  test_accuracy=round(test_acc, 5), test_size=len(yte), train_seconds=train_seconds,
                  train_cpu_seconds=rows[-1]["cpu_seconds"], total_seconds=round(time.time() - t_start, 1),
                  parameters=int(sum(v.size for v in model.params.values())),
                  config=dict(model.config, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                              warmup=warmup, vocab_size=vocab_size, clip=clip))
    if out:
        write_metrics(out, rows, result)
        save_weights(os.path.join(out, "weights.npz"), model, vocab)
    return result, model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fast", action="store_true",
                    help="a quick check: 2,000 training and 1,000 test reviews, 2 epochs, written to runs/")
    ap.add_argument("--epochs", type=int, default=None, help="default 3 (2 with --fast)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=200, help="steps of linear learning-rate warm-up")
    ap.add_argument("--vocab-size", type=int, default=10000)
    ap.add_argument("--embed-dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--mlp-hidden", type=int, default=128)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--max-len", type=int, default=400, help="keep the last MAX_LEN tokens of a review")
    ap.add_argument("--clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--val-size", type=int, default=2500, help="training reviews set aside for validation")
    ap.add_argument("--val-seed", type=int, default=0, help="seed of the validation split")
    ap.add_argument("--out", default=None, help="default book/results/imdb_transformer (runs/imdb_transformer_fast "
                                                "with --fast)")
    args = ap.parse_args(argv)
    epochs = args.epochs or (2 if args.fast else 3)
    n_train = args.n_train or (2000 if args.fast else None)
    out = args.out or ("runs/imdb_transformer_fast" if args.fast else os.path.join("book", "results",
                                                                                     "imdb_transformer"))
    result, _ = train(epochs=epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                      weight_decay=args.weight_decay, warmup=min(args.warmup, 20) if args.fast else args.warmup,
                      vocab_size=args.vocab_size, embed_dim=args.embed_dim, num_heads=args.heads,
                      mlp_hidden=args.mlp_hidden, blocks=args.blocks, dropout=args.dropout, max_len=args.max_len,
                      clip=args.clip, n_train=n_train, n_test=1000 if args.fast else None,
                      val_size=args.val_size, val_seed=args.val_seed, out=out)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
