"""Operators for the lifecycle of a DataArts Fabric model version: register it, make it the current version."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf

from airflow_provider_modelreg.approval import check_poke_interval, rendered_optional, rendered_required
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryInputError,
    RegistryVersionFailedError,
    RegistryWaitTimeoutError,
)
from airflow_provider_modelreg.hooks.fabric import check_filterable
from airflow_provider_modelreg.hooks.fabric_lifecycle import (
    FabricNewVersion,
    create_model_spec,
    pick_registered,
    update_model_spec,
    version_failed,
)
from airflow_provider_modelreg.links import FabricModelVersionLink
from airflow_provider_modelreg.models import FabricModelVersion
from airflow_provider_modelreg.operators.fabric import _DEFAULT_CONN, _FabricOperator, _FabricVersionOperator
from airflow_provider_modelreg.triggers.fabric import FabricModelVersionListedTrigger
from airflow_provider_modelreg.validation import check_request_timeout

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["FabricRegisterModelVersionOperator", "FabricSetCurrentVersionOperator"]


class FabricRegisterModelVersionOperator(_FabricOperator):
    """Registers a version of a DataArts Fabric model (UpdateModelDefinition with a new version; or, with
    ``create_model=True`` and no model of ``model_name`` yet, CreateModelDefinition with it as the first version),
    waits until Fabric lists it, and returns its ``ModelVersionRef`` dict.

    Fabric creates versions asynchronously: the task polls ListModelVersions every ``poke_interval`` seconds for at
    most ``timeout`` seconds (:class:`~airflow_provider_modelreg.errors.RegistryWaitTimeoutError` after that, a
    retryable error: a later try finds the version once it lists). A version whose creation failed is a
    :class:`~airflow_provider_modelreg.errors.RegistryVersionFailedError` (not retried).

    Idempotent on (``version_name``, ``model_path``): a version with both, already listed, is this task's (a retry
    after a crash or a lost answer uses it instead of registering a second one); a request that may have arrived
    (no answer, a server error) is followed by that wait before it counts as failed. A try that crashed after its
    request and is retried before Fabric lists the version cannot see it and registers a second one: keep the
    task's ``retry_delay`` above the registration time.

    :param version_name: the version's name (Chinese characters, letters, digits, ``_``, ``-``, ``.``, space;
        1-64). (templated)
    :param model_path: ``obs://bucket/key`` of the weights. (templated)
    :param base_model_type: the base model type as ListBaseModels names it, e.g. ``QWEN_2_72B``. (templated)
    :param model_id: the model to add the version to. (templated)
    :param model_name: with ``create_model=True`` and no ``model_id``: the model's name; it is created when no model
        has it (the version is its first). (templated)
    :param create_model: allow CreateModelDefinition (default False).
    :param version_description: the version's description. (templated)
    :param model_description: a created model's description. (templated)
    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param timeout: seconds to wait for the version to list (default 600).
    :param poke_interval: seconds between two listings while waiting (default 10).
    :param deferrable: wait in the triggerer (:class:`~airflow_provider_modelreg.triggers.fabric.
        FabricModelVersionListedTrigger`) instead of a worker slot, once the registration is sent.
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = (
        "version_name",
        "model_path",
        "base_model_type",
        "model_id",
        "model_name",
        "version_description",
        "model_description",
        "workspace_id",
        "fabric_conn_id",
    )
    operator_extra_links = (FabricModelVersionLink(),)

    def __init__(
        self,
        *,
        version_name: str,
        model_path: str,
        base_model_type: str,
        model_id: str | None = None,
        model_name: str | None = None,
        create_model: bool = False,
        version_description: str | None = None,
        model_description: str | None = None,
        workspace_id: str | None = None,
        timeout: float = 600.0,
        poke_interval: float = 10.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        fabric_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable
        self.version_name = version_name
        self.model_path = model_path
        self.base_model_type = base_model_type
        self.model_id = model_id
        self.model_name = model_name
        self.create_model = create_model
        self.version_description = version_description
        self.model_description = model_description
        self.workspace_id = workspace_id
        self.timeout = check_request_timeout(timeout, "timeout")
        self.poke_interval = check_poke_interval(poke_interval)
        self.fabric_conn_id = fabric_conn_id

    def _listed(self, workspace: str, model_id: str, name: str, path: str) -> FabricModelVersion | None:
        listed = self.hook.list_model_versions(
            model_id, workspace_id=workspace, name_filter=name if check_filterable(name) else None, max_results=None
        )
        found = pick_registered(listed, name, path)
        status = None if found is None else version_failed(found)
        if found is not None and status is not None:
            raise RegistryVersionFailedError(model_id, found.id, status)
        return found

    def _wait(self, workspace: str, model_id: str, name: str, path: str) -> FabricModelVersion:
        assert self.timeout is not None
        deadline = time.monotonic() + self.timeout
        while True:
            found = self._listed(workspace, model_id, name, path)
            if found is not None:
                return found
            left = deadline - time.monotonic()
            if left <= 0:
                raise RegistryWaitTimeoutError(
                    f"model {model_id} version {name!r} ({path}) is not listed", self.timeout
                )
            self.log.info(
                "Model %s: version %r not listed yet; next look in %.1f s", model_id, name, self.poke_interval
            )
            time.sleep(min(self.poke_interval, left))

    def _model_named(self, workspace: str, name: str) -> str | None:
        models = self.hook.list_models(workspace_id=workspace, name_filter=name, max_results=None)
        return next((m.id for m in models if m.name == name), None)

    def _send(self, workspace: str, model_id: str | None, name: str | None, fields: FabricNewVersion) -> str:
        """The create or update; its model id."""
        if model_id is not None:
            self.hook.update_model(model_id, workspace_id=workspace, **fields)
            return model_id
        assert name is not None
        description = rendered_optional(self.model_description, "model_description")
        return self.hook.create_model(name, workspace_id=workspace, description=description, **fields).id

    def run_registry(self, context: Context) -> dict[str, Any]:
        workspace = self._workspace()
        name = rendered_required(self.version_name, "version_name")
        path = rendered_required(self.model_path, "model_path")
        fields = FabricNewVersion(
            version_name=name,
            model_path=path,
            base_model_type=rendered_required(self.base_model_type, "base_model_type"),
            version_description=rendered_optional(self.version_description, "version_description"),
        )
        model_id = rendered_optional(self.model_id, "model_id")
        model_name = None
        if model_id is None:  # every field checked before any request
            if not self.create_model:
                raise RegistryInputError("model_id", "give model_id, or model_name with create_model=True")
            model_name = rendered_required(self.model_name, "model_name")
            description = rendered_optional(self.model_description, "model_description")
            create_model_spec(workspace, model_name, description=description, **fields)
            model_id = self._model_named(workspace, model_name)
        else:
            update_model_spec(workspace, model_id, **fields)
        found = None if model_id is None else self._listed(workspace, model_id, name, path)
        if model_id is not None and found is not None:
            self.log.info("Model %s version %r (%s) is registered already: using it", model_id, name, found.id)
            return self._publish_version(context, self._ref(workspace, model_id, found))
        try:
            model_id = self._send(workspace, model_id, model_name, fields)
        except ModelRegistryError as exc:
            # the request may have arrived (no answer, a server error): wait for the version before failing
            arrived = model_id or (self._model_named(workspace, model_name) if model_name else None)
            if not exc.retryable or arrived is None:
                raise
            self.log.warning("Model %s: the registration failed (%s); looking for the version", arrived, exc)
            try:
                found = self._wait(workspace, arrived, name, path)
            except RegistryWaitTimeoutError:
                raise exc from None
            model_id = arrived
        else:
            self.log.info("Model %s: version %r (%s) sent; waiting until it is listed", model_id, name, path)
            if self.deferrable:
                self._defer(workspace, model_id, name, path)
            found = self._wait(workspace, model_id, name, path)
        self.log.info("Model %s: version %r registered as %s", model_id, name, found.id)
        return self._publish_version(context, self._ref(workspace, model_id, found))

    def _defer(self, workspace: str, model_id: str, name: str, path: str) -> None:
        assert self.timeout is not None
        trigger = FabricModelVersionListedTrigger(
            fabric_conn_id=self.fabric_conn_id,
            workspace_id=workspace,
            model_id=model_id,
            version_name=name,
            model_path=path,
            poke_interval=self.poke_interval,
            end_time=time.time() + self.timeout,
            max_attempts=self.max_attempts,
            call_timeout=self.call_timeout,
        )
        # the deferral's own timeout is a margin behind the trigger's end time, which answers first
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=self.timeout + 60))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after deferral: the listed version's ref, or the typed error of the event."""
        return self.closing_hook(lambda: self._complete(context, event))

    def _complete(self, context: Context, event: dict[str, Any] | None) -> dict[str, Any]:
        if not isinstance(event, dict) or "status" not in event:
            raise AirflowException(f"unexpected trigger event: {event!r}")
        status, model_id = event["status"], str(event.get("model_id"))
        if status == "success":
            version = FabricModelVersion.model_validate(event["version"])
            self.log.info("Model %s: version %r registered as %s", model_id, version.name, version.id)
            return self._publish_version(context, self._ref(str(event["workspace_id"]), model_id, version))
        if status == "failed":
            raise RegistryVersionFailedError(model_id, str(event.get("version_id")), str(event.get("version_status")))
        if status == "timeout":
            assert self.timeout is not None
            raise RegistryWaitTimeoutError(f"model {model_id} {event.get('message')}", self.timeout)
        raise AirflowException(f"version wait failed: {event.get('error_type')}: {event.get('message')}")


