"""Where OpenVINO's time goes, by layer type and by the instruction set of each layer's kernel.

Why: an AVX-512 machine can stand in for an AVX2-only CPU by capping oneDNN's kernels with
``ONEDNN_MAX_CPU_ISA=AVX2`` (OpenVINO's CPU plugin honours it; onnxruntime ignores it). The cap
reaches the convolutions, but some of OpenVINO's own kernels (upsampling, reductions) keep
AVX-512. This profiles the full FP32 graph with OpenVINO's per-layer counters (``PERF_COUNT``)
so a capped run says how much of its time still ran on AVX-512. Measured, never asserted.

    ONEDNN_MAX_CPU_ISA=AVX2 python -m adainrt.benchmarks.openvino_isa --model models/ --size 512
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from adainrt.contract import graph_file
from adainrt.hardware import describe_cpu

#: The instruction-set tags in OpenVINO's kernel names (``brgconv_avx2_f32``, ``jit_avx512_f32``,
#: ``ref_f32``), most specific first; ``uni`` is a kernel generic over ISAs, ``ref`` plain C++.
ISA_TAGS = ("amx", "avx512", "avx2", "sse41", "uni", "ref")


def kernel_isa(exec_type: str) -> str:
    """The instruction set a kernel name says it uses, or "other" (inputs, reshapes, constants)."""
    return next((tag for tag in ISA_TAGS if re.search(rf"(^|_){tag}(_|$)", exec_type)), "other")


def profile(model_dir: Path, size: int, precision: str, runs: int) -> dict:
    """Per-image milliseconds of the full graph by (layer type, kernel ISA), and the wall median."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(model_dir / graph_file("full"))), "CPU",
                                  {"PERF_COUNT": True, "PERFORMANCE_HINT": "LATENCY",
                                   "INFERENCE_PRECISION_HINT": precision})
    request = compiled.create_infer_request()
    rng = np.random.default_rng(0)
    feeds = {"content": rng.random((1, 3, size, size), np.float32),
             "style": rng.random((1, 3, size, size), np.float32), "alpha": np.ones(1, np.float32)}
    request.infer(feeds)  # warm-up
    layers: dict[tuple[str, str], float] = defaultdict(float)
    walls = []
    for _ in range(runs):
        start = time.perf_counter()
        request.infer(feeds)
        walls.append((time.perf_counter() - start) * 1000)
        for info in request.profiling_info:
            if info.status == ov.ProfilingInfo.Status.EXECUTED:
                layers[(info.node_type, kernel_isa(info.exec_type))] += info.real_time.total_seconds() * 1000 / runs
    ranked = sorted(layers.items(), key=lambda kv: -kv[1])
    rows = [{"layer": layer, "isa": isa, "ms": ms} for (layer, isa), ms in ranked]
    return {"size": size, "precision": precision, "runs": runs, "wall_median_ms": statistics.median(walls),
            "rows": rows, "cpu": describe_cpu()}


def isa_shares(result: dict) -> dict[str, float]:
    """The share of the profiled layer time each kernel ISA took."""
    total = sum(row["ms"] for row in result["rows"]) or 1.0
    shares: dict[str, float] = defaultdict(float)
    for row in result["rows"]:
        shares[row["isa"]] += row["ms"] / total
    return dict(sorted(shares.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="A folder from `adainrt export` (full graph).")
    parser.add_argument("--size", type=int, default=512, help="Square content and style size.")
    parser.add_argument("--precision", default="f32", choices=["f32", "bf16"], help="INFERENCE_PRECISION_HINT.")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = profile(args.model, args.size, args.precision, args.runs)
    if args.json:
        print(json.dumps({**result, "isa_shares": isa_shares(result)}, indent=2))
        return
    print(f"{'layer':>16} {'isa':>7} {'ms/image':>9}")
    for row in result["rows"]:
        if row["ms"] >= 0.05:
            print(f"{row['layer']:>16} {row['isa']:>7} {row['ms']:>9.2f}")
    print("time by kernel ISA: " + ", ".join(f"{isa} {share:.1%}" for isa, share in isa_shares(result).items()))
    print(f"{args.size}x{args.size} {args.precision}, wall median {result['wall_median_ms']:.0f} ms over "
          f"{args.runs} runs; CPU: {result['cpu']}")


if __name__ == "__main__":
    main()
