"""The Alibaba credential sources as sans-IO flows (RAM role, OIDC role, ECS instance metadata, credentials URI)
and the answers they read (an STS key, a metadata or URI answer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import httpx

from airflow_provider_modelreg.credentials.alibaba.checks import (
    _PRINTABLE,
    _ROLE_NAME,
    _STS_TIME,
    DEFAULT_DURATION,
    METADATA_CREDENTIALS_PATH,
    METADATA_SERVICE,
    METADATA_TOKEN_HEADER,
    METADATA_TOKEN_TTL,
    METADATA_TTL_HEADER,
    STS_API_VERSION,
    STS_SERVICE,
    URI_SERVICE,
    Clock,
    _utcnow,
)
from airflow_provider_modelreg.credentials.base import (
    Call,
    CredentialFlow,
    CredentialSourceError,
    TemporaryKey,
    digest,
    mask_derived,
    parse_json_answer,
    read_token_file,
)
from airflow_provider_modelreg.errors import ModelRegistryError
from airflow_provider_modelreg.transport import RegistryTransport


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


def _success_key(source: str, step: str, response: httpx.Response, clock: Clock) -> TemporaryKey:
    """The key of an answer that says ``"Code": "Success"`` (the metadata service's, a credentials URI's), received
    now by ``clock``."""
    body = _json_object(source, step, response)
    if body.get("Code") != "Success":
        raise CredentialSourceError(source, f"{step}: Code is {str(body.get('Code'))!r:.40}, not 'Success'")
    return key_from_fields(source, step, body, issued_at=clock())


def _metadata_token_call(metadata: RegistryTransport, step: str) -> Call:
    """The metadata service's session token request (hardened mode: ``PUT /latest/api/token``)."""
    return Call(
        metadata,
        "PUT",
        "/latest/api/token",
        headers={METADATA_TTL_HEADER: str(METADATA_TOKEN_TTL)},
        step=step,
        service=METADATA_SERVICE,
    )


def _default_session_name() -> str:
    # the library's default (RamRoleArnCredentialsProvider / OIDCRoleArnCredentialsProvider.__init__)
    return f"credentials-python-{int(_utcnow().timestamp())}"


@dataclass(frozen=True)
class AssumedRole:
    """The role an STS source asks for, as both actions send it.

    :param role_arn: ``RoleArn``.
    :param role_session_name: ``RoleSessionName`` (None: ``credentials-python-<unix time>``).
    :param duration_seconds: ``DurationSeconds``.
    :param policy: optional ``Policy`` (scrubbed from errors, left out of the repr).
    """

    role_arn: str
    role_session_name: str | None = None
    duration_seconds: int = DEFAULT_DURATION
    policy: str | None = field(default=None, repr=False)


class _AssumeRoleSource:
    """What the two STS sources share: the role asked for (:class:`AssumedRole`) and the STS call."""

    def __init__(self, name: str, sts: RegistryTransport, role: AssumedRole, clock: Clock | None) -> None:
        self.name = name
        self.sts = sts
        self.role = role
        self._clock = clock or _utcnow

    # the role's parts, read through (these sources had them as attributes of their own)
    @property
    def role_arn(self) -> str:
        return self.role.role_arn

    @property
    def role_session_name(self) -> str | None:
        return self.role.role_session_name

    @property
    def duration_seconds(self) -> int:
        return self.role.duration_seconds

    @property
    def policy(self) -> str | None:
        return self.role.policy

    def _query(self, action: str, *role: tuple[str, str]) -> list[tuple[str, str]]:
        """The query both actions begin with, then ``role``: what the action says of the role."""
        return [
            ("Action", action),
            ("Format", "JSON"),
            ("Version", STS_API_VERSION),
            ("DurationSeconds", str(self.role.duration_seconds)),
            ("RoleArn", self.role.role_arn),
            *role,
        ]

    def _session_name(self) -> str:
        return self.role.role_session_name or _default_session_name()

    def _assume(self, action: str, params: list[tuple[str, str]]) -> CredentialFlow:
        response = yield Call(self.sts, "GET", "/", params=params, step=action, service=STS_SERVICE)
        return _sts_key(self.name, action, response, self._clock())


