"""Issue 24: the sensor, the list operator and the watcher follow an alias (``alias=``): whichever version holds the
label ``alias_key=alias`` now, the newest holder while a move leaves two. Against the emulator over 127.0.0.1; the
alias is moved with the hook's own label calls, so every step goes over HTTP as a DAG would send it."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from helpers import build_seed, pai_conn

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.operators.pai import PaiListModelVersionsOperator
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger, PaiModelVersionApprovedTrigger

MODEL = "m-main"  # seed: 0.9.0 Rejected, 1.0.0 Approved, 1.1.0 Pending (created on days 1-3)
ALIAS = {"alias": "champion"}


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed())
    pai_conn(monkeypatch, emulator.url, max_attempts=1)
    return emulator


def context() -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = 1
    ti.get_first_reschedule_date.return_value = None
    return {"ti": ti, "task_instance": ti}


def hook() -> PaiModelRegistryHook:
    return PaiModelRegistryHook()


def label(version: str, value: str = "champion", key: str = "alias") -> None:
    hook().add_version_labels(MODEL, version, {key: value})


def unlabel(version: str, key: str = "alias") -> None:
    hook().remove_version_labels(MODEL, version, [key])


def approve(version: str) -> None:
    hook().update_model_version(MODEL, version, approval_status="Approved")


def new_version(name: str, status: str = "Pending") -> None:
    """A version created now: newer than every seeded one."""
    hook().create_model_version(MODEL, f"oss://bucket/models/{name}/", version_name=name, approval_status=status)


def sensor(**kwargs: Any) -> PaiModelVersionApprovedSensor:
    kwargs.setdefault("alias", "champion")
    kwargs.setdefault("timeout", 30)
    return PaiModelVersionApprovedSensor(task_id="wait", model_id=MODEL, poke_interval=0.05, **kwargs)


def poked(task: PaiModelVersionApprovedSensor) -> str | None:
    """One poke: the version it returned, or None (still waiting)."""
    result = task.poke(context())
    if result is False:
        return None
    assert not isinstance(result, bool) and result.is_done, result
    return str(result.xcom_value["version_name"])


async def first_event(trigger: Any, timeout: float = 30) -> dict[str, Any]:
    """The trigger's first event; the trigger is closed after it, as the triggerer does."""
    run = trigger.run()
    try:
        event = await asyncio.wait_for(anext(run), timeout)
    finally:
        await run.aclose()
    return event.payload  # type: ignore[no-any-return]


def list_alias(**kwargs: Any) -> list[str]:
    kwargs.setdefault("alias", "champion")
    op = PaiListModelVersionsOperator(task_id="list", model_id=MODEL, **kwargs)
    return [ref["version_name"] for ref in op.execute(context())]


# ------------------------------------------------------------------------------------------------ sensor, poke


def test_the_sensor_follows_the_alias_as_it_moves_and_returns_the_new_holder_once_approved(emu: Any) -> None:
    new_version("1.2.0")
    label("1.1.0")
    task = sensor()
    assert poked(task) is None  # on 1.1.0, Pending
    label("1.2.0")  # the move: both hold it, the newest (1.2.0, Pending) counts
    assert poked(task) is None
    unlabel("1.1.0")
    approve("1.1.0")  # the old holder approved after the alias left it: not the gate's business
    assert poked(task) is None
    approve("1.2.0")
    assert poked(task) == "1.2.0"


def test_two_holders_at_once_the_newest_wins(emu: Any) -> None:
    new_version("1.2.0", "Approved")
    label("1.0.0")
    label("1.2.0")
    assert poked(sensor()) == "1.2.0"
    assert list_alias() == ["1.2.0"]


def test_a_newer_unapproved_holder_keeps_the_gate_shut_though_an_older_holder_is_approved(emu: Any) -> None:
    label("1.0.0")  # Approved
    label("1.1.0")  # Pending, newer
    assert poked(sensor()) is None
    assert list_alias() == ["1.1.0"]
    assert list_alias(approval_status="Approved") == []  # the holder, filtered: not the older Approved one


@pytest.mark.parametrize("version", ["1.1.0", "0.9.0"], ids=["pending", "rejected"])
def test_an_alias_on_an_unapproved_version_does_not_open(emu: Any, version: str) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    label(version)
    with pytest.raises(AirflowSensorTimeout):
        sensor(timeout=0.4).execute(context())


def test_no_holder_waits_and_lists_nothing(emu: Any) -> None:
    label("1.0.0", "champion-old")  # the Label filter is a substring match: this one is listed, and is no holder
    label("1.1.0", "champion", key="other")
    assert poked(sensor()) is None
    assert list_alias() == []
    assert emu.request_log.count("pai.ListModelVersions") >= 2


