"""The paper's run-time controls, on the host in numpy (no torch, any backend).

AdaIN is affine in the style statistics, so style interpolation is a weighted mean of cached
statistics; spatial control is AdaIN per mask region; colour preservation recolours the style
image (mean/covariance match) or transfers luminance only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from adainrt.errors import AdainrtError
from adainrt.spec import ADAIN_EPS


class ControlError(AdainrtError, ValueError):
    """A control's argument is invalid (weights, masks, modes)."""


@dataclass(frozen=True)
class StyleStats:
    """A style as AdaIN sees it: relu4_1 channel means and stds, each (1, 512, 1, 1) float32."""

    mean: np.ndarray
    std: np.ndarray


def check_weights(weights: Sequence[float]) -> list[float]:
    """Style weights as given: finite, >= 0, not all 0 (NaN or inf would give a black or flat image)."""
    weights = [float(w) for w in weights]
    if not weights or any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
        raise ControlError(f"style weights must be finite numbers >= 0, not all 0, got {weights}")
    return weights


def check_counts(styles: int, weights: int | None = None, masks: int = 0) -> None:
    """One weight per style; one mask with two styles, or one mask per style (checked before any work)."""
    if weights is not None and weights != styles:
        raise ControlError(f"{_count(weights, 'style weight')} for {_count(styles, 'style')}; give one weight "
                           "per style")
    if masks and masks != styles and not (masks == 1 and styles == 2):
        raise ControlError(f"{_count(masks, 'mask')} for {_count(styles, 'style')}: give one mask with two "
                           "styles (white takes the first style) or one mask per style")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def normalize_weights(weights: Sequence[float] | None, count: int) -> list[float]:
    """Interpolation weights scaled to sum 1 (equal when None), as the reference does; scaled by
    the largest first, so huge weights (1e308) cannot overflow the sum."""
    if weights is None:
        return [1.0 / count] * count
    weights = check_weights(weights)
    check_counts(count, len(weights))
    largest = max(weights)
    scaled = [w / largest for w in weights]
    total = math.fsum(scaled)
    return [w / total for w in scaled]


def parse_weights(text: str) -> list[float]:
    """'0.7,0.3' -> [0.7, 0.3]."""
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise ControlError(f"style weights {text!r}: expected comma-separated numbers like 0.7,0.3") from exc


def interpolate(stats: Sequence[StyleStats], weights: Sequence[float] | None = None) -> StyleStats:
    """sum_k w_k AdaIN(x, s_k) == AdaIN with the w-weighted means and stds."""
    w = normalize_weights(weights, len(stats))
    mean = sum(wk * s.mean for wk, s in zip(w, stats))
    std = sum(wk * s.std for wk, s in zip(w, stats))
    return StyleStats(np.asarray(mean, np.float32), np.asarray(std, np.float32))


def feature_stats(feat: np.ndarray, where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (unbiased, + eps), over all positions or those in ``where``."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1).astype(np.float64)
    if where is not None:
        flat = flat[:, :, where.reshape(-1)]
    count = flat.shape[-1]
    if count < 2:
        raise ControlError("a mask region covers fewer than 2 feature positions; use a larger region")
    mean = flat.mean(-1)
    var = flat.var(-1, ddof=1) + ADAIN_EPS
    return mean.reshape(n, c, 1, 1), np.sqrt(var).reshape(n, c, 1, 1)


def adain(
    feat: np.ndarray, style: StyleStats, content_stats: tuple[np.ndarray, np.ndarray] | None = None
) -> np.ndarray:
    """AdaIN on the host; ``content_stats`` replaces the content's own (temporal smoothing)."""
    mean, std = content_stats if content_stats is not None else feature_stats(feat)
    return ((feat - mean) / std * style.std + style.mean).astype(np.float32)


def mask_array(mask: Image.Image | np.ndarray) -> np.ndarray:
    """A mask as (H, W) float in [0, 1]: PIL (any mode; transparent pixels are outside the region,
    so shapes drawn on a transparent sheet are the region), uint8 0..255, or float arrays."""
    if isinstance(mask, Image.Image):
        from adainrt.images import BLACK, to_rgb

        return np.asarray(to_rgb(mask, BLACK, stretch_wide=False).convert("L"), np.float32) / 255.0
    array = np.asarray(mask)
    if array.ndim == 3:
        array = array.mean(axis=-1)
    if array.ndim != 2:
        raise ControlError(f"a mask must be a grey-scale image (H x W), got shape {array.shape}")
    return array.astype(np.float32) / (255.0 if array.dtype == np.uint8 else 1.0)


def resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) mask to the feature grid (h, w), nearest sampling as the reference does; bool."""
    img = Image.fromarray((np.asarray(mask, np.float32) > 0.5).astype(np.uint8) * 255)
    return np.asarray(img.resize((size[1], size[0]), Image.Resampling.NEAREST)) > 127


def masks_for_styles(masks: Sequence[np.ndarray], count: int) -> list[np.ndarray]:
    """One grey-scale mask with two styles (white -> first), or one mask per style."""
    if len(masks) == 1 and count == 2:
        white = np.asarray(masks[0], np.float32) > 0.5
        return [white, ~white]
    if not masks:
        raise ControlError("an empty list of masks: give one mask per style (or none at all for no spatial control)")
    check_counts(count, masks=len(masks))
    return [np.asarray(m, np.float32) > 0.5 for m in masks]


def masked_target(feat: np.ndarray, masks: Sequence[np.ndarray], styles: Sequence[StyleStats]) -> np.ndarray:
    """AdaIN per region: each region's content statistics, its own style. Uncovered positions keep f(c)."""
    target = feat.astype(np.float32).copy()
    grid = feat.shape[-2:]
    for mask, style in zip(masks, styles):
        region = resize_mask(mask, grid)
        if not region.any():
            continue
        mean, std = feature_stats(feat, region)
        normalized = (feat[:, :, region] - mean[..., 0]) / std[..., 0]
        target[:, :, region] = normalized * style.std[..., 0] + style.mean[..., 0]
    return target


