"""Checks run after every speed change to bplib/layers.py (python benchmarks/verify_fast_paths.py).

The layer classes run faster forms of the module-level functions (see "what the
layer classes run" in layers.py). This checks, in float64: check_layer on every
layer; the classes against the module functions on random shapes, strides,
paddings, pooling ties and non-contiguous inputs; a plugged-in LSTM backward_fn;
reused scratch arrays; and that changing an output in place leaves backward alone.
"""
import numpy as np
from bplib import layers as L
from bplib.gradcheck import check_layer, rel_error
F64 = np.float64
rng = np.random.default_rng(0)
reports = []
reports.append(check_layer(L.Dense(5, 3, rng=rng, dtype=F64), rng.standard_normal((4, 5))))
for cls in (L.ReLU, L.Sigmoid, L.Tanh):
    reports.append(check_layer(cls(), rng.standard_normal((3, 4, 5))))
for (C, F, k, s, p, H, W) in [(1, 2, 3, 1, 0, 6, 7), (2, 3, 3, 2, 1, 7, 6), (3, 2, 1, 1, 0, 4, 4), (2, 2, 4, 3, 2, 9, 8), (2, 3, 5, 1, 2, 5, 5)]:
    reports.append(check_layer(L.Conv2D(C, F, k, s, p, rng=rng, dtype=F64), rng.standard_normal((2, C, H, W))))
for (k, s, H, W) in [(2, None, 6, 6), (2, 2, 7, 5), (3, 1, 6, 7), (3, 2, 7, 7), (1, 1, 3, 3)]:
    reports.append(check_layer(L.MaxPool2D(k, s), rng.standard_normal((2, 3, H, W))))
reports.append(check_layer(L.Flatten(), rng.standard_normal((2, 3, 4))))
reports.append(check_layer(L.LSTM(3, 4, rng=rng, dtype=F64), rng.standard_normal((2, 5, 3))))
reports.append(check_layer(L.LSTM(3, 4, rng=rng, dtype=F64), rng.standard_normal((2, 1, 3))))
emb = L.Embedding(6, 3, rng=rng, dtype=F64)
reports.append(check_layer(emb, rng.integers(0, 6, (2, 4))))
net = L.Sequential(L.Conv2D(1, 2, 3, rng=rng, dtype=F64), L.ReLU(), L.MaxPool2D(2), L.Conv2D(2, 3, 3, padding=1, rng=rng, dtype=F64),
                   L.Tanh(), L.MaxPool2D(2), L.Flatten(), L.Dense(12, 3, rng=rng, dtype=F64))
reports.append(check_layer(net, rng.standard_normal((2, 1, 10, 10))))
net2 = L.Sequential(L.Embedding(7, 3, rng=rng, dtype=F64), L.LSTM(3, 4, rng=rng, dtype=F64))
reports.append(check_layer(net2, rng.integers(0, 7, (2, 5))))
bad = [r for r in reports if not r.ok]
print(f"check_layer: {len(reports)} layers, worst {max(r.max_error for r in reports):.1e}, failures {len(bad)}")
for r in bad: print(r)
assert not bad, "check_layer failed"

# class path vs public functions, incl. ties and non-contiguous inputs
worst = 0
for trial in range(40):
    N, C, F = rng.integers(1, 4, 3)
    k = int(rng.integers(1, 5)); s = int(rng.integers(1, 4)); p = int(rng.integers(0, 3))
    H, W = rng.integers(k, k + 7, 2)
    x = rng.standard_normal((C, N, H, W)).transpose(1, 0, 2, 3) if trial % 2 else rng.standard_normal((N, C, H, W))
    conv = L.Conv2D(C, F, k, s, p, rng=rng, dtype=F64)
    out = conv.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = conv.backward(dout)
    ref = L.conv2d_forward(x, conv.params["W"], conv.params["b"], s, p)
    rdx, rdW, rdb = L.conv2d_backward(dout, x, conv.params["W"], s, p)
    worst = max(worst, rel_error(ref, out), rel_error(rdx, dx), rel_error(rdW, conv.grads["W"]), rel_error(rdb, conv.grads["b"]))
    assert out.shape == ref.shape and dx.shape == x.shape
    # pooling with ties (rounded values) 
    xq = np.round(x * 2) / 2 if trial % 3 else x
    if trial % 4 == 0: xq = np.maximum(xq, 0)
    ks = int(rng.integers(1, 4)); ss = int(rng.integers(1, 4)) if trial % 2 else None
    if min(H, W) < ks: continue
    pool = L.MaxPool2D(ks, ss)
    po = pool.forward(xq); pd = rng.standard_normal(po.shape)
    pdx = pool.backward(pd)
    assert np.array_equal(po, L.maxpool2d_forward(xq, ks, ss))
    assert np.array_equal(pdx, L.maxpool2d_backward(pd, xq, ks, ss)), (trial, ks, ss)
