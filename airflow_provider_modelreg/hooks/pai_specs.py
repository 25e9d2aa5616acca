"""The request specs of the PAI registry (:mod:`airflow_provider_modelreg.hooks.specs`): one builder per operation,
every argument validated before anything is sent. :class:`~airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook`
runs them; they stay importable from :mod:`airflow_provider_modelreg.hooks.pai` as well."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TypeVar

import httpx

from airflow_provider_modelreg.auth import percent_encode
from airflow_provider_modelreg.hooks.base import Listing
from airflow_provider_modelreg.hooks.specs import ListSpec, PageAnswer, RequestSpec, parsed_as, request_id
from airflow_provider_modelreg.models import (
    ApprovalStatus,
    PaiModel,
    PaiModelPage,
    PaiModelVersion,
    PaiModelVersionPage,
)
from airflow_provider_modelreg.transport import RegistryTransport
from airflow_provider_modelreg.validation import (
    check_max_results,
    check_pai_approval_status,
    check_pai_model_id,
    check_pai_order,
    check_pai_page_size,
    check_pai_version_name,
)

__all__ = [
    "get_model_spec",
    "get_model_version_spec",
    "list_model_versions_spec",
    "list_models_spec",
    "update_model_version_spec",
    "versions_page_spec",
]

T = TypeVar("T")


def _version_key(version: PaiModelVersion) -> str:
    return version.version_name


def _model_key(model: PaiModel) -> str:
    return model.model_id


def _version_path(model_id: str, version_name: str | None = None) -> str:
    path = f"/api/v1/models/{percent_encode(model_id)}/versions"
    return path if version_name is None else f"{path}/{percent_encode(version_name)}"


def _pai(
    operation: str,
    method: str,
    path: str,
    parse: Callable[[RegistryTransport, httpx.Response], T],
    *,
    query: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    idempotent: bool | None = None,
) -> RequestSpec[T]:
    """A PAI request: the operation travels as ``x-acs-action`` (the version is a transport header)."""
    return RequestSpec(
        operation,
        method,
        path,
        parse,
        query=tuple(query),
        body=body,
        headers=(("x-acs-action", operation),),
        idempotent=idempotent,
    )


def _page_query(params: list[tuple[str, str]], page: int, size: int) -> list[tuple[str, str]]:
    # Alphabetical, as the generated SDK client sends them.
    return sorted([*params, ("PageNumber", str(page + 1)), ("PageSize", str(size))])


def _versions_answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[PaiModelVersion]:
    page = transport.parse(response, PaiModelVersionPage)
    return page.versions, page.total_count


def _models_answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[PaiModel]:
    page = transport.parse(response, PaiModelPage)
    return page.models, page.total_count


def get_model_version_spec(model_id: str, version_name: str) -> RequestSpec[PaiModelVersion]:
    """GetModelVersion."""
    path = _version_path(check_pai_model_id(model_id), check_pai_version_name(version_name))
    return _pai("GetModelVersion", "GET", path, parsed_as(PaiModelVersion))


def get_model_spec(model_id: str) -> RequestSpec[PaiModel]:
    """GetModel."""
    path = f"/api/v1/models/{percent_encode(check_pai_model_id(model_id))}"
    return _pai("GetModel", "GET", path, parsed_as(PaiModel))


def update_model_version_spec(
    model_id: str, version_name: str, approval_status: str | ApprovalStatus
) -> RequestSpec[str | None]:
    """UpdateModelVersion of the ApprovalStatus (idempotent: setting the value a version has is harmless)."""
    path = _version_path(check_pai_model_id(model_id), check_pai_version_name(version_name))
    status = check_pai_approval_status(approval_status)
    body = json.dumps({"ApprovalStatus": status.value}, separators=(",", ":"), ensure_ascii=False).encode()
    return _pai("UpdateModelVersion", "PUT", path, request_id, body=body, idempotent=True)


def _status_filter(approval_status: str | ApprovalStatus | None) -> list[tuple[str, str]]:
    return [] if approval_status is None else [("ApprovalStatus", check_pai_approval_status(approval_status).value)]


def versions_page_spec(
    model_id: str, page: int, page_size: int, approval_status: str | None
) -> RequestSpec[PaiModelVersionPage]:
    """One ListModelVersions page, newest first."""
    path = _version_path(check_pai_model_id(model_id))
    params = [*_status_filter(approval_status), ("Order", "DESC"), ("SortBy", "GmtCreateTime")]
    query = _page_query(params, page, check_pai_page_size(page_size))
    return _pai("ListModelVersions", "GET", path, parsed_as(PaiModelVersionPage), query=query)


def list_model_versions_spec(
    model_id: str,
    *,
    approval_status: str | ApprovalStatus | None = None,
    version_name: str | None = None,
    label_filter: str | None = None,
    format_type: str | None = None,
    framework_type: str | None = None,
    source_type: str | None = None,
    source_id: str | None = None,
    order: str = "DESC",
    max_results: int | None = None,
    page_size: int = 100,
    concurrency: int = 8,
) -> ListSpec[PaiModelVersion, Listing[PaiModelVersion]]:
    """ListModelVersions over every page (the arguments of ``list_model_versions``)."""
    path = _version_path(check_pai_model_id(model_id))
    params = _status_filter(approval_status)
    for name, value in (("FormatType", format_type), ("FrameworkType", framework_type), ("Label", label_filter)):
        if value is not None:
            params.append((name, str(value)))
    params += [("Order", check_pai_order(order)), ("SortBy", "GmtCreateTime")]
    for name, value in (("SourceId", source_id), ("SourceType", source_type)):
        if value is not None:
            params.append((name, str(value)))
    if version_name is not None:
        params.append(("VersionName", check_pai_version_name(version_name)))
    size = check_pai_page_size(page_size)

    def page(index: int) -> RequestSpec[PageAnswer[PaiModelVersion]]:
        return _pai("ListModelVersions", "GET", path, _versions_answer, query=_page_query(params, index, size))

    return ListSpec(
        page, _version_key, Listing, size, max_results=check_max_results(max_results), concurrency=concurrency
    )


def list_models_spec(
    workspace_id: str | None,
    *,
    name_filter: str | None,
    label_filter: str | None,
    provider: str | None,
    order: str,
    max_results: int | None,
    page_size: int,
) -> ListSpec[PaiModel, Listing[PaiModel]]:
    """ListModels over every page."""
    params: list[tuple[str, str]] = [("Order", check_pai_order(order)), ("SortBy", "GmtCreateTime")]
    for name, value in (
        ("Label", label_filter),
        ("ModelName", name_filter),
        ("Provider", provider),
        ("WorkspaceId", workspace_id),
    ):
        if value is not None:
            params.append((name, value))
    size = check_pai_page_size(page_size)

    def page(index: int) -> RequestSpec[PageAnswer[PaiModel]]:
        return _pai("ListModels", "GET", "/api/v1/models", _models_answer, query=_page_query(params, index, size))

    return ListSpec(page, _model_key, Listing, size, max_results=check_max_results(max_results))
