"""OpenVINO's latency hint against its throughput hint (several streams, several requests in flight).

Why adainrt compiles with the latency hint: on a few cores, one request already keeps every
core busy, so the throughput hint's streams only split the same cores. This measures it on the
full FP32 graph with OpenVINO's own ``AsyncInferQueue`` (``OPTIMAL_NUMBER_OF_INFER_REQUESTS``
in flight), images per second per hint and size, rounds alternating the hints. Measured,
never asserted.

    python -m adainrt.benchmarks.openvino_hints --model models/ --size 256 --size 512
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from adainrt.contract import graph_file
from adainrt.hardware import describe_cpu


def images_per_second(compiled, feeds: dict[str, np.ndarray], images: int) -> float:
    import openvino as ov

    queue = ov.AsyncInferQueue(compiled, compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    start = time.perf_counter()
    for _ in range(images):
        queue.start_async(feeds)
    queue.wait_all()
    return images / (time.perf_counter() - start)


def measure(model_dir: Path, sizes: list[int], precision: str, rounds: int) -> list[dict]:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_dir / graph_file("full")))
    rng = np.random.default_rng(0)
    rows = []
    for size in sizes:
        feeds = {"content": rng.random((1, 3, size, size), np.float32),
                 "style": rng.random((1, 3, size, size), np.float32), "alpha": np.ones(1, np.float32)}
        images = max(4, 3_000_000 // (size * size))
        compiled = {hint: core.compile_model(model, "CPU", {"PERFORMANCE_HINT": hint,
                                                            "INFERENCE_PRECISION_HINT": precision})
                    for hint in ("LATENCY", "THROUGHPUT")}
        results: dict[str, list[float]] = {hint: [] for hint in compiled}
        for model_for_hint in compiled.values():
            images_per_second(model_for_hint, feeds, 2)  # warm up
        for _ in range(rounds):
            for hint, model_for_hint in compiled.items():
                results[hint].append(images_per_second(model_for_hint, feeds, images))
        for hint, model_for_hint in compiled.items():
            rows.append({"size": size, "hint": hint, "precision": precision,
                         "requests": model_for_hint.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"),
                         "streams": int(model_for_hint.get_property("NUM_STREAMS")),
                         "images_per_s": statistics.median(results[hint]), "rounds": rounds, "images": images})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="A folder from `adainrt export` (full graph).")
    parser.add_argument("--size", type=int, action="append", help="Square content and style size (repeat).")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "f32"], help="INFERENCE_PRECISION_HINT.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args.model, args.size or [256, 512], args.precision, args.rounds)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'size':>5} {'hint':>10} {'precision':>9} {'requests':>8} {'streams':>7} {'images/s':>9}")
    for row in rows:
        print(f"{row['size']:>5} {row['hint']:>10} {row['precision']:>9} {row['requests']:>8} {row['streams']:>7} "
              f"{row['images_per_s']:>9.2f}")
    print(f"median of {args.rounds} alternating rounds; CPU: {describe_cpu()}")


if __name__ == "__main__":
    main()
