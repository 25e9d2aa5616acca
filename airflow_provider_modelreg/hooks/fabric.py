"""Hook for the Huawei Cloud DataArts Fabric model registry (API v1)."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar
from urllib.parse import urlsplit

import httpx
from airflow.providers.common.compat.sdk import Connection

from airflow_provider_modelreg._compat import with_connection_form
from airflow_provider_modelreg.auth import HuaweiAkSkAuth, percent_encode, sdk_canonical_query
from airflow_provider_modelreg.errors import (
    RegistryAmbiguousVersionError,
    RegistryConnectionConfigError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryResponseError,
)
from airflow_provider_modelreg.hooks.base import (
    Listing,
    ModelRegistryHookBase,
    check_credential,
    check_region,
    extra_str,
    mask_secrets,
    parse_endpoint,
)
from airflow_provider_modelreg.hooks.specs import Deferred, ListSpec, PageAnswer, RequestSpec, call_arguments
from airflow_provider_modelreg.models import FabricModel, FabricModelPage, FabricModelVersion, FabricModelVersionPage
from airflow_provider_modelreg.transport import RegistryTransport, public_url
from airflow_provider_modelreg.validation import (
    check_fabric_id,
    check_fabric_limit,
    check_fabric_name_filter,
    check_fabric_offset,
    check_fabric_version_id,
    check_fabric_version_name,
    check_max_results,
    check_pai_order,
    setting_number,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.credentials.huawei import HuaweiSourceSettings
    from airflow_provider_modelreg.iam import IamTokenAuth

# The credential sources (and their imports) load when a connection needs them, not when a DAG file imports the
# hook: DAG parsing pays for hooks, operators and sensors only (benchmark P4).

__all__ = ["AUTH_TYPES", "FABRIC_REGIONS", "FabricModelRegistryHook"]

R = TypeVar("R")

#: Regions in the official SDK's table (``DataArtsFabricRegion``).
FABRIC_REGIONS = ("cn-north-4", "cn-southwest-2")
#: ``pick`` values of a get-by-name: several versions with the name are an error, or the newest is taken.
PICKS = ("unique", "newest")
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
#: values a form or a template leaves behind when nothing was meant


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


def _target(path: str, params: list[tuple[str, str]]) -> str:
    # Huawei's wire query is exactly its canonical query (sorted, %20 for space): sent verbatim.
    for name, value in params:
        if not isinstance(value, str):
            raise RegistryInputError(name, "must be a string", value)
    query = sdk_canonical_query(params)
    return f"{path}?{query}" if query else path


def _versions_path(workspace_id: str, model_id: str) -> str:
    return f"/v1/workspaces/{percent_encode(workspace_id)}/models/{percent_encode(model_id)}/versions"


def _version_id(version: FabricModelVersion) -> str:
    return version.id


def _model_id(model: FabricModel) -> str:
    return model.id


def _created_then_id(version: FabricModelVersion) -> tuple[float, str]:
    return (version.create_time.timestamp() if version.create_time else float("-inf"), version.id)


def _sorted_versions(
    versions: list[FabricModelVersion], max_results: int | None, *, descending: bool
) -> Listing[FabricModelVersion]:
    # The API documents no order for ListModelVersions: the listing reads every page, then sorts here.
    versions.sort(key=_created_then_id, reverse=descending)
    return Listing(versions if max_results is None else versions[:max_results], len(versions))


# -- request specs (hooks.specs): one builder per operation, every argument validated before anything is sent


def _versions_query(
    *, offset: int, limit: int, name_filter: str | None, version_id: str | None
) -> list[tuple[str, str]]:
    params = [("offset", str(check_fabric_offset(offset))), ("limit", str(check_fabric_limit(limit)))]
    if name_filter is not None:
        params.append(("name", check_fabric_name_filter(name_filter, "name_filter")))
    if version_id is not None:
        params.append(("version_id", check_fabric_version_id(version_id)))
    return params


def _version_page(transport: RegistryTransport, response: httpx.Response) -> FabricModelVersionPage:
    page = transport.parse(response, FabricModelVersionPage)
    page.request_id = transport.request_id(response)
    return page


def _answer_of(spec: RequestSpec[FabricModelVersionPage]) -> RequestSpec[PageAnswer[FabricModelVersion]]:
    """A version page's request, parsed as the paging plan takes it."""

    def answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[FabricModelVersion]:
        page = spec.parse(transport, response)
        return page.versions, page.total

    return RequestSpec(spec.operation, spec.method, spec.path, answer, spec.query, spec.body, spec.headers)


