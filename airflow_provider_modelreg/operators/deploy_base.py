"""What the two deploy operators (EAS, Fabric EP) share: a deploy that survives a worker crash.

A try records what it started in Airflow 3.3's task state store, so that a retry reconnects to the deploy in flight
instead of starting another; it then waits in the worker (a polling loop, bounded when the subclass says) or in the
triggerer (deferral), and reports the verified deploy. Each subclass supplies only its hook calls and its decision
core: what to start (``submit_job``), how to read the target, how to judge an answer, how a failure reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator, ResumableJobMixin

from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryWaitTimeoutError,
)
from airflow_provider_modelreg.hooks.base import ModelRegistryHookBase
from airflow_provider_modelreg.links import track_links
from airflow_provider_modelreg.models import ModelVersionRef
from airflow_provider_modelreg.task_hook import TaskHook

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

__all__ = ["ResumableDeployOperatorBase", "deployed_version"]

H = TypeVar("H", bound=ModelRegistryHookBase)
R = TypeVar("R")


class Observed(Protocol):
    """A read of the deploy's target (a service, an instance): its XCom summary."""

    def to_output(self) -> dict[str, Any]: ...


class Verdict(Protocol):
    """A decision core's verdict on one read: ``done``, ``wait`` or ``failed``."""

    @property
    def state(self) -> str: ...


#: A watch: the verdict on one read, and what to log (None: the same as the last read said).
Watch = Callable[[Any], tuple[Any, "str | None"]]


def deployed_version(value: Any, registry: str, vendor: str) -> ModelVersionRef:
    """The ``model_version`` a deploy was given, checked: a ``ModelVersionRef`` dict of ``registry``.

    :param value: the rendered ``model_version``.
    :param registry: the registry it must come from (``pai``, ``fabric``).
    :param vendor: the registry's name in the error (``PAI``, ``Fabric``).
    """
    if not isinstance(value, dict):
        raise RegistryInputError("model_version", "must be a ModelVersionRef dict (e.g. the sensor's XCom)", value)
    try:
        ref = ModelVersionRef.from_xcom(value)
    except ValueError as exc:
        raise RegistryInputError("model_version", f"is not a ModelVersionRef: {exc}") from None
    if ref.registry != registry:
        raise RegistryInputError("model_version", f"must be a {vendor} version (registry '{registry}')", ref.registry)
    return ref


