"""The one-operator-per-task example DAGs the how-to pages include (dags_examples/pai_registry_operations.py,
dags_examples/fabric_registry_operations.py) under ``airflow dags test`` against the emulator: every task
succeeds, and the registry and the services end as the tasks said (what the emulator holds, not our client's view)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import demo_seed, example_env
from test_example_dags import dags_test, wait_until

PAI_DAG = "pai_registry_operations"
FABRIC_DAG = "fabric_registry_operations"
MODEL = "model-demo-fraud"
SERVICE = "fraud_operations"
WORKSPACE = "ws-demo"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from modelreg_emulator import RegistryEmulator
    from modelreg_emulator.eas import EasSettings
    from modelreg_emulator.fabric_ep import FabricEpSettings

    seed = demo_seed()
    for version in seed["pai"]["models"][0]["Versions"]:
        version.pop("_then", None)
    with RegistryEmulator(
        seed,
        eas=EasSettings(create_seconds=1.0, update_seconds=1.0, delete_seconds=1.0),
        fabric_ep=FabricEpSettings(deploy_seconds=1.0, update_seconds=1.0),
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, emulator: Any, migrated_airflow_db: Path) -> dict[str, str]:
    environ = example_env(
        tmp_path_factory.mktemp("ops-home"), emulator.url, migrated_airflow_db, eas_endpoint=emulator.url
    )
    conn = json.loads(environ["AIRFLOW_CONN_FABRIC_DEFAULT"])
    conn["extra"]["region"] = "cn-north-4"
    environ["AIRFLOW_CONN_FABRIC_DEFAULT"] = json.dumps(conn)
    return environ


def task_states(env: dict[str, str], dag_id: str) -> dict[str, str]:
    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    try:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return dict(rows.fetchall())
    finally:
        db.close()


def test_pai_registry_operations(env: dict[str, str], emulator: Any) -> None:
    from modelreg_emulator.eas import eas_state

    output = dags_test(env, PAI_DAG)
    states = task_states(env, PAI_DAG)
    assert states == dict.fromkeys(
        [
            "get_model",
            "get_version",
            "list_models",
            "list_versions",
            "approve",
            "deploy",
            "resize",
            "rollback",
            "cleanup",
            "delete",
        ],
        "success",
    ), output[-4000:]
    approved = next(v for v in emulator.store.pai_versions(MODEL) if v["VersionName"] == "1.1.0")
    assert approved["ApprovalStatus"] == "Approved"
    log = emulator.request_log
    assert log.count("eas.CreateService") == 1 and log.count("eas.UpdateService") == 1
    assert log.count("eas.UpdateServiceVersion") == 1 and log.count("eas.DeleteService") == 1
    with emulator.store.lock:
        assert SERVICE not in {s.name for s in eas_state(emulator.store).all()}


def test_fabric_registry_operations(env: dict[str, str], emulator: Any) -> None:
    from modelreg_emulator.fabric_ep import fabric_ep_state

    output = dags_test(env, FABRIC_DAG)
    states = task_states(env, FABRIC_DAG)
    assert states == dict.fromkeys(["wait_for_version", "get_version", "list_models", "deploy", "delete"], "success"), (
        output[-4000:]
    )
    assert emulator.request_log.count("fabric_ep.DeleteServiceInstance") == 1

    def gone() -> bool:  # DELETING, then gone after the emulator's delete_seconds
        with emulator.store.lock:
            return not fabric_ep_state(emulator.store).all(WORKSPACE)

    wait_until(gone, "the instance to be gone", deadline=30)
