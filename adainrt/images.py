"""Image input and output (numpy + pillow only): validation, resizing, atomic saving."""

from __future__ import annotations

import io
import os
import re
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from adainrt.errors import ImageError
from adainrt.fileio import atomic_path
from adainrt.spec import MIN_SIZE

#: Refuse to decode images above this many pixels (a decompression bomb or a mistake).
MAX_PIXELS = 100_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: What shows through transparent pixels of an image: white, as a viewer shows them on a page.
WHITE = (255, 255, 255)
#: What shows through transparent pixels of a mask: black, outside the region (shapes drawn on
#: a transparent sheet are the region).
BLACK = (0, 0, 0)


#: How files of those formats begin: one that does but cannot be read is damaged, not of another kind.
_MAGIC = {b"\xff\xd8": "JPEG", b"\x89PNG": "PNG", b"BM": "BMP", b"II*\x00": "TIFF",
          b"MM\x00*": "TIFF"}


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS,
               background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Open an image file as RGB, upright (EXIF), refusing corrupt, truncated, tiny or huge inputs;
    transparent pixels show ``background``.

    16-bit and 32-bit integer and float images are scaled by their real range (not clipped).
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: {_not_a_file(path)}")
    return decode_image(path.read_bytes(), str(path), max_pixels, background)


