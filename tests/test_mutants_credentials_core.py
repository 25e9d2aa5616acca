"""The refreshing-credential core (``credentials/base.py``) in the detail a mutant of ``make mutation`` changed
without another test noticing (issue 20): files read with a cap and without blocking, exact error texts (source,
step, service, status, ids, attempts), scrubbing, the shared-credential key, the renewal rules and their spacing.
Over ``httpx.MockTransport`` and plain files only; no test waits for time to pass (a clock is passed in)."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.credentials import base
from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    FileRefused,
    RefreshingCredential,
    TemporaryKey,
    arun_flow,
    clear_shared_credentials,
    digest,
    parse_json_answer,
    read_small_file,
    read_token_file,
    run_flow,
    scrub,
    shared_credential,
    shown_url,
)
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
GUARD = 5.0  # seconds a blocked call may take before the test fails instead of hanging (never reached when passing)


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


# ------------------------------------------------------------------------------------------------ small files


def test_a_file_of_exactly_the_cap_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    assert read_small_file(str(path), 10) == b"0123456789"
    assert read_small_file(str(path), 11) == b"0123456789"


def test_a_file_one_byte_over_the_cap_is_refused_by_its_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789A")
    with pytest.raises(FileRefused) as refused:
        read_small_file(str(path), 10)
    assert str(refused.value) == "larger than 10 bytes (11 bytes)"


class ShortReads:
    """``os.read`` answering at most ``chunk`` bytes a call (as /proc files and network filesystems may), and
    recording the sizes asked for."""

    def __init__(self, chunk: int) -> None:
        self.chunk = chunk
        self.asked: list[int] = []
        self.real = os.read

    def __call__(self, fd: int, size: int) -> bytes:
        self.asked.append(size)
        return self.real(fd, min(size, self.chunk))


def test_short_reads_are_joined_and_ask_only_for_what_is_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    reads = ShortReads(4)
    monkeypatch.setattr(os, "read", reads)
    assert read_small_file(str(path), 10) == b"0123456789"
    assert reads.asked == [11, 7, 3, 1]  # never more than cap + 1 bytes in all


def test_a_file_that_grew_past_the_cap_after_its_size_was_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fstat said small (a /proc file says 0), the content is larger: refused after reading cap + 1 bytes."""
    path = tmp_path / "f"
    path.write_bytes(b"0123456789ABCDEF")
    real_fstat = os.fstat

    def small_fstat(fd: int) -> Any:
        info = real_fstat(fd)
        return os.stat_result((info.st_mode, *info[1:6], 0, *info[7:10]))

    reads = ShortReads(5)
    monkeypatch.setattr(os, "fstat", small_fstat)
    monkeypatch.setattr(os, "read", reads)
    with pytest.raises(FileRefused) as refused:
        read_small_file(str(path), 10)
    assert str(refused.value) == "larger than 10 bytes"
    assert reads.asked == [11, 6, 1]
    monkeypatch.setattr(os, "read", ShortReads(100))
    with pytest.raises(FileRefused):
        read_small_file(str(path), 10)


def test_a_read_that_would_block_is_an_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")

    def would_block(fd: int, size: int) -> bytes:
        raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "read", would_block)
    with pytest.raises(OSError) as failed:
        read_small_file(str(path), 10)
    assert failed.value.errno == errno.EAGAIN
    assert failed.value.strerror == "read would block" and failed.value.__cause__ is None


def test_devices_are_refused_with_the_reason() -> None:
    with pytest.raises(FileRefused) as refused:
        read_small_file("/dev/null", 10)
    assert str(refused.value) == "not a regular file (a FIFO, socket or device?)"


def test_a_fifo_without_a_writer_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | bytes] = []

    def read() -> None:
        try:
            outcome.append(read_small_file(str(fifo), 10))
        except BaseException as exc:  # asserted below
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(GUARD)
    blocked = reader.is_alive()
    if blocked:  # the open waits for a writer: give it one so that the thread ends
        with open(fifo, "wb"):
            pass
        reader.join(GUARD)
    assert not blocked, "opening a FIFO without a writer blocked"
    assert isinstance(outcome[0], FileRefused)


# ------------------------------------------------------------------------------------------------ token files


def test_a_token_file_is_stripped_and_masked(tmp_path: Path, masked: list[str]) -> None:
    path = tmp_path / "token"
    path.write_bytes("  jwt-header.payload.sig-é \n".encode())
    assert read_token_file("oidc", str(path)) == "jwt-header.payload.sig-é"
    assert masked == ["jwt-header.payload.sig-é"]


@pytest.mark.parametrize(
    ("make", "step"),
    [
        (lambda p: p / "missing", "OIDC token file not readable: {path} (FileNotFoundError)"),
        (lambda p: p, "OIDC token file refused: {path}: not a regular file (a FIFO, socket or device?)"),
        (lambda p: (p / "blank").write_bytes(b" \n\t") and p / "blank", "OIDC token file is empty: {path}"),
        (
            lambda p: (p / "latin").write_bytes(b"\xff\xfe") and p / "latin",
            "OIDC token file not readable: {path} (UnicodeDecodeError)",
        ),
    ],
    ids=["missing", "a directory", "blank", "not UTF-8"],
)
def test_a_token_file_that_cannot_serve_names_source_and_path(
    tmp_path: Path, make: Callable[[Path], Path], step: str
) -> None:
    path = make(tmp_path)
    with pytest.raises(CredentialSourceError) as caught:
        read_token_file("oidc_role_arn", str(path))
    err = caught.value
    assert err.source == "oidc_role_arn" and err.step == step.format(path=path)
    assert str(err) == f"credential source oidc_role_arn: {step.format(path=path)}"
    assert err.retryable is False and err.http_status == 0 and err.__cause__ is None


