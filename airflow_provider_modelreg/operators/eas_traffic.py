"""Roll back, delete and clean up PAI-EAS services (the decisions: :mod:`airflow_provider_modelreg.eas_traffic`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, conf

from airflow_provider_modelreg.eas_deploy import RolloutWatch
from airflow_provider_modelreg.eas_models import EasService, EasServiceStatus
from airflow_provider_modelreg.eas_traffic import (
    EasRollbackError,
    EasSafetyLockError,
    judge_rollback,
    lock_forbids,
    plan_cleanup,
    plan_rollback,
)
from airflow_provider_modelreg.errors import (
    RegistryAPIError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryWaitTimeoutError,
)
from airflow_provider_modelreg.hooks.eas import PaiEasHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.operators.base import RegistryOperatorBase
from airflow_provider_modelreg.validation import check_eas_id, check_eas_text, rendered_required

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PaiEasCleanupOperator", "PaiEasDeleteServiceOperator", "PaiEasRollbackOperator"]

_DEFAULT_CONN = PaiModelRegistryHook.default_conn_name


def _locked_refusal(exc: RegistryAPIError) -> bool:
    """EAS refused a change because of the service's safety lock (a lock set after we looked)."""
    return "lock" in (exc.code or "").lower()


class _EasOperator(RegistryOperatorBase[PaiEasHook]):
    ui_color = "#e0f0e0"
    pai_conn_id: str

    def _make_hook(self, **overrides: Any) -> PaiEasHook:
        return PaiEasHook(self.pai_conn_id, **overrides)

    def _name(self, value: Any, field: str = "service_name") -> str:
        return check_eas_id(rendered_required(value, field), field, "service_name")

    def _found(self, name: str) -> EasService | None:
        try:
            return self.hook.describe_service(name)
        except RegistryNotFoundError:
            return None


