"""The graph contract: what every exported graph is, read by export, runtimes, engines and C++.

One torch-free place defines the graphs' names, files, tensors (names, dtypes, symbolic
shapes), the pre-processing (RGB in [0, 1], NCHW, reflect-pad to a multiple of 8 inside,
crop back), the precision variants, the metadata keys and the tolerances the checks use.
``adainrt export`` writes it beside the graphs as ``manifest.json`` (with each file's SHA-256
and the weights hashes); a runtime or a C++ program reads the manifest instead of hard-coding
anything, and a folder whose graphs disagree with their manifest is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adainrt.errors import ModelError
from adainrt.spec import ADAIN_EPS, DEFAULT_VARIANT, MIN_SIZE, SIZE_MULTIPLE, VARIANTS, Variant, check_variant

#: Precision variants of every graph. FP16: FP16 weights and activations, AdaIN statistics
#: FP32, inputs and outputs FP32 (strongly typed, as TensorRT 10.12+/11 builds need).
PRECISIONS = ("fp32", "fp16")
#: Precisions a backend may compute in. bf16 has no graph of its own: a backend that runs it
#: (OpenVINO on CPUs with native bf16) takes the FP32 graphs and lowers them itself.
EXECUTION_PRECISIONS = ("fp32", "fp16", "bf16")
_GRAPH_OF = {"fp32": "fp32", "fp16": "fp16", "bf16": "fp32"}
#: Export forms: one graph, or the three graphs that let a runtime cache a style.
FORMS: dict[str, tuple[str, ...]] = {"full": ("full",), "split": ("encoder", "style", "decoder")}
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "adainrt-graphs"
MANIFEST_VERSION = 1
#: Largest H or W the exported graphs admit (torch.export wants a bound; engines narrow it).
MAX_SIZE = 16384
#: Channels of relu4_1, the features AdaIN works on, in the full network (a variant's own: its
#: ``feature_channels``; a manifest records them).
FEATURE_CHANNELS = VARIANTS[DEFAULT_VARIANT].feature_channels

PREPROCESSING = "RGB, float32 in [0, 1], NCHW; colour order, x255 and mean are folded into encoder.0"
#: The pre-processing every consumer must do, as the manifest states it.
PREPROCESSING_CONTRACT: dict[str, Any] = {
    "color_order": "RGB",
    "layout": "NCHW",
    "dtype": "float32",
    "value_range": [0.0, 1.0],
    "min_size": MIN_SIZE,
    "pad_multiple": SIZE_MULTIPLE,
    "padding": "inside the graphs: reflect, bottom and right, to a multiple of pad_multiple",
    "crop": "adain_full crops back itself; adain_decoder's image is crop [:, :, :H, :W] of the content",
    "output": "RGB float32, nominally [0, 1], not clipped: clip before quantizing",
    "adain": {"variance": "unbiased", "eps": ADAIN_EPS},
}

#: Keys of every graph's ``metadata_props`` (the provenance keys come from the weights).
METADATA_KEYS = ("adainrt_version", "adainrt_graph", "description", "preprocessing", "value_range",
                 "alpha_range", "inputs", "outputs", "min_size", "size_multiple", "precision",
                 "encoder_hash", "encoder_source", "decoder_hash", "decoder_source", "variant", "feature_channels")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its name, element type and shape (ints fixed, strings symbolic)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Tolerance:
    """How close a graph must stay to the FP32 PyTorch model (export checks, backend parity).

    ``fp32_rel``: max |runtime - torch| over the output's range. ``psnr_db``: least PSNR of a
    reduced-precision image graph against FP32 (images in [0, 1]).
    """

    fp32_rel: float = 1e-4
    psnr_db: float = 40.0


@dataclass(frozen=True)
class GraphContract:
    """One exported graph: name, file stem, tensors, what it computes, tolerance."""

    graph: str
    stem: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    note: str
    tolerance: Tolerance = Tolerance()

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def file(self, precision: str = "fp32") -> str:
        check_precision(precision)
        return f"{self.stem}{'' if precision == 'fp32' else '_' + precision}.onnx"

    def tensor(self, name: str) -> TensorSpec:
        for spec in (*self.inputs, *self.outputs):
            if spec.name == name:
                return spec
        raise KeyError(name)


_CONTENT = TensorSpec("content", ("batch", 3, "content_height", "content_width"))
_STYLE = TensorSpec("style", (1, 3, "style_height", "style_width"))
_ALPHA = TensorSpec("alpha", (1,))
#: The decoder takes one style and one alpha per item of its batch: requests with different styles
#: and strengths share a run (a server's batches, Triton's dynamic batching).
_BATCH_ALPHA = TensorSpec("alpha", ("batch",))


def graph_contracts(channels: int = FEATURE_CHANNELS) -> dict[str, GraphContract]:
    """The four graphs of a network whose relu4_1 has ``channels`` channels (every variant's graphs
    are these, differing only there)."""
    features = TensorSpec("content_features", ("batch", channels, "feature_height", "feature_width"))
    return {
        "full": GraphContract(
            "full", "adain_full", (_CONTENT, _STYLE, _ALPHA),
            (TensorSpec("image", ("batch", 3, "content_height", "content_width")),),
            "image = T(content, style, alpha), same size as content",
        ),
        "encoder": GraphContract(
            "encoder", "adain_encoder", (_CONTENT,), (features,),
            "relu4_1 of content reflect-padded (bottom, right) to a multiple of 8: "
            "feature_height = ceil(content_height / 8)",
        ),
        "style": GraphContract(
            "style", "adain_style", (_STYLE,),
            (TensorSpec("style_mean", (1, channels, 1, 1)), TensorSpec("style_std", (1, channels, 1, 1))),
            f"per-channel mean and std (unbiased, eps 1e-5) of relu4_1 of style, shape 1x{channels}x1x1",
        ),
        "decoder": GraphContract(
            "decoder", "adain_decoder",
            (features, TensorSpec("style_mean", ("batch", channels, 1, 1)),
             TensorSpec("style_std", ("batch", channels, 1, 1)), _BATCH_ALPHA),
            (TensorSpec("image", ("batch", 3, "padded_height", "padded_width")),),
            "image of 8x the feature size (padded_height = 8 * feature_height): crop to "
            "[:content_height, :content_width]; style_mean, style_std and alpha per batch item",
        ),
    }


#: The full network's graphs (names, files and notes are every variant's; only channels differ).
GRAPHS: dict[str, GraphContract] = graph_contracts()


def recorded_channels(metadata: dict[str, str]) -> int:
    """relu4_1's channels a graph's metadata records (graphs exported before variants record none: full's)."""
    recorded = str(metadata.get("feature_channels", ""))
    return int(recorded) if recorded.isdigit() else FEATURE_CHANNELS


def read_graph(path: str | os.PathLike, weights: bool = False) -> Any:
    """An exported graph file as an ONNX model (``weights``: with external data too, for a caller that
    runs the weights itself), or a ModelError naming the file. Needs onnx."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # protobuf's DecodeError, an OSError: not a graph we can use
        raise ModelError(f"{path}: not a readable ONNX graph ({type(exc).__name__}); give a graph from "
                         "`adainrt export`") from exc


def graph_metadata(model: Any) -> dict[str, str]:
    """An ONNX model's ``metadata_props`` (the keys of :data:`METADATA_KEYS` and the weights' provenance)."""
    return {p.key: p.value for p in model.metadata_props}


def fed_inputs(model: Any) -> list[str]:
    """The inputs a caller feeds (initializers listed as inputs left out)."""
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def variant_graphs(variant: str | Variant) -> dict[str, GraphContract]:
    """The graphs of a network variant (by name or :class:`Variant`)."""
    variant = check_variant(variant) if isinstance(variant, str) else variant
    return graph_contracts(variant.feature_channels)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return precision


def check_execution_precision(precision: str) -> str:
    if precision not in EXECUTION_PRECISIONS:
        raise ModelError(f"unknown precision {precision!r}; choose one of {', '.join(EXECUTION_PRECISIONS)}")
    return precision


def graph_precision(precision: str) -> str:
    """Which graph files a backend computing in ``precision`` loads (bf16: the FP32 graphs)."""
    return _GRAPH_OF[check_execution_precision(precision)]


def check_form(form: str) -> tuple[str, ...]:
    if form not in FORMS:
        raise ModelError(f"unknown form {form!r}; choose one of {', '.join(FORMS)}")
    return FORMS[form]


def graph_file(graph: str, precision: str = "fp32") -> str:
    """File name of an exported graph: adain_full.onnx, adain_full_fp16.onnx, ..."""
    return GRAPHS[graph].file(precision)


def padded(length: int) -> int:
    """A content height or width padded to the multiple the encoder needs."""
    return -(-length // SIZE_MULTIPLE) * SIZE_MULTIPLE


def feature_size(height: int, width: int) -> tuple[int, int]:
    """relu4_1's (height, width) for a content of (height, width)."""
    return padded(height) // SIZE_MULTIPLE, padded(width) // SIZE_MULTIPLE


