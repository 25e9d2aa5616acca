"""The package's layers, read from its import graph: each module imports only from its own layer or the layers
below it, and the runtime never imports the emulator. A new module must be given a layer here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_provider_modelreg"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: lowest first; a module belongs to the first layer that names it or a package above it
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "",
            "errors",
            "approval_status",
            "models",
            "eas_models",
            "fabric_ep_models",
            "validation",
            "renamed",
            "deploy",
            "lineage",
            "get_provider_info",
            "_compat",
        ),
    ),
    ("signing", ("auth", "credentials.rpc")),
    ("transport", ("transport", "paging")),
    ("credentials", ("credentials", "iam")),
    ("hooks", ("hooks",)),
    (
        "decision cores",
        (
            "approval_reads",
            "alias",
            "approval",
            "watch",
            "eas_deploy",
            "eas_traffic",
            "fabric_ep_deploy",
            "fabric_wait",
            "fabric_watch",
        ),
    ),
    ("core I/O shells", ("approval_io", "fabric_wait_io")),
    ("triggers", ("triggers",)),
    ("task helpers", ("links", "asset_events", "task_hook", "lineage_facets")),
    ("sensors and operators", ("sensors", "operators")),
]
#: the top layer's two kinds do not import each other: what both need lives below them
SIBLINGS_APART = ("sensors", "operators")


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer_of(module: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if module == member or (member and module.startswith(member + ".")):
                return index
    raise AssertionError(f"{PACKAGE}.{module} has no layer: add it to LAYERS in {Path(__file__).name}")


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """The package modules ``path`` imports (relative to the package; "" is the package itself), anywhere in it
    (``from X import y`` counts as importing the module ``X.y`` when there is one, else ``X``)."""
    module = module_name(path, root)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def is_module(name: str) -> bool:
        where = root.joinpath(*name.split(".")) if name else root
        return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()

    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                source = ".".join(filter(None, [PACKAGE, *base, node.module or ""]))
            else:
                source = node.module or ""
            for alias in node.names:
                names.append(f"{source}.{alias.name}")
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                inner = name.removeprefix(PACKAGE).removeprefix(".")
                found.add(inner if is_module(inner) or isinstance(node, ast.Import) else inner.rpartition(".")[0])
    return found


def runtime_modules() -> list[Path]:
    return sorted(path for path in ROOT.rglob("*.py") if "emulator" not in path.relative_to(ROOT).parts)


def test_every_module_has_a_layer() -> None:
    for path in runtime_modules():
        layer_of(module_name(path))


def test_imports_run_downward_only() -> None:
    upward = []
    for path in runtime_modules():
        module = module_name(path)
        for imported in imports_of(path):
            if "emulator" in imported:
                continue  # the next test
            if layer_of(imported) > layer_of(module):
                upward.append(
                    f"{module or PACKAGE} ({LAYERS[layer_of(module)][0]}) imports {imported} "
                    f"({LAYERS[layer_of(imported)][0]})"
                )
    assert not upward, "\n".join(upward)


def test_sensors_and_operators_do_not_import_each_other() -> None:
    crossing = []
    for path in runtime_modules():
        module = module_name(path)
        kind = module.split(".")[0]
        if kind in SIBLINGS_APART:
            other = [i for i in imports_of(path) if i.split(".")[0] in SIBLINGS_APART and i.split(".")[0] != kind]
            crossing += [f"{module} imports {i}" for i in other]
    assert not crossing, "\n".join(crossing)


def absolute_imports(path: Path) -> set[str]:
    """Every absolute import of ``path`` by its full dotted name, inside the package or not."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def test_the_runtime_never_imports_the_emulator() -> None:
    found = [
        f"{module_name(p)} imports {i}" for p in runtime_modules() for i in imports_of(p) if i.startswith("emulator")
    ]
    # the emulator is its own distribution since issue 21, outside the package: modelreg_emulator
    found += [
        f"{module_name(p)} imports {i}"
        for p in runtime_modules()
        for i in absolute_imports(p)
        if i.split(".")[0] == "modelreg_emulator"
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("source", "where", "expected"),
    [
        ("from airflow_provider_modelreg.hooks.base import x", "sensors/pai.py", {"hooks.base"}),
        ("from ..hooks import base", "sensors/pai.py", {"hooks.base"}),
        ("from . import links", "__init__.py", {"links"}),
        ("from airflow_provider_modelreg import __version__", "transport.py", {""}),
        ("import airflow_provider_modelreg.transport as t", "approval.py", {"transport"}),
        ("def f():\n    from airflow_provider_modelreg import errors", "paging.py", {"errors"}),
        ("import json\nfrom airflow.sdk import BaseHook", "paging.py", set()),
    ],
)
def test_the_import_reader(tmp_path: Path, source: str, where: str, expected: set[str]) -> None:
    """The checks above are only as good as this reader: relative, absolute and nested imports are all seen."""
    for module in ("hooks/__init__.py", "hooks/base.py", "links.py", "transport.py", "errors.py", "__init__.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).touch()
    path = tmp_path / where
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    assert imports_of(path, tmp_path) == expected


def test_an_upward_import_is_reported() -> None:
    """A hook importing a sensor would be refused (the check bites)."""
    assert layer_of("sensors.pai") > layer_of("hooks.pai")
    assert layer_of("approval") > layer_of("transport") > layer_of("auth") > layer_of("errors")
