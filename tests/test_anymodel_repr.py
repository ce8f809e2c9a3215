#!/usr/bin/python3
"""print(model) for any whole-model file: `vggtl load FILE` against Python's str(model).

Each case builds a module with Debian's torch 1.13 / torchvision 0.14, torch.save()s the whole
model into a temporary folder, runs `vggtl load FILE` and compares its stdout with
str(model) + "\\n", byte for byte.  Run from the repository root with the system interpreter:

    VGGTL=build/vggtl /usr/bin/python3 tests/test_anymodel_repr.py

Prints TAP ("ok N - what", "not ok N - what (first differing line)", "# " diagnostics, then
"1..N") and exits 1 if anything failed.  Nothing is downloaded.

Cost: the big torchvision models are saved with every tensor replaced by a one-element
storage expanded to its shape (shrink()): print(model) reads shapes and attributes only, and
the files stay a few kilobytes instead of 100 MB.
"""
import collections
import os
import subprocess
import sys
import tempfile
import traceback
import warnings

import torch
import torch.nn as nn
import torch.nn.utils.prune
import torchvision
from torchvision.ops import misc as tv_misc

warnings.filterwarnings("ignore")  # lazy modules, deprecated torchvision arguments

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_interop as ti  # noqa: E402  (TAP helpers, the binary's path)
from test_interop import check  # noqa: E402

VGGTL = ti.VGGTL
# vggtl prints as torch 2.6 does by default; under 1.13, ask for its text
TEXT_ARGS = ["--torch-version", "1.13"] if torch.__version__.startswith("1.") else []


# ---- user classes: pickled as __main__.<name>, printed by Module.__repr__ -------------------


class Tudui(nn.Module):
    """The CIFAR-10 network of a well-known PyTorch tutorial."""

    def __init__(self):
        super().__init__()
        self.model1 = nn.Sequential(
            nn.Conv2d(3, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 32, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(1024, 64),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        return self.model1(x)


class Attrs(nn.Module):
    """Plain attributes (ints, strings, lists) do not print; children do, in order."""

    def __init__(self):
        super().__init__()
        self.depth = 3
        self.name = "it's"
        self.widths = [1, 2.5, None]
        self.body = nn.ModuleDict({"a": nn.ReLU(), "b": nn.ModuleList([nn.Tanh(), nn.Sequential()])})
        self.register_buffer("scale", torch.ones(2))
        self.w = nn.Parameter(torch.zeros(3))
        self.head = nn.Linear(2, 2)


MODULE_FILE = '''
import torch.nn as nn
import torch.nn.utils.prune


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(4, 2)


class Block(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(2, 2), nn.GELU())
'''


# ---- cases ---------------------------------------------------------------------------------


def materialized(m, *shape):
    """A lazy module after its first forward: it has become its base class."""
    m(torch.zeros(*shape))
    return m


def shrink(model):
    """Every parameter and buffer becomes one element expanded to its shape (see top)."""
    with torch.no_grad():
        for mod in model.modules():
            for k, p in list(mod._parameters.items()):
                if p is not None:
                    mod._parameters[k] = nn.Parameter(torch.zeros(1, dtype=p.dtype).expand(p.shape),
                                                      requires_grad=p.requires_grad)
            for k, t in list(mod._buffers.items()):
                if t is not None and t.dim() > 0:
                    mod._buffers[k] = torch.zeros(1, dtype=t.dtype).expand(t.shape)
    return model


def none_child():
    m = nn.Sequential(nn.ReLU())
    m.register_module("x", None)
    m.add_module("y", nn.Identity())
    return m


def param_list():
    pl = nn.ParameterList([nn.Parameter(torch.zeros(3, 4)), torch.zeros((), dtype=torch.float64)])
    pl.append(7)
    pl.append(None)
    pl.append(nn.Linear(2, 2))  # a module: an "Object of type" line and a child
    pl.append(nn.Parameter(torch.zeros(2, 1, 5, dtype=torch.float16), requires_grad=False))
    return pl


def param_dict():
    return nn.ParameterDict({
        "b": nn.Parameter(torch.zeros(2)),
        "a": torch.zeros(1, 2, dtype=torch.float64),
        "s": "text",
        "i": nn.Parameter(torch.zeros(4, dtype=torch.int64), requires_grad=False),
    })


def in_module(child, **attrs):
    m = nn.Module()
    m.child = child
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


TV = torchvision.models


def tv(name, **kw):
    return lambda: getattr(TV, name)(weights=None, **kw)


def tv_small(name, **kw):
    return lambda: shrink(getattr(TV, name)(weights=None, **kw))


def vit_small():
    from torchvision.models.vision_transformer import VisionTransformer
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)


def swin_small():
    from torchvision.models.swin_transformer import SwinTransformer
    return SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=[4, 4],
                           stochastic_depth_prob=0.1, num_classes=10)


