"""(i) The canary pipeline on the real services, its deploy waiting in a worker (``e2e_pai_eas_canary_worker``).

1. The deploy task's process is SIGKILLed while it waits for the new service (held ``Waiting`` by the emulator's
   admin ``wait``); its retry reconnects to the create in flight (Airflow's task state store; its log says
   "Reconnecting to existing job"): the emulator's request log shows exactly one CreateService, not two. The
   service is let run, the canary moves the group's traffic 10/50/100 and the version is labelled:
   DescribeService reads 100 on the new service, 0 on the old.
2. An injected failure (admin ``fail``, reason ``OOMKilled``) of the next new service: the deploy fails with that
   reason in its log, and the old service of that group keeps all of its traffic (read back).
"""

from __future__ import annotations

import copy
import json
import os
import signal
from typing import Any

import httpx

from airflow_provider_modelreg.deploy import service_name
from e2e.stack import Api, say, wait_for

DAG_ID = "e2e_pai_eas_canary_worker"
MODEL = "model-e2e-eas"
REGION = "cn-hangzhou"
GROUPS = {"e2e_eas_serving": "e2e_eas", "e2e_eas_serving_b": "e2e_eas_b"}
_ADMIN = {"X-Modelreg-Admin": "1"}


def add_model(seed: dict[str, Any], template: dict[str, Any]) -> None:
    """A model with two Approved versions: 2.0.0 (released in step 1) and 3.0.0 (failed in step 2)."""
    model = copy.deepcopy(template)
    model.update(ModelId=MODEL, ModelName="e2e-eas")
    base = next(v for v in template["Versions"] if v["VersionName"] == "1.1.0")
    model["Versions"] = []
    for name in ("2.0.0", "3.0.0"):
        version = copy.deepcopy(base)
        version.pop("_then", None)
        version.update(VersionName=name, ApprovalStatus="Approved", Uri=f"oss://e2e-models/eas/{name}/")
        model["Versions"].append(version)
    seed["pai"]["models"].append(model)


