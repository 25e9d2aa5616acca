"""Huawei Cloud IAM token authentication for DataArts Fabric, as an :class:`httpx.Auth`.

``POST /v3/auth/tokens`` (password method, project scope) returns the token in the ``X-Subject-Token`` header and
``expires_at`` in the body. The token is cached and shared by every request of the hook; it is refreshed when
less than ``min(300 s, 10 % of its lifetime)`` is left, and once when a request is answered 401 (the token may
have been revoked early). Concurrent requests never fetch more than one token at a time.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import httpx

from airflow_provider_modelreg.errors import RegistryResponseError
from airflow_provider_modelreg.transport import DEFAULT_TIMEOUT, USER_AGENT, map_error, shared_ssl_context

__all__ = ["IamToken", "IamTokenAuth"]


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
    ) -> None:
        self.iam_url = iam_url.rstrip("/")
        self.user_name = user_name
        self._password = password
        self.domain_name = domain_name
        self.project_id = project_id
        self.project_name = project_name
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._transport = transport
        self._async_transport = async_transport
        self._token: IamToken | None = None
        self._lock = threading.Lock()
        self._alocks: dict[int, asyncio.Lock] = {}
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

    def _verify(self) -> Any:
        return shared_ssl_context() if self.iam_url.startswith("https://") else False

    def _read_token(self, response: httpx.Response) -> IamToken:
        if not response.is_success:
            raise map_error("fabric", response)
        rid = response.headers.get("x-request-id")
        value = response.headers.get("x-subject-token")
        if not value:
            raise RegistryResponseError(
                field="X-Subject-Token",
                problem="missing token header",
                request_id=rid,
                status_code=response.status_code,
            )
        try:
            body = json.loads(response.content)
            token_body = body.get("token", body) if isinstance(body, dict) else {}
            expires_at = _parse_time(token_body.get("expires_at"))
        except (ValueError, AttributeError):
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
                with httpx.Client(
                    verify=self._verify(), timeout=DEFAULT_TIMEOUT, transport=self._transport, trust_env=False
                ) as client:
                    response = client.post(
                        f"{self.iam_url}/v3/auth/tokens",
                        content=self._body(),
                        headers={"Content-Type": "application/json;charset=utf8", "User-Agent": USER_AGENT},
                    )
                self._token = self._read_token(response)
            assert self._token is not None
            return self._token

    async def atoken(self, failed: IamToken | None = None) -> IamToken:
        """Async twin of :meth:`token` (one fetch at a time per event loop)."""
        loop_id = id(asyncio.get_running_loop())
        lock = self._alocks.setdefault(loop_id, asyncio.Lock())
        async with lock:
            if not self._fresh(failed):
                async with httpx.AsyncClient(
                    verify=self._verify(), timeout=DEFAULT_TIMEOUT, transport=self._async_transport, trust_env=False
                ) as client:
                    response = await client.post(
                        f"{self.iam_url}/v3/auth/tokens",
                        content=self._body(),
                        headers={"Content-Type": "application/json;charset=utf8", "User-Agent": USER_AGENT},
                    )
                self._token = self._read_token(response)
            assert self._token is not None
            return self._token

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
