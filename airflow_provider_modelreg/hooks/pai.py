"""Hook for the Alibaba Cloud PAI model registry (AI Workspace API 2021-02-04)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import Connection

from airflow_provider_modelreg._compat import with_connection_form
from airflow_provider_modelreg.errors import RegistryConnectionConfigError
from airflow_provider_modelreg.hooks import PAI_DEFAULT_CONN_ID
from airflow_provider_modelreg.hooks.base import (
    Listing,
    ModelRegistryHookBase,
    check_region,
    extra_str,
    mask_secrets,
    parse_endpoint,
)
from airflow_provider_modelreg.hooks.pai_specs import PaiModelListing, PaiVersionListing, PaiVersionPageQuery, page_spec

# the request specs live in hooks/pai_specs.py; importable from here too (``X as X``: a re-export)
from airflow_provider_modelreg.hooks.pai_specs import _version_path as _version_path
from airflow_provider_modelreg.hooks.pai_specs import get_model_spec as get_model_spec
from airflow_provider_modelreg.hooks.pai_specs import get_model_version_spec as get_model_version_spec
from airflow_provider_modelreg.hooks.pai_specs import list_model_versions_spec as list_model_versions_spec
from airflow_provider_modelreg.hooks.pai_specs import list_models_spec as list_models_spec
from airflow_provider_modelreg.hooks.pai_specs import update_model_version_spec as update_model_version_spec
from airflow_provider_modelreg.hooks.pai_specs import versions_page_spec as versions_page_spec
from airflow_provider_modelreg.models import (
    ApprovalStatus,
    ModelVersionRef,
    PaiModel,
    PaiModelVersion,
    PaiModelVersionPage,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.credentials.alibaba import PaiAuth
    from airflow_provider_modelreg.hooks.pai_lifecycle import PaiNewVersion, PaiVersionCreated
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = ["PAI_API_VERSION", "PaiModelRegistryHook", "pai_host"]

PAI_API_VERSION = "2021-02-04"

#: Regions the official SDK (alibabacloud-aiworkspace20210204's endpoint map) sends to the central host, whatever
#: the network.
PAI_CENTRAL_REGIONS = frozenset(
    "ap-northeast-2-pop ap-southeast-2 cn-beijing-finance-1 cn-beijing-finance-pop cn-beijing-gov-1 "
    "cn-beijing-nu16-b01 cn-edge-1 cn-fujian cn-haidian-cm12-c01 cn-hangzhou-bj-b01 cn-hangzhou-finance "
    "cn-hangzhou-internal-prod-1 cn-hangzhou-internal-test-1 cn-hangzhou-internal-test-2 "
    "cn-hangzhou-internal-test-3 cn-hangzhou-test-306 cn-hongkong-finance-pop cn-huhehaote cn-huhehaote-nebula-1 "
    "cn-qingdao cn-qingdao-nebula cn-shanghai-et15-b01 cn-shanghai-et2-b01 cn-shanghai-inner "
    "cn-shanghai-internal-test-1 cn-shenzhen-finance-1 cn-shenzhen-inner cn-shenzhen-st4-d01 cn-shenzhen-su18-b01 "
    "cn-wuhan cn-yushanfang cn-zhangbei cn-zhangbei-na61-b01 cn-zhangjiakou-na62-a01 cn-zhengzhou-nebula-1 "
    "eu-west-1 eu-west-1-oxs me-east-1 rus-west-1-pop".split()
)


def pai_host(region: str, network: str | None = None) -> str:
    """The SDK's host rule: central map, the ap-southeast-5 exception, else ``aiworkspace[-vpc].<region>``."""
    if region in PAI_CENTRAL_REGIONS:
        return "aiworkspace.aliyuncs.com"
    if region == "ap-southeast-5":
        return "aiworkspace-vpc.ap-southeast-5.aliyuncs.com"
    if network in (None, "", "public"):
        return f"aiworkspace.{region}.aliyuncs.com"
    return f"aiworkspace-{network}.{region}.aliyuncs.com"


#: Regional PAI hosts (``aiworkspace[-<network>].<region>.aliyuncs.com``): the region of an endpoint without one.
_REGIONAL_HOST = re.compile(r"aiworkspace(?:-[a-z]+)?\.([a-z0-9-]+)\.aliyuncs\.com")


