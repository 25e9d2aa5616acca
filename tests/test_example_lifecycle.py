"""The lifecycle example DAG (train -> register -> human approval -> EAS deploy -> alias) under ``airflow dags test``
against the emulator, the reviewer answering through Airflow's REST API: an ``airflow api-server`` on the same
SQLite metadata DB, as a person's click in the Required Actions page would."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import SECRETS, demo_seed, example_env

pytestmark = pytest.mark.requires_airflow(
    "3.3",
    reason="`airflow dags test` waits for a human-in-the-loop answer from 3.3 (AWAITING_INPUT, no trigger); on 3.1 "
    "and 3.2 its in-process trigger runner cannot read the HITL detail (GetHITLDetailResponse is unhandled)",
)

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DAG_ID = "pai_train_register_approve_deploy"
MODEL = "model-demo-fraud"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _until(check: Callable[[], Any], what: str, deadline: float = 120.0) -> Any:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with_value = check()
        if with_value:
            return with_value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {deadline} s waiting for {what}")


@pytest.fixture(scope="module")
def lifecycle_emulator() -> Iterator[Any]:
    from modelreg_emulator import RegistryEmulator
    from modelreg_emulator.eas import EasSettings

    seed = demo_seed()
    for version in seed["pai"]["models"][0]["Versions"]:
        version.pop("_then", None)
    with RegistryEmulator(seed, eas=EasSettings(create_seconds=1.0, update_seconds=1.0)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, lifecycle_emulator: Any, migrated_airflow_db: Path
) -> Iterator[tuple[dict[str, str], httpx.Client]]:
    """The DAG's environment and a REST client of an api-server sharing its metadata DB."""
    home = tmp_path_factory.mktemp("lifecycle-home")
    env = example_env(home, lifecycle_emulator.url, migrated_airflow_db, eas_endpoint=lifecycle_emulator.url)
    env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "True"
    env["AIRFLOW__API_AUTH__JWT_SECRET"] = base64.b64encode(os.urandom(32)).decode()
    port = _free_port()
    log = open(home / "api-server.log", "wb")
    server = subprocess.Popen(
        [AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"the api-server exited: {(home / 'api-server.log').read_text()[-2000:]}")
            try:
                return httpx.get(f"{base}/api/v2/monitor/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _until(healthy, "the api-server", 150)
        token = httpx.get(f"{base}/auth/token", timeout=10).json()["access_token"]
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            yield env, client
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def run_answering(env: dict[str, str], client: httpx.Client, choice: str) -> tuple[str, dict[str, Any]]:
    """``airflow dags test`` of the lifecycle DAG; once its review task waits for input, answer ``choice`` through
    the REST API. Returns the run's output and the HITL detail as the API reports it after the answer."""
    proc = subprocess.Popen(
        [AIRFLOW, "dags", "test", DAG_ID], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:

        def waiting() -> dict[str, Any] | None:
            if proc.poll() is not None:
                raise AssertionError("the run ended before asking:\n" + "".join(lines)[-4000:])
            found = client.get(f"/api/v2/dags/{DAG_ID}/dagRuns/~/hitlDetails").json()
            for detail in found.get("hitl_details", []):
                ti = detail.get("task_instance", {})
                if ti.get("task_id") == "review" and detail.get("responded_at") is None:
                    return detail
            return None

        detail = _until(waiting, "the review task to ask", 180)
        run_id = detail["task_instance"]["dag_run_id"]
        path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails"
        # The question is stored before the task pauses. A person answers a paused task, and so does the test: an
        # answer inside that window takes another path in Airflow (resumed from the park transition itself).
        ti_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review"
        _until(lambda: client.get(ti_path).json().get("state") == "awaiting_input", "the review task to pause", 120)
        answered = client.patch(path, json={"chosen_options": [choice]})
        assert answered.status_code == 200, answered.text
        # The run is over when `dags test` reports it. Its process then exits, but on a loaded machine it has been
        # seen to linger after that line (Airflow's, after our tasks ended): waited for, then stopped.
        try:
            _until(lambda: proc.poll() is not None or any("DagRun Finished" in line for line in lines), "the run", 240)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the run's output ends:\n{''.join(lines)[-6000:]}") from None
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        reader.join(10)
        return "".join(lines), client.get(path).json()
    finally:
        if proc.poll() is None:
            proc.kill()


def run_state(out: str) -> str:
    """The state ``airflow dags test`` reports for the run (its "DagRun Finished" line)."""
    finished = [line for line in out.splitlines() if "DagRun Finished" in line]
    assert len(finished) == 1, out[-4000:]
    return finished[0].split(" state=", 1)[1].split(",", 1)[0]


def _versions(emulator: Any) -> dict[str, dict[str, Any]]:
    """The model's versions as the emulator holds them (the registry's truth, not our client's view)."""
    return {v["VersionName"]: v for v in emulator.store.pai_versions(MODEL)}


def test_approve_registers_deploys_and_promotes(
    stack: tuple[dict[str, str], httpx.Client], lifecycle_emulator: Any
) -> None:
    env, client = stack
    before = set(_versions(lifecycle_emulator))
    log = lifecycle_emulator.request_log
    registered, created = log.count("pai.CreateModelVersion"), log.count("eas.CreateService")
    out, detail = run_answering(env, client, "Approve")
    assert run_state(out) == "success", out[-4000:]
    new = set(_versions(lifecycle_emulator)) - before
    assert len(new) == 1, new  # one version registered
    name = new.pop()
    version = _versions(lifecycle_emulator)[name]
    assert version["ApprovalStatus"] == "Approved"
    record = version["ExtraInfo"]["airflow_approval"]
    assert record["status"] == "Approved" and record["dag_id"] == DAG_ID and record["task_id"] == "review"
    assert record["by"]["name"] == detail["responded_by_user"]["name"]  # who answered, as the API recorded it
    labels = {label["Key"]: label["Value"] for label in version["Labels"]}
    assert labels["alias"] == "champion"
    assert labels["deployed-eas"].endswith("@cn-hangzhou")
    service = labels["deployed-eas"].rsplit("@", 1)[0]
    assert log.count("pai.CreateModelVersion") == registered + 1
    assert log.count("eas.CreateService") == created + 1
    from modelreg_emulator.eas import eas_state

    described = eas_state(lifecycle_emulator.store).get("cn-hangzhou", service).describe()
    assert described["Status"] == "Running"
    assert all(secret not in out for secret in SECRETS)


def test_reject_writes_rejected_and_deploys_nothing(
    stack: tuple[dict[str, str], httpx.Client], lifecycle_emulator: Any
) -> None:
    env, client = stack
    before = set(_versions(lifecycle_emulator))
    creates = lifecycle_emulator.request_log.count("eas.CreateService")
    out, _ = run_answering(env, client, "Reject")
    new = set(_versions(lifecycle_emulator)) - before
    assert len(new) == 1, new
    version = _versions(lifecycle_emulator)[new.pop()]
    assert version["ApprovalStatus"] == "Rejected"
    assert version["ExtraInfo"]["airflow_approval"]["status"] == "Rejected"
    assert "alias" not in {label["Key"] for label in version.get("Labels") or []}
    assert lifecycle_emulator.request_log.count("eas.CreateService") == creates  # nothing deployed
    assert run_state(out) == "success", out[-4000:]  # a rejection skips what follows: the run itself succeeds