def test_another_alias_key(emu: Any) -> None:
    label("1.0.0", "prod", key="stage")
    assert poked(sensor(alias="prod", alias_key="stage")) == "1.0.0"
    assert poked(sensor(alias="prod")) is None  # under the default key, nothing holds "prod"
    assert list_alias(alias="prod", alias_key="stage") == ["1.0.0"]


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", ["None", "null", "", " ", "a=b", "a,b", "x" * 129])
def test_a_bad_alias_is_a_typed_error_before_any_request(emu: Any, bad: str) -> None:
    before = emu.request_log.count()
    task = sensor(alias="{{ params.alias }}")
    task.alias = bad  # as rendered
    with pytest.raises(RegistryInputError) as err:
        task.execute(context())
    assert err.value.field == "alias"
    deferring = sensor(alias="{{ params.alias }}", deferrable=True)
    deferring.alias = bad
    with pytest.raises(RegistryInputError):
        deferring.execute(context())
    op = PaiListModelVersionsOperator(task_id="list", model_id=MODEL, alias="{{ x }}")
    op.alias = bad
    with pytest.raises(RegistryInputError) as err:
        op.execute(context())
    assert err.value.field == "alias"
    event = asyncio.run(
        first_event(PaiModelVersionApprovedTrigger(pai_conn_id="pai_default", model_id=MODEL, alias=bad))
    )
    assert event["status"] == "error" and event["error_type"] == "RegistryInputError" and "alias" in event["message"]
    assert emu.request_log.count() == before


@pytest.mark.parametrize(
    "kwargs",
    [{"version_name": "1.0.0"}, {"after_version": "1.0.0"}, {"created_after": "2024-01-01T00:00:00Z"}],
    ids=["version_name", "after_version", "created_after"],
)
def test_alias_cannot_be_combined_with_another_target(kwargs: dict[str, Any]) -> None:
    with pytest.raises(RegistryInputError) as err:
        sensor(**kwargs)
    assert err.value.field == "alias" and next(iter(kwargs)) in str(err.value)


