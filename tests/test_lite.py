"""The lite variant (issue #26): one width plan beside full's, exported, stored, served and consumed by
OpenCV, C++, Triton, TensorRT profiles, Ray and the server with no change of their own; never mixed
with full's graphs, weights or styles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from adainrt.spec import VARIANTS
from tests.helpers import ORT_CPU, http_call, psnr, running_server, synthetic_image


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_each_variant_is_one_width_plan_and_info_lists_their_cost():
    from adainrt.network import build_decoder, build_encoder, conv_layers

    full, lite = VARIANTS["full"], VARIANTS["lite"]
    assert lite.widths == tuple(w // 4 for w in full.widths) and lite.feature_channels == 128
    for variant in (full, lite):
        encoder, decoder = build_encoder(variant.name), build_decoder(variant.name)
        convs = [(c.in_channels, c.out_channels) for _, c in conv_layers(encoder)[1:]]
        assert convs == [c for c in variant.encoder_convs() if c not in ("M", "U")]
        assert conv_layers(decoder)[0][1].in_channels == variant.feature_channels
        params = sum(p.numel() for p in (*encoder.parameters(), *decoder.parameters()))
        assert params == variant.parameters()
    assert full.gmac(512, 512) == pytest.approx(126.5, abs=0.1)  # the estimate from the layer shapes
    assert 15 < full.gmac(512, 512) / lite.gmac(512, 512) < 16.5
    report = json.loads(run("info", "--json").stdout)
    listed = {v["name"]: v for v in report["variants"]}
    assert listed["lite"]["parameters"] == lite.parameters()
    assert listed["lite"]["gmac"]["512x512"] == pytest.approx(8.08)
    assert "distilled" in listed["lite"]["bundled"] or "steps" in listed["lite"]["bundled"]


def test_a_lite_export_records_its_variant_and_every_cpu_backend_runs_it_as_torch_does(lite_dir):
    import torch

    from adainrt.contract import read_manifest
    from adainrt.export.cache import load_model
    from adainrt.runtime import Stylizer

    manifest = read_manifest(lite_dir)
    assert manifest["variant"] == "lite" and manifest["feature_channels"] == 128
    assert manifest["graphs"]["adain_style.onnx"]["outputs"][0]["shape"] == [1, 128, 1, 1]
    model, _ = load_model(None, None, "lite")
    content, style = np.asarray(synthetic_image(77, 101, seed=1)), np.asarray(synthetic_image(64, 96, seed=2))
    with torch.no_grad():
        tensors = (torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None] for a in (content, style))
        expected = model(*tensors, torch.tensor([0.7]))[0].clamp(0, 1).permute(1, 2, 0).numpy()
    for backend, precision in (("ort-cpu", "fp32"), ("openvino", "fp32")):
        with Stylizer(lite_dir, backend=backend, precision=precision) as stylizer:
            assert stylizer.variant.name == "lite"
            out = stylizer.stylize(content, style, 0.7)
        assert out.shape == content.shape and out.std() > 3
        assert psnr(out.astype(np.float32) / 255, expected) > 45, backend  # uint8 rounding bounds it


@pytest.mark.parametrize("variant", ["full", "lite"])
def test_opencv_dnn_runs_both_variants_as_onnxruntime_does(variant, exported_dir, lite_dir):
    """OpenCV's DNN module (the most common C++ ONNX consumer) loads the one-graph export of each variant
    and computes what onnxruntime computes (reflect padding, the cropping, AdaIN's statistics)."""
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless is not installed (pip install adainrt[test])")
    import onnxruntime

    graph = str((exported_dir if variant == "full" else lite_dir) / "adain_full.onnx")
    rng = np.random.default_rng(3)
    feeds = {"content": rng.random((1, 3, 77, 101), dtype=np.float32),
             "style": rng.random((1, 3, 64, 96), dtype=np.float32), "alpha": np.array([0.7], np.float32)}
    net = cv2.dnn.readNetFromONNX(graph)
    for name, value in feeds.items():
        net.setInput(value, name)
    got = net.forward()
    expected = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    assert got.shape == expected.shape == (1, 3, 77, 101)
    assert psnr(got, expected, peak=float(expected.max() - expected.min())) > 100  # lite: 124.7 dB measured


def test_variants_never_mix_graphs_weights_or_styles(lite_dir, exported_dir, tmp_path, monkeypatch):
    from adainrt.bundled import bundled_decoder_path, bundled_encoder_path
    from adainrt.errors import WeightsError
    from adainrt.runtime import Stylizer
    from adainrt.runtime.controls import ControlError
    from adainrt.weights import load_decoder, load_encoder

    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path / "bank"))
    photo, painting = tmp_path / "photo.png", tmp_path / "painting.png"
    synthetic_image(64, 64, seed=4).save(photo)
    synthetic_image(64, 64, seed=5).save(painting)

    asked = run("stylize", photo, "-s", painting, "-o", tmp_path / "o.png", "--model", lite_dir, "--variant", "full")
    assert asked.exit_code == 1 and "holds the graphs of the lite network, not full" in asked.output
    assert len(asked.output.strip().splitlines()) == 1

    stored = run("style", "add", "paint", painting, "--model", lite_dir)
    assert stored.exit_code == 0, stored.output
    listed = run("style", "list")
    assert "(lite, size 512" in listed.output
    wrong = run("stylize", *ORT_CPU, photo, "-s", "paint", "-o", tmp_path / "o.png", "--model", exported_dir)
    assert wrong.exit_code == 1 and "stored for the lite network, but the model in use is full" in wrong.output
    assert "--variant full --overwrite" in wrong.output and "--variant lite" in wrong.output
    right = run("stylize", *ORT_CPU, photo, "-s", "paint", "-o", tmp_path / "o.png", "--model", lite_dir)
    assert right.exit_code == 0 and Image.open(tmp_path / "o.png").size == (512, 512), right.output  # --content-size

    with Stylizer(lite_dir, backend="ort-cpu") as lite, Stylizer(exported_dir, backend="ort-cpu") as full:
        full_stats = full.style_stats(np.asarray(Image.open(painting)))
        with pytest.raises(ControlError, match=r"the lite network's are \(1, 128, 1, 1\)"):
            lite.stylize(np.asarray(Image.open(photo)), full_stats)

    with pytest.raises(WeightsError, match="a lite encoder, but the full network was asked for"):
        load_encoder(bundled_encoder_path("lite"), "full")
    _, full_meta = load_encoder(None)
    with pytest.raises(WeightsError, match="a lite decoder, but the encoder in use is full's"):
        load_decoder(bundled_decoder_path("lite"), full_meta)


