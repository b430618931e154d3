"""Decoder training: a CLI run on generated images, falling losses, exact resume."""

import json
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from adainrt.bundled import weights_metadata
from adainrt.cli import main
from adainrt.errors import AdainrtError
from adainrt.network import adain_from_stats, build_decoder
from adainrt.train import TrainConfig, Trainer
from adainrt.weights import read_weights
from tests.helpers import synthetic_image


def make_folders(root):
    for kind, count, seed in (("content", 6, 0), ("style", 4, 100)):
        folder = root / kind
        (folder / "sub").mkdir(parents=True)
        for i in range(count):
            synthetic_image(72, 88, seed=seed + i).save(folder / ("sub" if i % 2 else "") / f"{kind}_{i}.png")
    (root / "content" / "broken.jpg").write_bytes(b"not an image")
    return root / "content", root / "style"


def folders(root):
    """The content and style folders under ``root``, generated on first use."""
    return (root / "content", root / "style") if (root / "content").exists() else make_folders(root)


def small_config(root, out, **kw) -> TrainConfig:
    content, style = folders(root)
    base = dict(content_dir=str(content), style_dir=str(style), output_dir=str(out), resize=64, crop=48,
                batch_size=2, eval_every=0, checkpoint_every=1000, holdout_every=3, eval_size=48, lr=1e-3)
    return TrainConfig(**{**base, **kw})


@pytest.mark.slow
def test_cli_train_runs_logs_samples_and_exports(tmp_path):
    content, style = make_folders(tmp_path)
    out = tmp_path / "run"
    args = ["train", "--content", content, "--style", style, "--output", out, "--resize", "64", "--crop", "48",
            "--batch-size", "2", "--max-iter", "4", "--eval-every", "2", "--checkpoint-every", "2",
            "--holdout-every", "3", "--invert-iters", "1"]
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    state, meta = read_weights(out / "decoder.safetensors", "decoder")
    assert meta["steps"] == 4 and meta["encoder_hash"] and meta["heldout"]["pairs"] == 2
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[0]["skipped_unreadable"] == 1
    assert [r["event"] for r in records if r.get("event") == "heldout"] == ["heldout", "heldout"]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    again = CliRunner().invoke(main, [str(a) for a in args])
    assert again.exit_code == 1 and "--resume" in again.output


def test_resume_takes_the_settings_given_again_and_keeps_the_held_out_split(tmp_path):
    """A second stage with other crops and batch goes on from the checkpoint; the seed and folders stay."""
    content, style = folders(tmp_path)
    out = tmp_path / "run"
    first = ["train", "--content", content, "--style", style, "--output", out, "--resize", "64", "--crop", "48",
             "--batch-size", "2", "--max-iter", "2", "--eval-every", "0", "--checkpoint-every", "1",
             "--recolor-styles", "--holdout-every", "3"]  # --recolor-styles alone: every crop
    assert CliRunner().invoke(main, [str(a) for a in first]).exit_code == 0
    # the same folder spelt another way is no change; --crop and --batch-size are
    again = ["train", "--content", f"{content}/.", "--style", style, "--output", out, "--resume",
             "--crop", "32", "--batch-size", "1", "--recolor-styles", "0.25", "--max-iter", "3"]
    result = CliRunner().invoke(main, [str(a) for a in again])
    assert result.exit_code == 0, result.output
    assert "resuming with --crop 32 (was 48)" in result.output and "--content" not in result.output
    assert "resuming with --recolor-styles 0.25 (was 1.0)" in result.output
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    config = json.loads(checkpoint["config"])
    assert checkpoint["step"] == 3 and (config["crop"], config["batch_size"], config["resize"]) == (32, 1, 64)
    assert config["recolor_styles"] == 0.25
    refused = CliRunner().invoke(main, [str(a) for a in again[:-1] + ["4", "--seed", "7"]])
    assert refused.exit_code == 1 and "--seed 0 -> 7" in refused.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3


