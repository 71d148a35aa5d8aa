"""bplib against PyTorch CPU, side by side in one process, on the same inputs.

    make bench                         # installs the `bench` extra (torch) if missing, then runs this
    python benchmarks/run.py [--repeats R] [--threads N] [--quick] [--no-memory] [--skip W ...]
    python benchmarks/run.py --save book/results/bench/latest.txt   # the run the book's benchmark page shows

Workloads (float32 timings, float64 agreement check first):

    lenet_step   LeNet training step: conv 1->8 5x5, ReLU, pool 2, conv 8->16 5x5, ReLU,
                 pool 2, dense 256->128, ReLU, dense 128->10, softmax cross-entropy,
                 batch 64, forward + backward + SGD update
    lstm         LSTM input 50, hidden 64, 100 steps, batch 32: forward + backward
    conv2d       Conv2D alone, batch 64, 8->16 channels, 12x12, 5x5: forward + backward (dx too)
    mnist_epoch  a measured fraction of a real MNIST epoch (shuffled batches of 64 cut
                 from the float32 training set, LeNet steps), scaled to 60000/64 steps
    batchnorm    BatchNorm(16), training mode, on (64, 16, 12, 12): forward + backward
    layernorm    LayerNorm(64) on (32, 100, 64): forward + backward
    attention    MultiHeadSelfAttention(64, 4 heads) on (32, 64, 64) against
                 nn.MultiheadAttention(batch_first=True): forward + backward
    transformer_block  TransformerBlock(64, 4 heads, mlp_hidden 256, causal) on (32, 64, 64)
                 against the same pre-norm block of torch modules: forward + backward
    mnist_time_to_99  end to end: bplib.cases.mnist's convnet trained by its recipe (Adam 1e-3,
                 x 0.75 per epoch, batches of 64 of its 55,000 training digits) in each library,
                 same initial weights and batch order, until 99.0% test accuracy (evaluated
                 every quarter epoch, evaluation not counted; at most 10 epochs); CPU seconds
                 of training, one run each. Takes minutes: skipped by --quick and by
                 --skip mnist_time_to_99. The test set is only its stopping rule (a speed
                 benchmark, no model selection).

Agreement (float64) also covers BatchNorm ((N, D) and (N, C, H, W), training steps with
running statistics, then eval), LayerNorm, Dropout (the same mask in both libraries),
every optimizer (SGD with momentum, weight decay and a learning-rate change; RMSProp;
Adam with weight decay, and with the MNIST case's decay; AdamW; StepLR), four steps of
mnist_time_to_99's two trainings, and, when bplib has them, MultiHeadSelfAttention and
TransformerBlock.

Both libraries run in this one process on the very same arrays; bplib and torch
runs are interleaved so that a busy neighbour on a shared machine slows both.
The last lines are ``ratio <workload> <bplib_ms / torch_ms>`` (``ratio mnist_time_to_99 n/a
(...)`` if a library did not reach 99% within the cap); ``--save PATH`` writes all of it
to PATH as well (only once the run has finished).
"""
import argparse
import ctypes
import glob
import importlib.util
import inspect
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import numpy as np

import bplib
from bplib import layers as L
from bplib import losses, optim
from bplib.gradcheck import rel_error

BATCH, LR = 64, 0.01
WORKLOADS = ("lenet_step", "lstm", "conv2d", "mnist_epoch", "batchnorm", "layernorm", "attention", "transformer_block",
             "mnist_time_to_99")
# the targets of the issues (13, 16-18) for the ratio bplib / torch; printed in the table
TARGETS = {"lenet_step": 1.0, "lstm": 1.0, "conv2d": 1.0, "mnist_epoch": 1.0, "batchnorm": 1.2, "layernorm": 1.2,
           "attention": 1.2, "transformer_block": 1.2, "mnist_time_to_99": 1.0}


# ----------------------------------------------------------------------------
# threads: torch gets as many as numpy's BLAS uses
# ----------------------------------------------------------------------------
def _openblas():
    """numpy's bundled OpenBLAS (scipy-openblas), or None if numpy links another BLAS."""
    libdir = os.path.dirname(np.__file__) + ".libs"
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for suffix in ("scipy_openblas_{}_num_threads64_", "openblas_{}_num_threads64_", "openblas_{}_num_threads"):
            if hasattr(lib, suffix.format("get")):
                return lib, suffix
    return None, None


def blas_kernels():
    """Which of OpenBLAS's kernel sets numpy's matmuls run (e.g. Haswell: AVX2, SkylakeX: AVX-512), and
    whether the environment chose it (``OPENBLAS_CORETYPE``) or OpenBLAS's own CPU detection did."""
    lib, _ = _openblas()
    name = None
    for symbol in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
        if lib is not None and hasattr(lib, symbol):
            f = getattr(lib, symbol)
            f.restype = ctypes.c_char_p
            name = f().decode()
            break
    if name is None:
        return "unknown (numpy links another BLAS)"
    chosen = os.environ.get("OPENBLAS_CORETYPE")
    return f"{name} ({f'OPENBLAS_CORETYPE={chosen} in the environment' if chosen else 'detected by OpenBLAS'})"


def blas_threads(set_to=None):
    """Threads numpy's matmul uses (optionally set first); falls back to the environment."""
    lib, fmt = _openblas()
    if lib is None:
        return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())
    if set_to:
        getattr(lib, fmt.format("set"))(ctypes.c_int(set_to))
    return int(getattr(lib, fmt.format("get"))())


# ----------------------------------------------------------------------------
# the models, once in bplib and once in torch, sharing initial weights
# ----------------------------------------------------------------------------
def use_layers_from(rev):
    """Swap in bplib/layers.py as of git revision ``rev`` (to measure an older version)."""
    global L
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src = subprocess.run(["git", "-C", root, "show", f"{rev}:bplib/layers.py"], check=True,
                         capture_output=True, text=True).stdout
    spec = importlib.util.spec_from_loader("bplib.layers", loader=None)
    L = importlib.util.module_from_spec(spec)
    exec(compile(src, f"bplib/layers.py@{rev}", "exec"), L.__dict__)
    sys.modules["bplib.layers"] = bplib.layers = L
    bplib.Sequential = L.Sequential


def lenet(dtype, seed=0):
    rng = np.random.default_rng(seed)
    # torch computes no gradient for the input images; bplib is told the same
    first = {"input_grad": False} if "input_grad" in inspect.signature(L.Conv2D).parameters else {}
    return bplib.Sequential(
        L.Conv2D(1, 8, 5, rng=rng, dtype=dtype, **first), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(8, 16, 5, rng=rng, dtype=dtype), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
        L.Dense(256, 128, rng=rng, dtype=dtype), L.ReLU(), L.Dense(128, 10, rng=rng, dtype=dtype))


