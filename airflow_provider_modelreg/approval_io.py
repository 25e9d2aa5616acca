"""The thin I/O shells of the approval gate: perform the reads :mod:`~airflow_provider_modelreg.approval` asks for.

The sync shell serves the sensor in poke and reschedule mode; the async shell serves the triggers (through the
triggerer's shared hub, which answers the same read once for every wait that asks it). Neither decides anything.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_modelreg.approval import (
    RECENT_PAGE_SIZE,
    ReadLabelled,
    ReadVersion,
    VersionPage,
)
from airflow_provider_modelreg.errors import RegistryNotFoundError

if TYPE_CHECKING:
    from airflow_provider_modelreg.approval import Read
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
    from airflow_provider_modelreg.models import PaiModelVersion, PaiModelVersionPage

__all__ = ["Driven", "adrive", "aread", "drive", "read"]


class Driven(Protocol):
    """What both shells drive: :class:`~airflow_provider_modelreg.approval.ApprovalCheck`, ``watch.WatchPoll`` and
    the Fabric cores (``fabric_wait.FabricVersionCheck``, ``fabric_watch.FabricWatchPoll``): any read type."""

    def next_read(self) -> Any: ...

    def receive(self, read: Any, answer: Any) -> None: ...


def _page(page: PaiModelVersionPage) -> VersionPage:
    return VersionPage(tuple(page.versions), page.total_count, page.request_id)


def _missing_version(exc: RegistryNotFoundError) -> bool:
    # InvalidModel.NotFound (no such model) is an error; a missing version is an answer ("not yet").
    return exc.code != "InvalidModel.NotFound"


def _label(what: Read) -> str | None:
    return what.label if isinstance(what, ReadLabelled) else None


def read(hook: PaiModelRegistryHook, what: Read) -> Any:
    """Perform one read synchronously."""
    if isinstance(what, ReadVersion):
        try:
            return hook.get_model_version(what.model_id, what.version_name)
        except RegistryNotFoundError as exc:
            if _missing_version(exc):
                return None
            raise
    return _page(
        hook.list_model_versions_page(
            what.model_id,
            page=what.page,
            page_size=RECENT_PAGE_SIZE,
            approval_status=what.status,
            label=_label(what),
        )
    )


async def aread(hook: PaiModelRegistryHook, what: Read) -> Any:
    """Perform one read with the async client."""
    if isinstance(what, ReadVersion):
        try:
            found: PaiModelVersion = await hook.aget_model_version(what.model_id, what.version_name)
        except RegistryNotFoundError as exc:
            if _missing_version(exc):
                return None
            raise
        return found
    return _page(
        await hook.alist_model_versions_page(
            what.model_id,
            page=what.page,
            page_size=RECENT_PAGE_SIZE,
            approval_status=what.status,
            label=_label(what),
        )
    )


def drive(check: Driven, reader: Callable[[Any], Any]) -> None:
    """Run a check to its end with a sync reader."""
    while (what := check.next_read()) is not None:
        check.receive(what, reader(what))


async def adrive(check: Driven, reader: Callable[[Any], Awaitable[Any]]) -> None:
    """Run a check to its end with an async reader."""
    while (what := check.next_read()) is not None:
        check.receive(what, await reader(what))
