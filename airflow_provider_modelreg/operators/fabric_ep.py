"""Deploy a DataArts Fabric model version as an EP service instance, and delete one (issue 23)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator, conf

from airflow_provider_modelreg.asset_events import emit_asset_events
from airflow_provider_modelreg.deploy import service_name
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryWaitTimeoutError,
)
from airflow_provider_modelreg.fabric_ep_deploy import (
    Deploy,
    EpDeployIntent,
    EpDeployRecord,
    EpVerdict,
    InstanceWatch,
    Refuse,
    Swap,
    plan_deploy,
)
from airflow_provider_modelreg.fabric_ep_models import FabricEpInstance
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook
from airflow_provider_modelreg.hooks.fabric_ep_specs import deploy_instance_body
from airflow_provider_modelreg.links import FabricEpInstanceLink
from airflow_provider_modelreg.models import ModelVersionRef
from airflow_provider_modelreg.operators.deploy_base import ResumableDeployOperatorBase, deployed_version
from airflow_provider_modelreg.task_hook import TaskHook
from airflow_provider_modelreg.validation import check_request_timeout, rendered_optional, rendered_required

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

__all__ = ["FabricDeleteServiceInstanceOperator", "FabricDeployServiceInstanceOperator", "FabricEpDeployError"]

_DEFAULT_CONN = FabricModelRegistryHook.default_conn_name


class FabricEpDeployError(ModelRegistryError):
    """A Fabric EP deploy that cannot succeed: the instance failed or settled elsewhere.

    :param instance_id: the instance (None: none was started).
    :param error_code: the service's ``error_code`` (or ours).
    :param error_msg: the service's ``error_msg`` (or ours).
    """

    def __init__(self, instance_id: str | None, error_code: str | None, error_msg: str | None) -> None:
        self.instance_id = instance_id
        self.error_code = error_code
        self.error_msg = error_msg
        super().__init__(f"Fabric EP instance {instance_id} deploy failed: {error_code}: {error_msg}")


class FabricDeployServiceInstanceOperator(ResumableDeployOperatorBase[FabricEpHook, EpDeployRecord]):
    """Deploys a Fabric model version on an EP endpoint and waits until the instance runs it.

    Idempotent: ListServicesInstances of the model on the endpoint first. An instance serving the version
    (``source_id``, ``version_id``, ``endpoint_id``): nothing is sent, the task waits for it. An instance with the
    task's ``name`` serving another version: UpdateServiceInstance swaps its ``source.version_id``. Neither:
    DeployServiceInstance. The instance id is kept in Airflow 3.3's task state store, so a retry after a worker crash
    reconnects to the deploy or swap in flight instead of starting another.

    Success: ``RUNNING`` with the version. ``FAILED`` (now, or found failed for this version), a status a deploy does
    not end in, or another version running: :class:`FabricEpDeployError` with the service's ``error_code`` and
    ``error_msg``.

    XCom: ``instance_id``, ``status``, ``url`` (any token masked), ``name``, ``endpoint_id``, ``model_id``,
    ``version_id``; the same summary goes to the outlets' asset events (key ``fabric_ep_instance``). Extra link:
    :class:`~airflow_provider_modelreg.links.FabricEpInstanceLink` (the instance's console page, once its id is
    known). OpenLineage: the version's artifact and registry version in, the instance out (``fabric-ep://{region}``,
    its name).

    :param endpoint_id: the EP endpoint to deploy on. (templated)
    :param model_version: a Fabric ``ModelVersionRef`` dict (e.g. the list operator's or sensor's XCom); or
    :param model_id: the model (with ``version_id``). (templated)
    :param version_id: the version's id. (templated)
    :param name: the instance name (default: stable per model and endpoint, so that a new version swaps onto the
        same instance). (templated)
    :param description: the instance description. (templated)
    :param spec_code: the resource specification (``resource.spec_code``). (templated)
    :param min_instances: ``resource.min`` (default 1).
    :param max_instances: ``resource.max`` (1-1000, default 1).
    :param workspace_id: the workspace (default: the connection's). (templated)
    :param poll_interval: seconds between ShowServiceInstanceDetail polls (default 30).
    :param timeout: seconds the instance may take to run the version (default 3,600; the task's
        ``execution_timeout`` when shorter): an instance stuck in PENDING or CREATING (no resources) fails the task
        with :class:`~airflow_provider_modelreg.errors.RegistryWaitTimeoutError` instead of waiting for ever.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)
    :param max_attempts: attempts per request (1-20; default: the connection's).
    :param call_timeout: seconds per call, retries included (default: the connection's).
    """

    template_fields: Sequence[str] = (
        "endpoint_id",
        "model_version",
        "model_id",
        "version_id",
        "name",
        "description",
        "spec_code",
        "workspace_id",
        "fabric_conn_id",
    )
    operator_extra_links = (FabricEpInstanceLink(),)
    external_id_key = "modelreg_fabric_ep_deploy"
    noun = "instance"
    vendor = "Fabric EP"
    event_key = "instance"

    def __init__(
        self,
        *,
        endpoint_id: str,
        model_version: dict[str, Any] | str | None = None,
        model_id: str | None = None,
        version_id: str | None = None,
        name: str | None = None,
        description: str | None = None,
        spec_code: str | None = None,
        min_instances: int = 1,
        max_instances: int = 1,
        workspace_id: str | None = None,
        poll_interval: float = 30.0,
        timeout: float = 3600.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        fabric_conn_id: str = _DEFAULT_CONN,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            settings=self.request_settings(kwargs, max_attempts, call_timeout),
            poll_interval=poll_interval,
            deferrable=deferrable,
            **kwargs,
        )
        self.timeout = check_request_timeout(timeout, "timeout")
        self.endpoint_id = endpoint_id
        self.model_version = model_version
        self.model_id = model_id
        self.version_id = version_id
        self.name = name
        self.description = description
        self.spec_code = spec_code
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.workspace_id = workspace_id
        self.fabric_conn_id = fabric_conn_id
        self._lineage_instance: dict[str, Any] | None = None

    def _make_hook(self, **overrides: Any) -> FabricEpHook:
        return FabricEpHook(self.fabric_conn_id, **overrides)

    def _workspace_id(self) -> str | None:
        """The rendered ``workspace_id`` (None: the connection's)."""
        return rendered_optional(self.workspace_id, "workspace_id")

    # -- what to deploy

    def _source(self) -> tuple[str, str]:
        value = self.model_version
        if value is None:
            if self.model_id is None or self.version_id is None:
                raise RegistryInputError("model_version", "give model_version, or model_id and version_id")
            return rendered_required(self.model_id, "model_id"), rendered_required(self.version_id, "version_id")
        if self.model_id is not None or self.version_id is not None:
            raise RegistryInputError("model_version", "give model_version, or model_id and version_id, not both")
        ref = deployed_version(value, "fabric", "Fabric")
        return ref.model_id, ref.version_id

    def _intent(self) -> tuple[EpDeployIntent, dict[str, Any]]:
        """(what to deploy, the DeployServiceInstance body), every part checked before anything is sent."""
        model_id, version_id = self._source()
        endpoint_id = rendered_required(self.endpoint_id, "endpoint_id")
        name = rendered_optional(self.name, "name") or service_name(model_id, endpoint_id, "ep_")
        body = deploy_instance_body(
            name=name,
            model_id=model_id,
            version_id=version_id,
            endpoint_id=endpoint_id,
            spec_code=rendered_optional(self.spec_code, "spec_code"),
            min_instances=self.min_instances,
            max_instances=self.max_instances,
            description=self.description,
        )
        return EpDeployIntent(model_id, version_id, endpoint_id, name), body

    def _where(self) -> dict[str, Any]:
        """The region and workspace of the instances (the connection's, the task's workspace first)."""
        return {"region": self.hook.region, "workspace_id": self.hook.workspace(self._workspace_id())}

    def _link(self, context: Context, instance_id: str) -> None:
        """Keep and push the console link of the instance (the instance's own ``url`` is not part of it)."""
        FabricEpInstanceLink.persist(self, {**self._where(), "instance_id": instance_id}, None, context=context)

    def _started(self, context: Context, record: EpDeployRecord) -> Any:
        self._link(context, record.instance_id)
        return record.to_json()

    def _get(self, instance_id: str) -> FabricEpInstance | None:
        try:
            return self.hook.get_instance(instance_id, workspace_id=self._workspace_id())
        except RegistryNotFoundError:
            return None

    # -- ResumableJobMixin: start (or find) the deploy, poll it, report it

    def submit_job(self, context: Context) -> Any:
        intent, body = self._intent()
        record = self._stored(context)
        recorded = self._get(record.instance_id) if record is not None and record.is_for(intent) else None
        listed = self.hook.list_instances(
            workspace_id=self._workspace_id(), source_id=intent.model_id, endpoint_id=intent.endpoint_id
        )
        action = plan_deploy(intent, list(listed), record, recorded)
        if isinstance(action, Refuse):
            if action.instance is not None:  # a listing has no error fields: the detail has
                failed = self._get(action.instance.id) or action.instance
                raise FabricEpDeployError(failed.id, failed.error_code or "FAILED", failed.error_msg or action.reason)
            if action.retryable:
                raise AirflowException(action.reason)
            raise AirflowFailException(action.reason)
        fields = (intent.model_id, intent.version_id, intent.endpoint_id, intent.name)
        if isinstance(action, Deploy):
            self.log.info(
                "No instance of version %s on endpoint %s: deploying one", intent.version_id, intent.endpoint_id
            )
            created = self.hook.deploy_instance(body, workspace_id=self._workspace_id())
            return self._started(context, EpDeployRecord(created.id, *fields, action="deploy"))
        if isinstance(action, Swap):
            self.log.info(
                "Instance %s serves version %s: swapping in %s",
                action.instance_id,
                action.from_version,
                intent.version_id,
            )
            self.hook.update_instance(
                action.instance_id,
                workspace_id=self._workspace_id(),
                model_id=intent.model_id,
                version_id=intent.version_id,
            )
            return self._started(context, EpDeployRecord(action.instance_id, *fields, action="swap"))
        self.log.info("Instance %s: %s", action.instance_id, action.why)
        return self._started(context, EpDeployRecord(action.instance_id, *fields, action=action.action))

    def _load(self, value: Any) -> EpDeployRecord | None:
        return EpDeployRecord.from_json(value)

    def _target(self, record: EpDeployRecord) -> str:
        return record.instance_id

    def _is_current(self, record: EpDeployRecord) -> bool:
        return record.is_for(self._intent()[0])

    def _describe(self, record: EpDeployRecord) -> FabricEpInstance:
        return self.hook.get_instance(record.instance_id, workspace_id=self._workspace_id())

    def _watch(self, record: EpDeployRecord) -> Callable[[FabricEpInstance], tuple[EpVerdict, str | None]]:
        return InstanceWatch(record.version_id).observe

    def _failed(self, record: EpDeployRecord, verdict: EpVerdict) -> NoReturn:
        raise FabricEpDeployError(record.instance_id, verdict.error_code, verdict.error_msg)

    def _report(self, context: Context, output: dict[str, Any]) -> dict[str, Any]:
        where = self._where()
        self._link(context, str(output["instance_id"]))
        emit_asset_events(self, context, "fabric_ep_instance", output)
        self.log.info("Instance %s runs version %s at %s", output["instance_id"], output["version_id"], output["url"])
        self._lineage_instance = {**output, **where}
        return output

    def _lineage_version(self, instance: dict[str, Any]) -> dict[str, Any]:
        """The deployed version as a ``ModelVersionRef`` dict: the task's ``model_version`` (with its artifact's
        ``uri``), else the instance's model and version where the instance is (no artifact known)."""
        if isinstance(self.model_version, dict):
            return ModelVersionRef.from_xcom(self.model_version).to_xcom()
        return {
            "registry": "fabric",
            "region": instance.get("region"),
            "workspace_id": instance.get("workspace_id"),
            "model_id": instance.get("model_id") or self.model_id,
            "version_name": None,
            "version_id": instance.get("version_id") or self.version_id,
            "uri": None,
            "approval_status": None,
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the version's artifact (``obs://{bucket}``, when the task was given a ``model_version`` with
        its ``uri``) and the registry version (``huaweicloud-fabric://{region}/{workspace}``, ``{model}/{version}``)
        in, the instance out (``fabric-ep://{region}``, the instance name), and the run facet
        ``modelreg_model_versions``. Nothing before the instance runs the version.

        :param task_instance: the task instance (unused: the task keeps what it deployed).
        """
        from airflow_provider_modelreg.lineage_facets import operator_lineage  # only when OpenLineage asks (P4)

        instance = self._lineage_instance
        if instance is None:
            return operator_lineage([])
        return operator_lineage([self._lineage_version(instance)], instance=instance)

    # -- deferral

    def _trigger(self, record: EpDeployRecord, end_time: float | None) -> BaseTrigger:
        from airflow_provider_modelreg.triggers.fabric_ep import FabricEpInstanceTrigger

        return FabricEpInstanceTrigger(
            fabric_conn_id=self.fabric_conn_id,
            instance_id=record.instance_id,
            version_id=record.version_id,
            workspace_id=self._workspace_id(),
            poll_interval=float(self.poll_interval),
            end_time=end_time,
            max_attempts=self.max_attempts,
            call_timeout=self.call_timeout,
        )

    def _wait_seconds(self) -> float:
        """How long the instance may take: ``timeout``, or the task's ``execution_timeout`` when shorter."""
        limit = float(self.timeout or 3600.0)
        return min(limit, self.execution_timeout.total_seconds()) if self.execution_timeout else limit

    def _event_failed(self, context: Context, event: dict[str, Any]) -> NoReturn:
        instance_id = event.get("instance_id")
        if event["status"] == "failed":
            raise FabricEpDeployError(
                None if instance_id is None else str(instance_id), event.get("error_code"), event.get("error_msg")
            )
        raise RegistryWaitTimeoutError(f"Fabric EP instance {instance_id}", self._wait_seconds())


class FabricDeleteServiceInstanceOperator(TaskHook[FabricEpHook], BaseOperator):
    """Deletes a Fabric EP service instance (DeleteServiceInstance); an instance that is already gone (404) is not an
    error. XCom: ``{"instance_id", "deleted"}`` (``deleted`` False when there was nothing to delete).

    :param instance_id: the instance (e.g. the deploy operator's XCom ``instance_id``). (templated)
    :param workspace_id: the workspace (default: the connection's). (templated)
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)
    :param max_attempts: attempts per request (1-20; default: the connection's).
    :param call_timeout: seconds per call, retries included (default: the connection's).
    """

    template_fields: Sequence[str] = ("instance_id", "workspace_id", "fabric_conn_id")

    def __init__(
        self,
        *,
        instance_id: str,
        workspace_id: str | None = None,
        fabric_conn_id: str = _DEFAULT_CONN,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        settings = self.request_settings(kwargs, max_attempts, call_timeout)
        super().__init__(**kwargs)
        self.max_attempts, self.call_timeout = settings
        self.instance_id = instance_id
        self.workspace_id = workspace_id
        self.fabric_conn_id = fabric_conn_id

    def _make_hook(self, **overrides: Any) -> FabricEpHook:
        return FabricEpHook(self.fabric_conn_id, **overrides)

    def _workspace_id(self) -> str | None:
        """The rendered ``workspace_id`` (None: the connection's)."""
        return rendered_optional(self.workspace_id, "workspace_id")

    def execute(self, context: Context) -> dict[str, Any]:
        instance_id = rendered_required(self.instance_id, "instance_id")

        def delete() -> dict[str, Any]:
            try:
                self.hook.delete_instance(instance_id, workspace_id=self._workspace_id())
            except RegistryNotFoundError:
                self.log.info("Instance %s does not exist: nothing to delete", instance_id)
                return {"instance_id": instance_id, "deleted": False}
            self.log.info("Instance %s is being deleted", instance_id)
            return {"instance_id": instance_id, "deleted": True}

        return self.closing_hook(delete)
