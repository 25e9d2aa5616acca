"""Fabric behaviours no test reached before (test audit, section 8, points 1, 3, 6 and 11), each with the mutant it
kills: the IAM token refused mid-run (fetched again once, the request sent again), IAM answers without a token or
with an unreadable ``expires_at``, ``auth_type=env`` refusing the SDK's id-token federation, and ``pick`` checked by
the hook before anything is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FABRIC_AK, FABRIC_SK, build_seed, fabric_conn

from airflow_provider_modelreg.credentials.base import CredentialSourceError, clear_shared_credentials
from airflow_provider_modelreg.errors import RegistryConnectionConfigError, RegistryInputError
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.iam import IamTokenAuth
from airflow_provider_modelreg.transport import RetryPolicy

TOKEN = "MIIfake-subject-token-value-0123456789"
HW_ENV = (
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_IDP_ID",
    "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in HW_ENV:
        monkeypatch.delenv(name, raising=False)
    clear_shared_credentials()
    yield
    clear_shared_credentials()


@pytest.fixture
def emu(make_emulator: Callable[..., Any]) -> Any:
    return make_emulator(seed=build_seed())


# ------------------------------------------------------------------------------- 1. a token refused mid-run


def _list(hook: FabricModelRegistryHook, mode: str) -> int:
    if mode == "sync":
        return hook.list_model_versions_page("fm-1", workspace_id="ws-1").total

    async def go() -> int:
        try:
            return (await hook.alist_model_versions_page("fm-1", workspace_id="ws-1")).total
        finally:
            await hook.aclose()

    return asyncio.run(go())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_token_refused_mid_run_is_fetched_again_once_and_the_request_sent_again(
    emu: Any, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """IAM ended the token early (the client still thinks it good): the registry answers 401, the auth flow fetches
    one new token and sends the same request again; the caller sees a normal answer."""
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    hook = FabricModelRegistryHook(retry=RetryPolicy(max_attempts=1))  # a retry could not hide a missing resend
    assert _list(hook, mode) == 3
    assert emu.request_log.count("iam.CreateToken") == 1
    emu.store.expire_tokens()
    lists, refused = emu.request_log.count("fabric.ListModelVersions"), emu.request_log.count("fabric", False)
    assert _list(hook, mode) == 3
    assert emu.request_log.count("iam.CreateToken") == 2  # exactly one extra token request
    assert emu.request_log.count("fabric.ListModelVersions") == lists + 2  # the refused request and its resend
    assert emu.request_log.count("fabric", False) == refused + 1
    assert _list(hook, mode) == 3  # the new token serves on
    assert emu.request_log.count("iam.CreateToken") == 2


# ------------------------------------------------------------------------------- 3. unreadable IAM answers

_GOOD_BODY = {"token": {"expires_at": "2099-01-01T00:00:00.000000Z", "issued_at": "2098-12-31T00:00:00.000000Z"}}

IAM_ANSWERS: list[tuple[str, dict[str, str], bytes, str]] = [
    ("no X-Subject-Token", {}, json.dumps(_GOOD_BODY).encode(), "X-Subject-Token"),
    ("empty X-Subject-Token", {"X-Subject-Token": ""}, json.dumps(_GOOD_BODY).encode(), "X-Subject-Token"),
    ("no expires_at", {"X-Subject-Token": TOKEN}, json.dumps({"token": {}}).encode(), "expires_at"),
    (
        "expires_at not a time",
        {"X-Subject-Token": TOKEN},
        json.dumps({"token": {"expires_at": "tomorrow"}}).encode(),
        "expires_at",
    ),
    (
        "expires_at a number",
        {"X-Subject-Token": TOKEN},
        json.dumps({"token": {"expires_at": 4102444800}}).encode(),
        "expires_at",
    ),
    ("body not JSON", {"X-Subject-Token": TOKEN}, b"<html>created</html>", "expires_at"),
    ("body a JSON list", {"X-Subject-Token": TOKEN}, b"[1, 2]", "expires_at"),
]


@pytest.mark.parametrize(("name", "headers", "body", "field"), IAM_ANSWERS, ids=[a[0] for a in IAM_ANSWERS])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_unreadable_iam_answer_is_a_credential_source_error(
    name: str, headers: dict[str, str], body: bytes, field: str, mode: str
) -> None:
    """A 201 without the token header, or whose ``expires_at`` is missing or not a time: a CredentialSourceError of
    the ``token`` source naming the step and the field, not retryable (asking again repeats it), no token shown."""
    sent: list[str] = []

    def iam(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(201, headers={"X-Request-Id": "iam-rid-1", **headers}, content=body)

    auth = IamTokenAuth(
        iam_url="https://iam.example.test",
        user_name="u",
        password="p",
        domain_name="d",
        project_id="p1",
        transport=httpx.MockTransport(iam),
        async_transport=httpx.MockTransport(iam),
        retry=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001, min_delay=0.0),
    )
    with pytest.raises(CredentialSourceError) as caught:
        if mode == "sync":
            auth.token()
        else:
            asyncio.run(auth.atoken())
    err = caught.value
    assert err.source == "token" and err.retryable is False, str(err)
    assert "IAM token request (POST /v3/auth/tokens)" in str(err) and field in str(err)
    assert err.request_id == "iam-rid-1"
    assert TOKEN not in str(err) and TOKEN not in repr(err)
    assert sent == ["/v3/auth/tokens"]  # one request: a 201 is not retried, nor is its unreadable content


# ------------------------------------------------------------------------------- 6. env auth and id-token federation


def test_env_auth_refuses_the_sdks_id_token_federation(
    emu: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``EnvCredentialProvider`` with ``HUAWEICLOUD_SDK_IDP_ID`` and ``HUAWEICLOUD_SDK_ID_TOKEN_FILE`` federates with
    the id token: signing with the AK/SK also set would act as another identity. Refused, naming the variable,
    before any request."""
    token_file = tmp_path / "id-token"
    token_file.write_text("an-id-token")
    fabric_conn(monkeypatch, emu.url, auth_type="env")
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", FABRIC_AK)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", FABRIC_SK)
    assert FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1").total == 3  # works

    monkeypatch.setenv("HUAWEICLOUD_SDK_IDP_ID", "idp-of-the-cluster")
    assert FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1").total == 3  # one: no
    monkeypatch.delenv("HUAWEICLOUD_SDK_IDP_ID")
    monkeypatch.setenv("HUAWEICLOUD_SDK_ID_TOKEN_FILE", str(token_file))
    assert FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1").total == 3  # federation

    monkeypatch.setenv("HUAWEICLOUD_SDK_IDP_ID", "idp-of-the-cluster")
    before = emu.request_log.count()
    with pytest.raises(RegistryConnectionConfigError) as err:
        FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.field == "HUAWEICLOUD_SDK_IDP_ID" and "auth_type oidc" in str(err.value)
    with pytest.raises(RegistryConnectionConfigError):
        asyncio.run(FabricModelRegistryHook().alist_model_versions_page("fm-1", workspace_id="ws-1"))
    assert emu.request_log.count() == before


# ------------------------------------------------------------------------------- 11. pick, checked by the hook


@pytest.mark.parametrize("pick", ["latest", "NEWEST", "", None, 1])
def test_pick_is_checked_by_the_hook_before_sending(emu: Any, monkeypatch: pytest.MonkeyPatch, pick: Any) -> None:
    """Only ``unique`` and ``newest``: anything else is a RegistryInputError naming ``pick``, sync and async, and no
    request goes out (the operator's own check is tested in test_operators.py)."""
    fabric_conn(monkeypatch, emu.url)
    hook = FabricModelRegistryHook()
    assert hook.get_model_version("fm-1", workspace_id="ws-1", version_name="release-2", pick="unique").name == (
        "release-2"
    )
    before = emu.request_log.count()
    with pytest.raises(RegistryInputError) as err:
        hook.get_model_version("fm-1", workspace_id="ws-1", version_name="release-2", pick=pick)
    assert err.value.field == "pick" and "'unique' or 'newest'" in str(err.value)
    with pytest.raises(RegistryInputError) as aerr:
        asyncio.run(hook.aget_model_version("fm-1", workspace_id="ws-1", version_name="release-2", pick=pick))
    assert aerr.value.field == "pick"
    assert emu.request_log.count() == before
