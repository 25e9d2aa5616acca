"""Triggers for the PAI registry: the deferrable approval wait and the asset-watcher event trigger.

Both drive the decision core (:mod:`airflow_provider_modelreg.approval`) through the async shell. Work is shared
inside one triggerer process: per event loop and connection there is one :class:`PaiPollHub` with one hook (one
async connection pool) that answers each read (a hashable value from the core) once for every trigger that asks
it while the answer is younger than that trigger's poll interval. A thousand waits on a few models cost a few
requests per interval.

Trigger kwargs are stored in plain text by Airflow: they hold ids, the conn id and plain numbers (the per-task
``request_attempts`` / ``request_timeout``) only; credentials are resolved inside ``run()`` with the async
connection API. Triggers share a hub only when their connection and request settings are equal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg._compat import (
    HAS_SHARED_STREAMS,
    BaseEventTrigger,
    SharedStreamProducer,
    asset_state_accessors,
)
from airflow_provider_modelreg.approval import (
    Anchor,
    ApprovalCheck,
    ApprovalTarget,
    Decision,
    Outcome,
    Read,
    ReadVersion,
    check_deployable,
    check_max_failures,
    check_poke_interval,
    describe_page,
    parse_created_after,
    rendered_optional,
    rendered_required,
)
from airflow_provider_modelreg.approval_io import adrive, aread
from airflow_provider_modelreg.errors import RegistryAuthError, RegistryInputError
from airflow_provider_modelreg.hooks.base import hook_overrides
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.models import PaiModelVersion
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

__all__ = ["PaiApprovedVersionEventTrigger", "PaiModelVersionApprovalTrigger", "PaiPollHub", "PaiWatchProducer"]

log = logging.getLogger(__name__)
R = TypeVar("R")

#: Attempts one hub keeps on the wire. httpcore's pool scans its whole queue on every change, so a thousand waiting
#: requests cost quadratic CPU; a semaphore in front keeps that queue short (and the connections few). It is held
#: per attempt, not across retry waits.
HUB_MAX_IN_FLIGHT = 8

#: Longest silence of a shared read whose answer does not change (seconds).
LOG_HEARTBEAT = 600.0


def _retryable(exc: BaseException) -> bool:
    """The one rule of every mode: only an error that says asking again can help is worth another poll."""
    return bool(getattr(exc, "retryable", False))


@dataclass
class _Entry:
    task: asyncio.Future[Any] | None = None
    result: Any = None
    at: float = float("-inf")
    waiters: int = 0


@dataclass
class PaiPollHub:
    """Shared hook and coalesced reads for all triggers of one connection in one event loop.

    State is bounded: an answer older than the longest poll interval of the hub's users can serve no one and is
    dropped; the hub itself goes away with its last user, cancelling what is in flight and closing its clients.
    """

    conn_id: str
    hook: PaiModelRegistryHook
    overrides: tuple[tuple[str, Any], ...] = ()  # hook arguments: the triggers' request settings
    users: int = 0
    requests: int = 0
    entries: dict[Any, _Entry] = field(default_factory=dict)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HUB_MAX_IN_FLIGHT))
    intervals: Counter[float] = field(default_factory=Counter)
    retired: list[PaiModelRegistryHook] = field(default_factory=list)
    _swept: float = float("-inf")
    #: What each shared read last logged, and when (see :meth:`_log_read`).
    logged: dict[Any, tuple[str, float]] = field(default_factory=dict)

    # -- lifecycle (class-level registry keyed by loop and conn id)

    @classmethod
    def acquire(
        cls,
        conn_id: str,
        interval: float = 60.0,
        *,
        request_attempts: int | None = None,
        request_timeout: float | None = None,
    ) -> PaiPollHub:
        """The hub of this event loop for ``conn_id`` and these request settings (created with its first user)."""
        overrides = tuple(sorted(hook_overrides(request_attempts, request_timeout).items()))
        key = (id(asyncio.get_running_loop()), conn_id, overrides)
        hub = _HUBS.get(key)
        if hub is None:
            hook = PaiModelRegistryHook(conn_id, **dict(overrides))
            hub = _HUBS[key] = cls(conn_id=conn_id, hook=hook, overrides=overrides)
        hub.users += 1
        hub.intervals[interval] += 1
        return hub

    async def release(self, interval: float = 60.0) -> None:
        """Drop one user; the last one cancels what is in flight and closes the clients."""
        self.users -= 1
        self.intervals[interval] -= 1
        if self.intervals[interval] <= 0:
            del self.intervals[interval]
        if self.users > 0:
            return
        _HUBS.pop((id(asyncio.get_running_loop()), self.conn_id, self.overrides), None)
        tasks = [e.task for e in self.entries.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.entries.clear()
        for hook in [*self.retired, self.hook]:
            await hook.aclose()
        self.retired.clear()

    def _sweep(self, now: float) -> None:
        """Drop answers no user can still take (older than the longest poll interval)."""
        keep = max(self.intervals, default=float("inf"))
        if now - self._swept < keep:
            return
        self._swept = now
        for key in [k for k, e in self.entries.items() if e.task is None and now - e.at > keep]:
            del self.entries[key]
        for key in [k for k, (_, at) in self.logged.items() if now - at >= LOG_HEARTBEAT]:
            del self.logged[key]  # it would be logged again anyway

    def _log_read(self, what: Read, answer: Any) -> None:
        """Log at INFO what a shared read saw, once per model: when it differs from what the last read of that
        model saw, and at least every :data:`LOG_HEARTBEAT` seconds, so a wait is never silent. (A line on every
        read would cost a thousand log lines a round with a thousand models: Airflow's log pipeline takes about a
        millisecond a line.)"""
        text = describe_page(what, answer)
        now = asyncio.get_running_loop().time()
        last = self.logged.get(what)
        if last is not None and last[0] == text and now - last[1] < LOG_HEARTBEAT:
            return
        self.logged[what] = (text, now)
        log.info("PAI model %s: %s", what.model_id, text)

    # -- coalescing

    async def shared(self, key: Any, max_age: float, fetch: Callable[[], Awaitable[R]]) -> R:
        """Result of ``fetch`` for ``key``: cached if younger than ``max_age``, else one in-flight request."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._sweep(now)
        entry = self.entries.get(key)
        if entry is not None and entry.task is None and now - entry.at < max_age:
            return entry.result  # type: ignore[no-any-return]
        if entry is None or entry.task is None:
            entry = self.entries.setdefault(key, _Entry())
            self.requests += 1

            task = asyncio.ensure_future(fetch())
            entry.task = task

            def settle(done: asyncio.Future[Any], entry: _Entry = entry) -> None:
                entry.task = None
                if done.cancelled() or done.exception() is not None:
                    if self.entries.get(key) is entry:
                        self.entries.pop(key, None)  # the next poll asks again
                else:
                    entry.result, entry.at = done.result(), loop.time()

            task.add_done_callback(settle)
        running: asyncio.Future[Any] = entry.task
        entry.waiters += 1
        try:
            # shield: one waiter's cancellation must not cancel the read the others wait on
            return await asyncio.shield(running)
        finally:
            entry.waiters -= 1
            if entry.waiters <= 0 and not running.done():
                running.cancel()  # nobody waits for it any more

    async def _renew_hook(self, stale: PaiModelRegistryHook) -> None:
        """Re-read the connection (a rotated secret) once; the old client closes once no read uses it."""
        if self.hook is stale:
            self.retired.append(stale)
            self.hook = PaiModelRegistryHook(self.conn_id, **dict(self.overrides))

    async def _close_retired(self) -> None:
        """Close the clients of renewed hooks once nothing is in flight (a long-running watcher renews often)."""
        if self.retired and not any(e.task is not None for e in self.entries.values()):
            retired, self.retired = self.retired, []
            for hook in retired:
                await hook.aclose()

    async def read(self, what: Read, max_age: float) -> Any:
        """One read for the core, shared by every trigger asking it; an auth error re-reads the connection once."""
        entry = self.entries.get(what)
        if entry is not None and entry.task is None and asyncio.get_running_loop().time() - entry.at < max_age:
            return entry.result  # the common case: answered by a read another wait made this round

        async def fetch() -> Any:
            hook = self.hook
            await self._gated_transport(hook)
            try:
                answer = await aread(hook, what)
            except RegistryAuthError as exc:
                from airflow_provider_modelreg.credentials.base import CredentialSourceError  # loaded already

                if isinstance(exc, CredentialSourceError):
                    raise  # the source failed, not the key: asking it again at once would only double the load
                await self._renew_hook(hook)
                await self._gated_transport(self.hook)
                answer = await aread(self.hook, what)
            if not isinstance(what, ReadVersion):
                self._log_read(what, answer)
            return answer

        try:
            return await self.shared(what, max_age, fetch)
        finally:
            await self._close_retired()

    async def _gated_transport(self, hook: PaiModelRegistryHook) -> None:
        """Build the hook's async client once, whatever number of reads start at the same moment (a thousand
        models' first reads would otherwise each look the connection up and build a client), and give it the
        hub's slots: held per attempt on the wire, not across retry waits, so one throttled model cannot delay
        the polls of the others."""
        if not hook.has_async_client:
            key = ("atransport", id(hook))
            await self.shared(key, float("inf"), hook.atransport)
            entry = self.entries.get(key)
            # The client lives on the hook; nothing to keep here. A waiter that joined after the build finished but
            # before its done-callback ran resumes while entry.task is still set: done() counts as finished too.
            if entry is not None and (entry.task is None or entry.task.done()):
                del self.entries[key]
        transport = await hook.atransport()
        transport.attempt_gate = self.gate

    async def version_ref(self, model_id: str, version: PaiModelVersion, max_age: float) -> dict[str, Any]:
        """The ModelVersionRef dict of a version: the model's own workspace (GetModel once per model and hook,
        shared by every trigger asking at the same time), the endpoint's region."""
        hook = self.hook
        if not hook.knows_workspace(model_id):
            await self.shared(("GetModel", model_id), max_age, lambda: hook.amodel_workspace(model_id))
        return (await hook.aversion_ref(model_id, version)).to_xcom()

    async def check(self, target: ApprovalTarget, anchor: Anchor | None, max_age: float) -> ApprovalCheck:
        """One poll of one wait, answered from shared reads wherever possible."""
        check = ApprovalCheck(target, anchor=anchor)
        # the async shell (approval_io.adrive), inlined: a thousand waits poll through here every interval
        while (what := check.next_read()) is not None:
            check.receive(what, await self.read(what, max_age))
        return check


