"""The paper's quality measures on content/style pairs: content loss, style loss, and the
style loss of the unstylized content as the baseline.

Scoring is separate from producing the outputs, so the same measure applies to the PyTorch
decoder and to whatever a runtime backend (onnxruntime, TensorRT, FP16 graphs) returns.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from adainrt.errors import AdainrtError, OutputExists
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
    done: Callable[[int, int], None] = lambda _done, _total: None,
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
        done(len(per_pair), len(contents))  # pairs scored so far, of all (a progress bar)
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


@dataclass
class Evaluation:
    """What `adainrt evaluate` reports: scores overall and per style, and what made the outputs."""

    backend: str
    precision: str
    size: int
    decoder_hash: str | None
    scores: Scores
    by_style: dict[str, Scores]

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "size": self.size,
                "decoder_hash": self.decoder_hash, **self.scores.as_dict(),
                "by_style": {name: part.as_dict() for name, part in self.by_style.items()}}


def evaluation_stylizer(encoder_meta: dict[str, Any], encoder: str | os.PathLike | None,
                        decoder: str | os.PathLike | None, backend: str, model_dir: str | os.PathLike | None,
                        precision: str | None, progress: Callable[[str], None] = lambda _msg: None,
                        ) -> tuple[StylizeFn | nn.Module, str | None, str]:
    """What makes the outputs `evaluate` scores (the torch decoder or a runtime Stylizer), the weights
    hash of the decoder behind it (scores are only worth keeping with the decoder they measured), and
    the precision it runs."""
    if backend == "torch":
        if model_dir is not None or precision not in (None, "fp32"):  # refused, not ignored
            raise AdainrtError("the torch backend runs the decoder's weights in fp32: a model folder and a "
                               "precision apply to the runtime backends (--backend auto, openvino, ...)")
        from adainrt.weights import load_decoder

        module, meta = load_decoder(decoder, encoder_meta)
        return module, meta["weights_hash"], "fp32"
    from adainrt.runtime.jobs import open_stylizer

    stylizer = open_stylizer(model_dir, encoder, decoder, backend, precision, progress=progress)
    graph_encoder = stylizer.metadata.get("encoder_hash")
    if graph_encoder != encoder_meta["weights_hash"]:
        stylizer.close()
        raise AdainrtError(f"the graphs were exported with encoder {graph_encoder}, but the losses would be "
                           f"measured with {encoder_meta['weights_hash']}: give that encoder's weights")

    def run(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        def hwc(x: torch.Tensor) -> np.ndarray:
            return x[0].permute(1, 2, 0).numpy()

        out = stylizer.stylize(hwc(content), hwc(style))
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]

    run.close = stylizer.close  # evaluate_folders frees the runners when scoring is done
    return run, stylizer.metadata.get("decoder_hash"), stylizer.precision


def evaluate_folders(content_dir: str | os.PathLike, style_dir: str | os.PathLike, all_pairs: bool = False,
                     encoder: str | os.PathLike | None = None, decoder: str | os.PathLike | None = None,
                     backend: str = "torch", model_dir: str | os.PathLike | None = None,
                     precision: str | None = None, size: int = 256, sheet: str | os.PathLike | None = None,
                     overwrite: bool = False, progress: Callable[[str], None] = lambda _msg: None,
                     pair_done: Callable[[int, int], None] = lambda _done, _total: None) -> Evaluation:
    """Score a decoder on centre crops of two folders' images (pairs as :func:`pair_indices`), per style
    too; optionally write a contact sheet (content | style | output per row). ``pair_done(done, total)``
    follows the scoring (a progress bar)."""
    from adainrt.images import from_tensor, save_image
    from adainrt.spec import MIN_SIZE
    from adainrt.train.data import ImageFolder
    from adainrt.weights import load_encoder

    if size < MIN_SIZE:
        raise AdainrtError(f"crop size {size} is below the minimum of {MIN_SIZE}: give the size of the centre "
                           "crops, such as 256")
    if sheet is not None and Path(sheet).exists() and not overwrite:
        raise OutputExists(sheet)  # before minutes of work
    enc, enc_meta = load_encoder(encoder)
    stylize, decoder_hash, precision = evaluation_stylizer(enc_meta, encoder, decoder, backend, model_dir,
                                                           precision, progress)
    content_folder, style_folder = (ImageFolder.load(d, size, size) for d in (content_dir, style_dir))
    index_c, index_s = pair_indices(len(content_folder.images), len(style_folder.images), all_pairs)
    contents = torch.from_numpy(content_folder.center_crops(size))[index_c]
    styles = torch.from_numpy(style_folder.center_crops(size))[index_s]
    try:
        scores, outputs = score_pairs(enc, stylize, contents, styles, done=pair_done)
    finally:
        getattr(stylize, "close", lambda: None)()
    by_style = {name: scores.subset(torch.nonzero(index_s == k).flatten().tolist())
                for k, name in enumerate(style_folder.names) if (index_s == k).any()}
    if sheet is not None:
        rows = [torch.cat(trio, dim=2) for trio in zip(contents, styles, outputs)]
        save_image(from_tensor(torch.cat(rows, dim=1).numpy()), sheet, overwrite=overwrite)
        progress(f"wrote {sheet}")
    return Evaluation(backend, precision, size, decoder_hash, scores, by_style)
