"""Worked case: a LeNet-style convnet on MNIST, trained with bplib alone.

    python -m bplib.cases.mnist --epochs 6 --seed 0 --out book/results/mnist

The network (every layer from ``bplib.layers``)::

    x (N, 1, 28, 28)
    Conv2D(1, C1, 5) -> ReLU -> MaxPool2D(2)       (N, C1, 12, 12)
    Conv2D(C1, C2, 5) -> ReLU -> MaxPool2D(2)      (N, C2, 4, 4)
    Flatten -> Dense(16 C2, H) -> ReLU -> Dense(H, 10)   logits (N, 10)

trained with softmax cross-entropy and Adam, the learning rate decayed by
``--lr-decay`` after every epoch.

Validation protocol: ``--val-size`` (default 5,000) of the 60,000 training
digits, drawn with a fixed seed (``--val-seed``), are set aside as a validation
set; the network trains on the other 55,000. After every epoch the validation
accuracy is logged; the epoch with the best validation accuracy is chosen and
its weights kept. The 10,000 test digits are used once, at the end, to report
the accuracy of the chosen weights. ``--shift S``
(default 0: six epochs reach 99% without it) moves every training digit by up
to S pixels at random, a cheap augmentation: the digit moves, its label does not.
"""
import argparse
import json
import os
import time

import numpy as np

from bplib.cases import validation_split, write_metrics
from bplib.data import load_mnist
from bplib.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential
from bplib.losses import softmax_cross_entropy
from bplib.optim import Adam


def build_model(c1=16, c2=32, hidden=128, rng=None):
    """The LeNet-style convnet above; ``rng`` fixes the initial weights."""
    rng = rng if rng is not None else np.random.default_rng(0)
    return Sequential(
        Conv2D(1, c1, 5, rng=rng), ReLU(), MaxPool2D(2),
        Conv2D(c1, c2, 5, rng=rng), ReLU(), MaxPool2D(2),
        Flatten(), Dense(16 * c2, hidden, rng=rng), ReLU(), Dense(hidden, 10, rng=rng))


MEAN, STD = 0.1307, 0.3081          # of the training pixels (scaled to [0, 1])


def to_input(images):
    """images: (N, 28, 28) uint8 -> x: (N, 1, 28, 28) float32, standardised:
    (pixel / 255 - MEAN) / STD, so the first layer sees inputs of mean 0 and spread 1."""
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"to_input: expected images of shape (N, 28, 28), got {images.shape}")
    return ((images.astype(np.float32) / 255.0 - MEAN) / STD)[:, None]


def random_shift(x, max_shift, rng, fill=-MEAN / STD):
    """Move every image of x (N, 1, 28, 28) by its own random (dy, dx) in [-s, s];
    the uncovered border gets ``fill`` (the standardised value of a black pixel)."""
    if max_shift == 0:
        return x
    N, _, H, W = x.shape
    s = max_shift
    xp = np.pad(x, ((0, 0), (0, 0), (s, s), (s, s)), constant_values=fill)
    dy, dx = rng.integers(0, 2 * s + 1, size=(2, N))
    rows = dy[:, None] + np.arange(H)                    # (N, H)
    cols = dx[:, None] + np.arange(W)                    # (N, W)
    return xp[np.arange(N)[:, None, None], 0, rows[:, :, None], cols[:, None, :]][:, None]


def predict_proba(model, x, batch_size=500):
    """x: (N, 1, 28, 28) -> softmax probabilities (N, 10)."""
    out = []
    for s in range(0, len(x), batch_size):
        z = model.forward(x[s:s + batch_size])
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        out.append(e / e.sum(axis=1, keepdims=True))
    return np.concatenate(out)


def accuracy(model, x, y, batch_size=500):
    return float((predict_proba(model, x, batch_size).argmax(axis=1) == y).mean())


def save_weights(path, model, **config):
    np.savez(path, **{k.replace(".", "_"): v for k, v in model.params.items()},
             config=np.array(json.dumps(config)))


def load_weights(path):
    """Rebuild the trained convnet from a weights file written by ``save_weights``."""
    z = np.load(path)
    config = json.loads(str(z["config"]))
    model = build_model(config["c1"], config["c2"], config["hidden"])
    for k, v in model.params.items():
        v[:] = z[k.replace(".", "_")]
    return model


