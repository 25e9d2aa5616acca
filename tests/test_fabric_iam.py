"""Fabric IAM tokens through the process-wide refreshing-credential core, IAM failures typed and classified, and
``pick="newest"`` never guessing (issue 19, point 7). Real HTTP against the emulator or a tiny fake IAM."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from helpers import build_seed, fabric_conn, fabric_version
from test_hostile_transport import FAST, Server, responder

from airflow_provider_modelreg.credentials.base import CredentialSourceError
from airflow_provider_modelreg.errors import RegistryAmbiguousVersionError, RegistryResponseError
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook

HOOKS = 200


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(handler: Any) -> Server:
        server = Server(handler)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


def _token_requests(emu: Any) -> int:
    return int(emu.request_log.count("iam.CreateToken"))


# ------------------------------------------------------------------------------------------------ one token


def test_200_hooks_one_after_another_make_one_token_request(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(seed=build_seed())
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    for _ in range(HOOKS):  # a mapped task of 200 in one process (or one worker running them in turn)
        hook = FabricModelRegistryHook()
        assert hook.list_model_versions_page("fm-1", workspace_id="ws-1").total == 3
        hook.close()
    assert _token_requests(emu) == 1
    assert emu.request_log.count("fabric.ListModelVersions") == HOOKS


def test_200_hooks_in_threads_make_one_token_request(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=build_seed())
    fabric_conn(monkeypatch, emu.url, auth_type="token")

    def task(_: int) -> int:
        return FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1").total

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(task, range(HOOKS))) == [3] * HOOKS
    assert _token_requests(emu) == 1


def test_200_async_hooks_on_one_loop_make_one_token_request(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(seed=build_seed())
    fabric_conn(monkeypatch, emu.url, auth_type="token")

    async def one() -> int:
        hook = FabricModelRegistryHook()
        try:
            return (await hook.alist_model_versions_page("fm-1", workspace_id="ws-1")).total
        finally:
            await hook.aclose()

    async def all_at_once() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(HOOKS))))

    assert asyncio.run(all_at_once()) == [3] * HOOKS  # every hook asks at once: one renewal in flight
    assert _token_requests(emu) == 1


def test_other_users_or_scopes_get_their_own_token(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=build_seed())
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    fabric_conn(monkeypatch, emu.url, auth_type="token", project_id=None)  # scoped by the region's name instead
    FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    assert _token_requests(emu) == 2


# ------------------------------------------------------------------------------------------------ IAM failures


@pytest.mark.parametrize(("fault", "status"), [({"error_rate": 1.0}, 503), ({"throttle_rate": 1.0}, 429)])
def test_iam_outage_or_throttling_is_retryable_and_names_the_step(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, fault: dict[str, float], status: int
) -> None:
    emu = make_emulator(seed=build_seed(), iam_faults=True, retry_after_ms=5, **fault)
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    with pytest.raises(CredentialSourceError) as err:
        FabricModelRegistryHook(retry=FAST).list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.retryable is True
    assert err.value.http_status == status and err.value.source == "token"
    assert "IAM token request (POST /v3/auth/tokens)" in str(err.value)
    assert f"Huawei IAM at {emu.url}" in str(err.value)  # the service is named, never "service at" or "HTTP 0"
    assert "HTTP 0" not in str(err.value)
    assert _token_requests(emu) == FAST.max_attempts  # retried by the transport's policy first
    assert emu.request_log.count("fabric.ListModelVersions") == 0


def test_iam_refusing_the_password_is_not_retryable(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=build_seed())
    fabric_conn(monkeypatch, emu.url, auth_type="token", password="not-the-password")
    with pytest.raises(CredentialSourceError) as err:
        FabricModelRegistryHook(retry=FAST).list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.retryable is False and err.value.http_status == 401
    assert "IAM token request (POST /v3/auth/tokens)" in str(err.value) and "not-the-password" not in str(err.value)
    assert _token_requests(emu) == 1  # a refusal is not retried


@pytest.mark.parametrize(
    ("status", "body", "retryable"),
    [
        (400, {"error_code": "APIG.0308", "error_msg": "The request is throttled."}, True),
        (403, {"error": {"code": 403, "message": "The user has no access.", "title": "Forbidden"}}, False),
    ],
)
def test_a_fake_iam_throttling_code_or_refusal(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, status: int, body: dict[str, Any], retryable: bool
) -> None:
    iam = serve(responder(status, json.dumps(body).encode()))
    fabric_conn(monkeypatch, "http://127.0.0.1:9", auth_type="token", iam_endpoint=iam.url)
    with pytest.raises(CredentialSourceError) as err:
        FabricModelRegistryHook(retry=FAST).list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.retryable is retryable and err.value.http_status == status
    assert err.value.source == "token" and "POST /v3/auth/tokens" in str(err.value)
    assert iam.connections >= 1


# ------------------------------------------------------------------------------------------------ pick="newest"


def test_pick_newest_refuses_a_version_without_create_time(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    dated, undated = fabric_version(7, "twin"), fabric_version(8, "twin")
    del undated["create_time"]  # the emulator always dates its versions: a fake registry that does not
    page = json.dumps({"total": 2, "versions": [dated, undated]}).encode()
    registry = serve(responder(200, page, {"X-Request-Id": "rid-page"}))
    fabric_conn(monkeypatch, registry.url)
    hook = FabricModelRegistryHook()
    with pytest.raises(RegistryResponseError) as err:
        hook.get_model_version("fm-1", version_name="twin", pick="newest")
    assert err.value.field == "versions[].create_time" and "00000000-0000-4000-8000-000000000008" in str(err.value)
    assert err.value.retryable is False  # a complete answer the gate cannot judge: asking again repeats it
    with pytest.raises(RegistryResponseError):
        asyncio.run(hook.aget_model_version("fm-1", version_name="twin", pick="newest"))
    with pytest.raises(RegistryAmbiguousVersionError):  # unique: ambiguous, as before
        hook.get_model_version("fm-1", version_name="twin")
    # one version without a creation time is no choice at all: found
    assert hook.get_model_version("fm-1", version_id="00000000-0000-4000-8000-000000000008").name == "twin"


# ------------------------------------------------------------------------------------------------ refresh rule


def test_the_token_is_renewed_by_the_core_rule_before_it_expires(serve: Callable[..., Server]) -> None:
    from datetime import datetime, timedelta, timezone

    from test_hostile_transport import answer, read_request

    from airflow_provider_modelreg.iam import IamTokenAuth

    now = [datetime(2026, 1, 1, tzinfo=timezone.utc)]
    issued: list[str] = []

    async def iam(reader: Any, writer: Any) -> None:  # tokens of 1 hour, by the same clock as the client's
        while True:
            await read_request(reader)
            issued.append(f"token-{len(issued) + 1:04d}")
            body = {"token": {"issued_at": now[0].isoformat(), "expires_at": (now[0] + timedelta(hours=1)).isoformat()}}
            writer.write(answer(201, json.dumps(body).encode(), {"X-Subject-Token": issued[-1]}))
            await writer.drain()

    server = serve(iam)
    auth = IamTokenAuth(
        iam_url=server.url, user_name="u", password="p", domain_name="d", project_id="p1", clock=lambda: now[0]
    )
    assert auth.token().value == "token-0001"
    now[0] += timedelta(minutes=54)  # 6 min left: outside min(300 s, 20 % of 1 h) = 5 min
    assert auth.token().value == "token-0001"
    now[0] += timedelta(minutes=2)  # 4 min left: inside the margin
    assert auth.token().value == "token-0002"
    assert auth.fetch_count == 2 and len(issued) == 2
    assert auth.token(failed=auth.current).value == "token-0003"  # a token the registry refused is renewed at once