def test_snapshot_writes_the_runs_weights_average_from_its_checkpoint(tmp_path):
    trainer = Trainer(small_config(tmp_path, tmp_path / "run", max_iter=3, ema_decay=0.9, checkpoint_every=1),
                      progress=False)
    trainer.run()
    out = tmp_path / "now.safetensors"
    result = CliRunner().invoke(main, ["snapshot", str(tmp_path / "run"), "-o", str(out)])
    assert result.exit_code == 0 and "(step 3)" in result.output, result.output
    state, meta = read_weights(out, "decoder")
    assert meta["steps"] == 3 and meta["train_config"]["ema_decay"] == 0.9
    for key, value in trainer.result.state_dict().items():  # the average, not the raw weights
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    assert any(not torch.equal(state[k], v) for k, v in trainer.decoder.state_dict().items())
    again = CliRunner().invoke(main, ["snapshot", str(tmp_path / "run"), "-o", str(out)])
    assert again.exit_code == 1 and "--overwrite" in again.output
    empty = CliRunner().invoke(main, ["snapshot", str(tmp_path), "-o", str(tmp_path / "x.safetensors")])
    assert empty.exit_code == 1 and "no checkpoint.pt" in empty.output


@pytest.mark.slow
def test_both_losses_fall_on_a_fixed_batch(tmp_path):
    """One fixed content-style pair, 120 steps: content and style loss both fall clearly."""
    config = small_config(tmp_path, tmp_path / "run", crop=64, resize=72, batch_size=1, style_weight=1.0)
    trainer = Trainer(config, progress=False)
    content, style = trainer._batch(trainer.content), trainer._batch(trainer.style)
    trainer._batch = lambda folder: content if folder is trainer.content else style  # fixed batch
    history = [trainer.train_step() for _ in range(120)]

    def window(key, part):
        return np.mean([h[key] for h in part])

    assert window("content_loss", history[-10:]) < 0.75 * window("content_loss", history[:10])
    assert window("style_loss", history[-10:]) < 0.25 * window("style_loss", history[:10])


@pytest.mark.slow
def test_the_structure_term_keeps_the_photos_layout_that_the_style_loss_alone_gives_up(tmp_path):
    """Same fixed pair, same seed, 100 steps with the style loss alone and with --structure-weight:
    the run with it ends with a clearly smaller structure distance (and logs it)."""
    def run(weight: float) -> list[dict]:
        config = small_config(tmp_path, tmp_path / f"run{weight}", crop=64, resize=72, batch_size=1,
                              content_weight=0.0, style_weight=1.0, structure_weight=weight)
        trainer = Trainer(config, progress=False)
        content, style = trainer._batch(trainer.content), trainer._batch(trainer.style)
        trainer._batch = lambda folder: content if folder is trainer.content else style  # fixed batch
        history = [trainer.train_step() for _ in range(100)]
        from adainrt.network import encode_with_intermediates
        from adainrt.train.losses import structure_distance, style_targets

        with torch.no_grad():
            feats = encode_with_intermediates(trainer.encoder, content)
            out = trainer.decoder(adain_from_stats(feats[-1], *style_targets(trainer.encoder, style)[-1]))
            history.append({"final": structure_distance(encode_with_intermediates(trainer.encoder, out), feats)})
        return history

    plain, kept = run(0.0), run(10.0)
    assert "structure" not in plain[0] and np.isfinite([h["structure"] for h in kept[:-1]]).all()
    assert kept[-1]["final"] < 0.8 * plain[-1]["final"]


def test_resume_reads_an_older_run_s_recolour_flag_as_every_crop():
    """Runs before v0.4 recorded --recolor-styles as a flag; resumed, it is the fraction 1.0."""
    from adainrt.train.trainer import resume_config

    saved = {"content_dir": "c", "style_dir": "s", "recolor_styles": True}
    config, changes = resume_config(saved, {"recolor_styles": 0.5})
    assert changes == {"recolor_styles": (1.0, 0.5)} and config.recolor_styles == 0.5
    config, changes = resume_config(saved, {"recolor_styles": 1.0})
    assert changes == {} and config.recolor_styles == 1.0


