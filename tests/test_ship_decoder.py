"""scripts/ship_decoder.py: the bundled decoder's file carries its version and the scores of exactly it."""

import importlib.util
import json
from pathlib import Path

import pytest

from adainrt.bundled import weights_metadata
from adainrt.info import describe_decoder

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ship_decoder.py"


def load_script():
    spec = importlib.util.spec_from_file_location("ship_decoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scores_of(tmp_path: Path, decoder_hash: str) -> Path:
    path = tmp_path / "scores.json"
    path.write_text(json.dumps({"backend": "torch", "decoder_hash": decoder_hash, "pairs": 36,
                                "style_ratio": 0.19, "content_loss": 4.7, "style_loss": 2.8}))
    return path


def test_ship_writes_fp16_with_version_and_evaluation(tmp_path, random_decoder):
    source = weights_metadata(random_decoder)
    out = tmp_path / "decoder.safetensors"
    load_script().ship(random_decoder, scores_of(tmp_path, source["weights_hash"]), "v9.9", "a test", out)
    meta = weights_metadata(out)
    assert meta["dtype"] == "float16" and meta["version"] == "v9.9" and meta["note"] == "a test"
    assert meta["evaluation"]["decoder_hash"] == source["weights_hash"] != meta["weights_hash"]
    assert describe_decoder(out).startswith("v9.9, ")
    assert "0.19 of the photos' (36 pairs)" in describe_decoder(out)


def test_ship_refuses_scores_of_another_decoder(tmp_path, random_decoder):
    out = tmp_path / "decoder.safetensors"
    with pytest.raises(SystemExit, match="scores decoder deadbeef"):
        load_script().ship(random_decoder, scores_of(tmp_path, "deadbeef"), "v9.9", "a test", out)
    assert not out.exists()
