"""Issue 23: the Fabric version wait while the registry changes (the emulator's asynchronous versions with
``version_delay``, a failed version, the current version moved by UpdateModelDefinition) and against hostile servers
(a version without ``create_time``, a version that never lists, throttling), in poke and deferrable modes; many waits
on one model share one read per poll interval in the triggerer."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from fake_fabric import FakeFabric, fake_fabric_server
from helpers import build_seed, fabric_conn, fabric_version

from airflow_provider_modelreg.errors import RegistryResponseError
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.sensors.fabric import FabricModelVersionSensor
from airflow_provider_modelreg.triggers.fabric import FabricModelVersionTrigger

MODEL = "fm-1"
V3 = "00000000-0000-4000-8000-000000000003"
NEW = {"model_path": "obs://fabric-models/assistant/new/", "base_model_type": "QWEN_2_72B"}


def context() -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = 1
    return {"ti": ti, "task_instance": ti}


def sensor(deferrable: bool, timeout: float = 15, **args: Any) -> FabricModelVersionSensor:
    return FabricModelVersionSensor(
        task_id="wait", model_id=MODEL, poke_interval=0.05, timeout=timeout, deferrable=deferrable, **args
    )


def run_to_the_end(task: FabricModelVersionSensor, meanwhile: Callable[[], None] | None = None) -> Any:
    """Execute the sensor; when it defers, run its trigger as the triggerer rebuilds it and resume with its event.
    ``meanwhile`` runs in a thread once the wait has started (the registry changes while it waits)."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    thread = threading.Thread(target=meanwhile, daemon=True) if meanwhile is not None else None
    try:
        if not task.deferrable and thread is not None:
            thread.start()
        return task.execute(context())
    except TaskDeferred as deferred:
        _, kwargs = deferred.trigger.serialize()
        trigger = FabricModelVersionTrigger(**json.loads(json.dumps(kwargs)))
        if thread is not None:
            thread.start()

        async def first() -> dict[str, Any]:
            events = trigger.run()
            try:
                return (await anext(events)).payload  # type: ignore[no-any-return]
            finally:
                await events.aclose()

        return task.execute_complete(context(), asyncio.run(first()))
    finally:
        if thread is not None and thread.is_alive():
            thread.join(15)


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed(), version_delay=0.4)
    fabric_conn(monkeypatch, emulator.url, max_attempts=1)
    return emulator


def listings(emu: Any) -> int:
    return int(emu.request_log.count("fabric.ListModelVersions"))


MODES = pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])


@MODES
def test_a_version_being_created_is_waited_for_then_opens_the_wait(emu: Any, deferrable: bool) -> None:
    FabricModelRegistryHook().update_model(MODEL, version_name="v7", **NEW)  # listed after version_delay
    ref = run_to_the_end(sensor(deferrable, version_pattern=r"v[5-9]"))
    assert ref["version_name"] == "v7" and ref["uri"] == NEW["model_path"], ref
    assert listings(emu) >= 2  # it was not listed at the first look: the wait went on


@MODES
def test_a_failed_version_fails_the_wait(emu: Any, deferrable: bool) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    emu.store.fail_next_fabric_versions(1)
    FabricModelRegistryHook().update_model(MODEL, version_name="v8", **NEW)
    with pytest.raises(AirflowFailException, match=r"version 'v8' .* failed \(FAILED\)"):
        run_to_the_end(sensor(deferrable, version_name="v8"))


