"""The Fabric EP deploy as plain data (sans-IO): what a deploy does next, from what ListServicesInstances and
ShowServiceInstanceDetail say and what an earlier try of the same task started; and whether an instance it waits on
is done.

The operator and the trigger do the I/O around two functions:

* :func:`plan_deploy` -- ``Deploy`` (DeployServiceInstance), ``Swap`` (UpdateServiceInstance of ``source``: an
  instance of the model with the task's name on the endpoint serves another version), ``Wait`` (nothing to send:
  an instance serves the version already, or an earlier try's deploy or swap is in flight and is reconnected to,
  never started twice) or ``Refuse`` (an instance of the version failed, one is busy, several share the name).
* :func:`judge_instance` -- ``done``, ``wait`` or ``failed`` for one ShowServiceInstanceDetail answer.

A try's :class:`EpDeployRecord` (what it started) lives in Airflow's task state store as JSON: the retry that
follows a worker crash reads it back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from airflow_provider_modelreg.deploy import stored_record
from airflow_provider_modelreg.fabric_ep_models import FabricEpInstance, FabricEpStatus

__all__ = [
    "Deploy",
    "EpDeployAction",
    "EpDeployIntent",
    "EpDeployRecord",
    "EpVerdict",
    "InstanceWatch",
    "Refuse",
    "Swap",
    "Wait",
    "judge_instance",
    "plan_deploy",
]


@dataclass(frozen=True)
class EpDeployIntent:
    """What a deploy task wants: ``version_id`` of ``model_id`` served on ``endpoint_id`` by an instance ``name``."""

    model_id: str
    version_id: str
    endpoint_id: str
    name: str


@dataclass(frozen=True)
class EpDeployRecord:
    """What a try of a deploy task started: kept across tries (task state store) as :meth:`to_json`.

    :param instance_id: the instance.
    :param model_id: the model it was asked to serve.
    :param version_id: the version it was asked to serve.
    :param endpoint_id: the endpoint.
    :param name: the instance's name.
    :param action: ``deploy``, ``swap`` or ``found`` (an instance served the version already).
    """

    instance_id: str
    model_id: str
    version_id: str
    endpoint_id: str
    name: str
    action: Literal["deploy", "swap", "found"]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> EpDeployRecord | None:
        """A stored record, or None for anything that is not one (a store written by something else)."""
        record = stored_record(cls, value)
        if record is None:
            return None
        texts = (record.instance_id, record.model_id, record.version_id, record.endpoint_id, record.name)
        if not all(isinstance(text, str) and text for text in texts) or record.action not in (
            "deploy",
            "swap",
            "found",
        ):
            return None
        return record

    def is_for(self, intent: EpDeployIntent) -> bool:
        """The record is of a deploy of ``intent`` (the same model, version, endpoint and name)."""
        return (self.model_id, self.version_id, self.endpoint_id, self.name) == (
            intent.model_id,
            intent.version_id,
            intent.endpoint_id,
            intent.name,
        )


@dataclass(frozen=True)
class Deploy:
    """DeployServiceInstance, then wait for the instance."""


@dataclass(frozen=True)
class Swap:
    """UpdateServiceInstance of ``instance_id``'s ``source`` (``from_version``: what it served)."""

    instance_id: str
    from_version: str | None


@dataclass(frozen=True)
class Wait:
    """Nothing to send: wait for ``instance_id``."""

    instance_id: str
    why: str
    action: Literal["deploy", "swap", "found"] = "found"


@dataclass(frozen=True)
class Refuse:
    """Do not deploy now; ``retryable`` when a later try may succeed (an instance busy or being deleted).
    ``instance``: the failed instance, when that is why."""

    reason: str
    retryable: bool
    instance: FabricEpInstance | None = None


EpDeployAction = Deploy | Swap | Wait | Refuse


def _alive(instance: FabricEpInstance) -> bool:
    return not instance.status.is_gone()


