"""Triggerer capacity (issue 25). Shared-read waits spread their wake-ups across the interval: the second poll
comes after a random share of the interval and takes no answer older than that delay; every poll after it is one
interval apart. And a wait holds little: its class's logger, the hub only while it runs."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent
from airflow.utils.log.logging_mixin import LoggingMixin

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


def test_the_second_poll_comes_after_the_phase_and_takes_no_older_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PollingTrigger, "_phase", staticmethod(lambda: 0.25))
    hub = _Hub(polls=4)
    event = asyncio.run(_wait(hub, 0.4))
    assert event.payload == {"status": "success"}
    times = [t for t, _ in hub.seen]
    ages = [a for _, a in hub.seen]
    assert ages == [0.4, 0.1, 0.4, 0.4]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 0.09 <= gaps[0] < 0.3, gaps  # a quarter of the interval, not a whole one
    assert all(0.39 <= g < 0.7 for g in gaps[1:]), gaps


def test_a_whole_phase_keeps_the_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PollingTrigger, "_phase", staticmethod(lambda: 1.0))
    hub = _Hub(polls=3)
    asyncio.run(_wait(hub, 0.2))
    assert [a for _, a in hub.seen] == [0.2, 0.2, 0.2]
    times = [t for t, _ in hub.seen]
    assert all(0.19 <= b - a < 0.5 for a, b in itertools.pairwise(times))


def test_waits_started_together_get_phases_across_the_whole_interval() -> None:
    phases = [PollingTrigger._phase() for _ in range(2000)]
    assert all(0.0 < p <= 1.0 for p in phases)
    # spread, not bunched: every tenth of the interval holds some of two thousand waits
    assert {int(p * 10) for p in phases if p < 1.0} == set(range(10))


def test_waits_share_their_class_logger_instead_of_holding_one_each() -> None:
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

    waits = [PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id=f"m{i}", version_name="v") for i in range(3)]
    for wait in waits:
        wait.log.info("a line")
    assert waits[0].log is waits[1].log is waits[2].log is PaiModelVersionApprovedTrigger.logger()
    assert all("_log" not in vars(wait) for wait in waits)  # nothing per trigger
    # and the logger's name is the trigger class's, as a trigger's own logger's was
    name = LoggingMixin._create_logger_name(
        logged_class=PaiModelVersionApprovedTrigger,
        log_config_logger_name=PaiModelVersionApprovedTrigger._log_config_logger_name,
        class_logger_name=PaiModelVersionApprovedTrigger._logger_name,
    )
    assert name.endswith("triggers.pai.PaiModelVersionApprovedTrigger")


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
