"""Constants of the method shared by the torch and the numpy-only code (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass

from adainrt.errors import ModelError

#: Epsilon added to the variance before the square root, as in the reference implementation.
ADAIN_EPS = 1e-5
#: The encoder halves the resolution three times; content is padded to a multiple of this.
SIZE_MULTIPLE = 8
#: Smallest height or width accepted: relu4_1 is then 4x4.
MIN_SIZE = 32


@dataclass(frozen=True)
class Variant:
    """A width plan of the one AdaIN topology: VGG-19's layers to relu4_1, AdaIN, a mirrored decoder.

    ``widths``: the channels of the encoder's four blocks (relu1_x, relu2_x, relu3_x, relu4_1); the
    decoder mirrors them. Everything that depends on the network's size (layer shapes, the graphs'
    feature tensors, a stored style's length, the cost) is computed from them, so a variant is one
    entry here and nothing else.
    """

    name: str
    widths: tuple[int, int, int, int]
    summary: str

    @property
    def feature_channels(self) -> int:
        """Channels of relu4_1: the length of a style's mean and std vectors."""
        return self.widths[-1]

    def encoder_convs(self) -> list[tuple[int, int] | str]:
        """(in, out) channels of the encoder's 3x3 convs in order, "M" marking the 2x2 max pools."""
        a, b, c, d = self.widths
        return [(3, a), (a, a), "M", (a, b), (b, b), "M", (b, c), (c, c), (c, c), (c, c), "M", (c, d)]

    def decoder_convs(self) -> list[tuple[int, int] | str]:
        """The decoder's 3x3 convs, "U" marking nearest 2x upsampling; the last conv has no ReLU."""
        a, b, c, d = self.widths
        return [(d, c), "U", (c, c), (c, c), (c, c), (c, b), "U", (b, b), (b, a), "U", (a, a), (a, 3)]

    def gmac(self, height: int, width: int) -> float:
        """Multiply-accumulates (10^9) of encoder + decoder for one content of (height, width) padded
        to the multiple of 8: the cached-style path's cost, the style's own encoding not counted."""
        return self.encoder_gmac(height, width) + _convs_gmac(self.decoder_convs()[::-1], height, width)

    def parameters(self) -> int:
        """Weights and biases of encoder + decoder (the encoder's 1x1 pre-processing conv included)."""
        convs = [c for c in (*self.encoder_convs(), *self.decoder_convs()) if not isinstance(c, str)]
        return 3 * 3 + 3 + sum(9 * cin * cout + cout for cin, cout in convs)

    def encoder_gmac(self, height: int, width: int) -> float:
        """Multiply-accumulates (10^9) of the encoder alone (a style's statistics cost this)."""
        return _convs_gmac(self.encoder_convs(), height, width)


def _convs_gmac(plan: list[tuple[int, int] | str], height: int, width: int) -> float:
    """10^9 multiply-accumulates of 3x3 convs listed from full resolution down ("M"/"U": a factor 2)."""
    total, scale = 0, 1
    rows, cols = -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE, -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE
    for step in plan:
        if isinstance(step, str):
            scale *= 2
            continue
        total += 9 * step[0] * step[1] * (rows // scale) * (cols // scale)
    return total / 1e9


#: The variants, by name; ``full`` is the paper's network (and what a graph or style without a
#: recorded variant is).
VARIANTS: dict[str, Variant] = {
    "full": Variant("full", (64, 128, 256, 512), "VGG-19 to relu4_1 and its mirror, as in the paper"),
    "lite": Variant("lite", (16, 32, 64, 128), "a quarter of full's channels in every layer, distilled "
                    "from full (about 16x fewer multiply-accumulates)"),
}
DEFAULT_VARIANT = "full"


def check_variant(name: str) -> Variant:
    """The variant called ``name``, or an error listing the variants."""
    if name not in VARIANTS:
        raise ModelError(f"unknown network variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]
