"""`adainrt train`, `snapshot` and `evaluate`: the model side of the toolkit (needs torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from adainrt.commands.common import (
    BackendChoice,
    clean_errors,
    heldout_default,
    json_option,
    model_option,
    overwrite_option,
    pair_bar,
    run_precision_option,
    say,
    weights_options,
    with_options,
)
from adainrt.runtime.backend import SCORING_BACKEND
from adainrt.spec import VARIANTS


@click.command()
@click.option("--content", "content_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of content photos (searched recursively).")
@click.option("--style", "style_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of style images (searched recursively).")
@click.option("--output", "-o", "output_dir", required=True, type=click.Path(file_okay=False),
              help="Run folder: checkpoint.pt, log.jsonl, samples/, decoder.safetensors.")
@click.option("--resume", is_flag=True, help="Continue the run in --output exactly where it stopped.")
@click.option("--encoder", type=click.Path(exists=True, dir_okay=False), help="Encoder (default: embedded).")
@click.option("--init-decoder", type=click.Path(exists=True, dir_okay=False),
              help="Start from these decoder weights instead of random ones.")
@click.option("--resize", type=int, default=512, show_default=True, help="Smaller side before cropping.")
@click.option("--crop", type=int, default=256, show_default=True, help="Random square crop size.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Content-style pairs per step.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Adam learning rate.")
@click.option("--lr-decay", type=float, default=5e-5, show_default=True, help="lr / (1 + decay * step).")
@click.option("--content-weight", type=float, default=1.0, show_default=True)
@click.option("--style-weight", type=float, default=10.0, show_default=True)
@click.option("--structure-weight", type=float, default=0.0, show_default=True,
              help="Also penalize the output's structure distance from the photo (the measure "
                   "`adainrt evaluate` reports): keeps faces and buildings through strong textures.")
@click.option("--invert-iters", type=int, default=0, show_default=True,
              help="First train the decoder to invert relu4_1 of photos (pixel loss) for this many "
                   "steps: learns structure fast on a small compute budget.")
@click.option("--pool-crops-per-image", type=int, default=0, show_default=True,
              help="CPU speed-up: draw crops from a fixed pool of this many crops per image, encoded "
                   "once before training, instead of encoding fresh crops every step (BF16 on 2 cores: "
                   "0.83 -> 0.59 s per step, see `python -m adainrt.benchmarks.train_step`; 0: fresh "
                   "crops, the paper's way).")
@click.option("--amp", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default="auto", show_default=True,
              help="Mixed precision of the passes (statistics and losses stay FP32). auto: fp16 on CUDA, "
                   "bf16 on CPUs with AMX/AVX512-BF16 (about 2x faster than fp32), else fp32.")
@click.option("--ema-decay", type=float, default=0.999, show_default=True,
              help="Evaluate and export an exponential moving average of the weights with this decay "
                   "(0.999: about the last 1000 steps). It smooths the step-to-step noise of the "
                   "weights: averaging 1,500 steps of checkpoints took the held-out style ratio from "
                   "0.241 to 0.210 (MODEL_CARD.md). 0: the weights as trained.")
@click.option("--recolor-styles", type=click.FloatRange(0.0, 1.0), is_flag=False, flag_value=1.0, default=0.0,
              show_default=True, metavar="[FRACTION]",
              help="Mirror style crops and turn their hues by a random angle: more palettes from few "
                   "styles (with 90 styles, a decoder matches unseen styles far worse than its own: "
                   "MODEL_CARD.md). Alone: every crop; with a FRACTION, that share of the crops (the "
                   "others keep their painter's colours); 0 turns it off in a resumed run.")
@click.option("--tone-styles", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True, metavar="FRACTION",
              help="Give this share of the style crops random levels: the white point lowered (paper turns "
                   "white, a shaded drawing a sparse line drawing) or the black point raised (a painting "
                   "turns dark). Few styles are that light or dark, and decoders wash photos out with "
                   "unseen ones (MODEL_CARD.md, Known weaknesses).")
@click.option("--line-styles", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True, metavar="FRACTION",
              help="Replace this share of the style crops by a grey line drawing of their own edges: dark "
                   "lines on paper or light lines on a dark ground. Few styles are drawings, and decoders "
                   "paint unseen sketches and cobwebs as texture over the photo (MODEL_CARD.md, Known "
                   "weaknesses).")
@click.option("--sketch-styles", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
              metavar="FRACTION",
              help="Replace this share of the style crops (of those --line-styles leaves) by a sparse "
                   "pencil sketch of their strongest edges: a few thin lines on white paper. --line-styles "
                   "draws every edge (a median 60% of the pixels inked); line-art sketches ink a few "
                   "percent, and decoders wash photos out with them (MODEL_CARD.md).")
@click.option("--max-iter", type=int, default=160_000, show_default=True)
@click.option("--max-minutes", type=float, default=0.0, show_default=True, help="Stop after this long (0: no limit).")
@click.option("--checkpoint-every", type=int, default=500, show_default=True)
@click.option("--eval-every", type=int, default=500, show_default=True,
              help="Held-out losses and a sample grid every N steps (0: never).")
@click.option("--holdout-every", type=int, default=25, show_default=True,
              help="Hold out every k-th image (sorted) of each folder for evaluation (0: none).")
@click.option("--holdout-list", type=click.Path(exists=True, dir_okay=False),
              help="Hold out the files this list names instead ('content/NAME' and 'style/NAME' lines; "
                   "adainrt's own: train/heldout.txt, v0.4's held-out images and new ones).")
@click.option("--style-sampling", type=click.Choice(["uniform", "source"]), default="uniform", show_default=True,
              help="source: draw styles weighted by their source (the file name's prefix before '__'), "
                   "each source's share growing as the square root of its size, so one large data set "
                   "(150 texture photos) does not dominate what the decoder learns.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--variant", type=click.Choice(list(VARIANTS)), default="full", show_default=True,
              help="full: train a decoder for the encoder (the paper). lite (or another narrower variant): "
                   "distill its encoder and decoder from the full model (adainrt.train.distill: a pool stylized "
                   "by the teacher once, then the paper's loss); the options above that it takes keep its own "
                   "defaults unless given. Writes OUTPUT/encoder.safetensors and OUTPUT/decoder.safetensors.")
@click.option("--pool-pairs", type=click.IntRange(1), default=4000, show_default=True,
              help="Distillation: photo/style crop pairs the teacher stylizes once (saved as OUTPUT/pool.pt).")
@click.option("--distill-iters", type=click.IntRange(0), default=3000, show_default=True,
              help="Distillation: steps that imitate the teacher alone before the paper's loss comes in.")
@click.option("--teacher-decoder", type=click.Path(exists=True, dir_okay=False),
              help="Distillation: the full decoder to imitate (default: the bundled one).")
@click.option("--start-from", metavar="bundled|RUN_DIR",
              help="Distillation: start the student from trained weights (the shipped ones, or a run's "
                   "folder with encoder.safetensors and decoder.safetensors) instead of a pruned copy "
                   "of the teacher.")
@clean_errors
def train(output_dir: str, resume: bool, **options: Any) -> None:
    """Train a decoder for the encoder (the paper's recipe), resumable.

    Loss: content loss against the AdaIN target plus style-weight times the mean/std loss at
    relu1_1..relu4_1. Every --holdout-every'th image of each folder is held out for evaluation.
    Ctrl-C (or SIGTERM) writes a checkpoint; --resume continues with the same step, optimizer and random
    state, and the run's own settings except those given again (say, larger crops for a second
    stage; the folders, --seed and --holdout-every stay). The result is
    OUTPUT/decoder.safetensors, usable as --decoder everywhere.

    \b
    Several GPUs (DistributedDataParallel; --batch-size is per GPU):
      torchrun --nproc_per_node 4 -m adainrt.cli train --content photos/ --style paintings/ -o run/
    """
    from click.core import ParameterSource

    from adainrt.train.launch import run_training

    ctx = click.get_current_context()
    given = [k for k in options if ctx.get_parameter_source(k) != ParameterSource.DEFAULT]
    written, step = run_training(output_dir, resume, options, given, say=say)
    click.echo(f"wrote {' and '.join(map(str, written))} (step {step})")


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Decoder file to write (safetensors, usable as --decoder everywhere). A distillation "
                   "run (--variant lite) also writes its encoder beside it, as NAME.encoder.safetensors.")
@overwrite_option("an existing --output")
@clean_errors
def snapshot(run_dir: str, output: Path, overwrite: bool) -> None:
    """The weights of a training run's last checkpoint, while the run goes on.

    Writes what the run would export if it stopped now (its weights average when it keeps
    one), for `adainrt evaluate` or `stylize` mid-run; the run is not disturbed. A lite
    distillation's snapshot is an encoder and a decoder (they belong together).

    \b
      adainrt snapshot runs/d -o runs/d/now.safetensors
      adainrt evaluate --content held/photos --style held/paintings --decoder runs/d/now.safetensors
      adainrt snapshot runs/lite -o runs/lite/now.safetensors     # + now.encoder.safetensors
      adainrt evaluate ... --variant lite --decoder runs/lite/now.safetensors \\
        --encoder runs/lite/now.encoder.safetensors
    """
    from adainrt.train.launch import snapshot_run

    written, step = snapshot_run(run_dir, output, overwrite=overwrite)
    click.echo(f"wrote {' and '.join(map(str, written))} (step {step})")


@click.command()
@click.option("--content", "content_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of content photos.")
@click.option("--style", "style_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of style images; content i is paired with style i mod the number of styles "
                   "(or with every style: --all-pairs).")
@click.option("--all-pairs", is_flag=True, help="Score every content with every style.")
@click.option("--per-style", type=click.IntRange(min=1), default=None,
              help="Score each style with N contents, taken in turn (every content used about equally).")
@click.option("--heldout", "heldout_list", is_flag=False, flag_value=str(heldout_default()), default=None,
              type=click.Path(exists=True, dir_okay=False), metavar="[LIST]",
              help="Score only the files a held-out list names (alone: adainrt's own, train/heldout.txt, "
                   "the images its decoders never trained on; give the data folders they are in).")
@click.option("--alpha", "alphas", type=click.FloatRange(0.0, 1.0), multiple=True,
              help="Content-style trade-off to score at; repeat for several (the first one is reported per "
                   "style and drawn on the sheet; default 1).")
@with_options(weights_options[:2])
@click.option("--variant", "variants", multiple=True, type=click.Choice(list(VARIANTS)),
              help="Network variant to score (its bundled weights unless --encoder/--decoder); repeat "
                   "(--variant full --variant lite) to score both on the same pairs, side by side. Every "
                   "variant is measured by the full VGG-19.")
@click.option("--backend", type=BackendChoice(("auto",)), default=SCORING_BACKEND, show_default=True,
              help="What makes the outputs from the exported graphs: PyTorch eager by default (the network "
                   "as trained, in FP32), or any runtime backend (`adainrt info` lists them). The losses are "
                   "always measured with the PyTorch encoder in FP32, so backends compare on one scale.")
@model_option("Folder of graphs from `adainrt export` (default: export the chosen weights once into "
              "the cache folder). Its encoder must be the --encoder in use.")
@run_precision_option
@click.option("--size", type=int, default=256, show_default=True,
              help="Centre crops of this size (photo and style). 256 is fast; 512 is what stylize and serve "
                   "make by default, where a fine texture no longer hides a small subject (MODEL_CARD.md).")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a contact sheet PNG: styles along the top, photos down the left, outputs "
                   "where they meet.")
@click.option("--sheet-cell", type=click.IntRange(min=16), default=128, show_default=True,
              help="Pixels per contact-sheet cell. Outputs are shrunk to fit: give the --size to see them "
                   "at full resolution.")
@json_option
@overwrite_option("an existing --sheet")
@clean_errors
def evaluate(content_dir: str, style_dir: str, all_pairs: bool, per_style: int | None, heldout_list: str | None,
             alphas: tuple[float, ...], encoder: Path | None, decoder: Path | None, variants: tuple[str, ...],
             backend: str, model_dir: Path | None, precision: str, size: int, sheet: Path | None,
             sheet_cell: int, as_json: bool, overwrite: bool) -> None:
    """The paper's content and style losses of a decoder's outputs, beside the baseline, and
    how much of the photo's structure survives.

    The baseline is the style loss of the unstylized content image: a working decoder's
    style loss is far below it (adainrt's quality bar: a fifth of it). Structure is the
    distance between the output's and the photo's VGG features at relu3_1 and relu4_1, each
    channel normalized (so the style statistics AdaIN puts there on purpose do not count):
    0 is the photo's layout exactly, about 2 an unrelated image. A decoder that painted pure
    texture would win on style alone; structure shows it. Also per style, to show which
    styles a decoder fails on, and at several --alpha to show the trade-off. Needs torch for
    the loss network; the outputs can come from any backend.

    \b
      adainrt evaluate --content photos/ --style paintings/ --all-pairs --sheet sheet.png
      adainrt evaluate --content ../shared/data/content --style ../shared/data/style --heldout \\
          --per-style 6 --alpha 1 --alpha 0.8 --alpha 0.6
      adainrt evaluate --content photos/ --style paintings/ --backend ort-cpu --precision fp16
      adainrt evaluate --content ../shared/data/content --style ../shared/data/style --heldout \
          --per-style 6 --variant full --variant lite --sheet sheet.png   # sheet_full.png, sheet_lite.png
    """
    from adainrt.train.evaluate import evaluate_variants, evaluation_report

    results = evaluate_variants(
        variants, sheet, pair_bar, content_dir=content_dir, style_dir=style_dir, all_pairs=all_pairs,
        encoder=encoder, decoder=decoder, backend=backend, model_dir=model_dir, precision=precision, size=size,
        sheet_cell=sheet_cell, overwrite=overwrite, progress=say, alphas=alphas or (1.0,), per_style=per_style or 0,
        heldout_list=heldout_list)
    click.echo(evaluation_report(results, as_json))
