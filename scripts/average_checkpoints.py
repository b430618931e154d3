"""Average decoder weights of several checkpoints into one decoder file (checkpoint averaging).

    python scripts/average_checkpoints.py runs/v5/snapshots/step_00*.pt --steps 23000 \
        --output runs/v5/averaged.safetensors

Inputs: the trainer's checkpoint.pt files, or plain decoder state dicts (.pt), all from one run
with the embedded encoder. `adainrt train --ema-decay` keeps such an average during training;
this script is for runs that had none (decoder v0.3 was made this way, see MODEL_CARD.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from adainrt.weights import load_embedded_encoder, save_weights


def decoder_state(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("decoder", state)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True, help="training steps of the last checkpoint")
    args = parser.parse_args()
    states = [decoder_state(p) for p in sorted(args.checkpoints)]
    mean = {key: torch.stack([s[key].float() for s in states]).mean(0) for key in states[0]}
    meta = {"kind": "decoder", "source": "adainrt train (checkpoint average)",
            "encoder_hash": load_embedded_encoder()[1]["weights_hash"],
            "steps": args.steps, "averaged": [p.name for p in sorted(args.checkpoints)]}
    out = save_weights(args.output, mean, meta, overwrite=False)
    print(f"wrote {args.output}: mean of {len(states)} checkpoints ({out['weights_hash']})")


if __name__ == "__main__":
    main()
