"""Shared bench helpers: an emulator process started through its CLI (its CPU is not the client's)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PAI_KEY, PAI_SECRET = "LTAIbenchKey0001", "bench-secret-pai"
FABRIC_AK, FABRIC_SK, FABRIC_PROJECT = "BENCHFABRICAK001", "bench-secret-fabric", "bench-project-1"


def bench_seed(*, pai_models: int = 1, pai_versions: int = 10_000, fabric_versions: int = 10_000) -> dict[str, Any]:
    models = [
        {
            "ModelId": "m-bench" if i == 0 else f"m-bench-{i}",
            "ModelName": f"bench-{i}",
            "WorkspaceId": "ws-bench",
            "Versions": [
                {
                    "VersionName": "target",
                    "ApprovalStatus": "Pending",
                    "Uri": "oss://b/k/",
                    "GmtCreateTime": "2020-01-01T00:00:00Z",
                }
            ],
            "generate_versions": pai_versions if i == 0 else 0,
        }
        for i in range(pai_models)
    ]
    return {
        "pai": {"credentials": [{"access_key_id": PAI_KEY, "access_key_secret": PAI_SECRET}], "models": models},
        "fabric": {
            "credentials": [{"ak": FABRIC_AK, "sk": FABRIC_SK, "project_id": FABRIC_PROJECT}],
            "users": [],
            "workspaces": [
                {
                    "id": "ws-bench",
                    "models": [
                        {"id": "fm-bench", "name": "bench", "versions": [], "generate_versions": fabric_versions}
                    ],
                }
            ],
        },
    }


@contextmanager
def emulator_process(seed: dict[str, Any], *flags: str) -> Iterator[str]:
    """Start ``python -m modelreg_emulator`` and yield its URL."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(seed, handle)
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg_emulator", "--port", "0", "--seed", handle.name, *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        prefix = "modelreg-emulator listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"emulator did not start: {line!r}")
        yield line[len(prefix) :]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        Path(handle.name).unlink(missing_ok=True)


def pai_connection(url: str) -> str:
    return json.dumps(
        {
            "conn_type": "pai",
            "login": PAI_KEY,
            "password": PAI_SECRET,
            "extra": {"endpoint": url, "region": "cn-hangzhou"},
        }
    )


def fabric_connection(url: str) -> str:
    return json.dumps(
        {
            "conn_type": "huaweicloud_fabric",
            "login": FABRIC_AK,
            "password": FABRIC_SK,
            "extra": {"endpoint": url, "project_id": FABRIC_PROJECT, "workspace_id": "ws-bench"},
        }
    )


class LoopLag:
    """The event loop's lag: how late a 10 ms ``asyncio.sleep`` wakes, sampled continuously (what Airflow's
    triggerer watches: it warns when one pass of its loop takes longer than 0.2 s). :meth:`reset` starts the measured
    window; :meth:`figures` gives its p99 and max overshoot (seconds) and the sample count, and the garbage
    collector's longest pause in the window (a full collection of a large heap stops the loop as long)."""

    TICK = 0.01

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.gc_pauses: list[tuple[int, float]] = []
        self._gc_started = 0.0
        self._task: Any = None

    async def _monitor(self) -> None:
        import asyncio
        import time

        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.TICK)
            self.samples.append(max(0.0, time.perf_counter() - started - self.TICK))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        import time

        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_started))

    def start(self) -> None:
        import asyncio
        import gc

        gc.callbacks.append(self._on_gc)
        self._task = asyncio.ensure_future(self._monitor())

    def reset(self) -> None:
        self.samples = []
        self.gc_pauses = []

    async def stop(self) -> None:
        import asyncio
        import gc

        if self._on_gc in gc.callbacks:
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.samples) or [0.0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        full = [pause for generation, pause in self.gc_pauses if generation == 2]
        return {
            "loop_lag_s": ordered[-1],
            "loop_lag_p99_s": p99,
            "loop_lag_samples": float(len(self.samples)),
            "gc_pause_max_s": max((pause for _, pause in self.gc_pauses), default=0.0),
            "gc_full_collections": float(len(full)),
        }
