"""TensorRT engines from our ONNX graphs: optimization profiles, sidecars, building, the cache.

Profiles, sidecars and their checks are plain Python (tested on any machine). Building (here) and
running (:mod:`.runner`) need TensorRT (10.12+ or 11: strongly typed networks; the FP16 graph from
``adainrt export --precision fp16`` carries its own types) and an NVIDIA GPU, reached through
cuda-python: it is NVIDIA's maintained binding, ships wheels for every CUDA 12/13 Python,
and needs no compiler at install time (pycuda builds from source against a local CUDA).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adainrt import __version__
from adainrt.contract import (
    FEATURE_CHANNELS,
    TensorSpec,
    concrete_shape,
    fed_inputs,
    graph_contracts,
    graph_metadata,
    read_graph,
    recorded_channels,
)
from adainrt.errors import ModelError, OutputExists
from adainrt.fileio import atomic_path, atomic_write_bytes, sha256_file
from adainrt.runtime.backend import CacheFolder
from adainrt.runtime.backends.tensorrt.cuda import gpu_identity, load_tensorrt
from adainrt.spec import MIN_SIZE

#: Default profile over H and W, tuned for 512: every size the runtime sends, from the method's
#: minimum to the largest side a Stylizer on this backend runs in one pass (larger content is
#: tiled to fit, styles above it are refused with a clear error).
MAX_SIDE = 2048
#: Where engines and their timing caches live (`adainrt cache` lists and clears it).
CACHE = CacheFolder("tensorrt", "TensorRT engines and timing caches; rebuilt on a GPU on first use (minutes)")
DEFAULT_MIN, DEFAULT_OPT, DEFAULT_MAX = (MIN_SIZE, MIN_SIZE), (512, 512), (MAX_SIDE, MAX_SIDE)


@dataclass(frozen=True)
class InputProfile:
    """min/opt/max shapes of one dynamic input (trtexec's --minShapes/--optShapes/--maxShapes)."""

    name: str
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == len(self.min) and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))


def parse_size(text: str) -> tuple[int, int]:
    """'512' -> (512, 512); '512x768' -> (512, 768) as (H, W)."""
    match = re.fullmatch(r"(\d+)(?:x(\d+))?", text.strip())
    if not match:
        raise ModelError(f"size {text!r}: expected N or HxW, e.g. 512 or 512x768")
    height = int(match.group(1))
    return height, int(match.group(2) or height)


def parse_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """trtexec syntax: 'content:1x3x512x512,style:1x3x256x256' -> {name: shape}."""
    shapes = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, dims = part.rpartition(":")
        if not sep or not re.fullmatch(r"\d+(x\d+)*", dims):
            raise ModelError(f"shape {part!r}: expected name:AxBxCxD, e.g. content:1x3x512x512")
        shapes[name] = tuple(int(d) for d in dims.split("x"))
    return shapes


def _input_specs(inputs: list[str], channels: int = FEATURE_CHANNELS) -> dict[str, TensorSpec]:
    """The contract's specs of a graph's inputs (of a network with ``channels`` relu4_1 channels): those
    of the graph taking exactly these inputs, else each name's first spec (a partial list, as tests and
    trtexec-style overrides give; a name means the same tensor in every graph but alpha, one per call
    in the full graph and one per item in the decoder)."""
    contracts = graph_contracts(channels).values()
    for contract in contracts:
        if set(contract.input_names) == set(inputs):
            return {spec.name: spec for spec in contract.inputs}
    tensors = {t.name: t for contract in contracts for t in contract.inputs}
    return {name: tensors[name] for name in inputs if name in tensors}


