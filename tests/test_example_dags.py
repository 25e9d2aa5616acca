"""The example DAGs end to end under `airflow dags test`, against the emulator (real HTTP, real triggers)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import SECRETS, demo_seed, example_env

from airflow_provider_modelreg.deploy import service_name

ROOT = Path(__file__).resolve().parents[1]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


@pytest.fixture(scope="module")
def demo_emulator() -> Any:
    """The built-in demo seed, with the scheduled status changes removed: each test changes status when it needs to."""
    from modelreg_emulator import RegistryEmulator

    seed = demo_seed()
    for version in seed["pai"]["models"][0]["Versions"]:
        version.pop("_then", None)
    with RegistryEmulator(seed) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, demo_emulator: Any, migrated_airflow_db: Path) -> dict[str, str]:
    return example_env(tmp_path_factory.mktemp("airflow-home"), demo_emulator.url, migrated_airflow_db)


def dags_test(env: dict[str, str], dag_id: str, conf: dict[str, Any] | None = None, on_line: Any = None) -> str:
    """Run ``airflow dags test`` and return its output; ``on_line`` sees each line as it is printed."""
    cmd = [AIRFLOW, "dags", "test", dag_id]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    lines = []
    timer = threading.Timer(240, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line)
        proc.wait()
    finally:
        timer.cancel()
    return "".join(lines)


def wait_until(condition: Callable[[], bool], what: str, deadline: float = 120.0) -> None:
    """Wait for an event (the emulator's request log advancing), with a generous deadline."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def runs(env: dict[str, str], demo_emulator: Any) -> dict[str, str]:
    """Runs the example DAGs once for the module and returns what each run printed (task logs go to the console
    under `airflow dags test`). The tests read these outputs and what the runs left (DB, specs), so each test passes
    alone or in any order."""
    out: dict[str, str] = {}

    # (a) approve 1.1.0 only once the deferred sensor's trigger has polled and seen it Pending, as a reviewer
    # would, some time later
    def approve_after_the_triggers_first_poll(before: int) -> None:
        try:
            wait_until(lambda: demo_emulator.request_log.count("pai.ListModelVersions") > before, "a trigger poll")
            out["a: approved"] = "after a trigger poll"
        except AssertionError as exc:
            out["a: approved"] = str(exc)
        finally:  # either way, so that the run ends
            demo_emulator.store.set_approval("model-demo-fraud", "1.1.0", "Approved")

    def on_line(line: str) -> None:
        if "Deferring: the triggerer waits" in line:
            before = demo_emulator.request_log.count("pai.ListModelVersions")
            threading.Thread(target=approve_after_the_triggers_first_poll, args=(before,), daemon=True).start()

    out["a"] = dags_test(env, "pai_deploy_next_approved", {"after_version": "1.0.0"}, on_line=on_line)
    demo_emulator.store.set_approval("model-demo-fraud", "1.2.0-rc1", "Rejected")
    out["named approved"] = dags_test(env, "pai_deploy_named_version", {"version_name": "1.0.0"})
    out["named rejected"] = dags_test(env, "pai_deploy_named_version", {"version_name": "1.2.0-rc1"})
    out["b"] = dags_test(env, "fabric_deploy_versions")
    return out


def error_lines(out: str) -> list[str]:
    """Lines logged at ERROR (structlog console format) or naming a missing XCom: none in a successful run."""
    return [line for line in out.splitlines() if "[error" in line or "XCom not found" in line]


def stored_links(env: dict[str, str], dag_id: str) -> dict[tuple[str, str], str]:
    """{(task_id, link XCom key): value} of the extra links Airflow stored for the DAG's last run."""
    import sqlite3

    db = sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db")
    rows = db.execute(
        "SELECT task_id, key, value FROM xcom WHERE dag_id = ? AND key LIKE '\\_link\\_%' ESCAPE '\\' "
        "AND run_id = (SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
        (dag_id, dag_id),
    ).fetchall()
    db.close()
    return {(task, key): json.loads(value) if isinstance(value, str | bytes) else value for task, key, value in rows}


#: extra links stored as XCom when a task ends (deferred too) are Airflow 3's; Airflow 2 renders them on demand
LINKS_AS_XCOM = pytest.mark.requires_airflow(
    "3.0", reason="Airflow 3 stores extra links as XCom when a task ends; Airflow 2 renders them on demand"
)
#: asset watchers and event triggers are Airflow 3's
ASSET_WATCHERS = pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")


def spec(env: dict[str, str], name: str) -> dict[str, Any]:
    return json.loads((Path(env["MODELREG_DEPLOY_DIR"]) / f"{name}.json").read_text())  # type: ignore[no-any-return]


def test_a_next_approved_version_is_deployed(env: dict[str, str], runs: dict[str, str]) -> None:
    out = runs["a"]
    assert "Deferring" in out, out[-3000:]
    assert runs["a: approved"] == "after a trigger poll"  # the trigger saw 1.1.0 Pending, then Approved
    assert "Spec written for model-demo-fraud 1.1.0" in out, out[-3000:]
    written = spec(env, service_name("model-demo-fraud", "1.1.0"))
    assert written["model_path"] == "oss://demo-models/fraud/1.1.0/"
    assert written["processor"] == "tensorflow_cpu_2.7"
    remembered = subprocess.run(
        [AIRFLOW, "variables", "get", "modelreg_pai_last_deployed__model-demo-fraud"],
        env={**env, "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING"},  # Airflow 3.0 logs INFO lines on stdout
        capture_output=True,
        text=True,
    )
    assert remembered.stdout.strip() == "1.1.0"
    assert not any(secret in out for secret in (*SECRETS, "demo-access-key-secret"))
    # issue 12 (5): the deferring sensor's run logs no error
    assert error_lines(out) == [], error_lines(out)


@LINKS_AS_XCOM
def test_a_the_deferring_sensor_stores_its_link(env: dict[str, str], runs: dict[str, str]) -> None:
    """issue 12 (5): after run (a), the sensor's declared link is stored (the model's workspace)."""
    links = stored_links(env, "pai_deploy_next_approved")
    url = links[("wait_for_approval", "_link_PaiModelVersionLink")]
    assert "workspaceId=ws-demo" in url and "modelId=model-demo-fraud" in url and "versionName=1.1.0" in url


def test_named_version_and_rejected(runs: dict[str, str]) -> None:
    out = runs["named approved"]
    assert "Spec written for model-demo-fraud 1.0.0" in out, out[-3000:]
    out = runs["named rejected"]
    assert "Rejected (terminal in PAI)" in out, out[-3000:]
    assert "Spec written" not in out


def test_b_fabric_list_newest_and_mapped_specs(env: dict[str, str], runs: dict[str, str]) -> None:
    out = runs["b"]
    assert "Newest version: 1.0.0" in out, out[-3000:]
    for name in ("v1", "v2", "1.0.0"):
        written = spec(env, "staging/" + service_name("fabric-model-demo", name, "svc_"))
        # issue 23: the DeployServiceInstance body (the version by id, no model_path)
        assert written["source"]["id"] == "fabric-model-demo" and written["source"]["version_id"]
        assert written["config"]["model_instance_config"]["resource"] == {"min": 1, "max": 1}
        assert written["endpoint_id"] == "ep-demo"
    production = Path(env["MODELREG_DEPLOY_DIR"]) / "production"
    assert [p.name for p in production.iterdir()] == [service_name("fabric-model-demo", "1.0.0", "svc_") + ".json"]
    # issue 12 (5): nothing errs
    assert error_lines(out) == [], error_lines(out)


@LINKS_AS_XCOM
def test_b_the_list_task_stores_its_link(env: dict[str, str], runs: dict[str, str]) -> None:
    """issue 12 (5): after run (b), the list task's declared link is stored (the first, i.e. newest, version)."""
    url = stored_links(env, "fabric_deploy_versions")[("list_versions", "_link_FabricModelVersionLink")]
    assert "/workspace/ws-demo/models/fabric-model-demo/versions/" in url


@ASSET_WATCHERS
def test_c_asset_deploy_is_idempotent(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from dags_examples.pai_asset_deploy import deploy_version
    finally:
        sys.path.remove(str(ROOT))
    ref = {"model_id": "model-demo-fraud", "version_name": "1.1.0", "uri": "oss://b.oss-cn-hangzhou.aliyuncs.com/k/"}
    path, written = deploy_version(ref, str(tmp_path))
    assert written and json.loads(path.read_text())["model_path"] == "oss://b/k/"
    assert deploy_version(ref, str(tmp_path)) == (path, False)  # the same version twice: nothing changes


@ASSET_WATCHERS
async def test_c_event_trigger_announces_each_new_approval_once(make_emulator: Any, monkeypatch: Any) -> None:
    from helpers import build_seed, pai_conn, pai_version

    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger

    seed = build_seed()
    seed["pai"]["models"][0]["Versions"].append(pai_version("3.0.0", "Pending", 20))
    emu = make_emulator(seed=seed)
    pai_conn(monkeypatch, emu.url)

    class Store:
        def __init__(self) -> None:
            self.data: dict[str, Any] = {}

        async def aget(self, key: str, default: Any = None) -> Any:
            return self.data.get(key, default)

        async def aset(self, key: str, value: Any) -> None:
            self.data[key] = value

    async def polls_after(what: str, waiting: asyncio.Future[Any], condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, then until the watcher has listed versions twice more; stop early when
        ``waiting`` (the next event) is done: the watcher announced something."""
        end = time.monotonic() + 30

        def seen() -> str:  # for a timeout: what the emulator served, what the watcher stored
            return f"{[(e.route, e.status) for e in emu.request_log.entries][-8:]}, state {list(store.data)}"

        while not (condition() or waiting.done()):
            assert time.monotonic() < end, f"timed out waiting for {what}: {seen()}"
            await asyncio.sleep(0.01)
        before = emu.request_log.count("pai.ListModelVersions")
        while emu.request_log.count("pai.ListModelVersions") < before + 2 and not waiting.done():
            assert time.monotonic() < end, f"timed out waiting for 2 polls after {what}: {seen()}"
            await asyncio.sleep(0.01)

    store = Store()
    trigger = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-main", poke_interval=0.1)
    trigger.asset_state_store = store  # type: ignore[assignment]
    events = trigger.run()
    first = asyncio.ensure_future(anext(events))
    await polls_after("the baseline", first, lambda: bool(store.data))
    assert not first.done()  # 1.0.0 was approved before the watcher started: it is the baseline, not announced
    (state,) = [value for key, value in store.data.items() if key.startswith("modelreg_pai_watch:m-main:")]
    assert state["newest"][1] == "1.0.0" and state["identity"]["model_id"] == "m-main"  # the start point
    PaiModelRegistryHook().update_model_version("m-main", "1.1.0", approval_status="Approved")
    event = await asyncio.wait_for(first, 30)
    assert event.payload["version"]["version_name"] == "1.1.0"
    second = asyncio.ensure_future(anext(events))
    await polls_after("the announcement", second, lambda: True)
    assert not second.done()  # announced once
    second.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await second
    await events.aclose()

    # a restarted triggerer (new trigger object, same store) does not announce 1.1.0 again, but catches up on 3.0.0
    PaiModelRegistryHook().update_model_version("m-main", "3.0.0", approval_status="Approved")
    restarted = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-main", poke_interval=0.1)
    restarted.asset_state_store = store  # type: ignore[assignment]
    again = restarted.run()
    event = await asyncio.wait_for(anext(again), 30)
    assert event.payload["version"]["version_name"] == "3.0.0"
    await again.aclose()


def _airflow_masking_request(text: str) -> bool:
    """Airflow 3.0's `dags test` prints its supervisor requests at DEBUG, the values it is asked to mask included
    (``msg=MaskSecret(value='...')``, for its own connection secrets too): Airflow's line, not a leak of ours."""
    return "msg=MaskSecret(" in text


def test_no_secret_in_logs_xcom_or_rendered_fields(env: dict[str, str], runs: dict[str, str]) -> None:
    """After the example DAGs ran: scan task logs, XCom values and rendered template fields for secrets."""
    import sqlite3

    seed = demo_seed()
    secrets = [
        seed["pai"]["credentials"][0]["access_key_secret"],
        seed["fabric"]["credentials"][0]["sk"],
        seed["fabric"]["users"][0]["password"],
    ]
    home = Path(env["AIRFLOW_HOME"])
    log_files = [p for p in (home / "logs").rglob("*") if p.is_file()]
    db = sqlite3.connect(home / "airflow.db")
    xcoms = [str(row[0]) for row in db.execute("SELECT value FROM xcom")]
    rendered = [str(row[0]) for row in db.execute("SELECT rendered_fields FROM rendered_task_instance_fields")]
    db.close()
    outputs = [runs[name] for name in ("a", "named approved", "named rejected", "b")]
    assert len(xcoms) >= 5 and len(rendered) >= 5, (len(xcoms), len(rendered))
    texts = [p.read_text(errors="replace") for p in log_files] + outputs + xcoms + rendered
    assert any("oss://demo-models" in t for t in texts)  # the scan does read the real content
    for secret in secrets:
        leaks = [
            line for t in texts for line in t.splitlines() if secret in line and not _airflow_masking_request(line)
        ]
        assert leaks == [], (secret, leaks[:3])
    for text in texts:  # no signature or IAM token either
        assert "Signature=" not in text and "X-Auth-Token" not in text and "X-Subject-Token" not in text
