"""Copy a trained decoder into the package as FP16 (adainrt/assets/decoder.safetensors).

    adainrt evaluate --content HELDOUT/content --style HELDOUT/style --all-pairs --json \
        --decoder runs/decoder/decoder.safetensors > scores.json
    python scripts/ship_decoder.py runs/decoder/decoder.safetensors --scores scores.json --note "v1: ..."

Keeps the training metadata (steps, config, held-out losses) and records the note and the
evaluation (shown by `adainrt info`). Ship only a decoder that is measurably better than the
one it replaces (see MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from adainrt.weights import bundled_decoder_path, load_embedded_encoder, read_weights, save_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decoder", type=Path)
    parser.add_argument("--note", required=True, help="what this version is, for its metadata")
    parser.add_argument("--scores", type=Path, required=True,
                        help="`adainrt evaluate --all-pairs --json` of this decoder on the held-out images")
    args = parser.parse_args()
    state, meta = read_weights(args.decoder, "decoder")
    if meta["encoder_hash"] != load_embedded_encoder()[1]["weights_hash"]:
        raise SystemExit(f"{args.decoder} was not trained with the embedded encoder")
    evaluation = json.loads(args.scores.read_text())
    meta = {**meta, "source": "adainrt bundled decoder", "note": args.note, "evaluation": evaluation}
    out = save_weights(bundled_decoder_path(), state, meta, dtype=torch.float16)
    print(f"wrote {bundled_decoder_path()} ({out['weights_hash']}, {bundled_decoder_path().stat().st_size} bytes)")


if __name__ == "__main__":
    main()
