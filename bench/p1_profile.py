"""Where P1's client CPU goes: one listing of 10,000 versions, split into GC, validation, paging plan and the rest.

    python -m bench.p1_profile [runs]

Against the emulator at P1's 20 ms latency, per vendor, for the sync (threads) and async listing: the client
process's CPU (``time.process_time``, median of ``runs``) with the garbage collector on and with it disabled for the
listing (their difference is the collector's share); then, on the same answers captured once, pydantic validation
of every page (``model_validate_json``, collector off), ``json.loads`` of every page for comparison (not on the
path: validation parses the bytes itself) and the :class:`~airflow_provider_modelreg.paging.PagePlan` checks and
merge. "HTTP and the rest" is what remains of the collector-off CPU: signing, httpx/httpcore/h11, the thread pool
or event loop. It also counts the collections of each generation and the GC-tracked objects each version leaves.
Diagnostics only: ``make bench`` does not run it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.common import bench_seed, emulator_process, fabric_connection, pai_connection
from bench.p1_paging import LATENCY_MS, PAGE


def _cpu(run: Callable[[], Any], runs: int, *, collect: bool) -> tuple[float, float, list[int]]:
    """Median CPU (ms), best wall time (ms) and the collections per generation of the last run."""
    cpus, walls, counts = [], [], [0, 0, 0]

    def count(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            counts[info["generation"]] += 1

    for _ in range(runs):
        gc.collect()
        counts[:] = [0, 0, 0]
        gc.callbacks.append(count)
        if not collect:
            gc.disable()
        try:
            wall, cpu = time.perf_counter(), time.process_time()
            result = run()
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        finally:
            gc.enable()
            gc.callbacks.remove(count)
        del result
    return statistics.median(cpus) * 1000, min(walls) * 1000, list(counts)


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def _vendor(
    vendor: str,
    sync: Callable[[], Any],
    make_async: Callable[[], Any],
    page_model: Any,
    answer: Callable[[Any], Any],
    loop: asyncio.AbstractEventLoop,
    runs: int,
) -> dict[str, Any]:
    """The figures of one vendor's listing (see the module's docstring)."""
    from airflow_provider_modelreg.paging import PagePlan
    from airflow_provider_modelreg.transport import RegistryTransport

    bodies: list[bytes] = []
    request = RegistryTransport.request

    def capture(self: RegistryTransport, *args: Any, __request: Any = request, **kwargs: Any) -> Any:
        response = __request(self, *args, **kwargs)
        bodies.append(response.content)
        return response

    RegistryTransport.request = capture  # type: ignore[method-assign]
    try:
        sync()
    finally:
        RegistryTransport.request = request  # type: ignore[method-assign]
    loop.run_until_complete(make_async())  # warm the async client
    row: dict[str, Any] = {"pages": len(bodies)}
    for mode, run in (("sync", sync), ("async", lambda: loop.run_until_complete(make_async()))):
        on, wall_on, collections = _cpu(run, runs, collect=True)
        off, wall_off, _ = _cpu(run, runs, collect=False)
        row[mode] = {
            "cpu_ms": on,
            "wall_ms": wall_on,
            "cpu_gc_off_ms": off,
            "wall_gc_off_ms": wall_off,
            "gc_ms": on - off,
            "collections_per_generation": collections,
        }
    gc.collect()
    gc.disable()
    try:
        row["validate_ms"] = _median_ms(lambda: [page_model.model_validate_json(b) for b in bodies], runs)
        row["json_loads_ms"] = _median_ms(lambda: [json.loads(b) for b in bodies], runs)
        answers = [answer(page_model.model_validate_json(b)) for b in bodies]
        key = (lambda v: v.version_name) if vendor == "pai" else (lambda v: v.id)

        def plan_all() -> None:
            plan: PagePlan[Any] = PagePlan(page_size=PAGE, key=key)
            while not plan.done:
                for index in plan.next_pages():
                    plan.receive(index, *answers[index])

        row["paging_plan_ms"] = _median_ms(plan_all, runs)
        before = len(gc.get_objects())
        kept = [page_model.model_validate_json(b) for b in bodies]
        row["tracked_objects_per_version"] = (len(gc.get_objects()) - before) / sum(
            len(answer(page)[0]) for page in kept
        )
        del kept
    finally:
        gc.enable()
    for mode in ("sync", "async"):
        m = row[mode]
        m["http_and_rest_ms"] = m["cpu_gc_off_ms"] - row["validate_ms"] - row["paging_plan_ms"]
        m["shares"] = {
            name: round(value / m["cpu_ms"], 2)
            for name, value in (
                ("gc", m["gc_ms"]),
                ("validation", row["validate_ms"]),
                ("paging_plan", row["paging_plan_ms"]),
                ("http_and_rest", m["http_and_rest_ms"]),
            )
        }
    return row


def profile(runs: int = 5) -> dict[str, Any]:
    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
    from airflow_provider_modelreg.models import FabricModelVersionPage, PaiModelVersionPage

    out: dict[str, Any] = {"runs": runs, "heap_objects": len(gc.get_objects())}
    with emulator_process(bench_seed(), "--latency-ms", str(LATENCY_MS)) as url:
        os.environ["AIRFLOW_CONN_BENCH_FABRIC"] = fabric_connection(url)
        os.environ["AIRFLOW_CONN_BENCH_PAI"] = pai_connection(url)
        pai, fabric = PaiModelRegistryHook("bench_pai"), FabricModelRegistryHook("bench_fabric")
        vendors: list[tuple[str, Callable[[], Any], Callable[[], Any], Any, Callable[[Any], Any]]] = [
            (
                "pai",
                lambda: pai.list_model_versions("m-bench"),
                lambda: pai.alist_model_versions("m-bench"),
                PaiModelVersionPage,
                lambda page: (page.versions, page.total_count),
            ),
            (
                "fabric",
                lambda: fabric.list_model_versions("fm-bench", workspace_id="ws-bench"),
                lambda: fabric.alist_model_versions("fm-bench", workspace_id="ws-bench"),
                FabricModelVersionPage,
                lambda page: (page.versions, page.total),
            ),
        ]
        loop = asyncio.new_event_loop()
        for vendor, sync, make_async, page_model, answer in vendors:
            out[vendor] = _vendor(vendor, sync, make_async, page_model, answer, loop, runs)
        loop.close()
    return out


if __name__ == "__main__":
    print(json.dumps(profile(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=1))
