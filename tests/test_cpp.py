"""The C++ library and example (cpp/): built with CMake once, compared with the Python runtime.

The example (8-bit PPM in and out) and the C ABI through ctypes (float NCHW) must give the
Python runtime's numbers on the same graphs (OpenVINO f32), and every bad input must fail
with one clear line. Skipped, with the reason, where cmake, a C++ compiler or openvino is missing.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adainrt.benchmarks import cpp_bench
from tests.helpers import synthetic_image

pytestmark = pytest.mark.slow  # a CMake build of cpp/ and many compiled runs: not the fast lane

SIZES = [(77, 101), (64, 96)]  # (height, width): the first is not a multiple of 8
ALPHAS = [1.0, 0.5]
STYLE_SIZE = (96, 128)
# ctypes signatures of the C ABI (cpp/include/adainrt/adainrt.h): name -> (restype, argtypes).
_F32P, _U8P = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint8)
C_ABI = {
    "adainrt_open": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]),
    "adainrt_close": (None, [ctypes.c_void_p]),
    "adainrt_channels": (ctypes.c_int, [ctypes.c_void_p]),
    "adainrt_style_stats_nchw": (ctypes.c_int, [ctypes.c_void_p, _F32P, ctypes.c_int, ctypes.c_int, _F32P, _F32P]),
    "adainrt_stylize_nchw": (ctypes.c_int, [ctypes.c_void_p, _F32P, ctypes.c_int, ctypes.c_int, _F32P, _F32P,
                                            ctypes.c_float, _F32P]),
    "adainrt_stylize_rgb8": (ctypes.c_int, [ctypes.c_void_p, _U8P, ctypes.c_int, ctypes.c_int, _F32P, _F32P,
                                            ctypes.c_float, _U8P]),
    "adainrt_last_error": (ctypes.c_char_p, []),
}
ADAINRT_ERROR_INVALID_ARGUMENT, ADAINRT_ERROR_MODEL = 1, 2


@pytest.fixture(scope="module")
def ppm_images(tmp_path_factory) -> dict:
    """{name: (ppm path, uint8 HxWx3 array)}: content_HxW for each size, and the style."""
    folder = tmp_path_factory.mktemp("ppm")
    images = {f"content_{h}x{w}": synthetic_image(h, w, seed=2 + i) for i, (h, w) in enumerate(SIZES)}
    images["style"] = synthetic_image(*STYLE_SIZE, seed=3)
    out = {}
    for name, image in images.items():
        image.save(folder / f"{name}.ppm", format="PPM")
        out[name] = (folder / f"{name}.ppm", np.asarray(image))
    return out


@pytest.fixture(scope="module", params=["full", "lite"])
def graphs(request, exported_dir, lite_dir) -> Path:
    """The export of each network variant: the C++ library reads the widths from the manifest."""
    return exported_dir if request.param == "full" else lite_dir


@pytest.fixture(scope="module")
def python_stylizer(graphs):
    from adainrt.runtime import Stylizer

    with Stylizer(graphs, backend="openvino", precision="fp32") as stylizer:
        yield stylizer


def run_example(build: Path, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(build / cpp_bench.EXAMPLE), *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("alpha", ALPHAS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_example_matches_python(cpp_build, graphs, ppm_images, python_stylizer, tmp_path, size, alpha):
    content_ppm, content = ppm_images[f"content_{size[0]}x{size[1]}"]
    style_ppm, style = ppm_images["style"]
    out = tmp_path / "out.ppm"
    done = run_example(cpp_build, graphs, content_ppm, style_ppm, out, alpha)
    assert done.returncode == 0, done.stderr
    cpp = np.asarray(Image.open(out).convert("RGB"))
    python = python_stylizer.stylize(content, style, alpha)
    assert cpp.shape == python.shape == content.shape
    diff = np.abs(cpp.astype(int) - python.astype(int))
    assert diff.max() <= 2, f"max |C++ - Python| = {diff.max()} of 255"
    assert cpp.std() > 5  # an image, not a constant: the comparison means something


@pytest.fixture(scope="module")
def c_abi(cpp_build, graphs):
    """The C ABI through ctypes, with one open handle on each variant's export: (library, handle)."""
    lib = ctypes.CDLL(str(cpp_build / cpp_bench.LIBRARY))
    for name, (restype, argtypes) in C_ABI.items():
        getattr(lib, name).restype, getattr(lib, name).argtypes = restype, argtypes
    handle = ctypes.c_void_p()
    assert lib.adainrt_open(str(graphs).encode(), 0, 0, ctypes.byref(handle)) == 0, lib.adainrt_last_error()
    yield lib, handle
    lib.adainrt_close(handle)