@pytest.mark.parametrize("options", [{}, {"pool_crops_per_image": 2}, {"ema_decay": 0.9},
                                     {"recolor_styles": 1.0}, {"recolor_styles": 0.5, "pool_crops_per_image": 2}],
                         ids=["fresh-crops", "crop-pool", "weights-average", "recolored-styles", "half-recolored-pool"])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, options):
    options = dict(invert_iters=1, **options)
    whole = Trainer(small_config(tmp_path, tmp_path / "whole", max_iter=4, **options), progress=False)
    whole.run()
    part = Trainer(small_config(tmp_path, tmp_path / "part", max_iter=2, **options), progress=False)
    part.run()
    resumed = Trainer(small_config(tmp_path, tmp_path / "part", max_iter=4, **options), progress=False)
    assert resumed.resume() and resumed.step == 2
    resumed.run()
    for key, value in whole.decoder.state_dict().items():
        torch.testing.assert_close(resumed.decoder.state_dict()[key], value, rtol=0, atol=1e-6)
    exported, _ = read_weights(tmp_path / "part" / "decoder.safetensors", "decoder")
    for key, value in whole.result.state_dict().items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=1e-6)


def test_recolored_style_crops_keep_brightness_and_change_hue():
    """A hue rotation keeps every pixel's R+G+B; mirrored or not, the crop is the image's, recoloured."""
    from adainrt.train.data import ImageFolder, StyleAugment, hue_rotation

    image = np.random.default_rng(0).integers(100, 156, (40, 40, 3), dtype=np.uint8)  # far from clipping
    folder = ImageFolder(None, [image], ["a.png"], [])
    crops = folder.random_crops(np.random.default_rng(1), 16, 40, augment=StyleAugment(recolor=1.0))
    plain = image.transpose(2, 0, 1) / 255.0
    moved = 0
    for crop in crops:
        source = plain if np.allclose(crop.sum(0), plain.sum(0), atol=1e-5) else plain[:, :, ::-1]
        np.testing.assert_allclose(crop.sum(0), source.sum(0), atol=1e-5)
        moved += np.abs(crop - source).max() > 0.01  # the colours moved (not for angles near 0)
    assert moved >= 12
    np.testing.assert_allclose(hue_rotation(2 * np.pi / 3) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-6)


def test_a_fraction_of_recolored_style_crops_leaves_the_others_as_painted():
    from adainrt.train.data import ImageFolder, StyleAugment

    image = np.random.default_rng(0).integers(100, 156, (40, 40, 3), dtype=np.uint8)
    folder = ImageFolder(None, [image], ["a.png"], [])
    plain = image.transpose(2, 0, 1) / 255.0
    for fraction, low, high in ((0.0, 64, 64), (0.25, 36, 60), (1.0, 0, 4)):
        crops = folder.random_crops(np.random.default_rng(2), 64, 40, augment=StyleAugment(recolor=fraction))
        as_painted = sum(np.allclose(crop, plain, atol=1e-6) for crop in crops)
        assert low <= as_painted <= high, (fraction, as_painted)  # 1.0: only an unmirrored turn near 0
    with pytest.raises(AdainrtError, match="recolor_styles must be a fraction"):
        TrainConfig(content_dir=".", style_dir=".", recolor_styles=1.5)


def test_toned_style_crops_move_one_end_of_the_levels_and_keep_the_order_of_tones(tmp_path):
    """--tone-styles: each toned crop is the image lightened (white point lowered: its light tones
    turn white) or darkened (black point raised), about half each way; the tones keep their order."""
    from adainrt.train.data import ImageFolder, StyleAugment

    ramp = np.tile(np.linspace(0, 255, 40).round().astype(np.uint8)[None, :, None], (40, 1, 3))
    folder = ImageFolder(None, [ramp], ["ramp.png"], [])
    plain = ramp.transpose(2, 0, 1) / 255.0
    lighter = darker = 0
    for crop in folder.random_crops(np.random.default_rng(3), 64, 40, augment=StyleAugment(tone=1.0)):
        assert np.all(np.diff(crop[0, 0]) >= -1e-6)  # a ramp stays a ramp
        if np.all(crop >= plain - 1e-6) and (crop[0, 0] > 1 - 1e-6).sum() > 1:
            lighter += 1  # the white point came down: more than the last column is white
        elif np.all(crop <= plain + 1e-6) and (crop[0, 0] < 1e-6).sum() > 1:
            darker += 1
    assert lighter >= 20 and darker >= 20 and lighter + darker >= 56, (lighter, darker)  # not: an end moved < 1/40

    untoned = folder.random_crops(np.random.default_rng(4), 8, 40, augment=StyleAugment())
    np.testing.assert_array_equal(untoned, folder.random_crops(np.random.default_rng(4), 8, 40))  # old runs' draws
    trainer = Trainer(small_config(tmp_path, tmp_path / "run", tone_styles=1.0), progress=False)
    styles = trainer._batch(trainer.style).numpy()
    assert (styles > 1 - 1e-6).mean() + (styles < 1e-6).mean() > 0.05  # the trainer's style crops are toned
    with pytest.raises(AdainrtError, match="tone_styles must be a fraction"):
        TrainConfig(content_dir=".", style_dir=".", tone_styles=-0.1)


