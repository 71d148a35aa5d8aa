"""bplib against PyTorch CPU, side by side in one process, on the same inputs.

    make bench                         # installs the `bench` extra (torch) if missing, then runs this
    python benchmarks/run.py [--repeats R] [--threads N] [--quick] [--no-memory]

Workloads (float32 timings, float64 agreement check first):

    lenet_step   LeNet training step: conv 1->8 5x5, ReLU, pool 2, conv 8->16 5x5, ReLU,
                 pool 2, dense 256->128, ReLU, dense 128->10, softmax cross-entropy,
                 batch 64, forward + backward + SGD update
    lstm         LSTM input 50, hidden 64, 100 steps, batch 32: forward + backward
    conv2d       Conv2D alone, batch 64, 8->16 channels, 12x12, 5x5: forward + backward (dx too)
    mnist_epoch  a measured fraction of a real MNIST epoch (shuffled batches of 64 cut
                 from the float32 training set, LeNet steps), scaled to 60000/64 steps

Both libraries run in this one process on the very same arrays; bplib and torch
runs are interleaved so that a busy neighbour on a shared machine slows both.
The last lines are ``ratio <workload> <bplib_ms / torch_ms>``.
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
WORKLOADS = ("lenet_step", "lstm", "conv2d", "mnist_epoch")


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
    ap.add_argument("--quick", action="store_true", help="few repeats, for a smoke test")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    ap.add_argument("--only", choices=WORKLOADS, nargs="*", help="time only these workloads")
    ap.add_argument("--layers-from", metavar="REV", help="time bplib/layers.py as of this git revision")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
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
          f"torch {torch.__version__}")
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
               "mnist_epoch": (bench_mnist_epoch, max(3, repeats // 6), "s")}
    results = {}
    for name in args.only or WORKLOADS:
        fn, reps, unit = benches[name]
        res = fn(reps)
        if res is None:                                         # no MNIST: scale the step time
            a, b = results["lenet_step"] if "lenet_step" in results else bench_lenet(repeats)
            res = [t * 60000 / BATCH / 1e3 for t in a], [t * 60000 / BATCH / 1e3 for t in b]
        results[name] = res + (unit,)

    print(f"\n{'workload':<12} {'unit':>4} {'bplib median':>13} {'(min-max)':>17} "
          f"{'torch median':>13} {'(min-max)':>17} {'ratio':>6}")
    for name, (a, b, unit) in results.items():
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{name:<12} {unit:>4} {ma:>13.2f} {f'({min(a):.2f}-{max(a):.2f})':>17} "
              f"{mb:>13.2f} {f'({min(b):.2f}-{max(b):.2f})':>17} {ma / mb:>6.2f}")
    print(f"(medians of {repeats} interleaved runs after warm-up; conv2d {2 * repeats}; "
          f"mnist_epoch: {max(3, repeats // 6)} runs of 40 real batches, scaled to 60000/64 steps)\n")
    if memory is not None:
        print(f"peak memory (maxrss) of a bplib MNIST run (full training set as float32, 300 LeNet "
              f"steps, own process): {memory:.0f} MB (target < 1024 MB)\n")
    for name, (a, b, unit) in results.items():
        print(f"ratio {name} {statistics.median(a) / statistics.median(b):.2f}")


if __name__ == "__main__":
    main()
