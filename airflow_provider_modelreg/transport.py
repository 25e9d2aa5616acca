"""The one HTTP transport both hooks use: connection pools, deadlines, retries, error mapping and response parsing.

* One sync and one async httpx connection pool (``httpx.HTTPTransport``) per :class:`RegistryTransport`
  (keep-alive), sharing one process-wide SSL context per CA bundle (a context per pool costs ~0.8 MB and ~35 ms).
  Proxies (the ``proxy`` setting, else ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``) and the CA bundle are resolved
  once per transport, never per request. TLS verification cannot be turned off.
* Deadlines: every attempt (connect + headers + body) has a wall-clock deadline and every call (all attempts and
  the waits between them) another. They are enforced on each socket operation by a thin wrapper around httpcore's
  network backend, so a server trickling one byte at a time cannot hold a call past its deadline.
* Bodies are read and decoded (gzip, deflate) in a streaming way, and refused beyond ``max_response_bytes`` of
  *decoded* data: a gzip bomb is stopped at the cap.
* Retries sit above the send of one attempt, so that the ``httpx.Auth`` flow re-signs every attempt with a fresh
  date and nonce. The decisions are made by :class:`RetryPlan`, plain data in and out (no I/O), used by both the
  sync and the async loop. Only idempotent requests are retried, on connection errors, timeouts, 408, 429, 5xx and
  vendor throttling codes, with exponential backoff and full jitter, honouring ``Retry-After`` (seconds) and
  ``x-acs-retry-after`` (ms), never waiting less than a floor. Deterministic failures (a certificate that does not
  verify, a header value HTTP cannot carry) are not retried. Each retry is logged at WARNING. When the budget or the
  call deadline is spent the last error is raised, typed; a partial result is never returned.
* Errors map to :mod:`airflow_provider_modelreg.errors` by vendor code first and HTTP status second. No message
  carries a request header value.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import ipaddress
import json
import logging
import math
import os
import random
import select
import ssl
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import urlencode, urlsplit, urlunsplit
from urllib.request import getproxies_environment

import httpcore
import httpx
from pydantic import BaseModel, ValidationError

from airflow_provider_modelreg import __version__
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAPIError,
    RegistryAuthError,
    RegistryInputError,
    RegistryInvalidRequestError,
    RegistryNotFoundError,
    RegistryResponseError,
    RegistryServerError,
    RegistryStateError,
    RegistryThrottledError,
    RegistryTransportError,
    one_line,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "Decision",
    "Failure",
    "RegistryTransport",
    "RetryPlan",
    "RetryPolicy",
    "Vendor",
    "environment_proxy",
    "is_loopback",
    "map_error",
    "parse_model",
    "public_url",
    "shared_ssl_context",
]

log = logging.getLogger(__name__)

Vendor = Literal["pai", "fabric"]
M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"airflow-provider-modelreg/{__version__} httpx/{httpx.__version__}"
#: Default cap of a decoded response body.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Connect timeout inside an attempt (the attempt deadline still applies).
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long and within which deadlines to try a request.

    :param max_attempts: attempts in all, the first included (1 = no retry). Default 5.
    :param base_delay: first backoff step in seconds; step n waits up to ``base_delay * 2**(n-1)`` (full jitter).
    :param max_delay: cap of a single wait, also applied to server-requested waits.
    :param min_delay: floor of every wait (``Retry-After: 0`` must not mean a burst of requests); never above
        ``max_delay``.
    :param attempt_timeout: wall-clock deadline of one attempt: connect, send, headers and the whole body.
    :param call_timeout: wall-clock deadline of a call: every attempt and every wait between them.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    min_delay: float = 0.1
    attempt_timeout: float = 30.0
    call_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base_delay", "max_delay", "min_delay"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0")
        for name in ("attempt_timeout", "call_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the attempt that just failed (1-based)."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 64)))

    @property
    def floor(self) -> float:
        """The shortest wait between two attempts."""
        return min(self.min_delay, self.max_delay)


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUT = httpx.Timeout(DEFAULT_RETRY.attempt_timeout, connect=CONNECT_TIMEOUT)

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_THROTTLE_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api", "APIG.0308"})


def _is_throttle_code(code: str | None) -> bool:
    """Vendor throttling codes (Alibaba ``Throttling*``, Huawei APIG ``APIG.0308``): both classified and retried."""
    return code is not None and (code in _THROTTLE_CODES or code.startswith("Throttling"))


# ------------------------------------------------------------------------------------------------- retry plan


@dataclass(frozen=True)
class Failure:
    """One failed attempt as plain data.

    :param cause: one line for logs and messages (never a header value).
    :param retryable: whether trying again can help (a 503 can, a certificate that does not verify cannot).
    :param server_delay: seconds the server asked us to wait (already validated: finite and > 0), or None.
    """

    cause: str
    retryable: bool
    server_delay: float | None = None


@dataclass(frozen=True)
class Decision:
    """What to do after a failed attempt: wait ``wait`` seconds and try again, or stop (``wait`` None)."""

    wait: float | None
    reason: str


class RetryPlan:
    """The retry decisions of one call. No I/O and no clock of its own: the loops pass ``now`` in.

    :param policy: the budget, waits and deadlines.
    :param idempotent: whether the request may be sent more than once.
    :param now: the call's start (monotonic seconds).
    :param rng: source of the backoff jitter.
    :param outer_deadline: a deadline inherited from an enclosing call (an IAM token fetched inside an attempt).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        now: float,
        rng: random.Random,
        outer_deadline: float | None = None,
    ) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.rng = rng
        deadline = now + policy.call_timeout
        self.deadline = deadline if outer_deadline is None else min(deadline, outer_deadline)
        self.attempt = 0

    def begin(self, now: float) -> float:
        """Count a new attempt and return its deadline (monotonic seconds)."""
        self.attempt += 1
        return min(now + self.policy.attempt_timeout, self.deadline)

    def after(self, failure: Failure, now: float) -> Decision:
        """Decide after a failed attempt."""
        policy = self.policy
        if not failure.retryable:
            return Decision(None, "not retryable")
        if not self.idempotent:
            return Decision(None, "not idempotent")
        if self.attempt >= policy.max_attempts:
            return Decision(None, f"retry budget of {policy.max_attempts} attempts spent")
        if failure.server_delay is not None:
            wait = min(failure.server_delay, policy.max_delay)
        else:
            wait = policy.backoff(self.attempt, self.rng)
        wait = max(wait, policy.floor)
        if now + wait >= self.deadline:
            return Decision(None, f"call deadline reached ({policy.call_timeout:g} s)")
        return Decision(wait, "retrying")