def test_line_style_crops_are_grey_drawings_of_the_edges_on_light_and_on_dark_grounds(tmp_path):
    """--line-styles: a crop of two flat halves becomes one line down their border, dark on a light
    ground or light on a dark one, about half each way, and grey whatever the colours."""
    from adainrt.train.data import ImageFolder, StyleAugment

    halves = np.zeros((40, 40, 3), np.uint8)
    halves[:, :20] = (200, 40, 40)
    halves[:, 20:] = (40, 200, 90)
    folder = ImageFolder(None, [halves], ["halves.png"], [])
    on_paper = on_dark = 0
    for crop in folder.random_crops(np.random.default_rng(5), 64, 40, augment=StyleAugment(lines=1.0)):
        np.testing.assert_allclose(crop[0], crop[1], atol=1e-6)  # grey
        np.testing.assert_allclose(crop[0], crop[2], atol=1e-6)
        border, ground = crop[0, :, 19:21].mean(), crop[0, :, [0, 1, 2, 37, 38, 39]].mean()
        assert abs(border - ground) > 0.2, (border, ground)  # a line where the halves meet
        np.testing.assert_allclose(crop[0, :, :17], ground, atol=1e-5)  # nothing where they are flat
        on_paper += border < ground
        on_dark += border > ground
    assert on_paper >= 20 and on_dark >= 20, (on_paper, on_dark)

    trainer = Trainer(small_config(tmp_path, tmp_path / "run", line_styles=1.0), progress=False)
    styles = trainer._batch(trainer.style).numpy()
    np.testing.assert_allclose(styles[:, 0], styles[:, 2], atol=1e-6)  # the trainer's style crops are drawings
    with pytest.raises(AdainrtError, match="line_styles must be a fraction"):
        TrainConfig(content_dir=".", style_dir=".", line_styles=2.0)


def test_sketch_style_crops_are_sparse_grey_drawings_on_light_paper(tmp_path):
    """--sketch-styles: a crop of two flat halves becomes one dark line on white paper; on a busy
    texture the sketches ink far fewer pixels than --line-styles' drawings (a few thin lines)."""
    from adainrt.train.data import ImageFolder, StyleAugment, inked_share, line_drawing, sketch_drawing

    halves = np.zeros((40, 40, 3), np.uint8)
    halves[:, :20] = (200, 40, 40)
    halves[:, 20:] = (40, 200, 90)
    folder = ImageFolder(None, [halves], ["halves.png"], [])
    for crop in folder.random_crops(np.random.default_rng(6), 32, 40, augment=StyleAugment(sketches=1.0)):
        np.testing.assert_allclose(crop[0], crop[2], atol=1e-6)  # grey
        ground = crop[0, :, [0, 1, 2, 37, 38, 39]].mean()
        assert ground >= 0.9 - 1e-6  # white paper
        assert ground - crop[0, :, 19:21].mean() > 0.2  # a dark line where the halves meet
        np.testing.assert_allclose(crop[0, :, :17], ground, atol=1e-5)  # nothing where they are flat

    texture = np.random.default_rng(0).uniform(0.0, 1.0, (3, 64, 64)).astype(np.float32)
    texture = (texture + np.roll(texture, 1, axis=1) + np.roll(texture, 1, axis=2)) / 3  # edges everywhere

    rng = np.random.default_rng(7)
    lines = [inked_share(line_drawing(rng, texture)) for _ in range(40)]
    sketches = [inked_share(sketch_drawing(rng, texture)) for _ in range(40)]
    assert np.median(sketches) < 0.5 * np.median(lines), (np.median(sketches), np.median(lines))
    assert sum(share < 0.1 for share in sketches) >= 4, sorted(sketches)  # some as sparse as a line-art sketch

    trainer = Trainer(small_config(tmp_path, tmp_path / "run", sketch_styles=1.0), progress=False)
    styles = trainer._batch(trainer.style).numpy()
    np.testing.assert_allclose(styles[:, 0], styles[:, 1], atol=1e-6)  # the trainer's style crops are sketches
    assert styles.max(axis=(1, 2, 3)).min() >= 0.9 - 1e-6
    with pytest.raises(AdainrtError, match="sketch_styles must be a fraction"):
        TrainConfig(content_dir=".", style_dir=".", sketch_styles=1.5)


