"""The paper's losses (the popular port's MSE form), shared by training and ``adainrt evaluate``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adainrt.network import STYLE_LAYERS, encode_with_intermediates, mean_std


def content_loss(output_feat: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_c = MSE(f(g(t)), t): the AdaIN output t is the content target."""
    return F.mse_loss(output_feat, target)


def style_loss(output_feats: list[torch.Tensor], style_stats: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """L_s = sum over relu1_1..relu4_1 of MSE of channel means plus MSE of channel stds."""
    total = output_feats[0].new_zeros(())
    for feat, (s_mean, s_std) in zip(output_feats, style_stats):
        o_mean, o_std = mean_std(feat)
        total = total + F.mse_loss(o_mean, s_mean) + F.mse_loss(o_std, s_std)
    return total


#: The layers whose instance-normalized features the structure distance compares: deep enough to
#: describe shapes (edges, faces, horizons), not the brush strokes of relu1_1/relu2_1.
STRUCTURE_LAYERS = ("relu3_1", "relu4_1")


def structure_distance(output_feats: list[torch.Tensor], content_feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean over STRUCTURE_LAYERS of the MSE between the output's and the photo's features, each
    channel normalized to mean 0 and std 1 over the image.

    The normalization removes exactly what AdaIN changes on purpose (each channel's mean and std:
    the style), so what is left is where the features fire: the photo's layout. 0 means the
    photo's structure exactly; unrelated images score about 2 (two unit-variance signals).
    Features are listed as :func:`encode_with_intermediates` returns them."""
    order = sorted(STYLE_LAYERS, key=STYLE_LAYERS.get)
    total = output_feats[0].new_zeros((), dtype=torch.float32)
    for name in STRUCTURE_LAYERS:
        normalized = []
        for feats in (output_feats, content_feats):
            feat = feats[order.index(name)].float()
            mean, std = mean_std(feat)
            normalized.append((feat - mean) / std)
        total = total + torch.nn.functional.mse_loss(*normalized)
    return total / len(STRUCTURE_LAYERS)


def style_targets(encoder: nn.Sequential, style: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean/std of the style image at the four loss layers (constants for the loss)."""
    with torch.no_grad():
        return [mean_std(f) for f in encode_with_intermediates(encoder, style)]


def stylization_losses(
    encoder: nn.Sequential, output: torch.Tensor, target: torch.Tensor,
    targets_of_style: list[tuple[torch.Tensor, torch.Tensor]], content_feats: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(content loss, style loss, structure distance) of a decoder output against its AdaIN target,
    its style and (given the photo's ``content_feats``) the photo's structure; without them the
    structure term is 0 and costs nothing."""
    feats = encode_with_intermediates(encoder, output)
    structure = structure_distance(feats, content_feats) if content_feats is not None else feats[-1].new_zeros(())
    return content_loss(feats[-1], target), style_loss(feats, targets_of_style), structure
