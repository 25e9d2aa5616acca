"""Hook for the Huawei Cloud DataArts Fabric model registry (API v1)."""

from __future__ import annotations

import re
from typing import Any
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
)
from airflow_provider_modelreg.hooks.base import (
    Listing,
    ModelRegistryHookBase,
    TotalSeen,
    check_credential,
    check_region,
    extra_str,
    mask_secrets,
    parse_endpoint,
)
from airflow_provider_modelreg.iam import IamTokenAuth
from airflow_provider_modelreg.models import FabricModel, FabricModelPage, FabricModelVersion, FabricModelVersionPage
from airflow_provider_modelreg.paging import acollect_pages, collect_pages
from airflow_provider_modelreg.transport import RegistryTransport
from airflow_provider_modelreg.validation import (
    check_fabric_id,
    check_fabric_limit,
    check_fabric_name_filter,
    check_fabric_offset,
    check_fabric_version_id,
    check_fabric_version_name,
    check_max_results,
    check_pai_order,
)

__all__ = ["FABRIC_REGIONS", "FabricModelRegistryHook"]

#: Regions in the official SDK's table (``DataArtsFabricRegion``).
FABRIC_REGIONS = ("cn-north-4", "cn-southwest-2")
#: ``pick`` values of a get-by-name: several versions with the name are an error, or the newest is taken.
PICKS = ("unique", "newest")
#: Regional Fabric hosts: the region of an endpoint set without a ``region`` extra.
_REGIONAL_HOST = re.compile(r"fabric\.([a-z0-9-]+)\.myhuaweicloud\.com")


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


def _not_found(what: str, request_id: str | None) -> RegistryNotFoundError:
    return RegistryNotFoundError(status_code=404, code=None, message=what, request_id=request_id)


