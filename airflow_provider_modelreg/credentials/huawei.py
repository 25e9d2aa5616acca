"""Huawei Cloud credential sources for DataArts Fabric: instance metadata, OIDC (CCE workload identity), agency.

Each source mirrors the official ``huaweicloudsdkcore`` (the reference for paths, headers, bodies and response
fields; the tests use it as the oracle where it can be pointed at the emulator):

* ``metadata`` — ``huaweicloudsdkcore/auth/internal.py`` ``MetadataAccessor.get_credential``: ``PUT
  /meta-data/latest/api/token`` with ``X-Metadata-Token-Ttl-Seconds`` (21600), then ``GET
  /openstack/latest/securitykey`` with ``X-Metadata-Token``. A token answer of 404, 405 or 503 means the service
  has no token mode: the GET goes without a token. A GET answered 401 (and not "Please configure Cloud Service
  Agency first") fetches a token again, which must now succeed, and repeats the GET once.
* ``oidc`` — ``auth/provider.py`` ``OidcStsCredentialProvider`` and ``auth/internal.py`` ``OidcStsAccessor``:
  ``POST /v5/agencies/assume-with-oidc`` at the STS endpoint, unsigned, body ``{provider_urn, agency_urn,
  agency_session_name, id_token, duration_seconds}``. The id token file is read again at every renewal (the
  kubelet rotates it).
* ``agency`` — IAM ``POST /v3.0/OS-CREDENTIAL/securitytokens`` with ``methods: ["assume_role"]``, signed with the
  base AK/SK (+ security token) as the SDK signs every IAM call (``IamHelper`` builds the same securitytokens
  request with the ``token`` method).

Every answer is read as ``StsAccessor._process_credential`` reads it: ``credential`` or ``credentials``, then
``access``/``accessKeyId``/``access_key_id``, ``secret``/``secretAccessKey``/``secret_access_key``,
``securitytoken``/``securityToken``/``security_token``, ``expires_at``/``expiration`` (UTC).

The flows hold no I/O (besides reading the id token file): :func:`~.base.run_flow` and :func:`~.base.arun_flow`
send their requests. Obtained secrets are masked by :class:`~.base.RefreshingCredential`; the id token and the
metadata token are masked here as soon as they are read.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from airflow_provider_modelreg.auth import HuaweiAkSkAuth
from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    TemporaryKey,
    digest,
    mask_derived,
    parse_json_answer,
    read_token_file,
    shown_url,
)
from airflow_provider_modelreg.errors import RegistryAPIError, RegistryConnectionConfigError
from airflow_provider_modelreg.transport import RegistryTransport

#: what a key, secret or token must be to go into a header: printable ASCII, no spaces
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")

__all__ = [
    "AGENCY_NOT_CONFIGURED",
    "DEFAULT_METADATA_ENDPOINT",
    "DEFAULT_STS_ENDPOINT",
    "AgencySource",
    "HuaweiSourceSettings",
    "MetadataSource",
    "OidcSource",
    "build_huawei_source",
    "check_agency_urn",
    "check_provider_urn",
    "parse_credential",
    "sts_endpoint_for",
]

Clock = Callable[[], datetime]

#: ``MetadataAccessor._METADATA_ENDPOINT``
DEFAULT_METADATA_ENDPOINT = "http://169.254.169.254"
METADATA_TOKEN_PATH = "/meta-data/latest/api/token"  # noqa: S105 - a path
METADATA_SECURITYKEY_PATH = "/openstack/latest/securitykey"
#: ``MetadataAccessor._DEFAULT_TOKEN_TTL_SECONDS`` (6 h)
METADATA_TOKEN_TTL_SECONDS = 6 * 60 * 60
#: the 401 text of an ECS without an agency: no token would help, so no token retry (as the SDK)
AGENCY_NOT_CONFIGURED = "Please configure Cloud Service Agency first"
#: token answers meaning "this metadata service has no token mode" (``MetadataAccessor._try_update_token``)
_NO_TOKEN_MODE = (404, 405, 503)

OIDC_PATH = "/v5/agencies/assume-with-oidc"
SECURITYTOKENS_PATH = "/v3.0/OS-CREDENTIAL/securitytokens"
AUTH_DOMAINS_PATH = "/v3/auth/domains"
#: how each service is named in errors (with its URL, never its userinfo)
METADATA_SERVICE = "Huawei metadata service"
STS_SERVICE = "Huawei STS"
IAM_SERVICE = "Huawei IAM"
#: ``StsHelper.DEFAULT_STS_ENDPOINT``
DEFAULT_STS_ENDPOINT = "https://sts.cn-north-4.myhuaweicloud.com"
#: ``StsHelper.STS_ENDPOINT_ENV_NAME``
STS_ENDPOINT_ENV = "HUAWEICLOUD_SDK_STS_ENDPOINT"
#: regions of ``huaweicloudsdkcore/auth/endpoint.py`` ``__STS_ENDPOINT_DICT`` (``https://sts.<region>...``)
_STS_REGIONS = frozenset(
    {
        "cn-north-4",
        "cn-south-1",
        "cn-east-3",
        "cn-southwest-2",
        "ap-southeast-1",
        "ap-southeast-3",
        "ap-southeast-2",
        "sa-brazil-1",
        "la-south-2",
        "af-south-1",
        "ap-southeast-4",
        "tr-west-1",
    }
)
#: ``OidcStsCredentialProvider._DEFAULT_SESSION_NAME`` / ``_DEFAULT_DURATION_SECONDS``
DEFAULT_OIDC_SESSION_NAME = "oidc-sts-session"
DEFAULT_DURATION_SECONDS = 3600

# URNs as IAM (v5) writes them: iam::<account id>:identity-provider:<name> and iam::<account id>:agency:<name>.
_URN_NAME = r"[A-Za-z0-9_.@+=,-]{1,128}"
_PROVIDER_URN = re.compile(rf"iam::[A-Za-z0-9]{{1,64}}:identity-provider:{_URN_NAME}")
_AGENCY_URN = re.compile(rf"iam::[A-Za-z0-9]{{1,64}}:agency:{_URN_NAME}")
_SESSION_NAME = re.compile(r"[A-Za-z0-9_.@+=,-]{2,64}")


def check_provider_urn(value: str, field: str) -> str:
    """An OIDC identity provider URN ``iam::<account id>:identity-provider:<name>``."""
    if _PROVIDER_URN.fullmatch(value) is None:
        raise RegistryConnectionConfigError(field, "must be a URN iam::<account id>:identity-provider:<name>", value)
    return value


def check_agency_urn(value: str, field: str) -> str:
    """An agency URN ``iam::<account id>:agency:<name>``."""
    if _AGENCY_URN.fullmatch(value) is None:
        raise RegistryConnectionConfigError(field, "must be a URN iam::<account id>:agency:<name>", value)
    return value


def check_session_name(value: str, field: str) -> str:
    """An agency session name: 2-64 of letters, digits and ``_ . @ + = , -``."""
    if _SESSION_NAME.fullmatch(value) is None:
        raise RegistryConnectionConfigError(field, "must be 2-64 letters, digits or _.@+=,-", value)
    return value


def sts_endpoint_for(region: str | None, environ: Mapping[str, str] | None = None) -> str:
    """The STS endpoint as ``StsHelper.get_sts_endpoint(region)`` picks it: ``HUAWEICLOUD_SDK_STS_ENDPOINT``, else the
    region's STS host when the SDK's table has it, else ``https://sts.cn-north-4.myhuaweicloud.com``."""
    env = (os.environ if environ is None else environ).get(STS_ENDPOINT_ENV)
    if env:
        return env
    if region in _STS_REGIONS:
        return f"https://sts.{region}.myhuaweicloud.com"
    return DEFAULT_STS_ENDPOINT


