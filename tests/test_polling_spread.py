"""Shared-read waits spread their wake-ups across the interval (issue 25): the second poll comes after a random
share of the interval and takes no answer older than that delay; every poll after it is one interval apart."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

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