# ------------------------------------------------------------------------------------------------ digests, URLs


def test_digest_is_a_24_hex_sha256_prefix_of_the_separated_parts() -> None:
    assert digest("secret") == "ed510ed3d92e18632bec20bc"
    assert digest(None) == "6e340b9cffb37a989ca544e6"
    assert digest("a", "b") == "8e853bc119674778d099af0a"
    assert digest() == "e3b0c44298fc1c149afbf4c8"
    assert digest("ab") != digest("a", "b") != digest("a", None, "b")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://ak:secret@sts.example.test:8443/path?Token=x#frag", "https://sts.example.test:8443/path"),
        ("https://sts.example.test", "https://sts.example.test"),
        ("http://[::1]:8080/v1", "http://[::1]:8080/v1"),
        ("sts.example.test/path", "sts.example.test/path"),
        ("https://host:notaport/", "(a URL that cannot be shown)"),
    ],
)
def test_shown_url(url: str, shown: str) -> None:
    assert shown_url(url) == shown


# ------------------------------------------------------------------------------------------------ scrubbing


@pytest.mark.parametrize(
    ("text", "secrets", "shown"),
    [
        ("a secret-value-1 here", ["secret-value-1"], "a *** here"),
        ("abcde stays", ["abcde"], "abcde stays"),  # shorter than 6: not scrubbed
        ("abcdef goes", ["abcdef"], "*** goes"),
        ("none or empty", [None, ""], "none or empty"),
        ("q=a%2Fb%2Bc%3Dd%20e!", ["a/b+c=d e"], "q=***!"),
        ("q=a%2Fb%2Bc%3Dd+e!", ["a/b+c=d e"], "q=***!"),
        ("q=a%252Fb%252Bc%253Dd%2520e!", ["a/b+c=d e"], "q=***!"),
        ("abzzzzzzcd", ["zzzzzz", "abzzzzzzcd"], "***"),  # the longest form first
        ("msg abcdefghi...", ["abcdefghij"], "msg ***..."),  # cut one short of the whole secret
        ("msg abcdefgh...", ["abcdefghij"], "msg ***..."),
        ("msg abcd...", ["abcdefghij"], "msg ***..."),  # a 4-character start is enough
        ("msg abc...", ["abcdefghij"], "msg abc..."),  # 3 is not
        ("msg abcdefg", ["abcdefghij"], "msg ***"),  # cut without the dots
        ("msg abcdefghij...", ["abcdefghij"], "msg ***..."),
    ],
)
def test_scrub(text: str, secrets: list[str | None], shown: str) -> None:
    assert scrub(text, secrets) == shown


def test_an_error_scrubbed_in_place_updates_its_step_message_and_text() -> None:
    err = CredentialSourceError("oidc", "server said token-secret-1", status_code=403, request_id="r-9")
    assert err.scrub(["token-secret-1"]) is err
    assert err.step == "server said ***" and err.message == "credential source oidc: server said ***"
    assert str(err) == "credential source oidc: server said *** (HTTP 403, request id r-9)"
    unchanged = CredentialSourceError("oidc", "nothing secret")
    assert str(unchanged.scrub(["token-secret-1"])) == "credential source oidc: nothing secret"


# ------------------------------------------------------------------------------------------------ errors


def test_credential_source_error_defaults_and_rendering() -> None:
    plain = CredentialSourceError("ecs_ram_role", "metadata token empty")
    assert (plain.http_status, plain.attempts, plain.code, plain.request_id) == (0, 1, None, None)
    assert plain.retryable is False and str(plain) == "credential source ecs_ram_role: metadata token empty"
    full = CredentialSourceError(
        "oidc", "AssumeRole failed", status_code=503, code="Throttling", request_id="r-1", attempts=3
    )
    assert full.retryable is True and full.attempts == 3
    assert (
        str(full) == "credential source oidc: AssumeRole failed (HTTP 503, Throttling, request id r-1) after 3 attempts"
    )
    assert str(CredentialSourceError("oidc", "x", attempts=2)) == "credential source oidc: x after 2 attempts"
    assert str(CredentialSourceError("oidc", "gave up after 2 attempt(s)", attempts=2)).endswith("attempt(s)")
    assert CredentialSourceError("oidc", "x", status_code=403).retryable is False
    assert CredentialSourceError("oidc", "x", status_code=503, retryable=False).retryable is False


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers or {})


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"<html>", "the answer is not JSON"), (b"[" * 100_000, "the answer is JSON nested too deeply to read")],
    ids=["not JSON", "too deep"],
)
@pytest.mark.parametrize(
    ("headers", "rid"),
    [({"x-request-id": "r-1"}, "r-1"), ({"x-acs-request-id": "acs-2"}, "acs-2"), ({}, None)],
    ids=["x-request-id", "x-acs-request-id", "none"],
)
def test_parse_json_answer_errors(body: bytes, problem: str, headers: dict[str, str], rid: str | None) -> None:
    assert parse_json_answer("oidc", "AssumeRole", _response(200, b'{"a": 1}')) == {"a": 1}
    with pytest.raises(CredentialSourceError) as caught:
        parse_json_answer("oidc", "AssumeRole", _response(200, body, headers))
    err = caught.value
    assert (err.source, err.step, err.http_status, err.request_id) == ("oidc", f"AssumeRole: {problem}", 200, rid)