def torch_params(model):
    """Copies of a bplib model's params as torch leaf tensors (same keys)."""
    return {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}


def lenet_torch(p, x):
    F = torch.nn.functional
    h = F.max_pool2d(F.relu(F.conv2d(x, p["0.W"], p["0.b"])), 2)
    h = F.max_pool2d(F.relu(F.conv2d(h, p["3.W"], p["3.b"])), 2)
    h = F.relu(torch.addmm(p["7.b"], h.flatten(1), p["7.W"]))       # bplib Dense keeps W as (D, M)
    return torch.addmm(p["9.b"], h, p["9.W"])


class LeNetPair:
    """One LeNet in each library, same weights; ``step_*`` do forward + backward + SGD."""

    def __init__(self, dtype):
        self.model = lenet(dtype)
        self.opt = optim.SGD(self.model, lr=LR)
        self.tp = torch_params(self.model)
        self.topt = torch.optim.SGD(list(self.tp.values()), lr=LR)

    def step_bplib(self, x, y):
        logits = self.model.forward(x)
        loss, dlogits = losses.softmax_cross_entropy(logits, y)
        self.model.backward(dlogits)
        self.opt.step()
        return logits, loss

    def step_torch(self, x, y):
        self.topt.zero_grad(set_to_none=True)
        logits = lenet_torch(self.tp, x)
        loss = torch.nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.topt.step()
        return logits, loss


def _gates_bplib_to_torch(a, axis):
    """bplib stacks LSTM gates i, f, o, g; torch i, f, g, o (the swap is its own inverse)."""
    i, f, o, g = np.split(a, 4, axis=axis)
    return np.concatenate([i, f, g, o], axis=axis)


class LSTMPair:
    def __init__(self, dtype, D=50, H=64, seed=0):
        self.layer = L.LSTM(D, H, rng=np.random.default_rng(seed), dtype=dtype)
        P = self.layer.params
        self.tlstm = torch.nn.LSTM(D, H, batch_first=True).to(torch.float64 if dtype == np.float64 else torch.float32)
        with torch.no_grad():
            self.tlstm.weight_ih_l0.copy_(torch.from_numpy(_gates_bplib_to_torch(P["Wx"], 1).T.copy()))
            self.tlstm.weight_hh_l0.copy_(torch.from_numpy(_gates_bplib_to_torch(P["Wh"], 1).T.copy()))
            self.tlstm.bias_ih_l0.copy_(torch.from_numpy(_gates_bplib_to_torch(P["b"], 0)))
            self.tlstm.bias_hh_l0.zero_()

    def run_bplib(self, x, dout):
        out = self.layer.forward(x)
        return out, self.layer.backward(dout)

    def run_torch(self, x, dout):
        self.tlstm.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = self.tlstm(x)
        out.backward(dout)
        return out, x.grad

    def torch_grads(self):
        m = self.tlstm
        return {"Wx": _gates_bplib_to_torch(m.weight_ih_l0.grad.numpy().T, 1),
                "Wh": _gates_bplib_to_torch(m.weight_hh_l0.grad.numpy().T, 1),
                "b": _gates_bplib_to_torch(m.bias_ih_l0.grad.numpy(), 0)}


class ConvPair:
    def __init__(self, dtype, C=8, F=16, k=5, seed=0):
        self.layer = L.Conv2D(C, F, k, rng=np.random.default_rng(seed), dtype=dtype)
        self.tp = {k_: torch.tensor(v, requires_grad=True) for k_, v in self.layer.params.items()}

    def run_bplib(self, x, dout):
        out = self.layer.forward(x)
        return out, self.layer.backward(dout)

    def run_torch(self, x, dout):
        for t in (x, *self.tp.values()):
            t.grad = None
        out = torch.nn.functional.conv2d(x, self.tp["W"], self.tp["b"])
        out.backward(dout)
        return out, x.grad


