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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg._compat import BaseEventTrigger, asset_state_accessors
from airflow_provider_modelreg.approval import (
    Anchor,
    ApprovalCheck,
    ApprovalTarget,
    ApprovedWatch,
    Decision,
    Outcome,
    Read,
    ReadVersion,
    WatchState,
    check_deployable,
    describe_page,
    parse_created_after,
)
from airflow_provider_modelreg.approval_io import adrive, aread
from airflow_provider_modelreg.errors import RegistryAuthError, RegistryInputError
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.models import PaiModelVersion
from airflow_provider_modelreg.validation import check_request_attempts, check_request_timeout

__all__ = ["PaiApprovedVersionEventTrigger", "PaiModelVersionApprovalTrigger", "PaiPollHub"]

log = logging.getLogger(__name__)
R = TypeVar("R")

#: Attempts one hub keeps on the wire. httpcore's pool scans its whole queue on every change, so a thousand waiting
#: requests cost quadratic CPU; a semaphore in front keeps that queue short (and the connections few). It is held
#: per attempt, not across retry waits.
HUB_MAX_IN_FLIGHT = 8

#: Longest silence of a shared read whose answer does not change (seconds).
LOG_HEARTBEAT = 600.0

#: Errors that will not go away by polling again.
_FATAL = (RegistryInputError, RegistryAuthError)


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
        overrides = tuple(sorted(_hook_overrides(request_attempts, request_timeout).items()))
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
        """Re-read the connection (a rotated secret) once; the old client closes with the hub."""
        if self.hook is stale:
            self.retired.append(stale)
            self.hook = PaiModelRegistryHook(self.conn_id, **dict(self.overrides))

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
            except RegistryAuthError:
                await self._renew_hook(hook)
                await self._gated_transport(self.hook)
                answer = await aread(self.hook, what)
            if not isinstance(what, ReadVersion):
                self._log_read(what, answer)
            return answer

        return await self.shared(what, max_age, fetch)

    async def _gated_transport(self, hook: PaiModelRegistryHook) -> None:
        """Build the hook's async client once, whatever number of reads start at the same moment (a thousand
        models' first reads would otherwise each look the connection up and build a client), and give it the
        hub's slots: held per attempt on the wire, not across retry waits, so one throttled model cannot delay
        the polls of the others."""
        if hook._atransport is None:
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
        if model_id not in hook._workspaces:
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


