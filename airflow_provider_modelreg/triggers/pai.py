"""Triggers for the PAI registry: the deferrable approval wait and the asset-watcher event trigger.

Work is shared inside one triggerer process. Per event loop and connection there is one
:class:`PaiPollHub`: one hook, so one async connection pool (with the process-wide SSL context), and one
in-flight request per (connection, model) whose result, while younger than a waiting trigger's poll interval,
answers every trigger waiting on that model. A thousand waits on a few models cost a few requests per interval.

Trigger kwargs are stored in plain text by Airflow 3.3: they hold ids and the conn id only; credentials are
resolved inside ``run()`` with the async connection API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from airflow.triggers.base import BaseEventTrigger, BaseTrigger, TriggerEvent

from airflow_provider_modelreg.approval import (
    RECENT_PAGE_SIZE,
    ApprovalTarget,
    Decision,
    Outcome,
    decide,
    page_covers,
    parse_created_after,
)
from airflow_provider_modelreg.errors import (
    RegistryAuthError,
    RegistryInputError,
    RegistryNotFoundError,
)
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.models import ApprovalStatus, PaiModelVersion

__all__ = ["PaiApprovedVersionEventTrigger", "PaiModelVersionApprovalTrigger", "PaiPollHub"]

log = logging.getLogger(__name__)
R = TypeVar("R")

#: Requests one hub keeps in flight. httpcore's pool scans its whole queue on every change, so a thousand waiting
#: requests cost quadratic CPU; a semaphore in front keeps that queue short (and the connections few).
HUB_MAX_IN_FLIGHT = 8

#: Errors that will not go away by polling again.
_FATAL = (RegistryInputError, RegistryAuthError)


@dataclass
class _Entry:
    task: asyncio.Future[Any] | None = None
    result: Any = None
    at: float = float("-inf")


@dataclass
class PaiPollHub:
    """Shared hook and coalesced polls for all triggers of one connection in one event loop."""

    conn_id: str
    hook: PaiModelRegistryHook
    users: int = 0
    requests: int = 0
    entries: dict[tuple[str, ...], _Entry] = field(default_factory=dict)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(HUB_MAX_IN_FLIGHT))

    # -- lifecycle (class-level registry keyed by loop and conn id)

    @classmethod
    def acquire(cls, conn_id: str) -> PaiPollHub:
        key = (id(asyncio.get_running_loop()), conn_id)
        hub = _HUBS.get(key)
        if hub is None:
            hub = _HUBS[key] = cls(conn_id=conn_id, hook=PaiModelRegistryHook(conn_id))
        hub.users += 1
        return hub

    async def release(self) -> None:
        """Drop one user; the last one closes the client (a rotated credential is picked up next time)."""
        self.users -= 1
        if self.users <= 0:
            _HUBS.pop((id(asyncio.get_running_loop()), self.conn_id), None)
            await self.hook.aclose()

    # -- coalescing

    async def shared(self, key: tuple[str, ...], max_age: float, fetch: Callable[[], Awaitable[R]]) -> R:
        """Result of ``fetch`` for ``key``: cached if younger than ``max_age``, else one in-flight request."""
        loop = asyncio.get_running_loop()
        entry = self.entries.get(key)
        if entry is not None and entry.task is None and loop.time() - entry.at < max_age:
            return entry.result  # type: ignore[no-any-return]
        if entry is None or entry.task is None:
            entry = self.entries.setdefault(key, _Entry())
            self.requests += 1

            async def gated() -> R:
                async with self.gate:
                    return await fetch()

            task = asyncio.ensure_future(gated())
            entry.task = task

            def settle(done: asyncio.Future[Any], entry: _Entry = entry) -> None:
                entry.task = None
                if done.cancelled() or done.exception() is not None:
                    self.entries.pop(key, None)  # the next poll asks again
                else:
                    entry.result, entry.at = done.result(), loop.time()

            task.add_done_callback(settle)
        # shield: one waiter's cancellation must not cancel the poll the others wait on
        return await asyncio.shield(entry.task)

    async def recent_versions(self, model_id: str, max_age: float) -> list[PaiModelVersion]:
        """The newest versions of a model (one ListModelVersions page), shared per model."""
        return await self.shared(
            ("recent", model_id),
            max_age,
            lambda: self.hook.alist_model_versions(
                model_id, order="DESC", max_results=RECENT_PAGE_SIZE, page_size=RECENT_PAGE_SIZE
            ),
        )

    async def version(self, model_id: str, version_name: str, max_age: float) -> PaiModelVersion | None:
        """One version (None if it does not exist yet), shared per (model, version)."""

        async def fetch() -> PaiModelVersion | None:
            try:
                return await self.hook.aget_model_version(model_id, version_name)
            except RegistryNotFoundError as exc:
                if exc.code == "InvalidModel.NotFound":
                    raise
                return None

        return await self.shared(("version", model_id, version_name), max_age, fetch)

    async def approved_versions(self, model_id: str, max_age: float) -> list[PaiModelVersion]:
        """The newest Approved versions (fallback when the recent page does not reach the anchor)."""
        return await self.shared(
            ("approved", model_id),
            max_age,
            lambda: self.hook.alist_model_versions(
                model_id, approval_status="Approved", order="DESC", max_results=RECENT_PAGE_SIZE, page_size=100
            ),
        )

    async def check(self, target: ApprovalTarget, anchor: datetime | None, max_age: float) -> Decision:
        """One poll for one wait, answered from shared results wherever possible."""
        versions = await self.recent_versions(target.model_id, max_age)
        if not page_covers(versions, target, anchor):
            if target.version_name is not None:
                found = await self.version(target.model_id, target.version_name, max_age)
                versions = [found] if found is not None else []
            else:
                versions = versions + await self.approved_versions(target.model_id, max_age)
        return decide(target, versions, anchor)

    async def anchor(self, target: ApprovalTarget) -> datetime | None:
        """Creation time after which versions count (next-approved mode); resolved once and cached."""
        if target.named:
            return None
        if target.created_after is not None:
            return target.created_after
        if target.after_version is None:
            return None
        found = await self.shared(
            ("anchor", target.model_id, target.after_version),
            float("inf"),
            lambda: self.hook.aget_model_version(target.model_id, target.after_version or ""),
        )
        return found.gmt_create_time


_HUBS: dict[tuple[int, str], PaiPollHub] = {}


async def _ref(hub: PaiPollHub, model_id: str, version: PaiModelVersion) -> dict[str, Any]:
    conn = await hub.hook.aconnection()
    _, region, workspace = hub.hook._settings(conn)
    return version.to_ref(model_id=model_id, region=region, workspace_id=workspace).to_xcom()


class PaiModelVersionApprovalTrigger(BaseTrigger):
    """Waits until a PAI model version is Approved (or Rejected), polling through the shared hub.

    Events (``payload["status"]``): ``success`` (``version`` = ModelVersionRef dict), ``rejected`` (``version``),
    ``timeout`` (``end_time`` passed), ``error`` (``message``, ``error_type``) after ``max_failures`` consecutive
    failed polls, or at once for bad input and refused credentials.

    :param pai_conn_id: Airflow connection id (credentials are looked up inside ``run()``).
    :param model_id: PAI ModelId.
    :param version_name: wait for this version; None = the next approved version after the anchor.
    :param after_version: anchor: versions created after this one count.
    :param created_after: anchor: ISO 8601 time with offset.
    :param poke_interval: seconds between polls.
    :param end_time: UNIX time at which to give up with a ``timeout`` event (None: never).
    :param max_failures: consecutive failed polls tolerated before an ``error`` event.
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
    ) -> None:
        super().__init__()
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
            },
        )

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "model_id": self.model_id, **payload})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            target = ApprovalTarget(
                model_id=self.model_id,
                version_name=self.version_name,
                after_version=self.after_version,
                created_after=parse_created_after(self.created_after),
            )
        except RegistryInputError as exc:
            yield self._event("error", message=str(exc), error_type=type(exc).__name__)
            return
        hub = PaiPollHub.acquire(self.pai_conn_id)
        try:
            async for event in self._poll(hub, target):
                yield event
                return
        finally:
            await hub.release()

    async def _poll(self, hub: PaiPollHub, target: ApprovalTarget) -> AsyncIterator[TriggerEvent]:
        failures = 0
        anchor: datetime | None = None
        anchored = False
        while True:
            if self.end_time is not None and time.time() >= self.end_time:
                yield self._event("timeout", message=f"no approval before the sensor timeout ({self.end_time})")
                return
            try:
                if not anchored:
                    anchor, anchored = await hub.anchor(target), True
                decision = await hub.check(target, anchor, self.poke_interval)
                failures = 0
                if decision.version is not None and decision.outcome is not Outcome.WAITING:
                    ref = await _ref(hub, self.model_id, decision.version)
                    status = "success" if decision.outcome is Outcome.APPROVED else "rejected"
                    yield self._event(status, version=ref)
                    return
            except Exception as exc:
                failures += 1
                log.warning("poll %d/%d for model %s failed: %s", failures, self.max_failures, self.model_id, exc)
                if isinstance(exc, _FATAL) or failures >= self.max_failures:
                    yield self._event("error", message=str(exc), error_type=type(exc).__name__)
                    return
            delay = self.poke_interval
            if self.end_time is not None:
                delay = max(0.0, min(delay, self.end_time - time.time()))
            await asyncio.sleep(delay)


