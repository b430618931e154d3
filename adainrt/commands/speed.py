"""`adainrt bench` (every backend against the paper's FPS) and `adainrt build-engine` (TensorRT)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from adainrt.commands.common import (
    BackendChoice,
    clean_errors,
    json_option,
    model_option,
    overwrite_option,
    say,
    weights_options,
    with_options,
)
from adainrt.spec import VARIANTS


@click.command()
@click.option("--size", "sizes", type=int, multiple=True, default=[512], show_default=True,
              help="Square size to time; repeat for several (the paper reports 256 and 512).")
@click.option("--backend", "backends", multiple=True,
              type=BackendChoice(("all",)), default=["all"],
              show_default=True, help="Backends to time; all = every one usable here (torch eager among them, "
                                      "the peer implementations' way, where torch is installed).")
@click.option("--runs", type=int, default=10, show_default=True, help="Timed runs per measurement.")
@click.option("--warmup", type=int, default=2, show_default=True, help="Untimed runs first.")
@model_option("Folder with all four graphs (`adainrt export --form all`). Default: cache.")
@with_options(weights_options[:2])
@click.option("--variant", "variants", multiple=True, type=click.Choice(list(VARIANTS)),
              help="Network variant to time; repeat (--variant full --variant lite) to time both in one "
                   "interleaved run, each row with its GMAC. Default: the model folder's or the weights' own.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16"]), default=None,
              help="Time every backend in this precision where it runs it (tensorrt: fp16 only; openvino: "
                   "fp32 or bf16; torch eager: fp32). Default: each backend's own, and openvino in f32 "
                   "beside bf16 on CPUs with native bf16.")
@click.option("--compare", is_flag=True,
              help="Instead of timing, check each backend's output (FP32 and FP16 graphs) against FP32 "
                   "onnxruntime CPU: PSNR and max abs error, as Polygraphy does.")
@json_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw FPS against size per backend (full path) with the paper's figures, as a PNG.")
@overwrite_option("an existing --plot file")
@clean_errors
def bench(sizes: tuple[int, ...], backends: tuple[str, ...], runs: int, warmup: int,
          model_dir: Path | None, encoder: Path | None, decoder: Path | None, variants: tuple[str, ...],
          precision: str | None, compare: bool, as_json: bool, plot: Path | None, overwrite: bool) -> None:
    """Latency (p50/p95) and FPS per backend, beside the paper's 56 FPS (256) and 15 FPS (512).

    Times the full path (content and style encoded each frame, as the paper measured) and
    the cached-style path (style statistics computed once), after warm-up runs. Backends are
    timed interleaved (round after round, each once in turn), and each row shows the PSNR of
    its output against FP32 onnxruntime CPU on the same inputs.
    """
    from adainrt.benchmarks.run import bench as run_bench

    result = run_bench(sizes, backends, runs, warmup, model_dir, *(str(p) if p else None for p in (encoder, decoder)),
                       variants, precision, compare, plot, overwrite, progress=say)
    click.echo(result.report(as_json))


@click.command("build-engine")
@click.argument("onnx_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Engine file (default: the ONNX name with .engine). A sidecar ENGINE.json is written beside it.")
@click.option("--min", "min_size", default="32", show_default=True, help="Smallest image size, N or HxW.")
@click.option("--opt", "opt_size", default="512", show_default=True, help="Size the kernels are tuned for.")
@click.option("--max", "max_size", default="2048", show_default=True, help="Largest image size, N or HxW.")
@click.option("--max-batch", type=int, default=1, show_default=True, help="Largest content batch.")
@click.option("--minShapes", "min_shapes", default="", help="trtexec syntax, overrides --min: content:1x3x256x256,...")
@click.option("--optShapes", "opt_shapes", default="", help="trtexec syntax, overrides --opt.")
@click.option("--maxShapes", "max_shapes", default="", help="trtexec syntax, overrides --max.")
@click.option("--timing-cache", type=click.Path(dir_okay=False, path_type=Path),
              help="Timing cache reused across builds (default: in the cache folder).")
@click.option("--dry-run", is_flag=True, help="Print the optimization profile and stop (no GPU needed).")
@overwrite_option("an existing engine")
@clean_errors
def build_engine(onnx_path: Path, output: Path | None, min_size: str, opt_size: str, max_size: str, max_batch: int,
                 min_shapes: str, opt_shapes: str, max_shapes: str, timing_cache: Path | None, dry_run: bool,
                 overwrite: bool) -> None:
    """Build a TensorRT engine from an exported graph (needs TensorRT and an NVIDIA GPU).

    Use the FP16 graphs (`adainrt export --precision fp16`): TensorRT 10.12+ and 11 build them
    as strongly typed networks, FP16 convolutions with the AdaIN statistics in FP32. One
    optimization profile covers H and W from --min to --max (default 32..2048, tuned for
    512: every size the Stylizer sends, larger content being tiled); the engine only accepts
    shapes inside it. Engines are valid only for the TensorRT
    version and GPU that built them: the sidecar JSON records both and loading checks them.
    """
    from adainrt.runtime.backends.tensorrt.engine import build_engine as build
    from adainrt.runtime.backends.tensorrt.engine import default_timing_cache, profiles_for

    profiles = profiles_for(onnx_path, min_size, opt_size, max_size, max_batch,
                            {"min": min_shapes, "opt": opt_shapes, "max": max_shapes})
    if dry_run:
        click.echo(json.dumps([p.__dict__ for p in profiles], indent=1))
        return
    engine = output or onnx_path.with_suffix(".engine")
    sidecar = build(onnx_path, engine, profiles, timing_cache or default_timing_cache(), overwrite=overwrite)
    click.echo(f"wrote {engine} ({sidecar.precision}, TensorRT {sidecar.tensorrt_version}, {sidecar.gpu_name}) "
               f"and {engine}.json")

