"""The paper's quality measures on content/style pairs: content loss, style loss, and the
style loss of the unstylized content as the baseline.

Scoring is separate from producing the outputs, so the same measure applies to the PyTorch
decoder and to whatever a runtime backend (onnxruntime, TensorRT, FP16 graphs) returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from adainrt.network import adain_from_stats, encode_with_intermediates
from adainrt.train.losses import style_loss, style_targets, stylization_losses

#: (content (1, 3, H, W), style (1, 3, h, w)) -> output (1, 3, H, W) in [0, 1]
StylizeFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


#: One pair's (content loss, style loss, baseline style loss).
PairLosses = tuple[float, float, float]


@dataclass
class Scores:
    content_loss: float
    style_loss: float
    baseline_style_loss: float  # style loss of the content image itself: the paper's baseline
    pairs: int
    per_pair: list[PairLosses] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, per_pair: list[PairLosses]) -> Scores:
        """The means over ``per_pair``."""
        totals = [math.fsum(column) / len(per_pair) for column in zip(*per_pair)]
        return cls(*totals, pairs=len(per_pair), per_pair=list(per_pair))

    def subset(self, index: Iterable[int]) -> Scores:
        """The scores of some of the pairs (say, those of one style)."""
        return Scores.of([self.per_pair[i] for i in index])

    @property
    def style_ratio(self) -> float:
        """Style loss over the baseline: below 0.2 is the quality bar of issue #3."""
        return self.style_loss / self.baseline_style_loss

    def as_dict(self) -> dict[str, float]:
        return {"content_loss": self.content_loss, "style_loss": self.style_loss,
                "baseline_style_loss": self.baseline_style_loss, "pairs": self.pairs, "style_ratio": self.style_ratio}


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
    per_pair, outputs = [], []
    for content, style in zip(contents.split(1), styles.split(1)):  # style stats are per pair
        targets = style_targets(encoder, style)
        content_feats = encode_with_intermediates(encoder, content)
        target = adain_from_stats(content_feats[-1], *targets[-1])
        out = decoder(target) if decoder is not None else stylize(content, style)
        out = out.float().clamp(0, 1)  # what a user gets: an image
        loss_c, loss_s = stylization_losses(encoder, out, target, targets)
        base = style_loss(content_feats, targets)
        per_pair.append((loss_c.item(), loss_s.item(), base.item()))
        outputs.append(out)
    return Scores.of(per_pair), torch.cat(outputs)


def pair_indices(contents: int, styles: int, all_pairs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Which content and which style make each pair: content i with style i mod ``styles``, or
    (``all_pairs``) every content with every style."""
    if all_pairs:
        return torch.arange(contents).repeat_interleave(styles), torch.arange(styles).repeat(contents)
    return torch.arange(contents), torch.arange(contents) % styles


def pair_up(contents: torch.Tensor, styles: torch.Tensor, all_pairs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs of :func:`pair_indices` as two stacks of images."""
    index_c, index_s = pair_indices(len(contents), len(styles), all_pairs)
    return contents[index_c], styles[index_s]
