"""Typed answers of PAI-EAS (Elastic Algorithm Service, API 2021-07-01), as ``alibabacloud-eas20210701`` 7.0.0
reads them: pydantic models keeping the wire's names as aliases and unknown fields (``extra="allow"``).

A service's ``Status`` is an :class:`EasServiceStatus`: a value outside the 18 the SDK documents makes the answer
unreadable (a :class:`~airflow_provider_modelreg.errors.RegistryResponseError`), never a success. ``AccessToken``
is a :class:`~pydantic.SecretStr`, left out of every dump (:meth:`EasService.to_output`, ``to_wire``).

:meth:`EasService.rollout` is what a deploy decision needs from one DescribeService answer (plain data, no I/O).
"""

from __future__ import annotations

import enum
import json
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, Strict
from pydantic.alias_generators import to_pascal

from airflow_provider_modelreg.models import _Wire

__all__ = [
    "EasAnswer",
    "EasEvent",
    "EasEventPage",
    "EasLabel",
    "EasPage",
    "EasRollout",
    "EasSafetyLock",
    "EasService",
    "EasServiceStatus",
    "EasServiceVersion",
    "EasTrafficState",
    "EasUpdateType",
]


T = TypeVar("T")
#: an optional field (absent or null: None)
Opt: TypeAlias = T | None
#: a count or a version: an integer, never ``"2"`` or ``true``
Count = Annotated[int, Strict()]


class _EasWire(_Wire):
    # the wire's names are the fields' in PascalCase (service_name: ServiceName)
    model_config = ConfigDict(alias_generator=to_pascal)


class EasServiceStatus(str, enum.Enum):
    """``Status`` of an EAS service (the SDK's list, ``ListServicesRequest.service_status``)."""

    CREATING = "Creating"
    STOPPED = "Stopped"
    FAILED = "Failed"
    COMPLETE = "Complete"
    CLONING = "Cloning"
    STOPPING = "Stopping"
    UPDATING = "Updating"
    WAITING = "Waiting"
    HOT_UPDATE = "HotUpdate"
    COMMITTING = "Committing"
    STARTING = "Starting"
    DELETE_FAILED = "DeleteFailed"
    RUNNING = "Running"
    DEVELOPING = "Developing"
    SCALING = "Scaling"
    DELETED = "Deleted"
    PENDING = "Pending"
    DELETING = "Deleting"

    def is_transient(self) -> bool:
        """The service is on its way to another status (a waiter keeps polling)."""
        return self in _TRANSIENT

    def is_terminal(self) -> bool:
        """The service stays in this status until someone acts (a waiter stops)."""
        return self not in _TRANSIENT

    def is_failure(self) -> bool:
        """``Failed`` or ``DeleteFailed``."""
        return self in (EasServiceStatus.FAILED, EasServiceStatus.DELETE_FAILED)

    def is_gone(self) -> bool:
        """``Deleted`` (or on its way: ``Deleting``)."""
        return self in (EasServiceStatus.DELETED, EasServiceStatus.DELETING)


_TRANSIENT = frozenset(
    {
        EasServiceStatus.CREATING,
        EasServiceStatus.CLONING,
        EasServiceStatus.STOPPING,
        EasServiceStatus.UPDATING,
        EasServiceStatus.WAITING,
        EasServiceStatus.HOT_UPDATE,
        EasServiceStatus.COMMITTING,
        EasServiceStatus.STARTING,
        EasServiceStatus.SCALING,
        EasServiceStatus.PENDING,
        EasServiceStatus.DELETING,
    }
)


#: UpdateService's ``UpdateType``: ``merge`` (the default: the body's keys over the config) or ``replace``
EasUpdateType = Literal["merge", "replace"]
#: ReleaseService's ``TrafficState``: in its service group's traffic (``grouping``) or out (``standalone``)
EasTrafficState = Literal["standalone", "grouping"]
#: UpdateServiceSafetyLock's ``Lock`` (the SDK's ``UpdateServiceSafetyLockRequest.lock``): ``all`` locks every
#: operation, ``dangerous`` the dangerous ones (delete, stop), ``none`` nothing
EasSafetyLock = Literal["all", "dangerous", "none"]


#: Where a service stands against the success rule (:meth:`EasService.rollout`): ``ready`` (``Running``, every
#: instance running, the latest version current and at least the expected one); ``in_progress`` (a transient status,
#: instances starting, or an update not yet current); ``waiting_for_resources`` (``Waiting``: instances cannot be
#: scheduled yet, which has its own deadline); ``failed`` (``Failed``, ``DeleteFailed``); ``stuck`` (settled in a
#: status a deploy does not end in, ``Stopped``, ``Complete``, ``Developing``, ``Deleted``, or ``Running`` an older
#: version than the one expected: someone else's change)
EasRollout = Literal["ready", "in_progress", "waiting_for_resources", "failed", "stuck"]


class EasLabel(_EasWire):
    """A service label as DescribeService/ListServices send it."""

    label_key: str
    label_value: Opt[str] = None