# ------------------------------------------------------------------------------------------------ flows


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class SigningAuth(httpx.Auth):
    """An auth holding base secrets under the attribute names the core reads (as the signers do)."""

    def __init__(self, prefix: str) -> None:
        self._secret = f"{prefix}-secret-1"
        self._token = f"{prefix}-token-1"
        self._sk = f"{prefix}-sk-0001"
        self._security_token = f"{prefix}-sectok-1"


def transport(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    auth: httpx.Auth | None = None,
    attempts: int = 1,
    **kwargs: Any,
) -> RegistryTransport:
    return RegistryTransport(
        vendor="pai",
        base_url="https://sts.example.test",
        auth=auth or httpx.Auth(),
        retry=RetryPolicy(max_attempts=attempts, base_delay=0.0, min_delay=0.0, max_delay=0.0),
        transport=httpx.MockTransport(handler),
        async_transport=httpx.MockTransport(handler),
        sleep=lambda seconds: None,
        **kwargs,
    )


class Source:
    """A one-call source: each answer's JSON is a key (``Id``, ``Secret``, ``Token``, ``Expiration`` in seconds from
    the clock), or an error."""

    name = "fake_role"

    def __init__(self, clock: Clock, handler: Callable[[httpx.Request], httpx.Response] | None = None) -> None:
        self.clock = clock
        self.issued = 0
        self.lifetime = 3600.0
        self.transport = transport(handler or self.answer)
        self.call = Call(self.transport, "POST", "/issue?Action=Issue", content=b"{}", step="Issue", service="STS")

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.issued += 1
        return httpx.Response(
            200,
            json={
                "Id": f"STS.key{self.issued}",
                "Secret": f"issued-secret-{self.issued}",
                "Token": f"issued-token-{self.issued}",
            },
        )

    def cache_key(self) -> str:
        return "role-a"

    def flow(self) -> CredentialFlow:
        response = yield self.call
        body = base.parse_json_answer(self.name, "Issue", response)
        return TemporaryKey(
            access_key_id=body["Id"],
            access_key_secret=body["Secret"],
            security_token=body["Token"],
            expires_at=self.clock.now + timedelta(seconds=self.lifetime),
            issued_at=self.clock.now,
            source=self.name,
        )


def _error(status: int, message: str, **extra: str) -> httpx.Response:
    return httpx.Response(status, json={"Code": "Denied", "Message": message, "RequestId": "r-7", **extra})


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_failed_call_names_source_step_service_url_and_the_answer(mode: str) -> None:
    source = Source(Clock(), lambda request: _error(503, "busy"))
    source.transport = transport(lambda request: _error(503, "busy"), attempts=2)
    source.call = Call(source.transport, "POST", "/issue?Action=Issue", step="Issue", service="STS")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source) if mode == "sync" else asyncio.run(arun_flow(source))
    err = caught.value
    assert err.step.startswith("Issue failed: STS at https://sts.example.test: POST /issue: ")
    assert (err.http_status, err.code, err.request_id, err.attempts, err.retryable) == (503, "Denied", "r-7", 2, True)
    assert str(err).endswith("(HTTP 503, Denied, request id r-7) after 2 attempts")


def test_a_call_without_step_or_service_is_named_by_its_target() -> None:
    source = Source(Clock(), lambda request: _error(403, "no"))
    source.call = Call(source.transport, "GET", "/meta?x=1")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    assert caught.value.step.startswith("/meta?x=1 failed: service at https://sts.example.test: GET /meta: ")
    assert caught.value.retryable is False


