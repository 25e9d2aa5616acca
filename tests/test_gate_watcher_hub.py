"""Issue 10, cases 4-6 and the triggerer's shared hub: the asset watcher announces every approval once per
watcher state, keeps its state in every watched asset's store, fails loudly but gently; the hub renews a rotated
credential, stays bounded, leaves nothing behind when its waiters go, and a trigger's end_time bounds a poll in
flight. Against the suite's fake PAI server (tests/fake_pai.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from fake_pai import FakePai, fake_pai_server
from helpers import PAI_KEY, pai_conn

from airflow_provider_modelreg.triggers import pai as triggers_pai
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger, PaiModelVersionApprovedTrigger

MODEL = "m-watch"


def v(name: str, status: str, day: int, second: int = 0) -> dict[str, Any]:
    return {
        "VersionName": name,
        "ApprovalStatus": status,
        "Uri": f"oss://bucket/models/{name}/",
        "GmtCreateTime": f"2024-01-{day:02d}T08:00:{second:02d}.000Z",
    }


class FakeAccessor:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


class FakeStore:
    """Shaped like Airflow 3.3's AssetStateStoreAccessors: per-asset accessors; single-asset calls refuse two."""

    def __init__(self, *names: str) -> None:
        self._by_name = {name: FakeAccessor() for name in names}
        self._by_uri: dict[str, FakeAccessor] = {}

    def _single(self) -> FakeAccessor:
        if len(self._by_name) != 1:
            raise ValueError(f"Task has {len(self._by_name)} concrete inlets and outlets")
        return next(iter(self._by_name.values()))

    async def aget(self, key: str, default: Any = None) -> Any:
        return await self._single().aget(key, default)

    async def aset(self, key: str, value: Any) -> None:
        await self._single().aset(key, value)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with fake_pai_server() as server:
        server.models[MODEL] = [v("0.9.0", "Rejected", 1), v("0.9.5", "Approved", 2), v("1.0.0", "Approved", 3)]
        pai_conn(monkeypatch, server.url, max_attempts=1)
        yield server


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds; fails naming ``what`` after ``timeout`` seconds (a loaded machine is slow, a
    broken one never gets there)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.01)


class Watcher:
    """Runs an event trigger as the triggerer does and collects what it announces."""

    def __init__(self, fake: FakePai, store: Any, interval: float = 0.05, **kwargs: Any) -> None:
        self.fake = fake
        self.trigger = PaiModelVersionApprovedEventTrigger(
            pai_conn_id="pai_default", model_id=MODEL, poke_interval=interval, **kwargs
        )
        if store is not None:
            self.trigger.asset_state_store = store
        self.events: list[str] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload["version"]["version_name"])

    def start(self) -> Watcher:
        self.task = asyncio.ensure_future(self._run())
        return self

    async def until(self, count: int, timeout: float = 10.0) -> list[str]:
        """The events once ``count`` have arrived and the watcher has polled once more in full: a poll lists twice
        (recent, Pending), and the next poll starts only after its events were taken, so 3 more list reads mean a
        whole poll after the announcing one had its chance to announce again."""
        await eventually(lambda: len(self.events) >= count, f"{count} events (got {self.events})", timeout)
        reads = self.fake.count("ListModelVersions")
        await eventually(lambda: self.fake.count("ListModelVersions") >= reads + 3, "a poll after them", timeout)
        return self.events

    async def started(self, store: FakeStore, timeout: float = 10.0) -> None:
        """Until the start point is stored (the first poll is done)."""
        accessor = next(iter(store._by_name.values()))
        await eventually(lambda: state_of(accessor) is not None, "the start point stored", timeout)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def state_of(accessor: FakeAccessor) -> dict[str, Any] | None:
    """The watcher's state in one asset's store (its key is namespaced by connection, endpoint and model)."""
    found = [value for key, value in accessor.data.items() if key.startswith(f"modelreg_pai_watch:{MODEL}:")]
    assert len(found) <= 1, accessor.data
    return found[0] if found else None


def approve(fake: FakePai, *versions: dict[str, Any]) -> None:
    with fake.lock:
        fake.models[MODEL].extend(versions)


@pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
async def test_4_out_of_order_and_many_approvals_are_each_announced_once(fake: FakePai) -> None:
    store = FakeStore("prod")
    watcher = Watcher(fake, store, announce="every").start()
    await watcher.started(store)  # start point: 0.9.5 and 1.0.0 are Approved already and not announced
    assert watcher.events == []
    approve(fake, v("1.1.0", "Pending", 4), v("1.2.0", "Approved", 5))
    assert await watcher.until(1) == ["1.2.0"]
    fake.set_status(MODEL, "1.1.0", "Approved")  # older than 1.2.0, approved after it: announced with "every"
    assert await watcher.until(2) == ["1.2.0", "1.1.0"]
    burst = [v(f"2.{i}.0", "Approved", 10 + i // 60, i % 60) for i in range(150)]  # > 100 between two polls
    approve(fake, *burst)
    events = await watcher.until(152)
    await watcher.stop()
    assert events[2:] == [b["VersionName"] for b in burst]  # every one, once, oldest first
    assert len(set(events)) == len(events) == 152


@pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
async def test_5_two_watched_assets_both_keep_the_state_across_a_restart(fake: FakePai) -> None:
    store = FakeStore("staging", "prod")
    first = Watcher(fake, store).start()
    await first.started(store)
    approve(fake, v("1.1.0", "Approved", 4))
    assert await first.until(1) == ["1.1.0"]
    await first.stop()
    for accessor in store._by_name.values():  # the state is in both assets' stores
        state = state_of(accessor)
        assert state is not None and state["newest"][1] == "1.1.0", state
    approve(fake, v("1.2.0", "Approved", 5))  # approved while the triggerer restarts
    second = Watcher(fake, store).start()
    assert await second.until(1) == ["1.2.0"]  # not lost, and 1.1.0 not announced again
    await second.stop()


def logged(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, level: str) -> list[str]:
    """Log lines at ``level`` (Airflow renders task and trigger logs with structlog on stdout)."""
    lines = [line for line in capsys.readouterr().out.splitlines() if f"[{level.lower()}" in line]
    lines += [r.getMessage() for r in caplog.records if r.levelname == level]
    return lines


async def logged_eventually(
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, level: str, text: str, timeout: float = 10.0
) -> list[str]:
    """Log lines at ``level`` once one of them contains ``text`` (fails after ``timeout`` seconds)."""
    out: list[str] = []
    records: list[str] = []

    def seen() -> bool:
        out.extend(line for line in capsys.readouterr().out.splitlines() if f"[{level.lower()}" in line)
        records[:] = [r.getMessage() for r in caplog.records if r.levelname == level]
        return any(text in line for line in out + records)

    await eventually(seen, f"a {level} line with {text!r}", timeout)
    return out + records


@pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
async def test_5_without_a_state_store_the_watcher_warns(
    fake: FakePai, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    watcher = Watcher(fake, None).start()
    try:
        warnings = await logged_eventually(capsys, caplog, "WARNING", "lives in memory")
    finally:
        await watcher.stop()
    assert any(MODEL in line for line in warnings if "lives in memory" in line), warnings


@pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
async def test_a_failing_watcher_logs_errors_and_backs_off(
    fake: FakePai, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail_with = (503, "ServiceUnavailable")
    watcher = Watcher(fake, FakeStore("prod"), interval=0.05).start()
    try:
        await eventually(lambda: fake.count() >= 3, "3 attempts", timeout=20)
    finally:
        await watcher.stop()
    errors = [line for line in logged(capsys, caplog, "ERROR") if MODEL in line]
    # a failed poll waits max(interval, 1 s) * 2^(failures-1), not the 0.05 s interval: 1 s, then 2 s
    first, second = (later - earlier for earlier, later in zip(fake.times[:2], fake.times[1:3], strict=True))
    assert first >= 0.95 and second >= 1.9, (first, second)
    assert second < 2 * first + 1.5, (first, second)  # doubled, not more (with slack for a loaded machine)
    assert errors and "ServiceUnavailable" in errors[0], errors
    assert "next attempt in 1 s" in errors[0] and "next attempt in 2 s" in errors[1], errors


async def test_6_a_wait_logs_when_its_outlook_changes_and_each_shared_poll_logs(
    fake: FakePai, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    approve(fake, v("1.1.0", "Pending", 4))
    trigger = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id=MODEL, version_name="1.1.0", poke_interval=0.05
    )
    task = asyncio.ensure_future(anext(trigger.run()))
    # approve only once the wait has seen Pending (on Airflow 2 the first read may take longer than any fixed sleep)
    for _ in range(200):
        if fake.count() >= 2:
            break
        await asyncio.sleep(0.05)
    fake.set_status(MODEL, "1.1.0", "Approved")
    event = await asyncio.wait_for(task, 5)
    assert event.payload["status"] == "success"
    info = logged(capsys, caplog, "INFO")
    outlooks = [line for line in info if "waiting for version 1.1.0" in line]
    assert len(outlooks) == 2, outlooks  # not one per poll
    assert "1.1.0 is Pending" in outlooks[0] and "1.1.0 is Approved" in outlooks[1]
    polls = [line for line in info if f"PAI model {MODEL}:" in line]
    # ~10 shared reads: one line for what the first saw, one when it changed (then a heartbeat every 10 min)
    assert len(polls) == 2 and "newest 1.1.0 (Pending)" in polls[0] and "(Approved)" in polls[1], polls


async def waits(n: int, version: str, **kwargs: Any) -> list[asyncio.Future[Any]]:
    async def one() -> dict[str, Any]:
        trigger = PaiModelVersionApprovedTrigger(
            pai_conn_id="pai_default", model_id=MODEL, version_name=version, poke_interval=0.05, **kwargs
        )
        return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

    return [asyncio.ensure_future(one()) for _ in range(n)]


async def test_hub_renews_a_rotated_credential(fake: FakePai, monkeypatch: pytest.MonkeyPatch) -> None:
    approve(fake, v("1.1.0", "Pending", 4))
    pending = await waits(50, "1.1.0")
    await eventually(lambda: fake.statuses.count(200) >= 1, "a read with the old key")
    # rotate: the registry now knows only the new key, and so does the connection
    fake.accepted_key = "LTAIrotatedKey0002"
    pai_conn(monkeypatch, fake.url, max_attempts=1, login="LTAIrotatedKey0002")
    await eventually(lambda: 403 in fake.statuses, f"the old key {PAI_KEY} refused")
    refused_at = fake.statuses.index(403)
    await eventually(lambda: 200 in fake.statuses[refused_at:], "a read with the new key")
    fake.set_status(MODEL, "1.1.0", "Approved")
    events = await asyncio.wait_for(asyncio.gather(*pending), 10)
    assert [e["status"] for e in events] == ["success"] * 50  # none saw the refusal: the hub re-read the connection


async def test_hub_state_is_bounded_and_nothing_is_left_behind(fake: FakePai) -> None:
    fake.hang.set()  # every read hangs: all waits are in flight
    pending = await waits(20, "1.0.0")

    def one_read_for_all() -> bool:
        hub = next(iter(triggers_pai._HUBS.values()), None)
        return hub is not None and fake.arrived >= 1 and sum(e.waiters for e in hub.entries.values()) == 20

    # up to 5 s on a loaded machine (before Airflow 3.3.2 the connection is read in a thread)
    await eventually(one_read_for_all, "20 waits on one read in flight", timeout=15)
    (hub,) = triggers_pai._HUBS.values()
    assert hub.users == 20
    assert len(hub.entries) == 1, hub.entries  # one entry for 20 waits on one read, not one each
    assert fake.arrived == 1  # and one request on the wire
    closed: list[bool] = []
    close = hub.hook.aclose

    async def recording_close() -> None:
        closed.append(True)
        await close()

    hub.hook.aclose = recording_close  # type: ignore[method-assign]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert triggers_pai._HUBS == {}
    assert hub.entries == {}
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == [], others
    assert closed == [True]  # the client (and its sockets) closed with the last waiter


class CountingGate:
    """Wraps the hub's gate (whatever it is) and counts the attempts holding it and those waiting for it."""

    def __init__(self, inner: asyncio.Semaphore) -> None:
        self.inner = inner
        self.held = self.waiting = self.most_held = 0

    async def __aenter__(self) -> None:
        self.waiting += 1
        try:
            await self.inner.acquire()
        finally:
            self.waiting -= 1
        self.held += 1
        self.most_held = max(self.most_held, self.held)

    async def __aexit__(self, *exc: object) -> None:
        self.held -= 1
        self.inner.release()


async def test_hub_keeps_at_most_8_reads_in_flight(fake: FakePai) -> None:
    """12 models polled at once against a silent server: 8 requests go out and 4 wait for a slot (not 12 on the
    wire: a thousand waiting requests cost httpcore quadratic CPU); once the server answers, all 12 finish."""
    cap = triggers_pai.HUB_MAX_IN_FLIGHT
    assert cap == 8
    models = [f"m-cap-{i}" for i in range(cap + 4)]
    for model in models:
        fake.models[model] = [v("1.0.0", "Approved", 1)]
    fake.hang.set()
    hub = triggers_pai.PaiPollHub.acquire("pai_default", 0.05)  # the test's own user: it can watch the gate
    try:
        gate = CountingGate(hub.gate)
        hub.gate = gate  # type: ignore[assignment]

        async def wait(model: str) -> dict[str, Any]:
            trigger = PaiModelVersionApprovedTrigger(
                pai_conn_id="pai_default", model_id=model, version_name="1.0.0", poke_interval=0.05
            )
            return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

        pending = [asyncio.ensure_future(wait(model)) for model in models]
        # settled: 8 on the wire and 4 waiting for a slot (without the cap: 12 arrive and none waits)
        await eventually(
            lambda: fake.arrived > cap or (fake.arrived == cap and gate.waiting == 4),
            "8 requests out and 4 waiting",
            timeout=15,
        )
        assert len(triggers_pai._HUBS) == 1 and hub.users == 13  # the waits share the test's hub
        assert fake.arrived == cap and gate.held == cap and gate.waiting == 4, (fake.arrived, gate.held)
        fake.hang.clear()
        events = await asyncio.wait_for(asyncio.gather(*pending), 15)
        assert [e["status"] for e in events] == ["success"] * len(models)
        assert gate.most_held == cap
    finally:
        fake.hang.clear()
        await hub.release(0.05)


async def test_a_client_build_that_finished_before_its_callbacks_ran_is_not_kept(fake: FakePai) -> None:
    """The race behind the old Airflow 2.11/3.0 skip of the test above: a read joins the client build after the
    build task finished but before its done-callback ran, so it resumes while the entry still names the task. The
    entry must go all the same (else it stays for ever: the build's answer never ages)."""
    hub = triggers_pai.PaiPollHub.acquire("pai_default", 60)
    try:
        hook = hub.hook
        built = await hook.atransport()
        hook._atransport = None  # the client is being built ...
        finished: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        finished.set_result(built)  # ... and the build just finished; its callbacks have not run yet
        key = ("atransport", id(hook))
        hub.entries[key] = triggers_pai._Entry(task=finished)
        await hub._gated_transport(hook)
        assert key not in hub.entries
        assert hook._atransport is not None and hook._atransport.attempt_gate is hub.gate
    finally:
        await hub.release(60)


async def test_hub_drops_answers_no_waiter_can_use(fake: FakePai) -> None:
    from airflow_provider_modelreg.approval import ReadRecent

    hub = triggers_pai.PaiPollHub.acquire("pai_default", 0.1)
    fake.models["m-other"] = []
    try:
        await hub.read(ReadRecent(MODEL), 0.1)
        await asyncio.sleep(0.3)
        await hub.read(ReadRecent("m-other"), 0.1)
        assert list(hub.entries) == [ReadRecent("m-other")]
    finally:
        await hub.release(0.1)


async def test_end_time_bounds_a_poll_in_flight(fake: FakePai) -> None:
    fake.hang.set()
    started = time.monotonic()
    (pending,) = await waits(1, "1.0.0", end_time=time.time() + 0.5)
    event = await asyncio.wait_for(pending, 10)
    assert event["status"] == "timeout"
    assert time.monotonic() - started < 3


async def test_hub_retry_waits_hold_no_slot(fake: FakePai, monkeypatch: pytest.MonkeyPatch) -> None:
    """8 throttled models (Retry-After: 5 s, retried) must not delay a healthy model's poll."""
    pai_conn(monkeypatch, fake.url, max_attempts=3)
    throttled = [f"m-slow-{i}" for i in range(triggers_pai.HUB_MAX_IN_FLIGHT)]
    for model in throttled:
        fake.models[model] = [v("1.0.0", "Pending", 1)]
    fake.throttled = set(throttled)
    fake.retry_after = 5  # far longer than a healthy poll takes, even on a loaded machine

    def asked(model: str) -> int:
        return sum(1 for _, path in fake.requests if f"/models/{model}/" in path)

    async def wait(model: str) -> dict[str, Any]:
        trigger = PaiModelVersionApprovedTrigger(
            pai_conn_id="pai_default", model_id=model, version_name="1.0.0", poke_interval=5
        )
        return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

    slow = [asyncio.ensure_future(wait(model)) for model in throttled]
    # every throttled model has been refused once and waits out its Retry-After: holding a slot meanwhile, they
    # would hold all 8
    await eventually(lambda: fake.statuses.count(429) >= len(throttled), "every throttled model refused")
    started = time.monotonic()
    event = await asyncio.wait_for(wait(MODEL), 20)
    took = time.monotonic() - started
    retried = [model for model in throttled if asked(model) > 1]
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)
    assert event["status"] == "success"
    # it did not wait for a throttled read's Retry-After: done before any throttled model was asked again
    assert retried == [] and took < fake.retry_after, (retried, took)
