"""Request specs of DataArts Fabric EP service instances (:mod:`airflow_provider_modelreg.hooks.specs`): deploy a
model version on an endpoint (DeployServiceInstance), read one instance (ShowServiceInstanceDetail), swap its
version or scale it (UpdateServiceInstance), delete it (DeleteServiceInstance) and list instances
(ListServicesInstances filtered by ``source_id``, ``version_id``, ``endpoint_id``, ``name``).

Every field is checked before anything is sent with the SDK's documented rules (``huaweicloudsdkdataartsfabricep``
3.1.219: names of Chinese characters, letters, digits, ``_``, ``-``, ``.`` and space; version ids of 32-36 letters,
digits and hyphens; ``max`` 1-1000); the body is the SDK's: its keys in its order (``ServiceInstanceInput``:
``source``, ``name``, ``description``, ``endpoint_id``, ``config``), ``json.dumps`` with its default separators.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import httpx

from airflow_provider_modelreg.auth import percent_encode
from airflow_provider_modelreg.deploy import FabricInstanceOptions
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.fabric_ep_models import FabricEpCreated, FabricEpInstance, FabricEpInstancePage
from airflow_provider_modelreg.hooks.base import Listing
from airflow_provider_modelreg.hooks.fabric_lifecycle import _body, _name
from airflow_provider_modelreg.hooks.fabric_specs import _target
from airflow_provider_modelreg.hooks.pai_lifecycle import _text
from airflow_provider_modelreg.hooks.specs import (
    ListSpec,
    PageAnswer,
    RequestSpec,
    known_options,
    parsed_as,
    request_id,
)
from airflow_provider_modelreg.validation import check_fabric_id, check_fabric_limit, check_fabric_version_id

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "FabricEpFilter",
    "FabricEpUpdate",
    "delete_instance_spec",
    "deploy_instance_body",
    "deploy_instance_spec",
    "list_instances_spec",
    "show_instance_spec",
    "update_instance_spec",
]

#: ``spec_code``: a resource specification as the spec list names it
_SPEC_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
#: ``ResourceDemand.max``: 1-1000
MAX_INSTANCES = 1000


class FabricEpFilter(TypedDict, total=False):
    """ListServicesInstances filters."""

    source_id: str | None
    version_id: str | None
    endpoint_id: str | None
    #: fuzzy, as the API documents
    name: str | None


class FabricEpUpdate(TypedDict, total=False):
    """UpdateServiceInstance's changes: a new ``source`` (``model_id`` and ``version_id`` together), a name, a
    description, ``max_instances`` (``resource.max``)."""

    model_id: str | None
    version_id: str | None
    name: str | None
    description: str | None
    max_instances: int | None


def _count(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RegistryInputError(field, f"must be an integer in [{low}, {high}]", value)
    return value


def _spec_code(value: Any) -> str:
    if not isinstance(value, str) or _SPEC_CODE.fullmatch(value) is None:
        raise RegistryInputError("spec_code", "must be 1-128 of letters, digits, '_', '.', ':' and '-'", value)
    return value


def _instances_path(workspace: str, instance_id: str | None = None) -> str:
    path = f"/v1/workspaces/{percent_encode(check_fabric_id(workspace, 'workspace_id'))}/services/instances"
    return path if instance_id is None else f"{path}/{percent_encode(check_fabric_id(instance_id, 'instance_id'))}"


def _source(model_id: str, version_id: str) -> dict[str, str]:
    return {"id": check_fabric_id(model_id, "model_id"), "version_id": check_fabric_version_id(version_id)}


def deploy_instance_body(
    *, name: str, model_id: str, version_id: str, endpoint_id: str, **options: Unpack[FabricInstanceOptions]
) -> dict[str, Any]:
    """The DeployServiceInstance body (``ServiceInstanceInput``, the SDK's key order, None fields left out).

    :param name: the instance's name.
    :param model_id: the model (``source.id``).
    :param version_id: its version (``source.version_id``).
    :param endpoint_id: the endpoint to deploy on.
    :param spec_code: the resource specification (``config.model_instance_config.resource.spec_code``).
    :param min_instances: ``resource.min`` (0 to ``max_instances``).
    :param max_instances: ``resource.max`` (1-1000).
    :param description: a description.
    """
    known_options(options, FabricInstanceOptions, "deploy_instance_body")
    high = _count(options.get("max_instances", 1), "max_instances", 1, MAX_INSTANCES)
    spec_code = options.get("spec_code")
    resource = {
        "min": _count(options.get("min_instances", 1), "min_instances", 0, high),
        "max": high,
        "spec_code": None if spec_code is None else _spec_code(spec_code),
    }
    body = {
        "source": _source(model_id, version_id),
        "name": _name(name, "name"),
        "description": _text(options.get("description"), "description"),
        "endpoint_id": check_fabric_id(endpoint_id, "endpoint_id"),
        "config": {"model_instance_config": {"resource": {k: v for k, v in resource.items() if v is not None}}},
    }
    return {key: value for key, value in body.items() if value is not None}


def _created(transport: RegistryTransport, response: httpx.Response) -> FabricEpCreated:
    created = transport.parse(response, FabricEpCreated)
    created.request_id = transport.request_id(response)
    return created


def deploy_instance_spec(workspace: str, body: dict[str, Any]) -> RequestSpec[FabricEpCreated]:
    """DeployServiceInstance of a body from :func:`deploy_instance_body`. Sent once (a second POST deploys a second
    instance): a lost answer is resolved by listing, not by a repeat."""
    return RequestSpec(
        "DeployServiceInstance", "POST", _instances_path(workspace), _created, body=_body(body), idempotent=False
    )


def show_instance_spec(workspace: str, instance_id: str) -> RequestSpec[FabricEpInstance]:
    """ShowServiceInstanceDetail (a missing instance: 404)."""
    return RequestSpec(
        "ShowServiceInstanceDetail", "GET", _instances_path(workspace, instance_id), parsed_as(FabricEpInstance)
    )


def update_instance_spec(
    workspace: str, instance_id: str, **changes: Unpack[FabricEpUpdate]
) -> RequestSpec[FabricEpCreated]:
    """UpdateServiceInstance: swap the served version (``source``), rename, describe, or scale (``resource.max``).
    Setting a value twice is harmless: retried like a GET."""
    known_options(changes, FabricEpUpdate, "update_instance")
    model_id, version_id = changes.get("model_id"), changes.get("version_id")
    name, max_instances = changes.get("name"), changes.get("max_instances")
    if (model_id is None) != (version_id is None):
        raise RegistryInputError("version_id", "give both model_id and version_id to swap the version")
    config = None
    if max_instances is not None:
        resource = {"max": _count(max_instances, "max_instances", 1, MAX_INSTANCES)}
        config = {"model_instance_config": {"resource": resource}}
    body = {
        "source": None if model_id is None or version_id is None else _source(model_id, version_id),
        "name": None if name is None else _name(name, "name"),
        "description": _text(changes.get("description"), "description"),
        "config": config,
    }
    if all(value is None for value in body.values()):
        raise RegistryInputError("version_id", "give a version, a name, a description or max_instances")
    path = _instances_path(workspace, instance_id)
    return RequestSpec("UpdateServiceInstance", "PUT", path, _created, body=_body(body), idempotent=True)


def delete_instance_spec(workspace: str, instance_id: str) -> RequestSpec[str | None]:
    """DeleteServiceInstance (a repeat finds nothing to delete: retried like a GET); returns the request id."""
    return RequestSpec(
        "DeleteServiceInstance", "DELETE", _instances_path(workspace, instance_id), request_id, idempotent=True
    )


def _page_answer(transport: RegistryTransport, response: httpx.Response) -> PageAnswer[FabricEpInstance]:
    page = transport.parse(response, FabricEpInstancePage)
    return page.service_instances, page.total


def _instance_id(instance: FabricEpInstance) -> str:
    return instance.id


def _filters(filters: FabricEpFilter) -> list[tuple[str, str]]:
    known_options(filters, FabricEpFilter, "list_instances")
    params: list[tuple[str, str]] = []
    for key in ("source_id", "version_id", "endpoint_id", "name"):
        value = filters.get(key)
        if value is None:
            continue
        if key == "version_id":
            params.append((key, check_fabric_version_id(value)))
        elif key == "name":
            params.append((key, _name(value, "name")))
        else:
            params.append((key, check_fabric_id(value, key)))
    return params


def list_instances_spec(
    workspace: str, filters: FabricEpFilter, *, max_results: int | None = None, page_size: int = 100
) -> ListSpec[FabricEpInstance, Listing[FabricEpInstance]]:
    """ListServicesInstances over every page (``limit`` 1-100, ``offset``), filtered."""
    size = check_fabric_limit(page_size, "page_size")
    params = _filters(filters)
    path = _instances_path(workspace)

    def page(index: int) -> RequestSpec[PageAnswer[FabricEpInstance]]:
        query = [("limit", str(size)), ("offset", str(index * size)), *params]
        return RequestSpec("ListServicesInstances", "GET", _target(path, query), _page_answer)

    return ListSpec(
        page, _instance_id, Listing, size, max_results=max_results, total_field="total", page_field="offset"
    )