def _hook_overrides(request_attempts: int | None, request_timeout: float | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if request_attempts is not None:
        out["max_attempts"] = request_attempts
    if request_timeout is not None:
        out["call_timeout"] = request_timeout
    return out


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
        self.request_attempts = check_request_attempts(request_attempts)
        self.request_timeout = check_request_timeout(request_timeout)
        self.pai_conn_id = pai_conn_id
        self.model_id = model_id
        self.version_name = version_name
        self.after_version = after_version
        self.created_after = created_after
        self.poke_interval = float(poke_interval)
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
        return self._event("error", message=str(exc), error_type=type(exc).__name__)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            target = ApprovalTarget(
                model_id=self.model_id,
                version_name=self.version_name,
                after_version=self.after_version,
                created_after=parse_created_after(self.created_after),
            )
        except RegistryInputError as exc:
            yield self._error(exc)
            return
        hub = PaiPollHub.acquire(
            self.pai_conn_id,
            self.poke_interval,
            request_attempts=self.request_attempts,
            request_timeout=self.request_timeout,
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
                if isinstance(exc, _FATAL) or failures >= self.max_failures or _unjudgeable(exc):
                    return self._error(exc)
            else:
                failures = 0
                anchor = check.anchor
                decision: Decision | None = check.decision
                assert decision is not None
                if decision.outlook != outlook:  # one wait logs only when what it sees changes
                    outlook = decision.outlook
                    self.log.info("Model %s, waiting for %s: %s", self.model_id, target.describe(), outlook)
                if decision.version is not None and decision.outcome.is_terminal():
                    ref = await hub.version_ref(self.model_id, decision.version, self.poke_interval)
                    status = "success" if decision.outcome is Outcome.APPROVED else "rejected"
                    return self._event(status, version=ref)
            delay = self.poke_interval
            if self.end_time is not None:
                delay = max(0.0, min(delay, self.end_time - time.time()))
            await asyncio.sleep(delay)


def _unjudgeable(exc: Exception) -> bool:
    """An answer the gate cannot judge: polling again would only repeat it, so it is reported at once."""
    from airflow_provider_modelreg.errors import RegistryResponseError

    return isinstance(exc, RegistryResponseError) and exc.status_code == 200


#: Key in the asset state store (Airflow 3.3 persists it across triggerer restarts).
STATE_KEY = "modelreg_pai_approved_versions"
#: Longest wait between attempts of a watcher that keeps failing.
MAX_WATCH_BACKOFF = 900.0


class PaiApprovedVersionEventTrigger(BaseEventTrigger):
    """Fires once per newly approved version of a PAI model: for ``AssetWatcher`` scheduling.

    Semantics (README "Semantics"): the state is the set of version names known to be Approved. On its first
    start with no state, every version Approved at that moment is known (not announced), except those created
    after ``start_after``. From then on, each poll reads every Approved version and announces, oldest first, each
    one not known yet — whatever its creation time and however many arrived between polls — then adds it to the
    state. The state is written to the asset state store of *every* watched asset (Airflow 3.3; one trigger can
    serve several assets), so it survives a triggerer restart; a crash between the event and the write
    re-announces that version (at least once: deploy DAGs must be idempotent per version). Without a store
    (Airflow < 3.3) the state lives in memory and the trigger says so at WARNING when it starts.

    A watcher that keeps failing logs each failure at ERROR, naming the model and the cause, and waits longer
    each time (up to 15 minutes), instead of raising: the triggerer would restart a raising watcher at once.

    :param pai_conn_id: Airflow connection id.
    :param model_id: PAI ModelId.
    :param poke_interval: seconds between polls.
    :param start_after: ISO 8601 time: versions created after it and Approved at the first start are announced.
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
        request_attempts: int | None = None,
        request_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.request_attempts = check_request_attempts(request_attempts)
        self.request_timeout = check_request_timeout(request_timeout)
        self.pai_conn_id = pai_conn_id
        self.model_id = model_id
        self.poke_interval = float(poke_interval)
        self.start_after = start_after
        self.state = WatchState()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pai_conn_id": self.pai_conn_id,
                "model_id": self.model_id,
                "poke_interval": self.poke_interval,
                "start_after": self.start_after,
                "request_attempts": self.request_attempts,
                "request_timeout": self.request_timeout,
            },
        )

    async def _load_state(self, accessors: list[Any]) -> WatchState | None:
        return WatchState.merged([WatchState.from_json(await a.aget(STATE_KEY)) for a in accessors])

    async def _save_state(self, accessors: list[Any] | None) -> None:
        for accessor in accessors or []:
            await accessor.aset(STATE_KEY, self.state.to_json())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        start = parse_created_after(self.start_after, "start_after")
        accessors = asset_state_accessors(self)
        if accessors is None:
            self.log.warning(
                "No asset state store (Airflow < 3.3): the watcher state of model %s lives in memory; versions "
                "approved while the triggerer restarts are not announced",
                self.model_id,
            )
        hub = PaiPollHub.acquire(
            self.pai_conn_id,
            self.poke_interval,
            request_attempts=self.request_attempts,
            request_timeout=self.request_timeout,
        )
        failures = 0
        loaded = accessors is None
        try:
            while True:
                try:
                    if not loaded:
                        assert accessors is not None
                        self.state = await self._load_state(accessors) or self.state
                        loaded = True
                    watch = ApprovedWatch(self.model_id, self.state, start_after=start)
                    await adrive(watch, lambda what: hub.read(what, self.poke_interval))
                    baseline = watch.baseline()
                    if baseline is not None:
                        self.state = watch.state = baseline
                        await self._save_state(accessors)
                    for version in watch.to_announce():
                        try:
                            check_deployable(version)
                        except Exception as exc:
                            self.log.error("Model %s: not announcing %s: %s", self.model_id, version.version_name, exc)
                            continue
                        ref = await hub.version_ref(self.model_id, version, self.poke_interval)
                        yield TriggerEvent({"status": "approved", "model_id": self.model_id, "version": ref})
                        self.state = ApprovedWatch.announced(self.state, version)
                        await self._save_state(accessors)
                    failures = 0
                    delay = self.poke_interval
                except Exception as exc:
                    failures += 1
                    delay = min(MAX_WATCH_BACKOFF, max(self.poke_interval, 1.0) * 2 ** min(failures - 1, 16))
                    self.log.error(
                        "Watcher of PAI model %s failed (%d in a row; next attempt in %.0f s): %s: %s",
                        self.model_id,
                        failures,
                        delay,
                        type(exc).__name__,
                        exc,
                    )
                await asyncio.sleep(delay)
        finally:
            await hub.release(self.poke_interval)
