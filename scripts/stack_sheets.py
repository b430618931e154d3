"""Interleave the rows of two contact sheets of `adainrt evaluate --variant A --variant B --sheet S.png`
(S_A.png and S_B.png: styles along the top, photos down the left, 128-pixel cells unless
--sheet-cell gave another size, then give it as --cell): the header row once, then per photo its
row from A and its row from B, so the variants compare cell above cell.

    python scripts/stack_sheets.py sheet_full.png sheet_lite.png -o docs/contact-sheet-full-lite.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from adainrt.images import save_image


def stacked(first: Image.Image, second: Image.Image, cell: int = 128) -> Image.Image:
    if first.size != second.size or first.height % cell:
        raise SystemExit(f"the sheets differ in size or are not of {cell}-pixel cells: {first.size}, {second.size}")
    rows = first.height // cell

    def row(sheet: Image.Image, k: int) -> Image.Image:
        return sheet.crop((0, k * cell, sheet.width, (k + 1) * cell))

    parts = [row(first, 0)] + [r for k in range(1, rows) for r in (row(first, k), row(second, k))]
    out = Image.new("RGB", (first.width, cell * len(parts)), "white")
    for k, part in enumerate(parts):
        out.paste(part, (0, k * cell))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--cell", type=int, default=128, help="the sheets' cell size in pixels")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    image = stacked(*(Image.open(p).convert("RGB") for p in (args.first, args.second)), cell=args.cell)
    save_image(image, args.output, overwrite=args.overwrite)
    print(f"wrote {args.output} ({image.width}x{image.height})")


if __name__ == "__main__":
    main()
