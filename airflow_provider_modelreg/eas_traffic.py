"""EAS traffic and lifecycle decisions as plain data (sans-IO): the canary's steps, whether a release took, what a
rollback targets, what a cleanup deletes, and what a safety lock forbids. The operators of
:mod:`airflow_provider_modelreg.operators.eas_traffic` do the I/O around them.

Canary semantics (EAS service groups): every service of a group whose ``TrafficState`` is ``grouping`` gets a share
of the group's traffic proportional to its ``Weight``; a ``standalone`` service gets none of it. A canary step of
``p`` percent sets the new service to ``grouping``/``p`` and the old one to ``grouping``/``100 - p``: at 100 the old
service stays in the group with weight 0 (it serves nothing, and putting traffic back is one weight change, not a
re-join). Putting traffic back is the new service at weight 0 and the old one at ``grouping``/100.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_modelreg.eas_deploy import RolloutVerdict, RolloutWatch
from airflow_provider_modelreg.eas_models import EasService
from airflow_provider_modelreg.errors import ModelRegistryError, RegistryInputError, one_line

__all__ = [
    "RESTORE",
    "CanaryStep",
    "CleanupPlan",
    "EasCanaryError",
    "EasCanaryRejectedError",
    "EasRollbackError",
    "EasSafetyLockError",
    "RollbackPlan",
    "judge_rollback",
    "lock_forbids",
    "plan_canary",
    "plan_cleanup",
    "plan_rollback",
    "resume_index",
    "traffic_mismatch",
]

#: the operations each safety lock refuses (the SDK: ``all`` locks every operation, ``dangerous`` the dangerous
#: ones "such as delete and stop"); reads (DescribeService, ListServices) are never locked
LOCKED_OPERATIONS: dict[str, frozenset[str]] = {
    "all": frozenset({"UpdateService", "UpdateServiceVersion", "ReleaseService", "DeleteService", "StopService"}),
    "dangerous": frozenset({"DeleteService", "StopService"}),
    "none": frozenset(),
}


def lock_forbids(lock: str | None, operation: str) -> bool:
    """Whether a service's ``SafetyLock`` refuses ``operation``. No lock (None, ``""``, ``none``) forbids nothing;
    a value EAS does not document forbids everything that changes the service (never act on a lock not understood).

    :param lock: the service's ``SafetyLock``.
    :param operation: the EAS action, e.g. ``DeleteService``.
    """
    if lock in (None, ""):
        return False
    known = LOCKED_OPERATIONS.get(str(lock))
    return operation in (LOCKED_OPERATIONS["all"] if known is None else known)


class EasSafetyLockError(ModelRegistryError):
    """A service's safety lock forbids what the task would do; nothing was sent.

    :param service_name: the service.
    :param lock: its ``SafetyLock``.
    :param operation: the refused EAS action.
    """

    def __init__(self, service_name: str, lock: str | None, operation: str) -> None:
        self.service_name = service_name
        self.lock = lock
        self.operation = operation
        super().__init__(
            f"EAS service {service_name} has SafetyLock {lock!r}, which forbids {operation}: "
            "unlock it (UpdateServiceSafetyLock) first if this is intended"
        )


class EasCanaryError(ModelRegistryError):
    """A canary step failed; traffic was put back to the old service (``restored``) or could not be.

    :param service_name: the new service.
    :param step: the step's percentage (None: before the first step).
    :param reason: why the step failed.
    :param restored: whether the old service was verified serving the group's traffic again.
    """

    def __init__(self, service_name: str, step: int | None, reason: str, *, restored: bool) -> None:
        self.service_name = service_name
        self.step = step
        self.reason = one_line(reason)
        self.restored = restored
        where = "before the first step" if step is None else f"at step {step}%"
        after = (
            "traffic is back on the old service (verified)"
            if restored
            else "traffic could NOT be verified back on the old service: check the service group now"
        )
        super().__init__(f"EAS canary of {service_name} failed {where}: {self.reason}; {after}")


class EasCanaryRejectedError(EasCanaryError, AirflowFailException):
    """A canary step judged the new service bad (its verification failed, or it stopped running) and traffic is
    verified back on the old service: the task fails **without retries**, because a retry would send production
    traffic to that service again. A step that failed on the registry (a release that kept failing) stays an
    :class:`EasCanaryError`, which Airflow may retry."""


class EasRollbackError(ModelRegistryError):
    """A rollback that did not end with the target version serving.

    :param service_name: the service.
    :param version: the target version.
    :param reason: EAS's ``Reason`` (or ours).
    :param message: EAS's ``Message`` (or ours).
    """

    def __init__(self, service_name: str, version: int, reason: str | None, message: str | None) -> None:
        self.service_name = service_name
        self.version = version
        self.reason = reason
        self.message = message
        super().__init__(f"EAS service {service_name} rollback to version {version} failed: {reason}: {message}")


@dataclass(frozen=True)
class CanaryStep:
    """One step: the new service's share in percent and the two ``Weight`` values that make it."""

    percent: int
    new_weight: int
    old_weight: int


