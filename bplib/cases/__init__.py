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