# ------------------------------------------------------------------ colour


def match_color(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Recolour ``style`` (HxWx3 float in [0, 1]) to the content's colour mean and covariance.

    The linear map C_c^(1/2) C_s^(-1/2) applied to centred style pixels (CORAL), as the
    reference implementation's -preserveColor does; output clipped to [0, 1].
    """
    s = style.reshape(-1, 3).astype(np.float64)
    c = content.reshape(-1, 3).astype(np.float64)
    s_mean, c_mean = s.mean(0), c.mean(0)
    s_cov = np.cov((s - s_mean).T) + np.eye(3) * 1e-5
    c_cov = np.cov((c - c_mean).T) + np.eye(3) * 1e-5
    transform = _sqrtm(c_cov) @ np.linalg.inv(_sqrtm(s_cov))
    out = (s - s_mean) @ transform.T + c_mean
    return np.clip(out, 0.0, 1.0).reshape(style.shape).astype(np.float32)


def match_mean_color(output: np.ndarray, content: np.ndarray, rounds: int = 4) -> np.ndarray:
    """``output`` (HxWx3 in [0, 1]) shifted per channel so its mean colour is the content's.

    Recolouring the style (:func:`match_color`) gives the decoder the photo's colours, but a
    decoder adds a colour cast of its own (the bundled v0.5: up to 0.157 off the photo's mean
    per channel on held-out pairs, `python scripts/preserve_color_check.py`). A shift leaves the strokes and contrast
    alone; it is repeated because clipping to [0, 1] moves the mean back a little each time."""
    target = content.reshape(-1, 3).astype(np.float64).mean(0)
    out = output.astype(np.float64)
    for _ in range(rounds):
        out = np.clip(out + (target - out.reshape(-1, 3).mean(0)), 0.0, 1.0)
    return out.astype(np.float32)


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return vectors @ np.diag(np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ)


def to_yiq(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ _RGB_TO_YIQ.T


def from_yiq(yiq: np.ndarray) -> np.ndarray:
    return np.clip(yiq @ _YIQ_TO_RGB.T, 0.0, 1.0).astype(np.float32)


def luminance_image(rgb: np.ndarray) -> np.ndarray:
    """The luminance (Y of YIQ) of an HxWx3 image, replicated to 3 channels."""
    y = np.clip(to_yiq(rgb)[..., 0], 0.0, 1.0)
    return np.repeat(y[..., None], 3, axis=-1).astype(np.float32)


def match_luminance(style: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The style's luminance, its mean and std matched to the content's (Gatys et al. 2016)."""
    cy, sy = to_yiq(content)[..., 0], to_yiq(style)[..., 0]
    sy = (sy - sy.mean()) / (sy.std() + 1e-6) * cy.std() + cy.mean()
    return np.repeat(np.clip(sy, 0.0, 1.0)[..., None], 3, axis=-1).astype(np.float32)


def merge_luminance(output: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The output's luminance with the content's chrominance (I, Q)."""
    yiq = to_yiq(content)
    yiq[..., 0] = to_yiq(output)[..., 0]
    return from_yiq(yiq)
