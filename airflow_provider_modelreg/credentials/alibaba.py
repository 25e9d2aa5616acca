"""Alibaba Cloud credential sources for the PAI hook, on this package's transport.

The connection extra ``credential_source`` selects one (default ``access_key``):

==================  ===========================================================================================
``access_key``      login/password: a long-lived AccessKey (signed with a static ``AcsV3Auth``, no overhead).
``sts``             login/password + extra ``security_token``: an STS key obtained elsewhere (static too).
``ram_role_arn``    STS ``AssumeRole`` signed with the base AccessKey (login/password, optional
                    ``security_token``); extras ``role_arn``, ``role_session_name``, ``duration_seconds``
                    (900+, default 3600), ``policy``, ``external_id``, ``sts_endpoint``.
``oidc_role_arn``   STS ``AssumeRoleWithOIDC`` (RRSA on ACK): extras ``role_arn``, ``oidc_provider_arn``,
                    ``oidc_token_file`` or env ``ALIBABA_CLOUD_ROLE_ARN``, ``ALIBABA_CLOUD_OIDC_PROVIDER_ARN``,
                    ``ALIBABA_CLOUD_OIDC_TOKEN_FILE`` (``ALIBABA_CLOUD_ROLE_SESSION_NAME``); the token file is
                    read again at every renewal (the kubelet rotates it). No secret in the connection.
``ecs_ram_role``    ECS instance metadata, hardened mode (``PUT /latest/api/token`` first); extras
                    ``role_name`` (else env ``ALIBABA_CLOUD_ECS_METADATA``, else discovered) and
                    ``metadata_endpoint`` (default ``http://100.100.100.200``).
``credentials_uri`` ``GET`` of a URI answering ``{Code, AccessKeyId, AccessKeySecret, SecurityToken, Expiration}``:
                    extra ``credentials_uri`` or env ``ALIBABA_CLOUD_CREDENTIALS_URI``.
``default_chain``   the official library's order (``alibabacloud_credentials/provider/default.py``), decided
                    once when the hook builds its transport: environment AccessKey, OIDC environment, CLI
                    profile (``~/.aliyun/config.json``), profile file (``~/.alibabacloud/credentials.ini`` or
                    ``ALIBABA_CLOUD_CREDENTIALS_FILE``), ECS RAM role (unless
                    ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``), credentials URI (when the metadata
                    service does not answer, one probe at the first fetch).
==================  ===========================================================================================

Request shapes, parameters, the RPC signature (``SignatureVersion=1.0``, HMAC-SHA1 with ``secret + "&"``) and
answer fields follow ``alibabacloud-credentials`` 1.0.12 (``provider/ram_role_arn.py``, ``oidc.py``,
``ecs_ram_role.py``, ``uri.py``, ``utils/parameter_helper.py``; the signature itself is in
:mod:`~airflow_provider_modelreg.credentials.rpc`). That library is not used at run time: its metadata host is
hard-coded, its STS calls are https-only and it trusts only certifi.

Sources are sans-IO flows (:mod:`~airflow_provider_modelreg.credentials.base`): only the token and profile files
are read inside them; every request goes through a :class:`~airflow_provider_modelreg.transport.RegistryTransport`
(retries, deadlines, proxy and CA bundle for STS; never a proxy for instance metadata).
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import json
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from airflow_provider_modelreg.auth import AcsV3Auth
from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    RefreshingCredential,
    TemporaryKey,
    digest,
    mask_derived,
    parse_json_answer,
    read_small_file,
    read_token_file,
    shared_credential,
    shown_url,
)
from airflow_provider_modelreg.credentials.rpc import rpc_signature, rpc_string_to_sign
from airflow_provider_modelreg.credentials.signing import AcsCredentialAuth
from airflow_provider_modelreg.errors import ModelRegistryError, RegistryConnectionConfigError
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy, is_loopback
from airflow_provider_modelreg.validation import setting_number

__all__ = [
    "DEFAULT_METADATA_ENDPOINT",
    "DEFAULT_STS_ENDPOINT",
    "SOURCES",
    "AlibabaCredentialConfig",
    "CredentialsUriSource",
    "EcsRamRoleSource",
    "EcsThenUriSource",
    "OidcRoleArnSource",
    "PaiAuth",
    "RamRoleArnSource",
    "RpcSignatureAuth",
    "build_pai_auth",
    "credential_config",
    "resolve_default_chain",
    "rpc_signature",
    "rpc_string_to_sign",
]

#: Every value of the ``credential_source`` extra.
SOURCES = (
    "access_key",
    "sts",
    "ram_role_arn",
    "oidc_role_arn",
    "ecs_ram_role",
    "credentials_uri",
    "default_chain",
)
STS_API_VERSION = "2015-04-01"
DEFAULT_STS_ENDPOINT = "https://sts.aliyuncs.com"
DEFAULT_METADATA_ENDPOINT = "http://100.100.100.200"
#: The library's ``EcsRamRoleCredentialsProvider.DEFAULT_METADATA_TOKEN_DURATION``.
METADATA_TOKEN_TTL = 21600
METADATA_TOKEN_HEADER = "X-aliyun-ecs-metadata-token"  # noqa: S105 - a header name
METADATA_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
METADATA_CREDENTIALS_PATH = "/latest/meta-data/ram/security-credentials/"
DEFAULT_DURATION = 3600
MIN_DURATION = 900
MAX_DURATION = 43200
_STS_TIME = "%Y-%m-%dT%H:%M:%SZ"
#: how each service is named in errors (with its URL, never its userinfo)
STS_SERVICE = "STS"
METADATA_SERVICE = "ECS metadata service"
URI_SERVICE = "credentials URI"
#: largest profile file read (``~/.aliyun/config.json``, ``credentials.ini``)
PROFILE_FILE_CAP = 1024 * 1024

# Same rule as hooks.base.check_credential (credentials/ does not import hooks): a value that can go into a header.
_PRINTABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")
_ROLE_ARN = re.compile(r"acs:ram::[0-9]{1,32}:role/[A-Za-z0-9.@_-]{1,64}")
_OIDC_PROVIDER_ARN = re.compile(r"acs:ram::[0-9]{1,32}:oidc-provider/[A-Za-z0-9.@_-]{1,128}")
#: STS ``RoleSessionName``: 2-64 characters of ``A-Z a-z 0-9 . @ - _``.
_SESSION_NAME = re.compile(r"[A-Za-z0-9.@_-]{2,64}")
_ROLE_NAME = re.compile(r"[A-Za-z0-9.@_-]{1,64}")
_NULL_TEXTS = frozenset({"none", "null"})

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------------------------------- checks


def _text(value: Any, field_name: str, *, required: bool = False, secret: bool = False) -> str | None:
    """A string setting: missing or ``""`` is unset (an error when ``required``); ``'None'``/``'null'`` (a form
    or template artefact), surrounding spaces and control characters are refused, naming the field."""
    if value is None or value == "":
        if required:
            raise RegistryConnectionConfigError(field_name, "is required for this credential source")
        return None
    if not isinstance(value, str):
        raise RegistryConnectionConfigError(field_name, "must be a string", None if secret else value)
    if value.strip().lower() in _NULL_TEXTS:
        raise RegistryConnectionConfigError(field_name, "must not be the text 'None' or 'null'")
    if _PRINTABLE.fullmatch(value) is None:
        raise RegistryConnectionConfigError(
            field_name,
            "must be printable ASCII with no control characters (a pasted newline?) and no surrounding spaces",
            None if secret else value,
        )
    return value


def _pattern(value: str | None, field_name: str, pattern: re.Pattern[str], rule: str) -> str | None:
    if value is not None and pattern.fullmatch(value) is None:
        raise RegistryConnectionConfigError(field_name, rule, value)
    return value


def check_role_arn(value: str | None, field_name: str = "role_arn") -> str | None:
    """``acs:ram::<account id>:role/<role name>`` (None passes)."""
    return _pattern(value, field_name, _ROLE_ARN, "must be a RAM role ARN like acs:ram::1234567890123456:role/name")


def check_oidc_provider_arn(value: str | None, field_name: str = "oidc_provider_arn") -> str | None:
    """``acs:ram::<account id>:oidc-provider/<name>`` (None passes)."""
    return _pattern(
        value, field_name, _OIDC_PROVIDER_ARN, "must be an OIDC provider ARN like acs:ram::123456:oidc-provider/name"
    )


def check_session_name(value: str | None, field_name: str = "role_session_name") -> str | None:
    """STS ``RoleSessionName``: 2-64 of ``A-Z a-z 0-9 . @ - _`` (None passes)."""
    return _pattern(value, field_name, _SESSION_NAME, "must be 2-64 characters of A-Z a-z 0-9 . @ - _")


def check_duration(value: Any, field_name: str = "duration_seconds") -> int:
    """Seconds of an assumed role's key: 900 (STS's minimum, as the library checks) to 43200; default 3600."""
    seconds = setting_number(value, field_name, MIN_DURATION, MAX_DURATION, integer=True)
    return DEFAULT_DURATION if seconds is None else int(seconds)


def _http_allowed(host: str) -> bool:
    """Plain http only where nobody else is on the path: loopback, link-local, Alibaba's metadata address."""
    if is_loopback(host) or host == "100.100.100.200":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_link_local
    except ValueError:
        return False


