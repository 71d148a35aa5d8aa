"""bplib: backpropagation from scratch, in numpy.

    bplib.Value            scalar autodiff (the chain-rule chapter); bplib.draw_graph
    bplib.Tensor           the same on numpy arrays, with broadcasting (From Value to Tensor)
    bplib.layers           Dense, ReLU, Sigmoid, Tanh, Conv2D, MaxPool2D, Flatten,
                           Embedding, LSTM, BatchNorm, LayerNorm, Dropout, Sequential,
                           MultiHeadSelfAttention, TransformerBlock, PositionalEmbedding,
                           and their forward/backward functions; train() / eval() modes
    bplib.losses           softmax_cross_entropy, binary_cross_entropy, mse
    bplib.optim            SGD (momentum, weight decay), RMSProp, Adam, AdamW, StepLR
    bplib.gradcheck        numerical gradients and reports a learner can act on
    bplib.data             MNIST and IMDB from installed packages
"""
from . import data, gradcheck, layers, losses, optim
from .autodiff import Value, draw_graph
from .tensor import Tensor
from .layers import Sequential

__version__ = "0.1.0"
__all__ = ["Value", "Tensor", "draw_graph", "Sequential", "layers", "losses", "optim", "gradcheck", "data"]
