"""Each registry operation is described once (hooks/specs.py): the builders are plain values that validate before
anything is sent, and a sync hook method and its async twin differ only in the executor they call."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks import base, specs
from airflow_provider_modelreg.hooks import pai as pai_hooks
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook, list_models_spec, versions_page_spec
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

ROOT = Path(__file__).resolve().parents[1] / "airflow_provider_modelreg"

#: async methods that are not the twin of a registry operation: they read the connection or combine reads
NOT_OPERATIONS = {"aregion", "aversion_ref", "aconnection", "atransport", "aclose"}

#: the async executors and drivers, and the sync ones they stand for
EXECUTORS = {"_arun": "_run", "_acollect": "_collect"}


class _Sync(ast.NodeTransformer):
    """An async body as its sync twin would read: ``await self._arun(x)`` -> ``self._run(x)``."""

    def visit_Await(self, node: ast.Await) -> ast.AST:
        call = self.visit(node.value)
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in EXECUTORS:
            call.func.attr = EXECUTORS[call.func.attr]
            return call
        return ast.Await(value=call)


def _body(method: Any, *, sync: bool) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(method)))
    function = tree.body[0]
    assert isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    module = ast.Module(body=body, type_ignores=[])
    return ast.unparse(module if sync else _Sync().visit(module))


def _twins(cls: type) -> list[str]:
    names = []
    for name, member in vars(cls).items():
        if inspect.iscoroutinefunction(member) and name.startswith("a") and name not in NOT_OPERATIONS:
            assert name[1:] in vars(cls), f"{cls.__name__}.{name} has no sync twin"
            names.append(name)
    return names


@pytest.mark.parametrize("cls", [PaiModelRegistryHook, FabricModelRegistryHook], ids=lambda c: c.__name__)
def test_a_sync_method_and_its_async_twin_differ_only_in_the_executor(cls: type) -> None:
    twins = _twins(cls)
    assert len(twins) >= 3, twins
    for name in twins:
        sync, asynchronous = getattr(cls, name[1:]), getattr(cls, name)
        assert _body(asynchronous, sync=False) == _body(sync, sync=True), name
        assert inspect.signature(asynchronous) == inspect.signature(sync), name


def test_the_base_hook_has_one_executor_and_one_paging_driver_of_each_kind() -> None:
    source = (ROOT / "hooks" / "base.py").read_text("utf-8")
    for name in ("_run", "_arun", "_collect", "_acollect"):
        assert source.count(f"def {name}(") == 1, name
    # the vendor hooks (and the modules split from them) send only through the executors
    for hook in ("pai.py", "pai_specs.py", "fabric.py", "fabric_connection.py", "fabric_specs.py"):
        text = (ROOT / "hooks" / hook).read_text("utf-8")
        assert ".request(" not in text and ".arequest(" not in text and "collect_pages(" not in text, hook


def test_pai_builders_are_plain_values() -> None:
    spec = pai_hooks.get_model_version_spec("m-1", "1.0.0")
    assert (spec.operation, spec.method, spec.path) == ("GetModelVersion", "GET", "/api/v1/models/m-1/versions/1.0.0")
    assert spec.headers == (("x-acs-action", "GetModelVersion"),) and spec.query == () and spec.body is None
    assert spec == dataclasses.replace(spec)  # a value: equal field by field
    update = pai_hooks.update_model_version_spec("m-1", "1.0.0", "Approved")
    assert (update.method, update.body, update.idempotent) == ("PUT", b'{"ApprovalStatus":"Approved"}', True)
    page = pai_hooks.versions_page_spec("m-1", 2, 25, "Pending")
    assert page.query == (
        ("ApprovalStatus", "Pending"),
        ("Order", "DESC"),
        ("PageNumber", "3"),
        ("PageSize", "25"),
        ("SortBy", "GmtCreateTime"),
    )
    listing = pai_hooks.list_model_versions_spec("m-1", label_filter="risk", page_size=50)
    assert (listing.page_size, listing.max_results, listing.concurrency) == (50, None, 8)
    first = listing.page(0)
    assert isinstance(first, specs.RequestSpec) and ("Label", "risk") in first.query
    assert ("PageNumber", "1") in first.query
    with pytest.raises(AttributeError):
        spec.path = "/elsewhere"  # type: ignore[misc]


def test_fabric_builders_are_plain_values() -> None:
    page = versions_page_spec("ws-1", "fm-1", offset=20, limit=10, name_filter="release", version_id=None)
    assert page.path == "/v1/workspaces/ws-1/models/fm-1/versions?limit=10&name=release&offset=20"
    assert (page.operation, page.method, page.headers) == ("ListModelVersions", "GET", ())
    models = list_models_spec("ws-1", None, 5, 2)
    assert (models.page_size, models.max_results, models.total_field, models.page_field) == (2, 5, "total", "offset")
    second = models.page(1)
    assert isinstance(second, specs.RequestSpec) and second.path == "/v1/workspaces/ws-1/models?limit=2&offset=2"


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: pai_hooks.get_model_version_spec("", "1.0.0"), "model_id"),
        (lambda: pai_hooks.get_model_spec("a/b"), "model_id"),
        (lambda: pai_hooks.update_model_version_spec("m-1", "1.0.0", "Maybe"), "approval_status"),
        (lambda: pai_hooks.versions_page_spec("m-1", 0, 101, None), "page_size"),
        (lambda: pai_hooks.list_model_versions_spec("m-1", order="sideways"), "order"),
        (
            lambda: pai_hooks.list_models_spec(
                None, name_filter=None, label_filter=None, provider=None, order="DESC", max_results=0, page_size=10
            ),
            "max_results",
        ),
        (lambda: versions_page_spec("ws-1", "fm-1", offset=-1, limit=10, name_filter=None, version_id=None), "offset"),
        (lambda: list_models_spec("ws-1", 7, None, 10), "name_filter"),  # type: ignore[arg-type]
    ],
)
def test_builders_refuse_bad_input_naming_the_field(build: Any, field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        build()
    assert field in err.value.field


def test_the_trigger_hub_uses_no_private_of_the_hook() -> None:
    # every module of triggers/ (the hub has its own since issue 21), and no private of the hub or a watcher either
    private = sorted(
        f"{path.name}: {node.value.id}.{node.attr}"
        for path in sorted((ROOT / "triggers").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in ("hook", "stale", "hub", "watcher")
        and node.attr.startswith("_")
    )
    assert private == []


def test_total_seen_noted_returns_the_answer() -> None:
    seen = base.TotalSeen()
    answer = (["a"], 3)
    assert seen.noted(0, answer) is answer and seen.total == 3
