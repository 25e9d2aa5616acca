"""The connection's credential settings (:class:`AlibabaCredentialConfig`) and the transports a source uses (STS,
instance metadata, credentials URI)."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from airflow_provider_modelreg.credentials.alibaba.checks import (
    _ROLE_NAME,
    DEFAULT_DURATION,
    DEFAULT_METADATA_ENDPOINT,
    DEFAULT_STS_ENDPOINT,
    SOURCES,
    _pattern,
    _text,
    check_duration,
    check_oidc_provider_arn,
    check_role_arn,
    check_session_name,
    parse_service_url,
)
from airflow_provider_modelreg.credentials.alibaba.rpc_auth import _UNSIGNED
from airflow_provider_modelreg.credentials.alibaba.sources import _ProbeTransport
from airflow_provider_modelreg.credentials.base import (
    mask_derived,
)
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy


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
