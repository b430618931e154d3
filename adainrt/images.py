"""Image input and output (numpy + pillow only): validation, resizing, atomic saving."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from adainrt.errors import ImageError
from adainrt.fileio import atomic_path
from adainrt.spec import MIN_SIZE

#: Refuse to decode images above this many pixels (a decompression bomb or a mistake).
MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")



def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open an image file as RGB, upright (EXIF), refusing corrupt, tiny or huge inputs."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(
                    f"{path}: {width}x{height} is {width * height / 1e6:.0f} megapixels, above the "
                    f"limit of {max_pixels / 1e6:.0f}; downscale it first"
                )
            img = ImageOps.exif_transpose(img)
            rgb = img.convert("RGB")
            rgb.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"{path}: not a readable image ({exc}); is the file complete?") from exc
    check_size(rgb.size, str(path))
    return rgb


def check_size(size: tuple[int, int], what: str) -> None:
    width, height = size
    if min(width, height) < MIN_SIZE:
        raise ImageError(
            f"{what}: {width}x{height} is too small; AdaIN needs at least {MIN_SIZE}x{MIN_SIZE} "
            "pixels (the encoder downsamples 8x)"
        )


def to_pil(image: Image.Image | np.ndarray, what: str = "image") -> Image.Image:
    """Accept PIL images and HxWx3 arrays (uint8 0..255, or float 0..1)."""
    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ImageError(f"{what}: expected an HxWx3 array, got shape {image.shape}")
        array = image[..., :3]
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        pil = Image.fromarray(np.ascontiguousarray(array), "RGB")
    else:
        raise ImageError(f"{what}: expected a PIL image, an HxWx3 numpy array or a path, "
                         f"got {type(image).__name__}")
    check_size(pil.size, what)
    return pil


def resize_smaller_side(image: Image.Image, size: int) -> Image.Image:
    """Resize so the smaller side is ``size`` (aspect kept); 0 keeps the image as it is."""
    if size < 0:
        raise ImageError(f"size must be >= 0 (0 keeps the original size), got {size}")
    if size == 0:
        return image
    if size < MIN_SIZE:
        raise ImageError(f"size {size} is below the minimum of {MIN_SIZE} pixels")
    width, height = image.size
    scale = size / min(width, height)
    new = (max(MIN_SIZE, round(width * scale)), max(MIN_SIZE, round(height * scale)))
    return image if new == image.size else image.resize(new, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Square centre crop of side ``size`` (the reference's -crop)."""
    width, height = image.size
    size = min(size, width, height)
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


def to_tensor(image: Image.Image | np.ndarray) -> np.ndarray:
    """PIL RGB (or an HxWx3 uint8 array) -> float32 array (1, 3, H, W) in [0, 1]: the graphs' input."""
    array = np.asarray(image, dtype=np.float32) / 255.0
    return np.ascontiguousarray(array.transpose(2, 0, 1)[None])


def from_tensor(array: np.ndarray) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) float in [0, 1] -> PIL RGB (values clipped)."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 4:
        array = array[0]
    hwc = np.clip(array.transpose(1, 2, 0), 0.0, 1.0)
    return Image.fromarray((hwc * 255.0 + 0.5).astype(np.uint8), "RGB")


def save_image(image: Image.Image, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write atomically; the format follows the suffix. Refuses to overwrite unless asked."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: unknown image suffix; use one of {', '.join(IMAGE_SUFFIXES)}")
    with atomic_path(path, overwrite=overwrite) as tmp:
        image.save(tmp, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


def list_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` by suffix, sorted."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def bundled_sample(name: str = "astronaut") -> Path:
    """Path of a sample image shipped in the package (public domain / CC0, see assets/README)."""
    from importlib import resources

    return Path(str(resources.files("adainrt.assets").joinpath(f"{name}.jpg")))
