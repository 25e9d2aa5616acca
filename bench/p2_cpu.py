"""P2: client CPU per PAI GetModelVersion (sign + send + validate into the typed model), ours vs the official SDK.

Same emulator process, the two interleaved, median of the runs; CPU is this process's ``time.process_time``.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench.common import PAI_KEY, PAI_SECRET, bench_seed, emulator_process, pai_connection

CALLS = 400


def measure(runs: int = 7) -> dict[str, Any]:
    from alibabacloud_aiworkspace20210204 import models as sdk_models
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_tea_openapi.models import Config

    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    with emulator_process(bench_seed(pai_versions=0, fabric_versions=0)) as url:
        os.environ["AIRFLOW_CONN_BENCH_PAI"] = pai_connection(url)
        hook = PaiModelRegistryHook("bench_pai")
        sdk = Client(
            Config(access_key_id=PAI_KEY, access_key_secret=PAI_SECRET, endpoint=url.split("://")[1], protocol="http")
        )

        def ours() -> None:
            assert hook.get_model_version("m-bench", "target").uri == "oss://b/k/"

        def theirs() -> None:
            request = sdk_models.GetModelVersionRequest()
            assert sdk.get_model_version("m-bench", "target", request).body.uri == "oss://b/k/"

        for fn in (ours, theirs):  # warm up: connections, lazy schema builds, imports
            for _ in range(20):
                fn()
        ours_cpu, sdk_cpu = [], []
        for _ in range(runs):
            for fn, sink in ((ours, ours_cpu), (theirs, sdk_cpu)):
                start = time.process_time()
                for _ in range(CALLS):
                    fn()
                sink.append((time.process_time() - start) / CALLS * 1000)
    ours_ms, sdk_ms = statistics.median(ours_cpu), statistics.median(sdk_cpu)
    return {
        "ours_ms": ours_ms,
        "sdk_ms": sdk_ms,
        "ratio": ours_ms / sdk_ms,
        "runs": runs,
        "calls": CALLS,
        "ours_all": ours_cpu,
        "sdk_all": sdk_cpu,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2))