# ----------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------
def lenet_inputs(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((BATCH, 1, 28, 28)).astype(dtype), rng.integers(0, 10, BATCH)


def lstm_inputs(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((32, 100, 50)).astype(dtype), rng.standard_normal((32, 100, 64)).astype(dtype)


def conv_inputs(dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((64, 8, 12, 12)).astype(dtype), rng.standard_normal((64, 16, 8, 8)).astype(dtype)


def tt(a, grad=False):
    """A torch tensor sharing memory with the numpy array ``a``."""
    t = torch.from_numpy(a)
    return t.requires_grad_() if grad else t


# ----------------------------------------------------------------------------
# 1b. agreement of the newer layers and the optimizers (float64)
# ----------------------------------------------------------------------------
def _t64(a, grad=False):
    return tt(np.array(a, dtype=np.float64), grad)


def agree_norms(errors, seed=2):
    """BatchNorm ((N, D) and (N, C, H, W); 3 training steps, then eval) and LayerNorm
    against torch's modules, gamma and beta not at their initial values."""
    rng = np.random.default_rng(seed)
    for shape, tmod in (((16, 6), torch.nn.BatchNorm1d), ((8, 3, 5, 4), torch.nn.BatchNorm2d)):
        C = shape[1]
        bn = L.BatchNorm(C, eps=1e-5, momentum=0.1, dtype=np.float64)
        bn.params["gamma"][:] = rng.uniform(0.5, 1.5, C)
        bn.params["beta"][:] = rng.standard_normal(C)
        tbn = tmod(C, eps=1e-5, momentum=0.1, dtype=torch.float64)
        with torch.no_grad():
            tbn.weight.copy_(torch.from_numpy(bn.params["gamma"]))
            tbn.bias.copy_(torch.from_numpy(bn.params["beta"]))
        name = f"batchnorm {shape}"
        for step, mode in enumerate(("train", "train", "train", "eval")):
            x = 2 * rng.standard_normal(shape) + 1.5
            dout = rng.standard_normal(shape)
            bn.train(mode == "train"), tbn.train(mode == "train")
            out = bn.forward(x)
            dx = bn.backward(dout)
            tx = _t64(x, grad=True)
            tbn.zero_grad(set_to_none=True)
            tout = tbn(tx)
            tout.backward(_t64(dout))
            key = f"{name} {mode} {step}"
            errors[f"{key} out"] = rel_error(tout.detach().numpy(), out)
            errors[f"{key} dx"] = rel_error(tx.grad.numpy(), dx)
            errors[f"{key} dgamma"] = rel_error(tbn.weight.grad.numpy(), bn.grads["gamma"])
            errors[f"{key} dbeta"] = rel_error(tbn.bias.grad.numpy(), bn.grads["beta"])
            errors[f"{key} running_mean"] = rel_error(tbn.running_mean.numpy(), bn.running_mean)
            errors[f"{key} running_var"] = rel_error(tbn.running_var.numpy(), bn.running_var)
    for shape in ((4, 7, 10), (6, 10)):
        D = shape[-1]
        ln = L.LayerNorm(D, eps=1e-5, dtype=np.float64)
        ln.params["gamma"][:] = rng.uniform(0.5, 1.5, D)
        ln.params["beta"][:] = rng.standard_normal(D)
        tln = torch.nn.LayerNorm(D, eps=1e-5, dtype=torch.float64)
        with torch.no_grad():
            tln.weight.copy_(torch.from_numpy(ln.params["gamma"]))
            tln.bias.copy_(torch.from_numpy(ln.params["beta"]))
        for step in range(2):
            x = 3 * rng.standard_normal(shape) - 1
            dout = rng.standard_normal(shape)
            out = ln.forward(x)
            dx = ln.backward(dout)
            tx = _t64(x, grad=True)
            tln.zero_grad(set_to_none=True)
            tout = tln(tx)
            tout.backward(_t64(dout))
            key = f"layernorm {shape} {step}"
            errors[f"{key} out"] = rel_error(tout.detach().numpy(), out)
            errors[f"{key} dx"] = rel_error(tx.grad.numpy(), dx)
            errors[f"{key} dgamma"] = rel_error(tln.weight.grad.numpy(), ln.grads["gamma"])
            errors[f"{key} dbeta"] = rel_error(tln.bias.grad.numpy(), ln.grads["beta"])


def agree_dropout(errors, p=0.3, seed=3):
    """Dropout: same mask -> same output and gradient. bplib's mask drives torch's
    autograd (x * mask / (1 - p)), torch's own mask (``aten.native_dropout``) drives
    bplib's backward; eval mode is the identity in both."""
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal((6, 4, 5)), rng.standard_normal((6, 4, 5))
    drop = L.Dropout(p, rng=np.random.default_rng(seed))
    out = drop.forward(x)
    dx = drop.backward(dout)
    tx = _t64(x, grad=True)
    tout = tx * torch.from_numpy(drop.mask) / (1 - p)
    tout.backward(_t64(dout))
    errors["dropout bplib mask out"] = rel_error(tout.detach().numpy(), out)
    errors["dropout bplib mask dx"] = rel_error(tx.grad.numpy(), dx)
    tout, tmask = torch.ops.aten.native_dropout(_t64(x), p, True)
    drop.forward(x)
    drop.mask = tmask.numpy()                                   # torch's mask in bplib's layer
    errors["dropout torch mask out"] = rel_error(tout.numpy(), x * drop.mask * (1 / (1 - p)))
    errors["dropout torch mask dx"] = rel_error(
        torch.ops.aten.native_dropout_backward(_t64(dout), tmask, 1 / (1 - p)).numpy(), drop.backward(dout))
    drop.eval()
    tout = torch.nn.functional.dropout(_t64(x), p, training=False)
    errors["dropout eval out"] = rel_error(tout.numpy(), drop.forward(x))
    errors["dropout eval dx"] = rel_error(dout, drop.backward(dout))


class _Quadratic:
    """A model for the optimizers: params W, b; loss 1/2 |W - W*|^2 + 1/2 |b - b*|^2 + cubic term."""

    def __init__(self, rng):
        self.params = {"W": rng.standard_normal((5, 4)), "b": rng.standard_normal(4)}
        self.target = {k: rng.standard_normal(v.shape) for k, v in self.params.items()}
        self.grads = {}

    def gradient(self, p, k):
        """dL/dp; works on numpy arrays and torch tensors alike."""
        return (p - self.target[k] if isinstance(p, np.ndarray) else p - torch.from_numpy(self.target[k])) + 0.1 * p ** 3

    def backward(self):
        self.grads = {k: self.gradient(p, k) for k, p in self.params.items()}


def agree_optimizers(errors, seed=4):
    """Every bplib optimizer against its torch.optim counterpart, several steps on the
    same model and gradients: SGD with momentum and weight decay and a learning-rate
    change between steps (0.05 -> 0.01), plain SGD, RMSProp, Adam with weight decay,
    Adam with the MNIST case's learning-rate decay (x 0.75), AdamW, and SGD with momentum
    under StepLR."""
    cases = [
        ("SGD(momentum 0.9, weight_decay 1e-3, lr 0.05->0.01)", lambda m: optim.SGD(m, lr=0.05, momentum=0.9, weight_decay=1e-3),
         lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3), {2: 0.01}, None),
        ("SGD(weight_decay 1e-2)", lambda m: optim.SGD(m, lr=0.05, weight_decay=1e-2),
         lambda ps: torch.optim.SGD(ps, lr=0.05, weight_decay=1e-2), {}, None),
        ("RMSProp", lambda m: optim.RMSProp(m, lr=0.01, decay=0.99, eps=1e-8),
         lambda ps: torch.optim.RMSprop(ps, lr=0.01, alpha=0.99, eps=1e-8), {}, None),
        ("Adam(weight_decay 1e-2)", lambda m: optim.Adam(m, lr=0.01, weight_decay=1e-2),
         lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=1e-2), {}, None),
        ("Adam(lr 1e-3 -> 7.5e-4 -> 5.6e-4)", lambda m: optim.Adam(m, lr=1e-3),      # mnist_time_to_99's recipe
         lambda ps: torch.optim.Adam(ps, lr=1e-3), {2: 7.5e-4, 4: 5.625e-4}, None),
        ("AdamW(weight_decay 0.1)", lambda m: optim.AdamW(m, lr=0.01, weight_decay=0.1),
         lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1), {}, None),
        ("SGD(momentum 0.9) + StepLR(2, 0.5)", lambda m: optim.SGD(m, lr=0.05, momentum=0.9),
         lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9), {}, (2, 0.5)),
    ]
    for name, make, tmake, lr_changes, sched in cases:
        model = _Quadratic(np.random.default_rng(seed))
        tparams = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
        opt, topt = make(model), tmake(list(tparams.values()))
        if sched:
            sch, tsch = optim.StepLR(opt, *sched), torch.optim.lr_scheduler.StepLR(topt, *sched)
        for step in range(6):
            if step in lr_changes:                              # a schedule by hand, between steps
                opt.lr = lr_changes[step]
                for group in topt.param_groups:
                    group["lr"] = lr_changes[step]
            model.backward()
            opt.step()
            with torch.no_grad():
                for k, tp in tparams.items():
                    tp.grad = model.gradient(tp.detach().clone(), k)
            topt.step()
            if sched:
                sch.step()
                tsch.step()
                errors[f"optim {name} step {step} lr"] = rel_error(tsch.get_last_lr()[0], opt.lr)
            for k, p in model.params.items():
                errors[f"optim {name} step {step} {k}"] = rel_error(tparams[k].detach().numpy(), p)