def swin_v2_small():
    from torchvision.models import swin_transformer as st
    return st.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=[4, 4],
                              stochastic_depth_prob=0.2, block=st.SwinTransformerBlockV2,
                              downsample_layer=st.PatchMergingV2)


def maxvit_small():
    from torchvision.models.maxvit import MaxVit
    return MaxVit(input_size=(32, 32), stem_channels=8, partition_size=2, block_channels=[8, 16], block_layers=[1, 1],
                  head_dim=4, stochastic_depth_prob=0.1, num_classes=3)


def hooked():
    m = A.Sequential(A.utils.weight_norm(A.Linear(3, 4)), A.utils.spectral_norm(A.Conv2d(2, 2, 1)))
    A.utils.prune.l1_unstructured(m[0], "bias", amount=0.5)
    m.register_forward_hook(forward_hook)
    return m


def forward_hook(module, args, out):
    return out


def numpy_values():
    import numpy as np
    return A.Sequential(A.Dropout(p=np.float64(0.1)), A.LeakyReLU(np.float32(0.2)),
                        A.Threshold(np.float32(0.1), np.float64(0.3)), A.Linear(np.int64(3), 4),
                        A.MaxPool2d(np.int64(2)), A.Upsample(scale_factor=np.float64(2.5)))


def fused(build):
    """A torchvision quantizable model, its conv+bn+relu fused (eval) but not quantized."""
    m = shrink(build(weights=None, quantize=False))
    m.eval()
    m.fuse_model()
    return m


def convnext_small():
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    return ConvNeXt([CNBlockConfig(8, 16, 1), CNBlockConfig(16, None, 2)], stochastic_depth_prob=0.1, num_classes=5)


A = nn  # short


