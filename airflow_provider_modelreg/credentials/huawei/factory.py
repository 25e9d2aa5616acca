"""From a connection's settings to a Huawei credential source (:func:`build_huawei_source`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_modelreg.auth import HuaweiAkSkAuth
from airflow_provider_modelreg.credentials.base import (
    digest,
)
from airflow_provider_modelreg.credentials.huawei.answers import AnsweringTransport, _NoAuth, _utcnow
from airflow_provider_modelreg.credentials.huawei.settings import (
    DEFAULT_DURATION_SECONDS,
    DEFAULT_METADATA_ENDPOINT,
    DEFAULT_OIDC_SESSION_NAME,
    DEFAULT_STS_ENDPOINT,
    Clock,
)
from airflow_provider_modelreg.credentials.huawei.sources import AgencySource, MetadataSource, OidcSource
from airflow_provider_modelreg.transport import RegistryTransport


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