def _refused(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused")


def _reset(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadError("peer reset the stream")


@pytest.mark.parametrize(
    ("handler", "cause"),
    [
        (_refused, "no answer after 2 attempt(s): connection refused (ConnectError: [Errno 111] Connection refused)"),
        (_reset, "no answer after 2 attempt(s): ReadError: peer reset the stream"),
    ],
    ids=["refused", "reset"],
)
def test_no_answer_is_retryable_and_says_how_many_attempts(handler: Any, cause: str) -> None:
    source = Source(Clock())
    source.transport = transport(handler, attempts=2)
    source.call = Call(source.transport, "POST", "/issue", step="Issue", service="STS")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    err = caught.value
    assert err.step == f"Issue failed: STS at https://sts.example.test: POST /issue: {cause}"
    assert (err.http_status, err.code, err.request_id, err.attempts, err.retryable) == (0, None, None, 2, True)
    assert "HTTP" not in str(err)


def test_an_unreadable_answer_is_named_by_field_and_problem() -> None:
    source = Source(Clock())
    source.transport = transport(lambda request: httpx.Response(200, content=b"x" * 100), max_response_bytes=10)
    source.call = Call(source.transport, "POST", "/issue", step="Issue", service="STS")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    err = caught.value
    assert err.step == (
        "Issue failed: STS at https://sts.example.test: POST /issue: unreadable answer: body: larger than "
        "max_response_bytes (10 bytes, decoded)"
    )
    assert (err.attempts, err.http_status, err.retryable) == (1, 200, False)


def test_a_string_to_sign_in_the_answer_is_not_repeated() -> None:
    source = Source(
        Clock(), lambda request: _error(400, "SignatureDoesNotMatch: server string to sign is 'POST&%2F&x'")
    )
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    assert caught.value.step.endswith("SignatureDoesNotMatch: (the service's string to sign is not repeated)")


def test_the_call_is_sent_as_described() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return (
            httpx.Response(503)
            if len(seen) == 1
            else httpx.Response(200, json={"Id": "k", "Secret": "s", "Token": "t"})
        )

    source = Source(Clock())
    source.transport = transport(answer, attempts=3)
    source.call = Call(
        source.transport, "POST", "/issue", params=[("Action", "Issue")], content=b"body!", headers={"X-One": "1"},
        step="Issue", retried=False,
    )  # fmt: skip
    with pytest.raises(CredentialSourceError):
        run_flow(source)
    (request,) = seen  # not retried
    assert request.url.params["Action"] == "Issue" and request.content == b"body!" and request.headers["x-one"] == "1"
    seen.clear()
    with pytest.raises(CredentialSourceError):
        asyncio.run(arun_flow(source))
    assert len(seen) == 1 and seen[0].content == b"body!" and seen[0].url.params["Action"] == "Issue"


class SecretSource(Source):
    """A source with secrets of its own, a signed transport, a source inside it, and attributes that are no source."""

    def __init__(self, clock: Clock, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        super().__init__(clock, handler)
        self.transport = transport(handler, auth=SigningAuth("own"))
        self.call = Call(self.transport, "POST", "/issue", step="Issue", service="STS")
        self.inner = Source(clock)
        self.inner.transport = transport(handler, auth=SigningAuth("inner"))
        self.me = self
        self.half = type("Half", (), {"flow": None})()
        self.half.transport = transport(handler, auth=SigningAuth("half"))

    def secrets(self) -> list[str | None]:
        return ["source-own-secret", None]


def test_known_secrets_collects_every_secret_the_source_can_sign_with() -> None:
    source = SecretSource(Clock(), lambda request: httpx.Response(200))
    other = Call(transport(lambda request: httpx.Response(200), auth=SigningAuth("call")), "GET", "/")
    found = base.known_secrets(source, other)
    expected = {"source-own-secret"} | {
        f"{who}-{kind}" for who in ("own", "inner", "call") for kind in ("secret-1", "token-1", "sk-0001", "sectok-1")
    }
    assert set(found) == expected and None not in found
    assert base.flows._transport_secrets(source.transport) == [
        "own-secret-1",
        "own-token-1",
        "own-sk-0001",
        "own-sectok-1",
    ]


def _echo(request: httpx.Request) -> httpx.Response:
    said = "source-own-secret own-secret-1 inner-token-1 call-sk-0001 own-sectok-1"
    return _error(403, said)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_answer_echoing_the_sources_secrets_is_scrubbed(mode: str) -> None:
    source = SecretSource(Clock(), _echo)
    source.call = Call(transport(_echo, auth=SigningAuth("call")), "POST", "/issue", step="Issue", service="STS")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source) if mode == "sync" else asyncio.run(arun_flow(source))
    assert caught.value.step.endswith(": *** *** *** *** ***"), caught.value.step


class RaisingSource(SecretSource):
    """Its call's transport fails with a CredentialSourceError of its own (a base credential that failed)."""

    def flow(self) -> CredentialFlow:
        if False:  # pragma: no cover - a generator that fails at its first step
            yield self.call
        raise CredentialSourceError(self.name, "flow saw source-own-secret and own-secret-1")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_error_made_by_the_flow_is_scrubbed_of_the_sources_secrets(mode: str) -> None:
    source = RaisingSource(Clock(), _echo)
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source) if mode == "sync" else asyncio.run(arun_flow(source))
    assert caught.value.step == "flow saw *** and ***"


def test_a_credential_error_from_a_nested_credential_keeps_its_own_words_scrubbed() -> None:
    call_auth = SigningAuth("call")

    class Failing(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Any:
            raise CredentialSourceError("base", "base key refused: source-own-secret call-secret-1 own-secret-1")
            yield request  # pragma: no cover

    source = SecretSource(Clock(), _echo)
    failing = transport(_echo, auth=Failing())
    failing.auth._secret = call_auth._secret  # type: ignore[attr-defined]
    source.call = Call(failing, "POST", "/issue", step="Issue", service="STS")
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    assert caught.value.source == "base" and caught.value.step == "base key refused: *** *** ***"


# ------------------------------------------------------------------------------------------------ arrival, spacing


class Scripted(Source):
    """Keys whose expiry (seconds from the clock's now) is scripted: ``lifetimes`` is consumed one per request."""

    def __init__(self, clock: Clock, lifetimes: list[float]) -> None:
        super().__init__(clock)
        self.lifetimes = lifetimes

    def flow(self) -> CredentialFlow:
        response = yield self.call
        body = base.parse_json_answer(self.name, "Issue", response)
        return TemporaryKey(
            access_key_id=body["Id"],
            access_key_secret=body["Secret"],
            security_token=body["Token"],
            expires_at=self.clock.now + timedelta(seconds=self.lifetimes.pop(0)),
            issued_at=self.clock.now - timedelta(hours=1),
            source=self.name,
        )


def _stale_text(expires: str, state: str, now: str) -> str:
    return (
        f"the key obtained expires at {expires}, {state} by this machine's clock ({now}): check the clock (a clock "
        "running ahead, or a service handing out stale keys)"
    )


@pytest.mark.parametrize(
    ("lifetime", "state"),
    [
        (-10.0, "already expired 10 s ago"),
        (0.0, "already expired "),  # (shown as "-0 s ago")
        (0.5, "expiring in 0 s, inside the renewal margin"),
        (200.0, "expiring in 200 s, inside the renewal margin"),
    ],
)
def test_a_key_arriving_unusable_is_refused_naming_both_times(lifetime: float, state: str) -> None:
    clock = Clock()
    credential = RefreshingCredential(Scripted(clock, [lifetime]), clock=clock)
    with pytest.raises(CredentialSourceError) as caught:
        credential.get()
    expires = (T0 + timedelta(seconds=lifetime)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if state.endswith(" "):
        assert caught.value.step.startswith(f"the key obtained expires at {expires}, {state}")
    else:
        assert caught.value.step == _stale_text(expires, state, "2026-11-30T12:00:00Z")
    assert caught.value.source == "fake_role" and caught.value.retryable is False
    assert credential.fetch_count == 0 and credential.current is None


def test_the_arrival_message_shows_the_clock_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    try:
        clock = Clock()
        clock.now = T0.astimezone(timezone(timedelta(hours=8)))
        credential = RefreshingCredential(Scripted(clock, [-10.0]), clock=clock)
        with pytest.raises(CredentialSourceError) as caught:
            credential.get()
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "by this machine's clock (2026-11-30T12:00:00Z)" in caught.value.step


def test_unusable_arrivals_space_the_next_requests_doubling_to_300_s(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    source = Scripted(clock, [-1.0] * 7 + [3600.0, -1.0])
    credential = RefreshingCredential(source, clock=clock)
    started = clock.now
    spacings = []
    for _ in range(6):
        with caplog.at_level(logging.ERROR, logger="airflow_provider_modelreg.credentials.base"):
            caplog.clear()
            with pytest.raises(CredentialSourceError) as first:
                credential.get()
        (record,) = [r for r in caplog.records if r.name == "airflow_provider_modelreg.credentials.base"]
        asked = source.issued
        spacing = float(record.getMessage().rsplit("for ", 1)[1].removesuffix(" s"))
        assert record.getMessage() == f"{first.value}; the fake_role source is not asked again for {spacing:.0f} s"
        spacings.append(spacing)
        clock.now += timedelta(seconds=spacing - 0.5)
        with pytest.raises(CredentialSourceError) as repeated:  # inside the spacing: not asked, said again
            credential.get()
        assert source.issued == asked
        assert repeated.value.step == first.value.step + " (not asked again before the spacing ends)"
        assert repeated.value.source == "fake_role" and repeated.value.retryable is False
        clock.now += timedelta(seconds=0.5)  # exactly at its end: asked again
    assert spacings == [30, 60, 120, 240, 300, 300]
    assert clock.now - started == timedelta(seconds=1050)
    with pytest.raises(CredentialSourceError):
        credential.get()  # the 7th refusal
    clock.now += timedelta(seconds=300)
    assert credential.get().access_key_id == "STS.key8"  # a good key ends the spacing ...
    clock.now += timedelta(hours=2)
    with caplog.at_level(logging.ERROR, logger="airflow_provider_modelreg.credentials.base"):
        caplog.clear()
        with pytest.raises(CredentialSourceError):
            credential.get()
    assert caplog.records[-1].getMessage().endswith("not asked again for 30 s")  # ... and starts it afresh


def test_during_the_spacing_a_still_valid_key_serves_unless_it_was_refused() -> None:
    clock = Clock()
    source = Scripted(clock, [3600.0, 100.0, 3600.0])
    credential = RefreshingCredential(source, clock=clock)
    first = credential.get()
    clock.now += timedelta(seconds=3400)  # 200 s left: inside the margin, renewed ... into a key inside it
    assert credential.get() is first  # the renewal arrived unusable: the valid key serves
    assert source.issued == 2
    assert credential.get() is first and source.issued == 2  # spacing: not asked
    with pytest.raises(CredentialSourceError, match="not asked again before the spacing ends"):
        credential.get(failed=first)  # a refused key cannot serve
    assert source.issued == 2


def test_without_a_key_the_spacing_error_is_raised() -> None:
    clock = Clock()
    credential = RefreshingCredential(Scripted(clock, [-5.0]), clock=clock)
    with pytest.raises(CredentialSourceError):
        credential.get()
    with pytest.raises(CredentialSourceError, match="not asked again before the spacing ends"):
        asyncio.run(credential.aget())


# ------------------------------------------------------------------------------------------------ stale fallback


def test_a_failed_renewal_keeps_the_key_for_a_quarter_of_what_is_left(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    answers: list[httpx.Response] = []
    source = Source(clock)
    source.transport = transport(lambda request: answers.pop(0))
    source.call = Call(source.transport, "POST", "/issue", step="Issue", service="STS")
    credential = RefreshingCredential(source, clock=clock)
    answers.append(httpx.Response(200, json={"Id": "STS.key1", "Secret": "issued-secret-1", "Token": "issued-token-1"}))
    first = credential.get()
    clock.now = T0 + timedelta(seconds=3600 - 20)  # 20 s left: renewed; the failure keeps it 5 s
    answers.append(_error(503, "busy, key issued-secret-1"))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_modelreg.credentials.base"):
        assert credential.get() is first
    (record,) = [r for r in caplog.records if r.name == "airflow_provider_modelreg.credentials.base"]
    assert record.getMessage().startswith(
        f"Renewing the fake_role credential failed; the current one is used until {first.expires_at.isoformat()}: "  # type: ignore[union-attr]
    )
    assert record.getMessage().endswith(
        "credential source fake_role: Issue failed: STS at https://sts.example.test: POST /issue: busy, key *** "
        "(HTTP 503, Denied, request id r-7)"
    )
    clock.now += timedelta(seconds=4.9)
    assert credential.get() is first and not answers  # quiet: not asked
    clock.now += timedelta(seconds=0.1)  # exactly at its end: asked again
    answers.append(httpx.Response(200, json={"Id": "STS.key2", "Secret": "issued-secret-2", "Token": "issued-token-2"}))
    assert credential.get().access_key_id == "STS.key2"


def answers_from(answers: list[httpx.Response]) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: answers.pop(0)


def test_the_quiet_time_is_at_least_1_s_and_at_most_30_s() -> None:
    for left, quiet in [(2.0 + 5, 1.75), (200.0, 30.0)]:
        clock = Clock()
        answers: list[httpx.Response] = []
        source = Source(clock)
        source.transport = transport(answers_from(answers))
        source.call = Call(source.transport, "POST", "/issue", step="Issue", service="STS")
        credential = RefreshingCredential(source, clock=clock)
        answers.append(httpx.Response(200, json={"Id": "STS.key1", "Secret": "issued-secret-1", "Token": "t-1"}))
        first = credential.get()
        clock.now = T0 + timedelta(seconds=3600 - left)
        answers.append(_error(503, "busy"))
        assert credential.get() is first
        clock.now += timedelta(seconds=quiet - 0.01)
        assert credential.get() is first and not answers
        clock.now += timedelta(seconds=0.01)
        answers.append(_error(503, "busy"))
        credential.get()
        assert not answers  # asked again at the end of the quiet time


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_refused_key_is_no_fallback_when_its_renewal_fails(mode: str) -> None:
    clock = Clock()
    answers: list[httpx.Response] = []
    source = Source(clock)
    source.transport = transport(lambda request: answers.pop(0))
    source.call = Call(source.transport, "POST", "/issue", step="Issue", service="STS")
    credential = RefreshingCredential(source, clock=clock)
    answers.append(httpx.Response(200, json={"Id": "STS.key1", "Secret": "issued-secret-1", "Token": "t-1"}))
    first = credential.get()
    answers.append(_error(503, "busy"))
    with pytest.raises(CredentialSourceError):
        credential.get(failed=first) if mode == "sync" else asyncio.run(credential.aget(failed=first))


def test_async_renewal_masks_both_secrets_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.providers.common.compat.sdk as compat_sdk

    masked: list[tuple[str, int]] = []
    monkeypatch.setattr(
        compat_sdk, "mask_secret", lambda value, name=None: masked.append((value, threading.get_ident()))
    )
    credential = RefreshingCredential(Source(Clock()), clock=Clock())

    async def get() -> int:
        await credential.aget()
        return threading.get_ident()

    loop = asyncio.run(get())
    assert sorted(value for value, _ in masked) == ["issued-secret-1", "issued-token-1"]
    assert all(thread != loop for _, thread in masked)


# ------------------------------------------------------------------------------------------------ keys, sharing


def test_needs_refresh_margins() -> None:
    long = TemporaryKey("id", "s", expires_at=T0 + timedelta(hours=2), issued_at=T0)
    assert long.needs_refresh(T0 + timedelta(hours=2) - timedelta(seconds=300.5)) is False  # the 300 s cap
    assert long.needs_refresh(T0 + timedelta(hours=2) - timedelta(seconds=300)) is False  # exactly: not less
    assert long.needs_refresh(T0 + timedelta(hours=2) - timedelta(seconds=299.5)) is True
    undated = TemporaryKey("id", "s", expires_at=T0)  # no issue time: an hour's lifetime is assumed
    assert undated.needs_refresh(T0 - timedelta(seconds=299)) is True
    assert undated.needs_refresh(T0 - timedelta(seconds=301)) is False
    odd = TemporaryKey("id", "s", expires_at=T0, issued_at=T0 + timedelta(hours=1))  # issued "after" it expires
    assert odd.needs_refresh(T0 - timedelta(seconds=0.1)) is False  # no margin at all
    assert TemporaryKey("id", "s").needs_refresh(T0) is False


def test_usable_keeps_a_slack_of_5_s() -> None:
    key = TemporaryKey("id", "s", expires_at=T0)
    assert key.usable(T0 - timedelta(seconds=5.5)) is True
    assert key.usable(T0 - timedelta(seconds=5)) is False
    assert key.usable(T0 - timedelta(seconds=1), slack=0.5) is True
    assert TemporaryKey("id", "s").usable(T0) is True


def test_shared_credentials_take_the_clock_and_tell_source_classes_apart() -> None:
    clock = Clock()
    source = Source(clock)
    credential = shared_credential(source, clock=clock)
    credential.get()
    clock.now = T0 + timedelta(seconds=3600 - 100)  # by the given clock: inside the margin
    assert credential.get().access_key_id == "STS.key2"
    same_name = type("Source", (Source,), {"__module__": "elsewhere"})
    other_name = type("Other", (Source,), {"__module__": Source.__module__})
    twin = same_name(clock)
    twin.transport, twin.call = source.transport, source.call
    other = other_name(clock)
    other.transport, other.call = source.transport, source.call
    assert shared_credential(twin) is not credential
    assert shared_credential(other) is not credential
    assert shared_credential(other) is shared_credential(other)


def test_request_settings_of_nested_sources_and_transports_tell_credentials_apart() -> None:
    def outer(inner_proxy: str | None, given: Any = None) -> Source:
        made = Source(Clock())
        made.inner = Source(Clock())  # type: ignore[attr-defined]
        made.inner.transport = transport(lambda request: httpx.Response(200), proxy=inner_proxy)  # type: ignore[attr-defined]
        if given is not None:
            made.transport = given
        return made

    shared_transport = transport(lambda request: httpx.Response(200))
    base_one = shared_credential(outer(None, shared_transport))
    assert shared_credential(outer(None, shared_transport)) is not base_one  # inner transports: other identities
    settings = base.refreshing._transport_settings(outer("http://proxy.example.test:3128", shared_transport))
    assert settings.startswith("inner=(transport=https://sts.example.test|") and ";transport=" in settings
    assert base.digest("http://proxy.example.test:3128") in settings
    assert str(id(shared_transport._given)) in settings and str(id(shared_transport._agiven)) in settings
    assert base.refreshing._transport_settings(object()) == ""  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ file flags


def test_the_file_is_opened_close_on_exec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token file's descriptor never leaks into a process another thread starts meanwhile (Python's os.open makes
    it non-inheritable anyway, PEP 446; O_CLOEXEC says so at the call)."""
    import fcntl

    path = tmp_path / "f"
    path.write_bytes(b"x")
    flags: list[int] = []
    real_fstat = os.fstat

    def fstat(fd: int) -> os.stat_result:
        flags.append(fcntl.fcntl(fd, fcntl.F_GETFD))
        return real_fstat(fd)

    monkeypatch.setattr(os, "fstat", fstat)
    assert read_small_file(str(path), 10) == b"x"
    assert flags and flags[0] & fcntl.FD_CLOEXEC


def test_opening_a_terminal_never_makes_it_the_controlling_one() -> None:
    """A session leader without a controlling terminal (a daemonised worker) that is pointed at a terminal refuses
    it, and does not acquire it as its controlling terminal on the way (O_NOCTTY). Checked in a forked child (the
    read of a plain file first, in this process, lets mutmut see which code this test runs)."""
    assert read_small_file(__file__, 1_000_000).startswith(b'"""')
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 3
        try:
            os.setsid()
            _master, slave = os.openpty()
            name = os.ttyname(slave)
            os.close(slave)
            try:
                read_small_file(name, 10)
                code = 2
            except FileRefused:
                try:
                    os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
                    code = 1  # it became this session's controlling terminal
                except OSError:
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


# ------------------------------------------------------------------------------------------------ more of the core


def test_settings_skip_attributes_that_are_only_half_a_source() -> None:
    source = Source(Clock())
    source.half = type("Half", (), {"flow": None})()  # type: ignore[attr-defined]
    source.half.transport = transport(lambda request: httpx.Response(200), proxy="http://half.example.test:1")  # type: ignore[attr-defined]
    source.keyed = type("Keyed", (), {"cache_key": None})()  # type: ignore[attr-defined]
    source.keyed.transport = transport(lambda request: httpx.Response(200))  # type: ignore[attr-defined]
    settings = base.refreshing._transport_settings(source)
    assert settings.startswith("transport=https://sts.example.test|") and "half=" not in settings
    assert "keyed=" not in settings and ";" not in settings


def test_a_credential_without_a_clock_reads_the_utc_clock() -> None:
    clock = Clock()
    clock.now = datetime.now(timezone.utc)
    credential = RefreshingCredential(Source(clock))
    first = credential.get()
    assert credential.get() is first  # compared with an aware now: still fresh


def test_an_invalid_request_of_a_flow_is_named_too() -> None:
    source = Source(Clock())
    source.call = Call(source.transport, "GET", "/issue", params=[("n", 5)], step="Issue", service="STS")  # type: ignore[list-item]
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    err = caught.value
    assert err.step.startswith("Issue failed: STS at https://sts.example.test: GET /issue: invalid n: must be a string")
    assert (err.http_status, err.request_id, err.attempts, err.retryable) == (0, None, 1, False)


def test_known_secrets_of_a_source_without_attributes() -> None:
    class Slotted:
        __slots__ = ()
        name = "slotted"

        def flow(self) -> CredentialFlow:  # pragma: no cover - never run
            raise NotImplementedError
            yield

        def cache_key(self) -> str:  # pragma: no cover - never run
            return "s"

    assert base.known_secrets(Slotted()) == []


def test_a_still_valid_key_serves_during_the_spacing_after_the_quiet_time() -> None:
    clock = Clock()
    source = Scripted(clock, [3600.0, 100.0])
    credential = RefreshingCredential(source, clock=clock)
    first = credential.get()
    clock.now = T0 + timedelta(seconds=3600 - 40)  # 40 s left: quiet for 10 s, spaced for 30 s
    assert credential.get() is first and source.issued == 2
    clock.now += timedelta(seconds=15)  # quiet over, spacing on, 25 s left
    assert credential.get() is first and source.issued == 2
    with pytest.raises(CredentialSourceError, match="not asked again before the spacing ends"):
        credential.get(failed=first)


class GateClock:
    """A clock counting its reads, so that a held answer can wait until every caller has decided."""

    def __init__(self) -> None:
        self.now = T0
        self.reads = 0
        self.changed = threading.Condition()

    def __call__(self) -> datetime:
        with self.changed:
            self.reads += 1
            self.changed.notify_all()
            return self.now

    def wait_reads(self, count: int) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: self.reads >= count, GUARD)


class Stop(BaseException):
    """Not an Exception: a leader interrupted (as by a cancellation or an exit)."""


def _two_callers(credential: RefreshingCredential) -> tuple[Any, Any]:
    results: list[Any] = [None, None]

    def call(index: int) -> None:
        try:
            results[index] = credential.get()
        except BaseException as exc:  # asserted by the caller
            results[index] = exc

    threads = [threading.Thread(target=call, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(GUARD)
    assert not any(thread.is_alive() for thread in threads)
    return results[0], results[1]


def _gated_source(clock: GateClock, answers: list[Callable[[], httpx.Response]], hold_reads: int) -> Source:
    source = Source(clock)  # type: ignore[arg-type]
    held = [False]

    def answer(request: httpx.Request) -> httpx.Response:
        if not held[0]:
            held[0] = True
            assert clock.wait_reads(hold_reads)  # both callers have decided: one leads, one waits
        return answers.pop(0)()

    source.transport = transport(answer)
    source.call = Call(source.transport, "POST", "/issue", step="Issue", service="STS")
    return source


def _key(n: int) -> Callable[[], httpx.Response]:
    return lambda: httpx.Response(200, json={"Id": f"STS.key{n}", "Secret": f"issued-secret-{n}", "Token": f"t-{n}"})


def _fail() -> httpx.Response:
    return _error(503, "busy")


def _stop() -> httpx.Response:
    raise Stop


def test_a_waiter_gets_the_kept_key_when_the_renewal_fails() -> None:
    clock = GateClock()
    answers = [_key(1), _fail]
    credential = RefreshingCredential(_gated_source(clock, answers, 0), clock=clock)
    first = credential.get()
    clock.now = T0 + timedelta(seconds=3600 - 20)
    source = _gated_source(clock, answers, clock.reads + 2)
    credential.source = source
    assert _two_callers(credential) == (first, first)


def test_a_waiter_shares_the_renewals_error() -> None:
    clock = GateClock()
    answers = [_fail, _fail]
    credential = RefreshingCredential(_gated_source(clock, answers, 2), clock=clock)
    one, two = _two_callers(credential)
    assert isinstance(one, CredentialSourceError) and isinstance(two, CredentialSourceError)
    assert len(answers) == 1  # one request for both


def test_a_waiter_whose_leader_was_interrupted_renews_itself() -> None:
    clock = GateClock()
    answers = [_stop, _key(1)]
    credential = RefreshingCredential(_gated_source(clock, answers, 2), clock=clock)
    results = _two_callers(credential)
    assert sorted(type(r).__name__ for r in results) == ["Stop", "TemporaryKey"]
    assert not answers and credential.fetch_count == 1


def test_a_secret_across_the_length_cap_leaves_no_remnant() -> None:
    """The answer is scrubbed before the error is cut to its 500 characters: a secret of the source that the cut
    would split (leaving a start too short to recognise) is gone whole."""
    prefix = "Issue failed: STS at https://sts.example.test: POST /issue: "
    message = "x" * (495 - len(prefix)) + "source-own-secret" + "y" * 10

    def answer(request: httpx.Request) -> httpx.Response:
        return _error(403, message)

    source = SecretSource(Clock(), answer)
    with pytest.raises(CredentialSourceError) as caught:
        run_flow(source)
    step = caught.value.step
    assert step.startswith(prefix) and len(step) == 500 and step.endswith("...")
    assert "so..." not in step and "sou" not in step
