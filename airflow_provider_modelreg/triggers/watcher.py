"""The asset-watcher event trigger of the PAI registry (:class:`PaiModelVersionApprovedEventTrigger`) and, on Airflow
3.3, the shared stream that runs one poll per model for every watcher of it (:class:`PaiWatchProducer`).

It drives the watch core (:mod:`airflow_provider_modelreg.watch`) through the shared-read hub
(:mod:`airflow_provider_modelreg.triggers.hub`). Its serialized classpath stays
``airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedEventTrigger`` (where it was defined first, and from
where it is still importable): watchers already registered keep their trigger and its hash.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar

from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.approval import (
    DEFAULT_ALIAS_KEY,
    AliasLookup,
    check_alias,
    check_alias_key,
    check_deployable,
    check_poke_interval,
    parse_created_after,
    rendered_required,
)
from airflow_provider_modelreg.approval_io import adrive
from airflow_provider_modelreg.models import PaiModelVersion
from airflow_provider_modelreg.renamed import current_names, renamed_class, take_renamed
from airflow_provider_modelreg.triggers.hub import PaiPollHub
from airflow_provider_modelreg.triggers.watch_stream import _WATCH_GROUPS as _WATCH_GROUPS
from airflow_provider_modelreg.triggers.watch_stream import MAX_WATCH_BACKOFF, ModelWatcherTrigger, WatchProducer
from airflow_provider_modelreg.triggers.watch_stream import _backoff as _backoff
from airflow_provider_modelreg.triggers.watch_stream import _watch_failed as _watch_failed
from airflow_provider_modelreg.triggers.watch_stream import _WatchGroup as _WatchGroup
from airflow_provider_modelreg.validation import check_pai_model_id, check_request_attempts, check_request_timeout
from airflow_provider_modelreg.watch import (
    AliasCursor,
    Observation,
    WatchCursor,
    WatchIdentity,
    WatchPoll,
    apply_alias,
    apply_observation,
    check_announce,
    merge_alias_cursors,
    merge_cursors,
    start_cursor,
)

__all__ = ["CLASSPATH", "MAX_WATCH_BACKOFF", "PaiModelVersionApprovedEventTrigger", "PaiWatchProducer", "observe"]

#: The triggers' logger since before the watcher had its own module (logging configurations name it).
log = logging.getLogger("airflow_provider_modelreg.triggers.pai")

#: The classpath :meth:`PaiModelVersionApprovedEventTrigger.serialize` returns (a subclass: its own).
CLASSPATH = "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedEventTrigger"

#: Where the watcher kept its state before it was namespaced per watcher (one set of names per asset, shared by
#: every watcher of that asset): no longer read, since it cannot say whose it is.
LEGACY_STATE_KEY = "modelreg_pai_approved_versions"


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


@dataclass(frozen=True)
class AliasObservation:
    """One poll of an alias watcher: the version holding the alias (None: none) and, when the watcher is to
    announce it (a deployable version), its ModelVersionRef (fetched only then; None: nothing to announce)."""

    holder: PaiModelVersion | None
    ref: dict[str, Any] | None = None


class PaiWatchProducer(WatchProducer):
    """One poll loop per PAI model for every watcher of it in this triggerer (Airflow >= 3.3, ack mode).

    Each raw event is one :class:`~airflow_provider_modelreg.watch.Observation` with its sequence number; see
    :class:`~airflow_provider_modelreg.triggers.watch_stream.WatchProducer` for when the watchers' states are written.
    """

    label: ClassVar[str] = "PAI model"
    hub_class: ClassVar[Any] = PaiPollHub

    @classmethod
    def stored_kwargs(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        return current_names(kwargs)  # a stream opened for a watcher stored by an older release

    @classmethod
    def stream_key(cls, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        return _stream_key(kwargs)

    async def observe(self, hub: Any, cursors: list[Any], interval: float) -> Observation:
        return await observe(hub, str(self.kwargs["model_id"]), cursors, interval)


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


class PaiModelVersionApprovedEventTrigger(ModelWatcherTrigger):
    """Fires once per newly approved version of a PAI model: for ``AssetWatcher`` scheduling.

    Semantics (docs/semantics.md): a watcher's state is its cursor (:mod:`airflow_provider_modelreg.watch`): the
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
    :param alias: follow an alias instead (a label ``alias_key=alias``, as
        :class:`~airflow_provider_modelreg.operators.pai_lifecycle.PaiSetModelVersionAliasOperator` keeps it): each
        poll resolves the version holding it (the newest holder while a move leaves two), and each version that
        becomes the holder and is Approved is announced once (a move back to an earlier version announces it
        again; ``announce`` does not apply). Its state is namespaced by the alias too. An alias watcher polls on
        its own (through the shared hub, whose reads every watcher of the alias shares), not in a shared stream:
        its state is written after its events are handed to the triggerer. With ``created_after``, the holder at
        the first start is announced when it was created after that time.
    :param alias_key: the label key of aliases (default ``alias``).
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
        alias: str | None = None,
        alias_key: str = DEFAULT_ALIAS_KEY,
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
        self.alias = alias
        self.alias_key = alias_key
        self._init_state()

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
        if self.alias is not None:  # likewise: only an alias watcher has these
            kwargs["alias"] = self.alias
            kwargs["alias_key"] = self.alias_key
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
        if self.alias is not None:
            check_alias(self.alias, self.alias_key)
        else:
            check_alias_key(self.alias_key)
        return interval, start

    @property
    def alias_label(self) -> tuple[str, str] | None:
        """The alias followed, as a label ``(key, value)`` (None: every approval is announced)."""
        return None if self.alias is None else (self.alias_key, self.alias)

    # -- the watch core's interface (triggers.watch_stream.ModelWatcherTrigger)

    label: ClassVar[str] = "PAI model"
    producer_class: ClassVar[type[WatchProducer]] = PaiWatchProducer

    def shared_stream_key(self) -> Any:
        if self.alias is not None:  # an alias watcher polls on its own (run())
            return None
        return super().shared_stream_key()

    async def _identity(self, hub: Any) -> WatchIdentity:
        """Who this watcher is: connection, endpoint, model."""
        return WatchIdentity(self.pai_conn_id, await hub.endpoint(), self.model_id, self.alias_label)

    def _watched(self) -> str:
        if self.alias is None:
            return super()._watched()
        return f"alias {self.alias_key}={self.alias} of model {self.model_id}"

    def _stored_cursor(self, value: Any, identity: Any) -> WatchCursor | AliasCursor | None:
        if self.alias is not None:
            return AliasCursor.from_json(value, identity)
        return WatchCursor.from_json(value, identity)

    def _first_cursor(self, start: datetime | None) -> WatchCursor | None:
        if self.alias is not None:
            return None  # apply_alias: the holder as it stands is known (announced only if created after start)
        return start_cursor(start)

    def _merge_stored(self, found: list[Any]) -> WatchCursor | AliasCursor:
        if self.alias is not None:
            return merge_alias_cursors(found)
        merged = merge_cursors(found)
        assert merged is not None
        newest = [c.newest for c in found if c.newest is not None]
        return replace(merged, newest=min(newest) if len(newest) == len(found) else None)

    async def _observe(self, hub: Any, cursors: list[Any], interval: float) -> Observation | AliasObservation:
        if self.alias is not None:
            return await self._observe_alias(hub, interval)
        return await observe(hub, self.model_id, cursors, interval)

    def _covers(self, obs: Any, cursor: Any) -> bool:
        return bool(obs.covers(cursor))

    def _apply(self, obs: Observation | AliasObservation) -> tuple[WatchCursor | AliasCursor, list[TriggerEvent]]:
        if isinstance(obs, AliasObservation):
            return self._apply_alias(obs)
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
            if self._deployable(version):
                ref = obs.refs[version.version_name]
                events.append(TriggerEvent({"status": "approved", "model_id": self.model_id, "version": ref}))
        return result.cursor, events

    def _deployable(self, version: PaiModelVersion) -> bool:
        """Whether an approved version can be announced: one that cannot be deployed is logged, not announced."""
        try:
            check_deployable(version)
        except Exception as exc:
            self.log.error("Model %s: not announcing %s: %s", self.model_id, version.version_name, exc)
            return False
        return True

    # -- alias watchers (always standalone: run())

    async def _observe_alias(self, hub: PaiPollHub, interval: float) -> AliasObservation:
        """One poll of an alias watcher: the holder (reads shared through the hub) and, when it is to be announced,
        its ModelVersionRef."""
        label = self.alias_label
        assert label is not None
        lookup = AliasLookup(self.model_id, *label)
        await adrive(lookup, lambda what: hub.read(what, interval))
        version = apply_alias(
            self.cursor, lookup.holder, created_after=parse_created_after(self.created_after)
        ).announce
        if version is None or not self._deployable(version):
            return AliasObservation(lookup.holder)  # nothing to announce
        return AliasObservation(lookup.holder, await hub.version_ref(self.model_id, version, interval))

    def _apply_alias(self, obs: AliasObservation) -> tuple[AliasCursor, list[TriggerEvent]]:
        label = self.alias_label
        assert label is not None
        result = apply_alias(self.cursor, obs.holder, created_after=parse_created_after(self.created_after))
        version = result.announce
        if version is None or obs.ref is None:  # none, or not deployable (logged by the poll: _observe_alias)
            return result.cursor, []
        self.log.info("Model %s: alias %s=%s is on %s, Approved", self.model_id, *label, version.version_name)
        event = TriggerEvent({"status": "approved", "model_id": self.model_id, "alias": label[1], "version": obs.ref})
        return result.cursor, [event]


def __getattr__(name: str) -> Any:  # the classes' deprecated names (stored triggers keep their old classpath)
    return renamed_class(globals(), name)
