"""Fuzz: corrupted images and weight files fed to stylize, style add and import-weights.

Every case must end either with exit 0 and a correct output, or with a one-line error and no
output: never a traceback, never a partial file, never temporary files left behind. Fixed
seeds, so a failure reproduces.
"""

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from tests.conftest import synthetic_image

SEED = 20261123


def corruptions(data: bytes, rng: np.random.Generator, count: int) -> list[tuple[str, bytes]]:
    """Truncations, byte flips and header-field changes of ``data``, ``count`` in all."""
    cases = []
    for i in range(count):
        kind = ("truncate", "flip", "header")[i % 3]
        blob = bytearray(data)
        if kind == "truncate":
            blob = blob[: int(rng.integers(0, len(blob)))]
        elif kind == "flip":
            for position in rng.integers(0, len(blob), int(rng.integers(1, 20))):
                blob[position] ^= int(rng.integers(1, 256))
        else:  # the first 64 bytes hold the format's size and type fields
            for position in rng.integers(0, min(64, len(blob)), int(rng.integers(1, 4))):
                blob[position] = int(rng.integers(0, 256))
        cases.append((f"{kind}-{i}", bytes(blob)))
    return cases


def png_with_size(data: bytes, width: int, height: int) -> bytes:
    """The PNG with its IHDR size changed and the chunk CRC fixed (a plausible lying header)."""
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return data[:16] + bytes(ihdr) + struct.pack(">I", zlib.crc32(b"IHDR" + bytes(ihdr))) + data[33:]


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    photo = synthetic_image(64, 80, seed=11)
    jpeg, png = io.BytesIO(), io.BytesIO()
    photo.save(jpeg, "JPEG", quality=90)
    photo.save(png, "PNG")
    return {"jpg": jpeg.getvalue(), "png": png.getvalue()}


def check(result, output) -> str:
    """'ok' or 'error' for a well-behaved run; fails the test otherwise."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    litter = [p.name for p in output.parent.glob(f".{output.name}.*")]
    assert not litter, litter
    if result.exit_code == 0:
        return "ok"
    last = result.output.strip().splitlines()[-1]
    assert result.exit_code == 1 and last.startswith("Error: ") and len(last) < 600, result.output
    assert not output.exists()
    return "error"


def test_fuzzed_images_through_stylize_and_style_add(tmp_path, seeds, exported_dir, monkeypatch):
    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path / "bank"))
    rng = np.random.default_rng(SEED)
    runner = CliRunner()
    good_style = tmp_path / "style.png"
    synthetic_image(48, 48, seed=3).save(good_style)
    cases = [(f"{ext}-{name}", ext, blob) for ext, data in seeds.items() for name, blob in corruptions(data, rng, 60)]
    cases += [("png-lying-size", "png", png_with_size(seeds["png"], 4000, 4000)),
              ("png-zero-size", "png", png_with_size(seeds["png"], 0, 0))]
    outcomes = {"ok": 0, "error": 0}
    for k, (name, ext, blob) in enumerate(cases):
        image = tmp_path / f"case{k}.{ext}"
        image.write_bytes(blob)
        output = tmp_path / "out" / f"case{k}.png"
        as_content = k % 3 != 2
        content, style = (image, good_style) if as_content else (good_style, image)
        result = runner.invoke(main, ["stylize", str(content), "-s", str(style), "-o", str(output), "--model",
                                      str(exported_dir), "--backend", "ort-cpu", "--content-size", "0",
                                      "--style-size", "0"])
        outcome = check(result, output)
        outcomes[outcome] += 1
        if outcome == "ok":
            with Image.open(output) as written:
                source = Image.open(content)
                assert written.size == source.size, name
        if k % 4 == 0:
            added = runner.invoke(main, ["style", "add", f"s{k}", str(image), "--model", str(exported_dir)])
            if check(added, tmp_path / "bank" / f"s{k}.npz") == "ok":
                assert runner.invoke(main, ["style", "list"]).exit_code == 0
    assert outcomes["error"] > 30 and sum(outcomes.values()) == len(cases)


def test_fuzzed_weight_files_through_import_weights(tmp_path):
    rng = np.random.default_rng(SEED + 1)
    state = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    runner = CliRunner()
    outcomes = {"ok": 0, "error": 0}
    for name, blob in corruptions(buffer.getvalue(), rng, 90) + [("random", rng.bytes(4000)), ("empty", b"")]:
        source = tmp_path / f"{name}.pth"
        source.write_bytes(blob)
        output = tmp_path / "out" / f"{name}.safetensors"
        result = runner.invoke(main, ["import-weights", str(source), "-o", str(output)])
        outcomes[check(result, output)] += 1
        assert "weights_only" not in result.output
    assert outcomes["error"] == 92  # an encoder with one conv of nine is refused, as every broken file is