class EasService(_EasWire):
    """An EAS service (DescribeService body, ListServices item, and CreateService's answer, which carries
    ``ServiceId, ServiceName, Status, Region`` and the endpoints). Counters are strict integers: ``"2"`` or ``true``
    in ``RunningInstance`` is an unreadable answer, not a count."""

    service_name: str
    status: EasServiceStatus
    reason: Opt[str] = None
    message: Opt[str] = None
    service_id: Opt[str] = None
    service_uid: Opt[str] = None
    region: Opt[str] = None
    current_version: Opt[Count] = None
    latest_version: Opt[Count] = None
    running_instance: Opt[Count] = None
    pending_instance: Opt[Count] = None
    total_instance: Opt[Count] = None
    traffic_state: Opt[str] = None
    weight: Opt[Count] = None
    service_group: Opt[str] = None
    service_config: Opt[str] = None
    internet_endpoint: Opt[str] = None
    intranet_endpoint: Opt[str] = None
    labels: Opt[list[EasLabel]] = None
    #: ``all``, ``dangerous`` or ``none`` (absent or empty: none); kept as sent, judged by
    #: :func:`~airflow_provider_modelreg.eas_traffic.lock_forbids`
    safety_lock: Opt[str] = None
    workspace_id: Opt[str] = None
    create_time: Opt[str] = None
    update_time: Opt[str] = None
    request_id: Opt[str] = None
    #: the service's invocation token: masked by the hook, never dumped
    access_token: Opt[SecretStr] = Field(default=None, exclude=True, repr=False)
    _config_token: SecretStr | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        """Take the ``token`` out of ``ServiceConfig`` (kept as :attr:`config_token`)."""
        raw = _json_object(self.service_config)
        if raw is not None and "token" in raw:
            token = raw.pop("token")
            self._config_token = SecretStr(str(token))
            self.service_config = json.dumps(raw, ensure_ascii=False)

    @property
    def config_token(self) -> SecretStr | None:
        """The ``token`` the ``ServiceConfig`` carried (removed from it), if any."""
        return self._config_token

    @property
    def label_map(self) -> dict[str, str]:
        """The labels as a dict."""
        return {label.label_key: label.label_value or "" for label in self.labels or []}

    @property
    def config(self) -> dict[str, Any]:
        """``ServiceConfig`` parsed (an empty dict when absent or not a JSON object), without its ``token``."""
        return _json_object(self.service_config) or {}

    def rollout(self, expected_version: int | None = None) -> EasRollout:
        """This answer against the success rule: ``Running``, ``RunningInstance == TotalInstance`` (more than
        none), and ``CurrentVersion == LatestVersion`` (``>= expected_version`` when one is given: the version an
        update of ours created).

        :param expected_version: the ``LatestVersion`` a create or update of ours is known to have made.
        """
        status = self.status
        if status.is_failure():
            return "failed"
        if status is EasServiceStatus.WAITING:
            return "waiting_for_resources"
        if status.is_transient():
            return "in_progress"
        if status is not EasServiceStatus.RUNNING:
            return "stuck"
        if expected_version is not None and (self.latest_version or 0) < expected_version:
            return "stuck"
        if self.current_version is None or self.current_version != self.latest_version:
            return "in_progress"
        if not self.total_instance or self.running_instance != self.total_instance:
            return "in_progress"
        return "ready"

    def to_output(self) -> dict[str, Any]:
        """A JSON-safe summary for XCom, logs and links: never the access token or the config's token."""
        return {
            "service_name": self.service_name,
            "region": self.region,
            "status": self.status.value,
            "reason": self.reason,
            "message": self.message,
            "current_version": self.current_version,
            "latest_version": self.latest_version,
            "running_instance": self.running_instance,
            "total_instance": self.total_instance,
            "service_group": self.service_group,
            "traffic_state": self.traffic_state,
            "weight": self.weight,
            "internet_endpoint": self.internet_endpoint,
            "intranet_endpoint": self.intranet_endpoint,
            "labels": self.label_map,
            "safety_lock": self.safety_lock,
        }


def _json_object(text: str | None) -> dict[str, Any] | None:
    """``text`` parsed when it is a JSON object, else None."""
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class EasAnswer(_EasWire):
    """The answer of UpdateService, UpdateServiceVersion, ReleaseService and DeleteService."""

    message: Opt[str] = None
    request_id: Opt[str] = None


class EasServiceVersion(_EasWire):
    """One version of a service (ListServiceVersions item); ``ImageId`` is the version number (``ImageAvailable``
    and ``ServiceRunnable``, ``true``/``false``/``unknown``, are kept as extra fields)."""

    image_id: Count
    build_time: Opt[str] = None
    message: Opt[str] = None
    service_config: Opt[str] = None


class EasPage(_EasWire):
    """One page of ListServices (``Services``) or ListServiceVersions (``Versions``): ``TotalCount`` counts every
    match."""

    total_count: Count
    page_number: Opt[Count] = None
    page_size: Opt[Count] = None
    request_id: Opt[str] = None
    services: list[EasService] = Field(default_factory=list)
    versions: list[EasServiceVersion] = Field(default_factory=list)


class EasEvent(_EasWire):
    """One service event (DescribeServiceEvent item): ``Type`` is ``Normal`` or ``Warning``."""

    type: str
    reason: Opt[str] = None
    message: Opt[str] = None
    time: Opt[str] = None

    @property
    def is_warning(self) -> bool:
        """A ``Warning`` event (what a failure report quotes)."""
        return self.type == "Warning"


class EasEventPage(_EasWire):
    """One page of DescribeServiceEvent."""

    events: list[EasEvent] = Field(default_factory=list)
    total_count: Opt[Count] = None
    page_num: Opt[Count] = None
    total_page_num: Opt[Count] = None
    request_id: Opt[str] = None

    @property
    def warnings(self) -> list[EasEvent]:
        """The ``Warning`` events, in the answer's order."""
        return [event for event in self.events if event.is_warning]