#: Key in the asset state store (Airflow 3.3 persists it across triggerer restarts).
WATERMARK_KEY = "modelreg_pai_approved_watermark"


class PaiApprovedVersionEventTrigger(BaseEventTrigger):
    """Fires once per newly approved version of a PAI model: for ``AssetWatcher`` scheduling.

    Semantics: the watermark is the newest approved version already announced, as (GmtCreateTime, VersionName).
    Each poll announces, oldest first, every Approved version created after the watermark, then moves it. The
    watermark is kept in the asset state store that Airflow 3.3 injects into watcher triggers, so it survives a
    triggerer restart; a crash between the event and the store write re-announces that version (at least once,
    so deploy DAGs must be idempotent per version). Without a stored watermark, the first poll starts from
    ``start_after`` (ISO time), or else from the newest approved version at that moment (not announced).

    :param pai_conn_id: Airflow connection id.
    :param model_id: PAI ModelId.
    :param poke_interval: seconds between polls.
    :param start_after: ISO 8601 time: approved versions created after it are announced on first start.
    """

    def __init__(
        self,
        *,
        pai_conn_id: str,
        model_id: str,
        poke_interval: float = 60.0,
        start_after: str | None = None,
    ) -> None:
        super().__init__()
        self.pai_conn_id = pai_conn_id
        self.model_id = model_id
        self.poke_interval = float(poke_interval)
        self.start_after = start_after
        self.watermark: tuple[str, str] | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "pai_conn_id": self.pai_conn_id,
                "model_id": self.model_id,
                "poke_interval": self.poke_interval,
                "start_after": self.start_after,
            },
        )

    async def _load_watermark(self) -> tuple[str, str] | None:
        store = getattr(self, "asset_state_store", None)
        if store is not None:
            try:
                saved = await store.aget(WATERMARK_KEY)
            except Exception as exc:  # a store we cannot read degrades to the in-memory watermark
                log.warning("asset state store unreadable, using in-memory watermark: %s", exc)
            else:
                if isinstance(saved, list) and len(saved) == 2:
                    return str(saved[0]), str(saved[1])
        return None

    async def _save_watermark(self) -> None:
        store = getattr(self, "asset_state_store", None)
        if store is not None and self.watermark is not None:
            try:
                await store.aset(WATERMARK_KEY, list(self.watermark))
            except Exception as exc:
                log.warning("asset state store not writable: %s", exc)

    @staticmethod
    def _mark(version: PaiModelVersion) -> tuple[str, str]:
        created = version.gmt_create_time or datetime.min.replace(tzinfo=timezone.utc)
        return created.astimezone(timezone.utc).isoformat(), version.version_name

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hub = PaiPollHub.acquire(self.pai_conn_id)
        try:
            self.watermark = await self._load_watermark() or self.watermark
            if self.watermark is None and self.start_after is not None:
                start = parse_created_after(self.start_after, "start_after")
                assert start is not None
                self.watermark = (start.isoformat(), "")
            while True:
                try:
                    approved = await hub.approved_versions(self.model_id, self.poke_interval)
                except Exception as exc:
                    log.warning("poll for model %s failed: %s", self.model_id, exc)
                    await asyncio.sleep(self.poke_interval)
                    continue
                approved = [v for v in approved if v.status is ApprovalStatus.APPROVED]
                if self.watermark is None:
                    newest = max(approved, key=self._mark, default=None)
                    self.watermark = self._mark(newest) if newest else ("", "")
                    await self._save_watermark()
                else:
                    for version in sorted(approved, key=self._mark):
                        if self._mark(version) <= self.watermark:
                            continue
                        ref = await _ref(hub, self.model_id, version)
                        yield TriggerEvent({"status": "approved", "model_id": self.model_id, "version": ref})
                        self.watermark = self._mark(version)
                        await self._save_watermark()
                await asyncio.sleep(self.poke_interval)
        finally:
            await hub.release()
