"""The transport against hostile servers and networks, over real HTTP on 127.0.0.1.

Each server is a few lines of asyncio in a background thread: trickling bytes, silence, gzip bombs, deep JSON,
throttling with ``Retry-After`` 0/-1/nan, newlines in error text; a TLS server with a private CA; a forward/CONNECT
proxy that records what it is asked. Credentials with CR/LF or non-ASCII characters, plain http to a remote host,
IAM faults and token masking, a hook reused across event loops. Timing is only ever checked as a generous upper
bound.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ipaddress
import json
import logging
import ssl
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import IAM_PASSWORD, PAI_SECRET, build_seed, fabric_conn, pai_conn

from airflow_provider_modelreg.auth import AcsV3Auth
from airflow_provider_modelreg.errors import (
    RegistryConnectionConfigError,
    RegistryInputError,
    RegistryInvalidRequestError,
    RegistryResponseError,
    RegistryServerError,
    RegistryThrottledError,
    RegistryTransportError,
)
from airflow_provider_modelreg.hooks import base as hook_base
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.transport import (
    Failure,
    RegistryTransport,
    RetryPlan,
    RetryPolicy,
    environment_proxy,
    is_loopback,
)

OK_VERSION = json.dumps({"VersionName": "1.0.0", "ApprovalStatus": "Approved", "RequestId": "rid-ok"}).encode()
FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, min_delay=0.01)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# ------------------------------------------------------------------------------------------------ tiny servers


class Server:
    """An asyncio TCP server on 127.0.0.1 in a daemon thread; ``connections`` counts accepted connections."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._ssl = ssl_context
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError):
                pass
            finally:
                writer.close()

        server = self._loop.run_until_complete(asyncio.start_server(serve, "127.0.0.1", 0, ssl=self._ssl))
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def make(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> Server:
        server = Server(handler, ssl_context)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def answer(status: int, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def responder(
    status: int, body: bytes, headers: dict[str, str] | None = None, log: list[bytes] | None = None
) -> Handler:
    """Answer every request on the connection the same way (keep-alive)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader)
            if log is not None:
                log.append(head)
            writer.write(answer(status, body, headers))
            await writer.drain()

    return handle


def pai_hook(monkeypatch: pytest.MonkeyPatch, url: str, **kwargs: Any) -> PaiModelRegistryHook:
    pai_conn(monkeypatch, url)
    return PaiModelRegistryHook(**kwargs)


def run(mode: str, hook: PaiModelRegistryHook) -> Any:
    if mode == "sync":
        return hook.get_model_version("m-1", "1.0.0")

    async def go() -> Any:
        try:
            return await hook.aget_model_version("m-1", "1.0.0")
        finally:
            await hook.aclose()

    return asyncio.run(go())


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ------------------------------------------------------------------------------------------------ deadlines


async def trickle_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 60\r\n\r\n")
    for _ in range(60):  # 60 bytes, one every 0.25 s: 15 s in all
        await writer.drain()
        writer.write(b" ")
        await asyncio.sleep(0.25)


async def trickle_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 60:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.25)


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_request(reader)
    await asyncio.sleep(60)


@pytest.mark.parametrize("handler", [trickle_body, trickle_headers, silent], ids=["body", "headers", "silent"])
def test_a_trickling_or_silent_server_cannot_outlast_the_call_deadline(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, mode: str, handler: Handler
) -> None:
    server = serve(handler)
    hook = pai_hook(monkeypatch, server.url, retry=FAST, attempt_timeout=0.6, call_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(RegistryTransportError) as err:
        run(mode, hook)
    assert time.monotonic() - started < 6.0  # generous: the call deadline is 1.5 s
    assert "deadline exceeded" in str(err.value)
    assert 1 <= server.connections <= 3


def test_deadlines_come_from_the_connection_extras(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(silent)
    pai_conn(monkeypatch, server.url, attempt_timeout="0.5", call_timeout=1, max_attempts=2)
    transport = PaiModelRegistryHook().transport
    assert (transport.retry.attempt_timeout, transport.retry.call_timeout, transport.retry.max_attempts) == (0.5, 1, 2)
    started = time.monotonic()
    with pytest.raises(RegistryTransportError):
        PaiModelRegistryHook().get_model_version("m-1", "1.0.0")
    assert time.monotonic() - started < 5.0


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"attempt_timeout": "soon"}, "attempt_timeout"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"max_response_bytes": 10}, "max_response_bytes"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"proxy": "socks5://p:1080"}, "proxy"),
        ({"ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle"),
    ],
)
def test_bad_transport_extras_are_refused(monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], field: str) -> None:
    pai_conn(monkeypatch, "http://127.0.0.1:9", **extra)
    with pytest.raises(RegistryConnectionConfigError) as err:
        PaiModelRegistryHook().transport  # noqa: B018
    assert err.value.field == field


def test_hook_arguments_override_the_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    pai_conn(monkeypatch, "http://127.0.0.1:9", attempt_timeout=50, call_timeout=100, max_response_bytes=4096)
    transport = PaiModelRegistryHook(attempt_timeout=2, call_timeout=7, max_response_bytes=2048).transport
    assert (transport.retry.attempt_timeout, transport.retry.call_timeout) == (2, 7)
    assert transport.max_response_bytes == 2048
    with pytest.raises(RegistryInputError):
        PaiModelRegistryHook(call_timeout=-1)


# ------------------------------------------------------------------------------------------------ size cap


def gzip_bomb(decoded_mb: int) -> bytes:
    return gzip.compress(b"\0" * (decoded_mb * 1024 * 1024), compresslevel=9)


def test_a_gzip_bomb_stops_at_the_cap(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    bomb = gzip_bomb(64)
    assert len(bomb) < 1024 * 1024
    server = serve(responder(200, bomb, {"Content-Encoding": "gzip", "x-acs-request-id": "rid-bomb"}))
    hook = pai_hook(monkeypatch, server.url, retry=FAST, max_response_bytes=4 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(RegistryResponseError) as err:
            run(mode, hook)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "max_response_bytes" in err.value.problem
    assert err.value.request_id == "rid-bomb"
    assert server.connections == 1  # not retried
    assert peak < 24 * 1024 * 1024  # a 4 MiB cap, never the 64 MiB body


def test_a_large_plain_body_is_refused(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    big = b"[" + b"1," * (3 * 1024 * 1024) + b"1]"
    server = serve(responder(200, big))
    hook = pai_hook(monkeypatch, server.url, max_response_bytes=1024 * 1024)
    with pytest.raises(RegistryResponseError, match="max_response_bytes"):
        hook.get_model_version("m-1", "1.0.0")


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "identity"])
def test_bodies_under_the_cap_decode(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, mode: str, encoding: str
) -> None:
    import zlib

    body, header = OK_VERSION, encoding
    if encoding == "gzip":
        body = gzip.compress(OK_VERSION)
    elif encoding == "deflate":
        body = zlib.compress(OK_VERSION)
    elif encoding == "deflate-raw":
        compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body, header = compressor.compress(OK_VERSION) + compressor.flush(), "deflate"
    server = serve(responder(200, body, {"Content-Encoding": header}))
    assert run(mode, pai_hook(monkeypatch, server.url, max_response_bytes=1024)).version_name == "1.0.0"


# ------------------------------------------------------------------------------------------------ deep JSON


@pytest.mark.parametrize("status", [200, 400, 503])
def test_deeply_nested_json_is_a_typed_error_with_the_request_id(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, mode: str, status: int
) -> None:
    server = serve(responder(status, b"[" * 100_000, {"x-acs-request-id": "rid-deep"}))
    hook = pai_hook(monkeypatch, server.url, retry=FAST)
    with pytest.raises(RegistryResponseError) as err:
        run(mode, hook)
    assert err.value.request_id == "rid-deep"
    assert err.value.http_status == status


def test_deeply_nested_fabric_error_keeps_its_request_id(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = serve(responder(400, b'{"a":' * 50_000, {"X-Request-Id": "hw-deep"}))
    fabric_conn(monkeypatch, server.url)
    with pytest.raises(RegistryResponseError) as err:
        FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.request_id == "hw-deep"


# ------------------------------------------------------------------------------------------------ throttling


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "0.0001"])
def test_retry_after_zero_negative_or_nan_still_backs_off(serve: Callable[..., Server], mode: str, value: str) -> None:
    log: list[bytes] = []
    body = json.dumps({"Code": "Throttling.User", "Message": "slow down", "RequestId": "r"}).encode()
    server = serve(responder(429, body, {"Retry-After": value}, log))
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    transport = RegistryTransport(
        vendor="pai",
        base_url=server.url,
        auth=AcsV3Auth("AK", "SK"),
        retry=RetryPolicy(max_attempts=4),
        sleep=waits.append,
        asleep=record,
    )
    with pytest.raises(RegistryThrottledError):
        if mode == "sync":
            transport.request("GET", "/api/v1/models")
        else:
            asyncio.run(transport.arequest("GET", "/api/v1/models"))
    assert len(log) == 4 and len(waits) == 3
    assert all(wait >= 0.1 for wait in waits), waits  # the floor


RETRY_PLAN_TABLE: list[tuple[str, Failure, int, bool, float | None]] = [
    ("retryable, budget left", Failure("x", True), 1, True, 0.5),
    ("retryable, server asks 3 s", Failure("x", True, 3.0), 1, True, 3.0),
    ("server asks more than max_delay", Failure("x", True, 99.0), 1, True, 20.0),
    ("not retryable", Failure("x", False), 1, True, None),
    ("not idempotent", Failure("x", True), 1, False, None),
    ("budget spent", Failure("x", True), 5, True, None),
]


@pytest.mark.parametrize(
    ("name", "failure", "attempts", "idempotent", "wait"), RETRY_PLAN_TABLE, ids=[r[0] for r in RETRY_PLAN_TABLE]
)
def test_retry_plan_is_plain_data(
    name: str, failure: Failure, attempts: int, idempotent: bool, wait: float | None
) -> None:
    class Top:
        def uniform(self, a: float, b: float) -> float:
            return b

    plan = RetryPlan(RetryPolicy(), idempotent=idempotent, now=0.0, rng=Top())  # type: ignore[arg-type]
    for _ in range(attempts):
        plan.begin(0.0)
    assert plan.after(failure, now=1.0).wait == wait


def test_retry_plan_stops_at_the_call_deadline() -> None:
    plan = RetryPlan(RetryPolicy(call_timeout=10.0), idempotent=True, now=100.0, rng=__import__("random").Random(0))
    assert plan.begin(100.0) == 100.0 + 10.0  # the attempt deadline is cut to the call deadline
    decision = plan.after(Failure("x", True, 5.0), now=106.0)
    assert decision.wait is None and "deadline" in decision.reason
    inner = RetryPlan(RetryPolicy(), idempotent=True, now=0.0, rng=__import__("random").Random(0), outer_deadline=3.0)
    assert inner.begin(0.0) == 3.0  # an IAM fetch inside an attempt keeps to the outer deadline


# ------------------------------------------------------------------------------------------------ messages, logs


def test_server_text_with_newlines_stays_on_one_line(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(
        {"Code": "Bad\nCode", "Message": "nope\n2024-01-01 INFO fake log line\r\n\x1b[31mred", "RequestId": "r\n1"}
    ).encode()
    server = serve(responder(400, body))
    hook = pai_hook(monkeypatch, server.url)
    with pytest.raises(RegistryInvalidRequestError) as err:
        hook.get_model_version("m-1", "1.0.0")
    text = str(err.value)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "fake log line" in text
    ok, message = hook.test_connection()
    assert not ok and "\n" not in message


def test_each_retry_is_logged_at_warning_without_secrets(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    body = json.dumps({"Code": "ServiceUnavailable", "Message": "m", "RequestId": "rid-503"}).encode()
    server = serve(responder(503, body))
    hook = pai_hook(monkeypatch, server.url, retry=FAST)
    with caplog.at_level(logging.DEBUG), pytest.raises(RegistryServerError):
        hook.get_model_version("m-1", "1.0.0")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "attempt" in r.getMessage()]
    assert len(warnings) == 3  # two retries and giving up
    assert "attempt 1/3 failed: HTTP 503 ServiceUnavailable (request id rid-503); retrying in" in warnings[0]
    assert "giving up" in warnings[2]
    assert PAI_SECRET not in caplog.text and "Signature=" not in caplog.text


def test_connection_test_makes_one_short_attempt(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[bytes] = []
    server = serve(responder(503, b'{"Code": "ServiceUnavailable", "Message": "m"}', log=log))
    ok, message = pai_hook(monkeypatch, server.url).test_connection()
    assert not ok and "ServiceUnavailable" in message
    assert len(log) == 1
    monkeypatch.setattr(hook_base, "PROBE_TIMEOUT", 0.5)
    server = serve(silent)
    started = time.monotonic()
    ok, message = pai_hook(monkeypatch, server.url).test_connection()
    assert not ok and "deadline" in message
    assert time.monotonic() - started < 5.0
    assert server.connections == 1


# ------------------------------------------------------------------------------------------------ credentials


BAD_CREDENTIALS: list[tuple[str, dict[str, Any], str]] = [
    ("pai", {"login": "LTAItestKey0001\n"}, "login"),
    ("pai", {"login": "LTAI\r\nX-Injected: 1"}, "login"),
    ("pai", {"password": PAI_SECRET + "\n"}, "password"),
    ("pai", {"security_token": "sts-token\r\n"}, "security_token"),
    ("pai", {"login": "LTAIclé"}, "login"),
    ("pai", {"security_token": "jeton-sécurité"}, "security_token"),
    ("fabric", {"login": "AK\n"}, "login"),
    ("fabric", {"project_id": "proj\n1"}, "project_id"),
    ("fabric", {"project_id": "projé"}, "project_id"),
    ("fabric", {"security_token": "tok\r\nen"}, "security_token"),
    ("fabric", {"auth_type": "token", "password": IAM_PASSWORD + "\n"}, "password"),
]


@pytest.mark.parametrize(
    ("vendor", "extra", "field"), BAD_CREDENTIALS, ids=[f"{b[0]}-{b[2]}-{i}" for i, b in enumerate(BAD_CREDENTIALS)]
)
def test_control_characters_in_credentials_are_refused_when_the_connection_is_read(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, vendor: str, extra: dict[str, Any], field: str
) -> None:
    log: list[bytes] = []
    server = serve(responder(200, OK_VERSION, log=log))
    with pytest.raises(RegistryConnectionConfigError) as err:
        if vendor == "pai":
            pai_conn(monkeypatch, server.url, **extra)
            PaiModelRegistryHook().get_model_version("m-1", "1.0.0")
        else:
            fabric_conn(monkeypatch, server.url, **extra)
            FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1")
    assert err.value.field == field
    assert log == []
    for value in extra.values():
        if field != "project_id":
            assert value.strip() not in str(err.value)


def test_a_header_value_h11_refuses_is_not_retried_and_never_shown(
    serve: Callable[..., Server], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = serve(responder(200, OK_VERSION))
    transport = RegistryTransport(
        vendor="pai", base_url=server.url, auth=AcsV3Auth("LTAIkey\n", "s3cr3t", security_token="tok\r\nen")
    )
    started = time.monotonic()
    with caplog.at_level(logging.DEBUG), pytest.raises(RegistryTransportError) as err:
        if mode == "sync":
            transport.request("GET", "/api/v1/models")
        else:
            asyncio.run(transport.arequest("GET", "/api/v1/models"))
    assert time.monotonic() - started < 2.0  # no backoff: not retried
    assert err.value.attempts == 1
    exposed = str(err.value) + repr(err.value.args) + caplog.text
    assert "Signature=" not in exposed and "tok" not in exposed and "Credential" not in exposed
    assert err.value.__cause__ is None and err.value.__context__ is None


def test_non_ascii_header_value_is_typed(serve: Callable[..., Server]) -> None:
    server = serve(responder(200, OK_VERSION))
    transport = RegistryTransport(vendor="pai", base_url=server.url, auth=AcsV3Auth("LTAIclé", "s3cr3t"))
    with pytest.raises(RegistryTransportError) as err:
        transport.request("GET", "/api/v1/models")
    assert err.value.attempts == 1 and "not ASCII" in str(err.value)


def test_non_string_filters_are_typed_errors(serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch) -> None:
    log: list[bytes] = []
    server = serve(responder(200, OK_VERSION, log=log))
    with pytest.raises(RegistryInputError) as err:
        pai_hook(monkeypatch, server.url).list_models(name_filter=5)  # type: ignore[arg-type]
    assert err.value.field == "ModelName"
    fabric_conn(monkeypatch, server.url)
    with pytest.raises(RegistryInputError) as err:
        FabricModelRegistryHook().list_models(workspace_id="ws-1", name_filter=["a"])  # type: ignore[arg-type]
    assert err.value.field == "name_filter"
    assert log == []


# ------------------------------------------------------------------------------------------------ plain http


@pytest.mark.parametrize(
    ("vendor", "extra", "field"),
    [
        ("pai", {"endpoint": "http://aiworkspace.cn-hangzhou.aliyuncs.com"}, "endpoint"),
        ("pai", {"endpoint": "http://10.0.0.1:8080"}, "endpoint"),
        ("fabric", {"endpoint": "http://fabric.cn-north-4.myhuaweicloud.com"}, "endpoint"),
        ("fabric", {"auth_type": "token", "iam_endpoint": "http://iam.cn-north-4.myhuaweicloud.com"}, "iam_endpoint"),
    ],
)
def test_plain_http_to_a_remote_host_is_refused(
    monkeypatch: pytest.MonkeyPatch, vendor: str, extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(RegistryConnectionConfigError) as err:
        if vendor == "pai":
            pai_conn(monkeypatch, "http://127.0.0.1:9", **extra)
            PaiModelRegistryHook().transport  # noqa: B018
        else:
            fabric_conn(monkeypatch, "http://127.0.0.1:9", **extra)
            FabricModelRegistryHook().transport  # noqa: B018
    assert err.value.field == field
    with pytest.raises(ValueError, match="loopback"):
        RegistryTransport(vendor="pai", base_url="http://example.com", auth=httpx.Auth())


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST.", True), ("10.0.0.1", False), ("example.com", False), ("localhost.example.com", False),
     ("0.0.0.0", False)],
)  # fmt: skip
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ------------------------------------------------------------------------------------------------ IAM


def test_iam_token_is_retried_masked_and_redacted_in_debug_logs(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from modelreg_emulator.faults import FaultInjector

    # A fault seed whose first IAM request fails and second succeeds, and whose first Fabric request succeeds.
    seed = next(
        s
        for s in range(10_000)
        if FaultInjector.uniform(s, "POST", "/v3/auth/tokens", 1)
        < 0.5
        <= FaultInjector.uniform(s, "POST", "/v3/auth/tokens", 2)
        and FaultInjector.uniform(s, "GET", "/v1/workspaces/ws-1/models/fm-1/versions?limit=10&offset=0", 1) >= 0.5
    )
    emu = make_emulator(seed=build_seed(), iam_faults=True, error_rate=0.25, throttle_rate=0.25, random_seed=seed,
                        retry_after_ms=5)  # fmt: skip
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    masked: list[Any] = []
    import airflow.providers.common.compat.sdk as compat_sdk  # where the package imports mask_secret from

    monkeypatch.setattr(compat_sdk, "mask_secret", lambda value, name=None: masked.append(value))
    hook = FabricModelRegistryHook(retry=FAST)
    with caplog.at_level(logging.DEBUG):
        page = hook.list_model_versions_page("fm-1", workspace_id="ws-1")
    assert page.total == 3
    assert emu.request_log.count("iam") == 2  # one fault, one retry
    tokens = list(emu.store.tokens)
    assert len(tokens) == 1 and tokens[0] in masked
    assert "x-subject-token" in caplog.text.lower()  # httpcore did log the header ...
    assert tokens[0] not in caplog.text  # ... with its value redacted
    assert IAM_PASSWORD not in caplog.text


def test_a_hook_survives_two_event_loops(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=build_seed())
    pai_conn(monkeypatch, emu.url)
    fabric_conn(monkeypatch, emu.url, auth_type="token")
    pai = PaiModelRegistryHook()
    fabric = FabricModelRegistryHook()

    async def once() -> None:
        assert (await pai.aget_model_version("m-main", "1.0.0")).version_name == "1.0.0"
        assert (await fabric.alist_model_versions_page("fm-1", workspace_id="ws-1")).total == 3

    asyncio.run(once())
    asyncio.run(once())  # a second loop: the first pool's connections belong to a closed loop


# ------------------------------------------------------------------------------------------------ TLS, proxies


def _cert_pair(tmp: Path) -> tuple[Path, ssl.SSLContext]:
    """A private CA (written to ca.pem) and a server context for registry.test and 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "modelreg test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry.test")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("registry.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = tmp / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp / "server.pem").write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp / "server.pem")
    return ca_path, context


def test_private_ca_bundle_and_an_untrusted_certificate_is_not_retried(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    ca_path, context = _cert_pair(tmp_path)
    server = serve(responder(200, OK_VERSION), ssl_context=context)
    url = f"https://127.0.0.1:{server.port}"
    pai_conn(monkeypatch, url)
    started = time.monotonic()
    with pytest.raises(RegistryTransportError) as err:
        run(mode, PaiModelRegistryHook())  # default trust store: our private CA is unknown
    assert "certificate verification failed" in str(err.value) and "ca_bundle" in str(err.value)
    assert err.value.attempts == 1  # deterministic: not retried
    assert time.monotonic() - started < 3.0
    pai_conn(monkeypatch, url, ca_bundle=str(ca_path))
    assert run(mode, PaiModelRegistryHook()).version_name == "1.0.0"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_path))  # the environment's bundle is honoured too
    pai_conn(monkeypatch, url)
    assert run(mode, PaiModelRegistryHook()).version_name == "1.0.0"


class Proxy:
    """A forward (absolute-form) and CONNECT proxy; ``seen`` records request lines; ``route`` maps host:port."""

    def __init__(self, serve: Callable[..., Server], route: dict[str, tuple[str, int]]) -> None:
        self.seen: list[str] = []
        self.route = route
        self.server = serve(self.handle)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.decode("latin-1").partition("\r\n")
        method, target, _ = line.split(" ")
        self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, port = self.route.get(target, (target.rsplit(":", 1)[0], int(target.rsplit(":", 1)[1])))
            up_reader, up_writer = await asyncio.open_connection(host, port)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            url = httpx.URL(target)
            up_reader, up_writer = await asyncio.open_connection(url.host, url.port)
            headers = [h for h in rest.split("\r\n") if h and not h.lower().startswith(("connection", "proxy-"))]
            origin = url.raw_path.decode()
            up_writer.write(f"{method} {origin} HTTP/1.1\r\n".encode() + "".join(h + "\r\n" for h in headers).encode())
            up_writer.write(b"Connection: close\r\n\r\n")
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))


