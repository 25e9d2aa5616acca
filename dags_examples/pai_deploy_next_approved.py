"""(a) Every hour: deploy the next approved version of a PAI model after the one deployed last.

``last_deployed`` reads the version deployed by the previous run from an Airflow Variable (None before the first
deployment: then the newest Approved version counts); the sensor gets it as an ``XComArg`` (a native None, never
the string 'None') and waits, in the triggerer (deferrable), for a newer version to be Approved; ``deploy`` writes
the EAS service spec (service name, ``model_path`` from the version's Uri, ``processor`` from its InferenceSpec) as
JSON and remembers the version. Running it twice for the same version rewrites the same file: safe.

When nothing new is approved within the hour the run is *skipped*, not failed (``soft_fail``, Airflow's
convention): the steady state pages no one. As for every Airflow sensor, ``soft_fail`` also skips a wait that failed
(a refused credential, an answer the gate cannot judge): nothing is deployed either way, the next hour tries again,
and the sensor's log says why at ERROR. Drop ``soft_fail`` to have those runs fail instead. For deploy-on-approval
without an hourly schedule, prefer the asset-watcher pattern of ``pai_asset_deploy.py``.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# Through the compat provider (airflow.sdk on Airflow 3, the Airflow 2 homes on 2.11): this example runs on
# Airflow 2.11 to 3.3 and is the one `make matrix` runs on every version.
from airflow.providers.common.compat.sdk import DAG, Param, Variable, task

from airflow_provider_modelreg.deploy import eas_service_spec
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor

DEPLOY_DIR = os.environ.get("MODELREG_DEPLOY_DIR", os.path.join(tempfile.gettempdir(), "modelreg-deploy"))


def last_deployed_key(model_id: str) -> str:
    return f"modelreg_pai_last_deployed__{model_id}"


with DAG(
    dag_id="pai_deploy_next_approved",
    schedule="@hourly",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    params={
        "model_id": Param("model-demo-fraud", type="string"),
        "after_version": Param(None, type=["null", "string"], description="override the remembered version"),
    },
    tags=["modelreg", "pai", "example"],
) as dag:

    @task
    def last_deployed(params: dict[str, Any]) -> str | None:
        """The version the previous run deployed (None before the first deployment)."""
        if params.get("after_version"):
            return str(params["after_version"])
        remembered = Variable.get(last_deployed_key(params["model_id"]), None)  # default: `default_var` on Airflow 2
        return str(remembered) if remembered else None

    remembered = last_deployed()

    # --8<-- [start:sensor]
    wait = PaiModelVersionApprovedSensor(
        task_id="wait_for_approval",
        model_id="{{ params.model_id }}",
        after_version=remembered,
        pai_conn_id="pai_default",
        deferrable=True,
        poke_interval=5,
        timeout=55 * 60,
        soft_fail=True,  # nothing approved within the hour: skipped (see the module docstring)
        max_attempts=3,  # per registry request, for this task and its trigger (not the task's retries)
        call_timeout=30,  # seconds per registry call, retries included (not the sensor's timeout)
    )
    # --8<-- [end:sensor]

    @task
    def deploy(ref: dict[str, Any]) -> str:
        """Write the EAS service spec for the approved version and remember it."""
        spec = eas_service_spec(ref)
        out = Path(DEPLOY_DIR) / f"{spec['name']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(spec, indent=2, sort_keys=True))
        Variable.set(last_deployed_key(ref["model_id"]), ref["version_name"])
        print(f"Spec written for {ref['model_id']} {ref['version_name']} (model_path {spec['model_path']}): {out}")
        return str(out)

    deploy(wait.output)
