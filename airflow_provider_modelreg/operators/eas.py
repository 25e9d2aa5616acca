"""Deploy an approved PAI model version to PAI-EAS."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, conf

from airflow_provider_modelreg.approval import rendered_required
from airflow_provider_modelreg.asset_events import emit_asset_events
from airflow_provider_modelreg.deploy import eas_service_labels, eas_service_spec
from airflow_provider_modelreg.eas_deploy import (
    Create,
    DeployRecord,
    Refuse,
    RolloutVerdict,
    RolloutWatch,
    Update,
    config_digest,
    deployed_label,
    plan_deploy,
)
from airflow_provider_modelreg.eas_models import EasService
from airflow_provider_modelreg.errors import ModelRegistryError, RegistryNotFoundError
from airflow_provider_modelreg.hooks.base import hook_overrides
from airflow_provider_modelreg.hooks.eas import PaiEasHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.links import PaiEasServiceLink
from airflow_provider_modelreg.models import ModelVersionRef
from airflow_provider_modelreg.operators.deploy_base import ResumableDeployOperatorBase, deployed_version
from airflow_provider_modelreg.validation import check_eas_id, check_max_failures

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger

__all__ = ["EasDeployError", "PaiEasDeployOperator"]


class EasDeployError(ModelRegistryError):
    """A deploy that cannot succeed: the service failed, settled elsewhere, or waited for resources too long.

    :param service_name: the service.
    :param reason: EAS's ``Reason`` (or ours).
    :param message: EAS's ``Message`` (or ours).
    :param warnings: the service's latest Warning events, ``"<reason>: <message>"`` each.
    """

    def __init__(
        self, service_name: str, reason: str | None, message: str | None, warnings: Sequence[str] = ()
    ) -> None:
        self.service_name = service_name
        self.reason = reason
        self.message = message
        self.warnings = list(warnings)
        events = "".join(f"\n  warning: {w}" for w in self.warnings)
        super().__init__(f"EAS service {service_name} deploy failed: {reason}: {message}{events}")


def _merged(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


class PaiEasDeployOperator(ResumableDeployOperatorBase[PaiEasHook, DeployRecord]):
    """Deploys a PAI model version (the sensor's ``ModelVersionRef``) as an EAS service and waits until it serves.

    Idempotent: DescribeService first. No service: CreateService (labels recording the model and version). The same
    effective config (every key of the service JSON as the service has it): nothing is sent. Another config:
    UpdateService (merge). What a try started is kept in Airflow 3.3's task state store, so a retry after a worker
    crash reconnects to the create or update in flight instead of starting another.

    Success: ``Running``, ``RunningInstance == TotalInstance``, and ``CurrentVersion == LatestVersion`` (the version
    the update made). ``Failed``/``DeleteFailed``, a status a deploy does not end in, or ``Waiting`` for resources
    beyond ``resource_wait_timeout``: :class:`EasDeployError` with EAS's ``Reason`` and ``Message`` and the latest
    Warning events. After success the version is labelled ``deployed-eas=<service>@<region>`` in the registry.

    XCom: the service summary (name, region, status, versions, instances, endpoints, labels; never a token).

    :param model_version: the ``ModelVersionRef`` dict of a PAI version (e.g. the sensor's XCom). (templated)
    :param service_name: the service (default: stable per model and version, see ``deploy.service_name``).
        (templated)
    :param instance: instances.
    :param cpu: CPU cores per instance.
    :param memory: memory per instance (MB).
    :param service_overrides: keys merged over the service JSON (e.g. ``{"metadata": {"gpu": 1}}``, a processor or
        an image). (templated)
    :param resource_wait_timeout: seconds the service may wait for resources (default 1,800).
    :param poll_interval: seconds between DescribeService polls (default 30).
    :param max_failures: failed polls in a row tolerated while waiting (default 5), in the worker or the triggerer;
        only failures asking again can cure (throttling, 5xx, network), each after the connection's own retries.
    :param write_back: label the version in the registry after a verified deploy (default True).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param pai_conn_id: connection of type ``pai`` (the registry's; EAS on the same credentials). (templated)
    :param max_attempts: attempts per request (1-20; default: the connection's).
    :param call_timeout: seconds per call, retries included (default: the connection's).
    """

    template_fields: Sequence[str] = ("model_version", "service_name", "service_overrides", "pai_conn_id")
    operator_extra_links = (PaiEasServiceLink(),)
    external_id_key = "modelreg_eas_deploy"
    noun = "service"
    vendor = "EAS"
    event_key = "service"

    def __init__(
        self,
        *,
        model_version: dict[str, Any] | str,
        service_name: str | None = None,
        instance: int = 1,
        cpu: int = 2,
        memory: int = 4000,
        service_overrides: dict[str, Any] | None = None,
        resource_wait_timeout: float = 1800.0,
        poll_interval: float = 30.0,
        max_failures: int = 5,
        write_back: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        pai_conn_id: str = PaiModelRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            settings=self.request_settings(kwargs, max_attempts, call_timeout),
            poll_interval=poll_interval,
            deferrable=deferrable,
            **kwargs,
        )
        self.model_version = model_version
        self.service_name = service_name
        self.instance = instance
        self.cpu = cpu
        self.memory = memory
        self.service_overrides = service_overrides
        self.resource_wait_timeout = resource_wait_timeout
        self.max_failures = check_max_failures(max_failures)
        self.write_back = write_back
        self.pai_conn_id = pai_conn_id

    def _make_hook(self, **overrides: Any) -> PaiEasHook:
        return PaiEasHook(self.pai_conn_id, **overrides)

    # -- what to deploy

    def _ref(self) -> ModelVersionRef:
        return deployed_version(self.model_version, "pai", "PAI")

    def _intent(self) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(service name, service JSON, labels), every part checked before anything is sent."""
        ref = self._ref().to_xcom()
        config = eas_service_spec(ref, instance=self.instance, cpu=self.cpu, memory=self.memory)
        if self.service_name is not None:
            config["name"] = check_eas_id(rendered_required(self.service_name, "service_name"), "service_name")
        if self.service_overrides:
            config = _merged(config, self.service_overrides)
        return str(config["name"]), config, eas_service_labels(ref)

    def _found(self, name: str) -> EasService | None:
        try:
            return self.hook.describe_service(name)
        except RegistryNotFoundError:
            return None

    # -- ResumableJobMixin: start (or find) the deploy, poll it, report it

    def submit_job(self, context: Context) -> Any:
        name, config, labels = self._intent()
        stored = self._stored(context)
        action = plan_deploy(name, config, self._found(name), stored)
        digest = config_digest(config)
        if isinstance(action, Refuse):
            if action.retryable:
                raise AirflowException(action.reason)
            raise AirflowFailException(action.reason)
        if isinstance(action, Create):
            self.log.info("Service %s does not exist: creating it", name)
            created = self.hook.create_service(config, labels=labels)
            return DeployRecord(name, digest, "create", created.latest_version).to_json()
        if isinstance(action, Update):
            self.log.info("Service %s runs another config (%s): updating it (merge)", name, ", ".join(action.changed))
            self.hook.update_service(name, config, update_type="merge")
            # A new version when the model or the image changed; a scale-only change keeps the version: what the
            # service reports right after the update is what the wait must see current.
            latest = self.hook.describe_service(name).latest_version
            return DeployRecord(name, digest, "update", latest or action.base_version).to_json()
        self.log.info("Service %s: %s", name, action.why)
        return DeployRecord(name, digest, stored.action if stored else "update", action.expected_version).to_json()

    def _load(self, value: Any) -> DeployRecord | None:
        return DeployRecord.from_json(value)

    def _target(self, record: DeployRecord) -> str:
        return record.service_name

    def _is_current(self, record: DeployRecord) -> bool:
        name, config, _ = self._intent()
        return (record.service_name, record.config_digest) == (name, config_digest(config))

    def _describe(self, record: DeployRecord) -> EasService:
        return self.hook.describe_service(record.service_name)

    def _watch(self, record: DeployRecord) -> Callable[[EasService], tuple[RolloutVerdict, str | None]]:
        watch = RolloutWatch(record.expected_version, float(self.resource_wait_timeout))
        return lambda found: watch.observe(found, time.time())

    def _failed(self, record: DeployRecord, verdict: RolloutVerdict) -> NoReturn:
        self._fail(record.service_name, verdict.reason, verdict.message)

    def _fail(self, name: str, reason: str | None, message: str | None) -> NoReturn:
        try:
            events = self.hook.describe_service_events(name, event_type="Warning").warnings
            warnings = [f"{e.reason}: {e.message}" for e in events[-5:]]
        except ModelRegistryError:
            warnings = []
        raise EasDeployError(name, reason, message, warnings)

    def _report(self, context: Context, output: dict[str, Any]) -> dict[str, Any]:
        """The verified deploy: label the version in the registry, attach the summary to the asset events."""
        if self.write_back and output.get("region"):
            ref = self._ref()
            registry = PaiModelRegistryHook(self.pai_conn_id, **hook_overrides(self.max_attempts, self.call_timeout))
            try:
                registry.add_version_labels(
                    ref.model_id, ref.version_name, deployed_label(output["service_name"], output["region"])
                )
            finally:
                registry.close()
        PaiEasServiceLink.persist(self, output, None, context=context)
        emit_asset_events(self, context, "eas_service", output)
        self.log.info("Service %s is running version %s", output["service_name"], output["current_version"])
        self._lineage_service = output
        return output

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the version's artifact and the registry version in, the service out
        (``pai-eas://{region}``, the service name), and the run facet ``modelreg_model_versions``."""
        from airflow_provider_modelreg.lineage_facets import operator_lineage  # only when OpenLineage asks (P4)

        service = getattr(self, "_lineage_service", None)
        if service is None:
            return operator_lineage([])
        return operator_lineage([self._ref().to_xcom()], service=service)

    # -- deferral

    def _trigger(self, record: DeployRecord, end_time: float | None) -> BaseTrigger:
        from airflow_provider_modelreg.triggers.eas import PaiEasServiceTrigger

        return PaiEasServiceTrigger(
            pai_conn_id=self.pai_conn_id,
            service_name=record.service_name,
            expected_version=record.expected_version,
            poll_interval=float(self.poll_interval),
            resource_wait_timeout=float(self.resource_wait_timeout),
            end_time=end_time,
            max_failures=self.max_failures,
            max_attempts=self.max_attempts,
            call_timeout=self.call_timeout,
        )

    def _event_failed(self, context: Context, event: dict[str, Any]) -> NoReturn:
        name = str(event.get("service_name"))
        if event["status"] == "failed":
            self.closing_hook(lambda: self._fail(name, event.get("reason"), event.get("message")))
        raise AirflowException(f"EAS service {name}: {event.get('message')}")
