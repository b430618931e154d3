"""`adainrt cache`: what the cache folder weighs, and clearing its derived parts (never stored styles)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from adainrt.cli import main
from adainrt.runtime import StyleStats, Stylizer
from adainrt.runtime.backend import get_backend
from adainrt.runtime.style_bank import StyleBank
from tests.helpers import synthetic_image


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def listed(name: str) -> dict:
    result = run("cache", "list", "--json")
    assert result.exit_code == 0, result.output
    return {part["name"]: part for part in json.loads(result.output)}[name]


def test_clearing_openvino_frees_its_compiled_models_and_keeps_stored_styles(tmp_path, monkeypatch, exported_dir):
    if get_backend("openvino").why_not():
        pytest.skip(f"openvino: {get_backend('openvino').why_not()}")
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADAINRT_STYLES", raising=False)
    stats = StyleStats(np.zeros((1, 512, 1, 1), np.float32), np.ones((1, 512, 1, 1), np.float32))
    StyleBank().add("kept", stats, {"source": "test"})
    photo = synthetic_image(64, 64)
    with Stylizer(exported_dir, "openvino", precision="fp32") as stylizer:
        before = np.asarray(stylizer.stylize(photo, photo), np.float32)
    compiled = listed("openvino")
    assert compiled["files"] > 0 and compiled["bytes"] > 100_000  # OpenVINO wrote its blobs there

    dry = run("cache", "clear", "openvino", "--dry-run")
    assert dry.exit_code == 0 and "would remove openvino" in dry.output and listed("openvino")["files"] > 0
    result = run("cache", "clear", "openvino")
    assert result.exit_code == 0 and "removed openvino" in result.output, result.output
    assert listed("openvino")["files"] == 0 and listed("styles")["files"] == 1
    assert StyleBank().names() == ["kept"]

    with Stylizer(exported_dir, "openvino", precision="fp32") as stylizer:  # compiles again
        after = np.asarray(stylizer.stylize(photo, photo), np.float32)
    assert np.abs(after - before).max() <= 1.0


def test_clear_refuses_styles_and_unknown_parts(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAINRT_CACHE", str(tmp_path / "cache"))
    for part in ("styles", "engines"):
        result = run("cache", "clear", part)
        assert result.exit_code == 1 and f"no cache part {part}" in result.output and "style remove" in result.output
    assert run("cache", "clear").output.strip() == "nothing to remove"
