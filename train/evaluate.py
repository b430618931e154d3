"""The paper's quality measures on content/style pairs: content loss, style loss, and the
style loss of the unstylized content as the baseline."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from adainrt.network import adain_from_stats
from adainrt.train.losses import style_loss, style_targets, stylization_losses


@dataclass
class Scores:
    content_loss: float
    style_loss: float
    baseline_style_loss: float  # style loss of the content image itself: the paper's baseline
    pairs: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@torch.no_grad()
def score_pairs(
    encoder: nn.Sequential, decoder: nn.Sequential, contents: torch.Tensor, styles: torch.Tensor,
    batch: int = 4,
) -> tuple[Scores, torch.Tensor]:
    """Mean losses over pairs (contents[i], styles[i]) at alpha 1, and the outputs (N, 3, H, W)."""
    from adainrt.network import encode_with_intermediates

    totals = torch.zeros(3, dtype=torch.float64)
    outputs = []
    for start in range(0, len(contents), batch):
        c, s = contents[start:start + batch], styles[start:start + batch]
        for i in range(len(c)):  # one pair at a time: style stats are per pair
            targets = style_targets(encoder, s[i:i + 1])
            target = adain_from_stats(encoder(c[i:i + 1]), *targets[-1])
            out = decoder(target)
            loss_c, loss_s = stylization_losses(encoder, out, target, targets)
            base = style_loss(encode_with_intermediates(encoder, c[i:i + 1]), targets)
            totals += torch.tensor([loss_c.item(), loss_s.item(), base.item()], dtype=torch.float64)
            outputs.append(out.clamp(0, 1))
    n = len(contents)
    mean = (totals / n).tolist()
    return Scores(mean[0], mean[1], mean[2], n), torch.cat(outputs)
