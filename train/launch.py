"""`adainrt train` as one call: the full decoder's training or a narrower variant's distillation,
from the options a user gave, resumable, checkpointed on Ctrl-C or SIGTERM."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adainrt.errors import AdainrtError, interrupt_on_sigterm
from adainrt.spec import DEFAULT_VARIANT

#: Options of a narrower variant's distillation alone.
DISTILL_ONLY = ("pool_pairs", "distill_iters", "teacher_decoder", "start_from")


def run_training(output_dir: str | Path, resume: bool, options: dict[str, Any], given: Sequence[str],
                 say: Callable[[str], None] = print) -> tuple[tuple[Path, ...], int]:
    """Train (``options["variant"]`` full: a decoder by the paper's recipe; another: distil it from
    full) into ``output_dir``; ``given``: the options the user set (a resumed run keeps its own
    settings but these). Returns the files written and the last step."""
    from adainrt.train.distill import Distiller, distill_config
    from adainrt.train.trainer import CHECKPOINT, Trainer, run_config

    distilling = options.get("variant", DEFAULT_VARIANT) != DEFAULT_VARIANT
    if not distilling:
        lite_only = [k for k in given if k in DISTILL_ONLY]
        if lite_only:
            raise AdainrtError(f"--{lite_only[0].replace('_', '-')} is an option of a narrower variant's "
                               "distillation: give --variant lite with it")
        options = {k: v for k, v in options.items() if k not in ("variant", *DISTILL_ONLY)}
    config, changes = (distill_config if distilling else run_config)(output_dir, resume, options, list(given))
    for name, (before, now) in changes.items():
        say(f"resuming with --{name.replace('_', '-')} {now} (was {before})")
    trainer = Distiller(config) if distilling else Trainer(config)
    if resume:
        trainer.resume()
        say(f"resumed at step {trainer.step}")
        if trainer.step >= config.max_iter:
            say(f"the run is at its --max-iter {config.max_iter} already; give a larger --max-iter to train on")
    interrupt_on_sigterm()
    try:
        written = trainer.run()
        trainer.close()
    except KeyboardInterrupt:
        if not (Path(output_dir) / CHECKPOINT).exists():
            raise AdainrtError("interrupted before the first step; nothing written") from None
        raise AdainrtError(f"interrupted at step {trainer.step}; checkpoint written, --resume continues") from None
    return (written if isinstance(written, tuple) else (written,)), trainer.step


def snapshot_run(run_dir: str | Path, decoder_path: str | Path,
                 overwrite: bool = False) -> tuple[tuple[Path, ...], int]:
    """What a training run would export if it stopped now, from its last checkpoint, while it goes on:
    a decoder run's decoder, or a distillation's decoder and encoder (``NAME.encoder.safetensors``
    beside it). Returns the files written and the checkpoint's step."""
    from adainrt.train.distill import snapshot_student
    from adainrt.train.trainer import read_run_checkpoint, snapshot_decoder

    decoder_path = Path(decoder_path)
    if decoder_path.suffix != ".safetensors":  # the file is safetensors whatever its name says
        raise AdainrtError(f"{decoder_path}: weights are written as safetensors; name it "
                           f"{decoder_path.stem}.safetensors")
    ckpt = read_run_checkpoint(run_dir)
    distilled = "teacher" in ckpt  # a distillation's checkpoint holds the whole student and its teacher
    written = snapshot_student(ckpt, decoder_path, overwrite) if distilled else \
        (snapshot_decoder(ckpt, decoder_path, overwrite),)
    return written, int(ckpt["step"])
