"""The shared credential core: one renewal in flight for threads and event loops, renewal margins, stale fallback.

The source here is a plain flow over an ``httpx.MockTransport`` (a unit test of one layer); the vendor sources are
tested against the emulator in ``test_credentials_alibaba.py`` and ``test_credentials_huawei.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.auth import AcsV3Auth
from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    RefreshingCredential,
    TemporaryKey,
    clear_shared_credentials,
    digest,
    shared_credential,
)
from airflow_provider_modelreg.credentials.signing import AcsCredentialAuth
from airflow_provider_modelreg.errors import RegistryAPIError, RegistryAuthError
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
FAST = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeIssuer:
    """An issuing endpoint: each answer is a new key valid ``lifetime`` seconds from the clock's now."""

    def __init__(self, clock: Clock, lifetime: float = 3600) -> None:
        self.clock = clock
        self.lifetime = lifetime
        self.issued = 0
        self.fail_with: int | None = None
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.entered.set()
        self.gate.wait(10)
        if self.fail_with is not None:
            return httpx.Response(
                self.fail_with, json={"Code": "ServiceUnavailable", "Message": "down", "RequestId": "r-1"}
            )
        self.issued += 1
        n = self.issued
        return httpx.Response(
            200,
            json={
                "Id": f"STS.key{n}",
                "Secret": f"issued-secret-{n}",
                "Token": f"issued-token-{n}",
                "Expiration": (self.clock.now + timedelta(seconds=self.lifetime)).isoformat(),
            },
        )

    async def aanswer(self, request: httpx.Request) -> httpx.Response:
        # The async path must not block the event loop while the gate is closed.
        while not self.gate.is_set():
            self.entered.set()
            await asyncio.sleep(0.005)
        return self.answer(request)


class FakeSource:
    name = "fake_role"

    def __init__(self, issuer: FakeIssuer, config: str = "role-a") -> None:
        self.issuer = issuer
        self.config = config
        self.transport = RegistryTransport(
            vendor="pai",
            base_url="https://sts.example.test",
            auth=httpx.Auth(),
            retry=FAST,
            transport=httpx.MockTransport(issuer.answer),
            async_transport=httpx.MockTransport(issuer.aanswer),
        )

    def cache_key(self) -> str:
        return self.config

    def flow(self) -> CredentialFlow:
        response = yield Call(self.transport, "POST", "/", content=b"{}", step="Issue")
        body = json.loads(response.content)
        return TemporaryKey(
            access_key_id=body["Id"],
            access_key_secret=body["Secret"],
            security_token=body["Token"],
            expires_at=datetime.fromisoformat(body["Expiration"]),
            issued_at=self.issuer.clock.now,
            source=self.name,
        )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer(clock: Clock) -> FakeIssuer:
    return FakeIssuer(clock)


@pytest.fixture(autouse=True)
def _fresh_shared() -> Iterator[None]:
    clear_shared_credentials()
    yield
    clear_shared_credentials()


@pytest.fixture
def masked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import airflow.providers.common.compat.sdk as compat_sdk

    seen: list[str] = []
    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: seen.append(value))
    return seen


def test_first_key_is_cached_and_its_secrets_masked(issuer: FakeIssuer, clock: Clock, masked: list[str]) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    first = credential.get()
    assert credential.get() is first and asyncio.run(credential.aget()) is first
    assert issuer.issued == 1 == credential.fetch_count
    assert {"issued-secret-1", "issued-token-1"} <= set(masked)
    assert "issued-secret-1" not in repr(first) and "issued-token-1" not in repr(first)


