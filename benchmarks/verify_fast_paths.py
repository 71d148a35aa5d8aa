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
# BatchNorm (training mode) and LayerNorm classes vs batchnorm_* / layernorm_*, incl. non-contiguous
# inputs, a plugged-in backward_fn (it gets the functions' cache), scratch reuse and eval mode
worst = 0
for trial in range(30):
    # at least 3 values per feature: with 2, x_hat is +-1 whatever x is, dx is 0 and only rounding is compared
    if trial % 3 == 0:
        shape = (int(rng.integers(3, 6)), int(rng.integers(1, 5)))
    else:
        shape = (int(rng.integers(2, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(2, 4)))
    x = rng.standard_normal(shape) * 3 + rng.standard_normal()
    if trial % 2:
        x = np.ascontiguousarray(x.T).T                          # same values, other memory order
    bn = L.BatchNorm(shape[1], dtype=F64)
    bn.params["gamma"][:] = rng.standard_normal(shape[1]); bn.params["beta"][:] = rng.standard_normal(shape[1])
    dout = rng.standard_normal(shape)
    out = bn.forward(x); dx = bn.backward(dout)
    ref, cache = L.batchnorm_forward(x, bn.params["gamma"], bn.params["beta"], bn.eps)
    rdx, rdg, rdb = L.batchnorm_backward(dout, cache)
    m = x.size // shape[1]
    errs = dict(out=rel_error(ref, out), dx=rel_error(rdx, dx), dgamma=rel_error(rdg, bn.grads["gamma"]),
                dbeta=rel_error(rdb, bn.grads["beta"]), running_mean=rel_error(0.1 * cache["mean"], bn.running_mean),
                running_var=rel_error(0.9 + 0.1 * cache["var"] * m / (m - 1), bn.running_var))
    assert max(errs.values()) < 1e-12, (shape, errs)
    worst = max(worst, *errs.values())
    seen = {}
    bn.backward_fn = lambda d, c: (seen.update(c), L.batchnorm_backward(d, c))[1]
    bn.forward(x); dx2 = bn.backward(dout)
    worst = max(worst, rel_error(rdx, dx2), max(rel_error(cache[k], seen[k]) for k in cache))
    assert set(seen) == set(cache), (set(seen), set(cache))
    lshape = shape[:-1] + (int(rng.integers(3, 7)),)
    x = rng.standard_normal(lshape) * 2 + rng.standard_normal()
    if trial % 2:
        x = np.ascontiguousarray(x.T).T
    ln = L.LayerNorm(lshape[-1], dtype=F64)
    ln.params["gamma"][:] = rng.standard_normal(lshape[-1]); ln.params["beta"][:] = rng.standard_normal(lshape[-1])
    dout = rng.standard_normal(lshape)
    out = ln.forward(x); dx = ln.backward(dout)
    ref, cache = L.layernorm_forward(x, ln.params["gamma"], ln.params["beta"], ln.eps)
    rdx, rdg, rdb = L.layernorm_backward(dout, cache)
    worst = max(worst, rel_error(ref, out), rel_error(rdx, dx), rel_error(rdg, ln.grads["gamma"]), rel_error(rdb, ln.grads["beta"]))
    seen = {}
    ln.backward_fn = lambda d, c: (seen.update(c), L.layernorm_backward(d, c))[1]
    ln.forward(x); dx2 = ln.backward(dout)
    assert set(seen) == set(cache) and all(seen[k].shape == np.shape(cache[k]) for k in cache)
    worst = max(worst, rel_error(rdx, dx2), max(rel_error(cache[k], seen[k]) for k in cache))
print(f"BatchNorm / LayerNorm classes vs public functions: worst rel error {worst:.1e}")
assert worst < 1e-12
reports = []
for train in (True, False):
    for shape in ((5, 3), (3, 2, 3, 4)):
        bn = L.BatchNorm(shape[1], dtype=F64); bn.params["gamma"][:] = rng.standard_normal(shape[1])
        bn.running_var[:] = rng.uniform(0.5, 2, shape[1]); bn.train(train)
        reports.append(check_layer(bn, rng.standard_normal(shape) * 2 + 1))
reports.append(check_layer(L.LayerNorm(5, dtype=F64), rng.standard_normal((2, 3, 5))))
assert all(r.ok for r in reports), [str(r) for r in reports if not r.ok]
for make, x in [(lambda: L.BatchNorm(3, dtype=F64), rng.standard_normal((4, 3, 2, 2))), (lambda: L.LayerNorm(4, dtype=F64), rng.standard_normal((3, 2, 4)))]:
    a, b = make(), make()                          # outputs changed in place; scratch reused by a second forward
    oa = a.forward(x); ob = b.forward(x); d = rng.standard_normal(oa.shape)
    ob *= -3; ob += 1
    assert np.array_equal(a.backward(d), b.backward(d)) and all(np.array_equal(a.grads[k], b.grads[k]) for k in a.grads)
    g1 = {k: v.copy() for k, v in a.grads.items()}; dx1 = a.backward(d).copy()
    a.forward(x * 2 + 1); a.backward(d); a.forward(x); dx2 = a.backward(d)
    assert np.allclose(dx1, dx2, rtol=1e-13, atol=1e-14) and all(np.allclose(g1[k], a.grads[k], rtol=1e-13) for k in g1)
print("BatchNorm / LayerNorm: check_layer, outputs changed in place, scratch reuse ok")
# Sequential runs ReLU -> MaxPool2D's backward in one step: same dx as the two public functions,
# with ties, all-negative windows, overlapping windows; and a plugged-in ReLU backward_fn is still called
for trial in range(30):
    ks = int(rng.integers(1, 4)); ss = int(rng.integers(1, 4)) if trial % 2 else None
    x = np.round(rng.standard_normal((2, 3, 7, 6)) * 2) / 2 - (0.5 if trial % 3 == 0 else 0)
    net = L.Sequential(L.ReLU(), L.MaxPool2D(ks, ss))
    out = net.forward(x); d = rng.standard_normal(out.shape)
    dx = net.backward(d)
    ref = L.relu_backward(L.maxpool2d_backward(d, L.relu_forward(x), ks, ss), x)
    assert np.array_equal(out, L.maxpool2d_forward(L.relu_forward(x), ks, ss)) and np.array_equal(dx, ref), (trial, ks, ss)
    calls = []
    net = L.Sequential(L.ReLU(backward_fn=lambda d_, x_: (calls.append(1), L.relu_backward(d_, x_))[1]), L.MaxPool2D(ks, ss))
    net.forward(x); assert np.array_equal(net.backward(d), ref) and calls == [1]
    net = L.Sequential(L.ReLU(), L.MaxPool2D(ks, ss)); o = net.forward(x); o *= -1   # output changed in place
    assert np.array_equal(net.backward(d), ref)
    # after Sequential's forward, each layer's own backward is still exactly its public function
    dpool = net[1].backward(d)
    assert np.array_equal(dpool, L.maxpool2d_backward(d, L.relu_forward(x), ks, ss))
    assert np.array_equal(net[0].backward(dpool), ref)
    seen = []
    net = L.Sequential(L.ReLU(), L.MaxPool2D(ks, ss, backward_fn=lambda d_, x_, k_, s_: (seen.append(x_), L.maxpool2d_backward(d_, x_, k_, s_))[1]))
    net.forward(x); assert np.array_equal(net.backward(d), ref) and np.array_equal(seen[0], L.relu_forward(x))
    net = L.Sequential(L.Tanh(), L.ReLU(), L.MaxPool2D(ks, ss), L.Flatten())      # the pair inside a longer net
    out = net.forward(x); d2 = rng.standard_normal(out.shape)
    t_ = np.tanh(x)
    r2 = L.tanh_backward(L.relu_backward(L.maxpool2d_backward(d2.reshape(L.maxpool2d_forward(x, ks, ss).shape),
                                                              L.relu_forward(t_), ks, ss), t_), t_)
    assert np.array_equal(out, L.maxpool2d_forward(L.relu_forward(np.tanh(x)), ks, ss).reshape(out.shape))
    assert np.allclose(net.backward(d2), r2, rtol=1e-14, atol=1e-15)
print("Sequential ReLU -> MaxPool2D forward and backward in one step: identical to the public functions")
# Dense class vs dense_forward / dense_backward (the class adds b in place, sums db by a matrix-vector product)
worst = 0
for trial in range(20):
    N, D, M = (int(v) for v in rng.integers(1, 9, 3))
    dense = L.Dense(D, M, rng=rng, dtype=F64); dense.params["b"][:] = rng.standard_normal(M)
    x = rng.standard_normal((D, N)).T if trial % 2 else rng.standard_normal((N, D))
    out = dense.forward(x); dout = rng.standard_normal(out.shape); dx = dense.backward(dout)
    rdx, rdW, rdb = L.dense_backward(dout, x, dense.params["W"])
    worst = max(worst, rel_error(L.dense_forward(x, dense.params["W"], dense.params["b"]), out), rel_error(rdx, dx),
                rel_error(rdW, dense.grads["W"]), rel_error(rdb, dense.grads["b"]))
assert worst < 1e-12, worst
print(f"Dense class vs public functions: worst rel error {worst:.1e}")
# Conv2D's dx one column offset dj at a time (W^T d2 rows of that dj, summed over di, then added): every stride,
# windows that leave rows/columns uncovered, k = 1, padding; float64 against conv2d_backward,
# float32 against it in float64 (the sums are only reordered)
worst = worst32 = 0
for (C, F, k, s, p, H, W) in [(2, 3, 1, 1, 0, 4, 5), (3, 2, 3, 2, 0, 8, 7), (2, 2, 3, 3, 1, 10, 9), (1, 4, 5, 1, 2, 6, 6),
                              (3, 3, 2, 2, 0, 5, 7), (4, 2, 4, 1, 0, 4, 9), (2, 3, 3, 1, 1, 12, 3)]:
    for dt in (np.float64, np.float32):
        conv = L.Conv2D(C, F, k, s, p, rng=rng, dtype=dt)
        x = rng.standard_normal((3, C, H, W)).astype(dt)
        out = conv.forward(x); dout = rng.standard_normal(out.shape).astype(dt)
        dx = conv.backward(dout)
        x64, W64 = x.astype(F64), conv.params["W"].astype(F64)
        rdx, rdW, rdb = L.conv2d_backward(dout.astype(F64), x64, W64, s, p)
        e = max(rel_error(rdx, dx), rel_error(rdW, conv.grads["W"]), rel_error(rdb, conv.grads["b"]))
        if dt is np.float64:
            worst = max(worst, e)
        else:
            worst32 = max(worst32, e)
        dx2 = conv.backward(dout)                      # the col2im scratch reused: same dx, dx from before intact
        assert np.array_equal(dx, dx2) and dx.dtype == dt
assert worst < 1e-12 and worst32 < 1e-4, (worst, worst32)
print(f"Conv2D dx by column offset vs conv2d_backward: worst rel error {worst:.1e} (float64), {worst32:.1e} (float32)")
# MaxPool2D backward (dout handed out offset by offset): windows that tile x, leave a border,
# overlap or leave gaps; ties; dout in another memory order than out; after Sequential's ReLU
for (k, s, H, W) in [(2, 2, 8, 8), (2, 2, 7, 9), (3, 3, 9, 6), (3, 2, 7, 7), (2, 3, 8, 8), (1, 1, 3, 4)]:
    x = np.round(rng.standard_normal((3, 2, H, W)) * 2) / 2
    x = np.ascontiguousarray(x.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2)   # batch innermost, as from Conv2D
    pool = L.MaxPool2D(k, s)
    out = pool.forward(x); d = rng.standard_normal(out.shape[::-1]).T      # dout in the other memory order
    assert np.array_equal(pool.backward(d), L.maxpool2d_backward(d, x, k, s)), (k, s, H, W)
    net = L.Sequential(L.ReLU(), L.MaxPool2D(k, s))
    net.forward(x)
    ref = L.relu_backward(L.maxpool2d_backward(d, L.relu_forward(x), k, s), x)
    assert np.array_equal(net.backward(d), ref), (k, s, H, W)
print("MaxPool2D backward: tiling, borders, overlap, gaps, ties, memory orders, after ReLU: identical to the public functions")
# Conv2D's rows padded (``_rows``): its output is a view of a wider array, and so is MaxPool2D's dx for
# such an input (``_like_rows``). A Conv2D fed such a view (directly, or through ReLU / pooling), dout with
# padded rows, contiguous batch-innermost or (N, C, H, W): the same numbers as the clear forms, in float64
worst = 0
for (C, F, G, k, s, p, H, W) in [(2, 3, 2, 3, 1, 0, 9, 8), (3, 2, 4, 2, 2, 1, 8, 9), (1, 4, 3, 3, 1, 2, 7, 7), (2, 2, 2, 1, 1, 0, 5, 6)]:
    c1, c2 = L.Conv2D(C, F, k, s, p, rng=rng, dtype=F64), L.Conv2D(F, G, k, 1, p, rng=rng, dtype=F64)
    c1.params["b"][:] = rng.standard_normal(F); c2.params["b"][:] = rng.standard_normal(G)
    x = rng.standard_normal((3, C, H, W))
    o1 = c1.forward(x)
    assert np.shares_memory(L._to_chwn(o1), o1)                          # taken as it is: no copy
    o2 = c2.forward(o1)
    r1 = L.conv2d_forward(x, c1.params["W"], c1.params["b"], s, p)
    r2 = L.conv2d_forward(r1, c2.params["W"], c2.params["b"], 1, p)
    d = rng.standard_normal(o2.shape)
    d_rows = L._like_rows(o2, F64); d_rows[...] = d
    for dd in (d, np.ascontiguousarray(d.transpose(1, 2, 3, 0)).transpose(3, 0, 1, 2), d_rows):
        dx2 = c2.backward(dd); g2 = {k_: v.copy() for k_, v in c2.grads.items()}
        dx1 = c1.backward(dx2)
        rdx2, rdW2, rdb2 = L.conv2d_backward(d, r1, c2.params["W"], 1, p)
        rdx1, rdW1, rdb1 = L.conv2d_backward(rdx2, x, c1.params["W"], s, p)
        worst = max(worst, rel_error(r1, o1), rel_error(r2, o2), rel_error(rdx2, dx2), rel_error(rdx1, dx1),
                    rel_error(rdW2, g2["W"]), rel_error(rdb2, g2["b"]), rel_error(rdW1, c1.grads["W"]), rel_error(rdb1, c1.grads["b"]))
    # the pair again through ReLU and pooling (Sequential), and MaxPool2D's dx for a padded-rows input
    net = L.Sequential(c1, L.ReLU(), L.MaxPool2D(2, 1), c2)
    on = net.forward(x); dn = rng.standard_normal(on.shape); dxn = net.backward(dn)
    h = L.maxpool2d_forward(L.relu_forward(r1), 2, 1)
    rh, _, _ = L.conv2d_backward(dn, h, c2.params["W"], 1, p)
    rx, _, _ = L.conv2d_backward(L.relu_backward(L.maxpool2d_backward(rh, L.relu_forward(r1), 2, 1), r1), x, c1.params["W"], s, p)
    worst = max(worst, rel_error(L.conv2d_forward(h, c2.params["W"], c2.params["b"], 1, p), on), rel_error(rx, dxn))
    for (kp, sp) in [(2, 2), (2, 1), (3, 2)]:
        if min(o1.shape[2:]) < kp:
            continue
        q = c1.forward(x); q[...] = np.round(q * 2) / 2            # ties, in Conv2D's own (padded) output
        pool = L.MaxPool2D(kp, sp); po = pool.forward(q); pd = rng.standard_normal(po.shape)
        assert np.array_equal(po, L.maxpool2d_forward(q, kp, sp)) and np.array_equal(pool.backward(pd), L.maxpool2d_backward(pd, q, kp, sp))
assert worst < 1e-12, worst
# outputs and grads of one call survive the next call (the scratch arrays are reused)
conv = L.Conv2D(2, 3, 3, rng=rng, dtype=F64); x1, x2 = rng.standard_normal((2, 2, 6, 6)), rng.standard_normal((2, 2, 6, 6))
o1 = conv.forward(x1); d1 = rng.standard_normal(o1.shape); dx1 = conv.backward(d1); keep = (o1.copy(), dx1.copy(), conv.grads["W"].copy(), conv.grads["b"].copy())
held = (o1, dx1, conv.grads["W"], conv.grads["b"])
conv.forward(x2); conv.backward(rng.standard_normal(o1.shape))
assert all(np.array_equal(a, b) for a, b in zip(held, keep))
print(f"Conv2D rows padded: fed its own output, dout in three layouts, through ReLU + pooling, pooling its output: "
      f"worst rel error {worst:.1e}; outputs and grads survive the next call")