@with_connection_form  # the connection form of UIs before Airflow 3.2, from the same conn-fields
class FabricModelRegistryHook(ModelRegistryHookBase):
    """Talks to the DataArts Fabric model registry, signed with AK/SK or authorised by an IAM token.

    Connection (type ``huaweicloud_fabric``):

    * ``auth_type`` ``aksk`` (default): login = AK, password = SK; extras ``project_id`` (sent as
      ``X-Project-Id``), ``security_token`` (temporary AK/SK).
    * ``auth_type`` ``token``: login = IAM user name, password = IAM password; extras ``iam_domain`` (account
      name, required), ``project_id`` (token scope; else the region's project by name), ``iam_endpoint``
      (default ``https://iam.<region>.myhuaweicloud.com``).
    * both: ``region`` (cn-north-4, cn-southwest-2), ``endpoint`` (full URL; ``http://`` only for an emulator),
      ``workspace_id`` (default workspace, needed by the connection test), ``max_attempts``, ``max_pages``.

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
        extras = conn.extra_dejson
        auth_type = extra_str(extras, "auth_type") or "aksk"
        if not conn.login:
            raise RegistryConnectionConfigError("login", "must hold the AK (or the IAM user name with auth_type token)")
        if not conn.password:
            raise RegistryConnectionConfigError(
                "password", "must hold the SK (or the IAM password with auth_type token)"
            )
        project_id = extra_str(extras, "project_id")
        token = extra_str(extras, "security_token")
        mask_secrets(conn.password, token)
        # Checked before anything is sent: a pasted newline would otherwise reach h11 inside a header.
        login = check_credential(conn.login, "login")
        secret = check_credential(conn.password, "password")
        if token is not None:
            check_credential(extras.get("security_token"), "security_token")
        if project_id is not None:
            check_credential(extras.get("project_id"), "project_id", secret=False)
        if auth_type == "aksk":
            return HuaweiAkSkAuth(login, secret, project_id=project_id, security_token=token)
        if auth_type != "token":
            raise RegistryConnectionConfigError("auth_type", "must be 'aksk' or 'token'", auth_type)
        domain = extra_str(extras, "iam_domain")
        if domain is None:
            raise RegistryConnectionConfigError("iam_domain", "is required with auth_type token (the account name)")
        region = extra_str(extras, "region")
        iam_endpoint = extra_str(extras, "iam_endpoint")
        if iam_endpoint is not None:
            iam_url = parse_endpoint(iam_endpoint, "iam_endpoint")
        elif region is not None:
            iam_url = f"https://iam.{check_region(region)}.myhuaweicloud.com"
        else:
            raise RegistryConnectionConfigError("iam_endpoint", "is required with auth_type token when region is unset")
        if project_id is None and region is None:
            raise RegistryConnectionConfigError("project_id", "or region is required to scope the IAM token")
        self.iam_auth = IamTokenAuth(
            iam_url=iam_url,
            user_name=login,
            password=secret,
            domain_name=domain,
            project_id=project_id,
            project_name=region,
            **self.transport_options(conn),  # the token request: same retries, deadlines, cap, proxy and CA
        )
        return self.iam_auth

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

    # -- request shapes

    @staticmethod
    def _version_params(
        *, offset: int, limit: int, name_filter: str | None, version_id: str | None
    ) -> list[tuple[str, str]]:
        params = [("offset", str(check_fabric_offset(offset))), ("limit", str(check_fabric_limit(limit)))]
        if name_filter is not None:
            params.append(("name", check_fabric_name_filter(name_filter, "name_filter")))
        if version_id is not None:
            params.append(("version_id", check_fabric_version_id(version_id)))
        return params

    # -- operations

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
        path = _versions_path(self._workspace(workspace_id, self.connection), check_fabric_id(model_id, "model_id"))
        params = self._version_params(offset=offset, limit=limit, name_filter=name_filter, version_id=version_id)
        transport = self.transport
        response = transport.request("GET", _target(path, params))
        page = transport.parse(response, FabricModelVersionPage)
        page.request_id = transport.request_id(response)
        return page

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
        conn = await self.aconnection()
        path = _versions_path(self._workspace(workspace_id, conn), check_fabric_id(model_id, "model_id"))
        params = self._version_params(offset=offset, limit=limit, name_filter=name_filter, version_id=version_id)
        transport = await self.atransport()
        response = await transport.arequest("GET", _target(path, params))
        page = transport.parse(response, FabricModelVersionPage)
        page.request_id = transport.request_id(response)
        return page

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
        size = check_fabric_limit(page_size, "page_size")
        limit = check_max_results(max_results)
        descending = check_pai_order(order) == "DESC"
        self._version_params(offset=0, limit=size, name_filter=name_filter, version_id=version_id)  # validate
        max_pages = self.max_pages(self.connection)

        def fetch(page: int) -> tuple[list[FabricModelVersion], int]:
            got = self.list_model_versions_page(
                model_id,
                workspace_id=workspace_id,
                offset=page * size,
                limit=size,
                name_filter=name_filter,
                version_id=version_id,
            )
            return got.versions, got.total

        versions = collect_pages(
            fetch,
            page_size=size,
            key=_version_id,
            max_pages=max_pages,
            concurrency=concurrency,
            total_field="total",
            page_field="offset",
        )
        return _sorted_versions(versions, limit, descending=descending)

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
        size = check_fabric_limit(page_size, "page_size")
        limit = check_max_results(max_results)
        descending = check_pai_order(order) == "DESC"
        self._version_params(offset=0, limit=size, name_filter=name_filter, version_id=version_id)
        max_pages = self.max_pages(await self.aconnection())

        async def fetch(page: int) -> tuple[list[FabricModelVersion], int]:
            got = await self.alist_model_versions_page(
                model_id,
                workspace_id=workspace_id,
                offset=page * size,
                limit=size,
                name_filter=name_filter,
                version_id=version_id,
            )
            return got.versions, got.total

        versions = await acollect_pages(
            fetch,
            page_size=size,
            key=_version_id,
            max_pages=max_pages,
            concurrency=concurrency,
            total_field="total",
            page_field="offset",
        )
        return _sorted_versions(versions, limit, descending=descending)

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
        newest = max(matches, key=_created_then_id)
        if len(matches) > 1 and pick != "newest":
            # Names are not unique in Fabric: choosing one silently could deploy the wrong weights.
            raise RegistryAmbiguousVersionError(model_id, version_name or version_id or "", matches)
        return newest

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
        vid, fuzzy = self._lookup_args(version_id, version_name, pick)
        versions = self.list_model_versions(model_id, workspace_id=workspace_id, version_id=vid, name_filter=fuzzy)
        found = self._pick(model_id, versions, version_id=vid, version_name=version_name, pick=pick)
        if found is None:
            raise _not_found(f"model {model_id} has no version {version_id or version_name!r}", None)
        return found

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
        vid, fuzzy = self._lookup_args(version_id, version_name, pick)
        versions = await self.alist_model_versions(
            model_id, workspace_id=workspace_id, version_id=vid, name_filter=fuzzy
        )
        found = self._pick(model_id, versions, version_id=vid, version_name=version_name, pick=pick)
        if found is None:
            raise _not_found(f"model {model_id} has no version {version_id or version_name!r}", None)
        return found

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
        workspace = self._workspace(workspace_id, self.connection)
        size = check_fabric_limit(page_size, "page_size")
        limit = check_max_results(max_results)
        if name_filter is not None and not isinstance(name_filter, str):
            raise RegistryInputError("name_filter", "must be a string", name_filter)
        path = f"/v1/workspaces/{percent_encode(workspace)}/models"
        transport = self.transport
        max_pages = self.max_pages(self.connection)
        seen = TotalSeen()

        def fetch(page: int) -> tuple[list[FabricModel], int]:
            params = [("limit", str(size)), ("offset", str(page * size))]
            if name_filter is not None:
                params.append(("name", name_filter))
            response = transport.request("GET", _target(path, params))
            parsed = transport.parse(response, FabricModelPage)
            seen.note(page, parsed.total)
            return parsed.models, parsed.total

        models = collect_pages(
            fetch,
            page_size=size,
            key=_model_id,
            max_results=limit,
            max_pages=max_pages,
            total_field="total",
            page_field="offset",
        )
        return seen.listing(models)

    def test_connection(self) -> tuple[bool, str]:
        """List the models of the connection's workspace (``workspace_id`` extra required; one attempt, 10 s)."""
        try:
            if self.workspace_id is None:
                return False, "Set the workspace_id extra: the connection test lists the models of that workspace"
            with self.probing():
                models = self.list_models(max_results=1, page_size=1)
        except Exception as exc:
            return False, str(exc)
        return True, f"Connection OK: workspace {self.workspace_id} reachable ({len(models)} model(s) listed)"


def check_filterable(name: str) -> bool:
    """True when ``name`` is also a valid value of the API's fuzzy ``name`` filter."""
    try:
        check_fabric_name_filter(name)
    except RegistryInputError:
        return False
    return True
