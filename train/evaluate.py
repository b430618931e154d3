"""The paper's quality measures on content/style pairs: content loss, style loss, and the
style loss of the unstylized content as the baseline; beside them a structure distance, which
the style ratio alone would let a decoder win by painting pure texture.

Scoring is separate from producing the outputs, so the same measure applies to the PyTorch
decoder and to whatever a runtime backend (onnxruntime, TensorRT, FP16 graphs) returns.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from adainrt.errors import AdainrtError, OutputExists
from adainrt.network import adain_from_stats, encode_with_intermediates
from adainrt.runtime.backend import SCORING_BACKEND
from adainrt.spec import DEFAULT_VARIANT
from adainrt.train.losses import content_loss, structure_distance, style_loss, style_targets

#: (content (1, 3, H, W), style (1, 3, h, w), alpha) -> output (1, 3, H, W) in [0, 1]
StylizeFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


#: One pair's (content loss, style loss, baseline style loss, structure distance).
PairLosses = tuple[float, float, float, float]

@dataclass
class Scores:
    content_loss: float
    style_loss: float
    baseline_style_loss: float  # style loss of the content image itself: the paper's baseline
    structure: float  # structure_distance of the output from the photo (0: the photo's layout exactly)
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
                "baseline_style_loss": self.baseline_style_loss, "structure": self.structure, "pairs": self.pairs,
                "style_ratio": self.style_ratio}


@torch.no_grad()
def score_pairs(
    encoder: nn.Sequential, stylize: StylizeFn | nn.Sequential, contents: torch.Tensor, styles: torch.Tensor,
    done: Callable[[int, int], None] = lambda _done, _total: None, alpha: float = 1.0,
) -> tuple[Scores, torch.Tensor]:
    """Mean losses over pairs (contents[i], styles[i]) at ``alpha``, and the outputs (N, 3, H, W):
    :func:`score_pairs_at` at one alpha."""
    return score_pairs_at(encoder, stylize, contents, styles, [alpha], done)[0]


@torch.no_grad()
def score_pairs_at(
    encoder: nn.Sequential, stylize: StylizeFn | nn.Sequential, contents: torch.Tensor, styles: torch.Tensor,
    alphas: Sequence[float], done: Callable[[int, int], None] = lambda _done, _total: None,
) -> list[tuple[Scores, torch.Tensor]]:
    """(scores, outputs) of pairs (contents[i], styles[i]) at each of ``alphas``.

    ``stylize(content, style, alpha)`` makes the outputs; a decoder module is run on the AdaIN
    target computed here (the reference path, no second encoder pass). The photo's and the
    style's features are computed once per pair for all alphas (they are half of the work).
    The losses always use ``encoder`` in FP32, so backends are compared on one measure, and
    are taken on the output clipped to [0, 1], as the image a user gets. The content loss is
    measured against the target the decoder was given (at alpha < 1, the blend with the photo's
    features); the style loss against the style, so it grows as alpha falls.
    """
    decoder = stylize if isinstance(stylize, nn.Module) else None
    per_pair: list[list[PairLosses]] = [[] for _ in alphas]
    outputs: list[list[torch.Tensor]] = [[] for _ in alphas]
    for pair, (content, style) in enumerate(zip(contents.split(1), styles.split(1))):  # style stats are per pair
        targets = style_targets(encoder, style)
        content_feats = encode_with_intermediates(encoder, content)
        stylized = adain_from_stats(content_feats[-1], *targets[-1])
        baseline = style_loss(content_feats, targets).item()
        for k, alpha in enumerate(alphas):
            target = alpha * stylized + (1.0 - alpha) * content_feats[-1]
            out = decoder(target) if decoder is not None else stylize(content, style, alpha)
            out = out.float().clamp(0, 1)  # what a user gets: an image
            out_feats = encode_with_intermediates(encoder, out)
            per_pair[k].append((content_loss(out_feats[-1], target).item(), style_loss(out_feats, targets).item(),
                                baseline, structure_distance(out_feats, content_feats).item()))
            outputs[k].append(out)
        done(pair + 1, len(contents))  # pairs scored so far, of all (a progress bar)
    return [(Scores.of(losses), torch.cat(outs)) for losses, outs in zip(per_pair, outputs)]


def pair_indices(contents: int, styles: int, all_pairs: bool = False,
                 per_style: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which content and which style make each pair: content i with style i mod ``styles``;
    (``all_pairs``) every content with every style; or (``per_style`` = k) each style with k
    contents, taken in turn so that every content is used about equally often."""
    if all_pairs:
        return torch.arange(contents).repeat_interleave(styles), torch.arange(styles).repeat(contents)
    if per_style:
        index_s = torch.arange(styles).repeat_interleave(per_style)
        return torch.arange(len(index_s)) % contents, index_s
    return torch.arange(contents), torch.arange(contents) % styles


