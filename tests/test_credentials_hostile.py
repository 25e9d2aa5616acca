"""Hostile and failing credential services, over real HTTP on 127.0.0.1 (issue 19, credential part).

Small fake servers of this module (a programmable ``http.server``) stand in for Alibaba STS, ECS metadata, a
credentials URI and Huawei metadata, STS and IAM; the chaos cases use the emulator's own credential services with
an outage (:func:`~modelreg_emulator.credential_services.set_outage`). Each test states what it
proves; the sources are built as the hooks build them (``build_pai_auth``, ``build_huawei_source``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from helpers import FABRIC_AK, FABRIC_SK, build_seed

from airflow_provider_modelreg.credentials import base
from airflow_provider_modelreg.credentials.alibaba import build_pai_auth, credential_config
from airflow_provider_modelreg.credentials.base import (
    CredentialSourceError,
    RefreshingCredential,
    clear_shared_credentials,
    read_token_file,
)
from airflow_provider_modelreg.credentials.huawei import HuaweiSourceSettings, build_huawei_source
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.transport import RetryPolicy
from modelreg_emulator import hw_credentials as hc
from modelreg_emulator.ali_credentials import make_oidc_token
from modelreg_emulator.credential_services import outage_failures, set_outage

ROLE_ARN = "acs:ram::1234567890123456:role/airflow-pai"
PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-cluster"
BASE_KEY = "LTAIbasekey000000001"
BASE_SECRET = "base-secret-0123456789abcdef"
BASE_TOKEN = "CAISbase-security-token/with+special=chars"
ONE = RetryPolicy(max_attempts=1, attempt_timeout=5.0, call_timeout=5.0)
THREE = RetryPolicy(
    max_attempts=3, base_delay=0.001, max_delay=0.001, min_delay=0.0, attempt_timeout=5, call_timeout=10
)
STS_TIME = "%Y-%m-%dT%H:%M:%SZ"
CAP = 1024 * 1024
HW_ID_TOKEN = "hw-oidc-id-token-0123456789-unique"
ALI_ENV = ("ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_ECS_METADATA", "ALIBABA_CLOUD_STS_REGION")

Responder = Callable[["Seen"], tuple[int, dict[str, str], bytes]]


class Seen:
    """One request the fake server received."""

    def __init__(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        self.method = method
        self.path = urlsplit(target).path
        self.query = dict(parse_qsl(urlsplit(target).query))
        self.headers = headers
        self.body = body


class FakeServer:
    """A programmable HTTP server on 127.0.0.1: ``respond(seen) -> (status, headers, body)``."""

    def __init__(self, respond: Responder) -> None:
        self.respond = respond
        self.seen: list[Seen] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                outer.seen.append(seen)
                status, headers, content = outer.respond(seen)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_PUT = do_POST = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def serve() -> Iterator[Callable[[Responder], FakeServer]]:
    servers: list[FakeServer] = []

    def make(respond: Responder) -> FakeServer:
        server = FakeServer(respond)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL where nothing listens: every connection is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ALI_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    clear_shared_credentials()
    yield
    clear_shared_credentials()


@pytest.fixture
def oidc_file(tmp_path: Path) -> Path:
    path = tmp_path / "oidc-token"
    path.write_text(make_oidc_token())
    return path


def _json(status: int, body: Any, **headers: str) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json", **headers}, json.dumps(body).encode()


def _ali_key(expires: datetime | None = None) -> dict[str, str]:
    expires = expires or datetime.now(timezone.utc) + timedelta(hours=1)
    return {
        "AccessKeyId": "STS.issued",
        "AccessKeySecret": "issued-secret-value-1",
        "SecurityToken": "issued-security-token-1",
        "Expiration": expires.strftime(STS_TIME),
    }


def _hw_key(expires: datetime | None = None) -> dict[str, Any]:
    expires = expires or datetime.now(timezone.utc) + timedelta(hours=1)
    return {
        "credential": {
            "access": "HWISSUED",
            "secret": "hw-issued-secret-1",
            "securitytoken": "hw-issued-token-1",
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.000000Z"),
        }
    }


# ------------------------------------------------------------------------------------------------ sources


def ali_credential(
    kind: str, url: str, token_file: Path | None = None, *, retry: RetryPolicy = ONE, clock: Any = None, **extra: Any
) -> RefreshingCredential:
    """The refreshing credential of an Alibaba source at ``url``, as the PAI hook builds it."""
    extras: dict[str, Any] = {
        "ram_role_arn": {"credential_source": "ram_role_arn", "role_arn": ROLE_ARN, "sts_endpoint": url},
        "oidc_role_arn": {
            "credential_source": "oidc_role_arn",
            "role_arn": ROLE_ARN,
            "oidc_provider_arn": PROVIDER_ARN,
            "oidc_token_file": str(token_file),
            "sts_endpoint": url,
        },
        "ecs_ram_role": {"credential_source": "ecs_ram_role", "metadata_endpoint": url, "role_name": "MyRole"},
        "credentials_uri": {"credential_source": "credentials_uri", "credentials_uri": url + "/api/v1/credentials"},
    }[kind]
    extras.update(extra)
    keyed = kind == "ram_role_arn"
    if keyed:
        extras.setdefault("security_token", BASE_TOKEN)
    config = credential_config(BASE_KEY if keyed else None, BASE_SECRET if keyed else None, extras)
    options = {"retry": retry, "max_response_bytes": CAP}
    auth = build_pai_auth(config, options, env={}, clock=clock)
    assert auth.credential is not None
    return auth.credential


def hw_credential(
    kind: str, url: str, token_file: Path | None = None, *, retry: RetryPolicy = ONE, clock: Any = None, **over: Any
) -> RefreshingCredential:
    """The refreshing credential of a Huawei source at ``url``, as the Fabric hook builds it."""
    settings = {
        "metadata": HuaweiSourceSettings(metadata_endpoint=url),
        "oidc": HuaweiSourceSettings(
            sts_endpoint=url,
            provider_urn=hc.DEMO_PROVIDER_URN,
            agency_urn=hc.DEMO_AGENCY_URN,
            token_file=None if token_file is None else str(token_file),
        ),
        "agency": HuaweiSourceSettings(
            iam_endpoint=url,
            access_key=FABRIC_AK,
            secret_key=FABRIC_SK,
            agency_name=hc.DEMO_AGENCY,
            agency_domain_name=hc.DEMO_DOMAIN_NAME,
            caller_domain_id=hc.DEMO_CALLER_DOMAIN_ID,
        ),
    }[kind]
    if over:
        settings = HuaweiSourceSettings(**{**settings.__dict__, **over})
    options = {"retry": retry, "max_response_bytes": CAP}
    source = build_huawei_source(kind, settings, options, clock=clock)
    return RefreshingCredential(source, **({"clock": clock} if clock else {}))


ALI = ["ram_role_arn", "oidc_role_arn", "ecs_ram_role", "credentials_uri"]
HW = ["metadata", "oidc", "agency"]
#: (first request's method and path, the service's name in errors)
FIRST_STEP = {
    "ram_role_arn": ("GET /", "STS at "),
    "oidc_role_arn": ("GET /", "STS at "),
    "ecs_ram_role": ("PUT /latest/api/token", "ECS metadata service at "),
    "credentials_uri": ("GET /api/v1/credentials", "credentials URI at "),
    "metadata": ("GET /openstack/latest/securitykey", "Huawei metadata service at "),
    "oidc": ("POST /v5/agencies/assume-with-oidc", "Huawei STS at "),
    "agency": ("POST /v3.0/OS-CREDENTIAL/securitytokens", "Huawei IAM at "),
}


def credential_for(kind: str, url: str, token_file: Path, **kwargs: Any) -> RefreshingCredential:
    if kind in ALI:
        return ali_credential(kind, url, token_file, **kwargs)
    return hw_credential(kind, url, token_file if kind == "oidc" else None, **kwargs)


@pytest.fixture
def hw_token_file(tmp_path: Path) -> Path:
    path = tmp_path / "hw-id-token"
    path.write_text(hc.DEMO_ID_TOKEN)
    return path


def _token_for(kind: str, oidc_file: Path, hw_token_file: Path) -> Path:
    return hw_token_file if kind == "oidc" else oidc_file


def assert_shape(err: CredentialSourceError, kind: str, url: str) -> None:
    """The message names the source, the service at its URL and the request; never "HTTP 0" or "registry at"."""
    text = str(err)
    request, service = FIRST_STEP[kind]
    assert text.startswith(f"credential source {kind}: "), text
    assert service + url in text, text
    assert request in text, text
    assert "HTTP 0" not in text and "registry at" not in text, text


# --------------------------------------------------------------------------------- 1. retryable, and named


@pytest.mark.parametrize("kind", ALI + HW)
def test_no_answer_is_retryable_and_names_the_service_and_the_request(
    kind: str, refused_url: str, oidc_file: Path, hw_token_file: Path
) -> None:
    """Connection refused at any credential service: a retryable CredentialSourceError naming source, service,
    URL and request ("connection refused"), never "HTTP 0 -" nor "pai registry at"."""
    credential = credential_for(kind, refused_url, _token_for(kind, oidc_file, hw_token_file))
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    err = caught.value
    if kind == "metadata":  # the token request has no retry and its failure means "no token mode" only on an answer
        assert "PUT /meta-data/latest/api/token" in str(err)
    else:
        assert_shape(err, kind, refused_url)
    assert err.retryable is True
    assert "connection refused" in str(err).lower()
    with pytest.raises(CredentialSourceError) as again:
        asyncio.run(credential.aget())
    assert again.value.retryable is True and "HTTP 0" not in str(again.value)


#: (status, vendor code, retryable)
STATUSES = [
    (408, None, True),
    (429, None, True),
    (500, None, True),
    (502, None, True),
    (503, None, True),
    (400, "Throttling.User", True),
    (401, None, False),
    (403, "NoPermission", False),
    (400, "InvalidParameter.RoleArn", False),
]


@pytest.mark.parametrize(("status", "code", "retryable"), STATUSES)
@pytest.mark.parametrize("kind", ALI + HW)
def test_each_answer_status_is_classified_where_the_error_is_made(
    kind: str,
    status: int,
    code: str | None,
    retryable: bool,
    serve: Callable[[Responder], FakeServer],
    oidc_file: Path,
    hw_token_file: Path,
) -> None:
    """408/429/5xx and throttling codes from any credential service are retryable; 401/403 and invalid requests
    are not. The status and the code are kept on the error; the message names the service at its URL."""

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if kind == "ecs_ram_role" and seen.path == "/latest/api/token":
            return 200, {"content-type": "text/plain"}, b"metadata-session-token-1"
        if kind == "metadata" and seen.path == "/meta-data/latest/api/token":
            return 200, {"content-type": "text/plain"}, b"hw-metadata-session-token"
        if kind in HW:
            return _json(status, {"error_code": code or f"E.{status}", "error_msg": "refused or down"})
        return _json(status, {"Code": code or f"E{status}", "Message": "refused or down", "RequestId": "rid-1"})

    server = serve(respond)
    credential = credential_for(kind, server.url, _token_for(kind, oidc_file, hw_token_file))
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    err = caught.value
    assert err.retryable is retryable, str(err)
    assert err.http_status == status
    assert err.source == kind
    assert str(err).startswith(f"credential source {kind}: ") and "HTTP 0" not in str(err)
    assert "registry at" not in str(err) and server.url in str(err)


def test_a_malformed_answer_or_setting_is_not_retryable(serve: Callable[[Responder], FakeServer]) -> None:
    """A 200 that carries no key is the service's last word (asking again repeats it); a bad setting too."""
    server = serve(lambda seen: _json(200, {"RequestId": "r", "Nothing": 1}))
    with pytest.raises(CredentialSourceError, match="no Credentials") as caught:
        ali_credential("ram_role_arn", server.url).get()
    assert caught.value.retryable is False
    with pytest.raises(RegistryConnectionConfigError) as config:
        ali_credential("ram_role_arn", "ftp://sts.example.test")
    assert config.value.retryable is False