def test_triton_configs_and_tensorrt_profiles_take_lite_widths(lite_dir, tmp_path):
    from adainrt.export.triton import write_triton_repository
    from adainrt.runtime.backends.tensorrt.engine import profiles_for

    files = [lite_dir / name for name in ("adain_full.onnx", "adain_encoder.onnx", "adain_style.onnx",
                                          "adain_decoder.onnx")]
    repo = write_triton_repository(files, tmp_path / "repo")
    configs = {path.name: (path / "config.pbtxt").read_text() for path in repo}
    assert "dims: [ 128, -1, -1 ]" in configs["adain_encoder"]  # batched: the batch is left out
    assert configs["adain_style"].count("dims: [ 1, 128, 1, 1 ]") == 2
    assert "512" not in configs["adain_decoder"]
    profiles = {p.name: p for p in profiles_for(lite_dir / "adain_decoder.onnx")}
    assert profiles["style_mean"].opt == (1, 128, 1, 1) and profiles["content_features"].max[1] == 128


@pytest.mark.slow
def test_bench_times_both_variants_in_one_run_with_their_cost(tmp_path):
    done = run("bench", "--variant", "full", "--variant", "lite", "--size", "64", "--runs", "1", "--warmup", "0",
               "--backend", "ort-cpu", "--json")
    assert done.exit_code == 0, done.output
    rows = json.loads(done.stdout)
    by = {(r["variant"], r["path"]): r for r in rows}
    assert set(by) == {(v, p) for v in ("full", "lite") for p in ("full", "cached-style")}
    assert by[("full", "cached-style")]["gmac"] / by[("lite", "cached-style")]["gmac"] > 15
    assert all(r["psnr_db"] is None or r["psnr_db"] > 60 for r in rows)  # each against its own variant
    mixed = run("bench", "--variant", "full", "--variant", "lite", "--model", tmp_path)
    assert mixed.exit_code == 1 and "one variant" in mixed.output