@MODES
def test_the_current_version_moving_past_the_given_one_opens_the_wait(emu: Any, deferrable: bool) -> None:
    hook = FabricModelRegistryHook()
    hook.update_model(MODEL, version_name="v9", **NEW)
    deadline = time.monotonic() + 10
    while (new := next((v for v in hook.list_model_versions(MODEL) if v.name == "v9"), None)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    def promote() -> None:  # after the wait has seen V3 still current a few times
        start = emu.request_log.count("fabric.ListModels")
        while emu.request_log.count("fabric.ListModels") < start + 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        FabricModelRegistryHook().update_model(MODEL, current_version_id=new.id)

    ref = run_to_the_end(sensor(deferrable, current_after=V3), meanwhile=promote)
    assert (ref["version_name"], ref["version_id"]) == ("v9", new.id), ref


# ------------------------------------------------------------------------------------------- hostile servers


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with fake_fabric_server() as server:
        server.versions[MODEL] = [fabric_version(2, "release-2"), fabric_version(1, "v1")]
        server.current[MODEL] = fabric_version(2)["id"]
        fabric_conn(monkeypatch, server.url, max_attempts=1)
        yield server


@MODES
def test_a_matching_version_without_create_time_is_an_error_naming_it(fake: FakeFabric, deferrable: bool) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    undated = {k: x for k, x in fabric_version(3, "v3").items() if k != "create_time"}
    fake.versions[MODEL].append(undated)
    assert sensor(deferrable, version_name="release-2").execute(context())["version_name"] == "release-2"
    with pytest.raises((RegistryResponseError, AirflowException), match="create_time"):
        run_to_the_end(sensor(deferrable, version_pattern=r"v\d"))  # v1 or v3: which is newer cannot be told


@MODES
def test_a_version_that_never_lists_times_out(fake: FakeFabric, deferrable: bool) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout, TaskDeferred

    task = sensor(deferrable, timeout=0.4, version_name="v7")
    with pytest.raises((AirflowSensorTimeout, TaskDeferred)):
        run_to_the_end(task)
    assert fake.count("ListModelVersions") >= 3  # it kept looking until the timeout


@MODES
def test_throttling_spends_the_failure_budget_then_the_wait_goes_on(fake: FakeFabric, deferrable: bool) -> None:
    fake.throttle = 3  # each a failed poll (one attempt per request): 3 < max_failures
    ref = run_to_the_end(sensor(deferrable, version_name="v1", max_failures=5))
    assert ref["version_name"] == "v1"
    assert fake.count("ListModelVersions") >= 4


@MODES
def test_throttling_without_end_fails_after_max_failures(fake: FakeFabric, deferrable: bool) -> None:
    fake.throttle = 1000
    with pytest.raises(Exception, match=r"(?i)throttl|429") as err:
        run_to_the_end(sensor(deferrable, version_name="v1", max_failures=3))
    assert fake.count() == 3 or (deferrable and fake.count() == 1 + 3), fake.requests  # 1 check before deferring
    assert "RegistryInputError" not in str(err.value)


async def test_many_waits_on_one_model_share_one_read_per_interval(fake: FakeFabric) -> None:
    triggers = [
        FabricModelVersionTrigger(
            fabric_conn_id="fabric_default",
            model_id=MODEL,
            version_name=f"never-{i}",
            poke_interval=0.1,
            end_time=time.time() + 0.6,
        )
        for i in range(30)
    ]

    async def first(trigger: Any) -> dict[str, Any]:
        events = trigger.run()
        try:
            return (await anext(events)).payload  # type: ignore[no-any-return]
        finally:
            await events.aclose()

    events = await asyncio.gather(*(first(t) for t in triggers))
    assert {e["status"] for e in events} == {"timeout"}
    # 30 waits x ~6 polls would be ~180 listings unshared; one per interval when shared
    assert 3 <= fake.count("ListModelVersions") <= 12, fake.count("ListModelVersions")


@pytest.mark.requires_airflow("3.0", reason="reschedule mode through a mocked task instance")
def test_reschedule_mode_keeps_the_failure_count_across_reschedules(fake: FakeFabric) -> None:
    """Each reschedule builds a new sensor: the count of throttled polls lives in the task state store."""
    from airflow.exceptions import AirflowRescheduleException
    from test_sensor_modes import FakeStateStore
    from test_sensor_modes import context as store_context

    from airflow_provider_modelreg.sensors.polling import FAILURES_KEY

    store = FakeStateStore()
    fake.throttle = 1000

    def rescheduled() -> FabricModelVersionSensor:
        return sensor(False, version_name="v1", max_failures=3, mode="reschedule")

    for run in (1, 2):
        with pytest.raises(AirflowRescheduleException):  # a throttled poke: rescheduled, the slot freed
            rescheduled().execute(store_context(store))
        assert store.values[FAILURES_KEY] == run
    with pytest.raises(Exception, match="429"):  # the third in a row, in a third sensor object
        rescheduled().execute(store_context(store))
    assert fake.count() == 3
    fake.throttle = 0
    store.values[FAILURES_KEY] = 2
    assert rescheduled().execute(store_context(store))["version_name"] == "v1"
    assert store.values[FAILURES_KEY] == 0


@pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
async def test_a_watcher_and_the_waits_of_one_model_share_the_hubs_read(fake: FakeFabric) -> None:
    from test_gate_watcher_hub import FakeStore

    from airflow_provider_modelreg.triggers.fabric_watcher import FabricVersionEventTrigger

    watcher = FabricVersionEventTrigger(fabric_conn_id="fabric_default", model_id=MODEL, poke_interval=0.2)
    watcher.asset_state_store = FakeStore("prod")
    waits = [  # the sensor gives its trigger the resolved workspace; the watcher resolves the connection's default
        FabricModelVersionTrigger(
            fabric_conn_id="fabric_default",
            model_id=MODEL,
            workspace_id="ws-1",
            version_name=f"never-{i}",
            poke_interval=0.2,
            end_time=time.time() + 1.0,
        )
        for i in range(5)
    ]

    async def drain(trigger: Any) -> None:
        async for _ in trigger.run():
            return

    task = asyncio.ensure_future(drain(watcher))
    await asyncio.gather(*(drain(t) for t in waits))
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # ~5 intervals of 0.2 s: one listing each, shared by the watcher and the five waits (unshared: ~30)
    assert fake.count("ListModelVersions") <= 9, fake.count("ListModelVersions")
