"""A fixed pool of crops encoded once: the compute trade of CPU training.

A training step encodes its content and style crops with the frozen VGG before it runs the
decoder and the loss network on the output: about 2 of the step's 7 encoder/decoder-sized
passes (forward and backward counted). Those two passes depend only on the crops, so drawing
the crops from a fixed pool, encoded once, takes them out of every step. The price is less
augmentation (``crops_per_image`` positions per image instead of a fresh one each time),
which matters little while each crop is seen only a few times.

The pool is built from its own seeded generator, so a resumed run rebuilds the same pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from adainrt.train.data import ImageFolder, StyleAugment
from adainrt.train.losses import style_targets

#: Style statistics at the loss layers: per layer, (means, stds) of shape (N, C, 1, 1).
StyleStats = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class FeaturePool:
    pixels: torch.Tensor  # (N, 3, crop, crop) uint8 content crops: the inversion phase's target
    features: torch.Tensor  # (N, 512, crop/8, crop/8) float16: relu4_1 of those crops
    style_stats: StyleStats  # style crops' statistics at relu1_1 .. relu4_1, float32

    @classmethod
    @torch.no_grad()
    def build(cls, encoder: nn.Sequential, content: ImageFolder, style: ImageFolder, crops_per_image: int,
              crop: int, seed: int, device: torch.device, batch: int = 16,
              progress: Callable[[int], None] | None = None,
              style_augment: StyleAugment | None = None) -> FeaturePool:
        """Encode ``crops_per_image`` crops per image on average (random images and positions)."""
        rng = np.random.default_rng([seed, 1])
        pixels, features, stats = [], [], []
        for folder, is_content in ((content, True), (style, False)):
            count = crops_per_image * len(folder.images)
            for start in range(0, count, batch):
                crops = folder.random_crops(rng, min(batch, count - start), crop,
                                            augment=None if is_content else style_augment)
                images = torch.from_numpy(crops).to(device, memory_format=torch.channels_last)
                if is_content:
                    pixels.append(torch.from_numpy(np.round(crops * 255).astype(np.uint8)))
                    features.append(encoder(images).to("cpu", torch.float16))
                else:
                    stats.append([(m.cpu(), s.cpu()) for m, s in style_targets(encoder, images)])
                if progress:
                    progress(len(crops))
        per_layer = [(torch.cat([b[i][0] for b in stats]), torch.cat([b[i][1] for b in stats]))
                     for i in range(len(stats[0]))]
        return cls(torch.cat(pixels), torch.cat(features), per_layer)

    @staticmethod
    def size(content: ImageFolder, style: ImageFolder, crops_per_image: int) -> int:
        """How many crops :meth:`build` encodes (for a progress bar)."""
        return crops_per_image * (len(content.images) + len(style.images))

    def content_batch(self, index: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(content pixels float in [0, 1], relu4_1 float32) of the pooled crops ``index``."""
        idx = torch.from_numpy(index)
        pixels = self.pixels[idx].to(device, torch.float32) / 255.0
        return pixels, self.features[idx].to(device, torch.float32)

    def style_batch(self, index: np.ndarray, device: torch.device) -> StyleStats:
        idx = torch.from_numpy(index)
        return [(mean[idx].to(device), std[idx].to(device)) for mean, std in self.style_stats]

    def __len__(self) -> int:
        return len(self.features)

    @property
    def style_count(self) -> int:
        return len(self.style_stats[0][0])
