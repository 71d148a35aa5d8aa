"""The three worked cases, each a command line: ``python -m bplib.cases.mnist`` (also imdb, pong)."""
import csv
import json
import os


def write_metrics(out, rows, result):
    """Write ``out/metrics.csv`` (one dict per row, e.g. per epoch) and ``out/result.json``."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump(result, f, indent=1)


def validation_split(n, val_size, seed=0):
    """Carve a validation part from n training examples: ``(train_idx, val_idx)``, disjoint
    index arrays (sorted), the same for the same ``seed`` on every run and machine.
    The cases choose their epoch on it, so the test set is used once, for the final number."""
    import numpy as np
    if not 0 < val_size < n:
        raise ValueError(f"validation_split: val_size must be between 1 and {n - 1} (the training "
                         f"examples), got {val_size}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[val_size:]), np.sort(order[:val_size])
