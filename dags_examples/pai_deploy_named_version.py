"""(a2) Wait for one named PAI model version to be approved, then write its EAS spec.

If the version is Rejected the sensor fails at once, without retries (Rejected is terminal in PAI).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk on Airflow 3; runs on 2.11 too

from airflow_provider_modelreg.deploy import eas_service_spec
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor

DEPLOY_DIR = os.environ.get("MODELREG_DEPLOY_DIR", os.path.join(tempfile.gettempdir(), "modelreg-deploy"))

with DAG(
    dag_id="pai_deploy_named_version",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "model_id": Param("model-demo-fraud", type="string"),
        "version_name": Param("1.1.0", type="string"),
    },
    tags=["modelreg", "pai", "example"],
) as dag:
    wait = PaiModelVersionApprovedSensor(
        task_id="wait_for_named_version",
        model_id="{{ params.model_id }}",
        version_name="{{ params.version_name }}",
        deferrable=True,
        poke_interval=5,
        timeout=3600,
    )

    @task
    def deploy(ref: dict[str, Any]) -> str:
        spec = eas_service_spec(ref)
        out = Path(DEPLOY_DIR) / f"{spec['name']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(spec, indent=2, sort_keys=True))
        print(f"Spec written for {ref['model_id']} {ref['version_name']}: {out}")
        return str(out)

    deploy(wait.output)
