"""The asset-watcher event trigger of the DataArts Fabric registry (:class:`FabricVersionEventTrigger`) and, on
Airflow 3.3, the shared stream that runs one poll per model and mode for every watcher of it
(:class:`FabricWatchProducer`).

It drives the Fabric watch core (:mod:`airflow_provider_modelreg.fabric_watch`) through the Fabric hub
(:class:`~airflow_provider_modelreg.triggers.fabric.FabricPollHub`), with the state store, delivery guarantee and
shared stream of every watcher of the provider (:mod:`airflow_provider_modelreg.triggers.watch_stream`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.approval import parse_created_after
from airflow_provider_modelreg.approval_io import adrive
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.fabric_watch import (
    FabricObservation,
    FabricWatchCursor,
    FabricWatchIdentity,
    FabricWatchPoll,
    apply_fabric_observation,
    check_watch_mode,
    merge_fabric_cursors,
)
from airflow_provider_modelreg.hooks.fabric_connection import fabric_settings
from airflow_provider_modelreg.triggers.fabric import FabricPollHub
from airflow_provider_modelreg.triggers.watch_stream import ModelWatcherTrigger, WatchProducer
from airflow_provider_modelreg.validation import (
    check_fabric_id,
    check_poke_interval,
    check_request_attempts,
    check_request_timeout,
    rendered_required,
)

__all__ = ["FABRIC_WATCH_CLASSPATH", "FabricVersionEventTrigger", "FabricWatchProducer", "observe_fabric"]

#: The classpath :meth:`FabricVersionEventTrigger.serialize` returns (a subclass: its own): watchers already
#: registered keep their trigger and its hash whatever module the class moves to.
FABRIC_WATCH_CLASSPATH = "airflow_provider_modelreg.triggers.fabric_watcher.FabricVersionEventTrigger"


async def where(hub: FabricPollHub, workspace_id: str | None) -> tuple[str, str | None]:
    """(workspace, region) of the hub's connection: the argument's workspace, else the connection's default."""
    conn = await hub.hook.aconnection()
    _, region, default = fabric_settings(conn)
    workspace = workspace_id or default
    if workspace is None:
        raise RegistryInputError("workspace_id", "is required (argument or connection extra workspace_id)")
    return check_fabric_id(workspace, "workspace_id"), region


async def observe_fabric(
    hub: FabricPollHub, workspace_id: str | None, model_id: str, mode: str, max_age: float
) -> FabricObservation:
    """One poll of ``model_id`` in ``mode`` for every watcher of it (a shared read through the hub), with where the
    model is (for the refs of the versions announced). The workspace is resolved first, so the read is the one the
    deferrable waits of the same model ask (they are given the resolved workspace) and they share it."""
    workspace, region = await where(hub, workspace_id)
    poll = FabricWatchPoll(workspace, model_id, mode)
    await adrive(poll, lambda what: hub.read(what, max_age))
    assert poll.observation is not None
    return replace(poll.observation, workspace_id=workspace, region=region)


def _stream_key(stored: dict[str, Any]) -> tuple[Any, ...]:
    return (
        "airflow_provider_modelreg.fabric.watch",
        stored.get("fabric_conn_id"),
        stored.get("workspace_id"),
        stored.get("model_id"),
        stored.get("mode", "new_version"),
        stored.get("poke_interval"),
        stored.get("max_attempts"),
        stored.get("call_timeout"),
    )


