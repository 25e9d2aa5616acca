"""(h) The lifecycle example DAG on the real services, and the OpenLineage events it sends.

``pai_train_register_approve_deploy`` on a model of its own: the review task waits in AWAITING_INPUT (no triggerer
on Airflow 3.3), the answer comes through the HITL REST API as a person's click would, the deploy creates the EAS
service in the emulator. The OpenLineage provider sends its events to a file transport
(``.e2e/openlineage.jsonl``); the check reads them as a lineage backend would and asserts the names a user sees:
the artifact ``oss://{bucket}`` + key in, the registry version ``pai://{region}/{workspace}`` + ``{model}/{version}``
out, the service ``pai-eas://{region}`` + name, and the run facet with the approval and who gave it.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from e2e.stack import Api, say, wait_for

DAG_ID = "pai_train_register_approve_deploy"
MODEL = "model-e2e-lifecycle"
REGION, WORKSPACE = "cn-hangzhou", "ws-demo"


def add_model(seed: dict[str, Any], template: dict[str, Any]) -> None:
    """A model with no version yet: the DAG registers 0.1.0 (PAI's first default name)."""
    model = copy.deepcopy(template)
    model.update(ModelId=MODEL, ModelName="e2e-lifecycle", Versions=[])
    seed["pai"]["models"].append(model)


def environment(workdir: Path) -> dict[str, str]:
    """The OpenLineage provider's settings: every event appended to one file."""
    transport = {"type": "file", "log_file_path": str(lineage_file(workdir)), "append": True}
    return {"AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport), "AIRFLOW__OPENLINEAGE__NAMESPACE": "e2e"}


def lineage_file(workdir: Path) -> Path:
    return workdir / "openlineage.jsonl"


def _completed(workdir: Path, run_id: str) -> dict[str, dict[str, Any]]:
    """{task id: its COMPLETE event} of this DAG run (a task's OpenLineage run carries the DAG run id)."""
    events: dict[str, dict[str, Any]] = {}
    path = lineage_file(workdir)
    for line in path.read_text().splitlines() if path.exists() else []:
        event = json.loads(line)
        job = event.get("job", {}).get("name", "")
        if event.get("eventType") != "COMPLETE" or not job.startswith(DAG_ID + "."):
            continue
        if run_id not in json.dumps(event["run"].get("facets", {})):
            continue
        events[job.split(".", 1)[1]] = event
    return events


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def _names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def run(api: Api, workdir: Path) -> dict[str, Any]:
    say(f"(h) Lifecycle: {DAG_ID} on {MODEL}; the review is answered through the HITL REST API")
    run_id = api.trigger(DAG_ID, {"model_id": MODEL})
    details = f"/dags/{DAG_ID}/dagRuns/{run_id}/hitlDetails"

    def asking() -> bool:
        state = api.run_state(DAG_ID, run_id)
        if state in ("success", "failed"):
            raise AssertionError(f"(h) the run ended {state} before the review asked\n{api.run_report(DAG_ID, run_id)}")
        return any(d["task_instance"]["task_id"] == "review" for d in api.get(details).get("hitl_details", []))

    wait_for(asking, 180, "the review task to ask")
    ti = api.task(DAG_ID, run_id, "review")
    assert ti["state"] == "awaiting_input", ti  # Airflow 3.3: waiting with no trigger
    # Answer only once the scheduler has handled the executor's report of the paused try: Airflow 3.3.2 fails the
    # task when the answer re-queues it before that ("finished with state success, but the task instance's state
    # attribute is queued" -> FAILED), seen here with an answer 0.3 s after the pause. A person never clicks that
    # fast; the scheduler's own log line says when it is safe, where a fixed sleep only guesses.
    handled = f"TaskInstance Finished: dag_id={DAG_ID}, task_id=review, run_id={run_id},"
    scheduler_log = workdir / "logs" / "scheduler.log"
    wait_for(
        lambda: any(handled in line and "state=awaiting_input" in line for line in _lines(scheduler_log)),
        120,
        "the scheduler to handle the paused review",
    )
    time.sleep(1)
    api.patch(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/review/-1/hitlDetails", {"chosen_options": ["Approve"]})
    state = wait_for(lambda: (s := api.run_state(DAG_ID, run_id)) in ("success", "failed") and s, 240, "the run")
    assert state == "success", f"(h) run ended {state}\n{api.run_report(DAG_ID, run_id)}"
    ref = api.xcom(DAG_ID, run_id, "register")
    version = ref["version_name"]
    service = api.xcom(DAG_ID, run_id, "deploy")

    events = wait_for(lambda: (e := _completed(workdir, run_id)) and len(e) >= 5 and e, 60, "the OpenLineage events")
    artifact = ("oss://demo-models", ref["uri"].split(".aliyuncs.com/", 1)[1])
    registry = (f"pai://{REGION}/{WORKSPACE}", f"{MODEL}/{version}")
    register = events["register"]
    assert _names(register["inputs"]) == [artifact], register["inputs"]
    assert _names(register["outputs"]) == [registry], register["outputs"]
    review = events["review"]
    (decided,) = review["run"]["facets"]["modelreg_model_versions"]["versions"]
    assert decided["approval_status"] == "Approved" and decided["approved_by"]["name"], decided
    deploy = events["deploy"]
    assert _names(deploy["outputs"]) == [(f"pai-eas://{REGION}", service["service_name"])], deploy["outputs"]
    assert registry in _names(deploy["inputs"]) and artifact in _names(deploy["inputs"]), deploy["inputs"]
    say(
        f"(h) success: {MODEL} {version} registered, approved by {decided['approved_by']['name']}, deployed as "
        f"{service['service_name']}; OpenLineage: {artifact[0]}/{artifact[1]} -> {registry[0]} {registry[1]} -> "
        f"pai-eas://{REGION} {service['service_name']}"
    )
    return {"run_id": run_id, "version": version, "service": service["service_name"], "events": sorted(events)}