CASES = [
    # convolutions
    ("Conv1d", lambda: A.Conv1d(3, 4, 3)),
    ("Conv2d all options", lambda: A.Conv2d(4, 8, (3, 5), stride=2, padding=(1, 2), dilation=2, groups=2, bias=False,
                                            padding_mode="reflect")),
    ("Conv2d padding='same' circular", lambda: A.Conv2d(4, 4, 3, padding="same", padding_mode="circular")),
    ("Conv3d padding='valid'", lambda: A.Conv3d(2, 4, (1, 2, 3), padding="valid", padding_mode="replicate")),
    ("ConvTranspose1d", lambda: A.ConvTranspose1d(3, 4, 3, dilation=2, groups=1)),
    ("ConvTranspose2d output_padding", lambda: A.ConvTranspose2d(3, 6, 3, stride=2, padding=1, output_padding=1,
                                                                 groups=3, bias=False)),
    ("ConvTranspose3d", lambda: A.ConvTranspose3d(2, 2, 2)),
    ("LazyConv2d materialized", lambda: materialized(A.LazyConv2d(4, 3, padding=1), 1, 3, 5, 5)),
    ("LazyConvTranspose1d materialized", lambda: materialized(A.LazyConvTranspose1d(4, 3), 1, 2, 5)),
    # linear
    ("Linear", lambda: A.Linear(3, 4)),
    ("Linear bias=False", lambda: A.Linear(3, 4, bias=False)),
    ("LazyLinear materialized", lambda: materialized(A.LazyLinear(5), 2, 3)),
    ("Bilinear", lambda: A.Bilinear(3, 4, 5)),
    ("Bilinear bias=False", lambda: A.Bilinear(3, 4, 5, bias=False)),
    ("Identity", lambda: A.Identity(3, foo=4)),
    # norms
    ("BatchNorm1d", lambda: A.BatchNorm1d(8)),
    ("BatchNorm2d options", lambda: A.BatchNorm2d(8, eps=1e-3, momentum=None, affine=False,
                                                  track_running_stats=False)),
    ("BatchNorm3d", lambda: A.BatchNorm3d(4, momentum=0.01)),
    ("LazyBatchNorm1d materialized", lambda: materialized(A.LazyBatchNorm1d(), 2, 3)),
    ("SyncBatchNorm", lambda: A.SyncBatchNorm(4, eps=1e-4)),
    ("InstanceNorm1d", lambda: A.InstanceNorm1d(4)),
    ("InstanceNorm2d affine", lambda: A.InstanceNorm2d(4, affine=True, track_running_stats=True)),
    ("InstanceNorm3d", lambda: A.InstanceNorm3d(4, eps=0.5)),
    ("LayerNorm", lambda: A.LayerNorm(8)),
    ("LayerNorm shape no affine", lambda: A.LayerNorm([4, 5], eps=1e-6, elementwise_affine=False)),
    ("GroupNorm", lambda: A.GroupNorm(2, 4)),
    ("GroupNorm no affine", lambda: A.GroupNorm(2, 4, eps=1e-3, affine=False)),
    ("LocalResponseNorm", lambda: A.LocalResponseNorm(2)),
    ("LocalResponseNorm options", lambda: A.LocalResponseNorm(3, alpha=0.001, beta=0.5, k=2.0)),
    ("CrossMapLRN2d", lambda: A.CrossMapLRN2d(3, alpha=1e-4)),
    # activations
    ("ReLU", lambda: A.ReLU()),
    ("ReLU inplace", lambda: A.ReLU(inplace=True)),
    ("ReLU inplace=1", lambda: A.ReLU(inplace=1)),
    ("ReLU6 inplace", lambda: A.Sequential(A.ReLU6(), A.ReLU6(inplace=True))),
    ("LeakyReLU", lambda: A.Sequential(A.LeakyReLU(), A.LeakyReLU(0.2, inplace=True))),
    ("PReLU", lambda: A.Sequential(A.PReLU(), A.PReLU(8, init=0.1))),
    ("ELU CELU SELU", lambda: A.Sequential(A.ELU(), A.ELU(0.5, True), A.CELU(), A.CELU(2.0, inplace=True),
                                           A.SELU(), A.SELU(True))),
    ("GELU", lambda: A.Sequential(A.GELU(), A.GELU(approximate="tanh"))),
    ("SiLU Mish", lambda: A.Sequential(A.SiLU(), A.SiLU(True), A.Mish(), A.Mish(inplace=True))),
    ("Hardswish Hardsigmoid", lambda: A.Sequential(A.Hardswish(), A.Hardswish(True), A.Hardsigmoid(True))),
    ("Hardtanh", lambda: A.Sequential(A.Hardtanh(), A.Hardtanh(-2, 2, inplace=True), A.Hardtanh(0.0, 6.0))),
    ("shrinks", lambda: A.Sequential(A.Hardshrink(), A.Hardshrink(0.25), A.Softshrink(), A.Softshrink(1),
                                     A.Tanhshrink())),
    ("Threshold", lambda: A.Sequential(A.Threshold(0.1, 20), A.Threshold(1e-7, -1.5, inplace=True))),
    ("plain activations", lambda: A.Sequential(A.Sigmoid(), A.Tanh(), A.Softsign(), A.LogSigmoid(),
                                               A.Softmax2d())),
    ("Softplus", lambda: A.Sequential(A.Softplus(), A.Softplus(beta=2, threshold=10.5))),
    ("softmaxes", lambda: A.Sequential(A.Softmax(), A.Softmax(dim=1), A.Softmin(-1), A.LogSoftmax(dim=0),
                                       A.LogSoftmax())),
    ("GLU", lambda: A.Sequential(A.GLU(), A.GLU(1))),
    ("RReLU", lambda: A.Sequential(A.RReLU(), A.RReLU(0.1, 0.3, inplace=True))),
    # pooling
    ("MaxPool", lambda: A.Sequential(A.MaxPool1d(3), A.MaxPool2d(3, stride=2, padding=1, dilation=2, ceil_mode=True),
                                     A.MaxPool2d((2, 3)), A.MaxPool3d(2, return_indices=True))),
    ("AvgPool", lambda: A.Sequential(A.AvgPool1d(3), A.AvgPool2d(2, stride=1, padding=1, ceil_mode=True,
                                                                 count_include_pad=False),
                                     A.AvgPool3d((1, 2, 2), divisor_override=3))),
    ("Adaptive pools", lambda: A.Sequential(A.AdaptiveMaxPool1d(3), A.AdaptiveMaxPool2d((None, 4)),
                                            A.AdaptiveMaxPool3d(2, return_indices=True), A.AdaptiveAvgPool1d(1),
                                            A.AdaptiveAvgPool2d(1), A.AdaptiveAvgPool3d((1, 2, 3)))),
    ("LPPool", lambda: A.Sequential(A.LPPool1d(2, 3), A.LPPool2d(1.5, (2, 2), stride=1, ceil_mode=True))),
    ("FractionalMaxPool", lambda: A.Sequential(A.FractionalMaxPool2d(3, output_size=5),
                                               A.FractionalMaxPool3d(2, output_ratio=0.5))),
    ("MaxUnpool", lambda: A.Sequential(A.MaxUnpool1d(2), A.MaxUnpool2d(2, stride=1, padding=1),
                                       A.MaxUnpool3d((2, 2, 2)))),
    # dropout
    ("dropouts", lambda: A.Sequential(A.Dropout(), A.Dropout(0.2, inplace=True), A.Dropout1d(0.1), A.Dropout2d(),
                                      A.Dropout3d(0.3), A.AlphaDropout(0.25), A.FeatureAlphaDropout())),
    ("Dropout inplace=1", lambda: A.Dropout(p=0, inplace=1)),
    # padding
    ("constant pads", lambda: A.Sequential(A.ConstantPad1d(2, 3.5), A.ConstantPad2d((1, 2, 3, 4), 0),
                                           A.ConstantPad3d(1, -1.0), A.ZeroPad2d(2), A.ZeroPad2d((1, 2, 0, 0)))),
    ("reflection replication pads", lambda: A.Sequential(A.ReflectionPad1d(2), A.ReflectionPad2d((1, 0, 2, 0)),
                                                         A.ReflectionPad3d(1), A.ReplicationPad1d((3, 1)),
                                                         A.ReplicationPad2d(1), A.ReplicationPad3d(2))),
    # upsampling, shuffles
    ("Upsample", lambda: A.Sequential(A.Upsample(scale_factor=2), A.Upsample(size=(3, 4), mode="bilinear",
                                                                              align_corners=True),
                                      A.Upsample(scale_factor=(2, 1.5), mode="bicubic", align_corners=False),
                                      A.Upsample(size=5, mode="nearest-exact"))),
    ("UpsamplingNearest2d UpsamplingBilinear2d", lambda: A.Sequential(A.UpsamplingNearest2d(scale_factor=2),
                                                                      A.UpsamplingNearest2d(size=(4, 4)),
                                                                      A.UpsamplingBilinear2d(size=5),
                                                                      A.UpsamplingBilinear2d(scale_factor=0.5))),
    ("shuffles", lambda: A.Sequential(A.PixelShuffle(2), A.PixelUnshuffle(3), A.ChannelShuffle(2))),
    # embeddings
    ("Embedding", lambda: A.Embedding(10, 3)),
    ("Embedding options", lambda: A.Embedding(10, 3, padding_idx=0, max_norm=1.0, norm_type=1.0,
                                              scale_grad_by_freq=True, sparse=True)),
    ("EmbeddingBag", lambda: A.EmbeddingBag(10, 3)),
    ("EmbeddingBag options", lambda: A.EmbeddingBag(10, 3, max_norm=2, norm_type=3, scale_grad_by_freq=True,
                                                    mode="sum", padding_idx=1)),
    # recurrent
    ("RNN LSTM GRU", lambda: A.ModuleList([A.RNN(3, 4), A.LSTM(3, 4), A.GRU(3, 4)])),
    ("LSTM options", lambda: A.LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.5,
                                    bidirectional=True, proj_size=2)),
    ("RNN relu GRU dropout", lambda: A.ModuleList([A.RNN(3, 4, nonlinearity="relu", num_layers=3),
                                                   A.GRU(2, 2, dropout=0.25, batch_first=True)])),
    ("cells", lambda: A.ModuleList([A.RNNCell(3, 4), A.RNNCell(3, 4, bias=False, nonlinearity="relu"),
                                    A.LSTMCell(2, 3), A.LSTMCell(2, 3, bias=False), A.GRUCell(4, 4)])),
    # attention, transformers
    ("MultiheadAttention", lambda: A.MultiheadAttention(16, 2)),
    ("MultiheadAttention kdim vdim", lambda: A.MultiheadAttention(16, 2, dropout=0.1, bias=False, kdim=8, vdim=4,
                                                                  batch_first=True)),
    ("Transformer", lambda: A.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                          dim_feedforward=32)),
    ("TransformerEncoder gelu", lambda: A.TransformerEncoder(
        A.TransformerEncoderLayer(16, 2, 32, batch_first=True, activation="gelu"), 2, norm=A.LayerNorm(16))),
    ("TransformerDecoderLayer module activation", lambda: A.TransformerDecoderLayer(16, 2, 32, norm_first=True,
                                                                                    activation=A.GELU())),
    # shapes, distances, folds
    ("Flatten Unflatten", lambda: A.Sequential(A.Flatten(), A.Flatten(0, 2), A.Unflatten(1, (2, 5)),
                                               A.Unflatten("features", (("C", 2), ("H", 3))))),
    ("distances", lambda: A.Sequential(A.CosineSimilarity(), A.CosineSimilarity(dim=0, eps=1e-6),
                                       A.PairwiseDistance(p=1.0, keepdim=True))),
    ("Fold Unfold", lambda: A.Sequential(A.Fold(3, 2), A.Fold(output_size=(4, 5), kernel_size=2, dilation=1,
                                                              padding=(1, 0), stride=2),
                                         A.Unfold(2), A.Unfold(kernel_size=(2, 3), dilation=2, padding=1, stride=2))),
    ("losses", lambda: A.ModuleList([A.CrossEntropyLoss(), A.MSELoss(reduction="sum"), A.NLLLoss()])),
    ("AdaptiveLogSoftmaxWithLoss", lambda: A.AdaptiveLogSoftmaxWithLoss(16, 100, [10, 50])),
    # containers
    ("Sequential OrderedDict", lambda: A.Sequential(collections.OrderedDict(
        [("conv", A.Conv2d(1, 2, 1)), ("act", A.ReLU()), ("empty", A.Sequential())]))),
    ("empty containers", lambda: A.ModuleList([A.Sequential(), A.ModuleList(), A.ModuleDict(),
                                               A.ParameterList(), A.ParameterDict()])),
    ("nested containers", lambda: A.ModuleDict({
        "stages": A.ModuleList([A.Sequential(A.Linear(2, 2), A.ModuleList([A.ReLU(), A.Sequential(A.Tanh())]))]),
        "heads": A.ModuleDict({"x y": A.Linear(2, 1), "0": A.Identity()})})),
    ("ParameterList", param_list),
    ("ParameterList one item (inline)", lambda: A.ParameterList([A.Parameter(torch.zeros(2))])),
    ("ParameterDict", param_dict),
    ("ParameterList in a model", lambda: in_module(param_list(), head=A.Linear(2, 2))),
    ("None child", none_child),
    ("bare Module", lambda: A.Module()),
    ("weight_norm spectral_norm prune hooks", hooked),
    ("numpy scalars as arguments", numpy_values),
    # user classes
    ("Tudui (__main__)", Tudui),
    ("user attributes", Attrs),
    ("DataParallel", lambda: A.DataParallel(Tudui())),
    # torchvision blocks
    ("StochasticDepth", lambda: A.Sequential(torchvision.ops.StochasticDepth(0.1, "row"),
                                             torchvision.ops.StochasticDepth(0.0, "batch"))),
    ("FrozenBatchNorm2d", lambda: A.Sequential(torchvision.ops.FrozenBatchNorm2d(8),
                                               torchvision.ops.FrozenBatchNorm2d(3, eps=1e-3))),
    ("LayerNorm2d", lambda: torchvision.models.convnext.LayerNorm2d(16, eps=1e-6)),
    ("Conv2dNormActivation", lambda: A.Sequential(
        tv_misc.Conv2dNormActivation(3, 16),
        tv_misc.Conv2dNormActivation(16, 16, 3, stride=2, groups=4, norm_layer=None, activation_layer=A.Hardswish),
        tv_misc.Conv3dNormActivation(2, 4, (1, 3, 3), activation_layer=A.SiLU, inplace=None))),
    ("SqueezeExcitation Permute MLP", lambda: A.Sequential(
        tv_misc.SqueezeExcitation(16, 4), tv_misc.Permute([0, 2, 3, 1]), tv_misc.MLP(8, [16, 8], dropout=0.1),
        tv_misc.MLP(4, [4], norm_layer=A.LayerNorm, activation_layer=A.GELU, inplace=None, bias=False))),
    ("ops with own __repr__", lambda: A.Sequential(
        torchvision.ops.DropBlock2d(0.1, 3), torchvision.ops.DropBlock3d(0.2, 5, inplace=True),
        torchvision.ops.RoIAlign(7, 0.25, 2), torchvision.ops.RoIAlign((7, 5), 0.5, -1, aligned=True),
        torchvision.ops.PSRoIAlign(7, 0.125, 0), torchvision.ops.RoIPool((3, 3), 1.0),
        torchvision.ops.PSRoIPool(2, 0.0625), torchvision.ops.DeformConv2d(4, 8, 3, padding=1, bias=False),
        torchvision.ops.DeformConv2d(4, 8, (3, 1), stride=2, dilation=2, groups=2),
        torchvision.ops.MultiScaleRoIAlign(["0", "feat'1"], 7, 2))),
    ("detection anchors and transform", lambda: A.ModuleList([
        torchvision.models.detection.anchor_utils.DefaultBoxGenerator([[2], [2, 3]], steps=[8, 16]),
        torchvision.models.detection.transform.GeneralizedRCNNTransform(800, 1333, [0.485, 0.456, 0.406],
                                                                        [0.229, 0.224, 0.225])])),
    ("own __repr__ nested", lambda: in_module(A.Sequential(A.Sequential(torchvision.ops.StochasticDepth(0.5, "row"),
        torchvision.models.detection.transform.GeneralizedRCNNTransform((320,), 640, [0.5], [0.25]))))),
    # torchvision classification models
    ("resnet18", tv("resnet18")),
    ("resnet18 FrozenBatchNorm2d", tv_small("resnet18", norm_layer=torchvision.ops.FrozenBatchNorm2d)),
    ("resnet50", tv_small("resnet50")),
    ("densenet121", tv_small("densenet121")),
    ("mobilenet_v2", tv("mobilenet_v2")),
    ("mobilenet_v3_small", tv("mobilenet_v3_small")),
    ("efficientnet_b0", tv_small("efficientnet_b0")),
    ("efficientnet_v2_s", tv_small("efficientnet_v2_s")),
    ("shufflenet_v2_x0_5", tv("shufflenet_v2_x0_5")),
    ("squeezenet1_0", tv("squeezenet1_0")),
    ("squeezenet1_1", tv("squeezenet1_1")),
    ("regnet_y_400mf", tv_small("regnet_y_400mf")),
    ("mnasnet0_5", tv("mnasnet0_5")),
    ("alexnet", tv_small("alexnet")),
    ("googlenet", tv_small("googlenet", aux_logits=False, init_weights=False)),
    ("inception_v3", tv_small("inception_v3", aux_logits=True, init_weights=False)),
    ("VisionTransformer small", vit_small),
    ("SwinTransformer small", swin_small),
    ("SwinTransformer v2 small", swin_v2_small),
    ("ConvNeXt small", convnext_small),
    ("convnext_tiny", tv_small("convnext_tiny")),
    ("MaxVit small", maxvit_small),
    ("raft_small", lambda: shrink(TV.optical_flow.raft_small(weights=None))),
    ("lraspp_mobilenet_v3_large", lambda: shrink(TV.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None))),
    ("deeplabv3_mobilenet_v3_large", lambda: shrink(TV.segmentation.deeplabv3_mobilenet_v3_large(
        weights=None, weights_backbone=None, aux_loss=True))),
    ("vit_b_16", tv_small("vit_b_16")),
    ("swin_t", tv_small("swin_t")),
    ("maxvit_t", tv_small("maxvit_t")),
    ("mobilenet_v3_large", tv_small("mobilenet_v3_large")),
    ("resnext50_32x4d", tv_small("resnext50_32x4d")),
    ("quantizable resnet18, fused", lambda: fused(TV.quantization.resnet18)),
    ("quantizable mobilenet_v3_large, fused", lambda: fused(TV.quantization.mobilenet_v3_large)),
    ("r2plus1d_18 (video)", lambda: shrink(TV.video.r2plus1d_18(weights=None))),
    ("s3d (video)", lambda: shrink(TV.video.s3d(weights=None))),
    ("fcn_resnet50", lambda: shrink(TV.segmentation.fcn_resnet50(weights=None, weights_backbone=None,
                                                                  aux_loss=True))),
    ("ssd300_vgg16", lambda: shrink(TV.detection.ssd300_vgg16(weights=None, weights_backbone=None))),
    ("retinanet_resnet50_fpn_v2", lambda: shrink(TV.detection.retinanet_resnet50_fpn_v2(
        weights=None, weights_backbone=None))),
    ("mc3_18 (video)", lambda: shrink(TV.video.mc3_18(weights=None))),
    ("ssdlite320_mobilenet_v3_large", lambda: shrink(TV.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None))),
    ("keypointrcnn_resnet50_fpn", lambda: shrink(TV.detection.keypointrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, trainable_backbone_layers=2))),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", lambda: shrink(TV.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
        weights=None, weights_backbone=None))),
]


