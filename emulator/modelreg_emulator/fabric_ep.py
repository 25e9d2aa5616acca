"""DataArts Fabric EP service instances (``/v1/workspaces/{ws}/services/instances``), as
``huaweicloudsdkdataartsfabricep`` 3.1.219 reads them.

Behaviour pinned by the emulator (the API documents the calls and fields; the timings and the refusals below are
**guesses** of ours):

* DeployServiceInstance: ``name`` (1-64 of Chinese characters, letters, digits, ``_``, ``-``, ``.``, space),
  ``source.id``, ``source.version_id`` (32-36 of letters, digits, ``-``), ``endpoint_id`` and
  ``config.model_instance_config.resource.max`` (1-1000; ``min`` 0-max) required; answers ``{id}``. The instance is
  ``PENDING``, ``CREATING`` after half of ``deploy_seconds``, ``RUNNING`` after all of it.
* ShowServiceInstanceDetail: the instance with ``url`` (``{name, address, type}``; the address carries a
  ``token`` query parameter, as an invocation URL may), ``error_code``/``error_msg`` once failed. Unknown: 404.
* UpdateServiceInstance: any of ``source``, ``name``, ``description``, ``config.model_instance_config.resource.max``;
  a ``source`` change makes the instance ``UPDATING`` (the new ``source`` shows at once) and ``RUNNING`` after
  ``update_seconds``. An instance in a transient status is refused (409). Answers ``{id}``.
* DeleteServiceInstance: ``204``; ``DELETING``, then gone (404) after ``delete_seconds``. Unknown: 404.
* ListServicesInstances: ``limit`` 1-100 (default 10), ``offset``; filters ``id``, ``name`` (substring),
  ``endpoint_id``, ``source_id``, ``version_id``; creation order; ``total`` counts all matches.
* Admin (:func:`fabric_ep_admin`): ``fail`` (``FAILED`` with ``error_code``/``error_msg``), ``advance`` (finish the
  transition in flight), ``slow`` (``seconds`` more for the next transition).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from airflow_provider_modelreg.auth import _parse_query
from modelreg_emulator.wire import Answer, ApiError, Req, hw_ok

__all__ = ["FabricEpSettings", "configure_fabric_ep", "fabric_ep_admin", "fabric_ep_state", "match_fabric_ep"]

_NAME = re.compile(r"[0-9A-Za-z_\u4e00-\u9fff. -]{1,64}")
_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_VERSION_ID = re.compile(r"[A-Za-z0-9-]{32,36}")
_INT = re.compile(r"[0-9]{1,10}")
_SEQ = itertools.count()
_TRANSIENT = ("PENDING", "CREATING", "UPDATING", "STOPPING", "DELETING")


@dataclass
class FabricEpSettings:
    """How long the emulated transitions take, in seconds."""

    deploy_seconds: float = 1.0
    update_seconds: float = 1.0
    delete_seconds: float = 0.5


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _invalid(message: str) -> ApiError:
    return ApiError(400, "DataArtsFabricEp.0001", f"invalid request: {message}")


def _not_found(what: str) -> ApiError:
    return ApiError(404, "DataArtsFabricEp.0404", f"{what} not found")


@dataclass
class EpInstance:
    """One emulated instance. ``pending``: (status when done, due monotonic time, start monotonic time)."""

    workspace: str
    name: str
    endpoint_id: str
    source: dict[str, str]
    resource: dict[str, Any]
    description: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "PENDING"
    error_code: str | None = None
    error_msg: str | None = None
    pending: tuple[str, float, float] | None = None
    slow: float = 0.0
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    seq: int = field(default_factory=lambda: next(_SEQ))

    def start(self, status: str, seconds: float, final: str) -> None:
        now = time.monotonic()
        self.status, self.error_code, self.error_msg = status, None, None
        self.pending = (final, now + seconds + self.slow, now)
        self.slow = 0.0
        self.updated = _now()

    def advance(self, force: bool = False) -> None:
        """Finish the transition in flight when it is due (or at once with ``force``)."""
        if self.pending is None:
            return
        final, due, began = self.pending
        now = time.monotonic()
        if force or now >= due:
            self.pending, self.status, self.updated = None, final, _now()
        elif self.status == "PENDING" and now >= began + (due - began) / 2:
            self.status = "CREATING"

    def brief(self) -> dict[str, Any]:
        """``ServiceInstanceBriefInfo``."""
        return {
            "source": dict(self.source),
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "endpoint_id": self.endpoint_id,
            "status": self.status,
            "create_time": self.created,
            "update_time": self.updated,
            "type": "LLM_MODEL",
        }

    def detail(self) -> dict[str, Any]:
        """``ShowServiceInstanceDetailResponse``."""
        address = f"https://{self.id}.infer.fabric-ep.example/v1/chat/completions?token={self.token}"
        out = {
            **self.brief(),
            "url": {"name": "invoke", "address": address, "type": "REST"},
            "config": {"model_instance_config": {"resource": dict(self.resource)}},
        }
        if self.error_code is not None:
            out["error_code"], out["error_msg"] = self.error_code, self.error_msg
        return out


class FabricEpState:
    """Every emulated instance of one emulator, by id."""

    def __init__(self, settings: FabricEpSettings | None = None) -> None:
        self.settings = settings or FabricEpSettings()
        self.lock = threading.RLock()
        self.instances: dict[str, EpInstance] = {}

    def get(self, workspace: str, instance_id: str) -> EpInstance:
        """The instance, its due transition applied (404 when absent or deleted)."""
        instance = self.instances.get(instance_id)
        if instance is not None:
            instance.advance()
            if instance.status == "DELETED":
                del self.instances[instance_id]
                instance = None
        if instance is None or instance.workspace != workspace:
            raise _not_found(f"service instance {instance_id}")
        return instance

    def all(self, workspace: str) -> list[EpInstance]:
        found = []
        for instance_id in list(self.instances):
            try:
                found.append(self.get(workspace, instance_id))
            except ApiError:
                pass
        return sorted(found, key=lambda i: i.seq)


_STATES: weakref.WeakKeyDictionary[Any, FabricEpState] = weakref.WeakKeyDictionary()


def fabric_ep_state(store: Any) -> FabricEpState:
    """The EP state that goes with an emulator's store (made on first use)."""
    state = _STATES.get(store)
    if state is None:
        state = _STATES[store] = FabricEpState()
    return state


