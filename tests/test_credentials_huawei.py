"""Huawei credential sources (metadata, oidc, agency, env) through the Fabric hook, against the emulator.

Request shapes mirror ``huaweicloudsdkcore`` (``auth/internal.py`` ``MetadataAccessor.get_credential``,
``OidcStsAccessor.get_credential``, ``IamHelper``; ``auth/provider.py`` ``OidcStsCredentialProvider``,
``EnvCredentialProvider``); tests/test_emulator_credentials_huawei.py runs the SDK itself against the same emulator.
Renewals are driven by a test clock, never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import FABRIC_AK, FABRIC_SK, IAM_DOMAIN, IAM_PASSWORD, IAM_USER, build_seed

from airflow_provider_modelreg.credentials.base import (
    CredentialSourceError,
    RefreshingCredential,
    clear_shared_credentials,
    run_flow,
)
from airflow_provider_modelreg.credentials.huawei import (
    AgencySource,
    HuaweiSourceSettings,
    MetadataSource,
    build_huawei_source,
    sts_endpoint_for,
)
from airflow_provider_modelreg.credentials.signing import HuaweiCredentialAuth
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.iam import IamTokenAuth
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy
from modelreg_emulator import hw_credentials as hc

ID_TOKEN_B = "second-oidc-id-token-after-rotation"
ROUTES = {
    "metadata": "hw.metadata.SecurityKey",
    "oidc": "hw.sts.AssumeAgencyWithOIDC",
    "agency": "hw.iam.AssumeRole",
}
_NO_ENV = (
    "HUAWEICLOUD_SDK_AK",
    "HUAWEICLOUD_SDK_SK",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN",
    "HUAWEICLOUD_SDK_PROJECT_ID",
    "HUAWEICLOUD_SDK_IDP_ID",
    "HUAWEICLOUD_SDK_ID_TOKEN_FILE",
    "HUAWEICLOUD_SDK_STS_ENDPOINT",
    "HUAWEICLOUD_OIDC_PROVIDER_URN",
    "HUAWEICLOUD_OIDC_AGENCY_URN",
    "HUAWEICLOUD_OIDC_ID_TOKEN",
    "HUAWEICLOUD_OIDC_TOKEN_FILE",
    "HUAWEICLOUD_OIDC_SESSION_NAME",
    "HUAWEICLOUD_OIDC_DURATION_SECONDS",
)


class Clock:
    """A settable aware-UTC clock."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _NO_ENV:
        monkeypatch.delenv(name, raising=False)
    clear_shared_credentials()
    yield
    clear_shared_credentials()


@pytest.fixture
def emu(make_emulator: Any) -> Any:
    return make_emulator(build_seed())


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "oidc-token"
    path.write_text(hc.DEMO_ID_TOKEN + "\n")
    return path


def source_extras(kind: str, url: str, token_file: Path | None = None) -> dict[str, Any]:
    """Extras of a connection using source ``kind`` against the emulator at ``url``."""
    if kind == "metadata":
        return {"metadata_endpoint": url}
    if kind == "oidc":
        return {
            "sts_endpoint": url,
            "oidc_provider_urn": hc.DEMO_PROVIDER_URN,
            "oidc_agency_urn": hc.DEMO_AGENCY_URN,
            "oidc_token_file": str(token_file),
        }
    return {"iam_endpoint": url, "agency_name": hc.DEMO_AGENCY, "agency_domain_name": hc.DEMO_DOMAIN_NAME}


def set_conn(monkeypatch: pytest.MonkeyPatch, url: str, auth_type: str, *, base: bool = True, **extra: Any) -> None:
    conn: dict[str, Any] = {
        "conn_type": "huaweicloud_fabric",
        "extra": {"endpoint": url, "region": "cn-north-4", "workspace_id": "ws-1", "auth_type": auth_type},
    }
    if base:
        conn.update(login=extra.pop("login", FABRIC_AK), password=extra.pop("password", FABRIC_SK))
    conn["extra"] = {**conn["extra"], **extra}
    monkeypatch.setenv("AIRFLOW_CONN_FABRIC_DEFAULT", json.dumps(conn))


