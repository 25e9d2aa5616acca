"""Triggers for the PAI registry: the deferrable approval wait (here) and the asset-watcher event trigger
(:mod:`airflow_provider_modelreg.triggers.watcher`, importable from here as well).

Both drive the decision core (:mod:`airflow_provider_modelreg.approval`) through the shared-read hub
(:mod:`airflow_provider_modelreg.triggers.hub`): per event loop and connection there is one
:class:`~airflow_provider_modelreg.triggers.hub.PaiPollHub` with one hook (one async connection pool) that answers
each read once for every trigger that asks it while the answer is younger than that trigger's poll interval. A
thousand waits on a few models cost a few requests per interval.

Trigger kwargs are stored in plain text by Airflow: they hold ids, the conn id and plain numbers (the per-task
``max_attempts`` / ``call_timeout``) only; credentials are resolved inside ``run()`` with the async
connection API. Triggers share a hub only when their connection and request settings are equal. Triggers are
stored by classpath: both keep the one under this module.
"""

from __future__ import annotations

from dataclasses import InitVar, dataclass
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.approval import (
    DEFAULT_ALIAS_KEY,
    ApprovalDecision,
    ApprovalTarget,
    Outcome,
    parse_created_after,
)
from airflow_provider_modelreg.renamed import renamed_class, take_renamed

# The hub and the watcher had their home here: their names stay importable from this module (the watcher's
# serialized classpath is this module's, see triggers/watcher.py); ``X as X`` marks a re-export.
from airflow_provider_modelreg.triggers.hub import _HUBS as _HUBS
from airflow_provider_modelreg.triggers.hub import HUB_MAX_IN_FLIGHT, LOG_HEARTBEAT, PaiPollHub, masked
from airflow_provider_modelreg.triggers.hub import PollHub as PollHub
from airflow_provider_modelreg.triggers.hub import _Entry as _Entry
from airflow_provider_modelreg.triggers.polling import ModelVersionWaitTrigger
from airflow_provider_modelreg.triggers.watcher import _WATCH_GROUPS as _WATCH_GROUPS
from airflow_provider_modelreg.triggers.watcher import (
    LEGACY_STATE_KEY,
    MAX_WATCH_BACKOFF,
    PaiModelVersionApprovedEventTrigger,
    PaiWatchProducer,
    observe,
)
from airflow_provider_modelreg.triggers.watcher import _backoff as _backoff
from airflow_provider_modelreg.triggers.watcher import _stream_key as _stream_key
from airflow_provider_modelreg.triggers.watcher import _watch_failed as _watch_failed
from airflow_provider_modelreg.triggers.watcher import _WatchGroup as _WatchGroup
from airflow_provider_modelreg.validation import rendered_optional, rendered_required

#: an argument not given (None is a value: a stored trigger of an older release has its deprecated names as None)
_NOT_GIVEN: Any = object()

__all__ = [
    "HUB_MAX_IN_FLIGHT",
    "LEGACY_STATE_KEY",
    "LOG_HEARTBEAT",
    "MAX_WATCH_BACKOFF",
    "PaiModelVersionApprovedEventTrigger",
    "PaiModelVersionApprovedTrigger",
    "PaiPollHub",
    "PaiWatchProducer",
    "masked",
    "observe",
]


@dataclass(kw_only=True, eq=False, repr=False)
class PaiModelVersionApprovedTrigger(ModelVersionWaitTrigger):
    """Waits until a PAI model version is Approved (or Rejected), polling through the shared hub.

    Events (``payload["status"]``): ``success`` (``version`` = ModelVersionRef dict), ``rejected`` (``version``),
    ``timeout`` (``end_time`` passed; it also bounds a poll in flight), ``error`` (``message``, ``error_type``)
    after ``max_failures`` consecutive failed polls, or at once for bad input, refused credentials and answers
    the gate cannot judge.

    :param pai_conn_id: Airflow connection id (credentials are looked up inside ``run()``).
    :param model_id: PAI ModelId.
    :param version_name: wait for this version; None = the next approved version after the anchor.
    :param after_version: anchor: versions newer than this one count.
    :param created_after: anchor: ISO 8601 time with offset.
    :param alias: follow the version holding the label ``alias_key=alias`` (the newest holder) instead.
    :param alias_key: the label key of aliases (default ``alias``). Stored triggers of older releases have neither:
        they rebuild with the defaults.
    :param poke_interval: seconds between polls.

    And the arguments of every wait: ``end_time``, ``max_failures``, ``max_attempts`` and ``call_timeout``
    (:class:`~airflow_provider_modelreg.triggers.polling.PollingTrigger`); stored triggers of older releases name
    the last two ``request_attempts`` and ``request_timeout``: still accepted.
    """

    hub_class: ClassVar[Any] = PaiPollHub
    event_fields: ClassVar[tuple[str, ...]] = ("model_id",)

    pai_conn_id: str
    model_id: str
    version_name: str | None = None
    after_version: str | None = None
    created_after: str | None = None
    alias: str | None = None
    alias_key: str = DEFAULT_ALIAS_KEY
    poke_interval: float = 60.0
    #: the deprecated names of max_attempts and call_timeout (stored by older releases): accepted, not stored
    request_attempts: InitVar[Any] = _NOT_GIVEN
    request_timeout: InitVar[Any] = _NOT_GIVEN

    def __post_init__(self, request_attempts: Any, request_timeout: Any) -> None:
        super().__post_init__()
        old = {"request_attempts": request_attempts, "request_timeout": request_timeout}
        given = take_renamed(
            type(self).__name__,
            {name: value for name, value in old.items() if value is not _NOT_GIVEN},
            stacklevel=4,  # the constructor's caller (through the dataclass's __init__)
            max_attempts=self.max_attempts,
            call_timeout=self.call_timeout,
        )
        self.max_attempts, self.call_timeout = given["max_attempts"], given["call_timeout"]

    def target(self) -> ApprovalTarget:
        """The stored arguments, checked (a typed error naming the field)."""
        return ApprovalTarget(
            model_id=rendered_required(self.model_id, "model_id"),
            version_name=rendered_optional(self.version_name, "version_name"),
            after_version=rendered_optional(self.after_version, "after_version"),
            created_after=parse_created_after(self.created_after),
            alias=rendered_optional(self.alias, "alias"),
            alias_key=self.alias_key,
        )

    def _timeout(self) -> TriggerEvent:
        return self._event("timeout", message=f"no approval before the sensor timeout ({self.end_time})")

    async def _judge(self, hub: PaiPollHub, decision: ApprovalDecision) -> TriggerEvent | None:
        if decision.version is None or not decision.outcome.is_terminal():
            return None
        try:  # the workspace lookup is a read like the others: within the same failure budget
            ref = await hub.version_ref(self.model_id, decision.version, self.poke_interval)
        except Exception as exc:
            details = f"for model {self.model_id}: version {decision.version.version_name} decided, its details"
            return self._failed(exc, details)
        return self._event("success" if decision.outcome is Outcome.APPROVED else "rejected", version=ref)


def __getattr__(name: str) -> Any:  # the classes' deprecated names (stored triggers keep their old classpath)
    return renamed_class(globals(), name)
