"""scripts/loss_optimum.py: the image it optimizes scores better on the training loss than the
decoder's output it starts from."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "loss_optimum.py"


def test_the_optimized_image_lowers_the_training_loss_of_the_decoders_output(images_dir, random_decoder):
    spec = importlib.util.spec_from_file_location("loss_optimum", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = script.parse_args([str(images_dir / "content_a.png"), str(images_dir / "style_a.jpg"), "-o", "x.png",
                              "--decoder", str(random_decoder), "--size", "64", "--steps", "30", "--lr", "0.02"])
    images, start, end = script.optimize(args)
    assert [tuple(x.shape) for x in images] == [(1, 3, 64, 64)] * 3
    assert float(images[2].min()) >= 0.0 and float(images[2].max()) <= 1.0  # still an image
    total = [content + args.style_weight * style for content, style, _ in (start, end)]
    assert total[1] < 0.8 * total[0], (start, end)
