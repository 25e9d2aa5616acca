"""Issue 19: every approval announced at least once through crashes, outages and shared assets; the triggers decide
from ``retryable`` alone; nothing raises from a trigger's constructor. Real HTTP against the suite's fake PAI server;
Airflow's own SharedStreamManager drives the watcher in ack mode (Airflow 3.3)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from fake_pai import FakePai, fake_pai_server
from helpers import pai_conn
from test_gate_watcher_hub import FakeAccessor, FakeStore, v
from watch_support import AckRun, until

from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger, PaiModelVersionApprovedTrigger

watchers = pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
shared_streams = pytest.mark.requires_airflow("3.3", reason="shared streams in ack mode exist from Airflow 3.3")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with fake_pai_server() as server:
        server.models["m-a"] = [v("1.0.0", "Approved", 1)]
        server.models["m-b"] = [v("1.0.0", "Approved", 1)]
        pai_conn(monkeypatch, server.url, max_attempts=1)
        pai_conn(monkeypatch, server.url, conn_id="pai_second", max_attempts=1)
        yield server


def states(accessor: FakeAccessor, model: str) -> list[dict[str, Any]]:
    return [value for key, value in accessor.data.items() if key.startswith(f"modelreg_pai_watch:{model}:")]


async def first_event(trigger: Any, timeout: float = 10) -> Any:
    """The first event of a trigger run, then the run closed (its hub released)."""
    events = trigger.run()
    try:
        return await asyncio.wait_for(anext(events), timeout)
    finally:
        await events.aclose()


async def polls(fake: FakePai, count: int) -> None:
    """Until the server has answered ``count`` more ListModelVersions requests (a watcher's polls went by)."""
    start = fake.count("ListModelVersions")
    await until(lambda: fake.count("ListModelVersions") >= start + count)


class Standalone:
    """A watcher run as the triggerer runs it below Airflow 3.3 (run())."""

    def __init__(self, store: Any, model: str, conn_id: str = "pai_default", **kwargs: Any) -> None:
        self.trigger = PaiModelVersionApprovedEventTrigger(
            pai_conn_id=conn_id, model_id=model, poke_interval=0.05, **kwargs
        )
        self.trigger.asset_state_store = store
        self.events: list[str] = []
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        async for event in self.trigger.run():
            self.events.append(f"{event.payload['model_id']}:{event.payload['version']['version_name']}")

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@watchers
async def test_two_models_on_one_asset_each_keep_their_own_state_across_a_restart(fake: FakePai) -> None:
    store = FakeStore("prod")
    accessor = store._by_name["prod"]
    a, b = Standalone(store, "m-a"), Standalone(store, "m-b")
    await until(lambda: bool(states(accessor, "m-a")) and bool(states(accessor, "m-b")))
    await a.stop()
    await b.stop()
    # approved while the triggerer is down; version names collide across models
    fake.models["m-a"].append(v("2.0.0", "Approved", 5))
    fake.models["m-b"].append(v("2.0.0", "Pending", 5))
    a, b = Standalone(store, "m-a"), Standalone(store, "m-b")
    await until(lambda: a.events == ["m-a:2.0.0"])
    fake.set_status("m-b", "2.0.0", "Approved")
    await until(lambda: b.events == ["m-b:2.0.0"])
    await polls(fake, 6)
    await a.stop()
    await b.stop()
    assert (a.events, b.events) == (["m-a:2.0.0"], ["m-b:2.0.0"])  # each once, none lost, none repeated


@watchers
async def test_one_model_through_two_connections_on_one_asset(fake: FakePai) -> None:
    store = FakeStore("prod")
    accessor = store._by_name["prod"]
    first, second = Standalone(store, "m-a"), Standalone(store, "m-a", conn_id="pai_second")
    await until(lambda: len(states(accessor, "m-a")) == 2)  # two states: one per connection
    await first.stop()
    await second.stop()
    fake.models["m-a"].append(v("2.0.0", "Approved", 5))
    first, second = Standalone(store, "m-a"), Standalone(store, "m-a", conn_id="pai_second")
    await until(lambda: first.events == ["m-a:2.0.0"] and second.events == ["m-a:2.0.0"])
    await polls(fake, 6)
    await first.stop()
    await second.stop()
    assert first.events == second.events == ["m-a:2.0.0"]


@watchers
async def test_a_late_approval_of_an_older_version_is_logged_not_announced(
    fake: FakePai, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.models["m-a"].append(v("1.1.0", "Pending", 2))
    store = FakeStore("prod")
    watcher = Standalone(store, "m-a")
    await until(lambda: bool(states(store._by_name["prod"], "m-a")))
    fake.models["m-a"].append(v("1.2.0", "Approved", 3))
    await until(lambda: watcher.events == ["m-a:1.2.0"])
    fake.set_status("m-a", "1.1.0", "Approved")
    await polls(fake, 6)
    await watcher.stop()
    assert watcher.events == ["m-a:1.2.0"]
    out = capsys.readouterr().out + "\n".join(r.getMessage() for r in caplog.records)
    assert "version 1.1.0 was approved after a newer one was announced" in out


def ack_run(store: Any, *, confirm: bool, trigger_id: int = 1) -> AckRun:
    trigger = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-a", poke_interval=0.05)
    return AckRun(trigger, store, confirm=confirm, trigger_id=trigger_id)


@shared_streams
async def test_ack_mode_a_confirmation_that_never_arrives_announces_again_after_a_restart(fake: FakePai) -> None:
    store = FakeStore("prod")
    accessor = store._by_name["prod"]
    run = ack_run(store, confirm=False)
    await until(lambda: bool(states(accessor, "m-a")))  # start point stored (no event to wait for)
    fake.models["m-a"].append(v("2.0.0", "Approved", 5))
    await until(lambda: run.events == ["2.0.0"])
    await until(lambda: run.failure is not None)  # Airflow's ack timeout: the event was never stored
    assert type(run.failure).__name__ == "AckTimeout"
    assert states(accessor, "m-a")[0]["newest"][1] == "1.0.0"  # the state did not move past it
    await run.stop()
    again = ack_run(store, confirm=True, trigger_id=2)  # the restarted triggerer
    await until(lambda: again.events == ["2.0.0"])  # announced again: at least once
    await until(lambda: states(accessor, "m-a")[0]["newest"][1] == "2.0.0")  # stored once confirmed
    await again.stop()
    third = ack_run(store, confirm=True, trigger_id=3)
    await polls(fake, 6)
    await third.stop()
    assert third.events == [] and third.failure is None  # confirmed: never again


class SlowAccessor(FakeAccessor):
    """An asset store that answers reads late: its watcher joins the shared poll after polls were planned."""

    async def aget(self, key: str, default: Any = None) -> Any:
        await asyncio.sleep(0.3)
        return await super().aget(key, default)


@shared_streams
async def test_ack_mode_a_watcher_joining_late_misses_nothing_it_was_waiting_for(fake: FakePai) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    fake.models["m-a"].append(v("2.0.0", "Pending", 5))
    staging, prod = FakeStore("staging"), FakeStore("prod")
    first = Standalone(staging, "m-a")  # staging's watcher sees 2.0.0 Pending
    await until(lambda: bool(states(staging._by_name["staging"], "m-a")))
    await first.stop()
    fake.set_status("m-a", "2.0.0", "Approved")
    second = Standalone(prod, "m-a")  # prod's watcher starts after the approval: 2.0.0 is its start point
    await until(lambda: bool(states(prod._by_name["prod"], "m-a")))
    await second.stop()
    assert first.events == second.events == []

    # the triggerer restarts: prod's watcher subscribes first, staging's joins while polls already run
    manager = SharedStreamManager(ack_timeout=5)
    slow = SlowAccessor()
    slow.data = dict(staging._by_name["staging"].data)
    staging._by_name["staging"] = slow
    got: dict[int, list[str]] = {1: [], 2: []}
    triggers = {1: PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-a", poke_interval=0.05)}
    triggers[1].asset_state_store = prod
    key = triggers[1].shared_stream_key()

    async def consume(trigger_id: int) -> None:
        stream = manager.subscribe(trigger_id=trigger_id, trigger=triggers[trigger_id], key=key)
        async for event in triggers[trigger_id].filter_shared_stream(stream):
            seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
            got[trigger_id].append(event.payload["version"]["version_name"])
            manager.confirm_persisted([seq] if seq is not None else [])

    tasks = [asyncio.ensure_future(consume(1))]
    await polls(fake, 4)
    triggers[2] = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-a", poke_interval=0.05)
    triggers[2].asset_state_store = staging
    assert triggers[2].shared_stream_key() == key
    tasks.append(asyncio.ensure_future(consume(2)))
    await until(lambda: got[2] == ["2.0.0"])  # approved while it was down, though polls were planned without it
    await polls(fake, 6)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop_all()
    assert got == {1: [], 2: ["2.0.0"]}


@shared_streams
async def test_ack_mode_one_poll_serves_every_watcher_of_a_model(fake: FakePai) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    manager = SharedStreamManager(ack_timeout=5)
    triggers = []
    for name in ("staging", "prod"):
        trigger = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-a", poke_interval=0.05)
        trigger.asset_state_store = FakeStore(name)
        triggers.append(trigger)
    keys = {t.shared_stream_key() for t in triggers}
    assert len(keys) == 1
    (key,) = keys
    got: dict[int, list[str]] = {0: [], 1: []}

    async def consume(index: int) -> None:
        stream = manager.subscribe(trigger_id=index, trigger=triggers[index], key=key)
        async for event in triggers[index].filter_shared_stream(stream):
            seq = manager.bind_pending_event(trigger_id=index, key=key)
            got[index].append(event.payload["version"]["version_name"])
            manager.confirm_persisted([seq] if seq is not None else [])

    tasks = [asyncio.ensure_future(consume(i)) for i in (0, 1)]
    await polls(fake, 4)
    fake.models["m-a"].append(v("2.0.0", "Approved", 5))
    await until(lambda: got == {0: ["2.0.0"], 1: ["2.0.0"]})
    before = fake.count("ListModelVersions")
    await polls(fake, 8)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop_all()
    # one poll = two listings (created since, Pending) whatever the number of watchers
    assert fake.count("ListModelVersions") - before < 8 + 4


async def test_a_503_on_the_workspace_lookup_at_the_approving_poll_does_not_fail_the_wait(fake: FakePai) -> None:
    fake.models["m-a"].append(v("1.1.0", "Approved", 2))
    fake.fail_next["GetModel"] = 1
    trigger = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id="m-a", version_name="1.1.0", poke_interval=0.05
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "success", event.payload
    assert event.payload["version"]["version_name"] == "1.1.0"
    assert fake.count("GetModel") == 2


async def test_retryable_errors_spend_the_budget_refusals_end_the_wait_at_once(fake: FakePai) -> None:
    fake.models["m-a"].append(v("1.1.0", "Approved", 2))
    fake.fail_next["GetModelVersion"] = 3
    fake.fail_next["ListModelVersions"] = 3
    trigger = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id="m-a", version_name="1.1.0", poke_interval=0.05, max_failures=5
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "success", event.payload
    fake.accepted_key = "another-key"  # 403: refused, not retryable
    before = fake.count()
    refused = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id="m-a", version_name="1.1.0", poke_interval=0.05, max_failures=5
    )
    event = await first_event(refused)
    assert event.payload["status"] == "error" and event.payload["error_type"] == "RegistryAuthError"
    assert fake.count() - before <= 2  # one read, and the hub's one renewal of the connection


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"version_name": "None"}, "version_name"),
        ({"version_name": ""}, "version_name"),
        ({"model_id": "None"}, "model_id"),
        ({"poke_interval": "soon"}, "poke_interval"),
        ({"max_failures": 0}, "max_failures"),
        ({"max_attempts": 99}, "max_attempts"),
        ({"request_attempts": 99}, "max_attempts"),  # stored by an older release under the deprecated name
    ],
)
async def test_a_bad_stored_kwarg_is_an_error_event_never_a_constructor_error(
    fake: FakePai, kwargs: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"pai_conn_id": "pai_default", "model_id": "m-a", "version_name": "1.1.0", **kwargs}
    trigger = PaiModelVersionApprovedTrigger(**arguments)  # what the triggerer does with stored kwargs
    event = await first_event(trigger)
    assert event.payload["status"] == "error" and event.payload["error_type"] == "RegistryInputError"
    assert f"invalid {field}" in event.payload["message"]
    assert fake.count() == 0  # before any request


