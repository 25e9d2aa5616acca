"""What both registry hooks share: lazy connection lookup, endpoint and credential rules, the transport settings
(retry budget, deadlines, body cap, proxy, CA bundle) and the paging cap.

Paging itself lives in :mod:`airflow_provider_modelreg.paging` (re-exported here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import BaseHook, Connection

from airflow_provider_modelreg.errors import RegistryConnectionConfigError, RegistryInputError
from airflow_provider_modelreg.hooks.specs import Deferred, ListSpec, RequestSpec
from airflow_provider_modelreg.paging import DEFAULT_MAX_PAGES, MAX_PAGES_LIMIT, acollect_pages, collect_pages
from airflow_provider_modelreg.transport import DEFAULT_RETRY, RetryPolicy, is_loopback, public_url
from airflow_provider_modelreg.validation import PLACEHOLDERS, setting_number

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "Listing",
    "ModelRegistryHookBase",
    "TotalSeen",
    "acollect_pages",
    "collect_pages",
    "hook_overrides",
    "parse_endpoint",
]

T = TypeVar("T")
R = TypeVar("R")


class Listing(list[T], Generic[T]):
    """The items of a listing, plus ``total``: how many the registry reported matching (at least ``len``).

    ``total > len(listing)`` when ``max_results`` cut the listing.
    """

    def __init__(self, items: Iterable[T] = (), total: int | None = None) -> None:
        super().__init__(items)
        self.total: int = len(self) if total is None else max(total, len(self))

    @property
    def truncated(self) -> bool:
        """True when the registry holds more matches than this listing carries."""
        return self.total > len(self)


class TotalSeen:
    """The match count reported by the furthest page a listing read (pages may be read in several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._page = -1
        self.total = 0

    def note(self, page: int, total: Any) -> None:
        """Remember ``total`` when ``page`` is the furthest page read so far (non-integers are the plan's to refuse)."""
        if isinstance(total, int) and not isinstance(total, bool):
            with self._lock:
                if page >= self._page:
                    self._page, self.total = page, total

    def noted(self, page: int, answer: tuple[Sequence[T], Any]) -> tuple[Sequence[T], Any]:
        """:meth:`note` the total of a page's ``(items, total)`` answer, and return the answer."""
        self.note(page, answer[1])
        return answer

    def listing(self, items: Iterable[T]) -> Listing[T]:
        """``items`` with the total seen."""
        return Listing(items, self.total)


_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


#: ``test_connection`` makes one attempt within this many seconds.
PROBE_TIMEOUT = 10.0

_CREDENTIAL = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def parse_endpoint(value: Any, field: str = "endpoint") -> str:
    """A full ``https://host[:port]`` URL; ``http://`` only to a loopback host (a local emulator)."""
    if not isinstance(value, str) or not value.strip():
        raise RegistryConnectionConfigError(field, "must be a full URL such as https://host", value)
    parts = urlsplit(value.strip())
    if "@" in parts.netloc:
        # https://ak:secret@host: the value is never repeated (it holds a secret), nor used
        raise RegistryConnectionConfigError(
            field,
            f"must not carry user:password@ (got {public_url(value.strip())!r} with the user part removed); put "
            "credentials in the connection's login/password or its credential extras",
        )
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RegistryConnectionConfigError(
            field, "must be a full URL starting with https:// (or http:// for a local emulator)", value
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise RegistryConnectionConfigError(
            field, "must use https://; http:// is only allowed to a loopback host (127.0.0.0/8, ::1, localhost)", value
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise RegistryConnectionConfigError(field, "must be scheme://host[:port] with no path or query", value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise RegistryConnectionConfigError(field, "has an invalid port", value) from None
    return f"{parts.scheme}://{parts.netloc}"


def check_region(value: Any, field: str = "region") -> str:
    """A region id such as ``cn-hangzhou``."""
    if not isinstance(value, str) or _REGION.fullmatch(value) is None:
        raise RegistryConnectionConfigError(field, "must be a region id like cn-hangzhou", value)
    return value


def hook_overrides(max_attempts: int | None, call_timeout: float | None) -> dict[str, Any]:
    """Hook constructor arguments for a task's or trigger's request settings (unset ones leave the connection's).

    :param max_attempts: attempts per registry request.
    :param call_timeout: seconds per registry call.
    """
    given = {"max_attempts": max_attempts, "call_timeout": call_timeout}
    return {name: value for name, value in given.items() if value is not None}


def extra_str(extras: dict[str, Any], key: str) -> str | None:
    """A string extra, stripped; a missing or empty value counts as unset, anything but a string is refused.

    An integer is taken as its digits: Airflow reads each value of a connection URI's query as JSON, so the
    documented ``pai://...?workspace_id=12345`` reaches the hook as the number 12345 (Airflow 3.1 among others).
    """
    value = extras.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise RegistryConnectionConfigError(key, "must be a string", value)
    return value.strip()


def check_credential(value: Any, field: str, *, secret: bool = True) -> str:
    """A credential that can go into an HTTP header: printable ASCII, no control characters (a pasted newline), no
    surrounding spaces, not a placeholder (``'None'``, ``'null'``). The value is never shown when ``secret``."""
    if isinstance(value, str) and value in PLACEHOLDERS:
        raise RegistryConnectionConfigError(field, "holds a placeholder ('None'/'null'): leave it empty or set a value")
    if not isinstance(value, str) or _CREDENTIAL.fullmatch(value) is None:
        raise RegistryConnectionConfigError(
            field,
            "must be printable ASCII with no control characters (a pasted newline?) and no surrounding spaces",
            None if secret else value,
        )
    return value


def parse_proxy(value: Any, field: str = "proxy") -> str:
    """``http://[user:password@]host:port`` (or ``https://``) of a forward/CONNECT proxy."""
    text = value.strip() if isinstance(value, str) else ""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise RegistryConnectionConfigError(field, "must be a proxy URL such as http://proxy.example.com:3128")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise RegistryConnectionConfigError(field, "has an invalid port") from None
    mask_secrets(parts.password)
    return text.rstrip("/")


def check_ca_bundle(value: Any, field: str = "ca_bundle") -> str:
    """A readable PEM file of CA certificates (loaded once per process)."""
    if not isinstance(value, str) or not os.path.isfile(value):
        raise RegistryConnectionConfigError(field, "must be the path of a readable PEM file of CA certificates", value)
    try:
        from airflow_provider_modelreg.transport import shared_ssl_context

        shared_ssl_context(value)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise RegistryConnectionConfigError(
            field, f"could not be loaded as PEM CA certificates ({exc})", value
        ) from None
    return value


def _request_options(spec: RequestSpec[Any]) -> dict[str, Any]:
    """The keyword arguments of ``RegistryTransport.request``/``arequest`` for a spec."""
    return {
        "params": spec.query or None,
        "content": spec.body,
        "headers": dict(spec.headers) or None,
        "idempotent": spec.idempotent,
    }


def _bound(spec: ListSpec[T, R] | Callable[[Connection], ListSpec[T, R]], conn: Connection) -> ListSpec[T, R]:
    return spec if isinstance(spec, ListSpec) else spec(conn)


def _paging_options(spec: ListSpec[Any, Any], max_pages: int) -> dict[str, Any]:
    """The keyword arguments of ``collect_pages``/``acollect_pages`` for a listing spec."""
    return {
        "page_size": spec.page_size,
        "key": spec.key,
        "max_results": spec.max_results,
        "max_pages": max_pages,
        "concurrency": spec.concurrency,
        "total_field": spec.total_field,
        "page_field": spec.page_field,
    }


def mask_secrets(*secrets: str | None) -> None:
    """Register secrets with Airflow's log masker (task logs, rendered fields)."""
    from airflow.providers.common.compat.sdk import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


def _transports_of(transport: RegistryTransport) -> list[RegistryTransport]:
    from airflow_provider_modelreg.transport import RegistryTransport  # a transport exists: its module is loaded

    """The transport and those of the credential sources behind its auth (``auth.credential.source``, sources made of
    sources): everything whose first request would otherwise build an SSL context on the event loop."""
    found: list[RegistryTransport] = [transport]
    credential = getattr(transport.auth, "credential", None)
    pending: list[tuple[Any, int]] = [(getattr(credential, "source", None), 0)]
    while pending:
        source, depth = pending.pop()
        if source is None or depth > 4:
            continue
        for value in vars(source).values() if hasattr(source, "__dict__") else ():
            if isinstance(value, RegistryTransport):
                if all(value is not seen for seen in found):
                    found.append(value)
            elif hasattr(value, "flow") and hasattr(value, "cache_key"):
                pending.append((value, depth + 1))
    return found


class ModelRegistryHookBase(BaseHook):
    """Lazy connection lookup and a transport built once per hook.

    The connection is looked up on first use, never in ``__init__`` (DAG parsing must not hit the metadata DB or
    a secrets backend).

    Transport settings come from the connection extras (``max_attempts``, ``attempt_timeout``, ``call_timeout``,
    ``max_response_bytes``, ``proxy``, ``ca_bundle``); the constructor arguments below override them.

    :param conn_id: the Airflow connection id.
    :param max_attempts: attempts per request, the first included (1-20), overriding the extra ``max_attempts``
        and the ``retry`` policy's budget.
    :param retry: the whole retry policy (budget, waits and deadlines), replacing the extras' ``max_attempts``,
        ``attempt_timeout`` and ``call_timeout``; default 5 attempts, 30 s per attempt, 120 s per call.
    :param attempt_timeout: seconds for one attempt (connect, headers and body), overriding extras and ``retry``.
    :param call_timeout: seconds for a whole call (every attempt and wait), overriding extras and ``retry``.
    :param max_response_bytes: cap of a decoded response body (default 32 MiB), overriding the extra.
    :param max_pages: requests one listing may send at most (1 to 1,000,000); default from the connection extra
        ``max_pages`` or 1,000. A listing that would need more raises
        :class:`~airflow_provider_modelreg.errors.RegistryPagingLimitError` before sending them.
    :param transport: an ``httpx`` transport to use instead of the network (tests).
    :param async_transport: likewise for the async client.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        max_attempts: int | None = None,
        retry: RetryPolicy | None = None,
        max_pages: int | None = None,
        attempt_timeout: float | None = None,
        call_timeout: float | None = None,
        max_response_bytes: int | None = None,
        transport: Any = None,
        async_transport: Any = None,
    ) -> None:
        super().__init__()
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 20
        ):
            raise RegistryInputError("max_attempts", "must be an integer from 1 to 20", max_attempts)
        self._max_attempts = max_attempts
        self._attempt_timeout = attempt_timeout
        self._call_timeout = call_timeout
        if retry is not None or attempt_timeout is not None or call_timeout is not None:
            try:  # refuse bad values at once, not at the first request
                dataclasses.replace(retry or DEFAULT_RETRY, **self._timeouts())
            except (TypeError, ValueError) as exc:
                raise RegistryInputError(
                    "attempt_timeout" if attempt_timeout is not None else "call_timeout", str(exc)
                ) from None
        if max_response_bytes is not None and (
            isinstance(max_response_bytes, bool) or not isinstance(max_response_bytes, int) or max_response_bytes < 1
        ):
            raise RegistryInputError("max_response_bytes", "must be a positive integer", max_response_bytes)
        self._max_response_bytes = max_response_bytes
        if max_pages is not None and (
            isinstance(max_pages, bool) or not isinstance(max_pages, int) or not 1 <= max_pages <= MAX_PAGES_LIMIT
        ):
            raise RegistryInputError("max_pages", f"must be an integer from 1 to {MAX_PAGES_LIMIT:,}", max_pages)
        self.conn_id = conn_id
        self._retry = retry
        self._max_pages = max_pages
        self._httpx_transport = transport
        self._httpx_async_transport = async_transport
        self._transport: RegistryTransport | None = None
        self._atransport: RegistryTransport | None = None
        self._conn: Connection | None = None

    # -- connection

    @property
    def connection(self) -> Connection:
        """The Airflow connection, fetched once (sync)."""
        if self._conn is None:
            self._conn = self.get_connection(self.conn_id)
        return self._conn

    async def aconnection(self) -> Connection:
        """The Airflow connection, fetched once with the async API (safe inside a triggerer's event loop)."""
        if self._conn is None:
            # BaseHook.aget_connection where it masks asynchronously (3.3.2+), else get_connection in a thread
            self._conn = await get_async_connection(conn_id=self.conn_id, hook=self)
        return self._conn

    def _timeouts(self) -> dict[str, Any]:
        given = {
            "max_attempts": self._max_attempts,
            "attempt_timeout": self._attempt_timeout,
            "call_timeout": self._call_timeout,
        }
        return {k: v for k, v in given.items() if v is not None}

    def retry_policy(self, extras: dict[str, Any]) -> RetryPolicy:
        """The retry policy: constructor ``retry`` or the extras, then constructor ``max_attempts`` and timeouts on
        top."""
        policy = self._retry
        if policy is None:
            settings: dict[str, Any] = {}
            attempts = setting_number(extras.get("max_attempts"), "max_attempts", 1, 20, integer=True)
            if attempts is not None:
                settings["max_attempts"] = int(attempts)
            attempt_timeout = setting_number(extras.get("attempt_timeout"), "attempt_timeout", 0.1, 3600)
            if attempt_timeout is not None:
                settings["attempt_timeout"] = attempt_timeout
            call_timeout = setting_number(extras.get("call_timeout"), "call_timeout", 0.1, 86400)
            if call_timeout is not None:
                settings["call_timeout"] = call_timeout
            policy = dataclasses.replace(DEFAULT_RETRY, **settings) if settings else DEFAULT_RETRY
        timeouts = self._timeouts()
        return dataclasses.replace(policy, **timeouts) if timeouts else policy

    def transport_options(self, conn: Connection) -> dict[str, Any]:
        """Keyword arguments of :class:`RegistryTransport` common to both vendors, read from the connection."""
        from airflow_provider_modelreg.transport import DEFAULT_MAX_RESPONSE_BYTES

        extras = conn.extra_dejson
        cap = self._max_response_bytes
        if cap is None:
            raw = setting_number(extras.get("max_response_bytes"), "max_response_bytes", 1024, 2**31, integer=True)
            cap = DEFAULT_MAX_RESPONSE_BYTES if raw is None else int(raw)
        proxy = extra_str(extras, "proxy")
        ca_bundle = extra_str(extras, "ca_bundle")
        return {
            "retry": self.retry_policy(extras),
            "max_response_bytes": cap,
            "proxy": None if proxy is None else parse_proxy(proxy),
            "ca_bundle": None if ca_bundle is None else check_ca_bundle(ca_bundle),
            "transport": self._httpx_transport,
            "async_transport": self._httpx_async_transport,
        }

    @contextmanager
    def probing(self) -> Iterator[None]:
        """Within this block, calls make one attempt with a short deadline (``test_connection``)."""
        saved = (self._retry, self._max_attempts, self._attempt_timeout, self._call_timeout, self._transport)
        self._retry = RetryPolicy(max_attempts=1, attempt_timeout=PROBE_TIMEOUT, call_timeout=PROBE_TIMEOUT)
        self._max_attempts = self._attempt_timeout = self._call_timeout = None
        self._transport = None
        try:
            yield
        finally:
            if self._transport is not None:
                self._transport.close()
            self._retry, self._max_attempts, self._attempt_timeout, self._call_timeout, self._transport = saved

    def max_pages(self, conn: Connection) -> int:
        """The paging cap: the hook's ``max_pages`` argument, else the connection extra, else 1,000."""
        if self._max_pages is not None:
            return self._max_pages
        # the same parser as every other numeric setting: 1.9, true, 'None' and '10 pages' are refused, not cut
        pages = setting_number(conn.extra_dejson.get("max_pages"), "max_pages", 1, MAX_PAGES_LIMIT, integer=True)
        return DEFAULT_MAX_PAGES if pages is None else int(pages)

    def build_transport(self, conn: Connection) -> RegistryTransport:
        """Create the vendor transport from a connection (implemented per vendor)."""
        raise TypeError(f"{type(self).__name__} must override build_transport")

    @property
    def transport(self) -> RegistryTransport:
        """The sync transport (one keep-alive connection pool per hook)."""
        if self._transport is None:
            self._transport = self.build_transport(self.connection)
        return self._transport

    def get_conn(self) -> RegistryTransport:
        """The sync transport (Airflow's hook protocol): signs, retries and maps errors; closed by :meth:`close`."""
        return self.transport

    def _build_prepared(self, conn: Connection) -> RegistryTransport:
        transport = self.build_transport(conn)
        for each in _transports_of(transport):
            each.prepare()
        return transport

    @property
    def has_async_client(self) -> bool:
        """True once :meth:`atransport` has built the async client (until :meth:`aclose`)."""
        return self._atransport is not None

    async def atransport(self) -> RegistryTransport:
        """The async transport (one keep-alive connection pool per hook).

        Built in a thread: building reads the environment, files (the CA bundle, its SSL context, a credential
        profile) and may take tens of milliseconds, which must not stall a triggerer's event loop.
        """
        if self._atransport is None:
            conn = await self.aconnection()
            built = await asyncio.to_thread(self._build_prepared, conn)
            if self._atransport is None:  # another task of this hook may have finished first: keep its transport
                self._atransport = built
        return self._atransport

    def close(self) -> None:
        """Close the sync client; a later call opens a new one."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    async def aclose(self) -> None:
        """Close the async client; a later call opens a new one."""
        transport, self._atransport = self._atransport, None
        if transport is not None:
            await transport.aclose()

    # -- the executors: every registry operation is a spec (hooks.specs) run by one of these

    def _run(self, spec: RequestSpec[T] | Deferred[T]) -> T:
        """Send one request with the sync client and parse its answer."""
        if not isinstance(spec, RequestSpec):
            spec = spec(self.connection)
        transport = self.transport
        return spec.parse(transport, transport.request(spec.method, spec.path, **_request_options(spec)))

    async def _arun(self, spec: RequestSpec[T] | Deferred[T]) -> T:
        """Send one request with the async client and parse its answer."""
        if not isinstance(spec, RequestSpec):
            spec = spec(await self.aconnection())
        transport = await self.atransport()
        return spec.parse(transport, await transport.arequest(spec.method, spec.path, **_request_options(spec)))

    def _collect(self, spec: ListSpec[T, R] | Callable[[Connection], ListSpec[T, R]]) -> R:
        """Run a paged listing with the sync client (pages in threads, planned by ``PagePlan``)."""
        conn = self.connection
        listing, seen = _bound(spec, conn), TotalSeen()
        self.transport  # noqa: B018 - the client is built before the paging cap is read

        def fetch(page: int) -> tuple[Sequence[T], Any]:
            return seen.noted(page, self._run(listing.page(page)))

        return listing.finish(collect_pages(fetch, **_paging_options(listing, self.max_pages(conn))), seen.total)

    async def _acollect(self, spec: ListSpec[T, R] | Callable[[Connection], ListSpec[T, R]]) -> R:
        """Run a paged listing with the async client (pages as tasks, planned by ``PagePlan``)."""
        conn = await self.aconnection()
        listing, seen = _bound(spec, conn), TotalSeen()
        await self.atransport()

        async def fetch(page: int) -> tuple[Sequence[T], Any]:
            return seen.noted(page, await self._arun(listing.page(page)))

        return listing.finish(await acollect_pages(fetch, **_paging_options(listing, self.max_pages(conn))), seen.total)
