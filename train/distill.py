"""Training a narrower variant (``lite``) from the full network: distillation, then the paper's loss.

Why this recipe (after collaborative distillation, Wang et al., CVPR 2020, and the cheap start of
issue #26): on a CPU budget the full network's own work is the dear part, so it is done once.
A pool of photo crops and style crops is stylized by the full model (the teacher: the embedded
VGG-19 and the bundled decoder) at random alphas, and its relu4_1 features of both crops are kept.
The student (encoder and decoder of the variant) then learns from the pool:

- its encoder's relu4_1, through a learned 1x1 embedding to full's channels, must match full's
  (the embedding is discarded after training): the student's features carry full's meaning, so
  AdaIN's statistics of a style mean what they mean to the teacher;
- its output must match the teacher's: in pixels (MSE) and as full's VGG sees it (a perceptual
  loss: relu1_1 to relu4_1 of the student's output against those of the teacher's, each relative
  to the teacher's own magnitude), which carries structure and brush strokes where the pixel loss
  alone settles on a blur; and the channel means and stds of those features must be the teacher
  output's (the paper's style loss, but against the teacher's image rather than the painting:
  the palette and strokes the teacher chose for this photo). Measured: without relu1_1 and these
  statistics, 2,000 steps gave structure but one warm palette whatever the style (on training
  pairs the teacher's output was bluer than red in 25%, the student's in 0.5%);
- optionally, from ``distill_iters`` on, the paper's loss too (``content_weight``, ``style_weight``;
  off by default). Measured: with the paper's style loss at weight 10 from step 1,550 on, the
  student collapsed within 1,000 steps into one texture whatever the photo and the style
  (held-out structure 1.49 -> 1.83, 2 being an unrelated image), which no loss against the
  teacher's output allows.

Both networks start as filter-pruned copies of the teacher's (the filters of largest L1 norm in
every layer, rescaled to keep each filter's response), as collaborative distillation does.
Resumable from atomic checkpoints like the decoder trainer; the pool is saved once beside them.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adainrt.errors import AdainrtError
from adainrt.fileio import atomic_path, refuse_existing
from adainrt.network import (
    AdaINModel,
    adain_from_stats,
    blend,
    build_decoder,
    build_encoder,
    encode_with_intermediates,
    mean_std,
)
from adainrt.spec import VARIANTS, check_variant
from adainrt.train.data import ImageFolder, default_heldout_list, read_heldout_list
from adainrt.train.evaluate import Scores, pair_up, score_pairs
from adainrt.train.losses import content_loss, structure_distance, style_loss, style_targets
from adainrt.train.trainer import (
    CHECKPOINT,
    LOG,
    StepHooks,
    _setting_error,
    amp_dtype,
    check_settings,
    load_checkpoint,
    saved_run_config,
)
from adainrt.weights import load_decoder, load_encoder, save_weights

POOL = "pool.pt"


@dataclass
class DistillConfig:
    content_dir: str
    style_dir: str
    output_dir: str = "runs/lite"
    variant: str = "lite"
    teacher_decoder: str | None = None  # None: the bundled decoder (with the embedded VGG-19)
    start_from: str | None = None  # None: a pruned copy of the teacher; "bundled" or a run's folder: its weights
    holdout_list: str | None = None  # None: the committed list (train/heldout.txt)
    resize: int = 256  # smaller side before cropping
    crop: int = 128
    pool_pairs: int = 4000  # (photo crop, style crop, alpha) triples stylized by the teacher once
    full_alpha: float = 0.7  # share of the pool's pairs at alpha 1; the others draw alpha uniformly
    batch_size: int = 16
    lr: float = 5e-4
    lr_decay: float = 1e-4  # lr / (1 + lr_decay * step)
    feature_weight: float = 0.1  # relu4_1 through the embedding against full's
    pixel_weight: float = 30.0  # output against the teacher's, in pixels
    perceptual_weight: float = 1.0  # output against the teacher's, in full's VGG features
    statistics_weight: float = 1.0  # output's feature means and stds against the teacher output's
    distill_iters: int = 0  # steps before the paper's loss comes in (with content_weight or style_weight > 0)
    content_weight: float = 0.0
    style_weight: float = 0.0
    structure_weight: float = 0.0  # with the paper's loss: the output's structure distance from the photo
    max_iter: int = 20_000
    max_minutes: float = 0.0
    checkpoint_every: int = 250
    eval_every: int = 500
    log_every: int = 10
    eval_size: int = 256
    seed: int = 0
    amp: str = "auto"
    ema_decay: float = 0.995  # a shorter memory than the decoder trainer's: the student moves far

    def __post_init__(self) -> None:
        check_variant(self.variant)
        if self.variant == "full":
            raise _setting_error("variant", "the full variant is the teacher; distill a narrower one (lite)")
        weights = ("lr", "lr_decay", "feature_weight", "pixel_weight", "perceptual_weight", "statistics_weight",
                   "content_weight", "style_weight", "structure_weight")
        check_settings(self, {"batch_size": 1, "crop": 32, "resize": 32, "eval_size": 32, "pool_pairs": 1,
                              "max_iter": 0, "distill_iters": 0, "checkpoint_every": 1, "log_every": 1,
                              "eval_every": 0, "max_minutes": 0, **dict.fromkeys(weights, 0)}, weights)
        if not self.lr > 0:
            raise _setting_error("lr", f"lr must be positive, got {self.lr}")
        if self.crop > self.resize:
            raise _setting_error("crop", f"crop {self.crop} is larger than resize {self.resize}")
        if not 0.0 <= self.full_alpha <= 1.0:
            raise _setting_error("full_alpha", f"full_alpha must be in [0, 1], got {self.full_alpha}")
        if self.start_from not in (None, "bundled") and not all(
                (Path(self.start_from) / f"{kind}.safetensors").is_file() for kind in ("encoder", "decoder")):
            raise _setting_error("start_from", f"start_from {self.start_from!r}: give 'bundled' or the folder of a "
                                 "run's encoder.safetensors and decoder.safetensors")
        if not 0.0 <= self.ema_decay < 1.0:
            raise _setting_error("ema_decay", f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DistillConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


# ---------------------------------------------------------------------------------- pruned start


def pruned_copy(teacher: nn.Sequential, student: nn.Sequential, keep_in: torch.Tensor) -> list[torch.Tensor]:
    """Fill ``student``'s convs from ``teacher``'s (same topology, fewer channels), keeping in each the
    output filters of largest L1 norm and the inputs its predecessor kept; returns the output channels
    each conv kept, in order (a conv as wide as its teacher's keeps them all)."""
    kept = []
    for t_layer, s_layer in zip(teacher, student):
        if not isinstance(t_layer, nn.Conv2d):
            continue
        weight = t_layer.weight.detach()
        if s_layer.in_channels == weight.shape[1]:
            keep_in = torch.arange(weight.shape[1])
        keep_out = torch.sort(torch.topk(weight.abs().sum(dim=(1, 2, 3)), s_layer.out_channels).indices).values
        with torch.no_grad():
            s_layer.weight.copy_(weight[keep_out][:, keep_in])
            s_layer.bias.copy_(t_layer.bias.detach()[keep_out])
        kept.append(keep_out)
        keep_in = keep_out
    return kept


@torch.no_grad()
def calibrate(teacher: nn.Sequential, student: nn.Sequential, kept: list[torch.Tensor], x_teacher: torch.Tensor,
              x_student: torch.Tensor) -> torch.Tensor:
    """Scale and shift each pruned conv so that, on a batch, every output channel has the mean and std
    of the teacher's channel it was cut from: a pruned layer sums a quarter of the inputs, and
    without this the shrinkage compounds through the layers. Returns the student's output."""
    convs = iter(kept)
    for t_layer, s_layer in zip(teacher, student):
        x_teacher, x_student = t_layer(x_teacher), s_layer(x_student)
        if not isinstance(s_layer, nn.Conv2d):
            continue
        reference = x_teacher[:, next(convs)]
        mean_t, std_t = reference.mean(dim=(0, 2, 3)), reference.std(dim=(0, 2, 3))
        mean_s, std_s = x_student.mean(dim=(0, 2, 3)), x_student.std(dim=(0, 2, 3))
        scale = std_t / std_s.clamp_min(1e-6)
        shift = mean_t - mean_s * scale
        s_layer.weight.mul_(scale[:, None, None, None])
        s_layer.bias.copy_(s_layer.bias * scale + shift)
        x_student = x_student * scale[None, :, None, None] + shift[None, :, None, None]
    return x_student


# ---------------------------------------------------------------------------------- the pool


@torch.no_grad()
def build_pool(teacher: AdaINModel, content: ImageFolder, style: ImageFolder, config: DistillConfig,
               device: torch.device, amp: torch.dtype | None = None, progress: Any = None) -> dict[str, torch.Tensor]:
    """The teacher's work, done once: crops (uint8), alphas, the teacher's outputs (float16), its
    relu4_1 of both crops (float16) and the style crops' loss statistics (float32)."""
    rng = np.random.default_rng([config.seed, 7])
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("content", "style", "alpha", "output", "content_feat",
                                                             "style_feat", "style_stats")}
    for start in range(0, config.pool_pairs, 16):
        count = min(16, config.pool_pairs - start)
        photos = torch.from_numpy(content.random_crops(rng, count, config.crop)).to(device)
        paintings = torch.from_numpy(style.random_crops(rng, count, config.crop)).to(device)
        alpha = torch.from_numpy(np.where(rng.random(count) < config.full_alpha, 1.0,
                                          rng.random(count)).astype(np.float32)).to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            c_feat = teacher.encoder(photos)
            s_feats = style_targets(teacher.encoder, paintings)
            s_feat = teacher.encoder(paintings)
            out = teacher.decode(c_feat, *s_feats[-1], alpha)
        parts["content"].append((photos * 255).round().to("cpu", torch.uint8))
        parts["style"].append((paintings * 255).round().to("cpu", torch.uint8))
        parts["alpha"].append(alpha.cpu())
        parts["output"].append(out.to("cpu", torch.float16))
        parts["content_feat"].append(c_feat.to("cpu", torch.float16))
        parts["style_feat"].append(s_feat.to("cpu", torch.float16))
        parts["style_stats"].append(torch.cat([torch.cat([m, s], 1).flatten(1) for m, s in s_feats], 1).cpu())
        if progress:
            progress(count)
    return {k: torch.cat(v) for k, v in parts.items()}


