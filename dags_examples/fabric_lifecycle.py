"""(j) The lifecycle of one DataArts Fabric model version: train -> register -> promote to current -> deploy to EP;
and the asset watcher that announces each new version of the model.

``fabric_register_promote_deploy``:

* ``train`` stands for a fine-tuning job: it returns where the weights are (``obs://``, per run) and a version name
  made from the run id (Fabric version names: letters, digits, ``_``, ``-``, ``.``, space; 1-64).
* ``register`` adds the version to the model (UpdateModelDefinition) and waits, in the triggerer, until Fabric
  lists it (Fabric creates versions asynchronously). Idempotent on (name, model path): a retry finds the version
  instead of registering a second one.
* ``promote`` makes it the model's current version (Fabric's only promotion; there is no approval status), read
  back from the registry.
* ``deploy`` serves it on an EP endpoint and waits, in the triggerer, until the instance is ``RUNNING`` with it. The
  instance is stable per model and endpoint: the next run's version is swapped onto the same instance
  (UpdateServiceInstance). Its console link and its lineage (the version in, ``fabric-ep://{region}`` out) are
  stored with the task.

``fabric_version_announced`` (Airflow 3: ``AssetWatcher``): :class:`FabricVersionEventTrigger` runs in the
triggerer and turns each new version of the model into an asset event (once per watcher and asset, oldest first);
the DAG is scheduled on that asset and announces the versions of its triggering events. The model and workspace
watched come from ``MODELREG_FABRIC_MODEL_ID`` / ``MODELREG_FABRIC_WORKSPACE_ID`` (the demo's by default), the poll
interval from ``MODELREG_FABRIC_WATCH_INTERVAL`` (seconds, default 30).
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_modelreg._compat import HAS_ASSET_WATCHERS
from airflow_provider_modelreg.operators.fabric_ep import FabricDeployServiceInstanceOperator
from airflow_provider_modelreg.operators.fabric_lifecycle import (
    FabricRegisterModelVersionOperator,
    FabricSetCurrentVersionOperator,
)

MODEL_ID = os.environ.get("MODELREG_FABRIC_MODEL_ID", "fabric-model-demo")
WORKSPACE_ID = os.environ.get("MODELREG_FABRIC_WORKSPACE_ID", "ws-demo")
WATCH_INTERVAL = float(os.environ.get("MODELREG_FABRIC_WATCH_INTERVAL", "30"))


def version_name_of(run_id: str) -> str:
    """A Fabric version name for a run: ``run-`` and the run id, each character Fabric refuses replaced by ``-``."""
    return ("run-" + re.sub(r"[^0-9A-Za-z_.-]", "-", run_id))[:64]


with DAG(
    dag_id="fabric_register_promote_deploy",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "workspace_id": Param(WORKSPACE_ID, type="string"),
        "model_id": Param(MODEL_ID, type="string"),
        "endpoint_id": Param("ep-demo", type="string", description="the EP endpoint serving the model"),
        "bucket": Param("demo-llm", type="string", description="the OBS bucket of the weights"),
        "base_model_type": Param("QWEN_2_72B", type="string"),
    },
    tags=["modelreg", "fabric", "lifecycle", "example"],
) as dag:

    @task
    def train(**context: Any) -> dict[str, Any]:
        """A stand-in for fine-tuning: where the weights are (per run) and the version name for them."""
        name = version_name_of(context["run_id"])
        return {"version_name": name, "model_path": f"obs://{context['params']['bucket']}/support/runs/{name}/"}

    trained = train()

    # --8<-- [start:register]
    register = FabricRegisterModelVersionOperator(
        task_id="register",
        workspace_id="{{ params.workspace_id }}",
        model_id="{{ params.model_id }}",
        version_name="{{ ti.xcom_pull(task_ids='train')['version_name'] }}",
        model_path="{{ ti.xcom_pull(task_ids='train')['model_path'] }}",
        base_model_type="{{ params.base_model_type }}",
        version_description="fine-tuned by {{ dag.dag_id }}",
        timeout=600,
        poke_interval=2,
        deferrable=True,
    )
    # --8<-- [end:register]

    # --8<-- [start:promote]
    promote = FabricSetCurrentVersionOperator(
        task_id="promote",
        workspace_id="{{ params.workspace_id }}",
        model_id="{{ params.model_id }}",
        version_id="{{ ti.xcom_pull(task_ids='register')['version_id'] }}",
    )
    # --8<-- [end:promote]

    # --8<-- [start:deploy]
    deploy = FabricDeployServiceInstanceOperator(
        task_id="deploy",
        model_version=promote.output,
        workspace_id="{{ params.workspace_id }}",
        endpoint_id="{{ params.endpoint_id }}",
        max_instances=1,
        poll_interval=2,
        deferrable=True,
    )
    # --8<-- [end:deploy]

    trained >> register >> promote >> deploy


def announced_versions(context: Any) -> list[dict[str, Any]]:
    """The versions the triggering asset events announce (Airflow may fold several events into one run), each
    printed with where its weights are."""
    versions = []
    for events in context["triggering_asset_events"].values():
        for event in events:
            # Airflow stores a watcher's trigger event as extra {"from_trigger": true, "payload": <event>}
            ref = ((event.extra or {}).get("payload") or {}).get("version")
            if not ref:
                continue
            print(f"New Fabric version {ref['version_name']} ({ref['version_id']}) of {ref['model_id']}: {ref['uri']}")
            versions.append(ref)
    return versions


if HAS_ASSET_WATCHERS:  # AssetWatcher and event triggers exist from Airflow 3.0
    from airflow.sdk import Asset, AssetWatcher

    from airflow_provider_modelreg.triggers.fabric_watcher import FabricVersionEventTrigger

    # --8<-- [start:watcher]
    new_versions = Asset(
        name=f"fabric_new_versions__{MODEL_ID}",
        uri=f"modelreg://fabric/{WORKSPACE_ID}/{MODEL_ID}",
        watchers=[
            AssetWatcher(
                name=f"fabric_version_watcher__{MODEL_ID}",
                trigger=FabricVersionEventTrigger(
                    fabric_conn_id="fabric_default",
                    workspace_id=WORKSPACE_ID,
                    model_id=MODEL_ID,
                    mode="new_version",
                    poke_interval=WATCH_INTERVAL,
                ),
            )
        ],
    )
    # --8<-- [end:watcher]

    with DAG(
        dag_id="fabric_version_announced",
        schedule=[new_versions],
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        tags=["modelreg", "fabric", "example", "asset"],
    ) as announced_dag:

        @task
        def announce(**context: Any) -> list[dict[str, Any]]:
            """Announce every version of the triggering asset events."""
            return announced_versions(context)

        announce()