def _nchw(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray((image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None])


def _ptr(array: np.ndarray, kind: type) -> ctypes._Pointer:
    return array.ctypes.data_as(ctypes.POINTER(kind))


def _c_style(c_abi, style: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lib, handle = c_abi
    channels = lib.adainrt_channels(handle)
    mean, std = np.zeros(channels, np.float32), np.zeros(channels, np.float32)
    array = _nchw(style)
    code = lib.adainrt_style_stats_nchw(handle, _ptr(array, ctypes.c_float), style.shape[1], style.shape[0],
                                        _ptr(mean, ctypes.c_float), _ptr(std, ctypes.c_float))
    assert code == 0, lib.adainrt_last_error()
    return mean, std


@pytest.mark.parametrize("alpha", ALPHAS)
def test_c_abi_float_path_matches_python(c_abi, ppm_images, python_stylizer, alpha):
    lib, handle = c_abi
    _, content = ppm_images["content_77x101"]
    _, style = ppm_images["style"]
    mean, std = _c_style(c_abi, style)
    reference = python_stylizer.style_stats(style)
    np.testing.assert_allclose(mean, reference.mean.ravel(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(std, reference.std.ravel(), rtol=1e-4, atol=1e-5)

    height, width = content.shape[:2]
    out = np.full((1, 3, height, width), np.nan, np.float32)
    code = lib.adainrt_stylize_nchw(handle, _ptr(_nchw(content), ctypes.c_float), width, height,
                                    _ptr(mean, ctypes.c_float), _ptr(std, ctypes.c_float), alpha,
                                    _ptr(out, ctypes.c_float))
    assert code == 0, lib.adainrt_last_error()
    # Float HxWx3 in, float out: the Python runtime's output clipped to [0, 1], as the C API's is.
    python = python_stylizer.stylize(content.astype(np.float32) / 255.0, style, alpha)
    assert np.abs(out[0].transpose(1, 2, 0) - python).max() <= 1e-3


def test_c_abi_reports_bad_input(c_abi, ppm_images, tmp_path):
    lib, handle = c_abi
    _, style = ppm_images["style"]
    mean, std = _c_style(c_abi, style)
    small = np.zeros((16, 20, 3), np.uint8)
    out = np.zeros_like(small)
    args = (_ptr(mean, ctypes.c_float), _ptr(std, ctypes.c_float))
    code = lib.adainrt_stylize_rgb8(handle, _ptr(small, ctypes.c_uint8), 20, 16, *args, 1.0, _ptr(out, ctypes.c_uint8))
    assert code == ADAINRT_ERROR_INVALID_ARGUMENT
    assert b"content: 20x16 is too small" in lib.adainrt_last_error()
    _, content = ppm_images["content_64x96"]
    out = np.zeros_like(content)
    code = lib.adainrt_stylize_rgb8(handle, _ptr(content, ctypes.c_uint8), 96, 64, *args, 1.5,
                                    _ptr(out, ctypes.c_uint8))
    assert code == ADAINRT_ERROR_INVALID_ARGUMENT
    assert b"alpha must be in [0, 1]" in lib.adainrt_last_error()

    other = ctypes.c_void_p()
    assert lib.adainrt_open(str(tmp_path).encode(), 0, 0, ctypes.byref(other)) == ADAINRT_ERROR_MODEL
    assert not other.value
    assert f"{tmp_path}: no manifest.json".encode() in lib.adainrt_last_error()


def test_c_abi_handle_shared_by_threads(c_abi, ppm_images):
    """ctypes releases the GIL, so these calls overlap in the library: its mutex must serialize them."""
    lib, handle = c_abi
    _, content = ppm_images["content_64x96"]
    mean, std = _c_style(c_abi, ppm_images["style"][1])

    def stylize(_: int) -> np.ndarray:
        out = np.zeros_like(content)
        code = lib.adainrt_stylize_rgb8(handle, _ptr(content, ctypes.c_uint8), 96, 64, _ptr(mean, ctypes.c_float),
                                        _ptr(std, ctypes.c_float), 0.8, _ptr(out, ctypes.c_uint8))
        assert code == 0, lib.adainrt_last_error()
        return out

    with ThreadPoolExecutor(max_workers=3) as pool:
        first, *others = pool.map(stylize, range(6))
    for other in others:
        assert np.abs(other.astype(np.int16) - first).max() <= 1  # threads share one compiled model


def _assert_fails(done: subprocess.CompletedProcess, *expected: str) -> None:
    message = done.stderr.strip()
    assert done.returncode != 0
    assert "\n" not in message, f"not one line: {message!r}"
    for part in expected:
        assert part in message, message


@pytest.fixture
def example_args(exported_dir, ppm_images, tmp_path) -> list:
    """Valid arguments; each failure test spoils one."""
    return [exported_dir, ppm_images["content_64x96"][0], ppm_images["style"][0], tmp_path / "out.ppm"]


def test_example_missing_file(cpp_build, example_args, tmp_path):
    missing = tmp_path / "absent.ppm"
    done = run_example(cpp_build, example_args[0], missing, *example_args[2:])
    _assert_fails(done, f"{missing}: no such image file")
    assert not example_args[3].exists()


def test_example_non_ppm_file(cpp_build, example_args, tmp_path):
    png = tmp_path / "photo.ppm"  # a PNG under a PPM name, as a careless rename makes
    synthetic_image(40, 40).save(png, format="PNG")
    done = run_example(cpp_build, example_args[0], example_args[1], png, example_args[3])
    _assert_fails(done, f"{png}: not a binary PPM file")


def test_example_truncated_ppm(cpp_build, example_args, tmp_path):
    cut = tmp_path / "cut.ppm"
    cut.write_bytes(example_args[1].read_bytes()[:5000])
    done = run_example(cpp_build, example_args[0], cut, *example_args[2:])
    _assert_fails(done, f"{cut}: truncated", "96x64")


def test_example_wrong_model_folder(cpp_build, example_args, tmp_path):
    done = run_example(cpp_build, tmp_path, *example_args[1:])
    _assert_fails(done, f"{tmp_path}: no manifest.json", "adainrt export")
    done = run_example(cpp_build, tmp_path / "nowhere", *example_args[1:])
    _assert_fails(done, f"{tmp_path / 'nowhere'}: no such model folder")
    (tmp_path / "manifest.json").write_text("{not json")
    done = run_example(cpp_build, tmp_path, *example_args[1:])
    _assert_fails(done, "manifest.json: invalid JSON at byte 1")


def test_example_refuses_changed_graph(cpp_build, exported_dir, example_args, tmp_path):
    """A graph that is not the one manifest.json hashes is refused before OpenVINO reads it."""
    model = tmp_path / "model"
    model.mkdir()
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    for name, entry in manifest["graphs"].items():
        if entry["graph"] != "decoder":
            (model / name).symlink_to(exported_dir / name)
    (model / "adain_decoder.onnx").write_bytes(b"not the exported decoder")
    (model / "manifest.json").write_text(json.dumps(manifest))
    done = run_example(cpp_build, model, *example_args[1:])
    _assert_fails(done, f"{model / 'adain_decoder.onnx'} is not the graph its manifest.json describes")


@pytest.mark.parametrize(("alpha", "expected"), [("1.5", "alpha must be in [0, 1]"), ("high", "not a number")])
def test_example_bad_alpha(cpp_build, example_args, alpha, expected):
    _assert_fails(run_example(cpp_build, *example_args, alpha), expected)


def test_example_too_small_and_no_overwrite(cpp_build, example_args, tmp_path):
    small = tmp_path / "small.ppm"
    synthetic_image(20, 40).save(small, format="PPM")
    _assert_fails(run_example(cpp_build, *example_args[:2], small, example_args[3]), "style: 40x20 is too small")
    example_args[3].write_bytes(b"keep")
    _assert_fails(run_example(cpp_build, *example_args), "exists; pass --overwrite")
    assert example_args[3].read_bytes() == b"keep"


def test_example_refuses_graph_names_that_are_paths(cpp_build, exported_dir, example_args, tmp_path):
    """Graph names are file names inside the model folder: a manifest naming another folder's graphs, an
    absolute path or '..' is refused before anything is opened (the FIFO would block an open)."""
    os.mkfifo(tmp_path / "adain_style.onnx")  # outside the model folder: opening it would hang the example
    manifest = json.loads((exported_dir / "manifest.json").read_text())
    for bad in ("../adain_style.onnx", str(tmp_path / "adain_style.onnx"), "/etc/passwd", "../../..", "..", "a\\b"):
        model = tmp_path / f"model-{abs(hash(bad))}"
        model.mkdir()
        graphs = {(bad if entry["graph"] == "style" and entry["precision"] == "fp32" else name): entry
                  for name, entry in manifest["graphs"].items()}
        (model / "manifest.json").write_text(json.dumps({**manifest, "graphs": graphs}))
        done = run_example(cpp_build, model, *example_args[1:])
        _assert_fails(done, f'graph "{bad}" is not a file name inside the folder')


def test_example_refuses_an_output_that_is_a_fifo_or_a_device(cpp_build, example_args, tmp_path):
    fifo = tmp_path / "pipe.ppm"
    os.mkfifo(fifo)
    for target, kind in ((fifo, "a named pipe (FIFO)"), (Path("/dev/null"), "a device")):
        done = run_example(cpp_build, *example_args[:3], target, "--overwrite")
        _assert_fails(done, f"{target} is {kind}, not a regular file")
    assert fifo.is_fifo() and Path("/dev/null").is_char_device()