def _admin(emulator_url: str, service: str, action: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    answer = httpx.put(
        f"{emulator_url}/_emulator/eas/services/{REGION}/{service}/{action}",
        json=body or {},
        headers=_ADMIN,
        trust_env=False,
    )
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def creates(emulator_url: str) -> int:
    """CreateService requests the emulator has served (its request log, through the admin route)."""
    rows = httpx.get(f"{emulator_url}/_emulator/requests", headers=_ADMIN, trust_env=False).json()["requests"]
    return sum(int(r["count"]) for r in rows if r["route"] == "eas.CreateService")


def _serving(emulator_url: str) -> None:
    """The old services, Running in their groups with all the traffic (created through the EAS API)."""
    from airflow_provider_modelreg.hooks.eas import PaiEasHook

    hook = PaiEasHook()
    try:
        for name, group in GROUPS.items():
            config = {"name": name, "model_path": "oss://e2e-models/eas/1.0.0/", "processor": "tensorflow_cpu_2.7"}
            hook.create_service({**config, "metadata": {"instance": 1, "group": group}})
            _admin(emulator_url, name, "advance")
            hook.release_service(name, traffic_state="grouping", weight=100)
    finally:
        hook.close()


def _traffic(name: str) -> tuple[str | None, int | None]:
    """(TrafficState, Weight) as DescribeService reports them."""
    from airflow_provider_modelreg.hooks.eas import PaiEasHook

    hook = PaiEasHook()
    try:
        found = hook.describe_service(name)
    finally:
        hook.close()
    return found.traffic_state, found.weight


def _labels(version: str) -> dict[str, str | None]:
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    hook = PaiModelRegistryHook("pai_default")
    try:
        found = hook.get_model_version(MODEL, version)
    finally:
        hook.close()
    return {label.key: label.value for label in found.labels or ()}


def _ended(api: Api, run_id: str, timeout: float = 240) -> str:
    return wait_for(  # type: ignore[no-any-return]
        lambda: (s := api.run_state(DAG_ID, run_id)) in ("success", "failed") and s, timeout, f"{DAG_ID} {run_id}"
    )


def _log(api: Api, run_id: str, task_id: str, try_number: int) -> str:
    path = f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    return json.dumps(api.get(path, full_content="true"))


def _killed_mid_wait(api: Api, emulator_url: str) -> dict[str, Any]:
    new = service_name(MODEL, "2.0.0")
    before = creates(emulator_url)
    run_id = api.trigger(DAG_ID, {"version_name": "2.0.0", "old_service": "e2e_eas_serving"})
    wait_for(lambda: creates(emulator_url) > before, 180, "the deploy's CreateService", interval=0.1)
    _admin(emulator_url, new, "wait", {"message": "e2e: held for the kill"})  # the deploy keeps waiting
    ti = wait_for(
        lambda: (t := api.task(DAG_ID, run_id, "deploy"))["state"] == "running" and t.get("pid") and t,
        60,
        "the deploy task's pid",
    )
    pid = int(ti["pid"])
    os.kill(pid, signal.SIGKILL)
    say(f"(i) SIGKILLed the deploy task (pid {pid}, try {ti['try_number']}) while {new} waits")
    retry = ti["try_number"] + 1
    wait_for(
        lambda: (t := api.task(DAG_ID, run_id, "deploy"))["try_number"] == retry and t["state"] == "running",
        120,
        "the deploy's retry",
    )
    # the retry reads the create's record from the task state store and goes on waiting for that service
    wait_for(
        lambda: "Reconnecting to existing job" in _log(api, run_id, "deploy", retry),
        60,
        "the retry to reconnect to the create in flight",
    )
    _admin(emulator_url, new, "advance")  # resources found: the service runs
    state = _ended(api, run_id)
    assert state == "success", f"(i) run ended {state}"
    deploy = api.task(DAG_ID, run_id, "deploy")
    assert deploy["try_number"] == retry, deploy
    created = creates(emulator_url) - before
    assert created == 1, f"(i) {created} CreateService requests: the retry created the service again"
    assert "does not exist: creating it" not in _log(api, run_id, "deploy", retry)
    assert _traffic(new) == ("grouping", 100), _traffic(new)
    assert _traffic("e2e_eas_serving") == ("grouping", 0), _traffic("e2e_eas_serving")
    labels = _labels("2.0.0")
    assert labels.get("stage") == "production" and labels.get("deployed-eas") == f"{new}@{REGION}", labels
    say(f"(i) success after the kill: one CreateService, {new} serves 100, e2e_eas_serving 0, labels {labels}")
    return {"run_id": run_id, "killed_pid": pid, "create_service": created}


def _injected_failure(api: Api, emulator_url: str) -> dict[str, Any]:
    new = service_name(MODEL, "3.0.0")
    before = creates(emulator_url)
    run_id = api.trigger(DAG_ID, {"version_name": "3.0.0", "old_service": "e2e_eas_serving_b"})
    wait_for(lambda: creates(emulator_url) > before, 180, "the deploy's CreateService", interval=0.1)
    _admin(emulator_url, new, "fail", {"reason": "OOMKilled", "message": "e2e: the container ran out of memory"})
    state = _ended(api, run_id)
    assert state == "failed", f"(i) run ended {state}"
    deploy = api.task(DAG_ID, run_id, "deploy")
    assert deploy["state"] == "failed", deploy
    log = _log(api, run_id, "deploy", deploy["try_number"])
    assert "OOMKilled" in log and "ran out of memory" in log, log[-3000:]
    assert api.task(DAG_ID, run_id, "canary")["state"] == "upstream_failed"
    assert _traffic("e2e_eas_serving_b") == ("grouping", 100), _traffic("e2e_eas_serving_b")
    assert _traffic(new)[1] in (0, None), _traffic(new)
    assert creates(emulator_url) - before == 1
    say(f"(i) injected failure: deploy failed with OOMKilled; e2e_eas_serving_b keeps all traffic ({new} none)")
    return {"run_id": run_id, "deploy_tries": deploy["try_number"]}


def run(api: Api, emulator_url: str) -> dict[str, Any]:
    say(f"(i) EAS canary: {DAG_ID}, the deploy waiting in a worker that is SIGKILLed; then an injected failure")
    _serving(emulator_url)
    return {"killed": _killed_mid_wait(api, emulator_url), "failed": _injected_failure(api, emulator_url)}
