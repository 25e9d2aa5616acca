"""The connection of the Fabric hook: endpoint and region, and the signer each ``auth_type`` asks for (AK/SK from
the connection or the SDK's environment variables, an IAM token, or a temporary key from a credential source).
:class:`~airflow_provider_modelreg.hooks.fabric.FabricModelRegistryHook` builds its transport from these."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from airflow.providers.common.compat.sdk import Connection

from airflow_provider_modelreg.auth import HuaweiAkSkAuth
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.hooks.base import check_credential, check_region, extra_str, mask_secrets, parse_endpoint
from airflow_provider_modelreg.transport import public_url
from airflow_provider_modelreg.validation import setting_number

if TYPE_CHECKING:
    from airflow_provider_modelreg.credentials.huawei import HuaweiSourceSettings
    from airflow_provider_modelreg.iam import IamTokenAuth

# The credential sources (and their imports) load when a connection needs them, not when a DAG file imports the
# hook: DAG parsing pays for hooks, operators and sensors only (benchmark P4).

__all__ = ["AUTH_TYPES", "FABRIC_REGIONS", "fabric_auth", "fabric_settings", "located"]

#: Regions in the official SDK's table (``DataArtsFabricRegion``).
FABRIC_REGIONS = ("cn-north-4", "cn-southwest-2")
#: Regional Fabric hosts: the region of an endpoint set without a ``region`` extra.
_REGIONAL_HOST = re.compile(r"fabric\.([a-z0-9-]+)\.myhuaweicloud\.com")
#: ``auth_type`` values: where the signing key comes from.
AUTH_TYPES = ("aksk", "token", "metadata", "oidc", "agency", "env")

# EnvCredentialProvider's variables (huaweicloudsdkcore/auth/provider.py)
_AK_ENV = "HUAWEICLOUD_SDK_AK"
_SK_ENV = "HUAWEICLOUD_SDK_SK"
_TOKEN_ENV = "HUAWEICLOUD_SDK_SECURITY_TOKEN"  # noqa: S105 - a variable name
_PROJECT_ID_ENV = "HUAWEICLOUD_SDK_PROJECT_ID"
# OidcStsCredentialProvider's variables
_OIDC_ENV = {
    "provider_urn": "HUAWEICLOUD_OIDC_PROVIDER_URN",
    "agency_urn": "HUAWEICLOUD_OIDC_AGENCY_URN",
    "id_token": "HUAWEICLOUD_OIDC_ID_TOKEN",
    "token_file": "HUAWEICLOUD_OIDC_TOKEN_FILE",
    "session_name": "HUAWEICLOUD_OIDC_SESSION_NAME",
    "duration_seconds": "HUAWEICLOUD_OIDC_DURATION_SECONDS",
}


def _checked(value: str, field: str, *, secret: bool) -> str:
    return check_credential(value, field, secret=secret)


def _env_setting(name: str, *, secret: bool = False) -> str | None:
    """An environment variable (unset or empty: None), checked like an extra; a secret is masked at once."""
    value = os.environ.get(name)
    if not value:
        return None
    if secret:
        mask_secrets(value)
    return _checked(value, name, secret=secret)


def _lookup(extras: dict[str, Any], key: str, env: str | None = None) -> tuple[str | None, str]:
    """(value, the field it came from): the extra, else the environment variable ``env``."""
    raw = extras.get(key)
    if raw is not None and raw != "":
        if not isinstance(raw, str):
            raise RegistryConnectionConfigError(key, "must be a string", raw)
        return _checked(raw, key, secret=False), key
    if env is not None:
        return _env_setting(env), env
    return None, key


def _setting(extras: dict[str, Any], key: str, env: str | None = None) -> str | None:
    return _lookup(extras, key, env)[0]


def _required(value: str | None, key: str, when: str) -> str:
    if value is None:
        raise RegistryConnectionConfigError(key, f"is required {when}")
    return value


def _field_of(extras: dict[str, Any], key: str, env: str | None = None) -> str:
    return _lookup(extras, key, env)[1]


def _duration(extras: dict[str, Any], key: str, env: str | None, low: int, high: int) -> int:
    """Seconds asked for a temporary key (default 3600, as the SDK's OIDC provider)."""
    raw: Any = extras.get(key)
    field = key
    if (raw is None or raw == "") and env is not None:
        raw, field = os.environ.get(env), env
    seconds = setting_number(raw, field, low, high, integer=True)
    return 3600 if seconds is None else int(seconds)


def _metadata_url(value: str) -> str:
    """``http://host[:port]`` of a metadata service (link-local: plain http to any host is expected)."""
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
        port_ok = True
    except ValueError:
        port_ok = False
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or "@" in parts.netloc
        or not port_ok
    ):
        raise RegistryConnectionConfigError(
            "metadata_endpoint",
            "must be scheme://host[:port] such as http://169.254.169.254 (no user:password@)",
            public_url(value),  # a user:password@ part is never repeated
        )
    return f"{parts.scheme}://{parts.netloc}"


