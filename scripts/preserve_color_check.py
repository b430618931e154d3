"""Mean-colour miss of `--preserve-color color` on held-out pairs, before and after the runtime's
mean-colour shift (issue #25 asks for 0.05 per channel at most).

The model runs through PyTorch (what the exported graphs compute), the style recoloured to the
photo as the runtime does (match_color), then the runtime's match_mean_color. Pairs: every 8th
held-out photo with every 5th held-out style of train/heldout.txt.

    python scripts/preserve_color_check.py [DECODER] [--data ../shared/data]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from adainrt.images import load_image, resize_smaller_side, to_tensor
from adainrt.network import AdaINModel
from adainrt.runtime.controls import match_color, match_mean_color
from adainrt.train.data import default_heldout_list, read_heldout_list
from adainrt.weights import load_decoder, load_encoder


def mean_miss(image: np.ndarray, photo: np.ndarray) -> float:
    """The largest per-channel difference of mean colour."""
    return float(np.abs(image.reshape(-1, 3).mean(0) - photo.reshape(-1, 3).mean(0)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decoder", nargs="?", help="decoder weights (default: the bundled one)")
    parser.add_argument("--data", default="../shared/data", help="folder with content/ and style/")
    args = parser.parse_args()
    encoder, meta = load_encoder()
    decoder, _ = load_decoder(args.decoder, meta)
    model = AdaINModel(encoder, decoder).eval()
    heldout = read_heldout_list(default_heldout_list())
    before, after = [], []
    for photo_name, style_name in zip(sorted(heldout["content"])[::8], sorted(heldout["style"])[::5]):
        photo = resize_smaller_side(load_image(f"{args.data}/content/{photo_name}"), 256)
        style = resize_smaller_side(load_image(f"{args.data}/style/{style_name}"), 256)
        rgb = np.asarray(photo, np.float32) / 255
        recoloured = match_color(np.asarray(style, np.float32) / 255, rgb)
        with torch.no_grad():
            out = model(torch.from_numpy(to_tensor(photo)),
                        torch.from_numpy(np.ascontiguousarray(recoloured.transpose(2, 0, 1)[None])), torch.ones(1))
        out = out.clamp(0, 1).numpy()[0].transpose(1, 2, 0)
        before.append(mean_miss(out, rgb))
        after.append(mean_miss(match_mean_color(out, rgb), rgb))
        print(f"{photo_name:45s} {style_name:45s} {before[-1]:.4f} -> {after[-1]:.4f}")
    print(f"largest miss: {max(before):.4f} style recoloured only, {max(after):.4f} with the shift")


if __name__ == "__main__":
    main()
