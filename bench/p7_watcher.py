"""P7: the asset watcher's cost per poll and state size, for models with 100, 10,000 and 100,000 Approved versions.

The watcher's own poll (``triggers.pai.observe`` and ``watch.apply_observation``, what ``run()`` and the shared
stream do every interval) against the emulator; requests counted from the emulator's request log. The anchor is
the design before issue 19, which read every Approved page each poll: ceil(Approved / 100) requests, and a
permanent error past 100 pages (10,000 Approved versions); its state listed every Approved name.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx

from bench.common import PAI_KEY, PAI_SECRET, emulator_process, pai_connection

SIZES = (100, 10_000, 100_000)
PENDING = 2
STEADY_POLLS = 5
T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)


def seed() -> dict[str, Any]:
    models = []
    for size in SIZES:
        versions = [
            {
                "VersionName": f"1.{i // 1000}.{i % 1000}",
                "ApprovalStatus": "Approved",
                "Uri": f"oss://bench/m{size}/{i}/",
                "GmtCreateTime": (T0 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
            for i in range(size)
        ]
        versions += [
            {
                "VersionName": f"2.0.{i}",
                "ApprovalStatus": "Pending",
                "Uri": f"oss://bench/m{size}/p{i}/",
                "GmtCreateTime": (T0 + timedelta(seconds=size + i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
            for i in range(PENDING)
        ]
        models.append(
            {"ModelId": f"m-watch-{size}", "ModelName": f"w{size}", "WorkspaceId": "ws-bench", "Versions": versions}
        )
    return {
        "pai": {"credentials": [{"access_key_id": PAI_KEY, "access_key_secret": PAI_SECRET}], "models": models},
        "fabric": {"credentials": [], "users": [], "workspaces": []},
    }


def served(url: str) -> int:
    answer = httpx.get(f"{url}/_emulator/requests", headers={"X-Modelreg-Admin": "1"}, timeout=30)
    answer.raise_for_status()
    return sum(int(r["count"]) for r in answer.json()["requests"])


def approve(url: str, model: str, version: str) -> None:
    answer = httpx.put(
        f"{url}/_emulator/pai/models/{model}/versions/{version}/status",
        headers={"X-Modelreg-Admin": "1"},
        json={"status": "Approved"},
        timeout=30,
    )
    answer.raise_for_status()


async def one_model(url: str, size: int) -> dict[str, Any]:
    from airflow_provider_modelreg.triggers.pai import PaiPollHub, observe
    from airflow_provider_modelreg.watch import WatchIdentity, apply_observation

    model = f"m-watch-{size}"
    identity = WatchIdentity("bench_pai", url, model)
    hub = PaiPollHub.acquire("bench_pai", 0.001)
    try:
        before = served(url)
        obs = await observe(hub, model, [None], 0)  # first start: the model as it stands
        cursor = apply_observation(None, obs).cursor
        first = served(url) - before
        steady = []
        for _ in range(STEADY_POLLS):
            before = served(url)
            result = apply_observation(cursor, await observe(hub, model, [cursor], 0))
            assert result.announce == (), result.announce
            cursor = result.cursor
            steady.append(served(url) - before)
        approve(url, model, "2.0.0")
        before = served(url)
        result = apply_observation(cursor, await observe(hub, model, [cursor], 0))
        decision = served(url) - before
        assert [v.version_name for v in result.announce] == ["2.0.0"], result.announce
        cursor = result.cursor
        state_bytes = len(json.dumps(cursor.to_json(identity)))
    finally:
        await hub.release(0.001)
    old_pages = math.ceil(size / 100)
    return {
        "approved": size,
        "first_poll_requests": first,
        "steady_requests_per_poll": max(steady),
        "approval_poll_requests": decision,
        "state_bytes": state_bytes,
        "anchor_requests_per_poll": old_pages,
        "anchor_fails": old_pages > 100,
        "anchor_state_bytes": len(json.dumps({"v": 2, "known": [f"1.{i // 1000}.{i % 1000}" for i in range(size)]})),
    }


def measure() -> dict[str, Any]:
    out: dict[str, Any] = {"steady_polls": STEADY_POLLS, "pending": PENDING, "models": []}
    with emulator_process(seed()) as url:
        os.environ["AIRFLOW_CONN_BENCH_PAI"] = pai_connection(url)
        for size in SIZES:
            out["models"].append(asyncio.run(one_model(url, size)))
    out["met"] = all(m["state_bytes"] <= 16 * 1024 and m["steady_requests_per_poll"] <= 3 for m in out["models"])
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