def fabric_settings(conn: Connection) -> tuple[str, str | None, str | None]:
    """(base URL, region, workspace id)."""
    extras = conn.extra_dejson
    region = extra_str(extras, "region")
    if region is not None:
        check_region(region)
    endpoint = extra_str(extras, "endpoint")
    base_url = None
    if endpoint is not None:
        base_url = parse_endpoint(endpoint)
    elif region in FABRIC_REGIONS:
        base_url = f"https://fabric.{region}.myhuaweicloud.com"
    return located(base_url, region, extras, known="the SDK's known regions", setting="endpoint", host=_REGIONAL_HOST)


def located(
    base_url: str | None, region: str | None, extras: dict[str, Any], *, known: str, setting: str, host: re.Pattern[str]
) -> tuple[str, str | None, str | None]:
    """(base URL, region, workspace id) once the settings chose a base URL; a region not given is read from a
    regional host.

    :param base_url: the chosen base URL (None: no endpoint and a region not in :data:`FABRIC_REGIONS`: refused).
    :param region: the ``region`` extra.
    :param extras: the connection's extras (``workspace_id``).
    :param known: what the regions are, in the error.
    :param setting: the endpoint extra that would do instead, in the error.
    :param host: a regional host, the region its first group.
    """
    if base_url is None:
        raise RegistryConnectionConfigError(
            "region", f"must be one of {', '.join(FABRIC_REGIONS)} ({known}), or set {setting}", region
        )
    if region is None:
        found = host.fullmatch(urlsplit(base_url).hostname or "")
        region = found.group(1) if found else None
    return base_url, region, extra_str(extras, "workspace_id")


def fabric_auth(conn: Connection, transport_options: Callable[[], dict[str, Any]]) -> httpx.Auth:
    """The signer a connection asks for (``auth_type``); ``transport_options``: the hook's, for the requests of a
    credential source or of an IAM token (asked only when one is built)."""
    from airflow_provider_modelreg.credentials import base as credentials_base
    from airflow_provider_modelreg.credentials import huawei as hw
    from airflow_provider_modelreg.credentials import signing as credentials_signing

    extras = conn.extra_dejson
    auth_type = extra_str(extras, "auth_type") or "aksk"
    if auth_type not in AUTH_TYPES:
        raise RegistryConnectionConfigError("auth_type", f"must be one of {', '.join(AUTH_TYPES)}", auth_type)
    project_id = extra_str(extras, "project_id")
    if project_id is not None:
        check_credential(extras.get("project_id"), "project_id", secret=False)
    if auth_type == "env":
        return _env_auth(project_id)
    if auth_type in ("metadata", "oidc"):
        if auth_type == "oidc" and project_id is None:
            project_id = _env_setting(_PROJECT_ID_ENV)  # OidcStsCredentialProvider reads it too
        source = hw.build_huawei_source(auth_type, _source_settings(conn, auth_type), transport_options())
        return credentials_signing.HuaweiCredentialAuth(
            credentials_base.shared_credential(source), project_id=project_id
        )
    login, secret, token = _login_password(conn)
    if auth_type == "aksk":
        return HuaweiAkSkAuth(login, secret, project_id=project_id, security_token=token)
    if auth_type == "agency":
        settings = _agency_settings(conn, login, secret, token)
        source = hw.build_huawei_source("agency", settings, transport_options())
        return credentials_signing.HuaweiCredentialAuth(
            credentials_base.shared_credential(source), project_id=project_id
        )
    return _token_auth(conn, login, secret, project_id, transport_options)


