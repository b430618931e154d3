"""Can OpenVINO int8 (NNCF) of the AdaIN graphs keep 35 dB PSNR against FP32? The evidence behind not shipping it.

adainrt ships a precision only if it stays faithful (>= 35 dB against FP32 on real photos and
paintings). This quantizes exported graphs with NNCF post-training quantization, accuracy-
controlled (NNCF reverts layers to float until a validation PSNR target is met), and measures
on held-out pairs: PSNR mean and minimum against the FP32 graphs run in f32, and the latency of
encoder + decoder (batch 1, variants interleaved), beside the FP32 graphs in OpenVINO's default
precision (bf16 on CPUs with it). Data split (seeded, disjoint): calibration 40 photos + 20
paintings, accuracy-control validation 8 pairs, held-out 12 photos x 4 paintings.

Needs ``pip install nncf`` (not a dependency of adainrt). Reads images only from the folders given:

    python scripts/quantize_study.py --model MODELS --content PHOTOS --style PAINTINGS --out study/
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

CAP_DB = 60.0  # the validation metric's ceiling: NNCF's float reference would otherwise score infinity


def load(path: Path, size: int) -> np.ndarray:
    """Smaller side to ``size`` (bicubic), centre crop, NCHW float32 in [0, 1]."""
    image = Image.open(path).convert("RGB")
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(image, np.float32).transpose(2, 0, 1)[None] / 255.0)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def split(content: Path, style: Path, seed: int) -> dict[str, list]:
    """Disjoint calibration / validation / held-out sets of photos and paintings."""
    photos, paintings = sorted(content.glob("*.jpg")), sorted(style.glob("*.jpg"))
    rng = random.Random(seed)
    rng.shuffle(photos)
    rng.shuffle(paintings)
    if len(photos) < 60 or len(paintings) < 28:
        raise SystemExit("need at least 60 photos and 28 paintings")
    return {"cal_photos": photos[:40], "cal_paintings": paintings[:20],
            "val": [(c, paintings[20 + k % 4]) for k, c in enumerate(photos[40:48])],
            "test": [(c, s) for c in photos[48:60] for s in paintings[24:28]]}


class Graphs:
    """The FP32 graphs compiled in f32 (the reference), with cached features and statistics."""

    def __init__(self, core: Any, model_dir: Path, size: int):
        self.core, self.model_dir, self.size = core, model_dir, size
        self.f32 = {name: core.compile_model(self.read(name), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
                    for name in ("encoder", "style", "decoder")}
        self._cache: dict[tuple, Any] = {}

    def read(self, name: str) -> Any:
        return self.core.read_model(str(self.model_dir / f"adain_{name}.onnx"))

    def _cached(self, key: tuple, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def image(self, path: Path) -> np.ndarray:
        return self._cached(("image", path), lambda: load(path, self.size))

    def features(self, path: Path) -> np.ndarray:
        return self._cached(("features", path), lambda: self.f32["encoder"]({"content": self.image(path)})[0])

    def decoder_inputs(self, features: np.ndarray, style: Path) -> dict[str, np.ndarray]:
        mean, std = self._cached(("stats", style), lambda: tuple(self.f32["style"]({"style": self.image(style)})
                                                                   .values()))
        return {"content_features": features, "style_mean": mean, "style_std": std,
                "alpha": np.ones(1, np.float32)}

    def reference(self, content: Path, style: Path) -> np.ndarray:
        return self._cached(("ref", content, style), lambda: self.f32["decoder"](
            self.decoder_inputs(self.features(content), style))[0])

    def pipeline_psnr(self, encoder: Any, decoder: Any, pairs: list) -> list[float]:
        return [psnr(decoder(self.decoder_inputs(encoder({"content": self.image(c)})[0], s))[0],
                     self.reference(c, s)) for c, s in pairs]


def adain_prefix(model: Any) -> list[str]:
    """The decoder's ops before its first convolution: the AdaIN statistics, kept in float."""
    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Convolution":
            return names
        if op.get_type_name() not in ("Constant", "Parameter"):
            names.append(op.get_friendly_name())
    return names


