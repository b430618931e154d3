"""Fuzz: corrupted images and weight files fed to stylize, style add and import-weights; hostile
manifests fed to the Python and the C++ readers; damaged style bank entries fed to style list.

Every case must end either with exit 0 and a correct output, or with a one-line error and no
output: never a traceback, never a partial file, never temporary files left behind. Fixed
seeds, so a failure reproduces.
"""

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from adainrt.cli import main
from tests.helpers import synthetic_image

pytestmark = pytest.mark.slow  # over a hundred CLI stylizations and C++ runs: not the fast lane

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


# ------------------------------------------------------------------ manifests and bank entries

#: Graph names a hostile or careless manifest gives: paths out of the folder, odd file names.
HOSTILE_NAMES = ("../canary/adain_style.onnx", "/etc/passwd", "../../..", "..", ".", "", "sub/adain_encoder.onnx",
                 "adain_encoder.onnx\n", "..\\canary\\adain_decoder.onnx", "CANARY")


def hostile_values(rng: np.random.Generator) -> list:
    """Values of the wrong type, nesting and size put in place of a manifest's fields."""
    depth = int(rng.integers(2, 20_000))
    nested: object = []
    for _ in range(min(depth, 200)):
        nested = [nested]
    return [None, True, -1, 1e308, "1", [], {}, nested, "x" * int(rng.integers(1, 3_000_000)), [{"name": 1}],
            {"a": {"b": [1, 2, {"c": None}]}}, "[" * depth + "]" * depth]


def _fields(manifest: dict) -> list[tuple]:
    """Paths (key tuples) to every field of the manifest a reader looks at."""
    paths = [(key,) for key in manifest]
    for name, entry in manifest["graphs"].items():
        paths.append(("graphs", name))
        paths += [("graphs", name, key) for key in entry]
        paths += [("graphs", name, "inputs", 0, "name"), ("graphs", name, "outputs", 0, "shape")]
    paths += [("preprocessing", key) for key in manifest["preprocessing"]]
    return paths


def _set(document: dict, path: tuple, value: object) -> None:
    for key in path[:-1]:
        document = document[key]
    document[path[-1]] = value


def manifest_cases(manifest: dict, rng: np.random.Generator, count: int, canary: Path) -> list[tuple[str, str]]:
    """Manifest texts: fields of other types, deep nesting, huge sizes, graph names that are paths,
    deleted fields and damaged text, ``count`` in all."""
    text = json.dumps(manifest)
    fields = _fields(manifest)
    cases = []
    for i in range(count):
        kind = ("type", "path", "delete", "many", "text")[i % 5]
        edited = json.loads(text)
        if kind == "type":
            values = hostile_values(rng)
            _set(edited, fields[int(rng.integers(len(fields)))], values[int(rng.integers(len(values)))])
        elif kind == "path":
            names = [*HOSTILE_NAMES, str(canary / "adain_decoder.onnx")]
            victim = list(edited["graphs"])[int(rng.integers(len(edited["graphs"])))]
            new = names[int(rng.integers(len(names)))].replace("CANARY", str(canary / victim))
            edited["graphs"] = {(new if name == victim else name): e for name, e in edited["graphs"].items()}
        elif kind == "delete":
            path = fields[int(rng.integers(len(fields)))]
            parent = edited
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif kind == "many":
            extra = {f"g{k}.onnx": {"graph": "style", "precision": "fp32"} for k in range(int(rng.integers(1, 10_000)))}
            edited["graphs"] = {**extra, **edited["graphs"]} if i % 2 else {**edited["graphs"], **extra}
        if kind == "text":
            cases.append((f"text-{i}", corruptions(text.encode(), rng, 1)[0][1].decode("utf-8", "replace")))
        else:
            cases.append((f"{kind}-{i}", json.dumps(edited)))
    return cases


@pytest.fixture(scope="module")
def manifest_folders(tmp_path_factory, exported_dir) -> tuple[Path, list[tuple[str, Path]]]:
    """(canary folder, [(case, model folder)]): each folder holds the exported graphs (hard links: files
    inside it) and one fuzzed manifest. The canary folder, outside them, holds FIFOs named like the
    graphs: opening one blocks, so a reader that follows a path out of its folder hangs, and is caught."""
    root = tmp_path_factory.mktemp("manifests")
    canary = root / "canary"
    canary.mkdir()
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    for name in manifest["graphs"]:
        os.mkfifo(canary / name)
    base = root / "graphs"
    shutil.copytree(exported_dir, base)
    folders = []
    for k, (name, text) in enumerate(manifest_cases(manifest, np.random.default_rng(SEED + 2), 60, canary)):
        folder = root / f"case{k}"
        folder.mkdir()
        for graph in manifest["graphs"]:
            os.link(base / graph, folder / graph)
        (folder / "manifest.json").write_text(text)
        folders.append((name, folder))
    return canary, folders


class OpenedFiles:
    """Files Python opens while recording (an audit hook: every open, by any library, is seen)."""

    def __init__(self) -> None:
        self.paths: list[str] | None = None
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        if self.paths is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            self.paths.append(os.fsdecode(args[0]))