def agree_case_recipe(errors, steps=4, seed=5):
    """mnist_time_to_99's two trainings in float64: bplib.cases.mnist's model (its weights cast
    to float64) and its torch copy, Adam(lr 1e-3) with the lr times 0.75 after step 2, the
    same batches; logits, loss and every weight after each step."""
    from bplib.cases import mnist as case
    model = case.build_model(rng=np.random.default_rng(0))
    for layer in model.layers:                                  # the same layers and weights, in float64
        for k, v in getattr(layer, "params", {}).items():
            layer.params[k] = v.astype(np.float64)
        if hasattr(layer, "dtype"):
            layer.dtype = np.dtype(np.float64)
    model.layers[0].input_grad = False
    opt = optim.Adam(model, lr=1e-3)
    tp = torch_params(model)
    topt = torch.optim.Adam(list(tp.values()), lr=1e-3)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        if step == 2:
            opt.lr *= 0.75
            topt.param_groups[0]["lr"] *= 0.75
        x, y = rng.standard_normal((16, 1, 28, 28)), rng.integers(0, 10, 16)
        logits = model.forward(x)
        loss, dlogits = losses.softmax_cross_entropy(logits, y)
        model.backward(dlogits)
        opt.step()
        topt.zero_grad(set_to_none=True)
        tlogits = case_model_torch(tp, tt(x))
        tloss = torch.nn.functional.cross_entropy(tlogits, tt(y))
        tloss.backward()
        topt.step()
        errors[f"mnist case step {step} logits"] = rel_error(tlogits.detach().numpy(), logits)
        errors[f"mnist case step {step} loss"] = rel_error(tloss.item(), loss)
        for k, p in model.params.items():
            errors[f"mnist case step {step} updated {k}"] = rel_error(tp[k].detach().numpy(), p)


class AttentionPair:
    """bplib's MultiHeadSelfAttention and torch's nn.MultiheadAttention(batch_first=True), same weights."""

    def __init__(self, D, h, causal, dtype, seed=0):
        rng = np.random.default_rng(seed)
        self.layer = L.MultiHeadSelfAttention(D, h, causal=causal, rng=rng, dtype=dtype)
        for k in ("bqkv", "bo"):                                  # biases not at their initial zeros
            self.layer.params[k][:] = 0.1 * rng.standard_normal(self.layer.params[k].shape)
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        self.tmha = torch.nn.MultiheadAttention(D, h, batch_first=True, dtype=tdtype)
        self.tmha.load_state_dict({k: torch.from_numpy(v) for k, v in self.layer.torch_state_dict().items()})
        self.causal = causal

    def run_bplib(self, x, dout):
        out = self.layer.forward(x)
        return out, self.layer.backward(dout)

    def run_torch(self, x, dout):
        self.tmha.zero_grad(set_to_none=True)
        x.grad = None
        T = x.shape[1]
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if self.causal else None   # True = blocked
        out, _ = self.tmha(x, x, x, need_weights=False, attn_mask=mask)
        out.backward(dout)
        return out, x.grad

    def torch_grads(self):
        names = L.MultiHeadSelfAttention.TORCH_NAMES
        params = dict(self.tmha.named_parameters())
        return {k: params[t].grad.numpy() for k, t in names.items()}


class BlockPair:
    """bplib's TransformerBlock and the same pre-norm block from torch modules, same weights."""

    def __init__(self, D, h, hidden, causal, dtype, seed=0):
        rng = np.random.default_rng(seed)
        self.block = b = L.TransformerBlock(D, h, hidden, causal=causal, rng=rng, dtype=dtype)
        for k, v in b.params.items():                             # gamma, beta, biases off their initial values
            if not k.endswith(("W", "Wqkv", "Wo")):
                v[:] = (1 if k.endswith("gamma") else 0) + 0.1 * rng.standard_normal(v.shape)
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        nn = torch.nn
        self.t = {"ln1": nn.LayerNorm(D, dtype=tdtype), "ln2": nn.LayerNorm(D, dtype=tdtype),
                  "attn": nn.MultiheadAttention(D, h, batch_first=True, dtype=tdtype),
                  "fc1": nn.Linear(D, hidden, dtype=tdtype), "fc2": nn.Linear(hidden, D, dtype=tdtype)}
        with torch.no_grad():
            for s in ("ln1", "ln2"):
                self.t[s].weight.copy_(torch.from_numpy(b.params[f"{s}.gamma"]))
                self.t[s].bias.copy_(torch.from_numpy(b.params[f"{s}.beta"]))
            for s in ("fc1", "fc2"):                               # Dense keeps W as (D, M): torch's weight is W^T
                self.t[s].weight.copy_(torch.from_numpy(b.params[f"{s}.W"].T.copy()))
                self.t[s].bias.copy_(torch.from_numpy(b.params[f"{s}.b"]))
        self.t["attn"].load_state_dict({k: torch.from_numpy(v) for k, v in b.attn.torch_state_dict().items()})
        self.causal = causal

    def run_bplib(self, x, dout):
        out = self.block.forward(x)
        return out, self.block.backward(dout)

    def run_torch(self, x, dout):
        for m in self.t.values():
            m.zero_grad(set_to_none=True)
        x.grad = None
        T, t = x.shape[1], self.t
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if self.causal else None
        a = t["ln1"](x)
        hh = x + t["attn"](a, a, a, need_weights=False, attn_mask=mask)[0]
        out = hh + t["fc2"](torch.relu(t["fc1"](t["ln2"](hh))))
        out.backward(dout)
        return out, x.grad

    def torch_grads(self):
        g = {}
        for s in ("ln1", "ln2"):
            g[f"{s}.gamma"], g[f"{s}.beta"] = self.t[s].weight.grad.numpy(), self.t[s].bias.grad.numpy()
        for s in ("fc1", "fc2"):
            g[f"{s}.W"], g[f"{s}.b"] = self.t[s].weight.grad.numpy().T, self.t[s].bias.grad.numpy()
        params = dict(self.t["attn"].named_parameters())
        for k, tname in L.MultiHeadSelfAttention.TORCH_NAMES.items():
            g[f"attn.{k}"] = params[tname].grad.numpy()
        return g


