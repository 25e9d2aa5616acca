"""The one HTTP transport both hooks use: connection pools, retries, error mapping and response parsing.

* One sync and one async httpx connection pool (``httpx.HTTPTransport``) per :class:`RegistryTransport`
  (keep-alive), all sharing one process-wide SSL context (a context per pool costs ~0.8 MB and ~35 ms).
* Retries sit above the send of one attempt, so that the ``httpx.Auth`` flow re-signs every attempt with a fresh
  date and nonce. Only idempotent requests are retried, on connection errors, 408, 429, 5xx and vendor throttling codes,
  with exponential backoff and full jitter, honouring ``Retry-After`` (seconds) and ``x-acs-retry-after`` (ms).
  When the budget is spent the last error is raised, typed; a partial result is never returned.
* Errors map to :mod:`airflow_provider_modelreg.errors` by vendor code first and HTTP status second.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from airflow_provider_modelreg import __version__
from airflow_provider_modelreg.errors import (
    RegistryAPIError,
    RegistryAuthError,
    RegistryInvalidRequestError,
    RegistryNotFoundError,
    RegistryResponseError,
    RegistryServerError,
    RegistryStateError,
    RegistryThrottledError,
    RegistryTransportError,
)

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "RegistryTransport",
    "RetryPolicy",
    "Vendor",
    "map_error",
    "parse_model",
    "shared_ssl_context",
]

log = logging.getLogger(__name__)

Vendor = Literal["pai", "fabric"]
M = TypeVar("M", bound=BaseModel)

USER_AGENT = f"airflow-provider-modelreg/{__version__} httpx/{httpx.__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry an idempotent request.

    :param max_attempts: attempts in all, the first included (1 = no retry). Default 10.
    :param base_delay: first backoff step in seconds; step n waits up to ``base_delay * 2**n`` (full jitter).
    :param max_delay: cap of a single wait, also applied to server-requested waits.
    """

    max_attempts: int = 10
    base_delay: float = 0.2
    max_delay: float = 20.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the attempt that just failed (1-based)."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 64)))


DEFAULT_RETRY = RetryPolicy()

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_THROTTLE_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api", "APIG.0308"})
_RETRYABLE_EXC = (httpx.TransportError,)


def _is_throttle_code(code: str | None) -> bool:
    """Vendor throttling codes (Alibaba ``Throttling*``, Huawei APIG ``APIG.0308``): both classified and retried."""
    return code is not None and (code in _THROTTLE_CODES or code.startswith("Throttling"))


@functools.lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """One verifying SSL context for the whole process (certifi CA bundle, as httpx uses by default)."""
    return httpx.create_ssl_context()


# ------------------------------------------------------------------------------------------------- errors


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content) if response.content else None
    except ValueError:
        return None


def _find_huawei_error(body: Any) -> tuple[str | None, str | None]:
    """The Huawei SDK's search order: error_code/error_msg, errorCode/errorMsg, code/message, then one level down."""
    if not isinstance(body, dict):
        return None, None
    for code_key, msg_key in (("error_code", "error_msg"), ("errorCode", "errorMsg"), ("code", "message")):
        if code_key in body:
            return str(body[code_key]), None if body.get(msg_key) is None else str(body[msg_key])
    for value in body.values():
        if isinstance(value, dict):
            code, msg = _find_huawei_error(value)
            if code is not None:
                return code, msg
    return None, None


def request_id_of(vendor: Vendor, response: httpx.Response, body: Any = None) -> str | None:
    """Alibaba: body ``RequestId`` (either case); Huawei: header ``X-Request-Id``."""
    if vendor == "fabric":
        header: str | None = response.headers.get("x-request-id")
        return header
    if body is None:
        body = _json_or_none(response)
    if isinstance(body, dict):
        rid = body.get("RequestId", body.get("requestId"))
        return None if rid is None else str(rid)
    return None


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


def map_error(vendor: Vendor, response: httpx.Response, *, attempts: int = 1) -> RegistryAPIError:
    """Turn an error answer into the typed exception (vendor code first, HTTP status second)."""
    body = _json_or_none(response)
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
    )