def concrete_shape(spec: TensorSpec, content: tuple[int, int], style: tuple[int, int] = (0, 0),
                   batch: int = 1) -> tuple[int, ...]:
    """A tensor's shape for a content (H, W), a style (H, W) and a batch: what engines' profiles need."""
    feature = feature_size(*content)
    dims = {"batch": batch, "content_height": content[0], "content_width": content[1],
            "style_height": style[0], "style_width": style[1], "feature_height": feature[0],
            "feature_width": feature[1], "padded_height": padded(content[0]), "padded_width": padded(content[1])}
    return tuple(d if isinstance(d, int) else dims[d] for d in spec.shape)


# ------------------------------------------------------------------------------ manifest


def graph_entry(graph: str, precision: str, sha256: str, variant: str = DEFAULT_VARIANT) -> dict[str, Any]:
    """The manifest's record of one graph file."""
    contract = variant_graphs(variant)[graph]
    return {
        "graph": graph,
        "precision": precision,
        "sha256": sha256,
        "inputs": [t.as_dict() for t in contract.inputs],
        "outputs": [t.as_dict() for t in contract.outputs],
        "description": contract.note,
    }


def new_manifest(provenance: dict[str, str], version: str) -> dict[str, Any]:
    variant = check_variant(provenance.get("variant", DEFAULT_VARIANT))
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "adainrt_version": version,
        "encoder_hash": provenance.get("encoder_hash", ""),
        "decoder_hash": provenance.get("decoder_hash", ""),
        "variant": variant.name,
        "feature_channels": variant.feature_channels,
        "preprocessing": PREPROCESSING_CONTRACT,
        "graphs": {},
    }