def without(model, *names):
    """model as an older torch saved it: names missing from its __dict__ (the class's
    __setstate__ puts defaults back on torch.load)."""
    for n in names:
        del model.__dict__[n]
    return model


# Files from older torch versions: expected is what Python prints after torch.load().
LEGACY = [
    ("Conv2d without padding_mode (torch < 1.1)", lambda: A.Sequential(without(A.Conv2d(2, 2, 3), "padding_mode"))),
    ("Softmax family without dim (torch < 0.4)", lambda: A.Sequential(
        without(A.Softmax(1), "dim"), without(A.Softmin(0), "dim"), without(A.LogSoftmax(1), "dim"))),
    ("LSTM without proj_size (torch < 1.8)", lambda: A.Sequential(without(A.LSTM(3, 4, 2), "proj_size"))),
    ("AvgPool3d without padding", lambda: A.Sequential(without(A.AvgPool3d(2), "padding", "ceil_mode"))),
]

# Values of the wrong type, kept as given: bools stored as ints print as ints, and the
# `is True`/`is not False` tests of rnn.py and sparse.py fire on them.
INTS_AS_BOOLS = [
    ("BatchNorm2d affine=1 track_running_stats=0", lambda: A.BatchNorm2d(4, affine=1, track_running_stats=0)),
    ("LSTM bias=1 batch_first=0 bidirectional=0", lambda: A.LSTM(3, 4, bias=1, batch_first=0, bidirectional=0)),
    ("Embedding sparse=0 scale_grad_by_freq=0", lambda: A.Embedding(5, 2, sparse=0, scale_grad_by_freq=0)),
    ("LeakyReLU inplace=0 ELU inplace=2", lambda: A.Sequential(A.LeakyReLU(inplace=0), A.ELU(inplace=2))),
    ("MaxPool2d ceil_mode=1 LayerNorm affine=0", lambda: A.Sequential(A.MaxPool2d(2, ceil_mode=1),
                                                                     A.LayerNorm(3, elementwise_affine=0))),
]


