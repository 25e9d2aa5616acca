"""The thin I/O shells of the Fabric wait: perform the reads :mod:`~airflow_provider_modelreg.fabric_wait` (and the
Fabric watch core) ask for, with the sync hook (the sensor's poke and reschedule modes) or the async one (the
triggers, through the triggerer's shared hub). Neither decides anything; run a check with
:func:`~airflow_provider_modelreg.approval_io.drive` / :func:`~airflow_provider_modelreg.approval_io.adrive`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.fabric_wait import FabricVersionList, ReadFabricModel

if TYPE_CHECKING:
    from airflow_provider_modelreg.fabric_wait import FabricRead
    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook

__all__ = ["aread_fabric", "read_fabric"]


def read_fabric(hook: FabricModelRegistryHook, what: FabricRead) -> Any:
    """Perform one read synchronously."""
    if isinstance(what, ReadFabricModel):
        return hook.get_model(what.model_id, workspace_id=what.workspace_id)
    listing = hook.list_model_versions(what.model_id, workspace_id=what.workspace_id)
    return FabricVersionList(tuple(listing))


async def aread_fabric(hook: FabricModelRegistryHook, what: FabricRead) -> Any:
    """Perform one read with the async client."""
    if isinstance(what, ReadFabricModel):
        return await hook.aget_model(what.model_id, workspace_id=what.workspace_id)
    listing = await hook.alist_model_versions(what.model_id, workspace_id=what.workspace_id)
    return FabricVersionList(tuple(listing))
