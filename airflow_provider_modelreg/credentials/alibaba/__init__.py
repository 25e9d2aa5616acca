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

One module per concern: :mod:`.checks` (settings and their checks), :mod:`.rpc_auth` (the STS signature),
:mod:`.sources` (the sans-IO sources and the answers they read), :mod:`.config` (the connection's settings, the
transports), :mod:`.chain` (the default chain) and :mod:`.factory` (connection -> auth).
"""

from __future__ import annotations

from airflow_provider_modelreg.credentials.alibaba.chain import Resolved, resolve_default_chain
from airflow_provider_modelreg.credentials.alibaba.checks import (
    DEFAULT_METADATA_ENDPOINT,
    DEFAULT_STS_ENDPOINT,
    SOURCES,
)
from airflow_provider_modelreg.credentials.alibaba.config import AlibabaCredentialConfig, credential_config
from airflow_provider_modelreg.credentials.alibaba.factory import PaiAuth, build_pai_auth
from airflow_provider_modelreg.credentials.alibaba.rpc_auth import RpcSignatureAuth
from airflow_provider_modelreg.credentials.alibaba.sources import (
    CredentialsUriSource,
    EcsRamRoleSource,
    EcsThenUriSource,
    OidcRoleArnSource,
    RamRoleArnSource,
)
from airflow_provider_modelreg.credentials.rpc import rpc_signature, rpc_string_to_sign

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
    "Resolved",
    "RpcSignatureAuth",
    "build_pai_auth",
    "credential_config",
    "resolve_default_chain",
    "rpc_signature",
    "rpc_string_to_sign",
]