def train(epochs=6, seed=0, batch_size=64, lr=1e-3, lr_decay=0.75, shift=0, c1=16, c2=32, hidden=128,
          n_train=None, val_size=5000, val_seed=0, out=None, quiet=False):
    """Train on the training digits minus a validation part of ``val_size`` (drawn with
    ``val_seed``), choose the epoch with the best validation accuracy, keep its weights,
    and report their test accuracy (the test digits are used once, at the end).
    Returns ``(result, model)`` and writes metrics, result and weights under ``out`` if given."""
    from tqdm import tqdm
    (xtr, ytr), (xte, yte) = load_mnist()
    tr_idx, val_idx = validation_split(len(xtr), val_size, val_seed)
    xval, yval = to_input(xtr[val_idx]), ytr[val_idx]
    xtr, ytr = xtr[tr_idx], ytr[tr_idx]
    if n_train:
        xtr, ytr = xtr[:n_train], ytr[:n_train]
    xtr = to_input(xtr)
    rng = np.random.default_rng(seed)
    model = build_model(c1, c2, hidden, rng=np.random.default_rng(seed))
    opt = Adam(model, lr=lr)
    rows, t0, cpu0 = [], time.time(), time.process_time()
    best_val, best_epoch, best_params = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(xtr))
        losses, correct, seen = [], 0, 0
        bar = tqdm(range(0, len(order), batch_size), desc=f"epoch {epoch}/{epochs}", disable=quiet,
                   unit="batch", dynamic_ncols=True, mininterval=1.0)
        for i, s in enumerate(bar):
            idx = order[s:s + batch_size]
            xb = random_shift(xtr[idx], shift, rng)
            logits = model.forward(xb)
            loss, dlogits = softmax_cross_entropy(logits, ytr[idx])
            model.backward(dlogits)
            opt.step()
            losses.append(loss)
            correct += int((logits.argmax(axis=1) == ytr[idx]).sum())
            seen += len(idx)
            if i % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}", acc=f"{correct / seen:.4f}")
        opt.lr *= lr_decay
        val_acc = accuracy(model, xval, yval)
        if val_acc > best_val:                        # the first epoch wins a tie
            best_val, best_epoch = val_acc, epoch
            best_params = {k: v.copy() for k, v in model.params.items()}
        rows.append(dict(epoch=epoch, train_loss=round(float(np.mean(losses)), 5),
                         train_accuracy=round(correct / seen, 5), val_accuracy=round(val_acc, 5),
                         seconds=round(time.time() - t0, 1), cpu_seconds=round(time.process_time() - cpu0, 1)))
        if not quiet:
            tqdm.write(f"epoch {epoch}: train loss {rows[-1]['train_loss']:.4f}, train acc "
                       f"{rows[-1]['train_accuracy']:.4f}, val acc {val_acc:.4f}, {rows[-1]['seconds']:.0f} s")
    train_seconds = time.time() - t0
    for k, v in model.params.items():                 # back to the chosen epoch's weights
        v[...] = best_params[k]
    test_acc = accuracy(model, to_input(xte), yte)    # the only look at the test digits
    result = dict(case="mnist", epochs=epochs, seed=seed, chosen_epoch=best_epoch,
                  val_accuracy=round(best_val, 5), val_size=len(yval), train_size=len(ytr),
                  test_accuracy=round(test_acc, 5), test_errors=int(round((1 - test_acc) * len(yte))),
                  train_seconds=round(train_seconds, 1), train_cpu_seconds=rows[-1]["cpu_seconds"],
                  parameters=int(sum(v.size for v in model.params.values())))
    if out:
        write_metrics(out, rows, result)
        save_weights(os.path.join(out, "weights.npz"), model, c1=c1, c2=c2, hidden=hidden)
    return result, model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.75, help="learning rate factor after each epoch")
    ap.add_argument("--shift", type=int, default=0, help="random shifts of up to this many pixels")
    ap.add_argument("--c1", type=int, default=16)
    ap.add_argument("--c2", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--n-train", type=int, default=None, help="use only the first N training digits")
    ap.add_argument("--val-size", type=int, default=5000, help="training digits set aside for validation")
    ap.add_argument("--val-seed", type=int, default=0, help="seed of the validation split")
    ap.add_argument("--out", default="runs/mnist", help="folder for metrics.csv, weights.npz, result.json")
    args = ap.parse_args(argv)
    result, _ = train(epochs=args.epochs, seed=args.seed, batch_size=args.batch_size, lr=args.lr,
                      lr_decay=args.lr_decay, shift=args.shift, c1=args.c1, c2=args.c2, hidden=args.hidden,
                      n_train=args.n_train, val_size=args.val_size, val_seed=args.val_seed, out=args.out)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