def test_fuzzed_manifests_through_the_python_reader(manifest_folders, exported_dir):
    from adainrt.contract import FORMS, verified_graphs
    from adainrt.errors import ModelError
    from adainrt.runtime import Stylizer

    _canary, folders = manifest_folders
    verified_graphs(exported_dir, FORMS["split"], "fp32")  # warm up: lazy imports open files of their own
    opened, outcomes = OpenedFiles(), {"ok": 0, "error": 0}
    for name, folder in folders:
        opened.paths = []
        try:
            for graphs in (FORMS["split"], FORMS["full"]):
                paths = verified_graphs(folder, graphs, "fp32")
                assert all(p.parent == folder for p in paths.values()), name
            outcome = "ok"
        except ModelError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) < 600 and str(folder) in message, (name, message)
            outcome = "error"
        outside = [p for p in opened.paths if not Path(p).resolve().is_relative_to(folder.resolve())]
        opened.paths = None
        assert not outside, (name, outside)
        if outcome == "ok" and outcomes["ok"] < 2:  # the graphs really load
            with Stylizer(folder, backend="ort-cpu") as stylizer:
                image = stylizer.stylize(synthetic_image(40, 48), synthetic_image(40, 40), 1.0)
                assert np.asarray(image).shape == (40, 48, 3)
        outcomes[outcome] += 1
    assert outcomes["error"] >= 30 and outcomes["ok"] >= 1, outcomes


def test_fuzzed_manifests_through_the_cpp_reader(manifest_folders, cpp_build, tmp_path):
    from adainrt.benchmarks import cpp_bench

    _canary, folders = manifest_folders
    content, style = tmp_path / "content.ppm", tmp_path / "style.ppm"
    synthetic_image(40, 48, seed=1).save(content, format="PPM")
    synthetic_image(40, 40, seed=2).save(style, format="PPM")
    outcomes = {"ok": 0, "error": 0}
    for k, (name, folder) in enumerate(folders):
        out = tmp_path / f"out{k}.ppm"
        try:
            done = subprocess.run([str(cpp_build / cpp_bench.EXAMPLE), str(folder), str(content), str(style), str(out)],
                                  capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{name}: the C++ reader hung: it opened a file outside {folder} (a canary FIFO)")
        assert done.returncode in (0, 1), (name, done.returncode, done.stderr)  # not a crash (signal)
        if done.returncode == 0:
            assert out.is_file(), name
            outcomes["ok"] += 1
        else:
            message = done.stderr.strip()
            assert message and "\n" not in message and len(message) < 600, (name, message)
            assert not out.exists()
            outcomes["error"] += 1
    assert outcomes["error"] >= 30 and outcomes["ok"] >= 1, outcomes


def bank_cases(rng: np.random.Generator) -> list[tuple[str, dict]]:
    """np.savez arguments of bank entries: records of other types and nesting, arrays of other shapes,
    types and values."""
    good = np.full((1, 512, 1, 1), 0.5, np.float32)
    records = ['{"source": "no name"}', '{"name": 5}', "[1, 2]", '"text"', "[" * 5000 + "]" * 5000, "{bad json",
               json.dumps({"name": "x" * 100_000}), '{"created": null, "style_size": "big"}']
    arrays = [np.zeros(3, np.float32), np.full((1, 512, 1, 1), np.inf, np.float32), good * 6e37, -good,
              np.array(["a"] * 512), good.astype(np.float64), np.zeros((1, 512, 1, 1, 1), np.float32)]
    cases = [(f"record{k}", {"mean": good, "std": good, "record": np.array(r)}) for k, r in enumerate(records)]
    for k, array in enumerate(arrays):
        which = ("mean", "std")[int(rng.integers(2))]
        cases.append((f"array{k}", {"mean": good, "std": good, which: array, "record": np.array("{}")}))
    cases.append(("norecord", {"mean": good, "std": good}))
    return cases


def test_fuzzed_bank_entries_through_style_list_and_get(tmp_path, monkeypatch):
    from adainrt.runtime.style_bank import MAX_STATISTIC, StyleBank, StyleBankError

    monkeypatch.setenv("ADAINRT_STYLES", str(tmp_path))
    rng = np.random.default_rng(SEED + 3)
    cases = bank_cases(rng)
    for name, arrays in cases:
        np.savez(tmp_path / f"{name}.npz", **arrays)
    good = (tmp_path / "record0.npz").read_bytes()
    for k, (_kind, blob) in enumerate(corruptions(good, rng, 12)):
        (tmp_path / f"bytes{k}.npz").write_bytes(blob)
    os.mkfifo(tmp_path / "pipe.npz")
    (tmp_path / "gone.npz").symlink_to(tmp_path / "nowhere.npz")
    (tmp_path / "folder.npz").mkdir()
    bank = StyleBank(tmp_path)
    names = bank.names()
    assert len(names) == len(cases) + 12 + 3
    listing = CliRunner().invoke(main, ["style", "list"])
    assert listing.exit_code == 0 and listing.exception is None, listing.output
    lines = listing.output.strip().splitlines()
    assert sorted(line.split()[0] for line in lines) == names  # each entry by its file's name, one line each
    for name in names:
        try:
            stored = bank.get(name)
        except StyleBankError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 600 and f"style remove {name}" in str(exc), str(exc)
            continue
        assert stored.info["name"] == name
        for array in (stored.stats.mean, stored.stats.std):
            assert array.shape == (1, 512, 1, 1) and np.isfinite(array).all()
            assert array.min() >= 0 and array.max() <= MAX_STATISTIC