# ------------------------------------------------------------------------------------------------ answers


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


# ------------------------------------------------------------------------------------------------ sources


def _failed(source: str, call: Call, response: httpx.Response) -> CredentialSourceError:
    # the service's text, scrubbed of every secret the source knows by the flow's driver
    error = response.extensions.get(ERROR_KEY)
    where = f"{call.service} at {shown_url(call.transport.base_url)}: {call.method} {call.target}"
    return CredentialSourceError(
        source,
        f"{call.step} failed: {where}: {response.text[:200]}",
        status_code=response.status_code,
        code=getattr(error, "code", None),
        request_id=response.headers.get("x-request-id"),
        retryable=getattr(error, "retryable", None),
    )


@dataclass(eq=False)
class MetadataSource:
    """Temporary AK/SK and security token of the ECS/CCE node's agency, from the instance metadata service.

    :param transport: an :class:`AnsweringTransport` to the metadata endpoint (``metadata_service=True``).
    :param clock: aware UTC now (tests).
    """

    transport: RegistryTransport
    clock: Clock = _utcnow
    name: str = "metadata"
    _token: str | None = field(default=None, repr=False)

    def cache_key(self) -> str:
        return self.transport.base_url

    def secrets(self) -> list[str | None]:
        """The metadata token last obtained, for scrubbing."""
        return [self._token]

    def _token_call(self) -> Call:
        return Call(
            self.transport,
            "PUT",
            METADATA_TOKEN_PATH,
            headers={"X-Metadata-Token-Ttl-Seconds": str(METADATA_TOKEN_TTL_SECONDS)},
            step="metadata token",
            service=METADATA_SERVICE,
            # one attempt, as MetadataAccessor: a 503 here means "no token mode", not "try again"
            retried=False,
        )

    def _key_call(self, token: str | None) -> Call:
        return Call(
            self.transport,
            "GET",
            METADATA_SECURITYKEY_PATH,
            headers={"X-Metadata-Token": token} if token else None,
            step="securitykey",
            service=METADATA_SERVICE,
        )

    def _read_token(self, response: httpx.Response, *, required: bool) -> str | None:
        call = self._token_call()
        if response.status_code == 200:
            token = self._token = response.text.strip()
            mask_derived(token)
            if not token:
                raise CredentialSourceError(self.name, f"{call.step}: empty token", status_code=200)
            return token
        if response.status_code in _NO_TOKEN_MODE and not required:
            return None
        raise _failed(self.name, call, response)

    def flow(self) -> CredentialFlow:
        token = self._read_token((yield self._token_call()), required=False)
        call = self._key_call(token)
        response = yield call
        if response.status_code == 401 and AGENCY_NOT_CONFIGURED not in response.text:
            # the token expired or the service now wants one: a token is required from here on (as the SDK)
            token = self._read_token((yield self._token_call()), required=True)
            call = self._key_call(token)
            response = yield call
        if response.status_code >= 300:
            raise _failed(self.name, call, response)
        return parse_credential(response, source=self.name, step=call.step, now=self.clock())


