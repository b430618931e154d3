"""Does bf16 hurt AdaIN's statistics? OpenVINO's bf16 decoder against one that keeps them in f32.

Why: under ``INFERENCE_PRECISION_HINT=bf16`` OpenVINO also runs the decoder's AdaIN part (the
content features' means, variances and square roots, the normalization, the alpha blend) in
bf16, where a mean of 4,096 values keeps 8 bits of mantissa. This marks every node before the
first convolution "precise" (OpenVINO's IR attribute that keeps a node in its original
precision), and compares both decoders with onnxruntime's FP32 output on real photos and
paintings: PSNR per pair and the decoder's median time. Measured, never asserted.

    python -m adainrt.benchmarks.openvino_statistics --model models/ \\
        --content ../shared/data/content --style ../shared/data/style --pairs 8 --size 512
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from adainrt.benchmarks.bench import psnr
from adainrt.contract import graph_file
from adainrt.hardware import describe_cpu
from adainrt.images import center_crop, list_images, load_image, resize_smaller_side, to_tensor

_PRECISE = '<rt_info>\n<attribute name="precise" version="0" />\n</rt_info>'


def statistics_kept_f32(core, onnx_path: Path, folder: Path):
    """The decoder with every node before its first convolution marked precise (through the IR,
    where OpenVINO reads the attribute), read back as a model."""
    import openvino as ov

    model = core.read_model(str(onnx_path))
    ops = model.get_ordered_ops()
    first_conv = next(i for i, op in enumerate(ops) if op.get_type_name() == "Convolution")
    names = {op.get_friendly_name() for op in ops[:first_conv] if op.get_type_name() not in ("Parameter", "Constant")}
    ov.save_model(model, str(folder / "decoder.xml"), compress_to_fp16=False)
    xml = (folder / "decoder.xml").read_text()

    def mark(layer: re.Match) -> str:
        tag = layer.group(0)
        return tag + _PRECISE if re.search(r'name="([^"]*)"', tag).group(1) in names else tag

    (folder / "decoder.xml").write_text(re.sub(r'<layer id="\d+"[^>]*[^/]>', mark, xml))
    return core.read_model(str(folder / "decoder.xml")), len(names)


def pairs(content_dir: Path, style_dir: Path, count: int, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` photo-painting pairs spread over both folders, centre-cropped squares of ``size``."""
    def spread(folder: Path) -> list[np.ndarray]:
        files = list_images(folder, recursive=True)
        chosen = files[:: max(1, len(files) // count)][:count]
        return [to_tensor(center_crop(resize_smaller_side(load_image(f), size), size)) for f in chosen]

    return list(zip(spread(content_dir), spread(style_dir), strict=False))


def compare(model_dir: Path, content_dir: Path, style_dir: Path, count: int, size: int) -> dict:
    import openvino as ov

    from adainrt.runtime import open_graph

    core = ov.Core()
    decoder = model_dir / graph_file("decoder")
    with tempfile.TemporaryDirectory() as folder:
        precise, marked = statistics_kept_f32(core, decoder, Path(folder))
        bf16 = {"INFERENCE_PRECISION_HINT": "bf16"}
        compiled = {"bf16": core.compile_model(core.read_model(str(decoder)), "CPU", bf16),
                    "bf16, statistics f32": core.compile_model(precise, "CPU", bf16)}
    scores: dict[str, list[float]] = {name: [] for name in compiled}
    times: dict[str, list[float]] = {name: [] for name in compiled}
    with open_graph(model_dir / graph_file("encoder"), "ort-cpu") as encoder, \
            open_graph(model_dir / graph_file("style"), "ort-cpu") as style_graph, \
            open_graph(decoder, "ort-cpu") as reference:
        for content, style in pairs(content_dir, style_dir, count, size):
            stats = style_graph.infer({"style": style})
            feeds = {"content_features": encoder.infer({"content": content})["content_features"],
                     "style_mean": stats["style_mean"], "style_std": stats["style_std"],
                     "alpha": np.ones(1, np.float32)}
            expected = reference.infer(feeds)["image"]
            for name, model in compiled.items():
                request = model.create_infer_request()
                request.infer(feeds)  # warm-up
                start = time.perf_counter()
                output = request.infer(feeds)[0]
                times[name].append((time.perf_counter() - start) * 1000)
                scores[name].append(psnr(output, expected))
    return {"size": size, "pairs": len(scores["bf16"]), "marked_nodes": marked, "cpu": describe_cpu(),
            "rows": [{"decoder": name, "psnr_mean": float(np.mean(scores[name])), "psnr_min": float(min(scores[name])),
                      "median_ms": statistics.median(times[name])} for name in compiled]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="A folder from `adainrt export` (split graphs).")
    parser.add_argument("--content", type=Path, required=True, help="Folder of photos.")
    parser.add_argument("--style", type=Path, required=True, help="Folder of paintings.")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    result = compare(args.model, args.content, args.style, args.pairs, args.size)
    for row in result["rows"]:
        print(f"{row['decoder']:>22}: PSNR vs FP32 mean {row['psnr_mean']:.2f} dB, min {row['psnr_min']:.2f} dB, "
              f"median {row['median_ms']:.0f} ms")
    print(f"{result['pairs']} pairs at {args.size}x{args.size}, {result['marked_nodes']} nodes kept f32; "
          f"CPU: {result['cpu']}")


if __name__ == "__main__":
    main()
