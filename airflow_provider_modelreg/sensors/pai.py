"""Sensor that gates a DAG on a PAI model version being Approved."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from airflow_provider_modelreg.approval import (
    Anchor,
    ApprovalCheck,
    ApprovalTarget,
    Decision,
    Outcome,
    parse_created_after,
    rendered_optional,
    rendered_required,
)
from airflow_provider_modelreg.approval_io import drive, read
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.base import extra_str
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.links import PaiModelVersionLink
from airflow_provider_modelreg.models import ModelVersionRef, PaiModelVersion

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PaiModelVersionApprovedSensor"]


class PaiModelVersionApprovedSensor(BaseSensorOperator):
    """Waits until a PAI model version is Approved and pushes its ``ModelVersionRef`` dict (with ``uri``) to XCom.

    Rejected is terminal in PAI: the task fails at once without retries (``on_rejected="fail"``) or is
    skipped (``on_rejected="skip"``). Works in poke, reschedule and deferrable modes; in deferrable mode the worker
    checks once, then :class:`~airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovalTrigger` waits, and
    the sensor ``timeout`` still applies.

    :param model_id: PAI ModelId. (templated)
    The mode is fixed by the arguments given here, never by what they render to: with ``version_name`` the
    sensor waits for that version, and its rendered value must be a non-empty string (``""``, ``"None"``, None
    or a non-string fail before any request). Without it, the sensor waits for the next Approved version newer
    than ``after_version`` or ``created_after``; a native None there (e.g. an ``XComArg`` of a task that found no
    deployed version yet) means "no anchor": the newest Approved version counts. See README "Semantics".

    :param version_name: the version to wait for. (templated)
    :param after_version: a version name: only versions newer than it count (None: no anchor). (templated)
    :param created_after: an aware datetime or ISO 8601 string with time: only versions created after it count
        (None: no anchor). At most one of ``after_version`` and ``created_after``. (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)
    :param on_rejected: ``"fail"`` (default) or ``"skip"``.
    :param skip_on_timeout: when nothing was approved before ``timeout``, skip the task instead of failing it
        (a scheduled "deploy what is new" DAG whose steady state is "nothing new"). Unlike ``soft_fail``, errors
        and Rejected versions still fail.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "after_version", "created_after", "pai_conn_id")
    operator_extra_links = (PaiModelVersionLink(),)
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str | None = None,
        after_version: str | None = None,
        created_after: datetime | str | None = None,
        pai_conn_id: str = PaiModelRegistryHook.default_conn_name,
        on_rejected: str = "fail",
        skip_on_timeout: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_rejected not in ("fail", "skip"):
            raise RegistryInputError("on_rejected", "must be 'fail' or 'skip'", on_rejected)
        if version_name is not None and (after_version is not None or created_after is not None):
            raise RegistryInputError("version_name", "cannot be combined with after_version or created_after")
        if after_version is not None and created_after is not None:
            raise RegistryInputError("after_version", "give at most one of after_version and created_after")
        self.model_id = model_id
        self.version_name = version_name
        self.after_version = after_version
        self.created_after = created_after
        self.pai_conn_id = pai_conn_id
        self.on_rejected = on_rejected
        self.skip_on_timeout = skip_on_timeout
        self.deferrable = deferrable
        # The mode, fixed by the arguments given (an XComArg or a template counts as given).
        self._named = version_name is not None
        self._anchor: Anchor | None = None
        self._outlook: str | None = None

    def _target(self) -> ApprovalTarget:
        """The rendered arguments, validated (bad input fails before any request)."""
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

    @property
    def hook(self) -> PaiModelRegistryHook:
        return PaiModelRegistryHook(self.pai_conn_id)

    def _check(self, hook: PaiModelRegistryHook, target: ApprovalTarget) -> Decision:
        check = ApprovalCheck(target, anchor=self._anchor)
        drive(check, lambda what: read(hook, what))
        self._anchor = check.anchor  # resolved once per task try
        assert check.decision is not None
        if check.decision.outlook != self._outlook:  # a wait logs only when what it sees changes
            self._outlook = check.decision.outlook
            self.log.info("Model %s, waiting for %s: %s", target.model_id, target.describe(), self._outlook)
        return check.decision

    def _ref(self, hook: PaiModelRegistryHook, version: PaiModelVersion) -> dict[str, Any]:
        return version.to_ref(model_id=self.model_id, region=hook.region, workspace_id=hook.workspace_id).to_xcom()

    @staticmethod
    def _persist_link(context: Context, hook: PaiModelRegistryHook, ref: dict[str, Any]) -> None:
        template = extra_str(hook.connection.extra_dejson, "console_url_template")
        PaiModelVersionLink.persist(context, ref, template)

    @staticmethod
    def _event_ref(event: dict[str, Any]) -> dict[str, Any]:
        try:
            return ModelVersionRef.from_xcom(event.get("version") or {}).to_xcom()
        except ValueError as exc:
            raise AirflowException(f"trigger event carries no valid model version: {exc}") from None

    def _rejected(self, ref: dict[str, Any]) -> None:
        message = f"Model {self.model_id} version {ref.get('version_name')} was Rejected (terminal in PAI)"
        if self.on_rejected == "skip":
            raise AirflowSkipException(message)
        raise AirflowFailException(message)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        target = self._target()
        hook = self.hook
        decision = self._check(hook, target)
        if decision.version is None or decision.outcome is Outcome.WAITING:
            return False
        ref = self._ref(hook, decision.version)
        if decision.outcome is Outcome.REJECTED:
            self._rejected(ref)
        self._persist_link(context, hook, ref)
        self.log.info("Model %s version %s is Approved; uri %s", self.model_id, ref["version_name"], ref["uri"])
        return PokeReturnValue(is_done=True, xcom_value=ref)

    def _timed_out(self, message: str) -> None:
        if self.skip_on_timeout:
            raise AirflowSkipException(f"Nothing approved in time: {message}")
        raise AirflowSensorTimeout(message)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                self._timed_out(str(exc))
        result = self.poke(context)  # the worker checks once before deferring
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovalTrigger

        target = self._target()
        timeout = float(self.timeout) if self.timeout is not None else None
        end_time = time.time() + timeout if timeout is not None else None
        self.log.info("Deferring: the triggerer waits for approval of model %s", self.model_id)
        self.defer(
            trigger=PaiModelVersionApprovalTrigger(
                pai_conn_id=self.pai_conn_id,
                model_id=target.model_id,
                version_name=target.version_name,
                after_version=target.after_version,
                created_after=target.created_after.isoformat() if target.created_after else None,
                poke_interval=float(self.poke_interval),
                end_time=end_time,
            ),
            method_name="execute_complete",
            # backstop only: the trigger itself reports the timeout a little earlier, as a sensor timeout
            timeout=timedelta(seconds=timeout + 60) if timeout is not None else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after deferral: validate the trigger's event and return the approved version's ref."""
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"unexpected trigger event: {event!r}")
        status = event["status"]
        if status == "success":
            ref = self._event_ref(event)
            self._persist_link(context, self.hook, ref)
            self.log.info("Model %s version %s is Approved; uri %s", self.model_id, ref["version_name"], ref["uri"])
            return ref
        if status == "rejected":
            self._rejected(self._event_ref(event))
        if status == "timeout":
            self._timed_out(str(event.get("message", "sensor timed out")))
        if status == "error":
            raise AirflowException(f"approval wait failed: {event.get('error_type')}: {event.get('message')}")
        raise AirflowException(f"unexpected trigger event status {status!r}")