def _login_password(conn: Connection) -> tuple[str, str, str | None]:
    """(AK or IAM user name, SK or IAM password, security token), checked and masked."""
    extras = conn.extra_dejson
    if not conn.login:
        raise RegistryConnectionConfigError("login", "must hold the AK (or the IAM user name with auth_type token)")
    if not conn.password:
        raise RegistryConnectionConfigError("password", "must hold the SK (or the IAM password with auth_type token)")
    token = extra_str(extras, "security_token")
    mask_secrets(conn.password, token)
    # Checked before anything is sent: a pasted newline would otherwise reach h11 inside a header.
    login = check_credential(conn.login, "login")
    secret = check_credential(conn.password, "password")
    if token is not None:
        check_credential(extras.get("security_token"), "security_token")
    return login, secret, token


def _iam_url(extras: dict[str, Any], auth_type: str) -> str:
    """``iam_endpoint``, else ``https://iam.<region>.myhuaweicloud.com``."""
    region = extra_str(extras, "region")
    iam_endpoint = extra_str(extras, "iam_endpoint")
    if iam_endpoint is not None:
        return parse_endpoint(iam_endpoint, "iam_endpoint")
    if region is not None:
        return f"https://iam.{check_region(region)}.myhuaweicloud.com"
    raise RegistryConnectionConfigError("iam_endpoint", f"is required with auth_type {auth_type} when region is unset")


def _token_auth(
    conn: Connection,
    login: str,
    secret: str,
    project_id: str | None,
    transport_options: Callable[[], dict[str, Any]],
) -> IamTokenAuth:
    from airflow_provider_modelreg.iam import IamTokenAuth

    extras = conn.extra_dejson
    domain = _required(extra_str(extras, "iam_domain"), "iam_domain", "with auth_type token (the account name)")
    region = extra_str(extras, "region")
    iam_url = _iam_url(extras, "token")
    if project_id is None and region is None:
        raise RegistryConnectionConfigError("project_id", "or region is required to scope the IAM token")
    return IamTokenAuth(
        iam_url=iam_url,
        user_name=login,
        password=secret,
        domain_name=domain,
        project_id=project_id,
        project_name=region,
        # the token request: same retries, deadlines, cap, proxy and CA; the token itself is shared by every
        # hook of the process with the same IAM endpoint, domain, user, password and scope (one request per
        # expiry for a mapped task of 200)
        **transport_options(),
    )


def _env_auth(project_id: str | None) -> HuaweiAkSkAuth:
    """``EnvCredentialProvider``'s variables, read now (when the transport is built)."""
    if _env_setting("HUAWEICLOUD_SDK_IDP_ID") and _env_setting("HUAWEICLOUD_SDK_ID_TOKEN_FILE"):
        # the SDK would federate with the id token first: refuse rather than sign with another identity
        raise RegistryConnectionConfigError(
            "HUAWEICLOUD_SDK_IDP_ID", "federation by id token file is not supported; use auth_type oidc"
        )
    ak = _env_setting(_AK_ENV, secret=False)
    sk = _env_setting(_SK_ENV, secret=True)
    token = _env_setting(_TOKEN_ENV, secret=True)
    if ak is None or sk is None:
        raise RegistryConnectionConfigError(_AK_ENV if ak is None else _SK_ENV, "must be set with auth_type env")
    return HuaweiAkSkAuth(ak, sk, project_id=project_id or _env_setting(_PROJECT_ID_ENV), security_token=token)


