"""Constants of the method shared by the torch and the numpy-only code (no torch here)."""

#: Epsilon added to the variance before the square root, as in the reference implementation.
ADAIN_EPS = 1e-5
#: The encoder halves the resolution three times; content is padded to a multiple of this.
SIZE_MULTIPLE = 8
#: Smallest height or width accepted: relu4_1 is then 4x4.
MIN_SIZE = 32