ATTN_SHAPE, ATTN_HEADS, BLOCK_HIDDEN = (32, 64, 64), 4, 256      # (N, T, D); timings


def attention_inputs(shape, dtype, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)


def agree_attention(errors):
    """MultiHeadSelfAttention against nn.MultiheadAttention(batch_first=True) (plain and causal),
    and TransformerBlock against the same block built from torch modules: output, dx, every grad."""
    for causal in (False, True):
        x, dout = attention_inputs((3, 7, 12), np.float64)
        pair = AttentionPair(12, 3, causal, np.float64)
        out, dx = pair.run_bplib(x, dout)
        tx = tt(x.copy(), grad=True)
        tout, tdx = pair.run_torch(tx, tt(dout))
        name = f"attention{' causal' if causal else ''}"
        errors[f"{name} out"] = rel_error(tout.detach().numpy(), out)
        errors[f"{name} dx"] = rel_error(tdx.numpy(), dx)
        for k, g in pair.torch_grads().items():
            errors[f"{name} d{k}"] = rel_error(g, pair.layer.grads[k])
        pair = BlockPair(12, 3, 20, causal, np.float64)
        out, dx = pair.run_bplib(x, dout)
        tx = tt(x.copy(), grad=True)
        tout, tdx = pair.run_torch(tx, tt(dout))
        name = f"transformer_block{' causal' if causal else ''}"
        errors[f"{name} out"] = rel_error(tout.detach().numpy(), out)
        errors[f"{name} dx"] = rel_error(tdx.numpy(), dx)
        tg = pair.torch_grads()
        assert set(tg) == set(pair.block.grads), (set(tg) ^ set(pair.block.grads))
        for k, g in tg.items():
            errors[f"{name} d{k}"] = rel_error(g, pair.block.grads[k])


def bench_attention(repeats, block=False):
    x, dout = attention_inputs(ATTN_SHAPE, np.float32)
    D = ATTN_SHAPE[2]
    pair = BlockPair(D, ATTN_HEADS, BLOCK_HIDDEN, True, np.float32) if block else AttentionPair(D, ATTN_HEADS, False, np.float32)
    tx, tdout = tt(x.copy(), grad=True), tt(dout)
    return time_pair(lambda: pair.run_bplib(x, dout), lambda: pair.run_torch(tx, tdout), repeats)


# ----------------------------------------------------------------------------
# 1. agreement in float64
# ----------------------------------------------------------------------------
def check_agreement(tol=1e-10):
    """Every output and gradient of bplib against torch, in float64. Returns the worst error."""
    errors = {}
    pair = LeNetPair(np.float64)
    x, y = lenet_inputs(np.float64)
    for step in range(2):                                       # the 2nd step runs on updated weights
        logits, loss = pair.step_bplib(x, y)
        tlogits, tloss = pair.step_torch(tt(x), tt(y))
        errors[f"lenet step {step} logits"] = rel_error(tlogits.detach().numpy(), logits)
        errors[f"lenet step {step} loss"] = rel_error(tloss.item(), loss)
        for k, g in pair.model.grads.items():
            errors[f"lenet step {step} d{k}"] = rel_error(pair.tp[k].grad.numpy(), g)
    for k, p in pair.model.params.items():
        errors[f"lenet updated {k}"] = rel_error(pair.tp[k].detach().numpy(), p)

    pair = LSTMPair(np.float64)
    x, dout = lstm_inputs(np.float64)
    out, dx = pair.run_bplib(x, dout)
    tx = tt(x.copy(), grad=True)
    tout, tdx = pair.run_torch(tx, tt(dout))
    errors["lstm out"] = rel_error(tout.detach().numpy(), out)
    errors["lstm dx"] = rel_error(tdx.numpy(), dx)
    for k, g in pair.torch_grads().items():
        errors[f"lstm d{k}"] = rel_error(g, pair.layer.grads[k])

    pair = ConvPair(np.float64)
    x, dout = conv_inputs(np.float64)
    out, dx = pair.run_bplib(x, dout)
    tout, tdx = pair.run_torch(tt(x.copy(), grad=True), tt(dout))
    errors["conv2d out"] = rel_error(tout.detach().numpy(), out)
    errors["conv2d dx"] = rel_error(tdx.numpy(), dx)
    for k, g in pair.layer.grads.items():
        errors[f"conv2d d{k}"] = rel_error(pair.tp[k].grad.numpy(), g)

    if hasattr(L, "BatchNorm"):                                 # not in bplib/layers.py of older revisions
        agree_norms(errors)
        agree_dropout(errors)
    agree_optimizers(errors)
    agree_case_recipe(errors)
    if hasattr(L, "MultiHeadSelfAttention"):
        agree_attention(errors)

    worst = max(errors, key=errors.get)
    bad = {k: e for k, e in errors.items() if not e < tol}
    print(f"agreement (float64): {len(errors)} arrays compared, worst {errors[worst]:.1e} ({worst}), "
          f"tolerance {tol:.0e}")
    if bad:
        for k, e in bad.items():
            print(f"  MISMATCH {k}: relative error {e:.2e}")
        raise SystemExit("bplib and torch disagree: the timings would compare different computations")
    return errors[worst]


# ----------------------------------------------------------------------------
# 2. timings in float32
# ----------------------------------------------------------------------------
CLOCK = time.perf_counter          # main() switches to CPU time when both libraries run one thread


def time_pair(fn_a, fn_b, repeats, warmup=3):
    """Interleaved timings (ms) of two callables: lists ``(times_a, times_b)``."""
    for _ in range(warmup):
        fn_a()
        fn_b()
    ta, tb = [], []
    for r in range(repeats):
        for fn, acc in ((fn_a, ta), (fn_b, tb)) if r % 2 == 0 else ((fn_b, tb), (fn_a, ta)):
            t0 = CLOCK()
            fn()
            acc.append((CLOCK() - t0) * 1e3)
    return ta, tb


def bench_lenet(repeats):
    pair = LeNetPair(np.float32)
    x, y = lenet_inputs(np.float32)
    tx, ty = tt(x), tt(y)
    return time_pair(lambda: pair.step_bplib(x, y), lambda: pair.step_torch(tx, ty), repeats)