class RamRoleArnSource(_AssumeRoleSource):
    """STS ``AssumeRole`` with a base AccessKey (``provider/ram_role_arn.py``).

    :param sts: transport to the STS endpoint, signing with :class:`RpcSignatureAuth` of the base key.
    :param base_key_digest: digest of the base key (id, secret, token), for :meth:`cache_key`.
    :param role: the role asked for.
    :param external_id: optional ``ExternalId``.
    :param name: the name in errors and ``test_connection``.
    :param clock: aware UTC clock (tests).
    """

    def __init__(
        self,
        *,
        sts: RegistryTransport,
        base_key_digest: str,
        role: AssumedRole,
        external_id: str | None = None,
        name: str = "ram_role_arn",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, sts, role, clock)
        self._base = base_key_digest
        self.external_id = external_id

    def params(self) -> list[tuple[str, str]]:
        """The unsigned query (the signing parameters are added per attempt by the transport's auth)."""
        params = self._query("AssumeRole", ("RoleSessionName", self._session_name()))
        if self.role.policy:
            params.append(("Policy", self.role.policy))
        if self.external_id:
            params.append(("ExternalId", self.external_id))
        return params

    def flow(self) -> CredentialFlow:
        return (yield from self._assume("AssumeRole", self.params()))

    def secrets(self) -> list[str | None]:
        """Secrets besides the base key (which the transport's signer holds), for scrubbing."""
        return [self.role.policy, self.external_id]

    def cache_key(self) -> str:
        role, secrets = self.role, digest(self.role.policy, self.external_id)
        return (
            f"{self.name}|{self.sts.base_url}|{role.role_arn}|{role.role_session_name}|{role.duration_seconds}|"
            f"{self._base}|{secrets}"
        )


class OidcRoleArnSource(_AssumeRoleSource):
    """STS ``AssumeRoleWithOIDC`` with a token file re-read at every renewal (``provider/oidc.py``).

    :param sts: transport to the STS endpoint (the call is not signed).
    :param role: the role asked for.
    :param oidc_provider_arn: ``OIDCProviderArn``.
    :param oidc_token_file: path of the OIDC token (RRSA mounts it and rotates it).
    """

    def __init__(
        self,
        *,
        sts: RegistryTransport,
        role: AssumedRole,
        oidc_provider_arn: str,
        oidc_token_file: str,
        name: str = "oidc_role_arn",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, sts, role, clock)
        self.oidc_provider_arn = oidc_provider_arn
        self.oidc_token_file = oidc_token_file
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
        return [self._token, self.role.policy]

    def params(self, token: str) -> list[tuple[str, str]]:
        """The query ``_refresh_credentials`` sends (the token goes in it, as the library does)."""
        params = self._query(
            "AssumeRoleWithOIDC",
            ("OIDCProviderArn", self.oidc_provider_arn),
            ("OIDCToken", token),
            ("RoleSessionName", self._session_name()),
            ("Timestamp", _utcnow().strftime(_STS_TIME)),  # wall time, as the request is sent now
        )
        if self.role.policy:
            params.append(("Policy", self.role.policy))
        return params

    def flow(self) -> CredentialFlow:
        token = self.read_token()
        return (yield from self._assume("AssumeRoleWithOIDC", self.params(token)))

    def cache_key(self) -> str:
        role = self.role
        return (
            f"{self.name}|{self.sts.base_url}|{role.role_arn}|{self.oidc_provider_arn}|{self.oidc_token_file}|"
            f"{role.role_session_name}|{role.duration_seconds}|{digest(role.policy)}"
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
        answer = yield _metadata_token_call(self.metadata, "ECS metadata token")
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
        # LastUpdated is when the metadata service last rotated the key, not when we got it: the renewal margin
        # is reckoned from our receipt, as for the other sources
        return _success_key(self.name, step, answer, self._clock)

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
        return _success_key(self.name, step, answer, self._clock)

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
            answer = yield _metadata_token_call(self.probe, "ECS metadata probe")
            self.chosen = self.ecs if answer.status_code == 200 else self.uri
            self.name = self.chosen.name
        key: TemporaryKey = yield from self.chosen.flow()
        return key

    def cache_key(self) -> str:
        return f"{self.ecs.cache_key()}||{self.uri.cache_key()}"
