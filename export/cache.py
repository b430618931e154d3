"""Exported graphs for a weight pair, made once and kept under the cache folder.

``adainrt stylize`` and ``adainrt bench`` without ``--model`` use this: the graphs of the
embedded encoder and the chosen decoder are exported on first use (local, no download) and
reused after, keyed by both weights hashes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adainrt.export.onnx_export import FORM_GRAPHS, export_model
from adainrt.fileio import cache_root
from adainrt.network import AdaINModel
from adainrt.runtime.stylizer import graph_file
from adainrt.weights import load_decoder, load_encoder


def provenance(encoder_meta: dict[str, Any], decoder_meta: dict[str, Any]) -> dict[str, str]:
    """What an exported graph records about the weights it was made from."""
    return {
        "encoder_hash": encoder_meta["weights_hash"],
        "encoder_source": str(encoder_meta.get("source", "")),
        "decoder_hash": decoder_meta["weights_hash"],
        "decoder_source": str(decoder_meta.get("source", "")),
    }


def load_model(
    encoder: str | os.PathLike | None, decoder: str | os.PathLike | None
) -> tuple[AdaINModel, dict[str, str]]:
    """The torch model for an encoder/decoder pair (None: embedded/bundled), with provenance."""
    enc, enc_meta = load_encoder(encoder)
    dec, dec_meta = load_decoder(decoder, enc_meta)
    return AdaINModel(enc, dec).eval(), provenance(enc_meta, dec_meta)


def cached_model_dir(
    encoder: str | os.PathLike | None,
    decoder: str | os.PathLike | None,
    forms: tuple[str, ...] = ("split",),
    progress: Callable[[str], None] = lambda _msg: None,
    precision: str = "fp32",
) -> Path:
    """A folder holding the graphs of ``forms`` for this weight pair, exporting what is missing."""
    model, prov = load_model(encoder, decoder)
    folder = cache_root() / "onnx" / f"{prov['encoder_hash']}-{prov['decoder_hash']}"
    for form in forms:
        if all((folder / graph_file(g, precision)).is_file() for g in FORM_GRAPHS[form]):
            continue
        progress(f"exporting the {form} {precision} graphs once to {folder} (reused afterwards)")
        export_model(model, folder, form=form, provenance=prov, overwrite=True, progress=progress,
                     precision=precision)
    return folder