def _not_a_file(path: Path) -> str:
    """Why a path named as an image cannot be read as one: a dangling or looping link, a FIFO or a
    device (reading those could block or never end), or nothing there."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except FileNotFoundError:
            return f"a link to {os.readlink(path)}, which does not exist"
        except (RuntimeError, OSError):  # Python < 3.13 raises RuntimeError on a loop, later ones OSError
            return "a link that loops (it leads back to itself)"
    if path.exists():
        return "not a regular file (a folder, a named pipe or a device), so not an image file"
    return "no such image file"


def decode_image(data: bytes, what: str = "image", max_pixels: int = MAX_PIXELS,
                 background: tuple[int, int, int] = WHITE) -> Image.Image:
    """The bytes of an image file (as an HTTP body brings them) as RGB, with :func:`load_image`'s checks."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise ImageError(_too_many_pixels(f"{what}: {width}x{height}", width * height, max_pixels))
            if img.format == "PNG":
                check_png_complete(data, what)
            check_one_frame(img, what)
            img.load()
            rgb = to_rgb(ImageOps.exif_transpose(img), background)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        if damaged := _damaged_format(data):
            raise ImageError(f"{what}: not a readable image (a damaged {damaged} file); is the file complete?") from exc
        raise ImageError(f"{what}: not an image file (no known image format: {', '.join(IMAGE_SUFFIXES)})") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own guard fires at 2x its limit, before ours
        raise ImageError(_too_many_pixels(what, _pixels_in(str(exc)), max_pixels)) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        reason = re.sub(r" ?<_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc))  # Pillow names its stream
        raise ImageError(f"{what}: not a readable image ({reason}); is the file complete?") from exc
    check_size(rgb.size, what)
    return rgb


def check_one_frame(img: Image.Image, what: str = "image") -> None:
    """Refuse an animation (GIF, APNG, WebP) or a multi-page file: Pillow reads its first frame only, and
    the rest would be dropped without a word."""
    try:
        frames = getattr(img, "n_frames", 1)
    except (OSError, EOFError, ValueError, SyntaxError):  # a damaged later frame: the first one is judged on load
        frames = 1
    if frames > 1:
        raise ImageError(f"{what}: an animated or multi-page {img.format} of {frames} frames; only one image is "
                         "stylized here: make it a video (ffmpeg -i anim.gif anim.mp4) to stylize every frame, or "
                         "save the one frame wanted as a PNG")


def _damaged_format(data: bytes) -> str | None:
    """The image format a file's first bytes announce (RIFF is WebP only with its WEBP tag: WAV
    and AVI are RIFF too)."""
    if data.startswith(b"RIFF"):
        return "WebP" if data[8:12] == b"WEBP" else None
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def _too_many_pixels(what: str, pixels: int, max_pixels: int) -> str:
    return (f"{what} is {pixels / 1e6:.0f} megapixels, above the limit of {max_pixels / 1e6:.0f}; "
            "downscale it first")


def _pixels_in(message: str) -> int:
    """The pixel count in Pillow's DecompressionBombError message ("Image size (N pixels) exceeds ...")."""
    found = re.search(r"\((\d+) pixels\)", message)
    return int(found.group(1)) if found else 0


def to_rgb(img: Image.Image, background: tuple[int, int, int] = WHITE, stretch_wide: bool = True) -> Image.Image:
    """RGB 8-bit, as the network takes it.

    16-bit modes (I;16*) are scaled by their range, which Pillow's own conversion would clip to
    0 or 255; with ``stretch_wide`` (files: a 32-bit TIFF) the I and F modes too, while an image
    made in memory keeps Pillow's reading of them (values as 0..255). Transparency (an alpha
    band, a palette's or a colour key's) is composited over ``background``: converting it away
    would stylize whatever colour the hidden pixels happen to hold.
    """
    wide = img.mode.startswith("I;16") or (stretch_wide and img.mode in ("I", "F"))
    colour = _grey_by_range(img) if wide else img.convert("RGB")
    alpha = _alpha(img)
    if alpha is None:
        colour.load()
        return colour
    flat = Image.new("RGB", img.size, background)
    flat.paste(colour, mask=alpha)
    return flat


def _grey_by_range(img: Image.Image) -> Image.Image:
    array = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16"):
        top = 65535.0
    elif img.mode == "I":
        top = 65535.0 if array.max(initial=0) <= 65535 else float(array.max())
    else:
        top = 1.0 if array.max(initial=0) <= 1.0 else float(array.max())
    grey = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


def _alpha(img: Image.Image) -> Image.Image | None:
    """The image's opacity as an L image, or None where every pixel is opaque."""
    if "A" in img.getbands() or "a" in img.getbands():
        alpha = img.getchannel("A" if "A" in img.getbands() else "a")
    elif not img.has_transparency_data:
        return None
    elif img.mode.startswith("I") or img.mode == "F":  # a colour key on a wide grey image
        key = img.info["transparency"]
        alpha = Image.fromarray(np.where(np.asarray(img) == key, 0, 255).astype(np.uint8), "L")
    else:
        alpha = img.convert("RGBA").getchannel("A")
    return None if alpha.getextrema()[0] == 255 else alpha


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of filtered scanlines a complete PNG decompresses to (Adam7 passes when interlaced)."""
    bits = depth * _PNG_CHANNELS.get(colour, 4)
    if not interlace:
        passes = [(width, height)]
    else:
        grid = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        passes = [(-(-(width - x) // dx), -(-(height - y) // dy)) for x, y, dx, dy in grid]
    return sum(h * (1 + -(-(w * bits) // 8)) for w, h in passes if w > 0 and h > 0)


def check_png_complete(data: bytes, what: str = "image") -> None:
    """Refuse a PNG whose pixel data stops short: Pillow decodes the missing rows as black."""
    position, header, inflate, produced = 8, None, zlib.decompressobj(), 0
    while position + 8 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        body = data[position + 8:position + 8 + length]
        position += 12 + length
        if kind == b"IHDR" and len(body) >= 13:
            header = (int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big"), body[8], body[9], body[12])
        elif kind == b"IDAT":
            try:
                while body:
                    produced += len(inflate.decompress(body, 1 << 20))
                    body = inflate.unconsumed_tail
            except zlib.error as exc:
                raise ImageError(f"{what}: corrupt PNG pixel data ({exc})") from exc
        elif kind == b"IEND":
            break
    if header is not None:
        expected = _png_expected_bytes(*header)
        if produced < expected:
            raise ImageError(f"{what}: truncated PNG: its header says {header[0]}x{header[1]} but the pixel data "
                             f"stops at {100 * produced / max(expected, 1):.1f}%; is the file complete?")


def check_size(size: tuple[int, int], what: str) -> None:
    width, height = size
    if min(width, height) < MIN_SIZE:
        raise ImageError(
            f"{what}: {width}x{height} is too small; AdaIN needs at least {MIN_SIZE}x{MIN_SIZE} "
            "pixels (the encoder downsamples 8x)"
        )


def to_pil(image: Image.Image | np.ndarray, what: str = "image") -> Image.Image:
    """Accept PIL images (any mode, as :func:`load_image` reads them: 16-bit scaled, transparency
    over white) and HxWx3 or HxWx4 arrays (uint8 0..255, or float 0..1)."""
    if isinstance(image, Image.Image):
        pil = to_rgb(image, stretch_wide=False)
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] not in (3, 4):
            raise ImageError(f"{what}: expected an HxWx3 array, got shape {image.shape}")
        array = image
        if array.dtype != np.uint8:
            array = (np.clip(array.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        pil = to_rgb(Image.fromarray(np.ascontiguousarray(array), "RGBA" if array.shape[2] == 4 else "RGB"))
    else:
        raise ImageError(f"{what}: expected a PIL image, an HxWx3 numpy array or a path, "
                         f"got {type(image).__name__}")
    check_size(pil.size, what)
    return pil


def check_resize(size: int, what: str = "size") -> int:
    """A smaller-side size: 0 (keep the original) or at least the method's minimum."""
    if size != 0 and size < MIN_SIZE:
        raise ImageError(f"{what} {size} is below the minimum of {MIN_SIZE} (0 keeps the original size)")
    return size


def resize_smaller_side(image: Image.Image, size: int, max_pixels: int = MAX_PIXELS,
                        what: str = "image") -> Image.Image:
    """Resize so the smaller side is ``size``; 0 keeps the image as it is.

    As the reference implementations do (torchvision's ``Resize(size)`` in pytorch-AdaIN's
    test.py): the long side is truncated, ``int(size * long / short)``, and the filter is
    bilinear (antialiased, as PIL resizes). A result above ``max_pixels`` is refused.
    """
    if check_resize(size) == 0:
        return image
    width, height = image.size
    long = int(size * max(width, height) / min(width, height))
    new = (size, long) if width <= height else (long, size)
    if new[0] * new[1] > max_pixels:
        raise ImageError(f"{what}: resizing {width}x{height} so its smaller side is {size} gives {new[0]}x{new[1]}, "
                         f"{new[0] * new[1] / 1e6:.0f} megapixels, above the limit of {max_pixels / 1e6:.0f}; "
                         "choose a smaller size")
    return image if new == image.size else image.resize(new, Image.Resampling.BILINEAR)


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """Square centre crop of side ``size`` (the reference's -crop), offsets rounded as torchvision's
    ``CenterCrop`` rounds them."""
    width, height = image.size
    size = min(size, width, height)
    left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
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


def list_images(folder: str | os.PathLike, recursive: bool = False, unreadable: bool = False) -> list[Path]:
    """Image files in ``folder`` by suffix, sorted.

    ``unreadable``: also the entries named like images that are no file to read (dangling or looping
    links, FIFOs, devices), for a job that reports each of them rather than leaving them out unsaid.
    """
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    named = (p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(p for p in named if p.is_file() or (unreadable and not p.is_dir()))


def bundled_sample(name: str = "astronaut") -> Path:
    """Path of a sample image shipped in the package (public domain / CC0, see assets/README)."""
    from importlib import resources

    return Path(str(resources.files("adainrt.assets").joinpath(f"{name}.jpg")))
