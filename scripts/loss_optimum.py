"""What the training loss itself asks for on one pair: the decoder's output, then that image
optimized pixel by pixel (Adam) against the same loss the trainer uses (content + style weight x
style + structure weight x structure), side by side with the photo.

It tells a decoder that under-fits a style apart from a loss that cannot do better: if the
optimized image keeps the photo recognizable and the decoder's does not, more or better training
can close the gap; if both lose it, only another loss or a lower alpha will.

    python scripts/loss_optimum.py PHOTO STYLE -o optimum.png [--decoder D] [--steps 300]

About 2 s a step for a 256-pixel pair on one AVX2 core (single-threaded, so a training run keeps
the other).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adainrt.images import center_crop, from_tensor, load_image, resize_smaller_side, save_image, to_tensor
from adainrt.network import adain_from_stats, encode_with_intermediates
from adainrt.train.losses import style_targets, stylization_losses
from adainrt.weights import load_decoder, load_encoder


def square(path: Path, size: int) -> torch.Tensor:
    """The image's centre square of side ``size`` (smaller side resized to it), (1, 3, size, size)."""
    return torch.from_numpy(to_tensor(center_crop(resize_smaller_side(load_image(path), size), size)))


#: (content loss, style loss, structure distance) of one image.
Losses = tuple[float, float, float]


def optimize(args: argparse.Namespace) -> tuple[list[torch.Tensor], Losses, Losses]:
    """(photo, decoder output, optimized image), and the losses of the decoder's output and of the
    optimized image."""
    encoder, meta = load_encoder()
    decoder, _ = load_decoder(args.decoder, meta)
    photo, style = square(args.photo, args.size), square(args.style, args.size)
    with torch.no_grad():
        targets = style_targets(encoder, style)
        photo_feats = encode_with_intermediates(encoder, photo)
        target = adain_from_stats(photo_feats[-1], *targets[-1])
        decoded = decoder(target).clamp(0, 1)
    image = decoded.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=args.lr)
    for step in range(args.steps + 1):
        losses = stylization_losses(encoder, image, target, targets, photo_feats)
        if step == 0:
            start = tuple(x.item() for x in losses)
        if step == args.steps:
            break
        loss = losses[0] + args.style_weight * losses[1] + args.structure_weight * losses[2]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    return [photo, decoded, image.detach()], start, tuple(x.item() for x in losses)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("style", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True, help="the three images side by side (.png)")
    parser.add_argument("--decoder", help="decoder weights (default: the bundled one)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--style-weight", type=float, default=10.0)
    parser.add_argument("--structure-weight", type=float, default=0.0)
    parser.add_argument("--overwrite", action="store_true")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    images, start, end = optimize(args)
    row = np.concatenate([np.asarray(from_tensor(x.numpy())) for x in images], axis=1)
    save_image(Image.fromarray(row), args.output, overwrite=args.overwrite)
    for label, (content, style, structure) in (("decoder", start), (f"{args.steps} steps", end)):
        print(f"{label}: content {content:.3f}, style {style:.3f}, structure {structure:.3f}")
    print(f"wrote {args.output} (photo | decoder | optimized)")


if __name__ == "__main__":
    main()