def first_diff(want, got):
    w, g = want.split("\n"), got.split("\n")
    for i in range(max(len(w), len(g))):
        a = w[i] if i < len(w) else "<end>"
        b = g[i] if i < len(g) else "<end>"
        if a != b:
            return i + 1, a, b
    return 0, "", ""


def run_case(tmp, desc, build, reload=False):
    try:
        model = build()
        path = os.path.join(tmp, "model.pth")
        torch.save(model, path)
        want = str(torch.load(path, weights_only=False) if reload else model) + "\n"
    except Exception:
        check(False, f"{desc} (Python could not build or save it)", traceback.format_exc())
        return
    p = subprocess.run([VGGTL, "load", path] + TEXT_ARGS, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.unlink(path)
    got = p.stdout.decode(errors="replace")
    if p.returncode == 0 and got == want:
        check(True, desc)
        return
    line, a, b = first_diff(want, got)
    why = f"exit {p.returncode}" if p.returncode else f"line {line}: {b!r}"
    check(False, f"{desc} ({why})", f"expected: {a!r}", f"got:      {b!r}",
          "stderr: " + p.stderr.decode(errors="replace")[:400])


def both_texts(tmp):
    """The texts where torch 1.13 and 2.6 differ, both asked for, whichever torch runs this."""
    m = nn.Sequential(nn.Upsample(scale_factor=2.0), nn.EmbeddingBag(10, 3),
                      nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()]))
    path = os.path.join(tmp, "both.pth")
    torch.save(m, path)
    new = ("Sequential(\n  (0): Upsample(scale_factor=2.0, mode='nearest')\n  (1): EmbeddingBag(10, 3, mode='mean')\n"
           "  (2): ModuleList(\n    (0-1): 2 x Linear(in_features=2, out_features=2, bias=True)\n    (2): ReLU()\n  )\n)\n")
    old = ("Sequential(\n  (0): Upsample(scale_factor=2.0, mode=nearest)\n  (1): EmbeddingBag(10, 3, mode=mean)\n"
           "  (2): ModuleList(\n    (0): Linear(in_features=2, out_features=2, bias=True)\n"
           "    (1): Linear(in_features=2, out_features=2, bias=True)\n    (2): ReLU()\n  )\n)\n")
    for args, want, desc in (([], new, "default: torch 2.6's text"), (["--torch-version", "1.13"], old, "1.13's text"),
                             (["--torch-version", "2.6"], new, "--torch-version 2.6")):
        p = subprocess.run([VGGTL, "load", path] + args, capture_output=True, text=True)
        check(p.returncode == 0 and p.stdout == want, f"{desc}: Upsample and EmbeddingBag modes, ModuleList runs",
              repr(p.stdout), p.stderr)
    check(str(m) + "\n" == (new if not TEXT_ARGS else old), "that text is the running torch's own print(model)")
    p = subprocess.run([VGGTL, "load", path, "--torch-version", "3.1"], capture_output=True, text=True)
    check(p.returncode == 2 and "3.1" in p.stderr, "--torch-version 3.1: a usage error", p.stderr)
    os.remove(path)


def main():
    if not os.access(VGGTL, os.X_OK):
        print(f"not ok 1 - vggtl binary at {VGGTL}\n1..1")
        return 1
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        # a user module that lives in its own file, imported through sys.path
        with open(os.path.join(tmp, "tdmods.py"), "w") as f:
            f.write(MODULE_FILE)
        sys.path.insert(0, tmp)
        import tdmods
        cases = CASES + [
            ("user class from a module file", tdmods.Net),
            ("user Sequential subclass", lambda: A.Sequential(tdmods.Block(), tdmods.Net())),
        ]
        for desc, build in cases + INTS_AS_BOOLS:
            run_case(tmp, desc, build)
        both_texts(tmp)
        for desc, build in LEGACY:
            run_case(tmp, desc, build, reload=True)
    print(f"1..{ti.n_checks}")
    return 1 if ti.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
