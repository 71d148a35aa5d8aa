"""What batch norm and dropout change: the MNIST convnet trained four ways, same seed.

    python scripts/mnist_bn_dropout.py --out book/results/mnist_bn_dropout

The four variants share everything but the two layers: the convnet of
``bplib.cases.mnist`` with 64 hidden units (the same initial weights: BatchNorm and Dropout draw
no weights), the same 8,000 training digits in the same order every epoch,
Adam with the same learning rate. ``batchnorm`` puts a ``BatchNorm`` after
each convolution and after the hidden dense layer (before the ReLU);
``dropout`` puts ``Dropout(0.5)`` before the last dense layer.

Nothing here looks at the test digits: the digits are the training part of the
case's split (``validation_split(60000, 5000, seed=0)``), and every curve is
measured on its 5,000 validation digits (and, in eval mode, on 5,000 of the
training digits, to show the gap between the two).

Writes ``metrics.csv`` (one row per variant and epoch), ``steps.csv`` (the
mean training loss of every 20 batches) and ``result.json`` to ``--out``.
It takes about three minutes of CPU time on one core.
"""
import argparse
import json
import time

import numpy as np

from bplib.cases import validation_split, write_metrics
from bplib.cases.mnist import load_mnist, to_input
from bplib.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten, MaxPool2D, ReLU, Sequential
from bplib.losses import softmax_cross_entropy
from bplib.optim import Adam

VARIANTS = ("plain", "batchnorm", "dropout", "batchnorm+dropout")


def build(variant, c1=16, c2=32, hidden=64, seed=0):
    """The case's convnet, with BatchNorm and/or Dropout if ``variant`` names them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}")
    rng = np.random.default_rng(seed)
    bn = "batchnorm" in variant

    def norm(n):
        return [BatchNorm(n)] if bn else []

    drop = [Dropout(0.5, rng=np.random.default_rng(seed + 1))] if "dropout" in variant else []
    return Sequential(
        Conv2D(1, c1, 5, rng=rng), *norm(c1), ReLU(), MaxPool2D(2),
        Conv2D(c1, c2, 5, rng=rng), *norm(c2), ReLU(), MaxPool2D(2),
        Flatten(), Dense(16 * c2, hidden, rng=rng), *norm(hidden), ReLU(), *drop, Dense(hidden, 10, rng=rng))


def evaluate(model, x, y, batch_size=500):
    """Mean loss and accuracy in eval mode (running statistics, no dropout)."""
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, len(x), batch_size):
        logits = model.forward(x[s:s + batch_size])
        loss += softmax_cross_entropy(logits, y[s:s + batch_size])[0] * len(logits)
        correct += int((logits.argmax(axis=1) == y[s:s + batch_size]).sum())
    model.train()
    return loss / len(x), correct / len(x)


def run(epochs=8, n_train=8000, batch_size=64, lr=1e-3, seed=0, quiet=False):
    (x, y), _ = load_mnist()                                  # the test digits are not used
    tr_idx, val_idx = validation_split(len(x), 5000, seed=0)  # the case's split
    xtr, ytr = to_input(x[tr_idx[:n_train]]), y[tr_idx[:n_train]]
    xval, yval = to_input(x[val_idx]), y[val_idx]
    rows, steps = [], []
    for variant in VARIANTS:
        model = build(variant, seed=seed)
        opt = Adam(model, lr=lr)
        rng = np.random.default_rng(seed)                     # the same batches for every variant
        t0, step = time.process_time(), 0
        for epoch in range(1, epochs + 1):
            order = rng.permutation(len(xtr))
            losses = []
            for s in range(0, len(order), batch_size):
                idx = order[s:s + batch_size]
                loss, dlogits = softmax_cross_entropy(model.forward(xtr[idx]), ytr[idx])
                model.backward(dlogits)
                opt.step()
                losses.append(loss)
                step += 1
                if step % 20 == 0:
                    steps.append(dict(variant=variant, step=step, loss=round(float(np.mean(losses[-20:])), 5)))
            tr_loss, tr_acc = evaluate(model, xtr[:5000], ytr[:5000])
            val_loss, val_acc = evaluate(model, xval, yval)
            rows.append(dict(variant=variant, epoch=epoch, train_loss=round(float(np.mean(losses)), 5),
                             train_eval_loss=round(tr_loss, 5), train_eval_accuracy=round(tr_acc, 5),
                             val_loss=round(val_loss, 5), val_accuracy=round(val_acc, 5),
                             cpu_seconds=round(time.process_time() - t0, 1)))
            if not quiet:
                print(f"{variant:18s} epoch {epoch}: train loss {rows[-1]['train_loss']:.4f}, "
                      f"val loss {val_loss:.4f}, val acc {val_acc:.4f}, {rows[-1]['cpu_seconds']:.0f} s", flush=True)
    best = {}
    for variant in VARIANTS:
        mine = [r for r in rows if r["variant"] == variant]
        b = max(mine, key=lambda r: r["val_accuracy"])        # the first epoch wins a tie
        best[variant] = dict(chosen_epoch=b["epoch"], val_accuracy=b["val_accuracy"],
                             cpu_seconds=mine[-1]["cpu_seconds"])
    result = dict(epochs=epochs, n_train=n_train, val_size=len(yval), batch_size=batch_size, lr=lr, seed=seed,
                  variants=best)
    return rows, steps, result


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--n-train", type=int, default=8000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/mnist_bn_dropout")
    args = ap.parse_args(argv)
    rows, steps, result = run(epochs=args.epochs, n_train=args.n_train, lr=args.lr, seed=args.seed)
    write_metrics(args.out, rows, result)
    import csv
    import os
    with open(os.path.join(args.out, "steps.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(steps[0]))
        w.writeheader()
        w.writerows(steps)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
