"""Image input/output: bad files get clear errors, outputs are atomic and never overwrite silently."""

import numpy as np
import pytest
from PIL import Image

from adainrt.errors import ImageError, OutputExists
from adainrt.images import from_tensor, load_image, resize_smaller_side, save_image, to_pil, to_tensor
from tests.helpers import synthetic_image


def test_corrupt_and_truncated_files(tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageError, match="corrupt.jpg: not an image file"):
        load_image(tmp_path / "corrupt.jpg")
    synthetic_image(200, 200).save(tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="half.jpg: not a readable image"):
        load_image(tmp_path / "half.jpg")


def test_tiny_and_huge_images(tmp_path):
    Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
    with pytest.raises(ImageError, match="1x1 is too small"):
        load_image(tmp_path / "dot.png")
    synthetic_image(100, 300).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match="300x100 is 0 megapixels, above the limit"):
        load_image(tmp_path / "big.png", max_pixels=20_000)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such image file"):
        load_image(tmp_path / "nope.png")


def test_resize_keeps_aspect_and_zero_keeps_size():
    img = synthetic_image(100, 150)
    assert resize_smaller_side(img, 64).size == (96, 64)
    assert resize_smaller_side(img, 0).size == (150, 100)
    with pytest.raises(ImageError):
        resize_smaller_side(img, 8)


def test_tensor_roundtrip_and_array_inputs():
    img = synthetic_image(40, 50)
    array = to_tensor(img)
    assert array.shape == (1, 3, 40, 50) and array.dtype == np.float32 and 0 <= array.min() <= array.max() <= 1
    assert np.array_equal(np.asarray(from_tensor(array)), np.asarray(img))
    assert to_pil(np.asarray(img)).size == (50, 40)
    with pytest.raises(ImageError, match="expected an HxWx3 array"):
        to_pil(np.zeros((40, 50)))


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    img = synthetic_image(40, 40)
    save_image(img, tmp_path / "out.png")
    with pytest.raises(OutputExists, match="already exists"):
        save_image(img, tmp_path / "out.png")
    save_image(synthetic_image(40, 40, seed=9), tmp_path / "out.png", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp files left behind
    with pytest.raises(ImageError, match="unknown image suffix"):
        save_image(img, tmp_path / "out.xyz")
