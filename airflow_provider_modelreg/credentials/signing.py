"""Request signing with a refreshing credential: the key is taken from the cache on every attempt.

A long-lived key keeps using :class:`~airflow_provider_modelreg.auth.AcsV3Auth` /
:class:`~airflow_provider_modelreg.auth.HuaweiAkSkAuth` directly (no per-request overhead). A temporary key
signs with the same code; a request refused with 401 or 403 is signed once more with a renewed key (the key may
have been revoked early, or the clock may be off).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from airflow_provider_modelreg.auth import AcsV3Auth, HuaweiAkSkAuth
from airflow_provider_modelreg.credentials.base import RefreshingCredential, TemporaryKey

__all__ = ["AcsCredentialAuth", "HuaweiCredentialAuth"]

_REFUSED = (401, 403)


class _CredentialAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, credential: RefreshingCredential) -> None:
        self.credential = credential

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.credential.source.name!r})"

    def _sign(self, request: httpx.Request, key: TemporaryKey) -> None:
        raise TypeError(f"{type(self).__name__} must override _sign")  # pragma: no cover

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self.credential.get()
        self._sign(request, key)
        response = yield request
        if response.status_code in _REFUSED and key.expires_at is not None:
            renewed = self.credential.get(failed=key)
            if renewed is not key:
                self._sign(request, renewed)
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        key = await self.credential.aget()
        self._sign(request, key)
        response = yield request
        if response.status_code in _REFUSED and key.expires_at is not None:
            renewed = await self.credential.aget(failed=key)
            if renewed is not key:
                self._sign(request, renewed)
                yield request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("use sync_auth_flow/async_auth_flow")  # pragma: no cover


class AcsCredentialAuth(_CredentialAuth):
    """Alibaba ``ACS3-HMAC-SHA256`` with the current key of a :class:`RefreshingCredential`."""

    def _sign(self, request: httpx.Request, key: TemporaryKey) -> None:
        AcsV3Auth(key.access_key_id, key.access_key_secret, security_token=key.security_token).sign(request)


class HuaweiCredentialAuth(_CredentialAuth):
    """Huawei ``SDK-HMAC-SHA256`` with the current key of a :class:`RefreshingCredential`.

    :param project_id: sent and signed as ``X-Project-Id`` when given.
    """

    def __init__(self, credential: RefreshingCredential, *, project_id: str | None = None) -> None:
        super().__init__(credential)
        self.project_id = project_id

    def _sign(self, request: httpx.Request, key: TemporaryKey) -> None:
        HuaweiAkSkAuth(
            key.access_key_id, key.access_key_secret, project_id=self.project_id, security_token=key.security_token
        ).sign(request)
