"""The adainrt command line, end to end on real files."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from adainrt import weights
from adainrt.bundled import bundled_decoder_path
from adainrt.cli import main
from adainrt.weights import read_weights
from tests.helpers import NO_TORCH_PRELUDE, ORT_CPU


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="adainrt", catch_exceptions=False)


COMMANDS = ["export", "stylize", "bench", "info", "import-weights", "build-engine", "demo", "train", "evaluate",
            "style", "snapshot"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_teaches(command):
    result = run(command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output and len(result.output) > 200


@pytest.mark.slow
def test_export_then_stylize_with_the_exported_folder(tmp_path, random_decoder, images_dir):
    result = run("export", "--output", tmp_path / "graphs", "--form", "split", "--decoder", random_decoder,
                 "--triton-repo", tmp_path / "triton")
    assert result.exit_code == 0, result.output
    assert result.output.count("max |onnxruntime - torch|") == 3
    assert sorted(p.parent.name for p in (tmp_path / "triton").glob("*/config.pbtxt")) == [
        "adain_decoder", "adain_encoder", "adain_style"]
    result = run("stylize", *ORT_CPU, images_dir / "content_b.jpg", "--style", images_dir / "style_a.jpg",
                 "--output", tmp_path / "out.png", "--model", tmp_path / "graphs", "--content-size", "0")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out.png").size == (101, 77)


@pytest.mark.slow
def test_stylize_default_path_exports_into_the_cache(tmp_path, monkeypatch, random_decoder, images_dir):
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "styled.jpg"
    result = run("stylize", images_dir / "content_a.png", "--style", images_dir / "style_a.jpg",
                 "--output", out, "--decoder", random_decoder, "--content-size", "64", "--alpha", "0.5")
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (80, 64)  # 120x96 resized so the smaller side is 64
    assert len(list((tmp_path / "cache" / "onnx").glob("*/adain_decoder.onnx"))) == 1
    result = run("stylize", images_dir / "content_a.png", "--style", images_dir / "style_a.jpg",
                 "--output", out, "--decoder", random_decoder)
    assert result.exit_code == 1 and "already exist" in result.output and "--overwrite" in result.output


@pytest.mark.slow
def test_a_repeated_stylize_finds_its_cached_graphs_without_torch(tmp_path, monkeypatch, random_decoder,
                                                                 images_dir):
    from adainrt.export.cache import cached_model_dir, files_key

    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    decoder = tmp_path / "decoder.safetensors"
    shutil.copy(random_decoder, decoder)
    folder = cached_model_dir(None, decoder)  # the first call: torch, hashes, export
    script = NO_TORCH_PRELUDE + textwrap.dedent(f"""
        from adainrt.cli import main
        main(["stylize", {str(images_dir / "content_a.png")!r}, "--style", {str(images_dir / "style_a.jpg")!r},
              "--output", {str(tmp_path / "out.png")!r}, "--decoder", {str(decoder)!r}], standalone_mode=False)
        assert "torch" not in sys.modules
    """)
    env = {**os.environ, "ADAINRT_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "out.png").size == (640, 512)  # smaller side to --content-size 512
    key = files_key(None, decoder)
    os.utime(decoder, ns=(0, 0))  # a changed file misses the index and is hashed again
    assert files_key(None, decoder) != key and cached_model_dir(None, decoder) == folder


def test_stylize_folder_skips_a_corrupt_file_and_says_so(tmp_path, exported_dir, images_dir):
    contents = tmp_path / "contents"
    contents.mkdir()
    for name in ("content_a.png", "content_b.jpg"):
        shutil.copy(images_dir / name, contents / name)
    (contents / "broken.jpg").write_bytes(b"not an image")
    result = run("stylize", *ORT_CPU, contents, "--style", images_dir / "style_a.jpg", "--output", tmp_path / "out",
                 "--model", exported_dir, "--content-size", "48", "--crop")
    assert result.exit_code == 1
    assert "broken.jpg: not an image file" in result.output and "1 of 3 inputs" in result.output
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["content_a_stylized_style_a.png", "content_b_stylized_style_a.png"]
    assert Image.open(tmp_path / "out" / written[0]).size == (48, 48)
    # a rerun refuses to overwrite; with --skip-existing it resumes: only the missing output is made
    (contents / "broken.jpg").unlink()
    again = ["stylize", *ORT_CPU, contents, "--style", images_dir / "style_a.jpg", "--output", tmp_path / "out",
             "--model", exported_dir, "--content-size", "48", "--crop"]
    assert run(*again).exit_code == 1
    kept = (tmp_path / "out" / written[0]).stat().st_mtime_ns
    (tmp_path / "out" / written[1]).unlink()
    resumed = run(*again, "--skip-existing")
    assert resumed.exit_code == 0, resumed.output
    assert "1 output(s) already written, left alone; 1 to do" in resumed.output
    assert (tmp_path / "out" / written[1]).is_file()
    assert (tmp_path / "out" / written[0]).stat().st_mtime_ns == kept


def test_stylize_bad_inputs(tmp_path, exported_dir, images_dir):
    style = images_dir / "style_a.jpg"
    result = run("stylize", images_dir / "content_a.png", "--style", style, "--output", tmp_path / "o.png",
                 "--model", exported_dir, "--alpha", "1.5")
    assert result.exit_code == 1 and "alpha must be in [0, 1]" in result.output and "1.5" in result.output
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    result = run("stylize", tmp_path / "dot.png", "--style", style, "--output", tmp_path / "o.png",
                 "--model", exported_dir, *ORT_CPU)
    assert result.exit_code == 1 and "1x1 is too small" in result.output
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = run("stylize", tmp_path / "bad.jpg", "--style", style, "--output", tmp_path / "o.png",
                 "--model", exported_dir, *ORT_CPU)
    assert result.exit_code == 1 and "bad.jpg: not a readable image" in result.output
    assert not (tmp_path / "o.png").exists()


def test_missing_decoder_is_a_clear_error(tmp_path, monkeypatch, images_dir):
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(weights, "bundled_decoder_path", lambda _variant="full": tmp_path / "none.safetensors")
    result = run("stylize", images_dir / "content_a.png", "--style", images_dir / "style_a.jpg",
                 "--output", tmp_path / "o.png")
    assert result.exit_code == 1 and "no trained decoder is bundled" in result.output
    result = run("stylize", images_dir / "content_a.png", "--style", images_dir / "style_a.jpg",
                 "--output", tmp_path / "o.png", "--decoder", tmp_path / "missing.safetensors")
    assert result.exit_code == 1 and "missing.safetensors: no such weight file" in result.output


def test_bench_json_times_onnxruntime_and_torch(exported_dir, random_decoder, tmp_path):
    result = run("bench", "--size", "64", "--runs", "2", "--warmup", "1", "--json", "--model", exported_dir,
                 "--decoder", random_decoder, "--plot", tmp_path / "fps.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "fps.png").size == (900, 560)
    rows = json.loads(result.stdout[result.stdout.index("["):])
    assert {(r["backend"], r["path"]) for r in rows} >= {("ort-cpu", "full"), ("ort-cpu", "cached-style"),
                                                        ("torch", "full"), ("torch", "cached-style")}
    assert all(r["fps"] > 0 and r["p95_ms"] >= r["p50_ms"] > 0 and r["runs"] == 2 for r in rows)
    fp32 = [r for r in rows if r["backend"] in ("ort-cpu", "torch")]  # each path's own output vs the reference
    assert len(fp32) == 4 and all(r["psnr_db"] is None or r["psnr_db"] > 60 for r in fp32)
    assert any(r["psnr_db"] is not None for r in fp32 if r["path"] == "cached-style")


def test_info_reports_providers_and_choice():
    result = run("info", "--json")
    report = json.loads(result.output)
    assert "CPUExecutionProvider" in report["providers"]
    assert report["backend (auto)"].split(" ")[0] in {b["name"] for b in report["backends"] if b["available"]}
    assert {b["name"] for b in report["backends"]} >= {"tensorrt", "ort-trt", "ort-cuda", "ort-cpu"}
    assert all(set(b) >= {"name", "available", "reason"} and b["reason"] for b in report["backends"])
    assert all(b["precision"] for b in report["backends"] if b["available"])
    steps = read_weights(bundled_decoder_path(), "decoder")[1]["steps"]  # what the file records, read with torch
    assert f"{steps} steps" in report["bundled decoder"] and "held-out style loss 0." in report["bundled decoder"]


def test_import_weights_cli(tmp_path):
    torch.save({"1.weight": torch.zeros(256, 512, 3, 3)}, tmp_path / "decoder.pth")
    result = run("import-weights", tmp_path / "decoder.pth", "--output", tmp_path / "d.safetensors")
    assert result.exit_code == 1 and "decoder.pth" in result.output


def test_bench_compare_checks_backends_against_fp32_cpu(exported_dir, random_decoder):
    result = run("bench", "--compare", "--size", "64", "--json", "--model", exported_dir, "--decoder", random_decoder)
    assert result.exit_code == 0, result.output
    rows = {r["backend"]: r for r in json.loads(result.output[result.output.index("["):], parse_constant=pytest.fail)}
    assert rows["ort-cpu"]["max_abs_error"] <= 1e-6
    assert rows["torch"]["psnr_db"] > 60 and rows["torch"]["max_abs_error"] < 1e-4
