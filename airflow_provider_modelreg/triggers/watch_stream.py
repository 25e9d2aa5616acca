"""The machinery every asset watcher of the provider shares, whatever the registry: the state store (one state per
watcher identity in each watched asset's store), the delivery guarantee (at least once: on Airflow 3.3 a state is
written only after Airflow confirms it stored the events derived from it) and, on Airflow 3.3, the shared stream
that runs one poll per model for every watcher of it (:class:`WatchProducer`, ack mode).

A registry's watcher subclasses :class:`ModelWatcherTrigger` (the PAI approval watcher in
:mod:`airflow_provider_modelreg.triggers.watcher`, the Fabric version watcher in
:mod:`airflow_provider_modelreg.triggers.fabric_watcher`) and supplies the small interface below: its arguments, its
hub, its identity and cursor (a sans-IO watch core's), one poll and what a watcher announces from it.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg._compat import HAS_SHARED_STREAMS, BaseEventTrigger, SharedStreamProducer
from airflow_provider_modelreg._compat import asset_state_accessors as asset_state_accessors
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.triggers.hub import PollHub, masked
from airflow_provider_modelreg.validation import check_request_attempts, check_request_timeout

if TYPE_CHECKING:
    from airflow.triggers.shared_stream import AdvanceItem

__all__ = ["MAX_WATCH_BACKOFF", "ModelWatcherTrigger", "WatchProducer"]

#: The triggers' logger since before the watcher had its own module (logging configurations name it).
log = logging.getLogger("airflow_provider_modelreg.triggers.pai")

#: Longest wait between attempts of a watcher that keeps failing.
MAX_WATCH_BACKOFF = 900.0


def _backoff(interval: float, failures: int) -> float:
    return float(min(MAX_WATCH_BACKOFF, max(interval, 1.0) * 2 ** min(failures - 1, 16)))


def _watch_failed(
    logger: Any, model_id: str, failures: int, interval: float, exc: BaseException, label: str = "PAI model"
) -> float:
    """Log a failed watcher poll at ERROR (model, count, cause) and return the wait before the next one."""
    delay = _backoff(interval, failures)
    logger.error(
        "Watcher of %s %s failed (%d in a row; next attempt in %.0f s): %s: %s",
        label,
        model_id,
        failures,
        delay,
        type(exc).__name__,
        masked(str(exc)),
    )
    return delay


@dataclass
class _WatchGroup:
    """The watchers of one shared stream in this triggerer: their cursors, and the states each one may store once
    Airflow has stored the events of an observation (ack mode)."""

    members: dict[int, Any] = field(default_factory=dict)
    #: observation seq -> (watcher, cursor to store) for every watcher that processed it
    commits: dict[int, list[tuple[Any, Any]]] = field(default_factory=dict)
    joined: asyncio.Event = field(default_factory=asyncio.Event)


_WATCH_GROUPS: dict[Any, _WatchGroup] = {}


class WatchProducer(SharedStreamProducer, abc.ABC):
    """One poll loop per model for every watcher of it in this triggerer (Airflow >= 3.3, ack mode).

    Each raw event is one observation with its sequence number. Airflow calls :meth:`advance` once every watcher
    has moved past an observation and the events it derived were stored in the metadata database; only then are the
    watchers' states written. A crash before that leaves the old state, and the versions are announced again after
    the restart (at least once). A registry's producer names its hub class and says how one poll is made.
    """

    label: ClassVar[str] = "model"
    #: the hub the stream polls through: ``hub_class.acquire`` with the stored connection and request settings
    hub_class: ClassVar[Any]

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = self.stored_kwargs(kwargs)
        self.key = self.stream_key(self.kwargs)

    @classmethod
    def stored_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The stored kwargs under today's names."""
        return kwargs

    @classmethod
    @abc.abstractmethod
    def stream_key(cls, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The shared stream's key: equal for the watchers one poll serves."""

    @classmethod
    def acquire_hub(cls, kwargs: dict[str, Any], interval: float) -> PollHub[Any]:
        """The hub of the watchers stored with ``kwargs`` (checked, under today's names), acquired for ``interval``."""
        hub: PollHub[Any] = cls.hub_class.acquire(
            kwargs[cls.hub_class.conn_field],
            interval,
            max_attempts=check_request_attempts(kwargs.get("max_attempts"), "max_attempts"),
            call_timeout=check_request_timeout(kwargs.get("call_timeout"), "call_timeout"),
        )
        return hub

    def acquire(self, interval: float) -> PollHub[Any]:
        """The hub the stream polls through."""
        return self.acquire_hub(self.kwargs, interval)

    @abc.abstractmethod
    async def observe(self, hub: Any, cursors: list[Any], interval: float) -> Any:
        """One poll for every watcher of the stream (their ``cursors``)."""

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        interval = float(self.kwargs["poke_interval"])
        model_id = str(self.kwargs["model_id"])
        group = _WATCH_GROUPS.setdefault(self.key, _WatchGroup())
        hub = self.acquire(interval)
        seq = failures = 0
        try:
            while True:
                while not group.members:
                    group.joined.clear()
                    await group.joined.wait()
                cursors = [member.cursor for member in group.members.values()]
                try:
                    obs = await self.observe(hub, cursors, interval)
                except Exception as exc:
                    failures += 1
                    delay = _watch_failed(log, model_id, failures, interval, exc, self.label)
                else:
                    failures, delay = 0, interval
                    seq += 1
                    yield (seq, obs), seq
                await asyncio.sleep(delay)
        finally:
            await hub.release(interval)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        group = _WATCH_GROUPS.get(self.key)
        for item in batch:
            commits = [] if group is None else group.commits.pop(item.broker_payload, [])
            if not item.outcome.is_clean:
                log.warning(
                    "%s %s: observation %s was not confirmed stored by every watcher (%s); their states stay as "
                    "they were, so its versions are announced again after a restart",
                    self.label,
                    self.kwargs.get("model_id"),
                    item.broker_payload,
                    item.outcome,
                )
                continue
            for watcher, cursor in commits:
                await watcher.commit(cursor)

    async def aclose(self) -> None:
        group = _WATCH_GROUPS.get(self.key)
        if group is not None and not group.members:
            _WATCH_GROUPS.pop(self.key, None)


class ModelWatcherTrigger(BaseEventTrigger):
    """An asset watcher's trigger: state per watcher identity in every watched asset's store, one shared poll per
    model on Airflow 3.3 (ack mode), a standalone poll loop below. A watcher that keeps failing logs each failure at
    ERROR and waits longer each time (up to 15 minutes) instead of raising; a bad stored argument is logged at ERROR
    the same way.

    Subclasses supply: :attr:`producer_class`, :meth:`_checked`, :meth:`_identity`, :meth:`_stored_cursor`,
    :meth:`_first_cursor`, :meth:`_merge_stored`, :meth:`_observe`, :meth:`_covers`, :meth:`_apply`; ``model_id``
    and ``cursor`` attributes. Their stored kwargs (:meth:`serialize`) are what the shared stream is keyed and
    polled by.
    """

    label: ClassVar[str] = "model"
    #: the registry's shared stream: its key, its hub and its poll
    producer_class: ClassVar[type[WatchProducer]]
    model_id: str
    cursor: Any

    def _init_state(self) -> None:
        self.cursor = None
        self.identity: Any = None
        self._accessors: list[Any] | None = None
        self._uncommitted = 0

    # -- the registry's interface

    @abc.abstractmethod
    def _checked(self) -> tuple[float, Any]:
        """(poll interval, start argument), every argument checked (typed error naming the field)."""

    def _acquire(self, interval: float) -> Any:
        """The hub this watcher polls through (its arguments checked): the one its shared stream polls through."""
        return self.producer_class.acquire_hub(self.producer_class.stored_kwargs(self.serialize()[1]), interval)

    @abc.abstractmethod
    async def _identity(self, hub: Any) -> Any:
        """Who this watcher is (an object with ``state_key``)."""

    @abc.abstractmethod
    def _stored_cursor(self, value: Any, identity: Any) -> Any:
        """The cursor stored under this watcher's identity (None: none, or not this watcher's)."""

    @abc.abstractmethod
    def _first_cursor(self, start: Any) -> Any:
        """The cursor of a first start (no stored state), from the start argument."""

    @abc.abstractmethod
    def _merge_stored(self, found: list[Any]) -> Any:
        """One cursor from those stored in several assets' stores (the one furthest behind decides)."""

    @abc.abstractmethod
    async def _observe(self, hub: Any, cursors: list[Any], interval: float) -> Any:
        """One poll for the watchers at ``cursors``."""

    @abc.abstractmethod
    def _covers(self, obs: Any, cursor: Any) -> bool:
        """Whether an observation serves a watcher at ``cursor`` (else the next poll does)."""

    @abc.abstractmethod
    def _apply(self, obs: Any) -> tuple[Any, list[TriggerEvent]]:
        """The cursor after an observation and the events it announces."""

    def _stream_key(self) -> tuple[Any, ...]:
        """The key of this watcher's shared stream."""
        return self.producer_class.stream_key(self.producer_class.stored_kwargs(self.serialize()[1]))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        return cls.producer_class(kwargs)

    def _watched(self) -> str:
        """What this watcher watches, for its log lines."""
        return f"model {self.model_id}"

    # -- state

    async def _prepare(self, hub: Any, start: Any) -> None:
        """Who this watcher is and its stored state."""
        self.identity = await self._identity(hub)
        self._accessors = asset_state_accessors(self)
        if self._accessors is None:
            self.log.warning(
                "No asset state store (Airflow < 3.3): the watcher state of %s lives in memory; versions "
                "announced while the triggerer restarts are not announced",
                self._watched(),
            )
            self.cursor = self._first_cursor(start)
            return
        key = self.identity.state_key
        stored = [self._stored_cursor(await a.aget(key), self.identity) for a in self._accessors]
        found = [c for c in stored if c is not None]
        # one trigger serving several assets: the state furthest behind decides (they are written together)
        self.cursor = self._merge_stored(found) if found else self._first_cursor(start)

    async def _save(self, cursor: Any) -> None:
        """Write the state to every watched asset's store (a failed write is logged: at least once holds)."""
        if not self._accessors or self.identity is None:
            return
        value = cursor.to_json(self.identity)
        for accessor in self._accessors:
            try:
                await accessor.aset(self.identity.state_key, value)
            except Exception as exc:
                self.log.warning(
                    "Model %s: watcher state not saved (%s); it is saved with the next poll", self.model_id, exc
                )

    async def commit(self, cursor: Any) -> None:
        """Store a state whose events Airflow has confirmed stored (ack mode: called by the producer)."""
        await self._save(cursor)
        self._uncommitted -= 1

    # -- shared stream (Airflow >= 3.3)

    def shared_stream_key(self) -> Any:
        if not HAS_SHARED_STREAMS:
            return None
        try:
            self._checked()
        except RegistryInputError:
            return None  # run() reports it
        return self._stream_key()

    async def _start(self, hub: Any, interval: float, start: Any) -> None:
        failures = 0
        while True:
            try:
                await self._prepare(hub, start)
                return
            except Exception as exc:
                failures += 1
                delay = _backoff(interval, failures)
                self.log.error(
                    "Watcher of %s %s could not start (next attempt in %.0f s): %s",
                    self.label,
                    self.model_id,
                    delay,
                    masked(str(exc)),
                )
                await asyncio.sleep(delay)

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        interval, start = self._checked()
        group = _WATCH_GROUPS.setdefault(self._stream_key(), _WatchGroup())
        hub = self._acquire(interval)
        me = id(self)
        try:
            await self._start(hub, interval, start)
            group.members[me] = self
            group.joined.set()
            failures = 0
            async for seq, obs in shared_stream:
                if not self._covers(obs, self.cursor):
                    continue  # planned before this watcher joined: the next poll merges its cursor in
                try:
                    cursor, events = self._apply(obs)
                except Exception as exc:  # an answer this watcher cannot judge (e.g. an undated new version):
                    failures += 1  # logged, the cursor kept, the next poll judged again; never the stream's end
                    _watch_failed(self.log, self.model_id, failures, interval, exc, self.label)
                    continue
                failures = 0
                self.cursor = cursor
                if events or self._uncommitted:
                    # stored only once Airflow has stored these events (and every earlier one): the producer
                    group.commits.setdefault(seq, []).append((self, cursor))
                    self._uncommitted += 1
                else:
                    await self._save(cursor)
                for event in events:
                    yield event
        finally:
            group.members.pop(me, None)
            for seq, items in list(group.commits.items()):
                group.commits[seq] = [(w, c) for w, c in items if w is not self]
            await hub.release(interval)

    # -- standalone (Airflow < 3.3, or a bad argument)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            interval, start = self._checked()
        except RegistryInputError as exc:
            # a stored bad value: say so at ERROR, slowly, for ever (raising would restart the trigger at once)
            while True:
                self.log.error("Watcher of %s %r cannot start: %s", self.label, self.model_id, exc)
                await asyncio.sleep(MAX_WATCH_BACKOFF)
        hub = self._acquire(interval)
        failures = 0
        prepared = False
        try:
            while True:
                try:
                    if not prepared:
                        await self._prepare(hub, start)
                        prepared = True
                    obs = await self._observe(hub, [self.cursor], interval)
                    cursor, events = self._apply(obs)
                    for event in events:
                        yield event
                    self.cursor = cursor
                    await self._save(cursor)
                    failures, delay = 0, interval
                except Exception as exc:
                    failures += 1
                    delay = _watch_failed(self.log, self.model_id, failures, interval, exc, self.label)
                await asyncio.sleep(delay)
        finally:
            await hub.release(interval)
