"""On real photos and paintings from ../shared/data (skipped where that folder is absent)."""

import numpy as np
import torch

from adainrt.images import load_image, resize_smaller_side, to_tensor
from adainrt.runtime import Stylizer, open_graph


def test_real_photo_and_painting_through_runtime_and_torch(shared_data, exported_dir, model):
    photo = resize_smaller_side(load_image(shared_data / "content" / "adain__cornell.jpg"), 384)
    painting = resize_smaller_side(load_image(shared_data / "style" / "adain__la_muse.jpg"), 256)
    stylizer = Stylizer(exported_dir, backend="ort-cpu")
    out = stylizer.stylize(photo, painting, alpha=1.0)
    assert out.size == photo.size
    full = open_graph(exported_dir / "adain_full.onnx", stylizer.backend)
    feeds = {"content": to_tensor(photo), "style": to_tensor(painting), "alpha": np.ones(1, np.float32)}
    got = full.infer(feeds)["image"]
    with torch.no_grad():
        expected = model[0](*(torch.from_numpy(v) for v in feeds.values())).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * (expected.max() - expected.min())