#: putting traffic back: the new service at weight 0, the old one at 100 (both ``grouping``)
RESTORE = CanaryStep(0, 0, 100)


def plan_canary(steps: Any) -> tuple[CanaryStep, ...]:
    """The canary's steps from the declared percentages: a non-empty, strictly increasing sequence of integers from
    1 to 100. A plan that ends below 100 leaves that split in place.

    :param steps: e.g. ``[10, 50, 100]``.
    :raises RegistryInputError: anything else (before any request).
    """
    if isinstance(steps, str | bytes) or not isinstance(steps, Sequence) or not steps:
        raise RegistryInputError("steps", "must be a non-empty list of percentages, e.g. [10, 50, 100]", steps)
    previous = 0
    planned = []
    for step in steps:
        if isinstance(step, bool) or not isinstance(step, int) or not 1 <= step <= 100:
            raise RegistryInputError("steps", "must hold integers from 1 to 100", steps)
        if step <= previous:
            raise RegistryInputError("steps", "must be strictly increasing", steps)
        previous = step
        planned.append(CanaryStep(step, step, 100 - step))
    return tuple(planned)


def traffic_mismatch(found: EasService, weight: int) -> str | None:
    """Why DescribeService shows another traffic setting than ``grouping``/``weight`` (None: it took).

    :param found: the DescribeService answer.
    :param weight: the weight asked for.
    """
    if found.traffic_state == "grouping" and found.weight == weight:
        return None
    return (
        f"{found.service_name} shows TrafficState {found.traffic_state}, Weight {found.weight} "
        f"after ReleaseService asked grouping, {weight}"
    )


def resume_index(plan: Sequence[CanaryStep], new: EasService, old: EasService) -> int:
    """Where a canary starts: the latest step of ``plan`` whose two settings DescribeService already shows (a retry
    after a crash resumes there, never moving traffic back down), else 0 (a fresh canary, or traffic put back).

    The step found is released and verified again: whether its verification passed before the crash is unknown.

    :param plan: the steps, as :func:`plan_canary` made them.
    :param new: the new service as DescribeService shows it.
    :param old: the old service as DescribeService shows it.
    """
    for index in range(len(plan) - 1, -1, -1):
        step = plan[index]
        if traffic_mismatch(new, step.new_weight) is None and traffic_mismatch(old, step.old_weight) is None:
            return index
    return 0


@dataclass(frozen=True)
class RollbackPlan:
    """A rollback's target version; ``send``: False when the service already has it (a retry: verify only)."""

    target: int
    send: bool