# ------------------------------------------------------------------------------------------------- TLS, proxies


def is_loopback(host: str) -> bool:
    """True for ``localhost``, 127.0.0.0/8 and ::1 (the only hosts plain ``http://`` may reach)."""
    name = host.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _file_signature(path: str | None) -> tuple[int, int, int] | None:
    """(mtime in ns, size, inode) of a file, or None when there is none to read: what changes when it is rotated
    (rewritten in place, replaced by a rename, or a Kubernetes secret's symlink swapped)."""
    if not path:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return None  # loading it reports the error
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


@functools.lru_cache(maxsize=8)
def _ssl_context(
    ca_bundle: str | None,
    cert_file: str | None,
    cert_dir: str | None,
    signature: tuple[int, int, int] | None,  # part of the cache key only: a rotated file is read again
) -> ssl.SSLContext:
    if ca_bundle is not None:
        return ssl.create_default_context(cafile=ca_bundle)
    if cert_file:
        return ssl.create_default_context(cafile=cert_file)
    if cert_dir:
        return ssl.create_default_context(capath=cert_dir)
    return httpx.create_ssl_context(trust_env=False)  # certifi's bundle


def shared_ssl_context(ca_bundle: str | None = None) -> ssl.SSLContext:
    """One verifying SSL context per CA bundle *content* for the whole process.

    The cache is keyed by the file's path, modification time (ns), size and inode: a rotated private CA is read
    again by the next transport, without a restart. This reads and parses files (tens of ms for a large bundle):
    call it off an event loop (:meth:`RegistryTransport.prepare` in a thread).

    :param ca_bundle: a PEM file of trusted CAs; None: ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set, else certifi.
    """
    cert_file = os.environ.get("SSL_CERT_FILE") or None
    cert_dir = os.environ.get("SSL_CERT_DIR") or None
    watched = ca_bundle if ca_bundle is not None else cert_file
    return _ssl_context(ca_bundle, cert_file, cert_dir, _file_signature(watched))


def public_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages, logs and reprs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _bypassed(host: str, port: int | None, no_proxy: str) -> bool:
    """``NO_PROXY`` rules as curl reads them: ``*``, host names and domain suffixes (leading dot optional),
    ``host:port``, IP addresses and CIDR ranges."""
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port.isdigit():
            if port is not None and int(entry_port) != port:
                continue
            entry = name
        entry = entry.strip("[]")
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


def environment_proxy(base_url: str) -> str | None:
    """The proxy the environment asks for ``base_url`` (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, either case,
    honouring ``NO_PROXY``), or None. Loopback hosts are never proxied by the environment (as Go's
    ``ProxyFromEnvironment``); set the ``proxy`` extra to proxy them."""
    parts = urlsplit(base_url)
    host = (parts.hostname or "").rstrip(".").lower()
    if is_loopback(host):
        return None
    proxies = getproxies_environment()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _bypassed(host, port, proxies.get("no", "")):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


# ------------------------------------------------------------------------------------------------- deadlines

#: The deadline (monotonic seconds) of the attempt running in this thread or task, read by the network backend.
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("modelreg_deadline", default=None)


