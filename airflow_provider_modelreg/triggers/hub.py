"""The shared-read hub of the triggers: one per event loop, connection and request settings.

Work is shared inside one triggerer process: per event loop and connection there is one :class:`PaiPollHub` with
one hook (one async connection pool) that answers each read (a hashable value from the decision core) once for
every trigger that asks it while the answer is younger than the age that trigger accepts (its poll interval;
for a wait's second poll, the shorter delay before it). A thousand waits on a
few models cost a few requests per interval. Its public API (:meth:`PaiPollHub.acquire`, :meth:`~PaiPollHub.release`
or both around a block: :meth:`~PaiPollHub.using`,
:meth:`~PaiPollHub.read`, :meth:`~PaiPollHub.check`, :meth:`~PaiPollHub.version_ref`,
:meth:`~PaiPollHub.gated_transport`) is all the triggers use.

The machinery is the registry's choice of nothing: :class:`PollHub` takes its hook class, its connection argument,
the decision core of its waits, how it performs a read and how it describes an answer from a subclass
(:class:`PaiPollHub` here, ``FabricPollHub`` in :mod:`airflow_provider_modelreg.triggers.fabric`); each subclass
keeps hubs of its own.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Self, TypeVar

from airflow_provider_modelreg.approval import ApprovalCheck, Read, ReadVersion, describe_page
from airflow_provider_modelreg.approval_io import aread
from airflow_provider_modelreg.errors import RegistryAuthError
from airflow_provider_modelreg.hooks.base import ModelRegistryHookBase, hook_overrides
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.models import PaiModelVersion

__all__ = ["HUB_MAX_IN_FLIGHT", "LOG_HEARTBEAT", "PaiPollHub", "PollHub", "masked"]

#: The triggers' logger since before the hub had its own module (logging configurations name it).
log = logging.getLogger("airflow_provider_modelreg.triggers.pai")
R = TypeVar("R")
H = TypeVar("H", bound=ModelRegistryHookBase)
HubKey = tuple[int, str, tuple[tuple[str, Any], ...]]

#: Attempts one hub keeps on the wire. httpcore's pool scans its whole queue on every change, so a thousand waiting
#: requests cost quadratic CPU; a semaphore in front keeps that queue short (and the connections few). It is held
#: per attempt, not across retry waits.
HUB_MAX_IN_FLIGHT = 8

#: Longest silence of a shared read whose answer does not change (seconds).
LOG_HEARTBEAT = 600.0


@dataclass
class _Entry:
    task: asyncio.Future[Any] | None = None
    result: Any = None
    at: float = float("-inf")
    waiters: int = 0


@dataclass
class PollHub(abc.ABC, Generic[H]):
    """Shared hook and coalesced reads for all triggers of one connection in one event loop.

    State is bounded: an answer older than the longest poll interval of the hub's users can serve no one and is
    dropped; the hub itself goes away with its last user, cancelling what is in flight and closing its clients.
    A subclass names its hook class, performs a read (:meth:`perform`) and describes an answer (:meth:`describe`).
    """

    #: builds the hook of a connection: ``hook_class(conn_id, **request settings)``
    hook_class: ClassVar[Callable[..., Any]]
    #: the hubs of this subclass (each subclass has its own), by (event loop, conn id, request settings)
    hubs: ClassVar[dict[HubKey, Any]]
    #: who is polled, for the log lines ("PAI model ...")
    label: ClassVar[str] = "model"
    #: the argument naming the hub's connection in the provider's tasks and triggers
    conn_field: ClassVar[str]
    #: the decision core one poll of a wait runs (:meth:`check`): ``core(target, anchor=anchor)``
    core: ClassVar[Callable[..., Any]]

    conn_id: str
    hook: H
    overrides: tuple[tuple[str, Any], ...] = ()  # hook arguments: the triggers' request settings
    users: int = 0
    requests: int = 0
    entries: dict[Any, _Entry] = field(default_factory=dict)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HUB_MAX_IN_FLIGHT))
    intervals: Counter[float] = field(default_factory=Counter)
    retired: list[H] = field(default_factory=list)
    _swept: float = float("-inf")
    #: What each shared read last logged, and when (see :meth:`_log_read`).
    logged: dict[Any, tuple[str, float]] = field(default_factory=dict)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "hubs" not in cls.__dict__:
            cls.hubs = {}

    # -- lifecycle (class-level registry keyed by loop and conn id)

    @classmethod
    def acquire(
        cls,
        conn_id: str,
        interval: float = 60.0,
        *,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
    ) -> Self:
        """The hub of this event loop for ``conn_id`` and these request settings (created with its first user)."""
        overrides = tuple(sorted(hook_overrides(max_attempts, call_timeout).items()))
        key = (id(asyncio.get_running_loop()), conn_id, overrides)
        hub: Self | None = cls.hubs.get(key)
        if hub is None:
            hook = cls.hook_class(conn_id, **dict(overrides))
            hub = cls.hubs[key] = cls(conn_id=conn_id, hook=hook, overrides=overrides)
        hub.users += 1
        hub.intervals[interval] += 1
        return hub

    @classmethod
    @asynccontextmanager
    async def using(
        cls,
        conn_id: str,
        interval: float = 60.0,
        *,
        max_attempts: int | None = None,
        call_timeout: float | None = None,
    ) -> AsyncIterator[Self]:
        """:meth:`acquire` for the time of an ``async with`` block, :meth:`release` after it."""
        hub = cls.acquire(conn_id, interval, max_attempts=max_attempts, call_timeout=call_timeout)
        try:
            yield hub
        finally:
            await hub.release(interval)

    async def release(self, interval: float = 60.0) -> None:
        """Drop one user; the last one cancels what is in flight and closes the clients."""
        self.users -= 1
        self.intervals[interval] -= 1
        if self.intervals[interval] <= 0:
            del self.intervals[interval]
        if self.users > 0:
            return
        type(self).hubs.pop((id(asyncio.get_running_loop()), self.conn_id, self.overrides), None)
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

    def _log_read(self, what: Any, answer: Any) -> None:
        """Log at INFO what a shared read saw, once per model: when it differs from what the last read of that
        model saw, and at least every :data:`LOG_HEARTBEAT` seconds, so a wait is never silent. (A line on every
        read would cost a thousand log lines a round with a thousand models: Airflow's log pipeline takes about a
        millisecond a line.)"""
        text = self.describe(what, answer)
        now = asyncio.get_running_loop().time()
        last = self.logged.get(what)
        if last is not None and last[0] == text and now - last[1] < LOG_HEARTBEAT:
            return
        self.logged[what] = (text, now)
        log.info("%s %s: %s", self.label, what.model_id, text)

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

    async def _renew_hook(self, stale: H) -> None:
        """Re-read the connection (a rotated secret) once; the old client closes once no read uses it."""
        if self.hook is stale:
            self.retired.append(stale)
            self.hook = type(self).hook_class(self.conn_id, **dict(self.overrides))

    async def _close_retired(self) -> None:
        """Close the clients of renewed hooks once nothing is in flight (a long-running watcher renews often)."""
        if self.retired and not any(e.task is not None for e in self.entries.values()):
            retired, self.retired = self.retired, []
            for hook in retired:
                await hook.aclose()

    @abc.abstractmethod
    async def perform(self, hook: H, what: Any) -> Any:
        """Perform one read of the core with ``hook`` (the subclass's registry)."""

    @abc.abstractmethod
    def describe(self, what: Any, answer: Any) -> str:
        """One line on what a shared read saw (the subclass's registry)."""

    def logged_read(self, what: Any) -> bool:
        """Whether a read's answer is logged (:meth:`_log_read`)."""
        return True

    async def read(self, what: Any, max_age: float) -> Any:
        """One read for the core, shared by every trigger asking it; an auth error re-reads the connection once."""
        entry = self.entries.get(what)
        if entry is not None and entry.task is None and asyncio.get_running_loop().time() - entry.at < max_age:
            return entry.result  # the common case: answered by a read another wait made this round

        async def fetch() -> Any:
            hook = self.hook
            await self.gated_transport(hook)
            try:
                answer = await self.perform(hook, what)
            except RegistryAuthError as exc:
                from airflow_provider_modelreg.credentials.base import CredentialSourceError  # loaded already

                if isinstance(exc, CredentialSourceError):
                    raise  # the source failed, not the key: asking it again at once would only double the load
                await self._renew_hook(hook)
                await self.gated_transport(self.hook)
                answer = await self.perform(self.hook, what)
            if self.logged_read(what):
                self._log_read(what, answer)
            return answer

        try:
            return await self.shared(what, max_age, fetch)
        finally:
            await self._close_retired()

    async def gated_transport(self, hook: H) -> None:
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

    _gated_transport = gated_transport  # its name before it was public

    async def check(self, target: Any, anchor: Any, max_age: float) -> Any:
        """One poll of one wait (the :attr:`core` of ``target`` from ``anchor``), answered from shared reads wherever
        possible."""
        check = type(self).core(target, anchor=anchor)
        # the async shell (approval_io.adrive), inlined: a thousand waits poll through here every interval
        while (what := check.next_read()) is not None:
            check.receive(what, await self.read(what, max_age))
        return check

    async def endpoint(self) -> str:
        """The base URL of the hub's connection (its client built as for a read)."""
        await self.gated_transport(self.hook)
        return (await self.hook.atransport()).base_url


@dataclass
class PaiPollHub(PollHub[PaiModelRegistryHook]):
    """The hub of the PAI triggers (the approval wait and the asset watcher): reads of
    :mod:`airflow_provider_modelreg.approval`."""

    hook_class: ClassVar[Callable[..., Any]] = PaiModelRegistryHook
    label: ClassVar[str] = "PAI model"
    conn_field: ClassVar[str] = "pai_conn_id"
    core: ClassVar[Callable[..., Any]] = ApprovalCheck

    async def perform(self, hook: PaiModelRegistryHook, what: Read) -> Any:
        return await aread(hook, what)

    def describe(self, what: Read, answer: Any) -> str:
        return describe_page(what, answer)

    def logged_read(self, what: Read) -> bool:
        return not isinstance(what, ReadVersion)

    async def version_ref(self, model_id: str, version: PaiModelVersion, max_age: float) -> dict[str, Any]:
        """The ModelVersionRef dict of a version: the model's own workspace (GetModel once per model and hook,
        shared by every trigger asking at the same time), the endpoint's region."""
        hook = self.hook
        if not hook.knows_workspace(model_id):
            await self.shared(("GetModel", model_id), max_age, lambda: hook.amodel_workspace(model_id))
        return (await hook.aversion_ref(model_id, version)).to_xcom()


#: The PAI hubs (named before each hub class had its own).
_HUBS = PaiPollHub.hubs


def masked(text: str) -> str:
    """``text`` with every secret Airflow's masker knows replaced (event payloads are stored unmasked)."""
    from airflow.providers.common.compat.sdk import redact

    return str(redact(text))
