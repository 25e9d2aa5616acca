"""Reliability suite: faults injected by the emulator (seeded, so failures reproduce), hostile inputs, malformed
answers. Nothing is lost, nothing duplicated, bad input never reaches the wire."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from helpers import build_seed, fabric_conn, pai_conn

from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAPIError,
    RegistryConnectionConfigError,
    RegistryInputError,
    RegistryResponseError,
    RegistryTransportError,
)
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.transport import RetryPolicy

FAULTS = {"error_rate": 0.2, "throttle_rate": 0.1, "reset_rate": 0.05, "retry_after_ms": 5}
NO_WAIT = RetryPolicy(max_attempts=10, base_delay=0.005, max_delay=0.05, min_delay=0.005)  # hostile fault rates


@pytest.fixture(scope="module")
def faulty(request: pytest.FixtureRequest) -> Any:
    from modelreg_emulator import RegistryEmulator

    with RegistryEmulator(build_seed(pai_generated=10_000, fabric_generated=10_000), random_seed=7, **FAULTS) as emu:
        yield emu


def test_default_budget_is_stated_in_readme() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()  # the README's until issue 26
    assert f"Default budget: {RetryPolicy().max_attempts} attempts" in readme


def test_pai_10k_versions_with_faults_each_exactly_once(faulty: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pai_conn(monkeypatch, faulty.url)
    faulty.request_log.clear()
    versions = PaiModelRegistryHook(retry=NO_WAIT).list_model_versions("m-big")
    names = [v.version_name for v in versions]
    assert len(names) == 10_000 == len(set(names))
    assert faulty.request_log.count() > 100  # faults were hit and retried


def test_fabric_10k_versions_with_faults_each_exactly_once(faulty: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fabric_conn(monkeypatch, faulty.url)
    ids = [v.id for v in FabricModelRegistryHook(retry=NO_WAIT).list_model_versions("fm-big", workspace_id="ws-1")]
    assert len(ids) == 10_000 == len(set(ids))


async def test_async_fabric_10k_versions_with_faults(faulty: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fabric_conn(monkeypatch, faulty.url)
    hook = FabricModelRegistryHook(retry=NO_WAIT)
    ids = [v.id for v in await hook.alist_model_versions("fm-big", workspace_id="ws-1")]
    await hook.aclose()
    assert len(ids) == 10_000 == len(set(ids))


@pytest.mark.parametrize("vendor", ["pai", "fabric"])
def test_budget_of_one_gives_a_typed_error_never_a_partial_list(
    faulty: Any, monkeypatch: pytest.MonkeyPatch, vendor: str
) -> None:
    pai_conn(monkeypatch, faulty.url)
    fabric_conn(monkeypatch, faulty.url)
    one = RetryPolicy(max_attempts=1)
    with pytest.raises((RegistryAPIError, RegistryTransportError)) as err:
        if vendor == "pai":
            PaiModelRegistryHook(retry=one).list_model_versions("m-big")
        else:
            FabricModelRegistryHook(retry=one).list_model_versions("fm-big", workspace_id="ws-1")
    assert err.value.attempts == 1  # the budget of one: no retry, and the failure surfaces as it is


# ------------------------------------------------------------------------------------------------ hostile inputs

H = "m-main"
#: One representative per hook entry point and field: that the hook checks the field before sending. The rule of
#: each field (every hostile value, the bounds) is tested on the validator itself in test_validation.py.
HOSTILE: list[tuple[str, Any, str]] = [
    ("pai get model_id", lambda p, f: p.get_model_version("a%2Fb", "1.0"), "model_id"),
    ("pai get version_name", lambda p, f: p.get_model_version(H, ".."), "version_name"),
    ("pai list page_size", lambda p, f: p.list_model_versions(H, page_size=101), "page_size"),
    ("pai list approval_status", lambda p, f: p.list_model_versions(H, approval_status="Done"), "approval_status"),
    ("pai list order", lambda p, f: p.list_model_versions(H, order="random"), "order"),
    ("pai list max_results", lambda p, f: p.list_model_versions(H, max_results=0), "max_results"),
    ("pai list version_name", lambda p, f: p.list_model_versions(H, version_name=".."), "version_name"),
    ("pai update status", lambda p, f: p.update_model_version(H, "1.1.0", approval_status="ok"), "approval_status"),
    ("pai update version ..", lambda p, f: p.update_model_version(H, "..", approval_status="Approved"), "version_name"),
    ("fabric workspace_id", lambda p, f: f.list_model_versions_page("fm-1", workspace_id="w/s"), "workspace_id"),
    ("fabric model_id", lambda p, f: f.list_model_versions_page("a%2F", workspace_id="ws-1"), "model_id"),
    ("fabric limit", lambda p, f: f.list_model_versions_page("fm-1", workspace_id="ws-1", limit=101), "limit"),
    ("fabric offset", lambda p, f: f.list_model_versions_page("fm-1", workspace_id="ws-1", offset=-1), "offset"),
    (
        "fabric name_filter",
        lambda p, f: f.list_model_versions_page("fm-1", workspace_id="ws-1", name_filter="abc"),
        "name_filter",
    ),
    (
        "fabric version_id",
        lambda p, f: f.list_model_versions_page("fm-1", workspace_id="ws-1", version_id="a" * 31),
        "version_id",
    ),
    (
        "fabric list page_size",
        lambda p, f: f.list_model_versions("fm-1", workspace_id="ws-1", page_size=500),
        "page_size",
    ),
    (
        "fabric exact name /",
        lambda p, f: f.get_model_version("fm-1", workspace_id="ws-1", version_name="a/b"),
        "version_name",
    ),
    ("fabric neither id nor name", lambda p, f: f.get_model_version("fm-1", workspace_id="ws-1"), "version_id"),
    (
        "fabric both id and name",
        lambda p, f: f.get_model_version("fm-1", workspace_id="ws-1", version_id="a" * 32, version_name="x"),
        "version_id",
    ),
]


@pytest.fixture(scope="module")
def calm(request: pytest.FixtureRequest) -> Any:
    from modelreg_emulator import RegistryEmulator

    with RegistryEmulator(build_seed()) as emu:
        yield emu


@pytest.mark.parametrize(("name", "call", "field"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_refused_before_sending(
    calm: Any, monkeypatch: pytest.MonkeyPatch, name: str, call: Any, field: str
) -> None:
    pai_conn(monkeypatch, calm.url)
    fabric_conn(monkeypatch, calm.url)
    before = calm.request_log.count()
    with pytest.raises(RegistryInputError) as err:
        call(PaiModelRegistryHook(), FabricModelRegistryHook())
    assert err.value.field == field
    assert field in str(err.value)
    assert calm.request_log.count() == before


#: One representative per connection rule, at hook level (the hook files keep no table of their own).
BAD_CONNECTIONS: list[tuple[str, str, dict[str, Any], str]] = [
    ("pai", "missing login", {"login": ""}, "login"),
    ("pai", "missing secret", {"password": ""}, "password"),
    ("pai", "endpoint without scheme", {"endpoint": "127.0.0.1:80"}, "endpoint"),
    ("pai", "endpoint not http(s)", {"endpoint": "ftp://x"}, "endpoint"),
    ("pai", "endpoint with a path", {"endpoint": "https://x/path"}, "endpoint"),
    ("pai", "http network", {"network": "http"}, "network"),
    ("pai", "no region, no endpoint", {"endpoint": None, "region": None}, "region"),
    ("pai", "malformed region", {"endpoint": None, "region": "CN HANGZHOU"}, "region"),
    ("pai", "max_attempts not a number", {"max_attempts": "lots"}, "max_attempts"),
    ("fabric", "unknown region", {"endpoint": None, "region": "eu-west-0"}, "region"),
    ("fabric", "endpoint without scheme", {"endpoint": "fabric.example.com"}, "endpoint"),
    ("fabric", "missing SK", {"password": ""}, "password"),
    ("fabric", "unknown auth type", {"auth_type": "oauth"}, "auth_type"),
    (
        "fabric",
        "iam endpoint without scheme",
        {"auth_type": "token", "iam_endpoint": "iam.example.com"},
        "iam_endpoint",
    ),
    ("fabric", "token without iam_domain", {"auth_type": "token", "iam_domain": None}, "iam_domain"),
]


@pytest.mark.parametrize(
    ("vendor", "name", "extra", "field"), BAD_CONNECTIONS, ids=[b[1] + "-" + b[0] for b in BAD_CONNECTIONS]
)
def test_bad_connection_is_refused_before_sending(
    calm: Any, monkeypatch: pytest.MonkeyPatch, vendor: str, name: str, extra: dict[str, Any], field: str
) -> None:
    before = calm.request_log.count()
    with pytest.raises(RegistryConnectionConfigError) as err:
        if vendor == "pai":
            pai_conn(monkeypatch, calm.url, **extra)
            PaiModelRegistryHook().get_model_version("m-main", "1.0.0")
        else:
            fabric_conn(monkeypatch, calm.url, **extra)
            FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.field == field
    if field == "region" and vendor == "fabric":  # an unknown region lists the known ones
        assert "cn-north-4" in str(err.value)
    assert calm.request_log.count() == before


def test_sensor_and_operator_inputs_are_checked(calm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_modelreg.operators.pai import PaiListModelVersionsOperator
    from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor

    pai_conn(monkeypatch, calm.url)
    before = calm.request_log.count()
    cases = [
        (lambda: PaiModelVersionApprovedSensor(task_id="s", model_id="m/1").poke({}), "model_id"),
        (lambda: PaiModelVersionApprovedSensor(task_id="s", model_id="m", version_name="..").poke({}), "version_name"),
        (
            lambda: PaiModelVersionApprovedSensor(task_id="s", model_id="m", created_after="2024-01-01").poke({}),
            "created_after",
        ),
        (lambda: PaiModelVersionApprovedSensor(task_id="s", model_id="m", on_rejected="retry"), "on_rejected"),
        (
            lambda: PaiModelVersionApprovedSensor(task_id="s", model_id="m", version_name="1", after_version="0"),
            "version_name",
        ),
        (lambda: PaiListModelVersionsOperator(task_id="o", model_id="m", order="sideways"), "order"),
        (lambda: PaiListModelVersionsOperator(task_id="o", model_id="m/x").execute({}), "model_id"),
    ]
    for call, field in cases:
        with pytest.raises(RegistryInputError) as err:
            call()
        assert err.value.field == field
    assert calm.request_log.count() == before


# ------------------------------------------------------------------------------------------------ malformed answers

MALFORMED = [
    ("html error page", 503, b"<html><body>Bad Gateway</body></html>", "text/html"),
    ("truncated json", 200, b'{"VersionName": "1.0", "Uri": "oss://b/k"', "application/json"),
    (
        "wrong types",
        200,
        b'{"VersionName": 12, "Uri": "oss://b/k", "Labels": "x", "RequestId": "rid-1"}',
        "application/json",
    ),
    ("missing VersionName", 200, b'{"Uri": "oss://b/k", "RequestId": "rid-1"}', "application/json"),
    ("empty body 200", 200, b"", "application/json"),
    ("json array", 200, b"[1, 2]", "application/json"),
]


@pytest.mark.parametrize(("name", "status", "body", "ctype"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_pai_answers_are_typed(
    monkeypatch: pytest.MonkeyPatch, name: str, status: int, body: bytes, ctype: str
) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": ctype, "x-acs-request-id": "rid-h"})

    pai_conn(monkeypatch, "http://127.0.0.1:9")
    hook = PaiModelRegistryHook(transport=httpx.MockTransport(answer), retry=RetryPolicy(max_attempts=1))
    with pytest.raises(ModelRegistryError) as err:
        hook.get_model_version("m-main", "1.0.0")
    assert isinstance(err.value, (RegistryResponseError, RegistryAPIError))
    if isinstance(err.value, RegistryResponseError) and b"RequestId" in body:
        assert err.value.request_id == "rid-1"
        assert err.value.field.startswith("body")


@pytest.mark.parametrize(
    ("body", "rid"),
    [
        (b"{not json", "hw-req-9"),
        (b'{"total": "many", "versions": []}', "hw-req-9"),
        (b'{"versions": []}', "hw-req-9"),
        (b'{"total": 1, "versions": [{"name": 1}]}', "hw-req-9"),
        (b"{not json", "hw-req-9\x1b[2J\x07\x7f"),  # a hostile request id: terminal escapes, a bell, DEL
    ],
)
def test_malformed_fabric_answers_carry_the_request_id(monkeypatch: pytest.MonkeyPatch, body: bytes, rid: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"X-Request-Id": rid})

    fabric_conn(monkeypatch, "http://127.0.0.1:9")
    hook = FabricModelRegistryHook(transport=httpx.MockTransport(answer))
    with pytest.raises(RegistryResponseError) as err:
        hook.list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.request_id is not None and err.value.request_id.startswith("hw-req-9")
    if rid == "hw-req-9":
        assert err.value.request_id == rid
    text = str(err.value)  # one line, no control characters: safe in a log line or an XCom
    assert "\n" not in text and not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text), repr(text)
