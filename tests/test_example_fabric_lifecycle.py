"""The Fabric lifecycle example DAG (train -> register -> promote to current -> deploy to EP) under ``airflow dags
test`` against the emulator (issue 23): afterwards the emulator holds the new version, it is the model's current
version and the EP instance is RUNNING with it; a second run's version is swapped onto the same instance. And the
file's asset watcher (``FabricVersionEventTrigger``, as the DAG file configures it) announces a version registered
in the emulator once, which the announcing DAG's task reads from its triggering events."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import SECRETS, demo_seed, example_env
from test_example_dags import (
    ASSET_WATCHERS,
    LINKS_AS_XCOM,
    _airflow_masking_request,
    dags_test,
    error_lines,
    stored_links,
)

DAG_ID = "fabric_register_promote_deploy"
WORKSPACE = "ws-demo"
MODEL = "fabric-model-demo"
ENDPOINT = "ep-demo"
REGION = "cn-north-4"
V1 = "0f9e6c1a-0000-4000-8000-000000000001"  # the demo model's first version, pinned as its current version
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fabric_emulator() -> Iterator[Any]:
    from modelreg_emulator import RegistryEmulator
    from modelreg_emulator.fabric_ep import FabricEpSettings

    settings = FabricEpSettings(deploy_seconds=1.0, update_seconds=1.0)
    with RegistryEmulator(demo_seed(), fabric_ep=settings, version_delay=1.0) as emulator:
        # the current version pinned to the oldest (as an UpdateModelDefinition would): otherwise the emulator's
        # current is the newest, and the promotion of a new version would be no move at all
        with emulator.store.lock:
            emulator.store.workspaces[WORKSPACE][MODEL].meta["current_version_id"] = V1
        yield emulator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, fabric_emulator: Any, migrated_airflow_db: Path) -> dict[str, str]:
    environ = example_env(tmp_path_factory.mktemp("fabric-home"), fabric_emulator.url, migrated_airflow_db)
    conn = json.loads(environ["AIRFLOW_CONN_FABRIC_DEFAULT"])
    conn["extra"]["region"] = REGION  # the emulator's URL names no region: the links and lineage need one
    environ["AIRFLOW_CONN_FABRIC_DEFAULT"] = json.dumps(conn)
    return environ


def versions(emulator: Any) -> dict[str, dict[str, Any]]:
    """The model's versions as the emulator holds them, by id (the registry's truth, not our client's view)."""
    return {v["id"]: v for v in emulator.store.fabric_versions(WORKSPACE, MODEL)}


def current(emulator: Any) -> str | None:
    with emulator.store.lock:
        return emulator.store.workspaces[WORKSPACE][MODEL].meta.get("current_version_id")  # type: ignore[no-any-return]


def instances(emulator: Any) -> list[dict[str, Any]]:
    """ShowServiceInstanceDetail of every EP instance of the workspace, as the emulator answers it."""
    from modelreg_emulator.fabric_ep import fabric_ep_state

    with emulator.store.lock:
        return [i.detail() for i in fabric_ep_state(emulator.store).all(WORKSPACE)]


