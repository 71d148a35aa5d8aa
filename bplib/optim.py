"""Optimizers: ``W <- W - alpha * dL/dW`` and its refinements, in place.

An optimizer takes a model (anything with ``params`` and ``grads`` dicts with
the same keys, such as a layer or a ``Sequential``) and updates every array of
``model.params`` in place from ``model.grads`` at each ``step()``.
"""
import numpy as np

__all__ = ["SGD", "Adam", "RMSProp"]


class _Optimizer:
    def __init__(self, model, lr):
        if not (hasattr(model, "params") and hasattr(model, "grads")):
            raise ValueError(f"{type(self).__name__}: model must have `params` and `grads` dicts, "
                             f"got {type(model).__name__}")
        if not lr > 0:
            raise ValueError(f"{type(self).__name__}: learning rate must be positive, got {lr}")
        self.model, self.lr, self.state = model, lr, {}

    def _pairs(self):
        params, grads = self.model.params, self.model.grads
        for k, p in params.items():
            g = grads.get(k)
            if g is None or np.shape(g) != p.shape:
                raise ValueError(f"{type(self).__name__}: gradient for {k!r} has shape "
                                 f"{None if g is None else np.shape(g)}, parameter has {p.shape}")
            yield k, p, g


class SGD(_Optimizer):
    """v <- mu v - lr dW;  W <- W + v   (plain gradient descent when momentum mu = 0)."""

    def __init__(self, model, lr=0.01, momentum=0.0):
        super().__init__(model, lr)
        self.momentum = momentum

    def step(self):
        for k, p, g in self._pairs():
            if self.momentum:
                v = self.state.setdefault(k, np.zeros_like(p))
                v *= self.momentum
                v -= self.lr * g
                p += v
            else:
                p -= self.lr * g


class RMSProp(_Optimizer):
    """s <- rho s + (1 - rho) dW^2;  W <- W - lr dW / (sqrt(s) + eps)."""

    def __init__(self, model, lr=1e-3, decay=0.99, eps=1e-8):
        super().__init__(model, lr)
        self.decay, self.eps = decay, eps

    def step(self):
        for k, p, g in self._pairs():
            s = self.state.setdefault(k, np.zeros_like(p))
            s *= self.decay
            s += (1 - self.decay) * g * g
            p -= self.lr * g / (np.sqrt(s) + self.eps)


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015): momentum on dW and on dW^2, with bias correction."""

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(model, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.t = eps, 0

    def step(self):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for k, p, g in self._pairs():
            m, v = self.state.setdefault(k, (np.zeros_like(p), np.zeros_like(p)))
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)
