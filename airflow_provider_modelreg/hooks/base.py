"""What both registry hooks share: lazy connection lookup, endpoint rules, the retry budget and the paging cap.

Paging itself lives in :mod:`airflow_provider_modelreg.paging` (re-exported here).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook, Connection

from airflow_provider_modelreg.errors import RegistryConnectionConfigError, RegistryInputError
from airflow_provider_modelreg.paging import DEFAULT_MAX_PAGES, MAX_PAGES_LIMIT, acollect_pages, collect_pages
from airflow_provider_modelreg.transport import DEFAULT_RETRY, RegistryTransport, RetryPolicy

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
        retry: RetryPolicy | None = None,
        max_pages: int | None = None,
        transport: Any = None,
        async_transport: Any = None,
    ) -> None:
        super().__init__()
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

    def max_pages(self, conn: Connection) -> int:
        """The paging cap: the hook's ``max_pages`` argument, else the connection extra, else 1,000."""
        if self._max_pages is not None:
            return self._max_pages
        extras = conn.extra_dejson
        raw = extras.get("max_pages")
        if raw is None or raw == "":
            return DEFAULT_MAX_PAGES
        rule = f"must be an integer from 1 to {MAX_PAGES_LIMIT:,}"
        if isinstance(raw, bool):
            raise RegistryConnectionConfigError("max_pages", rule, raw)
        try:
            pages = int(raw)
        except (TypeError, ValueError):
            raise RegistryConnectionConfigError("max_pages", rule, raw) from None
        if not 1 <= pages <= MAX_PAGES_LIMIT:
            raise RegistryConnectionConfigError("max_pages", rule, raw)
        return pages

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
