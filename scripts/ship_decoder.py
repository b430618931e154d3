"""Copy a trained decoder into the package as FP16 (adainrt/assets/decoder.safetensors), or a
narrower variant's encoder and decoder as they are (lite_encoder/lite_decoder.safetensors: FP32,
since the decoder records its encoder's hash and both are small).

    adainrt evaluate --content HELDOUT/content --style HELDOUT/style --all-pairs --json \
        --decoder runs/decoder/decoder.safetensors > scores.json
    python scripts/ship_decoder.py runs/decoder/decoder.safetensors --scores scores.json \
        --version v1 --note "what changed"
    adainrt evaluate ... --variant lite --encoder runs/lite/encoder.safetensors \
        --decoder runs/lite/decoder.safetensors --json > lite.json
    python scripts/ship_decoder.py runs/lite/decoder.safetensors --encoder runs/lite/encoder.safetensors \
        --scores lite.json --version lite-v1 --note "what changed"

Keeps the training metadata (steps, config, held-out losses) and records the version, the note
and the evaluation (shown by `adainrt info`). The evaluation must be of this very decoder file
(its weights hash), so a table in the model card cannot describe other weights. Ship only a
decoder that is measurably better than the one it replaces on held-out data, and where it trades
one measure for another (v0.9: style ratio for structure), say so in MODEL_CARD.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from adainrt.bundled import bundled_decoder_path, bundled_encoder_path
from adainrt.weights import load_embedded_encoder, read_weights, save_weights


def ship_encoder(encoder: Path, variant: str) -> str:
    """A narrower variant's encoder into the package as it is; returns its weights hash."""
    state, meta = read_weights(encoder, "encoder")
    if meta["variant"] != variant:
        raise SystemExit(f"{encoder} is a {meta['variant']} encoder, not {variant}")
    meta = {**meta, "source": f"adainrt bundled {variant} encoder ({meta.get('source', '')})"}
    return save_weights(bundled_encoder_path(variant), state, meta)["weights_hash"]


def ship(decoder: Path, scores: Path, version: str, note: str, destination: Path,
         encoder_hash: str | None = None) -> dict:
    """Write ``decoder`` to ``destination`` with its evaluation (full's as FP16); refuse mismatched inputs."""
    state, meta = read_weights(decoder, "decoder")
    if meta["encoder_hash"] != (encoder_hash or load_embedded_encoder()[1]["weights_hash"]):
        raise SystemExit(f"{decoder} was not trained with the {'given' if encoder_hash else 'embedded'} encoder")
    evaluation = json.loads(scores.read_text())
    evaluation = evaluation if "decoder_hash" in evaluation else next(
        (e for e in evaluation.get("variants", []) if e.get("decoder_hash") == meta["weights_hash"]), {})
    if evaluation.get("decoder_hash") != meta["weights_hash"]:
        raise SystemExit(f"{scores} scores decoder {evaluation.get('decoder_hash')}, not {decoder} "
                         f"({meta['weights_hash']}): run `adainrt evaluate --json --decoder {decoder}` again")
    meta = {**meta, "source": f"adainrt bundled {meta['variant']} decoder", "version": version, "note": note,
            "evaluation": evaluation}
    return save_weights(destination, state, meta, dtype=torch.float16 if encoder_hash is None else torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decoder", type=Path)
    parser.add_argument("--encoder", type=Path, help="a narrower variant's encoder, shipped with its decoder")
    parser.add_argument("--version", required=True, help="the decoder's version, e.g. v0.4")
    parser.add_argument("--note", required=True, help="what changed in this version, for its metadata")
    parser.add_argument("--scores", type=Path, required=True,
                        help="`adainrt evaluate --all-pairs --json` of this decoder on the held-out images")
    args = parser.parse_args()
    variant = read_weights(args.decoder, "decoder")[1]["variant"]
    if (variant == "full") != (args.encoder is None):
        raise SystemExit("a narrower variant ships with its --encoder; the full decoder with the embedded one")
    encoder_hash = ship_encoder(args.encoder, variant) if args.encoder else None
    destination = bundled_decoder_path(variant)
    out = ship(args.decoder, args.scores, args.version, args.note, destination, encoder_hash)
    print(f"wrote {destination} ({out['weights_hash']}, {destination.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
