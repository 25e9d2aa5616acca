"""Triggerer capacity (issue 25). Shared-read waits spread their wake-ups across the interval: the second poll
comes after a random share of the interval and takes no answer older than that delay; every poll after it is one
interval apart. And a wait holds little: its class's logger, the hub only while it runs."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_provider_modelreg.errors import ModelRegistryError
from airflow_provider_modelreg.triggers.polling import PollingTrigger


@dataclass(kw_only=True, eq=False, repr=False)
class _Wait(PollingTrigger):
    model_id: str = "m"

    def _polled(self) -> str:
        return "of m"

    def _timeout(self) -> TriggerEvent:
        return self._event("timeout")

    async def run(self) -> Any:  # pragma: no cover - not used: the tests drive until_decided
        yield self._timeout()


class _Hub:
    """Records when each poll came and the oldest answer it would take; decides after ``polls`` polls."""

    def __init__(self, polls: int) -> None:
        self.polls = polls
        self.seen: list[tuple[float, float]] = []

    async def check(self, target: Any, anchor: Any, max_age: float) -> Any:
        self.seen.append((time.monotonic(), max_age))
        done = len(self.seen) >= self.polls
        return SimpleNamespace(anchor=None, decision=SimpleNamespace(outlook="done" if done else "waiting", done=done))


async def _wait(hub: _Hub, interval: float) -> TriggerEvent:
    wait = _Wait()
    target = SimpleNamespace(model_id="m", describe=lambda: "v")

    async def judge(decision: Any) -> TriggerEvent | None:
        return TriggerEvent({"status": "success"}) if decision.done else None

    return await wait.until_decided(hub, target, interval, judge)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the polling loop sleeps, recorded instead of slept (no wall-clock bounds in the tests). Only this
    thread's sleeps: ``asyncio.sleep`` is patched for the process, and an emulator from another test may still be
    sleeping in its own thread."""
    asked: list[float] = []
    real_sleep = asyncio.sleep
    mine = threading.get_ident()

    async def recording(delay: float, result: Any = None) -> Any:
        if threading.get_ident() != mine:
            return await real_sleep(delay, result)
        asked.append(delay)
        return await real_sleep(0, result)

    monkeypatch.setattr("airflow_provider_modelreg.triggers.polling.asyncio.sleep", recording)
    return asked


def test_the_second_poll_comes_after_the_phase_and_takes_no_older_answer(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    monkeypatch.setattr(PollingTrigger, "_phase", staticmethod(lambda: 0.25))
    hub = _Hub(polls=4)
    event = asyncio.run(_wait(hub, 40.0))
    assert event.payload == {"status": "success"}
    assert [a for _, a in hub.seen] == [40.0, 10.0, 40.0, 40.0]
    assert sleeps == [10.0, 40.0, 40.0]  # a quarter of the interval, then whole ones


def test_a_whole_phase_keeps_the_interval(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setattr(PollingTrigger, "_phase", staticmethod(lambda: 1.0))
    hub = _Hub(polls=3)
    asyncio.run(_wait(hub, 20.0))
    assert [a for _, a in hub.seen] == [20.0, 20.0, 20.0]
    assert sleeps == [20.0, 20.0]


def test_a_failed_first_poll_is_asked_again_after_the_interval_not_the_phase(
    monkeypatch: pytest.MonkeyPatch, sleeps: list[float]
) -> None:
    """max_failures spans as long an outage at the start of a wait as anywhere else."""
    monkeypatch.setattr(PollingTrigger, "_phase", staticmethod(lambda: 0.01))

    class Flaky(_Hub):
        async def check(self, target: Any, anchor: Any, max_age: float) -> Any:
            if not self.seen:
                self.seen.append((time.monotonic(), max_age))
                down = ModelRegistryError("the registry is down")
                down.retryable = True
                raise down
            return await super().check(target, anchor, max_age)

    hub = Flaky(polls=3)
    event = asyncio.run(_wait(hub, 60.0))
    assert event.payload == {"status": "success"}
    assert sleeps[0] == 60.0


def test_waits_started_together_get_phases_across_the_whole_interval() -> None:
    phases = [PollingTrigger._phase() for _ in range(2000)]
    assert all(0.0 < p <= 1.0 for p in phases)
    # spread, not bunched: every tenth of the interval holds some of two thousand waits
    assert {int(p * 10) for p in phases if p < 1.0} == set(range(10))


def _logger_name(logger: Any) -> str:
    """A logger's name: stdlib (Airflow 2) or structlog's lazy proxy (Airflow 3)."""
    name = getattr(logger, "name", None)
    return str(name if name is not None else logger._logger_factory_args[0])


def test_waits_share_their_class_logger_instead_of_holding_one_each() -> None:
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

    waits = [PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id=f"m{i}", version_name="v") for i in range(3)]
    for wait in waits:
        wait.log.info("a line")
    assert waits[0].log is waits[1].log is waits[2].log
    assert all("_log" not in vars(wait) for wait in waits)  # nothing per trigger
    # the name a trigger's own logger had: the trigger class's
    assert _logger_name(waits[0].log).endswith("triggers.pai.PaiModelVersionApprovedTrigger")


def test_a_subclass_logs_under_its_own_name_not_its_parents() -> None:
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

    PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id="m").log.info("the parent logs first")

    class MyWait(PaiModelVersionApprovedTrigger):
        pass

    mine = MyWait(pai_conn_id="c", model_id="m")
    assert _logger_name(mine.log).endswith("MyWait")
    assert mine.log is not PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id="m").log


def test_a_wait_holds_its_hub_while_it_polls_and_releases_it_when_cancelled_or_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_provider_modelreg.triggers.hub import PaiPollHub
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

    # nothing listens on port 9: every attempt is refused and retried, so the first poll stays in flight
    monkeypatch.setenv(
        "AIRFLOW_CONN_CAPACITY_REFUSED",
        json.dumps(
            {"conn_type": "pai", "login": "LTAIkey", "password": "secret", "extra": {"endpoint": "http://127.0.0.1:9"}}
        ),
    )

    def held(conn_id: str) -> list[int]:
        return [hub.users for key, hub in PaiPollHub.hubs.items() if key[1] == conn_id]

    async def scenario() -> None:
        wait = PaiModelVersionApprovedTrigger(
            pai_conn_id="capacity_refused", model_id="m", version_name="v", poke_interval=30, max_attempts=20
        )
        task = asyncio.ensure_future(anext(wait.run()))
        await asyncio.sleep(0.5)
        assert not task.done()
        assert held("capacity_refused") == [1]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert held("capacity_refused") == []

        # a wait that ended with its event holds the hub until the triggerer closes it
        ended = PaiModelVersionApprovedTrigger(pai_conn_id="capacity_missing", model_id="m", version_name="v")
        run = ended.run()
        event = await anext(run)
        assert event.payload["status"] == "error"
        assert held("capacity_missing") == [1]
        await run.aclose()
        assert held("capacity_missing") == []

    asyncio.run(scenario())
