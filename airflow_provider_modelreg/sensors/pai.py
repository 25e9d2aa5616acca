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
    RECENT_PAGE_SIZE,
    ApprovalTarget,
    Decision,
    Outcome,
    decide,
    page_covers,
    parse_created_after,
)
from airflow_provider_modelreg.errors import RegistryInputError, RegistryNotFoundError
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
    :param version_name: the version to wait for; None waits for the next approved version created after
        ``after_version`` or ``created_after`` and returns the newest such one (Rejected ones are passed over).
        (templated)
    :param after_version: a version name: only versions created after it count. (templated)
    :param created_after: an aware datetime or ISO 8601 string with time: only versions created after it count.
        At most one of ``after_version`` and ``created_after``. (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)
    :param on_rejected: ``"fail"`` (default) or ``"skip"``.
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
        self.deferrable = deferrable

    def _target(self) -> ApprovalTarget:
        """The rendered arguments, validated (bad input fails before any request)."""
        return ApprovalTarget(
            model_id=self.model_id,
            version_name=self.version_name or None,
            after_version=self.after_version or None,
            created_after=parse_created_after(self.created_after),
        )

    @property
    def hook(self) -> PaiModelRegistryHook:
        return PaiModelRegistryHook(self.pai_conn_id)

    def _check(self, hook: PaiModelRegistryHook, target: ApprovalTarget) -> Decision:
        if target.version_name is not None:
            try:
                found = hook.get_model_version(target.model_id, target.version_name)
            except RegistryNotFoundError as exc:
                if exc.code == "InvalidModel.NotFound":
                    raise
                self.log.info("Version %s of model %s does not exist yet", target.version_name, target.model_id)
                return Decision(Outcome.WAITING)
            return decide(target, [found], None)
        anchor = target.created_after
        if target.after_version is not None:
            anchor = hook.get_model_version(target.model_id, target.after_version).gmt_create_time
        versions = hook.list_model_versions(
            target.model_id, order="DESC", max_results=RECENT_PAGE_SIZE, page_size=RECENT_PAGE_SIZE
        )
        if not page_covers(versions, target, anchor):
            versions += hook.list_model_versions(
                target.model_id, approval_status="Approved", order="DESC", max_results=RECENT_PAGE_SIZE
            )
        return decide(target, versions, anchor)

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
            self.log.info("Waiting for approval of model %s %s", self.model_id, self.version_name or "(next version)")
            return False
        ref = self._ref(hook, decision.version)
        if decision.outcome is Outcome.REJECTED:
            self._rejected(ref)
        self._persist_link(context, hook, ref)
        self.log.info("Model %s version %s is Approved; uri %s", self.model_id, ref["version_name"], ref["uri"])
        return PokeReturnValue(is_done=True, xcom_value=ref)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
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
            raise AirflowSensorTimeout(event.get("message", "sensor timed out"))
        if status == "error":
            raise AirflowException(f"approval wait failed: {event.get('error_type')}: {event.get('message')}")
        raise AirflowException(f"unexpected trigger event status {status!r}")
