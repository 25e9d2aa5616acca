"""The request specs of PAI-EAS (API 2021-07-01, :mod:`airflow_provider_modelreg.hooks.specs`): one builder per
operation, every argument validated before anything is sent, each request shaped as ``alibabacloud-eas20210701``
7.0.0 sends it (ROA under ``/api/v2/services``; the ``ClusterId`` path parameter is the region id; a JSON
``Labels``/``Label`` map travels in the query as ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))``).
:class:`~airflow_provider_modelreg.hooks.eas.PaiEasHook` runs them.

Every answer that carries a service registers its ``AccessToken`` (and a ``token`` in its ``ServiceConfig``) with
Airflow's secrets masker as it is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypedDict, Unpack, get_args

import httpx

from airflow_provider_modelreg.auth import percent_encode
from airflow_provider_modelreg.eas_models import (
    EasAnswer,
    EasEventPage,
    EasPage,
    EasSafetyLock,
    EasService,
    EasServiceStatus,
    EasServiceVersion,
    EasTrafficState,
    EasUpdateType,
)
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.base import Listing, mask_secrets
from airflow_provider_modelreg.hooks.pai_specs import _page_query, _pai
from airflow_provider_modelreg.hooks.specs import ListSpec, PageAnswer, RequestSpec, known_options, parsed_as
from airflow_provider_modelreg.validation import (
    check_eas_id,
    check_eas_int,
    check_eas_labels,
    check_eas_text,
    check_max_results,
)

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "EAS_SERVICES_PATH",
    "EasCreateOptions",
    "EasEventQuery",
    "EasServiceQuery",
    "create_service_spec",
    "delete_service_spec",
    "describe_service_events_spec",
    "describe_service_spec",
    "list_service_versions_spec",
    "list_services_spec",
    "release_service_spec",
    "update_service_safety_lock_spec",
    "update_service_spec",
    "update_service_version_spec",
]

EAS_SERVICES_PATH = "/api/v2/services"


class EasCreateOptions(TypedDict, total=False):
    """CreateService's query parameters.

    :param labels: service labels (the ``Labels`` query parameter, a JSON map).
    :param workspace_id: the workspace (``WorkspaceId``).
    :param develop: development mode (``Develop``).
    """

    labels: Mapping[str, str] | None
    workspace_id: str | None
    develop: bool | None


class EasEventQuery(TypedDict, total=False):
    """DescribeServiceEvent's filters and page.

    :param event_type: ``Normal`` or ``Warning``.
    :param instance_name: one instance's events.
    :param start_time: from (UTC, as EAS spells times).
    :param end_time: until.
    :param page: 0-based page index.
    :param page_size: 1-100 (default 100).
    """

    event_type: str | None
    instance_name: str | None
    start_time: str | None
    end_time: str | None
    page: int
    page_size: int


class EasServiceQuery(TypedDict, total=False):
    """ListServices' filters and limits.

    :param label: services carrying every one of these labels (the ``Label`` filter, a JSON map).
    :param service_name: exact name.
    :param group_name: the service group.
    :param status: a :class:`~airflow_provider_modelreg.eas_models.EasServiceStatus` value.
    :param workspace_id: the workspace.
    :param name_filter: ``Filter``: fuzzy match on the service name.
    :param order: ``asc`` or ``desc`` (the server's default: desc).
    :param sort: the sort field (the server's default: creation time).
    :param max_results: stop after this many services (None: all).
    :param page_size: 1-100 (default 100).
    """

    label: Mapping[str, str] | None
    service_name: str | None
    group_name: str | None
    status: str | EasServiceStatus | None
    workspace_id: str | None
    name_filter: str | None
    order: str | None
    sort: str | None
    max_results: int | None
    page_size: int


def _json(value: Any) -> str:
    """JSON as the SDK writes it (``Util.to_jsonstring``): compact, non-ASCII kept."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _service_path(region: str, service_name: str, tail: str = "") -> str:
    region = check_eas_id(region, "region")
    name = check_eas_id(service_name, "service_name")
    return f"{EAS_SERVICES_PATH}/{percent_encode(region)}/{percent_encode(name)}{tail}"


def _config_body(config: Any, field: str) -> bytes:
    """A service config (a mapping) as the JSON body; its values are the caller's (EAS checks them)."""
    if not isinstance(config, Mapping) or not config:
        raise RegistryInputError(field, "must be a non-empty mapping (the service JSON)", config)
    try:
        return _json(dict(config)).encode()
    except (TypeError, ValueError) as exc:
        raise RegistryInputError(field, f"must be JSON-serialisable ({exc})") from None


def _labels_json(labels: Any, field: str) -> str:
    return _json(check_eas_labels(dict(labels) if isinstance(labels, Mapping) else labels, field))


def _mask_service(service: EasService) -> EasService:
    for secret in (service.access_token, service.config_token):
        if secret is not None:
            mask_secrets(secret.get_secret_value())
    return service


def _described(transport: RegistryTransport, response: httpx.Response) -> EasService:
    return _mask_service(transport.parse(response, EasService))


def _services_answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[EasService]:
    page = transport.parse(response, EasPage)
    for service in page.services:
        _mask_service(service)
    return page.services, page.total_count


def _versions_answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[EasServiceVersion]:
    page = transport.parse(response, EasPage)
    return page.versions, page.total_count


def _service_key(service: EasService) -> str:
    return service.service_name


def _version_key(version: EasServiceVersion) -> int:
    return version.image_id


def _choice(value: Any, field: str, allowed: Any) -> str:
    """``value`` (a string or a str enum member) when it is one of ``allowed`` (a ``Literal`` or a str enum)."""
    names = [getattr(item, "value", item) for item in (get_args(allowed) or allowed)]
    chosen = getattr(value, "value", value)
    if not isinstance(chosen, str) or chosen not in names:
        raise RegistryInputError(field, f"must be one of {', '.join(names)}", value)
    return chosen


def create_service_spec(service: Mapping[str, Any], **options: Unpack[EasCreateOptions]) -> RequestSpec[EasService]:
    """CreateService: ``POST /api/v2/services``, the service JSON as the body; ``Labels`` (a JSON map),
    ``WorkspaceId`` and ``Develop`` in the query (:class:`EasCreateOptions`). Not retried (a second create is not
    harmless).

    :param service: the service JSON; its ``name`` is checked as a service name.
    """
    known_options(options, EasCreateOptions, "create_service")
    body = _config_body(service, "service")
    check_eas_id(service.get("name"), "service.name", "service_name")
    query: list[tuple[str, str]] = []
    develop, labels, workspace_id = options.get("develop"), options.get("labels"), options.get("workspace_id")
    if develop is not None:
        if not isinstance(develop, bool):
            raise RegistryInputError("develop", "must be True or False", develop)
        query.append(("Develop", "true" if develop else "false"))
    if labels is not None:
        query.append(("Labels", _labels_json(labels, "labels")))
    if workspace_id is not None:
        query.append(("WorkspaceId", check_eas_id(workspace_id, "workspace_id")))
    return _pai("CreateService", "POST", EAS_SERVICES_PATH, _described, query=query, body=body)


def describe_service_spec(region: str, service_name: str) -> RequestSpec[EasService]:
    """DescribeService: ``GET /api/v2/services/{ClusterId}/{ServiceName}`` (the token masked as it is read)."""
    return _pai("DescribeService", "GET", _service_path(region, service_name), _described)


def update_service_spec(
    region: str,
    service_name: str,
    config: Mapping[str, Any],
    *,
    update_type: EasUpdateType = "merge",
) -> RequestSpec[EasAnswer]:
    """UpdateService: ``PUT .../{ServiceName}?UpdateType=merge|replace`` with the (partial) service JSON. Not
    retried: an update makes a new version."""
    path = _service_path(region, service_name)
    kind = _choice(update_type, "update_type", EasUpdateType)
    body = _config_body(config, "config")
    return _pai("UpdateService", "PUT", path, parsed_as(EasAnswer), query=[("UpdateType", kind)], body=body)


def update_service_version_spec(region: str, service_name: str, version: int) -> RequestSpec[EasAnswer]:
    """UpdateServiceVersion: ``PUT .../{ServiceName}/version`` ``{"Version": n}`` (a rollback to an earlier
    version; EAS refuses one not below the current). Retried: asking for the same version twice is harmless."""
    path = _service_path(region, service_name, "/version")
    body = _json({"Version": check_eas_int(version, "version")}).encode()
    return _pai("UpdateServiceVersion", "PUT", path, parsed_as(EasAnswer), body=body, idempotent=True)


def release_service_spec(
    region: str,
    service_name: str,
    *,
    traffic_state: EasTrafficState | None = None,
    weight: int | None = None,
) -> RequestSpec[EasAnswer]:
    """ReleaseService: ``PUT .../{ServiceName}/release`` ``{"TrafficState", "Weight"}`` (either or both): a
    service's share of its group's traffic. Retried: setting the same state twice is harmless."""
    path = _service_path(region, service_name, "/release")
    body: dict[str, Any] = {}
    if traffic_state is not None:
        body["TrafficState"] = _choice(traffic_state, "traffic_state", EasTrafficState)
    if weight is not None:
        body["Weight"] = check_eas_int(weight, "weight")
    if not body:
        raise RegistryInputError("traffic_state", "give traffic_state, weight or both")
    return _pai("ReleaseService", "PUT", path, parsed_as(EasAnswer), body=_json(body).encode(), idempotent=True)


def update_service_safety_lock_spec(region: str, service_name: str, lock: EasSafetyLock) -> RequestSpec[EasAnswer]:
    """UpdateServiceSafetyLock: ``PUT .../{ServiceName}/lock`` ``{"Lock": "all"|"dangerous"|"none"}``. Retried:
    setting the same lock twice is harmless."""
    path = _service_path(region, service_name, "/lock")
    body = _json({"Lock": _choice(lock, "lock", EasSafetyLock)}).encode()
    return _pai("UpdateServiceSafetyLock", "PUT", path, parsed_as(EasAnswer), body=body, idempotent=True)


def delete_service_spec(region: str, service_name: str) -> RequestSpec[EasAnswer]:
    """DeleteService: ``DELETE .../{ServiceName}``. Retried (a repeat finds it gone: a 404 the caller may
    tolerate)."""
    return _pai("DeleteService", "DELETE", _service_path(region, service_name), parsed_as(EasAnswer), idempotent=True)


def describe_service_events_spec(
    region: str, service_name: str, **query: Unpack[EasEventQuery]
) -> RequestSpec[EasEventPage]:
    """DescribeServiceEvent: one page of ``.../{ServiceName}/events`` (:class:`EasEventQuery`)."""
    known_options(query, EasEventQuery, "describe_service_events")
    path = _service_path(region, service_name, "/events")
    params: list[tuple[str, str]] = []
    event_type, page = query.get("event_type"), query.get("page", 0)
    if query.get("end_time") is not None:
        params.append(("EndTime", check_eas_text(query.get("end_time"), "end_time", 64)))
    if event_type is not None:
        if event_type not in ("Normal", "Warning"):
            raise RegistryInputError("event_type", "must be Normal or Warning", event_type)
        params.append(("EventType", event_type))
    if query.get("instance_name") is not None:
        params.append(("InstanceName", check_eas_text(query.get("instance_name"), "instance_name")))
    if isinstance(page, bool) or not isinstance(page, int) or page < 0:
        raise RegistryInputError("page", "must be an integer from 0", page)
    params += [("PageNum", str(page + 1)), ("PageSize", str(check_eas_int(query.get("page_size", 100), "page_size")))]
    if query.get("start_time") is not None:
        params.append(("StartTime", check_eas_text(query.get("start_time"), "start_time", 64)))
    return _pai("DescribeServiceEvent", "GET", path, parsed_as(EasEventPage), query=params)


#: ListServices' text filters: (query name, option, kind of check) in the SDK's (alphabetical) order
_SERVICE_FILTERS = (
    ("Filter", "name_filter", "text"),
    ("GroupName", "group_name", "text"),
    ("Label", "label", "labels"),
    ("Order", "order", "order"),
    ("ServiceName", "service_name", "service_name"),
    ("ServiceStatus", "status", "status"),
    ("Sort", "sort", "text"),
    ("WorkspaceId", "workspace_id", "workspace_id"),
)


def _service_filter(option: str, kind: str, value: Any) -> str:
    if kind == "text":
        return check_eas_text(value, option)
    if kind == "labels":
        return _labels_json(value, option)
    if kind == "status":
        return _choice(value, option, EasServiceStatus)
    if kind == "order":
        if value not in ("asc", "desc"):
            raise RegistryInputError(option, "must be asc or desc", value)
        return str(value)
    return check_eas_id(value, option, kind)


def list_services_spec(**query: Unpack[EasServiceQuery]) -> ListSpec[EasService, Listing[EasService]]:
    """ListServices over every page (:class:`EasServiceQuery`)."""
    known_options(query, EasServiceQuery, "list_services")
    given: dict[str, Any] = dict(query)
    params = [
        (name, _service_filter(option, kind, given[option]))
        for name, option, kind in _SERVICE_FILTERS
        if given.get(option) is not None
    ]
    size = check_eas_int(query.get("page_size", 100), "page_size")

    def page(index: int) -> RequestSpec[PageAnswer[EasService]]:
        return _pai("ListServices", "GET", EAS_SERVICES_PATH, _services_answer, query=_page_query(params, index, size))

    return ListSpec(page, _service_key, Listing, size, max_results=check_max_results(query.get("max_results")))


def list_service_versions_spec(
    region: str, service_name: str, *, max_results: int | None = None, page_size: int = 100
) -> ListSpec[EasServiceVersion, Listing[EasServiceVersion]]:
    """ListServiceVersions over every page (``ImageId`` is the version number)."""
    path = _service_path(region, service_name, "/versions")
    size = check_eas_int(page_size, "page_size")

    def page(index: int) -> RequestSpec[PageAnswer[EasServiceVersion]]:
        return _pai("ListServiceVersions", "GET", path, _versions_answer, query=_page_query([], index, size))

    return ListSpec(page, _version_key, Listing, size, max_results=check_max_results(max_results))
