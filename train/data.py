"""Training images: folders read once into memory, unreadable files skipped and counted.

Everything random (which image, where to crop) draws from one numpy Generator owned by the
trainer, so a resumed run sees exactly the batches the uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adainrt.errors import AdainrtError, ImageError
from adainrt.images import list_images, load_image, resize_smaller_side

log = logging.getLogger("adainrt.train")


@dataclass
class ImageFolder:
    """Images of a folder (recursive), smaller side resized to ``resize``, as uint8 HxWx3."""

    root: Path
    images: list[np.ndarray]
    names: list[str]
    skipped: list[str]

    @classmethod
    def load(cls, root: str | Path, resize: int, min_side: int, holdout_every: int = 0,
             holdout: bool = False, heldout_names: frozenset[str] | None = None) -> ImageFolder:
        """Read the folder. With ``holdout_every`` = k, every k-th file (sorted) is held out:
        ``holdout=False`` returns the others, ``holdout=True`` only those. ``heldout_names`` (file
        names relative to the folder, see :func:`read_heldout_list`) holds out those files instead."""
        root = Path(root)
        if not root.is_dir():
            raise AdainrtError(f"{root}: no such image folder")
        files = list_images(root, recursive=True)
        if heldout_names is not None:
            files = [f for f in files if (f.relative_to(root).as_posix() in heldout_names) == holdout]
            if holdout and not files:
                raise AdainrtError(f"{root}: none of the {len(heldout_names)} held-out names of its list is in "
                                   "this folder; pass the folder the list was made for")
        elif holdout_every:
            count = len(files)
            files = [f for i, f in enumerate(files) if (i % holdout_every == holdout_every - 1) == holdout]
            if holdout and not files:
                raise AdainrtError(f"{root}: holdout_every {holdout_every} holds out none of its {count} "
                                   f"images; pass a value up to {count} or 0 to skip the held-out evaluation")
        images, names, skipped = [], [], []
        for path in files:
            try:
                img = resize_smaller_side(load_image(path), resize)
            except ImageError as exc:
                log.warning("skipping %s", exc)
                skipped.append(str(path))
                continue
            if min(img.size) < min_side:
                img = resize_smaller_side(img, min_side)
            images.append(np.asarray(img, dtype=np.uint8))
            names.append(str(path.relative_to(root)))
        if not images:
            raise AdainrtError(f"{root}: no readable images ({len(skipped)} unreadable)")
        return cls(root, images, names, skipped)

    def source_weights(self) -> np.ndarray:
        """Sampling probabilities that give each source (a file name's prefix before ``__``) a share
        growing as the square root of its size: 150 texture photos of one data set draw 12x, not
        150x, a source of one painting, yet still more than a source of four."""
        sources = [Path(name).name.split("__", 1)[0] if "__" in Path(name).name else "" for name in self.names]
        counts = {source: sources.count(source) for source in set(sources)}
        weights = np.array([counts[s] ** -0.5 for s in sources])
        return weights / weights.sum()

    def random_crops(self, rng: np.random.Generator, count: int, crop: int, weights: np.ndarray | None = None,
                     augment: StyleAugment | None = None) -> np.ndarray:
        """(count, 3, crop, crop) float32 in [0, 1] from randomly chosen images and positions.

        ``weights``: probabilities of the images (:meth:`source_weights`); None draws them uniformly.
        ``augment``: what share of the crops each augmentation changes (style crops only; None: none).
        """
        out = np.empty((count, 3, crop, crop), dtype=np.float32)
        for i in range(count):
            img = self.images[rng.integers(len(self.images)) if weights is None else rng.choice(len(self.images),
                                                                                                 p=weights)]
            top = rng.integers(img.shape[0] - crop + 1)
            left = rng.integers(img.shape[1] - crop + 1)
            out[i] = img[top:top + crop, left:left + crop].transpose(2, 0, 1) / 255.0
            if augment is not None:
                out[i] = augment.apply(rng, out[i])
        return out

    def center_crops(self, crop: int) -> np.ndarray:
        """Deterministic centre crops of every image (for held-out evaluation)."""
        crops = []
        for img in self.images:
            pil = Image.fromarray(img)
            w, h = pil.size
            left, top = (w - crop) // 2, (h - crop) // 2
            crops.append(np.asarray(pil.crop((left, top, left + crop, top + crop)), np.float32) / 255.0)
        return np.stack(crops).transpose(0, 3, 1, 2).copy()


@dataclass(frozen=True)
class StyleAugment:
    """The share of style crops (0 to 1, each drawn on its own) that each augmentation changes, so
    that the few hundred styles stand for many more of their kinds.

    ``recolor``: mirrored at random and turned in hue by a random angle (:func:`hue_rotation`): a few
    dozen styles stand for many more palettes while some crops keep their painter's own.
    ``tone``: a random change of levels (:func:`random_levels`): the few very light and very dark
    styles are not the only ones of their kind.
    ``lines``: replaced by a line drawing of its own edges (:func:`line_drawing`): pencil on paper or
    chalk on a dark ground, kinds of which the styles hold only a handful.
    ``sketches``: (of the crops ``lines`` left as they were) replaced by a sparse sketch of their
    strongest edges (:func:`sketch_drawing`): a few thin lines on white paper.
    """

    recolor: float = 0.0
    tone: float = 0.0
    lines: float = 0.0
    sketches: float = 0.0

    def apply(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """``image`` (3, H, W) changed as drawn. Each share that is 0 draws nothing, so a run that
        does not use an augmentation sees the crops runs before it saw (1.0 recolour draws none
        either: runs before v0.4 recoloured every crop)."""
        if self.recolor and (self.recolor >= 1.0 or rng.random() < self.recolor):
            if rng.random() < 0.5:
                image = image[:, :, ::-1]
            rotation = hue_rotation(rng.uniform(0.0, 2.0 * np.pi))
            image = np.clip(np.einsum("ij,jhw->ihw", rotation, image), 0.0, 1.0)
        if self.tone and rng.random() < self.tone:
            image = random_levels(rng, image)
        if self.lines and rng.random() < self.lines:
            image = line_drawing(rng, image)
        elif self.sketches and rng.random() < self.sketches:
            image = sketch_drawing(rng, image)
        return image


def edge_strength(image: np.ndarray) -> np.ndarray:
    """The Sobel gradient magnitude of ``image``'s luminance ((3, H, W) in, (H, W) out)."""
    luma = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), image, axes=1)
    padded = np.pad(luma, 1, mode="edge")
    smooth_x = padded[:-2] + 2 * padded[1:-1] + padded[2:]  # Sobel: smoothed across, differenced along
    smooth_y = padded[:, :-2] + 2 * padded[:, 1:-1] + padded[:, 2:]
    return np.hypot(smooth_x[:, 2:] - smooth_x[:, :-2], smooth_y[2:] - smooth_y[:-2])