def _bounded(timeout: float | None, exc: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the current attempt's deadline (raise ``exc`` when nothing is)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc("attempt deadline exceeded")
    return left if timeout is None or timeout > left else timeout


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend with every socket operation bounded by the attempt deadline."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:  # pragma: no cover - not used
        return _DeadlineStream(
            self._backend.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout), socket_options)
        )

    def sleep(self, seconds: float) -> None:  # pragma: no cover - not used
        self._backend.sleep(seconds)


_UNKNOWN: Any = object()


def is_socket_readable(sock: Any) -> bool:
    """httpcore's liveness test of an idle keep-alive connection: data (or EOF) waiting means it is not reusable.

    A socket that is gone counts as readable (the next read would return EOF), as in httpcore.
    """
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    if not hasattr(select, "poll"):  # pragma: no cover - Windows
        return bool(select.select([fd], [], [], 0)[0])
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _AsyncDeadlineStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._raw_socket: Any = _UNKNOWN

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout, httpcore.ConnectTimeout))
        return _AsyncDeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # The pool asks this of every idle connection on every request. anyio answers it by building the
            # stream's whole attribute mapping each time (a tenth of a poll's CPU with 1,000 triggers); the raw
            # socket never changes for a stream, so it is looked up once.
            sock = self._raw_socket
            if sock is _UNKNOWN:
                sock = self._raw_socket = self._stream.get_extra_info("socket")
            return is_socket_readable(sock)
        return self._stream.get_extra_info(info)