@pytest.mark.slow
def test_the_server_serves_a_lite_export_unchanged(lite_dir, tmp_path):
    from adainrt.runtime import Stylizer

    photo, painting = synthetic_image(72, 88, seed=6), synthetic_image(64, 64, seed=7)

    def png(image: Image.Image) -> bytes:
        path = tmp_path / "body.png"
        image.save(path)
        return path.read_bytes()

    with running_server(["--model", str(lite_dir), "--backend", "ort-cpu"], tmp_path / "bank") as url:
        status, _, body = http_call(f"{url}/healthz")
        assert status == 200 and json.loads(body)["variant"] == "lite"
        assert http_call(f"{url}/v1/styles/paint?size=0", png(painting))[0] == 201
        assert json.loads(http_call(f"{url}/v1/styles")[2]) == ["paint"]
        status, _, body = http_call(f"{url}/v1/stylize?style=paint&alpha=0.8&size=0", png(photo))
        assert status == 200, body[:300]
    (tmp_path / "out.png").write_bytes(body)
    served = np.asarray(Image.open(tmp_path / "out.png").convert("RGB"), np.int16)
    with Stylizer(lite_dir, backend="ort-cpu") as stylizer:
        expected = stylizer.stylize(np.asarray(photo), np.asarray(painting), 0.8).astype(np.int16)
    assert served.shape == expected.shape and np.abs(served - expected).max() <= 2