# ------------------------------------------------------------------------------- 2. expired on arrival


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("kind", ["ram_role_arn", "ecs_ram_role", "credentials_uri", "metadata", "agency"])
def test_a_key_expired_on_arrival_is_a_typed_error_naming_both_times_and_renewals_are_spaced(
    kind: str, serve: Callable[[Responder], FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A clock running ahead (or a service handing out stale keys): the key arrives expired. One typed error naming
    the source, the key's expiry and our clock ("check the clock"), logged at ERROR; then no request to the service
    per registry call but one per spacing (30 s, doubling)."""
    past = datetime.now(timezone.utc) - timedelta(minutes=10)

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path in ("/latest/api/token", "/meta-data/latest/api/token"):
            return 200, {"content-type": "text/plain"}, b"session-token-abcdef"
        if kind in HW:
            return _json(201, _hw_key(past))
        if kind == "ram_role_arn":
            return _json(200, {"RequestId": "r", "Credentials": _ali_key(past)})
        return _json(200, {"Code": "Success", **_ali_key(past)})

    server = serve(respond)
    clock = Clock()
    credential = credential_for(kind, server.url, Path("/nonexistent"), clock=clock)
    caplog.set_level(logging.ERROR)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    text = str(caught.value)
    assert caught.value.source == kind and "check the clock" in text
    assert past.strftime(STS_TIME) in text and clock.now.strftime(STS_TIME) in text
    assert "check the clock" in caplog.text
    sent = len(server.seen)
    for _ in range(20):  # twenty registry calls within the spacing: the service is not asked again
        with pytest.raises(CredentialSourceError, match="check the clock"):
            credential.get()
        with pytest.raises(CredentialSourceError, match="check the clock"):
            asyncio.run(credential.aget())
    assert len(server.seen) == sent
    clock.now += timedelta(seconds=31)
    with pytest.raises(CredentialSourceError, match="check the clock"):
        credential.get()
    assert len(server.seen) == 2 * sent  # asked once more after the spacing
    clock.now += timedelta(seconds=31)  # the spacing doubled: 60 s now
    with pytest.raises(CredentialSourceError, match="check the clock"):
        credential.get()
    assert len(server.seen) == 2 * sent


def test_an_expired_arrival_keeps_a_still_valid_key(serve: Callable[[Responder], FakeServer]) -> None:
    """While the cached key still works, a renewal that brings an expired key keeps it (no error, spaced)."""
    now = datetime.now(timezone.utc)
    answers = [_ali_key(now + timedelta(seconds=900)), _ali_key(now - timedelta(seconds=60))]

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        body = answers[0] if len(server.seen) == 1 else answers[1]
        return _json(200, {"RequestId": "r", "Credentials": body})

    server = serve(respond)
    clock = Clock()
    credential = ali_credential("ram_role_arn", server.url, clock=clock)
    first = credential.get()
    clock.now = now + timedelta(seconds=900 - 100)  # inside the margin, still usable
    for _ in range(10):
        assert credential.get() is first
    assert len(server.seen) == 2


# ------------------------------------------------------------------------------- 3. depth and size limits

DEEP = b"[" * 100_000


@pytest.mark.parametrize("kind", ALI + HW)
@pytest.mark.parametrize("body", [DEEP, b'{"a": ' * 50_000], ids=["brackets", "objects"])
def test_deeply_nested_json_from_any_credential_service_is_typed(
    kind: str, body: bytes, serve: Callable[[Responder], FakeServer], oidc_file: Path, hw_token_file: Path
) -> None:
    """``[`` x 100,000 from STS, ECS metadata, a credentials URI, Huawei metadata, STS or IAM: a typed
    CredentialSourceError naming the source, never a RecursionError."""

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path in ("/latest/api/token", "/meta-data/latest/api/token"):
            return 200, {"content-type": "text/plain"}, b"session-token-abcdef"
        return 200, {"content-type": "application/json"}, body

    server = serve(respond)
    credential = credential_for(kind, server.url, _token_for(kind, oidc_file, hw_token_file))
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    assert caught.value.source == kind
    assert "nested too deeply" in str(caught.value) or "not JSON" in str(caught.value)
    with pytest.raises(CredentialSourceError):
        asyncio.run(credential.aget())


@pytest.mark.parametrize("kind", ALI + HW)
def test_deep_json_on_renewal_falls_back_to_the_still_valid_key(
    kind: str,
    serve: Callable[[Responder], FakeServer],
    oidc_file: Path,
    hw_token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The fallback to a still-valid cached key holds for an unreadable answer too."""
    state = {"deep": False}

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if seen.path in ("/latest/api/token", "/meta-data/latest/api/token"):
            return 200, {"content-type": "text/plain"}, b"session-token-abcdef"
        if state["deep"]:
            return 200, {"content-type": "application/json"}, DEEP
        if kind in HW:
            return _json(201, _hw_key())
        if kind in ("ram_role_arn", "oidc_role_arn"):
            return _json(200, {"RequestId": "r", "Credentials": _ali_key()})
        return _json(200, {"Code": "Success", **_ali_key()})

    server = serve(respond)
    clock = Clock()
    credential = credential_for(kind, server.url, _token_for(kind, oidc_file, hw_token_file), clock=clock)
    first = credential.get()
    state["deep"] = True
    clock.now += timedelta(seconds=3600 - 200)
    caplog.set_level(logging.WARNING)
    assert credential.get() is first
    assert "nested too deeply" in caplog.text


@pytest.mark.parametrize("kind", ["ram_role_arn", "credentials_uri", "agency"])
def test_an_answer_beyond_the_body_cap_is_typed(kind: str, serve: Callable[[Responder], FakeServer]) -> None:
    """The same body cap as registry answers (``max_response_bytes``, 1 MB here): a typed, named error."""
    server = serve(lambda seen: (200, {"content-type": "application/json"}, b" " * (2 * CAP) + b"{}"))
    with pytest.raises(CredentialSourceError, match="max_response_bytes") as caught:
        credential_for(kind, server.url, Path("/nonexistent")).get()
    assert caught.value.source == kind and caught.value.retryable is False


# ------------------------------------------------------------------------------------------ 4. token files


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo-token"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("what", ["huge", "dev_zero", "fifo", "directory"])
def test_token_files_are_capped_and_must_be_regular(what: str, tmp_path: Path) -> None:
    """A 20 MB file, /dev/zero, a FIFO with no writer, a directory: a typed error naming the path, at once."""
    if what == "huge":
        path = tmp_path / "huge-token"
        with path.open("wb") as handle:
            handle.truncate(20 * 1024 * 1024)
    elif what == "dev_zero":
        path = Path("/dev/zero")
    elif what == "fifo":
        path = _fifo(tmp_path)
    else:
        path = tmp_path
    started = time.monotonic()
    with pytest.raises(CredentialSourceError) as caught:
        read_token_file("oidc_role_arn", str(path))
    assert time.monotonic() - started < 1.0
    assert str(path) in str(caught.value) and caught.value.source == "oidc_role_arn"
    assert caught.value.retryable is False


@pytest.mark.parametrize("kind", ["oidc_role_arn", "oidc"])
def test_async_token_file_reads_run_off_the_event_loop(
    kind: str, tmp_path: Path, serve: Callable[[Responder], FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In ``aget`` the token file is read in a worker thread, not on the loop; a FIFO fails fast and typed."""
    readers: list[int] = []
    original = base.files.read_small_file  # read_token_file reads through it

    def recording(path: str, cap: int) -> bytes:
        readers.append(threading.get_ident())
        return original(path, cap)

    monkeypatch.setattr(base.files, "read_small_file", recording)
    fifo = _fifo(tmp_path)
    server = serve(lambda seen: _json(500, {}))
    credential = credential_for(kind, server.url, fifo)

    async def run() -> int:
        with pytest.raises(CredentialSourceError, match="not a regular file"):
            await asyncio.wait_for(credential.aget(), 5)
        return threading.get_ident()

    loop_thread = asyncio.run(run())
    assert readers and loop_thread not in readers
    assert not server.seen


def test_profile_files_are_capped_and_must_be_regular(tmp_path: Path) -> None:
    """The default chain's CLI profile: a FIFO in its place is refused at once, naming the path (no hang)."""
    from airflow_provider_modelreg.credentials.alibaba import resolve_default_chain

    home = tmp_path / "home"
    (home / ".aliyun").mkdir(parents=True)
    os.mkfifo(home / ".aliyun" / "config.json")
    config = credential_config(None, None, {"credential_source": "default_chain"})
    started = time.monotonic()
    with pytest.raises(CredentialSourceError, match=r"config\.json: not a regular file"):
        resolve_default_chain(config, {"retry": ONE}, env={"HOME": str(home)})
    assert time.monotonic() - started < 1.0


# --------------------------------------------------------------------------------------- 5. scrubbing


def _echo_everything(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    """A hostile service that repeats, in its error text, what it was sent: the secrets first (query, headers,
    body; raw and percent-encoded), then everything."""
    body = seen.body.decode("utf-8", "replace")
    token = seen.query.get("SecurityToken", "")
    picked = [
        token,
        quote(token, safe=""),
        seen.query.get("OIDCToken", ""),
        seen.headers.get("x-metadata-token", ""),
        seen.headers.get("x-aliyun-ecs-metadata-token", ""),
        seen.headers.get("x-security-token", ""),
        json.loads(body).get("id_token", "") if body.startswith("{") else "",
    ]
    echoed = "echo: " + " | ".join(p for p in picked if p) + " | " + json.dumps({"q": seen.query, "b": body})
    if seen.path in ("/latest/api/token", "/meta-data/latest/api/token"):
        return 200, {"content-type": "text/plain"}, b"metadata-session-token-secret-1"
    return _json(403, {"Code": "NoPermission", "Message": echoed, "error_msg": echoed, "error_code": "IAM.0001"})


def test_a_secret_cut_by_a_truncated_message_is_scrubbed_too() -> None:
    """Server text arrives cut at a few hundred characters: a secret's prefix at the cut is replaced too."""
    secret = "abcdefghijklmnop-secret"
    assert base.scrub("error: token abcdefgh...", [secret]) == "error: token ***..."
    assert base.scrub(f"x {quote(secret)} y {secret}", [secret]) == "x *** y ***"
    assert base.scrub("short 12345 stays", ["12345"]) == "short 12345 stays"


@pytest.mark.parametrize("kind", ["ram_role_arn", "oidc_role_arn", "ecs_ram_role", "metadata", "oidc", "agency"])
def test_secrets_echoed_by_a_service_never_reach_messages_or_logs(
    kind: str,
    serve: Callable[[Responder], FakeServer],
    oidc_file: Path,
    hw_token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The base key's secret and token, the OIDC token, the metadata session token: replaced by *** before any
    message is built, even when the service echoes them back."""
    server = serve(_echo_everything)
    caplog.set_level(logging.DEBUG)
    hw_token_file.write_text(HW_ID_TOKEN)
    over = {"security_token": BASE_TOKEN} if kind == "agency" else {}
    credential = credential_for(kind, server.url, _token_for(kind, oidc_file, hw_token_file), **over)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    with pytest.raises(CredentialSourceError) as acaught:
        asyncio.run(credential.aget())
    shown = str(caught.value) + str(acaught.value) + caplog.text + caught.value.step
    assert "***" in str(caught.value)
    secrets = [
        BASE_SECRET,
        BASE_TOKEN,
        quote(BASE_TOKEN, safe=""),
        oidc_file.read_text(),
        HW_ID_TOKEN,
        FABRIC_SK,
        "metadata-session-token-secret-1",
    ]
    for secret in secrets:
        assert secret not in shown, secret
        assert secret[:12] not in str(caught.value), secret


def test_a_known_issued_key_echoed_on_renewal_is_scrubbed(
    serve: Callable[[Responder], FakeServer], caplog: pytest.LogCaptureFixture
) -> None:
    """The key the credential holds (its secret and token), echoed by the service refusing its renewal."""
    state = {"refuse": False}

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if state["refuse"]:
            key = _ali_key()
            message = f"old key {key['AccessKeySecret']} token {key['SecurityToken']} refused"
            return _json(403, {"Code": "NoPermission", "Message": message, "RequestId": "r"})
        return _json(200, {"RequestId": "r", "Credentials": _ali_key()})

    server = serve(respond)
    clock = Clock()
    credential = ali_credential("ram_role_arn", server.url, clock=clock)
    credential.get()
    state["refuse"] = True
    clock.now += timedelta(hours=2)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    assert "old key *** token *** refused" in str(caught.value)
    assert "issued-secret-value-1" not in caplog.text + str(caught.value)


# ------------------------------------------------------------------------------------------- 6. userinfo


@pytest.mark.parametrize("field", ["sts_endpoint", "credentials_uri", "metadata_endpoint"])
def test_userinfo_in_an_endpoint_is_never_repeated(field: str) -> None:
    """``https://ak:secret@host``: refused, and the message shows the URL without its userinfo."""
    source = {"sts_endpoint": "ram_role_arn", "credentials_uri": "credentials_uri", "metadata_endpoint": "ecs_ram_role"}
    extras = {
        "credential_source": source[field],
        "role_arn": ROLE_ARN,
        field: "https://LTAIak:topsecret99@sts.example.test/x",
    }
    if field == "sts_endpoint":
        extras[field] = "https://LTAIak:topsecret99@sts.example.test"
    with pytest.raises(RegistryConnectionConfigError) as caught:
        credential_config(BASE_KEY, BASE_SECRET, extras)
    assert "topsecret99" not in str(caught.value) and "LTAIak" not in str(caught.value)
    assert caught.value.field == field


def test_userinfo_of_a_huawei_endpoint_is_never_shown(refused_url: str) -> None:
    """The Huawei endpoints are checked by the hook; an error of the source never shows userinfo either."""
    url = refused_url.replace("http://", "http://AKHW:hwsecret77@")
    with pytest.raises(CredentialSourceError) as caught:
        hw_credential("agency", url).get()
    assert "hwsecret77" not in str(caught.value) and "AKHW" not in str(caught.value)


def test_the_credentials_uri_value_is_masked_not_its_path(
    serve: Callable[[Responder], FakeServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Masking "/api/v1/credentials" would put *** in every log line naming that path: the URI value is masked."""
    import airflow.providers.common.compat.sdk as compat_sdk

    masked: list[str] = []
    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: masked.append(value))
    server = serve(lambda seen: _json(200, {"Code": "Success", **_ali_key()}))
    credential = ali_credential("credentials_uri", server.url, credentials_uri=server.url + "/api/v1/credentials?t=x")
    credential.get()
    assert server.url + "/api/v1/credentials?t=x" in masked
    assert "/api/v1/credentials" not in masked


# ------------------------------------------------------------------------------------------------ 7. chaos


EMU_SOURCES = ["ram_role_arn", "ecs_ram_role", "credentials_uri", "metadata", "oidc", "agency"]


def emu_credential(kind: str, url: str, hw_token_file: Path, retry: RetryPolicy) -> RefreshingCredential:
    """A source of the emulator's credential services (ECS and the URI on the emulator's own paths)."""
    if kind == "ram_role_arn":
        from helpers import PAI_KEY, PAI_SECRET

        extras = {"credential_source": "ram_role_arn", "role_arn": ROLE_ARN, "sts_endpoint": url}
        auth = build_pai_auth(credential_config(PAI_KEY, PAI_SECRET, extras), {"retry": retry}, env={})
        assert auth.credential is not None
        return auth.credential
    if kind == "ecs_ram_role":
        return ali_credential(kind, url, retry=retry, role_name="EmulatorEcsRole")
    if kind == "credentials_uri":
        return ali_credential(kind, url, retry=retry, credentials_uri=url + "/ecs-credentials-uri")
    return hw_credential(kind, url, hw_token_file if kind == "oidc" else None, retry=retry, caller_domain_id=None)


@pytest.mark.parametrize("kind", EMU_SOURCES)
def test_chaos_a_short_outage_is_retryable_then_the_key_comes(
    kind: str, make_emulator: Callable[..., Any], hw_token_file: Path
) -> None:
    """Metadata, STS and IAM answering 503 for a while: every failed fetch is retryable (a deferred wait keeps
    polling within its failure budget) and names the source and the service; once they are back, the key comes."""
    emu = make_emulator(build_seed())
    credential = emu_credential(kind, emu.url, hw_token_file, ONE)
    set_outage(emu.registry, requests=3, status=503)
    failures = 0
    key = None
    for _poll in range(6):
        try:
            key = credential.get()
            break
        except CredentialSourceError as exc:
            failures += 1
            assert exc.retryable is True, str(exc)
            assert exc.source == kind and emu.url in str(exc) and "HTTP 0" not in str(exc)
    assert key is not None and 1 <= failures <= 3
    assert outage_failures(emu.registry) == 3


@pytest.mark.parametrize("kind", EMU_SOURCES)
def test_chaos_an_outage_inside_the_retry_budget_is_not_even_seen(
    kind: str, make_emulator: Callable[..., Any], hw_token_file: Path
) -> None:
    """With the transport's own retries (3 attempts), two refused answers in a row are absorbed."""
    emu = make_emulator(build_seed())
    set_outage(emu.registry, requests=2 if kind != "metadata" else 1, status=503)
    credential = emu_credential(kind, emu.url, hw_token_file, THREE)
    assert asyncio.run(credential.aget()).expires_at is not None


@pytest.mark.parametrize("kind", ["ram_role_arn", "oidc", "agency"])
def test_chaos_a_403_from_sts_or_iam_is_not_retryable_and_names_the_source(
    kind: str, make_emulator: Callable[..., Any], hw_token_file: Path
) -> None:
    """A refusal fails at once (every wait fails, naming the source): retrying cannot help, and is not done."""
    emu = make_emulator(build_seed())
    set_outage(emu.registry, requests=100, status=403)
    credential = emu_credential(kind, emu.url, hw_token_file, THREE)
    with pytest.raises(CredentialSourceError) as caught:
        asyncio.run(credential.aget())
    err = caught.value
    assert err.retryable is False and err.http_status == 403
    assert str(err).startswith(f"credential source {kind}: ") and emu.url in str(err)
    assert outage_failures(emu.registry) == 1  # one request: a 403 is not retried


def test_chaos_connection_refused_then_back(refused_url: str, make_emulator: Callable[..., Any]) -> None:
    """The metadata service refusing connections, then answering: retryable first, the key after."""
    port = int(refused_url.rsplit(":", 1)[1])
    credential = ali_credential("ecs_ram_role", refused_url, role_name="EmulatorEcsRole")
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    assert caught.value.retryable is True and "connection refused" in str(caught.value).lower()
    assert "ECS metadata service at " + refused_url in str(caught.value)
    try:
        make_emulator(build_seed(), port=port)
    except OSError:  # pragma: no cover - the port was taken meanwhile
        pytest.skip("the refused port was taken by another process")
    assert credential.get().expires_at is not None


SHORT = RetryPolicy(max_attempts=1, attempt_timeout=0.5, call_timeout=0.5)


@pytest.mark.parametrize("kind", ["ram_role_arn", "ecs_ram_role", "credentials_uri", "oidc", "agency"])
@pytest.mark.parametrize("how", ["timeout", "reset"])
def test_a_timeout_or_a_reset_is_retryable_and_named(
    kind: str, how: str, serve: Callable[[Responder], FakeServer], hw_token_file: Path, oidc_file: Path
) -> None:
    """No answer in time, or the connection dropped without an answer: retryable, naming the service and step."""

    def respond(seen: Seen) -> tuple[int, dict[str, str], bytes]:
        if how == "timeout":
            time.sleep(1.5)
            return _json(503, {})
        raise ConnectionResetError("dropped")  # the handler dies: the connection closes with no answer

    server = serve(respond)
    credential = credential_for(kind, server.url, _token_for(kind, oidc_file, hw_token_file), retry=SHORT)
    started = time.monotonic()
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    assert time.monotonic() - started < 1.4
    err = caught.value
    assert err.retryable is True, str(err)
    assert_shape(err, kind, server.url)
    if how == "timeout":
        assert "deadline exceeded" in str(err)