def _is_retryable(vendor: Vendor, response: httpx.Response) -> bool:
    if response.status_code in _RETRY_STATUSES or response.status_code >= 500:
        return True
    if response.status_code in (400, 429):
        body = _json_or_none(response)
        if vendor == "pai" and isinstance(body, dict):
            return _is_throttle_code(str(body.get("Code", body.get("code"))))
        if vendor == "fabric":
            return _is_throttle_code(_find_huawei_error(body)[0])
    # Alibaba's SDK treats an x-acs-retry-after header on any 4xx/5xx answer as throttling
    return vendor == "pai" and response.status_code >= 400 and "x-acs-retry-after" in response.headers


def _server_delay(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait: ``x-acs-retry-after`` (ms) or ``Retry-After`` (seconds)."""
    acs = response.headers.get("x-acs-retry-after")
    if acs is not None:
        try:
            return max(0.0, int(acs) / 1000.0)
        except ValueError:
            pass
    retry_after = response.headers.get("retry-after")
    if retry_after is not None:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            return None
    return None


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
        request_id = request_id_of(vendor, response) if response.content else request_id_of(vendor, response, {})
        if first["type"] == "json_invalid" or not response.content:
            field, problem = root, "not valid JSON" + (" (empty body)" if not response.content else "")
        else:
            field = _loc(first["loc"])
            field = f"{root}.{field}" if field != "body" else root
            problem = first["msg"]
        raise RegistryResponseError(
            field=field, problem=problem, request_id=request_id, status_code=response.status_code
        ) from None


def _undecodable(exc: httpx.DecodingError) -> RegistryResponseError:
    return RegistryResponseError(
        field="body", problem=f"content-encoding could not be decoded ({exc})", request_id=None, status_code=None
    )


# ------------------------------------------------------------------------------------------------- transport


class RegistryTransport:
    """Sends signed requests to one registry endpoint, with retries and typed errors.

    Connection pools are created lazily and reused (keep-alive). The async pool belongs to the event loop that
    first used it.

    :param vendor: ``"pai"`` or ``"fabric"``: selects error parsing and throttling codes.
    :param base_url: scheme + host (+ port), e.g. ``https://aiworkspace.cn-hangzhou.aliyuncs.com``.
    :param auth: the ``httpx.Auth`` that signs each attempt.
    :param headers: headers sent (and signed) on every request.
    :param retry: the retry budget.
    :param timeout: httpx timeout.
    :param sleep: injectable for tests (sync); ``asleep`` likewise for async.
    :param max_connections: size of each connection pool (listing fetches 8 pages at once by default).
    """

    def __init__(
        self,
        *,
        vendor: Vendor,
        base_url: str,
        auth: httpx.Auth,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        asleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        max_connections: int = 16,
    ) -> None:
        self.vendor: Vendor = vendor
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            **(headers or {}),
        }
        self.retry = retry
        self.timeout = timeout
        self._extensions = {"timeout": timeout.as_dict()}
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], httpx.URL] = {}
        self._given = transport  # injected pools (tests: httpx.MockTransport) are reused after close()
        self._agiven = async_transport
        self._transport: httpx.BaseTransport | None = None
        self._async_transport: httpx.AsyncBaseTransport | None = None
        self._sleep = sleep
        self._asleep = asleep
        self._rng = rng or random.Random()
        self._limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)

    def __repr__(self) -> str:
        return f"RegistryTransport(vendor={self.vendor!r}, base_url={self.base_url!r})"

    # -- connection pools

    def _verify(self) -> ssl.SSLContext | bool:
        return shared_ssl_context() if self.base_url.startswith("https://") else False

    # httpx transports (connection pools) used directly, without an httpx.Client: the client's per-request work
    # (base-URL merge, cookie jar, redirect loop, event hooks) is a fifth of the CPU of a call and we use none of
    # it. The auth flow is driven here as the client would drive it, so every attempt is signed afresh.

    @property
    def http(self) -> httpx.BaseTransport:
        """The sync connection pool (created on first use)."""
        if self._transport is None:
            self._transport = self._given or httpx.HTTPTransport(
                verify=self._verify(), limits=self._limits, trust_env=False
            )
        return self._transport

    @property
    def ahttp(self) -> httpx.AsyncBaseTransport:
        """The async connection pool (created on first use; it belongs to the event loop that first used it)."""
        if self._async_transport is None:
            self._async_transport = self._agiven or httpx.AsyncHTTPTransport(
                verify=self._verify(), limits=self._limits, trust_env=False
            )
        return self._async_transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    async def aclose(self) -> None:
        if self._async_transport is not None:
            await self._async_transport.aclose()
            self._async_transport = None

    def _send(self, request: httpx.Request) -> httpx.Response:
        """One attempt: sign (the auth flow may answer a 401 with one more request), send, read the body."""
        http = self.http
        flow = self.auth.sync_auth_flow(request)
        request = next(flow)
        while True:
            try:
                response = http.handle_request(request)
                try:
                    response.read()
                finally:
                    response.close()
            except httpx.DecodingError as exc:  # not a TransportError: a corrupt gzip body would escape untyped
                raise _undecodable(exc) from None
            response.request = request
            try:
                request = flow.send(response)
            except StopIteration:
                return response

    async def _asend(self, request: httpx.Request) -> httpx.Response:
        """Async twin of :meth:`_send`."""
        http = self.ahttp
        flow = self.auth.async_auth_flow(request)
        request = await flow.__anext__()
        while True:
            try:
                response = await http.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            except httpx.DecodingError as exc:
                raise _undecodable(exc) from None
            response.request = request
            try:
                request = await flow.asend(response)
            except StopAsyncIteration:
                return response

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
        """The parsed URL, cached: a poll asks for the same URL again and again, and parsing is a tenth of a call."""
        key = (target, tuple(params) if params else ())
        url = self._urls.get(key)
        if url is None:
            url = httpx.URL(self.base_url + target)
            if params:
                url = url.copy_merge_params(list(params))
            if len(self._urls) >= 512:  # bounded: listing pages and many models must not grow it forever
                self._urls.clear()
            self._urls[key] = url
        return url

    def _decide(
        self, response: httpx.Response | None, exc: Exception | None, attempt: int, idempotent: bool
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when we must stop."""
        if not idempotent or attempt >= self.retry.max_attempts:
            return None
        if exc is not None:
            return self.retry.backoff(attempt, self._rng)
        assert response is not None
        if not _is_retryable(self.vendor, response):
            return None
        asked = _server_delay(response)
        if asked is not None:
            return min(asked, self.retry.max_delay)
        return self.retry.backoff(attempt, self._rng)

    def _fail(self, response: httpx.Response | None, exc: Exception | None, attempt: int) -> Exception:
        if exc is not None:
            return RegistryTransportError(
                f"{self.vendor} registry at {self.base_url} unreachable after {attempt} attempt(s): "
                f"{type(exc).__name__}: {exc}",
                attempts=attempt,
            )
        assert response is not None
        return map_error(self.vendor, response, attempts=attempt)

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
        :param params: query pairs that httpx form-encodes (Alibaba's wire form).
        :param idempotent: retry allowed; defaults to True for GET.
        """
        retry_ok = method == "GET" if idempotent is None else idempotent
        attempt = 0
        while True:
            attempt += 1
            request = self._build(method, target, params, content, headers)
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = self._send(request)
            except _RETRYABLE_EXC as exc:
                error = exc
            if response is not None and response.is_success:
                return response
            log.debug("%s %s attempt %d failed: %s", method, target, attempt, error or response)
            delay = self._decide(response, error, attempt, retry_ok)
            if delay is None:
                raise self._fail(response, error, attempt) from error
            self._sleep(delay)

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
        retry_ok = method == "GET" if idempotent is None else idempotent
        attempt = 0
        while True:
            attempt += 1
            request = self._build(method, target, params, content, headers)
            response: httpx.Response | None = None
            error: Exception | None = None
            try:
                response = await self._asend(request)
            except _RETRYABLE_EXC as exc:
                error = exc
            if response is not None and response.is_success:
                return response
            log.debug("%s %s attempt %d failed: %s", method, target, attempt, error or response)
            delay = self._decide(response, error, attempt, retry_ok)
            if delay is None:
                raise self._fail(response, error, attempt) from error
            await self._asleep(delay)
