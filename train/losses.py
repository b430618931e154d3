"""The paper's losses (the popular port's MSE form), shared by training and ``adainrt evaluate``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from adainrt.network import encode_with_intermediates, mean_std


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


def style_targets(encoder: nn.Sequential, style: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Mean/std of the style image at the four loss layers (constants for the loss)."""
    with torch.no_grad():
        return [mean_std(f) for f in encode_with_intermediates(encoder, style)]


def stylization_losses(
    encoder: nn.Sequential, output: torch.Tensor, target: torch.Tensor,
    targets_of_style: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor]:
    """(content loss, style loss) of a decoder output against its AdaIN target and style."""
    feats = encode_with_intermediates(encoder, output)
    return content_loss(feats[-1], target), style_loss(feats, targets_of_style)
