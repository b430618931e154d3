"""How much of a crop the trainer's drawing augmentations ink, against a real sketch.

The share of pixels farther than 0.1 from the paper (the drawing's lightest value; its darkest for
chalk on a dark ground), for `line_drawing` (--line-styles) and `sketch_drawing` (--sketch-styles)
on random 128-pixel crops of the training styles resized to 256 (as `adainrt train --resize 256
--crop 128` cuts them), and for each given sketch at 256 pixels.

    python scripts/drawing_sparsity.py [--data ../shared/data] [--crops 150] [SKETCH ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from adainrt.images import load_image, resize_smaller_side, to_tensor
from adainrt.train.data import (
    ImageFolder,
    default_heldout_list,
    inked_share,
    line_drawing,
    read_heldout_list,
    sketch_drawing,
)


def training_crops(style_dir: Path, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random 128-pixel crops of the training styles (the held-out list's left out), cut
    the trainer's way: ``ImageFolder.load`` at 256 pixels, then ``random_crops`` (no augmentation)."""
    heldout = read_heldout_list(default_heldout_list())["style"]
    styles = ImageFolder.load(style_dir, resize=256, min_side=128, heldout_names=heldout)
    return styles.random_crops(rng, count, 128)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sketches", nargs="*", type=Path, help="real sketches to compare (default: the "
                        "held-out piano-keyboard sketch)")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="folder with style/")
    parser.add_argument("--crops", type=int, default=150)
    args = parser.parse_args()
    crops = training_crops(args.data / "style", args.crops, np.random.default_rng(1))
    for augmentation in (line_drawing, sketch_drawing):
        rng = np.random.default_rng(0)
        shares = np.array([inked_share(augmentation(rng, crop)) for crop in crops])
        p10, median, p90 = np.percentile(shares, [10, 50, 90])
        print(f"{augmentation.__name__}: inked share 10th percentile {p10:.3f}, median {median:.3f}, "
              f"90th {p90:.3f}; under 6%: {(shares < 0.06).mean():.0%} of {len(crops)} crops")
    for sketch in args.sketches or [args.data / "style" / "liys__piano-keyboard-sketch_sq.jpg"]:
        image = to_tensor(resize_smaller_side(load_image(sketch), 256))[0]
        print(f"{sketch.name}: inked share {inked_share(image):.3f}")


if __name__ == "__main__":
    main()