def plan_deploy(
    intent: EpDeployIntent,
    listed: Sequence[FabricEpInstance],
    record: EpDeployRecord | None,
    recorded: FabricEpInstance | None = None,
) -> EpDeployAction:
    """The next step of a deploy of ``intent``.

    :param intent: what the task wants.
    :param listed: ListServicesInstances of the model on the endpoint (``source_id``, ``endpoint_id``; every
        version).
    :param record: what an earlier try of this task started (None: nothing).
    :param recorded: ShowServiceInstanceDetail of ``record.instance_id`` (None: it is gone, or no record).
    """
    if record is not None and record.is_for(intent) and recorded is not None and _alive(recorded):
        return Wait(recorded.id, f"an earlier try's {record.action} is in flight: reconnecting to it", record.action)
    on_endpoint = [i for i in listed if i.endpoint_id in (None, intent.endpoint_id) and i.model_id == intent.model_id]
    serving = [i for i in on_endpoint if i.version_id == intent.version_id and _alive(i)]
    healthy = [i for i in serving if i.status is not FabricEpStatus.FAILED]
    if healthy:
        mine = [i for i in healthy if i.name == intent.name] or healthy
        best = next((i for i in mine if i.status is FabricEpStatus.RUNNING), mine[0])
        return Wait(best.id, f"instance {best.id} serves this version already ({best.status.value})")
    named = [i for i in on_endpoint if i.name == intent.name and _alive(i)]
    if serving and not [i for i in named if i.version_id != intent.version_id]:
        failed = serving[0]
        return Refuse(
            f"instance {failed.id} of this version failed: delete it to deploy again", retryable=False, instance=failed
        )
    if not named:
        return Deploy()
    if len(named) > 1:
        ids = ", ".join(sorted(i.id for i in named))
        return Refuse(f"{len(named)} instances are named {intent.name} on the endpoint ({ids})", retryable=False)
    other = named[0]
    if other.status.is_transient():
        return Refuse(f"instance {other.id} is {other.status.value}: swap the version once it settles", retryable=True)
    return Swap(other.id, other.version_id)


@dataclass(frozen=True)
class EpVerdict:
    """:func:`judge_instance`'s answer: ``state`` ``done``, ``wait`` or ``failed`` (``error_code`` and ``error_msg``
    then say why: the service's, or ours)."""

    state: Literal["done", "wait", "failed"]
    outlook: str
    error_code: str | None = None
    error_msg: str | None = None


def judge_instance(found: FabricEpInstance, *, version_id: str, stale_polls: int = 0, max_stale: int = 3) -> EpVerdict:
    """One ShowServiceInstanceDetail answer against the success rule: ``RUNNING`` with ``source.version_id`` the
    version deployed. ``FAILED``: failed, with the service's ``error_code`` and ``error_msg``; a status a deploy does
    not end in (``STOPPED``, ``SUCCEEDED``, ``DELETED`` ...): failed; ``RUNNING`` another version for more than
    ``max_stale`` polls in a row: failed (another change won).

    :param found: the answer.
    :param version_id: the version the deploy asked for.
    :param stale_polls: polls in a row before this one that saw ``RUNNING`` with another version.
    :param max_stale: such polls tolerated (an update not yet visible).
    """
    status = found.status
    seen = f"{status.value}, version {found.version_id}"
    if status is FabricEpStatus.FAILED:
        return EpVerdict("failed", seen, found.error_code or "FAILED", found.error_msg or "the instance failed")
    if status is FabricEpStatus.RUNNING:
        if found.version_id == version_id:
            return EpVerdict("done", seen)
        if stale_polls + 1 > max_stale:
            why = f"the instance runs version {found.version_id}, not {version_id}: another change won"
            return EpVerdict("failed", seen, found.error_code or "VersionMismatch", why)
        return EpVerdict("wait", seen)
    if status in (FabricEpStatus.PENDING, FabricEpStatus.CREATING, FabricEpStatus.UPDATING):
        return EpVerdict("wait", seen)
    why = f"the instance settled in {status.value}, not RUNNING"
    return EpVerdict("failed", seen, found.error_code or status.value, found.error_msg or why)


@dataclass
class InstanceWatch:
    """What a wait on an instance carries from one poll to the next (plain data; the operator's poll loop and the
    trigger each drive one).

    :param version_id: the version the deploy asked for.
    :param max_stale: polls in a row tolerated that see ``RUNNING`` with another version.
    """

    version_id: str
    max_stale: int = 3
    stale_polls: int = 0
    outlook: str | None = None

    def observe(self, found: FabricEpInstance) -> tuple[EpVerdict, str | None]:
        """The verdict on one answer, and what to log (None: the same as the last poll saw)."""
        verdict = judge_instance(
            found, version_id=self.version_id, stale_polls=self.stale_polls, max_stale=self.max_stale
        )
        stale = found.status is FabricEpStatus.RUNNING and found.version_id != self.version_id
        self.stale_polls = self.stale_polls + 1 if stale else 0
        news = None if verdict.outlook == self.outlook else verdict.outlook
        self.outlook = verdict.outlook
        return verdict, news