def test_the_weights_average_follows_its_formula(tmp_path):
    """ema_k = d_k ema_(k-1) + (1 - d_k) w_k with d_k = min(decay, (1 + k) / (10 + k)); evaluated and exported."""
    trainer = Trainer(small_config(tmp_path, tmp_path / "run", ema_decay=0.5), progress=False)
    expected = [p.detach().clone() for p in trainer.decoder.parameters()]
    for step in range(1, 4):
        trainer.train_step()
        decay = min(0.5, (1 + step) / (10 + step))
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, trainer.decoder.parameters())]
    assert trainer.result is trainer.ema
    for got, want in zip(trainer.ema.parameters(), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    assert any(not torch.equal(a, w) for a, w in zip(trainer.ema.parameters(), trainer.decoder.parameters()))


def test_the_crop_pool_holds_the_encoder_outputs_of_its_crops(tmp_path):
    from adainrt.train.feature_pool import FeaturePool

    trainer = Trainer(small_config(tmp_path, tmp_path / "run", pool_crops_per_image=3), progress=False)
    pool = FeaturePool.build(trainer.encoder, trainer.content, trainer.style, 3, 48, 0, torch.device("cpu"))
    assert len(pool) == 3 * len(trainer.content.images) and pool.style_count == 3 * len(trainer.style.images)
    pixels, features = pool.content_batch(np.array([0, 5]), torch.device("cpu"))
    assert pixels.shape == (2, 3, 48, 48) and features.shape == (2, 512, 6, 6)
    with torch.no_grad():
        expected = trainer.encoder(pixels)
    torch.testing.assert_close(features, expected, rtol=2e-3, atol=2e-3 * float(expected.abs().max()))
    again = FeaturePool.build(trainer.encoder, trainer.content, trainer.style, 3, 48, 0, torch.device("cpu"))
    assert torch.equal(again.pixels, pool.pixels)  # a resumed run rebuilds the same pool
    stats = pool.style_batch(np.array([1]), torch.device("cpu"))
    assert [m.shape[:2] for m, _ in stats] == [(1, 64), (1, 128), (1, 256), (1, 512)]


def test_structure_is_zero_for_the_photo_restyled_and_large_for_another_image():
    from adainrt.train.evaluate import score_pairs_at
    from adainrt.weights import load_encoder

    encoder, _ = load_encoder()
    images = [torch.from_numpy(np.asarray(synthetic_image(64, 64, seed=s), np.float32) / 255).permute(2, 0, 1)[None]
              for s in (1, 2)]
    content, style = images
    # a per-channel gain and offset changes the colours, not the layout: features move, their
    # normalized form barely does
    recoloured = (content * torch.tensor([0.6, 0.9, 0.7]).view(1, 3, 1, 1) + 0.2).clamp(0, 1)
    same, = score_pairs_at(encoder, lambda c, s, a: c, content, style, [1.0])
    tinted, = score_pairs_at(encoder, lambda c, s, a: recoloured, content, style, [1.0])
    other, = score_pairs_at(encoder, lambda c, s, a: s, content, style, [1.0])
    assert same[0].structure < 1e-6
    assert tinted[0].structure < 0.3 * other[0].structure
    assert 0.5 < other[0].structure < 4.0


def test_scores_at_several_alphas_match_single_runs():
    from adainrt.train.evaluate import score_pairs, score_pairs_at
    from adainrt.weights import load_encoder

    encoder, _ = load_encoder()
    torch.manual_seed(0)
    decoder = build_decoder().eval()
    images = torch.stack([torch.from_numpy(np.asarray(synthetic_image(48, 48, seed=s), np.float32) / 255)
                          .permute(2, 0, 1) for s in (3, 4, 5)])
    both = score_pairs_at(encoder, decoder, images[:2], images[1:], [1.0, 0.5])
    for (scores, outputs), alpha in zip(both, (1.0, 0.5)):
        alone, alone_outputs = score_pairs(encoder, decoder, images[:2], images[1:], alpha=alpha)
        assert scores.as_dict() == pytest.approx(alone.as_dict(), rel=1e-5)
        torch.testing.assert_close(outputs, alone_outputs)
    assert both[1][0].content_loss != pytest.approx(both[0][0].content_loss)


def test_the_measure_is_zero_for_the_style_and_the_baseline_for_the_content():
    from adainrt.train.evaluate import score_pairs
    from adainrt.weights import load_encoder

    encoder, _ = load_encoder()
    images = [torch.from_numpy(np.asarray(synthetic_image(64, 64, seed=s), np.float32) / 255).permute(2, 0, 1)
              for s in (1, 2)]
    content, style = images[0][None], images[1][None]
    as_style, _ = score_pairs(encoder, lambda c, s, a: s, content, style)
    as_content, _ = score_pairs(encoder, lambda c, s, a: c, content, style)
    assert as_style.style_loss < 1e-6 * as_style.baseline_style_loss
    assert as_content.baseline_style_loss > 0
    assert as_content.style_loss == pytest.approx(as_content.baseline_style_loss, rel=1e-4)
    assert as_content.style_ratio == pytest.approx(1.0, rel=1e-4) and as_content.content_loss > 0


@pytest.mark.slow
def test_evaluate_measures_torch_and_exported_graphs_alike(tmp_path, exported_dir, random_decoder):
    content, style = make_folders(tmp_path)
    common = ["evaluate", "--content", content, "--style", style, "--decoder", random_decoder, "--size", "48",
              "--json"]
    runs = {}
    for backend in ("torch", "ort-cpu"):
        extra = ["--backend", backend, "--model", exported_dir, "--all-pairs"] if backend != "torch" else \
                ["--all-pairs", "--sheet", tmp_path / "sheet.png", "--sheet-cell", "48"]
        result = CliRunner().invoke(main, [str(a) for a in common + extra], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        runs[backend] = json.loads(result.output[result.output.index("{"):])
    reference, graphs = runs["torch"], runs["ort-cpu"]
    assert reference["pairs"] == graphs["pairs"] == 6 * 4  # every content (the unreadable one skipped) x every style
    assert reference["baseline_style_loss"] > 0
    assert graphs["baseline_style_loss"] == pytest.approx(reference["baseline_style_loss"], rel=1e-4)
    # the scores name the decoder they measured (scripts/ship_decoder.py checks it)
    assert graphs["decoder_hash"] == reference["decoder_hash"] == weights_metadata(random_decoder)["weights_hash"]
    for key in ("content_loss", "style_loss"):
        assert abs(graphs[key] - reference[key]) < 1e-3 * reference[key]
    by_style = reference["by_style"]  # each style's 6 pairs: their means average to the whole's
    assert sorted(by_style) == sorted(str(p.relative_to(style)) for p in style.rglob("*.png"))
    assert [part["pairs"] for part in by_style.values()] == [6] * 4
    for key in ("content_loss", "style_loss", "baseline_style_loss"):
        assert np.mean([part[key] for part in by_style.values()]) == pytest.approx(reference[key], rel=1e-7)
    assert len({part["style_ratio"] for part in by_style.values()}) == 4
    for part in [reference, graphs, *by_style.values()]:  # a random decoder keeps little of the photo's layout
        assert 0.2 < part["structure"] < 4.0
    assert graphs["structure"] == pytest.approx(reference["structure"], rel=1e-2)
    with Image.open(tmp_path / "sheet.png") as sheet:  # the styles along the top, the 6 photos down the left
        assert sheet.size == ((4 + 1) * 48, (6 + 1) * 48)  # --sheet-cell 48: the outputs at full size
        corner = np.asarray(sheet.crop((0, 0, 48, 48)), np.float32)
        assert corner.min() > 250  # the empty corner cell stays white


def torchrun_train(root, out, max_iter: int) -> None:
    """`adainrt train` under torchrun with two CPU ranks (gloo), as on a multi-GPU machine."""
    import subprocess
    import sys

    content, style = folders(root)
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "adainrt.cli", "train", "--content", content, "--style", style, "--output", out,
            "--resize", "64", "--crop", "48", "--batch-size", "1", "--max-iter", str(max_iter),
            "--checkpoint-every", "2", "--eval-every", "0", "--holdout-every", "3", "--lr", "1e-3"]
    if (out / "checkpoint.pt").exists():
        args.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_torchrun_two_ranks_train_and_resume_exactly(tmp_path):
    """DistributedDataParallel: both ranks step together, rank 0 writes; each rank's random state is
    checkpointed, so a resumed two-rank run reproduces the uninterrupted one."""
    torchrun_train(tmp_path, tmp_path / "whole", 4)
    torchrun_train(tmp_path, tmp_path / "part", 2)
    torchrun_train(tmp_path, tmp_path / "part", 4)
    start = [json.loads(line) for line in (tmp_path / "whole" / "log.jsonl").read_text().splitlines()][0]
    assert start["world_size"] == 2
    ckpt = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 4 and len(json.loads(ckpt["rng_states"])) == 2
    whole, _ = read_weights(tmp_path / "whole" / "decoder.safetensors", "decoder")
    resumed, _ = read_weights(tmp_path / "part" / "decoder.safetensors", "decoder")
    for key, value in whole.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=1e-6)