def bench_lstm(repeats):
    pair = LSTMPair(np.float32)
    x, dout = lstm_inputs(np.float32)
    tx, tdout = tt(x.copy(), grad=True), tt(dout)
    return time_pair(lambda: pair.run_bplib(x, dout), lambda: pair.run_torch(tx, tdout), repeats)


def bench_conv(repeats):
    pair = ConvPair(np.float32)
    x, dout = conv_inputs(np.float32)
    tx, tdout = tt(x.copy(), grad=True), tt(dout)
    return time_pair(lambda: pair.run_bplib(x, dout), lambda: pair.run_torch(tx, tdout), repeats)


class NormPair:
    """BatchNorm (training mode) or LayerNorm in both libraries; forward + backward
    (dx, dgamma, dbeta), gamma and beta not at their initial values."""

    def __init__(self, kind, shape, dtype, seed=0):
        rng = np.random.default_rng(seed)
        D = shape[1] if kind == "batchnorm" else shape[-1]
        self.layer = L.BatchNorm(D, dtype=dtype) if kind == "batchnorm" else L.LayerNorm(D, dtype=dtype)
        self.layer.params["gamma"][:] = rng.uniform(0.5, 1.5, D)
        self.layer.params["beta"][:] = rng.standard_normal(D)
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        if kind == "batchnorm":
            self.tlayer = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(D, dtype=tdtype)
        else:
            self.tlayer = torch.nn.LayerNorm(D, dtype=tdtype)
        with torch.no_grad():
            self.tlayer.weight.copy_(torch.from_numpy(self.layer.params["gamma"]))
            self.tlayer.bias.copy_(torch.from_numpy(self.layer.params["beta"]))

    def run_bplib(self, x, dout):
        out = self.layer.forward(x)
        return out, self.layer.backward(dout)

    def run_torch(self, x, dout):
        self.tlayer.zero_grad(set_to_none=True)
        x.grad = None
        out = self.tlayer(x)
        out.backward(dout)
        return out, x.grad


BN_SHAPE, LN_SHAPE = (64, 16, 12, 12), (32, 100, 64)


def bench_norm(kind, shape, repeats):
    pair = NormPair(kind, shape, np.float32)
    rng = np.random.default_rng(1)
    x, dout = (3 * rng.standard_normal(shape) + 1).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    tx, tdout = tt(x.copy(), grad=True), tt(dout)
    return time_pair(lambda: pair.run_bplib(x, dout), lambda: pair.run_torch(tx, tdout), repeats)


def mnist_train_float32():
    """The 60000 MNIST training digits as (60000, 1, 28, 28) float32 in [0, 1], and labels."""
    (x, y), _ = bplib.data.load_mnist()
    x = x.reshape(-1, 1, 28, 28).astype(np.float32)
    x /= 255
    return x, y


def bench_mnist_epoch(repeats, steps=40):
    """Run ``steps`` LeNet steps over shuffled real batches; scale to a full epoch (seconds)."""
    try:
        xtr, ytr = mnist_train_float32()
    except ModuleNotFoundError as e:
        print(f"mnist_epoch: {e}; estimating from the LeNet step instead")
        return None
    pair = LeNetPair(np.float32)
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(xtr), BATCH, replace=False) for _ in range(steps)]
    per_epoch = (len(xtr) / BATCH) / steps

    def run_bplib():
        for idx in batches:
            pair.step_bplib(xtr[idx], ytr[idx])

    def run_torch():
        for idx in batches:
            pair.step_torch(torch.from_numpy(xtr[idx]), torch.from_numpy(ytr[idx]))

    ta, tb = time_pair(run_bplib, run_torch, repeats, warmup=1)
    return [t * per_epoch / 1e3 for t in ta], [t * per_epoch / 1e3 for t in tb]


# ----------------------------------------------------------------------------
# 2b. time to 99% test accuracy: the MNIST case's model and recipe, end to end
# ----------------------------------------------------------------------------
TTA_TARGET, TTA_MAX_EPOCHS, TTA_EVALS_PER_EPOCH = 0.99, 10, 4
TTA_INTERLEAVE = 5                  # steps each library runs before the other one's turn


def case_model_torch(p, x):
    """bplib.cases.mnist's convnet in torch on bplib's params ``p`` (the LeNet's layer
    indices: 0, 3 conv; 7, 9 dense); only the channel counts differ."""
    return lenet_torch(p, x)


