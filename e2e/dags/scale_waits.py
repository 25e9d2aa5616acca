"""`make e2e-scale` (e2e/scale.py): many deferrable approval waits and an asset watcher, on CeleryExecutor.

``modelreg_scale_waits``: a mapped task group, one index per wait: ``wait`` (a deferrable named-version sensor,
poke_interval 5 s) then ``deploy``, which logs one ``MODELREG_SCALE_DEPLOY`` line. In a mapped task group each
index's ``deploy`` depends on its own ``wait`` only, so a deploy starts as soon as its version is approved.
Waits are ``MODELREG_SCALE_MODELS`` models x ``MODELREG_SCALE_WAITS_PER_MODEL`` waits on version 2.0.0 of each.

``modelreg_scale_asset_deploy``: scheduled on an asset whose ``AssetWatcher`` runs
:class:`PaiApprovedVersionEventTrigger` on ``scale-watch``; ``deploy`` logs one ``MODELREG_SCALE_ASSET_DEPLOY`` line
per version of every asset event of its run (Airflow may fold several events into one run).
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task, task_group

from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from airflow_provider_modelreg.triggers.pai import PaiApprovedVersionEventTrigger

N_MODELS = int(os.environ.get("MODELREG_SCALE_MODELS", "50"))
WAITS_PER_MODEL = int(os.environ.get("MODELREG_SCALE_WAITS_PER_MODEL", "10"))
WATCHED_MODEL = "scale-watch"
VERSION = "2.0.0"
START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def scale_models(n: int = N_MODELS) -> list[str]:
    return [f"scale-{i:03d}" for i in range(n)]


def wait_models() -> list[str]:
    """The model of each map index: index i waits on model i // WAITS_PER_MODEL."""
    return [model for model in scale_models() for _ in range(WAITS_PER_MODEL)]


with DAG(
    dag_id="modelreg_scale_waits",
    schedule=None,
    start_date=START,
    catchup=False,
    max_active_tasks=1024,  # deferred waits count as active: let every index defer
    default_args={"retries": 0},
    tags=["modelreg", "e2e-scale"],
):

    @task
    def deploy(ref: dict[str, Any]) -> str:
        print(f"MODELREG_SCALE_DEPLOY model={ref['model_id']} version={ref['version_name']} uri={ref['uri']}")
        return str(ref["version_name"])

    @task_group
    def wait_and_deploy(model_id: str) -> None:
        wait = PaiModelVersionApprovedSensor(
            task_id="wait",
            model_id=model_id,
            version_name=VERSION,
            deferrable=True,
            poke_interval=5,
            timeout=3600,
        )
        deploy(wait.output)

    wait_and_deploy.expand(model_id=wait_models())


watched = Asset(
    name="modelreg_scale_watched",
    uri=f"modelreg://pai/{WATCHED_MODEL}",
    watchers=[
        AssetWatcher(
            name="modelreg_scale_watcher",
            trigger=PaiApprovedVersionEventTrigger(pai_conn_id="pai_default", model_id=WATCHED_MODEL, poke_interval=5),
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
