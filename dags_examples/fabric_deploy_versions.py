"""(b) DataArts Fabric: list a model's versions (newest first, by create time then id); write a *staging* spec
for every listed version with dynamic task mapping (``.expand()`` over the operator's list of ModelVersionRef
dicts), and the *production* spec for the newest version, the first of the list.

The list is bounded (``max_results``, default 100, well under ``[core] max_map_length``): a model with more
versions gets the newest 100, a WARNING in the task log and the XCom key ``truncated`` set.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task  # airflow.sdk on Airflow 3; runs on 2.11 too

from airflow_provider_modelreg.deploy import fabric_service_spec
from airflow_provider_modelreg.operators.fabric import FabricListModelVersionsOperator

DEPLOY_DIR = os.environ.get("MODELREG_DEPLOY_DIR", os.path.join(tempfile.gettempdir(), "modelreg-deploy"))

with DAG(
    dag_id="fabric_deploy_versions",
    schedule="@daily",
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "workspace_id": Param("ws-demo", type="string"),
        "model_id": Param("fabric-model-demo", type="string"),
        "endpoint_id": Param("ep-demo", type="string"),
    },
    tags=["modelreg", "fabric", "example"],
) as dag:
    # --8<-- [start:list_versions]
    versions = FabricListModelVersionsOperator(
        task_id="list_versions",
        workspace_id="{{ params.workspace_id }}",
        model_id="{{ params.model_id }}",
        fabric_conn_id="fabric_default",
        max_results=20,  # staging keeps the 20 newest
    )
    # --8<-- [end:list_versions]

    # one XCom for the whole ref: a dict return annotation would make Airflow push each key separately, and
    # Airflow 3.0.6 refuses an XCom whose value is None (HTTP 422), as a ref's region is for Fabric
    @task(multiple_outputs=False)
    def newest(refs: list[dict[str, Any]]) -> dict[str, Any]:
        """The newest version: the list is newest first."""
        if not refs:
            raise ValueError("the model has no versions")
        best = refs[0]
        print(f"Newest version: {best['version_name']} ({best['version_id']}), uri {best['uri']}")
        return best

    def write_spec(ref: dict[str, Any], endpoint_id: str, stage: str) -> str:
        spec = fabric_service_spec(ref, endpoint_id=endpoint_id)
        out = Path(DEPLOY_DIR) / stage / f"{spec['name']}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(spec, indent=2, sort_keys=True))
        print(f"Spec written for {ref['version_name']} ({stage}): {out}")
        return str(out)

    @task
    def deploy_spec(ref: dict[str, Any], params: dict[str, Any]) -> str:
        """Staging: one spec per listed version."""
        return write_spec(ref, params["endpoint_id"], "staging")

    @task
    def deploy_production(ref: dict[str, Any], params: dict[str, Any]) -> str:
        """Production: the newest version only."""
        return write_spec(ref, params["endpoint_id"], "production")

    deploy_production(newest(versions.output))
    deploy_spec.expand(ref=versions.output)
