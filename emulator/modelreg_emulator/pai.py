"""PAI AIWorkSpace 2021-02-04 model-registry operations (ROA paths under ``/api/v1/models``).

Behaviour pinned by the emulator:

* ListModelVersions: filters ``ApprovalStatus`` (case-insensitive), ``VersionName``, ``FormatType``,
  ``FrameworkType``, ``SourceType``, ``SourceId`` (exact) and ``Label`` (case-insensitive substring of a label key or
  value); ``PageNumber`` from 1 (default 1), ``PageSize`` 1-100 (default 10), ``SortBy`` ``GmtCreateTime`` only,
  ``Order`` ``ASC`` (default) or ``DESC``; ``TotalCount`` counts all matches. Anything else is ``InvalidParameter``.
  Ties in ``GmtCreateTime`` (to the millisecond) are served in seed order, then in the order versions were added;
  ``DESC`` is the exact reverse of ``ASC`` (see :mod:`~modelreg_emulator.store`).
* UpdateModelVersion: ``Approved`` and ``Rejected`` are terminal; changing them is ``400
  InvalidApprovalStatus.Terminal``, setting the value a version already has is a harmless 200.
* CreateModelVersion: ``VersionName`` optional (``1.0.<n>`` is generated), ``Uri`` required, status defaults to
  ``Pending``, ``GmtCreateTime`` is the server's now; a duplicate name is ``InvalidParameter``.
* ListModels: ``WorkspaceId``, ``ModelType``, ``Domain``, ``Task``, ``Origin``, ``Provider`` exact; ``ModelName``
  substring (exact when wrapped in double quotes); ``Label`` and ``Query`` substrings; paging and order as above.
  Every model carries its ``LatestVersion`` (the newest by ``GmtCreateTime``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from airflow_provider_modelreg.auth import _parse_query
from modelreg_emulator.store import (
    PaiModelState,
    PaiVersionState,
    SeedError,
    Store,
    iso_ms,
    normalise_status,
)
from modelreg_emulator.wire import Answer, ApiError, Req, ali_ok, dumps_object, raw_json

__all__ = ["match_pai"]

Handler = Callable[[Store, Req, list[str]], Answer]

_INT = re.compile(r"[0-9]{1,10}")
_OBJECT_FIELDS = (
    "CompressionSpec",
    "DistillationSpec",
    "EvaluationSpec",
    "ExtraInfo",
    "InferenceSpec",
    "Metrics",
    "TrainingSpec",
)
_STRING_FIELDS = ("Options", "SourceId", "SourceType", "VersionDescription")
_CREATE_STRING_FIELDS = (*_STRING_FIELDS, "FormatType", "FrameworkType", "Uri", "VersionName")


#: CreateModelVersion's VersionName pattern and Metrics limit; label keys and values (CreateModelVersionLabels)
_NEW_VERSION_NAME = re.compile(r"\d+\.\d+\.\d+(?:_\w+)?", re.ASCII)
_MAX_METRICS_BYTES = 8192
_MAX_LABEL_BYTES = 128


def _labels(value: Any) -> list[dict[str, str]]:
    """A ``Labels`` list as the API checks it: ``{Key, Value}`` strings, at most 128 bytes, no ``=`` or ``,``."""
    if not isinstance(value, list) or not all(isinstance(lb, dict) and "Key" in lb for lb in value):
        raise _invalid("The parameter Labels must be a list of {Key, Value} objects.")
    for label in value:
        for part in (label.get("Key"), label.get("Value", "")):
            if not isinstance(part, str) or len(part.encode()) > _MAX_LABEL_BYTES or "=" in part or "," in part:
                raise _invalid(f"The parameter Labels is invalid: {part!r} (at most 128 bytes, no '=' or ',').")
        if not label["Key"]:
            raise _invalid("The parameter Labels is invalid: an empty key.")
    return value


def _next_minor(model: PaiModelState) -> str:
    """The name PAI gives a version created without one: 0.1.0, then the highest version's minor + 1."""
    numbered = [
        tuple(int(n) for n in v.name.split("_")[0].split("."))
        for v in model.versions
        if _NEW_VERSION_NAME.fullmatch(v.name)
    ]
    if not numbered:
        return "0.1.0"
    major, minor, _ = max(numbered)
    return f"{major}.{minor + 1}.0"


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _params(req: Req) -> dict[str, str]:
    return dict(_parse_query(req.query, plus_is_space=True))


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw) or not low <= int(raw) <= high:
        raise _invalid(f"The parameter {name} is invalid: {raw!r} (expected an integer from {low} to {high}).")
    return int(raw)


