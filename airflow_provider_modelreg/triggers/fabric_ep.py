"""The deferrable wait of a Fabric EP deploy: polls ShowServiceInstanceDetail in the triggerer until the instance
runs the version, fails, or the deploy's time is up (:class:`~airflow_provider_modelreg.fabric_ep_deploy.InstanceWatch`
decides). Exceptions become ``error`` events, never a crashed trigger."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg.errors import RegistryNotFoundError
from airflow_provider_modelreg.fabric_ep_deploy import InstanceWatch
from airflow_provider_modelreg.hooks.base import hook_overrides
from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook
from airflow_provider_modelreg.triggers.hub import masked

__all__ = ["FabricEpInstanceTrigger"]


def _retryable(exc: BaseException) -> bool:
    return bool(getattr(exc, "retryable", False))


class FabricEpInstanceTrigger(BaseTrigger):
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
    :param end_time: UNIX time at which to give up with a ``timeout`` event (None: never).
    :param max_failures: consecutive failed polls tolerated.
    :param max_attempts: attempts per request (None: the connection's).
    :param call_timeout: seconds per call, retries included (None: the connection's).
    """

    def __init__(
        self,
        *,
        fabric_conn_id: str,
        instance_id: str,
        version_id: str,
        workspace_id: str | None = None,
        poll_interval: float = 30.0,
        end_time: float | None = None,
        max_failures: int = 5,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.fabric_conn_id = fabric_conn_id
        self.instance_id = instance_id
        self.version_id = version_id
        self.workspace_id = workspace_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.max_failures = max_failures
        self.max_attempts = max_attempts
        self.call_timeout = call_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{type(self).__module__}.{type(self).__qualname__}", {
            "fabric_conn_id": self.fabric_conn_id,
            "instance_id": self.instance_id,
            "version_id": self.version_id,
            "workspace_id": self.workspace_id,
            "poll_interval": self.poll_interval,
            "end_time": self.end_time,
            "max_failures": self.max_failures,
            "max_attempts": self.max_attempts,
            "call_timeout": self.call_timeout,
        }

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "instance_id": self.instance_id, **payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            hook = FabricEpHook(self.fabric_conn_id, **hook_overrides(self.max_attempts, self.call_timeout))
        except Exception as exc:
            yield self._event("error", message=masked(str(exc)), error_type=type(exc).__name__)
            return
        try:
            yield await self._wait(hook)
        except Exception as exc:
            yield self._event("error", message=masked(str(exc)), error_type=type(exc).__name__)
        finally:
            await hook.aclose()

    async def _wait(self, hook: FabricEpHook) -> TriggerEvent:
        failures = 0
        watch = InstanceWatch(self.version_id)
        while True:
            if self.end_time is not None and time.time() >= self.end_time:
                return self._event("timeout", message=f"instance {self.instance_id} not running before the deadline")
            try:
                found = await hook.aget_instance(self.instance_id, workspace_id=self.workspace_id)
            except Exception as exc:
                failures += 1
                self.log.warning(
                    "poll %d/%d of instance %s failed: %s", failures, self.max_failures, self.instance_id, exc
                )
                if isinstance(exc, RegistryNotFoundError) or not _retryable(exc) or failures >= self.max_failures:
                    return self._event("error", message=masked(str(exc)), error_type=type(exc).__name__)
            else:
                failures = 0
                verdict, news = watch.observe(found)
                if news is not None:
                    self.log.info("Instance %s: %s", self.instance_id, news)
                if verdict.state == "done":
                    return self._event("success", instance=found.to_output())
                if verdict.state == "failed":
                    return self._event(
                        "failed", error_code=verdict.error_code, error_msg=masked(verdict.error_msg or "")
                    )
            await asyncio.sleep(self.poll_interval)
