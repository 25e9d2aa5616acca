"""The client: :class:`RegistryTransport`, one sync and one async connection pool per registry endpoint, each
request signed per attempt by the ``httpx.Auth`` flow and sent under the retry plan and the deadlines."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from typing import TypedDict, TypeVar, Unpack
from urllib.parse import urlencode, urlsplit

import httpx

from airflow_provider_modelreg import __version__
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryInputError,
    RegistryResponseError,
    RegistryTransportError,
)
from airflow_provider_modelreg.transport.bodies import aread_body, read_body
from airflow_provider_modelreg.transport.deadlines import _DEADLINE, _AsyncDeadlineBackend, _DeadlineBackend
from airflow_provider_modelreg.transport.network import (
    _file_signature,
    environment_proxy,
    is_loopback,
    public_url,
    shared_ssl_context,
)
from airflow_provider_modelreg.transport.responses import (
    M,
    Vendor,
    _cert_failure,
    _exception_failure,
    _response_failure,
    map_error,
    parse_model,
    request_id_of,
)
from airflow_provider_modelreg.transport.retry import (
    CONNECT_TIMEOUT,
    DEFAULT_RETRY,
    Failure,
    RetryDecision,
    RetryPlan,
    RetryPolicy,
)

log = logging.getLogger("airflow_provider_modelreg.transport")  # the name it had as one module

USER_AGENT = f"airflow-provider-modelreg/{__version__} httpx/{httpx.__version__}"
#: Default cap of a decoded response body.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024


class RequestOptions(TypedDict, total=False):
    """The keyword arguments of :meth:`RegistryTransport.request` and :meth:`RegistryTransport.arequest`.

    ``params``: query pairs, encoded as the Alibaba SDK does (form encoding); ``content``: the body; ``headers``:
    added to the transport's own; ``idempotent``: retry allowed (default: True for GET).
    """

    params: Sequence[tuple[str, str]] | None
    content: bytes | None
    headers: Mapping[str, str] | None
    idempotent: bool | None


_Pool = TypeVar("_Pool", httpx.HTTPTransport, httpx.AsyncHTTPTransport)


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

    def _pool(self, kind: type[_Pool]) -> _Pool:
        """A new sync or async connection pool of this transport's settings, every socket operation bounded by the
        attempt deadline."""
        pool = kind(verify=self._verify(), limits=self._limits, trust_env=False, proxy=self._proxy())
        core = pool._pool
        backend = _DeadlineBackend if isinstance(pool, httpx.HTTPTransport) else _AsyncDeadlineBackend
        core._network_backend = backend(core._network_backend)
        return pool

    @property
    def http(self) -> httpx.BaseTransport:
        """The sync connection pool (created on first use)."""
        if self._transport is None:
            self._transport = self._given if self._given is not None else self._pool(httpx.HTTPTransport)
        return self._transport

    @property
    def ahttp(self) -> httpx.AsyncBaseTransport:
        """The async connection pool of the running event loop (created on first use in that loop)."""
        loop = asyncio.get_running_loop()
        if self._async_transport is not None and self._agiven is None and (self._aloop and self._aloop()) is not loop:
            # The pool's connections belong to a previous (likely closed) loop: abandon them, start afresh.
            self._async_transport = None
        if self._async_transport is None:
            self._async_transport = self._agiven if self._agiven is not None else self._pool(httpx.AsyncHTTPTransport)
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

    def _read(self, response: httpx.Response) -> None:
        read_body(response, self.max_response_bytes, self.vendor)

    async def _aread(self, response: httpx.Response) -> None:
        await aread_body(response, self.max_response_bytes, self.vendor)

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

    def _plan(self, method: str, options: RequestOptions) -> RetryPlan:
        unknown = sorted(options.keys() - RequestOptions.__optional_keys__)
        if unknown:  # as Python refuses a keyword argument the signature does not name
            raise TypeError(f"unexpected keyword argument {unknown[0]!r} (RequestOptions names the known ones)")
        idempotent = options.get("idempotent")
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

    def _log(self, method: str, target: str, plan: RetryPlan, failure: Failure, decision: RetryDecision) -> None:
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

    def _begin(self, plan: RetryPlan, method: str, target: str, options: RequestOptions) -> tuple[float, httpx.Request]:
        """The next attempt's deadline and its request, built afresh."""
        deadline = plan.begin(self._clock())
        return deadline, self._build(
            method, target, options.get("params"), options.get("content"), options.get("headers")
        )

    def _after(
        self,
        method: str,
        target: str,
        plan: RetryPlan,
        deadline: float,
        response: httpx.Response | None,
        caught: Exception | None,
    ) -> float:
        """After an attempt that failed (an answer that is no 2xx, or the transport error caught): how long to wait
        before the next one (logged), or raise the typed error when the plan gives up."""
        failure, error, cause = self._failure(response, caught, deadline, plan.attempt)
        decision = plan.after(failure, self._clock())
        self._log(method, target, plan, failure, decision)
        if decision.wait is None:
            raise error from cause
        return decision.wait

    def request(self, method: str, target: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send with retries; return a 2xx response (body read) or raise a typed error.

        :param target: path (already percent-encoded) and, for Huawei, the canonical query string.
        :param options: see :class:`RequestOptions`.
        """
        plan = self._plan(method, options)
        while True:
            deadline, request = self._begin(plan, method, target, options)
            caught: Exception | None = None
            try:
                response: httpx.Response | None = self._send(request, deadline)
            except (httpx.TransportError, UnicodeEncodeError) as exc:
                response, caught = None, exc
            if response is not None and response.is_success:
                return response
            self._sleep(self._after(method, target, plan, deadline, response, caught))

    async def arequest(self, method: str, target: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Async twin of :meth:`request`."""
        plan = self._plan(method, options)
        while True:
            caught: Exception | None = None
            response: httpx.Response | None
            # A slot of the gate is held only while this attempt is on the wire, not during retry waits, and the
            # attempt (its attempt_timeout) begins once it has one: ten thousand reads queued behind eight slots
            # would otherwise spend their attempts in the queue and time out. call_timeout still counts the queue.
            async with self.attempt_gate if self.attempt_gate is not None else nullcontext():
                deadline, request = self._begin(plan, method, target, options)
                try:
                    response = await self._asend(request, deadline)
                except (httpx.TransportError, UnicodeEncodeError) as exc:
                    response, caught = None, exc
            if response is not None and response.is_success:
                return response
            await self._asleep(self._after(method, target, plan, deadline, response, caught))