def default_profiles(
    inputs: list[str], min_hw: tuple[int, int] = DEFAULT_MIN, opt_hw: tuple[int, int] = DEFAULT_OPT,
    max_hw: tuple[int, int] = DEFAULT_MAX, max_batch: int = 1,
    overrides: dict[str, dict[str, tuple[int, ...]]] | None = None, channels: int = FEATURE_CHANNELS,
) -> list[InputProfile]:
    """Profiles for a graph's dynamic inputs from image sizes; trtexec-style overrides win.

    ``overrides`` maps "min"/"opt"/"max" to {input name: shape}; ``channels``: relu4_1's of the
    graph's network variant (the decoder's features and statistics have them).
    """
    if not (min_hw[0] <= opt_hw[0] <= max_hw[0] and min_hw[1] <= opt_hw[1] <= max_hw[1]):
        raise ModelError(f"profile sizes must satisfy min <= opt <= max, got {min_hw}, {opt_hw}, {max_hw}")
    if min(min_hw) < MIN_SIZE:
        raise ModelError(f"the smallest size {min_hw[0]}x{min_hw[1]} is below the graphs' minimum of "
                         f"{MIN_SIZE}x{MIN_SIZE} (the encoder downsamples 8x)")
    if max_batch < 1:
        raise ModelError(f"max batch {max_batch}: give at least 1")
    overrides = overrides or {}
    specs = _input_specs(inputs, channels)
    unknown = sorted({name for shapes in overrides.values() for name in shapes} - set(specs))
    if unknown:
        raise ModelError(f"shapes for {', '.join(unknown)}: the graph's inputs are {', '.join(specs) or 'none'}")
    profiles = []
    for name, spec in specs.items():
        if not any(isinstance(d, str) for d in spec.shape):
            continue  # static: the full graph's alpha, the style graph's statistics
        shapes = {}
        for key, hw in (("min", min_hw), ("opt", opt_hw), ("max", max_hw)):
            batch = max_batch if key == "max" else 1
            shapes[key] = overrides.get(key, {}).get(name) or concrete_shape(spec, hw, hw, batch)
        profile = InputProfile(name, shapes["min"], shapes["opt"], shapes["max"])
        if not (profile.contains(profile.opt) and len(profile.max) == len(spec.shape)):
            raise ModelError(f"profile for {name}: need min <= opt <= max, {len(spec.shape)}-D, got {profile}")
        profiles.append(profile)
    return profiles


def profiles_for(onnx_path: str | os.PathLike, min_size: str = "32", opt_size: str = "512", max_size: str = "2048",
                 max_batch: int = 1, shapes: dict[str, str] | None = None) -> list[InputProfile]:
    """Profiles for an ONNX file's dynamic inputs from sizes written N or HxW, and trtexec-style
    shapes ({"min": "content:1x3x256x256,...", ...}) that override them."""
    overrides = {key: parse_shapes(text) for key, text in (shapes or {}).items() if text}
    model = read_graph(onnx_path)  # once: its inputs, and its network's width from its metadata
    return default_profiles(fed_inputs(model), parse_size(min_size), parse_size(opt_size),
                            parse_size(max_size), max_batch, overrides, recorded_channels(graph_metadata(model)))


@dataclass
class EngineSidecar:
    """What an engine was built from and for: written beside it as ENGINE.json."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    onnx_file: str
    onnx_sha256: str
    profiles: list[InputProfile]
    inputs: dict[str, dict] = field(default_factory=dict)  # name -> {"shape": [...], "dtype": "..."}
    outputs: dict[str, dict] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # the ONNX's metadata_props (weights hashes, ...)
    adainrt_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> EngineSidecar:
        data = json.loads(text)
        data["profiles"] = [InputProfile(p["name"], tuple(p["min"]), tuple(p["opt"]), tuple(p["max"]))
                            for p in data["profiles"]]
        return cls(**data)


def sidecar_path(engine: str | os.PathLike) -> Path:
    return Path(f"{engine}.json")


def read_sidecar(engine: str | os.PathLike) -> EngineSidecar:
    path = sidecar_path(engine)
    if not path.is_file():
        raise ModelError(f"{engine}: no sidecar {path.name} beside it; rebuild with `adainrt build-engine`")
    try:
        return EngineSidecar.from_json(path.read_text())
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path}: unreadable engine sidecar ({exc}); rebuild the engine") from exc


def engine_cache_key(onnx_sha256: str, tensorrt_version: str, compute_capability: str,
                     profiles: list[InputProfile], precision: str) -> str:
    """Engines are valid for one ONNX, TensorRT version, GPU architecture and profile set."""
    text = json.dumps([onnx_sha256, tensorrt_version, compute_capability, precision,
                       [asdict(p) for p in profiles]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_compatible(sidecar: EngineSidecar, tensorrt_version: str, gpu_name: str, compute_capability: str) -> None:
    """Refuse an engine built by another TensorRT or for another GPU, before deserializing it."""
    if sidecar.tensorrt_version != tensorrt_version:
        raise ModelError(f"engine built with TensorRT {sidecar.tensorrt_version}, but TensorRT {tensorrt_version} "
                         "is installed: engines only load in the version that built them. Rebuild it with "
                         "`adainrt build-engine`.")
    if sidecar.compute_capability != compute_capability or sidecar.gpu_name != gpu_name:
        raise ModelError(f"engine built for {sidecar.gpu_name} (compute {sidecar.compute_capability}), but this "
                         f"GPU is {gpu_name} (compute {compute_capability}). Rebuild it here.")


def check_shapes(sidecar: EngineSidecar, shapes: dict[str, tuple[int, ...]]) -> None:
    """A clear error for a shape outside the engine's profile (TensorRT would fail obscurely)."""
    for profile in sidecar.profiles:
        shape = tuple(shapes.get(profile.name, ()))
        if shape and not profile.contains(shape):
            raise ModelError(
                f"input {profile.name} has shape {'x'.join(map(str, shape))}, outside the engine's profile "
                f"{'x'.join(map(str, profile.min))} .. {'x'.join(map(str, profile.max))}. Resize the input "
                "(--content-size) or rebuild with larger --max."
            )


