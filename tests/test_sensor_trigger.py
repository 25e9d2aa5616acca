"""The approval sensor in poke, reschedule and deferrable modes, and its trigger, against the emulator."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from helpers import SECRETS, build_seed, pai_conn, pai_version

from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from airflow_provider_modelreg.transport import RegistryTransport
from airflow_provider_modelreg.triggers import pai as triggers_pai
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger, PaiPollHub


def context(first_reschedule_date: Any = None) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = 1
    # in reschedule mode the sensor asks when its first try started, to count its timeout across reschedules
    ti.get_first_reschedule_date.return_value = first_reschedule_date
    return {"ti": ti, "task_instance": ti}


def seed_with(*versions: dict[str, Any]) -> dict[str, Any]:
    seed = build_seed()
    seed["pai"]["models"][0]["Versions"].extend(versions)
    return seed


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(
        seed=seed_with(
            pai_version("2.0.0", "Pending", 10, _then={"after_seconds": 1, "ApprovalStatus": "Approved"}),
            pai_version("2.1.0", "Pending", 11, _then={"after_seconds": 1, "ApprovalStatus": "Rejected"}),
        )
    )
    pai_conn(monkeypatch, emulator.url)
    return emulator


def sensor(**kwargs: Any) -> PaiModelVersionApprovedSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("model_id", "m-main")
    kwargs.setdefault("poke_interval", 0.2)
    kwargs.setdefault("timeout", 30)
    return PaiModelVersionApprovedSensor(**kwargs)


def test_poke_mode_waits_for_approval(emu: Any) -> None:
    started = time.monotonic()
    ref = sensor(version_name="2.0.0").execute(context())
    assert ref["version_name"] == "2.0.0" and ref["approval_status"] == "Approved"
    assert ref["uri"] == "oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/2.0.0/"
    assert time.monotonic() - started >= 0.5  # it had to wait for the scheduled approval
    json.dumps(ref)


def test_next_approved_after_version(emu: Any) -> None:
    ref = sensor(after_version="1.0.0").execute(context())
    assert ref["version_name"] == "2.0.0"  # 1.1.0 stays Pending, 2.1.0 gets Rejected: passed over


def test_next_approved_created_after(emu: Any) -> None:
    ref = sensor(created_after="2024-01-05T00:00:00Z").execute(context())
    assert ref["version_name"] == "2.0.0"


def test_a_rejection_that_arrives_while_waiting_fails_without_retry(emu: Any) -> None:
    """2.1.0 is Pending at the first poke and Rejected a second later. (A version Rejected from the start, with
    on_rejected fail or skip, in every mode: test_gate_cases.)"""
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match="Rejected"):
        sensor(version_name="2.1.0").execute(context())


@pytest.mark.requires_airflow(
    "3.0", reason="reschedule mode through a mocked task instance (Airflow 2 reads task_reschedule from the DB)"
)
def test_reschedule_mode(emu: Any) -> None:
    from airflow.exceptions import AirflowRescheduleException  # the SDK's own class on Airflow 3 (not in compat)
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    waiting = sensor(version_name="1.1.0", mode="reschedule", timeout=600)
    with pytest.raises(AirflowRescheduleException):
        waiting.execute(context())
    # the timeout counts from the first try, not from this reschedule
    long_ago = datetime.now(timezone.utc) - timedelta(seconds=900)
    with pytest.raises(AirflowSensorTimeout):
        sensor(version_name="1.1.0", mode="reschedule", timeout=600).execute(context(long_ago))
    assert sensor(version_name="1.0.0", mode="reschedule").execute(context())["version_name"] == "1.0.0"


def test_deferrable_round_trip(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    task = sensor(version_name="2.0.0", deferrable=True, timeout=60)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedTrigger"
    serialized = json.dumps(kwargs)
    assert not any(secret in serialized for secret in SECRETS)
    assert kwargs["end_time"] is not None and kwargs["end_time"] > time.time() + 50

    async def run() -> Any:
        trigger = PaiModelVersionApprovedTrigger(**json.loads(serialized))  # as the triggerer rebuilds it
        return await anext(trigger.run())

    event = asyncio.run(run())
    assert event.payload["status"] == "success"
    ref = task.execute_complete(context(), event.payload)
    assert ref["version_name"] == "2.0.0" and ref["uri"].startswith("oss://")


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"status": "timeout", "message": "late"}, "AirflowSensorTimeout"),
        ({"status": "error", "message": "boom", "error_type": "X"}, "AirflowException"),
        (
            {
                "status": "rejected",
                "version": {"registry": "pai", "model_id": "m", "version_name": "1", "version_id": "1"},
            },
            "AirflowFailException",
        ),
        ({"status": "success", "version": {"registry": "nope"}}, "AirflowException"),
        ({"nothing": 1}, "AirflowException"),
        (None, "AirflowException"),
    ],
)
def test_resume_validates_the_event(event: Any, error: str) -> None:
    with pytest.raises(Exception) as err:
        sensor(version_name="1.0.0").execute_complete(context(), event)
    assert type(err.value).__name__ == error


def _approved(**fields: Any) -> dict[str, Any]:
    version = {"registry": "pai", "model_id": "m-main", "version_name": "1.0.0", "version_id": "1.0.0"}
    return {"status": "success", "version": {**version, "approval_status": "Approved", "uri": "oss://b/m/", **fields}}


@pytest.mark.parametrize(
    ("kwargs", "event", "why"),
    [
        ({"version_name": "1.0.0"}, _approved(model_id="m-other"), "is of model m-other, not m-main"),
        ({"version_name": "1.0.0"}, _approved(version_name="2.0.0"), "is version 2.0.0, not 1.0.0"),
        ({"version_name": "1.0.0"}, _approved(approval_status="Pending"), "'Pending'"),
        ({"version_name": "1.0.0"}, _approved(uri=None), "not Approved with a Uri"),
        ({"alias": "champion"}, _approved(labels={"alias": "other"}), "does not carry the label alias=champion"),
    ],
)
def test_a_success_event_the_wait_cannot_justify_never_opens_the_gate(
    emu: Any, kwargs: dict[str, Any], event: dict[str, Any], why: str
) -> None:
    with pytest.raises(AirflowException, match="the gate does not open") as err:
        sensor(model_id="m-main", **kwargs).execute_complete(context(), event)
    assert why in str(err.value)
    good = _approved(labels={"alias": "champion"})  # the same wait opens on the event it asked for
    assert sensor(model_id="m-main", **kwargs).execute_complete(context(), good)["version_name"] == "1.0.0"


async def test_trigger_events(emu: Any) -> None:
    async def first(**kwargs: Any) -> dict[str, Any]:
        trigger = PaiModelVersionApprovedTrigger(
            pai_conn_id="pai_default", model_id="m-main", poke_interval=0.2, **kwargs
        )
        return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

    assert (await first(version_name="1.0.0"))["status"] == "success"
    assert (await first(version_name="0.9.0"))["status"] == "rejected"
    assert (await first(version_name="1.1.0", end_time=time.time() + 0.5))["status"] == "timeout"
    bad = await first(version_name="..")
    assert bad["status"] == "error" and "version_name" in bad["message"]


async def test_trigger_error_after_failure_budget(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=build_seed(), error_rate=1.0)
    pai_conn(monkeypatch, emu.url, max_attempts=1)
    trigger = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id="m-main", version_name="1.0.0", poke_interval=0.05, max_failures=3
    )
    event = (await anext(trigger.run())).payload
    assert event["status"] == "error" and event["error_type"] == "RegistryServerError"
    assert emu.request_log.count() == 3


async def test_triggers_share_one_poll_per_model(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """200 waits over 4 models: per poll round about one request per model, and one HTTP client."""
    seed = build_seed()
    models = []
    for m in range(4):
        versions = [pai_version(f"1.{i}", "Pending", 1 + i % 28) for i in range(50)]
        versions[7]["_then"] = {"after_seconds": 1.5, "ApprovalStatus": "Approved"}
        models.append({"ModelId": f"m-share-{m}", "ModelName": "s", "WorkspaceId": "w", "Versions": versions})
    seed["pai"]["models"].extend(models)
    emu = make_emulator(seed=seed)
    pai_conn(monkeypatch, emu.url)

    async def wait(model: int, version: int) -> dict[str, Any]:
        trigger = PaiModelVersionApprovedTrigger(
            pai_conn_id="pai_default", model_id=f"m-share-{model}", version_name=f"1.{version}", poke_interval=0.5
        )
        return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

    built: list[RegistryTransport] = []
    init = RegistryTransport.__init__

    def spy(self: RegistryTransport, *args: Any, **kwargs: Any) -> None:
        built.append(self)  # list.append is atomic: the hook builds its client in a thread
        init(self, *args, **kwargs)

    monkeypatch.setattr(RegistryTransport, "__init__", spy)
    waits = [asyncio.ensure_future(wait(m, 7)) for m in range(4) for _ in range(50)]
    deadline = time.monotonic() + 10
    while not ((hub := next(iter(triggers_pai._HUBS.values()), None)) and hub.users == 200 and built):
        assert time.monotonic() < deadline, ("200 waits on one hub with a client", hub and hub.users, built)
        await asyncio.sleep(0.01)
    assert len(triggers_pai._HUBS) == 1
    events = await asyncio.gather(*waits)
    assert all(e["status"] == "success" for e in events)
    assert len(built) == 1, built  # one HTTP client (one connection pool) for the 200 waits, built once
    # ~1.5 s of waiting at 0.5 s intervals: about 4-5 rounds x 4 models, not 200 x 4
    assert emu.request_log.count() <= 4 * 8, emu.request_log.count()


async def test_one_cancelled_trigger_does_not_break_the_others(emu: Any) -> None:
    async def wait(version: str) -> dict[str, Any]:
        trigger = PaiModelVersionApprovedTrigger(
            pai_conn_id="pai_default", model_id="m-main", version_name=version, poke_interval=0.2
        )
        return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

    keep = [asyncio.ensure_future(wait("2.0.0")) for _ in range(5)]
    doomed = [asyncio.ensure_future(wait("1.1.0")) for _ in range(5)]

    def all_polling() -> bool:  # all 10 on the hub, and a shared read answered: they are mid-wait
        hub = next(iter(triggers_pai._HUBS.values()), None)
        return hub is not None and hub.users == 10 and any(e.task is None for e in hub.entries.values())

    deadline = time.monotonic() + 10
    while not all_polling():
        assert time.monotonic() < deadline, "10 waits polling"
        await asyncio.sleep(0.01)
    for task in doomed:
        task.cancel()
    events = await asyncio.gather(*keep)
    assert [e["status"] for e in events] == ["success"] * 5
    assert all(t.cancelled() for t in doomed)


async def test_hub_isolates_failures_between_waiters() -> None:
    hub = PaiPollHub(conn_id="x", hook=mock.MagicMock())
    calls = 0

    async def flaky() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if calls == 1:
            raise RuntimeError("first poll fails")
        return 42

    results = await asyncio.gather(*(hub.shared(("k",), 10, flaky) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results) and calls == 1  # one request, shared failure
    assert await hub.shared(("k",), 10, flaky) == 42 and calls == 2  # the failure was not cached
    assert await hub.shared(("k",), 10, flaky) == 42 and calls == 2  # the fresh result is