@pytest.mark.parametrize("options, message", [
    (["--crop", "128", "--resize", "64"], "crop 128 is larger than resize 64"),
    (["--batch-size", "0"], "batch_size must be at least 1, got 0; check --batch-size"),
    (["--lr", "0"], "lr must be positive, got 0.0; check --lr"),
    (["--holdout-every", "1"], "hold out every image"),
    (["--holdout-every", "25"], "holds out none of its 7 images"),
])
def test_bad_training_settings_are_named_before_anything_runs(tmp_path, options, message):
    content, style = make_folders(tmp_path)
    args = ["train", "--content", content, "--style", style, "--output", tmp_path / "run", "--resize", "64",
            "--crop", "48", "--max-iter", "1", *options]
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_diverging_run_stops_at_the_first_non_finite_loss_and_writes_no_decoder(tmp_path):
    content, style = make_folders(tmp_path)
    out = tmp_path / "run"
    args = ["train", "--content", content, "--style", style, "--output", out, "--resize", "64", "--crop", "48",
            "--batch-size", "2", "--max-iter", "3", "--eval-every", "0", "--holdout-every", "3",
            "--content-weight", "1e39"]  # finite, but the weighted loss overflows float32 at once
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1 and "training diverged at step 1" in result.output and "--lr" in result.output
    assert not (out / "decoder.safetensors").exists() and not (out / "checkpoint.pt").exists()
    for line in (out / "log.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=pytest.fail)  # no bare NaN logged
    refused = CliRunner().invoke(main, [str(a) for a in [*args[:-2], "--style-weight", "inf"]])
    assert refused.exit_code == 1 and "style_weight must be a finite number" in refused.output


def test_ctrl_c_mid_step_resumes_exactly(tmp_path, monkeypatch):
    whole = Trainer(small_config(tmp_path, tmp_path / "whole", max_iter=4), progress=False)
    whole.run()
    part = Trainer(small_config(tmp_path, tmp_path / "part", max_iter=4), progress=False)
    drawn = part._inputs

    def interrupted_at_step_3(inverting):
        batch = drawn(inverting)  # the cut-off step has drawn its crops already
        if part.step == 2:
            raise KeyboardInterrupt
        return batch

    monkeypatch.setattr(part, "_inputs", interrupted_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        part.run()
    resumed = Trainer(small_config(tmp_path, tmp_path / "part", max_iter=4), progress=False)
    assert resumed.resume() and resumed.step == 2
    resumed.run()
    for key, value in whole.decoder.state_dict().items():
        torch.testing.assert_close(resumed.decoder.state_dict()[key], value, rtol=0, atol=1e-6)


def test_resume_keeps_the_runs_step_limit_and_a_new_run_keeps_off_an_old_decoder(tmp_path):
    from adainrt.train.trainer import run_config

    Trainer(small_config(tmp_path, tmp_path / "run", max_iter=2), progress=False).run()
    given_now = {"max_iter": 160_000, "max_minutes": 0.0}  # the CLI's defaults, not given by the user
    config, _changes = run_config(tmp_path / "run", True, given_now, given=())
    assert config.max_iter == 2
    assert run_config(tmp_path / "run", True, given_now, given=("max_iter",))[0].max_iter == 160_000
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "decoder.safetensors").write_bytes((tmp_path / "run" / "decoder.safetensors").read_bytes())
    with pytest.raises(AdainrtError, match="holds decoder.safetensors of an earlier run"):
        run_config(tmp_path / "copy", False, {})


def test_import_weights_refuses_our_own_files_and_checkpoints(tmp_path):
    Trainer(small_config(tmp_path, tmp_path / "run", max_iter=1), progress=False).run()
    ours = CliRunner().invoke(main, ["import-weights", str(tmp_path / "run" / "decoder.safetensors"),
                                     "-o", str(tmp_path / "again.safetensors")])
    assert ours.exit_code == 1 and "already an adainrt decoder file" in ours.output
    checkpoint = CliRunner().invoke(main, ["import-weights", str(tmp_path / "run" / "checkpoint.pt"),
                                           "-o", str(tmp_path / "again.safetensors")])
    assert checkpoint.exit_code == 1 and "adainrt snapshot" in checkpoint.output
    assert not (tmp_path / "again.safetensors").exists()


def test_evaluate_and_snapshot_refuse_what_they_would_ignore_or_misname(tmp_path):
    content, style = make_folders(tmp_path)
    common = ["evaluate", "--content", str(content), "--style", str(style)]
    model = CliRunner().invoke(main, [*common, "--model", str(tmp_path)])
    assert model.exit_code == 1 and "not a model folder (it has no manifest.json)" in model.output
    half = CliRunner().invoke(main, [*common, "--precision", "fp16"])  # torch eager scores in fp32 only
    assert half.exit_code == 1 and "backend torch runs fp32, not fp16" in half.output
    small = CliRunner().invoke(main, [*common, "--size", "16"])
    assert small.exit_code == 1 and "crop size 16 is below the minimum of 32" in small.output
    assert "0 keeps" not in small.output
    Trainer(small_config(tmp_path, tmp_path / "run", max_iter=1), progress=False).run()
    misnamed = CliRunner().invoke(main, ["snapshot", str(tmp_path / "run"), "-o", str(tmp_path / "d.pth")])
    assert misnamed.exit_code == 1 and "name it d.safetensors" in misnamed.output
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint")
    broken = CliRunner().invoke(main, ["snapshot", str(tmp_path / "run"), "-o", str(tmp_path / "d.safetensors")])
    assert broken.exit_code == 1 and "unreadable checkpoint" in broken.output and "weights_only" not in broken.output


@pytest.mark.slow
def test_sigterm_checkpoints_a_run_as_ctrl_c_does(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    content, style = make_folders(tmp_path)
    out = tmp_path / "run"
    args = [sys.executable, "-c", "from adainrt.cli import main; main()", "train", "--content", str(content),
            "--style", str(style), "--output", str(out), "--resize", "64", "--crop", "48", "--batch-size", "1",
            "--max-iter", "100000", "--eval-every", "0", "--checkpoint-every", "100000", "--holdout-every", "3"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out / "log.jsonl").exists():
        time.sleep(0.5)
    time.sleep(3)  # some steps
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1 and "checkpoint written, --resume continues" in output, output
    assert (out / "checkpoint.pt").exists()
