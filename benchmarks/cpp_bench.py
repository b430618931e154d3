"""The cost of Python: the C++ example's per-image time beside the Python runtime's, same graphs and backend.

Both sides run the split FP32 graphs on OpenVINO's CPU plugin in f32 with a cached style
(encoder + decoder per image, 8-bit RGB in and out). The C++ side is ``adainrt_stylize
--repeat N`` (cpp/, built here with CMake when absent); the Python side is
``Stylizer(model, backend="openvino", precision="fp32").stylize`` on the same pixels. Rounds
alternate C++ and Python so that a change in machine load hits both. Measured, never asserted.

    python -m adainrt.benchmarks.cpp_bench --model models/ --size 512 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from adainrt.errors import AdainrtError

if TYPE_CHECKING:
    import numpy as np

    from adainrt.runtime import Stylizer

#: The C++ project, in a source checkout (an editable install runs this file from there).
CPP_SOURCE = Path(__file__).resolve().parents[1] / "cpp"
DEFAULT_BUILD = CPP_SOURCE / "build"
EXAMPLE = "adainrt_stylize"
LIBRARY = "libadainrt_cpp.so"
COMPILERS = ("c++", "g++", "clang++")


def openvino_cmake_dir() -> Path | None:
    """The CMake package folder of the installed openvino wheel (its headers and libraries), or None."""
    try:
        import openvino
    except ImportError:
        return None
    folder = Path(openvino.__file__).parent / "cmake"
    return folder if (folder / "OpenVINOConfig.cmake").is_file() else None


def missing_tools() -> str | None:
    """Why the C++ project cannot be built here, or None when it can."""
    if shutil.which("cmake") is None:
        return "cmake is not installed"
    compiler = os.environ.get("CXX")
    if not (shutil.which(compiler) if compiler else any(shutil.which(c) for c in COMPILERS)):
        return f"no C++ compiler ({os.environ.get('CXX') or ', '.join(COMPILERS)}) on PATH"
    if openvino_cmake_dir() is None:
        return "openvino is not importable (pip install openvino): the C++ library links its runtime"
    if not (CPP_SOURCE / "CMakeLists.txt").is_file():
        return f"no C++ sources at {CPP_SOURCE} (a source checkout has them)"
    return None


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-8000:]
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{output}")


def build(build_dir: Path, jobs: int = 2) -> Path:
    """Configure and build cpp/ (Release) into build_dir; returns the folder holding adainrt_stylize."""
    reason = missing_tools()
    if reason:
        raise RuntimeError(f"cannot build the C++ project: {reason}")
    _run(["cmake", "-S", str(CPP_SOURCE), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=Release",
          f"-DOpenVINO_DIR={openvino_cmake_dir()}"])
    _run(["cmake", "--build", str(build_dir), "-j", str(jobs)])
    return build_dir


def _write_ppm(array: np.ndarray, path: Path) -> Path:
    from PIL import Image

    Image.fromarray(array, "RGB").save(path, format="PPM")
    return path


def time_cpp(example: Path, model: Path, content: Path, style: Path, runs: int, threads: int) -> list[float]:
    """Per-image milliseconds of ``runs`` stylizations after a first, untimed one, in one process."""
    with tempfile.TemporaryDirectory() as folder:
        command = [str(example), str(model), str(content), str(style), str(Path(folder) / "out.ppm"), "1.0",
                   "--repeat", str(runs), "--threads", str(threads)]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{example.name} failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])["stylize_ms"]


def time_python(stylizer: Stylizer, content: np.ndarray, style: np.ndarray, runs: int) -> list[float]:
    """Per-call milliseconds of ``Stylizer.stylize`` (style cached, shape seen) over ``runs`` calls."""
    stylizer.stylize(content, style, 1.0)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        stylizer.stylize(content, style, 1.0)
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def compare(model: Path, example: Path, size: int, runs: int, rounds: int, threads: int) -> dict:
    import numpy as np

    from adainrt.benchmarks.bench import sample_inputs
    from adainrt.hardware import describe_cpu
    from adainrt.images import from_tensor
    from adainrt.runtime import Stylizer

    content, style = (np.asarray(from_tensor(t)) for t in sample_inputs(size))
    cpp_ms: list[float] = []
    python_ms: list[float] = []
    with tempfile.TemporaryDirectory() as folder, Stylizer(model, backend="openvino", precision="fp32") as stylizer:
        if threads:  # the Python backend takes OpenVINO's default thread count; say when the sides differ
            print(f"note: --threads {threads} applies to the C++ side only", file=sys.stderr)
        content_ppm = _write_ppm(content, Path(folder) / "content.ppm")
        style_ppm = _write_ppm(style, Path(folder) / "style.ppm")
        for _ in range(rounds):
            cpp_ms += time_cpp(example, model, content_ppm, style_ppm, runs, threads)
            python_ms += time_python(stylizer, content, style, runs)
    cpp, python = statistics.median(cpp_ms), statistics.median(python_ms)
    return {"size": size, "runs": len(cpp_ms), "cpu": describe_cpu(), "cpp_median_ms": cpp,
            "python_median_ms": python, "python_overhead_ms": python - cpp, "cpp_ms": cpp_ms, "python_ms": python_ms}


def format_result(result: dict) -> str:
    size, cpp, python = result["size"], result["cpp_median_ms"], result["python_median_ms"]
    return "\n".join([
        f"{size}x{size}, openvino f32, cached style, {result['runs']} timed runs each; {result['cpu']}",
        f"C++    adainrt_stylize --repeat   median {cpp:9.1f} ms",
        f"Python Stylizer.stylize           median {python:9.1f} ms",
        f"Python's cost                     {python - cpp:+9.1f} ms ({100.0 * (python - cpp) / cpp:+.1f}%)",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="a folder written by `adainrt export`")
    parser.add_argument("--size", type=int, default=512, help="content and style are size x size")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per side and round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating C++ / Python rounds")
    parser.add_argument("--threads", type=int, default=0, help="C++ inference threads (0: OpenVINO's default)")
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD, help="CMake build folder of cpp/")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.rounds < 1 or args.size < 32:
        parser.error("--runs and --rounds must be >= 1 and --size >= 32")
    try:
        example = args.build_dir / EXAMPLE
        if not example.is_file():
            print(f"building {CPP_SOURCE} into {args.build_dir}", file=sys.stderr)
            build(args.build_dir)
        result = compare(args.model, example, args.size, args.runs, args.rounds, args.threads)
    except (RuntimeError, OSError, AdainrtError) as exc:
        print(f"cpp_bench: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
