"""The deferrable wait of a Fabric EP deploy: polls ShowServiceInstanceDetail in the triggerer until the instance
runs the version, fails, or the deploy's time is up (:class:`~airflow_provider_modelreg.fabric_ep_deploy.InstanceWatch`
decides). Exceptions become ``error`` events, never a crashed trigger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.errors import RegistryNotFoundError
from airflow_provider_modelreg.fabric_ep_deploy import InstanceWatch
from airflow_provider_modelreg.fabric_ep_models import FabricEpInstance
from airflow_provider_modelreg.hooks.base import hook_overrides
from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook
from airflow_provider_modelreg.triggers.hub import masked
from airflow_provider_modelreg.triggers.polling import PollingTrigger

__all__ = ["FabricEpInstanceTrigger"]


@dataclass(kw_only=True, eq=False, repr=False)
class FabricEpInstanceTrigger(PollingTrigger):
    """Waits until a Fabric EP instance is ``RUNNING`` the expected version.

    Events (``payload["status"]``): ``success`` (``instance``: the JSON-safe summary, url masked), ``failed``
    (``error_code``, ``error_msg``: a failed instance, a settled status a deploy does not end in, another version
    running), ``timeout`` (``end_time`` passed), ``error`` (``message``, ``error_type``) after ``max_failures``
    failed polls in a row, at once for an error that asking again cannot help (a 404: the instance is gone).

    :param fabric_conn_id: the ``huaweicloud_fabric`` connection.
    :param instance_id: the instance.
    :param version_id: the version it must run.
    :param workspace_id: the workspace (None: the connection's).
    :param poll_interval: seconds between polls.

    And the arguments of every wait: ``end_time``, ``max_failures``, ``max_attempts`` and ``call_timeout``
    (:class:`~airflow_provider_modelreg.triggers.polling.PollingTrigger`).
    """

    event_fields: ClassVar[tuple[str, ...]] = ("instance_id",)

    fabric_conn_id: str
    instance_id: str
    version_id: str
    workspace_id: str | None = None
    poll_interval: float = 30.0

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            hook = FabricEpHook(self.fabric_conn_id, **hook_overrides(self.max_attempts, self.call_timeout))
        except Exception as exc:
            yield self._error(exc)
            return
        try:
            yield await self._wait(hook)
        except Exception as exc:
            yield self._error(exc)
        finally:
            await hook.aclose()

    def _polled(self) -> str:
        return f"of instance {self.instance_id}"

    def _timeout(self) -> TriggerEvent:
        return self._event("timeout", message=f"instance {self.instance_id} not running before the deadline")

    def _fatal(self, exc: BaseException) -> bool:
        return isinstance(exc, RegistryNotFoundError) or super()._fatal(exc)  # a 404: the instance is gone

    async def _wait(self, hook: FabricEpHook) -> TriggerEvent:
        watch = InstanceWatch(self.version_id)

        async def judge(found: FabricEpInstance) -> TriggerEvent | None:
            verdict, news = watch.observe(found)
            if news is not None:
                self.log.info("Instance %s: %s", self.instance_id, news)
            if verdict.state == "done":
                return self._event("success", instance=found.to_output())
            if verdict.state == "failed":
                return self._event("failed", error_code=verdict.error_code, error_msg=masked(verdict.error_msg or ""))
            return None

        return await self.until_verdict(
            lambda: hook.aget_instance(self.instance_id, workspace_id=self.workspace_id), judge, self.poll_interval
        )
