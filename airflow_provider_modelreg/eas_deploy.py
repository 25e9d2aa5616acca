"""The EAS deploy as plain data (sans-IO): what a deploy does next, from the service JSON it wants, what
DescribeService says and what an earlier try of the same task started; and whether a service it waits on is done.

The operator and the trigger do the I/O around two functions:

* :func:`plan_deploy` — ``Create``, ``Update`` (merge) or ``Wait`` (nothing to send: the service already runs this
  config, or an earlier try's create or update is in flight and is reconnected to, never started twice), or
  ``Refuse`` (a service being deleted, or one whose delete failed).
* :func:`judge_rollout` — ``done``, ``wait`` or ``failed`` for one DescribeService answer, with the success rule of
  :meth:`~airflow_provider_modelreg.eas_models.EasService.rollout` and the resource-wait budget.

What a try started is a :class:`DeployRecord`, kept in Airflow's task state store (JSON) so that a retry after a
worker crash finds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from airflow_provider_modelreg.deploy import stored_record
from airflow_provider_modelreg.eas_models import EasService, EasServiceStatus

__all__ = [
    "Create",
    "DeployAction",
    "DeployRecord",
    "Refuse",
    "RolloutVerdict",
    "RolloutWatch",
    "Update",
    "Wait",
    "config_digest",
    "deployed_label",
    "drift",
    "judge_rollout",
    "plan_deploy",
]


def config_digest(config: Mapping[str, Any]) -> str:
    """A digest of a service JSON (key order does not matter): what a record says was asked for."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def drift(wanted: Mapping[str, Any], actual: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The paths of ``wanted`` whose value ``actual`` does not have (nested objects compared key by key; keys that
    only ``actual`` has, such as the defaults EAS fills in, do not count)."""
    paths: list[str] = []
    for key, value in wanted.items():
        path = f"{prefix}{key}"
        there = actual.get(key)
        if isinstance(value, Mapping) and isinstance(there, Mapping):
            paths += drift(value, there, f"{path}.")
        elif there != value:
            paths.append(path)
    return paths


@dataclass(frozen=True)
class DeployRecord:
    """What a try of a deploy task started: kept across tries (task state store) as :meth:`to_json`.

    :param service_name: the service.
    :param config_digest: :func:`config_digest` of the service JSON asked for.
    :param action: ``create`` or ``update``.
    :param expected_version: the ``LatestVersion`` that action made, when the answer said (None: unknown).
    """

    service_name: str
    config_digest: str
    action: Literal["create", "update"]
    expected_version: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> DeployRecord | None:
        """A stored record, or None for anything that is not one (a store written by something else)."""
        record = stored_record(cls, value)
        if (
            record is None
            or record.action not in ("create", "update")
            or not (
                record.expected_version is None
                or (isinstance(record.expected_version, int) and not isinstance(record.expected_version, bool))
            )
        ):
            return None
        return record


@dataclass(frozen=True)
class Create:
    """CreateService, then wait for the version it reports."""


@dataclass(frozen=True)
class Update:
    """UpdateService (merge) of the drifted paths (``base_version``: the latest version before it). A change of the
    model or image makes a new version; a scale-only change does not: the wait expects the ``LatestVersion`` the
    service reports after the update."""

    base_version: int
    changed: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    """Nothing to send: wait for the service (``expected_version``: at least this version must be current)."""

    expected_version: int | None
    why: str


@dataclass(frozen=True)
class Refuse:
    """Do not deploy now; ``retryable`` when a later try may succeed (e.g. a delete in progress)."""

    reason: str
    retryable: bool


DeployAction = Create | Update | Wait | Refuse


def plan_deploy(
    service_name: str, config: Mapping[str, Any], found: EasService | None, record: DeployRecord | None
) -> DeployAction:
    """The next step of a deploy of ``config`` as ``service_name``.

    :param service_name: the service.
    :param config: the service JSON the task wants.
    :param found: DescribeService's answer, None when the service does not exist (404).
    :param record: what an earlier try of this task started (None: nothing, or not for this service and config).
    """
    mine = record is not None and record.service_name == service_name and record.config_digest == config_digest(config)
    status = None if found is None else found.status
    if found is None or status is EasServiceStatus.DELETED:
        return Create()  # EAS creates synchronously: a create of an earlier try that left no service never happened
    if status is EasServiceStatus.DELETING:
        return Refuse(f"service {service_name} is being deleted: deploy again when it is gone", retryable=True)
    if status is EasServiceStatus.DELETE_FAILED:
        return Refuse(f"service {service_name} failed to delete ({found.reason}: {found.message})", retryable=False)
    if mine and record is not None:
        return Wait(record.expected_version, f"an earlier try's {record.action} is in flight: reconnecting to it")
    changed = drift(config, found.config)
    if not changed:
        return Wait(found.latest_version, "the service already runs this config")
    return Update(found.latest_version or 0, tuple(changed))


@dataclass(frozen=True)
class RolloutVerdict:
    """:func:`judge_rollout`'s answer: ``state`` ``done``, ``wait`` or ``failed`` (``reason`` and ``message`` then
    say why); ``waiting_since``: when the service began waiting for resources (carried to the next poll)."""

    state: Literal["done", "wait", "failed"]
    outlook: str
    reason: str | None = None
    message: str | None = None
    waiting_since: float | None = field(default=None)


def judge_rollout(
    found: EasService,
    *,
    expected_version: int | None,
    now: float,
    waiting_since: float | None,
    resource_wait_timeout: float,
) -> RolloutVerdict:
    """One DescribeService answer against the success rule (``Running``, every instance running, the latest version
    current and at least ``expected_version``); ``Waiting`` for resources longer than ``resource_wait_timeout``
    seconds is a failure, ``Failed`` / ``DeleteFailed`` and settled statuses a deploy does not end in are too.

    :param found: the answer.
    :param expected_version: the version our create or update made (None: any current version).
    :param now: the clock (seconds).
    :param waiting_since: when the previous answers began saying ``Waiting`` (None: they did not).
    :param resource_wait_timeout: seconds a service may wait for resources.
    """
    rollout = found.rollout(expected_version)
    seen = (
        f"{found.status.value}, {found.running_instance}/{found.total_instance} running, "
        f"version {found.current_version}/{found.latest_version}"
    )
    if rollout == "ready":
        return RolloutVerdict("done", seen)
    if rollout == "failed":
        return RolloutVerdict("failed", seen, found.reason, found.message)
    if rollout == "stuck":
        why = (
            f"the latest version is {found.latest_version}, older than {expected_version}: another change won"
            if expected_version is not None and found.status is EasServiceStatus.RUNNING
            else f"the service settled in {found.status.value}, not Running"
        )
        return RolloutVerdict("failed", seen, found.reason or "Stuck", found.message or why)
    if rollout == "waiting_for_resources":
        since = now if waiting_since is None else waiting_since
        if now - since > resource_wait_timeout:
            message = f"waited {now - since:.0f} s for resources (resource_wait_timeout {resource_wait_timeout:.0f} s)"
            if found.message:
                message = f"{message}: {found.message}"
            return RolloutVerdict("failed", seen, found.reason or "Waiting", message, since)
        return RolloutVerdict("wait", seen, waiting_since=since)
    return RolloutVerdict("wait", seen)


@dataclass
class RolloutWatch:
    """What a wait on a rollout carries from one poll to the next (plain data; the operator's poll loop and the
    trigger each drive one): since when the service waits for resources, and what was last reported.

    :param expected_version: the version the deploy made (None: any current version).
    :param resource_wait_timeout: seconds the service may wait for resources.
    """

    expected_version: int | None
    resource_wait_timeout: float
    waiting_since: float | None = None
    outlook: str | None = None

    def observe(self, found: EasService, now: float) -> tuple[RolloutVerdict, str | None]:
        """The verdict on one DescribeService answer, and what to log (None: the same as the last poll saw)."""
        verdict = judge_rollout(
            found,
            expected_version=self.expected_version,
            now=now,
            waiting_since=self.waiting_since,
            resource_wait_timeout=self.resource_wait_timeout,
        )
        self.waiting_since = verdict.waiting_since
        news = None if verdict.outlook == self.outlook else verdict.outlook
        self.outlook = verdict.outlook
        return verdict, news


def deployed_label(service_name: str, region: str) -> dict[str, str]:
    """The registry label a verified deploy writes back to the version: ``deployed-eas = <service>@<region>``."""
    return {"deployed-eas": f"{service_name}@{region}"}