class ResumableDeployOperatorBase(ResumableJobMixin, TaskHook[H], BaseOperator, Generic[H, R]):
    """A deploy operator's shared shell: record reuse through the task state store, the synchronous poll loop (with
    tolerated failures and an optional deadline), deferral, and the resume after the trigger.

    :param settings: ``max_attempts`` and ``call_timeout``, as ``request_settings`` took them from the subclass's
        constructor (before ``BaseOperator.__init__`` sees its ``kwargs``).
    :param poll_interval: seconds between polls.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    #: the task state store key of what a try started
    external_id_key: str
    #: what the target is, in log lines (``service``, ``instance``)
    noun: str
    #: the trigger event's key of the verified target's summary
    event_key: str
    #: the service the target runs on, in errors (``EAS``, ``Fabric EP``)
    vendor: str
    #: failed polls in a row tolerated while waiting in the worker (only failures asking again can cure)
    max_failures: int = 1
    ui_color = "#e0f0e0"

    def __init__(self, *, settings: tuple[Any, Any], poll_interval: float, deferrable: bool, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_attempts, self.call_timeout = settings
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self._result: dict[str, Any] | None = None
        track_links(self)

    # -- what each deploy operator supplies

    def _load(self, value: Any) -> R | None:
        """The record in ``value`` (a stored or submitted external id), None when it is not one."""
        raise NotImplementedError

    def _target(self, record: R) -> str:
        """The id of the record's target, for log lines and errors."""
        raise NotImplementedError

    def _is_current(self, record: R) -> bool:
        """The record is of this task's deploy (the store outlives a clear)."""
        raise NotImplementedError

    def _describe(self, record: R) -> Observed:
        """Read the record's target (:class:`RegistryNotFoundError` when it is gone)."""
        raise NotImplementedError

    def _watch(self, record: R) -> Watch:
        """A fresh watch of the record's target."""
        raise NotImplementedError

    def _failed(self, record: R, verdict: Any) -> NoReturn:
        """Raise the deploy error of a ``failed`` verdict."""
        raise NotImplementedError

    def _report(self, context: Context, output: dict[str, Any]) -> dict[str, Any]:
        """The verified deploy: links, asset events, write-back; returns the XCom."""
        raise NotImplementedError

    def _trigger(self, record: R, end_time: float | None) -> BaseTrigger:
        """The trigger that waits on the record's target in the triggerer."""
        raise NotImplementedError

    def _event_failed(self, context: Context, event: dict[str, Any]) -> NoReturn:
        """Raise for a ``failed`` or ``timeout`` trigger event."""
        raise NotImplementedError

    def _wait_seconds(self) -> float | None:
        """How long the worker's wait may take (None: unbounded, the decision core bounds it)."""
        return None

    # -- ResumableJobMixin

    def _stored(self, context: Context) -> R | None:
        """What an earlier try recorded (None: nothing, or no task state store on this Airflow)."""
        store = context.get("task_state_store")  # type: ignore[misc,unused-ignore]
        return self._load(store.get(self.external_id_key)) if store is not None else None

    def _record(self, external_id: Any) -> R:
        record = self._load(external_id)
        assert record is not None
        return record

    def get_job_status(self, external_id: Any, context: Context) -> str:
        record = self._load(external_id)
        if record is None or not self._is_current(record):
            # the store outlives a clear: a record of another deploy (e.g. an earlier version) is not this one's
            return "unknown"
        try:
            found = self._describe(record)
        except RegistryNotFoundError:
            return "gone"
        return str(self._watch(record)(found)[0].state)

    def is_job_active(self, status: str) -> bool:
        return status == "wait"

    def is_job_succeeded(self, status: str) -> bool:
        return status == "done"

    def poll_until_complete(self, external_id: Any, context: Context) -> dict[str, Any]:  # type: ignore[override]
        """Poll until the target serves (its report is the task's result: the mixin returns it on a reconnect) or
        fails; ``max_failures`` failed polls in a row asking again are tolerated, and the wait ends at
        :meth:`_wait_seconds` (:class:`RegistryWaitTimeoutError`)."""
        record = self._record(external_id)
        target = self._target(record)
        watch = self._watch(record)
        limit = self._wait_seconds()
        deadline = time.monotonic() + (limit or 0.0)
        failures = 0
        while True:
            if limit is not None and time.monotonic() >= deadline:
                raise RegistryWaitTimeoutError(f"{self.vendor} {self.noun} {target}", limit)
            try:
                found = self._describe(record)
            except ModelRegistryError as exc:
                failures += 1
                if not getattr(exc, "retryable", False) or failures >= self.max_failures:
                    raise
                self.log.warning("poll %d/%d of %s %s failed: %s", failures, self.max_failures, self.noun, target, exc)
                time.sleep(self.poll_interval)
                continue
            failures = 0
            verdict, news = watch(found)
            if news is not None:
                self.log.info("%s %s: %s", self.noun.capitalize(), target, news)
            if verdict.state == "done":
                self._result = self._report(context, found.to_output())
                return self._result
            if verdict.state == "failed":
                self._failed(record, verdict)
            time.sleep(self.poll_interval)

    def get_job_result(self, external_id: Any, context: Context) -> dict[str, Any]:
        if self._result is not None:  # reported when the poll saw it done
            return self._result
        return self._report(context, self._describe(self._record(external_id)).to_output())

    # -- execute

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return self.closing_hook(lambda: self.execute_resumable(context))
        return self.closing_hook(lambda: self._defer(context))

    def _defer(self, context: Context) -> Any:
        external_id = self.submit_job(context)
        store = context.get("task_state_store")  # type: ignore[misc,unused-ignore]
        if store is not None:
            store.set(self.external_id_key, external_id)
        timeout = self._wait_seconds()
        if timeout is None and self.execution_timeout:
            timeout = self.execution_timeout.total_seconds() or None
        self.defer(
            trigger=self._trigger(self._record(external_id), None if timeout is None else time.time() + timeout),
            method_name="execute_complete",
            timeout=None if timeout is None else timedelta(seconds=timeout + 60),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: validate its event.

        :param context: the task's context.
        :param event: the trigger's event.
        """
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"unexpected trigger event: {event!r}")
        status = event["status"]
        summary = event.get(self.event_key)
        if status == "success" and isinstance(summary, dict):
            return self.closing_hook(lambda: self._report(context, summary))
        if status in ("failed", "timeout"):
            self._event_failed(context, event)
        raise AirflowException(f"{self.vendor} deploy wait failed: {event.get('error_type')}: {event.get('message')}")
