"""The layering of the installed package, read from the source: no import cycle between modules, and the
runtime (numpy, pillow, a backend: never torch) never imports up into the exporter, the CLI, training
or benchmarks. Modules are found the way setuptools installs them, through pyproject's package-dir."""

import ast
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
#: What adainrt.runtime must never import: the layers built on top of it.
ABOVE_RUNTIME = ("adainrt.export", "adainrt.cli", "adainrt.commands", "adainrt.train", "adainrt.benchmarks")


def package_folder(package: str, package_dir: dict[str, str]) -> Path:
    """The source folder setuptools installs ``package`` from (the longest package-dir prefix)."""
    parts = package.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in package_dir:
            return ROOT / package_dir[prefix] / Path(*parts[cut:])
    return ROOT / Path(*parts)


def installed_modules() -> dict[str, Path]:
    """Every module pyproject installs, by its import name."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    modules = {}
    for package in setuptools["packages"]:
        for file in package_folder(package, setuptools["package-dir"]).glob("*.py"):
            modules[package if file.stem == "__init__" else f"{package}.{file.stem}"] = file
    return modules


def imported(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports anywhere (at the top or inside a function: a lazy import is
    still a dependency). ``from pkg import sub`` depends on pkg.sub when that is a module, else on pkg."""
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if file.stem == "__init__" else name.rpartition(".")[0]
                package = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{package}.{base}" if base else package
            subs = {f"{base}.{alias.name}" for alias in node.names} & set(modules)
            found |= subs if len(subs) == len(node.names) else subs | {base}
    owners = set()
    for target in found:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        if target and target != name:
            owners.add(target)
    return owners


def import_graph() -> dict[str, set[str]]:
    modules = installed_modules()
    return {name: imported(name, file, modules) for name, file in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_every_package_with_modules_is_installed():
    """A folder of modules under a package-dir that pyproject does not list would be missing from the wheel."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    for package in listed:
        for init in package_folder(package, setuptools["package-dir"]).glob("*/__init__.py"):
            assert f"{package}.{init.parent.name}" in listed, f"{init.parent} is not in pyproject's packages"


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"adainrt.cli", "adainrt.runtime.jobs", "adainrt.export.cache",
            "adainrt.runtime.backends.tensorrt.engine"} <= set(graph)
    assert "adainrt.runtime.backend" in graph["adainrt.runtime.stylizer"]  # the reader follows real imports
    assert "adainrt.export.cache" in graph["adainrt.commands.common"]


def test_runtime_never_imports_the_exporter_or_the_cli():
    graph = import_graph()
    upward = {name: sorted(d for d in deps if any(d == up or d.startswith(f"{up}.") for up in ABOVE_RUNTIME))
              for name, deps in graph.items() if name.startswith("adainrt.runtime")}
    assert {name: deps for name, deps in upward.items() if deps} == {}


def test_no_import_cycle():
    assert cycles(import_graph()) == []