def direct_source(kind: str, url: str, clock: Clock, token_file: Path | None = None, **over: Any) -> Any:
    """The source as the hook builds it, with a test clock."""
    settings = {
        "metadata": HuaweiSourceSettings(metadata_endpoint=url),
        "oidc": HuaweiSourceSettings(
            sts_endpoint=url,
            provider_urn=hc.DEMO_PROVIDER_URN,
            agency_urn=hc.DEMO_AGENCY_URN,
            token_file=str(token_file),
        ),
        "agency": HuaweiSourceSettings(
            iam_endpoint=url,
            access_key=FABRIC_AK,
            secret_key=FABRIC_SK,
            agency_name=hc.DEMO_AGENCY,
            agency_domain_name=hc.DEMO_DOMAIN_NAME,
        ),
    }[kind]
    if over:
        settings = HuaweiSourceSettings(**{**settings.__dict__, **over})
    options = {"retry": RetryPolicy(max_attempts=1)}
    return build_huawei_source(kind, settings, options, clock=clock)


def issued_secrets(emu: Any) -> list[str]:
    return [s for key in emu.store.temporary_keys.values() for s in (key.secret, key.token)]


# ------------------------------------------------------------------------------------------------ each source


@pytest.mark.parametrize("kind", ["metadata", "oidc", "agency"])
def test_first_key_and_a_fabric_call_through_the_hook(
    kind: str, emu: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_conn(monkeypatch, emu.url, kind, base=kind == "agency", **source_extras(kind, emu.url, token_file))
    hook = FabricModelRegistryHook()
    versions = hook.list_model_versions("fm-1")
    assert len(versions) == 3
    assert emu.request_log.count(ROUTES[kind], authenticated=True) == 1
    assert emu.request_log.count("fabric.ListModelVersions", authenticated=True) >= 1
    auth = hook.transport.auth
    assert isinstance(auth, HuaweiCredentialAuth)
    key = auth.credential.current
    assert key is not None and key.source == kind and key.access_key_id.startswith("TMP")
    assert key.expires_at is not None and key.expires_at > datetime.now(timezone.utc)
    # a second hook on the same connection shares the key: no second fetch
    assert len(FabricModelRegistryHook().list_model_versions("fm-1")) == 3
    assert emu.request_log.count(ROUTES[kind]) == 1
    hook.close()


@pytest.mark.parametrize("kind", ["metadata", "oidc", "agency"])
def test_test_connection_names_the_source_and_the_expiry(
    kind: str, emu: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_conn(monkeypatch, emu.url, kind, base=kind == "agency", **source_extras(kind, emu.url, token_file))
    ok, message = FabricModelRegistryHook().test_connection()
    assert ok, message
    assert f"credential source {kind}, temporary key expires 20" in message


def test_async_hook_uses_the_source(emu: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, emu.url, "oidc", base=False, **source_extras("oidc", emu.url, token_file))
    hook = FabricModelRegistryHook()

    async def run() -> int:
        try:
            return len(await hook.alist_model_versions("fm-1"))
        finally:
            await hook.aclose()

    assert asyncio.run(run()) == 3
    assert emu.request_log.count("hw.sts.AssumeAgencyWithOIDC") == 1


@pytest.mark.parametrize("kind", ["metadata", "oidc", "agency"])
def test_one_renewal_before_expiry_under_threads_and_tasks(kind: str, make_emulator: Any, token_file: Path) -> None:
    emu = make_emulator(build_seed(), latency_ms=60)  # the renewal takes a while: callers pile up behind it
    clock = Clock()
    credential = RefreshingCredential(direct_source(kind, emu.url, clock, token_file), clock=clock)
    first = credential.get()
    assert first.expires_at is not None
    clock.now = first.expires_at - timedelta(seconds=30)  # inside the renewal margin, still usable
    start = threading.Barrier(5)
    got: list[Any] = []

    def in_thread() -> None:
        start.wait()
        got.append(credential.get())

    async def in_tasks() -> list[Any]:
        start.wait()
        return list(await asyncio.gather(*(credential.aget() for _ in range(4))))

    threads = [threading.Thread(target=in_thread) for _ in range(4)]
    for thread in threads:
        thread.start()
    got.extend(asyncio.run(in_tasks()))
    for thread in threads:
        thread.join()
    assert emu.request_log.count(ROUTES[kind], authenticated=True) == 2
    assert credential.fetch_count == 2
    assert len({key.access_key_id for key in got}) == 1
    assert got[0].access_key_id != first.access_key_id
    # the renewed key signs a Fabric call
    transport = RegistryTransport(vendor="fabric", base_url=emu.url, auth=HuaweiCredentialAuth(credential))
    assert transport.request("GET", "/v1/workspaces/ws-1/models?limit=1&offset=0").status_code == 200
    transport.close()


# ------------------------------------------------------------------------------------------------ metadata


@pytest.mark.parametrize("mode", hc.METADATA_TOKEN_MODES)
def test_metadata_token_modes(mode: str, emu: Any) -> None:
    hc.settings(emu.registry).metadata_token_mode = mode
    key = run_flow(direct_source("metadata", emu.url, Clock()))
    assert key.access_key_id.startswith("TMP")
    assert emu.request_log.count("hw.metadata.Token") == 1  # one PUT; 404 when unsupported, then tokenless
    assert emu.request_log.count("hw.metadata.SecurityKey", authenticated=True) == 1


def _answers(*answers: tuple[int, str]) -> list[httpx.Response]:
    return [httpx.Response(status, text=text) for status, text in answers]


def _drive(source: MetadataSource, answers: list[httpx.Response]) -> tuple[list[tuple[str, str, Any]], Any]:
    """Run the sans-IO flow on canned answers: (requests asked, the key or the error)."""
    flow = source.flow()
    asked = []
    call = next(flow)
    try:
        for answer in answers:
            asked.append((call.method, call.target, dict(call.headers or {})))
            call = flow.send(answer)
    except StopIteration as done:
        return asked, done.value
    except CredentialSourceError as exc:
        return asked, exc
    raise AssertionError("the flow asked for more requests than answered")


_KEY_JSON = json.dumps(
    {
        "credential": {
            "access": "TMPAK",
            "secret": "s3cr3t-x",
            "securitytoken": "tok-x",
            "expires_at": "2099-01-01T00:00:00.000000Z",
        }
    }
)


def test_metadata_401_fetches_a_token_again_as_the_sdk() -> None:
    # MetadataAccessor.get_credential: a 401 that is not "Please configure ..." -> _try_update_token(True), GET again
    source = MetadataSource(
        RegistryTransport(vendor="fabric", base_url="http://169.254.169.254", auth=httpx.Auth(), metadata_service=True)
    )
    asked, key = _drive(source, _answers((200, "t1"), (401, "token expired"), (200, "t2"), (200, _KEY_JSON)))
    assert [a[0] for a in asked] == ["PUT", "GET", "PUT", "GET"]
    assert asked[0][2] == {"X-Metadata-Token-Ttl-Seconds": "21600"}
    assert asked[1][2] == {"X-Metadata-Token": "t1"} and asked[3][2] == {"X-Metadata-Token": "t2"}
    assert key.access_key_id == "TMPAK" and key.expires_at.year == 2099


def test_metadata_without_token_mode_goes_tokenless_then_requires_one_on_401() -> None:
    source = MetadataSource(
        RegistryTransport(vendor="fabric", base_url="http://169.254.169.254", auth=httpx.Auth(), metadata_service=True)
    )
    asked, _ = _drive(source, _answers((405, ""), (200, _KEY_JSON)))
    assert asked[1] == ("GET", "/openstack/latest/securitykey", {})
    asked, err = _drive(source, _answers((404, ""), (401, "no"), (404, "")))
    assert isinstance(err, CredentialSourceError) and err.source == "metadata"
    assert "metadata token" in err.step and err.http_status == 404


def test_metadata_without_an_agency_fails_naming_the_step(emu: Any) -> None:
    hc.settings(emu.registry).metadata_agency = False
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(direct_source("metadata", emu.url, Clock()))
    err = caught.value
    assert err.source == "metadata" and "securitykey" in err.step and err.http_status == 401
    assert "Please configure Cloud Service Agency first" in str(err)
    assert emu.request_log.count("hw.metadata.Token") == 1  # no token retry for this 401, as the SDK


# ------------------------------------------------------------------------------------------------ oidc


def test_oidc_token_file_is_read_again_at_each_renewal(emu: Any, token_file: Path) -> None:
    clock = Clock()
    credential = RefreshingCredential(direct_source("oidc", emu.url, clock, token_file), clock=clock)
    first = credential.get()
    # the kubelet rotates the token; the emulator now accepts only the new one
    token_file.write_text(ID_TOKEN_B)
    hc.settings(emu.registry).id_tokens = {ID_TOKEN_B}
    assert first.expires_at is not None
    clock.now = first.expires_at - timedelta(seconds=10)
    second = credential.get()
    assert second.access_key_id != first.access_key_id
    assert emu.request_log.count("hw.sts.AssumeAgencyWithOIDC", authenticated=True) == 2


def test_oidc_env_settings_as_the_sdk(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # OidcStsCredentialProvider's variables; the id token itself only from the environment
    monkeypatch.setenv("HUAWEICLOUD_OIDC_PROVIDER_URN", hc.DEMO_PROVIDER_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_AGENCY_URN", hc.DEMO_AGENCY_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_ID_TOKEN", hc.DEMO_ID_TOKEN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_TOKEN_FILE", "/nonexistent/token")  # the token wins, as in the SDK
    monkeypatch.setenv("HUAWEICLOUD_OIDC_SESSION_NAME", "airflow-worker")
    monkeypatch.setenv("HUAWEICLOUD_OIDC_DURATION_SECONDS", "900")
    monkeypatch.setenv("HUAWEICLOUD_SDK_STS_ENDPOINT", emu.url)
    set_conn(monkeypatch, emu.url, "oidc", base=False)
    assert len(FabricModelRegistryHook().list_model_versions("fm-1")) == 3
    assert emu.request_log.count("hw.sts.AssumeAgencyWithOIDC", authenticated=True) == 1


def test_sts_endpoint_default_as_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    # StsHelper.get_sts_endpoint(region): env, else the region's entry of endpoint.py, else cn-north-4
    assert sts_endpoint_for("cn-southwest-2", {}) == "https://sts.cn-southwest-2.myhuaweicloud.com"
    assert sts_endpoint_for("cn-north-9", {}) == "https://sts.cn-north-4.myhuaweicloud.com"
    assert sts_endpoint_for(None, {"HUAWEICLOUD_SDK_STS_ENDPOINT": "https://x"}) == "https://x"


def test_oidc_refused_token_fails_naming_the_step(emu: Any, token_file: Path) -> None:
    token_file.write_text("not-a-token-the-emulator-knows")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(direct_source("oidc", emu.url, Clock(), token_file))
    err = caught.value
    assert err.source == "oidc" and "AssumeAgencyWithOIDC" in err.step
    assert err.http_status == 401 and err.code == "STS.0003" and err.request_id


def test_oidc_unreadable_token_file(emu: Any, tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(CredentialSourceError, match=r"OIDC token file not readable: .*absent") as caught:
        run_flow(direct_source("oidc", emu.url, Clock(), missing))
    assert caught.value.source == "oidc"
    assert emu.request_log.count() == 0
    missing.write_text("  \n")
    with pytest.raises(CredentialSourceError, match="OIDC token file is empty"):
        run_flow(direct_source("oidc", emu.url, Clock(), missing))


# ------------------------------------------------------------------------------------------------ agency


def test_agency_by_domain_id_and_with_a_temporary_base_key(emu: Any) -> None:
    clock = Clock()
    base = run_flow(direct_source("metadata", emu.url, clock))
    key = run_flow(
        direct_source(
            "agency",
            emu.url,
            clock,
            access_key=base.access_key_id,
            secret_key=base.access_key_secret,
            security_token=base.security_token,
            agency_domain_name=None,
            agency_domain_id=hc.DEMO_DOMAIN_ID,
            duration_seconds=900,
        )
    )
    assert key.source == "agency" and key.access_key_id != base.access_key_id


@pytest.mark.parametrize(
    ("over", "status", "text", "step"),
    [
        ({"secret_key": "wrong-secret-key-0001"}, 401, "APIG.0301", "GET /v3/auth/domains"),
        ({"agency_name": "someone-elses-agency"}, 403, "does not exist", "assume_role"),
    ],
    ids=["bad-signature", "unknown-agency"],
)
def test_agency_failures_name_the_step(over: dict[str, Any], status: int, text: str, step: str, emu: Any) -> None:
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(direct_source("agency", emu.url, Clock(), **over))
    err = caught.value
    assert err.source == "agency" and step in err.step and err.http_status == status
    assert text in str(err)


def test_agency_sends_its_account_in_x_domain_id_looked_up_once(emu: Any) -> None:
    """GlobalCredentials: AK/SK-signed IAM calls carry X-Domain-Id, looked up with GET /v3/auth/domains if not set."""
    source = direct_source("agency", emu.url, Clock())
    assert isinstance(source, AgencySource) and source.caller_domain_id is None
    for _ in range(2):
        run_flow(source)
    assert emu.request_log.count("hw.iam.ListAuthDomains") == 1
    assert emu.request_log.count("hw.iam.AssumeRole", authenticated=True) == 2
    assert source.caller_domain_id == hc.DEMO_CALLER_DOMAIN_ID
    given = direct_source("agency", emu.url, Clock(), caller_domain_id=hc.DEMO_CALLER_DOMAIN_ID)
    run_flow(given)
    assert emu.request_log.count("hw.iam.ListAuthDomains") == 1  # given: no lookup
    wrong = direct_source("agency", emu.url, Clock(), caller_domain_id="someone-else")
    with pytest.raises(CredentialSourceError, match="X-Domain-Id"):
        run_flow(wrong)


def test_stale_key_serves_while_a_renewal_fails(emu: Any, token_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    credential = RefreshingCredential(direct_source("oidc", emu.url, clock, token_file), clock=clock)
    first = credential.get()
    hc.settings(emu.registry).id_tokens = set()
    assert first.expires_at is not None
    clock.now = first.expires_at - timedelta(seconds=60)
    with caplog.at_level(logging.WARNING):
        assert credential.get() is first
    assert "Renewing the oidc credential failed" in caplog.text
    clock.now = first.expires_at + timedelta(seconds=1)
    with pytest.raises(CredentialSourceError):
        credential.get()


# ------------------------------------------------------------------------------------------------ env


def test_env_source_as_the_sdk(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    temporary = run_flow(direct_source("metadata", emu.url, clock))
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", temporary.access_key_id)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", temporary.access_key_secret)
    monkeypatch.setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", temporary.security_token or "")
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", "proj-from-env")
    set_conn(monkeypatch, emu.url, "env", base=False)
    hook = FabricModelRegistryHook()
    assert len(hook.list_model_versions("fm-1")) == 3
    assert hook.transport.auth.project_id == "proj-from-env"  # type: ignore[attr-defined]
    ok, message = FabricModelRegistryHook().test_connection()
    assert ok and "credential source env" in message
    set_conn(monkeypatch, emu.url, "env", base=False, project_id="proj-extra")  # the extra wins
    assert FabricModelRegistryHook().transport.auth.project_id == "proj-extra"  # type: ignore[attr-defined]


def test_env_source_requires_ak_and_sk(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUAWEICLOUD_SDK_AK", FABRIC_AK)
    set_conn(monkeypatch, emu.url, "env", base=False)
    with pytest.raises(RegistryConnectionConfigError) as caught:
        FabricModelRegistryHook().list_models()
    assert caught.value.field == "HUAWEICLOUD_SDK_SK"
    monkeypatch.setenv("HUAWEICLOUD_SDK_SK", "bad\nsecret")
    with pytest.raises(RegistryConnectionConfigError) as caught:
        FabricModelRegistryHook().list_models()
    assert caught.value.field == "HUAWEICLOUD_SDK_SK" and "bad" not in str(caught.value)
    assert emu.request_log.count() == 0


# ------------------------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("kind", "extra", "field"),
    [
        ("vault", {}, "auth_type"),
        ("metadata", {"metadata_endpoint": "http://169.254.169.254/latest"}, "metadata_endpoint"),
        ("metadata", {"metadata_endpoint": "None"}, "metadata_endpoint"),
        ("oidc", {"oidc_provider_urn": "None"}, "oidc_provider_urn"),
        ("oidc", {"oidc_provider_urn": "arn:aws:iam::1:oidc-provider/x"}, "oidc_provider_urn"),
        ("oidc", {"oidc_agency_urn": "iam::acct:identity-provider:x"}, "oidc_agency_urn"),
        ("oidc", {"oidc_agency_urn": "iam::acct:agency:a\nb"}, "oidc_agency_urn"),
        ("oidc", {"oidc_token_file": ""}, "oidc_token_file"),
        ("oidc", {"oidc_session_name": "x"}, "oidc_session_name"),
        ("oidc", {"oidc_duration_seconds": "60"}, "oidc_duration_seconds"),
        ("oidc", {"sts_endpoint": "http://sts.example.com"}, "sts_endpoint"),
        ("agency", {"agency_name": "null"}, "agency_name"),
        ("agency", {"agency_name": ""}, "agency_name"),
        ("agency", {"agency_domain_id": "d-1"}, "agency_domain_name"),
        ("agency", {"agency_domain_name": None}, "agency_domain_name"),
        ("agency", {"duration_seconds": 10**6}, "duration_seconds"),
        ("agency", {"duration_seconds": "1h"}, "duration_seconds"),
        ("agency", {"security_token": "tok\r\nX-Evil: 1"}, "security_token"),
    ],
)
def test_bad_settings_are_refused_before_any_request(
    kind: str, extra: dict[str, Any], field: str, emu: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extras = source_extras(kind, emu.url, token_file) if kind != "vault" else {}
    set_conn(monkeypatch, emu.url, kind, base=kind in ("agency", "vault"), **{**extras, **extra})
    with pytest.raises(RegistryConnectionConfigError) as caught:
        FabricModelRegistryHook().list_models()
    assert caught.value.field == field
    assert emu.request_log.count() == 0


def test_agency_needs_the_base_key(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    set_conn(monkeypatch, emu.url, "agency", base=False, **source_extras("agency", emu.url))
    with pytest.raises(RegistryConnectionConfigError) as caught:
        FabricModelRegistryHook().list_models()
    assert caught.value.field == "login"


def test_bad_env_settings_name_the_variable(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUAWEICLOUD_OIDC_PROVIDER_URN", "iam::acct:agency:wrong-kind")
    monkeypatch.setenv("HUAWEICLOUD_OIDC_AGENCY_URN", hc.DEMO_AGENCY_URN)
    monkeypatch.setenv("HUAWEICLOUD_OIDC_ID_TOKEN", hc.DEMO_ID_TOKEN)
    set_conn(monkeypatch, emu.url, "oidc", base=False, sts_endpoint=emu.url)
    with pytest.raises(RegistryConnectionConfigError) as caught:
        FabricModelRegistryHook().list_models()
    assert caught.value.field == "HUAWEICLOUD_OIDC_PROVIDER_URN"


# ------------------------------------------------------------------------------------------------ secrets


def test_no_secret_in_logs_or_errors(
    emu: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    errors: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for kind in ("metadata", "oidc", "agency"):
            set_conn(monkeypatch, emu.url, kind, base=kind == "agency", **source_extras(kind, emu.url, token_file))
            hook = FabricModelRegistryHook()
            hook.list_models()
            errors.append(hook.test_connection()[1])
            hook.close()
        clear_shared_credentials()
        hc.settings(emu.registry).id_tokens = set()
        hc.settings(emu.registry).metadata_agency = False
        for kind in ("metadata", "oidc"):
            set_conn(monkeypatch, emu.url, kind, base=False, **source_extras(kind, emu.url, token_file))
            with pytest.raises(CredentialSourceError) as caught:
                FabricModelRegistryHook().list_models()
            errors.append(str(caught.value))
            errors.append(repr(caught.value))
        set_conn(monkeypatch, emu.url, "agency", password="wrong-secret-0002", **source_extras("agency", emu.url))
        with pytest.raises(CredentialSourceError) as caught:
            FabricModelRegistryHook().list_models()
        errors.append(str(caught.value))
    secrets = [FABRIC_SK, hc.DEMO_ID_TOKEN, "wrong-secret-0002", *issued_secrets(emu)]
    assert len(secrets) > 6
    with hc.settings(emu.registry).lock:
        secrets.extend(hc.settings(emu.registry).metadata_tokens)
    text = caplog.text + "\n".join(errors)
    for secret in secrets:
        assert secret not in text


# ------------------------------------------------------------------------------------------------ closing


def test_close_closes_the_hooks_pool_and_keeps_the_shared_iam_token(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook's close()/aclose() closes the hook's own connection pool; the IAM token and its request pool belong to
    the process (shared by every hook with the same settings) and stay usable: the next hook asks IAM nothing."""
    set_conn(
        monkeypatch,
        emu.url,
        "token",
        login=IAM_USER,
        password=IAM_PASSWORD,
        iam_domain=IAM_DOMAIN,
        iam_endpoint=emu.url,
        project_id="proj-0001",
    )
    hook = FabricModelRegistryHook()
    hook.list_models()
    transport = hook.transport
    auth = transport.auth
    assert isinstance(auth, IamTokenAuth)
    pool, iam_pool = transport.http, auth.iam.http
    assert pool._pool.connections and iam_pool._pool.connections  # type: ignore[attr-defined]  # keep-alive, open
    hook.close()
    assert hook._transport is None
    assert pool._pool.connections == []  # type: ignore[attr-defined]  # the hook's own pool: closed
    assert auth.iam._transport is iam_pool and iam_pool._pool.connections  # type: ignore[attr-defined]
    assert emu.request_log.count("iam.CreateToken") == 1

    async def run() -> None:
        await hook.alist_model_versions("fm-1")
        atransport = await hook.atransport()
        aauth = atransport.auth
        assert isinstance(aauth, IamTokenAuth) and aauth.credential is auth.credential  # one shared token
        apool = atransport.ahttp
        assert apool._pool.connections  # type: ignore[attr-defined]
        await hook.aclose()
        assert hook._atransport is None
        assert apool._pool.connections == []  # type: ignore[attr-defined]
        assert aauth.iam._transport is iam_pool and iam_pool._pool.connections  # type: ignore[attr-defined]
        other = FabricModelRegistryHook()  # a later hook of the process: the shared token, no token request
        try:
            assert (await other.alist_model_versions_page("fm-1", workspace_id="ws-1")).total == 3
        finally:
            await other.aclose()

    asyncio.run(run())
    assert {m.id for m in FabricModelRegistryHook().list_models()} == {"fm-1", "fm-big"}
    assert emu.request_log.count("iam.CreateToken") == 1


def test_metadata_token_503_means_no_token_mode_without_retries() -> None:
    """MetadataAccessor._try_update_token: one PUT; a 503 means the service has no token mode (no retry budget
    spent on it), and the securitykey GET goes without a token."""
    seen: list[tuple[str, str | None]] = []
    body = {
        "credential": {
            "access": "TMPAK",
            "secret": "tmp-sk",
            "securitytoken": "tok",
            "expires_at": "2030-01-01T00:00:00Z",
        }
    }

    def metadata(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.headers.get("x-metadata-token")))
        if request.method == "PUT":
            return httpx.Response(503, text="service unavailable")
        return httpx.Response(200, json=body)

    options = {
        "retry": RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.001),
        "transport": httpx.MockTransport(metadata),
    }
    source = build_huawei_source("metadata", HuaweiSourceSettings(metadata_endpoint="http://169.254.169.254"), options)
    key = run_flow(source)
    assert key.access_key_id == "TMPAK"
    assert seen == [("PUT", None), ("GET", None)]
