"""The request specs of the Fabric registry (:mod:`airflow_provider_modelreg.hooks.specs`): one builder per
operation, every argument validated before anything is sent.
:class:`~airflow_provider_modelreg.hooks.fabric.FabricModelRegistryHook` runs them; they stay importable from
:mod:`airflow_provider_modelreg.hooks.fabric` as well."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import httpx

from airflow_provider_modelreg.auth import percent_encode, sdk_canonical_query
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.base import Listing
from airflow_provider_modelreg.hooks.specs import ListSpec, PageAnswer, RequestSpec
from airflow_provider_modelreg.models import FabricModel, FabricModelPage, FabricModelVersion, FabricModelVersionPage
from airflow_provider_modelreg.validation import (
    check_fabric_id,
    check_fabric_limit,
    check_fabric_name_filter,
    check_fabric_offset,
    check_fabric_version_id,
    check_max_results,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "FabricModelListing",
    "FabricPageFilter",
    "FabricVersionListing",
    "FabricVersionLookup",
    "FabricVersionPageQuery",
    "list_models_spec",
    "versions_page_spec",
]


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


class FabricPageFilter(TypedDict, total=False):
    """The query of one ListModelVersions page (:func:`versions_page_spec`)."""

    offset: int
    limit: int
    name_filter: str | None
    version_id: str | None


class FabricVersionPageQuery(FabricPageFilter, total=False):
    """The options of one ListModelVersions page (``list_model_versions_page`` of the hook)."""

    #: None: the connection's ``workspace_id``
    workspace_id: str | None


class FabricVersionListing(TypedDict, total=False):
    """The options of a whole ListModelVersions listing (``list_model_versions`` of the hook)."""

    workspace_id: str | None
    name_filter: str | None
    version_id: str | None
    #: ``DESC`` (default) or ``ASC`` by create_time, then id
    order: str
    max_results: int | None
    page_size: int
    concurrency: int


class FabricVersionLookup(TypedDict, total=False):
    """The options of a get of one version (``get_model_version`` of the hook)."""

    workspace_id: str | None
    #: the version's server id; or
    version_id: str | None
    #: its exact name
    version_name: str | None
    #: ``"unique"`` (default) or ``"newest"``: what to do when several versions share the name
    pick: str


class FabricModelListing(TypedDict, total=False):
    """The options of a whole ListModels listing (``list_models`` of the hook)."""

    workspace_id: str | None
    name_filter: str | None
    max_results: int | None
    page_size: int


def versions_page_spec(
    workspace: str,
    model_id: str,
    *,
    offset: int = 0,
    limit: int = 10,
    name_filter: str | None = None,
    version_id: str | None = None,
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