@dataclass(eq=False)
class OidcSource:
    """Temporary credentials of an agency, for an OIDC id token (CCE workload identity), from STS.

    :param transport: transport to the STS endpoint.
    :param provider_urn: ``iam::<account>:identity-provider:<name>``.
    :param agency_urn: ``iam::<account>:agency:<name>``.
    :param id_token: the id token itself (from ``HUAWEICLOUD_OIDC_ID_TOKEN``); wins over ``token_file`` (as the SDK).
    :param token_file: file holding the id token, read again at every renewal.
    :param session_name: ``agency_session_name``.
    :param duration_seconds: lifetime asked for.
    :param clock: aware UTC now (tests).
    """

    transport: RegistryTransport
    provider_urn: str
    agency_urn: str
    id_token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    session_name: str = DEFAULT_OIDC_SESSION_NAME
    duration_seconds: int = DEFAULT_DURATION_SECONDS
    clock: Clock = _utcnow
    name: str = "oidc"
    _file_token: str | None = field(default=None, repr=False)

    def secrets(self) -> list[str | None]:
        """The id token (given, or last read from the file), for scrubbing."""
        return [self.id_token, self._file_token]

    def cache_key(self) -> str:
        return "|".join(
            (
                self.transport.base_url,
                self.provider_urn,
                self.agency_urn,
                self.token_file or "-",
                digest(self.id_token),
                self.session_name,
                str(self.duration_seconds),
            )
        )

    def _read_id_token(self) -> str:
        # OidcStsCredentialProvider._resolve_id_token: the token itself, else the file's stripped content.
        if self.id_token:
            return self.id_token
        path = self.token_file
        if path is None:
            raise CredentialSourceError(self.name, "no OIDC id token: set HUAWEICLOUD_OIDC_ID_TOKEN or a token file")
        token = self._file_token = read_token_file(self.name, path)
        return token

    def flow(self) -> CredentialFlow:
        payload = {
            "provider_urn": self.provider_urn,
            "agency_urn": self.agency_urn,
            "agency_session_name": self.session_name,
            "id_token": self._read_id_token(),
            "duration_seconds": self.duration_seconds,
        }
        call = Call(
            self.transport,
            "POST",
            OIDC_PATH,
            content=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json;charset=UTF-8"},
            step="AssumeAgencyWithOIDC",
            service=STS_SERVICE,
        )
        response = yield call
        return parse_credential(response, source=self.name, step=call.step, now=self.clock())