def _models_answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[FabricModel]:
    page = transport.parse(response, FabricModelPage)
    return page.models, page.total


def versions_page_spec(
    workspace: str, model_id: str, *, offset: int, limit: int, name_filter: str | None, version_id: str | None
) -> RequestSpec[FabricModelVersionPage]:
    """One ListModelVersions page of a (checked) workspace."""
    path = _versions_path(workspace, check_fabric_id(model_id, "model_id"))
    params = _versions_query(offset=offset, limit=limit, name_filter=name_filter, version_id=version_id)
    return RequestSpec("ListModelVersions", "GET", _target(path, params), _version_page)


def list_models_spec(
    workspace: str, name_filter: str | None, max_results: int | None, page_size: int
) -> ListSpec[FabricModel, Listing[FabricModel]]:
    """ListModels of a (checked) workspace over every page."""
    size = check_fabric_limit(page_size, "page_size")
    limit = check_max_results(max_results)
    if name_filter is not None and not isinstance(name_filter, str):
        raise RegistryInputError("name_filter", "must be a string", name_filter)
    path = f"/v1/workspaces/{percent_encode(workspace)}/models"

    def page(index: int) -> RequestSpec[PageAnswer[FabricModel]]:
        params = [("limit", str(size)), ("offset", str(index * size))]
        if name_filter is not None:
            params.append(("name", name_filter))
        return RequestSpec("ListModels", "GET", _target(path, params), _models_answer)

    return ListSpec(page, _model_id, Listing, size, max_results=limit, total_field="total", page_field="offset")


def _not_found(what: str, request_id: str | None) -> RegistryNotFoundError:
    return RegistryNotFoundError(status_code=404, code=None, message=what, request_id=request_id)


