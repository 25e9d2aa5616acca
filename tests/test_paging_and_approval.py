"""Unit tests of the paging engine, the approval decisions and the deploy specs (no network)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest

from airflow_provider_modelreg.approval import ApprovalTarget
from airflow_provider_modelreg.deploy import eas_service_spec, fabric_service_spec, normalise_oss_uri, service_name
from airflow_provider_modelreg.errors import RegistryInputError, RegistryServerError
from airflow_provider_modelreg.hooks.base import acollect_pages, collect_pages
from airflow_provider_modelreg.links import render_console_url

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def make_pages(items: list[int], size: int):
    def fetch(page: int) -> tuple[list[int], int]:
        return items[page * size : (page + 1) * size], len(items)

    return fetch


@pytest.mark.parametrize("count", [0, 1, 99, 100, 101, 1000, 1234])
def test_collect_pages_returns_every_item_once_in_order(count: int) -> None:
    items = list(range(count))
    assert collect_pages(make_pages(items, 100), page_size=100, key=lambda x: x) == items


def test_collect_pages_respects_max_results_and_fetches_only_needed_pages() -> None:
    calls: list[int] = []
    items = list(range(1000))

    def fetch(page: int) -> tuple[list[int], int]:
        calls.append(page)
        return items[page * 100 : (page + 1) * 100], 1000

    assert collect_pages(fetch, page_size=100, key=lambda x: x, max_results=150) == items[:150]
    assert sorted(calls) == [0, 1]


def test_collect_pages_survives_versions_created_while_paging() -> None:
    """Newest-first listing: a version created after page 0 shifts everything down by one."""
    items = [f"v{i}" for i in range(300, 0, -1)]  # v300 newest ... v1 oldest
    lock = threading.Lock()
    state = {"first": True}

    def fetch(page: int) -> tuple[list[str], int]:
        with lock:
            current = list(items)
            if state["first"]:
                state["first"] = False
                items.insert(0, "v301")  # created right after page 0 was served
        return current[page * 100 : (page + 1) * 100], len(current)

    got = collect_pages(fetch, page_size=100, key=lambda x: x)
    assert len(got) == len(set(got))
    assert set(got) >= {f"v{i}" for i in range(1, 301)}  # nothing that existed at the start is lost


def test_collect_pages_never_returns_a_partial_list() -> None:
    def fetch(page: int) -> tuple[list[int], int]:
        if page == 3:
            raise RegistryServerError(status_code=503, code="ServiceUnavailable", message="x", request_id="r")
        return list(range(page * 10, page * 10 + 10)), 100

    with pytest.raises(RegistryServerError):
        collect_pages(fetch, page_size=10, key=lambda x: x)


async def test_acollect_pages_runs_pages_concurrently_and_bounded() -> None:
    running = 0
    peak = 0

    async def fetch(page: int) -> tuple[list[int], int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return list(range(page * 10, min(page * 10 + 10, 200))), 200

    got = await acollect_pages(fetch, page_size=10, key=lambda x: x, concurrency=4)
    assert got == list(range(200))
    assert peak == 4


async def test_acollect_pages_cancels_the_rest_on_failure() -> None:
    cancelled = 0

    async def fetch(page: int) -> tuple[list[int], int]:
        nonlocal cancelled
        if page == 1:
            raise RegistryServerError(status_code=500, code=None, message="x", request_id=None)
        try:
            await asyncio.sleep(0 if page == 0 else 5)
        except asyncio.CancelledError:
            cancelled += 1
            raise
        return [page], 50

    with pytest.raises(RegistryServerError):
        await acollect_pages(fetch, page_size=1, key=lambda x: x, concurrency=10)
    await asyncio.sleep(0)
    assert cancelled > 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model_id": "a/b"}, "model_id"),
        ({"model_id": "m", "version_name": ".."}, "version_name"),
        ({"model_id": "m", "version_name": "1", "after_version": "0"}, "version_name"),
        ({"model_id": "m", "after_version": "0", "created_after": T0}, "after_version"),
        ({"model_id": "m", "after_version": "a b"}, "after_version"),
    ],
)
def test_approval_target_rejects_bad_input(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        ApprovalTarget(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_eas_spec_from_ref() -> None:
    ref = {
        "model_id": "model-demo",
        "version_name": "1.1.0",
        "uri": "oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/fraud/",
        "inference_spec": {"Processor": "tensorflow_cpu_2.7"},
        "format_type": "SavedModel",
    }
    spec = eas_service_spec(ref)
    assert spec["name"].startswith("model_demo_1_1_0_") and spec["name"] == service_name("model-demo", "1.1.0")
    assert spec["model_path"] == "oss://bucket/models/fraud/"
    assert spec["oss_endpoint"] == "oss-cn-hangzhou.aliyuncs.com"
    assert spec["processor"] == "tensorflow_cpu_2.7"
    assert eas_service_spec({**ref, "inference_spec": None})["processor"] == "tensorflow_cpu_2.3"
    with pytest.raises(ValueError, match="no Uri"):
        eas_service_spec({**ref, "uri": None})


def test_fabric_spec_and_names() -> None:
    ref = {"model_id": "m-1", "version_name": "v2", "version_id": "x" * 32, "uri": "obs://b/p/", "base_model_type": "Q"}
    spec = fabric_service_spec(ref, endpoint_id="ep-1")
    assert spec["source"] == {"id": "m-1", "version_id": "x" * 32}
    assert spec["endpoint_id"] == "ep-1"
    # issue 23: the DeployServiceInstance body (config.model_instance_config.resource), nothing the API refuses
    assert list(spec) == ["source", "name", "endpoint_id", "config"]
    assert spec["config"] == {"model_instance_config": {"resource": {"min": 1, "max": 1}}}
    assert "model_path" not in spec and "base_model_type" not in spec
    old = fabric_service_spec(ref, endpoint_id="ep-1", instances=3)
    assert old["config"]["model_instance_config"]["resource"] == {"min": 3, "max": 3}
    scaled = fabric_service_spec(ref, endpoint_id="ep-1", min_instances=1, max_instances=4, spec_code="s1")
    assert scaled["config"]["model_instance_config"]["resource"] == {"min": 1, "max": 4, "spec_code": "s1"}
    assert normalise_oss_uri("https://x/y") == ("https://x/y", None)
    assert len(service_name("m" * 80, "v")) == 63


def test_service_names_are_unique_per_model_and_version() -> None:
    """Issue 10: "1.1.0", "1_1_0" and "1-1-0" read alike once cleaned; a 64-character model id fills the limit."""
    alike = {service_name("model-demo", v) for v in ("1.1.0", "1_1_0", "1-1-0", "v1.1.0", "V1.1.0")}
    assert len(alike) == 5
    long_id = "m" * 64
    assert len({service_name(long_id, f"1.{i}.0") for i in range(100)}) == 100
    # stable across processes and releases: a rerun must find the service it deployed (the README shows this name)
    assert service_name("model-demo-fraud", "1.1.0") == "model_demo_fraud_1_1_0_223057bc58"
    assert all(len(service_name(long_id, v)) <= 63 for v in ("1", "x" * 64))


def test_render_console_url() -> None:
    ref = {
        "region": "cn-hangzhou",
        "workspace_id": "ws1",
        "model_id": "m-1",
        "version_name": "1.0",
        "version_id": "1.0",
    }
    assert render_console_url("https://c/{region}/{model_id}/{version_name}", ref) == "https://c/cn-hangzhou/m-1/1.0"
    assert render_console_url("https://c/{nope}/{workspace_id}", {"workspace_id": None}) == "https://c//"
    assert render_console_url("https://c/{0}", ref) == ""