print(f"class path vs public functions: worst rel error {worst:.1e}")
assert worst < 1e-12
# LSTM class vs public functions, and a plugged-in backward_fn sees the book cache
for (N, T, D, H) in [(2, 5, 3, 4), (1, 1, 2, 3), (3, 7, 4, 2)]:
    lstm = L.LSTM(D, H, rng=rng, dtype=F64)
    lstm.params["b"][:] = rng.standard_normal(4 * H)
    x = rng.standard_normal((N, T, D)); dout = rng.standard_normal((N, T, H))
    out = lstm.forward(x); dx = lstm.backward(dout)
    ref, cache = L.lstm_forward(x, np.zeros((N, H)), *lstm.params.values())
    rdx, _, rdWx, rdWh, rdb = L.lstm_backward(dout, cache)
    errs = [rel_error(ref, out), rel_error(rdx, dx), rel_error(rdWx, lstm.grads["Wx"]), rel_error(rdWh, lstm.grads["Wh"]), rel_error(rdb, lstm.grads["b"])]
    lstm.backward_fn = L.lstm_backward
    lstm.backward_fn = lambda d, c: L.lstm_backward(d, c)
    lstm.forward(x); dx2 = lstm.backward(dout)
    errs += [rel_error(rdx, dx2), rel_error(rdWh, lstm.grads["Wh"])]
    assert max(errs) < 1e-12, errs
print("LSTM class vs public functions ok")
# scratch reuse: outputs and grads from one call survive the next call
lstm = L.LSTM(3, 4, rng=rng, dtype=F64)
x1, x2 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 3)); d = rng.standard_normal((2, 5, 4))
o1 = lstm.forward(x1); dx1 = lstm.backward(d); g1 = {k: v.copy() for k, v in lstm.grads.items()}; o1c, dx1c = o1.copy(), dx1.copy(); g1ref = dict(lstm.grads)
o2 = lstm.forward(x2); dx2 = lstm.backward(d)
assert np.array_equal(o1, o1c) and np.array_equal(dx1, dx1c) and all(np.array_equal(g1ref[k], g1[k]) for k in g1)
lstm.forward(x1); lstm.backward(d)
assert all(np.array_equal(lstm.grads[k], g1[k]) for k in g1)
# forward twice then backward == backward of the last forward
lstm.forward(x2); lstm.forward(x1); lstm.backward(d); assert all(np.array_equal(lstm.grads[k], g1[k]) for k in g1)
print("scratch reuse ok")
# changing a layer's output in place must not change its backward
for make, x in [(lambda: L.MaxPool2D(2), rng.standard_normal((2, 3, 6, 6))), (lambda: L.LSTM(3, 4, rng=np.random.default_rng(1), dtype=F64), rng.standard_normal((2, 5, 3))),
                (lambda: L.Conv2D(2, 3, 3, rng=np.random.default_rng(1), dtype=F64), rng.standard_normal((2, 2, 6, 6)))]:
    a, b = make(), make()
    oa = a.forward(x); ob = b.forward(x); d = rng.standard_normal(oa.shape)
    ob *= -3; ob += 1
    assert np.array_equal(a.backward(d), b.backward(d)) and all(np.array_equal(a.grads[k], b.grads[k]) for k in getattr(a, "grads", {}))
print("outputs changed in place: backward unaffected")