def pair_up(contents: torch.Tensor, styles: torch.Tensor, all_pairs: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs of :func:`pair_indices` as two stacks of images."""
    index_c, index_s = pair_indices(len(contents), len(styles), all_pairs)
    return contents[index_c], styles[index_s]


def contact_sheet(contents: torch.Tensor, styles: torch.Tensor, index_c: torch.Tensor, index_s: torch.Tensor,
                  outputs: torch.Tensor, cell: int) -> np.ndarray:
    """A grid (3, H, W) in [0, 1]: the styles along the top, the photos down the left, each pair's
    output where its photo's row meets its style's column (white where a pair was not scored)."""
    rows, cols = index_c.unique().tolist(), index_s.unique().tolist()

    def fit(image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(image[None].float(), size=(cell, cell), mode="area")[0]

    grid = torch.ones(3, (len(rows) + 1) * cell, (len(cols) + 1) * cell)
    for j, k in enumerate(cols):
        grid[:, :cell, (j + 1) * cell:(j + 2) * cell] = fit(styles[k])
    for i, k in enumerate(rows):
        grid[:, (i + 1) * cell:(i + 2) * cell, :cell] = fit(contents[k])
    for out, c, s in zip(outputs, index_c.tolist(), index_s.tolist()):
        i, j = rows.index(c) + 1, cols.index(s) + 1
        grid[:, i * cell:(i + 1) * cell, j * cell:(j + 1) * cell] = fit(out)
    return grid.numpy()


@dataclass
class Evaluation:
    """What `adainrt evaluate` reports: scores at each alpha (overall), per style at the first
    alpha, and what made the outputs."""

    backend: str
    precision: str
    size: int
    decoder_hash: str | None
    by_alpha: dict[float, Scores]
    by_style: dict[str, Scores]
    variant: str = DEFAULT_VARIANT

    @property
    def scores(self) -> Scores:
        """The scores at the first alpha (1 unless others were asked for)."""
        return next(iter(self.by_alpha.values()))

    def report(self) -> str:
        """The scores as `adainrt evaluate` prints them: overall, by alpha, by style."""
        scores, alpha = self.scores, next(iter(self.by_alpha))
        lines = [f"variant                       {self.variant}",
                 f"backend                       {self.backend} ({self.precision})",
                 f"decoder                       {self.decoder_hash}",
                 f"pairs                         {scores.pairs} (alpha {alpha:g}, {self.size}x{self.size} crops)",
                 f"content loss                  {scores.content_loss:.4f}",
                 f"style loss                    {scores.style_loss:.4f}",
                 f"style loss of content (base)  {scores.baseline_style_loss:.4f}",
                 f"style / baseline              {scores.style_ratio:.3f}",
                 f"structure (0: the photo's)    {scores.structure:.3f}"]
        if len(self.by_alpha) > 1:
            lines.append(f"\n{'by alpha':<10}content    style  ratio  structure")
            lines += [f"  {a:<8g}{part.content_loss:>7.3f}{part.style_loss:>9.3f}{part.style_ratio:>7.3f}"
                      f"{part.structure:>11.3f}" for a, part in self.by_alpha.items()]
        lines.append(f"\n{'by style (alpha ' + f'{alpha:g})':<38}pairs  content    style  baseline  ratio  structure")
        for name, part in self.by_style.items():
            short = name if len(name) <= 36 else f"{name[:16]}...{name[-17:]}"
            lines.append(f"  {short:<36}{part.pairs:>5}{part.content_loss:>9.3f}{part.style_loss:>9.3f}"
                         f"{part.baseline_style_loss:>10.3f}{part.style_ratio:>7.3f}{part.structure:>11.3f}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "backend": self.backend, "precision": self.precision, "size": self.size,
                "decoder_hash": self.decoder_hash, "alpha": next(iter(self.by_alpha)), **self.scores.as_dict(),
                "by_style": {name: part.as_dict() for name, part in self.by_style.items()},
                "by_alpha": {f"{alpha:g}": part.as_dict() for alpha, part in self.by_alpha.items()}}


def evaluation_stylizer(encoder_meta: dict[str, Any], encoder: str | os.PathLike | None,
                        decoder: str | os.PathLike | None, backend: str, model_dir: str | os.PathLike | None,
                        precision: str | None, progress: Callable[[str], None] = lambda _msg: None
                        ) -> tuple[StylizeFn, str | None, str]:
    """What makes the outputs `evaluate` scores: a Stylizer on the weights' graphs (exported once into
    the cache, or ``model_dir``) on any registered backend, torch eager included; the weights hash of
    the decoder behind it (scores are only worth keeping with the decoder they measured); and the
    precision it runs. ``encoder_meta``: the model's encoder, which the graphs must hold."""
    from adainrt.export.cache import cached_model_dir
    from adainrt.runtime.jobs import open_stylizer

    stylizer = open_stylizer(model_dir, encoder, decoder, backend, precision, progress=progress,
                             graphs=cached_model_dir, variant=encoder_meta.get("variant", DEFAULT_VARIANT))
    graph_encoder = stylizer.metadata.get("encoder_hash")
    if graph_encoder != encoder_meta["weights_hash"]:
        stylizer.close()
        raise AdainrtError(f"the graphs were exported with encoder {graph_encoder}, but the model's encoder is "
                           f"{encoder_meta['weights_hash']}: give that encoder's weights")

    def run(content: torch.Tensor, style: torch.Tensor, alpha: float) -> torch.Tensor:
        def hwc(x: torch.Tensor) -> np.ndarray:
            return x[0].permute(1, 2, 0).numpy()

        out = stylizer.stylize(hwc(content), hwc(style), alpha)
        return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))[None]

    run.close = stylizer.close  # evaluate_folders frees the runners when scoring is done
    return run, stylizer.metadata.get("decoder_hash"), stylizer.precision


