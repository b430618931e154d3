"""The paper's quality measures on content/style pairs: content loss, style loss, and the
style loss of the unstylized content as the baseline.

Scoring is separate from producing the outputs, so the same measure applies to the PyTorch
decoder and to whatever a runtime backend (onnxruntime, TensorRT, FP16 graphs) returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from adainrt.network import adain_from_stats, encode_with_intermediates
from adainrt.train.losses import style_loss, style_targets, stylization_losses

#: (content (1, 3, H, W), style (1, 3, h, w)) -> output (1, 3, H, W) in [0, 1]
StylizeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Scores:
    content_loss: float
    style_loss: float
    baseline_style_loss: float  # style loss of the content image itself: the paper's baseline
    pairs: int

    @property
    def style_ratio(self) -> float:
        """Style loss over the baseline: below 0.2 is the quality bar of issue #3."""
        return self.style_loss / self.baseline_style_loss

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "style_ratio": self.style_ratio}


@torch.no_grad()
def score_pairs(
    encoder: nn.Sequential, stylize: StylizeFn | nn.Sequential, contents: torch.Tensor, styles: torch.Tensor,
) -> tuple[Scores, torch.Tensor]:
    """Mean losses over pairs (contents[i], styles[i]) at alpha 1, and the outputs (N, 3, H, W).

    ``stylize`` makes the outputs; a decoder module is run on the AdaIN target computed here
    (the reference path, no second encoder pass).
    The losses always use ``encoder`` in FP32, so backends are compared on one measure, and
    are taken on the output clipped to [0, 1], as the image a user gets.
    """
    decoder = stylize if isinstance(stylize, nn.Module) else None
    totals = torch.zeros(3, dtype=torch.float64)
    outputs = []
    for content, style in zip(contents.split(1), styles.split(1)):  # style stats are per pair
        targets = style_targets(encoder, style)
        content_feats = encode_with_intermediates(encoder, content)
        target = adain_from_stats(content_feats[-1], *targets[-1])
        out = decoder(target) if decoder is not None else stylize(content, style)
        out = out.float().clamp(0, 1)  # what a user gets: an image
        loss_c, loss_s = stylization_losses(encoder, out, target, targets)
        base = style_loss(content_feats, targets)
        totals += torch.tensor([loss_c.item(), loss_s.item(), base.item()], dtype=torch.float64)
        outputs.append(out)
    mean = (totals / len(contents)).tolist()
    return Scores(mean[0], mean[1], mean[2], len(contents)), torch.cat(outputs)


def pair_up(contents: torch.Tensor, styles: torch.Tensor, all_pairs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Content i with style i mod len(styles), or (``all_pairs``) every content with every style."""
    if all_pairs:
        index_c = torch.arange(len(contents)).repeat_interleave(len(styles))
        index_s = torch.arange(len(styles)).repeat(len(contents))
        return contents[index_c], styles[index_s]
    return contents, styles[torch.arange(len(contents)) % len(styles)]
