"""The IAM token auth (``iam.py``) in the detail a mutant of ``make mutation`` changed without another test noticing
(issue 20): the token request as sent, the answer as read, the token's fields and refresh rule, the renewal of a
refused token from both shells, the log redaction and its installation. Over ``httpx.MockTransport`` only."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg import iam as iam_module
from airflow_provider_modelreg.credentials.base import (
    CredentialSourceError,
    TemporaryKey,
    clear_shared_credentials,
    digest,
)
from airflow_provider_modelreg.iam import IamToken, IamTokenAuth, redact_subject_tokens
from airflow_provider_modelreg.transport import RetryPolicy

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)
IAM_URL = "https://iam.example.test"
PASSWORD = "the-iam-password-0123"


@pytest.fixture(autouse=True)
def _fresh_shared() -> Iterator[None]:
    clear_shared_credentials()
    yield
    clear_shared_credentials()


class Iam:
    """A fake IAM: answers ``token-N`` valid one hour from the clock (or a scripted answer); records requests."""

    def __init__(self) -> None:
        self.now = T0
        self.requests: list[httpx.Request] = []
        self.answer: httpx.Response | None = None
        self.body: dict[str, Any] | None = None

    def clock(self) -> datetime:
        return self.now

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answer is not None:
            return self.answer
        body = self.body or {
            "token": {"issued_at": self.now.isoformat(), "expires_at": (self.now + timedelta(hours=1)).isoformat()}
        }
        return httpx.Response(201, headers={"X-Subject-Token": f"token-{len(self.requests)}"}, json=body)


def make_auth(iam: Iam, *, clock: bool = True, **kwargs: Any) -> IamTokenAuth:
    options: dict[str, Any] = {
        "iam_url": IAM_URL,
        "user_name": "alice",
        "password": PASSWORD,
        "domain_name": "acme",
        "project_id": "proj-1",
        "transport": httpx.MockTransport(iam),
        "async_transport": httpx.MockTransport(iam),
        "retry": RetryPolicy(max_attempts=1),
    }
    if clock:
        options["clock"] = iam.clock
    options.update(kwargs)
    return IamTokenAuth(**options)


# ------------------------------------------------------------------------------------------------ the request


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"project_id": "proj-1"}, {"id": "proj-1"}),
        ({"project_id": None, "project_name": "cn-north-4"}, {"name": "cn-north-4"}),
    ],
    ids=["by id", "by name"],
)
def test_the_token_request_as_sent(scope: dict[str, Any], expected: dict[str, str]) -> None:
    iam = Iam()
    auth = make_auth(iam, iam_url=IAM_URL + "/", **scope)
    assert auth.token().value == "token-1"
    (request,) = iam.requests
    assert request.method == "POST" and str(request.url) == IAM_URL + "/v3/auth/tokens"
    assert request.headers["content-type"] == "application/json;charset=utf8"
    assert "authorization" not in request.headers and "x-auth-token" not in request.headers
    assert json.loads(request.content) == {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": "alice", "password": PASSWORD, "domain": {"name": "acme"}}},
            },
            "scope": {"project": expected},
        }
    }


def test_the_settings_are_kept_and_shown_without_the_password() -> None:
    iam = Iam()
    auth = make_auth(iam, iam_url=IAM_URL + "/", project_name="cn-north-4")
    assert (auth.iam_url, auth.user_name, auth.domain_name) == (IAM_URL, "alice", "acme")
    assert (auth.project_id, auth.project_name) == ("proj-1", "cn-north-4")
    assert repr(auth) == f"IamTokenAuth(iam_url={IAM_URL!r}, user_name='alice')"
    assert repr(auth.source) == f"IamTokenSource(iam_url={IAM_URL!r}, user_name='alice')"
    assert auth.iam is auth.source.iam and auth.iam.base_url == IAM_URL
    assert auth.iam.retry == RetryPolicy(max_attempts=1)  # the transport options reach the token transport
    assert auth.source.user_name == "alice" and auth.source.domain_name == "acme"
    assert (auth.source.project_id, auth.source.project_name) == ("proj-1", "cn-north-4")
    assert PASSWORD not in repr(auth) + repr(auth.source) + repr(auth.credential)


def test_the_cache_key_names_endpoint_domain_user_password_digest_and_scope() -> None:
    iam = Iam()
    by_id = make_auth(iam).source.cache_key()
    assert by_id == f"{IAM_URL}|acme|alice|{digest(PASSWORD)}|id=proj-1"
    by_name = make_auth(iam, project_id=None, project_name="cn-north-4").source.cache_key()
    assert by_name == f"{IAM_URL}|acme|alice|{digest(PASSWORD)}|name=cn-north-4"


def test_without_a_clock_the_token_is_shared_by_equal_settings_and_only_them() -> None:
    iam = Iam()
    iam.now = datetime.now(timezone.utc)  # the shared credential reads the real clock: tokens valid an hour from now
    transport, atransport = httpx.MockTransport(iam), httpx.MockTransport(iam)
    first = make_auth(iam, clock=False, transport=transport, async_transport=atransport)
    second = make_auth(iam, clock=False, transport=transport, async_transport=atransport)
    assert first.credential is second.credential
    assert second.iam is first.iam  # the shared credential's transport, which predates the second object
    first.token()
    assert second.token().value == "token-1" and second.fetch_count == 1 and len(iam.requests) == 1
    other = make_auth(iam, clock=False, transport=transport, async_transport=atransport, user_name="bob")
    assert other.credential is not first.credential
    own = make_auth(iam)  # given a clock: its own credential
    assert own.credential is not make_auth(iam).credential


def test_prepare_returns_the_auth() -> None:
    auth = make_auth(Iam())
    assert auth.prepare() is auth


def test_the_generic_auth_flow_is_refused() -> None:
    auth = make_auth(Iam())
    with pytest.raises(RuntimeError) as refused:
        next(auth.auth_flow(httpx.Request("GET", "https://fabric.example.test/")))
    assert str(refused.value) == "IamTokenAuth overrides sync_auth_flow/async_auth_flow"


# ------------------------------------------------------------------------------------------------ the answer


def test_the_token_and_its_times_as_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk

    masked: list[str] = []
    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: masked.append(value))
    iam = Iam()
    issued, expires = T0 - timedelta(minutes=10), T0 + timedelta(hours=2)
    iam.body = {"token": {"issued_at": issued.isoformat(), "expires_at": expires.isoformat()}}
    auth = make_auth(iam)
    assert auth.current is None and auth.fetch_count == 0
    token = auth.token()
    assert (token.value, token.issued_at, token.expires_at) == ("token-1", issued, expires)
    assert auth.current == token and auth.fetch_count == 1
    key = auth.credential.current
    assert key is not None and key.access_key_id == "iam-user:alice" and key.source == "token"
    assert "token-1" in masked


@pytest.mark.parametrize(
    ("body", "issued_at", "expires_at"),
    [
        # the fields at the top level (no "token" object)
        ({"issued_at": "2026-03-01T07:00:00Z", "expires_at": "2026-03-01T10:00:00Z"}, "07:00", "10:00"),
        # "Z" and naive times are UTC
        (
            {"token": {"issued_at": "2026-03-01T07:30:00", "expires_at": "2026-03-01T10:00:00.000000Z"}},
            "07:30",
            "10:00",
        ),
        # no issued_at, or an unreadable one: the clock's now
        ({"token": {"expires_at": "2026-03-01T10:00:00+00:00"}}, "08:00", "10:00"),
        ({"token": {"issued_at": 5, "expires_at": "2026-03-01T10:00:00+00:00"}}, "08:00", "10:00"),
        ({"token": {"issued_at": "yesterday", "expires_at": "2026-03-01T10:00:00+00:00"}}, "08:00", "10:00"),
    ],
    ids=["top level", "Z and naive", "no issued_at", "issued_at a number", "issued_at not a time"],
)
def test_the_answers_times(body: dict[str, Any], issued_at: str, expires_at: str) -> None:
    iam = Iam()
    iam.body = body
    token = make_auth(iam).token()
    assert token.issued_at == datetime.fromisoformat(f"2026-03-01T{issued_at}:00+00:00")
    assert token.expires_at == datetime.fromisoformat(f"2026-03-01T{expires_at}:00+00:00")
    assert token.issued_at.tzinfo is not None and token.expires_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("headers", "body", "step"),
    [
        ({}, {"token": {"expires_at": "2099-01-01T00:00:00Z"}}, "the answer has no X-Subject-Token header"),
        (
            {"X-Subject-Token": "token-x"},
            {"token": {"expires_at": None}},
            "token.expires_at is missing or not an ISO 8601 time in the answer",
        ),
    ],
    ids=["no token", "no expiry"],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_unreadable_answer_names_the_step_its_status_and_request_id(
    headers: dict[str, str], body: dict[str, Any], step: str, mode: str
) -> None:
    iam = Iam()
    iam.answer = httpx.Response(201, headers={"X-Request-Id": "rid-7", **headers}, json=body)
    auth = make_auth(iam)
    with pytest.raises(CredentialSourceError) as caught:
        auth.token() if mode == "sync" else asyncio.run(auth.atoken())
    err = caught.value
    assert err.step == f"IAM token request (POST /v3/auth/tokens): {step}"
    assert (err.source, err.http_status, err.request_id, err.retryable) == ("token", 201, "rid-7", False)


def test_an_iam_refusal_carries_huaweis_error_code() -> None:
    iam = Iam()
    iam.answer = httpx.Response(
        401, headers={"X-Request-Id": "rid-8"}, json={"error": {"code": "IAM.0008", "message": "password wrong"}}
    )
    with pytest.raises(CredentialSourceError) as caught:
        make_auth(iam).token()
    assert (caught.value.http_status, caught.value.code, caught.value.retryable) == (401, "IAM.0008", False)


# ------------------------------------------------------------------------------------------------ the token


def test_iam_token_fields_repr_and_refresh_rule() -> None:
    token = IamToken(value="secret-token", issued_at=T0, expires_at=T0 + timedelta(hours=1))
    assert repr(token) == "IamToken(expires_at=2026-03-01T09:00:00+00:00)"
    assert token.needs_refresh(T0 + timedelta(minutes=54)) is False  # 6 min left
    assert token.needs_refresh(T0 + timedelta(minutes=55)) is False  # exactly 300 s left: not less
    assert token.needs_refresh(T0 + timedelta(minutes=55, seconds=1)) is True
    short = IamToken(value="secret-token", issued_at=T0, expires_at=T0 + timedelta(seconds=100))
    assert short.needs_refresh(T0 + timedelta(seconds=79)) is False  # 20 % of 100 s = 20 s
    assert short.needs_refresh(T0 + timedelta(seconds=81)) is True


def test_iam_token_of_a_key() -> None:
    expires = T0 + timedelta(hours=1)
    full = IamToken.of(TemporaryKey("id", "tok", expires_at=expires, issued_at=T0))
    assert (full.value, full.issued_at, full.expires_at) == ("tok", T0, expires)
    undated = IamToken.of(TemporaryKey("id", "tok", expires_at=expires))
    assert undated.issued_at == expires and undated.expires_at == expires


# ------------------------------------------------------------------------------------------------ renewal


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_refused_token_is_renewed_a_stale_one_is_not(mode: str) -> None:
    iam = Iam()
    auth = make_auth(iam)

    def token(failed: IamToken | None = None) -> IamToken:
        return auth.token(failed) if mode == "sync" else asyncio.run(auth.atoken(failed))

    first = token()
    assert token().value == "token-1"
    second = token(failed=first)  # the registry refused it: renewed at once
    assert second.value == "token-2" and auth.fetch_count == 2
    assert token(failed=first).value == "token-2"  # a refusal of a token already replaced: no new request
    assert token(failed=None).value == "token-2" and len(iam.requests) == 2


# ------------------------------------------------------------------------------------------------ log redaction

LOGGERS = ("httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.connection")


@pytest.fixture
def bare_loggers(monkeypatch: pytest.MonkeyPatch) -> list[logging.Logger]:
    """The four httpcore loggers without the redacting filter (restored after the test)."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    for logger in loggers:
        monkeypatch.setattr(logger, "filters", [f for f in logger.filters if f is not iam_module._REDACT])
    root = logging.getLogger()
    monkeypatch.setattr(root, "filters", list(root.filters))
    return loggers


