"""PAI-EAS 2021-07-01 service operations (ROA paths under ``/api/v2/services``), signed like AI Workspace.

Behaviour pinned by the emulator ([inferred] where the API reference is silent):

* CreateService: the body is the service JSON (``name`` required: a lower-case letter, then a-z, 0-9, ``_``; unique
  per region); ``Labels`` (a JSON map), ``WorkspaceId``, ``Develop`` in the query. The service is ``Creating``
  (``CurrentVersion`` = ``LatestVersion`` = 1, no instance running), then ``Running`` with every instance
  (``metadata.instance``, default 1) after :attr:`EasSettings.create_seconds`.
* UpdateService (``UpdateType`` merge, the default, or replace): a new ``LatestVersion``, ``Updating`` until the
  update is done (:attr:`EasSettings.update_seconds`), then ``CurrentVersion == LatestVersion``; a change of
  ``metadata.instance`` alone is a scaling (``Scaling``, no new version).
* UpdateServiceVersion ``{"Version": n}`` (0 < n < CurrentVersion): ``Updating``, then version n current and latest.
* ReleaseService ``{"TrafficState", "Weight"}``: at once; ``grouping`` needs a service group (``metadata.group``).
  A service in a named group starts ``standalone`` with weight 0 (a group's new member gets no traffic by default).
* UpdateServiceSafetyLock ``{"Lock": "all"|"dangerous"|"none"}`` (DescribeService's ``SafetyLock``, ``none`` at
  creation): ``all`` refuses UpdateService, UpdateServiceVersion, ReleaseService and DeleteService, ``dangerous``
  DeleteService, with 400 ``ServiceSafetyLocked`` [inferred: the code EAS answers is undocumented].
* DeleteService: ``Deleting``, then gone (404 ``InvalidService.NotFound``) after :attr:`EasSettings.delete_seconds`.
* DescribeServiceEvent: the service's events, oldest first (``EventType`` filter, ``PageNum``/``PageSize``).
* ListServices: ``Label`` (every label must match), ``ServiceName``, ``GroupName``, ``ServiceStatus``, ``Filter``
  (substring of the name), ``WorkspaceId``; ``Order`` ``desc`` (default, newest first) or ``asc``; ``PageNumber``
  from 1, ``PageSize`` 1-100 (default 100). ListServiceVersions: newest first, paged alike.
* Injected by the admin surface (:func:`eas_admin`): a failure (``Failed`` with a ``Warning`` event), waiting for
  resources (``Waiting`` with a ``FailedScheduling`` warning, until advanced), a slow transition, an advance.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import unquote

from modelreg_emulator.pai import _int, _invalid, _params
from modelreg_emulator.wire import Answer, ApiError, Req, ali_ok

__all__ = ["EasService", "EasSettings", "EasState", "configure_eas", "eas_admin", "eas_state", "match_eas"]

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_PREFIX = "/api/v2/services"
_SEQ = itertools.count()


@dataclass
class EasSettings:
    """How long the emulated transitions take, in seconds."""

    create_seconds: float = 1.0
    update_seconds: float = 1.0
    delete_seconds: float = 0.5
    #: the region of CreateService and ListServices (whose paths name none): the endpoint's, in EAS
    region: str = "cn-hangzhou"


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _instances(config: dict[str, Any]) -> int:
    metadata = config.get("metadata")
    value = metadata.get("instance", 1) if isinstance(metadata, dict) else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid("metadata.instance must be an integer >= 0")
    return value


def _group(config: dict[str, Any]) -> str | None:
    metadata = config.get("metadata")
    group = metadata.get("group") if isinstance(metadata, dict) else None
    return group if isinstance(group, str) and group else None


@dataclass
class EasService:
    """One emulated service. ``pending`` is the transition in flight: (status when done, due monotonic time)."""

    region: str
    name: str
    config: dict[str, Any]
    labels: dict[str, str]
    workspace_id: str | None
    versions: list[dict[str, Any]] = field(default_factory=list)
    status: str = "Creating"
    reason: str = ""
    message: str = ""
    current_version: int = 1
    latest_version: int = 1
    running: int = 0
    total: int = 1
    traffic_state: str = "standalone"
    weight: int = 100
    lock: str = "none"
    events: list[dict[str, str]] = field(default_factory=list)
    pending: tuple[str, float] | None = None
    hold: bool = False  # Waiting for resources until advanced
    slow: float = 0.0  # extra seconds for the next transition
    service_id: str = field(default_factory=lambda: f"eas-m-{uuid.uuid4().hex[:12]}")
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    #: creation order (CreateTime has whole seconds)
    seq: int = field(default_factory=lambda: next(_SEQ))

    def event(self, kind: str, reason: str, message: str) -> None:
        self.events.append({"Type": kind, "Reason": reason, "Message": message, "Time": _now()})

    def start(self, status: str, seconds: float, final: str = "Running") -> None:
        self.status, self.reason, self.message = status, "", ""
        self.pending = (final, time.monotonic() + seconds + self.slow)
        self.slow = 0.0
        self.updated = _now()
        if status != "Deleting":
            self.running = min(self.running, self.total) if status == "Scaling" else 0
        self.event("Normal", status, f"service {self.name} is {status.lower()}")

    def advance(self, force: bool = False) -> None:
        """Finish the transition in flight when it is due (or at once with ``force``)."""
        if self.pending is None or (self.hold and not force):
            return
        final, due = self.pending
        if not force and time.monotonic() < due:
            return
        self.pending, self.hold = None, False
        self.status, self.reason, self.message = final, "", ""
        if final == "Running":
            self.current_version = self.latest_version
            self.config = copy.deepcopy(self.versions[self.latest_version - 1])
            self.total = self.running = _instances(self.config)
        self.updated = _now()
        self.event("Normal", final, f"service {self.name} is {final.lower()}")

    def describe(self) -> dict[str, Any]:
        group = _group(self.config) or self.name
        return {
            "ServiceName": self.name,
            "ServiceId": self.service_id,
            "Region": self.region,
            "Status": self.status,
            "Reason": self.reason,
            "Message": self.message,
            "CurrentVersion": self.current_version,
            "LatestVersion": self.latest_version,
            "RunningInstance": self.running,
            "PendingInstance": self.total - self.running,
            "TotalInstance": self.total,
            "TrafficState": self.traffic_state,
            "Weight": self.weight,
            "ServiceGroup": group,
            "ServiceConfig": json.dumps(self.config, ensure_ascii=False),
            "InternetEndpoint": f"http://{self.service_id}.{self.region}.pai-eas.aliyuncs.com/api/predict/{self.name}",
            "IntranetEndpoint": f"http://{self.service_id}.vpc.{self.region}.pai-eas.aliyuncs.com/api/predict/{self.name}",
            "Labels": [{"LabelKey": k, "LabelValue": v} for k, v in self.labels.items()],
            "SafetyLock": self.lock,
            "AccessToken": self.token,
            "WorkspaceId": self.workspace_id or "",
            "CreateTime": self.created,
            "UpdateTime": self.updated,
        }


class EasState:
    """Every emulated service of one emulator, by (region, name)."""

    def __init__(self, settings: EasSettings | None = None) -> None:
        self.settings = settings or EasSettings()
        self.lock = threading.RLock()
        self.services: dict[tuple[str, str], EasService] = {}
        self._deleted: dict[tuple[str, str], float] = {}

    def get(self, region: str, name: str) -> EasService:
        """The service, its due transition applied (404 when absent or deleted)."""
        key = (region, name)
        service = self.services.get(key)
        if service is not None:
            service.advance()
            if service.status == "Deleted":
                del self.services[key]
                service = None
        if service is None:
            raise ApiError(404, "InvalidService.NotFound", f"Service {name} in region {region} does not exist.")
        return service

    def all(self) -> list[EasService]:
        for region, name in list(self.services):
            try:
                self.get(region, name)
            except ApiError:
                pass
        return list(self.services.values())


_STATES: weakref.WeakKeyDictionary[Any, EasState] = weakref.WeakKeyDictionary()


def eas_state(store: Any) -> EasState:
    """The EAS state that goes with an emulator's store (made on first use)."""
    state = _STATES.get(store)
    if state is None:
        state = _STATES[store] = EasState()
    return state