@pytest.mark.parametrize("field", ["version_name", "label_filter", "source_id"])
def test_the_list_operator_refuses_alias_with_another_filter(field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        PaiListModelVersionsOperator(task_id="list", model_id=MODEL, alias="champion", **{field: "x"})
    assert err.value.field == "alias" and field in str(err.value)


@pytest.mark.parametrize("key", ["None", "a=b", ""])
def test_a_bad_alias_key_is_refused_when_the_task_is_defined(key: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        sensor(alias_key=key)
    assert err.value.field == "alias_key"
    with pytest.raises(RegistryInputError):
        PaiListModelVersionsOperator(task_id="list", model_id=MODEL, alias="champion", alias_key=key)


# ------------------------------------------------------------------------------------------------ deferrable


def count_lists(emu: Any) -> int:
    return int(emu.request_log.count("pai.ListModelVersions"))


def after_polls(emu: Any, polls: int, step: Callable[[], None], timeout: float = 15) -> Callable[[], None]:
    """A step to run once the wait has listed ``polls`` more times."""

    def run() -> None:
        start, deadline = count_lists(emu), time.monotonic() + timeout
        while count_lists(emu) < start + polls:
            assert time.monotonic() < deadline, "the wait did not poll"
            time.sleep(0.01)
        step()

    return run


def test_deferrable_the_trigger_follows_the_move_and_the_sensor_resumes_with_the_new_holder(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    new_version("1.2.0")
    label("1.1.0")
    task = sensor(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["alias"] == "champion" and kwargs["alias_key"] == "alias"
    trigger = PaiModelVersionApprovedTrigger(**json.loads(json.dumps(kwargs)))  # as the triggerer rebuilds it

    def moves() -> None:
        after_polls(emu, 2, lambda: (label("1.2.0"), unlabel("1.1.0")))()
        after_polls(emu, 2, lambda: approve("1.1.0"))()  # the old holder: no event
        after_polls(emu, 2, lambda: approve("1.2.0"))()

    mover = threading.Thread(target=moves, daemon=True)
    mover.start()
    event = asyncio.run(first_event(trigger))
    mover.join(15)
    assert event["status"] == "success" and event["version"]["version_name"] == "1.2.0", event
    ref = task.execute_complete(context(), event)
    assert ref["version_name"] == "1.2.0" and ref["approval_status"] == "Approved"


def test_poke_mode_returns_the_new_holder_once_approved_while_it_waits(emu: Any) -> None:
    new_version("1.2.0")
    label("1.1.0")

    def moves() -> None:
        after_polls(emu, 2, lambda: (label("1.2.0"), unlabel("1.1.0")))()
        after_polls(emu, 2, lambda: approve("1.2.0"))()

    mover = threading.Thread(target=moves, daemon=True)
    mover.start()
    ref = sensor().execute(context())
    mover.join(15)
    assert ref["version_name"] == "1.2.0"


def test_a_trigger_stored_without_the_alias_kwargs_rebuilds_as_before() -> None:
    stored = {"pai_conn_id": "pai_default", "model_id": MODEL, "version_name": "1.0.0", "poke_interval": 5.0}
    trigger = PaiModelVersionApprovedTrigger(**stored)
    _, kwargs = trigger.serialize()
    assert kwargs["alias"] is None and kwargs["alias_key"] == "alias" and kwargs["version_name"] == "1.0.0"


# ------------------------------------------------------------------------------------------------ the watcher

WATCHERS = pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")


class Accessor:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.data.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.data[key] = json.loads(json.dumps(value))


class Store:
    """Airflow 3.3's asset state store of one watched asset."""

    def __init__(self) -> None:
        self.accessor = Accessor()
        self._by_name = {"prod": self.accessor}

    async def aget(self, key: str, default: Any = None) -> Any:
        return await self.accessor.aget(key, default)

    async def aset(self, key: str, value: Any) -> None:
        await self.accessor.aset(key, value)


async def watch(emu: Any, store: Any, steps: list[Callable[[], None]], **kwargs: Any) -> list[str]:
    """Run an alias watcher; before each step wait for two polls, after the last for two more; the announced."""
    trigger = PaiModelVersionApprovedEventTrigger(
        pai_conn_id="pai_default", model_id=MODEL, poke_interval=0.05, **kwargs
    )
    trigger.asset_state_store = store
    events: list[str] = []

    async def run() -> None:
        async for event in trigger.run():
            assert event.payload["alias"] == kwargs["alias"]
            events.append(event.payload["version"]["version_name"])

    task = asyncio.ensure_future(run())
    try:
        for step in [*steps, lambda: None]:
            await asyncio.to_thread(after_polls(emu, 2, step))
        await asyncio.to_thread(after_polls(emu, 2, lambda: None))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return events


@WATCHERS
def test_the_watcher_announces_each_version_that_becomes_the_approved_holder_once(emu: Any) -> None:
    label("1.0.0")  # holds it when the watcher starts: known, not announced
    new_version("1.2.0")
    new_version("1.3.0", "Approved")
    store = Store()
    steps = [
        lambda: (label("1.2.0"), unlabel("1.0.0")),  # moved to a Pending version: nothing yet
        lambda: approve("1.2.0"),  # now it is the Approved holder: announced
        lambda: label("1.3.0"),  # two holders: the newest (1.3.0, Approved) is announced
        lambda: unlabel("1.2.0"),  # the move completes: the holder is still 1.3.0, nothing new
        lambda: (label("1.0.0"), unlabel("1.3.0")),  # moved back (rolled back): 1.0.0 becomes the holder again
    ]
    events = asyncio.run(watch(emu, store, steps, **ALIAS))
    assert events == ["1.2.0", "1.3.0", "1.0.0"]
    states = [v for k, v in store.accessor.data.items() if k.startswith(f"modelreg_pai_alias:{MODEL}:")]
    assert len(states) == 1 and states[0]["alias_holder"] == "1.0.0", store.accessor.data
    assert states[0]["identity"]["alias"] == ["alias", "champion"]
    # a restart with the stored state announces nothing again
    assert asyncio.run(watch(emu, store, [], **ALIAS)) == []


@WATCHERS
def test_the_watcher_announces_a_move_made_while_it_was_away(emu: Any) -> None:
    label("1.0.0")
    store = Store()
    assert asyncio.run(watch(emu, store, [], **ALIAS)) == []
    new_version("1.2.0", "Approved")
    label("1.2.0")
    unlabel("1.0.0")
    assert asyncio.run(watch(emu, store, [], **ALIAS)) == ["1.2.0"]


@WATCHERS
def test_an_alias_watcher_keeps_the_serialized_kwargs_of_a_plain_watcher_unchanged() -> None:
    plain = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id=MODEL)
    _, kwargs = plain.serialize()
    assert "alias" not in kwargs and "alias_key" not in kwargs  # existing watchers keep their trigger hash
    follower = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id=MODEL, alias="champion")
    classpath, kwargs = follower.serialize()
    assert kwargs["alias"] == "champion" and kwargs["alias_key"] == "alias"
    rebuilt = PaiModelVersionApprovedEventTrigger(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert follower.shared_stream_key() is None  # polls on its own (run())