class FabricWatchProducer(WatchProducer):
    """One poll loop per Fabric model and mode for every watcher of it in this triggerer (Airflow >= 3.3, ack
    mode); see :class:`~airflow_provider_modelreg.triggers.watch_stream.WatchProducer`."""

    label: ClassVar[str] = "Fabric model"
    hub_class: ClassVar[Any] = FabricPollHub

    @classmethod
    def stream_key(cls, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        return _stream_key(kwargs)

    async def observe(self, hub: Any, cursors: list[Any], interval: float) -> FabricObservation:
        kwargs = self.kwargs
        mode = str(kwargs.get("mode", "new_version"))
        return await observe_fabric(hub, kwargs.get("workspace_id"), str(kwargs["model_id"]), mode, interval)


class FabricVersionEventTrigger(ModelWatcherTrigger):
    """Fires once per new version, or once per new current version, of a DataArts Fabric model: for ``AssetWatcher``
    scheduling.

    ``mode="new_version"`` (default): each version listed since the last poll is announced once, oldest first by
    ``create_time`` then ``id`` (never the server's order); failed versions are logged, not announced.
    ``mode="current_version"``: each new current version of the model (UpdateModelDefinition moves it) is announced
    once. Event payload: ``status`` (the mode), ``model_id``, ``workspace_id``, ``version`` (ModelVersionRef dict).
    On the first start with no state, the model as it stands is known and nothing is announced, except versions
    (or a current version) created after ``created_after``. See :mod:`airflow_provider_modelreg.fabric_watch`.

    The state, the delivery guarantee and the shared poll are the PAI watcher's
    (:class:`~airflow_provider_modelreg.triggers.watch_stream.ModelWatcherTrigger`): the state is stored in every
    watched asset's state store (Airflow 3.3) under a key namespaced by the watcher's identity (connection,
    endpoint, workspace, model, mode), and written only once Airflow confirms it stored the events derived from it:
    each version is announced at least once per (watcher, asset), and once unless the triggerer crashes in between
    (deploy DAGs must be idempotent per version). Below 3.3 the state lives in memory. A watcher that keeps failing
    logs at ERROR and backs off (up to 15 minutes) instead of raising.

    :param fabric_conn_id: Airflow connection id.
    :param model_id: the model.
    :param workspace_id: the workspace (None: the connection's ``workspace_id``).
    :param mode: ``"new_version"`` or ``"current_version"``.
    :param poke_interval: seconds between polls.
    :param created_after: ISO 8601 time: at the first start, versions created after it are announced.
    :param max_attempts: attempts per registry request (1-20; None: the connection's ``max_attempts``).
    :param call_timeout: seconds one registry call may take, retries included (None: the connection's).
    """

    label: ClassVar[str] = "Fabric model"
    producer_class: ClassVar[type[WatchProducer]] = FabricWatchProducer

    def __init__(
        self,
        *,
        fabric_conn_id: str,
        model_id: str,
        workspace_id: str | None = None,
        mode: str = "new_version",
        poke_interval: float = 60.0,
        created_after: str | None = None,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
    ) -> None:
        super().__init__()
        # Kept as given: checked in run() / shared_stream_key() (a constructor error would stop the triggerer
        # rebuilding the stored trigger).
        self.fabric_conn_id = fabric_conn_id
        self.model_id = model_id
        self.workspace_id = workspace_id
        self.mode = mode
        self.poke_interval = poke_interval
        self.created_after = created_after
        self.max_attempts = max_attempts
        self.call_timeout = call_timeout
        self._init_state()
        self._start_after: datetime | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        cls = type(self)
        own = f"{cls.__module__}.{cls.__qualname__}"
        classpath = FABRIC_WATCH_CLASSPATH if cls is FabricVersionEventTrigger else own
        return classpath, {
            "fabric_conn_id": self.fabric_conn_id,
            "model_id": self.model_id,
            "workspace_id": self.workspace_id,
            "mode": self.mode,
            "poke_interval": self.poke_interval,
            "created_after": self.created_after,
            "max_attempts": self.max_attempts,
            "call_timeout": self.call_timeout,
        }

    def _checked(self) -> tuple[float, datetime | None]:
        rendered_required(self.fabric_conn_id, "fabric_conn_id")
        check_fabric_id(rendered_required(self.model_id, "model_id"), "model_id")
        if self.workspace_id is not None:
            check_fabric_id(rendered_required(self.workspace_id, "workspace_id"), "workspace_id")
        check_watch_mode(self.mode)
        interval = check_poke_interval(self.poke_interval)
        start = parse_created_after(self.created_after)
        check_request_attempts(self.max_attempts, "max_attempts")
        check_request_timeout(self.call_timeout, "call_timeout")
        return interval, start

    # -- the watch machinery's interface (triggers.watch_stream.ModelWatcherTrigger)

    async def _identity(self, hub: Any) -> FabricWatchIdentity:
        endpoint = await hub.endpoint()
        workspace, _ = await where(hub, self.workspace_id)
        return FabricWatchIdentity(self.fabric_conn_id, endpoint, workspace, self.model_id, self.mode)

    def _stored_cursor(self, value: Any, identity: Any) -> FabricWatchCursor | None:
        return FabricWatchCursor.from_json(value, identity)

    def _first_cursor(self, start: datetime | None) -> None:
        self._start_after = start  # the first observation announces what was created after it
        return None

    def _merge_stored(self, found: list[Any]) -> FabricWatchCursor:
        return merge_fabric_cursors(found)

    async def _observe(self, hub: Any, cursors: list[Any], interval: float) -> FabricObservation:
        return await observe_fabric(hub, self.workspace_id, self.model_id, self.mode, interval)

    def _covers(self, obs: Any, cursor: Any) -> bool:
        return True  # every poll reads the whole model: it serves any watcher, whenever it joined

    def _apply(self, obs: FabricObservation) -> tuple[FabricWatchCursor, list[TriggerEvent]]:
        result = apply_fabric_observation(self.cursor, obs, mode=self.mode, created_after=self._start_after)
        for version in result.failed:
            self.log.warning("Model %s: version %r (%s) failed; not announced", self.model_id, version.name, version.id)
        events = [
            TriggerEvent(
                {
                    "status": self.mode,
                    "model_id": self.model_id,
                    "workspace_id": obs.workspace_id,
                    "version": obs.ref(version),
                }
            )
            for version in result.announce
        ]
        return result.cursor, events