@pytest.mark.slow
def test_a_folder_on_ray_takes_a_lite_export_unchanged(lite_dir, tmp_path):
    pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'adainrt[serve]')")
    from adainrt.runtime import Stylizer

    folder, out, style = tmp_path / "photos", tmp_path / "out", tmp_path / "paint.png"
    folder.mkdir()
    photos = {f"p{k}": synthetic_image(64, 72, seed=20 + k) for k in range(3)}
    for name, image in photos.items():
        image.save(folder / f"{name}.png")
    synthetic_image(64, 64, seed=30).save(style)
    done = subprocess.run([sys.executable, "-m", "adainrt.cli", "stylize", str(folder), "-s", str(style), "-o",
                           str(out), "--model", str(lite_dir), "--backend", "ort-cpu", "--content-size", "0",
                           "--style-size", "0", "--ray", "--workers", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    with Stylizer(lite_dir, backend="ort-cpu") as stylizer:
        for name, image in photos.items():
            expected = np.asarray(stylizer.stylize(image, Image.open(style).convert("RGB")), np.int16)
            got = np.asarray(Image.open(out / f"{name}_stylized_paint.png").convert("RGB"), np.int16)
            assert np.abs(got - expected).max() <= 2, name


def tiny_folders(root: Path) -> tuple[Path, Path]:
    """content/ (4 photos) and style/ (3 paintings) of generated images, 80x96."""
    for kind, count, seed in (("content", 4, 40), ("style", 3, 50)):
        (root / kind).mkdir(parents=True)
        for k in range(count):
            synthetic_image(80, 96, seed=seed + k).save(root / kind / f"{kind[0]}{k}.png")
    return root / "content", root / "style"


@pytest.mark.slow
def test_train_distills_a_lite_network_that_exports_and_runs(tmp_path):
    """`adainrt train --variant lite` end to end on tiny folders: the teacher's pool, both phases, a
    checkpoint and a resume, weights that record their variant and export as lite graphs."""
    from adainrt.bundled import weights_metadata

    contents, styles = tiny_folders(tmp_path / "data")
    heldout = tmp_path / "heldout.txt"
    heldout.write_text("content/c0.png\nstyle/s0.png\n")
    args = ["train", "--variant", "lite", "--content", contents, "--style", styles,
            "-o", tmp_path / "run", "--holdout-list", heldout, "--pool-pairs", "8", "--distill-iters", "2",
            "--crop", "64", "--resize", "64", "--batch-size", "2", "--eval-every", "0", "--checkpoint-every", "2"]
    first = run(*args, "--max-iter", "3")
    assert first.exit_code == 0, first.output
    refused = run(*args, "--max-iter", "4", "--invert-iters", "2")
    assert refused.exit_code == 1 and "--invert-iters: options of the full decoder's training" in refused.output
    plain = run("train", "--content", contents, "--style", styles, "-o", tmp_path / "run", "--resume")
    assert plain.exit_code == 1 and "resume it with --variant lite" in plain.output, plain.output
    resumed = run(*args, "--max-iter", "4", "--resume", "--structure-weight", "2")
    assert resumed.exit_code == 0 and "(step 4)" in resumed.output, resumed.output
    assert "resuming with --structure-weight 2.0 (was 0.0)" in resumed.output
    encoder, decoder = tmp_path / "run" / "encoder.safetensors", tmp_path / "run" / "decoder.safetensors"
    assert weights_metadata(encoder)["variant"] == weights_metadata(decoder)["variant"] == "lite"
    # a snapshot of the run's checkpoint is the pair it exported (both from the step-4 weights average)
    now = tmp_path / "now.safetensors"
    snap = run("snapshot", tmp_path / "run", "-o", now)
    assert snap.exit_code == 0 and "now.encoder.safetensors" in snap.output and "(step 4)" in snap.output, snap.output
    for mine, theirs in ((tmp_path / "now.encoder.safetensors", encoder), (now, decoder)):
        assert weights_metadata(mine)["weights_hash"] == weights_metadata(theirs)["weights_hash"]
    (tmp_path / "now.encoder.safetensors").unlink()
    again_snap = run("snapshot", tmp_path / "run", "-o", now)  # the decoder is there: nothing written at all
    assert again_snap.exit_code == 1 and "--overwrite" in again_snap.output
    assert not (tmp_path / "now.encoder.safetensors").exists()
    exported = run("export", "-o", tmp_path / "graphs", "--encoder", encoder, "--decoder", decoder, "--form", "split")
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "graphs" / "manifest.json").read_text())["variant"] == "lite"
    # another run starts from these weights (a run's folder, or the shipped ones): at step 0 it writes them back
    again = [*args[:7], "-o", tmp_path / "again", *args[9:]]
    started = run(*again, "--start-from", tmp_path / "run", "--max-iter", "0")
    assert started.exit_code == 0, started.output
    for kind in ("encoder", "decoder"):
        assert weights_metadata(tmp_path / "again" / f"{kind}.safetensors")["weights_hash"] == \
            weights_metadata(tmp_path / "run" / f"{kind}.safetensors")["weights_hash"]
    missing = run(*args[:7], "-o", tmp_path / "third", *args[9:], "--start-from", tmp_path / "nowhere")
    assert missing.exit_code == 1 and "start_from" in missing.output and "nowhere" in missing.output


@pytest.mark.slow
def test_evaluate_scores_both_variants_side_by_side(tmp_path):
    contents, styles = tiny_folders(tmp_path / "data")
    done = run("evaluate", "--content", contents, "--style", styles, "--size", "64",
               "--variant", "full", "--variant", "lite", "--sheet", tmp_path / "sheet.png")
    assert done.exit_code == 0, done.output
    assert "variant                       lite" in done.output and "ratio / full" in done.output
    assert (tmp_path / "sheet_full.png").is_file() and (tmp_path / "sheet_lite.png").is_file()
    with Image.open(tmp_path / "sheet_lite.png") as sheet:  # 128-pixel cells unless --sheet-cell
        assert sheet.size[0] % 128 == 0 and sheet.size[1] % 128 == 0 and sheet.size[0] > 128
    lines = [line.split() for line in done.output.splitlines() if line.startswith("1 ")]
    assert [line[1] for line in lines] == ["full", "lite"] and float(lines[0][-1]) == pytest.approx(1.0)
