"""Optimizers: ``W <- W - alpha * dL/dW`` and its refinements, in place.

An optimizer takes a model (anything with ``params`` and ``grads`` dicts with
the same keys, such as a layer or a ``Sequential``) and updates every array of
``model.params`` in place from ``model.grads`` at each ``step()``.
"""
import numpy as np

__all__ = ["SGD", "Adam", "AdamW", "RMSProp", "StepLR"]


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


def _check_decay(opt, weight_decay):
    if not weight_decay >= 0:
        raise ValueError(f"{type(opt).__name__}: weight_decay must be >= 0, got {weight_decay}")
    return weight_decay


class SGD(_Optimizer):
    """PyTorch's SGD: g <- dW + wd W;  v <- mu v + g;  W <- W - lr v  (plain when mu = 0).

    The velocity holds gradients, not steps, so a learning rate changed between
    steps (a schedule) scales the whole step at once, as in ``torch.optim.SGD``.
    ``weight_decay`` adds the L2 gradient wd W to dW (the loss wd/2 |W|^2).
    With a constant lr this is the same trajectory as the step-velocity form
    u <- mu u - lr dW; W <- W + u (u = -lr v); only a change of lr differs.
    """

    def __init__(self, model, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(model, lr)
        self.momentum = momentum
        self.weight_decay = _check_decay(self, weight_decay)

    def step(self):
        for k, p, g in self._pairs():
            if self.weight_decay:
                g = g + self.weight_decay * p
            if self.momentum:
                v = self.state.get(k)
                if v is None:                       # first step: v = g, as PyTorch
                    v = self.state[k] = np.array(g, dtype=p.dtype, copy=True)
                else:
                    v *= self.momentum
                    v += g
                p -= self.lr * v
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
    """Adam (Kingma & Ba 2015): momentum on dW and on dW^2, with bias correction.

    ``weight_decay`` adds wd W to dW before the moments, as ``torch.optim.Adam``
    (L2 regularisation, scaled by the adaptive step like any gradient).
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model, lr)
        self.beta1, self.beta2 = betas
        self.eps, self.t = eps, 0
        self.weight_decay = _check_decay(self, weight_decay)

    def _decay(self, p, g):
        """The L2 term enters the gradient (Adam); AdamW overrides this."""
        return g + self.weight_decay * p if self.weight_decay else g

    def step(self):
        self.t += 1
        c1 = 1 - self.beta1 ** self.t
        c2 = 1 - self.beta2 ** self.t
        for k, p, g in self._pairs():
            g = self._decay(p, g)
            m, v = self.state.setdefault(k, (np.zeros_like(p), np.zeros_like(p)))
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= (self.lr / c1) * m / (np.sqrt(v / c2) + self.eps)


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``: the decay is
    decoupled from the gradient, W <- W (1 - lr wd), then the Adam step on dW alone."""

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(model, lr, betas, eps, weight_decay)

    def _decay(self, p, g):
        if self.weight_decay:
            p *= 1 - self.lr * self.weight_decay
        return g


class StepLR:
    """Learning-rate schedule as ``torch.optim.lr_scheduler.StepLR``: call ``step()``
    once per epoch; after e calls ``opt.lr = base_lr * gamma ** (e // step_size)``."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        if not (isinstance(step_size, (int, np.integer)) and step_size >= 1):
            raise ValueError(f"StepLR: step_size must be an integer >= 1, got {step_size}")
        if not gamma > 0:
            raise ValueError(f"StepLR: gamma must be positive, got {gamma}")
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), gamma
        self.base_lr, self.last_epoch = optimizer.lr, 0

    def get_lr(self):
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()
        return self.optimizer.lr