def test_renewed_inside_the_margin_not_before(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    credential.get()
    # 3600 s lifetime: the margin is min(300 s, 20 %) = 300 s
    clock.now = T0 + timedelta(seconds=3600 - 301)
    assert credential.get().access_key_id == "STS.key1"
    clock.now = T0 + timedelta(seconds=3600 - 299)
    assert credential.get().access_key_id == "STS.key2"
    assert issuer.issued == 2


def test_a_short_lifetime_renews_at_a_fifth_of_it(clock: Clock) -> None:
    issuer = FakeIssuer(clock, lifetime=60)
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    credential.get()
    clock.now = T0 + timedelta(seconds=47)
    assert credential.get().access_key_id == "STS.key1"
    clock.now = T0 + timedelta(seconds=49)
    assert credential.get().access_key_id == "STS.key2"


def test_one_renewal_for_threads_and_event_loop_tasks_together(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    issuer.gate.clear()  # hold the renewal on the wire until every caller waits for it
    results: list[str] = []
    lock = threading.Lock()

    def sync_caller() -> None:
        key = credential.get()
        with lock:
            results.append(key.access_key_id)

    async def many_tasks() -> None:
        keys = await asyncio.gather(*(credential.aget() for _ in range(8)))
        with lock:
            results.extend(k.access_key_id for k in keys)

    threads = [threading.Thread(target=sync_caller) for _ in range(8)]
    loop_thread = threading.Thread(target=lambda: asyncio.run(many_tasks()))
    for t in [*threads, loop_thread]:
        t.start()
    assert issuer.entered.wait(5)
    issuer.gate.set()
    for t in [*threads, loop_thread]:
        t.join(10)
    assert results == ["STS.key1"] * 16
    assert issuer.issued == 1 == credential.fetch_count


def test_a_refused_key_is_renewed_once(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    first = credential.get()
    renewed = credential.get(failed=first)
    assert renewed.access_key_id == "STS.key2"
    assert credential.get(failed=first) is renewed  # a second caller with the same refused key waits no renewal


def test_failed_renewal_keeps_a_valid_key_then_fails_typed_after_expiry(
    issuer: FakeIssuer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    credential.get()
    issuer.fail_with = 503
    clock.now = T0 + timedelta(seconds=3600 - 200)
    with caplog.at_level(logging.WARNING):
        assert credential.get().access_key_id == "STS.key1"
    assert "Renewing the fake_role credential failed" in caplog.text
    calls = issuer.entered
    calls.clear()
    # quiet for a quarter of what is left (capped at 30 s): no new attempt on the next request
    clock.now += timedelta(seconds=10)
    assert credential.get().access_key_id == "STS.key1"
    assert not calls.is_set()
    clock.now = T0 + timedelta(seconds=3600 - 1)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    err = caught.value
    assert err.source == "fake_role" and "Issue failed" in str(err) and err.http_status == 503
    assert "issued-secret" not in str(err) and "issued-token" not in str(err)
    assert "issued-secret-1" not in caplog.text


def test_first_fetch_failure_is_typed_and_retried_next_time(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    issuer.fail_with = 500
    with pytest.raises(CredentialSourceError, match="credential source fake_role: Issue failed"):
        asyncio.run(credential.aget())
    issuer.fail_with = None
    assert asyncio.run(credential.aget()).access_key_id == "STS.key1"


def test_a_cancelled_renewal_lets_the_waiting_caller_renew(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    issuer.gate.clear()

    async def scenario() -> str:
        leader = asyncio.create_task(credential.aget())
        while not issuer.entered.is_set():  # noqa: ASYNC110 (a threading.Event, set by the transport)
            await asyncio.sleep(0.005)
        follower = asyncio.create_task(credential.aget())
        await asyncio.sleep(0.02)
        leader.cancel()
        await asyncio.sleep(0.02)
        issuer.gate.set()
        key = await follower
        with pytest.raises(asyncio.CancelledError):
            await leader
        return key.access_key_id

    assert asyncio.run(scenario()) == "STS.key1"


def test_shared_credential_is_one_per_configuration(issuer: FakeIssuer) -> None:
    first = FakeSource(issuer, "role-a")
    a = shared_credential(first)
    again, other = FakeSource(issuer, "role-a"), FakeSource(issuer, "role-b")
    again.transport = other.transport = first.transport  # the same request settings
    assert shared_credential(again) is a
    assert shared_credential(other) is not a
    assert digest("secret") != digest("secret2") and "secret" not in digest("secret")


def test_credential_auth_signs_with_the_current_key_and_renews_after_a_refusal(
    issuer: FakeIssuer, clock: Clock
) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    seen: list[tuple[str, str]] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers["x-acs-accesskey-id"], request.headers["x-acs-security-token"]))
        return httpx.Response(401 if len(seen) == 1 else 200, json={"RequestId": "r"})

    transport = RegistryTransport(
        vendor="pai",
        base_url="https://pai.example.test",
        auth=AcsCredentialAuth(credential),
        retry=FAST,
        transport=httpx.MockTransport(registry),
    )
    response = transport.request("GET", "/api/v1/models")
    assert response.status_code == 200
    assert seen == [("STS.key1", "issued-token-1"), ("STS.key2", "issued-token-2")]
    # the signature is the plain AcsV3Auth one with the renewed key
    request = httpx.Request("GET", "https://pai.example.test/api/v1/models")
    AcsV3Auth("STS.key2", "issued-secret-2", security_token="issued-token-2", nonce=lambda: "n").sign(request)
    assert request.headers["authorization"].startswith("ACS3-HMAC-SHA256 Credential=STS.key2,")


def test_static_key_never_renews() -> None:
    key = TemporaryKey("LTAIx", "s")
    assert not key.needs_refresh(T0 + timedelta(days=9999)) and key.usable(T0)


@pytest.mark.parametrize("status", [401, 403])
def test_long_lived_keys_are_not_renewed_on_refusal(status: int, clock: Clock) -> None:
    class Static:
        name = "static"

        def cache_key(self) -> str:
            return "s"

        def flow(self) -> CredentialFlow:
            return TemporaryKey("LTAIx", "s")
            yield  # pragma: no cover

    credential = RefreshingCredential(Static(), clock=clock)
    calls: list[Any] = []
    transport = RegistryTransport(
        vendor="pai",
        base_url="https://pai.example.test",
        auth=AcsCredentialAuth(credential),
        retry=FAST,
        transport=httpx.MockTransport(lambda r: calls.append(r) or httpx.Response(status, json={})),
    )
    with pytest.raises(RegistryAuthError):
        transport.request("GET", "/x")
    assert len(calls) == 1 and credential.fetch_count == 1


def test_sources_with_other_request_settings_do_not_share(issuer: FakeIssuer) -> None:
    """A connection test's one short attempt must not become the renewal policy of the process's other hooks."""

    normal = FakeSource(issuer)
    probing = FakeSource(issuer)
    probing.transport = RegistryTransport(
        vendor="pai",
        base_url="https://sts.example.test",
        auth=httpx.Auth(),
        retry=dataclasses.replace(FAST, max_attempts=1, attempt_timeout=10, call_timeout=10),
        transport=normal.transport._given,
        async_transport=normal.transport._agiven,
    )
    assert shared_credential(normal) is not shared_credential(probing)
    assert shared_credential(FakeSource(issuer)) is not shared_credential(normal)  # other test transports
    twin = FakeSource(issuer)
    twin.transport = normal.transport
    assert shared_credential(twin) is shared_credential(normal)


@pytest.mark.parametrize(
    ("status", "code", "renewed"),
    [
        (400, "InvalidSecurityToken.Expired", True),
        (400, "InvalidAccessKeyId.NotFound", True),
        (400, "InvalidParameter", False),
        (401, None, True),
        (403, "Forbidden.RAM", False),  # permissions: a new key of the same role would not change them
    ],
)
def test_pai_answers_about_the_key_renew_it_once(
    status: int, code: str | None, renewed: bool, issuer: FakeIssuer, clock: Clock
) -> None:
    """Alibaba answers an expired STS key with 400 InvalidSecurityToken.Expired, not 401: renew and retry once."""
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    seen: list[str] = []

    def registry(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["x-acs-accesskey-id"])
        if len(seen) == 1:
            return httpx.Response(status, json={"Code": code, "Message": "m", "RequestId": "r"})
        return httpx.Response(200, json={"RequestId": "r"})

    transport = RegistryTransport(
        vendor="pai",
        base_url="https://pai.example.test",
        auth=AcsCredentialAuth(credential),
        retry=dataclasses.replace(FAST, max_attempts=1),
        transport=httpx.MockTransport(registry),
    )
    if renewed:
        assert transport.request("GET", "/api/v1/models").status_code == 200
        assert seen == ["STS.key1", "STS.key2"]
    else:
        with pytest.raises(RegistryAPIError):
            transport.request("GET", "/api/v1/models")
        assert seen == ["STS.key1"] and credential.fetch_count == 1


def test_a_cancelled_waiter_does_not_disturb_the_renewal_the_others_wait_for(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    issuer.gate.clear()

    async def scenario() -> list[Any]:
        leader = asyncio.create_task(credential.aget())
        while not issuer.entered.is_set():  # noqa: ASYNC110 (a threading.Event, set by the transport)
            await asyncio.sleep(0.005)
        quitter = asyncio.create_task(credential.aget())
        stayer = asyncio.create_task(credential.aget())
        await asyncio.sleep(0.02)
        quitter.cancel()
        await asyncio.sleep(0.02)
        issuer.gate.set()
        return await asyncio.gather(leader, quitter, stayer, return_exceptions=True)

    leader, quitter, stayer = asyncio.run(scenario())
    assert isinstance(quitter, asyncio.CancelledError)
    assert isinstance(leader, TemporaryKey) and stayer is leader
    assert issuer.issued == 1 == credential.fetch_count


def test_a_refused_key_is_no_fallback_when_its_renewal_fails(issuer: FakeIssuer, clock: Clock) -> None:
    credential = RefreshingCredential(FakeSource(issuer), clock=clock)
    first = credential.get()
    issuer.fail_with = 503
    with pytest.raises(CredentialSourceError):
        credential.get(failed=first)


def test_sts_string_to_sign_never_reaches_the_error(clock: Clock) -> None:
    """STS answers SignatureDoesNotMatch with the string it signed: the base SecurityToken, twice encoded."""

    def sts(request: httpx.Request) -> httpx.Response:
        message = (
            "Specified signature is not matched with our calculation. "
            "server string to sign is:GET&%2F&AccessKeyId%3DLTAI%26SecurityToken%3DCAIS-base-token"
        )
        return httpx.Response(400, json={"Code": "SignatureDoesNotMatch", "Message": message, "RequestId": "r-9"})

    source = FakeSource(FakeIssuer(clock))
    source.transport = RegistryTransport(
        vendor="pai",
        base_url="https://sts.example.test",
        auth=httpx.Auth(),
        retry=FAST,
        transport=httpx.MockTransport(sts),
    )
    with pytest.raises(CredentialSourceError) as caught:
        RefreshingCredential(source, clock=clock).get()
    text = str(caught.value)
    assert "SignatureDoesNotMatch" in text and "r-9" in text
    assert "CAIS-base-token" not in text and "SecurityToken" not in text and "string to sign is not repeated" in text


@pytest.mark.parametrize("field", ["login", "password", "security_token", "project_id"])
@pytest.mark.parametrize("placeholder", ["None", "null"])
def test_placeholder_credentials_are_refused_before_any_request(
    field: str, placeholder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A form or template that leaves 'None' in a field: a typed error naming it, for both connection types."""
    from helpers import fabric_conn, pai_conn

    from airflow_provider_modelreg.errors import RegistryConnectionConfigError
    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    fabric_conn(monkeypatch, "https://fabric.example.test", **{field: placeholder})
    hooks: list[Any] = [FabricModelRegistryHook(transport=httpx.MockTransport(lambda r: pytest.fail("sent")))]
    if field != "project_id":
        pai_conn(monkeypatch, "https://pai.example.test", **{field: placeholder})
        hooks.append(PaiModelRegistryHook(transport=httpx.MockTransport(lambda r: pytest.fail("sent"))))
    for hook in hooks:
        with pytest.raises(RegistryConnectionConfigError) as caught:
            hook.get_conn()
        assert caught.value.field == field and "'None'" in str(caught.value)


def test_fabric_keys_with_control_characters_are_a_typed_error() -> None:
    from airflow_provider_modelreg.credentials.huawei import parse_credential

    body = {
        "credential": {"access": "AK1", "secret": "s\nx", "securitytoken": "t", "expires_at": "2030-01-01T00:00:00Z"}
    }
    response = httpx.Response(200, content=json.dumps(body).encode())
    with pytest.raises(CredentialSourceError, match=r"credential.secret .*not printable"):
        parse_credential(response, source="metadata", step="securitykey", now=T0)