class PaiSignedHook(ModelRegistryHookBase):
    """What every hook on a ``pai`` connection shares: ACS3-HMAC-SHA256 signed requests (``x-acs-version``
    :attr:`api_version`) to the host of the extra :attr:`endpoint_extra`, else the SDK's host rule for the region.
    :class:`PaiModelRegistryHook` (AI Workspace) and :class:`~airflow_provider_modelreg.hooks.eas.PaiEasHook`
    (EAS) differ in these class attributes.

    Connection (type ``pai``): login = AccessKey ID, password = AccessKey secret; extras ``region``,
    ``endpoint`` (full URL; ``http://`` only for a local emulator), ``security_token`` (STS), ``network``
    (``public``/``vpc``), ``workspace_id``, ``max_attempts``, ``max_pages``, ``console_url_template``.

    Extra ``credential_source`` picks where the signing key comes from: ``access_key`` (default), ``sts``,
    ``ram_role_arn``, ``oidc_role_arn`` (RRSA on ACK), ``ecs_ram_role``, ``credentials_uri`` or ``default_chain``
    (the official credentials library's order); the extras of each are listed in
    :mod:`airflow_provider_modelreg.credentials.alibaba`. Short-lived keys are shared by every hook of the process
    on the same settings and renewed once, before they expire.

    :param pai_conn_id: Airflow connection id.
    :param retry: retry budget override (:class:`~airflow_provider_modelreg.transport.RetryPolicy`).
    :param max_pages: requests one listing may send at most (default: extra ``max_pages``, else 1,000).
    """

    conn_name_attr = "pai_conn_id"
    default_conn_name = PAI_DEFAULT_CONN_ID
    conn_type = "pai"
    hook_name = "Alibaba Cloud PAI"
    #: ``x-acs-version`` of every request
    api_version = PAI_API_VERSION
    #: the connection extra that overrides the host
    endpoint_extra = "endpoint"
    #: a regional host of this API, whose first group is the region (the region of an endpoint without one)
    regional_host = _REGIONAL_HOST

    def __init__(self, pai_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(pai_conn_id, **kwargs)
        self.pai_conn_id = pai_conn_id
        self._pai_auth: PaiAuth | None = None

    @staticmethod
    def default_host(region: str, network: str | None) -> str:
        """The official SDK's host for a region and network."""
        return pai_host(region, network)

    # -- connection -> transport

    def _settings(self, conn: Connection) -> tuple[str, str | None, str | None]:
        """(base URL, region, default workspace id) from the connection; the region is the ``region`` extra, else
        the one in a regional endpoint's host name (a model lives in the region of the endpoint asked)."""
        extras = conn.extra_dejson
        region = extra_str(extras, "region")
        network = extra_str(extras, "network")
        if network is not None and network not in ("public", "vpc"):
            raise RegistryConnectionConfigError("network", "must be 'public' or 'vpc'", network)
        endpoint = extra_str(extras, self.endpoint_extra)
        if region is not None:
            check_region(region)
        if endpoint is not None:
            base_url = parse_endpoint(endpoint, self.endpoint_extra)
        elif region is not None:
            base_url = f"https://{self.default_host(region, network)}"
        else:
            raise RegistryConnectionConfigError(
                "region", f"is required when no {self.endpoint_extra} is set (e.g. cn-hangzhou)"
            )
        if region is None:
            found = self.regional_host.fullmatch(urlsplit(base_url).hostname or "")
            region = found.group(1) if found else None
        return base_url, region, extra_str(extras, "workspace_id")

    def build_transport(self, conn: Connection) -> RegistryTransport:
        """The signed transport; the credential source (extra ``credential_source``, default ``access_key``) is
        checked before anything is sent, and chosen once here (``default_chain`` decides which provider applies)."""
        # imported here, not with the module: DAG parsing imports the hook, not the credential sources (P4)
        from airflow_provider_modelreg.credentials.alibaba import build_pai_auth, credential_config

        extras = conn.extra_dejson
        mask_secrets(conn.password, extra_str(extras, "security_token"))
        # Checked before anything is sent: a pasted newline would otherwise reach h11 inside a signed header.
        config = credential_config(conn.login, conn.password, extras)
        base_url, _, _ = self._settings(conn)
        options = self.transport_options(conn)
        self._pai_auth = build_pai_auth(config, options)
        from airflow_provider_modelreg.transport import RegistryTransport  # built here, not at import (P4)

        return RegistryTransport(
            vendor="pai",
            base_url=base_url,
            auth=self._pai_auth.auth,
            headers={"x-acs-version": self.api_version},
            **options,
        )

    @property
    def credential_source(self) -> str | None:
        """Where the key signing this hook's requests comes from (for ``default_chain``, the provider it picked
        and why), once the transport is built."""
        return None if self._pai_auth is None else self._pai_auth.label

    @property
    def region(self) -> str | None:
        """Region of the endpoint asked: the ``region`` extra, else the one in a regional endpoint's host (None for
        an endpoint such as a local emulator without a ``region`` extra)."""
        return self._settings(self.connection)[1]

    async def aregion(self) -> str | None:
        """Async twin of :attr:`region` (reads the connection with the async API)."""
        return self._settings(await self.aconnection())[1]


@with_connection_form  # the connection form of UIs before Airflow 3.2, from the same conn-fields
class PaiModelRegistryHook(PaiSignedHook):
    """Talks to the PAI model registry (AI Workspace API 2021-02-04); the connection as in :class:`PaiSignedHook`.

    :param pai_conn_id: Airflow connection id.
    """

    def __init__(self, pai_conn_id: str = PaiSignedHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(pai_conn_id, **kwargs)
        self._workspaces: dict[str, str | None] = {}  # model id -> WorkspaceId (GetModel), once per hook

    @property
    def workspace_id(self) -> str | None:
        """Default workspace from the connection (``list_models``); a model's own is :meth:`model_workspace`."""
        return self._settings(self.connection)[2]

    def model_workspace(self, model_id: str) -> str | None:
        """The WorkspaceId of a model, from GetModel: read once per model for the life of this hook."""
        if not self.knows_workspace(model_id):
            self._workspaces[model_id] = self._run(get_model_spec(model_id)).workspace_id
        return self._workspaces[model_id]

    async def amodel_workspace(self, model_id: str) -> str | None:
        """Async twin of :meth:`model_workspace` (the same per-hook cache)."""
        if not self.knows_workspace(model_id):
            self._workspaces[model_id] = (await self._arun(get_model_spec(model_id))).workspace_id
        return self._workspaces[model_id]

    def knows_workspace(self, model_id: str) -> bool:
        """True when this hook has the model's WorkspaceId already (:meth:`model_workspace` sends nothing)."""
        return model_id in self._workspaces

    def version_ref(self, model_id: str, version: PaiModelVersion) -> ModelVersionRef:
        """The :class:`~airflow_provider_modelreg.models.ModelVersionRef` of a version: the workspace is the
        model's own (one GetModel per model per hook), the region the endpoint's."""
        return version.to_ref(model_id=model_id, region=self.region, workspace_id=self.model_workspace(model_id))

    async def aversion_ref(self, model_id: str, version: PaiModelVersion) -> ModelVersionRef:
        """Async twin of :meth:`version_ref`."""
        workspace = await self.amodel_workspace(model_id)
        return version.to_ref(model_id=model_id, region=await self.aregion(), workspace_id=workspace)

    # -- operations: each a spec (built and validated by the builders above) run by the sync or async executor

    def get_model_version(self, model_id: str, version_name: str) -> PaiModelVersion:
        """GetModelVersion.

        :param model_id: PAI ModelId.
        :param version_name: the version's VersionName.
        """
        return self._run(get_model_version_spec(model_id, version_name))

    async def aget_model_version(self, model_id: str, version_name: str) -> PaiModelVersion:
        """Async twin of :meth:`get_model_version`."""
        return await self._arun(get_model_version_spec(model_id, version_name))

    def list_model_versions(self, model_id: str, **options: Unpack[PaiVersionListing]) -> Listing[PaiModelVersion]:
        """ListModelVersions over every page, each version exactly once, in the server's creation-time order
        (newest first by default). The result's ``total`` is the server's ``TotalCount``: more than its length when
        ``max_results`` cut the listing.

        Pages after the first are fetched ``concurrency`` at a time, never more than ``max_pages`` requests (a
        :class:`~airflow_provider_modelreg.errors.RegistryPagingLimitError` instead). Pages that contradict each
        other (a ``TotalCount`` that is not an integer or does not match the pages, a repeated page) raise
        :class:`~airflow_provider_modelreg.errors.RegistryResponseError`: never a silently short list.

        Under change: every version that existed when the listing began is returned when versions are only being
        created meanwhile. A *filtered* listing is not safe against versions leaving the filter while it runs:
        with ``approval_status="Pending"``, each version approved or rejected during the listing shifts the later
        ones one place forward, and a version that stayed Pending throughout can be missed (as many as left). The
        approval sensor and triggers do not rely on such listings.

        :param model_id: PAI ModelId.
        :param approval_status: Pending, Approved or Rejected.
        :param version_name: exact VersionName filter.
        :param label_filter: ``Label`` filter: substring of a label key or value.
        :param order: ``DESC`` (newest first, default) or ``ASC``.
        :param max_results: stop after this many versions (None: all); only the pages needed are read.
        :param page_size: PageSize per request, 1-100.
        :param concurrency: pages in flight at once after the first (default 8).
        """
        return self._collect(list_model_versions_spec(model_id, **options))

    async def alist_model_versions(
        self, model_id: str, **options: Unpack[PaiVersionListing]
    ) -> Listing[PaiModelVersion]:
        """Async twin of :meth:`list_model_versions`."""
        return await self._acollect(list_model_versions_spec(model_id, **options))

    def get_model(self, model_id: str) -> PaiModel:
        """GetModel (with ``LatestVersion`` and ``WorkspaceId``).

        :param model_id: PAI ModelId.
        """
        return self._run(get_model_spec(model_id))

    async def aget_model(self, model_id: str) -> PaiModel:
        """Async twin of :meth:`get_model`."""
        return await self._arun(get_model_spec(model_id))

    def list_models(self, **options: Unpack[PaiModelListing]) -> Listing[PaiModel]:
        """ListModels over every page (paged and checked like :meth:`list_model_versions`), newest first by
        default; ``total`` is the server's ``TotalCount``.

        :param workspace_id: defaults to the connection's ``workspace_id`` extra.
        :param name_filter: ``ModelName`` filter: fuzzy; wrap in double quotes for an exact match.
        :param label_filter: ``Label`` filter: substring of a label key or value.
        :param provider: ``Provider`` filter (exact).
        :param order: ``DESC`` (newest first, default) or ``ASC`` by creation time.
        :param max_results: stop after this many models (None: all).
        :param page_size: PageSize per request, 1-100.
        """
        models = self._collect(list_models_spec(self.workspace_id, **options))
        for model in models:  # the listing says where each model lives: no GetModel needed for these
            if model.workspace_id is not None:
                self._workspaces.setdefault(model.model_id, model.workspace_id)
        return models

    def update_model_version(
        self,
        model_id: str,
        version_name: str,
        *,
        approval_status: str | ApprovalStatus,
        extra_info: dict[str, Any] | None = None,
    ) -> str | None:
        """UpdateModelVersion with a new ApprovalStatus (and, given, a new ``ExtraInfo``: the whole object). Returns
        the request id.

        Setting the values a version already has is harmless, so this PUT is retried like a GET.
        """
        return self._run(update_model_version_spec(model_id, version_name, approval_status, extra_info))

    def create_model_version(self, model_id: str, uri: str, **fields: Unpack[PaiNewVersion]) -> PaiVersionCreated:
        """CreateModelVersion (register a version). Sent once: a request that may have arrived is not repeated
        (a second POST would fail on the name or make a second version); see
        :class:`~airflow_provider_modelreg.operators.pai_lifecycle.PaiCreateModelVersionOperator` for the
        idempotent task.

        :param model_id: PAI ModelId.
        :param uri: where the artifact is (``oss://bucket.endpoint/path``, ``https://...``).
        :param fields: the other fields (:class:`~airflow_provider_modelreg.hooks.pai_lifecycle.PaiNewVersion`).
        """
        from airflow_provider_modelreg.hooks import pai_lifecycle as _lifecycle  # on first use (P4)

        return self._run(_lifecycle.create_model_version_spec(model_id, uri, **fields))

    def add_version_labels(self, model_id: str, version_name: str, labels: dict[str, str]) -> str | None:
        """CreateModelVersionLabels: add (or set) labels; returns the request id.

        :param labels: ``{key: value}``; keys and values of at most 128 bytes, without ``=`` or ``,``.
        """
        from airflow_provider_modelreg.hooks import pai_lifecycle as _lifecycle  # on first use (P4)

        return self._run(_lifecycle.create_version_labels_spec(model_id, version_name, labels))

    def remove_version_labels(self, model_id: str, version_name: str, keys: list[str]) -> str | None:
        """DeleteModelVersionLabels of ``keys`` (an absent label is no error); returns the request id."""
        from airflow_provider_modelreg.hooks import pai_lifecycle as _lifecycle  # on first use (P4)

        return self._run(_lifecycle.delete_version_labels_spec(model_id, version_name, keys))

    def test_connection(self) -> tuple[bool, str]:
        """List one model to prove the credentials and endpoint work (one attempt, 10 s deadline); the message says
        which credential source signed and when its key expires."""
        try:
            with self.probing():
                models = self.list_models(max_results=1, page_size=1)
                auth = self._pai_auth
        except Exception as exc:
            return False, str(exc)
        credentials = "" if auth is None else f"; credentials from {auth.label}, {auth.expiry_text()}"
        return True, f"Connection OK: PAI registry reachable ({len(models)} model(s) in the first page){credentials}"

    # -- single pages (the approval gate pages itself; see approval.py)

    def list_model_versions_page(self, model_id: str, **options: Unpack[PaiVersionPageQuery]) -> PaiModelVersionPage:
        """One ListModelVersions page, newest first by creation time (with ``TotalCount`` and ``RequestId``).

        :param model_id: PAI ModelId.
        :param page: 0-based page index (default 0).
        :param page_size: PageSize, 1-100 (default 100).
        :param approval_status: optional ApprovalStatus filter.
        :param label: optional ``Label`` filter (a substring of a label key or value).
        """
        return self._run(page_spec(model_id, **options))

    async def alist_model_versions_page(
        self, model_id: str, **options: Unpack[PaiVersionPageQuery]
    ) -> PaiModelVersionPage:
        """Async twin of :meth:`list_model_versions_page`."""
        return await self._arun(page_spec(model_id, **options))
