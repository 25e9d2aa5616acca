"""Huawei Cloud IAM token authentication for DataArts Fabric, as an :class:`httpx.Auth`.

``POST /v3/auth/tokens`` (password method, project scope) returns the token in the ``X-Subject-Token`` header and
``expires_at`` in the body. The token is cached and shared by every request of the hook; it is refreshed when
less than ``min(300 s, 10 % of its lifetime)`` is left, and once when a request is answered 401 (the token may
have been revoked early). Concurrent requests never fetch more than one token at a time.

The token request goes through a :class:`~airflow_provider_modelreg.transport.RegistryTransport` like every other
call: the same retry policy (a 503 or 429 from IAM is retried), deadlines, body cap, proxy and CA settings. Every
token obtained is registered with Airflow's secret masker, and httpcore's DEBUG log of the response headers has the
``X-Subject-Token`` value redacted (it is logged before any masker could know it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from airflow_provider_modelreg.errors import RegistryResponseError
from airflow_provider_modelreg.transport import RegistryTransport

__all__ = ["IamToken", "IamTokenAuth", "redact_subject_tokens"]

_SUBJECT_TOKEN = re.compile(r"(x-subject-token['\"]?\s*[,:=]\s*b?['\"]?)[^'\"\s,)\]]+", re.IGNORECASE)


class _RedactSubjectToken(logging.Filter):
    """Redacts ``X-Subject-Token`` values in httpcore's DEBUG records (``receive_response_headers.complete``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and "subject-token" in record.msg.lower():
            record.msg = _SUBJECT_TOKEN.sub(r"\1***", record.msg)
        return True


_REDACT = _RedactSubjectToken()


def redact_subject_tokens() -> None:
    """Install the redacting filter on httpcore's protocol loggers (idempotent; done on import)."""
    for name in ("httpcore.http11", "httpcore.http2", "httpcore.proxy", "httpcore.connection"):
        logger = logging.getLogger(name)
        if _REDACT not in logger.filters:
            logger.addFilter(_REDACT)


redact_subject_tokens()


def _mask(token: str) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret(token)


class _NoAuth(httpx.Auth):
    """The token request itself carries the password in its body, nothing in its headers."""