@dataclass(eq=False)
class AgencySource:
    """Temporary credentials of an agency (possibly in another account), obtained with base AK/SK from IAM.

    :param transport: transport to IAM, signing with the base AK/SK (:class:`~.auth.HuaweiAkSkAuth`).
    :param agency_name: the agency to assume.
    :param domain_name: the account (domain) name that owns the agency; or ``domain_id``.
    :param domain_id: the account (domain) id that owns the agency.
    :param duration_seconds: lifetime asked for (900-86400).
    :param base_identity: digest of the base key, for :meth:`cache_key`.
    :param caller_domain_id: the base key's own account id, sent as ``X-Domain-Id`` (IAM is a global service: the
        SDK's ``GlobalCredentials`` adds it to every AK/SK-signed IAM call). None: looked up once with ``GET
        /v3/auth/domains``, as ``GlobalCredentials`` does when it is not given.
    :param clock: aware UTC now (tests).
    """

    transport: RegistryTransport
    agency_name: str
    domain_name: str | None = None
    domain_id: str | None = None
    duration_seconds: int = DEFAULT_DURATION_SECONDS
    base_identity: str = ""
    caller_domain_id: str | None = None
    clock: Clock = _utcnow
    name: str = "agency"

    def cache_key(self) -> str:
        return "|".join(
            (
                self.transport.base_url,
                self.base_identity,
                self.domain_name or "-",
                self.domain_id or "-",
                self.agency_name,
                str(self.duration_seconds),
            )
        )

    def body(self) -> dict[str, Any]:
        """The request body (``auth.identity.assume_role``)."""
        role: dict[str, Any] = {"agency_name": self.agency_name, "duration_seconds": self.duration_seconds}
        if self.domain_id is not None:
            role["domain_id"] = self.domain_id
        else:
            role["domain_name"] = self.domain_name
        return {"auth": {"identity": {"methods": ["assume_role"], "assume_role": role}}}

    def flow(self) -> CredentialFlow:
        caller = self.caller_domain_id
        if caller is None:
            # GlobalCredentials.__auto_get_domain_id: the first domain the base key may see is its own account
            step = "the base key's account id (GET /v3/auth/domains; or set the domain_id extra)"
            answer = yield Call(self.transport, "GET", AUTH_DOMAINS_PATH, step=step, service=IAM_SERVICE)
            caller = self.caller_domain_id = _first_domain_id(self.name, step, answer)
        call = Call(
            self.transport,
            "POST",
            SECURITYTOKENS_PATH,
            content=json.dumps(self.body()).encode(),
            headers={"Content-Type": "application/json;charset=utf8", "X-Domain-Id": caller},
            step="assume_role",
            service=IAM_SERVICE,
        )
        response = yield call
        return parse_credential(response, source=self.name, step=call.step, now=self.clock())


def _first_domain_id(source: str, step: str, response: httpx.Response) -> str:
    """``domains[0].id`` of a ``GET /v3/auth/domains`` answer."""
    body = parse_json_answer(source, step, response)
    try:
        value = body["domains"][0]["id"]
    except (KeyError, IndexError, TypeError):
        value = None
    if not isinstance(value, str) or _HEADER_VALUE.fullmatch(value) is None:
        raise CredentialSourceError(
            source,
            f"{step}: no domain in the answer (the key needs iam:users:getUser, or set domain_id)",
            status_code=response.status_code,
            request_id=response.headers.get("x-request-id"),
        )
    return value


