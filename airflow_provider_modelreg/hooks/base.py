"""What both registry hooks share: lazy connection lookup, endpoint rules, the retry budget and paging."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

from airflow.sdk import BaseHook, Connection

from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.transport import DEFAULT_RETRY, RegistryTransport, RetryPolicy

T = TypeVar("T")

__all__ = ["ModelRegistryHookBase", "acollect_pages", "collect_pages", "parse_endpoint"]

_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def parse_endpoint(value: Any, field: str = "endpoint") -> str:
    """A full ``https://host[:port]`` URL (``http://`` is the explicit opt-in for a local emulator)."""
    if not isinstance(value, str) or not value.strip():
        raise RegistryConnectionConfigError(field, "must be a full URL such as https://host", value)
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise RegistryConnectionConfigError(
            field, "must be a full URL starting with https:// (or http:// for a local emulator)", value
        )
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
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


def extra_str(extras: dict[str, Any], key: str) -> str | None:
    """A string extra; empty strings count as unset. ``http`` values are refused except in endpoints."""
    value = extras.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RegistryConnectionConfigError(key, "must be a string", value)
    return value.strip()


def mask_secrets(*secrets: str | None) -> None:
    """Register secrets with Airflow's log masker (task logs, rendered fields)."""
    from airflow.sdk.log import mask_secret

    for secret in secrets:
        if secret:
            mask_secret(secret)


class ModelRegistryHookBase(BaseHook):
    """Lazy connection lookup and a transport built once per hook.

    The connection is looked up on first use, never in ``__init__`` (DAG parsing must not hit the metadata DB or
    a secrets backend).

    :param conn_id: the Airflow connection id.
    :param retry: retry budget; default from the connection extra ``max_attempts`` or 10 attempts.
    :param transport: an ``httpx`` transport to use instead of the network (tests).
    :param async_transport: likewise for the async client.
    """

    def __init__(
        self,
        conn_id: str,
        *,
        retry: RetryPolicy | None = None,
        transport: Any = None,
        async_transport: Any = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self._retry = retry
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
            self._conn = await self.aget_connection(self.conn_id)
        return self._conn

    def retry_policy(self, extras: dict[str, Any]) -> RetryPolicy:
        if self._retry is not None:
            return self._retry
        raw = extras.get("max_attempts")
        if raw is None or raw == "":
            return DEFAULT_RETRY
        try:
            attempts = int(raw)
        except (TypeError, ValueError):
            raise RegistryConnectionConfigError("max_attempts", "must be an integer from 1 to 20", raw) from None
        if not 1 <= attempts <= 20:
            raise RegistryConnectionConfigError("max_attempts", "must be an integer from 1 to 20", raw)
        return RetryPolicy(max_attempts=attempts)

    def build_transport(self, conn: Connection) -> RegistryTransport:
        """Create the vendor transport from a connection (implemented per vendor)."""
        raise TypeError(f"{type(self).__name__} must override build_transport")

    @property
    def transport(self) -> RegistryTransport:
        """The sync transport (one keep-alive connection pool per hook)."""
        if self._transport is None:
            self._transport = self.build_transport(self.connection)
        return self._transport

    async def atransport(self) -> RegistryTransport:
        """The async transport (one keep-alive connection pool per hook)."""
        if self._atransport is None:
            self._atransport = self.build_transport(await self.aconnection())
        return self._atransport

    def close(self) -> None:
        """Close the sync client."""
        if self._transport is not None:
            self._transport.close()

    async def aclose(self) -> None:
        """Close the async client."""
        if self._atransport is not None:
            await self._atransport.aclose()


# ------------------------------------------------------------------------------------------------- paging


def _merge(pages: dict[int, list[T]], key: Callable[[T], Hashable], max_results: int | None) -> list[T]:
    """Pages in order, each item once (items shift between pages when versions are created while paging)."""
    seen: set[Hashable] = set()
    out: list[T] = []
    for index in sorted(pages):
        for item in pages[index]:
            k = key(item)
            if k in seen:
                continue
            seen.add(k)
            out.append(item)
            if max_results is not None and len(out) >= max_results:
                return out
    return out


def _pages_needed(total: int, page_size: int, max_results: int | None) -> int:
    wanted = total if max_results is None else min(total, max_results)
    return max(1, math.ceil(wanted / page_size))


def collect_pages(
    fetch: Callable[[int], tuple[list[T], int]],
    *,
    page_size: int,
    key: Callable[[T], Hashable],
    max_results: int | None = None,
    concurrency: int = 8,
) -> list[T]:
    """Fetch page 0, then the other pages concurrently (bounded) once the total is known.

    ``fetch(i)`` returns ``(items of page i, total reported)``. If the total grows while paging (new versions),
    further pages are fetched until a short page: nothing that existed when listing began is missed. Any error
    propagates: never a partial list.
    """
    first, total = fetch(0)
    pages = {0: first}
    count = _pages_needed(total, page_size, max_results)
    if count > 1:
        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, count - 1))) as pool:
            for index, (items, seen_total) in zip(range(1, count), pool.map(fetch, range(1, count)), strict=True):
                pages[index] = items
                total = max(total, seen_total)
    index = count
    while len(pages[index - 1]) == page_size and index < _pages_needed(total, page_size, max_results):
        pages[index], seen_total = fetch(index)
        total = max(total, seen_total)
        index += 1
    return _merge(pages, key, max_results)


async def acollect_pages(
    fetch: Callable[[int], Awaitable[tuple[list[T], int]]],
    *,
    page_size: int,
    key: Callable[[T], Hashable],
    max_results: int | None = None,
    concurrency: int = 8,
) -> list[T]:
    """Async twin of :func:`collect_pages` (``asyncio.gather`` bounded by a semaphore)."""
    first, total = await fetch(0)
    pages = {0: first}
    count = _pages_needed(total, page_size, max_results)
    if count > 1:
        gate = asyncio.Semaphore(concurrency)

        async def bounded(i: int) -> tuple[list[T], int]:
            async with gate:
                return await fetch(i)

        tasks = [asyncio.ensure_future(bounded(i)) for i in range(1, count)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:  # one failed page fails the listing: stop the others, no partial list
                task.cancel()
            raise
        for index, (items, seen_total) in enumerate(results, start=1):
            pages[index] = items
            total = max(total, seen_total)
    index = count
    while len(pages[index - 1]) == page_size and index < _pages_needed(total, page_size, max_results):
        pages[index], seen_total = await fetch(index)
        total = max(total, seen_total)
        index += 1
    return _merge(pages, key, max_results)
