"""Provider registration: the ``apache_airflow_provider`` entry point returns this dict.

The module lists (hooks, operators, sensors, triggers) and the extra-link classes are checked against the package by
``tests/test_provider_info.py``: every listed module or class imports, and every public hook, operator, sensor,
trigger and link class of the package is listed. Keep them in step when adding or renaming a class.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_modelreg import __version__

_PKG = "airflow_provider_modelreg"
PAI_INTEGRATION = "Alibaba Cloud PAI Model Registry"
FABRIC_INTEGRATION = "Huawei Cloud DataArts Fabric Model Registry"

_NULLABLE_STRING = ["string", "null"]


def _field(label: str, description: str, *, secret: bool = False, **schema: Any) -> dict[str, Any]:
    field_schema: dict[str, Any] = {"type": schema.pop("type", _NULLABLE_STRING), **schema}
    if secret:
        field_schema["format"] = "password"
    return {"label": label, "description": description, "schema": field_schema}


def _integer_field(label: str, description: str, minimum: int, maximum: int) -> dict[str, Any]:
    return _field(label, description, type=["integer", "null"], minimum=minimum, maximum=maximum)


def _number_field(label: str, description: str, minimum: float, maximum: float) -> dict[str, Any]:
    return _field(label, description, type=["number", "null"], minimum=minimum, maximum=maximum)


_RETRY_FIELD = _integer_field(
    "Retry budget",
    "Attempts per idempotent request, the first included (default 5; 1 disables retries).",
    1,
    20,
)
_TRANSPORT_FIELDS: dict[str, Any] = {
    "attempt_timeout": _number_field(
        "Attempt timeout (s)",
        "Wall-clock deadline of one attempt: connect, headers and the whole body (default 30).",
        0.1,
        3600,
    ),
    "call_timeout": _number_field(
        "Call timeout (s)",
        "Wall-clock deadline of one call: every attempt and the waits between them (default 120).",
        0.1,
        86400,
    ),
    "max_response_bytes": _integer_field(
        "Max response bytes",
        "Cap of a decoded response body (default 33554432, 32 MiB).",
        1024,
        2**31,
    ),
    "proxy": _field(
        "Proxy",
        "http://[user:password@]host:port for every request; empty: HTTPS_PROXY/HTTP_PROXY/NO_PROXY. "
        "Masked in the form and in logs (it may carry a password).",
        secret=True,
    ),
    "ca_bundle": _field(
        "CA bundle",
        "Path of a PEM file of trusted CAs (private CA); empty: SSL_CERT_FILE, else the certifi bundle.",
    ),
}
_PAGES_FIELD = _integer_field(
    "Paging cap",
    "Requests one listing may send at most (default 1000 pages); a listing that needs more fails.",
    1,
    1_000_000,
)
_CONSOLE_FIELD = _field(
    "Console URL template",
    "Overrides the console link; placeholders {region} {workspace_id} {model_id} {version_name} {version_id}.",
)

_OBJECT_STORE_URIS = [
    {
        "schemes": ["oss", "obs"],
        "handler": f"{_PKG}.lineage.sanitize_uri",
        "factory": f"{_PKG}.lineage.create_asset",
        "to_openlineage_converter": f"{_PKG}.lineage.convert_asset_to_openlineage",
    }
]

PAI_CONN_FIELDS: dict[str, Any] = {
    "region": _field("Region", "Region id, e.g. cn-hangzhou. Optional when Endpoint is set."),
    "endpoint": _field(
        "Endpoint",
        "Full URL overriding the region rule, e.g. https://aiworkspace.cn-hangzhou.aliyuncs.com "
        "(http:// only to a loopback host, for a local emulator).",
    ),
    "network": _field("Network", "public or vpc (aiworkspace-vpc.<region> host).", enum=["public", "vpc"]),
    "eas_endpoint": _field(
        "EAS endpoint",
        "Full URL overriding the PAI-EAS host rule (pai-eas.<region>.aliyuncs.com), e.g. for a local emulator.",
    ),
    "credential_source": _field(
        "Credential source",
        "access_key: Login/Password are an AccessKey. sts: plus the STS security token. ram_role_arn: "
        "Login/Password assume Role ARN (STS AssumeRole). oidc_role_arn: RRSA on ACK (STS AssumeRoleWithOIDC; "
        "default ALIBABA_CLOUD_ROLE_ARN/_OIDC_PROVIDER_ARN/_OIDC_TOKEN_FILE). ecs_ram_role: the ECS instance's "
        "RAM role (metadata service). credentials_uri: a URI serving temporary keys. default_chain: the "
        "official credentials library's order (environment, OIDC, CLI profile, profile file, ECS, URI).",
        enum=["access_key", "sts", "ram_role_arn", "oidc_role_arn", "ecs_ram_role", "credentials_uri", "default_chain"],
        default="access_key",
    ),
    "security_token": _field(
        "STS security token", "sts (and ram_role_arn with a temporary base key): the STS token.", secret=True
    ),
    "role_arn": _field(
        "Role ARN",
        "ram_role_arn, oidc_role_arn: acs:ram::<account id>:role/<name> (oidc: default ALIBABA_CLOUD_ROLE_ARN).",
    ),
    "role_session_name": _field(
        "Role session name",
        "ram_role_arn, oidc_role_arn: 2-64 of A-Z a-z 0-9 . @ - _; default ALIBABA_CLOUD_ROLE_SESSION_NAME, "
        "else credentials-python-<unix time>.",
    ),
    "duration_seconds": _integer_field(
        "Key lifetime (s)",
        "ram_role_arn, oidc_role_arn: DurationSeconds of the assumed role's key, 900-43200 (default 3600).",
        900,
        43200,
    ),
    "policy": _field("Session policy", "ram_role_arn, oidc_role_arn: optional policy JSON narrowing the role."),
    "external_id": _field("External ID", "ram_role_arn: optional ExternalId the role's trust policy requires."),
    "oidc_provider_arn": _field(
        "OIDC provider ARN",
        "oidc_role_arn: acs:ram::<account id>:oidc-provider/<name>; default ALIBABA_CLOUD_OIDC_PROVIDER_ARN.",
    ),
    "oidc_token_file": _field(
        "OIDC token file",
        "oidc_role_arn: path of the OIDC token, read again at each renewal; default "
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE. A path, not a secret: masked because Airflow treats extras named "
        "*token* as sensitive.",
        secret=True,
    ),
    "sts_endpoint": _field(
        "STS endpoint",
        "ram_role_arn, oidc_role_arn, default_chain: default https://sts.aliyuncs.com (or sts.<region> from "
        "ALIBABA_CLOUD_STS_REGION); http:// only to a loopback host.",
    ),
    "role_name": _field(
        "ECS RAM role name",
        "ecs_ram_role: the instance's role; default ALIBABA_CLOUD_ECS_METADATA, else discovered from metadata.",
    ),
    "metadata_endpoint": _field(
        "Metadata endpoint",
        "ecs_ram_role, default_chain: the instance metadata service, default http://100.100.100.200.",
    ),
    "credentials_uri": _field(
        "Credentials URI",
        "credentials_uri: URL answering {Code, AccessKeyId, AccessKeySecret, SecurityToken, Expiration}; default "
        "ALIBABA_CLOUD_CREDENTIALS_URI (http:// only to a loopback or link-local host). Masked: it may carry a token.",
        secret=True,
    ),
    "workspace_id": _field("Workspace ID", "Default workspace for list_models and console links."),
    "max_attempts": _RETRY_FIELD,
    "max_pages": _PAGES_FIELD,
    **_TRANSPORT_FIELDS,
    "console_url_template": _CONSOLE_FIELD,
}

FABRIC_CONN_FIELDS: dict[str, Any] = {
    "auth_type": _field(
        "Auth type",
        "aksk: Login/Password are AK/SK. token: Login/Password are an IAM user's name/password, exchanged for a "
        "project-scoped IAM token. metadata: the ECS/CCE node agency's temporary key from the instance metadata "
        "service. oidc: CCE workload identity (OIDC id token exchanged at STS). agency: Login/Password AK/SK assume "
        "an agency (IAM securitytokens). env: HUAWEICLOUD_SDK_AK/SK/SECURITY_TOKEN/PROJECT_ID of the worker.",
        enum=["aksk", "token", "metadata", "oidc", "agency", "env"],
        default="aksk",
    ),
    "region": _field("Region", "cn-north-4 or cn-southwest-2; optional when Endpoint is set."),
    "endpoint": _field(
        "Endpoint",
        "Full URL, e.g. https://fabric.cn-north-4.myhuaweicloud.com (http:// only to a loopback host).",
    ),
    "ep_endpoint": _field(
        "EP endpoint",
        "Full URL overriding the Fabric EP host rule (fabric-ep.<region>.myhuaweicloud.com), e.g. for a local "
        "emulator (http:// only to a loopback host).",
    ),
    "project_id": _field(
        "Project ID",
        "Sent as X-Project-Id when signing and used as the token scope (oidc/env: default HUAWEICLOUD_SDK_PROJECT_ID).",
    ),
    "workspace_id": _field("Workspace ID", "Default workspace; required by the connection test."),
    "security_token": _field(
        "Security token", "aksk/agency: the security token of a temporary Login/Password AK/SK.", secret=True
    ),
    "iam_domain": _field("IAM account (domain) name", "Token auth: the account the IAM user belongs to."),
    "iam_endpoint": _field(
        "IAM endpoint",
        "token/agency: default https://iam.<region>.myhuaweicloud.com (http:// only to a loopback host).",
    ),
    "metadata_endpoint": _field(
        "Metadata endpoint", "metadata: the instance metadata service, default http://169.254.169.254."
    ),
    "oidc_provider_urn": _field(
        "OIDC provider URN",
        "oidc: iam::<account id>:identity-provider:<name>; default HUAWEICLOUD_OIDC_PROVIDER_URN.",
    ),
    "oidc_agency_urn": _field(
        "OIDC agency URN", "oidc: iam::<account id>:agency:<name>; default HUAWEICLOUD_OIDC_AGENCY_URN."
    ),
    "oidc_token_file": _field(
        "OIDC token file",
        "oidc: path of the id token file, read again at each renewal; default HUAWEICLOUD_OIDC_TOKEN_FILE "
        "(HUAWEICLOUD_OIDC_ID_TOKEN, when set, wins). A path, not a secret: masked because Airflow treats "
        "extras named *token* as sensitive.",
        secret=True,
    ),
    "oidc_session_name": _field(
        "OIDC session name", "oidc: agency session name; default HUAWEICLOUD_OIDC_SESSION_NAME, else oidc-sts-session."
    ),
    "oidc_duration_seconds": _integer_field(
        "OIDC key lifetime (s)",
        "oidc: 900-43200; default HUAWEICLOUD_OIDC_DURATION_SECONDS, else 3600.",
        900,
        43200,
    ),
    "sts_endpoint": _field(
        "STS endpoint",
        "oidc: default HUAWEICLOUD_SDK_STS_ENDPOINT, else https://sts.<region>.myhuaweicloud.com (cn-north-4 when "
        "the region has none).",
    ),
    "agency_name": _field("Agency name", "agency: the agency to assume."),
    "agency_domain_name": _field(
        "Agency account name", "agency: the account (domain) owning the agency; or Agency account ID."
    ),
    "agency_domain_id": _field("Agency account ID", "agency: the account (domain) ID owning the agency."),
    "domain_id": _field(
        "Own account ID",
        "agency: the base key's own account (domain) ID, sent as X-Domain-Id; empty: looked up once "
        "(GET /v3/auth/domains, needs iam:users:getUser).",
    ),
    "duration_seconds": _integer_field(
        "Agency key lifetime (s)",
        "agency: 900-86400, default 3600.",
        900,
        86400,
    ),
    "max_attempts": _RETRY_FIELD,
    "max_pages": _PAGES_FIELD,
    **_TRANSPORT_FIELDS,
    "console_url_template": _CONSOLE_FIELD,
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow's ProvidersManager."""
    return {
        "package-name": "airflow-provider-modelreg",
        "name": "Model Registry (Alibaba Cloud PAI, Huawei Cloud DataArts Fabric)",
        "description": "Gate model deployments on the PAI and DataArts Fabric model registries: wait for "
        "approval, list versions, hand the model URI to deploy tasks.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": PAI_INTEGRATION,
                "external-doc-url": "https://www.alibabacloud.com/help/en/pai/developer-reference/"
                "api-aiworkspace-2021-02-04-listmodelversions",
                "tags": ["alibaba", "machine-learning", "service"],
            },
            {
                "integration-name": FABRIC_INTEGRATION,
                "external-doc-url": "https://support.huaweicloud.com/intl/en-us/api-fabric/dataartsfabric_03_0001.html",
                "tags": ["machine-learning", "service"],
            },
        ],
        "hooks": [
            {"integration-name": PAI_INTEGRATION, "python-modules": [f"{_PKG}.hooks.pai", f"{_PKG}.hooks.eas"]},
            {
                "integration-name": FABRIC_INTEGRATION,
                "python-modules": [f"{_PKG}.hooks.fabric", f"{_PKG}.hooks.fabric_ep"],
            },
        ],
        "operators": [
            {
                "integration-name": PAI_INTEGRATION,
                "python-modules": [
                    f"{_PKG}.operators.pai",
                    f"{_PKG}.operators.pai_lifecycle",
                    f"{_PKG}.operators.pai_hitl",
                    f"{_PKG}.operators.eas",
                    f"{_PKG}.operators.eas_traffic",
                    f"{_PKG}.operators.eas_canary",
                ],
            },
            {
                "integration-name": FABRIC_INTEGRATION,
                "python-modules": [
                    f"{_PKG}.operators.fabric",
                    f"{_PKG}.operators.fabric_lifecycle",
                    f"{_PKG}.operators.fabric_ep",
                ],
            },
        ],
        "sensors": [
            {"integration-name": PAI_INTEGRATION, "python-modules": [f"{_PKG}.sensors.pai"]},
            {"integration-name": FABRIC_INTEGRATION, "python-modules": [f"{_PKG}.sensors.fabric"]},
        ],
        "triggers": [
            {
                "integration-name": PAI_INTEGRATION,
                "python-modules": [f"{_PKG}.triggers.pai", f"{_PKG}.triggers.watcher", f"{_PKG}.triggers.eas"],
            },
            {
                "integration-name": FABRIC_INTEGRATION,
                "python-modules": [
                    f"{_PKG}.triggers.fabric",
                    f"{_PKG}.triggers.fabric_watcher",
                    f"{_PKG}.triggers.fabric_ep",
                ],
            },
        ],
        # oss:// and obs:// assets: one URI per object (the endpoint PAI writes into the authority dropped), and
        # OpenLineage datasets for them; "dataset-uris" is the same for Airflow 2
        "asset-uris": _OBJECT_STORE_URIS,
        "dataset-uris": _OBJECT_STORE_URIS,
        "extra-links": [
            f"{_PKG}.links.PaiModelVersionLink",
            f"{_PKG}.links.PaiModelLink",
            f"{_PKG}.links.FabricModelVersionLink",
            f"{_PKG}.links.PaiEasServiceLink",
            f"{_PKG}.links.FabricEpInstanceLink",
        ],
        "connection-types": [
            {
                "connection-type": "pai",
                "hook-class-name": "airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook",
                "hook-name": "Alibaba Cloud PAI",
                "conn-fields": PAI_CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {"login": "AccessKey ID", "password": "AccessKey secret"},
                    "placeholders": {"login": "LTAI...", "extra": '{"region": "cn-hangzhou"}'},
                },
            },
            {
                "connection-type": "huaweicloud_fabric",
                "hook-class-name": "airflow_provider_modelreg.hooks.fabric.FabricModelRegistryHook",
                "hook-name": "Huawei Cloud DataArts Fabric",
                "conn-fields": FABRIC_CONN_FIELDS,
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {
                        "login": "AK (or IAM user name; empty for metadata/oidc/env)",
                        "password": "SK (or IAM password)",
                    },
                    "placeholders": {"extra": '{"region": "cn-north-4", "project_id": "..."}'},
                },
            },
        ],
    }