def _order(params: dict[str, str]) -> bool:
    """True for descending."""
    sort_by = params.get("SortBy") or "GmtCreateTime"
    if sort_by != "GmtCreateTime":
        raise _invalid(f"The parameter SortBy is invalid: {sort_by!r} (only GmtCreateTime is supported).")
    order = (params.get("Order") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise _invalid(f"The parameter Order is invalid: {params.get('Order')!r} (ASC or DESC).")
    return order == "DESC"


def _page(items: list[Any], number: int, size: int, descending: bool) -> list[Any]:
    total = len(items)
    start = (number - 1) * size
    if start >= total:
        return []
    if descending:
        return items[max(total - start - size, 0) : total - start][::-1]
    return items[start : start + size]


def _model(store: Store, model_id: str) -> PaiModelState:
    model = store.pai_models.get(model_id)
    if model is None:
        raise ApiError(404, "InvalidModel.NotFound", f"The model {model_id} does not exist.")
    return model


def _version(model: PaiModelState, name: str) -> PaiVersionState:
    version = model.by_name.get(name)
    if version is None:
        raise ApiError(
            404, "InvalidModelVersion.NotFound", f"The version {name} of model {model.model_id} does not exist."
        )
    return version


def _with_request_id(json_object: str) -> Answer:
    """Splice a cached JSON object into a success answer that starts with ``RequestId``."""
    answer = ali_ok({})
    head = answer.body[:-1]  # '{"RequestId":"..."'
    rest = json_object[1:]
    answer.body = head + (b"," if rest != "}" else b"") + rest.encode("utf-8")
    return answer


def _body_object(req: Req) -> dict[str, Any]:
    try:
        body = json.loads(req.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise _invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    return body


# ------------------------------------------------------------------------------------------------- handlers


def list_model_versions(store: Store, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    number = _int(params, "PageNumber", 1, 1, 1_000_000_000)
    size = _int(params, "PageSize", 10, 1, 100)
    descending = _order(params)
    status = params.get("ApprovalStatus")
    wanted_status = normalise_status(status) if status else None
    if status and wanted_status is None:
        raise _invalid(f"The parameter ApprovalStatus is invalid: {status!r} (Pending, Approved or Rejected).")
    exact = {
        k: params[k] for k in ("VersionName", "FormatType", "FrameworkType", "SourceType", "SourceId") if params.get(k)
    }
    label = (params.get("Label") or "").lower()
    with store.lock:
        versions = _model(store, args[0]).versions
        if wanted_status or exact or label:

            def keep(v: PaiVersionState) -> bool:
                data = v.data
                if wanted_status and data.get("ApprovalStatus") != wanted_status:
                    return False
                if any(data.get(k) != val for k, val in exact.items()):
                    return False
                if label:
                    labels = data.get("Labels") or []
                    return any(
                        label in str(lb.get("Key", "")).lower() or label in str(lb.get("Value", "")).lower()
                        for lb in labels
                        if isinstance(lb, dict)
                    )
                return True

            versions = [v for v in versions if keep(v)]
        page = _page(versions, number, size, descending)
        encoded = "[" + ",".join(v.json() for v in page) + "]"
        total = len(versions)
    return ali_ok({"TotalCount": total, "Versions": raw_json(encoded)})


def get_model_version(store: Store, req: Req, args: list[str]) -> Answer:
    with store.lock:
        encoded = _version(_model(store, args[0]), args[1]).json()
    return _with_request_id(encoded)


def update_model_version(store: Store, req: Req, args: list[str]) -> Answer:
    body = _body_object(req)
    changes: dict[str, Any] = {}
    for name in _OBJECT_FIELDS:
        if name in body and body[name] is not None:
            if not isinstance(body[name], dict):
                raise _invalid(f"The parameter {name} must be a JSON object.")
            changes[name] = body[name]
    for name in _STRING_FIELDS:
        if name in body and body[name] is not None:
            if not isinstance(body[name], str):
                raise _invalid(f"The parameter {name} must be a string.")
            changes[name] = body[name]
    new_status = None
    if body.get("ApprovalStatus") is not None:
        new_status = normalise_status(body["ApprovalStatus"])
        if new_status is None:
            raise _invalid(
                f"The parameter ApprovalStatus is invalid: {body['ApprovalStatus']!r} (Pending, Approved or Rejected)."
            )
    with store.lock:
        version = _version(_model(store, args[0]), args[1])
        current = version.data.get("ApprovalStatus", "Pending")
        if new_status is not None and new_status != current and current in ("Approved", "Rejected"):
            raise ApiError(
                400,
                "InvalidApprovalStatus.Terminal",
                f"The approval status of version {args[1]} is {current}, which is terminal; it cannot change "
                f"to {new_status}.",
            )
        if new_status is not None:
            changes["ApprovalStatus"] = new_status
        if changes:
            version.data.update(changes)
            version.data["GmtModifiedTime"] = iso_ms(datetime.now(timezone.utc))
            version.touch()
    return ali_ok({})


def create_model_version(store: Store, req: Req, args: list[str]) -> Answer:
    body = _body_object(req)
    data: dict[str, Any] = {}
    for name in _OBJECT_FIELDS:
        if body.get(name) is not None:
            if not isinstance(body[name], dict):
                raise _invalid(f"The parameter {name} must be a JSON object.")
            data[name] = body[name]
    for name in _CREATE_STRING_FIELDS:
        if body.get(name) is not None:
            if not isinstance(body[name], str):
                raise _invalid(f"The parameter {name} must be a string.")
            data[name] = body[name]
    if body.get("Labels") is not None:
        data["Labels"] = _labels(body["Labels"])
    if not data.get("Uri"):
        raise _invalid("The parameter Uri is required.")
    if "VersionName" in data and not _NEW_VERSION_NAME.fullmatch(data["VersionName"]):
        raise _invalid(f"The parameter VersionName is invalid: {data['VersionName']!r} (^\\d+\\.\\d+\\.\\d+(_\\w+)?$).")
    if "Metrics" in data and len(json.dumps(data["Metrics"], separators=(",", ":")).encode()) > _MAX_METRICS_BYTES:
        raise _invalid("The parameter Metrics is too long (at most 8192 bytes).")
    if data.get("SourceType") not in (None, "Custom", "PAIFlow", "TrainingService"):
        raise _invalid(f"The parameter SourceType is invalid: {data['SourceType']!r}.")
    status = normalise_status(body.get("ApprovalStatus", "Pending"))
    if status is None:
        raise _invalid(f"The parameter ApprovalStatus is invalid: {body.get('ApprovalStatus')!r}.")
    data["ApprovalStatus"] = status
    now = iso_ms(datetime.now(timezone.utc))
    data["GmtCreateTime"] = data["GmtModifiedTime"] = now
    with store.lock:
        model = _model(store, args[0])
        if "VersionName" not in data:
            data["VersionName"] = _next_minor(model)
        if data["VersionName"] in model.by_name:
            raise _invalid(f"The version {data['VersionName']} of model {args[0]} already exists.")
        try:
            store.add_pai_version(args[0], data)
        except SeedError as exc:
            raise _invalid(f"The parameter {exc.path.removeprefix('$.')} is invalid: {exc.problem}") from None
    return ali_ok({"VersionName": data["VersionName"]})


def create_model_version_labels(store: Store, req: Req, args: list[str]) -> Answer:
    labels = _labels(_body_object(req).get("Labels"))
    with store.lock:
        version = _version(_model(store, args[0]), args[1])
        kept = [lb for lb in version.data.get("Labels") or [] if lb.get("Key") not in {n["Key"] for n in labels}]
        version.data["Labels"] = kept + [{"Key": lb["Key"], "Value": lb.get("Value", "")} for lb in labels]
        version.data["GmtModifiedTime"] = iso_ms(datetime.now(timezone.utc))
        version.touch()
    return ali_ok({})


def delete_model_version_labels(store: Store, req: Req, args: list[str]) -> Answer:
    keys = {k for k in _params(req).get("LabelKeys", "").split(",") if k}
    if not keys:
        raise _invalid("The parameter LabelKeys is required.")
    with store.lock:
        version = _version(_model(store, args[0]), args[1])
        version.data["Labels"] = [lb for lb in version.data.get("Labels") or [] if lb.get("Key") not in keys]
        version.data["GmtModifiedTime"] = iso_ms(datetime.now(timezone.utc))
        version.touch()
    return ali_ok({})


def _model_json(model: PaiModelState) -> dict[str, Any]:
    latest = model.latest()
    out: dict[str, Any] = dict(model.meta)
    if latest is not None:
        out["LatestVersion"] = raw_json(latest.json())
    return out


def get_model(store: Store, req: Req, args: list[str]) -> Answer:
    with store.lock:
        payload = _model_json(_model(store, args[0]))
    return ali_ok(payload)


def list_models(store: Store, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    number = _int(params, "PageNumber", 1, 1, 1_000_000_000)
    size = _int(params, "PageSize", 10, 1, 100)
    descending = _order(params)
    exact = {
        k: params[k] for k in ("WorkspaceId", "ModelType", "Domain", "Task", "Origin", "Provider") if params.get(k)
    }
    name = params.get("ModelName") or ""
    label = (params.get("Label") or "").lower()
    query = (params.get("Query") or "").lower()

    def keep(model: PaiModelState) -> bool:
        meta = model.meta
        if any(meta.get(k) != v for k, v in exact.items()):
            return False
        model_name = str(meta.get("ModelName") or "")
        if name.startswith('"') and name.endswith('"') and len(name) >= 2:
            if model_name != name[1:-1]:
                return False
        elif name and name.lower() not in model_name.lower():
            return False
        if label and not any(
            label in str(lb.get("Key", "")).lower() or label in str(lb.get("Value", "")).lower()
            for lb in meta.get("Labels") or []
            if isinstance(lb, dict)
        ):
            return False
        text = f"{model_name} {meta.get('ModelDescription') or ''}".lower()
        return not query or query in text

    with store.lock:
        models = sorted(
            (m for m in store.pai_models.values() if keep(m)),
            key=lambda m: (str(m.meta.get("GmtCreateTime") or ""), m.model_id),
        )
        page = _page(models, number, size, descending)
        encoded = [_model_json(m) for m in page]
        items = "[" + ",".join(dumps_object(m) for m in encoded) + "]"
    return ali_ok({"TotalCount": len(models), "Models": raw_json(items)})


# ------------------------------------------------------------------------------------------------- routing

_ROUTES: dict[tuple[int, str], tuple[str, Handler]] = {
    (0, "GET"): ("pai.ListModels", list_models),
    (1, "GET"): ("pai.GetModel", get_model),
    (2, "GET"): ("pai.ListModelVersions", list_model_versions),
    (2, "POST"): ("pai.CreateModelVersion", create_model_version),
    (3, "GET"): ("pai.GetModelVersion", get_model_version),
    (3, "PUT"): ("pai.UpdateModelVersion", update_model_version),
    (4, "POST"): ("pai.CreateModelVersionLabels", create_model_version_labels),
    (4, "DELETE"): ("pai.DeleteModelVersionLabels", delete_model_version_labels),
}


def match_pai(method: str, path: str) -> tuple[str, Handler, list[str]] | None:
    """Route a raw path under ``/api/v1/models``: ``(route name, handler, decoded path params)`` or None."""
    segments = path.split("/")
    if segments[:4] != ["", "api", "v1", "models"]:
        return None
    rest = segments[4:]
    if rest and rest[-1] == "" and len(rest) in (1, 3):
        rest = rest[:-1]  # tolerate one trailing slash on collection paths
    if len(rest) == 0:
        kind = 0
    elif len(rest) == 1:
        kind = 1
    elif len(rest) == 2 and rest[1] == "versions":
        kind = 2
    elif len(rest) == 3 and rest[1] == "versions":
        kind = 3
    elif len(rest) == 4 and rest[1] == "versions" and rest[3] == "labels":
        kind = 4
    else:
        return None
    route = _ROUTES.get((kind, method.upper()))
    if route is None:
        return None
    args = [unquote(rest[0])] if kind else []
    if kind >= 3:
        args.append(unquote(rest[2]))
    return route[0], route[1], args