@watchers
async def test_a_watcher_with_a_bad_stored_kwarg_logs_and_never_raises(
    fake: FakePai, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    trigger = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-a", announce="all")
    assert trigger.shared_stream_key() is None  # run() reports it
    task = asyncio.ensure_future(anext(trigger.run()))
    await until(
        lambda: "invalid announce" in capsys.readouterr().out + " ".join(r.getMessage() for r in caplog.records)
    )
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert fake.count() == 0


async def test_a_watcher_refused_again_and_again_leaves_no_client_open(fake: FakePai) -> None:
    from airflow_provider_modelreg.triggers.pai import PaiPollHub

    fake.accepted_key = "another-key"  # every read refused: each failed poll renews the connection once
    hub = PaiPollHub.acquire("pai_default", 0.01)
    try:
        for _ in range(50):
            with contextlib.suppress(Exception):
                await hub.check(_target(), None, 0.01)
        assert fake.count() >= 50
        assert hub.retired == []  # every renewed hook's client was closed, not kept until the hub goes
    finally:
        await hub.release(0.01)


def _target() -> Any:
    from airflow_provider_modelreg.approval import ApprovalTarget

    return ApprovalTarget("m-a", version_name="1.1.0")


async def test_an_error_payload_is_masked_before_airflow_stores_it(fake: FakePai) -> None:
    from airflow.providers.common.compat.sdk import mask_secret

    secret = "leaked-token-5f1b2c9e7a"
    mask_secret(secret)
    # a hostile answer that echoes a secret in a field the error message quotes
    fake.models["m-a"].append(v("1.1.0", f"Weird {secret}", 2))
    trigger = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id="m-a", version_name="1.1.0", poke_interval=0.05
    )
    event = await first_event(trigger)
    assert event.payload["status"] == "error", event.payload
    assert "ApprovalStatus" in event.payload["message"]
    assert secret not in event.payload["message"] and "***" in event.payload["message"]


