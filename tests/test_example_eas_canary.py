"""The canary example DAG (approve -> deploy into the serving group -> canary 10/50/100 -> verify -> label) under
``airflow dags test`` against the emulator (issue 22): traffic ends on the new service as DescribeService reports
it, the version carries its labels, one CreateService; a failed verification fails the canary with the reason and
leaves every request on the old service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import SECRETS, demo_seed, example_env
from test_example_dags import dags_test

from airflow_provider_modelreg.deploy import service_name

DAG_ID = "pai_eas_canary"
MODEL = "model-demo-fraud"
REGION = "cn-hangzhou"


@pytest.fixture(scope="module")
def canary_emulator() -> Iterator[Any]:
    from modelreg_emulator import RegistryEmulator
    from modelreg_emulator.eas import EasSettings

    seed = demo_seed()
    for version in seed["pai"]["models"][0]["Versions"]:
        version.pop("_then", None)
    with RegistryEmulator(seed, eas=EasSettings(create_seconds=1.0, update_seconds=1.0)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, canary_emulator: Any, migrated_airflow_db: Path) -> dict[str, str]:
    home = tmp_path_factory.mktemp("canary-home")
    return example_env(home, canary_emulator.url, migrated_airflow_db, eas_endpoint=canary_emulator.url)


def serving(env: dict[str, str], emulator: Any, name: str, group: str) -> None:
    """An old service, Running in ``group`` with all of its traffic (through the EAS API, as a user made it)."""
    from airflow_provider_modelreg.hooks.eas import PaiEasHook

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW_CONN_PAI_DEFAULT", env["AIRFLOW_CONN_PAI_DEFAULT"])
        hook = PaiEasHook()
        try:
            config = {"name": name, "model_path": "oss://demo-models/fraud/old/", "processor": "p"}
            hook.create_service({**config, "metadata": {"instance": 1, "group": group}})
            httpx.put(
                f"{emulator.url}/_emulator/eas/services/{REGION}/{name}/advance",
                json={},
                headers={"X-Modelreg-Admin": "1"},
                trust_env=False,
            ).raise_for_status()
            hook.release_service(name, traffic_state="grouping", weight=100)
        finally:
            hook.close()


def last_run(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The state of the DAG's last run and of each of its tasks, as the metadata DB holds them (every Airflow
    version writes these rows; not every one prints the run's end)."""
    import sqlite3

    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        run_id, state = db.execute(
            "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (DAG_ID,)
        ).fetchone()
        tasks = db.execute(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (DAG_ID, run_id)
        ).fetchall()
    finally:
        db.close()
    return str(state), {str(task): str(task_state) for task, task_state in tasks}


def described(emulator: Any, name: str) -> dict[str, Any]:
    """DescribeService of ``name`` as the emulator answers it."""
    from modelreg_emulator.eas import eas_state

    return eas_state(emulator.store).get(REGION, name).describe()  # type: ignore[no-any-return]


def traffic(emulator: Any, name: str) -> tuple[str, int]:
    found = described(emulator, name)
    return found["TrafficState"], found["Weight"]


def labels(emulator: Any, version: str) -> dict[str, str]:
    found = next(v for v in emulator.store.pai_versions(MODEL) if v["VersionName"] == version)
    return {label["Key"]: label["Value"] for label in found.get("Labels") or []}


def test_the_canary_moves_all_traffic_to_the_new_service_and_labels_the_version(
    env: dict[str, str], canary_emulator: Any
) -> None:
    serving(env, canary_emulator, "fraud_serving", "fraud")
    canary_emulator.store.set_approval(MODEL, "1.1.0", "Approved")
    creates = canary_emulator.request_log.count("eas.CreateService")
    releases = canary_emulator.request_log.count("eas.ReleaseService")
    out = dags_test(env, DAG_ID, {"version_name": "1.1.0", "old_service": "fraud_serving"})
    state, tasks = last_run(env)
    assert state == "success" and set(tasks.values()) == {"success"}, (tasks, out[-4000:])
    assert set(tasks) == {"wait_for_approval", "serving_group", "deploy", "canary", "label"}
    new = service_name(MODEL, "1.1.0")
    assert canary_emulator.request_log.count("eas.CreateService") == creates + 1  # the new service, once
    assert canary_emulator.request_log.count("eas.ReleaseService") == releases + 6  # three steps, two services each
    assert described(canary_emulator, new)["ServiceGroup"] == "fraud"
    assert described(canary_emulator, new)["Status"] == "Running"
    assert traffic(canary_emulator, new) == ("grouping", 100)
    assert traffic(canary_emulator, "fraud_serving") == ("grouping", 0)
    got = labels(canary_emulator, "1.1.0")
    assert got["stage"] == "production" and got["deployed-eas"] == f"{new}@{REGION}", got
    for step in (10, 50, 100):
        assert f"verify: step {step}%: {new} Running, 1/1 instances, weight {step}" in out, out[-4000:]
    assert not any(secret in out for secret in SECRETS)


def test_a_failed_verification_fails_the_canary_and_the_old_service_keeps_all_traffic(
    env: dict[str, str], canary_emulator: Any
) -> None:
    serving(env, canary_emulator, "fraud_b_serving", "fraud_b")
    canary_emulator.store.set_approval(MODEL, "1.0.0", "Approved")
    creates = canary_emulator.request_log.count("eas.CreateService")
    conf = {"version_name": "1.0.0", "old_service": "fraud_b_serving", "fail_verify_at": 50}
    out = dags_test(env, DAG_ID, conf)
    state, tasks = last_run(env)
    assert state == "failed", (tasks, out[-4000:])
    assert tasks["deploy"] == "success" and tasks["canary"] == "failed" and tasks["label"] == "upstream_failed", tasks
    new = service_name(MODEL, "1.0.0")
    assert canary_emulator.request_log.count("eas.CreateService") == creates + 1
    assert "step 50% fails on purpose" in out and "verify returned False" in out, out[-4000:]
    assert "EasCanaryRejectedError" in out, out[-4000:]  # judged bad, traffic back: failed without retries
    assert traffic(canary_emulator, "fraud_b_serving") == ("grouping", 100)  # read back: all traffic on the old one
    assert described(canary_emulator, new)["Weight"] == 0
    got = labels(canary_emulator, "1.0.0")
    assert got["deployed-eas"] == f"{new}@{REGION}" and "stage" not in got, got  # deployed, never promoted
