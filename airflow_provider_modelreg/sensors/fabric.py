"""Sensor that waits for a DataArts Fabric model version: one matching a name or a name pattern, or the model's
current version moving past a given one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_modelreg.asset_events import emit_asset_events
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.fabric_wait import (
    FabricOutcome,
    FabricVersionCheck,
    FabricWaitTarget,
    failed_status,
)
from airflow_provider_modelreg.hooks import FABRIC_DEFAULT_CONN_ID
from airflow_provider_modelreg.links import FabricModelVersionLink
from airflow_provider_modelreg.sensors.polling import DEFAULT_MAX_FAILURES, FailedPollBudget
from airflow_provider_modelreg.task_hook import TaskHook
from airflow_provider_modelreg.validation import rendered_optional, rendered_required

if TYPE_CHECKING:  # the hooks, the models and the triggers load when a task runs, not when a DAG file is parsed
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

    from airflow_provider_modelreg.fabric_wait import FabricDecision
    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
    from airflow_provider_modelreg.models import FabricModelVersion

__all__ = ["FabricModelVersionSensor"]


class FabricModelVersionSensor(FailedPollBudget, TaskHook["FabricModelRegistryHook"], BaseSensorOperator):
    """Waits for a DataArts Fabric model version and pushes its ``ModelVersionRef`` dict (``uri``: the OBS path of
    the weights) to XCom.

    The wait is fixed by the arguments given here (an ``XComArg`` or a template counts as given), never by what
    they render to; give exactly one of:

    * ``version_name``: a version with exactly this name; ``version_pattern``: a version whose whole name matches
      this regular expression. The newest matching version (``create_time``, then ``id``) opens the wait; when it
      failed (its listed status ends in ``FAILED``), the task fails at once (``on_failed="fail"``) or is skipped
      (``on_failed="skip"``).
    * ``current_after`` (a version id) or ``current=True``: the model's current version (UpdateModelDefinition moves
      it) must be newer than the version ``current_after`` names; a native None there (e.g. an ``XComArg`` of a task
      that found no current version) or ``current=True`` alone: any current version opens the wait.

    Bad input (``""``, ``"None"``, a pattern that does not compile) fails with
    :class:`~airflow_provider_modelreg.errors.RegistryInputError` naming the field, before any request. Works in poke,
    reschedule and deferrable modes; in deferrable mode the worker checks once, then
    :class:`~airflow_provider_modelreg.triggers.fabric.FabricModelVersionTrigger` waits through the triggerer's
    shared hub. Failed polls follow the PAI sensor's rules: a retryable error is logged and the wait goes on, the
    ``max_failures``-th in a row (or any other error) fails the task.

    :param model_id: the model. (templated)
    :param workspace_id: the workspace (None: the connection's ``workspace_id``). (templated)
    :param version_name: wait for a version with this exact name. (templated)
    :param version_pattern: wait for a version whose whole name matches this regular expression. (templated)
    :param current_after: wait until the current version is newer than this version id. (templated)
    :param current: wait for the current version (implied by ``current_after``).
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)
    :param on_failed: ``"fail"`` (default) or ``"skip"`` when the version found failed.
    :param max_failures: consecutive failed polls tolerated, in every mode (1-1000; default 5).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param max_attempts: attempts per registry request for this task and its trigger (1-20; default: the
        connection's).
    :param call_timeout: seconds one registry call may take, every attempt and wait included (default: the
        connection's).
    """

    template_fields: Sequence[str] = (
        "model_id",
        "workspace_id",
        "version_name",
        "version_pattern",
        "current_after",
        "fabric_conn_id",
    )
    operator_extra_links = (FabricModelVersionLink(),)
    ui_color = "#e0f0ff"

    def __init__(
        self,
        *,
        model_id: str,
        workspace_id: str | None = None,
        version_name: str | None = None,
        version_pattern: str | None = None,
        current_after: str | None = None,
        current: bool = False,
        fabric_conn_id: str = FABRIC_DEFAULT_CONN_ID,
        on_failed: str = "fail",
        max_failures: int = DEFAULT_MAX_FAILURES,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            settings=self.request_settings(kwargs, max_attempts, call_timeout), max_failures=max_failures, **kwargs
        )
        if on_failed not in ("fail", "skip"):
            raise RegistryInputError("on_failed", "must be 'fail' or 'skip'", on_failed)
        if not isinstance(current, bool):
            raise RegistryInputError("current", "must be True or False", current)
        self._current = current or current_after is not None
        given = [n for n, x in (("version_name", version_name), ("version_pattern", version_pattern)) if x is not None]
        if self._current and given:
            raise RegistryInputError(given[0], "cannot be combined with current_after or current=True")
        if not self._current and len(given) != 1:
            raise RegistryInputError(
                "version_name", "give exactly one of version_name, version_pattern, current_after or current=True"
            )
        self.model_id = model_id
        self.workspace_id = workspace_id
        self.version_name = version_name
        self.version_pattern = version_pattern
        self.current_after = current_after
        self.current = current
        self.fabric_conn_id = fabric_conn_id
        self.on_failed = on_failed
        self.deferrable = deferrable

    def _target(self) -> FabricWaitTarget:
        """The rendered arguments, validated (bad input fails before any request)."""
        model_id = rendered_required(self.model_id, "model_id")
        workspace_id = rendered_optional(self.workspace_id, "workspace_id")
        if self._current:
            return FabricWaitTarget(
                model_id=model_id,
                workspace_id=workspace_id,
                current_after=rendered_optional(self.current_after, "current_after"),
                current=True,
            )
        if self.version_name is not None:
            return FabricWaitTarget(
                model_id=model_id,
                workspace_id=workspace_id,
                version_name=rendered_required(self.version_name, "version_name"),
            )
        return FabricWaitTarget(
            model_id=model_id,
            workspace_id=workspace_id,
            version_pattern=rendered_required(self.version_pattern, "version_pattern"),
        )

    def _make_hook(self, **overrides: Any) -> FabricModelRegistryHook:
        from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook

        return FabricModelRegistryHook(self.fabric_conn_id, **overrides)

    def _check(self, target: FabricWaitTarget) -> FabricDecision:
        from airflow_provider_modelreg.fabric_wait_io import read_fabric

        check = FabricVersionCheck(target, anchor=self._anchor)
        decision: FabricDecision = self._decide(check, target, lambda what: read_fabric(self.hook, what))
        return decision

    def _ref(self, target: FabricWaitTarget, version: FabricModelVersion) -> dict[str, Any]:
        workspace = self.hook.workspace(target.workspace_id)
        return version.to_ref(workspace_id=workspace, model_id=target.model_id, region=self.hook.region).to_xcom()

    def _persist_link(self, ref: dict[str, Any], context: Context) -> None:
        """Keep the console link of ``ref`` (best effort: a connection that cannot be read takes the default)."""
        FabricModelVersionLink.persist(self, ref, self._console_template(best_effort=True), context=context)

    def _finish(
        self, target: FabricWaitTarget, outcome: FabricOutcome, version: FabricModelVersion, context: Context
    ) -> dict[str, Any]:
        ref = self._ref(target, version)
        self._persist_link(ref, context)
        if outcome is FabricOutcome.FAILED:
            message = (
                f"Model {target.model_id} version {version.name!r} ({version.id}) failed ({failed_status(version)})"
            )
            self._end_wait(message, skip=self.on_failed == "skip")
        self.log.info("Model %s version %r (%s) found; uri %s", target.model_id, version.name, version.id, ref["uri"])
        emit_asset_events(self, context, "model_version", ref)
        return ref

    def _poke(self, context: Context) -> PokeReturnValue | bool:
        target = self._target()
        decision = self._check(target)
        if decision.version is None or decision.outcome is FabricOutcome.WAITING:
            return False
        ref = self._finish(target, decision.outcome, decision.version, context)
        return PokeReturnValue(is_done=True, xcom_value=ref)

    def _trigger(self, **settings: Any) -> BaseTrigger:
        from airflow_provider_modelreg.triggers.fabric import FabricModelVersionTrigger

        target = self._target()
        self.log.info("Deferring: the triggerer waits for %s of model %s", target.describe(), target.model_id)
        return FabricModelVersionTrigger(
            fabric_conn_id=self.fabric_conn_id,
            model_id=target.model_id,
            workspace_id=self.hook.workspace(target.workspace_id),
            version_name=target.version_name,
            version_pattern=target.version_pattern,
            current_after=target.current_after,
            current=target.current,
            **settings,
        )

    def _event_version(self, target: FabricWaitTarget, event: dict[str, Any]) -> FabricModelVersion:
        """The event's version, checked: a version of the wait's kind (a match wait's name matches)."""
        from airflow_provider_modelreg.models import FabricModelVersion

        try:
            version = FabricModelVersion.model_validate(event.get("version"))
        except ValueError as exc:
            raise AirflowException(f"trigger event carries no valid model version: {exc}") from None
        if event.get("model_id") != target.model_id:
            raise AirflowException(f"trigger event is about model {event.get('model_id')!r}, not {target.model_id}")
        if not target.current and not target.matches(version):
            raise AirflowException(f"trigger event names version {version.name!r}, not {target.describe()}")
        return version

    def _complete(self, context: Context, event: dict[str, Any] | None) -> dict[str, Any]:
        event = self._checked_event(event)
        status = event["status"]
        target = self._target()
        if status in ("success", "failed"):
            version = self._event_version(target, event)
            if status == "failed" and failed_status(version) is None:
                raise AirflowException(f"trigger event says version {version.id} failed; its status does not")
            outcome = FabricOutcome.FOUND if status == "success" else FabricOutcome.FAILED
            return self._finish(target, outcome, version, context)
        if status == "timeout":
            raise AirflowSensorTimeout(str(event.get("message", "sensor timed out")))
        self._wait_failed(event, "version")
