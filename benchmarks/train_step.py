"""Seconds per training step: FP32 vs mixed precision, fresh crops vs the crop pool.

    python -m adainrt.benchmarks.train_step [--crop 128] [--batch-size 4] [--steps 10]

Runs the real :class:`Trainer` (the paper's loss, AdaIN phase) on generated images, so the
figures are what ``adainrt train`` gets on this machine. Speed depends on the pixels, not
their content.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _write_images(folder: Path, count: int, size: int, seed: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((size, size), Image.Resampling.BICUBIC).save(folder / f"{i}.png")


def time_steps(root: Path, amp: str, pool: int, crop: int, batch: int, steps: int) -> tuple[float, float]:
    """(seconds per step after one warm-up step, seconds to build the pool)."""
    from adainrt.train import TrainConfig, Trainer

    config = TrainConfig(content_dir=str(root / "content"), style_dir=str(root / "style"),
                         output_dir=str(root / "run"), resize=2 * crop, crop=crop, batch_size=batch,
                         amp=amp, pool_crops_per_image=pool, holdout_every=0, eval_every=0)
    trainer = Trainer(config, progress=False)
    start = time.perf_counter()
    trainer.build_pool()
    pool_seconds = time.perf_counter() - start
    trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return (time.perf_counter() - start) / steps, pool_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pool", type=int, default=4, help="crops per image for the pooled runs")
    args = parser.parse_args()
    import torch

    from adainrt.train.trainer import amp_dtype

    bf16_here = amp_dtype("auto", torch.device("cpu")) is not None
    variants = [("fp32", 0), ("fp32", args.pool)] + ([("bf16", 0), ("bf16", args.pool)] if bf16_here else [])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_images(root / "content", 16, 2 * args.crop, seed=0)
        _write_images(root / "style", 8, 2 * args.crop, seed=1)
        print(f"crop {args.crop}, batch {args.batch_size}, {torch.get_num_threads()} threads")
        print("| amp | crops | s/step | images/s | pool build s |\n| --- | --- | ---: | ---: | ---: |")
        for amp, pool in variants:
            per_step, pool_seconds = time_steps(root, amp, pool, args.crop, args.batch_size, args.steps)
            crops = f"pool of {pool}/image" if pool else "fresh"
            print(f"| {amp} | {crops} | {per_step:.2f} | {args.batch_size / per_step:.1f} | {pool_seconds:.1f} |",
                  flush=True)
        if not bf16_here:
            print("(no AMX / AVX512-BF16 here: bf16 skipped)")


if __name__ == "__main__":
    main()
