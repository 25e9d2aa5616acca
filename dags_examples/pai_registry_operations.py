"""PAI registry reads, an approval, and the PAI-EAS service lifecycle, one operator per task (the how-to pages
include the sections of this file; ``tests/test_example_operations.py`` runs it against the emulator).

* ``get_model``, ``get_version``, ``list_models``, ``list_versions``: the registry reads (each pushes its answer).
* ``approve``: a reviewer's decision written to the registry (the ``review_version`` param becomes Approved).
* ``deploy`` creates an EAS service for the version ``get_version`` read (deferrable: the wait runs in the triggerer
  as ``PaiEasServiceTrigger``); ``resize`` changes its CPU (UpdateService: a second service version).
* ``rollback`` puts version 1 back, ``cleanup`` plans which of the model's services to delete (``plan_only``), and
  ``delete`` deletes the service.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_modelreg.operators.eas import PaiEasDeployOperator
from airflow_provider_modelreg.operators.eas_traffic import (
    PaiEasCleanupOperator,
    PaiEasDeleteServiceOperator,
    PaiEasRollbackOperator,
)
from airflow_provider_modelreg.operators.pai import (
    PaiGetModelOperator,
    PaiGetModelVersionOperator,
    PaiListModelsOperator,
    PaiListModelVersionsOperator,
    PaiUpdateModelVersionApprovalOperator,
)

SERVICE = "{{ params.service_name }}"

with DAG(
    dag_id="pai_registry_operations",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "model_id": Param("model-demo-fraud", type="string"),
        "workspace_id": Param("ws-demo", type="string"),
        "version_name": Param("1.0.0", type="string", description="the version to read and deploy"),
        "review_version": Param("1.1.0", type="string", description="the version a reviewer approves"),
        "service_name": Param("fraud_operations", type="string", description="the EAS service to create"),
    },
    tags=["modelreg", "pai", "eas", "example"],
) as dag:
    # --8<-- [start:get_model]
    get_model = PaiGetModelOperator(task_id="get_model", model_id="{{ params.model_id }}")
    # --8<-- [end:get_model]

    # --8<-- [start:get_version]
    get_version = PaiGetModelVersionOperator(
        task_id="get_version",
        model_id="{{ params.model_id }}",
        version_name="{{ params.version_name }}",
    )
    # --8<-- [end:get_version]

    # --8<-- [start:list_models]
    list_models = PaiListModelsOperator(
        task_id="list_models",
        workspace_id="{{ params.workspace_id }}",
        max_results=10,  # pushes the 10 newest; the XCom keys total and truncated say how many there were
    )
    # --8<-- [end:list_models]

    # --8<-- [start:list_versions]
    list_versions = PaiListModelVersionsOperator(
        task_id="list_versions",
        model_id="{{ params.model_id }}",
        approval_status="Approved",
        max_results=10,
    )
    # --8<-- [end:list_versions]

    # --8<-- [start:approve]
    approve = PaiUpdateModelVersionApprovalOperator(
        task_id="approve",
        model_id="{{ params.model_id }}",
        version_name="{{ params.review_version }}",
        approval_status="Approved",  # or "Rejected" (terminal in PAI), "Pending"
    )
    # --8<-- [end:approve]

    # --8<-- [start:deploy]
    deploy = PaiEasDeployOperator(
        task_id="deploy",
        model_version=get_version.output,  # a ModelVersionRef: the sensor's or a get operator's XCom
        service_name=SERVICE,
        instance=1,
        cpu=2,
        poll_interval=1,
        deferrable=True,  # the wait for Running runs in the triggerer (PaiEasServiceTrigger)
    )
    # --8<-- [end:deploy]

    resize = PaiEasDeployOperator(
        task_id="resize",
        model_version=get_version.output,
        service_name=SERVICE,
        instance=1,
        cpu=4,  # another config: UpdateService, a second service version
        poll_interval=1,
    )

    # --8<-- [start:rollback]
    rollback = PaiEasRollbackOperator(
        task_id="rollback",
        service_name=SERVICE,
        version=1,  # None: the version before the current one (needs Airflow 3.3's task state store with retries)
        poll_interval=1,
    )
    # --8<-- [end:rollback]

    # --8<-- [start:cleanup]
    cleanup = PaiEasCleanupOperator(
        task_id="cleanup",
        model_id="{{ params.model_id }}",
        keep=1,  # the newest service labelled with the model stays
        protect=["fraud_serving"],  # never deleted, whatever its age
        plan_only=True,  # report what would be deleted, delete nothing
    )
    # --8<-- [end:cleanup]

    # --8<-- [start:delete]
    delete = PaiEasDeleteServiceOperator(
        task_id="delete",
        service_name=SERVICE,
        wait=True,  # until DescribeService answers "not found"
        poll_interval=1,
    )
    # --8<-- [end:delete]

    [get_model, list_models, list_versions] >> approve
    approve >> deploy >> resize >> rollback >> cleanup >> delete
