"""From a connection to the PAI hook's auth: :func:`build_pai_auth` picks the source the connection names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_modelreg.auth import AcsV3Auth
from airflow_provider_modelreg.credentials.alibaba.chain import Resolved, _Chain, _static
from airflow_provider_modelreg.credentials.alibaba.checks import (
    _ROLE_NAME,
    _STS_TIME,
    Clock,
    _pattern,
    _text,
    check_oidc_provider_arn,
    check_role_arn,
    check_session_name,
)
from airflow_provider_modelreg.credentials.alibaba.config import AlibabaCredentialConfig, _env_sts_endpoint, _Transports
from airflow_provider_modelreg.credentials.alibaba.rpc_auth import _UNSIGNED, RpcSignatureAuth
from airflow_provider_modelreg.credentials.alibaba.sources import (
    AssumedRole,
    CredentialsUriSource,
    EcsRamRoleSource,
    OidcRoleArnSource,
    RamRoleArnSource,
)
from airflow_provider_modelreg.credentials.base import (
    RefreshingCredential,
    TemporaryKey,
    digest,
    mask_derived,
    shared_credential,
)
from airflow_provider_modelreg.credentials.signing import AcsCredentialAuth
from airflow_provider_modelreg.errors import RegistryConnectionConfigError


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
        session = config.role_session_name or check_session_name(
            _text(env.get("ALIBABA_CLOUD_ROLE_SESSION_NAME"), "ALIBABA_CLOUD_ROLE_SESSION_NAME"),
            "ALIBABA_CLOUD_ROLE_SESSION_NAME",
        )
        return Resolved(
            source,
            source=RamRoleArnSource(
                sts=transports.sts(sts_endpoint, auth),
                base_key_digest=digest(config.access_key_id, config.access_key_secret, config.security_token),
                role=AssumedRole(config.role_arn, session, config.duration_seconds, config.policy),
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
        role=AssumedRole(str(values["role_arn"]), values["role_session_name"], config.duration_seconds, config.policy),
        oidc_provider_arn=str(values["oidc_provider_arn"]),
        oidc_token_file=str(values["oidc_token_file"]),
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
