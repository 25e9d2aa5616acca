"""What a Huawei credential setting may be: endpoints, paths, limits and the checks of URNs, session names and
STS endpoints (typed errors naming the field)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime

from airflow_provider_modelreg.errors import RegistryConnectionConfigError

#: what a key, secret or token must be to go into a header: printable ASCII, no spaces
_HEADER_VALUE = re.compile(r"[\x21-\x7e]+")

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