@with_connection_form  # the connection form of UIs before Airflow 3.2, from the same conn-fields
class FabricModelRegistryHook(ModelRegistryHookBase):
    """Talks to the DataArts Fabric model registry, signed with AK/SK or authorised by an IAM token.

    Connection (type ``huaweicloud_fabric``); ``auth_type`` says where the signing key comes from:

    * ``aksk`` (default): login = AK, password = SK; extra ``security_token`` for a temporary AK/SK.
    * ``token``: login = IAM user name, password = IAM password; extras ``iam_domain`` (account name, required),
      ``project_id`` (token scope; else the region's project by name), ``iam_endpoint`` (default
      ``https://iam.<region>.myhuaweicloud.com``).
    * ``metadata`` (ECS, CCE node): the node agency's temporary key from the instance metadata service
      (``GET /openstack/latest/securitykey``, metadata token mode when the service offers it); extra
      ``metadata_endpoint`` (default ``http://169.254.169.254``). Renewed before expiry.
    * ``oidc`` (CCE workload identity): the pod's OIDC id token exchanged at STS (``POST
      /v5/agencies/assume-with-oidc``). Extras or environment variables (an extra wins): ``oidc_provider_urn`` /
      ``HUAWEICLOUD_OIDC_PROVIDER_URN``, ``oidc_agency_urn`` / ``HUAWEICLOUD_OIDC_AGENCY_URN``, ``oidc_token_file`` /
      ``HUAWEICLOUD_OIDC_TOKEN_FILE`` (read again at each renewal), ``oidc_session_name`` /
      ``HUAWEICLOUD_OIDC_SESSION_NAME`` (default ``oidc-sts-session``), ``oidc_duration_seconds`` /
      ``HUAWEICLOUD_OIDC_DURATION_SECONDS`` (900-43200, default 3600); the token itself only from
      ``HUAWEICLOUD_OIDC_ID_TOKEN`` (it wins over a file, as in the SDK); extra ``sts_endpoint`` (default:
      ``HUAWEICLOUD_SDK_STS_ENDPOINT``, else ``https://sts.<region>.myhuaweicloud.com`` for the SDK's STS regions,
      else cn-north-4's). ``project_id`` extra, else ``HUAWEICLOUD_SDK_PROJECT_ID``. Nothing secret in the
      connection.
    * ``agency``: an agency's temporary key (possibly in another account) from IAM (``POST
      /v3.0/OS-CREDENTIAL/securitytokens``, ``assume_role``), signed with login/password AK/SK (+
      ``security_token``); extras ``agency_name``, ``agency_domain_name`` or ``agency_domain_id``,
      ``domain_id`` (the base key's own account, sent as ``X-Domain-Id``; else looked up once),
      ``duration_seconds`` (900-86400, default 3600), ``iam_endpoint`` (as with ``token``). Renewed before expiry.
    * ``env``: ``HUAWEICLOUD_SDK_AK``, ``HUAWEICLOUD_SDK_SK``, ``HUAWEICLOUD_SDK_SECURITY_TOKEN`` and
      ``HUAWEICLOUD_SDK_PROJECT_ID`` as the SDK's ``EnvCredentialProvider`` reads them, when the hook builds its
      transport; a ``project_id`` extra wins over ``HUAWEICLOUD_SDK_PROJECT_ID`` (like ``with_project_id`` on the
      SDK's credentials).
    * all: ``region`` (cn-north-4, cn-southwest-2), ``endpoint`` (full URL; ``http://`` only for an emulator),
      ``project_id`` (sent as ``X-Project-Id`` when signing), ``workspace_id`` (default workspace, needed by the
      connection test), ``max_attempts``, ``max_pages``.

    Temporary keys and IAM tokens are shared by every hook of the process with the same source settings: one
    renewal in flight, one token request per expiry
    (:func:`~airflow_provider_modelreg.credentials.base.shared_credential`). Their transports live as long as the
    process; :meth:`close` closes the hook's own pools.

    :param fabric_conn_id: Airflow connection id.
    :param max_pages: requests one listing may send at most (default: extra ``max_pages``, else 1,000).
    """

    conn_name_attr = "fabric_conn_id"
    default_conn_name = "fabric_default"
    conn_type = "huaweicloud_fabric"
    hook_name = "Huawei Cloud DataArts Fabric"

    def __init__(self, fabric_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(fabric_conn_id, **kwargs)
        self.fabric_conn_id = fabric_conn_id
        self.iam_auth: IamTokenAuth | None = None

    # -- connection -> transport

    def _settings(self, conn: Connection) -> tuple[str, str | None, str | None]:
        """(base URL, region, workspace id)."""
        extras = conn.extra_dejson
        region = extra_str(extras, "region")
        if region is not None:
            check_region(region)
        endpoint = extra_str(extras, "endpoint")
        if endpoint is not None:
            base_url = parse_endpoint(endpoint)
        elif region in FABRIC_REGIONS:
            base_url = f"https://fabric.{region}.myhuaweicloud.com"
        else:
            raise RegistryConnectionConfigError(
                "region",
                f"must be one of {', '.join(FABRIC_REGIONS)} (the SDK's known regions), or set endpoint",
                region,
            )
        if region is None:
            found = _REGIONAL_HOST.fullmatch(urlsplit(base_url).hostname or "")
            region = found.group(1) if found else None
        return base_url, region, extra_str(extras, "workspace_id")

    def _auth(self, conn: Connection) -> httpx.Auth:
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
            return self._env_auth(project_id)
        if auth_type in ("metadata", "oidc"):
            if auth_type == "oidc" and project_id is None:
                project_id = _env_setting(_PROJECT_ID_ENV)  # OidcStsCredentialProvider reads it too
            source = hw.build_huawei_source(
                auth_type, self._source_settings(conn, auth_type), self.transport_options(conn)
            )
            return credentials_signing.HuaweiCredentialAuth(
                credentials_base.shared_credential(source), project_id=project_id
            )
        login, secret, token = self._login_password(conn)
        if auth_type == "aksk":
            return HuaweiAkSkAuth(login, secret, project_id=project_id, security_token=token)
        if auth_type == "agency":
            settings = self._agency_settings(conn, login, secret, token)
            source = hw.build_huawei_source("agency", settings, self.transport_options(conn))
            return credentials_signing.HuaweiCredentialAuth(
                credentials_base.shared_credential(source), project_id=project_id
            )
        return self._token_auth(conn, login, secret, project_id)

    def _login_password(self, conn: Connection) -> tuple[str, str, str | None]:
        """(AK or IAM user name, SK or IAM password, security token), checked and masked."""
        extras = conn.extra_dejson
        if not conn.login:
            raise RegistryConnectionConfigError("login", "must hold the AK (or the IAM user name with auth_type token)")
        if not conn.password:
            raise RegistryConnectionConfigError(
                "password", "must hold the SK (or the IAM password with auth_type token)"
            )
        token = extra_str(extras, "security_token")
        mask_secrets(conn.password, token)
        # Checked before anything is sent: a pasted newline would otherwise reach h11 inside a header.
        login = check_credential(conn.login, "login")
        secret = check_credential(conn.password, "password")
        if token is not None:
            check_credential(extras.get("security_token"), "security_token")
        return login, secret, token

    def _iam_url(self, extras: dict[str, Any], auth_type: str) -> str:
        """``iam_endpoint``, else ``https://iam.<region>.myhuaweicloud.com``."""
        region = extra_str(extras, "region")
        iam_endpoint = extra_str(extras, "iam_endpoint")
        if iam_endpoint is not None:
            return parse_endpoint(iam_endpoint, "iam_endpoint")
        if region is not None:
            return f"https://iam.{check_region(region)}.myhuaweicloud.com"
        raise RegistryConnectionConfigError(
            "iam_endpoint", f"is required with auth_type {auth_type} when region is unset"
        )

    def _token_auth(self, conn: Connection, login: str, secret: str, project_id: str | None) -> IamTokenAuth:
        from airflow_provider_modelreg.iam import IamTokenAuth

        extras = conn.extra_dejson
        domain = extra_str(extras, "iam_domain")
        if domain is None:
            raise RegistryConnectionConfigError("iam_domain", "is required with auth_type token (the account name)")
        region = extra_str(extras, "region")
        iam_url = self._iam_url(extras, "token")
        if project_id is None and region is None:
            raise RegistryConnectionConfigError("project_id", "or region is required to scope the IAM token")
        self.iam_auth = IamTokenAuth(
            iam_url=iam_url,
            user_name=login,
            password=secret,
            domain_name=domain,
            project_id=project_id,
            project_name=region,
            # the token request: same retries, deadlines, cap, proxy and CA; the token itself is shared by every
            # hook of the process with the same IAM endpoint, domain, user, password and scope (one request per
            # expiry for a mapped task of 200)
            **self.transport_options(conn),
        )
        return self.iam_auth

    def _env_auth(self, project_id: str | None) -> HuaweiAkSkAuth:
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

    def _source_settings(self, conn: Connection, auth_type: str) -> HuaweiSourceSettings:
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
            provider_urn=hw.check_provider_urn(
                provider, _field_of(extras, "oidc_provider_urn", _OIDC_ENV["provider_urn"])
            ),
            agency_urn=hw.check_agency_urn(agency, _field_of(extras, "oidc_agency_urn", _OIDC_ENV["agency_urn"])),
            id_token=id_token,
            token_file=None if id_token is not None else token_file,
            session_name=hw.DEFAULT_OIDC_SESSION_NAME
            if session is None
            else hw.check_session_name(session, "oidc_session_name"),
            duration_seconds=_duration(extras, "oidc_duration_seconds", _OIDC_ENV["duration_seconds"], 900, 43200),
        )

    def _agency_settings(self, conn: Connection, login: str, secret: str, token: str | None) -> HuaweiSourceSettings:
        from airflow_provider_modelreg.credentials import huawei as hw

        extras = conn.extra_dejson
        name = _setting(extras, "agency_name")
        if name is None:
            raise RegistryConnectionConfigError("agency_name", "is required with auth_type agency")
        domain_name = _setting(extras, "agency_domain_name")
        domain_id = _setting(extras, "agency_domain_id")
        if (domain_name is None) == (domain_id is None):
            raise RegistryConnectionConfigError(
                "agency_domain_name", "set exactly one of agency_domain_name or agency_domain_id (the agency's account)"
            )
        return hw.HuaweiSourceSettings(
            iam_endpoint=self._iam_url(extras, "agency"),
            access_key=login,
            secret_key=secret,
            security_token=token,
            agency_name=name,
            agency_domain_name=domain_name,
            agency_domain_id=domain_id,
            caller_domain_id=_setting(extras, "domain_id"),
            duration_seconds=_duration(extras, "duration_seconds", None, 900, 86400),
        )

    def build_transport(self, conn: Connection) -> RegistryTransport:
        base_url, _, _ = self._settings(conn)
        return RegistryTransport(
            vendor="fabric",
            base_url=base_url,
            auth=self._auth(conn),
            headers={"Content-Type": "application/json"},
            **self.transport_options(conn),
        )

    @property
    def region(self) -> str | None:
        """Region of the endpoint asked: the ``region`` extra, else the one in a regional endpoint's host."""
        return self._settings(self.connection)[1]

    @property
    def workspace_id(self) -> str | None:
        """Default workspace from the connection."""
        return self._settings(self.connection)[2]

    def workspace(self, workspace_id: str | None = None) -> str:
        """The workspace a call with this ``workspace_id`` argument goes to (else the connection's default)."""
        return self._workspace(workspace_id, self.connection)

    def _workspace(self, workspace_id: str | None, conn: Connection) -> str:
        workspace = workspace_id or self._settings(conn)[2]
        if workspace is None:
            raise RegistryInputError("workspace_id", "is required (argument or connection extra workspace_id)")
        return check_fabric_id(workspace, "workspace_id")

    # -- request specs (hooks.specs) that need the connection's default workspace

    def _versions_page(
        self,
        model_id: str,
        workspace_id: str | None,
        offset: int,
        limit: int,
        name_filter: str | None,
        version_id: str | None,
    ) -> Deferred[FabricModelVersionPage]:
        """One ListModelVersions page, in the argument's workspace or the connection's."""

        def build(conn: Connection) -> RequestSpec[FabricModelVersionPage]:
            workspace = self._workspace(workspace_id, conn)
            return versions_page_spec(
                workspace, model_id, offset=offset, limit=limit, name_filter=name_filter, version_id=version_id
            )

        return build

    def _versions_listing(
        self,
        model_id: str,
        workspace_id: str | None,
        *,
        name_filter: str | None,
        version_id: str | None,
        page_size: int,
        concurrency: int,
        finish: Callable[[list[FabricModelVersion], int], R],
    ) -> ListSpec[FabricModelVersion, R]:
        """Every page of ListModelVersions (``max_results`` is not the plan's: the API has no order, every page is
        read and sorted); ``finish`` gets every version."""
        size = check_fabric_limit(page_size, "page_size")
        _versions_query(offset=0, limit=size, name_filter=name_filter, version_id=version_id)  # validated now

        def page(index: int) -> Deferred[PageAnswer[FabricModelVersion]]:
            request = self._versions_page(model_id, workspace_id, index * size, size, name_filter, version_id)
            return lambda conn: _answer_of(request(conn))

        return ListSpec(
            page, _version_id, finish, size, concurrency=concurrency, total_field="total", page_field="offset"
        )

    def _sorted_listing(
        self,
        model_id: str,
        *,
        workspace_id: str | None,
        name_filter: str | None,
        version_id: str | None,
        order: str,
        max_results: int | None,
        page_size: int,
        concurrency: int,
    ) -> ListSpec[FabricModelVersion, Listing[FabricModelVersion]]:
        """The listing of :meth:`list_model_versions`: every page, then sorted and cut to ``max_results``."""
        size = check_fabric_limit(page_size, "page_size")
        limit = check_max_results(max_results)
        descending = check_pai_order(order) == "DESC"

        def finish(versions: list[FabricModelVersion], _total: int) -> Listing[FabricModelVersion]:
            return _sorted_versions(versions, limit, descending=descending)

        return self._versions_listing(
            model_id,
            workspace_id,
            name_filter=name_filter,
            version_id=version_id,
            page_size=size,
            concurrency=concurrency,
            finish=finish,
        )

    # -- operations: each a spec run by the sync or the async executor

    def list_model_versions_page(
        self,
        model_id: str,
        *,
        workspace_id: str | None = None,
        offset: int = 0,
        limit: int = 10,
        name_filter: str | None = None,
        version_id: str | None = None,
    ) -> FabricModelVersionPage:
        """One page of ListModelVersions as the API returns it (``total`` counts all matches).

        :param model_id: model id.
        :param workspace_id: workspace (None: the connection's ``workspace_id``).
        :param offset: 0-1e9.
        :param limit: 1-100.
        :param name_filter: the API's fuzzy ``name`` filter, 4-32 of letters, digits, ``_``, ``-``.
        :param version_id: exact version id filter.
        """
        return self._run(self._versions_page(model_id, workspace_id, offset, limit, name_filter, version_id))

    async def alist_model_versions_page(
        self,
        model_id: str,
        *,
        workspace_id: str | None = None,
        offset: int = 0,
        limit: int = 10,
        name_filter: str | None = None,
        version_id: str | None = None,
    ) -> FabricModelVersionPage:
        """Async twin of :meth:`list_model_versions_page`."""
        return await self._arun(self._versions_page(model_id, workspace_id, offset, limit, name_filter, version_id))

    def list_model_versions(
        self,
        model_id: str,
        *,
        workspace_id: str | None = None,
        name_filter: str | None = None,
        version_id: str | None = None,
        order: str = "DESC",
        max_results: int | None = None,
        page_size: int = 100,
        concurrency: int = 8,
    ) -> Listing[FabricModelVersion]:
        """Every version exactly once, sorted by ``create_time`` then ``id``: newest first (``DESC``, the default,
        as PAI lists) or oldest first (``ASC``).

        The API documents no order for ListModelVersions, so the result does not depend on one: every page is read
        (``concurrency`` in flight after the first, at most ``max_pages`` requests, else
        :class:`~airflow_provider_modelreg.errors.RegistryPagingLimitError`), versions are merged by ``id`` and
        sorted here. Pages that contradict each other (a ``total`` that is not an integer or does not match the
        pages, a repeated page, which an unstable server order also produces) raise
        :class:`~airflow_provider_modelreg.errors.RegistryResponseError`: never a silently short list. Versions
        deleted while the listing runs can make it miss others (offset paging); see
        :mod:`airflow_provider_modelreg.paging`.

        :param model_id: model id.
        :param workspace_id: workspace (None: the connection's ``workspace_id``).
        :param name_filter: the API's fuzzy ``name`` filter.
        :param version_id: exact version id filter.
        :param order: ``DESC`` (newest first, default) or ``ASC``.
        :param max_results: keep the first this many of that order (None: all); every page is still read, and the
            result's ``total`` counts every version.
        :param page_size: ``limit`` per request, 1-100.
        :param concurrency: pages in flight at once after the first (default 8).
        """
        return self._collect(self._sorted_listing(model_id, **call_arguments(locals(), "model_id")))

    async def alist_model_versions(
        self,
        model_id: str,
        *,
        workspace_id: str | None = None,
        name_filter: str | None = None,
        version_id: str | None = None,
        order: str = "DESC",
        max_results: int | None = None,
        page_size: int = 100,
        concurrency: int = 8,
    ) -> Listing[FabricModelVersion]:
        """Async twin of :meth:`list_model_versions`."""
        return await self._acollect(self._sorted_listing(model_id, **call_arguments(locals(), "model_id")))

    @staticmethod
    def _pick(
        model_id: str,
        versions: list[FabricModelVersion],
        *,
        version_id: str | None,
        version_name: str | None,
        pick: str,
    ) -> FabricModelVersion | None:
        if version_id is not None:
            matches = [v for v in versions if v.id == version_id]
        else:
            matches = [v for v in versions if v.name == version_name]
        if not matches:
            return None
        if len(matches) == 1:
            return matches[0]
        if pick != "newest":
            # Names are not unique in Fabric: choosing one silently could deploy the wrong weights.
            raise RegistryAmbiguousVersionError(model_id, version_name or version_id or "", matches)
        undated = [v.id for v in matches if v.create_time is None]
        if undated:
            # "newest" must be provable: a version without a creation time could be the newest one
            raise RegistryResponseError(
                field="versions[].create_time",
                problem=(
                    f"missing on {len(undated)} of the {len(matches)} versions of model {model_id} named "
                    f"{version_name or version_id!r} ({', '.join(undated[:5])}{', ...' if len(undated) > 5 else ''}): "
                    "pick='newest' cannot tell which is newest; give version_id"
                ),
                request_id=None,
                status_code=200,
            )
        return max(matches, key=_created_then_id)

    @staticmethod
    def _lookup_args(version_id: str | None, version_name: str | None, pick: str) -> tuple[str | None, str | None]:
        if pick not in PICKS:
            raise RegistryInputError("pick", "must be 'unique' or 'newest'", pick)
        if (version_id is None) == (version_name is None):
            raise RegistryInputError("version_id", "give exactly one of version_id or version_name")
        if version_id is not None:
            return check_fabric_version_id(version_id), None
        checked = check_fabric_version_name(version_name, "version_name")
        # The API's name filter is fuzzy and stricter than names: use it only when the name is a valid filter.
        fuzzy = checked if check_filterable(checked) else None
        return None, fuzzy

    def _version_lookup(
        self, model_id: str, workspace_id: str | None, version_id: str | None, version_name: str | None, pick: str
    ) -> ListSpec[FabricModelVersion, FabricModelVersion]:
        """The listing behind a get: the checked, capped one of :meth:`list_model_versions`, then the match."""
        vid, fuzzy = self._lookup_args(version_id, version_name, pick)

        def finish(versions: list[FabricModelVersion], _total: int) -> FabricModelVersion:
            listed = _sorted_versions(versions, None, descending=True)
            found = self._pick(model_id, listed, version_id=vid, version_name=version_name, pick=pick)
            if found is None:
                raise _not_found(f"model {model_id} has no version {version_id or version_name!r}", None)
            return found

        return self._versions_listing(
            model_id, workspace_id, name_filter=fuzzy, version_id=vid, page_size=100, concurrency=8, finish=finish
        )

    def get_model_version(
        self,
        model_id: str,
        *,
        workspace_id: str | None = None,
        version_id: str | None = None,
        version_name: str | None = None,
        pick: str = "unique",
    ) -> FabricModelVersion:
        """One version, by server id or by exact name (Fabric has no "get version" API: list, then match).

        The listing is the checked, capped one of :meth:`list_model_versions`. Names are not unique in Fabric:
        when several versions carry ``version_name``, :class:`~airflow_provider_modelreg.errors.
        RegistryAmbiguousVersionError` lists them (ids and creation times), unless ``pick="newest"`` asks for the
        newest of them (``create_time``, then ``id``).

        :param model_id: model id.
        :param workspace_id: workspace (None: the connection's ``workspace_id``).
        :param version_id: the version's server id.
        :param version_name: the exact version name (``1.0.0`` is matched over the unfiltered list).
        :param pick: ``"unique"`` (default: several versions with the name are an error) or ``"newest"``.
        """
        return self._collect(self._version_lookup(model_id, workspace_id, version_id, version_name, pick))

    async def aget_model_version(
        self,
        model_id: str,
        *,
        workspace_id: str | None = None,
        version_id: str | None = None,
        version_name: str | None = None,
        pick: str = "unique",
    ) -> FabricModelVersion:
        """Async twin of :meth:`get_model_version`."""
        return await self._acollect(self._version_lookup(model_id, workspace_id, version_id, version_name, pick))

    def list_models(
        self,
        *,
        workspace_id: str | None = None,
        name_filter: str | None = None,
        max_results: int | None = None,
        page_size: int = 100,
    ) -> Listing[FabricModel]:
        """ListModels over every page, in the server's documented order (``CREATE_TIME`` descending: newest
        first), paged and checked like :meth:`list_model_versions`; ``total`` is the server's count.

        :param workspace_id: workspace (None: the connection's ``workspace_id``).
        :param name_filter: the API's fuzzy ``name`` filter.
        :param max_results: stop after this many models (None: all).
        :param page_size: ``limit`` per request, 1-100.
        """

        def listing(conn: Connection) -> ListSpec[FabricModel, Listing[FabricModel]]:
            return list_models_spec(self._workspace(workspace_id, conn), name_filter, max_results, page_size)

        return self._collect(listing)

    def close(self) -> None:
        """Close the sync client (an IAM token and its request pool are the process's, shared, and stay)."""
        transport = self._transport
        super().close()
        if transport is not None and self._is_iam(transport.auth):
            transport.auth.close()

    async def aclose(self) -> None:
        """Close the async client (an IAM token and its request pool are the process's, shared, and stay)."""
        transport = self._atransport
        await super().aclose()
        if transport is not None and self._is_iam(transport.auth):
            await transport.auth.aclose()

    @staticmethod
    def _is_iam(auth: httpx.Auth) -> TypeGuard[IamTokenAuth]:
        if "airflow_provider_modelreg.iam" not in sys.modules:  # imported only when a connection uses tokens
            return False
        from airflow_provider_modelreg.iam import IamTokenAuth

        return isinstance(auth, IamTokenAuth)

    def test_connection(self) -> tuple[bool, str]:
        """List the models of the connection's workspace (``workspace_id`` extra required; one attempt, 10 s), and
        say which credential source signed and when its key expires."""
        probe: RegistryTransport | None = None
        try:
            if self.workspace_id is None:
                return False, "Set the workspace_id extra: the connection test lists the models of that workspace"
            with self.probing():
                try:
                    models = self.list_models(max_results=1, page_size=1)
                finally:
                    probe = self._transport
        except Exception as exc:
            return False, str(exc)
        auth_type = extra_str(self.connection.extra_dejson, "auth_type") or "aksk"
        credential = _credential_summary(probe.auth if probe is not None else None, auth_type)
        return (
            True,
            f"Connection OK: workspace {self.workspace_id} reachable ({len(models)} model(s) listed); {credential}",
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


def check_filterable(name: str) -> bool:
    """True when ``name`` is also a valid value of the API's fuzzy ``name`` filter."""
    try:
        check_fabric_name_filter(name)
    except RegistryInputError:
        return False
    return True