# ------------------------------------------------------------------------------- building


def build_engine(
    onnx_path: str | os.PathLike, engine_path: str | os.PathLike, profiles: list[InputProfile],
    timing_cache: str | os.PathLike | None = None, overwrite: bool = False, workspace_gib: float = 4.0,
) -> EngineSidecar:
    """Parse the ONNX, build a strongly typed engine with one profile, write engine + sidecar atomically."""
    trt = load_tensorrt()
    engine_path = Path(engine_path)
    if engine_path.exists() and not overwrite:
        raise OutputExists(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):  # 10.x; accepted and ignored by 11
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{onnx_path}: TensorRT's ONNX parser failed: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if not flags and hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 8: weak typing, the only way to FP16
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    for p in profiles:
        profile.set_shape(p.name, p.min, p.opt, p.max)
    config.add_optimization_profile(profile)
    cache = None
    if timing_cache is not None:
        data = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        cache = config.create_timing_cache(data)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            raise ModelError(f"{timing_cache}: TensorRT refused this timing cache (another TensorRT or GPU); "
                             "delete it or name another with --timing-cache")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{onnx_path}: TensorRT could not build an engine (see the log above)")
    if cache is not None:
        atomic_write_bytes(timing_cache, bytes(cache.serialize()))
    name, capability = gpu_identity()
    tensors = {"inputs": {}, "outputs": {}}
    for i in range(network.num_inputs):
        t = network.get_input(i)
        tensors["inputs"][t.name] = {"shape": list(t.shape), "dtype": str(t.dtype)}
    for i in range(network.num_outputs):
        t = network.get_output(i)
        tensors["outputs"][t.name] = {"shape": list(t.shape), "dtype": str(t.dtype)}
    metadata = onnx_metadata(onnx_path)
    precision = "fp16" if metadata.get("precision", "").startswith("fp16") else "fp32"
    sidecar = EngineSidecar(trt.__version__, name, capability, precision, Path(onnx_path).name,
                            sha256_file(onnx_path), profiles, **tensors, metadata=metadata)
    with atomic_path(engine_path, overwrite=overwrite) as tmp:
        tmp.write_bytes(bytes(serialized))
    atomic_write_bytes(sidecar_path(engine_path), sidecar.to_json().encode())
    return sidecar


def onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    return graph_metadata(read_graph(path))


def default_timing_cache() -> Path:
    """The timing cache shared by every build that names none, one per TensorRT version and GPU
    architecture (a cache of another is rejected or, worse, misleads the tactic choice)."""
    trt = load_tensorrt()
    _name, capability = gpu_identity()
    return CACHE.path() / f"timing-trt{trt.__version__}-sm{capability.replace('.', '')}.cache"


def engine_path_for(onnx_path: str | os.PathLike, profiles: list[InputProfile] | None = None) -> Path:
    """Where the cache keeps the engine of this ONNX for this TensorRT, GPU and profile."""
    trt = load_tensorrt()
    _name, capability = gpu_identity()
    profiles = profiles or profiles_for(onnx_path)
    metadata = onnx_metadata(onnx_path)
    key = engine_cache_key(sha256_file(onnx_path), trt.__version__, capability, profiles,
                           metadata.get("precision", "fp32")[:4])
    return CACHE.path() / f"{Path(onnx_path).stem}-{key}.engine"


def cached_engine(onnx_path: str | os.PathLike, profiles: list[InputProfile] | None = None) -> Path:
    """An engine for this ONNX, TensorRT, GPU and profile from the cache, built on first use."""
    profiles = profiles or profiles_for(onnx_path)
    engine = engine_path_for(onnx_path, profiles)
    if not (engine.is_file() and sidecar_path(engine).is_file()):
        build_engine(onnx_path, engine, profiles, default_timing_cache(), overwrite=True)
    return engine
