"""Sensor that gates a DAG on a PAI model version being Approved."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.exceptions import AirflowProviderDeprecationWarning  # same home on Airflow 2.11 to 3.3
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_modelreg.approval import (
    DEFAULT_ALIAS_KEY,
    ApprovalCheck,
    ApprovalTarget,
    Outcome,
    check_alias_key,
    parse_created_after,
    rendered_optional,
    rendered_required,
)
from airflow_provider_modelreg.asset_events import emit_asset_events
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks import PAI_DEFAULT_CONN_ID
from airflow_provider_modelreg.links import PaiModelVersionLink
from airflow_provider_modelreg.sensors.polling import (
    BACKSTOP_ERRORS,
    DEFAULT_MAX_FAILURES,
    FailedPollBudget,
    retryable,
)
from airflow_provider_modelreg.sensors.polling import FAILURES_KEY as FAILURES_KEY
from airflow_provider_modelreg.task_hook import TaskHook

if TYPE_CHECKING:  # the hooks, the models and the triggers load when a task runs, not when a DAG file is parsed
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_modelreg.approval import ApprovalDecision
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

__all__ = ["DEFAULT_MAX_FAILURES", "PaiModelVersionApprovedSensor"]

_BACKSTOP_ERRORS = BACKSTOP_ERRORS  # its name before the failed-poll rules had their own module
_retryable = retryable


class PaiModelVersionApprovedSensor(FailedPollBudget, TaskHook["PaiModelRegistryHook"], BaseSensorOperator):
    """Waits until a PAI model version is Approved and pushes its ``ModelVersionRef`` dict (with ``uri``) to XCom.

    Rejected is terminal in PAI: the task fails at once without retries (``on_rejected="fail"``) or is
    skipped (``on_rejected="skip"``). Works in poke, reschedule and deferrable modes; in deferrable mode the worker
    checks once, then :class:`~airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedTrigger` waits, and
    the sensor ``timeout`` still applies.

    Failed polls: an error that says asking again can help (``retryable``: no answer, timeouts, 408/429/5xx,
    throttling, a credential service that is down) is logged at WARNING and the wait goes on; the
    ``max_failures``-th failed poll in a row, or any other error (refusals, bad input, answers the gate cannot
    judge), fails the task with that error. The same budget in every mode: the trigger counts in deferrable
    mode; in reschedule mode the count survives reschedules in Airflow's task state store (Airflow >= 3.3);
    below 3.3, where nothing of a try survives a reschedule, a failed poke in reschedule mode is retried in the
    same run after ``poke_interval`` (the worker slot is held only while polls fail).

    ``soft_fail=True`` (Airflow's convention) skips instead of failing on every timeout: the sensor's own, the
    trigger's, and Airflow's backstop when the triggerer did not answer in time (Airflow also skips on other
    failures then, as it does for every sensor).

    :param model_id: PAI ModelId. (templated)
    The mode is fixed by the arguments given here, never by what they render to: with ``version_name`` the
    sensor waits for that version, and its rendered value must be a non-empty string (``""``, ``"None"``, None
    or a non-string fail before any request). Without it, the sensor waits for the next Approved version newer
    than ``after_version`` or ``created_after``; a native None there (e.g. an ``XComArg`` of a task that found no
    deployed version yet) means "no anchor": the newest Approved version counts. See docs/semantics.md.

    With ``alias`` the sensor follows an alias (a label ``alias_key=alias``, as
    :class:`~airflow_provider_modelreg.operators.pai_lifecycle.PaiSetModelVersionAliasOperator` keeps it on one
    version): each poke resolves the version holding it (the newest holder by creation time, then name, while a
    move leaves two) and the wait is done when that version is Approved. No holder, or a holder that is Pending or
    Rejected, is waited past: the alias can move. ``alias`` cannot be combined with ``version_name``,
    ``after_version`` or ``created_after``.

    :param version_name: the version to wait for. (templated)
    :param after_version: a version name: only versions newer than it count (None: no anchor). (templated)
    :param created_after: an aware datetime or ISO 8601 string with time: only versions created after it count
        (None: no anchor). At most one of ``after_version`` and ``created_after``. (templated)
    :param alias: follow the version holding this alias (the label's value, e.g. ``champion``). (templated)
    :param alias_key: the label key of aliases (default ``alias``).
    :param pai_conn_id: connection of type ``pai``. (templated)
    :param on_rejected: ``"fail"`` (default) or ``"skip"``.
    :param skip_on_timeout: deprecated, use ``soft_fail=True``. When nothing was approved before ``timeout``
        (the backstop included), skip the task instead of failing it; unlike ``soft_fail``, errors and Rejected
        versions still fail.
    :param max_failures: consecutive failed polls tolerated, in every mode: the ``max_failures``-th retryable
        failure in a row fails the task (an integer from 1 to 1000; default 5). Not the task's ``retries``.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param max_attempts: attempts per registry request for this task and its trigger (1-20; default: the
        connection's ``max_attempts``, else 5). Not the task's ``retries``. (Deprecated name:
        ``request_attempts``.)
    :param call_timeout: seconds one registry call may take, every attempt and wait included, for this task
        and its trigger (default: the connection's ``call_timeout``, else 120). Not the sensor's ``timeout``.
        (Deprecated name: ``request_timeout``.)
    """

    template_fields: Sequence[str] = (
        "model_id",
        "version_name",
        "after_version",
        "created_after",
        "alias",
        "pai_conn_id",
    )
    operator_extra_links = (PaiModelVersionLink(),)
    ui_color = "#ffe8cc"
    nothing_in_time = "Nothing approved in time"

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str | None = None,
        after_version: str | None = None,
        created_after: datetime | str | None = None,
        alias: str | None = None,
        alias_key: str = DEFAULT_ALIAS_KEY,
        pai_conn_id: str = PAI_DEFAULT_CONN_ID,
        on_rejected: str = "fail",
        skip_on_timeout: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        max_failures: int = DEFAULT_MAX_FAILURES,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            settings=self.request_settings(kwargs, max_attempts, call_timeout), max_failures=max_failures, **kwargs
        )
        if skip_on_timeout:
            warnings.warn(
                "skip_on_timeout is deprecated: pass soft_fail=True (Airflow's convention), which skips on every "
                "timeout, Airflow's deferral backstop included. Note that soft_fail also skips, rather than fails, "
                "on the failures Airflow lets it (e.g. a Rejected version).",
                AirflowProviderDeprecationWarning,
                stacklevel=2,
            )
        if on_rejected not in ("fail", "skip"):
            raise RegistryInputError("on_rejected", "must be 'fail' or 'skip'", on_rejected)
        if alias is not None:
            given = [
                n
                for n, x in (
                    ("version_name", version_name),
                    ("after_version", after_version),
                    ("created_after", created_after),
                )
                if x is not None
            ]
            if given:
                raise RegistryInputError("alias", f"cannot be combined with {given[0]}: give one of them")
        check_alias_key(alias_key)
        if version_name is not None and (after_version is not None or created_after is not None):
            raise RegistryInputError("version_name", "cannot be combined with after_version or created_after")
        if after_version is not None and created_after is not None:
            raise RegistryInputError("after_version", "give at most one of after_version and created_after")
        self.model_id = model_id
        self.version_name = version_name
        self.after_version = after_version
        self.created_after = created_after
        self.alias = alias
        self.alias_key = alias_key
        self.pai_conn_id = pai_conn_id
        self.on_rejected = on_rejected
        self.skip_on_timeout = skip_on_timeout
        self.deferrable = deferrable
        # The mode, fixed by the arguments given (an XComArg or a template counts as given).
        self._named = version_name is not None
        self._follows_alias = alias is not None

    def _target(self) -> ApprovalTarget:
        """The rendered arguments, validated (bad input fails before any request)."""
        if self._follows_alias:
            return ApprovalTarget(
                model_id=rendered_required(self.model_id, "model_id"),
                alias=rendered_required(self.alias, "alias"),
                alias_key=self.alias_key,
            )
        if self._named:
            return ApprovalTarget(
                model_id=rendered_required(self.model_id, "model_id"),
                version_name=rendered_required(self.version_name, "version_name"),
            )
        return ApprovalTarget(
            model_id=rendered_required(self.model_id, "model_id"),
            after_version=rendered_optional(self.after_version, "after_version"),
            created_after=parse_created_after(self.created_after),
        )

    def _make_hook(self, **overrides: Any) -> PaiModelRegistryHook:
        from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

        return PaiModelRegistryHook(self.pai_conn_id, **overrides)

    def _check(self, hook: PaiModelRegistryHook, target: ApprovalTarget) -> ApprovalDecision:
        from airflow_provider_modelreg.approval_io import read

        check = ApprovalCheck(target, anchor=self._anchor)
        decision: ApprovalDecision = self._decide(check, target, lambda what: read(hook, what))
        return decision

    def _persist_link(self, ref: dict[str, Any], context: Context, *, best_effort: bool = False) -> None:
        """Keep the console link of ``ref`` for this try. ``best_effort``: a connection that cannot be read (the
        template lives there) falls back to the default template rather than hiding the outcome being reported."""
        PaiModelVersionLink.persist(self, ref, self._console_template(best_effort=best_effort), context=context)

    def _persist_waiting_link(self, target: ApprovalTarget, context: Context) -> None:
        """While waiting: link the named version, or the model (its workspace read once per hook)."""
        hook = self.hook
        self._persist_link(
            {
                "model_id": target.model_id,
                "region": hook.region,
                "workspace_id": hook.model_workspace(target.model_id),
                "version_name": target.version_name,
                "version_id": target.version_name,
            },
            context,
        )

    @staticmethod
    def _event_ref(event: dict[str, Any]) -> dict[str, Any]:
        from airflow_provider_modelreg.models import ModelVersionRef

        try:
            return ModelVersionRef.from_xcom(event.get("version") or {}).to_xcom()
        except ValueError as exc:
            raise AirflowException(f"trigger event carries no valid model version: {exc}") from None

    def _approved_event_ref(self, event: dict[str, Any]) -> dict[str, Any]:
        """The success event's version, checked against this wait before the gate opens on it: the same model, the
        named version (or the alias's label), and Approved with a Uri."""
        ref = self._event_ref(event)
        target = self._target()
        problems = []
        if ref["model_id"] != target.model_id:
            problems.append(f"is of model {ref['model_id']}, not {target.model_id}")
        if target.version_name is not None and ref["version_name"] != target.version_name:
            problems.append(f"is version {ref['version_name']}, not {target.version_name}")
        if target.label is not None and ref.get("labels", {}).get(target.label[0]) != target.label[1]:
            problems.append(f"does not carry the label {target.label[0]}={target.label[1]}")
        if ref.get("approval_status") != "Approved" or not ref.get("uri"):
            problems.append(f"is {ref.get('approval_status')!r} with uri {ref.get('uri')!r}, not Approved with a Uri")
        if problems:
            raise AirflowException(f"the trigger's success event {'; '.join(problems)}: the gate does not open on it")
        return ref

    def _rejected(self, ref: dict[str, Any]) -> NoReturn:
        message = f"Model {self.model_id} version {ref.get('version_name')} was Rejected (terminal in PAI)"
        self._end_wait(message, skip=self.on_rejected == "skip")

    def _poke(self, context: Context) -> PokeReturnValue | bool:
        target = self._target()
        hook = self.hook
        decision = self._check(hook, target)
        if decision.version is None or decision.outcome is Outcome.WAITING:
            self._persist_waiting_link(target, context)
            return False
        ref = hook.version_ref(target.model_id, decision.version).to_xcom()
        self._persist_link(ref, context, best_effort=decision.outcome is Outcome.REJECTED)
        if decision.outcome is Outcome.REJECTED:
            self._rejected(ref)
        self.log.info("Model %s version %s is Approved; uri %s", self.model_id, ref["version_name"], ref["uri"])
        emit_asset_events(self, context, "model_version", ref)
        return PokeReturnValue(is_done=True, xcom_value=ref)

    def _timed_out(self, message: str) -> NoReturn:
        if self.skip_on_timeout:
            raise AirflowSkipException(f"Nothing approved in time: {message}")
        raise AirflowSensorTimeout(message)

    def _wait_in_worker(self, context: Context) -> Any:
        try:
            return super()._wait_in_worker(context)
        except AirflowSensorTimeout as exc:
            self._timed_out(str(exc))

    def _trigger(self, **settings: Any) -> BaseTrigger:
        from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

        target = self._target()
        self.log.info("Deferring: the triggerer waits for approval of model %s", self.model_id)
        return PaiModelVersionApprovedTrigger(
            pai_conn_id=self.pai_conn_id,
            model_id=target.model_id,
            version_name=target.version_name,
            after_version=target.after_version,
            created_after=target.created_after.isoformat() if target.created_after else None,
            alias=target.alias,
            alias_key=target.alias_key,
            **settings,
        )

    def _complete(self, context: Context, event: dict[str, Any] | None) -> dict[str, Any]:
        event = self._checked_event(event)
        status = event["status"]
        if status == "success":
            ref = self._approved_event_ref(event)
            self._persist_link(ref, context)
            self.log.info("Model %s version %s is Approved; uri %s", self.model_id, ref["version_name"], ref["uri"])
            emit_asset_events(self, context, "model_version", ref)
            return ref
        if status == "rejected":
            ref = self._event_ref(event)
            self._persist_link(ref, context, best_effort=True)
            self._rejected(ref)
        if status == "timeout":
            self._timed_out(str(event.get("message", "sensor timed out")))
        self._wait_failed(event, "approval")