def configure_fabric_ep(store: Any, settings: FabricEpSettings) -> FabricEpState:
    """Set the transition times of a store's EP state."""
    state = fabric_ep_state(store)
    state.settings = settings
    return state


# ------------------------------------------------------------------------------------------------- operations


def _object(raw: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise _invalid("the body is not JSON") from None
    if not isinstance(value, dict):
        raise _invalid("the body must be a JSON object")
    return value


def _text(value: Any, name: str, pattern: re.Pattern[str], *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or pattern.fullmatch(value) is None or not value.strip():
        raise _invalid(f"{name} is missing or malformed")
    return value


def _count(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _invalid(f"{name} must be an integer in [{low}, {high}]")
    return value


def _source(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _invalid("source is required")
    return {
        "id": str(_text(value.get("id"), "source.id", _ID)),
        "version_id": str(_text(value.get("version_id"), "source.version_id", _VERSION_ID)),
    }


def _resource(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("config")
    if config is None:
        return None
    model = config.get("model_instance_config") if isinstance(config, dict) else None
    resource = model.get("resource") if isinstance(model, dict) else None
    if not isinstance(resource, dict):
        raise _invalid("config.model_instance_config.resource is required")
    return resource


def _workspace(store: Any, workspace: str) -> None:
    if workspace not in store.workspaces:
        raise _not_found(f"workspace {workspace}")


def deploy(state: FabricEpState, store: Any, req: Req, args: list[str]) -> Answer:
    body = _object(req.body)
    resource = _resource(body)
    if resource is None:
        raise _invalid("config is required")
    high = _count(resource.get("max"), "resource.max", 1, 1000)
    low = _count(resource.get("min", 1), "resource.min", 0, high)
    spec = resource.get("spec_code")
    if spec is not None and not isinstance(spec, str):
        raise _invalid("resource.spec_code must be a string")
    with state.lock:
        _workspace(store, args[0])
        instance = EpInstance(
            workspace=args[0],
            name=str(_text(body.get("name"), "name", _NAME)),
            endpoint_id=str(_text(body.get("endpoint_id"), "endpoint_id", _ID)),
            source=_source(body.get("source")),
            resource={k: v for k, v in (("min", low), ("max", high), ("spec_code", spec)) if v is not None},
            description=body.get("description") if isinstance(body.get("description"), str) else None,
        )
        instance.start("PENDING", state.settings.deploy_seconds, "RUNNING")
        state.instances[instance.id] = instance
    return hw_ok({"id": instance.id})


def show(state: FabricEpState, store: Any, req: Req, args: list[str]) -> Answer:
    with state.lock:
        _workspace(store, args[0])
        return hw_ok(state.get(args[0], args[1]).detail())


def update(state: FabricEpState, store: Any, req: Req, args: list[str]) -> Answer:
    body = _object(req.body)
    with state.lock:
        _workspace(store, args[0])
        instance = state.get(args[0], args[1])
        if instance.status in _TRANSIENT:
            raise ApiError(409, "DataArtsFabricEp.0409", f"service instance {instance.id} is {instance.status}")
        source = None if body.get("source") is None else _source(body["source"])
        name = _text(body.get("name"), "name", _NAME, required=False)
        resource = _resource(body)
        high = None if resource is None else _count(resource.get("max"), "resource.max", 1, 1000)
        if name is not None:
            instance.name = name
        if isinstance(body.get("description"), str):
            instance.description = body["description"]
        if high is not None:
            instance.resource["max"] = high
            instance.resource["min"] = min(instance.resource.get("min", 1), high)
        if source is not None:
            instance.source = source
            instance.start("UPDATING", state.settings.update_seconds, "RUNNING")
        instance.updated = _now()
    return hw_ok({"id": instance.id})


def delete(state: FabricEpState, store: Any, req: Req, args: list[str]) -> Answer:
    with state.lock:
        _workspace(store, args[0])
        instance = state.get(args[0], args[1])
        if instance.status != "DELETING":
            instance.start("DELETING", state.settings.delete_seconds, "DELETED")
    answer = hw_ok({}, status=204)
    answer.body = b""
    return answer


def _int(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT.fullmatch(raw) or not low <= int(raw) <= high:
        raise _invalid(f"{name} must be an integer in [{low}, {high}], got {raw!r}")
    return int(raw)


def list_instances(state: FabricEpState, store: Any, req: Req, args: list[str]) -> Answer:
    params = dict(_parse_query(req.query, plus_is_space=False))
    limit = _int(params, "limit", 10, 1, 100)
    offset = _int(params, "offset", 0, 0, 1_000_000_000)
    with state.lock:
        _workspace(store, args[0])
        found = [
            i
            for i in state.all(args[0])
            if params.get("id") in (None, i.id)
            and params.get("endpoint_id") in (None, i.endpoint_id)
            and params.get("source_id") in (None, i.source["id"])
            and params.get("version_id") in (None, i.source["version_id"])
            and (params.get("name") is None or params["name"].lower() in i.name.lower())
        ]
        page = [i.brief() for i in found[offset : offset + limit]]
    return hw_ok({"total": len(found), "service_instances": page})


_ROUTES = {
    ("POST", 0): ("DeployServiceInstance", deploy),
    ("GET", 0): ("ListServicesInstances", list_instances),
    ("GET", 1): ("ShowServiceInstanceDetail", show),
    ("PUT", 1): ("UpdateServiceInstance", update),
    ("DELETE", 1): ("DeleteServiceInstance", delete),
}


def match_fabric_ep(method: str, path: str) -> tuple[str, Any, list[str]] | None:
    """(route name, handler, decoded path params) of an EP request, or None. Handlers take the emulator's store."""
    segments = path.split("/")
    if segments[:3] != ["", "v1", "workspaces"] or len(segments) not in (6, 7):
        return None
    if segments[4:6] != ["services", "instances"]:
        return None
    args = [unquote(segment) for segment in [segments[3], *segments[6:7]]]
    found = _ROUTES.get((method.upper(), len(segments) - 6))
    if found is None:
        return None
    name, operation = found

    def handler(store: Any, req: Req, arguments: list[str]) -> Answer:
        return operation(fabric_ep_state(store), store, req, arguments)

    return f"fabric_ep.{name}", handler, args


# ------------------------------------------------------------------------------------------------- admin


def fabric_ep_admin(store: Any, action: str, workspace: str, instance_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """An injected change of one instance: ``fail`` (``FAILED`` with ``error_code``/``error_msg``), ``advance``
    (finish the transition in flight now), ``slow`` (``seconds`` more for the next transition). Answers the instance
    as ShowServiceInstanceDetail does.

    :raises ApiError: 404 for an unknown instance, 400 for an unknown action.
    """
    state = fabric_ep_state(store)
    with state.lock:
        instance = state.get(workspace, instance_id)
        if action == "fail":
            instance.pending = None
            instance.status = "FAILED"
            instance.error_code = str(body.get("error_code") or "DataArtsFabricEp.5001")
            instance.error_msg = str(body.get("error_msg") or "the model failed to load: out of GPU memory")
        elif action == "advance":
            instance.advance(force=True)
        elif action == "slow":
            seconds = body.get("seconds", 30)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise _invalid("seconds must be a number >= 0")
            instance.slow = float(seconds)
        else:
            raise _invalid(f"unknown Fabric EP admin action {action!r} (fail, advance, slow)")
        return instance.detail()