def bench_mnist_time_to_99(target=TTA_TARGET, max_epochs=TTA_MAX_EPOCHS, evals=TTA_EVALS_PER_EPOCH):
    """Train ``bplib.cases.mnist``'s model by its recipe once in bplib and once in torch until the
    test accuracy is >= ``target``; returns a dict of times (CPU s), steps and accuracies.

    Same for both: the 55,000 training digits of the case's validation split, standardised
    by the case's ``to_input`` (once, shared, not timed); the initial weights (bplib's, copied
    into torch); one seeded permutation per epoch that both read the same batches of 64 from;
    Adam(lr 1e-3, betas (0.9, 0.999), eps 1e-8), the learning rate times 0.75 after every epoch
    (the agreement step checks bplib's Adam against torch.optim.Adam, with such a change).
    Timed: every training step with its batch gathering (x[idx], y[idx]; torch.from_numpy for
    torch). The test accuracy is evaluated every 1/``evals`` epoch; evaluation is timed
    separately and NOT counted in the time to accuracy (reported beside it).

    The test set is used only as this stopping rule: this is a benchmark of speed, not a model
    selection (the case itself chooses its epoch on the validation split).
    Interleaved: the two libraries take turns of ``TTA_INTERLEAVE`` steps on the same batches
    (who goes first swaps every turn); once one library has reached the target, the other
    runs on alone.
    """
    from bplib.cases import mnist as case, validation_split
    (xtr, ytr), (xte, yte) = bplib.data.load_mnist()
    tr_idx, _ = validation_split(len(xtr), 5000, 0)            # the case's split: train on its 55,000
    xtr, ytr = case.to_input(xtr[tr_idx]), ytr[tr_idx]
    xte = case.to_input(xte)
    txte = torch.from_numpy(xte)

    model = case.build_model(rng=np.random.default_rng(0))      # the case's model and initial weights
    model.layers[0].input_grad = False      # torch computes no gradient for the images; bplib is told the same
    opt = optim.Adam(model, lr=1e-3)
    tp = torch_params(model)
    topt = torch.optim.Adam(list(tp.values()), lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    with torch.no_grad():                                       # same initial function, in float32
        e = rel_error(case_model_torch(tp, txte[:64]).numpy(), model.forward(xte[:64]))
    assert e < 1e-4, f"mnist_time_to_99: initial logits differ between bplib and torch ({e:.1e})"

    def steps_bplib(batches):
        for idx in batches:
            _, dlogits = losses.softmax_cross_entropy(model.forward(xtr[idx]), ytr[idx])
            model.backward(dlogits)
            opt.step()

    def steps_torch(batches):
        for idx in batches:
            topt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(case_model_torch(tp, torch.from_numpy(xtr[idx])),
                                                     torch.from_numpy(ytr[idx]))
            loss.backward()
            topt.step()

    def acc_bplib():
        return case.accuracy(model, xte, yte, batch_size=500)

    def acc_torch():
        with torch.no_grad():
            pred = torch.cat([case_model_torch(tp, txte[s:s + 500]).argmax(1) for s in range(0, len(xte), 500)])
        return float((pred.numpy() == yte).mean())

    libs = {"bplib": (steps_bplib, acc_bplib), "torch": (steps_torch, acc_torch)}
    state = {k: dict(train_s=0.0, eval_s=0.0, steps=0, evals=0, acc=None, reached=False, epochs=0, curve=[])
             for k in libs}
    rng = np.random.default_rng(0)                              # the batch order, shared
    n_batches = -(-len(xtr) // BATCH)
    bounds = np.linspace(0, n_batches, evals + 1).round().astype(int)
    turn = 0
    for epoch in range(max_epochs):
        order = rng.permutation(len(xtr))
        batches = [order[s:s + BATCH] for s in range(0, len(order), BATCH)]
        for q in range(evals):
            part = batches[bounds[q]:bounds[q + 1]]
            for s in range(0, len(part), TTA_INTERLEAVE):       # the same few steps in each library in turn
                turn += 1
                for name in ("bplib", "torch") if turn % 2 else ("torch", "bplib"):
                    st = state[name]
                    if not st["reached"]:
                        t0 = CLOCK()
                        libs[name][0](part[s:s + TTA_INTERLEAVE])
                        st["train_s"] += CLOCK() - t0
            for st, (_, acc) in zip(state.values(), libs.values()):
                if st["reached"]:
                    continue
                st["steps"] += len(part)
                t0 = CLOCK()
                st["acc"] = acc()
                st["eval_s"] += CLOCK() - t0
                st["evals"] += 1
                st["epochs"] = epoch + (q + 1) / evals
                st["curve"].append(st["acc"])
                st["reached"] = st["acc"] >= target
            if all(st["reached"] for st in state.values()):
                break
        else:
            opt.lr *= 0.75                                      # the case's decay, after every epoch
            for group in topt.param_groups:
                group["lr"] *= 0.75
            continue
        break
    for name, st in state.items():
        print(f"mnist_time_to_99 {name}: " + (
            f"{100 * target:.1f}% test accuracy ({100 * st['acc']:.2f}%) after {st['epochs']:g} epochs "
            f"({st['steps']} steps of {BATCH}), {st['train_s']:.1f} s CPU training"
            if st["reached"] else
            f"did NOT reach {100 * target:.1f}% in {max_epochs} epochs (last {100 * st['acc']:.2f}%), "
            f"{st['train_s']:.1f} s CPU training") +
            f"; evaluation not counted: {st['eval_s']:.1f} s for {st['evals']} runs over the 10,000 test digits")
        print(f"  test accuracy (%) every 1/{evals} epoch: " + ", ".join(f"{100 * a:.2f}" for a in st["curve"]))
    return dict(target=target, max_epochs=max_epochs, evals=evals, **state)


# ----------------------------------------------------------------------------
# 3. peak memory of a bplib MNIST run, in a fresh process (torch not imported)
# ----------------------------------------------------------------------------
def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def memory_child(steps):
    x, y = mnist_train_float32()
    model = lenet(np.float32)
    opt = optim.SGD(model, lr=0.05)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    losses_ = []
    for s, idx in enumerate(bplib.data.batches(len(x), BATCH, rng)):
        if s == steps:
            break
        loss, dlogits = losses.softmax_cross_entropy(model.forward(x[idx]), y[idx])
        model.backward(dlogits)
        opt.step()
        losses_.append(loss)
    dt = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"memory {peak_mb:.0f} {steps} {dt:.2f} {np.mean(losses_[:20]):.3f} {np.mean(losses_[-20:]):.3f}")


def measure_memory(steps, layers_from=None):
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-child", str(steps)]
    cmd += ["--layers-from", layers_from] if layers_from else []
    res = subprocess.run(cmd, capture_output=True, text=True)
    line = next((l for l in res.stdout.splitlines() if l.startswith("memory ")), None)
    if line is None:
        print(f"memory run failed:\n{res.stdout}{res.stderr}")
        return None
    _, mb, steps, dt, first, last = line.split()
    return float(mb)


# ----------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed runs per workload and library")
    ap.add_argument("--threads", type=int, default=1,
                    help="threads for numpy's BLAS and torch alike (default 1; 0: whatever numpy uses)")
    ap.add_argument("--wall", action="store_true",
                    help="time wall-clock instead of process CPU time (always so with more than 1 thread)")
    ap.add_argument("--quick", action="store_true", help="few repeats and no mnist_time_to_99, for a smoke test")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    ap.add_argument("--only", choices=WORKLOADS, nargs="*", help="time only these workloads")
    ap.add_argument("--skip", choices=WORKLOADS, nargs="+", default=[],
                    help="leave these workloads out (e.g. --skip mnist_time_to_99: it takes minutes)")
    ap.add_argument("--tta-target", type=float, default=TTA_TARGET,
                    help="mnist_time_to_99's test accuracy to reach (default 0.99; lower only for a smoke test)")
    ap.add_argument("--tta-max-epochs", type=int, default=TTA_MAX_EPOCHS,
                    help="mnist_time_to_99 stops after this many epochs if the target is not reached")
    ap.add_argument("--save", metavar="PATH",
                    help="also write everything printed to PATH (e.g. book/results/bench/latest.txt)")
    ap.add_argument("--layers-from", metavar="REV", help="time bplib/layers.py as of this git revision")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.save and args.memory_child is None:
        os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
        sys.stdout = _Tee(sys.stdout, open(args.save + ".part", "w"))
    if args.layers_from:
        use_layers_from(args.layers_from)
    if args.memory_child is not None:
        return memory_child(args.memory_child)

    # the memory run first, in a child process: a child started later would inherit
    # this process's (torch-sized) peak in its maxrss
    memory = None if args.no_memory else measure_memory(300, args.layers_from)

    global torch, CLOCK
    import torch
    threads = blas_threads(set_to=args.threads)
    torch.set_num_threads(threads)
    if threads == 1 and not args.wall:
        CLOCK = time.process_time
    repeats = 5 if args.quick else args.repeats
    print(f"bplib vs PyTorch CPU -- {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"machine: {platform.machine()} {_cpu_name()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__}; numpy's OpenBLAS kernels: {blas_kernels()}")
    print(f"threads: numpy BLAS {threads}, torch.set_num_threads({threads}) -> {torch.get_num_threads()}. "
          + ("One thread each: numpy's elementwise work runs on one core anyway, so this compares the "
             "code, not the threading; and on a shared machine idle threads of one library spin on "
             "the cores the other needs. Use --threads 0 for numpy's default." if threads == 1 else
             "Matched, so that both libraries' matmuls use the same cores."))
    print(f"clock: {'process CPU time (time.process_time): time the scheduler gives other processes is not counted' if CLOCK is time.process_time else 'wall clock (time.perf_counter)'}")
    if args.layers_from:
        print(f"bplib/layers.py as of {args.layers_from}")
    check_agreement()

    benches = {"lenet_step": (bench_lenet, repeats, "ms"),
               "lstm": (bench_lstm, repeats, "ms"),
               "conv2d": (bench_conv, repeats * 2, "ms"),
               "mnist_epoch": (bench_mnist_epoch, max(3, repeats // 6), "s"),
               "batchnorm": (lambda r: bench_norm("batchnorm", BN_SHAPE, r), repeats * 2, "ms"),
               "layernorm": (lambda r: bench_norm("layernorm", LN_SHAPE, r), repeats * 2, "ms"),
               "attention": (bench_attention, repeats, "ms"),
               "transformer_block": (lambda r: bench_attention(r, block=True), repeats, "ms"),
               "mnist_time_to_99": (lambda r: bench_mnist_time_to_99(args.tta_target, args.tta_max_epochs), 1, "s")}
    if not hasattr(L, "MultiHeadSelfAttention"):               # bplib/layers.py of an older revision
        benches.pop("attention"), benches.pop("transformer_block")
    if not hasattr(L, "BatchNorm"):
        benches.pop("batchnorm"), benches.pop("layernorm")
    results, tta = {}, None
    todo = [n for n in args.only or WORKLOADS if n not in args.skip]
    if args.quick and "mnist_time_to_99" in todo and not args.only:
        todo.remove("mnist_time_to_99")
        print("mnist_time_to_99: skipped by --quick (it takes minutes; --only mnist_time_to_99 runs it)")
    for name in todo:
        if name not in benches:
            print(f"{name}: not in this bplib/layers.py, skipped")
            continue
        fn, reps, unit = benches[name]
        res = fn(reps)
        if name == "mnist_time_to_99":
            tta = res
            res = ([res["bplib"]["train_s"]], [res["torch"]["train_s"]])
        if res is None:                                         # no MNIST: scale the step time
            a, b = results["lenet_step"] if "lenet_step" in results else bench_lenet(repeats)
            res = [t * 60000 / BATCH / 1e3 for t in a], [t * 60000 / BATCH / 1e3 for t in b]
        results[name] = res + (unit,)

    print(f"\n{'workload':<17} {'unit':>4} {'bplib median':>13} {'(min-max)':>17} "
          f"{'torch median':>13} {'(min-max)':>17} {'ratio':>6} {'target':>7}")
    for name, (a, b, unit) in results.items():
        ma, mb = statistics.median(a), statistics.median(b)
        ratio = f"{ma / mb:.2f}" if name != "mnist_time_to_99" or _tta_done(tta) else "n/a"
        print(f"{name:<17} {unit:>4} {ma:>13.2f} {f'({min(a):.2f}-{max(a):.2f})':>17} "
              f"{mb:>13.2f} {f'({min(b):.2f}-{max(b):.2f})':>17} {ratio:>6} {f'<={TARGETS[name]:.1f}':>7}")
    print(f"(medians of {repeats} interleaved runs after warm-up; conv2d, batchnorm, layernorm {2 * repeats}; "
          f"mnist_epoch: {max(3, repeats // 6)} runs of 40 real batches, scaled to 60000/64 steps"
          + (f"; mnist_time_to_99: one training run each, CPU seconds of training until "
             f"{100 * tta['target']:.1f}% test accuracy, evaluation not counted" if tta else "")
          + f"; load average at the end {os.getloadavg()[0]:.1f})\n")
    if tta:
        for name in ("bplib", "torch"):
            st = tta[name]
            print(f"time to {100 * tta['target']:.1f}%: {name} " + (
                f"{st['train_s']:.1f} s, {st['epochs']:g} epochs, {st['steps']} steps" if st["reached"] else
                f"not reached in {tta['max_epochs']} epochs ({st['train_s']:.1f} s, {st['steps']} steps, "
                f"last {100 * st['acc']:.2f}%)") + f"; evaluation {st['eval_s']:.1f} s, not counted")
        print()
    if memory is not None:
        print(f"peak memory (maxrss) of a bplib MNIST run (full training set as float32, 300 LeNet "
              f"steps, own process): {memory:.0f} MB (target < 600 MB)\n")
    for name, (a, b, unit) in results.items():
        if name == "mnist_time_to_99" and not _tta_done(tta):
            print(f"ratio {name} n/a (not reached: " + ", ".join(
                k for k in ("bplib", "torch") if not tta[k]["reached"]) + ")")
        else:
            print(f"ratio {name} {statistics.median(a) / statistics.median(b):.2f}")
    if args.save:
        sys.stdout.flush()
        sys.stdout.file.close()
        sys.stdout = sys.stdout.out
        os.replace(args.save + ".part", args.save)          # a finished run only: never half a file
        print(f"saved to {args.save}")


def _tta_done(tta):
    return tta is not None and tta["bplib"]["reached"] and tta["torch"]["reached"]


class _Tee:
    """stdout that also writes to a file (--save)."""

    def __init__(self, out, file):
        self.out, self.file = out, file

    def write(self, s):
        self.out.write(s)
        self.file.write(s)
        return len(s)

    def flush(self):
        self.out.flush()
        self.file.flush()

    def __getattr__(self, name):                                # encoding, isatty, ...: the terminal's
        return getattr(self.out, name)


if __name__ == "__main__":
    main()
