"""Huawei Cloud IAM token authentication for DataArts Fabric, as an :class:`httpx.Auth`.

``POST /v3/auth/tokens`` (password method, project scope) returns the token in the ``X-Subject-Token`` header and
``expires_at`` in the body. Tokens go through the same refreshing-credential core as every other credential source
(:mod:`airflow_provider_modelreg.credentials.base`): :class:`IamTokenSource` describes the request, and
:func:`~airflow_provider_modelreg.credentials.base.shared_credential` keeps one cached token per (IAM endpoint,
domain, user, password digest, project scope, request settings) for the whole process. Every hook of a mapped task
of 200, every trigger of a triggerer, shares it: one token request per expiry, one renewal in flight, renewed when
less than ``min(300 s, 20 % of its lifetime)`` is left, and once when a request is answered 401 (the token may
have been revoked early). A renewal that fails while the cached token still has time left keeps the cached token.

The token request goes through a :class:`~airflow_provider_modelreg.transport.RegistryTransport` like every other
call: the same retry policy (a 503 or 429 from IAM is retried), deadlines, body cap, proxy and CA settings. A
failure is a :class:`~airflow_provider_modelreg.credentials.base.CredentialSourceError` naming the source
(``token``) and the step; retryable for no answer, 408/429/5xx and throttling, not for a 401/403. Every token
obtained is registered with Airflow's secret masker, and httpcore's DEBUG log of the response headers has the
``X-Subject-Token`` value redacted (it is logged before any masker could know it).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    RefreshingCredential,
    TemporaryKey,
    digest,
    mask_derived,
    shared_credential,
)
from airflow_provider_modelreg.transport import RegistryTransport

__all__ = ["TOKEN_STEP", "IamPasswordLogin", "IamToken", "IamTokenAuth", "IamTokenSource", "redact_subject_tokens"]

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


class _NoAuth(httpx.Auth):
    """The token request itself carries the password in its body, nothing in its headers."""


#: the step named in errors of a token request
TOKEN_STEP = "IAM token request (POST /v3/auth/tokens)"  # noqa: S105 - a step name, not a secret


@dataclass(frozen=True)
class IamToken:
    """A fetched token; ``value`` is a secret."""

    value: str
    issued_at: datetime
    expires_at: datetime

    def __repr__(self) -> str:
        return f"IamToken(expires_at={self.expires_at.isoformat()})"

    @classmethod
    def of(cls, key: TemporaryKey) -> IamToken:
        """The token a :class:`TemporaryKey` of :class:`IamTokenSource` carries."""
        assert key.expires_at is not None
        return cls(value=key.access_key_secret, issued_at=key.issued_at or key.expires_at, expires_at=key.expires_at)

    def needs_refresh(self, now: datetime) -> bool:
        """The credential core's rule: less than ``min(300 s, 20 % of the lifetime)`` left."""
        return TemporaryKey("token", self.value, expires_at=self.expires_at, issued_at=self.issued_at).needs_refresh(
            now
        )


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise ValueError("not a string")
    parsed = datetime.fromisoformat(value)  # reads a trailing Z itself (Python >= 3.11, the package's oldest)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class IamPasswordLogin:
    """Who asks IAM for a token, and for which project: the password method's settings.

    :param user_name: IAM user name; ``password`` its password (secret, left out of the repr); ``domain_name`` the
        account.
    :param project_id: scope by project id; else ``project_name`` (the region name).
    """

    user_name: str
    password: str = field(repr=False)
    domain_name: str
    project_id: str | None = None
    project_name: str | None = None


class _LoginFields:
    """The login's names (not its password), read through from ``login``."""

    login: IamPasswordLogin

    @property
    def user_name(self) -> str:
        return self.login.user_name

    @property
    def domain_name(self) -> str:
        return self.login.domain_name

    @property
    def project_id(self) -> str | None:
        return self.login.project_id

    @property
    def project_name(self) -> str | None:
        return self.login.project_name


