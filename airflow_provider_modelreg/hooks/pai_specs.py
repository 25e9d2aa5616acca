"""The request specs of the PAI registry (:mod:`airflow_provider_modelreg.hooks.specs`): one builder per operation,
every argument validated before anything is sent. :class:`~airflow_provider_modelreg.hooks.pai.PaiModelRegistryHook`
runs them; they stay importable from :mod:`airflow_provider_modelreg.hooks.pai` as well."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack

import httpx

from airflow_provider_modelreg.auth import percent_encode
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.base import Listing
from airflow_provider_modelreg.hooks.specs import (
    ListSpec,
    PageAnswer,
    RequestSpec,
    known_options,
    parsed_as,
    request_id,
)
from airflow_provider_modelreg.models import (
    ApprovalStatus,
    PaiModel,
    PaiModelPage,
    PaiModelVersion,
    PaiModelVersionPage,
)
from airflow_provider_modelreg.validation import (
    check_max_results,
    check_order,
    check_pai_approval_status,
    check_pai_label_part,
    check_pai_model_id,
    check_pai_page_size,
    check_pai_version_name,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "PaiModelListing",
    "PaiVersionListing",
    "PaiVersionPageQuery",
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
    model_id: str,
    version_name: str,
    approval_status: str | ApprovalStatus,
    extra_info: dict[str, Any] | None = None,
) -> RequestSpec[str | None]:
    """UpdateModelVersion of the ApprovalStatus, and the ``ExtraInfo`` when given (idempotent: setting the values a
    version has is harmless)."""
    path = _version_path(check_pai_model_id(model_id), check_pai_version_name(version_name))
    status = check_pai_approval_status(approval_status)
    fields: dict[str, Any] = {"ApprovalStatus": status.value}  # the SDK's order: ApprovalStatus, ..., ExtraInfo
    if extra_info is not None:
        if not isinstance(extra_info, dict):
            raise RegistryInputError("extra_info", "must be a JSON object (a dict)", type(extra_info).__name__)
        fields["ExtraInfo"] = extra_info
    body = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    return _pai("UpdateModelVersion", "PUT", path, request_id, body=body, idempotent=True)


def _status_value(approval_status: str | ApprovalStatus | None) -> str | None:
    return None if approval_status is None else check_pai_approval_status(approval_status).value


def _status_filter(approval_status: str | ApprovalStatus | None) -> list[tuple[str, str]]:
    value = _status_value(approval_status)
    return [] if value is None else [("ApprovalStatus", value)]


def versions_page_spec(
    model_id: str, page: int, page_size: int, approval_status: str | None, label: str | None = None
) -> RequestSpec[PaiModelVersionPage]:
    """One ListModelVersions page, newest first; ``label``: the ``Label`` filter (a substring of a label key or
    value: the caller keeps the exact matches)."""
    path = _version_path(check_pai_model_id(model_id))
    params = [*_status_filter(approval_status), ("Order", "DESC"), ("SortBy", "GmtCreateTime")]
    if label is not None:
        params.append(("Label", check_pai_label_part(label, "label")))
    query = _page_query(params, page, check_pai_page_size(page_size))
    return _pai("ListModelVersions", "GET", path, parsed_as(PaiModelVersionPage), query=query)


class PaiVersionPageQuery(TypedDict, total=False):
    """The options of one ListModelVersions page (``list_model_versions_page`` of the hook and :func:`page_spec`)."""

    #: 0-based page index (default 0)
    page: int
    #: PageSize, 1-100 (default 100)
    page_size: int
    approval_status: str | None
    #: the ``Label`` filter (a substring of a label key or value)
    label: str | None


def page_spec(model_id: str, **options: Unpack[PaiVersionPageQuery]) -> RequestSpec[PaiModelVersionPage]:
    """:func:`versions_page_spec` with the hook's keyword options (unknown ones refused, as Python would).

    :param model_id: PAI ModelId.
    """
    known_options(options, PaiVersionPageQuery, "list_model_versions_page")
    return versions_page_spec(
        model_id,
        options.get("page", 0),
        options.get("page_size", 100),
        options.get("approval_status"),
        options.get("label"),
    )


class PaiVersionListing(TypedDict, total=False):
    """The options of a whole ListModelVersions listing (``list_model_versions`` of the hook and its spec)."""

    approval_status: str | ApprovalStatus | None
    version_name: str | None
    label_filter: str | None
    format_type: str | None
    framework_type: str | None
    source_type: str | None
    source_id: str | None
    #: ``DESC`` (default) or ``ASC`` by creation time
    order: str
    max_results: int | None
    page_size: int
    concurrency: int


def list_model_versions_spec(
    model_id: str, **options: Unpack[PaiVersionListing]
) -> ListSpec[PaiModelVersion, Listing[PaiModelVersion]]:
    """ListModelVersions over every page (the options of ``list_model_versions``)."""
    known_options(options, PaiVersionListing, "list_model_versions")
    path = _version_path(check_pai_model_id(model_id))
    version_name = options.get("version_name")
    query = {  # in the SDK's order; None: not sent
        "ApprovalStatus": _status_value(options.get("approval_status")),
        "FormatType": options.get("format_type"),
        "FrameworkType": options.get("framework_type"),
        "Label": options.get("label_filter"),
        "Order": check_order(options.get("order", "DESC")),
        "SortBy": "GmtCreateTime",
        "SourceId": options.get("source_id"),
        "SourceType": options.get("source_type"),
        "VersionName": None if version_name is None else check_pai_version_name(version_name),
    }
    params = [(name, str(value)) for name, value in query.items() if value is not None]
    size = check_pai_page_size(options.get("page_size", 100))

    def page(index: int) -> RequestSpec[PageAnswer[PaiModelVersion]]:
        return _pai("ListModelVersions", "GET", path, _versions_answer, query=_page_query(params, index, size))

    return ListSpec(
        page,
        _version_key,
        Listing,
        size,
        max_results=check_max_results(options.get("max_results")),
        concurrency=options.get("concurrency", 8),
    )


class PaiModelListing(TypedDict, total=False):
    """The options of a whole ListModels listing (``list_models`` of the hook and its spec)."""

    #: None: the connection's ``workspace_id`` (None there too: every workspace the credentials see)
    workspace_id: str | None
    name_filter: str | None
    label_filter: str | None
    provider: str | None
    #: ``DESC`` (default) or ``ASC`` by creation time
    order: str
    max_results: int | None
    page_size: int


def list_models_spec(
    default_workspace: str | None, **options: Unpack[PaiModelListing]
) -> ListSpec[PaiModel, Listing[PaiModel]]:
    """ListModels over every page."""
    known_options(options, PaiModelListing, "list_models")
    query = {  # in the SDK's order; None: not sent
        "Order": check_order(options.get("order", "DESC")),
        "SortBy": "GmtCreateTime",
        "Label": options.get("label_filter"),
        "ModelName": options.get("name_filter"),
        "Provider": options.get("provider"),
        "WorkspaceId": options.get("workspace_id") or default_workspace,
    }
    params = [(name, value) for name, value in query.items() if value is not None]
    size = check_pai_page_size(options.get("page_size", 100))

    def page(index: int) -> RequestSpec[PageAnswer[PaiModel]]:
        return _pai("ListModels", "GET", "/api/v1/models", _models_answer, query=_page_query(params, index, size))

    return ListSpec(page, _model_key, Listing, size, max_results=check_max_results(options.get("max_results")))
