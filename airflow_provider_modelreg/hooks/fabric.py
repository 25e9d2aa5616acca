"""Hook for the Huawei Cloud DataArts Fabric model registry (API v1)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeGuard, TypeVar, Unpack, cast

import httpx
from airflow.providers.common.compat.sdk import Connection

from airflow_provider_modelreg._compat import with_connection_form
from airflow_provider_modelreg.errors import (
    RegistryAmbiguousVersionError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryResponseError,
)
from airflow_provider_modelreg.hooks import FABRIC_DEFAULT_CONN_ID, PICKS
from airflow_provider_modelreg.hooks.base import Listing, ModelRegistryHookBase, extra_str

# the connection settings and the request specs have their own modules; their names stay importable from here
# (``X as X``: a re-export)
from airflow_provider_modelreg.hooks.fabric_connection import AUTH_TYPES, FABRIC_REGIONS, fabric_auth, fabric_settings
from airflow_provider_modelreg.hooks.fabric_connection import _credential_summary as _credential_summary
from airflow_provider_modelreg.hooks.fabric_specs import (
    FabricModelListing,
    FabricPageFilter,
    FabricVersionListing,
    FabricVersionLookup,
    FabricVersionPageQuery,
)
from airflow_provider_modelreg.hooks.fabric_specs import _answer_of as _answer_of
from airflow_provider_modelreg.hooks.fabric_specs import _created_then_id as _created_then_id
from airflow_provider_modelreg.hooks.fabric_specs import _sorted_versions as _sorted_versions
from airflow_provider_modelreg.hooks.fabric_specs import _version_id as _version_id
from airflow_provider_modelreg.hooks.fabric_specs import _versions_path as _versions_path
from airflow_provider_modelreg.hooks.fabric_specs import _versions_query as _versions_query
from airflow_provider_modelreg.hooks.fabric_specs import list_models_spec as list_models_spec
from airflow_provider_modelreg.hooks.fabric_specs import versions_page_spec as versions_page_spec
from airflow_provider_modelreg.hooks.specs import Deferred, ListSpec, PageAnswer, RequestSpec, known_options
from airflow_provider_modelreg.models import FabricModel, FabricModelVersion, FabricModelVersionPage
from airflow_provider_modelreg.validation import (
    check_fabric_id,
    check_fabric_limit,
    check_fabric_name_filter,
    check_fabric_version_id,
    check_fabric_version_name,
    check_max_results,
    check_order,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.hooks.fabric_lifecycle import FabricModelCreated, FabricModelUpdate, FabricNewModel
    from airflow_provider_modelreg.iam import IamTokenAuth
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = ["AUTH_TYPES", "FABRIC_REGIONS", "FabricModelRegistryHook"]

R = TypeVar("R")


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
    default_conn_name = FABRIC_DEFAULT_CONN_ID
    conn_type = "huaweicloud_fabric"
    hook_name = "Huawei Cloud DataArts Fabric"

    def __init__(self, fabric_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(fabric_conn_id, **kwargs)
        self.fabric_conn_id = fabric_conn_id
        self.iam_auth: IamTokenAuth | None = None

    # -- connection -> transport

    def _settings(self, conn: Connection) -> tuple[str, str | None, str | None]:
        """(base URL, region, workspace id)."""
        return fabric_settings(conn)

    def _auth(self, conn: Connection) -> httpx.Auth:
        auth = fabric_auth(conn, lambda: self.transport_options(conn))
        if self._is_iam(auth):
            self.iam_auth = auth
        return auth

    def build_transport(self, conn: Connection) -> RegistryTransport:
        base_url, _, _ = self._settings(conn)
        from airflow_provider_modelreg.transport import RegistryTransport  # built here, not at import (P4)

        return RegistryTransport(
            vendor="fabric",
            base_url=base_url,
            auth=self._auth(conn),
            headers={"Accept": "*/*", "Content-Type": "application/json"},  # the SDK's (requests') Accept
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
        self, model_id: str, **options: Unpack[FabricVersionPageQuery]
    ) -> Deferred[FabricModelVersionPage]:
        """One ListModelVersions page, in the argument's workspace or the connection's."""

        known_options(options, FabricVersionPageQuery, "list_model_versions_page")
        workspace_id = options.pop("workspace_id", None)
        query = cast(FabricPageFilter, options)  # the rest: the page's query

        def build(conn: Connection) -> RequestSpec[FabricModelVersionPage]:
            return versions_page_spec(self._workspace(workspace_id, conn), model_id, **query)

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
            request = self._versions_page(
                model_id,
                workspace_id=workspace_id,
                offset=index * size,
                limit=size,
                name_filter=name_filter,
                version_id=version_id,
            )
            return lambda conn: _answer_of(request(conn))

        return ListSpec(
            page, _version_id, finish, size, concurrency=concurrency, total_field="total", page_field="offset"
        )

    def _sorted_listing(
        self, model_id: str, **options: Unpack[FabricVersionListing]
    ) -> ListSpec[FabricModelVersion, Listing[FabricModelVersion]]:
        """The listing of :meth:`list_model_versions`: every page, then sorted and cut to ``max_results``."""
        known_options(options, FabricVersionListing, "list_model_versions")
        size = check_fabric_limit(options.get("page_size", 100), "page_size")
        limit = check_max_results(options.get("max_results"))
        descending = check_order(options.get("order", "DESC")) == "DESC"

        def finish(versions: list[FabricModelVersion], _total: int) -> Listing[FabricModelVersion]:
            return _sorted_versions(versions, limit, descending=descending)

        return self._versions_listing(
            model_id,
            options.get("workspace_id"),
            name_filter=options.get("name_filter"),
            version_id=options.get("version_id"),
            page_size=size,
            concurrency=options.get("concurrency", 8),
            finish=finish,
        )

    # -- operations: each a spec run by the sync or the async executor

    def list_model_versions_page(
        self, model_id: str, **options: Unpack[FabricVersionPageQuery]
    ) -> FabricModelVersionPage:
        """One page of ListModelVersions as the API returns it (``total`` counts all matches).

        :param model_id: model id.
        :param workspace_id: workspace (None: the connection's ``workspace_id``).
        :param offset: 0-1e9.
        :param limit: 1-100.
        :param name_filter: the API's fuzzy ``name`` filter, 4-32 of letters, digits, ``_``, ``-``.
        :param version_id: exact version id filter.
        """
        return self._run(self._versions_page(model_id, **options))

    async def alist_model_versions_page(
        self, model_id: str, **options: Unpack[FabricVersionPageQuery]
    ) -> FabricModelVersionPage:
        """Async twin of :meth:`list_model_versions_page`."""
        return await self._arun(self._versions_page(model_id, **options))

    def list_model_versions(
        self, model_id: str, **options: Unpack[FabricVersionListing]
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
        return self._collect(self._sorted_listing(model_id, **options))

    async def alist_model_versions(
        self, model_id: str, **options: Unpack[FabricVersionListing]
    ) -> Listing[FabricModelVersion]:
        """Async twin of :meth:`list_model_versions`."""
        return await self._acollect(self._sorted_listing(model_id, **options))

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
        self, model_id: str, **options: Unpack[FabricVersionLookup]
    ) -> ListSpec[FabricModelVersion, FabricModelVersion]:
        """The listing behind a get: the checked, capped one of :meth:`list_model_versions`, then the match."""
        known_options(options, FabricVersionLookup, "get_model_version")
        workspace_id, version_id = options.get("workspace_id"), options.get("version_id")
        version_name, pick = options.get("version_name"), options.get("pick", "unique")
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

    def get_model_version(self, model_id: str, **options: Unpack[FabricVersionLookup]) -> FabricModelVersion:
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
        return self._collect(self._version_lookup(model_id, **options))

    async def aget_model_version(self, model_id: str, **options: Unpack[FabricVersionLookup]) -> FabricModelVersion:
        """Async twin of :meth:`get_model_version`."""
        return await self._acollect(self._version_lookup(model_id, **options))

    def list_models(self, **options: Unpack[FabricModelListing]) -> Listing[FabricModel]:
        """ListModels over every page, in the server's documented order (``CREATE_TIME`` descending: newest
        first), paged and checked like :meth:`list_model_versions`; ``total`` is the server's count.

        :param workspace_id: workspace (None: the connection's ``workspace_id``).
        :param name_filter: the API's fuzzy ``name`` filter.
        :param max_results: stop after this many models (None: all).
        :param page_size: ``limit`` per request, 1-100.
        """

        known_options(options, FabricModelListing, "list_models")
        workspace_id = options.get("workspace_id")

        def listing(conn: Connection) -> ListSpec[FabricModel, Listing[FabricModel]]:
            return list_models_spec(
                self._workspace(workspace_id, conn),
                options.get("name_filter"),
                options.get("max_results"),
                options.get("page_size", 100),
            )

        return self._collect(listing)

    # -- lifecycle writes and the model read (hooks.fabric_lifecycle), in the argument's workspace or the connection's

    def _in(self, workspace_id: str | None, build: Callable[[str], RequestSpec[R]]) -> Deferred[R]:
        return lambda conn: build(self._workspace(workspace_id, conn))

    def get_model(self, model_id: str, *, workspace_id: str | None = None) -> FabricModel:
        """One model with its ``current_version`` (ListModels filtered by ``id``: Fabric has no ShowModel)."""
        from airflow_provider_modelreg.hooks import fabric_lifecycle as _lifecycle  # on first use (P4)

        return self._run(self._in(workspace_id, lambda ws: _lifecycle.get_model_spec(ws, model_id)))

    async def aget_model(self, model_id: str, *, workspace_id: str | None = None) -> FabricModel:
        """Async twin of :meth:`get_model`."""
        from airflow_provider_modelreg.hooks import fabric_lifecycle as _lifecycle  # on first use (P4)

        return await self._arun(self._in(workspace_id, lambda ws: _lifecycle.get_model_spec(ws, model_id)))

    def create_model(
        self, name: str, *, workspace_id: str | None = None, **fields: Unpack[FabricNewModel]
    ) -> FabricModelCreated:
        """CreateModelDefinition: a model and its first version (``version_name``, ``model_path``,
        ``base_model_type``), created asynchronously. Sent once; returns the model id and the version id."""
        from airflow_provider_modelreg.hooks import fabric_lifecycle as _lifecycle  # on first use (P4)

        return self._run(self._in(workspace_id, lambda ws: _lifecycle.create_model_spec(ws, name, **fields)))

    def update_model(
        self, model_id: str, *, workspace_id: str | None = None, **fields: Unpack[FabricModelUpdate]
    ) -> FabricModel:
        """UpdateModelDefinition: a new version (created asynchronously; sent once) and/or the current version
        (``current_version_id``), name, description. Returns the model as the answer shows it."""
        from airflow_provider_modelreg.hooks import fabric_lifecycle as _lifecycle  # on first use (P4)

        return self._run(self._in(workspace_id, lambda ws: _lifecycle.update_model_spec(ws, model_id, **fields)))

    def delete_model_version(self, model_id: str, version_id: str, *, workspace_id: str | None = None) -> str | None:
        """DeleteModelVersion; returns the request id."""
        from airflow_provider_modelreg.hooks import fabric_lifecycle as _lifecycle  # on first use (P4)

        return self._run(self._in(workspace_id, lambda ws: _lifecycle.delete_version_spec(ws, model_id, version_id)))

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


def check_filterable(name: str) -> bool:
    """True when ``name`` is also a valid value of the API's fuzzy ``name`` filter."""
    try:
        check_fabric_name_filter(name)
    except RegistryInputError:
        return False
    return True
