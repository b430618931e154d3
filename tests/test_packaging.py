"""Packaging and provider truth (issue 15), checked on any machine.

The documented installs must give exactly one onnxruntime distribution, a TensorRT whose major
matches what onnxruntime-gpu's TensorRT provider links (libnvinfer.so.10), and one CUDA major
per extra. A provider that onnxruntime lists but cannot run must not count as a backend.
"""

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements() -> tuple[list[str], dict[str, list[str]]]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]


def names(requirements_: list[str]) -> list[str]:
    return [re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements_]


def test_one_onnxruntime_per_install():
    base, extras = requirements()
    assert not [n for n in names(base) if n.startswith("onnxruntime")], "base must not pull an onnxruntime build"
    assert not [n for n in names(base) if n.startswith(("tensorrt", "cuda"))], "GPU packages stay in extras"
    assert names(extras["cpu"]).count("onnxruntime") == 1
    for extra in ("gpu", "gpu-cu12"):
        found = [n for n in names(extras[extra]) if n.startswith("onnxruntime")]
        assert found == ["onnxruntime-gpu"], (extra, found)
    assert not [n for n in names(extras["test"]) if n.startswith("onnxruntime")]


@pytest.mark.parametrize("extra, cuda", [("gpu", 13), ("gpu-cu12", 12)])
def test_tensorrt_and_cuda_majors_match_the_provider(extra, cuda):
    _base, extras = requirements()
    declared = {names([r])[0]: r for r in extras[extra]}
    assert f"tensorrt-cu{cuda}" in declared and "<11" in declared[f"tensorrt-cu{cuda}"]  # libnvinfer.so.10
    assert re.search(rf">={cuda}(\.\d+)*,<{cuda + 1}", declared["cuda-python"])
    assert "[cuda,cudnn]" in declared["onnxruntime-gpu"]  # its CUDA and cuDNN runtime wheels
    # onnxruntime-gpu 1.28+ is built for CUDA 13, up to 1.26 for CUDA 12
    assert (">=1.28" in declared["onnxruntime-gpu"]) == (cuda == 13)
    assert ("<1.27" in declared["onnxruntime-gpu"]) == (cuda == 12)


def test_a_listed_provider_that_falls_back_is_not_a_backend(tmp_path, exported_dir):
    """onnxruntime-gpu on a machine without a GPU lists CUDA and TensorRT; a session then runs on the CPU.
    Emulated here by making this onnxruntime list the CUDA provider: the session it makes really falls
    back (a real onnxruntime session, not a stand-in)."""
    script = textwrap.dedent(f"""
        import json, onnxruntime
        real = onnxruntime.get_available_providers
        onnxruntime.get_available_providers = lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", *real()]
        from adainrt.errors import BackendUnavailable
        from adainrt.info import collect
        from adainrt.runtime import Stylizer, choose
        report = collect()
        try:
            Stylizer({str(exported_dir)!r}, backend="ort-cuda")
            refused = None
        except BackendUnavailable as exc:
            refused = str(exc)
        print(json.dumps({{"auto": choose("auto").name, "backends": report["backends"], "refused": refused}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # nothing but JSON on standard output
    assert report["auto"] in ("openvino", "ort-cpu")
    by_name = {b["name"]: b for b in report["backends"]}
    for name in ("ort-cuda", "ort-trt"):
        assert not by_name[name]["available"] and "falls back" in by_name[name]["reason"], by_name[name]
    assert report["refused"] and "ort-cuda" in report["refused"]


def test_native_output_goes_to_stderr_inside_the_guard():
    script = textwrap.dedent("""
        import os
        from adainrt.fileio import stdout_to_stderr
        print("before", flush=True)
        with stdout_to_stderr():
            os.write(1, b"native chatter\\n")
            print("python chatter")
        print("after")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["before", "after"]
    assert "native chatter" in result.stderr and "python chatter" in result.stderr
