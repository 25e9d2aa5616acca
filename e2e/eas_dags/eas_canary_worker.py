"""`make e2e` (i): the canary example's pipeline with the deploy waiting in a worker (not deferrable), so that the
worker can be SIGKILLed mid-wait; one retry reconnects to the create in flight (``e2e.eas_check``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_modelreg.eas_models import EasService, EasServiceStatus
from airflow_provider_modelreg.operators.eas import PaiEasDeployOperator
from airflow_provider_modelreg.operators.eas_canary import PaiEasCanaryOperator
from airflow_provider_modelreg.operators.pai_lifecycle import PaiModelVersionLabelsOperator
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor


def running(context: Any, step: int, service: EasService) -> bool:
    """The new service Running with every instance up."""
    return service.status is EasServiceStatus.RUNNING and service.running_instance == service.total_instance


with DAG(
    dag_id="e2e_pai_eas_canary_worker",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "model_id": Param("model-e2e-eas", type="string"),
        "version_name": Param("2.0.0", type="string"),
        "old_service": Param("e2e_eas_serving", type="string"),
    },
    tags=["modelreg", "e2e"],
) as dag:
    wait = PaiModelVersionApprovedSensor(
        task_id="wait_for_approval",
        model_id="{{ params.model_id }}",
        version_name="{{ params.version_name }}",
        poke_interval=2,
        timeout=300,
    )

    @task
    def serving_group(params: dict[str, Any]) -> str:
        from airflow_provider_modelreg.hooks.eas import PaiEasHook

        hook = PaiEasHook()
        try:
            return str(hook.describe_service(params["old_service"]).service_group)
        finally:
            hook.close()

    deploy = PaiEasDeployOperator(
        task_id="deploy",
        model_version=wait.output,
        service_overrides={"metadata": {"group": "{{ ti.xcom_pull(task_ids='serving_group') }}"}},
        resource_wait_timeout=300,
        poll_interval=2,
        deferrable=False,  # the wait holds the worker: the scenario kills it
        retries=1,
        retry_delay=timedelta(seconds=2),
    )

    canary = PaiEasCanaryOperator(
        task_id="canary",
        service_name="{{ ti.xcom_pull(task_ids='deploy')['service_name'] }}",
        old_service_name="{{ params.old_service }}",
        steps=[10, 50, 100],
        verify=running,
        poll_interval=1,
    )

    label = PaiModelVersionLabelsOperator(
        task_id="label",
        model_id="{{ params.model_id }}",
        version_name="{{ ti.xcom_pull(task_ids='wait_for_approval')['version_name'] }}",
        add={"stage": "production"},
    )

    wait >> serving_group() >> deploy >> canary >> label
