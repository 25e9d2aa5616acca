"""Fabric registry reads, a version wait, and an EP service instance deployed then deleted, one operator per task
(the how-to pages include the sections of this file; ``tests/test_example_operations.py`` runs it against the
emulator).

* ``wait_for_version`` waits (deferrable: ``FabricModelVersionTrigger`` in the triggerer) for the version named by
  the ``version_name`` param.
* ``get_version`` reads it by name, ``list_models`` lists the workspace's models.
* ``deploy`` runs the version on an EP endpoint (deferrable: ``FabricEpInstanceTrigger``), ``delete`` deletes the
  instance again.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_modelreg.operators.fabric import FabricGetModelVersionOperator, FabricListModelsOperator
from airflow_provider_modelreg.operators.fabric_ep import (
    FabricDeleteServiceInstanceOperator,
    FabricDeployServiceInstanceOperator,
)
from airflow_provider_modelreg.sensors.fabric import FabricModelVersionSensor

with DAG(
    dag_id="fabric_registry_operations",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "workspace_id": Param("ws-demo", type="string"),
        "model_id": Param("fabric-model-demo", type="string"),
        "version_name": Param("v2", type="string", description="the version to wait for and deploy"),
        "endpoint_id": Param("ep-demo", type="string"),
    },
    tags=["modelreg", "fabric", "example"],
) as dag:
    # --8<-- [start:wait]
    wait = FabricModelVersionSensor(
        task_id="wait_for_version",
        workspace_id="{{ params.workspace_id }}",
        model_id="{{ params.model_id }}",
        version_name="{{ params.version_name }}",  # or version_pattern=r"rc\d+$", or current=True
        deferrable=True,  # the wait runs in the triggerer (FabricModelVersionTrigger)
        poke_interval=2,
        timeout=3600,
    )
    # --8<-- [end:wait]

    # --8<-- [start:get_version]
    get_version = FabricGetModelVersionOperator(
        task_id="get_version",
        workspace_id="{{ params.workspace_id }}",
        model_id="{{ params.model_id }}",
        version_name="{{ params.version_name }}",  # or version_id=
    )
    # --8<-- [end:get_version]

    # --8<-- [start:list_models]
    list_models = FabricListModelsOperator(
        task_id="list_models",
        workspace_id="{{ params.workspace_id }}",
        max_results=20,
    )
    # --8<-- [end:list_models]

    # --8<-- [start:deploy]
    deploy = FabricDeployServiceInstanceOperator(
        task_id="deploy",
        model_version=wait.output,  # a Fabric ModelVersionRef (or model_id= and version_id=)
        workspace_id="{{ params.workspace_id }}",
        endpoint_id="{{ params.endpoint_id }}",
        max_instances=1,
        poll_interval=1,
        deferrable=True,  # the wait for RUNNING runs in the triggerer (FabricEpInstanceTrigger)
    )
    # --8<-- [end:deploy]

    # --8<-- [start:delete]
    delete = FabricDeleteServiceInstanceOperator(
        task_id="delete",
        workspace_id="{{ params.workspace_id }}",
        instance_id="{{ ti.xcom_pull(task_ids='deploy')['instance_id'] }}",
    )
    # --8<-- [end:delete]

    wait >> [get_version, list_models] >> deploy >> delete
