"""The deferrable wait of an EAS deploy: polls DescribeService in the triggerer until the success rule holds, the
service fails, or the deploy's time is up (:class:`~airflow_provider_modelreg.eas_deploy.RolloutWatch` decides)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.eas_deploy import RolloutWatch
from airflow_provider_modelreg.eas_models import EasService
from airflow_provider_modelreg.hooks.eas import PaiEasHook
from airflow_provider_modelreg.triggers.hub import PollHub, masked
from airflow_provider_modelreg.triggers.polling import PollingTrigger

__all__ = ["DescribeService", "EasPollHub", "PaiEasServiceTrigger"]


@dataclass(frozen=True)
class DescribeService:
    """One DescribeService read: the hub's key, shared by every wait on the service."""

    service_name: str


@dataclass
class EasPollHub(PollHub[PaiEasHook]):
    """The hub of the EAS waits: one client per ``pai`` connection (and request settings) in a triggerer, whatever
    number of deploys and rollbacks wait at once, and one DescribeService per service and round however many waits
    watch that service. The waits log what changed themselves: the hub logs no reads."""

    hook_class: ClassVar[Callable[..., Any]] = PaiEasHook
    label: ClassVar[str] = "EAS service"

    async def perform(self, hook: PaiEasHook, what: DescribeService) -> EasService:
        return await hook.adescribe_service(what.service_name)

    def describe(self, what: DescribeService, answer: EasService) -> str:
        return f"{answer.status}"

    def logged_read(self, what: DescribeService) -> bool:
        return False


@dataclass(kw_only=True, eq=False, repr=False)
class PaiEasServiceTrigger(PollingTrigger):
    """Waits until an EAS service is ready (``Running``, every instance running, the expected version current).

    Events (``payload["status"]``): ``success`` (``service``: the JSON-safe summary, never a token), ``failed``
    (``reason``, ``message``: a failed service, a settled status a deploy does not end in, or resources waited for
    beyond ``resource_wait_timeout``), ``timeout`` (``end_time`` passed), ``error`` (``message``, ``error_type``)
    after ``max_failures`` failed polls in a row, or at once for an error that asking again cannot help.

    :param pai_conn_id: the ``pai`` connection.
    :param service_name: the service.
    :param expected_version: the version the deploy made (None: any version, current and latest).
    :param poll_interval: seconds between polls.
    :param resource_wait_timeout: seconds the service may wait for resources (``Waiting``).

    And the arguments of every wait: ``end_time``, ``max_failures``, ``max_attempts`` and ``call_timeout``
    (:class:`~airflow_provider_modelreg.triggers.polling.PollingTrigger`).
    """

    event_fields: ClassVar[tuple[str, ...]] = ("service_name",)

    pai_conn_id: str
    service_name: str
    expected_version: int | None = None
    poll_interval: float = 30.0
    resource_wait_timeout: float = 1800.0

    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings: dict[str, Any] = {"max_attempts": self.max_attempts, "call_timeout": self.call_timeout}
        # acquire and release, not ``using``: an async context manager is memory each of ten thousand waits holds
        hub = EasPollHub.acquire(self.pai_conn_id, self.poll_interval, **settings)
        try:
            yield await self._wait(hub)
        finally:
            await hub.release(self.poll_interval)

    def _polled(self) -> str:
        return f"of service {self.service_name}"

    def _timeout(self) -> TriggerEvent:
        return self._event("timeout", message=f"service {self.service_name} not ready before the deadline")

    async def _wait(self, hub: EasPollHub) -> TriggerEvent:
        watch = RolloutWatch(self.expected_version, self.resource_wait_timeout)

        async def judge(found: EasService) -> TriggerEvent | None:
            verdict, news = watch.observe(found, time.time())
            if news is not None:
                self.log.info("Service %s: %s", self.service_name, news)
            if verdict.state == "done":
                return self._event("success", service=found.to_output())
            if verdict.state == "failed":
                return self._event("failed", reason=verdict.reason, message=masked(verdict.message or ""))
            return None

        # an answer from this round is shared; our own last round's (a poll_interval old) is not reused, and the
        # first poll reads afresh: a cached answer may predate the change the task sent before deferring
        read = DescribeService(self.service_name)
        ages = iter((0.0,))

        async def poll() -> EasService:
            return await hub.read(read, next(ages, self.poll_interval / 2))  # type: ignore[no-any-return]

        return await self.until_verdict(poll, judge, self.poll_interval)
