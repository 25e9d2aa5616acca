"""DataArts Fabric model operations (``/v1/workspaces/...``) and IAM ``POST /v3/auth/tokens``.

Behaviour pinned by the emulator:

* ListModelVersions: ``offset`` 0-1e9 (default 0), ``limit`` 1-100 (default 10), ``name`` fuzzy (case-insensitive
  substring; 4-32 of letters, digits, ``_``, ``-`` as documented), ``version_id`` exact (32-36 of letters, digits,
  ``-``). Server order: ``create_time`` ascending, ties in seed order -- **a guess**: the Fabric API documents no
  order for this call (the provider's hook sorts client-side and does not depend on it). ``total`` counts all
  matches.
* ListModels: ``offset``/``limit`` as above, ``name`` substring, ``id``, ``type``, ``visibility`` (``ALL`` or empty:
  any), ``sort_by`` ``CREATE_TIME`` (default) / ``UPDATE_TIME`` / ``NAME``, ``order_by`` ``ASC`` / ``DESC``
  (default). ``current_version`` is the newest version unless the seed names ``current_version_id``.
* IAM: password method, project scope by ``id`` (must equal the user's ``project_id`` when the seed gives one) or
  by ``name`` (must equal the user's ``project_name`` when the seed gives one). Answer ``201`` with the token in
  ``X-Subject-Token`` and ``token.expires_at`` = now + ``--token-lifetime``. Wrong user, password, domain or project:
  ``401`` with IAM's nested body ``{"error": {"code": 401, "message": ..., "title": "Unauthorized"}}``.
* CreateModelDefinition: ``name`` (1-64 of Chinese characters, letters, digits, ``_``, ``-``, ``.``, space; unique
  in the workspace), ``type`` ``LLM_MODEL``, ``version`` (name as above, ``config.llm_model_config`` with
  ``base_model_type`` and an ``obs://bucket/key`` ``model_path``) required; answers ``{id, version_id}``. The model
  lists at once, its version after the store's ``version_delay`` (asynchronous, as documented); the first version
  that succeeds becomes current.
* UpdateModelDefinition: any of ``name``, ``description``, ``current_version_id``, ``version``; a new version is
  created as above; ``current_version_id`` must be a listed version that did not fail (unknown: 404, failed: 400);
  answers the model (``ModelInfo``).
* Failed versions (``fail_next_fabric_versions`` / the admin route): listed with ``"status": "FAILED"`` once their
  delay has passed -- the API documents failed versions, its SDK shows no status field: a guess.
* DeleteModelVersion: ``204``; an unknown version is ``404``; the current version is refused (``400``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from airflow_provider_modelreg.auth import _parse_query
from modelreg_emulator.store import FabricModelState, IamTokenState, Store, iso_ms
from modelreg_emulator.wire import Answer, ApiError, Req, dumps_object, hw_ok, raw_json

__all__ = ["issue_token", "match_fabric"]

Handler = Callable[[Store, Req, list[str]], Answer]

_INT = re.compile(r"[0-9]{1,10}")
_NAME_FILTER = re.compile(r"[A-Za-z0-9_-]{4,32}")
_VERSION_ID = re.compile(r"[A-Za-z0-9-]{32,36}")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "common.01000001", f"failed to read http request, please check your input, {message}")


def _not_found(what: str) -> ApiError:
    return ApiError(404, "common.01000001", f"response status exception, code: 404 ({what} not found)")


def _params(req: Req) -> dict[str, str]:
    return dict(_parse_query(req.query, plus_is_space=False))


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw) or not low <= int(raw) <= high:
        raise _invalid(f"{name} must be an integer in [{low}, {high}], got {raw!r}")
    return int(raw)


def _workspace(store: Store, ws_id: str) -> dict[str, FabricModelState]:
    models = store.workspaces.get(ws_id)
    if models is None:
        raise _not_found(f"workspace {ws_id}")
    return models


def list_model_versions(store: Store, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    offset = _int(params, "offset", 0, 0, 1_000_000_000)
    limit = _int(params, "limit", 10, 1, 100)
    name = params.get("name")
    if name is not None and not _NAME_FILTER.fullmatch(name):
        raise _invalid("name must be 4-32 letters, digits, '_' or '-'")
    version_id = params.get("version_id")
    if version_id is not None and not _VERSION_ID.fullmatch(version_id):
        raise _invalid("version_id must be 32-36 letters, digits or '-'")
    with store.lock:
        model = _workspace(store, args[0]).get(args[1])
        if model is None:
            raise _not_found(f"model {args[1]}")
        versions = model.versions  # create_time ascending: our guess, the API documents no order
        if name is not None or version_id is not None:
            lowered = (name or "").lower()
            versions = [
                v
                for v in versions
                if (version_id is None or v.data.get("id") == version_id)
                and (name is None or lowered in str(v.data.get("name") or "").lower())
            ]
        page = versions[offset : offset + limit]
        encoded = "[" + ",".join(v.json() for v in page) + "]"
        total = len(versions)
    return hw_ok({"total": total, "versions": raw_json(encoded)})


def _model_json(model: FabricModelState) -> dict[str, Any]:
    out = dict(model.meta)
    current_id = out.pop("current_version_id", None)
    current = next((v for v in model.versions if v.data.get("id") == current_id), None) if current_id else None
    current = current or model.latest()
    if current is not None:
        out["current_version"] = raw_json(current.json())
        out.setdefault("create_time", model.versions[0].data.get("create_time"))
        out.setdefault("update_time", current.data.get("create_time"))
    return out


def list_models(store: Store, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    offset = _int(params, "offset", 0, 0, 1_000_000_000)
    limit = _int(params, "limit", 10, 1, 100)
    sort_by = params.get("sort_by") or "CREATE_TIME"
    if sort_by not in ("CREATE_TIME", "UPDATE_TIME", "NAME"):
        raise _invalid("sort_by must be CREATE_TIME, UPDATE_TIME or NAME")
    order_by = params.get("order_by") or "DESC"
    if order_by not in ("ASC", "DESC"):
        raise _invalid("order_by must be ASC or DESC")
    visibility = params.get("visibility") or "ALL"
    if visibility not in ("ALL", "PRIVATE", "PUBLIC"):
        raise _invalid("visibility must be PRIVATE, PUBLIC or ALL")
    name = (params.get("name") or "").lower()
    model_id = params.get("id")
    model_type = params.get("type")
    with store.lock:
        items = [_model_json(m) for m in _workspace(store, args[0]).values()]
    items = [
        m
        for m in items
        if (not name or name in str(m.get("name") or "").lower())
        and (not model_id or m.get("id") == model_id)
        and (not model_type or m.get("type") == model_type)
        and (visibility == "ALL" or m.get("visibility") == visibility)
    ]
    key = {"CREATE_TIME": "create_time", "UPDATE_TIME": "update_time", "NAME": "name"}[sort_by]
    items.sort(key=lambda m: (str(m.get(key) or ""), str(m.get("id"))), reverse=order_by == "DESC")
    page = items[offset : offset + limit]
    return hw_ok({"total": len(items), "models": raw_json("[" + ",".join(dumps_object(m) for m in page) + "]")})


# ------------------------------------------------------------------------------------------------- definitions

_NAME = re.compile(r"[0-9A-Za-z_\u4e00-\u9fff. -]{1,64}")


def _body(req: Req) -> dict[str, Any]:
    try:
        body = json.loads(req.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise _invalid("the body is not JSON") from None
    if not isinstance(body, dict):
        raise _invalid("the body must be a JSON object")
    return body


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or not value.strip():
        raise _invalid(f"{field} must be 1-64 of Chinese characters, letters, digits, '_', '-', '.' and space")
    return value


def _new_version(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid("version must be an object")
    llm = _get(value, "config", "llm_model_config")
    if not isinstance(llm, dict):
        raise _invalid("version.config.llm_model_config is required")
    base, path = llm.get("base_model_type"), llm.get("model_path")
    if not isinstance(base, str) or not base:
        raise _invalid("version.config.llm_model_config.base_model_type is required")
    if not isinstance(path, str) or not re.fullmatch(r"obs://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.+", path):
        raise _invalid("the model path must exist: obs://bucket/key")
    description = value.get("description")
    if description is not None and not isinstance(description, str):
        raise _invalid("version.description must be a string")
    version: dict[str, Any] = {"name": _name(value.get("name"), "version.name")}
    if description is not None:
        version["description"] = description
    version["config"] = {"llm_model_config": {"base_model_type": base, "model_path": path}}
    version["create_user"] = {"domain_name": "emulator", "domain_id": "d-emulator", "user_name": "emulator"}
    return version


def _taken(models: dict[str, FabricModelState], name: str, model_id: str | None = None) -> None:
    if any(m.meta.get("name") == name and m.meta.get("id") != model_id for m in models.values()):
        raise ApiError(400, "DataArtsFabric.0101", f"a model named {name!r} exists in this workspace")


def create_model(store: Store, req: Req, args: list[str]) -> Answer:
    body = _body(req)
    name = _name(body.get("name"), "name")
    if body.get("type") not in ("LLM_MODEL",):
        raise _invalid("type must be LLM_MODEL")
    version = _new_version(body.get("version"))
    with store.lock:
        models = _workspace(store, args[0])
        _taken(models, name)
        meta = {"id": str(uuid.uuid4()), "name": name, "type": "LLM_MODEL", "visibility": "PRIVATE"}
        if isinstance(body.get("description"), str):
            meta["description"] = body["description"]
        meta["create_time"] = iso_ms(datetime.now(timezone.utc))
        model = models[meta["id"]] = FabricModelState(meta=meta, workspace_id=args[0])
        version_id = store.create_fabric_version(model, version)
    return hw_ok({"id": meta["id"], "version_id": version_id})


def update_model(store: Store, req: Req, args: list[str]) -> Answer:
    body = _body(req)
    with store.lock:
        models = _workspace(store, args[0])
        model = models.get(args[1])
        if model is None:
            raise _not_found(f"model {args[1]}")
        name = body.get("name")
        if name is not None:
            _taken(models, _name(name, "name"), args[1])
        version = None if body.get("version") is None else _new_version(body["version"])
        current_id = body.get("current_version_id")
        if current_id is not None:
            current = model.find(current_id) if isinstance(current_id, str) else None
            if current is None:
                raise _not_found(f"version {current_id}")
            if current.data.get("status") == "FAILED":
                raise ApiError(400, "DataArtsFabric.0102", f"version {current_id} failed: it cannot be current")
        if name is not None:
            model.meta["name"] = name
        if isinstance(body.get("description"), str):
            model.meta["description"] = body["description"]
        if current_id is not None:
            model.meta["current_version_id"] = current_id
        if version is not None:
            store.create_fabric_version(model, version)
        model.meta["update_time"] = iso_ms(datetime.now(timezone.utc))
        answer = _model_json(model)
    return hw_ok(answer)


def delete_version(store: Store, req: Req, args: list[str]) -> Answer:
    with store.lock:
        model = _workspace(store, args[0]).get(args[1])
        version = model.find(args[2]) if model is not None else None
        if model is None or version is None:
            raise _not_found(f"model {args[1]} version {args[2]}")
        latest = model.latest()
        if args[2] == (model.meta.get("current_version_id") or (latest.data["id"] if latest else None)):
            raise ApiError(400, "DataArtsFabric.0103", f"version {args[2]} is the model's current version")
        model.versions.remove(version)
    answer = hw_ok({}, status=204)
    answer.body = b""
    return answer


# ------------------------------------------------------------------------------------------------- IAM


class IamError(Exception):
    """An IAM error answer (IAM uses a nested error body, unlike the API gateway)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def answer(self) -> Answer:
        title = "Unauthorized" if self.status == 401 else "Bad Request"
        body = {"error": {"code": self.status, "message": self.message, "title": title}}
        answer = hw_ok(body, status=self.status)
        return answer


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def issue_token(store: Store, req: Req) -> Answer:
    """``POST /v3/auth/tokens`` (password method, project scope).

    :raises IamError: for a malformed body (400) or wrong credentials/scope (401).
    """
    try:
        body = json.loads(req.body or b"")
    except (ValueError, UnicodeDecodeError):
        raise IamError(400, "The request body is not valid JSON.") from None
    methods = _get(body, "auth", "identity", "methods")
    user = _get(body, "auth", "identity", "password", "user")
    if not isinstance(methods, list) or "password" not in methods or not isinstance(user, dict):
        raise IamError(400, "Only the password method is supported: auth.identity.password.user is required.")
    project = _get(body, "auth", "scope", "project")
    if not isinstance(project, dict) or not (project.get("id") or project.get("name")):
        raise IamError(400, "A project-scoped token is required: auth.scope.project.id or .name.")
    raw_domain = user.get("domain")
    domain: dict[str, Any] = raw_domain if isinstance(raw_domain, dict) else {}
    match = None
    for candidate in store.fabric_users:
        if (
            candidate["name"] == user.get("name")
            and candidate["password"] == user.get("password")
            and candidate["domain"] in (domain.get("name"), domain.get("id"))
        ):
            match = candidate
            break
    if match is None:
        raise IamError(401, "The username or password is wrong.")
    if project.get("id") and match["project_id"] and project["id"] != match["project_id"]:
        raise IamError(401, f"The project {project['id']} is not found or not accessible.")
    if project.get("name") and match["project_name"] and project["name"] != match["project_name"]:
        raise IamError(401, f"The project {project['name']} is not found or not accessible.")
    project_id = str(project.get("id") or match["project_id"] or f"project-{project.get('name')}")
    project_name = str(project.get("name") or match["project_name"] or "cn-north-4")
    issued = datetime.now(timezone.utc)
    expires = issued + timedelta(seconds=store.token_lifetime)
    token = "MIIemulator" + secrets.token_urlsafe(48)
    with store.lock:
        store.tokens[token] = IamTokenState(
            user=str(match["name"]),
            domain=str(match["domain"]),
            project_id=project_id,
            project_name=project_name,
            expires_at=time.time() + store.token_lifetime,
        )
    payload = {
        "token": {
            "methods": ["password"],
            "expires_at": iso_ms(expires).replace("Z", "000Z"),
            "issued_at": iso_ms(issued).replace("Z", "000Z"),
            "user": {"name": match["name"], "id": f"user-{match['name']}", "domain": {"name": match["domain"]}},
            "project": {"id": project_id, "name": project_name, "domain": {"name": match["domain"]}},
            "roles": [],
            "catalog": [],
        }
    }
    return hw_ok(payload, status=201, headers={"X-Subject-Token": token})


# ------------------------------------------------------------------------------------------------- routing


def match_fabric(method: str, path: str) -> tuple[str, Handler, list[str]] | None:
    """Route a raw path under ``/v1/workspaces``: ``(route name, handler, decoded path params)`` or None."""
    segments = path.split("/")
    if segments[:3] != ["", "v1", "workspaces"] or len(segments) < 5 or segments[4] != "models":
        return None
    rest = [unquote(segment) for segment in segments[3:]]
    shape = (method.upper(), len(rest), rest[3] if len(rest) > 3 else None)
    routes: dict[tuple[str, int, str | None], tuple[str, Handler]] = {
        ("GET", 2, None): ("fabric.ListModels", list_models),
        ("POST", 2, None): ("fabric.CreateModelDefinition", create_model),
        ("PUT", 3, None): ("fabric.UpdateModelDefinition", update_model),
        ("GET", 4, "versions"): ("fabric.ListModelVersions", list_model_versions),
        ("DELETE", 5, "versions"): ("fabric.DeleteModelVersion", delete_version),
    }
    found = routes.get(shape)
    if found is None:
        return None
    return found[0], found[1], [rest[0], *rest[2:3], *rest[4:5]]
