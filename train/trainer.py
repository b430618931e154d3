"""Decoder training: the paper's recipe with the long-run behaviour a user expects.

Progress bar, JSON-lines log, sample grids, atomic checkpoints (every N iterations and on
Ctrl-C), exact resume (step, optimizer, RNG), a time budget, held-out evaluation, and the
final decoder in our safetensors format. CUDA with mixed precision when present, several GPUs
under ``torchrun`` (DistributedDataParallel), CPU otherwise.

An optional first phase (``invert_iters``) trains the decoder to invert relu4_1 of photos
(target f(c), pixel loss against the photo) before AdaIN and the style loss come in: on a CPU budget the
paper's recipe learns colours long before structure, and inversion learns structure fast.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from adainrt.errors import AdainrtError
from adainrt.fileio import atomic_path
from adainrt.images import from_tensor, save_image
from adainrt.network import adain_from_stats, build_decoder, encode_with_intermediates
from adainrt.train.data import ImageFolder, StyleAugment, read_heldout_list
from adainrt.train.evaluate import Scores, pair_up, score_pairs
from adainrt.train.feature_pool import FeaturePool
from adainrt.train.losses import style_targets, stylization_losses
from adainrt.weights import load_encoder, save_weights

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


class TrainingDiverged(AdainrtError):
    """The loss became NaN or infinite: the run stops rather than train on and export garbage."""


def _setting_error(name: str, message: str) -> AdainrtError:
    """A bad training setting, named as the library names it; the CLI adds its flag."""
    return AdainrtError(message).hinted(f"check --{name.replace('_', '-')}")


def check_settings(config: Any, at_least: dict[str, float], finite: tuple[str, ...]) -> None:
    """Settings below their least value, or not finite numbers, refused by name (the CLI's flag is the
    same name with dashes)."""
    for name, low in at_least.items():
        if getattr(config, name) < low:
            raise _setting_error(name, f"{name} must be at least {low}, got {getattr(config, name)}")
    for name in finite:
        if not math.isfinite(getattr(config, name)):
            raise _setting_error(name, f"{name} must be a finite number, got {getattr(config, name)}")


@dataclass
class TrainConfig:
    content_dir: str
    style_dir: str
    output_dir: str = "runs/decoder"
    encoder: str | None = None  # None: the embedded VGG-19
    init_decoder: str | None = None  # start from these weights (our safetensors)
    resize: int = 512  # smaller side before cropping
    crop: int = 256
    batch_size: int = 8
    lr: float = 1e-4
    lr_decay: float = 5e-5  # lr / (1 + lr_decay * step)
    content_weight: float = 1.0
    style_weight: float = 10.0
    # >0: also the structure distance of the output from the photo (train/losses.structure_distance,
    # the measure `adainrt evaluate` reports), so strong textures cannot wash the photo's layout out.
    structure_weight: float = 0.0
    invert_iters: int = 0
    pool_crops_per_image: int = 0  # >0: draw crops from a fixed pool encoded once (see feature_pool)
    pixel_weight: float = 1.0  # the inversion phase's loss: pixel MSE against the photo
    max_iter: int = 160_000
    max_minutes: float = 0.0  # 0: no time limit
    checkpoint_every: int = 500
    eval_every: int = 500  # held-out losses and a sample grid
    log_every: int = 10
    holdout_every: int = 25  # every k-th image of each folder is held out for evaluation
    holdout_list: str | None = None  # a file of held-out names (train/heldout.txt); replaces holdout_every
    style_sampling: str = "uniform"  # uniform | source: styles weighted by source (ImageFolder.source_weights)
    eval_size: int = 256
    seed: int = 0
    amp: str = "auto"  # auto | fp32 | bf16 | fp16: mixed precision of the forward passes (see amp_dtype)
    ema_decay: float = 0.999  # >0: evaluate and export a moving average of the weights (see _update_ema); 0: off
    recolor_styles: float = 0.0  # fraction of style crops mirrored and hue-turned at random (random_crops)
    tone_styles: float = 0.0  # fraction of style crops given random levels, lighter or darker (random_levels)
    line_styles: float = 0.0  # fraction of style crops replaced by a line drawing of their edges (line_drawing)
    sketch_styles: float = 0.0  # fraction of the others replaced by a sparse sketch of their edges (sketch_drawing)

    def __post_init__(self) -> None:
        """Refuse settings that could only fail later (or silently train nothing), naming the setting
        (the field here; the CLI's flag is the same name with dashes)."""
        at_least = {"batch_size": 1, "crop": 32, "resize": 32, "eval_size": 32, "max_iter": 0, "invert_iters": 0,
                    "pool_crops_per_image": 0, "holdout_every": 0, "checkpoint_every": 1, "log_every": 1,
                    "eval_every": 0, "lr_decay": 0, "content_weight": 0, "style_weight": 0, "structure_weight": 0,
                    "max_minutes": 0}
        check_settings(self, at_least, ("lr", "lr_decay", "content_weight", "style_weight", "structure_weight",
                                        "pixel_weight"))
        if not self.lr > 0:
            raise _setting_error("lr", f"lr must be positive, got {self.lr}")
        if self.crop > self.resize:
            raise _setting_error("crop", f"crop {self.crop} is larger than resize {self.resize}: crops are cut "
                                 "from images whose smaller side is resized to resize (the paper: 512, crop 256)")
        if not 0.0 <= self.ema_decay < 1.0:
            raise _setting_error("ema_decay", f"ema_decay must be in [0, 1), got {self.ema_decay}")
        self.recolor_styles = float(self.recolor_styles)  # runs before v0.4 recorded a flag: True is 1.0
        for name in ("recolor_styles", "tone_styles", "line_styles", "sketch_styles"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise _setting_error(name, f"{name} must be a fraction in [0, 1], got {getattr(self, name)}")
        if self.style_sampling not in ("uniform", "source"):
            raise _setting_error("style_sampling", f"style_sampling must be 'uniform' or 'source', got "
                                 f"{self.style_sampling!r}")
        if self.style_sampling == "source" and self.pool_crops_per_image:
            raise _setting_error("style_sampling", "style_sampling 'source' draws fresh crops; the crop pool "
                                 "draws its styles uniformly: pass pool_crops_per_image 0 with it")
        if self.holdout_every == 1:
            raise _setting_error("holdout_every", "holdout_every 1 would hold out every image; use 0 to hold out none")

    @property
    def style_augment(self) -> StyleAugment:
        """The style crops' augmentations as the data module applies them."""
        return StyleAugment(self.recolor_styles, self.tone_styles, self.line_styles, self.sketch_styles)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


#: Settings a resumed run keeps whatever is given: they decide which images are held out (changing
#: them would train on the evaluation images) and where the run's weights came from.
FIXED_ON_RESUME = ("content_dir", "style_dir", "encoder", "init_decoder", "holdout_every", "holdout_list", "seed")
_PATHS = ("content_dir", "style_dir", "encoder", "init_decoder", "holdout_list")


def resume_config(saved: dict[str, Any], given: dict[str, Any]) -> tuple[TrainConfig, dict[str, tuple[Any, Any]]]:
    """The settings of a resumed run: the checkpoint's, with the ones ``given`` now on top.

    Lets a run go on with other crops, batch, pool, weights or precision (how decoders are refined
    in stages), and says what changed: ``{name: (before, now)}``. Refuses a change of the
    FIXED_ON_RESUME settings, naming them; the same folder spelt another way is no change.
    """
    def same(name: str, a: Any, b: Any) -> bool:
        if name in _PATHS and a is not None and b is not None:
            return os.path.realpath(a) == os.path.realpath(b)
        return a == b

    defaults = {f.name: f.default for f in fields(TrainConfig)}  # settings older checkpoints do not record
    saved = asdict(TrainConfig.from_dict({**defaults, **saved}))  # as the config reads them (a flag True: 1.0)
    changes = {k: (saved.get(k), v) for k, v in given.items() if k != "output_dir" and not same(k, saved.get(k), v)}
    fixed = [k for k in changes if k in FIXED_ON_RESUME]
    if fixed:
        told = ", ".join(f"--{k.removesuffix('_dir').replace('_', '-')} {changes[k][0]!r} -> {changes[k][1]!r}"
                         for k in fixed)
        raise AdainrtError(f"a resumed run keeps {told}: these decide the held-out images and the start; "
                           "start a new run (another --output, with --init-decoder) to change them")
    return TrainConfig.from_dict({**saved, **given}), changes


def run_config(output_dir: str | os.PathLike, resume: bool, options: dict[str, Any],
               given: Collection[str] = ()) -> tuple[TrainConfig, dict[str, tuple[Any, Any]]]:
    """The settings of a new run (``options``), or of a resumed one: its checkpoint's, with the options
    named in ``given`` (and the limits) on top, and what changed. Refuses a new run over an old one."""
    saved = saved_run_config(output_dir, resume)
    if saved is None:
        if (Path(output_dir) / "decoder.safetensors").exists():  # the log of an earlier attempt is appended to
            raise AdainrtError(f"{output_dir} holds decoder.safetensors of an earlier run, which a new run would "
                               "replace; choose another output folder")
        return TrainConfig(output_dir=str(output_dir), **options), {}
    if saved.get("variant", "full") != "full":
        raise AdainrtError(f"{output_dir} is a run distilling the {saved['variant']} network: resume it with "
                           f"--variant {saved['variant']}")
    # the run's own step limit unless one is given; a time limit is this invocation's (0: none)
    chosen = {k: options[k] for k in given} | ({"max_minutes": options["max_minutes"]} if "max_minutes" in options
                                               else {})
    return resume_config(saved, {**chosen, "output_dir": str(output_dir)})


def saved_run_config(output_dir: str | os.PathLike, resume: bool) -> dict[str, Any] | None:
    """The settings a run folder's checkpoint records, to resume (None: a new run). Refuses a new run over
    an old one's checkpoint, and a resume with no checkpoint to resume."""
    checkpoint = Path(output_dir) / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise AdainrtError(f"{checkpoint} exists: resume that run, or choose another output folder").hinted(
            "pass --resume to continue it, or another --output")
    if not resume:
        return None
    if not checkpoint.exists():
        raise AdainrtError(f"nothing to resume: no checkpoint at {checkpoint}")
    return json.loads(load_checkpoint(checkpoint)["config"])


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # torch's advice paragraph left out
        raise AdainrtError(f"{path}: unreadable checkpoint ({reason}); move it away to start afresh") from exc


def decoder_meta(encoder_hash: str, step: int, config: dict[str, Any], heldout: dict[str, Any]) -> dict[str, Any]:
    """What a decoder file written by a run records (read by `adainrt info` and ship_decoder.py)."""
    return {"kind": "decoder", "encoder_hash": encoder_hash, "source": "adainrt train", "steps": step,
            "train_config": config, "heldout": heldout}


def read_run_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The last checkpoint of a training run folder (a decoder run's or a distillation's)."""
    checkpoint = Path(run_dir) / CHECKPOINT
    if not checkpoint.is_file():
        raise AdainrtError(f"{run_dir}: no {CHECKPOINT} (not a training run folder, or no checkpoint yet)")
    return load_checkpoint(checkpoint)


def snapshot_decoder(ckpt: dict[str, Any], path: Path, overwrite: bool = False) -> Path:
    """Write the decoder a run would export now (its weights average, when it keeps one) from its
    checkpoint ``ckpt`` (`read_run_checkpoint`), without resuming it. Safe while the run goes on:
    checkpoints are replaced atomically, and this only reads one."""
    meta = decoder_meta(ckpt["encoder_hash"], int(ckpt["step"]), json.loads(ckpt["config"]),
                        json.loads(ckpt["heldout_scores"]))
    save_weights(path, ckpt.get("ema") or ckpt["decoder"], meta, overwrite=overwrite)
    return path


def _distributed() -> tuple[int, int]:
    """(rank, world size); initializes the process group under torchrun (NCCL on GPUs, gloo on CPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return rank, world


def amp_dtype(requested: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, None for plain FP32.

    auto: FP16 on CUDA (tensor cores, with loss scaling); BF16 on a CPU with AMX or AVX512-BF16,
    where oneDNN runs the convolutions about 2x faster than FP32 (on our 2-core Xeon, batch 4 at
    128x128: 0.83 s vs 1.79 s per step, `python -m adainrt.benchmarks.train_step`); FP32
    elsewhere. The AdaIN statistics and the losses stay in FP32 either way (autocast and
    mean_std upcast them).
    """
    choices = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if requested != "auto":
        if requested not in choices:
            raise AdainrtError(f"amp must be auto, fp32, bf16 or fp16, not {requested!r}")
        if requested == "fp16" and device.type != "cuda":
            raise AdainrtError("amp fp16 needs CUDA; on a CPU use bf16 or fp32")
        return choices[requested]
    if device.type == "cuda":
        return torch.float16
    if torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported():
        return torch.bfloat16
    return None


class StepHooks:
    """What every trainer here does around its steps (the decoder trainer and the variants' distiller):
    after each, the progress bar, held-out evaluation every ``eval_every`` steps and a checkpoint
    every ``checkpoint_every``; sample grids in one form. The class supplies ``config``, ``out``,
    ``step``, ``save_checkpoint`` and ``_evaluate_and_sample``."""

    config: Any
    out: Path
    step: int

    def _after_step(self, bar: Any) -> None:
        if bar:
            bar.update(1)
        if self.config.eval_every and self.step % self.config.eval_every == 0:
            self._evaluate_and_sample()
        if self.step % self.config.checkpoint_every == 0:
            self.save_checkpoint()

    def _write_sample(self, contents: torch.Tensor, styles: torch.Tensor, outputs: torch.Tensor) -> None:
        rows = [torch.cat([c, s, o], dim=2) for c, s, o in zip(contents[:4], styles[:4], outputs[:4])]
        grid = torch.cat(rows, dim=1).cpu().numpy()
        save_image(from_tensor(grid), self.out / "samples" / f"step_{self.step:07d}.png", overwrite=True)


class Trainer(StepHooks):
    def __init__(self, config: TrainConfig, progress: bool = True):
        self.config = config
        self.out = Path(config.output_dir)
        self.rank, self.world = _distributed()
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
                                   if torch.cuda.is_available() else "cpu")
        self.amp_dtype = amp_dtype(config.amp, self.device)
        self.progress = progress and self.rank == 0
        encoder, self.encoder_meta = load_encoder(config.encoder)
        # channels-last is ~12% faster for these convs on CPU (oneDNN) and on tensor cores.
        self.encoder = encoder.to(self.device, memory_format=torch.channels_last)
        torch.manual_seed(config.seed)
        self.decoder = build_decoder().to(self.device, memory_format=torch.channels_last)
        if config.init_decoder:
            from adainrt.weights import load_decoder

            init, _ = load_decoder(config.init_decoder, self.encoder_meta)
            self.decoder.load_state_dict(init.state_dict())
        self.model: nn.Module = self.decoder
        if self.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.decoder)
        self.optimizer = torch.optim.Adam(self.decoder.parameters(), lr=config.lr)
        # The decoder that is evaluated and exported: the trained one, or its moving average.
        self.ema: nn.Module | None = copy.deepcopy(self.decoder).requires_grad_(False) if config.ema_decay else None
        # FP16 needs loss scaling; BF16 has FP32's exponent range and does not.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.rng = np.random.default_rng([config.seed, self.rank])
        self.step = 0
        self.heldout_scores: dict[str, float] | None = None
        min_side = config.crop
        listed = read_heldout_list(config.holdout_list) if config.holdout_list else {}
        every = 0 if listed else config.holdout_every

        def folder(kind: str, size: int, min_side: int, holdout: bool = False) -> ImageFolder:
            return ImageFolder.load(getattr(config, f"{kind}_dir"), size, min_side, every, holdout, listed.get(kind))

        self.content = folder("content", config.resize, min_side)
        self.style = folder("style", config.resize, min_side)
        self.style_weights = self.style.source_weights() if config.style_sampling == "source" else None
        self.pool: FeaturePool | None = None  # built by run() when pool_crops_per_image > 0
        self.heldout = None
        if every or listed:
            self.heldout = (folder("content", config.eval_size, config.eval_size, True),
                            folder("style", config.eval_size, config.eval_size, True))

    # ------------------------------------------------------------------ state

    def _rng_states(self, gather: bool) -> list[str]:
        """Every rank's random state (each rank draws its own batches), gathered onto all ranks.

        ``gather=False`` (Ctrl-C, when the other ranks may be anywhere) keeps this rank's alone;
        a resume then reseeds the ranks it has no state for.
        """
        mine = json.dumps({"numpy": self.rng.bit_generator.state, "torch": torch.get_rng_state().tolist()})
        if self.world == 1 or not gather:
            return [mine]
        states: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(states, mine)
        return states

    def state(self, gather: bool = True) -> dict[str, Any]:
        return {
            "decoder": self.decoder.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "step": self.step,
            "rng_states": json.dumps(self._rng_states(gather)),
            "config": json.dumps(asdict(self.config)),
            "encoder_hash": self.encoder_meta["weights_hash"],
            "heldout_scores": json.dumps(self.heldout_scores),
        }

    def save_checkpoint(self, gather: bool = True) -> Path:
        """Written by rank 0, atomically; every rank must call it (the random states are gathered)."""
        path = self.out / CHECKPOINT
        state = self.state(gather)
        if self.rank == 0:
            with atomic_path(path) as tmp:
                torch.save(state, tmp)
        return path

    def resume(self) -> bool:
        """Continue from ``output_dir/checkpoint.pt`` if present; True if resumed."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            return False
        ckpt = load_checkpoint(path, self.device)
        if ckpt["encoder_hash"] != self.encoder_meta["weights_hash"]:
            raise AdainrtError(f"{path}: checkpoint was trained with encoder {ckpt['encoder_hash']}, "
                               f"not the encoder in use ({self.encoder_meta['weights_hash']})")
        self.decoder.load_state_dict(ckpt["decoder"])
        if self.ema is not None:  # a run that had no average starts it from its current weights
            self.ema.load_state_dict(ckpt.get("ema") or ckpt["decoder"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step = int(ckpt["step"])
        self._restore_rng(ckpt)
        self.heldout_scores = json.loads(ckpt["heldout_scores"])
        return True

    def _restore_rng(self, ckpt: dict[str, Any]) -> None:
        """This rank's saved random state; a fresh stream (seed, rank, step) if the checkpoint has none
        for it (other world size, or saved at Ctrl-C), so that ranks never draw the same batches."""
        if "rng_states" not in ckpt:  # checkpoints written before rng_states: one process, two fields
            self.rng.bit_generator.state = json.loads(ckpt["rng_numpy"])
            torch.set_rng_state(ckpt["rng_torch"].cpu())
            return
        states = json.loads(ckpt["rng_states"])
        if self.world > 1 and len(states) != self.world:
            self.rng = np.random.default_rng([self.config.seed, self.rank, self.step])
            return
        state = json.loads(states[self.rank])
        self.rng.bit_generator.state = state["numpy"]
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))

    # ------------------------------------------------------------------ steps

    def _batch(self, folder: ImageFolder) -> torch.Tensor:
        is_style = folder is self.style
        crops = folder.random_crops(self.rng, self.config.batch_size, self.config.crop,
                                    *((self.style_weights, self.config.style_augment) if is_style else ()))
        return torch.from_numpy(crops).to(self.device, memory_format=torch.channels_last)

    def _inputs(self, inverting: bool) -> tuple[torch.Tensor, list[torch.Tensor], list | None]:
        """(content pixels, the content's features (relu4_1 last; all four loss layers when the
        structure term needs them), style statistics or None when inverting)."""
        size = self.config.batch_size
        with torch.no_grad():
            if self.pool is not None:
                content, features = self.pool.content_batch(self.rng.integers(len(self.pool), size=size), self.device)
                feats = [features]
                if self.config.structure_weight and not inverting:
                    feats = encode_with_intermediates(self.encoder, content)
                styles = self.rng.integers(self.pool.style_count, size=size)
                return content, feats, None if inverting else self.pool.style_batch(styles, self.device)
            content = self._batch(self.content)
            feats = (encode_with_intermediates(self.encoder, content) if self.config.structure_weight
                     else [self.encoder(content)])
            return content, feats, None if inverting else style_targets(self.encoder, self._batch(self.style))

    def train_step(self) -> dict[str, float]:
        cfg = self.config
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr / (1.0 + cfg.lr_decay * self.step)
        inverting = self.step < cfg.invert_iters
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            content, content_feats, targets = self._inputs(inverting)
            target = content_feats[-1]
            if targets is not None:
                target = adain_from_stats(target, *targets[-1])
            output = self.model(target)
            if inverting:  # pixel loss only: no encoder pass on the output, half the cost
                loss_c = loss_s = loss_st = torch.zeros(())
                loss = cfg.pixel_weight * F.mse_loss(output.float(), content)
            else:
                loss_c, loss_s, loss_st = stylization_losses(
                    self.encoder, output, target, targets, content_feats if cfg.structure_weight else None)
                loss = cfg.content_weight * loss_c + cfg.style_weight * loss_s + cfg.structure_weight * loss_st
        self._check_finite(loss, loss_c, loss_s)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self._update_ema()
        stats = {"loss": loss.item(), "content_loss": loss_c.item(), "style_loss": loss_s.item(),
                 "lr": self.optimizer.param_groups[0]["lr"], "phase": "invert" if inverting else "adain"}
        return stats | ({"structure": loss_st.item()} if cfg.structure_weight else {})

    def _check_finite(self, loss: torch.Tensor, loss_c: torch.Tensor, loss_s: torch.Tensor) -> None:
        """Stop at the first loss that is NaN or infinite (on any rank), before it reaches the weights:
        a diverged run would otherwise train on and export a decoder that paints black."""
        bad = torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0], device=self.device)
        if self.world > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if bad.item():
            raise TrainingDiverged(
                f"training diverged at step {self.step + 1}: loss {loss.item():.4g} (content {loss_c.item():.4g}, "
                f"style {loss_s.item():.4g}); the weights of step {self.step} are kept in memory only, and "
                f"{self.out / CHECKPOINT} holds the last checkpoint (if any)").hinted(
                f"lower --lr (now {self.config.lr:g}) or the loss weights, then --resume or start again")

    def _update_ema(self) -> None:
        """ema <- d * ema + (1 - d) * weights, with d = min(decay, (1 + step) / (10 + step)).

        The average smooths the step-to-step noise of the weights. Continuing v0.2 at lr ~7e-5,
        the 12-pair held-out style loss of checks 200 steps apart ranged from 2.9 to 3.7; the
        mean of the 15 checkpoints of steps 11,300-12,700 scored a 36-pair held-out style ratio
        of 0.210 (content loss 4.82) against 0.241 (5.02) for the last of them alone
        (`adainrt evaluate ... --all-pairs`). The warm-up keeps a fresh run's average from
        dwelling on its random initialization.
        """
        if self.ema is None:
            return
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            torch._foreach_lerp_(list(self.ema.parameters()), list(self.decoder.parameters()), 1.0 - decay)

    @property
    def result(self) -> nn.Module:
        """The decoder to evaluate and export: the moving average when there is one."""
        return self.ema if self.ema is not None else self.decoder

    def build_pool(self) -> None:
        """Encode the fixed crop pool (once per process; a resumed run rebuilds the same pool)."""
        cfg = self.config
        if not cfg.pool_crops_per_image or self.pool is not None:
            return
        total = FeaturePool.size(self.content, self.style, cfg.pool_crops_per_image)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="crop", desc="encoding the crop pool", dynamic_ncols=True)
        self.pool = FeaturePool.build(self.encoder, self.content, self.style, cfg.pool_crops_per_image, cfg.crop,
                                      cfg.seed, self.device, progress=bar.update if bar else None,
                                      style_augment=cfg.style_augment)
        if bar:
            bar.close()
        self.out.mkdir(parents=True, exist_ok=True)  # also called outside run() (benchmarks)
        self._log({"event": "pool", "content_crops": len(self.pool), "style_crops": self.pool.style_count})

    def evaluate(self) -> tuple[Scores, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        if self.heldout is None:
            return None
        contents = torch.from_numpy(self.heldout[0].center_crops(self.config.eval_size)).to(self.device)
        styles = torch.from_numpy(self.heldout[1].center_crops(self.config.eval_size)).to(self.device)
        contents, styles = pair_up(contents, styles)
        result = self.result.eval()
        scores, outputs = score_pairs(self.encoder, result, contents, styles)
        result.train()
        return scores, contents, styles, outputs

    def _log(self, record: dict[str, Any]) -> None:
        if self.rank == 0:
            with open(self.out / LOG, "a") as f:
                f.write(json.dumps({"step": self.step, "time": round(time.time(), 1), **record}) + "\n")

    def export_decoder(self, path: Path | None = None) -> Path:
        path = path or self.out / "decoder.safetensors"
        if not all(torch.isfinite(t).all() for t in self.result.state_dict().values()):
            raise TrainingDiverged(f"the decoder's weights hold NaN or infinite values at step {self.step}; "
                                   f"not written to {path}")
        meta = decoder_meta(self.encoder_meta["weights_hash"], self.step, asdict(self.config), self.heldout_scores)
        if self.rank == 0:
            save_weights(path, self.result.state_dict(), meta)
        return path

    # ------------------------------------------------------------------ loop

    def run(self) -> Path:
        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + cfg.max_minutes * 60 if cfg.max_minutes else None
        self.build_pool()
        self.decoder.train()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.max_iter, initial=self.step, unit="it", dynamic_ncols=True)
        skipped = len(self.content.skipped) + len(self.style.skipped)
        self._log({"event": "start", "content_images": len(self.content.images),
                   "style_images": len(self.style.images), "skipped_unreadable": skipped,
                   "device": str(self.device), "world_size": self.world,
                   "amp": str(self.amp_dtype or torch.float32).removeprefix("torch.")})
        tick, images = time.monotonic(), 0
        started = None  # (step, numpy state, torch state) at the start of the step under way
        try:
            while not self._should_stop(deadline):
                started = (self.step, self.rng.bit_generator.state, torch.get_rng_state())
                stats = self.train_step()
                images += cfg.batch_size * self.world
                if self.step % cfg.log_every == 0:
                    rate = images / max(time.monotonic() - tick, 1e-9)
                    tick, images = time.monotonic(), 0
                    self._log({**stats, "images_per_s": round(rate, 2)})
                    if bar:
                        bar.set_postfix(c=f"{stats['content_loss']:.3f}", s=f"{stats['style_loss']:.3f}",
                                        img_s=f"{rate:.1f}", phase=stats["phase"])
                self._after_step(bar)
        except KeyboardInterrupt:
            if started is not None and self.step == started[0]:  # cut off mid-step: its draws are undone,
                self.rng.bit_generator.state = started[1]        # so --resume repeats the step exactly
                torch.set_rng_state(started[2])
            self.save_checkpoint(gather=False)
            self._log({"event": "interrupted"})
            if bar:
                bar.close()
            raise
        if bar:
            bar.close()
        self.save_checkpoint()
        self._log({"event": "stop"})
        return self.export_decoder()

    def close(self) -> None:
        """Leave the process group (torchrun): one left alive until interpreter exit can abort the
        rank in gloo's threads ("terminate called without an active exception")."""
        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.barrier()  # no rank leaves while another still talks to it
            torch.distributed.destroy_process_group()

    def _should_stop(self, deadline: float | None) -> bool:
        """max_iter reached or time is up; under torchrun all ranks agree (any rank out of time stops
        them all), since a rank that stops alone leaves the others waiting in the gradient all-reduce."""
        stop = self.step >= self.config.max_iter or (deadline is not None and time.monotonic() >= deadline)
        if self.world > 1:
            flag = torch.tensor([float(stop)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop

    def _evaluate_and_sample(self) -> None:
        if self.rank != 0:  # held-out scores and samples are rank 0's: the decoders are identical
            return
        result = self.evaluate()
        if result is None:
            return
        scores, contents, styles, outputs = result
        self._log({"event": "heldout", **scores.as_dict()})
        self._write_sample(contents, styles, outputs)
        if self.step >= self.config.invert_iters:
            self.heldout_scores = scores.as_dict() | {"step": self.step}
