"""Generate adainrt/assets/strokes.jpg: a procedural 'painting' we own, for the bundled demo.

The photos and paintings in shared/data may not be redistributed, so the sample style is
drawn here: bold brush strokes in a warm/cool palette over a mottled ground. Deterministic.

    python scripts/make_sample_style.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PALETTE = [(222, 154, 40), (28, 62, 122), (196, 58, 44), (240, 214, 120), (36, 110, 120), (18, 24, 40),
           (120, 160, 210)]


def main(size: int = 512, seed: int = 2017) -> Path:
    rng = np.random.default_rng(seed)
    ground = rng.normal(0, 1, (size // 16, size // 16, 3))
    base = np.array(PALETTE[1], np.float32) * 0.6 + np.array(PALETTE[3], np.float32) * 0.4
    img = Image.fromarray(np.clip(base + ground * 30, 0, 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(900):
        x, y = rng.uniform(-20, size + 20, 2)
        angle = rng.normal(0.6, 0.5) if y < size / 2 else rng.normal(-0.8, 0.4)
        length, width = rng.uniform(15, 70), int(rng.integers(3, 11))
        colour = np.array(PALETTE[rng.integers(len(PALETTE))]) + rng.normal(0, 14, 3)
        points = [(x + t * length * np.cos(angle + 0.3 * np.sin(t * 3)), y + t * length * np.sin(angle))
                  for t in np.linspace(0, 1, 6)]
        draw.line(points, fill=tuple(int(c) for c in np.clip(colour, 0, 255)), width=width, joint="curve")
    img = img.filter(ImageFilter.SMOOTH_MORE)
    out = Path(__file__).parents[1] / "adainrt" / "assets" / "strokes.jpg"
    img.save(out, quality=90)
    return out


if __name__ == "__main__":
    print(main())
