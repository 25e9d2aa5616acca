"""What an Alibaba credential setting may be: the limits, patterns and checks of role ARNs, session names,
durations and service URLs (typed errors naming the field)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from airflow_provider_modelreg.credentials.base import (
    shown_url,
)
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.transport import is_loopback
from airflow_provider_modelreg.validation import setting_number

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
