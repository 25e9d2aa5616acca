"""P3: 1,000 approval triggers at once in one event loop (as the triggerer runs them), vs the HTTP provider's
``HttpSensorTrigger`` x1000 polling a 404 endpoint of the same emulator, same poll interval.

CPU: this process's CPU time over a steady window, divided by the poll rounds completed in it; the round time and
the event loop's lag over that window (how late a 10 ms ``asyncio.sleep`` monitor wakes: p99 and max) for both.
Memory: traced Python allocations per trigger in steady state (tracemalloc, a separate pass so its overhead does not
skew CPU).
"""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.common import LoopLag, bench_seed, emulator_process, pai_connection
from bench.sampling import measured_window

N = 1000
INTERVAL = 2.0
WINDOW_ROUNDS = 4


def ours_factory(n_models: int) -> Callable[[int], Any]:
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

    def make(i: int) -> Any:
        model = "m-bench" if i % n_models == 0 else f"m-bench-{i % n_models}"
        return PaiModelVersionApprovedTrigger(
            pai_conn_id="bench_pai", model_id=model, version_name="target", poke_interval=INTERVAL
        )

    return make


_POLLS = {"ours": 0, "anchor": 0}


def _count_our_polls() -> None:
    from airflow_provider_modelreg.triggers import pai as triggers_pai

    original = triggers_pai.PaiPollHub.check

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        _POLLS["ours"] += 1
        return await original(self, *args, **kwargs)

    triggers_pai.PaiPollHub.check = counting  # type: ignore[method-assign]


def _count_anchor_polls() -> None:
    from airflow.providers.http.hooks.http import HttpAsyncHook

    original = HttpAsyncHook.run

    async def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        _POLLS["anchor"] += 1
        return await original(self, *args, **kwargs)

    HttpAsyncHook.run = counting  # type: ignore[method-assign]


def anchor_make(i: int) -> Any:
    from airflow.providers.http.triggers.http import HttpSensorTrigger

    return HttpSensorTrigger(endpoint="/no-such-endpoint", http_conn_id="bench_http", poke_interval=INTERVAL)


async def _run(make: Callable[[int], Any], key: str, *, memory: bool) -> dict[str, Any]:
    triggers = [make(i) for i in range(N)]
    lag = LoopLag()
    if not memory:  # its samples would count as the triggers' memory
        lag.start()
    if memory:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
    tasks = [asyncio.ensure_future(anext(t.run())) for t in triggers]
    await asyncio.sleep(INTERVAL * 1.5)  # every trigger has polled at least once; connections are open
    result: dict[str, Any] = {}
    if memory:
        result["bytes_per_trigger"] = (tracemalloc.get_traced_memory()[0] - base) / N
        tracemalloc.stop()
    else:
        window = await measured_window(lag, lambda: _POLLS[key], N, INTERVAL * WINDOW_ROUNDS, WINDOW_ROUNDS)
        cpu_ms = window.pop("cpu_s_per_round") * 1000
        result.update(window, cpu_ms_per_round=cpu_ms, cpu_ms_per_poll=cpu_ms / N)
    await lag.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0.2)
    return result


def scenario(n_models: int) -> dict[str, Any]:
    seed = bench_seed(pai_models=n_models, pai_versions=0, fabric_versions=0)
    with emulator_process(seed) as url:
        os.environ["AIRFLOW_CONN_BENCH_PAI"] = pai_connection(url)
        os.environ["AIRFLOW_CONN_BENCH_HTTP"] = url
        make = ours_factory(n_models)
        out = {
            "ours": {**asyncio.run(_run(make, "ours", memory=False)), **asyncio.run(_run(make, "ours", memory=True))},
            "anchor": {
                **asyncio.run(_run(anchor_make, "anchor", memory=False)),
                **asyncio.run(_run(anchor_make, "anchor", memory=True)),
            },
        }
    out["cpu_ratio"] = out["ours"]["cpu_ms_per_round"] / out["anchor"]["cpu_ms_per_round"]
    out["memory_ratio"] = out["ours"]["bytes_per_trigger"] / out["anchor"]["bytes_per_trigger"]
    out["models"] = n_models
    return out


def measure() -> dict[str, Any]:
    _count_our_polls()
    _count_anchor_polls()
    return {"interval_s": INTERVAL, "triggers": N, "spread": scenario(20), "worst": scenario(N)}


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