def parse_service_url(
    value: str, field_name: str, *, any_http: bool = False, with_path: bool = False
) -> tuple[str, str, list[tuple[str, str]]]:
    """(``scheme://host[:port]``, path, query pairs) of a credential service URL.

    A bare host name means ``https://host`` (the library's ``sts_endpoint`` is a host name). ``http://`` is
    refused unless ``any_http`` (instance metadata) or the host is loopback or link-local.
    """
    text = value if "://" in value else f"https://{value}"
    parts = urlsplit(text)
    rule = "must be a URL such as https://host" + ("/path" if with_path else "")
    if parts.username is not None or parts.password is not None:
        # the user:password@ part is never repeated (it is a key and its secret, typically)
        raise RegistryConnectionConfigError(field_name, "must not carry user:password@ (userinfo)", shown_url(text))
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise RegistryConnectionConfigError(field_name, rule, None if with_path else value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise RegistryConnectionConfigError(field_name, "has an invalid port", None if with_path else value) from None
    if not with_path and (parts.path not in ("", "/") or parts.query):
        raise RegistryConnectionConfigError(field_name, "must be scheme://host[:port] with no path or query", value)
    if parts.scheme == "http" and not (any_http or _http_allowed(parts.hostname)):
        raise RegistryConnectionConfigError(
            field_name, "must use https:// (http:// only to a loopback or link-local host)", None
        )
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    return f"{parts.scheme}://{parts.netloc}", parts.path or "/", pairs


# ---------------------------------------------------------------------------------------------- RPC signature


class RpcSignatureAuth(httpx.Auth):
    """Signs an RPC-style request in its query (``SignatureVersion=1.0``), afresh for every attempt: a retried
    ``AssumeRole`` gets a new ``Timestamp`` and ``SignatureNonce`` (STS refuses a nonce seen before).

    :param access_key_id: the base AccessKey ID.
    :param access_key_secret: its secret (never shown).
    :param security_token: STS token of a temporary base key.
    :param clock: aware UTC clock (tests); ``nonce`` likewise.
    """

    def __init__(
        self,
        access_key_id: str,
        access_key_secret: str,
        *,
        security_token: str | None = None,
        clock: Clock | None = None,
        nonce: Callable[[], str] | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self._token = security_token
        self._clock = clock or _utcnow
        self._nonce = nonce or (lambda: str(uuid.uuid4()))

    def __repr__(self) -> str:
        return f"RpcSignatureAuth(access_key_id={self.access_key_id!r}, sts={self._token is not None})"

    def signed_params(self, method: str, params: Mapping[str, str]) -> dict[str, str]:
        """``params`` with the signing parameters and ``Signature`` added (the library's ``_refresh_credentials``)."""
        query = {
            **params,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureVersion": "1.0",
            "Timestamp": self._clock().astimezone(timezone.utc).strftime(_STS_TIME),
            "SignatureNonce": self._nonce(),
            "AccessKeyId": self.access_key_id,
        }
        if self._token:
            query["SecurityToken"] = self._token
        query["Signature"] = rpc_signature(method, query, self._secret)
        return query

    def auth_flow(self, request: httpx.Request) -> Any:
        params = dict(request.url.params.multi_items())
        signed = self.signed_params(request.method, params)
        request.url = request.url.copy_with(query=urlencode(signed).encode("ascii"))
        yield request


_UNSIGNED = httpx.Auth()  # AssumeRoleWithOIDC, metadata and URI calls carry no signature


# ---------------------------------------------------------------------------------------------------- answers


def _json_object(source: str, step: str, response: httpx.Response) -> dict[str, Any]:
    body = parse_json_answer(source, step, response)  # capped and depth-limited as registry answers
    if not isinstance(body, dict):
        raise CredentialSourceError(
            source, f"{step}: the answer is not a JSON object", status_code=response.status_code
        )
    return body


def _expiry(source: str, step: str, value: Any) -> datetime:
    """``Expiration`` as the library reads it: ``%Y-%m-%dT%H:%M:%SZ`` in UTC."""
    try:
        return datetime.strptime(str(value), _STS_TIME).replace(tzinfo=timezone.utc)
    except ValueError:
        raise CredentialSourceError(source, f"{step}: Expiration is not yyyy-mm-ddThh:mm:ssZ ({value!r:.40})") from None


def key_from_fields(
    source: str, step: str, fields: Mapping[str, Any], *, issued_at: datetime, request_id: str | None = None
) -> TemporaryKey:
    """A :class:`TemporaryKey` from ``AccessKeyId``/``AccessKeySecret``/``SecurityToken``/``Expiration`` (the
    field names of STS ``Credentials``, the metadata and the URI answers); the values are never echoed."""
    values: dict[str, str] = {}
    for name in ("AccessKeyId", "AccessKeySecret", "SecurityToken"):
        value = fields.get(name)
        if not isinstance(value, str) or _PRINTABLE.fullmatch(value) is None:
            raise CredentialSourceError(
                source, f"{step}: {name} missing or not printable in the answer", request_id=request_id
            )
        values[name] = value
    mask_derived(values["AccessKeySecret"], values["SecurityToken"])
    expires_at = _expiry(source, step, fields.get("Expiration"))
    return TemporaryKey(
        access_key_id=values["AccessKeyId"],
        access_key_secret=values["AccessKeySecret"],
        security_token=values["SecurityToken"],
        expires_at=expires_at,
        source=source,
        issued_at=min(issued_at, expires_at),
    )


def _sts_key(source: str, step: str, response: httpx.Response, now: datetime) -> TemporaryKey:
    body = _json_object(source, step, response)
    rid = body.get("RequestId") if isinstance(body.get("RequestId"), str) else None
    credentials = body.get("Credentials")
    if not isinstance(credentials, dict):
        raise CredentialSourceError(source, f"{step}: the answer has no Credentials", request_id=rid)
    return key_from_fields(source, step, credentials, issued_at=now, request_id=rid)


def _default_session_name() -> str:
    # the library's default (RamRoleArnCredentialsProvider / OIDCRoleArnCredentialsProvider.__init__)
    return f"credentials-python-{int(_utcnow().timestamp())}"


# ---------------------------------------------------------------------------------------------------- sources


class RamRoleArnSource:
    """STS ``AssumeRole`` with a base AccessKey (``provider/ram_role_arn.py``).

    :param sts: transport to the STS endpoint, signing with :class:`RpcSignatureAuth` of the base key.
    :param base_key_digest: digest of the base key (id, secret, token), for :meth:`cache_key`.
    :param role_arn: ``RoleArn``.
    :param role_session_name: ``RoleSessionName`` (None: ``credentials-python-<unix time>``).
    :param duration_seconds: ``DurationSeconds``.
    :param policy: optional ``Policy``.
    :param external_id: optional ``ExternalId``.
    :param name: the name in errors and ``test_connection``.
    :param clock: aware UTC clock (tests).
    """

    def __init__(
        self,
        *,
        sts: RegistryTransport,
        base_key_digest: str,
        role_arn: str,
        role_session_name: str | None = None,
        duration_seconds: int = DEFAULT_DURATION,
        policy: str | None = None,
        external_id: str | None = None,
        name: str = "ram_role_arn",
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.sts = sts
        self._base = base_key_digest
        self.role_arn = role_arn
        self.role_session_name = role_session_name
        self.duration_seconds = duration_seconds
        self.policy = policy
        self.external_id = external_id
        self._clock = clock or _utcnow

    def params(self) -> list[tuple[str, str]]:
        """The unsigned query (the signing parameters are added per attempt by the transport's auth)."""
        params = [
            ("Action", "AssumeRole"),
            ("Format", "JSON"),
            ("Version", STS_API_VERSION),
            ("DurationSeconds", str(self.duration_seconds)),
            ("RoleArn", self.role_arn),
            ("RoleSessionName", self.role_session_name or _default_session_name()),
        ]
        if self.policy:
            params.append(("Policy", self.policy))
        if self.external_id:
            params.append(("ExternalId", self.external_id))
        return params

    def flow(self) -> CredentialFlow:
        response = yield Call(self.sts, "GET", "/", params=self.params(), step="AssumeRole", service=STS_SERVICE)
        return _sts_key(self.name, "AssumeRole", response, self._clock())

    def secrets(self) -> list[str | None]:
        """Secrets besides the base key (which the transport's signer holds), for scrubbing."""
        return [self.policy, self.external_id]

    def cache_key(self) -> str:
        secrets = digest(self.policy, self.external_id)
        return (
            f"{self.name}|{self.sts.base_url}|{self.role_arn}|{self.role_session_name}|{self.duration_seconds}|"
            f"{self._base}|{secrets}"
        )


class OidcRoleArnSource:
    """STS ``AssumeRoleWithOIDC`` with a token file re-read at every renewal (``provider/oidc.py``).

    :param sts: transport to the STS endpoint (the call is not signed).
    :param role_arn: ``RoleArn``.
    :param oidc_provider_arn: ``OIDCProviderArn``.
    :param oidc_token_file: path of the OIDC token (RRSA mounts it and rotates it).
    :param role_session_name: ``RoleSessionName`` (None: ``credentials-python-<unix time>``).
    :param duration_seconds: ``DurationSeconds``.
    :param policy: optional ``Policy``.
    """

    def __init__(
        self,
        *,
        sts: RegistryTransport,
        role_arn: str,
        oidc_provider_arn: str,
        oidc_token_file: str,
        role_session_name: str | None = None,
        duration_seconds: int = DEFAULT_DURATION,
        policy: str | None = None,
        name: str = "oidc_role_arn",
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.sts = sts
        self.role_arn = role_arn
        self.oidc_provider_arn = oidc_provider_arn
        self.oidc_token_file = oidc_token_file
        self.role_session_name = role_session_name
        self.duration_seconds = duration_seconds
        self.policy = policy
        self._clock = clock or _utcnow
        self._token: str | None = None

    def read_token(self) -> str:
        """The current token (read afresh: the file rotates); masked as soon as it is read."""
        path = self.oidc_token_file
        token = read_token_file(self.name, path)
        self._token = token
        if _PRINTABLE.fullmatch(token) is None:
            raise CredentialSourceError(self.name, f"OIDC token file is empty or not printable ASCII: {path}")
        return token

    def secrets(self) -> list[str | None]:
        """What a service must never see repeated (the last token read, the policy), for scrubbing."""
        return [self._token, self.policy]

    def params(self, token: str) -> list[tuple[str, str]]:
        """The query ``_refresh_credentials`` sends (the token goes in it, as the library does)."""
        params = [
            ("Action", "AssumeRoleWithOIDC"),
            ("Format", "JSON"),
            ("Version", STS_API_VERSION),
            ("DurationSeconds", str(self.duration_seconds)),
            ("RoleArn", self.role_arn),
            ("OIDCProviderArn", self.oidc_provider_arn),
            ("OIDCToken", token),
            ("RoleSessionName", self.role_session_name or _default_session_name()),
            ("Timestamp", _utcnow().strftime(_STS_TIME)),  # wall time, as the request is sent now
        ]
        if self.policy:
            params.append(("Policy", self.policy))
        return params

    def flow(self) -> CredentialFlow:
        token = self.read_token()
        response = yield Call(
            self.sts, "GET", "/", params=self.params(token), step="AssumeRoleWithOIDC", service=STS_SERVICE
        )
        return _sts_key(self.name, "AssumeRoleWithOIDC", response, self._clock())

    def cache_key(self) -> str:
        return (
            f"{self.name}|{self.sts.base_url}|{self.role_arn}|{self.oidc_provider_arn}|{self.oidc_token_file}|"
            f"{self.role_session_name}|{self.duration_seconds}|{digest(self.policy)}"
        )


class EcsRamRoleSource:
    """The RAM role of an ECS instance from its metadata service, hardened mode (``provider/ecs_ram_role.py``):
    a session token first (``PUT /latest/api/token``), then the role name (unless given) and its key, each with
    the token header. Unlike the library, a failed token request is an error, never a fall-back to unauthenticated
    metadata requests.

    :param metadata: transport to the metadata service (``metadata_service=True``: http, never a proxy).
    :param role_name: the role; None: discovered at every renewal.
    """

    def __init__(
        self,
        *,
        metadata: RegistryTransport,
        role_name: str | None = None,
        name: str = "ecs_ram_role",
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.metadata = metadata
        self.role_name = role_name
        self._clock = clock or _utcnow
        self._token: str | None = None

    def secrets(self) -> list[str | None]:
        """The metadata session token last obtained, for scrubbing."""
        return [self._token]

    def _role_from(self, response: httpx.Response) -> str:
        lines = [line.strip() for line in response.text.splitlines() if line.strip()]
        if not lines or _ROLE_NAME.fullmatch(lines[0]) is None:
            raise CredentialSourceError(self.name, "ECS RAM role discovery: no RAM role is attached to this instance")
        return lines[0]

    def flow(self) -> CredentialFlow:
        answer = yield Call(
            self.metadata,
            "PUT",
            "/latest/api/token",
            headers={METADATA_TTL_HEADER: str(METADATA_TOKEN_TTL)},
            step="ECS metadata token",
            service=METADATA_SERVICE,
        )
        token = self._token = answer.text.strip()
        mask_derived(token)
        if _PRINTABLE.fullmatch(token) is None:
            raise CredentialSourceError(self.name, "ECS metadata token: the answer is empty or not printable")
        headers = {METADATA_TOKEN_HEADER: token}
        role = self.role_name
        if role is None:
            listing = yield Call(
                self.metadata,
                "GET",
                METADATA_CREDENTIALS_PATH,
                headers=headers,
                step="ECS RAM role discovery",
                service=METADATA_SERVICE,
            )
            role = self._role_from(listing)
        step = f"ECS RAM role credentials ({role})"
        answer = yield Call(
            self.metadata,
            "GET",
            METADATA_CREDENTIALS_PATH + quote(role, safe=""),
            headers=headers,
            step=step,
            service=METADATA_SERVICE,
        )
        body = _json_object(self.name, step, answer)
        if body.get("Code") != "Success":
            raise CredentialSourceError(self.name, f"{step}: Code is {str(body.get('Code'))!r:.40}, not 'Success'")
        # LastUpdated is when the metadata service last rotated the key, not when we got it: the renewal margin
        # is reckoned from our receipt, as for the other sources
        return key_from_fields(self.name, step, body, issued_at=self._clock())

    def cache_key(self) -> str:
        return f"{self.name}|{self.metadata.base_url}|{self.role_name}"


class CredentialsUriSource:
    """A key from a credentials URI (``provider/uri.py``): ``GET`` answering ``{Code: "Success", AccessKeyId,
    AccessKeySecret, SecurityToken, Expiration}``.

    :param service: transport to the URI's ``scheme://host[:port]``.
    :param path: the URI's path.
    :param params: the URI's query pairs.
    :param uri_digest: digest of the URI (it may carry a token), for :meth:`cache_key`.
    """

    def __init__(
        self,
        *,
        service: RegistryTransport,
        path: str,
        params: list[tuple[str, str]],
        uri_digest: str,
        name: str = "credentials_uri",
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.service = service
        self.path = path
        self.params = params
        self._digest = uri_digest
        # the URI itself is masked where it is read (credential_config, the chain); its path is not: masking
        # "/api/v1/credentials" would put *** in every log line that names that path
        self._clock = clock or _utcnow

    def secrets(self) -> list[str | None]:
        """The URI's query values (a token, typically), for scrubbing."""
        return [value for _, value in self.params]

    def flow(self) -> CredentialFlow:
        step = "credentials URI"
        answer = yield Call(self.service, "GET", self.path, params=self.params or None, step=step, service=URI_SERVICE)
        body = _json_object(self.name, step, answer)
        if body.get("Code") != "Success":
            raise CredentialSourceError(self.name, f"{step}: Code is {str(body.get('Code'))!r:.40}, not 'Success'")
        return key_from_fields(self.name, step, body, issued_at=self._clock())

    def cache_key(self) -> str:
        return f"{self.name}|{self.service.base_url}|{self._digest}"


class _ProbeTransport(RegistryTransport):
    """A transport whose failures come back as a 599 answer instead of an error: a probe's outcome is data."""

    def request(self, method: str, target: str, **kwargs: Any) -> httpx.Response:
        try:
            return super().request(method, target, **kwargs)
        except ModelRegistryError:
            return httpx.Response(599)

    async def arequest(self, method: str, target: str, **kwargs: Any) -> httpx.Response:
        try:
            return await super().arequest(method, target, **kwargs)
        except ModelRegistryError:
            return httpx.Response(599)


class EcsThenUriSource:
    """The library's last two providers when both apply: ECS metadata first, the credentials URI when the metadata
    service does not answer a token request (one probe, at the first fetch; the choice then sticks, as the
    library's ``reuse_last_provider``).

    :param ecs: the ECS source.
    :param uri: the credentials URI source.
    :param probe: transport to the metadata service that never raises (:class:`_ProbeTransport`).
    """

    def __init__(self, *, ecs: EcsRamRoleSource, uri: CredentialsUriSource, probe: RegistryTransport) -> None:
        self.ecs = ecs
        self.uri = uri
        self.probe = probe
        self.chosen: EcsRamRoleSource | CredentialsUriSource | None = None
        self.name = "default_chain/ecs_ram_role"

    def flow(self) -> CredentialFlow:
        if self.chosen is None:
            answer = yield Call(
                self.probe,
                "PUT",
                "/latest/api/token",
                headers={METADATA_TTL_HEADER: str(METADATA_TOKEN_TTL)},
                step="ECS metadata probe",
                service=METADATA_SERVICE,
            )
            self.chosen = self.ecs if answer.status_code == 200 else self.uri
            self.name = self.chosen.name
        key: TemporaryKey = yield from self.chosen.flow()
        return key

    def cache_key(self) -> str:
        return f"{self.ecs.cache_key()}||{self.uri.cache_key()}"


# ----------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AlibabaCredentialConfig:
    """The credential settings of a PAI connection, checked (see :func:`credential_config`)."""

    source: str = "access_key"
    access_key_id: str | None = None
    access_key_secret: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    role_session_name: str | None = None
    duration_seconds: int = DEFAULT_DURATION
    policy: str | None = field(default=None, repr=False)
    external_id: str | None = field(default=None, repr=False)
    oidc_provider_arn: str | None = None
    oidc_token_file: str | None = None
    role_name: str | None = None
    metadata_endpoint: str | None = None
    credentials_uri: str | None = field(default=None, repr=False)
    sts_endpoint: str | None = None


#: Extras each source reads (others are ignored by that source).
SOURCE_EXTRAS: dict[str, tuple[str, ...]] = {
    # a security_token with the default source keeps meaning an STS key, as before credential_source existed
    "access_key": ("security_token",),
    "sts": ("security_token",),
    "ram_role_arn": (
        "security_token",
        "role_arn",
        "role_session_name",
        "duration_seconds",
        "policy",
        "external_id",
        "sts_endpoint",
    ),
    "oidc_role_arn": (
        "role_arn",
        "oidc_provider_arn",
        "oidc_token_file",
        "role_session_name",
        "duration_seconds",
        "policy",
        "sts_endpoint",
    ),
    "ecs_ram_role": ("role_name", "metadata_endpoint"),
    "credentials_uri": ("credentials_uri",),
    "default_chain": ("sts_endpoint", "metadata_endpoint"),
}
_SECRET_EXTRAS = frozenset({"security_token", "policy", "external_id", "credentials_uri"})


def credential_config(login: Any, password: Any, extras: Mapping[str, Any]) -> AlibabaCredentialConfig:
    """Check a PAI connection's credential settings before anything is sent.

    Every setting the chosen source reads is checked (empty, ``'None'``, control characters, ARN shapes, numbers);
    a problem raises :class:`~airflow_provider_modelreg.errors.RegistryConnectionConfigError` naming the field.
    """
    source = _text(extras.get("credential_source"), "credential_source") or "access_key"
    if source not in SOURCES:
        raise RegistryConnectionConfigError("credential_source", f"must be one of {', '.join(SOURCES)}", source)
    wanted = SOURCE_EXTRAS[source]
    values: dict[str, Any] = {}
    for name in wanted:
        if name == "duration_seconds":
            values[name] = check_duration(extras.get(name))
        else:
            values[name] = _text(extras.get(name), name, secret=name in _SECRET_EXTRAS)
    if source in ("access_key", "sts", "ram_role_arn"):
        if not login:
            raise RegistryConnectionConfigError("login", "must hold the AccessKey ID")
        if not password:
            raise RegistryConnectionConfigError("password", "must hold the AccessKey secret")
        values["access_key_id"] = _text(login, "login", secret=True)
        values["access_key_secret"] = _text(password, "password", secret=True)
        mask_derived(values["access_key_secret"], values.get("security_token"))
    if source == "sts" and values["security_token"] is None:
        raise RegistryConnectionConfigError("security_token", "is required for credential_source 'sts'")
    if source == "ram_role_arn":
        values["role_arn"] = _text(values["role_arn"] or os.environ.get("ALIBABA_CLOUD_ROLE_ARN"), "role_arn")
        if values["role_arn"] is None:
            raise RegistryConnectionConfigError("role_arn", "is required for credential_source 'ram_role_arn'")
    if source == "credentials_uri" and values["credentials_uri"] is not None:
        mask_derived(values["credentials_uri"])
    check_role_arn(values.get("role_arn"))
    check_oidc_provider_arn(values.get("oidc_provider_arn"))
    check_session_name(values.get("role_session_name"))
    _pattern(values.get("role_name"), "role_name", _ROLE_NAME, "must be 1-64 characters of A-Z a-z 0-9 . @ - _")
    for name, any_http in (("sts_endpoint", False), ("metadata_endpoint", True)):
        if values.get(name) is not None:
            parse_service_url(values[name], name, any_http=any_http)
    if values.get("credentials_uri") is not None:
        parse_service_url(values["credentials_uri"], "credentials_uri", with_path=True)
    return AlibabaCredentialConfig(source=source, **values)


# ------------------------------------------------------------------------------------------------ transports


class _Transports:
    """Builds the transports of credential services from the hook's transport options."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    def sts(self, endpoint: str | None, auth: httpx.Auth, field_name: str = "sts_endpoint") -> RegistryTransport:
        base, _, _ = parse_service_url(endpoint or DEFAULT_STS_ENDPOINT, field_name)
        return RegistryTransport(vendor="pai", base_url=base, auth=auth, **self.options)

    def metadata(self, endpoint: str | None) -> RegistryTransport:
        base, _, _ = parse_service_url(endpoint or DEFAULT_METADATA_ENDPOINT, "metadata_endpoint", any_http=True)
        return RegistryTransport(vendor="pai", base_url=base, auth=_UNSIGNED, metadata_service=True, **self._local())

    def probe(self, config: AlibabaCredentialConfig) -> RegistryTransport:
        """A single short attempt at the metadata service (the library waits 1 s), never raising."""
        base, _, _ = parse_service_url(
            config.metadata_endpoint or DEFAULT_METADATA_ENDPOINT, "metadata_endpoint", any_http=True
        )
        options = self._local()
        options["retry"] = dataclasses.replace(options["retry"], max_attempts=1, attempt_timeout=1.0, call_timeout=2.0)
        return _ProbeTransport(vendor="pai", base_url=base, auth=_UNSIGNED, metadata_service=True, **options)

    def service(self, uri: str, field_name: str) -> tuple[RegistryTransport, str, list[tuple[str, str]]]:
        base, path, params = parse_service_url(uri, field_name, with_path=True)
        if base.startswith("http://"):  # a sidecar or link-local service: never through a proxy
            transport = RegistryTransport(
                vendor="pai", base_url=base, auth=_UNSIGNED, metadata_service=True, **self._local()
            )
        else:
            transport = RegistryTransport(vendor="pai", base_url=base, auth=_UNSIGNED, **self.options)
        return transport, path, params

    def _local(self) -> dict[str, Any]:
        # A local service answers at once or not at all (the library waits 1 s): short attempts, a short call.
        options = {k: v for k, v in self.options.items() if k not in ("proxy", "ca_bundle")}
        retry: RetryPolicy = options.get("retry") or RetryPolicy()
        options["retry"] = dataclasses.replace(
            retry,
            max_attempts=min(retry.max_attempts, 3),
            attempt_timeout=min(retry.attempt_timeout, 5.0),
            call_timeout=min(retry.call_timeout, 20.0),
        )
        return options


_STS_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)+")


def _sts_region_endpoint(region: str | None, vpc: bool, field_name: str = "sts_region") -> str | None:
    """The library's regional rule: ``sts[-vpc].<region>.aliyuncs.com`` (None without a region).

    The region becomes a host name: anything but a region id (``'None'``, a pasted newline) is refused here.
    """
    if not region:
        return None
    if _STS_REGION.fullmatch(region) is None:
        raise RegistryConnectionConfigError(field_name, "must be a region id like cn-hangzhou", region)
    return f"https://{'sts-vpc' if vpc else 'sts'}.{region}.aliyuncs.com"


def _env_sts_endpoint(env: Mapping[str, str]) -> str | None:
    vpc = env.get("ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED", "false").lower() == "true"
    return _sts_region_endpoint(env.get("ALIBABA_CLOUD_STS_REGION"), vpc, "ALIBABA_CLOUD_STS_REGION")


# ------------------------------------------------------------------------------------------- default chain


@dataclass(frozen=True)
class Resolved:
    """What a configuration resolves to: a static key, or a source to refresh.

    :param label: for ``test_connection`` and logs, e.g. ``default_chain -> oidc_role_arn (environment)``.
    """

    label: str
    key: TemporaryKey | None = None
    source: Any = None


def _static(name: str, label: str, key_id: str, secret: str, token: str | None) -> Resolved:
    mask_derived(secret, token)
    kind = "sts" if token else "access_key"
    return Resolved(label, key=TemporaryKey(key_id, secret, token, source=name if name != "default_chain" else kind))


class _Chain:
    """The official library's order, decided once (``DefaultCredentialsProvider.__init__`` and its first
    ``get_credentials``): the first provider that applies wins; one whose configuration is absent is skipped."""

    NAME = "default_chain"

    def __init__(
        self, config: AlibabaCredentialConfig, transports: _Transports, env: Mapping[str, str], clock: Clock | None
    ) -> None:
        self.config = config
        self.transports = transports
        self.env = env
        self.clock = clock
        self.skipped: list[str] = []

    def _env(self, name: str) -> str | None:
        value = self.env.get(name)
        return value if value else None

    def _label(self, picked: str, where: str) -> str:
        return f"{self.NAME} -> {picked} ({where})"

    def _fail(self, step: str) -> CredentialSourceError:
        return CredentialSourceError(self.NAME, step)

    def _read_profile(self, path: str) -> bytes | None:
        """A profile file's bytes (None when there is none), capped and opened without blocking.

        :raises CredentialSourceError: the file is a FIFO or device, or larger than :data:`PROFILE_FILE_CAP`.
        """
        try:
            return read_small_file(path, PROFILE_FILE_CAP)
        except OSError:
            return None
        except Exception as exc:  # _FileRefused: not a regular file, or too large
            raise self._fail(f"profile file refused: {path}: {exc}") from None

    def _value(self, value: Any, where: str, *, secret: bool = False) -> str | None:
        try:
            return _text(value, where, secret=secret)
        except RegistryConnectionConfigError as exc:
            raise self._fail(f"{where}: {exc.rule}") from None

    def resolve(self) -> Resolved:
        for step in (self._environment, self._oidc_environment, self._cli_profile, self._profile_file):
            found = step()
            if found is not None:
                return found
        ecs = self._ecs()
        uri_value = self._env("ALIBABA_CLOUD_CREDENTIALS_URI")
        uri = None if uri_value is None else self._uri(uri_value, "ALIBABA_CLOUD_CREDENTIALS_URI", "environment")
        if ecs is not None and uri is not None:
            # the library tries ECS and moves on to the URI when it fails: decided by one probe at the first fetch
            source = EcsThenUriSource(ecs=ecs.source, uri=uri.source, probe=self.transports.probe(self.config))
            return Resolved(
                self._label("ecs_ram_role, else credentials_uri", "instance metadata, environment"), source=source
            )
        if ecs is not None:
            return ecs
        if uri is not None:
            return uri
        raise self._fail(
            "unable to load credentials from any of the providers in the chain: " + "; ".join(self.skipped)
        )

    # -- providers, in the library's order

    def _environment(self) -> Resolved | None:
        key_id = self._value(self._env("ALIBABA_CLOUD_ACCESS_KEY_ID"), "ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = self._value(
            self._env("ALIBABA_CLOUD_ACCESS_KEY_SECRET"), "ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret=True
        )
        if key_id is None or secret is None:
            self.skipped.append("environment: ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET not set")
            return None
        token = self._value(self._env("ALIBABA_CLOUD_SECURITY_TOKEN"), "ALIBABA_CLOUD_SECURITY_TOKEN", secret=True)
        kind = "sts" if token else "access_key"
        return _static(self.NAME, self._label(kind, "environment ALIBABA_CLOUD_ACCESS_KEY_ID"), key_id, secret, token)

    def _oidc_environment(self) -> Resolved | None:
        names = ("ALIBABA_CLOUD_ROLE_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_TOKEN_FILE")
        role_arn, provider_arn, token_file = (self._env(n) for n in names)
        if role_arn is None or provider_arn is None or token_file is None:
            self.skipped.append("OIDC: ALIBABA_CLOUD_ROLE_ARN/_OIDC_PROVIDER_ARN/_OIDC_TOKEN_FILE not all set")
            return None
        return self._oidc(
            {
                "role_arn": role_arn,
                "oidc_provider_arn": provider_arn,
                "oidc_token_file": token_file,
                "role_session_name": self._env("ALIBABA_CLOUD_ROLE_SESSION_NAME"),
            },
            "environment ALIBABA_CLOUD_OIDC_*",
            None,
        )

    def _cli_profile(self) -> Resolved | None:
        if self.env.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "false").lower() == "true":
            self.skipped.append("CLI profile: disabled")
            return None
        path = os.path.join(_home(self.env), ".aliyun", "config.json")
        raw = self._read_profile(path)
        try:
            config = None if raw is None else json.loads(raw)
        except (ValueError, RecursionError):
            config = None
        if config is None:
            self.skipped.append(f"CLI profile: {path} not found or not JSON")
            return None
        wanted = self._env("ALIBABA_CLOUD_PROFILE") or (config.get("current") if isinstance(config, dict) else None)
        profiles = config.get("profiles") if isinstance(config, dict) else None
        for profile in profiles if isinstance(profiles, list) else []:
            if isinstance(profile, dict) and wanted and profile.get("name") == wanted:
                return self._cli_mode(profile, f"CLI profile {wanted!r} in {path}")
        self.skipped.append(f"CLI profile: no profile {wanted!r} in {path}")
        return None

    def _cli_mode(self, profile: Mapping[str, Any], where: str) -> Resolved:
        """The modes of ``CLIProfileCredentialsProvider._get_credentials_provider`` this package supports."""
        mode = profile.get("mode")
        get = profile.get
        if mode in ("AK", "StsToken"):
            key_id = self._value(get("access_key_id"), f"{where}: access_key_id")
            secret = self._value(get("access_key_secret"), f"{where}: access_key_secret", secret=True)
            token = self._value(get("sts_token"), f"{where}: sts_token", secret=True) if mode == "StsToken" else None
            if key_id is None or secret is None or (mode == "StsToken" and token is None):
                raise self._fail(
                    f"{where}: mode {mode} needs access_key_id, access_key_secret"
                    + (", sts_token" if mode == "StsToken" else "")
                )
            return _static(self.NAME, self._label("sts" if token else "access_key", where), key_id, secret, token)
        if mode == "RamRoleArn":
            return self._ram_role(
                {
                    "access_key_id": get("access_key_id"),
                    "access_key_secret": get("access_key_secret"),
                    "role_arn": get("ram_role_arn"),
                    "role_session_name": get("ram_session_name"),
                    "duration_seconds": get("expired_seconds"),
                    "policy": get("policy"),
                    "external_id": get("external_id"),
                },
                where,
                _sts_region_endpoint(get("sts_region"), bool(get("enable_vpc"))),
            )
        if mode == "EcsRamRole":
            return self._ecs_source(get("ram_role_name"), where)
        if mode == "OIDC":
            return self._oidc(
                {
                    "role_arn": get("ram_role_arn"),
                    "oidc_provider_arn": get("oidc_provider_arn"),
                    "oidc_token_file": get("oidc_token_file"),
                    "role_session_name": get("role_session_name"),
                    "duration_seconds": get("expired_seconds"),
                    "policy": get("policy"),
                },
                where,
                _sts_region_endpoint(get("sts_region"), bool(get("enable_vpc"))),
            )
        raise self._fail(
            f"{where}: mode {str(mode)!r:.40} is not supported (supported: AK, StsToken, RamRoleArn, EcsRamRole, OIDC)"
        )

    def _profile_file(self) -> Resolved | None:
        path = self._env("ALIBABA_CLOUD_CREDENTIALS_FILE") or os.path.join(
            _home(self.env), ".alibabacloud", "credentials.ini"
        )
        section_name = self._env("ALIBABA_CLOUD_PROFILE") or "default"
        parser = configparser.ConfigParser()
        raw = self._read_profile(path)
        try:
            if raw is not None:
                parser.read_string(raw.decode("utf-8"), path)
        except (configparser.Error, UnicodeDecodeError):
            self.skipped.append(f"profile file: {path} could not be parsed")
            return None
        if not parser.has_section(section_name):
            self.skipped.append(f"profile file: no section [{section_name}] in {path}")
            return None
        # ProfileCredentialsProvider's _load_ini: a value is cut at '#'
        section = {k: v.split("#")[0].strip() for k, v in parser.items(section_name)}
        where = f"profile [{section_name}] in {path}"
        kind = section.get("type")
        if kind == "access_key":
            return self._cli_mode({"mode": "AK", **section}, where)
        if kind == "ram_role_arn":
            return self._ram_role(section, where, None)
        if kind == "oidc_role_arn":
            return self._oidc({**section, "oidc_token_file": section.get("oidc_token_file_path")}, where, None)
        if kind == "ecs_ram_role":
            return self._ecs_source(section.get("role_name"), where)
        raise self._fail(
            f"{where}: type {str(kind)!r:.40} is not supported (supported: access_key, ram_role_arn, oidc_role_arn, "
            "ecs_ram_role)"
        )

    def _ecs(self) -> Resolved | None:
        if self.env.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "false").lower() == "true":
            self.skipped.append("ECS RAM role: ALIBABA_CLOUD_ECS_METADATA_DISABLED=true")
            return None
        return self._ecs_source(self._env("ALIBABA_CLOUD_ECS_METADATA"), "instance metadata")

    # -- source builders (profile values are checked like extras, named by where they come from)

    def _sts_endpoint(self, fallback: str | None) -> str | None:
        return self.config.sts_endpoint or fallback or _env_sts_endpoint(self.env)

    def _ram_role(self, values: Mapping[str, Any], where: str, endpoint: str | None) -> Resolved:
        key_id = self._value(values.get("access_key_id"), f"{where}: access_key_id")
        secret = self._value(values.get("access_key_secret"), f"{where}: access_key_secret", secret=True)
        role_arn = self._value(values.get("role_arn"), f"{where}: role_arn")
        if key_id is None or secret is None or role_arn is None:
            raise self._fail(f"{where}: RAM role needs access_key_id, access_key_secret and role_arn")
        mask_derived(secret)
        try:
            check_role_arn(role_arn, f"{where}: role_arn")
            session = check_session_name(_text(values.get("role_session_name"), "role_session_name"))
            duration = check_duration(values.get("duration_seconds"), f"{where}: duration_seconds")
        except RegistryConnectionConfigError as exc:
            raise self._fail(str(exc)) from None
        source = RamRoleArnSource(
            sts=self.transports.sts(self._sts_endpoint(endpoint), RpcSignatureAuth(key_id, secret)),
            base_key_digest=digest(key_id, secret),
            role_arn=role_arn,
            role_session_name=session,
            duration_seconds=duration,
            policy=values.get("policy") or None,
            external_id=values.get("external_id") or None,
            name=f"{self.NAME}/ram_role_arn",
            clock=self.clock,
        )
        return Resolved(self._label("ram_role_arn", where), source=source)

    def _oidc(self, values: Mapping[str, Any], where: str, endpoint: str | None) -> Resolved:
        role_arn = self._value(values.get("role_arn"), f"{where}: role_arn")
        provider = self._value(values.get("oidc_provider_arn"), f"{where}: oidc_provider_arn")
        token_file = self._value(values.get("oidc_token_file"), f"{where}: oidc_token_file")
        if role_arn is None or provider is None or token_file is None:
            raise self._fail(f"{where}: OIDC needs role_arn, oidc_provider_arn and oidc_token_file")
        try:
            check_role_arn(role_arn, f"{where}: role_arn")
            check_oidc_provider_arn(provider, f"{where}: oidc_provider_arn")
            session = check_session_name(_text(values.get("role_session_name"), f"{where}: role_session_name"))
            duration = check_duration(values.get("duration_seconds"), f"{where}: duration_seconds")
        except RegistryConnectionConfigError as exc:
            raise self._fail(str(exc)) from None
        source = OidcRoleArnSource(
            sts=self.transports.sts(self._sts_endpoint(endpoint), _UNSIGNED),
            role_arn=role_arn,
            oidc_provider_arn=provider,
            oidc_token_file=token_file,
            role_session_name=session,
            duration_seconds=duration,
            policy=values.get("policy") or None,
            name=f"{self.NAME}/oidc_role_arn",
            clock=self.clock,
        )
        return Resolved(self._label("oidc_role_arn", where), source=source)

    def _ecs_source(self, role_name: Any, where: str) -> Resolved:
        role = self._value(role_name, f"{where}: role name")
        if role is not None and _ROLE_NAME.fullmatch(role) is None:
            raise self._fail(f"{where}: role name must be 1-64 characters of A-Z a-z 0-9 . @ - _")
        source = EcsRamRoleSource(
            metadata=self.transports.metadata(self.config.metadata_endpoint),
            role_name=role,
            name=f"{self.NAME}/ecs_ram_role",
            clock=self.clock,
        )
        return Resolved(self._label("ecs_ram_role", where), source=source)

    def _uri(self, uri: str, field_name: str, where: str) -> Resolved:
        value = self._value(uri, field_name, secret=True)
        assert value is not None
        mask_derived(value)
        try:
            transport, path, params = self.transports.service(value, field_name)
        except RegistryConnectionConfigError as exc:
            raise self._fail(str(exc)) from None
        source = CredentialsUriSource(
            service=transport,
            path=path,
            params=params,
            uri_digest=digest(value),
            name=f"{self.NAME}/credentials_uri",
            clock=self.clock,
        )
        return Resolved(self._label("credentials_uri", where), source=source)


def _home(env: Mapping[str, str]) -> str:
    """``auth_util.get_home`` (POSIX part): ``HOME``, else ``HOMEPATH``, else the user's home."""
    return env.get("HOME") or env.get("HOMEPATH") or os.path.expanduser("~")


def resolve_default_chain(
    config: AlibabaCredentialConfig,
    transport_options: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> Resolved:
    """Decide which provider of the library's default chain applies (no request is sent).

    :raises CredentialSourceError: no provider applies (each one's reason is listed), or a profile names a mode
        this package does not support, or a profile's values are malformed.
    """
    return _Chain(config, _Transports(transport_options), os.environ if env is None else env, clock).resolve()


# ---------------------------------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class PaiAuth:
    """What signs PAI requests, and where its key comes from.

    :param auth: static :class:`~airflow_provider_modelreg.auth.AcsV3Auth` for a long-lived or given STS key,
        else :class:`~airflow_provider_modelreg.credentials.signing.AcsCredentialAuth` on a shared credential.
    :param label: the source (for ``default_chain``, which one the chain picked and why).
    :param credential: the process-wide refreshing credential, None for a static key.
    """

    auth: httpx.Auth
    label: str
    credential: RefreshingCredential | None = None
    static_key: TemporaryKey | None = None

    def expiry_text(self) -> str:
        """When the current key expires, for ``test_connection``."""
        if self.static_key is not None:
            if self.static_key.security_token:
                return "a given STS key (its expiry is not known here)"
            return "a long-lived AccessKey (no expiry)"
        key = self.credential.current if self.credential is not None else None
        if key is None or key.expires_at is None:
            return "no key obtained yet"
        return f"the key expires at {key.expires_at.strftime(_STS_TIME)}"


def _explicit(
    config: AlibabaCredentialConfig, transports: _Transports, env: Mapping[str, str], clock: Clock | None
) -> Resolved:
    """The source named by ``credential_source`` (anything but ``default_chain``)."""
    source = config.source
    if source in ("access_key", "sts"):
        assert config.access_key_id is not None and config.access_key_secret is not None
        kind = "sts" if config.security_token else "access_key"
        return _static(kind, kind, config.access_key_id, config.access_key_secret, config.security_token)
    sts_endpoint = config.sts_endpoint or _env_sts_endpoint(env)
    if source == "ram_role_arn":
        assert config.access_key_id and config.access_key_secret and config.role_arn
        # signed with the wall clock, whatever ``clock`` says: STS checks Timestamp against its own
        auth = RpcSignatureAuth(config.access_key_id, config.access_key_secret, security_token=config.security_token)
        return Resolved(
            source,
            source=RamRoleArnSource(
                sts=transports.sts(sts_endpoint, auth),
                base_key_digest=digest(config.access_key_id, config.access_key_secret, config.security_token),
                role_arn=config.role_arn,
                role_session_name=config.role_session_name
                or check_session_name(
                    _text(env.get("ALIBABA_CLOUD_ROLE_SESSION_NAME"), "ALIBABA_CLOUD_ROLE_SESSION_NAME"),
                    "ALIBABA_CLOUD_ROLE_SESSION_NAME",
                ),
                duration_seconds=config.duration_seconds,
                policy=config.policy,
                external_id=config.external_id,
                clock=clock,
            ),
        )
    if source == "oidc_role_arn":
        return Resolved(source, source=_oidc_source(config, transports, env, sts_endpoint, clock))
    if source == "ecs_ram_role":
        role = config.role_name or _text(env.get("ALIBABA_CLOUD_ECS_METADATA"), "ALIBABA_CLOUD_ECS_METADATA")
        _pattern(role, "role_name", _ROLE_NAME, "must be 1-64 characters of A-Z a-z 0-9 . @ - _")
        metadata = transports.metadata(config.metadata_endpoint)
        return Resolved(source, source=EcsRamRoleSource(metadata=metadata, role_name=role, clock=clock))
    uri = config.credentials_uri or _text(
        env.get("ALIBABA_CLOUD_CREDENTIALS_URI"), "ALIBABA_CLOUD_CREDENTIALS_URI", secret=True
    )
    if uri is None:
        raise RegistryConnectionConfigError(
            "credentials_uri", "is required for credential_source 'credentials_uri' (or ALIBABA_CLOUD_CREDENTIALS_URI)"
        )
    mask_derived(uri)
    field_name = "credentials_uri" if config.credentials_uri else "ALIBABA_CLOUD_CREDENTIALS_URI"
    service, path, params = transports.service(uri, field_name)
    return Resolved(
        source,
        source=CredentialsUriSource(service=service, path=path, params=params, uri_digest=digest(uri), clock=clock),
    )


def _oidc_source(
    config: AlibabaCredentialConfig,
    transports: _Transports,
    env: Mapping[str, str],
    sts_endpoint: str | None,
    clock: Clock | None,
) -> OidcRoleArnSource:
    """Extras first, else the RRSA environment variables (ACK's pod identity webhook sets them)."""
    settings = {
        "role_arn": (config.role_arn, "ALIBABA_CLOUD_ROLE_ARN"),
        "oidc_provider_arn": (config.oidc_provider_arn, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"),
        "oidc_token_file": (config.oidc_token_file, "ALIBABA_CLOUD_OIDC_TOKEN_FILE"),
        "role_session_name": (config.role_session_name, "ALIBABA_CLOUD_ROLE_SESSION_NAME"),
    }
    values: dict[str, str | None] = {}
    for name, (extra, variable) in settings.items():
        values[name] = extra if extra is not None else _text(env.get(variable), variable)
        if values[name] is None and name != "role_session_name":
            raise RegistryConnectionConfigError(
                name, f"is required for credential_source 'oidc_role_arn' (extra {name} or env {variable})"
            )
    check_role_arn(values["role_arn"])
    check_oidc_provider_arn(values["oidc_provider_arn"])
    check_session_name(values["role_session_name"])
    return OidcRoleArnSource(
        sts=transports.sts(sts_endpoint, _UNSIGNED),
        role_arn=str(values["role_arn"]),
        oidc_provider_arn=str(values["oidc_provider_arn"]),
        oidc_token_file=str(values["oidc_token_file"]),
        role_session_name=values["role_session_name"],
        duration_seconds=config.duration_seconds,
        policy=config.policy,
        clock=clock,
    )


def build_pai_auth(
    config: AlibabaCredentialConfig,
    transport_options: Mapping[str, Any],
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
) -> PaiAuth:
    """The signing of PAI requests for a connection's credential settings.

    A static key (``access_key``, ``sts``, or what ``default_chain`` found in the environment or a profile) signs
    with :class:`~airflow_provider_modelreg.auth.AcsV3Auth` directly. Every other source is shared process-wide
    (:func:`~airflow_provider_modelreg.credentials.base.shared_credential`): many hooks on one connection renew once.

    :param config: from :func:`credential_config`.
    :param transport_options: the hook's ``transport_options(conn)`` (retry, deadlines, proxy, CA, test transports).
    :param env: environment variables (default ``os.environ``).
    :param clock: aware UTC clock for the sources and a newly created shared credential (tests).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    transports = _Transports(transport_options)
    if config.source == "default_chain":
        resolved = _Chain(config, transports, environ, clock).resolve()
    else:
        resolved = _explicit(config, transports, environ, clock)
    if resolved.key is not None:
        key = resolved.key
        auth = AcsV3Auth(key.access_key_id, key.access_key_secret, security_token=key.security_token)
        return PaiAuth(auth, resolved.label, static_key=key)
    credential = shared_credential(resolved.source, **({"clock": clock} if clock is not None else {}))
    return PaiAuth(AcsCredentialAuth(credential), resolved.label, credential)