def last_run(env: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The state of the DAG's last run and of each of its tasks, as the metadata DB holds them."""
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


def run_once(env: dict[str, str], emulator: Any) -> tuple[str, dict[str, Any]]:
    """One run of the DAG, checked to succeed with every task; returns its output and the one version it added."""
    before = set(versions(emulator))
    out = dags_test(env, DAG_ID)
    state, tasks = last_run(env)
    assert state == "success" and tasks == dict.fromkeys(("train", "register", "promote", "deploy"), "success"), (
        tasks,
        out[-4000:],
    )
    new = set(versions(emulator)) - before
    assert len(new) == 1, new  # one version registered
    assert not any(secret in out for secret in SECRETS)
    assert error_lines(out) == [], error_lines(out)  # nothing errs (no missing XCom either)
    return out, versions(emulator)[new.pop()]


@pytest.fixture(scope="module")
def first(env: dict[str, str], fabric_emulator: Any) -> dict[str, Any]:
    """The first run: what it printed, the version it registered, the requests it sent."""
    log = fabric_emulator.request_log
    counts = {op: log.count(op) for op in ("fabric_ep.DeployServiceInstance", "fabric_ep.UpdateServiceInstance")}
    out, version = run_once(env, fabric_emulator)
    sent = {op: log.count(op) - n for op, n in counts.items()}
    # the emulator's state right after the run (the tests run in any order: a second run changes it)
    return {
        "out": out,
        "version": version,
        "sent": sent,
        "current": current(fabric_emulator),
        "instances": instances(fabric_emulator),
    }


def test_a_run_registers_a_version_makes_it_current_and_serves_it(fabric_emulator: Any, first: dict[str, Any]) -> None:
    version = first["version"]
    assert version["name"].startswith("run-manual__") and version.get("status") != "FAILED"
    path = version["config"]["llm_model_config"]["model_path"]
    assert path == f"obs://demo-llm/support/runs/{version['name']}/"
    assert first["current"] == version["id"]  # promoted from the pinned first version
    (instance,) = first["instances"]
    assert instance["status"] == "RUNNING" and instance["endpoint_id"] == ENDPOINT
    assert instance["source"] == {"id": MODEL, "version_id": version["id"]}
    assert first["sent"] == {"fabric_ep.DeployServiceInstance": 1, "fabric_ep.UpdateServiceInstance": 0}
    out = first["out"]
    assert f"current version {V1} -> {version['id']}" in out, out[-4000:]


@pytest.mark.requires_airflow("3.0", reason="`airflow dags test` logs a deferral ('Pausing task as DEFERRED') from 3.0")
def test_both_waits_of_the_run_deferred(first: dict[str, Any]) -> None:
    out = first["out"]
    for task_id in ("register", "deploy"):  # both waited in a trigger, not in a worker slot
        assert re.search(rf"Pausing task as DEFERRED.*task_id={task_id}\b", out), (task_id, out[-4000:])


def test_a_second_run_swaps_its_version_onto_the_same_instance(
    env: dict[str, str], fabric_emulator: Any, first: dict[str, Any]
) -> None:
    (before,) = instances(fabric_emulator)
    log = fabric_emulator.request_log
    deploys, updates = log.count("fabric_ep.DeployServiceInstance"), log.count("fabric_ep.UpdateServiceInstance")
    _, version = run_once(env, fabric_emulator)
    assert current(fabric_emulator) == version["id"] != first["version"]["id"]
    (after,) = instances(fabric_emulator)
    assert after["id"] == before["id"] and after["status"] == "RUNNING"
    assert after["source"] == {"id": MODEL, "version_id": version["id"]}
    assert log.count("fabric_ep.DeployServiceInstance") == deploys  # no second instance
    assert log.count("fabric_ep.UpdateServiceInstance") == updates + 1


def test_no_secret_or_instance_token_in_logs_or_xcom(
    env: dict[str, str], fabric_emulator: Any, first: dict[str, Any]
) -> None:
    """The connection's secret key and the token of the instance's URL (the emulator puts one in, as an invocation
    URL may carry) appear in no task log, XCom value or run output; the masked URL does."""
    import sqlite3

    (instance,) = instances(fabric_emulator)
    token = instance["url"]["address"].split("token=")[1]
    assert token
    home = Path(env["AIRFLOW_HOME"])
    db = sqlite3.connect(home / "airflow.db")
    try:
        xcoms = [str(row[0]) for row in db.execute("SELECT value FROM xcom WHERE dag_id = ?", (DAG_ID,))]
    finally:
        db.close()
    logs = [p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file()]
    texts = [first["out"], *xcoms, *logs]
    assert any("token=***" in text for text in xcoms)  # the deploy's output is there, its URL masked
    secret = json.loads(env["AIRFLOW_CONN_FABRIC_DEFAULT"])["password"]
    # Airflow 3.0 prints its own masking requests at DEBUG (_airflow_masking_request): its line, not a leak of ours
    leaks = [line for t in texts for line in t.splitlines() if token in line or secret in line]
    assert [line for line in leaks if not _airflow_masking_request(line)] == []


@LINKS_AS_XCOM
def test_the_deploy_stores_the_console_link_of_its_instance(
    env: dict[str, str], fabric_emulator: Any, first: dict[str, Any]
) -> None:
    (instance,) = instances(fabric_emulator)
    links = stored_links(env, DAG_ID)
    assert links[("deploy", "_link_FabricEpInstanceLink")] == (
        f"https://console.huaweicloud.com/dataartsfabric/?region={REGION}"
        f"#/workspace/{WORKSPACE}/services/instances/{instance['id']}"
    )
    registered = links[("register", "_link_FabricModelVersionLink")]
    assert f"/workspace/{WORKSPACE}/models/{MODEL}/versions/" in registered


# ------------------------------------------------------------------------------------------- the asset watcher


def example_module() -> Any:
    sys.path.insert(0, str(ROOT))
    try:
        import dags_examples.fabric_lifecycle as module
    finally:
        sys.path.remove(str(ROOT))
    return module


@ASSET_WATCHERS
def test_the_files_watcher_announces_a_new_version_once(
    env: dict[str, str], fabric_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_gate_watcher_hub import FakeStore

    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
    from airflow_provider_modelreg.triggers.fabric_watcher import FabricVersionEventTrigger

    module = example_module()
    (watcher,) = module.new_versions.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow_provider_modelreg.triggers.fabric_watcher.FabricVersionEventTrigger"
    assert (kwargs["model_id"], kwargs["workspace_id"], kwargs["mode"]) == (MODEL, WORKSPACE, "new_version")
    assert module.announced_dag.schedule == [module.new_versions]  # scheduled on the watched asset
    monkeypatch.setenv("AIRFLOW_CONN_FABRIC_DEFAULT", env["AIRFLOW_CONN_FABRIC_DEFAULT"])
    trigger = FabricVersionEventTrigger(**{**kwargs, "poke_interval": 0.1})  # the file's watcher, polling faster
    store = FakeStore("fabric_new_versions")
    trigger.asset_state_store = store  # type: ignore[assignment]
    log = fabric_emulator.request_log

    async def watch() -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in trigger.run():
                events.append(event.payload)

        async def polls(count: int) -> None:
            start, end = log.count("fabric.ListModelVersions"), time.monotonic() + 30
            while log.count("fabric.ListModelVersions") < start + count:
                assert time.monotonic() < end, "the watcher does not poll"
                await asyncio.sleep(0.02)

        running = asyncio.ensure_future(collect())
        try:
            await polls(2)  # the start point: the versions as they stand, announced never
            assert events == []
            await asyncio.to_thread(
                FabricModelRegistryHook().update_model,
                MODEL,
                workspace_id=WORKSPACE,
                version_name="watched-1",
                model_path="obs://demo-llm/support/watched-1/",
                base_model_type="QWEN_2_72B",
            )
            end = time.monotonic() + 30
            while not events:
                assert time.monotonic() < end, "the new version was not announced"
                await asyncio.sleep(0.02)
            await polls(3)  # more polls see it again: no second event
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
        return events

    events = asyncio.run(watch())
    assert [(e["status"], e["version"]["version_name"]) for e in events] == [("new_version", "watched-1")]
    ref = events[0]["version"]
    assert ref["uri"] == "obs://demo-llm/support/watched-1/" and ref["region"] == REGION
    # the announcing DAG's task, on the event as Airflow stores a watcher's event (extra.payload)
    stored = SimpleNamespace(extra={"from_trigger": True, "payload": events[0]})
    other = SimpleNamespace(extra={"from_api": True})
    assert module.announced_versions({"triggering_asset_events": {"asset": [stored, other]}}) == [ref]


def test_version_names_are_fabric_names() -> None:
    from airflow_provider_modelreg.validation import check_fabric_version_name

    name = example_module().version_name_of("manual__2026-12-06T23:50:00.123456+00:00")
    assert name == "run-manual__2026-12-06T23-50-00.123456-00-00"
    assert check_fabric_version_name(name) == name
    assert len(example_module().version_name_of("x" * 100)) == 64