class PaiEasRollbackOperator(_EasOperator):
    """Rolls an EAS service back to an earlier version (UpdateServiceVersion) and verifies it: DescribeService until
    the deploy's success rule holds (``Running``, every instance running) with ``CurrentVersion`` the target.

    Without ``version`` the target is the version before the current one; the target is kept in Airflow 3.3's task
    state store, so a retry verifies the same rollback instead of rolling back once more. A service already on the
    target (or on its way to it) is only verified. A safety lock of ``all`` refuses before anything is sent
    (:class:`~airflow_provider_modelreg.eas_traffic.EasSafetyLockError`); a rollback that fails, settles elsewhere or
    ends on another version raises :class:`~airflow_provider_modelreg.eas_traffic.EasRollbackError`.

    XCom: the service summary (never a token).

    :param service_name: the service. (templated)
    :param version: the version to roll back to (1 or more, below the current; None: the previous). (templated)
    :param resource_wait_timeout: seconds the service may wait for resources (default 1,800).
    :param poll_interval: seconds between DescribeService polls (default 30).
    :param timeout: seconds the whole wait may take (default 3,600).
    :param deferrable: wait in the triggerer
        (:class:`~airflow_provider_modelreg.triggers.eas.PaiEasServiceTrigger`) instead of a worker slot.
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator.
    """

    template_fields: Sequence[str] = ("service_name", "version", "pai_conn_id")
    state_key = "modelreg_eas_rollback"

    def __init__(
        self,
        *,
        service_name: str,
        version: int | None = None,
        resource_wait_timeout: float = 1800.0,
        poll_interval: float = 30.0,
        timeout: float = 3600.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.version = version
        self.resource_wait_timeout = resource_wait_timeout
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.deferrable = deferrable
        self.pai_conn_id = pai_conn_id

    def _version(self) -> int | None:
        value = self.version
        if isinstance(value, str) and value.strip().isdigit():  # a rendered template
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise RegistryInputError("version", "must be an integer from 1 (or None: the previous version)", value)
        return value

    def run_registry(self, context: Context) -> dict[str, Any]:
        name, version = self._name(self.service_name), self._version()
        store = context.get("task_state_store")  # type: ignore[misc,unused-ignore]
        if store is None and version is None and self.retries:
            # "the previous version" is resolved once and kept for the retries; without a store to keep it in, a
            # retry after the rollback landed would roll back once more
            raise RegistryInputError(
                "version",
                "give the version to roll back to: without Airflow 3.3's task state store a retry of a rollback to "
                "'the previous version' could roll back twice (or set retries=0)",
            )
        record = store.get(self.state_key) if store is not None else None
        recorded = record.get("version") if isinstance(record, dict) and record.get("service_name") == name else None
        plan = plan_rollback(self.hook.describe_service(name), version, recorded if isinstance(recorded, int) else None)
        if plan.send:
            if store is not None:
                store.set(self.state_key, {"service_name": name, "version": plan.target})
            self.log.info("Rolling service %s back to version %d", name, plan.target)
            self.hook.update_service_version(name, plan.target)
        else:
            self.log.info("Service %s is on (or on its way to) version %d: verifying only", name, plan.target)
        if self.deferrable:
            self._defer(name, plan.target)
        watch = RolloutWatch(plan.target, float(self.resource_wait_timeout))
        deadline = time.monotonic() + float(self.timeout)
        while True:
            found = self.hook.describe_service(name)
            verdict, news = judge_rollback(watch, found, plan.target, time.time())
            if news is not None:
                self.log.info("Service %s: %s", name, news)
            if verdict.state == "done":
                self.log.info("Service %s serves version %d again", name, plan.target)
                return found.to_output()
            if verdict.state == "failed":
                raise EasRollbackError(name, plan.target, verdict.reason, verdict.message)
            if time.monotonic() >= deadline:
                raise RegistryWaitTimeoutError(f"EAS service {name} rollback to version {plan.target}", self.timeout)
            time.sleep(self.poll_interval)

    def _defer(self, name: str, target: int) -> None:
        from airflow_provider_modelreg.triggers.eas import PaiEasServiceTrigger

        self.defer(
            trigger=PaiEasServiceTrigger(
                pai_conn_id=self.pai_conn_id,
                service_name=name,
                expected_version=target,
                poll_interval=float(self.poll_interval),
                resource_wait_timeout=float(self.resource_wait_timeout),
                end_time=time.time() + float(self.timeout),
                max_attempts=self.max_attempts,
                call_timeout=self.call_timeout,
            ),
            method_name="execute_complete",
            kwargs={"target": target},
            timeout=timedelta(seconds=float(self.timeout) + 60),
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, target: int | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: the service must be ready with ``target`` current (the trigger's success only
        says a version at least the target is)."""
        if not isinstance(event, dict) or "status" not in event or not isinstance(target, int):
            raise AirflowException(f"unexpected trigger event: {event!r}")
        name, status, service = str(event.get("service_name")), event["status"], event.get("service")
        if status == "success" and isinstance(service, dict):
            if service.get("current_version") != target:
                why = f"version {service.get('current_version')} is current, not {target}: another change won"
                raise EasRollbackError(name, target, "RolledElsewhere", why)
            return service
        if status == "failed":
            raise EasRollbackError(name, target, event.get("reason"), event.get("message"))
        if status == "timeout":
            raise RegistryWaitTimeoutError(f"EAS service {name} rollback to version {target}", self.timeout)
        raise AirflowException(f"EAS rollback wait failed: {event.get('error_type')}: {event.get('message')}")


class PaiEasDeleteServiceOperator(_EasOperator):
    """Deletes an EAS service (DeleteService) and, with ``wait``, waits until DescribeService no longer finds it.

    A service that is already gone (404, before or during the delete) is success ("already gone"). A safety lock
    that forbids DeleteService (``dangerous`` or ``all``) fails the task before anything is sent
    (:class:`~airflow_provider_modelreg.eas_traffic.EasSafetyLockError`, naming the lock); so does EAS refusing the
    delete for a lock set meanwhile.

    XCom: ``{"service_name", "deleted"}`` (``deleted`` False: it was already gone).

    :param service_name: the service. (templated)
    :param wait: wait until the service is gone (default True).
    :param poll_interval: seconds between DescribeService polls while waiting (default 10).
    :param timeout: seconds the wait may take (default 1,800).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator.
    """

    template_fields: Sequence[str] = ("service_name", "pai_conn_id")

    def __init__(
        self,
        *,
        service_name: str,
        wait: bool = True,
        poll_interval: float = 10.0,
        timeout: float = 1800.0,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.service_name = service_name
        self.wait = wait
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> dict[str, Any]:
        name = self._name(self.service_name)
        found = self._found(name)
        if found is None:
            self.log.info("Service %s is already gone", name)
            return {"service_name": name, "deleted": False}
        if lock_forbids(found.safety_lock, "DeleteService"):
            raise EasSafetyLockError(name, found.safety_lock, "DeleteService")
        if found.status is not EasServiceStatus.DELETING:
            try:
                self.hook.delete_service(name)
            except RegistryNotFoundError:
                self.log.info("Service %s is already gone", name)
                return {"service_name": name, "deleted": False}
            except RegistryAPIError as exc:
                if _locked_refusal(exc):
                    raise EasSafetyLockError(name, f"set meanwhile ({exc.code})", "DeleteService") from exc
                raise
        self.log.info("Service %s is being deleted", name)
        deadline = time.monotonic() + float(self.timeout)
        while self.wait and self._found(name) is not None:
            if time.monotonic() >= deadline:
                raise RegistryWaitTimeoutError(f"EAS service {name} deletion", self.timeout)
            time.sleep(self.poll_interval)
        return {"service_name": name, "deleted": True}


class PaiEasCleanupOperator(_EasOperator):
    """Deletes the older EAS services of a model: lists the services labelled ``model_id=<model>`` (the label
    :class:`~airflow_provider_modelreg.operators.eas.PaiEasDeployOperator` gives them), keeps the newest ``keep`` by
    ``CreateTime`` (then name; never the server's order), never deletes a ``protect``-ed one (e.g. the one serving
    now), and skips, reporting why, a service whose safety lock forbids DeleteService, one already being deleted, and
    one whose age cannot be read (:func:`~airflow_provider_modelreg.eas_traffic.plan_cleanup` decides). Each service
    is described again just before its delete (a lock set since the listing is honoured). Deletes are not waited
    for.

    XCom: ``{"deleted": [...], "kept": [...], "skipped": [{"service_name", "reason"}], "plan_only"}`` (with
    ``plan_only``, ``deleted`` lists what would be deleted and nothing is).

    :param model_id: the PAI model whose services to clean up. (templated)
    :param keep: how many of the newest services to keep (1 or more; default 2).
    :param protect: service names never deleted. (templated)
    :param plan_only: decide and report, delete nothing (default False).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator.
    """

    template_fields: Sequence[str] = ("model_id", "protect", "pai_conn_id")

    def __init__(
        self,
        *,
        model_id: str,
        keep: int = 2,
        protect: Sequence[str] = (),
        plan_only: bool = False,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.keep = keep
        self.protect = protect
        self.plan_only = plan_only
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id = check_eas_text(rendered_required(self.model_id, "model_id"), "model_id")
        protect = [self.protect] if isinstance(self.protect, str) else list(self.protect or ())
        protected = {self._name(name, "protect") for name in protect}
        services = list(self.hook.list_services(label={"model_id": model_id}))
        plan = plan_cleanup(services, self.keep, protected)
        deleted: list[str] = []
        skipped = [{"service_name": name, "reason": reason} for name, reason in plan.skipped]
        for name in plan.delete:
            if self.plan_only:
                deleted.append(name)
                continue
            fresh = self._found(name)  # the listing's lock may be stale (or not listed): read it again
            if fresh is not None and lock_forbids(fresh.safety_lock, "DeleteService"):
                skipped.append({"service_name": name, "reason": f"SafetyLock {fresh.safety_lock}"})
                continue
            try:
                self.hook.delete_service(name)
            except RegistryNotFoundError:
                self.log.info("Service %s is already gone", name)
            except RegistryAPIError as exc:
                if not _locked_refusal(exc):
                    raise
                skipped.append({"service_name": name, "reason": f"EAS refused: {exc.code}"})
                continue
            deleted.append(name)
        for entry in skipped:
            self.log.info("Skipped service %s: %s", entry["service_name"], entry["reason"])
        verb = "Would delete" if self.plan_only else "Deleted"
        self.log.info("%s %s; kept %s", verb, deleted or "nothing", list(plan.keep))
        return {"deleted": deleted, "kept": list(plan.keep), "skipped": skipped, "plan_only": self.plan_only}
