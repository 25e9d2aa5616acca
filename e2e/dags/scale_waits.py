"""`make e2e-scale` (e2e/scale.py): many deferrable approval waits and an asset watcher, on CeleryExecutor.

``modelreg_scale_waits``: a task group mapped over ``MODELREG_SCALE_MODELS`` models (``.expand(model_id=...)``); in
each, ``MODELREG_SCALE_WAITS_PER_MODEL`` deferrable named-version sensors (``wait_0`` ...; version 2.0.0 of the
model, poke_interval 5 s), then ``deploy``, which takes every wait's ref and logs one ``MODELREG_SCALE_DEPLOY`` line.
In a mapped task group each index's ``deploy`` depends on its own waits only: it starts once the model's version is
approved and all of that model's waits have ended. (One deploy per model rather than per wait: on 2 cores every
task run costs about a second of CPU, and the waits already cost two runs each: defer and resume.)

``modelreg_scale_asset_deploy``: scheduled on an asset whose ``AssetWatcher`` runs
:class:`PaiModelVersionApprovedEventTrigger` on ``scale-watch``; ``deploy`` logs one
``MODELREG_SCALE_ASSET_DEPLOY`` line per version of every asset event of its run (Airflow may fold several events
into one run).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task, task_group

from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger

N_MODELS = int(os.environ.get("MODELREG_SCALE_MODELS", "50"))
WAITS_PER_MODEL = int(os.environ.get("MODELREG_SCALE_WAITS_PER_MODEL", "10"))
WATCHED_MODEL = "scale-watch"
VERSION = "2.0.0"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def scale_models(n: int = N_MODELS) -> list[str]:
    return [f"scale-{i:03d}" for i in range(n)]


with DAG(
    dag_id="modelreg_scale_waits",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_tasks=1024,  # deferred waits count as active: let every wait defer
    default_args={"retries": 0},
    tags=["modelreg", "e2e-scale"],
):
    # a model's deploy goes ahead of other models' resuming waits (Airflow's default weights rank upstream tasks first)
    @task(priority_weight=10, weight_rule="absolute")
    def deploy(model_id: str, refs: list[dict[str, Any]]) -> list[str]:
        assert all(ref["model_id"] == model_id for ref in refs), refs
        print(f"MODELREG_SCALE_DEPLOY model={model_id} version={refs[0]['version_name']} waits={len(refs)}")
        return [f"{ref['model_id']}@{ref['version_name']}" for ref in refs]

    @task_group
    def model_waits(model_id: str) -> None:
        waits = [
            PaiModelVersionApprovedSensor(
                task_id=f"wait_{i}",
                model_id=model_id,
                version_name=VERSION,
                deferrable=True,
                poke_interval=5,
                timeout=3600,
                priority_weight=1,
                weight_rule="absolute",
            )
            for i in range(WAITS_PER_MODEL)
        ]
        deploy(model_id, [wait.output for wait in waits])

    model_waits.expand(model_id=scale_models())


watched = Asset(
    name="modelreg_scale_watched",
    uri=f"modelreg://pai/{WATCHED_MODEL}",
    watchers=[
        AssetWatcher(
            name="modelreg_scale_watcher",
            trigger=PaiModelVersionApprovedEventTrigger(
                pai_conn_id="pai_default", model_id=WATCHED_MODEL, poke_interval=5
            ),
        )
    ],
)

with DAG(
    dag_id="modelreg_scale_asset_deploy",
    schedule=[watched],
    start_date=START,
    catchup=False,
    default_args={"retries": 0},
    tags=["modelreg", "e2e-scale", "asset"],
):

    @task(task_id="deploy")
    def deploy_events(**context: Any) -> list[str]:
        """Deploy every version of every asset event of this run, one log line each."""
        deployed = []
        for events in context["triggering_asset_events"].values():
            for event in events:
                ref = ((event.extra or {}).get("payload") or {}).get("version")
                if ref:
                    print(f"MODELREG_SCALE_ASSET_DEPLOY model={ref['model_id']} version={ref['version_name']}")
                    deployed.append(ref["version_name"])
        return deployed

    deploy_events()
