"""P1: all 10,000 versions of one model at 20 ms emulator latency, ours vs the official SDK paging sequentially."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from bench.common import (
    FABRIC_AK,
    FABRIC_PROJECT,
    FABRIC_SK,
    PAI_KEY,
    PAI_SECRET,
    bench_seed,
    emulator_process,
    fabric_connection,
    pai_connection,
)

LATENCY_MS = 20
PAGE = 100
CONCURRENCY = 8


def sdk_fabric(url: str) -> int:
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkdataartsfabric.v1 import DataArtsFabricClient, ListModelVersionsRequest

    client = (
        DataArtsFabricClient.new_builder()
        .with_credentials(BasicCredentials(FABRIC_AK, FABRIC_SK, FABRIC_PROJECT))
        .with_endpoint(url)
        .build()
    )
    seen, offset, total = 0, 0, None
    while total is None or offset < total:
        page = client.list_model_versions(
            ListModelVersionsRequest(workspace_id="ws-bench", model_id="fm-bench", offset=offset, limit=PAGE)
        )
        total = page.total
        seen += len(page.versions)
        offset += PAGE
    return seen


def sdk_pai(url: str) -> int:
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_aiworkspace20210204.models import ListModelVersionsRequest
    from alibabacloud_tea_openapi.models import Config

    host = url.split("://", 1)[1]
    client = Client(Config(access_key_id=PAI_KEY, access_key_secret=PAI_SECRET, endpoint=host, protocol="http"))
    seen, page_number, total = 0, 1, None
    while total is None or seen < total:
        body = client.list_model_versions(
            "m-bench", ListModelVersionsRequest(page_number=page_number, page_size=PAGE, order="DESC")
        ).body
        total = body.total_count
        seen += len(body.versions)
        page_number += 1
    return seen


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure(runs: int = 3) -> dict[str, Any]:
    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    out: dict[str, Any] = {"latency_ms": LATENCY_MS, "page": PAGE, "concurrency": CONCURRENCY, "runs": runs}
    with emulator_process(bench_seed(), "--latency-ms", str(LATENCY_MS)) as url:
        os.environ["AIRFLOW_CONN_BENCH_FABRIC"] = fabric_connection(url)
        os.environ["AIRFLOW_CONN_BENCH_PAI"] = pai_connection(url)
        for vendor, ours, sdk in (
            (
                "fabric",
                lambda: len(
                    FabricModelRegistryHook("bench_fabric").list_model_versions("fm-bench", workspace_id="ws-bench")
                ),
                lambda: sdk_fabric(url),
            ),
            (
                "pai",
                lambda: len(PaiModelRegistryHook("bench_pai").list_model_versions("m-bench")),
                lambda: sdk_pai(url),
            ),
        ):
            ours_t, sdk_t = [], []
            for _ in range(runs):
                t, n = timed(ours)
                assert n >= 10_000, n
                ours_t.append(t)
                t, n = timed(sdk)
                assert n >= 10_000, n
                sdk_t.append(t)
            pages = math.ceil(10_001 / PAGE)
            floor = math.ceil(pages / CONCURRENCY) * LATENCY_MS / 1000
            out[vendor] = {
                "ours_s": min(ours_t),
                "sdk_s": min(sdk_t),
                "speedup": min(sdk_t) / min(ours_t),
                "floor_s": floor,
                "vs_floor": min(ours_t) / floor,
            }
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