def _split_stats(flat: torch.Tensor, widths: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The style loss statistics from their flat pool form: per layer (mean, std) of (N, C, 1, 1)."""
    out, at = [], 0
    for c in widths:
        out.append((flat[:, at:at + c, None, None], flat[:, at + c:at + 2 * c, None, None]))
        at += 2 * c
    return out


# ---------------------------------------------------------------------------------- trainer


class Distiller(StepHooks):
    """Trains a variant's encoder and decoder from the full model; see the module docstring."""

    def __init__(self, config: DistillConfig, progress: bool = True):
        self.config = config
        self.out = Path(config.output_dir)
        self.progress = progress
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.amp_dtype = amp_dtype(config.amp, self.device)
        encoder, self.teacher_encoder_meta = load_encoder()
        decoder, self.teacher_decoder_meta = load_decoder(config.teacher_decoder, self.teacher_encoder_meta)
        self.teacher = AdaINModel(encoder, decoder).to(self.device).eval().requires_grad_(False)
        self.loss_widths = tuple(VARIANTS["full"].widths)
        torch.manual_seed(config.seed)
        variant = check_variant(config.variant)
        self.student = AdaINModel(build_encoder(variant.name), build_decoder(variant.name)).to(self.device)
        self.embed = nn.Conv2d(variant.feature_channels, VARIANTS["full"].feature_channels, 1).to(self.device)
        params = [*self.student.parameters(), *self.embed.parameters()]
        self.optimizer = torch.optim.Adam(params, lr=config.lr)
        self.ema = copy.deepcopy(self.student).requires_grad_(False)
        self.rng = np.random.default_rng([config.seed, 11])
        self.step = 0
        self.heldout_scores: dict[str, float] | None = None
        listed = read_heldout_list(config.holdout_list or default_heldout_list())
        self.content = ImageFolder.load(config.content_dir, config.resize, config.crop, heldout_names=listed["content"])
        self.style = ImageFolder.load(config.style_dir, config.resize, config.crop, heldout_names=listed["style"])
        self.heldout = (ImageFolder.load(config.content_dir, config.eval_size, config.eval_size, holdout=True,
                                         heldout_names=listed["content"]),
                        ImageFolder.load(config.style_dir, config.eval_size, config.eval_size, holdout=True,
                                         heldout_names=listed["style"]))
        self.pool: dict[str, torch.Tensor] | None = None

    def pruned_start(self) -> None:
        """The student as a filter-pruned copy of the teacher, calibrated on pooled photo crops (the
        decoder on reconstructing them); the embedding starts as the pruning's inverse (student channel
        i -> full's channel it was cut from). The average starts from there."""
        photos = self.pool["content"][:64].to(self.device).float() / 255.0
        enc_t, enc_s = self.teacher.encoder, self.student.encoder
        kept = pruned_copy(enc_t, enc_s, torch.arange(3))
        features = calibrate(enc_t, enc_s, kept, photos, photos)
        calibrate(self.teacher.decoder, self.student.decoder,
                  pruned_copy(self.teacher.decoder, self.student.decoder, kept[-1]), enc_t(photos), features)
        with torch.no_grad():
            self.embed.weight.zero_()
            self.embed.bias.zero_()
            self.embed.weight[kept[-1], torch.arange(len(kept[-1])), 0, 0] = 1.0
        self.ema.load_state_dict(self.student.state_dict())

    def trained_start(self) -> None:
        """The student from trained weights of its variant (``start_from``: "bundled" for the shipped
        ones, or the folder of an earlier run's encoder.safetensors and decoder.safetensors), so a run
        goes on where one ended without its checkpoint. The embedding, not shipped, is fitted to the
        pool by least squares (student relu4_1 -> full's)."""
        where = self.config.start_from
        folder = None if where == "bundled" else Path(where)
        encoder, meta = load_encoder(folder / "encoder.safetensors" if folder else None, self.config.variant)
        decoder, _ = load_decoder(folder / "decoder.safetensors" if folder else None, meta)
        self.student.encoder.load_state_dict(encoder.state_dict())
        self.student.decoder.load_state_dict(decoder.state_dict())
        photos = self.pool["content"][:64].to(self.device).float() / 255.0
        with torch.no_grad():
            x = self.student.encoder(photos).permute(0, 2, 3, 1).reshape(-1, self.embed.in_channels)
            y = self.pool["content_feat"][:64].to(self.device).float().permute(0, 2, 3, 1).reshape(len(x), -1)
            ones = torch.ones(len(x), 1, device=x.device)
            solution = torch.linalg.lstsq(torch.cat([x, ones], 1), y).solution
            self.embed.weight.copy_(solution[:-1].T.reshape_as(self.embed.weight))
            self.embed.bias.copy_(solution[-1])
        self.ema.load_state_dict(self.student.state_dict())

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "ema": self.ema.state_dict(), "embed": self.embed.state_dict(),
                "optimizer": self.optimizer.state_dict(), "step": self.step, "config": json.dumps(asdict(self.config)),
                "rng": json.dumps({"numpy": self.rng.bit_generator.state}), "torch_rng": torch.get_rng_state(),
                "teacher": json.dumps([self.teacher_encoder_meta["weights_hash"],
                                       self.teacher_decoder_meta["weights_hash"]]),
                "heldout_scores": json.dumps(self.heldout_scores)}

    def save_checkpoint(self) -> None:
        with atomic_path(self.out / CHECKPOINT) as tmp:
            torch.save(self.state(), tmp)

    def resume(self) -> bool:
        path = self.out / CHECKPOINT
        if not path.is_file():
            return False
        ckpt = load_checkpoint(path, self.device)
        teacher = [self.teacher_encoder_meta["weights_hash"], self.teacher_decoder_meta["weights_hash"]]
        if json.loads(ckpt["teacher"]) != teacher:
            raise AdainrtError(f"{path}: distilled from teacher {json.loads(ckpt['teacher'])}, not the one in use "
                               f"({teacher}); resume with the same --teacher-decoder or start another run")
        self.student.load_state_dict(ckpt["student"])
        self.ema.load_state_dict(ckpt["ema"])
        self.embed.load_state_dict(ckpt["embed"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.step = int(ckpt["step"])
        self.rng.bit_generator.state = json.loads(ckpt["rng"])["numpy"]
        torch.set_rng_state(ckpt["torch_rng"].cpu())
        self.heldout_scores = json.loads(ckpt["heldout_scores"])
        return True

    def load_pool(self) -> None:
        """The pool from ``output_dir/pool.pt``, or built by the teacher now and saved there."""
        path = self.out / POOL
        if path.is_file():
            pool = torch.load(path, weights_only=True)
            if len(pool["alpha"]) == self.config.pool_pairs:
                self.pool = pool
                return
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.config.pool_pairs, unit="pair", desc="the teacher stylizes the pool",
                       dynamic_ncols=True)
        self.pool = build_pool(self.teacher, self.content, self.style, self.config, self.device, self.amp_dtype,
                               bar.update if bar else None)
        if bar:
            bar.close()
        with atomic_path(path) as tmp:
            torch.save(self.pool, tmp)

    # ------------------------------------------------------------------ steps

    def _batch(self) -> dict[str, torch.Tensor]:
        index = torch.from_numpy(self.rng.integers(len(self.pool["alpha"]), size=self.config.batch_size))
        batch = {k: v[index].to(self.device) for k, v in self.pool.items()}
        for k in ("content", "style"):
            batch[k] = (batch[k].float() / 255.0).contiguous(memory_format=torch.channels_last)
        return {k: v.float() for k, v in batch.items()}

    def train_step(self) -> dict[str, float]:
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr / (1.0 + cfg.lr_decay * self.step)
        b = self._batch()
        adain_phase = self.step >= cfg.distill_iters and max(cfg.content_weight, cfg.style_weight,
                                                             cfg.structure_weight) > 0
        amp = self.amp_dtype
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            c_feat = self.student.encoder(b["content"])
            s_feat = self.student.encoder(b["style"])
            feature = F.mse_loss(self.embed(c_feat).float(), b["content_feat"]) + \
                F.mse_loss(self.embed(s_feat).float(), b["style_feat"])
            output = self.student.decode(c_feat, *mean_std(s_feat), b["alpha"])
            pixel = F.mse_loss(output.float(), b["output"])
            out_feats = encode_with_intermediates(self.teacher.encoder, output)
            with torch.no_grad():
                teacher_feats = encode_with_intermediates(self.teacher.encoder, b["output"])
            perceptual = sum(F.mse_loss(o.float(), t.float()) / t.float().pow(2).mean().clamp_min(1e-6)
                             for o, t in zip(out_feats, teacher_feats))
            statistics = style_loss(out_feats, [mean_std(t) for t in teacher_feats])
            loss = cfg.feature_weight * feature + cfg.pixel_weight * pixel + cfg.perceptual_weight * perceptual \
                + cfg.statistics_weight * statistics
            loss_c = loss_s = loss_st = torch.zeros(())
            if adain_phase:
                stats = _split_stats(b["style_stats"], self.loss_widths)
                target = blend(b["content_feat"], adain_from_stats(b["content_feat"], *stats[-1]),
                               b["alpha"].reshape(-1, 1, 1, 1))
                loss_c, loss_s = content_loss(out_feats[-1], target), style_loss(out_feats, stats)
                if cfg.structure_weight:
                    with torch.no_grad():
                        photo_feats = encode_with_intermediates(self.teacher.encoder, b["content"])
                    loss_st = structure_distance(out_feats, photo_feats)
                loss = loss + cfg.content_weight * loss_c + cfg.style_weight * loss_s + cfg.structure_weight * loss_st
        if not torch.isfinite(loss):
            raise AdainrtError(f"distillation diverged at step {self.step + 1} (loss {loss.item():.4g}); "
                               "lower --lr and --resume").hinted("lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        decay = min(cfg.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.student.parameters()), 1.0 - decay)
        return {"loss": loss.item(), "feature": feature.item(), "pixel": pixel.item(),
                "perceptual": float(perceptual.detach()), "statistics": statistics.item(),
                "content_loss": loss_c.item(), "style_loss": loss_s.item(), "structure": loss_st.item(),
                "lr": self.optimizer.param_groups[0]["lr"]}

    def evaluate(self) -> tuple[Scores, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The student average's scores on the held-out pairs (photo i, style i mod styles), measured
        by full's VGG like `adainrt evaluate`."""
        size = self.config.eval_size
        contents = torch.from_numpy(self.heldout[0].center_crops(size)).to(self.device)
        styles = torch.from_numpy(self.heldout[1].center_crops(size)).to(self.device)
        contents, styles = pair_up(contents, styles)
        model = self.ema.eval()

        def stylize(content: torch.Tensor, style: torch.Tensor, alpha: float) -> torch.Tensor:
            return model(content, style, torch.tensor([alpha], device=content.device))

        scores, outputs = score_pairs(self.teacher.encoder, stylize, contents, styles)
        return scores, contents, styles, outputs

    # ------------------------------------------------------------------ loop

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / LOG, "a") as f:
            f.write(json.dumps({"step": self.step, "time": round(time.time(), 1), **record}) + "\n")

    def _evaluate_and_sample(self) -> None:
        scores, contents, styles, outputs = self.evaluate()
        self.heldout_scores = scores.as_dict() | {"step": self.step}
        self._log({"event": "heldout", **scores.as_dict()})
        self._write_sample(contents, styles, outputs)

    def run(self) -> tuple[Path, Path]:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + cfg.max_minutes * 60 if cfg.max_minutes else None
        self.load_pool()
        if self.step == 0:
            (self.trained_start if cfg.start_from else self.pruned_start)()
        self._log({"event": "start", "pool_pairs": len(self.pool["alpha"]), "amp": str(self.amp_dtype)})
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_iter, initial=self.step, unit="it", dynamic_ncols=True)
        try:
            while self.step < cfg.max_iter and (deadline is None or time.monotonic() < deadline):
                stats = self.train_step()
                if self.step % cfg.log_every == 0:
                    self._log(stats)
                    if bar:
                        bar.set_postfix(pix=f"{stats['pixel']:.4f}", perc=f"{stats['perceptual']:.3f}",
                                        feat=f"{stats['feature']:.3f}")
                self._after_step(bar)
        except KeyboardInterrupt:
            self.save_checkpoint()
            self._log({"event": "interrupted"})
            raise
        finally:
            if bar:
                bar.close()
        self.save_checkpoint()
        self._log({"event": "stop"})
        return self.export()

    def close(self) -> None:
        """Nothing to release (one process); the decoder trainer's counterpart leaves torchrun's group."""

    def export(self, encoder_path: Path | None = None, decoder_path: Path | None = None) -> tuple[Path, Path]:
        """The averaged student as our two safetensors files (encoder, decoder), recording the variant."""
        teacher = (self.teacher_encoder_meta["weights_hash"], self.teacher_decoder_meta["weights_hash"])
        return save_student(self.ema, self.config.variant, teacher, self.step, asdict(self.config),
                            self.heldout_scores, encoder_path or self.out / "encoder.safetensors",
                            decoder_path or self.out / "decoder.safetensors")


def save_student(student: AdaINModel, variant: str, teacher: tuple[str, str], step: int, config: dict[str, Any],
                 heldout: dict[str, Any], encoder_path: Path, decoder_path: Path,
                 overwrite: bool = True) -> tuple[Path, Path]:
    """A student's encoder and decoder files; the decoder records the encoder's hash (a lite decoder is
    refused with any other encoder), the run's settings and its last held-out scores."""
    if not overwrite:  # both or neither: a refusal must not leave half a pair behind
        refuse_existing((encoder_path, decoder_path))
    source = f"adainrt train --variant {variant}: distilled from the full model (encoder {teacher[0]}, " \
             f"decoder {teacher[1]})"
    encoder_meta = save_weights(encoder_path, student.encoder.state_dict(),
                                {"kind": "encoder", "variant": variant, "source": source, "steps": step})
    save_weights(decoder_path, student.decoder.state_dict(),
                 {"kind": "decoder", "variant": variant, "encoder_hash": encoder_meta["weights_hash"],
                  "source": source, "steps": step, "train_config": config, "heldout": heldout})
    return encoder_path, decoder_path


def snapshot_student(checkpoint: dict[str, Any], decoder_path: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """The encoder and decoder a distillation run would export now (its weights average), from its
    checkpoint; the encoder is written beside the decoder as ``NAME.encoder.safetensors``."""
    config = json.loads(checkpoint["config"])
    student = AdaINModel(build_encoder(config["variant"]), build_decoder(config["variant"]))
    student.load_state_dict(checkpoint["ema"])
    teacher = tuple(json.loads(checkpoint["teacher"]))
    encoder_path = decoder_path.with_name(f"{decoder_path.stem}.encoder.safetensors")
    return save_student(student, config["variant"], teacher, int(checkpoint["step"]), config,
                        json.loads(checkpoint["heldout_scores"]), encoder_path, decoder_path, overwrite)


def distill_config(output_dir: str | Path, resume: bool, options: dict[str, Any],
                   given: list[str]) -> tuple[DistillConfig, dict[str, tuple[Any, Any]]]:
    """The settings of a distillation run from `adainrt train --variant NAME`: the options given (the
    others keep this recipe's defaults, not the decoder trainer's), on top of the checkpoint's when
    resuming; and what a resume changed. Options of the decoder trainer alone are refused, named."""
    known = {f.name for f in fields(DistillConfig)}
    foreign = [k for k in given if k not in known]
    if foreign:
        raise AdainrtError(f"{', '.join('--' + k.replace('_', '-') for k in foreign)}: options of the full "
                           f"decoder's training; a {options.get('variant')} distillation does not take them")
    chosen = {k: options[k] for k in given} | {"output_dir": str(output_dir)}
    saved = saved_run_config(output_dir, resume)
    if saved is None:
        return DistillConfig(**{k: options[k] for k in ("content_dir", "style_dir", "variant")} | chosen), {}
    fixed = [k for k in ("variant", "teacher_decoder", "start_from", "holdout_list", "seed", "pool_pairs", "crop",
                         "resize") if k in chosen and chosen[k] != saved.get(k)]
    if fixed:
        raise AdainrtError(f"a resumed distillation keeps {', '.join('--' + k.replace('_', '-') for k in fixed)} "
                           "(they decide its teacher, pool and held-out images); start another run to change them")
    changes = {k: (saved.get(k), v) for k, v in chosen.items()
               if k not in ("output_dir", "content_dir", "style_dir") and saved.get(k) != v}
    return DistillConfig.from_dict({**saved, **chosen, "content_dir": saved["content_dir"],
                                    "style_dir": saved["style_dir"]}), changes
