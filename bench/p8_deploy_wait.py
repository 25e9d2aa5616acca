"""P8: triggerer CPU per poll of one EAS deploy wait, next to one approval wait's (issue 22).

One emulator process with a running EAS service and a PAI model whose version is Pending. In one event loop, each
wait polls as its trigger does: the deploy wait reads DescribeService through :class:`EasPollHub` and judges it with
:class:`RolloutWatch`; the approval wait runs one :class:`ApprovalCheck` of a named version through
:class:`PaiPollHub` (the poll a gate makes while it waits). Every read is fresh (``max_age`` 0: one request a poll,
as a lone wait makes), the two interleaved, median of the runs; CPU is this process's ``time.process_time``, the
emulator's excluded.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

from bench.common import PAI_KEY, PAI_SECRET, bench_seed, emulator_process

POLLS = 300
SERVICE = "bench_deploy_wait"


def measure(runs: int = 7) -> dict[str, Any]:
    from airflow_provider_modelreg.approval import ApprovalTarget
    from airflow_provider_modelreg.eas_deploy import RolloutWatch
    from airflow_provider_modelreg.hooks.eas import PaiEasHook
    from airflow_provider_modelreg.triggers.eas import DescribeService, EasPollHub
    from airflow_provider_modelreg.triggers.hub import PaiPollHub

    with emulator_process(bench_seed(pai_versions=0, fabric_versions=0)) as url:
        extra = {"endpoint": url, "eas_endpoint": url, "region": "cn-hangzhou"}
        os.environ["AIRFLOW_CONN_BENCH_PAI"] = json.dumps(
            {"conn_type": "pai", "login": PAI_KEY, "password": PAI_SECRET, "extra": extra}
        )
        hook = PaiEasHook("bench_pai")
        hook.create_service({"name": SERVICE, "metadata": {"instance": 1}, "processor": "pmml"})
        deadline = time.monotonic() + 30
        while hook.describe_service(SERVICE).status != "Running":
            if time.monotonic() > deadline:
                raise RuntimeError("the bench service never ran")
            time.sleep(0.2)
        hook.close()

        async def measured() -> tuple[list[float], list[float]]:
            eas = EasPollHub.acquire("bench_pai", 1.0)
            pai = PaiPollHub.acquire("bench_pai", 1.0)
            target = ApprovalTarget(model_id="m-bench", version_name="target")
            watch = RolloutWatch(None, 1800.0)

            async def deploy_poll() -> None:
                found = await eas.read(DescribeService(SERVICE), 0.0)
                verdict, _ = watch.observe(found, time.time())
                assert verdict.state == "done"

            async def approval_poll() -> None:
                check = await pai.check(target, None, 0.0)
                assert check.decision is not None and check.decision.outcome.value == "waiting"

            try:
                for poll in (deploy_poll, approval_poll):  # warm up: clients, connections, lazy schema builds
                    for _ in range(20):
                        await poll()
                deploy_cpu: list[float] = []
                approval_cpu: list[float] = []
                for _ in range(runs):
                    for poll, sink in ((deploy_poll, deploy_cpu), (approval_poll, approval_cpu)):
                        start = time.process_time()
                        for _ in range(POLLS):
                            await poll()
                        sink.append((time.process_time() - start) / POLLS * 1000)
                return deploy_cpu, approval_cpu
            finally:
                await eas.release(1.0)
                await pai.release(1.0)

        deploy_cpu, approval_cpu = asyncio.run(measured())
    deploy_ms, approval_ms = statistics.median(deploy_cpu), statistics.median(approval_cpu)
    return {
        "deploy_ms": deploy_ms,
        "approval_ms": approval_ms,
        "ratio": deploy_ms / approval_ms,
        "runs": runs,
        "polls": POLLS,
        "deploy_all": deploy_cpu,
        "approval_all": approval_cpu,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
