"""Calls of the dense_backward assignment's functions."""
CALLS = {
    "dense_backward": lambda fn, c: fn(c["dout"], c["x"], c["W"]),
    "relu_backward": lambda fn, c: fn(c["dout"], c["x"]),
    "softmax_cross_entropy": lambda fn, c: fn(c["logits"], c["labels"]),
}
