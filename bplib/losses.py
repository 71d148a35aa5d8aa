"""Losses: each returns ``(loss, dlogits)``, the scalar loss and dL/d(its input).

All are means over the batch, so dlogits carries the factor 1/N.
"""
import numpy as np

__all__ = ["softmax", "softmax_cross_entropy", "binary_cross_entropy", "mse"]


def softmax(logits):
    """Row-wise softmax of logits (N, K); shifting by the row max keeps exp finite."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _check_logits(name, logits, ndim):
    if not isinstance(logits, np.ndarray) or not np.issubdtype(logits.dtype, np.floating):
        raise ValueError(f"{name}: logits must be a floating-point numpy array, got "
                         f"{getattr(logits, 'dtype', type(logits).__name__)}")
    if logits.ndim != ndim:
        want = "(N, K)" if ndim == 2 else "(N,)"
        raise ValueError(f"{name}: expected logits of shape {want}, got {logits.shape}")


def softmax_cross_entropy(logits, labels):
    """Mean cross-entropy of softmax(logits) against integer class labels.

    logits: (N, K) floats, labels: (N,) ints in [0, K)
    ->  loss: float, dlogits: (N, K) = (softmax(logits) - onehot(labels)) / N
    """
    _check_logits("softmax_cross_entropy", logits, 2)
    labels = np.asarray(labels)
    N, K = logits.shape
    if labels.shape != (N,):
        raise ValueError(f"softmax_cross_entropy: expected labels of shape ({N},) to match logits {logits.shape}, "
                         f"got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"softmax_cross_entropy: labels must be integer class ids, got dtype {labels.dtype}")
    if N and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"softmax_cross_entropy: labels must lie in [0, {K}), got {labels.min()}..{labels.max()}")
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))     # log-softmax, never log(0)
    loss = -log_p[np.arange(N), labels].mean()
    dlogits = np.exp(log_p)
    dlogits[np.arange(N), labels] -= 1
    return float(loss), dlogits / N


def binary_cross_entropy(logits, targets):
    """Mean binary cross-entropy of sigmoid(logits) against targets in {0, 1}.

    logits: (N,) floats (before the sigmoid), targets: (N,) 0/1
    ->  loss: float, dlogits: (N,) = (sigmoid(logits) - targets) / N
    Computed from logits, so it stays finite however large they are.
    """
    _check_logits("binary_cross_entropy", logits, logits.ndim if isinstance(logits, np.ndarray) else 1)
    targets = np.asarray(targets)
    if targets.shape != logits.shape:
        raise ValueError(f"binary_cross_entropy: expected targets of shape {logits.shape} like logits, "
                         f"got {targets.shape}")
    if targets.dtype.kind not in "biuf" or (targets.size and (targets.min() < 0 or targets.max() > 1)):
        got = f"dtype {targets.dtype}" if targets.dtype.kind not in "biuf" else \
            f"values from {targets.min()} to {targets.max()}"
        raise ValueError(f"binary_cross_entropy: targets must be numbers in [0, 1] (1 = positive), got {got}")
    t = targets.astype(logits.dtype)
    # log(1 + exp(-|z|)) + max(z, 0) - z t  ==  -t log s(z) - (1 - t) log(1 - s(z))
    loss = (np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))).mean()
    e = np.exp(-np.abs(logits))
    p = np.where(logits >= 0, 1 / (1 + e), e / (1 + e))
    return float(loss), (p - t) / logits.size


def mse(pred, target):
    """Mean squared error over every element.

    pred, target: same shape  ->  loss: float, dpred = 2 (pred - target) / pred.size
    """
    if not isinstance(pred, np.ndarray):
        raise ValueError(f"mse: pred must be a numpy array, got {type(pred).__name__}")
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"mse: expected target of shape {pred.shape} like pred, got {target.shape}")
    diff = pred - target
    return float((diff * diff).mean()), 2 * diff / pred.size