class _AsyncDeadlineBackend(httpcore.AsyncNetworkBackend):
    """Async twin of :class:`_DeadlineBackend`."""

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._backend.connect_tcp(
            host, port, _bounded(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _AsyncDeadlineStream(stream)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:  # pragma: no cover - not used
        return _AsyncDeadlineStream(
            await self._backend.connect_unix_socket(path, _bounded(timeout, httpcore.ConnectTimeout), socket_options)
        )

    async def sleep(self, seconds: float) -> None:  # pragma: no cover - not used
        await self._backend.sleep(seconds)


# ------------------------------------------------------------------------------------------------- errors


class _TooDeep:
    """Marker: the body is JSON nested too deeply to parse."""


_TOO_DEEP = _TooDeep()


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except RecursionError:
        return _TOO_DEEP
    except ValueError:
        return None


def _find_huawei_error(body: Any, depth: int = 0) -> tuple[str | None, str | None]:
    """The Huawei SDK's search order: error_code/error_msg, errorCode/errorMsg, code/message, then one level down."""
    if not isinstance(body, dict):
        return None, None
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
        if code_key in body:
            return str(body[code_key]), None if body.get(msg_key) is None else str(body[msg_key])
    if depth < 4:
        for value in body.values():
            if isinstance(value, dict):
                code, msg = _find_huawei_error(value, depth + 1)
                if code is not None:
                    return code, msg
    return None, None


def request_id_of(vendor: Vendor, response: httpx.Response, body: Any = None) -> str | None:
    """Alibaba: body ``RequestId`` (either case), else the ``x-acs-request-id`` header; Huawei: ``X-Request-Id``."""
    if vendor == "fabric":
        header: str | None = response.headers.get("x-request-id")
        return header
    if body is None:
        body = _json_or_none(response)
    if isinstance(body, dict):
        rid = body.get("RequestId", body.get("requestId"))
        if rid is not None:
            return str(rid)
    acs: str | None = response.headers.get("x-acs-request-id")
    return acs


def _classify(vendor: Vendor, status: int, code: str | None) -> type[RegistryAPIError]:
    if code is not None:
        if _is_throttle_code(code):
            return RegistryThrottledError
        if vendor == "pai":
            if code.startswith(("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidTimeStamp")) or code in {
                "SignatureNonceUsed",
                "IncompleteSignature",
                "InvalidSecurityToken.Expired",
                "InvalidSecurityToken.Malformed",
                "InvalidSecurityToken.MismatchWithAccessKey",
            }:
                return RegistryAuthError
            if code.startswith(("Forbidden", "NoPermission")):
                return RegistryAuthError
            if code.startswith("InvalidApprovalStatus"):
                return RegistryStateError
            if code.endswith(".NotFound"):
                return RegistryNotFoundError
            if code.startswith(("InvalidParameter", "MissingParameter", "InvalidApi")):
                return RegistryInvalidRequestError
        elif code.startswith("APIG.") and status in (401, 403):
            return RegistryAuthError
    if status in (401, 403):
        return RegistryAuthError
    if status == 404:
        return RegistryNotFoundError
    if status == 429:
        return RegistryThrottledError
    if status == 409:
        return RegistryStateError
    if status >= 500 or status == 408:
        return RegistryServerError
    return RegistryInvalidRequestError


def _too_deep(vendor: Vendor, response: httpx.Response) -> RegistryResponseError:
    return RegistryResponseError(
        field="body",
        problem="JSON nested too deeply to read",
        request_id=request_id_of(vendor, response, {}),
        status_code=response.status_code,
    )


def map_error(vendor: Vendor, response: httpx.Response, *, attempts: int = 1) -> RegistryAPIError:
    """Turn an error answer into the typed exception (vendor code first, HTTP status second).

    :raises RegistryResponseError: when the error body is JSON nested too deeply to read.
    """
    body = _json_or_none(response)
    if body is _TOO_DEEP:
        raise _too_deep(vendor, response)
    if vendor == "pai":
        code = message = None
        if isinstance(body, dict):
            raw_code = body.get("Code", body.get("code"))
            raw_msg = body.get("Message", body.get("message"))
            code = None if raw_code is None else str(raw_code)
            message = None if raw_msg is None else str(raw_msg)
    else:
        code, message = _find_huawei_error(body)
    if message is None:
        message = response.text[:200] if response.content else response.reason_phrase
    cls = _classify(vendor, response.status_code, code)
    return cls(
        status_code=response.status_code,
        code=code,
        message=message,
        request_id=request_id_of(vendor, response, body),
        attempts=attempts,
        # the same rule as the retry loop's: a throttling code (or Alibaba's x-acs-retry-after) on a 400 or 403
        # is retryable although the status alone would not be
        retryable=_is_retryable(vendor, response, code),
    )


def _is_retryable(vendor: Vendor, response: httpx.Response, code: str | None) -> bool:
    if response.status_code in _RETRY_STATUSES or response.status_code >= 500:
        return True
    if _is_throttle_code(code):  # whatever the status: the error is a RegistryThrottledError, retryable
        return True
    # Alibaba's SDK treats an x-acs-retry-after header on any 4xx/5xx answer as throttling
    return vendor == "pai" and response.status_code >= 400 and "x-acs-retry-after" in response.headers


def _positive(value: float) -> float | None:
    return value if value > 0 and math.isfinite(value) else None


def _server_delay(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: ``x-acs-retry-after`` (ms) or ``Retry-After`` (seconds).

    Zero, negative, NaN, infinite or unreadable values count as no request (our own backoff applies)."""
    acs = response.headers.get("x-acs-retry-after")
    if acs is not None:
        try:
            return _positive(int(acs) / 1000.0)
        except ValueError:
            pass
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return _positive(float(retry_after))
        except ValueError:
            return None
    return None


def _response_failure(vendor: Vendor, response: httpx.Response, error: ModelRegistryError) -> Failure:
    code = error.code if isinstance(error, RegistryAPIError) else None
    rid = getattr(error, "request_id", None)
    cause = f"HTTP {response.status_code} {code or '-'} (request id {rid or '-'})"
    if not _is_retryable(vendor, response, code):
        return Failure(cause, retryable=False)
    return Failure(cause, retryable=True, server_delay=_server_delay(response))


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        yield current
        current = current.__cause__ or current.__context__
        seen += 1


def _cert_failure(exc: BaseException) -> bool:
    """Whether a failed attempt was a certificate that did not verify."""
    return any(isinstance(link, ssl.SSLCertVerificationError) for link in _chain(exc))


def _exception_failure(exc: Exception, deadline_hit: bool, policy: RetryPolicy) -> tuple[Failure, bool]:
    """(failure, whether ``exc`` may be chained as the cause of the final error: its text carries no header)."""
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 refused what we were about to send: a header value with a control character. Its message quotes the
        # value (the Authorization header, a token): never shown, never chained, never retried.
        return Failure("the request could not be sent: a header value is not valid HTTP", retryable=False), False
    if isinstance(exc, UnicodeEncodeError):
        return Failure("the request could not be sent: a header value is not ASCII", retryable=False), False
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(f"UnsupportedProtocol: {one_line(exc, 200)}", retryable=False), True
    for link in _chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            reason = link.verify_message or link.reason or "verification failed"
            text = f"TLS certificate verification failed: {one_line(reason, 200)} (a private CA? set ca_bundle)"
            return Failure(text, retryable=False), True
    if deadline_hit:
        text = (
            f"deadline exceeded (attempt_timeout {policy.attempt_timeout:g} s, call_timeout {policy.call_timeout:g} s)"
        )
        return Failure(text, retryable=True), True
    detail = one_line(exc, 200)
    return Failure(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__, retryable=True), True


# ------------------------------------------------------------------------------------------------- parsing


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_model(vendor: Vendor, response: httpx.Response, model: type[M], *, root: str = "body") -> M:
    """Validate a 2xx body into ``model``; anything unreadable becomes :class:`RegistryResponseError`."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        request_id = request_id_of(vendor, response, None if response.content else {})
        if first["type"] == "json_invalid" or not response.content:
            field, problem = root, "not valid JSON" + (" (empty body)" if not response.content else "")
            if "recursion limit" in str(first.get("msg", "")):
                problem = "JSON nested too deeply to read"
                request_id = request_id_of(vendor, response, {})
        else:
            field = _loc(first["loc"])
            field = f"{root}.{field}" if field != "body" else root
            problem = first["msg"]
        raise RegistryResponseError(
            field=field, problem=problem, request_id=request_id, status_code=response.status_code
        ) from None


# ------------------------------------------------------------------------------------------------- bodies


class _BodyTooLarge(Exception):
    pass


class _Decoder:
    """Streaming content decoding (gzip, deflate; others pass through, as httpx does) with a cap on the output."""

    def __init__(self, content_encoding: str | None, cap: int) -> None:
        self.cap = cap
        self.size = 0
        self.chunks: list[bytes] = []
        self.stages: list[Any] = []  # zlib decompress objects, outermost coding first
        self.raw_deflate: list[bool] = []
        if content_encoding:
            for coding in reversed([c.strip().lower() for c in content_encoding.split(",")]):
                if coding in ("gzip", "x-gzip"):
                    self.stages.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
                    self.raw_deflate.append(False)
                elif coding == "deflate":
                    self.stages.append(zlib.decompressobj())
                    self.raw_deflate.append(True)  # may still fall back to a raw deflate stream
        self.started = [False] * len(self.stages)

    def _stage(self, index: int, data: bytes) -> bytes:
        decoder = self.stages[index]
        try:
            out: bytes = decoder.decompress(data, self.cap + 1)
        except zlib.error:
            if self.raw_deflate[index] and not self.started[index]:  # "deflate" sent without the zlib header
                self.stages[index] = decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                out = decoder.decompress(data, self.cap + 1)
            else:
                raise
        self.started[index] = True
        if decoder.unconsumed_tail or len(out) > self.cap:
            raise _BodyTooLarge
        return out

    def feed(self, data: bytes) -> None:
        for index in range(len(self.stages)):
            if not data:
                return
            data = self._stage(index, data)
        self._add(data)

    def _add(self, data: bytes) -> None:
        if data:
            self.size += len(data)
            if self.size > self.cap:
                raise _BodyTooLarge
            self.chunks.append(data)

    def finish(self) -> bytes:
        for index in range(len(self.stages)):
            tail = self.stages[index].flush()
            for later in range(index + 1, len(self.stages)):
                tail = self._stage(later, tail) if tail else tail
            self._add(tail)
        return b"".join(self.chunks)


def _declared_too_large(response: httpx.Response, cap: int) -> bool:
    length = response.headers.get("content-length")
    return (
        length is not None
        and length.isdigit()
        and int(length) > cap
        and response.headers.get("content-encoding", "identity").strip().lower() == "identity"
    )


# ------------------------------------------------------------------------------------------------- transport


class RegistryTransport:
    """Sends signed requests to one registry endpoint, with deadlines, retries and typed errors.

    Connection pools are created lazily and reused (keep-alive). The async pool belongs to an event loop: used from
    another loop (a hook reused across two ``asyncio.run`` calls), it is replaced by a fresh one.

    :param vendor: ``"pai"`` or ``"fabric"``: selects error parsing and throttling codes.
    :param base_url: scheme + host (+ port), e.g. ``https://aiworkspace.cn-hangzhou.aliyuncs.com``. ``http://`` is
        refused unless the host is a loopback address (a local emulator).
    :param auth: the ``httpx.Auth`` that signs each attempt.
    :param headers: headers sent (and signed) on every request.
    :param retry: the retry budget and the deadlines (:class:`RetryPolicy`).
    :param max_response_bytes: cap of a decoded response body; beyond it :class:`RegistryResponseError`.
    :param proxy: proxy URL for every request (also for loopback hosts); None: the environment's proxy for the host.
    :param trust_env: honour ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` when ``proxy`` is None.
    :param ca_bundle: PEM file of trusted CAs (a private CA); None: ``SSL_CERT_FILE``/``SSL_CERT_DIR``, else certifi.
    :param transport: an ``httpx`` transport to use instead of the network (tests); ``async_transport`` likewise.
    :param sleep: injectable for tests (sync); ``asleep`` likewise for async; ``clock`` is the monotonic clock.
    :param max_connections: size of each connection pool (listing fetches 8 pages at once by default).
    :param metadata_service: the endpoint is a cloud instance metadata service (``http://169.254.169.254``,
        ``http://100.100.100.200``): plain ``http://`` is allowed to any host, and no proxy is ever used.
    """

    def __init__(
        self,
        *,
        vendor: Vendor,
        base_url: str,
        auth: httpx.Auth,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: httpx.Timeout | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        proxy: str | None = None,
        trust_env: bool = True,
        ca_bundle: str | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        max_connections: int = 16,
        metadata_service: bool = False,
    ) -> None:
        self.vendor: Vendor = vendor
        # A user:password@ part is never sent (signing carries the credentials) and never shown: dropped here, so
        # that no message, log line or repr built from base_url can repeat it.
        self.base_url = public_url(base_url.rstrip("/"))
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("base_url must be https://host[:port]")
        if parts.scheme == "http" and not (metadata_service or is_loopback(parts.hostname)):
            raise ValueError("plain http:// is only allowed to a loopback host (a local emulator)")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        self.auth = auth
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            **(headers or {}),
        }
        self.retry = retry
        attempt = retry.attempt_timeout
        self.timeout = timeout or httpx.Timeout(attempt, connect=min(CONNECT_TIMEOUT, attempt))
        self._extensions = {"timeout": self.timeout.as_dict()}
        self.max_response_bytes = max_response_bytes
        #: the proxy in use, resolved once (None: direct)
        if metadata_service:  # instance metadata is link-local: a proxy could not reach it, or would see the keys
            proxy, trust_env = None, False
        self.proxy = proxy if proxy is not None else (environment_proxy(self.base_url) if trust_env else None)
        self.ca_bundle = ca_bundle
        self._ssl: ssl.SSLContext | None = None
        self._ssl_signature: tuple[int, int, int] | None = None
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        self._given = transport  # injected pools (tests: httpx.MockTransport) are reused after close()
        self._agiven = async_transport
        self._transport: httpx.BaseTransport | None = None
        self._async_transport: httpx.AsyncBaseTransport | None = None
        self._aloop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self._sleep = sleep
        self._asleep = asleep
        self._clock = clock
        self._rng = rng or random.Random()
        #: Optional limit on async attempts in flight, shared with other transports (the triggerer's hub).
        self.attempt_gate: asyncio.Semaphore | None = None
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    def __repr__(self) -> str:
        return f"RegistryTransport(vendor={self.vendor!r}, base_url={self.base_url!r})"

    # -- connection pools

    def _verify(self) -> ssl.SSLContext:
        # Verification is always on; for http:// (loopback only) the context is simply never used. Resolved once
        # per transport (prepare() does it ahead, off the event loop); a rotated CA bundle reaches new transports.
        if self._ssl is None:
            self._ssl_signature = self._trust_signature()
            self._ssl = shared_ssl_context(self.ca_bundle)
        return self._ssl

    def _renew_trust(self) -> bool:
        """After a certificate verification failure: when the CA bundle changed on disk since this transport's SSL
        context was built (a rotated private CA), forget the context and the pools built with it, so that the next
        attempt reads the new bundle (a long-lived transport, such as a credential service's, needs no restart).
        Returns whether it did. The pools are dropped, not closed: other requests may still be using them."""
        if self._ssl is None or self._ssl_signature == self._trust_signature():
            return False
        self._ssl = None
        if self._given is None:
            self._transport = None
        if self._agiven is None:
            self._async_transport = None
        return True

    def _trust_signature(self) -> tuple[int, int, int] | None:
        return _file_signature(self.ca_bundle if self.ca_bundle is not None else os.environ.get("SSL_CERT_FILE"))

    def prepare(self) -> RegistryTransport:
        """Do the blocking part of building the connection pools now: read the CA bundle (or the default trust
        store) and build the SSL context. Async callers run this in a thread (``asyncio.to_thread``) so that the
        first request never does it on the event loop. Returns the transport."""
        if self._given is None or self._agiven is None:
            self._verify()
        return self

    def _proxy(self) -> httpx.Proxy | None:
        if self.proxy is None:
            return None
        # an https:// proxy is itself verified with the same trust store; httpcore refuses a context for http://
        tls = self._verify() if self.proxy.startswith("https://") else None
        return httpx.Proxy(self.proxy, ssl_context=tls)

    # httpx transports (connection pools) used directly, without an httpx.Client: the client's per-request work
    # (base-URL merge, cookie jar, redirect loop, event hooks) is a fifth of the CPU of a call and we use none of
    # it. The auth flow is driven here as the client would drive it, so every attempt is signed afresh. The pool's
    # network backend is wrapped so that every socket operation honours the attempt deadline.

    @property
    def http(self) -> httpx.BaseTransport:
        """The sync connection pool (created on first use)."""
        if self._transport is None:
            if self._given is not None:
                self._transport = self._given
            else:
                pool = httpx.HTTPTransport(
                    verify=self._verify(), limits=self._limits, trust_env=False, proxy=self._proxy()
                )
                core = pool._pool
                core._network_backend = _DeadlineBackend(core._network_backend)
                self._transport = pool
        return self._transport

    @property
    def ahttp(self) -> httpx.AsyncBaseTransport:
        """The async connection pool of the running event loop (created on first use in that loop)."""
        loop = asyncio.get_running_loop()
        if self._async_transport is not None and self._agiven is None and (self._aloop and self._aloop()) is not loop:
            # The pool's connections belong to a previous (likely closed) loop: abandon them, start afresh.
            self._async_transport = None
        if self._async_transport is None:
            if self._agiven is not None:
                self._async_transport = self._agiven
            else:
                pool = httpx.AsyncHTTPTransport(
                    verify=self._verify(), limits=self._limits, trust_env=False, proxy=self._proxy()
                )
                core = pool._pool
                core._network_backend = _AsyncDeadlineBackend(core._network_backend)
                self._async_transport = pool
            self._aloop = weakref.ref(loop)
        return self._async_transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def aclose(self) -> None:
        if self._async_transport is not None:
            if self._aloop is not None and self._aloop() is asyncio.get_running_loop():
                await self._async_transport.aclose()
            self._async_transport = None

    # -- one attempt

    def _too_large(self, response: httpx.Response) -> RegistryResponseError:
        return RegistryResponseError(
            field="body",
            problem=f"larger than max_response_bytes ({self.max_response_bytes} bytes, decoded)",
            request_id=request_id_of(self.vendor, response, {}),
            status_code=response.status_code,
        )

    def _undecodable(self, response: httpx.Response, exc: Exception) -> RegistryResponseError:
        return RegistryResponseError(
            field="body",
            problem=f"content-encoding could not be decoded ({one_line(exc, 100)})",
            request_id=request_id_of(self.vendor, response, {}),
            status_code=response.status_code,
        )

    def _read(self, response: httpx.Response) -> None:
        """Read the body, decoding and capping it as it streams in."""
        cap = self.max_response_bytes
        try:
            if getattr(response, "_content", None) is not None:  # read already (an in-memory test transport)
                if len(response.content) > cap:
                    raise _BodyTooLarge
                return
            if _declared_too_large(response, cap):
                raise _BodyTooLarge
            decoder = _Decoder(response.headers.get("content-encoding"), cap)
            for chunk in response.iter_raw():
                decoder.feed(chunk)
            response._content = decoder.finish()
        except _BodyTooLarge:
            raise self._too_large(response) from None
        except zlib.error as exc:
            raise self._undecodable(response, exc) from None
        finally:
            response.close()

    async def _aread(self, response: httpx.Response) -> None:
        """Async twin of :meth:`_read`."""
        cap = self.max_response_bytes
        try:
            if getattr(response, "_content", None) is not None:
                if len(response.content) > cap:
                    raise _BodyTooLarge
                return
            if _declared_too_large(response, cap):
                raise _BodyTooLarge
            decoder = _Decoder(response.headers.get("content-encoding"), cap)
            chunks: AsyncIterator[bytes] = response.aiter_raw()
            async for chunk in chunks:
                decoder.feed(chunk)
            response._content = decoder.finish()
        except _BodyTooLarge:
            raise self._too_large(response) from None
        except zlib.error as exc:
            raise self._undecodable(response, exc) from None
        finally:
            await response.aclose()

    def _send(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """One attempt: sign (the auth flow may answer a 401 with one more request), send, read the body."""
        token = _DEADLINE.set(deadline)
        try:
            http = self.http
            flow = self.auth.sync_auth_flow(request)
            request = next(flow)
            while True:
                response = http.handle_request(request)
                response.request = request
                self._read(response)
                try:
                    request = flow.send(response)
                except StopIteration:
                    return response
        finally:
            _DEADLINE.reset(token)

    async def _asend(self, request: httpx.Request, deadline: float) -> httpx.Response:
        """Async twin of :meth:`_send`."""
        token = _DEADLINE.set(deadline)
        try:
            http = self.ahttp
            flow = self.auth.async_auth_flow(request)
            request = await flow.__anext__()
            while True:
                response = await http.handle_async_request(request)
                response.request = request
                await self._aread(response)
                try:
                    request = await flow.asend(response)
                except StopAsyncIteration:
                    return response
        finally:
            _DEADLINE.reset(token)

    def parse(self, response: httpx.Response, model: type[M]) -> M:
        """Validate a 2xx body into ``model`` (typed error on anything unreadable)."""
        return parse_model(self.vendor, response, model)

    def request_id(self, response: httpx.Response) -> str | None:
        """The vendor request id of an answer."""
        return request_id_of(self.vendor, response)

    # -- requests

    def _build(
        self,
        method: str,
        target: str,
        params: Sequence[tuple[str, str]] | None,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Request:
        # Built directly rather than with Client.build_request: merging with the client's base URL parses the URL
        # twice, a tenth of the client CPU of a call. The client adds nothing else we need (no cookies in use).
        all_headers = {**self.headers, **(headers or {})}
        if content is not None and "content-type" not in {k.lower() for k in all_headers}:
            all_headers["content-type"] = "application/json; charset=utf-8"
        return httpx.Request(
            method, self._url(target, params), content=content, headers=all_headers, extensions=self._extensions
        )

    def _url(self, target: str, params: Sequence[tuple[str, str]] | None) -> httpx.URL:
        """The parsed URL, cached: a poll asks for the same URL again and again, and parsing is a tenth of a call.

        ``params`` are encoded exactly as the Alibaba SDK (``darabonba.core.compose_url``) encodes its query:
        ``urllib.parse.urlencode``, i.e. form encoding (``+`` for a space, ``%2A`` for ``*``, ``~`` literal).
        """
        if params:
            for name, value in params:
                if not isinstance(value, str):
                    raise RegistryInputError(name, "must be a string", value)
        key = (target, tuple(params) if params else ())
        url = self._urls.get(key)
        if url is None:
            url = httpx.URL(self.base_url + target + ("?" + urlencode(params) if params else ""))
            if len(self._urls) >= 512:  # bounded: listing pages and many models must not grow it forever
                self._urls.clear()
            self._urls[key] = url
        return url

    def _plan(self, method: str, idempotent: bool | None) -> RetryPlan:
        return RetryPlan(
            self.retry,
            idempotent=method == "GET" if idempotent is None else idempotent,
            now=self._clock(),
            rng=self._rng,
            outer_deadline=_DEADLINE.get(),
        )

    def _failure(
        self, response: httpx.Response | None, exc: Exception | None, deadline: float, attempt: int
    ) -> tuple[Failure, ModelRegistryError, BaseException | None]:
        """(plain-data failure for the plan, the error to raise if we stop, its cause to chain)."""
        if exc is not None:
            failure, chain = _exception_failure(exc, self._clock() >= deadline, self.retry)
            if not failure.retryable and _cert_failure(exc) and self._renew_trust():
                # the CA bundle was rotated since this transport read it: the next attempt uses the new one
                failure = Failure(f"{failure.cause}; the CA bundle changed since it was read", retryable=True)
            error: ModelRegistryError = RegistryTransportError(
                f"{self.vendor} registry at {self.base_url} unreachable after {attempt} attempt(s): {failure.cause}",
                attempts=attempt,
            )
            error.retryable = failure.retryable  # a header HTTP cannot carry, an untrusted certificate: not retryable
            return failure, error, exc if chain else None
        assert response is not None
        try:
            error = map_error(self.vendor, response, attempts=attempt)
        except RegistryResponseError as unreadable:  # an error body nested too deeply: typed, the status decides
            error = unreadable
        return _response_failure(self.vendor, response, error), error, None

    def _log(self, method: str, target: str, plan: RetryPlan, failure: Failure, decision: Decision) -> None:
        """Each retry at WARNING (attempt, cause, wait), and giving up when retrying could have helped."""
        if decision.wait is not None:
            then = f"retrying in {decision.wait:.2f} s"
        elif failure.retryable and plan.idempotent:
            then = f"giving up: {decision.reason}"
        else:
            return
        log.warning(
            "%s %s %s attempt %d/%d failed: %s; %s",
            self.vendor,
            method,
            target.partition("?")[0],
            plan.attempt,
            plan.policy.max_attempts,
            failure.cause,
            then,
        )

    def request(
        self,
        method: str,
        target: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response (body read) or raise a typed error.

        :param target: path (already percent-encoded) and, for Huawei, the canonical query string.
        :param params: query pairs, encoded as the Alibaba SDK does (form encoding).
        :param idempotent: retry allowed; defaults to True for GET.
        """
        plan = self._plan(method, idempotent)
        while True:
            deadline = plan.begin(self._clock())
            request = self._build(method, target, params, content, headers)
            response: httpx.Response | None = None
            caught: Exception | None = None
            try:
                response = self._send(request, deadline)
            except (httpx.TransportError, UnicodeEncodeError) as exc:
                caught = exc
            if response is not None and response.is_success:
                return response
            failure, error, cause = self._failure(response, caught, deadline, plan.attempt)
            decision = plan.after(failure, self._clock())
            self._log(method, target, plan, failure, decision)
            if decision.wait is None:
                raise error from cause
            self._sleep(decision.wait)

    async def arequest(
        self,
        method: str,
        target: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Async twin of :meth:`request`."""
        plan = self._plan(method, idempotent)
        while True:
            deadline = plan.begin(self._clock())
            request = self._build(method, target, params, content, headers)
            response: httpx.Response | None = None
            caught: Exception | None = None
            try:
                if self.attempt_gate is None:
                    response = await self._asend(request, deadline)
                else:  # a slot is held only while this attempt is on the wire, not during retry waits
                    async with self.attempt_gate:
                        response = await self._asend(request, deadline)
            except (httpx.TransportError, UnicodeEncodeError) as exc:
                caught = exc
            if response is not None and response.is_success:
                return response
            failure, error, cause = self._failure(response, caught, deadline, plan.attempt)
            decision = plan.after(failure, self._clock())
            self._log(method, target, plan, failure, decision)
            if decision.wait is None:
                raise error from cause
            await self._asleep(decision.wait)
