"""Issue 10: the gate's cases as one table, run through every mode: poke, reschedule, deferrable (the sensor
defers, the trigger runs as the triggerer rebuilds it, the sensor resumes) and the trigger alone; the alias cases
(issue 24) through the asset watcher as well.

The registry is the suite's own fake PAI server (tests/fake_pai.py), so answers can lie.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from fake_pai import FakePai, fake_pai_server
from helpers import pai_conn

from airflow_provider_modelreg import errors
from airflow_provider_modelreg.errors import ModelRegistryError, RegistryResponseError
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

MODEL = "m-gate"
MODES = ("poke", "reschedule", "deferrable", "trigger")
#: alias cases run through the asset watcher too: started with ``created_after`` in the past, it announces the
#: Approved holder at its first poll (an approved case), or nothing (a waiting case, an error: logged, not raised)
ALIAS_MODES = (*MODES, "watcher")


def v(name: str, status: str | None = "Pending", day: int = 1, second: int = 0, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "VersionName": name,
        "Uri": f"oss://bucket/models/{name}/",
        "GmtCreateTime": f"2024-01-{day:02d}T08:00:{second:02d}.000Z",
        **extra,
    }
    if status is not None:
        out["ApprovalStatus"] = status
    return out


BASE = [
    v("0.9.0", "Rejected", 1),
    v("0.9.5", "Approved", 2),
    v("1.0.0", "Approved", 3),
    v("1.1.0", "Pending", 4),
    v("1.2.0-rc1", "Rejected", 5),
]


@dataclass
class Case:
    id: str
    args: dict[str, Any]  # given at construction
    expect: tuple[str, ...]  # ("approved", name) | ("rejected", name) | ("waiting",) | ("error", field)
    versions: list[dict[str, Any]] = field(default_factory=lambda: list(BASE))
    rendered: dict[str, Any] = field(default_factory=dict)  # what templates rendered to (set after construction)
    get_override: dict[str, dict[str, Any]] = field(default_factory=dict)
    modes: tuple[str, ...] = MODES
    no_requests: bool = False  # bad input must fail before anything is sent


def alias_case(*args: Any, **kwargs: Any) -> Case:
    return Case(*args, modes=ALIAS_MODES, **kwargs)


def many(n: int, status: str = "Pending", approved_at: int | None = None) -> list[dict[str, Any]]:
    out = [v(f"2.{i}.0", status, 10 + i // 50, i % 50) for i in range(n)]
    if approved_at is not None:
        out[approved_at]["ApprovalStatus"] = "Approved"
    return out


def labels(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {"Labels": [{"Key": key, "Value": value} for key, value in pairs]}


CHAMPION = ("alias", "champion")


def held(name: str, status: str | None, day: int, second: int = 0, label: tuple[str, str] = CHAMPION) -> dict[str, Any]:
    """A version holding an alias (by default alias=champion)."""
    return v(name, status, day, second, **labels(label))


CASES = [
    # -- behaviour kept from before
    Case("named-approved", {"version_name": "1.0.0"}, ("approved", "1.0.0")),
    Case("named-rejected", {"version_name": "0.9.0"}, ("rejected", "0.9.0")),
    Case(
        "named-rejected-on-rejected-skip",
        {"version_name": "0.9.0", "on_rejected": "skip"},
        ("rejected", "0.9.0"),
        # a sensor argument (the trigger reports "rejected" either way); reschedule pokes as poke mode does
        modes=("poke", "deferrable"),
    ),
    Case("named-pending-waits", {"version_name": "1.1.0"}, ("waiting",)),
    Case("named-missing-waits", {"version_name": "7.0.0"}, ("waiting",)),
    Case("named-missing-in-a-big-model-waits", {"version_name": "7.0.0"}, ("waiting",), versions=BASE + many(150)),
    Case(
        "named-old-version-outside-the-newest-page",
        {"version_name": "1.0.0"},
        ("approved", "1.0.0"),
        versions=BASE + many(150),
    ),
    Case("next-after-version", {"after_version": "0.9.5"}, ("approved", "1.0.0")),
    Case("next-after-version-none-newer-waits", {"after_version": "1.0.0"}, ("waiting",)),
    Case("next-created-after", {"created_after": "2024-01-02T09:00:00Z"}, ("approved", "1.0.0")),
    Case("next-no-anchor-newest-approved", {"after_version": None}, ("approved", "1.0.0")),
    Case(
        "next-newest-approved-far-behind-the-newest-page",
        {"after_version": "0.9.5"},
        ("approved", "1.0.0"),
        versions=BASE + many(250),
    ),
    Case(
        "next-out-of-order-approval",
        {"after_version": "1.0.0"},
        ("approved", "1.1.0"),
        versions=[*BASE[:3], v("1.1.0", "Approved", 4), v("1.2.0", "Pending", 6)],
    ),
    Case(
        "next-ties-in-creation-time-by-name",
        {"after_version": "1.0.0"},
        ("approved", "1.0.1"),
        versions=[*BASE[:3], v("1.0.1", "Approved", 3), v("0.0.9-same-instant", "Approved", 3)],
    ),
    Case(
        "next-150-approved-in-one-instant-newest-name-wins",
        {"after_version": "1.0.0"},
        ("approved", "9.99"),  # plain string order: "9.99" > "9.149"
        versions=[*BASE[:3], *(v(f"9.{i:03d}"[:-3] + str(i), "Approved", 20) for i in range(150))],
    ),
    Case(
        "next-ties-with-the-anchor-across-pages",
        {"after_version": "1.0.0"},
        ("approved", "1.5.0"),
        versions=[
            *BASE[:2],
            v("1.0.0", "Approved", 3),
            *(v(f"0.0.{i}", "Approved", 3) for i in range(120)),  # same instant, names before the anchor's
            v("1.5.0", "Approved", 3),  # same instant, after the anchor's name: newer, on the second page
        ],
    ),
    # -- issue 10, 1: empty rendered values never switch the mode
    Case(
        "1-version-name-empty",
        {"version_name": "{{ params.v }}"},
        ("error", "version_name"),
        rendered={"version_name": ""},
        no_requests=True,
    ),
    Case(
        "1-version-name-None-text",
        {"version_name": "{{ params.v }}"},
        ("error", "version_name"),
        rendered={"version_name": "None"},
        no_requests=True,
    ),
    Case(
        "1-version-name-native-none",
        {"version_name": "{{ params.v }}"},
        ("error", "version_name"),
        rendered={"version_name": None},
        no_requests=True,
    ),
    Case(
        "1-version-name-native-zero",
        {"version_name": "{{ params.v }}"},
        ("error", "version_name"),
        rendered={"version_name": 0},
        no_requests=True,
    ),
    Case(
        "1-after-version-empty",
        {"after_version": "{{ x }}"},
        ("error", "after_version"),
        rendered={"after_version": ""},
        no_requests=True,
    ),
    Case(
        "1-after-version-None-text",
        {"after_version": "{{ x }}"},
        ("error", "after_version"),
        rendered={"after_version": "None"},
        no_requests=True,
    ),
    Case(
        "1-after-version-native-none-is-no-anchor",
        {"after_version": "{{ x }}"},
        ("approved", "1.0.0"),
        rendered={"after_version": None},
    ),
    Case(
        "1-created-after-empty",
        {"created_after": "{{ x }}"},
        ("error", "created_after"),
        rendered={"created_after": ""},
        no_requests=True,
    ),
    Case(
        "1-created-after-None-text",
        {"created_after": "{{ x }}"},
        ("error", "created_after"),
        rendered={"created_after": "None"},
        no_requests=True,
    ),
    # -- issue 10, 2: an anchor without a creation time
    Case(
        "2-anchor-without-creation-time",
        {"after_version": "1.0.0"},
        ("error", "GmtCreateTime"),
        versions=[*BASE, v("1.0.1", "Approved", 6)],
        get_override={"1.0.0": {"VersionName": "1.0.0", "ApprovalStatus": "Approved", "Uri": "oss://b/1/"}},
    ),
    # -- issue 10, 3: answers the gate cannot judge
    Case(
        "3-named-missing-status",
        {"version_name": "3.0.0"},
        ("error", "ApprovalStatus"),
        versions=[*BASE, v("3.0.0", None, 9)],
    ),
    Case(
        "3-named-unknown-status",
        {"version_name": "3.0.0"},
        ("error", "ApprovalStatus"),
        versions=[*BASE, v("3.0.0", "Approving", 9)],
    ),
    Case(
        "3-named-approved-without-uri",
        {"version_name": "3.0.0"},
        ("error", "Uri"),
        versions=[*BASE, {**v("3.0.0", "Approved", 9), "Uri": ""}],
    ),
    Case(
        "3-next-approved-without-uri",
        {"after_version": "1.0.0"},
        ("error", "Uri"),
        versions=[*BASE, {k: x for k, x in v("3.0.0", "Approved", 9).items() if k != "Uri"}],
    ),
    # -- issue 24: alias= follows whichever version holds the alias (the newest holder while it moves)
    alias_case(
        "alias-held-by-an-approved-version",
        {"alias": "champion"},
        ("approved", "0.9.5"),
        versions=[*BASE[:1], held("0.9.5", "Approved", 2), *BASE[2:]],
    ),
    alias_case(
        "alias-two-holders-the-newest-wins",
        {"alias": "champion"},
        ("approved", "1.0.0"),
        versions=[*BASE[:1], held("0.9.5", "Approved", 2), held("1.0.0", "Approved", 3), *BASE[3:]],
    ),
    alias_case(
        "alias-two-holders-in-one-instant-the-later-name-wins-whatever-the-server-order",
        {"alias": "champion"},
        ("approved", "1.0.1"),
        # the server lists equal times in the order they were stored: the loser first
        versions=[*BASE, held("1.0.0-b", "Approved", 7), held("1.0.1", "Approved", 7)],
    ),
    alias_case(
        "alias-on-a-pending-version-waits",
        {"alias": "champion"},
        ("waiting",),
        versions=[*BASE[:3], held("1.1.0", "Pending", 4), *BASE[4:]],
    ),
    alias_case(
        "alias-newest-holder-pending-an-older-approved-holder-does-not-open",
        {"alias": "champion"},
        ("waiting",),
        versions=[*BASE[:2], held("1.0.0", "Approved", 3), held("1.1.0", "Pending", 4)],
    ),
    alias_case(
        "alias-on-a-rejected-version-waits",
        {"alias": "champion"},
        ("waiting",),
        versions=[held("0.9.0", "Rejected", 1), *BASE[1:]],
    ),
    alias_case("alias-held-by-no-version-waits", {"alias": "champion"}, ("waiting",)),
    alias_case(
        "alias-labels-that-only-contain-it-do-not-hold-it",
        {"alias": "champion"},
        ("waiting",),
        versions=[
            *BASE[:1],
            held("0.9.5", "Approved", 2, label=("alias", "champion-old")),
            held("1.0.0", "Approved", 3, label=("other", "champion")),
            *BASE[3:],
        ],
    ),
    alias_case(
        "alias-under-another-key",
        {"alias": "prod", "alias_key": "stage"},
        ("approved", "1.0.0"),
        versions=[*BASE[:2], held("1.0.0", "Approved", 3, label=("stage", "prod")), *BASE[3:]],
    ),
    alias_case(
        "alias-holder-behind-a-full-page-of-look-alikes",
        {"alias": "champion"},
        ("approved", "1.0.0"),
        versions=[
            *BASE[:2],
            held("1.0.0", "Approved", 3),
            *(held(f"3.{i}.0", "Approved", 20 + i // 50, i % 50, ("alias", "champion-x")) for i in range(150)),
        ],
    ),
    alias_case(
        "alias-approved-holder-without-uri",
        {"alias": "champion"},
        ("error", "Uri"),
        versions=[*BASE, {**held("3.0.0", "Approved", 9), "Uri": ""}],
    ),
    alias_case(
        "alias-holder-without-creation-time",
        {"alias": "champion"},
        ("error", "GmtCreateTime"),
        versions=[*BASE, {k: x for k, x in held("3.0.0", "Approved", 9).items() if k != "GmtCreateTime"}],
    ),
    alias_case(
        "alias-None-text", {"alias": "{{ x }}"}, ("error", "alias"), rendered={"alias": "None"}, no_requests=True
    ),
    alias_case("alias-empty", {"alias": "{{ x }}"}, ("error", "alias"), rendered={"alias": ""}, no_requests=True),
    alias_case("alias-with-a-comma", {"alias": "a,b"}, ("error", "alias"), no_requests=True),
    alias_case("alias-too-long", {"alias": "é" * 65}, ("error", "alias"), no_requests=True),
    Case(
        "3-get-answers-another-version",
        {"version_name": "1.0.0"},
        ("error", "VersionName"),
        versions=BASE + many(150),
        get_override={"1.0.0": v("6.6.6", "Approved", 3)},
    ),
]

#: the mocked task instance answers the first reschedule date (ti.get_first_reschedule_date, Airflow 3); Airflow 2's
#: sensor reads it from the metadata DB's task_reschedule table instead, which these DB-less unit tests do not have
RESCHEDULE_WITHOUT_DB = pytest.mark.requires_airflow(
    "3.0", reason="reschedule mode through a mocked task instance (Airflow 2 reads task_reschedule from the DB)"
)


#: the asset watcher is an event trigger: it exists from Airflow 3.0
WATCHER_NEEDS_3 = pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")


def context(first_reschedule_date: Any = None) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = 1
    ti.get_first_reschedule_date.return_value = first_reschedule_date
    return {"ti": ti, "task_instance": ti}


def budget(case: Case) -> float:
    """How long a trigger may wait: short where the case waits, generous where one poll decides (a loaded CI
    machine must not turn a decision into a timeout)."""
    return 0.25 if case.expect == ("waiting",) else 15.0


@dataclass
class Run:
    """What a sensor run gave: the ref it returned or the exception it raised, and whether it deferred (then the
    trigger's event)."""

    ref: dict[str, Any] | None = None
    exc: BaseException | None = None
    deferred: bool = False
    event: dict[str, Any] | None = None


def run_sensor(mode: str, case: Case) -> Run:
    from airflow.exceptions import AirflowRescheduleException
    from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

    task = PaiModelVersionApprovedSensor(
        task_id="wait",
        model_id=MODEL,
        poke_interval=0.05,
        timeout=budget(case),
        mode="reschedule" if mode == "reschedule" else "poke",
        deferrable=mode == "deferrable",
        **case.args,
    )
    for name, value in case.rendered.items():
        setattr(task, name, value)
    run = Run()
    try:  # only what a task may end with: anything else (a crash) fails the test with its own traceback
        try:
            run.ref = task.execute(context())
        except TaskDeferred as deferred:
            run.deferred = True
            _, kwargs = deferred.trigger.serialize()
            kwargs = json.loads(json.dumps(kwargs))  # as the triggerer stores and rebuilds it
            kwargs["end_time"] = time.time() + budget(case)
            run.event = asyncio.run(_first_event(PaiModelVersionApprovedTrigger(**kwargs)))
            run.ref = task.execute_complete(context(), run.event)
    except (AirflowException, AirflowRescheduleException) as exc:
        run.exc = exc
    return run


def check_sensor_run(mode: str, case: Case, run: Run) -> None:
    from airflow.exceptions import AirflowRescheduleException
    from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSensorTimeout, AirflowSkipException

    kind = case.expect[0]
    if mode == "deferrable":  # the worker checks once before deferring: only a wait reaches the triggerer
        assert run.deferred == (kind == "waiting"), run
    if kind == "approved":
        assert run.exc is None and run.ref is not None, run
        assert run.ref["version_name"] == case.expect[1], run.ref
    elif kind == "rejected":
        rejected = AirflowSkipException if case.args.get("on_rejected") == "skip" else AirflowFailException
        assert type(run.exc) is rejected, run  # terminal: no retry (AirflowFailException), or skipped
        assert f"version {case.expect[1]} was Rejected" in str(run.exc), run
    elif kind == "waiting":
        timed_out = {"poke": AirflowSensorTimeout, "reschedule": AirflowRescheduleException}
        assert type(run.exc) is timed_out.get(mode, AirflowSensorTimeout), run
        if mode == "deferrable":
            assert run.event is not None and run.event["status"] == "timeout", run.event
    else:  # a typed error of ours, naming what is wrong
        assert isinstance(run.exc, ModelRegistryError), run
        assert case.expect[1] in str(run.exc), run


async def _first_event(trigger: Any) -> dict[str, Any]:
    event = await anext(trigger.run())
    return event.payload  # type: ignore[no-any-return]


def run_trigger(case: Case) -> dict[str, Any]:
    args = {**case.args, **case.rendered}
    trigger = PaiModelVersionApprovedTrigger(
        pai_conn_id="pai_default", model_id=MODEL, poke_interval=0.05, end_time=time.time() + budget(case), **args
    )
    return asyncio.run(_first_event(trigger))


def check_trigger_event(case: Case, event: dict[str, Any]) -> None:
    kind = case.expect[0]
    status = {"approved": "success", "rejected": "rejected", "waiting": "timeout", "error": "error"}[kind]
    assert event["status"] == status, event
    if kind in ("approved", "rejected"):
        assert event["version"]["version_name"] == case.expect[1], event
    elif kind == "error":  # a typed error of ours, by name
        error_type = getattr(errors, event["error_type"], None)
        assert isinstance(error_type, type) and issubclass(error_type, ModelRegistryError), event
        assert case.expect[1] in event["message"], event


def run_watcher(case: Case) -> list[dict[str, Any]]:
    """The events an alias watcher announces within the case's budget (it never ends by itself)."""
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger

    trigger = PaiModelVersionApprovedEventTrigger(
        pai_conn_id="pai_default",
        model_id=MODEL,
        poke_interval=0.05,
        created_after="2000-01-01T00:00:00Z",
        **{**case.args, **case.rendered},
    )
    events: list[dict[str, Any]] = []

    async def watch() -> None:
        announced = asyncio.Event()

        async def collect() -> None:
            async for event in trigger.run():
                events.append(event.payload)
                announced.set()

        task = asyncio.ensure_future(collect())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(announced.wait(), 0.4 if case.expect[0] != "approved" else 15.0)
        await asyncio.sleep(0.2)  # the polls after the first announce nothing again
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(watch())
    return events


def check_watcher_events(case: Case, events: list[dict[str, Any]]) -> None:
    if case.expect[0] == "approved":
        assert [e["version"]["version_name"] for e in events] == [case.expect[1]], events
        assert events[0]["status"] == "approved" and events[0]["alias"] == case.args["alias"], events
    else:  # waiting, or an error (logged at ERROR, the watcher backs off): nothing announced
        assert events == [], events


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with fake_pai_server() as server:
        pai_conn(monkeypatch, server.url, max_attempts=1)
        yield server


def _params() -> list[Any]:
    out = []
    for case in CASES:
        for mode in case.modes:
            if mode in ("trigger", "watcher") and case.rendered:
                continue  # triggers are not templated: their kwargs come from the validated sensor
            marks = {"reschedule": (RESCHEDULE_WITHOUT_DB,), "watcher": (WATCHER_NEEDS_3,)}.get(mode, ())
            out.append(pytest.param(case, mode, id=f"{case.id}-{mode}", marks=marks))
    return out


@pytest.mark.parametrize(("case", "mode"), _params())
def test_gate_case(fake: FakePai, case: Case, mode: str) -> None:
    fake.models[MODEL] = [dict(x) for x in case.versions]
    fake.get_override = {(MODEL, name): body for name, body in case.get_override.items()}
    if mode == "trigger":
        check_trigger_event(case, run_trigger(case))
    elif mode == "watcher":
        check_watcher_events(case, run_watcher(case))
    else:
        check_sensor_run(mode, case, run_sensor(mode, case))
    if case.no_requests:
        assert fake.count() == 0, fake.requests


def test_3_get_operator_refuses_an_answer_about_another_version(fake: FakePai) -> None:
    from airflow_provider_modelreg.errors import RegistryResponseError
    from airflow_provider_modelreg.operators.pai import PaiGetModelVersionOperator

    fake.models[MODEL] = list(BASE)
    fake.get_override = {(MODEL, "1.0.0"): v("6.6.6", "Approved", 3)}
    op = PaiGetModelVersionOperator(task_id="get", model_id=MODEL, version_name="1.0.0")
    with pytest.raises(RegistryResponseError, match="VersionName"):
        op.execute(context())


@pytest.mark.parametrize("bad", ["", "None", 0])
@pytest.mark.parametrize("field", ["approval_status", "version_name", "label_filter", "source_id"])
def test_1_list_filters_that_render_empty_are_errors(fake: FakePai, field: str, bad: Any) -> None:
    from airflow_provider_modelreg.errors import RegistryInputError
    from airflow_provider_modelreg.operators.pai import PaiListModelVersionsOperator

    fake.models[MODEL] = list(BASE)
    op = PaiListModelVersionsOperator(task_id="list", model_id=MODEL, **{field: "{{ x }}"})
    setattr(op, field, bad)
    with pytest.raises(RegistryInputError) as err:
        op.execute(context())
    assert err.value.field == field
    assert fake.count() == 0


def run_to_the_end(task: PaiModelVersionApprovedSensor, fake: FakePai, approve: str | None = None) -> Any:
    """Execute the sensor; if it defers, run its trigger as the triggerer rebuilds it (the end time the sensor gave
    it included) and resume with the event. ``approve``: a version to approve once the wait has polled twice
    and seen nothing (in poke mode from a thread, the sensor blocks; deferrable: in the triggerer)."""
    from airflow.providers.common.compat.sdk import TaskDeferred

    def polled_twice(start: int) -> bool:
        return fake.count("ListModelVersions") >= start + 2

    approver: threading.Thread | None = None
    if approve is not None and not task.deferrable:

        def approve_later(start: int) -> None:
            deadline = time.monotonic() + 15
            while not polled_twice(start) and time.monotonic() < deadline:
                time.sleep(0.01)
            fake.set_status(MODEL, approve, "Approved")

        approver = threading.Thread(target=approve_later, args=(fake.count("ListModelVersions"),), daemon=True)
        approver.start()
    try:
        return task.execute(context())
    except TaskDeferred as deferred:
        _, kwargs = deferred.trigger.serialize()
        trigger = PaiModelVersionApprovedTrigger(**json.loads(json.dumps(kwargs)))

        async def trigger_run() -> dict[str, Any]:
            if approve is None:
                return await _first_event(trigger)
            event = asyncio.ensure_future(_first_event(trigger))
            start, deadline = fake.count("ListModelVersions"), time.monotonic() + 15
            while not polled_twice(start):
                assert not event.done() and time.monotonic() < deadline, "the trigger did not poll twice"
                await asyncio.sleep(0.01)
            fake.set_status(MODEL, approve, "Approved")
            return await event

        return task.execute_complete(context(), asyncio.run(trigger_run()))
    finally:
        if approver is not None:
            approver.join(15)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_skip_on_timeout_skips_only_when_nothing_was_approved(fake: FakePai, deferrable: bool) -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning
    from airflow.providers.common.compat.sdk import AirflowSkipException

    def gate(timeout: float) -> PaiModelVersionApprovedSensor:
        with pytest.warns(AirflowProviderDeprecationWarning, match="skip_on_timeout is deprecated"):
            return PaiModelVersionApprovedSensor(
                task_id="wait",
                model_id=MODEL,
                after_version="1.0.0",
                poke_interval=0.05,
                timeout=timeout,
                skip_on_timeout=True,
                deferrable=deferrable,
            )

    fake.models[MODEL] = [dict(x) for x in BASE]
    with pytest.raises(AirflowSkipException, match="Nothing approved"):  # nothing newer than 1.0.0 approved in time
        run_to_the_end(gate(0.3), fake)
    ref = run_to_the_end(gate(30), fake, approve="1.1.0")  # approved while it waits: a ref, not a skip
    assert ref["version_name"] == "1.1.0" and ref["approval_status"] == "Approved", ref
    fake.get_override = {(MODEL, "1.0.0"): {"VersionName": "1.0.0", "ApprovalStatus": "Approved"}}
    with pytest.raises(RegistryResponseError, match="GmtCreateTime"):  # an error is not a timeout: it fails
        run_to_the_end(gate(0.3), fake)