class FabricSetCurrentVersionOperator(_FabricVersionOperator):
    """Makes a listed version the current version of a DataArts Fabric model (UpdateModelDefinition with
    ``current_version_id``), verified by reading the model back, and returns the version's ``ModelVersionRef``.

    A version that is not listed is refused (:class:`~airflow_provider_modelreg.errors.RegistryNotFoundError`), a
    failed one too (:class:`~airflow_provider_modelreg.errors.RegistryVersionFailedError`), before anything is
    changed. A version that is current already is left as it is (no request). The previous current version's id
    is pushed as the XCom key ``previous_version_id``. The read-back fails the task when another version is current
    (a concurrent change).

    :param model_id: model id. (templated)
    :param version_id: the version's server id. (templated)
    :param version_name: the version's exact name (give exactly one of the two). (templated)
    :param pick: ``"unique"`` (default) or ``"newest"``: what to do when several versions share the name.
    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id, workspace, version = self._version()
        hook = self.hook
        status = version_failed(version)
        if status is not None:
            raise RegistryVersionFailedError(model_id, version.id, status)
        before = hook.get_model(model_id, workspace_id=workspace).current_version
        previous = before.id if before is not None else None
        if previous == version.id:
            self.log.info("Model %s: version %s (%s) is current already", model_id, version.name, version.id)
        else:
            hook.update_model(model_id, workspace_id=workspace, current_version_id=version.id)
            after = hook.get_model(model_id, workspace_id=workspace).current_version
            if after is None or after.id != version.id:
                raise AirflowFailException(
                    f"Model {model_id}: the current version is {after.id if after else 'none'} after the move to "
                    f"{version.id} (did another run change it meanwhile?)"
                )
            self.log.info("Model %s: current version %s -> %s (%s)", model_id, previous, version.id, version.name)
        if self.do_xcom_push:
            context["ti"].xcom_push(key="previous_version_id", value=previous)
        return self._publish_version(context, self._ref(workspace, model_id, version))