class IamTokenSource(_LoginFields):
    """The IAM token of one user and project scope, as a credential source of the refreshing core (no I/O).

    The token is returned as a :class:`TemporaryKey` whose ``access_key_secret`` is the token (a secret) and whose
    ``access_key_id`` names the user (not a secret).

    :param iam: the transport of the token requests.
    :param login: the user, its password and the project scope.
    :param clock: zero-argument callable returning an aware UTC datetime (when IAM sends no ``issued_at``).
    """

    name = "token"

    def __init__(
        self, *, iam: RegistryTransport, login: IamPasswordLogin, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.iam = iam
        self.login = login
        self._clock = clock or (lambda: datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return f"IamTokenSource(iam_url={self.iam.base_url!r}, user_name={self.user_name!r})"

    def cache_key(self) -> str:
        """IAM endpoint, domain, user (and a digest of the password: a changed password is another credential) and
        project scope."""
        scope = f"id={self.project_id}" if self.project_id else f"name={self.project_name}"
        return "|".join((self.iam.base_url, self.domain_name, self.user_name, digest(self.login.password), scope))

    def _body(self) -> bytes:
        scope = {"id": self.project_id} if self.project_id else {"name": self.project_name}
        payload = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self.user_name,
                            "password": self.login.password,
                            "domain": {"name": self.domain_name},
                        }
                    },
                },
                "scope": {"project": scope},
            }
        }
        return json.dumps(payload).encode()

    def read_token(self, response: httpx.Response) -> TemporaryKey:
        """The token of a successful answer (header value masked at once)."""
        rid = response.headers.get("x-request-id")
        value = response.headers.get("x-subject-token")
        if not value:
            raise CredentialSourceError(
                self.name,
                f"{TOKEN_STEP}: the answer has no X-Subject-Token header",
                status_code=response.status_code,
                request_id=rid,
                retryable=False,  # a complete answer: asking again repeats it
            )
        mask_derived(value)
        try:
            body = json.loads(response.content)
            token_body = body.get("token", body) if isinstance(body, dict) else {}
            expires_at = _parse_time(token_body.get("expires_at"))
        except (ValueError, AttributeError, RecursionError):
            raise CredentialSourceError(
                self.name,
                f"{TOKEN_STEP}: token.expires_at is missing or not an ISO 8601 time in the answer",
                status_code=response.status_code,
                request_id=rid,
                retryable=False,
            ) from None
        try:
            issued_at = _parse_time(token_body.get("issued_at"))
        except ValueError:
            issued_at = self._clock()
        return TemporaryKey(
            access_key_id=f"iam-user:{self.user_name}",
            access_key_secret=value,
            expires_at=expires_at,
            source=self.name,
            issued_at=issued_at,
        )

    def flow(self) -> CredentialFlow:
        """One request: the password-method token, project-scoped."""
        response = yield Call(
            self.iam,
            "POST",
            "/v3/auth/tokens",
            content=self._body(),
            step=TOKEN_STEP,
            retried=True,
            service="Huawei IAM",
        )
        return self.read_token(response)


class IamTokenAuth(_LoginFields, httpx.Auth):
    """Adds ``X-Auth-Token``, from the process-wide refreshing IAM token of a user and project scope.

    :param iam_url: IAM base URL, e.g. ``https://iam.cn-north-4.myhuaweicloud.com``.
    :param user_name: IAM user name.
    :param password: IAM user password (secret).
    :param domain_name: the account (domain) the user belongs to.
    :param project_id: scope by project id; else ``project_name`` (the region name) is used.
    :param project_name: scope by project name.
    :param clock: zero-argument callable returning an aware UTC datetime; given, the token is this object's own
        (tests), not the process-wide one.
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
        #: the transport of the token requests (retries, deadlines, body cap, proxy, CA bundle)
        iam = RegistryTransport(
            vendor="fabric",
            base_url=iam_url,  # the transport drops a trailing slash
            auth=_NoAuth(),
            headers={"Content-Type": "application/json;charset=utf8"},
            transport=transport,
            async_transport=async_transport,
            max_connections=2,
            **transport_options,
        )
        self.iam_url = iam.base_url
        self.login = IamPasswordLogin(user_name, password, domain_name, project_id, project_name)
        self.source = IamTokenSource(iam=iam, login=self.login, clock=clock)
        #: the refreshing token: shared by every hook of the process with the same settings
        self.credential = (
            shared_credential(self.source) if clock is None else RefreshingCredential(self.source, clock=clock)
        )
        #: the transport that sends the token requests (the shared credential's, which may predate this object)
        self.iam = self.credential.source.iam if isinstance(self.credential.source, IamTokenSource) else iam

    def __repr__(self) -> str:
        return f"IamTokenAuth(iam_url={self.iam_url!r}, user_name={self.user_name!r})"

    @property
    def fetch_count(self) -> int:
        """How many tokens the (shared) credential fetched so far (tests assert refresh counts on it)."""
        return self.credential.fetch_count

    @property
    def current(self) -> IamToken | None:
        """The cached token, fresh or not (None before the first fetch)."""
        key = self.credential.current
        return None if key is None else IamToken.of(key)

    def prepare(self) -> IamTokenAuth:
        """Build the token request's SSL context now (call off the event loop)."""
        self.iam.prepare()
        return self

    def token(self, failed: IamToken | None = None) -> IamToken:
        """The cached token, fetched or refreshed when needed (thread-safe)."""
        return IamToken.of(self.credential.get(self._failed(failed)))

    async def atoken(self, failed: IamToken | None = None) -> IamToken:
        """Async twin of :meth:`token` (the same single renewal, awaited)."""
        return IamToken.of(await self.credential.aget(self._failed(failed)))

    def _failed(self, failed: IamToken | None) -> TemporaryKey | None:
        key = self.credential.current
        return key if failed is not None and key is not None and key.access_key_secret == failed.value else None

    def close(self) -> None:
        """Nothing to close: the token request pool belongs to the process-wide credential."""

    async def aclose(self) -> None:
        """Nothing to close: the token request pool belongs to the process-wide credential."""

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = self.credential.get()
        request.headers["X-Auth-Token"] = key.access_key_secret
        response = yield request
        if response.status_code == 401:
            request.headers["X-Auth-Token"] = self.credential.get(failed=key).access_key_secret
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        key = await self.credential.aget()
        request.headers["X-Auth-Token"] = key.access_key_secret
        response = yield request
        if response.status_code == 401:
            request.headers["X-Auth-Token"] = (await self.credential.aget(failed=key)).access_key_secret
            yield request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("IamTokenAuth overrides sync_auth_flow/async_auth_flow")  # pragma: no cover
