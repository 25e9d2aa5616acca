"""Request specs of the PAI registry's lifecycle writes (:mod:`airflow_provider_modelreg.hooks.specs`): register a
version, add and remove version labels. Every field is checked before anything is sent, with the API's documented
limits (VersionName pattern, ``Metrics`` at most 8,192 bytes, label keys and values at most 128 bytes without ``=``
or ``,``); the body is the SDK's (``alibabacloud-aiworkspace20210204`` 8.3.5): its keys in its order, compact JSON."""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict, Unpack

from pydantic import Field

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.pai_specs import _pai, _version_path
from airflow_provider_modelreg.hooks.specs import RequestSpec, known_options, parsed_as, request_id
from airflow_provider_modelreg.models import ApprovalStatus, _Wire
from airflow_provider_modelreg.validation import (
    MAX_PAI_LABEL_BYTES,
    PLACEHOLDERS,
    check_pai_approval_status,
    check_pai_label_part,
    check_pai_model_id,
    check_pai_version_name,
)

__all__ = [
    "MAX_METRICS_BYTES",
    "PaiNewVersion",
    "PaiVersionCreated",
    "create_model_version_spec",
    "create_version_labels_spec",
    "delete_version_labels_spec",
    "label_list",
]

#: CreateModelVersion's limit on ``Metrics`` (its JSON, in bytes).
MAX_METRICS_BYTES = 8192
#: Label keys and values: at most this many bytes (UTF-8).
MAX_LABEL_BYTES = MAX_PAI_LABEL_BYTES
#: VersionName of a new version (the API's pattern): ``1.2.3`` or ``1.2.3_suffix``.
NEW_VERSION_NAME = re.compile(r"\d+\.\d+\.\d+(?:_\w+)?", re.ASCII)
SOURCE_TYPES = ("Custom", "PAIFlow", "TrainingService")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PaiNewVersion(TypedDict, total=False):
    """The fields of a new version (CreateModelVersion) besides ``Uri``."""

    #: ``^\\d+\\.\\d+\\.\\d+(_\\w+)?$``; None: the registry picks the next minor version
    version_name: str | None
    approval_status: str | ApprovalStatus | None
    format_type: str | None
    framework_type: str | None
    inference_spec: dict[str, Any] | None
    labels: dict[str, str] | None
    #: at most 8,192 bytes of JSON
    metrics: dict[str, Any] | None
    options: str | None
    source_type: str | None
    source_id: str | None
    extra_info: dict[str, Any] | None
    version_description: str | None


class PaiVersionCreated(_Wire):
    """CreateModelVersion's answer."""

    version_name: str = Field(alias="VersionName")
    request_id: str | None = Field(default=None, alias="RequestId")


def _text(value: Any, field: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or value in PLACEHOLDERS:
        raise RegistryInputError(field, "must be a non-empty string, not a placeholder such as 'None'", value)
    if _CONTROL.search(value):
        raise RegistryInputError(field, "must not contain control characters", value)
    return value


def _object(value: Any, field: str, limit: int | None = None) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RegistryInputError(field, "must be a JSON object (a dict)", type(value).__name__)
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise RegistryInputError(field, f"must be JSON: {exc}") from None
    if limit is not None and size > limit:
        raise RegistryInputError(field, f"is {size:,} bytes of JSON, more than the API's {limit:,}")
    return value


def _label_part(value: Any, field: str) -> str:
    return check_pai_label_part(value, field)


def label_list(labels: Any, field: str = "labels") -> list[dict[str, str]]:
    """``{key: value}`` as the API's ``[{"Key": k, "Value": v}]``, each key and value checked."""
    if not isinstance(labels, dict):
        raise RegistryInputError(field, "must be a dict of label keys to values", type(labels).__name__)
    return [
        {"Key": _label_part(k, f"{field} key"), "Value": _label_part(v, f"{field}[{k}]")} for k, v in labels.items()
    ]


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def create_model_version_spec(
    model_id: str, uri: str, **fields: Unpack[PaiNewVersion]
) -> RequestSpec[PaiVersionCreated]:
    """CreateModelVersion. Not retried after a request that may have arrived: a second POST would fail on the name
    or make a second version (the operator finds the first one instead)."""
    known_options(fields, PaiNewVersion, "create_model_version")
    name = fields.get("version_name")
    if name is not None and NEW_VERSION_NAME.fullmatch(check_pai_version_name(name)) is None:
        raise RegistryInputError("version_name", "must match ^\\d+\\.\\d+\\.\\d+(_\\w+)?$ (e.g. 1.2.0)", name)
    status = fields.get("approval_status")
    source_type = fields.get("source_type")
    if source_type is not None and source_type not in SOURCE_TYPES:
        raise RegistryInputError("source_type", f"must be one of {', '.join(SOURCE_TYPES)}", source_type)
    labels = fields.get("labels")
    body = {  # the SDK's keys, in its order; None: not sent
        "ApprovalStatus": None if status is None else check_pai_approval_status(status).value,
        "ExtraInfo": _object(fields.get("extra_info"), "extra_info"),
        "FormatType": _text(fields.get("format_type"), "format_type"),
        "FrameworkType": _text(fields.get("framework_type"), "framework_type"),
        "InferenceSpec": _object(fields.get("inference_spec"), "inference_spec"),
        "Labels": None if labels is None else label_list(labels),
        "Metrics": _object(fields.get("metrics"), "metrics", MAX_METRICS_BYTES),
        "Options": _text(fields.get("options"), "options"),
        "SourceId": _text(fields.get("source_id"), "source_id"),
        "SourceType": source_type,
        "Uri": _text(uri, "uri", required=True),
        "VersionDescription": _text(fields.get("version_description"), "version_description"),
        "VersionName": name,
    }
    sent = {key: value for key, value in body.items() if value is not None}
    path = _version_path(check_pai_model_id(model_id))
    return _pai("CreateModelVersion", "POST", path, parsed_as(PaiVersionCreated), body=_json(sent), idempotent=False)


def create_version_labels_spec(model_id: str, version_name: str, labels: dict[str, str]) -> RequestSpec[str | None]:
    """CreateModelVersionLabels (adding a label a version has sets its value again: retried like a GET)."""
    path = _version_path(check_pai_model_id(model_id), check_pai_version_name(version_name)) + "/labels"
    body = _json({"Labels": label_list(labels)})
    return _pai("CreateModelVersionLabels", "POST", path, request_id, body=body, idempotent=True)


def delete_version_labels_spec(model_id: str, version_name: str, keys: list[str]) -> RequestSpec[str | None]:
    """DeleteModelVersionLabels of ``keys`` (removing an absent label is harmless: retried like a GET)."""
    path = _version_path(check_pai_model_id(model_id), check_pai_version_name(version_name)) + "/labels"
    if not keys:
        raise RegistryInputError("keys", "name at least one label key")
    checked = ",".join(_label_part(key, "label key") for key in keys)
    return _pai("DeleteModelVersionLabels", "DELETE", path, request_id, query=[("LabelKeys", checked)], idempotent=True)