def test_the_hub_log_line_of_a_later_page_does_not_read_like_the_newest_version() -> None:
    from airflow_provider_modelreg.approval import ReadApproved, VersionPage, describe_page
    from airflow_provider_modelreg.models import PaiModelVersion

    b049 = PaiModelVersion.model_validate({"VersionName": "b-049", "ApprovalStatus": "Approved"})
    assert (
        describe_page(ReadApproved("m", 0), VersionPage((b049,), 151))
        == "151 Approved versions; newest b-049 (Approved)"
    )
    later = describe_page(ReadApproved("m", 1), VersionPage((b049,), 151))
    assert "newest" not in later and "page 2" in later, later


@watchers
def test_the_watcher_takes_created_after_and_its_deprecated_names_with_a_warning() -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    when = "2024-01-01T00:00:00+00:00"
    now = PaiModelVersionApprovedEventTrigger(pai_conn_id="c", model_id="m", created_after=when, max_attempts=2)
    with pytest.warns(AirflowProviderDeprecationWarning, match="start_after is deprecated, use created_after"):
        old = PaiModelVersionApprovedEventTrigger(pai_conn_id="c", model_id="m", start_after=when, request_attempts=2)
    assert old.serialize() == now.serialize()  # one stored form, under the names of now
    assert now.serialize()[1]["created_after"] == when and "start_after" not in now.serialize()[1]
    # a shared stream opened for a watcher stored by an older release is the same stream
    from airflow_provider_modelreg.triggers.watcher import _stream_key

    stored = {"pai_conn_id": "c", "model_id": "m", "poke_interval": 60.0, "request_attempts": 2}
    assert _stream_key(stored) == _stream_key(now.serialize()[1])