def configure_eas(store: Any, settings: EasSettings) -> EasState:
    """Set the transition times of a store's EAS state."""
    state = eas_state(store)
    state.settings = settings
    return state


# ------------------------------------------------------------------------------------------------- operations


def _json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        raise _invalid(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise _invalid(f"{what} must be a JSON object")
    return value


def _page(items: list[Any], params: dict[str, str], number_name: str) -> tuple[list[Any], int, int]:
    number = _int(params, number_name, 1, 1, 10**6)
    size = _int(params, "PageSize", 100, 1, 100)
    return items[(number - 1) * size : number * size], number, size


def _create(state: EasState, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    config = _json_object(req.body, "the service JSON")
    name = config.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _invalid("name must be a lower-case letter, then up to 62 of a-z, 0-9 and _")
    labels = _json_object(params.get("Labels", "{}"), "Labels")
    if not all(isinstance(v, str) for v in labels.values()):
        raise _invalid("Labels must map strings to strings")
    if params.get("Develop", "false") not in ("true", "false"):
        raise _invalid("Develop must be true or false")
    region = args[0] or state.settings.region
    with state.lock:
        if (region, name) in state.services:
            try:
                state.get(region, name)
                raise ApiError(400, "ServiceAlreadyExists", f"Service {name} already exists.")
            except ApiError as err:
                if err.status != 404:
                    raise
        service = EasService(region, name, copy.deepcopy(config), labels, params.get("WorkspaceId"))
        service.versions.append(copy.deepcopy(config))
        service.total = _instances(config)
        if _group(config) is not None:
            service.weight = 0
        service.start("Creating", state.settings.create_seconds)
        state.services[(region, name)] = service
        shown = service.describe()
    keys = ("ServiceId", "ServiceName", "Status", "Region", "InternetEndpoint", "IntranetEndpoint")
    return ali_ok({key: shown[key] for key in keys})


def _describe(state: EasState, req: Req, args: list[str]) -> Answer:
    with state.lock:
        return ali_ok(state.get(args[0], args[1]).describe())


def _busy(service: EasService) -> None:
    if service.status in ("Creating", "Updating", "Deleting", "Scaling"):
        raise ApiError(400, "ServiceBusy", f"Service {service.name} is {service.status}; try again when it settles.")


#: the operations each safety lock refuses [inferred: "all" = every change, "dangerous" = delete and stop]
_LOCKED = {
    "all": ("UpdateService", "UpdateServiceVersion", "ReleaseService", "DeleteService"),
    "dangerous": ("DeleteService",),
}


def _unlocked(service: EasService, operation: str) -> EasService:
    if operation in _LOCKED.get(service.lock, ()):
        message = f"Service {service.name} has SafetyLock {service.lock}: {operation} is refused; unlock it first."
        raise ApiError(400, "ServiceSafetyLocked", message)
    return service


def _lock(state: EasState, req: Req, args: list[str]) -> Answer:
    lock = _json_object(req.body, "the body").get("Lock")
    if lock not in ("all", "dangerous", "none"):
        raise _invalid("Lock must be all, dangerous or none")
    with state.lock:
        service = state.get(args[0], args[1])
        service.lock = lock
        service.event("Normal", "SafetyLock", f"safety lock {lock}")
    return ali_ok({"Message": f"Service {args[1]} safety lock is {lock}."})


def _update(state: EasState, req: Req, args: list[str]) -> Answer:
    kind = _params(req).get("UpdateType") or "merge"
    if kind not in ("merge", "replace"):
        raise _invalid("UpdateType must be merge or replace")
    change = _json_object(req.body, "the service JSON")
    with state.lock:
        service = _unlocked(state.get(args[0], args[1]), "UpdateService")
        _busy(service)
        latest = service.versions[service.latest_version - 1]
        config = _merge(latest, change) if kind == "merge" else {**change, "name": service.name}
        instances = _instances(config)
        scaling_only = _merge(config, {"metadata": {"instance": 0}}) == _merge(latest, {"metadata": {"instance": 0}})
        if scaling_only:
            service.versions[service.latest_version - 1] = config
            service.total = instances
            service.start("Scaling", state.settings.update_seconds)
        else:
            service.versions.append(config)
            service.latest_version = len(service.versions)
            service.start("Updating", state.settings.update_seconds)
    return ali_ok({"Message": f"Service {args[1]} is being updated."})


def _rollback(state: EasState, req: Req, args: list[str]) -> Answer:
    version = _json_object(req.body, "the body").get("Version")
    with state.lock:
        service = _unlocked(state.get(args[0], args[1]), "UpdateServiceVersion")
        _busy(service)
        if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < service.current_version:
            raise _invalid(f"Version must be an integer from 1 to {service.current_version - 1}")
        service.latest_version = version
        service.start("Updating", state.settings.update_seconds)
    return ali_ok({"Message": f"Service {args[1]} is rolling back to version {version}."})


def _release(state: EasState, req: Req, args: list[str]) -> Answer:
    body = _json_object(req.body, "the body")
    traffic, weight = body.get("TrafficState"), body.get("Weight")
    if traffic is not None and traffic not in ("standalone", "grouping"):
        raise _invalid("TrafficState must be standalone or grouping")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not -1 <= weight <= 1000):
        raise _invalid("Weight must be an integer from -1 to 1000")
    with state.lock:
        service = _unlocked(state.get(args[0], args[1]), "ReleaseService")
        if traffic == "grouping" and _group(service.config) is None:
            raise _invalid(f"Service {service.name} is in no service group (metadata.group)")
        if traffic is not None:
            service.traffic_state = traffic
        if weight is not None:
            service.weight = weight
        service.event("Normal", "Released", f"traffic {service.traffic_state}, weight {service.weight}")
    return ali_ok({"Message": f"Service {args[1]} released."})


def _delete(state: EasState, req: Req, args: list[str]) -> Answer:
    with state.lock:
        service = _unlocked(state.get(args[0], args[1]), "DeleteService")
        if service.status != "Deleting":
            service.hold = False
            service.start("Deleting", state.settings.delete_seconds, final="Deleted")
    return ali_ok({"Message": f"Service {args[1]} is being deleted."})


def _events(state: EasState, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    kind = params.get("EventType")
    with state.lock:
        events = [e for e in state.get(args[0], args[1]).events if kind in (None, "", e["Type"])]
    page, number, size = _page(events, params, "PageNum")
    pages = (len(events) + size - 1) // size
    return ali_ok({"Events": page, "PageNum": number, "TotalCount": len(events), "TotalPageNum": pages})


def _list(state: EasState, req: Req, args: list[str]) -> Answer:
    params = _params(req)
    label = _json_object(params.get("Label", "{}"), "Label")
    order = params.get("Order") or "desc"
    if order not in ("asc", "desc"):
        raise _invalid("Order must be asc or desc")
    exact = {"ServiceName": "ServiceName", "GroupName": "ServiceGroup", "ServiceStatus": "Status"}
    with state.lock:
        ordered = sorted(state.all(), key=lambda s: s.seq, reverse=order == "desc")
        shown = [s.describe() for s in ordered if s.region == (args[0] or state.settings.region)]
    found = [
        s
        for s in shown
        if all(params.get(p) in (None, "", s[f]) for p, f in exact.items())
        and params.get("Filter", "") in s["ServiceName"]
        and params.get("WorkspaceId") in (None, "", s["WorkspaceId"])
        and all({"LabelKey": k, "LabelValue": v} in s["Labels"] for k, v in label.items())
    ]
    page, number, size = _page(found, params, "PageNumber")
    return ali_ok({"PageNumber": number, "PageSize": size, "TotalCount": len(found), "Services": page})


def _versions(state: EasState, req: Req, args: list[str]) -> Answer:
    with state.lock:
        service = state.get(args[0], args[1])
        rows = [
            {
                "ImageId": number,
                "BuildTime": service.created,
                "ImageAvailable": "true",
                "ServiceRunnable": "true",
                "Message": "",
                "ServiceConfig": json.dumps(config, ensure_ascii=False),
            }
            for number, config in enumerate(service.versions, start=1)
        ][::-1]
    page, number, size = _page(rows, _params(req), "PageNumber")
    return ali_ok({"PageNumber": number, "PageSize": size, "TotalCount": len(rows), "Versions": page})


Operation = Callable[[EasState, Req, list[str]], Answer]
#: "METHOD tail" (the path after /api/v2/services/{ClusterId}/{ServiceName}) -> (operation, handler)
_SERVICE_ROUTES: dict[str, tuple[str, Operation]] = {
    "GET ": ("DescribeService", _describe),
    "PUT ": ("UpdateService", _update),
    "DELETE ": ("DeleteService", _delete),
    "PUT version": ("UpdateServiceVersion", _rollback),
    "PUT release": ("ReleaseService", _release),
    "PUT lock": ("UpdateServiceSafetyLock", _lock),
    "GET events": ("DescribeServiceEvent", _events),
    "GET versions": ("ListServiceVersions", _versions),
}


def match_eas(method: str, path: str) -> tuple[str, Callable[[Any, Req, list[str]], Answer], list[str]] | None:
    """(route name, handler, path arguments) of an EAS request, or None. Handlers take the emulator's store."""
    if path != _PREFIX and not path.startswith(_PREFIX + "/"):
        return None
    parts = [unquote(p) for p in path[len(_PREFIX) :].split("/")[1:]]
    if not parts and method in ("POST", "GET"):
        # a create or a listing names no region: the emulator's (EasSettings.region)
        name, operation = ("CreateService", _create) if method == "POST" else ("ListServices", _list)
        return f"eas.{name}", _bound(operation), [""]
    if len(parts) in (2, 3):
        route = _SERVICE_ROUTES.get(f"{method} {parts[2] if len(parts) == 3 else ''}")
        if route is not None:
            return f"eas.{route[0]}", _bound(route[1]), parts[:2]
    return None


def _bound(operation: Operation) -> Callable[[Any, Req, list[str]], Answer]:
    def handler(store: Any, req: Req, args: list[str]) -> Answer:
        return operation(eas_state(store), req, args)

    return handler


# ------------------------------------------------------------------------------------------------- admin


def eas_admin(store: Any, action: str, region: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """An injected change of one service: ``fail`` (``Failed``, a Warning event with ``reason``/``message``),
    ``wait`` (``Waiting`` for resources until advanced), ``slow`` (``seconds`` more for the next transition),
    ``advance`` (finish the transition in flight now). Answers the service as DescribeService does.

    :raises ApiError: 404 for an unknown service, 400 for an unknown action.
    """
    state = eas_state(store)
    with state.lock:
        service = state.get(region, name)
        if action == "fail":
            reason = str(body.get("reason") or "ContainerCrashLoop")
            message = str(body.get("message") or "the container exited with code 1")
            service.pending, service.hold = None, False
            service.status, service.reason, service.message, service.running = "Failed", reason, message, 0
            service.event("Warning", reason, message)
        elif action == "wait":
            service.hold = True
            if service.pending is None:
                service.pending = ("Running", time.monotonic())
            service.status, service.reason = "Waiting", "FailedScheduling"
            service.message = str(body.get("message") or "0/3 nodes are available: insufficient cpu")
            service.event("Warning", service.reason, service.message)
        elif action == "slow":
            seconds = body.get("seconds", 30)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise _invalid("seconds must be a number >= 0")
            service.slow = float(seconds)
        elif action == "advance":
            service.advance(force=True)
        else:
            raise _invalid(f"unknown EAS admin action {action!r} (fail, wait, slow, advance)")
        return service.describe()