def _source_settings(conn: Connection, auth_type: str) -> HuaweiSourceSettings:
    """Settings of ``metadata`` and ``oidc`` from the extras (and, for oidc, the SDK's environment variables)."""
    from airflow_provider_modelreg.credentials import huawei as hw

    extras = conn.extra_dejson
    if auth_type == "metadata":
        endpoint = _setting(extras, "metadata_endpoint")
        url = hw.DEFAULT_METADATA_ENDPOINT if endpoint is None else _metadata_url(endpoint)
        return hw.HuaweiSourceSettings(metadata_endpoint=url)
    provider = _setting(extras, "oidc_provider_urn", _OIDC_ENV["provider_urn"])
    agency = _setting(extras, "oidc_agency_urn", _OIDC_ENV["agency_urn"])
    if provider is None:
        raise RegistryConnectionConfigError("oidc_provider_urn", f"or {_OIDC_ENV['provider_urn']} is required")
    if agency is None:
        raise RegistryConnectionConfigError("oidc_agency_urn", f"or {_OIDC_ENV['agency_urn']} is required")
    # OidcStsCredentialProvider._resolve_id_token: the token in the environment wins over a token file
    id_token = _env_setting(_OIDC_ENV["id_token"], secret=True)
    token_file = _setting(extras, "oidc_token_file", _OIDC_ENV["token_file"])
    if id_token is None and token_file is None:
        raise RegistryConnectionConfigError(
            "oidc_token_file", f"or {_OIDC_ENV['token_file']} or {_OIDC_ENV['id_token']} is required"
        )
    session = _setting(extras, "oidc_session_name", _OIDC_ENV["session_name"])
    sts = _setting(extras, "sts_endpoint")
    sts_url = hw.sts_endpoint_for(extra_str(extras, "region")) if sts is None else sts
    return hw.HuaweiSourceSettings(
        sts_endpoint=parse_endpoint(sts_url, "sts_endpoint"),
        provider_urn=hw.check_provider_urn(provider, _field_of(extras, "oidc_provider_urn", _OIDC_ENV["provider_urn"])),
        agency_urn=hw.check_agency_urn(agency, _field_of(extras, "oidc_agency_urn", _OIDC_ENV["agency_urn"])),
        id_token=id_token,
        token_file=None if id_token is not None else token_file,
        session_name=hw.DEFAULT_OIDC_SESSION_NAME
        if session is None
        else hw.check_session_name(session, "oidc_session_name"),
        duration_seconds=_duration(extras, "oidc_duration_seconds", _OIDC_ENV["duration_seconds"], 900, 43200),
    )


def _agency_settings(conn: Connection, login: str, secret: str, token: str | None) -> HuaweiSourceSettings:
    from airflow_provider_modelreg.credentials import huawei as hw

    extras = conn.extra_dejson
    name = _required(_setting(extras, "agency_name"), "agency_name", "with auth_type agency")
    domain_name = _setting(extras, "agency_domain_name")
    domain_id = _setting(extras, "agency_domain_id")
    if (domain_name is None) == (domain_id is None):
        raise RegistryConnectionConfigError(
            "agency_domain_name", "set exactly one of agency_domain_name or agency_domain_id (the agency's account)"
        )
    return hw.HuaweiSourceSettings(
        iam_endpoint=_iam_url(extras, "agency"),
        access_key=login,
        secret_key=secret,
        security_token=token,
        agency_name=name,
        agency_domain_name=domain_name,
        agency_domain_id=domain_id,
        caller_domain_id=_setting(extras, "domain_id"),
        duration_seconds=_duration(extras, "duration_seconds", None, 900, 86400),
    )


def _credential_summary(auth: httpx.Auth | None, auth_type: str) -> str:
    """Which source signed and when its key expires (for ``test_connection``)."""
    from airflow_provider_modelreg.credentials import signing as credentials_signing

    if isinstance(auth, credentials_signing.HuaweiCredentialAuth):
        credential = auth.credential
        key = credential.current
        expires = key.expires_at.isoformat() if key is not None and key.expires_at is not None else "unknown"
        return f"credential source {credential.source.name}, temporary key expires {expires}"
    from airflow_provider_modelreg.iam import IamTokenAuth

    if isinstance(auth, IamTokenAuth):
        token = auth.current
        expires = token.expires_at.isoformat() if token is not None else "unknown"
        return f"credential source token (IAM token), expires {expires}"
    if isinstance(auth, HuaweiAkSkAuth):
        return f"credential source {auth_type} (AK/SK, no expiry known)"
    return "credential source unknown"
