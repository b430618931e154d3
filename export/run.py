"""`adainrt export` as one call: the graphs of a form, verified and recorded, and a Triton layout."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from adainrt.contract import FORMS as CONTRACT_FORMS
from adainrt.contract import MANIFEST, graph_file
from adainrt.export.cache import load_model
from adainrt.export.onnx_export import export_model
from adainrt.export.triton import check_triton_targets, write_triton_repository


def export_all(output_dir: str | os.PathLike, form: str = "all", encoder: str | os.PathLike | None = None,
               decoder: str | os.PathLike | None = None, variant: str | None = None, precision: str = "fp32",
               triton_repo: str | os.PathLike | None = None, overwrite: bool = False,
               progress: Callable[[str], None] = lambda _msg: None) -> Iterator[str]:
    """`adainrt export`: the graphs of ``form`` (all: full and split) from the weights, verified and
    recorded in the manifest, and optionally laid out as a Triton repository; yields a line per file
    written. The Triton folder is checked before the export's minutes."""
    forms = ["full", "split"] if form == "all" else [form]
    if triton_repo is not None:
        models = [Path(graph_file(graph, precision)).stem for one in forms for graph in CONTRACT_FORMS[one]]
        check_triton_targets(models, triton_repo, overwrite)
    model, prov = load_model(encoder, decoder, variant)
    written = []
    for one in forms:
        for result in export_model(model, output_dir, one, prov, overwrite=overwrite, progress=progress,
                                   precision=precision):
            errors = ", ".join(f"{k}: {v:.2e} (range {result.output_range[k]:.3g})"
                               for k, v in result.max_abs_error.items())
            yield f"{result.path}  max |onnxruntime - torch| {errors}"
            written.append(Path(result.path))
    yield f"{Path(output_dir) / MANIFEST}  (the graphs' contract: files, tensors, pre-processing, hashes)"
    if triton_repo is not None:
        for model_dir in write_triton_repository(written, triton_repo, overwrite=overwrite):
            yield f"{model_dir}/config.pbtxt  (Triton model {model_dir.name})"