def grey_drawing(lines: np.ndarray, ground: float, ink: float) -> np.ndarray:
    """(3, H, W) grey image: ``ground`` where ``lines`` is 0, ``ink`` where it is 1."""
    drawing = ground + (ink - ground) * lines
    return np.repeat(drawing[None], 3, axis=0).astype(np.float32)


def line_drawing(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A grey line drawing of ``image``'s edges (values in [0, 1], (3, H, W)): dark lines on light
    paper or (half the time) light lines on a dark ground, with a random density and weight.

    The edges are the Sobel gradient of the luminance, scaled by one of its upper percentiles (a
    lower one draws more, bolder lines). The bundled decoder painted held-out pencil sketches and
    cobwebs as texture over the photo (MODEL_CARD.md, Known weaknesses): only a few training
    styles are drawings, and these give it every image's edges as one.
    """
    gradient = edge_strength(image)
    scale = max(float(np.percentile(gradient, rng.uniform(85.0, 99.0))), 1e-3)
    lines = np.clip(gradient / scale, 0.0, 1.0) ** rng.uniform(0.7, 1.5)
    if rng.random() < 0.5:
        ground, ink = rng.uniform(0.85, 1.0), rng.uniform(0.0, 0.4)
    else:
        ground, ink = rng.uniform(0.0, 0.15), rng.uniform(0.6, 1.0)
    return grey_drawing(lines, ground, ink)


def sketch_drawing(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """A sparse grey sketch of ``image``'s strongest edges ((3, H, W), values in [0, 1]): thin dark or
    grey lines on near-white paper, most of the crop left blank.

    :func:`line_drawing` draws every edge a painting has: on 150 crops of training styles it inks a
    median 60% of the pixels (farther than 0.1 from the ground), 1 in 150 under 6%, while the
    held-out piano-keyboard sketch inks 4.6% and the bundled decoder washes photos out with it.
    Here the scale is a high percentile of the gradient and edges below a random share of it
    leave no line: the same crops ink a median 11%, 25% of them under 6% (`python
    scripts/drawing_sparsity.py`, MODEL_CARD.md).
    """
    gradient = edge_strength(image)
    scale = max(float(np.percentile(gradient, rng.uniform(93.0, 99.9))), 1e-3)
    dropped = rng.uniform(0.0, 0.95)  # edges weaker than this share of the scale leave no line
    lines = np.clip((gradient / scale - dropped) / (1.0 - dropped), 0.0, 1.0) ** rng.uniform(0.7, 1.5)
    return grey_drawing(lines, rng.uniform(0.9, 1.0), rng.uniform(0.0, 0.7))


def inked_share(drawing: np.ndarray) -> float:
    """Share of the pixels of a grey (3, H, W) drawing farther than 0.1 from its paper (its lightest
    value; its darkest for chalk on a dark ground): how much of a crop a drawing covers."""
    grey = drawing[0]
    paper = grey.max() if grey.mean() > 0.5 else grey.min()
    return float((np.abs(grey - paper) > 0.1).mean())


def random_levels(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """``image`` (values in [0, 1]) with its white point lowered or its black point raised, at
    random: ``clip((v - black) / (white - black), 0, 1)`` with white in [0.5, 1) or black in [0, 0.5).

    A lowered white point turns paper white and drawings sparse (a shaded pencil portrait becomes a
    few thin lines, like a line drawing); a raised black point turns a painting dark. Few styles
    are that light or that dark, and the bundled decoder washed photos out with held-out ones
    (MODEL_CARD.md, Known weaknesses).
    """
    if rng.random() < 0.5:
        black, white = 0.0, rng.uniform(0.5, 1.0)
    else:
        black, white = rng.uniform(0.0, 0.5), 1.0
    return np.clip((image - black) / (white - black), 0.0, 1.0).astype(np.float32)


def hue_rotation(angle: float) -> np.ndarray:
    """3x3 RGB rotation by ``angle`` about the grey axis: turns hues, keeps each pixel's R+G+B and
    its distance from grey (so brightness and saturation, to within clipping)."""
    axis = np.full(3, 1.0 / np.sqrt(3.0))
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    rotation = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * np.outer(axis, axis)
    return rotation.astype(np.float32)


def read_heldout_list(path: str | Path) -> dict[str, frozenset[str]]:
    """The held-out file names of a list such as train/heldout.txt, by folder: lines
    ``content/NAME`` or ``style/NAME``; blank lines and ``#`` comments ignored."""
    names: dict[str, set[str]] = {"content": set(), "style": set()}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AdainrtError(f"{path}: cannot read the held-out list ({exc})") from None
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, sep, name = line.partition("/")
        if not sep or kind not in names or not name:
            raise AdainrtError(f"{path}:{number}: expected 'content/NAME' or 'style/NAME', got {line!r}")
        names[kind].add(name)
    if not names["content"] or not names["style"]:
        raise AdainrtError(f"{path}: a held-out list needs content/ and style/ names (it has "
                           f"{len(names['content'])} and {len(names['style'])})")
    return {kind: frozenset(v) for kind, v in names.items()}


def default_heldout_list() -> Path:
    """The held-out list committed with adainrt (v0.4's held-out images and new ones)."""
    return Path(__file__).with_name("heldout.txt")