def test_redaction_is_installed_on_each_httpcore_logger_once(bare_loggers: list[logging.Logger]) -> None:
    redact_subject_tokens()
    redact_subject_tokens()
    for logger in bare_loggers:
        assert logger.filters.count(iam_module._REDACT) == 1, logger.name
    assert iam_module._REDACT not in logging.getLogger().filters
    record = logging.LogRecord(
        "httpcore.http11", logging.DEBUG, __file__, 1, "[(b'X-Subject-Token', b'MIIsecret')]", None, None
    )
    assert bare_loggers[0].filter(record) and record.msg == "[(b'X-Subject-Token', b'***')]"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            "receive_response_headers.complete return_value=(b'HTTP/1.1', 201, b'Created', "
            "[(b'Content-Type', b'application/json'), (b'X-Subject-Token', b'MIIsecret-value'), (b'Date', b'x')])",
            "receive_response_headers.complete return_value=(b'HTTP/1.1', 201, b'Created', "
            "[(b'Content-Type', b'application/json'), (b'X-Subject-Token', b'***'), (b'Date', b'x')])",
        ),
        ("x-subject-token: MIIsecret-value", "x-subject-token: ***"),
        ("headers x-subject-token=MIIsecret-value done", "headers x-subject-token=*** done"),
        ("nothing to hide here", "nothing to hide here"),
    ],
)
def test_the_filter_redacts_the_token_value_only(message: str, shown: str) -> None:
    record = logging.LogRecord("httpcore.http11", logging.DEBUG, __file__, 1, message, None, None)
    assert iam_module._REDACT.filter(record) is True
    assert record.msg == shown