_HUBS: dict[tuple[int, str, tuple[tuple[str, Any], ...]], PaiPollHub] = {}


class PaiModelVersionApprovalTrigger(BaseTrigger):
    """Waits until a PAI model version is Approved (or Rejected), polling through the shared hub.

    Events (``payload["status"]``): ``success`` (``version`` = ModelVersionRef dict), ``rejected`` (``version``),
    ``timeout`` (``end_time`` passed; it also bounds a poll in flight), ``error`` (``message``, ``error_type``)
    after ``max_failures`` consecutive failed polls, or at once for bad input, refused credentials and answers
    the gate cannot judge.

    :param pai_conn_id: Airflow connection id (credentials are looked up inside ``run()``).
    :param model_id: PAI ModelId.
    :param version_name: wait for this version; None = the next approved version after the anchor.
    :param after_version: anchor: versions newer than this one count.
    :param created_after: anchor: ISO 8601 time with offset.
    :param poke_interval: seconds between polls.
    :param end_time: UNIX time at which to give up with a ``timeout`` event (None: never).
    :param max_failures: consecutive failed polls tolerated before an ``error`` event.
    :param request_attempts: attempts per registry request (1-20; None: the connection's ``max_attempts``).
    :param request_timeout: seconds one registry call may take, retries included (None: the connection's).
    """

    def __init__(
        self,
        *,
        pai_conn_id: str,
        model_id: str,
        version_name: str | None = None,
        after_version: str | None = None,
        created_after: str | None = None,
        poke_interval: float = 60.0,
        end_time: float | None = None,
        max_failures: int = 5,
        request_attempts: int | None = None,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__()
        # Kept as given: a trigger is rebuilt from stored kwargs in the triggerer, which only survives a TypeError
        # there; run() checks them and reports a bad value as an ``error`` event.
        self.request_attempts = request_attempts
        self.request_timeout = request_timeout
        self.pai_conn_id = pai_conn_id
        self.model_id = model_id
        self.version_name = version_name
        self.after_version = after_version
        self.created_after = created_after
        self.poke_interval = poke_interval
        self.end_time = end_time
        self.max_failures = max_failures

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pai_conn_id": self.pai_conn_id,
                "model_id": self.model_id,
                "version_name": self.version_name,
                "after_version": self.after_version,
                "created_after": self.created_after,
                "poke_interval": self.poke_interval,
                "end_time": self.end_time,
                "max_failures": self.max_failures,
                "request_attempts": self.request_attempts,
                "request_timeout": self.request_timeout,
            },
        )

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "model_id": self.model_id, **payload})

    def _error(self, exc: BaseException) -> TriggerEvent:
        # Airflow stores event payloads unmasked: the message goes through the secrets masker first
        return self._event("error", message=masked(str(exc)), error_type=type(exc).__name__)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            target = ApprovalTarget(
                model_id=rendered_required(self.model_id, "model_id"),
                version_name=rendered_optional(self.version_name, "version_name"),
                after_version=rendered_optional(self.after_version, "after_version"),
                created_after=parse_created_after(self.created_after),
            )
            rendered_required(self.pai_conn_id, "pai_conn_id")
            self.poke_interval = check_poke_interval(self.poke_interval)
            self.max_failures = check_max_failures(self.max_failures)
            attempts = check_request_attempts(self.request_attempts)
            timeout = check_request_timeout(self.request_timeout)
        except RegistryInputError as exc:
            yield self._error(exc)
            return
        hub = PaiPollHub.acquire(
            self.pai_conn_id, self.poke_interval, request_attempts=attempts, request_timeout=timeout
        )
        try:
            yield await self._poll(hub, target)
        finally:
            await hub.release(self.poke_interval)

    def _timeout(self) -> TriggerEvent:
        return self._event("timeout", message=f"no approval before the sensor timeout ({self.end_time})")

    async def _poll(self, hub: PaiPollHub, target: ApprovalTarget) -> TriggerEvent:
        failures = 0
        anchor: Anchor | None = None
        outlook: str | None = None
        while True:
            left = None if self.end_time is None else self.end_time - time.time()
            if left is not None and left <= 0:
                return self._timeout()
            try:
                if left is None:
                    check = await hub.check(target, anchor, self.poke_interval)
                else:  # the end time also bounds a poll in flight
                    check = await asyncio.wait_for(hub.check(target, anchor, self.poke_interval), left)
            except asyncio.TimeoutError:
                return self._timeout()
            except Exception as exc:
                failures += 1
                self.log.warning("poll %d/%d for model %s failed: %s", failures, self.max_failures, self.model_id, exc)
                if not _retryable(exc) or failures >= self.max_failures:
                    return self._error(exc)
            else:
                anchor = check.anchor
                decision: Decision | None = check.decision
                assert decision is not None
                if decision.outlook != outlook:  # one wait logs only when what it sees changes
                    outlook = decision.outlook
                    self.log.info("Model %s, waiting for %s: %s", self.model_id, target.describe(), outlook)
                if decision.version is not None and decision.outcome.is_terminal():
                    try:  # the workspace lookup is a read like the others: within the same failure budget
                        ref = await hub.version_ref(self.model_id, decision.version, self.poke_interval)
                    except Exception as exc:
                        failures += 1
                        self.log.warning(
                            "poll %d/%d for model %s: version %s decided, its details failed: %s",
                            failures,
                            self.max_failures,
                            self.model_id,
                            decision.version.version_name,
                            exc,
                        )
                        if not _retryable(exc) or failures >= self.max_failures:
                            return self._error(exc)
                    else:
                        status = "success" if decision.outcome is Outcome.APPROVED else "rejected"
                        return self._event(status, version=ref)
                else:
                    failures = 0
            delay = self.poke_interval
            if self.end_time is not None:
                delay = max(0.0, min(delay, self.end_time - time.time()))
            await asyncio.sleep(delay)