def convolutions(model: Any) -> list[str]:
    return [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"]


def int8_convolutions(model: Any) -> int:
    """Convolutions whose input goes through a FakeQuantize (int8 activations)."""
    count = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Convolution":
            source = op.input_value(0).get_node()
            while source.get_type_name() in ("Pad", "Interpolate", "MaxPool"):
                source = source.input_value(0).get_node()
            count += source.get_type_name() == "FakeQuantize"
    return count


def quantize_decoder(nncf: Any, graphs: Graphs, sets: dict, target_db: float) -> Any:
    """Accuracy-controlled int8 decoder: AdaIN statistics and the last convolution kept float."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    model = graphs.read("decoder")
    calibration = [graphs.decoder_inputs(graphs.features(c), sets["cal_paintings"][k % 20])
                   for k, c in enumerate(sets["cal_photos"])]
    validation = [(graphs.decoder_inputs(graphs.features(c), s), graphs.reference(c, s)) for c, s in sets["val"]]

    def validate(compiled: Any, items: list) -> tuple[float, list[float]]:
        scores = [min(CAP_DB, psnr(compiled(inputs)[0], ref)) for inputs, ref in items]
        return float(np.mean(scores)), scores

    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calibration), nncf.Dataset(validation), validate, max_drop=CAP_DB - target_db,
        drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration),
        fast_bias_correction=False,
        ignored_scope=nncf.IgnoredScope(names=adain_prefix(model) + convolutions(model)[-1:], validate=False),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(num_ranking_workers=1))


def quantize_encoder(nncf: Any, graphs: Graphs, sets: dict, decoder: Any, target_db: float) -> Any:
    """Accuracy-controlled int8 encoder, judged through the int8 ``decoder`` (the whole int8 pipeline)."""
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    model = graphs.read("encoder")
    calibration = [{"content": graphs.image(p)} for p in sets["cal_photos"] + sets["cal_paintings"]]
    validation = list(sets["val"])
    judge = graphs.core.compile_model(decoder, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})

    def validate(compiled: Any, items: list) -> tuple[float, list[float]]:
        scores = [min(CAP_DB, score) for score in graphs.pipeline_psnr(compiled, judge, items)]
        return float(np.mean(scores)), scores

    start = validate(graphs.f32["encoder"], validation)[0]
    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calibration), nncf.Dataset(validation), validate, max_drop=max(0.0, start - target_db),
        drop_type=nncf.DropType.ABSOLUTE, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calibration),
        fast_bias_correction=False, ignored_scope=nncf.IgnoredScope(names=convolutions(model)[:1]),
        advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(num_ranking_workers=1))


def time_variants(graphs: Graphs, variants: dict[str, tuple[Any, Any]], pair: tuple, runs: int) -> dict[str, float]:
    """Median encoder + decoder milliseconds per variant, batch 1, variants interleaved round-robin."""
    content, style = pair
    image = graphs.image(content)
    times: dict[str, list[float]] = {name: [] for name in variants}
    requests = {name: (enc.create_infer_request(), dec.create_infer_request()) for name, (enc, dec) in
                variants.items()}
    for round_ in range(runs + 2):
        for name, (encoder, decoder) in requests.items():
            start = time.perf_counter()
            features = encoder.infer({"content": image})[0].copy()
            decoder.infer(graphs.decoder_inputs(features, style))
            if round_ >= 2:  # two warm-up rounds
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="A folder from `adainrt export` (split graphs).")
    parser.add_argument("--content", type=Path, required=True, help="Folder of photos (*.jpg).")
    parser.add_argument("--style", type=Path, required=True, help="Folder of paintings (*.jpg).")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True, help="Folder for the int8 models and results.json.")
    parser.add_argument("--runs", type=int, default=12, help="Timed rounds (after 2 warm-up rounds).")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    import nncf
    import openvino as ov

    results_path = args.out / "results.json"
    if results_path.exists() and not args.overwrite:
        raise SystemExit(f"{results_path} exists; --overwrite replaces it")
    args.out.mkdir(parents=True, exist_ok=True)
    core = ov.Core()
    graphs = Graphs(core, args.model, args.size)
    sets = split(args.content, args.style, args.seed)
    decoder_int8 = quantize_decoder(nncf, graphs, sets, target_db=35.5)
    encoder_int8 = quantize_encoder(nncf, graphs, sets, decoder_int8, target_db=36.5)
    ov.save_model(decoder_int8, str(args.out / "decoder_int8.xml"))
    ov.save_model(encoder_int8, str(args.out / "encoder_int8.xml"))
    compile_default = lambda model: core.compile_model(model, "CPU")  # noqa: E731  bf16 where the CPU has it
    encoder, decoder = compile_default(graphs.read("encoder")), compile_default(graphs.read("decoder"))
    variants = {"FP32 graphs, default precision": (encoder, decoder),
                "int8 decoder (accuracy-controlled)": (encoder, compile_default(decoder_int8)),
                "int8 encoder + decoder (accuracy-controlled)": (compile_default(encoder_int8),
                                                                 compile_default(decoder_int8))}
    rows = []
    for name, (enc, dec) in variants.items():
        scores = graphs.pipeline_psnr(enc, dec, sets["test"])
        rows.append({"variant": name, "psnr_mean": float(np.mean(scores)), "psnr_min": float(np.min(scores)),
                     "precision_hint": str(dec.get_property("INFERENCE_PRECISION_HINT"))})
    timing = time_variants(graphs, variants, sets["test"][0], args.runs)
    counts = {"FP32 graphs, default precision": (0, 0),
              "int8 decoder (accuracy-controlled)": (0, int8_convolutions(decoder_int8)),
              "int8 encoder + decoder (accuracy-controlled)": (int8_convolutions(encoder_int8),
                                                               int8_convolutions(decoder_int8))}
    for row in rows:
        row["latency_ms"] = timing[row["variant"]]
        row["int8_convs"] = "encoder {}/{}, decoder {}/{}".format(
            counts[row["variant"]][0], len(convolutions(graphs.read("encoder"))),
            counts[row["variant"]][1], len(convolutions(graphs.read("decoder"))))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("flags")), [])
    report = {"size": args.size, "held_out_pairs": len(sets["test"]), "runs": args.runs, "cpu": cpu,
              "flags": [f for f in flags if f in ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16")],
              "openvino": ov.__version__, "nncf": nncf.__version__, "rows": rows}
    results_path.write_text(json.dumps(report, indent=2))
    print(f"| variant | int8 convolutions | PSNR mean / min dB ({len(sets['test'])} pairs, {args.size}) | "
          "encoder + decoder ms |")
    print("| --- | --- | --- | ---: |")
    for row in rows:
        print(f"| {row['variant']} | {row['int8_convs']} | {row['psnr_mean']:.2f} / {row['psnr_min']:.2f} | "
              f"{row['latency_ms']:.0f} |")
    print(f"CPU {cpu}, flags {' '.join(report['flags'])}; OpenVINO {ov.__version__}, NNCF {nncf.__version__}; "
          f"precision of the FP32 graphs: {rows[0]['precision_hint']}")


if __name__ == "__main__":
    main()
