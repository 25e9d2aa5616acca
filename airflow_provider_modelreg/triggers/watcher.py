"""The asset-watcher event trigger of the PAI registry (:class:`PaiModelVersionApprovedEventTrigger`) and, on Airflow
3.3, the shared stream that runs one poll per model for every watcher of it (:class:`PaiWatchProducer`).

It drives the watch core (:mod:`airflow_provider_modelreg.watch`) through the shared-read hub
(:mod:`airflow_provider_modelreg.triggers.hub`). Its serialized classpath stays
``airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedEventTrigger`` (where it was defined first, and from
where it is still importable): watchers already registered keep their trigger and its hash.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg._compat import (
    HAS_SHARED_STREAMS,
    BaseEventTrigger,
    SharedStreamProducer,
    asset_state_accessors,
)
from airflow_provider_modelreg.approval import (
    check_deployable,
    check_poke_interval,
    parse_created_after,
    rendered_required,
)
from airflow_provider_modelreg.approval_io import adrive
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.renamed import current_names, renamed_class, take_renamed
from airflow_provider_modelreg.triggers.hub import PaiPollHub, masked
from airflow_provider_modelreg.validation import check_pai_model_id, check_request_attempts, check_request_timeout
from airflow_provider_modelreg.watch import (
    Observation,
    WatchCursor,
    WatchIdentity,
    WatchPoll,
    apply_observation,
    check_announce,
    merge_cursors,
    start_cursor,
)

if TYPE_CHECKING:
    from airflow.triggers.shared_stream import AdvanceItem

__all__ = ["CLASSPATH", "PaiModelVersionApprovedEventTrigger", "PaiWatchProducer", "observe"]

#: The triggers' logger since before the watcher had its own module (logging configurations name it).
log = logging.getLogger("airflow_provider_modelreg.triggers.pai")

#: The classpath :meth:`PaiModelVersionApprovedEventTrigger.serialize` returns (a subclass: its own).
CLASSPATH = "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedEventTrigger"

#: Where the watcher kept its state before it was namespaced per watcher (one set of names per asset, shared by
#: every watcher of that asset): no longer read, since it cannot say whose it is.
LEGACY_STATE_KEY = "modelreg_pai_approved_versions"
#: Longest wait between attempts of a watcher that keeps failing.
MAX_WATCH_BACKOFF = 900.0


def _backoff(interval: float, failures: int) -> float:
    return float(min(MAX_WATCH_BACKOFF, max(interval, 1.0) * 2 ** min(failures - 1, 16)))


def _watch_failed(logger: Any, model_id: str, failures: int, interval: float, exc: BaseException) -> float:
    """Log a failed watcher poll at ERROR (model, count, cause) and return the wait before the next one."""
    delay = _backoff(interval, failures)
    logger.error(
        "Watcher of PAI model %s failed (%d in a row; next attempt in %.0f s): %s: %s",
        model_id,
        failures,
        delay,
        type(exc).__name__,
        masked(str(exc)),
    )
    return delay


async def observe(hub: PaiPollHub, model_id: str, cursors: list[WatchCursor | None], max_age: float) -> Observation:
    """One poll of ``model_id`` for watchers at ``cursors`` (shared reads through the hub), with the ModelVersionRef
    of every version found Approved."""
    poll = WatchPoll(model_id, merge_cursors(cursors), need_newest_approved=any(c is None for c in cursors))
    await adrive(poll, lambda what: hub.read(what, max_age))
    obs = poll.observation
    assert obs is not None
    for version in obs.approved:
        obs.refs[version.version_name] = await hub.version_ref(model_id, version, max_age)
    return obs


@dataclass
class _WatchGroup:
    """The watchers of one shared stream in this triggerer: their cursors, and the states each one may store once
    Airflow has stored the events of an observation (ack mode)."""

    members: dict[int, PaiModelVersionApprovedEventTrigger] = field(default_factory=dict)
    #: observation seq -> (watcher, cursor to store) for every watcher that processed it
    commits: dict[int, list[tuple[PaiModelVersionApprovedEventTrigger, WatchCursor]]] = field(default_factory=dict)
    joined: asyncio.Event = field(default_factory=asyncio.Event)


_WATCH_GROUPS: dict[Any, _WatchGroup] = {}


class PaiWatchProducer(SharedStreamProducer):
    """One poll loop per model for every watcher of it in this triggerer (Airflow >= 3.3, ack mode).

    Each raw event is one :class:`~airflow_provider_modelreg.watch.Observation` with its sequence number. Airflow
    calls :meth:`advance` once every watcher has moved past an observation and the events it derived were stored
    in the metadata database; only then are the watchers' states written. A crash before that leaves the old
    state, and the versions are announced again after the restart (at least once).
    """

    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = current_names(kwargs)  # a stream opened for a watcher stored by an older release
        self.key = _stream_key(self.kwargs)

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        kwargs = self.kwargs
        interval = float(kwargs["poke_interval"])
        model_id = str(kwargs["model_id"])
        group = _WATCH_GROUPS.setdefault(self.key, _WatchGroup())
        hub = PaiPollHub.acquire(
            kwargs["pai_conn_id"],
            interval,
            max_attempts=kwargs.get("max_attempts"),
            call_timeout=kwargs.get("call_timeout"),
        )
        seq = failures = 0
        try:
            while True:
                while not group.members:
                    group.joined.clear()
                    await group.joined.wait()
                cursors = [member.cursor for member in group.members.values()]
                try:
                    obs = await observe(hub, model_id, cursors, interval)
                except Exception as exc:
                    failures += 1
                    delay = _watch_failed(log, model_id, failures, interval, exc)
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
                    "PAI model %s: observation %s was not confirmed stored by every watcher (%s); their states "
                    "stay as they were, so its versions are announced again after a restart",
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


def _stream_key(stored: dict[str, Any]) -> tuple[Any, ...]:
    kwargs = current_names(stored)
    return (
        "airflow_provider_modelreg.pai.watch",
        kwargs.get("pai_conn_id"),
        kwargs.get("model_id"),
        kwargs.get("poke_interval"),
        kwargs.get("max_attempts"),
        kwargs.get("call_timeout"),
    )


class PaiModelVersionApprovedEventTrigger(BaseEventTrigger):
    """Fires once per newly approved version of a PAI model: for ``AssetWatcher`` scheduling.

    Semantics (README "Semantics"): a watcher's state is its cursor (:mod:`airflow_provider_modelreg.watch`): the
    newest version it has seen, the versions Pending at its last poll and the newest version it announced. Cost
    and size do not grow with the model's history: about two requests a poll, plus one per version decided since.
    On its first start with no state, the model as it stands is known (nothing announced), except versions created
    after ``created_after`` and Approved, which are announced. From then on each version that becomes Approved is
    announced once, oldest first; with ``announce="newer"`` (the default) only when it is newer than every version
    announced before (a late approval of an older version is logged at WARNING), with ``"every"`` always.

    The state is stored in the asset state store of every watched asset (Airflow 3.3) under a key namespaced by
    the watcher's identity (connection, endpoint, model), so several watchers can share an asset. On Airflow 3.3
    the triggerer runs one poll per model for every watcher of it (a shared stream in ack mode) and a state is
    written only after Airflow confirms it stored the events derived from it: a crash in between announces those
    versions again (at least once; deploy DAGs must be idempotent per version). Below 3.3 there is no store: the
    state lives in memory, and the trigger says so at WARNING when it starts.

    A watcher that keeps failing logs each failure at ERROR, naming the model and the cause, and waits longer each
    time (up to 15 minutes), instead of raising: the triggerer would restart a raising watcher at once. A bad
    argument is logged at ERROR the same way.

    :param pai_conn_id: Airflow connection id.
    :param model_id: PAI ModelId.
    :param poke_interval: seconds between polls.
    :param created_after: ISO 8601 time: versions created after it and Approved at the first start are announced.
    :param announce: ``"newer"`` (default): announce only versions newer than every one announced before;
        ``"every"``: every version that becomes Approved.
    :param max_attempts: attempts per registry request (1-20; None: the connection's ``max_attempts``).
    :param call_timeout: seconds one registry call may take, retries included (None: the connection's
        ``call_timeout``). ``start_after``, ``request_attempts`` and ``request_timeout`` are the deprecated names
        of ``created_after``, ``max_attempts`` and ``call_timeout``.
    """

    def __init__(
        self,
        *,
        pai_conn_id: str,
        model_id: str,
        poke_interval: float = 60.0,
        created_after: str | None = None,
        announce: str = "newer",
        max_attempts: int | None = None,
        call_timeout: float | None = None,
        **renamed: Any,
    ) -> None:
        super().__init__()
        # Kept as given (see PaiModelVersionApprovedTrigger): checked in run() / shared_stream_key().
        given = take_renamed(
            type(self).__name__,
            renamed,
            created_after=created_after,
            max_attempts=max_attempts,
            call_timeout=call_timeout,
        )
        if renamed:
            raise TypeError(f"{type(self).__name__} got an unexpected keyword argument {next(iter(renamed))!r}")
        self.pai_conn_id = pai_conn_id
        self.model_id = model_id
        self.poke_interval = poke_interval
        self.created_after = given["created_after"]
        self.announce = announce
        self.max_attempts = given["max_attempts"]
        self.call_timeout = given["call_timeout"]
        self.cursor: WatchCursor | None = None
        self.identity: WatchIdentity | None = None
        self._accessors: list[Any] | None = None
        self._uncommitted = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "pai_conn_id": self.pai_conn_id,
            "model_id": self.model_id,
            "poke_interval": self.poke_interval,
            "created_after": self.created_after,
            "max_attempts": self.max_attempts,
            "call_timeout": self.call_timeout,
        }
        if self.announce != "newer":  # the default stays out: existing watchers keep their trigger hash
            kwargs["announce"] = self.announce
        cls = type(self)
        classpath = CLASSPATH if cls is PaiModelVersionApprovedEventTrigger else f"{cls.__module__}.{cls.__qualname__}"
        return classpath, kwargs

    def _checked(self) -> tuple[float, datetime | None]:
        """The arguments, checked (typed error naming the field)."""
        rendered_required(self.pai_conn_id, "pai_conn_id")
        check_pai_model_id(rendered_required(self.model_id, "model_id"))
        interval = check_poke_interval(self.poke_interval)
        start = parse_created_after(self.created_after)
        check_announce(self.announce)
        check_request_attempts(self.max_attempts, "max_attempts")
        check_request_timeout(self.call_timeout, "call_timeout")
        return interval, start

    # -- shared stream (Airflow >= 3.3)

    def shared_stream_key(self) -> Any:
        if not HAS_SHARED_STREAMS:
            return None
        try:
            self._checked()
        except RegistryInputError:
            return None  # run() reports it
        return _stream_key(self.serialize()[1])

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        return PaiWatchProducer(kwargs)

    async def _prepare(self, hub: PaiPollHub, start: datetime | None) -> None:
        """Who this watcher is (connection, endpoint, model) and its stored state."""
        await hub.gated_transport(hub.hook)
        endpoint = (await hub.hook.atransport()).base_url
        self.identity = WatchIdentity(self.pai_conn_id, endpoint, self.model_id)
        self._accessors = asset_state_accessors(self)
        if self._accessors is None:
            self.log.warning(
                "No asset state store (Airflow < 3.3): the watcher state of model %s lives in memory; versions "
                "approved while the triggerer restarts are not announced",
                self.model_id,
            )
            self.cursor = start_cursor(start)
            return
        key = self.identity.state_key
        stored = [WatchCursor.from_json(await a.aget(key), self.identity) for a in self._accessors]
        found = [c for c in stored if c is not None]
        if not found:
            self.cursor = start_cursor(start)
            return
        # one trigger serving several assets: the state furthest behind decides, so nothing one of them missed is
        # skipped (they are written together, so they normally agree)
        merged = merge_cursors(found)
        assert merged is not None
        newest = [c.newest for c in found if c.newest is not None]
        self.cursor = replace(merged, newest=min(newest) if len(newest) == len(found) else None)

    async def _save(self, cursor: WatchCursor) -> None:
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

    async def commit(self, cursor: WatchCursor) -> None:
        """Store a state whose events Airflow has confirmed stored (ack mode: called by :class:`PaiWatchProducer`)."""
        await self._save(cursor)
        self._uncommitted -= 1

    def _apply(self, obs: Observation) -> tuple[WatchCursor, list[TriggerEvent]]:
        result = apply_observation(self.cursor, obs, announce=self.announce)
        for version in result.skipped:
            self.log.warning(
                "Model %s: version %s was approved after a newer one was announced; not announced "
                '(announce="newer"; use announce="every" to deploy late approvals of older versions)',
                self.model_id,
                version.version_name,
            )
        events = []
        for version in result.announce:
            try:
                check_deployable(version)
            except Exception as exc:
                self.log.error("Model %s: not announcing %s: %s", self.model_id, version.version_name, exc)
                continue
            ref = obs.refs[version.version_name]
            events.append(TriggerEvent({"status": "approved", "model_id": self.model_id, "version": ref}))
        return result.cursor, events

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        interval, start = self._checked()
        key = _stream_key(self.serialize()[1])
        group = _WATCH_GROUPS.setdefault(key, _WatchGroup())
        hub = PaiPollHub.acquire(
            self.pai_conn_id,
            interval,
            max_attempts=check_request_attempts(self.max_attempts, "max_attempts"),
            call_timeout=check_request_timeout(self.call_timeout, "call_timeout"),
        )
        me = id(self)
        try:
            failures = 0
            while True:
                try:
                    await self._prepare(hub, start)
                    break
                except Exception as exc:
                    failures += 1
                    delay = _backoff(interval, failures)
                    self.log.error(
                        "Watcher of PAI model %s could not start (next attempt in %.0f s): %s",
                        self.model_id,
                        delay,
                        masked(str(exc)),
                    )
                    await asyncio.sleep(delay)
            group.members[me] = self
            group.joined.set()
            async for seq, obs in shared_stream:
                if not obs.covers(self.cursor):
                    continue  # planned before this watcher joined: the next poll merges its cursor in
                cursor, events = self._apply(obs)
                self.cursor = cursor
                if events or self._uncommitted:
                    # stored only once Airflow has stored these events (and every earlier one): PaiWatchProducer
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
                self.log.error("Watcher of PAI model %r cannot start: %s", self.model_id, exc)
                await asyncio.sleep(MAX_WATCH_BACKOFF)
        hub = PaiPollHub.acquire(
            self.pai_conn_id,
            interval,
            max_attempts=check_request_attempts(self.max_attempts, "max_attempts"),
            call_timeout=check_request_timeout(self.call_timeout, "call_timeout"),
        )
        failures = 0
        prepared = False
        try:
            while True:
                try:
                    if not prepared:
                        await self._prepare(hub, start)
                        prepared = True
                    obs = await observe(hub, self.model_id, [self.cursor], interval)
                    cursor, events = self._apply(obs)
                    for event in events:
                        yield event
                    self.cursor = cursor
                    await self._save(cursor)
                    failures, delay = 0, interval
                except Exception as exc:
                    failures += 1
                    delay = _watch_failed(self.log, self.model_id, failures, interval, exc)
                await asyncio.sleep(delay)
        finally:
            await hub.release(interval)


def __getattr__(name: str) -> Any:  # the classes' deprecated names (stored triggers keep their old classpath)
    return renamed_class(globals(), name)
