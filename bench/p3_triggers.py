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
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from bench.common import LoopLag, bench_seed, emulator_process, pai_connection
from bench.sampling import Sampler

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
        # py-spy attaches (blocking this thread a moment) and the loop catches up before the window opens; every
        # figure is read before it detaches, so neither shows in the window
        with Sampler() as sampler:
            await asyncio.sleep(1.0)
            lag.reset()
            polls0, cpu0, wall0 = _POLLS[key], time.process_time(), time.perf_counter()
            await asyncio.sleep(INTERVAL * WINDOW_ROUNDS)
            rounds = (_POLLS[key] - polls0) / N
            result["cpu_ms_per_round"] = (time.process_time() - cpu0) * 1000 / max(rounds, 1e-9)
            result["rounds"] = rounds
            result["round_s"] = (time.perf_counter() - wall0) / max(rounds, 1e-9)
            result["cpu_ms_per_poll"] = result["cpu_ms_per_round"] / N
            result["rounds_kept_up"] = float(rounds >= WINDOW_ROUNDS * 0.95)
            result.update(lag.figures())
        result["shares"] = sampler.shares()
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
