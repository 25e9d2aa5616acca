"""The answers a Huawei credential source reads (a temporary key, its expiry), and the transport that hands a
source its raw answers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import httpx

from airflow_provider_modelreg.credentials.base import (
    CredentialSourceError,
    TemporaryKey,
    mask_derived,
    parse_json_answer,
)
from airflow_provider_modelreg.credentials.huawei.settings import _HEADER_VALUE
from airflow_provider_modelreg.errors import RegistryAPIError
from airflow_provider_modelreg.transport import RegistryTransport


def _parse_expiry(value: Any) -> datetime:
    # The SDK reads "%Y-%m-%dT%H:%M:%S.%fZ"; any ISO 8601 time is taken here, a naive one as UTC.
    if not isinstance(value, str):
        raise ValueError("not a string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _first(mapping: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        value = mapping.get(name)
        if value:
            return value
    return None


def parse_credential(response: httpx.Response, *, source: str, step: str, now: datetime) -> TemporaryKey:
    """The key in an answer, read as ``StsAccessor._process_credential`` reads it.

    :param response: the 2xx answer.
    :param source: source name, for errors.
    :param step: what the answer was for, for errors.
    :param now: the time the key is taken as issued (the renewal margin is a share of the lifetime).
    :raises CredentialSourceError: when a field is missing or unreadable (no value is shown).
    """
    rid = response.headers.get("x-request-id")
    body = parse_json_answer(source, step, response)  # capped and depth-limited as registry answers
    if isinstance(body, dict) and isinstance(body.get("credential"), dict):
        body = body["credential"]
    elif isinstance(body, dict) and isinstance(body.get("credentials"), dict):
        body = body["credentials"]
    if not isinstance(body, dict):
        raise CredentialSourceError(
            source, f"{step}: answer is not a JSON object", status_code=response.status_code, request_id=rid
        )
    access = _first(body, "access", "accessKeyId", "access_key_id")
    secret = _first(body, "secret", "secretAccessKey", "secret_access_key")
    token = _first(body, "securitytoken", "securityToken", "security_token")
    # masked before any check can fail and name the answer in a message
    mask_derived(secret if isinstance(secret, str) else None, token if isinstance(token, str) else None)
    missing = [
        name
        for name, value in (("access", access), ("secret", secret), ("securitytoken", token))
        if not isinstance(value, str) or _HEADER_VALUE.fullmatch(value) is None  # each goes into a header
    ]
    if missing:
        raise CredentialSourceError(
            source,
            f"{step}: answer lacks credential.{', credential.'.join(missing)} (or it is not printable ASCII)",
            status_code=response.status_code,
            request_id=rid,
        )
    try:
        expires_at = _parse_expiry(_first(body, "expires_at", "expiration"))
    except ValueError:
        raise CredentialSourceError(
            source,
            f"{step}: credential.expires_at is missing or not an ISO 8601 time",
            status_code=response.status_code,
            request_id=rid,
        ) from None
    return TemporaryKey(
        access_key_id=access,
        access_key_secret=secret,
        security_token=token,
        expires_at=expires_at,
        source=source,
        issued_at=min(now, expires_at),
    )


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------------------------------------ transports


class _NoAuth(httpx.Auth):
    """Metadata and assume-with-oidc requests carry no signature (the SDK signs neither)."""


ERROR_KEY = "modelreg_error"


class AnsweringTransport(RegistryTransport):
    """A transport that hands error answers back as responses (status and message) instead of raising them.

    The metadata flow decides on the status itself, as ``MetadataAccessor`` does (404/405/503: no token mode; 401:
    fetch a token and retry). Failures without an answer (refused, timed out) still raise.
    """

    @staticmethod
    def _as_response(exc: RegistryAPIError) -> httpx.Response:
        headers = {"x-request-id": exc.request_id} if exc.request_id else {}
        # the typed error rides along: its code (a throttling code on a 400) and whether retrying can help
        return httpx.Response(exc.http_status, text=exc.message, headers=headers, extensions={ERROR_KEY: exc})

    def request(self, method: str, target: str, **kwargs: Any) -> httpx.Response:
        try:
            return super().request(method, target, **kwargs)
        except RegistryAPIError as exc:
            return self._as_response(exc)

    async def arequest(self, method: str, target: str, **kwargs: Any) -> httpx.Response:
        try:
            return await super().arequest(method, target, **kwargs)
        except RegistryAPIError as exc:
            return self._as_response(exc)
