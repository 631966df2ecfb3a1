"""minigrad.nn: modules, parameters and layers with torch.nn's names and semantics.

    from minigrad import nn
    mlp = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    logits = mlp(x)                      # Module.__call__ -> forward
    print(mlp)                           # tree with parameter counts
    nn.functional is minigrad.functional (torch.nn.functional's names).
"""
from .. import functional
from . import init, utils
from .layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Sigmoid, Tanh
from .layers import ELU, Flatten, Hardtanh, LeakyReLU, LogSoftmax, Mish, ReLU6, SiLU, Softmax
from .layers import CosineSimilarity, PairwiseDistance, Softplus, Unflatten
from .loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss
from .loss import HuberLoss, KLDivLoss, SmoothL1Loss
from .conv import (AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d,
                   Conv2d, MaxPool1d, MaxPool2d)
from .container import ModuleDict, ModuleList, Sequential
from .module import IncompatibleKeys, Module, Parameter, StateDictError

def __getattr__(name):
    from ..missing import missing
    raise missing("nn", name)


__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear",
           "Embedding", "LayerNorm", "Dropout", "GELU", "ReLU", "Tanh", "Sigmoid", "Identity",
           "init", "utils", "functional", "StateDictError", "IncompatibleKeys",
           "Softmax", "LogSoftmax", "Flatten", "Softplus", "LeakyReLU", "CrossEntropyLoss",
           "NLLLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "SiLU", "ELU",
           "ReLU6", "Mish", "Hardtanh", "SmoothL1Loss", "HuberLoss", "KLDivLoss", "Conv1d",
           "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool2d",
           "BatchNorm1d", "BatchNorm2d", "Unflatten", "CosineSimilarity", "PairwiseDistance"]
