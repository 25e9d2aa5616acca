"""What every sensor of the provider does with a failed poll and a deferral, whatever the registry: the
``max_failures`` budget of consecutive retryable failures (counted across reschedules in Airflow's task state store
on Airflow >= 3.3), the check before deferring and the wait's settings given to the trigger, and ``soft_fail`` on the
backstop timeout of a deferral. Mixed into a sensor class before
``BaseSensorOperator``; the sensor defines ``_poke`` (one check) and names its model in ``model_id``."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
)

from airflow_provider_modelreg.links import track_links
from airflow_provider_modelreg.validation import check_max_failures

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

__all__ = ["DEFAULT_MAX_FAILURES", "FAILURES_KEY", "FailedPollBudget"]

#: Consecutive failed polls a wait tolerates, in every mode (the triggers' default too).
DEFAULT_MAX_FAILURES = 5
#: Key of the consecutive-failure count in Airflow's task state store (reschedule mode, Airflow >= 3.3).
FAILURES_KEY = "modelreg_consecutive_failed_pokes"
#: The ``error`` Airflow gives a deferral whose backstop timeout fired: 3.x, then 2.x.
BACKSTOP_ERRORS = ("Trigger timeout", "Trigger/execution timeout")


def retryable(exc: BaseException) -> bool:
    """The one rule of every mode: only an error that says asking again can help is worth another poke."""
    return bool(getattr(exc, "retryable", False))


class FailedPollBudget:
    """The failed-poll rules of a sensor (see the module docstring)."""

    model_id: Any
    max_failures: int
    _failures: int
    reschedule: bool
    poke_interval: Any
    soft_fail: bool
    log: Any
    timeout: Any
    max_attempts: int | None
    call_timeout: float | None
    defer: Any
    _anchor: Any
    _outlook: str | None
    #: the skip message of a backstop timeout starts with this
    nothing_in_time: ClassVar[str] = "Nothing found in time"
    deferrable: bool
    closing_hook: Any
    hook: Any

    def __init__(self, *, settings: tuple[Any, Any], max_failures: int, **kwargs: Any) -> None:
        """The wait's settings, before the sensor's own.

        :param settings: ``max_attempts`` and ``call_timeout``, as ``request_settings`` took them from the sensor's
            constructor (before ``BaseOperator.__init__`` sees its ``kwargs``).
        :param max_failures: consecutive failed polls tolerated (checked).
        """
        super().__init__(**kwargs)
        self.max_attempts, self.call_timeout = settings
        self.max_failures = check_max_failures(max_failures)
        self._anchor = None
        self._outlook = None
        self._failures = 0  # consecutive failed pokes, where the sensor object lives across pokes
        track_links(self)  # type: ignore[arg-type]  # mixed into a sensor

    def _console_template(self, *, best_effort: bool) -> str | None:
        """The connection's ``console_url_template`` for the console links. ``best_effort``: a connection that cannot
        be read falls back to the default template (None) rather than hiding the outcome being reported.

        :param best_effort: fall back instead of raising.
        """
        from airflow_provider_modelreg.hooks.base import extra_str  # when a task runs, not at DAG parse

        try:
            return extra_str(self.hook.connection.extra_dejson, "console_url_template")
        except Exception:
            if not best_effort:
                raise
            return None

    def _trigger(self, **settings: Any) -> BaseTrigger:
        raise TypeError(f"{type(self).__name__} must define _trigger")

    def _complete(self, context: Context, event: dict[str, Any] | None) -> dict[str, Any]:
        raise TypeError(f"{type(self).__name__} must define _complete")

    def execute(self, context: Context, **safeguard: Any) -> Any:
        # Airflow 2 passes ``<Class>__sentinel`` to the execute a sensor inherits from this mixin (its execute
        # safeguard wraps only an execute defined in an operator class's own body): taken and not used.
        return self.closing_hook(lambda: self._execute(context))

    def _execute(self, context: Context) -> Any:
        if not self.deferrable:
            return self._wait_in_worker(context)
        return self._check_then_defer(context, self._trigger)

    def _wait_in_worker(self, context: Context) -> Any:
        """Poke and reschedule mode: the sensor's own loop."""
        return super().execute(context)  # type: ignore[misc]

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after deferral: validate the trigger's event and return the version's ref.

        :param context: the task's context.
        :param event: the trigger's event.
        """
        return self.closing_hook(lambda: self._complete(context, event))  # type: ignore[no-any-return]

    def _poke(self, context: Context) -> PokeReturnValue | bool:
        raise TypeError(f"{type(self).__name__} must define _poke")

    def _decide(self, check: Any, target: Any, reader: Callable[[Any], Any]) -> Any:
        """The decision of a decision core's ``check`` of ``target``, driven with ``reader``: the anchor it resolved
        is kept for the next poke (resolved once per task try), and what the wait sees is logged when it changes."""
        from airflow_provider_modelreg.approval_io import drive  # the I/O shell loads when a task runs

        drive(check, reader)
        self._anchor = check.anchor
        assert check.decision is not None
        if check.decision.outlook != self._outlook:  # a wait logs only when what it sees changes
            self._outlook = check.decision.outlook
            self.log.info("Model %s, waiting for %s: %s", target.model_id, target.describe(), self._outlook)
        return check.decision

    def _failure_store(self, context: Context) -> Any | None:
        """Where the consecutive-failure count outlives this run: Airflow's task state store (>= 3.3), used in
        reschedule mode only (in poke and deferrable mode this object lives across the pokes of the try)."""
        if not self.reschedule:
            return None
        store = context.get("task_state_store")  # type: ignore[misc,unused-ignore]
        if store is None or not callable(getattr(store, "get", None)) or not callable(getattr(store, "set", None)):
            return None
        return store

    def _stored_failures(self, store: Any | None) -> int:
        if store is None:
            return self._failures
        value = store.get(FAILURES_KEY, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0

    def _store_failures(self, store: Any | None, failures: int, before: int) -> None:
        self._failures = failures
        if store is not None and failures != before:
            store.set(FAILURES_KEY, failures)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One check; a retryable error counts against ``max_failures`` and the wait goes on (False)."""
        store = self._failure_store(context)
        stored = failures = self._stored_failures(store)
        # Below Airflow 3.3 nothing of a try survives a reschedule: retry a failed poke within this run.
        retry_here = self.reschedule and store is None
        while True:
            try:
                result = self._poke(context)
            except Exception as exc:
                if not retryable(exc):
                    raise
                failures += 1
                self.log.warning(
                    "Poke %d/%d for model %s failed (retryable): %s", failures, self.max_failures, self.model_id, exc
                )
                if failures >= self.max_failures:  # the try ends here (a retry has a store of its own)
                    self._failures = 0
                    raise
                if retry_here:
                    self._failures = failures
                    time.sleep(float(self.poke_interval))
                    continue
                self._store_failures(store, failures, stored)
                return False
            self._store_failures(store, 0, stored)
            return result

    def _check_then_defer(self, context: Context, trigger: Callable[..., BaseTrigger]) -> Any:
        """Deferrable mode: the worker checks once (the result, when that check is done), then defers to
        ``trigger(**settings)``: the wait's settings (``poke_interval``, ``end_time`` from the sensor's ``timeout``,
        ``max_failures``, ``max_attempts``, ``call_timeout``), resumed in ``execute_complete``."""
        result = self.poke(context)  # the worker checks once before deferring
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        timeout = float(self.timeout) if self.timeout is not None else None
        self.defer(
            trigger=trigger(
                poke_interval=float(self.poke_interval),
                end_time=time.time() + timeout if timeout is not None else None,
                max_failures=self.max_failures,
                max_attempts=self.max_attempts,
                call_timeout=self.call_timeout,
            ),
            method_name="execute_complete",
            # backstop only: the trigger itself reports the timeout a little earlier, as a sensor timeout
            timeout=timedelta(seconds=timeout + 60) if timeout is not None else None,
        )

    @staticmethod
    def _end_wait(message: str, *, skip: bool) -> NoReturn:
        """End the task on a version the wait must not pass (Rejected, failed): skipped, or failed without retries.

        :param message: what was found, in the exception.
        :param skip: skip (the sensor's ``on_rejected`` / ``on_failed`` is ``"skip"``) rather than fail.
        """
        if skip:
            raise AirflowSkipException(message)
        raise AirflowFailException(message)

    @staticmethod
    def _wait_failed(event: dict[str, Any], what: str) -> NoReturn:
        """Raise for a trigger event that is neither an answer nor a timeout: an ``error``, or a status unknown.

        :param event: the trigger's (checked) event.
        :param what: the wait, in the error (``approval``, ``version``).
        """
        if event["status"] == "error":
            raise AirflowException(f"{what} wait failed: {event.get('error_type')}: {event.get('message')}")
        raise AirflowException(f"unexpected trigger event status {event['status']!r}")

    @staticmethod
    def _checked_event(event: dict[str, Any] | None) -> dict[str, Any]:
        """A trigger's event, which has a ``status`` (any other is refused)."""
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"unexpected trigger event: {event!r}")
        return event

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Airflow's resume (its ``soft_fail`` handling included), plus ``soft_fail`` and a deprecated
        ``skip_on_timeout`` on the backstop: Airflow ends a deferral the triggerer did not answer in time with a
        timeout of its own (``AirflowSensorTimeout`` on Airflow 3, ``TaskDeferralError("Trigger/execution
        timeout")`` on 2.x), and Airflow 3.0's sensor re-raises that one without looking at ``soft_fail``."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)  # type: ignore[misc]
        except AirflowSkipException:
            raise
        except Exception as exc:
            error = str((next_kwargs or {}).get("error", ""))
            backstop = next_method == "__fail__" and (error in BACKSTOP_ERRORS or isinstance(exc, AirflowSensorTimeout))
            if (getattr(self, "skip_on_timeout", False) or self.soft_fail) and backstop:
                raise AirflowSkipException(f"{self.nothing_in_time}: the deferral timed out ({error})") from exc
            raise
