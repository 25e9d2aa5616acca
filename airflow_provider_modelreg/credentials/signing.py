"""Request signing with a refreshing credential: the key is taken from the cache on every attempt.

A long-lived key keeps using :class:`~airflow_provider_modelreg.auth.AcsV3Auth` /
:class:`~airflow_provider_modelreg.auth.HuaweiAkSkAuth` directly (no per-request overhead). A temporary key
signs with the same code; a request refused because of its key is signed once more with a renewed key (the key
may have been revoked early, or the clock may be off): 401, and for PAI also 400 with an
``InvalidSecurityToken.*`` or ``InvalidAccessKeyId.*`` code (how Alibaba answers an expired STS key). A 403 is
about permissions, which a new key of the same identity would not change: it is not renewed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Generator

import httpx

from airflow_provider_modelreg.auth import AcsV3Auth, HuaweiAkSkAuth
from airflow_provider_modelreg.credentials.base import RefreshingCredential, TemporaryKey

__all__ = ["AcsCredentialAuth", "HuaweiCredentialAuth"]

_REFUSED = (401,)
#: PAI answers 400 with these codes for an expired, revoked or unknown temporary key
_KEY_CODES = ("InvalidSecurityToken.", "InvalidAccessKeyId.")


class _CredentialAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, credential: RefreshingCredential) -> None:
        self.credential = credential

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.credential.source.name!r})"

    def _sign(self, request: httpx.Request, key: TemporaryKey) -> None:
        raise TypeError(f"{type(self).__name__} must override _sign")  # pragma: no cover

    def refused(self, response: httpx.Response) -> bool:
        """True when the answer says the key itself was refused (then one renewal and one more attempt)."""
        return response.status_code in _REFUSED

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self.credential.get()
        self._sign(request, key)
        response = yield request
        if key.expires_at is not None and self.refused(response):
            renewed = self.credential.get(failed=key)
            if renewed is not key:
                self._sign(request, renewed)
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        key = await self.credential.aget()
        self._sign(request, key)
        response = yield request
        if key.expires_at is not None and self.refused(response):
            renewed = await self.credential.aget(failed=key)
            if renewed is not key:
                self._sign(request, renewed)
                yield request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("use sync_auth_flow/async_auth_flow")  # pragma: no cover


class AcsCredentialAuth(_CredentialAuth):
    """Alibaba ``ACS3-HMAC-SHA256`` with the current key of a :class:`RefreshingCredential`."""

    def refused(self, response: httpx.Response) -> bool:
        if response.status_code != 400:
            return super().refused(response)
        try:
            code = json.loads(response.content).get("Code")
        except (ValueError, AttributeError, RecursionError):
            return False
        return isinstance(code, str) and code.startswith(_KEY_CODES)

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
