"""Request specs of the Fabric registry's lifecycle writes (:mod:`airflow_provider_modelreg.hooks.specs`): define a
model with its first version (CreateModelDefinition), add a version or move the current one (UpdateModelDefinition),
delete a version, and read one model back (ListModels filtered by ``id``: Fabric has no ShowModel).

Every field is checked before anything is sent, with the documented rules (names of Chinese characters, letters,
digits, ``_``, ``-``, ``.`` and space; an ``obs://bucket/key`` model path; version ids of 32-36 letters, digits and
hyphens); the body is the SDK's (``huaweicloudsdkdataartsfabric`` 3.1.219): its keys in its order, ``json.dumps``
with its default separators and ASCII escapes.

Fabric creates versions asynchronously: a version shows in ListModelVersions once it is done. The SDK's
``ModelVersionInfo`` has no status field although the API documents failed versions (which cannot become
current): :func:`version_failed` reads a ``status`` the service may add (``FAILED``, ``CREATE_FAILED`` ...), the
emulator's way of showing a failed version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

import httpx
from pydantic import Field

from airflow_provider_modelreg.auth import percent_encode
from airflow_provider_modelreg.errors import RegistryInputError, RegistryNotFoundError, RegistryResponseError
from airflow_provider_modelreg.hooks.fabric_specs import _target
from airflow_provider_modelreg.hooks.pai_lifecycle import _text
from airflow_provider_modelreg.hooks.specs import RequestSpec, known_options, parsed_as, request_id
from airflow_provider_modelreg.lineage import object_location
from airflow_provider_modelreg.models import FabricModel, FabricModelPage, FabricModelVersion, _Wire
from airflow_provider_modelreg.validation import check_fabric_id, check_fabric_version_id

if TYPE_CHECKING:
    from airflow_provider_modelreg.transport import RegistryTransport

__all__ = [
    "MODEL_TYPES",
    "FabricModelCreated",
    "FabricModelUpdate",
    "FabricNewModel",
    "create_model_spec",
    "delete_version_spec",
    "get_model_spec",
    "pick_registered",
    "update_model_spec",
    "version_failed",
]

#: CreateModelDefinition's ``type`` values.
MODEL_TYPES = ("LLM_MODEL",)
#: Model and version names: Chinese characters, letters, digits, ``_``, ``-``, ``.`` and space, 1-64.
_NAME = re.compile(r"[0-9A-Za-z_\u4e00-\u9fff. -]{1,64}")
_BASE_MODEL_TYPE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class FabricModelCreated(_Wire):
    """CreateModelDefinition's answer: the model id and its first version's id."""

    id: str
    version_id: str | None = None
    request_id: str | None = Field(default=None, exclude=True)


class FabricNewVersion(TypedDict, total=False):
    """A new version (``ModelVersionInput``): all three of name, path and base model type, or none."""

    version_name: str | None
    #: ``obs://bucket/key`` of the weights
    model_path: str | None
    #: as ListBaseModels names it, e.g. ``QWEN_2_72B``
    base_model_type: str | None
    version_description: str | None


class FabricNewModel(FabricNewVersion, total=False):
    """The fields of CreateModelDefinition besides the model name (the version's three are required)."""

    description: str | None
    #: ``LLM_MODEL`` (default, the only type)
    model_type: str


class FabricModelUpdate(FabricNewVersion, total=False):
    """The fields of UpdateModelDefinition: a new version, the current version, a new name or description."""

    name: str | None
    description: str | None
    current_version_id: str | None


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or _NAME.fullmatch(value) is None or not value.strip():
        raise RegistryInputError(
            field, "must be 1-64 of Chinese characters, letters, digits, '_', '-', '.' and space", value
        )
    return value


def _model_path(value: Any) -> str:
    path = _text(value, "model_path", required=True)
    assert path is not None
    try:
        location = object_location(path)
    except ValueError as exc:
        raise RegistryInputError("model_path", str(exc), path) from None
    if location is None or location.scheme != "obs" or not location.key:
        raise RegistryInputError("model_path", "must be an OBS location, obs://bucket/key", path)
    return path


def _version(fields: FabricNewVersion, *, required: bool) -> dict[str, Any] | None:
    """``ModelVersionInput`` in the SDK's key order; None when no version is given (and none is required)."""
    given = {key: fields.get(key) for key in ("version_name", "model_path", "base_model_type")}
    if not required and all(value is None for value in given.values()) and fields.get("version_description") is None:
        return None
    for key, value in given.items():
        if value is None:
            raise RegistryInputError(key, "is required for a new version (version_name, model_path, base_model_type)")
    base = given["base_model_type"]
    if not isinstance(base, str) or _BASE_MODEL_TYPE.fullmatch(base) is None:
        raise RegistryInputError("base_model_type", "must be 1-64 of letters, digits, '_', '.' and '-'", base)
    version = {
        "name": _name(given["version_name"], "version_name"),
        "description": _text(fields.get("version_description"), "version_description"),
        "config": {"llm_model_config": {"base_model_type": base, "model_path": _model_path(given["model_path"])}},
    }
    return {key: value for key, value in version.items() if value is not None}


def _body(body: dict[str, Any]) -> bytes:
    """The SDK's encoding: ``json.dumps`` defaults (``", "``, ``": "``, ASCII escapes), None fields left out."""
    return json.dumps({key: value for key, value in body.items() if value is not None}).encode()


def _models_path(workspace: str, model_id: str | None = None) -> str:
    path = f"/v1/workspaces/{percent_encode(workspace)}/models"
    return path if model_id is None else f"{path}/{percent_encode(check_fabric_id(model_id, 'model_id'))}"


def _created(transport: RegistryTransport, response: httpx.Response) -> FabricModelCreated:
    created = transport.parse(response, FabricModelCreated)
    created.request_id = transport.request_id(response)
    return created


def create_model_spec(workspace: str, name: str, **fields: Unpack[FabricNewModel]) -> RequestSpec[FabricModelCreated]:
    """CreateModelDefinition: a model and its first version. Sent once (a second POST would be refused on the
    name, or define a second model)."""
    known_options(fields, FabricNewModel, "create_model")
    model_type = fields.get("model_type", "LLM_MODEL")
    if model_type not in MODEL_TYPES:
        raise RegistryInputError("model_type", f"must be one of {', '.join(MODEL_TYPES)}", model_type)
    body = {
        "name": _name(name, "name"),
        "description": _text(fields.get("description"), "description"),
        "type": model_type,
        "version": _version(fields, required=True),
    }
    return RequestSpec(
        "CreateModelDefinition", "POST", _models_path(workspace), _created, body=_body(body), idempotent=False
    )


def update_model_spec(workspace: str, model_id: str, **fields: Unpack[FabricModelUpdate]) -> RequestSpec[FabricModel]:
    """UpdateModelDefinition. With a version: sent once (a repeat registers a second version); without one
    (name, description, current version only): retried like a GET, setting a value twice is harmless."""
    known_options(fields, FabricModelUpdate, "update_model")
    name, current = fields.get("name"), fields.get("current_version_id")
    version = _version(fields, required=False)
    body = {
        "name": None if name is None else _name(name, "name"),
        "description": _text(fields.get("description"), "description"),
        "current_version_id": None if current is None else check_fabric_version_id(current, "current_version_id"),
        "version": version,
    }
    if all(value is None for value in body.values()):
        raise RegistryInputError("version_name", "give a new version, current_version_id, name or description")
    path = _models_path(workspace, model_id)
    return RequestSpec(
        "UpdateModelDefinition", "PUT", path, parsed_as(FabricModel), body=_body(body), idempotent=version is None
    )


def delete_version_spec(workspace: str, model_id: str, version_id: str) -> RequestSpec[str | None]:
    """DeleteModelVersion (a repeat finds nothing to delete: retried like a GET); returns the request id."""
    path = f"{_models_path(workspace, model_id)}/versions/{percent_encode(check_fabric_version_id(version_id))}"
    return RequestSpec("DeleteModelVersion", "DELETE", path, request_id, idempotent=True)


def get_model_spec(workspace: str, model_id: str) -> RequestSpec[FabricModel]:
    """One model, read through ListModels filtered by ``id`` (Fabric has no ShowModel)."""
    checked = check_fabric_id(model_id, "model_id")

    def one(transport: RegistryTransport, response: httpx.Response) -> FabricModel:
        models = [m for m in transport.parse(response, FabricModelPage).models if m.id == checked]
        request = transport.request_id(response)
        if not models:
            raise RegistryNotFoundError(
                status_code=404, code=None, message=f"workspace {workspace} has no model {checked}", request_id=request
            )
        if len(models) > 1:
            raise RegistryResponseError(
                field="models[].id",
                problem=f"{len(models)} models with id {checked}",
                request_id=request,
                status_code=response.status_code,
            )
        return models[0]

    return RequestSpec("ListModels", "GET", _target(_models_path(workspace), [("id", checked)]), one)


def version_failed(version: FabricModelVersion) -> str | None:
    """The status of a version whose creation failed (``FAILED``, ``CREATE_FAILED`` ...), else None."""
    status = (version.model_extra or {}).get("status")
    return status if isinstance(status, str) and status.upper().endswith("FAILED") else None


def pick_registered(versions: Sequence[FabricModelVersion], name: str, model_path: str) -> FabricModelVersion | None:
    """The version named ``name`` with the weights at ``model_path`` (newest first in ``versions``): one that did not
    fail wins over failed ones; None when none is listed."""
    mine = [v for v in versions if v.name == name and v.model_path == model_path]
    good = [v for v in mine if version_failed(v) is None]
    candidates = good or mine
    return candidates[0] if candidates else None