# ------------------------------------------------------------------------------------------------ factory


@dataclass(frozen=True)
class HuaweiSourceSettings:
    """Validated settings of one source (the hook reads and checks the connection and the environment).

    :param metadata_endpoint: ``metadata``: the metadata service URL.
    :param sts_endpoint: ``oidc``: the STS URL.
    :param provider_urn: ``oidc``.
    :param agency_urn: ``oidc``.
    :param id_token: ``oidc``: the id token itself (secret).
    :param token_file: ``oidc``: the id token file.
    :param session_name: ``oidc``.
    :param duration_seconds: ``oidc`` and ``agency``.
    :param iam_endpoint: ``agency``: the IAM URL.
    :param access_key: ``agency``: base AK.
    :param secret_key: ``agency``: base SK (secret).
    :param security_token: ``agency``: base security token, if the base key is temporary (secret).
    :param agency_name: ``agency``.
    :param agency_domain_name: ``agency``: the account owning the agency (or ``agency_domain_id``).
    :param agency_domain_id: ``agency``.
    :param caller_domain_id: ``agency``: the base key's own account id (``X-Domain-Id``); None: looked up.
    """

    metadata_endpoint: str = DEFAULT_METADATA_ENDPOINT
    sts_endpoint: str = DEFAULT_STS_ENDPOINT
    provider_urn: str = ""
    agency_urn: str = ""
    id_token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    session_name: str = DEFAULT_OIDC_SESSION_NAME
    duration_seconds: int = DEFAULT_DURATION_SECONDS
    iam_endpoint: str = ""
    access_key: str = ""
    secret_key: str = field(default="", repr=False)
    security_token: str | None = field(default=None, repr=False)
    agency_name: str = ""
    agency_domain_name: str | None = None
    agency_domain_id: str | None = None
    caller_domain_id: str | None = None


def _transport(base_url: str, auth: httpx.Auth, options: Mapping[str, Any], **kwargs: Any) -> RegistryTransport:
    return RegistryTransport(vendor="fabric", base_url=base_url, auth=auth, max_connections=2, **options, **kwargs)


def build_huawei_source(
    kind: str,
    settings: HuaweiSourceSettings,
    transport_options: Mapping[str, Any],
    *,
    clock: Clock | None = None,
) -> MetadataSource | OidcSource | AgencySource:
    """The source ``kind`` (``metadata``, ``oidc``, ``agency``) with its own transport.

    :param kind: the connection's ``auth_type``.
    :param settings: validated settings.
    :param transport_options: :class:`RegistryTransport` arguments (retry policy, deadlines, proxy, CA bundle).
    :param clock: aware UTC now (tests).
    """
    now = clock or _utcnow
    if kind == "metadata":
        transport = AnsweringTransport(
            vendor="fabric",
            base_url=settings.metadata_endpoint,
            auth=_NoAuth(),
            max_connections=2,
            metadata_service=True,
            **transport_options,
        )
        return MetadataSource(transport, clock=now)
    if kind == "oidc":
        return OidcSource(
            _transport(settings.sts_endpoint, _NoAuth(), transport_options),
            provider_urn=settings.provider_urn,
            agency_urn=settings.agency_urn,
            id_token=settings.id_token,
            token_file=settings.token_file,
            session_name=settings.session_name,
            duration_seconds=settings.duration_seconds,
            clock=now,
        )
    if kind == "agency":
        base = HuaweiAkSkAuth(settings.access_key, settings.secret_key, security_token=settings.security_token)
        return AgencySource(
            _transport(settings.iam_endpoint, base, transport_options),
            agency_name=settings.agency_name,
            domain_name=settings.agency_domain_name,
            domain_id=settings.agency_domain_id,
            caller_domain_id=settings.caller_domain_id,
            duration_seconds=settings.duration_seconds,
            base_identity=f"{settings.access_key}:{digest(settings.secret_key, settings.security_token)}",
            clock=now,
        )
    raise ValueError(f"unknown Huawei credential source {kind!r}")