@dataclass(frozen=True)
class IamToken:
    """A fetched token; ``value`` is a secret."""

    value: str
    issued_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IamToken(expires_at={self.expires_at.isoformat()})"

    def needs_refresh(self, now: datetime) -> bool:
        lifetime = (self.expires_at - self.issued_at).total_seconds()
        margin = min(300.0, 0.1 * max(lifetime, 0.0))
        return (self.expires_at - now).total_seconds() < margin


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class IamTokenAuth(httpx.Auth):
    """Adds ``X-Auth-Token``, fetching and refreshing a project-scoped IAM token as needed.

    :param iam_url: IAM base URL, e.g. ``https://iam.cn-north-4.myhuaweicloud.com``.
    :param user_name: IAM user name.
    :param password: IAM user password (secret).
    :param domain_name: the account (domain) the user belongs to.
    :param project_id: scope by project id; else ``project_name`` (the region name) is used.
    :param project_name: scope by project name.
    :param clock: zero-argument callable returning an aware UTC datetime.
    :param transport: ``httpx`` transport instead of the network (tests); ``async_transport`` likewise.
    :param transport_options: further :class:`~airflow_provider_modelreg.transport.RegistryTransport` arguments
        (``retry``, ``max_response_bytes``, ``proxy``, ``trust_env``, ``ca_bundle``, ``sleep``, ...).
    """

    requires_response_body = True

    def __init__(
        self,
        *,
        iam_url: str,
        user_name: str,
        password: str,
        domain_name: str,
        project_id: str | None = None,
        project_name: str | None = None,
        clock: Callable[[], datetime] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        **transport_options: Any,
    ) -> None:
        self.iam_url = iam_url.rstrip("/")
        self.user_name = user_name
        self._password = password
        self.domain_name = domain_name
        self.project_id = project_id
        self.project_name = project_name
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        #: the transport of the token requests (retries, deadlines, body cap, proxy, CA bundle)
        self.iam = RegistryTransport(
            vendor="fabric",
            base_url=self.iam_url,
            auth=_NoAuth(),
            headers={"Content-Type": "application/json;charset=utf8"},
            transport=transport,
            async_transport=async_transport,
            max_connections=2,
            **transport_options,
        )
        self._token: IamToken | None = None
        self._lock = threading.Lock()
        self._alocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()
        #: how many tokens were fetched (tests assert refresh counts on it)
        self.fetch_count = 0

    def __repr__(self) -> str:
        return f"IamTokenAuth(iam_url={self.iam_url!r}, user_name={self.user_name!r})"

    def _body(self) -> bytes:
        scope = {"id": self.project_id} if self.project_id else {"name": self.project_name}
        payload = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.user_name,
                            "password": self._password,
                            "domain": {"name": self.domain_name},
                        }
                    },
                },
                "scope": {"project": scope},
            }
        }
        return json.dumps(payload).encode()

    def _read_token(self, response: httpx.Response) -> IamToken:
        rid = response.headers.get("x-request-id")
        value = response.headers.get("x-subject-token")
        if not value:
            raise RegistryResponseError(
                field="X-Subject-Token",
                problem="missing token header",
                request_id=rid,
                status_code=response.status_code,
            )
        _mask(value)
        try:
            body = json.loads(response.content)
            token_body = body.get("token", body) if isinstance(body, dict) else {}
            expires_at = _parse_time(token_body.get("expires_at"))
        except (ValueError, AttributeError, RecursionError):
            raise RegistryResponseError(
                field="token.expires_at",
                problem="missing or not an ISO 8601 time",
                request_id=rid,
                status_code=response.status_code,
            ) from None
        try:
            issued_at = _parse_time(token_body.get("issued_at"))
        except ValueError:
            issued_at = self._clock()
        self.fetch_count += 1
        return IamToken(value=value, issued_at=issued_at, expires_at=expires_at)

    def _fresh(self, failed: IamToken | None) -> bool:
        token = self._token
        return token is not None and token is not failed and not token.needs_refresh(self._clock())

    def token(self, failed: IamToken | None = None) -> IamToken:
        """The cached token, fetched or refreshed when needed (thread-safe)."""
        with self._lock:
            if not self._fresh(failed):
                response = self.iam.request("POST", "/v3/auth/tokens", content=self._body(), idempotent=True)
                self._token = self._read_token(response)
            assert self._token is not None
            return self._token

    async def atoken(self, failed: IamToken | None = None) -> IamToken:
        """Async twin of :meth:`token` (one fetch at a time per event loop)."""
        loop = asyncio.get_running_loop()
        lock = self._alocks.get(loop)
        if lock is None:
            lock = self._alocks[loop] = asyncio.Lock()
        async with lock:
            if not self._fresh(failed):
                response = await self.iam.arequest("POST", "/v3/auth/tokens", content=self._body(), idempotent=True)
                self._token = self._read_token(response)
            assert self._token is not None
            return self._token

    def close(self) -> None:
        """Close the token request pool."""
        self.iam.close()

    async def aclose(self) -> None:
        """Close the async token request pool."""
        await self.iam.aclose()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        request.headers["X-Auth-Token"] = token.value
        response = yield request
        if response.status_code == 401:
            request.headers["X-Auth-Token"] = self.token(failed=token).value
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.atoken()
        request.headers["X-Auth-Token"] = token.value
        response = yield request
        if response.status_code == 401:
            request.headers["X-Auth-Token"] = (await self.atoken(failed=token)).value
            yield request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("IamTokenAuth overrides sync_auth_flow/async_auth_flow")  # pragma: no cover
