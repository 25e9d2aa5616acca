"""Triggers for the DataArts Fabric registry: the deferrable wait of
:class:`~airflow_provider_modelreg.operators.fabric_lifecycle.FabricRegisterModelVersionOperator` until the version
it registered is listed, and the deferrable wait of
:class:`~airflow_provider_modelreg.sensors.fabric.FabricModelVersionSensor` (:class:`FabricModelVersionTrigger`),
which drives the decision core (:mod:`airflow_provider_modelreg.fabric_wait`) through the shared-read hub
(:class:`FabricPollHub`: one read per connection, workspace and model and poll interval, whatever the number of
waits).

Trigger kwargs are stored in plain text by Airflow: ids, the conn id and plain numbers only; credentials are resolved
inside ``run()`` with the async connection API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.fabric_wait import (
    FabricDecision,
    FabricOutcome,
    FabricVersionCheck,
    FabricWaitTarget,
    describe_answer,
)
from airflow_provider_modelreg.fabric_wait_io import aread_fabric
from airflow_provider_modelreg.hooks.base import hook_overrides
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook, check_filterable
from airflow_provider_modelreg.hooks.fabric_lifecycle import pick_registered, version_failed
from airflow_provider_modelreg.triggers.hub import PollHub
from airflow_provider_modelreg.triggers.polling import ModelVersionWaitTrigger, StoredTrigger, retryable
from airflow_provider_modelreg.validation import rendered_optional, rendered_required

__all__ = ["FABRIC_WAIT_CLASSPATH", "FabricModelVersionListedTrigger", "FabricModelVersionTrigger", "FabricPollHub"]

#: The classpath :meth:`FabricModelVersionTrigger.serialize` returns (a subclass: its own): stored triggers keep it
#: whatever module the class moves to.
FABRIC_WAIT_CLASSPATH = "airflow_provider_modelreg.triggers.fabric.FabricModelVersionTrigger"


@dataclass
class FabricPollHub(PollHub[FabricModelRegistryHook]):
    """The hub of the Fabric triggers (the version wait and the asset watcher): reads of
    :mod:`airflow_provider_modelreg.fabric_wait`, shared by every trigger of one connection in one event loop."""

    hook_class: ClassVar[Callable[..., Any]] = FabricModelRegistryHook
    label: ClassVar[str] = "Fabric model"
    conn_field: ClassVar[str] = "fabric_conn_id"
    core: ClassVar[Callable[..., Any]] = FabricVersionCheck

    async def perform(self, hook: FabricModelRegistryHook, what: Any) -> Any:
        return await aread_fabric(hook, what)

    def describe(self, what: Any, answer: Any) -> str:
        return describe_answer(what, answer)


@dataclass(kw_only=True, eq=False, repr=False)
class FabricModelVersionListedTrigger(StoredTrigger):
    """Waits until a Fabric model lists a version named ``version_name`` with the weights at ``model_path``.

    Events (``payload["status"]``): ``success`` (``version``: the version as the API lists it), ``failed``
    (``version_id``, ``version_status``: its creation failed), ``timeout`` (``end_time`` passed; it also bounds a
    listing in flight), ``error`` (``message``, ``error_type``) for an error asking again cannot help; a retryable
    one (throttling, no answer) is logged and the next poll follows. ``workspace_id`` and ``model_id`` are in every
    event.

    :param fabric_conn_id: Airflow connection id.
    :param workspace_id: workspace (resolved by the operator).
    :param model_id: model id.
    :param version_name: the version's name.
    :param model_path: its ``obs://`` model path.
    :param poke_interval: seconds between listings.
    :param end_time: UNIX time at which to give up with a ``timeout`` event.
    :param max_attempts: attempts per registry request (None: the connection's).
    :param call_timeout: seconds one registry call may take (None: the connection's).
    """

    event_fields: ClassVar[tuple[str, ...]] = ("workspace_id", "model_id")

    fabric_conn_id: str
    workspace_id: str
    model_id: str
    version_name: str
    model_path: str
    poke_interval: float
    end_time: float
    max_attempts: int | None = None
    call_timeout: float | None = None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = FabricModelRegistryHook(self.fabric_conn_id, **hook_overrides(self.max_attempts, self.call_timeout))
        try:
            yield await self._poll(hook)
        finally:
            await hook.aclose()

    async def _poll(self, hook: FabricModelRegistryHook) -> TriggerEvent:
        name = self.version_name
        name_filter = name if check_filterable(name) else None
        while True:
            left = self.end_time - time.time()
            if left <= 0:
                return self._event("timeout", message=f"version {name!r} ({self.model_path}) is not listed")
            try:
                listing = hook.alist_model_versions(
                    self.model_id, workspace_id=self.workspace_id, name_filter=name_filter, max_results=None
                )
                found = pick_registered(await asyncio.wait_for(listing, left), name, self.model_path)
            except asyncio.TimeoutError:
                continue  # the end time passed: answered above
            except Exception as exc:
                if not retryable(exc):
                    return self._error(exc)
                self.log.warning("Model %s: listing versions failed, polling again: %s", self.model_id, exc)
            else:
                if found is not None:
                    status = version_failed(found)
                    if status is not None:
                        return self._event("failed", version_id=found.id, version_status=status)
                    return self._event("success", version=found.to_wire())
            await asyncio.sleep(max(0.0, min(self.poke_interval, self.end_time - time.time())))


@dataclass(kw_only=True, eq=False, repr=False)
class FabricModelVersionTrigger(ModelVersionWaitTrigger):
    """Waits for a Fabric model version (a name, a name pattern, or the current version moving past one), polling
    through the shared hub.

    Events (``payload["status"]``): ``success`` (``version``: the version as the API lists it), ``failed``
    (``version``, ``version_status``: the newest matching version, or the current one, failed), ``timeout``
    (``end_time`` passed; it also bounds a poll in flight), ``error`` (``message``, ``error_type``) after
    ``max_failures`` consecutive failed polls, or at once for bad input, refusals and answers the wait cannot judge.
    ``model_id`` and ``workspace_id`` are in every event.

    :param fabric_conn_id: Airflow connection id (credentials are looked up inside ``run()``).
    :param model_id: the model.
    :param workspace_id: the workspace (None: the connection's ``workspace_id``).
    :param version_name: wait for a version with this exact name.
    :param version_pattern: wait for a version whose whole name matches this regular expression.
    :param current_after: with ``current``: wait until the current version is newer than this version id.
    :param current: wait for the current version (``current_after`` None: any current version).
    :param poke_interval: seconds between polls.

    And the arguments of every wait: ``end_time``, ``max_failures``, ``max_attempts`` and ``call_timeout``
    (:class:`~airflow_provider_modelreg.triggers.polling.PollingTrigger`).
    """

    stored_classpath: ClassVar[str | None] = FABRIC_WAIT_CLASSPATH
    hub_class: ClassVar[Any] = FabricPollHub
    event_fields: ClassVar[tuple[str, ...]] = ("workspace_id", "model_id")

    fabric_conn_id: str
    model_id: str
    workspace_id: str | None = None
    version_name: str | None = None
    version_pattern: str | None = None
    current_after: str | None = None
    current: bool = False
    poke_interval: float = 60.0

    def target(self) -> FabricWaitTarget:
        """The stored arguments, checked (a typed error naming the field)."""
        if not isinstance(self.current, bool):
            raise RegistryInputError("current", "must be true or false", self.current)
        return FabricWaitTarget(
            model_id=rendered_required(self.model_id, "model_id"),
            workspace_id=rendered_optional(self.workspace_id, "workspace_id"),
            version_name=rendered_optional(self.version_name, "version_name"),
            version_pattern=rendered_optional(self.version_pattern, "version_pattern"),
            current_after=rendered_optional(self.current_after, "current_after"),
            current=self.current,
        )

    def _timeout(self) -> TriggerEvent:
        wanted = self.target().describe()
        return self._event("timeout", message=f"no {wanted} before the sensor timeout ({self.end_time})")

    async def _judge(self, hub: FabricPollHub, decision: FabricDecision) -> TriggerEvent | None:
        if decision.version is not None and decision.outcome is FabricOutcome.FOUND:
            return self._event("success", version=decision.version.to_wire())
        if decision.version is not None and decision.outcome is FabricOutcome.FAILED:
            status = version_failed(decision.version)
            return self._event("failed", version=decision.version.to_wire(), version_status=status)
        return None
