"""Shared fixtures: generated images, a seeded random decoder, graphs exported once per run.

Plain functions and constants tests share are in tests/helpers.py; the names imported from there
below stay importable from here for files that still do so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import NO_TORCH_PRELUDE, SHARED_DATA, synthetic_image

__all__ = ["NO_TORCH_PRELUDE", "SHARED_DATA", "synthetic_image"]

def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that read ../shared/data carry the ``data`` marker (select or deselect them with -m)."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.data)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Exported graphs, engines and stored styles of the test run go to a fresh folder, not ~/.cache."""
    folder = tmp_path_factory.mktemp("adainrt-cache")
    os.environ["ADAINRT_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def images_dir(tmp_path_factory) -> Path:
    """content_*.png / style_*.jpg of odd sizes, written as real files."""
    folder = tmp_path_factory.mktemp("images")
    synthetic_image(96, 120, seed=1).save(folder / "content_a.png")
    synthetic_image(77, 101, seed=2).save(folder / "content_b.jpg", quality=90)
    synthetic_image(128, 128, seed=3).save(folder / "style_a.jpg", quality=90)
    return folder


@pytest.fixture(scope="session")
def encoder_meta() -> dict:
    from adainrt.weights import load_embedded_encoder

    return load_embedded_encoder()[1]


@pytest.fixture(scope="session")
def random_decoder(tmp_path_factory, encoder_meta) -> Path:
    """A seeded random decoder paired with the embedded encoder (no trained one needed)."""
    import torch

    from adainrt.network import build_decoder
    from adainrt.weights import save_weights

    torch.manual_seed(1234)
    decoder = build_decoder()
    with torch.no_grad():  # scale the last conv so outputs span about [0, 1] like a trained decoder's
        decoder[-1].weight *= 40.0
        decoder[-1].bias.fill_(0.5)
    path = tmp_path_factory.mktemp("weights") / "decoder.safetensors"
    meta = {"kind": "decoder", "encoder_hash": encoder_meta["weights_hash"], "source": "seeded random (tests)"}
    save_weights(path, decoder.state_dict(), meta)
    return path


@pytest.fixture(scope="session")
def model(random_decoder):
    from adainrt.export.cache import load_model

    return load_model(None, random_decoder)


@pytest.fixture(scope="session")
def exported_dir(tmp_path_factory, model) -> Path:
    """All four graphs, exported once for the whole run."""
    from adainrt.export import export_model

    torch_model, prov = model
    folder = tmp_path_factory.mktemp("graphs")
    for form in ("full", "split"):
        export_model(torch_model, folder, form, prov)
    return folder


@pytest.fixture(scope="session")
def lite_dir(tmp_path_factory) -> Path:
    """The bundled lite network's four graphs (adainrt export --variant lite), exported once for the run."""
    from adainrt.export import export_model
    from adainrt.export.cache import load_model

    torch_model, prov = load_model(None, None, "lite")
    folder = tmp_path_factory.mktemp("lite-graphs")
    for form in ("full", "split"):
        export_model(torch_model, folder, form, prov)
    return folder


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"real photos and paintings not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    """cpp/ built once per run (the library and the example), for the C++ tests and the manifest fuzz."""
    from adainrt.benchmarks import cpp_bench

    reason = cpp_bench.missing_tools()
    if reason:
        pytest.skip(f"C++ build not possible here: {reason}")
    return cpp_bench.build(tmp_path_factory.mktemp("cpp-build"))
