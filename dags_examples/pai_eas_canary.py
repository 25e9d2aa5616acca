"""(i) A canary release on PAI-EAS: approve -> canary -> verify -> full -> label.

* ``wait_for_approval`` waits (in the triggerer) until the version named by the ``version_name`` param is Approved.
* ``serving_group`` reads the service group of the service serving now (the ``old_service`` param).
* ``deploy`` creates the new version as a new EAS service in that group (``service_overrides`` ``metadata.group``):
  a group's new member gets no traffic yet. It waits (in the triggerer) until the service serves; the version is
  labelled ``deployed-eas=<service>@<region>``. A retry reconnects to the create in flight instead of creating a
  second service.
* ``canary`` moves the group's traffic to the new service in steps (10 %, 50 %, 100 %): each step is read back
  with DescribeService and verified by :func:`verify_serving` (the new service Running with every instance up).
  A step that fails puts all traffic back on the old service (verified) and fails the task with the reason. At
  100 % the old service stays in the group with weight 0: going back is one weight change.
* ``label`` marks the version ``stage=production`` in the registry.

The ``fail_verify_at`` param (a step, e.g. 50) makes the verification fail from that step on: a rehearsal of the
way back.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_modelreg.eas_models import EasService, EasServiceStatus
from airflow_provider_modelreg.operators.eas import PaiEasDeployOperator
from airflow_provider_modelreg.operators.eas_canary import PaiEasCanaryOperator
from airflow_provider_modelreg.operators.pai_lifecycle import PaiModelVersionLabelsOperator
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor

APPROVED = "{{ ti.xcom_pull(task_ids='wait_for_approval')['version_name'] }}"


def verify_serving(context: Any, step: int, service: EasService) -> bool:
    """The canary's check after each step: the new service Running with every instance up (a real check would also
    read its error rate and latency). The ``fail_verify_at`` param fails it from that step on."""
    fail_at = context["params"].get("fail_verify_at")
    if fail_at is not None and step >= int(fail_at):
        print(f"verify: step {step}% fails on purpose (fail_verify_at={fail_at})")
        return False
    up = service.status is EasServiceStatus.RUNNING and service.running_instance == service.total_instance
    print(
        f"verify: step {step}%: {service.service_name} {service.status.value}, "
        f"{service.running_instance}/{service.total_instance} instances, weight {service.weight}"
    )
    return bool(up and (service.total_instance or 0) > 0)


with DAG(
    dag_id="pai_eas_canary",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={
        "model_id": Param("model-demo-fraud", type="string"),
        "version_name": Param("1.1.0", type="string", description="the version to release once Approved"),
        "old_service": Param("fraud_serving", type="string", description="the EAS service serving now"),
        "fail_verify_at": Param(None, type=["null", "integer"], description="fail the verification from this step"),
    },
    tags=["modelreg", "pai", "eas", "example"],
) as dag:
    # --8<-- [start:wait]
    wait = PaiModelVersionApprovedSensor(
        task_id="wait_for_approval",
        model_id="{{ params.model_id }}",
        version_name="{{ params.version_name }}",
        deferrable=True,
        poke_interval=5,
        timeout=24 * 60 * 60,
    )
    # --8<-- [end:wait]

    @task
    def serving_group(params: dict[str, Any]) -> str:
        """The service group of the service serving now: the new service joins it."""
        from airflow_provider_modelreg.hooks.eas import PaiEasHook

        hook = PaiEasHook()
        try:
            old = hook.describe_service(params["old_service"])
        finally:
            hook.close()
        if not old.service_group:
            raise ValueError(f"{old.service_name} is in no service group")
        return old.service_group

    group = serving_group()

    # --8<-- [start:deploy]
    deploy = PaiEasDeployOperator(
        task_id="deploy",
        model_version=wait.output,
        instance=1,
        service_overrides={"metadata": {"group": "{{ ti.xcom_pull(task_ids='serving_group') }}"}},
        resource_wait_timeout=600,
        poll_interval=2,
        deferrable=True,
    )
    # --8<-- [end:deploy]

    # --8<-- [start:canary]
    canary = PaiEasCanaryOperator(
        task_id="canary",
        service_name="{{ ti.xcom_pull(task_ids='deploy')['service_name'] }}",
        old_service_name="{{ params.old_service }}",
        steps=[10, 50, 100],
        verify=verify_serving,
        bake_time=1,
        poll_interval=2,
    )
    # --8<-- [end:canary]

    # --8<-- [start:label]
    label = PaiModelVersionLabelsOperator(
        task_id="label",
        model_id="{{ params.model_id }}",
        version_name=APPROVED,
        add={"stage": "production"},
    )
    # --8<-- [end:label]

    wait >> group >> deploy >> canary >> label