def masked(text: str) -> str:
    """``text`` with every secret Airflow's masker knows replaced (event payloads are stored unmasked)."""
    from airflow.providers.common.compat.sdk import redact

    return str(redact(text))


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

    members: dict[int, PaiApprovedVersionEventTrigger] = field(default_factory=dict)
    #: observation seq -> (watcher, cursor to store) for every watcher that processed it
    commits: dict[int, list[tuple[PaiApprovedVersionEventTrigger, WatchCursor]]] = field(default_factory=dict)
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
        self.kwargs = kwargs
        self.key = _stream_key(kwargs)

    async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:
        kwargs = self.kwargs
        interval = float(kwargs["poke_interval"])
        model_id = str(kwargs["model_id"])
        group = _WATCH_GROUPS.setdefault(self.key, _WatchGroup())
        hub = PaiPollHub.acquire(
            kwargs["pai_conn_id"],
            interval,
            request_attempts=kwargs.get("request_attempts"),
            request_timeout=kwargs.get("request_timeout"),
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
                await watcher._save(cursor)
                watcher._uncommitted -= 1

    async def aclose(self) -> None:
        group = _WATCH_GROUPS.get(self.key)
        if group is not None and not group.members:
            _WATCH_GROUPS.pop(self.key, None)


def _stream_key(kwargs: dict[str, Any]) -> tuple[Any, ...]:
    return (
        "airflow_provider_modelreg.pai.watch",
        kwargs.get("pai_conn_id"),
        kwargs.get("model_id"),
        kwargs.get("poke_interval"),
        kwargs.get("request_attempts"),
        kwargs.get("request_timeout"),
    )


class PaiApprovedVersionEventTrigger(BaseEventTrigger):
    """Fires once per newly approved version of a PAI model: for ``AssetWatcher`` scheduling.

    Semantics (README "Semantics"): a watcher's state is its cursor (:mod:`airflow_provider_modelreg.watch`): the
    newest version it has seen, the versions Pending at its last poll and the newest version it announced. Cost
    and size do not grow with the model's history: about two requests a poll, plus one per version decided since.
    On its first start with no state, the model as it stands is known (nothing announced), except versions created
    after ``start_after`` and Approved, which are announced. From then on each version that becomes Approved is
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
    :param start_after: ISO 8601 time: versions created after it and Approved at the first start are announced.
    :param announce: ``"newer"`` (default): announce only versions newer than every one announced before;
        ``"every"``: every version that becomes Approved.
    :param request_attempts: attempts per registry request (1-20; None: the connection's ``max_attempts``).
    :param request_timeout: seconds one registry call may take, retries included (None: the connection's).
    """

    def __init__(
        self,
        *,
        pai_conn_id: str,
        model_id: str,
        poke_interval: float = 60.0,
        start_after: str | None = None,
        announce: str = "newer",
        request_attempts: int | None = None,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__()
        # Kept as given (see PaiModelVersionApprovalTrigger): checked in run() / shared_stream_key().
        self.pai_conn_id = pai_conn_id
        self.model_id = model_id
        self.poke_interval = poke_interval
        self.start_after = start_after
        self.announce = announce
        self.request_attempts = request_attempts
        self.request_timeout = request_timeout
        self.cursor: WatchCursor | None = None
        self.identity: WatchIdentity | None = None
        self._accessors: list[Any] | None = None
        self._uncommitted = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "pai_conn_id": self.pai_conn_id,
            "model_id": self.model_id,
            "poke_interval": self.poke_interval,
            "start_after": self.start_after,
            "request_attempts": self.request_attempts,
            "request_timeout": self.request_timeout,
        }
        if self.announce != "newer":  # the default stays out: existing watchers keep their trigger hash
            kwargs["announce"] = self.announce
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _checked(self) -> tuple[float, datetime | None]:
        """The arguments, checked (typed error naming the field)."""
        rendered_required(self.pai_conn_id, "pai_conn_id")
        check_pai_model_id(rendered_required(self.model_id, "model_id"))
        interval = check_poke_interval(self.poke_interval)
        start = parse_created_after(self.start_after, "start_after")
        check_announce(self.announce)
        check_request_attempts(self.request_attempts)
        check_request_timeout(self.request_timeout)
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
        await hub._gated_transport(hub.hook)
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
            request_attempts=check_request_attempts(self.request_attempts),
            request_timeout=check_request_timeout(self.request_timeout),
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
            request_attempts=check_request_attempts(self.request_attempts),
            request_timeout=check_request_timeout(self.request_timeout),
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