def test_proxy_extra_forwards_plain_http(
    make_emulator: Any, serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(seed=build_seed())
    proxy = Proxy(serve, {})
    pai_conn(monkeypatch, emu.url, proxy=proxy.url)
    hook = PaiModelRegistryHook()
    assert hook.get_model_version("m-main", "1.0.0").version_name == "1.0.0"
    assert hook.list_model_versions("m-main", label_filter="team risk") == []
    assert proxy.seen[0] == f"GET {emu.url}/api/v1/models/m-main/versions/1.0.0"
    assert proxy.seen[1].startswith(f"GET {emu.url}/api/v1/models/m-main/versions?Label=team+risk&")


def test_environment_https_proxy_with_connect_and_no_proxy(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str
) -> None:
    ca_path, context = _cert_pair(tmp_path)
    registry = serve(responder(200, OK_VERSION), ssl_context=context)
    proxy = Proxy(serve, {"registry.test:443": ("127.0.0.1", registry.port)})
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    pai_conn(monkeypatch, "https://registry.test", ca_bundle=str(ca_path))
    assert run(mode, PaiModelRegistryHook()).version_name == "1.0.0"
    assert proxy.seen == ["CONNECT registry.test:443"]
    # NO_PROXY wins: a direct connection to registry.test, which does not resolve
    monkeypatch.setenv("NO_PROXY", "localhost,.test")
    with pytest.raises(RegistryTransportError):
        run(mode, PaiModelRegistryHook(retry=RetryPolicy(max_attempts=1)))
    assert proxy.seen == ["CONNECT registry.test:443"]


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:3128"}, "https://a.example.com", "http://p:3128"),
        ({"https_proxy": "p:3128"}, "https://a.example.com", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "example.com"}, "https://a.example.com", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".example.com"}, "https://example.com", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "notexample.com"}, "https://example.com", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, "https://a.example.com", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3", None),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example.com:8443"}, "https://a.example.com", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "a.example.com:8443"}, "https://a.example.com:8443", None),
        ({"HTTP_PROXY": "http://p:3128"}, "https://a.example.com", None),
        ({"ALL_PROXY": "http://p:3128"}, "https://a.example.com", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://127.0.0.1:8080", None),
    ],
)  # fmt: skip
def test_environment_proxy_rules(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert environment_proxy(url) == expected


def test_an_attempt_queued_behind_the_hubs_gate_does_not_spend_its_attempt_timeout_waiting(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four reads behind a one-slot gate, each answered in 0.3 s, attempt_timeout 0.5 s and one attempt: the last
    waits 0.9 s for its slot. Its attempt begins with the slot, so every read is answered (a deadline counted from
    the queue would have failed the last two with "deadline exceeded")."""
    body = json.dumps({"RequestId": "r", "VersionName": "1.0.0", "ApprovalStatus": "Pending"}).encode()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_request(reader)
            await asyncio.sleep(0.3)
            writer.write(answer(200, body))
            await writer.drain()

    server = serve(slow)
    one = RetryPolicy(max_attempts=1, attempt_timeout=0.5, call_timeout=30.0)
    hook = pai_hook(monkeypatch, server.url, retry=one)

    async def go() -> list[Any]:
        transport = await hook.atransport()
        transport.attempt_gate = asyncio.Semaphore(1)
        try:
            return await asyncio.gather(
                *(hook.aget_model_version("m-1", "1.0.0") for _ in range(4)), return_exceptions=True
            )
        finally:
            await hook.aclose()

    started = time.monotonic()
    answers = asyncio.run(go())
    assert [getattr(a, "version_name", a) for a in answers] == ["1.0.0"] * 4
    assert time.monotonic() - started >= 1.2  # one at a time: the gate held