def test_the_filter_passes_a_record_whose_message_is_no_string() -> None:
    payload = {"x-subject-token": "MIIsecret-value"}
    record = logging.LogRecord("httpcore.http11", logging.DEBUG, __file__, 1, payload, None, None)
    assert iam_module._REDACT.filter(record) is True
    assert record.msg is payload


# ------------------------------------------------------------------------------------------------ the token transport


def test_only_trailing_slashes_leave_the_iam_url() -> None:
    iam = Iam()
    auth = make_auth(iam, iam_url="https://iam.example.test/iamX/")
    auth.token()
    assert str(iam.requests[0].url) == "https://iam.example.test/iamX/v3/auth/tokens"


def test_an_iam_outage_is_retried_and_logged_as_fabrics(caplog: pytest.LogCaptureFixture) -> None:
    iam = Iam()
    answers = [httpx.Response(503, json={"error_code": "SYS.0001", "error_msg": "busy"})]

    def flaky(request: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else iam(request)

    auth = make_auth(
        iam,
        transport=httpx.MockTransport(flaky),
        retry=RetryPolicy(max_attempts=2, base_delay=0.0, min_delay=0.0, max_delay=0.0),
        sleep=lambda seconds: None,
    )
    with caplog.at_level(logging.WARNING, logger="airflow_provider_modelreg.transport"):
        assert auth.token().value == "token-1"
    (record,) = [r for r in caplog.records if r.name == "airflow_provider_modelreg.transport"]
    assert record.getMessage().startswith("fabric POST /v3/auth/tokens attempt 1/2 failed: HTTP 503")


def test_an_iam_refusal_names_the_step_the_service_and_the_request() -> None:
    iam = Iam()
    iam.answer = httpx.Response(403, json={"error": {"code": "IAM.0002", "message": "forbidden"}})
    with pytest.raises(CredentialSourceError) as caught:
        make_auth(iam).token()
    assert caught.value.step.startswith(
        f"IAM token request (POST /v3/auth/tokens) failed: Huawei IAM at {IAM_URL}: POST /v3/auth/tokens: "
    )


def test_a_token_without_issue_time_is_dated_by_the_real_clock_when_none_is_given() -> None:
    iam = Iam()
    iam.now = datetime.now(timezone.utc)
    iam.body = {"token": {"expires_at": (iam.now + timedelta(hours=1)).isoformat()}}
    before = datetime.now(timezone.utc)
    token = make_auth(iam, clock=False).token()
    after = datetime.now(timezone.utc)
    assert token.issued_at.tzinfo is not None and before <= token.issued_at <= after


def test_an_offset_expiry_keeps_its_instant() -> None:
    iam = Iam()
    iam.body = {"token": {"issued_at": "2026-03-01T16:00:00+08:00", "expires_at": "2026-03-01T18:00:00+08:00"}}
    token = make_auth(iam).token()
    assert token.issued_at == T0 and token.expires_at == T0 + timedelta(hours=2)
    assert token.expires_at.utcoffset() == timedelta(hours=8)


def test_a_token_in_an_unreadable_answer_is_masked_all_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk

    masked: list[str] = []
    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: masked.append(value))
    iam = Iam()
    iam.answer = httpx.Response(201, headers={"X-Subject-Token": "MIIlonely-token"}, json={"token": {}})
    with pytest.raises(CredentialSourceError):
        make_auth(iam).token()
    assert masked == ["MIIlonely-token"]