def evaluate_folders(content_dir: str | os.PathLike, style_dir: str | os.PathLike, all_pairs: bool = False,
                     encoder: str | os.PathLike | None = None, decoder: str | os.PathLike | None = None,
                     backend: str = SCORING_BACKEND, model_dir: str | os.PathLike | None = None,
                     precision: str | None = None, size: int = 256, sheet: str | os.PathLike | None = None,
                     sheet_cell: int = 128, overwrite: bool = False,
                     progress: Callable[[str], None] = lambda _msg: None,
                     pair_done: Callable[[int, int], None] = lambda _done, _total: None,
                     alphas: Sequence[float] = (1.0,), per_style: int = 0,
                     heldout_list: str | os.PathLike | None = None, variant: str | None = None) -> Evaluation:
    """Score a decoder on centre crops of two folders' images (pairs as :func:`pair_indices`) at each
    of ``alphas``, per style too (at the first alpha); optionally write a contact sheet of the first
    alpha's outputs (:func:`contact_sheet`, ``sheet_cell`` pixels a cell). ``heldout_list``
    (train/heldout.txt's form) scores only the files it names. ``pair_done(done, total)`` follows the
    scoring (a progress bar).

    Every variant is measured by the full network's VGG-19 (the embedded one, or ``encoder`` when it
    is a full encoder): a narrower variant's own encoder is what it runs, never what judges it."""
    from adainrt.images import from_tensor, save_image
    from adainrt.spec import MIN_SIZE
    from adainrt.train.data import ImageFolder, read_heldout_list
    from adainrt.weights import load_encoder

    if size < MIN_SIZE:
        raise AdainrtError(f"crop size {size} is below the minimum of {MIN_SIZE}: give the size of the centre "
                           "crops, such as 256")
    alphas = list(dict.fromkeys(float(a) for a in alphas))
    if not alphas or not all(0.0 <= a <= 1.0 for a in alphas):
        raise AdainrtError(f"alphas must lie in [0, 1], got {alphas}")
    if per_style < 0 or (per_style and all_pairs):
        raise AdainrtError("give --all-pairs or --per-style N (N >= 1), not both")
    if sheet is not None and Path(sheet).exists() and not overwrite:
        raise OutputExists(sheet)  # before minutes of work
    listed = read_heldout_list(heldout_list) if heldout_list is not None else {}
    content_folder, style_folder = (ImageFolder.load(d, size, size, holdout=bool(listed), heldout_names=listed.get(k))
                                    for d, k in ((content_dir, "content"), (style_dir, "style")))
    if model_dir is not None:
        from adainrt.contract import manifest_variant, read_manifest

        variant = variant or manifest_variant(read_manifest(model_dir)).name
    model_encoder, model_meta = load_encoder(encoder, variant)
    narrower = model_meta["variant"] != DEFAULT_VARIANT
    enc = load_encoder(None)[0] if narrower else model_encoder
    stylize, decoder_hash, precision = evaluation_stylizer(model_meta, encoder, decoder, backend, model_dir,
                                                           precision, progress)
    index_c, index_s = pair_indices(len(content_folder.images), len(style_folder.images), all_pairs, per_style)
    contents, styles = (torch.from_numpy(f.center_crops(size)) for f in (content_folder, style_folder))
    try:
        scored = score_pairs_at(enc, stylize, contents[index_c], styles[index_s], alphas, done=pair_done)
    finally:
        getattr(stylize, "close", lambda: None)()
    by_alpha = {alpha: scores for alpha, (scores, _) in zip(alphas, scored)}
    first, first_outputs = scored[0]
    by_style = {name: first.subset(torch.nonzero(index_s == k).flatten().tolist())
                for k, name in enumerate(style_folder.names) if (index_s == k).any()}
    if sheet is not None:
        save_image(from_tensor(contact_sheet(contents, styles, index_c, index_s, first_outputs, sheet_cell)),
                   sheet, overwrite=overwrite)
        progress(f"wrote {sheet}")
    return Evaluation(backend, precision, size, decoder_hash, by_alpha, by_style, model_meta["variant"])