def plan_rollback(found: EasService, version: int | None, recorded: int | None = None) -> RollbackPlan:
    """What UpdateServiceVersion a rollback sends.

    :param found: DescribeService's answer.
    :param version: the version asked for (None: the one before the current).
    :param recorded: the target an earlier try of the task chose (so a retry does not roll back twice).
    :raises RegistryInputError: no earlier version, or one not below the current.
    :raises EasSafetyLockError: the lock forbids UpdateServiceVersion.
    """
    current = found.current_version or 0
    target = version if version is not None else recorded if recorded is not None else current - 1
    if found.latest_version == target and (current == target or found.status.is_transient()):
        return RollbackPlan(target, send=False)  # there, or on its way (an earlier try's rollback in flight)
    if isinstance(target, bool) or not isinstance(target, int) or not 1 <= target < current:
        raise RegistryInputError(
            "version", f"must be an earlier version of {found.service_name} (1 to {current - 1})", target
        )
    if lock_forbids(found.safety_lock, "UpdateServiceVersion"):
        raise EasSafetyLockError(found.service_name, found.safety_lock, "UpdateServiceVersion")
    return RollbackPlan(target, send=True)


def judge_rollback(
    watch: RolloutWatch, found: EasService, target: int, now: float
) -> tuple[RolloutVerdict, str | None]:
    """One DescribeService answer of a rollback: the deploy's success rule (``watch``: expecting ``target``), and
    ``CurrentVersion == target`` (a service ready on another version is a failure: another change won).

    :returns: the verdict and what to log (None: nothing new).
    """
    verdict, news = watch.observe(found, now)
    if verdict.state == "done" and found.current_version != target:
        why = f"version {found.current_version} is current, not {target}: another change won"
        return RolloutVerdict("failed", verdict.outlook, "RolledElsewhere", why), news
    return verdict, news


@dataclass(frozen=True)
class CleanupPlan:
    """What a cleanup does: ``delete`` and ``keep`` (the newest N, then the older protected ones) newest first,
    ``skipped`` ((name, why): locked, already being deleted, or of unknown age) by name."""

    delete: tuple[str, ...]
    keep: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]


def _created(service: EasService) -> datetime | None:
    try:
        created = datetime.fromisoformat(service.create_time or "")
    except ValueError:
        return None
    return created if created.tzinfo is not None else created.replace(tzinfo=timezone.utc)


def plan_cleanup(services: Sequence[EasService], keep: int, protect: Collection[str] = ()) -> CleanupPlan:
    """Which of a model's services to delete: all but the newest ``keep`` (by ``CreateTime``, then name; never the
    server's order), never a protected one (kept wherever it ranks), never one whose safety lock forbids
    DeleteService, one already being deleted, or one whose ``CreateTime`` cannot be read (skipped, with why).

    :param services: the model's services (e.g. ListServices by label).
    :param keep: how many of the newest to keep (1 or more).
    :param protect: names never deleted (e.g. the one serving now).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise RegistryInputError("keep", "must be an integer from 1 (a cleanup never deletes every service)", keep)
    skipped: list[tuple[str, str]] = []
    dated: list[tuple[datetime, str, EasService]] = []
    for service in {s.service_name: s for s in services}.values():
        created = _created(service)
        if service.status.is_gone():
            skipped.append((service.service_name, f"already {service.status.value}"))
        elif created is None:
            skipped.append((service.service_name, f"CreateTime {service.create_time!r} unreadable: age unknown"))
        else:
            dated.append((created, service.service_name, service))
    dated.sort(key=lambda item: (item[0], item[1]), reverse=True)
    kept = [name for _, name, _ in dated[:keep]]
    delete: list[str] = []
    for _, name, service in dated[keep:]:
        if name in protect:
            kept.append(name)
        elif lock_forbids(service.safety_lock, "DeleteService"):
            skipped.append((name, f"SafetyLock {service.safety_lock}"))
        else:
            delete.append(name)
    return CleanupPlan(tuple(delete), tuple(kept), tuple(sorted(skipped)))