def manifest_variant(manifest: dict[str, Any]) -> Variant:
    """The network variant a (checked) manifest records; manifests written before variants are full."""
    return VARIANTS[manifest.get("variant", DEFAULT_VARIANT)]


def read_manifest(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a model folder, checked for form; a clear error naming the fix otherwise."""
    model_dir = Path(model_dir)
    path = model_dir / MANIFEST
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: no such model folder; create one with `adainrt export --output {model_dir}`")
    if not path.is_file():
        if any(model_dir.glob("adain_*.onnx")):  # graphs without a manifest: an older adainrt's export
            raise ModelError(f"{model_dir}: graphs without a {MANIFEST} (an export by an older adainrt); export "
                             f"it again with `adainrt export --output {model_dir} --overwrite`")
        raise ModelError(f"{model_dir}: not a model folder (it has no {MANIFEST}); give a folder written by "
                         "`adainrt export --output DIR`, or leave the model folder out to use the cached export")
    manifest = _parse_manifest(path)
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT \
            or not isinstance(manifest.get("graphs"), dict):
        raise ModelError(f"{path}: not an adainrt manifest; export the folder again with --overwrite")
    version = manifest.get("format_version", 0)
    if isinstance(version, bool) or not isinstance(version, (int, float)):
        raise ModelError(f"{path}: \"format_version\" is {_short(version)}, not a number; export the folder again "
                         "with --overwrite")
    if version > MANIFEST_VERSION:
        raise ModelError(f"{path}: manifest format {version} is newer than this adainrt "
                         f"reads ({MANIFEST_VERSION}); upgrade adainrt")
    _check_manifest_fields(path, manifest)
    return manifest


#: Larger than any manifest an export writes (a few kB) by far: a bigger file is not one, and is not read.
MAX_MANIFEST_BYTES = 1 << 20


def _parse_manifest(path: Path) -> Any:
    """The JSON of a manifest file; a huge, deeply nested or malformed one is one ModelError (Python's
    parser recurses per nesting level, so 10,000 nested arrays would end in RecursionError)."""
    again = "export the folder again with --overwrite"
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ModelError(f"{path}: {path.stat().st_size} bytes, too large for a manifest "
                             f"(at most {MAX_MANIFEST_BYTES}); {again}")
        return json.loads(path.read_bytes())
    except RecursionError as exc:
        raise ModelError(f"{path}: unreadable (nested too deeply to be a manifest); {again}") from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable ({exc}); {again}") from exc


def _check_manifest_fields(path: Path, manifest: dict[str, Any]) -> None:
    """The fields runtimes read have their types: each graph entry an object named by a plain file name
    inside the folder, the weights hashes strings; anything else is refused here, in one line."""
    variant = manifest.get("variant", DEFAULT_VARIANT)
    if not isinstance(variant, str) or variant not in VARIANTS:
        raise ModelError(f"{path}: \"variant\" is {_short(variant)}, not one this adainrt knows "
                         f"({', '.join(VARIANTS)}); upgrade adainrt or export the folder again with --overwrite")
    channels = manifest.get("feature_channels", VARIANTS[variant].feature_channels)
    if channels != VARIANTS[variant].feature_channels:
        raise ModelError(f"{path}: \"feature_channels\" is {_short(channels)}, but the {variant} network has "
                         f"{VARIANTS[variant].feature_channels}; export the folder again with --overwrite")
    for key in ("encoder_hash", "decoder_hash"):
        if not isinstance(manifest.get(key, ""), str):
            raise ModelError(f"{path}: \"{key}\" is {_short(manifest[key])}, not a string; export the folder "
                             "again with --overwrite")
    for name, entry in manifest["graphs"].items():
        if not is_plain_file_name(name):
            raise ModelError(f"{path}: graph {_short(name)} is not a file name inside the folder (graphs are "
                             "named by file name alone); export the folder again with --overwrite")
        if not isinstance(entry, dict):
            raise ModelError(f"{path}: the entry of graph {_short(name)} is {_short(entry)}, not an object; "
                             "export the folder again with --overwrite")


def is_plain_file_name(name: str) -> bool:
    """A name that can only mean a file directly inside the folder: no separator, not '.' or '..', no control
    character (the C++ reader applies the same rule)."""
    return bool(name) and name not in (".", "..") and not any(c in "/\\" or ord(c) < 0x20 or c == "\x7f" for c in name)


def _short(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: its repr, cut (a fuzzed manifest's values can be megabytes)."""
    text = repr(value) if not isinstance(value, (list, dict)) else f"a {'list' if isinstance(value, list) else 'dict'}"
    return text if len(text) <= limit else text[:limit] + "..."


def manifest_graphs(manifest: dict[str, Any], graphs: tuple[str, ...], precision: str,
                    model_dir: str | os.PathLike = "DIR") -> dict[str, str]:
    """{graph: file name} for the graphs asked for, or a ModelError saying which are not in the folder
    and the export that adds them."""
    files = {graph: graph_file(graph, precision) for graph in graphs}
    missing = [f for f in files.values() if f not in manifest["graphs"]]
    if missing:
        listed = sorted(manifest["graphs"])
        more = f" and {len(listed) - 6} more" if len(listed) > 6 else ""
        held = ", ".join(name[:60] for name in listed[:6]) + more or "no graphs"
        form = "full" if graphs == ("full",) else "split"
        raise ModelError(f"{model_dir} has no {', '.join(missing)} (its {MANIFEST} lists {held}); add them with "
                         f"`adainrt export --output {model_dir} --form {form} --precision {precision}` "
                         "(--form all exports every graph)")
    return files


def verified_graphs(model_dir: str | os.PathLike, graphs: tuple[str, ...], precision: str,
                    manifest: dict[str, Any] | None = None) -> dict[str, Path]:
    """{graph: path} of a model folder's graphs, each checked against its manifest entry (SHA-256).

    A graph changed or replaced after export (an interrupted re-export, a hand-copied file from
    another model) fails here, before any runtime loads it. ``manifest``: one the caller already read.
    """
    from adainrt.fileio import sha256_file

    model_dir = Path(model_dir)
    manifest = manifest if manifest is not None else read_manifest(model_dir)
    paths = {}
    for graph, name in manifest_graphs(manifest, graphs, precision, model_dir).items():
        path = model_dir / name
        if not path.is_file():
            raise ModelError(f"{path}: listed in {MANIFEST} but missing; export the folder again with --overwrite")
        if sha256_file(path) != manifest["graphs"][name].get("sha256"):
            raise ModelError(f"{path} is not the graph its {MANIFEST} describes (its SHA-256 differs: changed "
                             "after export, or an export was interrupted); export the folder again with "
                             f"`adainrt export --output {model_dir} --overwrite`")
        _check_recorded_tensors(path, graph, manifest["graphs"][name], manifest_variant(manifest))
        paths[graph] = path
    return paths


def _check_recorded_tensors(path: Path, graph: str, entry: dict[str, Any], variant: Variant) -> None:
    """The tensors the manifest records for a graph are this adainrt's contract (an export by an
    older adainrt, e.g. a decoder taking one alpha per batch, is refused before it runs)."""
    def layout(specs: Any) -> list[tuple[Any, Any]]:
        return [(t.get("name"), t.get("shape")) for t in specs if isinstance(t, dict)] \
            if isinstance(specs, list) else []

    contract = variant_graphs(variant)[graph]
    expected = [(t.name, list(t.shape)) for t in (*contract.inputs, *contract.outputs)]
    if layout(entry.get("inputs")) + layout(entry.get("outputs")) != expected:
        raise ModelError(f"{path}: exported by another adainrt version (its tensors differ from this version's "
                         f"{graph} graph); export the folder again with `adainrt export --overwrite`")


def check_loaded_graph(path: str | os.PathLike, graph: str, input_names: list[str], output_names: list[str],
                       metadata: dict[str, str], manifest: dict[str, Any]) -> None:
    """A loaded graph is the contract's ``graph`` of the manifest's weights: its tensors as declared,
    its adainrt metadata naming that graph and those hashes. Catches a foreign model put in place
    with a manifest edited to match, before it yields a wrong image."""
    contract = variant_graphs(manifest_variant(manifest))[graph]
    if set(input_names) != set(contract.input_names) or set(output_names) != set(contract.output_names):
        raise ModelError(f"{path}: takes {sorted(input_names)} and gives {sorted(output_names)}, but adainrt's "
                         f"{graph} graph takes {list(contract.input_names)} and gives {list(contract.output_names)}; "
                         "export the folder again with `adainrt export`")
    recorded = {key: metadata.get(key) for key in ("adainrt_graph", "encoder_hash", "decoder_hash")}
    recorded["variant"] = metadata.get("variant", DEFAULT_VARIANT)
    expected = {"adainrt_graph": graph, "encoder_hash": manifest.get("encoder_hash"),
                "decoder_hash": manifest.get("decoder_hash"), "variant": manifest_variant(manifest).name}
    if recorded != expected:
        raise ModelError(f"{path}: its metadata says {recorded}, but the folder's {MANIFEST} expects {expected} "
                         "(a graph without adainrt metadata, or from other weights); export the folder again with "
                         "`adainrt export`")