def compare_variants(evaluations: Sequence[Evaluation]) -> str:
    """Variants side by side at each alpha: style ratio and structure, and each as a multiple of the
    first variant's (the bar a narrower variant is held to is a multiple of full's)."""
    first = evaluations[0]
    lines = [f"\n{'alpha':<7}{'variant':<9}{'pairs':>6}{'ratio':>8}{'structure':>11}   "
             f"{'ratio / ' + first.variant:>14}{'structure / ' + first.variant:>19}"]
    for alpha, base in first.by_alpha.items():
        for one in evaluations:
            part = one.by_alpha.get(alpha)
            if part is None:
                continue
            lines.append(f"{alpha:<7g}{one.variant:<9}{part.pairs:>6}{part.style_ratio:>8.3f}{part.structure:>11.3f}"
                         f"   {part.style_ratio / base.style_ratio:>14.2f}{part.structure / base.structure:>19.2f}")
    return "\n".join(lines)


def evaluate_variants(variants: Sequence[str | None], sheet: str | os.PathLike | None = None,
                      bar: Callable[[str], AbstractContextManager[Callable[[int, int], None]]] | None = None,
                      **settings: Any) -> list[Evaluation]:
    """`adainrt evaluate`: :func:`evaluate_folders` once per variant on the same pairs (``settings``:
    its other arguments), each variant's contact sheet named ``SHEET_VARIANT.png`` when there are
    several; ``bar(label)`` opens a progress bar per variant."""
    variants = list(variants) or [None]
    if len(variants) > 1 and any(settings.get(k) for k in ("encoder", "decoder", "model_dir")):
        raise AdainrtError("weights and model folders are one variant each: leave them out to compare variants "
                           "(their bundled weights), or give one --variant")
    results = []
    for variant in variants:
        variant_sheet = sheet
        if sheet is not None and len(variants) > 1:
            variant_sheet = Path(sheet).with_name(f"{Path(sheet).stem}_{variant}{Path(sheet).suffix}")
        label = f"scoring pairs{f' ({variant})' if variant else ''}"
        with bar(label) if bar else contextlib.nullcontext(lambda _done, _total: None) as pair_done:
            results.append(evaluate_folders(sheet=variant_sheet, pair_done=pair_done, variant=variant, **settings))
    return results


def evaluation_report(results: Sequence[Evaluation], as_json: bool = False) -> str:
    """The scores of one or several variants as text (side by side when several) or as JSON."""
    if as_json:
        as_dicts = [r.as_dict() for r in results]
        return json.dumps(as_dicts[0] if len(as_dicts) == 1 else {"variants": as_dicts}, indent=2)
    text = "\n\n".join(r.report() for r in results)
    return text + "\n" + compare_variants(results) if len(results) > 1 else text
