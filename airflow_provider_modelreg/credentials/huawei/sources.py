"""The Huawei credential sources as sans-IO flows: ECS metadata, OIDC federation (CCE), and an agency."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    digest,
    mask_derived,
    parse_json_answer,
    read_token_file,
    shown_url,
)
from airflow_provider_modelreg.credentials.huawei.answers import ERROR_KEY, _utcnow, parse_credential
from airflow_provider_modelreg.credentials.huawei.settings import (
    _HEADER_VALUE,
    _NO_TOKEN_MODE,
    AGENCY_NOT_CONFIGURED,
    AUTH_DOMAINS_PATH,
    DEFAULT_DURATION_SECONDS,
    DEFAULT_OIDC_SESSION_NAME,
    IAM_SERVICE,
    METADATA_SECURITYKEY_PATH,
    METADATA_SERVICE,
    METADATA_TOKEN_PATH,
    METADATA_TOKEN_TTL_SECONDS,
    OIDC_PATH,
    SECURITYTOKENS_PATH,
    STS_SERVICE,
    Clock,
)
from airflow_provider_modelreg.transport import RegistryTransport


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
