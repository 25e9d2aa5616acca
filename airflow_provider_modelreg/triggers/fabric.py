"""Triggers for the DataArts Fabric registry: the deferrable wait of
:class:`~airflow_provider_modelreg.operators.fabric_lifecycle.FabricRegisterModelVersionOperator` until the version
it registered is listed.

Trigger kwargs are stored in plain text by Airflow: ids, the conn id and plain numbers only; credentials are resolved
inside ``run()`` with the async connection API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg.hooks.base import hook_overrides
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook, check_filterable
from airflow_provider_modelreg.hooks.fabric_lifecycle import pick_registered, version_failed
from airflow_provider_modelreg.triggers.hub import masked

__all__ = ["FabricModelVersionListedTrigger"]


class FabricModelVersionListedTrigger(BaseTrigger):
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

    def __init__(
        self,
        *,
        fabric_conn_id: str,
        workspace_id: str,
        model_id: str,
        version_name: str,
        model_path: str,
        poke_interval: float,
        end_time: float,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.fabric_conn_id = fabric_conn_id
        self.workspace_id = workspace_id
        self.model_id = model_id
        self.version_name = version_name
        self.model_path = model_path
        self.poke_interval = poke_interval
        self.end_time = end_time
        self.max_attempts = max_attempts
        self.call_timeout = call_timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "fabric_conn_id": self.fabric_conn_id,
                "workspace_id": self.workspace_id,
                "model_id": self.model_id,
                "version_name": self.version_name,
                "model_path": self.model_path,
                "poke_interval": self.poke_interval,
                "end_time": self.end_time,
                "max_attempts": self.max_attempts,
                "call_timeout": self.call_timeout,
            },
        )

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "workspace_id": self.workspace_id, "model_id": self.model_id, **payload})

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
                if not getattr(exc, "retryable", False):
                    return self._event("error", message=masked(str(exc)), error_type=type(exc).__name__)
                self.log.warning("Model %s: listing versions failed, polling again: %s", self.model_id, exc)
            else:
                if found is not None:
                    status = version_failed(found)
                    if status is not None:
                        return self._event("failed", version_id=found.id, version_status=status)
                    return self._event("success", version=found.to_wire())
            await asyncio.sleep(max(0.0, min(self.poke_interval, self.end_time - time.time())))
