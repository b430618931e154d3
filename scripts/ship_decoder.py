"""Copy a trained decoder into the package as FP16 (adainrt/assets/decoder.safetensors).

    adainrt evaluate --content HELDOUT/content --style HELDOUT/style --all-pairs --json \
        --decoder runs/decoder/decoder.safetensors > scores.json
    python scripts/ship_decoder.py runs/decoder/decoder.safetensors --scores scores.json \
        --version v1 --note "what changed"

Keeps the training metadata (steps, config, held-out losses) and records the version, the note
and the evaluation (shown by `adainrt info`). The evaluation must be of this very decoder file
(its weights hash), so a table in the model card cannot describe other weights. Ship only a
decoder that is measurably better than the one it replaces (see MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from adainrt.weights import bundled_decoder_path, load_embedded_encoder, read_weights, save_weights


def ship(decoder: Path, scores: Path, version: str, note: str, destination: Path) -> dict:
    """Write ``decoder`` as FP16 to ``destination`` with its evaluation; refuse mismatched inputs."""
    state, meta = read_weights(decoder, "decoder")
    if meta["encoder_hash"] != load_embedded_encoder()[1]["weights_hash"]:
        raise SystemExit(f"{decoder} was not trained with the embedded encoder")
    evaluation = json.loads(scores.read_text())
    if evaluation.get("decoder_hash") != meta["weights_hash"]:
        raise SystemExit(f"{scores} scores decoder {evaluation.get('decoder_hash')}, not {decoder} "
                         f"({meta['weights_hash']}): run `adainrt evaluate --json --decoder {decoder}` again")
    meta = {**meta, "source": "adainrt bundled decoder", "version": version, "note": note,
            "evaluation": evaluation}
    return save_weights(destination, state, meta, dtype=torch.float16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decoder", type=Path)
    parser.add_argument("--version", required=True, help="the decoder's version, e.g. v0.4")
    parser.add_argument("--note", required=True, help="what changed in this version, for its metadata")
    parser.add_argument("--scores", type=Path, required=True,
                        help="`adainrt evaluate --all-pairs --json` of this decoder on the held-out images")
    args = parser.parse_args()
    destination = bundled_decoder_path()
    out = ship(args.decoder, args.scores, args.version, args.note, destination)
    print(f"wrote {destination} ({out['weights_hash']}, {destination.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
