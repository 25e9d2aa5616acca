"""Issue 23: the Fabric asset watcher announces each new version / each new current version once per (watcher, asset)
through restarts, failed versions, a confirmation that never arrives (Airflow 3.3's SharedStreamManager in ack mode)
and hostile servers (a version without create_time, throttling); one poll serves every watcher of a model."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
from fake_fabric import FakeFabric, fake_fabric_server
from helpers import build_seed, fabric_conn, fabric_version
from test_gate_watcher_hub import FakeAccessor, FakeStore
from watch_support import AckRun, until

from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.triggers.fabric_watcher import FabricVersionEventTrigger

pytestmark = pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
shared_streams = pytest.mark.requires_airflow("3.3", reason="shared streams in ack mode exist from Airflow 3.3")

MODEL = "fm-1"
NEW = {"model_path": "obs://fabric-models/assistant/new/", "base_model_type": "QWEN_2_72B"}


def states(accessor: FakeAccessor) -> list[dict[str, Any]]:
    return [value for key, value in accessor.data.items() if key.startswith(f"modelreg_fabric_watch:{MODEL}:")]


class Standalone:
    """A watcher run as the triggerer runs it below Airflow 3.3 (run())."""

    def __init__(self, store: Any, mode: str = "new_version", **kwargs: Any) -> None:
        self.trigger = FabricVersionEventTrigger(
            fabric_conn_id="fabric_default", model_id=MODEL, mode=mode, poke_interval=0.05, **kwargs
        )
        self.trigger.asset_state_store = store
        self.events: list[dict[str, Any]] = []
        self.task = asyncio.ensure_future(self._run())

    @property
    def names(self) -> list[str]:
        return [e["version"]["version_name"] for e in self.events]

    async def _run(self) -> None:
        async for event in self.trigger.run():
            self.events.append(event.payload)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed(), version_delay=0.2)
    fabric_conn(monkeypatch, emulator.url, max_attempts=1)
    return emulator


async def register(name: str) -> None:
    await asyncio.to_thread(FabricModelRegistryHook().update_model, MODEL, version_name=name, **NEW)


async def polls(emu: Any, count: int, route: str = "fabric.ListModelVersions") -> None:
    start = emu.request_log.count(route)
    await until(lambda: emu.request_log.count(route) >= start + count)


async def test_each_new_version_once_oldest_first_failed_ones_never_across_restarts(emu: Any) -> None:
    store = FakeStore("prod")
    accessor = store._by_name["prod"]
    watcher = Standalone(store)
    await until(lambda: bool(states(accessor)))  # the start point: the three seeded versions, nothing announced
    await register("v7")
    await register("v8")
    await until(lambda: watcher.names == ["v7", "v8"])  # in order of creation
    event = watcher.events[0]
    assert event["status"] == "new_version" and event["workspace_id"] == "ws-1"
    assert event["version"]["uri"] == NEW["model_path"] and event["version"]["registry"] == "fabric"
    await watcher.stop()
    async with httpx.AsyncClient() as client:  # the emulator's admin route (`modelreg-emulator fail-next-version`)
        answer = await client.put(
            f"{emu.url}/_emulator/fabric/fail-next-versions", json={"count": 1}, headers={"X-Modelreg-Admin": "1"}
        )
    assert answer.status_code == 200, answer.text
    await register("v9-failed")  # registered while the triggerer is down, and failed
    await register("v10")
    again = Standalone(store)
    await until(lambda: again.names == ["v10"])
    await polls(emu, 6)
    await again.stop()
    assert watcher.names == ["v7", "v8"] and again.names == ["v10"]  # none repeated, none lost, failed never


async def test_each_new_current_version_once(emu: Any) -> None:
    store = FakeStore("prod")
    watcher = Standalone(store, mode="current_version")
    await until(lambda: bool(states(store._by_name["prod"])))
    hook = FabricModelRegistryHook()
    versions = await asyncio.to_thread(hook.list_model_versions, MODEL)
    older = next(v for v in versions if v.name == "v1")
    await asyncio.to_thread(hook.update_model, MODEL, current_version_id=older.id)
    await until(lambda: watcher.names == ["v1"])
    assert watcher.events[0]["status"] == "current_version"
    await polls(emu, 5, "fabric.ListModels")
    await watcher.stop()
    restarted = Standalone(store, mode="current_version")
    await polls(emu, 5, "fabric.ListModels")
    await restarted.stop()
    assert watcher.names == ["v1"] and restarted.names == []


async def test_two_modes_on_one_asset_keep_their_own_state(emu: Any) -> None:
    store = FakeStore("prod")
    new, current = Standalone(store), Standalone(store, mode="current_version")
    await until(lambda: len(states(store._by_name["prod"])) == 2)  # two keys: one per identity
    await new.stop()
    await current.stop()
    by_mode = {state["identity"]["mode"]: state for state in states(store._by_name["prod"])}
    assert set(by_mode) == {"new_version", "current_version"}
    assert len(by_mode["new_version"]["known"]) == 3 and by_mode["new_version"]["current"] is None
    assert by_mode["current_version"]["known"] == [] and by_mode["current_version"]["current"] is not None


def ack_run(store: Any, *, confirm: bool, trigger_id: int = 1) -> AckRun:
    trigger = FabricVersionEventTrigger(fabric_conn_id="fabric_default", model_id=MODEL, poke_interval=0.05)
    return AckRun(trigger, store, confirm=confirm, trigger_id=trigger_id)


@shared_streams
async def test_ack_mode_an_unconfirmed_announcement_is_made_again_after_a_restart(emu: Any) -> None:
    store = FakeStore("prod")
    accessor = store._by_name["prod"]
    run = ack_run(store, confirm=False)
    await until(lambda: bool(states(accessor)))
    before = set(states(accessor)[0]["known"])
    await register("v7")
    await until(lambda: run.events == ["v7"])
    await until(lambda: run.failure is not None)  # Airflow's ack timeout: the event was never stored
    assert set(states(accessor)[0]["known"]) == before  # the state did not move past it
    await run.stop()
    again = ack_run(store, confirm=True, trigger_id=2)
    await until(lambda: again.events == ["v7"])  # announced again: at least once
    await until(lambda: len(states(accessor)[0]["known"]) == len(before) + 1)  # stored once confirmed
    await again.stop()
    third = ack_run(store, confirm=True, trigger_id=3)
    await polls(emu, 6)
    await third.stop()
    assert third.events == [] and third.failure is None


@shared_streams
async def test_ack_mode_one_poll_serves_every_watcher_of_a_model(emu: Any) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    manager = SharedStreamManager(ack_timeout=5)
    triggers = []
    for name in ("staging", "prod", "canary"):
        trigger = FabricVersionEventTrigger(fabric_conn_id="fabric_default", model_id=MODEL, poke_interval=0.1)
        trigger.asset_state_store = FakeStore(name)
        triggers.append(trigger)
    (key,) = {t.shared_stream_key() for t in triggers}
    got: dict[int, list[str]] = {0: [], 1: [], 2: []}

    async def consume(index: int) -> None:
        stream = manager.subscribe(trigger_id=index, trigger=triggers[index], key=key)
        async for event in triggers[index].filter_shared_stream(stream):
            seq = manager.bind_pending_event(trigger_id=index, key=key)
            got[index].append(event.payload["version"]["version_name"])
            manager.confirm_persisted([seq] if seq is not None else [])

    tasks = [asyncio.ensure_future(consume(i)) for i in got]
    await polls(emu, 3)
    await register("v7")
    await until(lambda: got == {0: ["v7"], 1: ["v7"], 2: ["v7"]})
    start, began = emu.request_log.count("fabric.ListModelVersions"), time.monotonic()
    await asyncio.sleep(1.0)
    listed = emu.request_log.count("fabric.ListModelVersions") - start
    elapsed = time.monotonic() - began
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop_all()
    assert listed <= elapsed / 0.1 + 3, listed  # one listing a poll, not one per watcher


# ------------------------------------------------------------------------------------------- hostile servers


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with fake_fabric_server() as server:
        server.versions[MODEL] = [fabric_version(1, "v1")]
        server.current[MODEL] = fabric_version(1)["id"]
        fabric_conn(monkeypatch, server.url, max_attempts=1)
        yield server


async def test_a_new_version_without_create_time_is_held_back_until_it_can_be_ordered(
    fake: FakeFabric, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FakeStore("prod")
    watcher = Standalone(store)
    await until(lambda: bool(states(store._by_name["prod"])))
    undated = {k: v for k, v in fabric_version(2, "v2").items() if k != "create_time"}
    with fake.lock:
        fake.versions[MODEL] = [fabric_version(3, "v3"), undated, *fake.versions[MODEL]]
    start = fake.count("ListModelVersions")
    await until(lambda: fake.count("ListModelVersions") >= start + 2)
    out = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert watcher.names == [] and "create_time" in out  # v3 is not announced ahead of what it cannot order
    with fake.lock:
        fake.versions[MODEL][1] = fabric_version(2, "v2")  # the server mends it
    await until(lambda: watcher.names == ["v2", "v3"], timeout=15)  # the watcher backs off (1 s, 2 s ...)
    await watcher.stop()


@shared_streams
async def test_ack_mode_an_undated_version_is_held_back_and_never_ends_the_stream(
    fake: FakeFabric, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FakeStore("prod")
    run = ack_run(store, confirm=True)
    await until(lambda: bool(states(store._by_name["prod"])))
    undated = {k: v for k, v in fabric_version(2, "v2").items() if k != "create_time"}
    with fake.lock:
        fake.versions[MODEL] = [fabric_version(3, "v3"), undated, *fake.versions[MODEL]]
    start = fake.count("ListModelVersions")
    await until(lambda: fake.count("ListModelVersions") >= start + 3)
    out = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert run.events == [] and run.failure is None and "create_time" in out  # the watcher lives on
    with fake.lock:
        fake.versions[MODEL][1] = fabric_version(2, "v2")  # the server mends it
    await until(lambda: run.events == ["v2", "v3"], timeout=15)
    await run.stop()
    assert run.failure is None


async def test_throttling_delays_announcements_never_loses_them(fake: FakeFabric) -> None:
    store = FakeStore("prod")
    watcher = Standalone(store)
    await until(lambda: bool(states(store._by_name["prod"])))
    with fake.lock:
        fake.throttle = 2
        fake.versions[MODEL] = [fabric_version(2, "v2"), *fake.versions[MODEL]]
    await until(lambda: watcher.names == ["v2"], timeout=15)
    await watcher.stop()
    assert fake.throttle == 0


async def test_a_bad_stored_mode_logs_and_never_raises(
    fake: FakeFabric, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = FabricVersionEventTrigger(fabric_conn_id="fabric_default", model_id=MODEL, mode="every_version")
    assert trigger.shared_stream_key() is None
    task = asyncio.ensure_future(anext(trigger.run()))
    await until(lambda: "invalid mode" in capsys.readouterr().out + " ".join(r.getMessage() for r in caplog.records))
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert fake.count() == 0


def test_the_watcher_is_stored_under_its_classpath_and_rebuilds() -> None:
    import importlib

    trigger = FabricVersionEventTrigger(fabric_conn_id="c", model_id=MODEL, mode="current_version")
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_modelreg.triggers.fabric_watcher.FabricVersionEventTrigger"
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
