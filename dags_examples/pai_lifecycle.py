"""(d) The lifecycle of one model version: train -> register -> a person approves -> deploy to PAI-EAS -> alias.

* ``train`` stands for a training job: it returns where the artifact is and its metrics.
* ``register`` makes the PAI version (PAI names it: the next minor version), labelled with this DAG run, so a
  retry finds it instead of registering a second one.
* ``review`` asks a person in Airflow's UI (Required Actions, or the REST API ``/api/v2/hitl-details``), shows the
  version's Uri, metrics and labels, and writes Approved or Rejected to PAI with who and when (``ExtraInfo``).
  Reject skips the rest.
* ``deploy`` creates or updates the EAS service from the approved version and waits in the triggerer until it
  serves; the version is labelled ``deployed-eas=<service>@<region>`` in the registry.
* ``promote`` moves the ``alias=champion`` label to the version: readers following the alias now see it.

Human-in-the-loop tasks need Airflow 3.1+: on older Airflow this file defines no DAG.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_modelreg.operators.eas import PaiEasDeployOperator
from airflow_provider_modelreg.operators.pai_hitl import HAS_HITL, PaiModelVersionApprovalHITLOperator
from airflow_provider_modelreg.operators.pai_lifecycle import (
    PaiCreateModelVersionOperator,
    PaiSetModelVersionAliasOperator,
)

REGISTERED = "{{ ti.xcom_pull(task_ids='register')['version_name'] }}"

if HAS_HITL:
    with DAG(
        dag_id="pai_train_register_approve_deploy",
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        params={
            "model_id": Param("model-demo-fraud", type="string"),
            "bucket": Param("demo-models", type="string"),
        },
        tags=["modelreg", "pai", "lifecycle", "example"],
    ) as dag:

        @task
        def train(**context: Any) -> dict[str, Any]:
            """A stand-in for training: the artifact's place (per run) and what evaluation measured."""
            run = context["run_id"].replace(":", "-").replace("+", "-")
            bucket = context["params"]["bucket"]
            return {
                "uri": f"oss://{bucket}.oss-cn-hangzhou.aliyuncs.com/fraud/runs/{run}/",
                "metrics": {"auc": 0.931, "f1": 0.874},
            }

        trained = train()

        # --8<-- [start:register]
        register = PaiCreateModelVersionOperator(
            task_id="register",
            model_id="{{ params.model_id }}",
            uri="{{ ti.xcom_pull(task_ids='train')['uri'] }}",
            metrics=trained["metrics"],
            framework_type="PyTorch",
            inference_spec={"processor": "pytorch_cpu_1.10"},
            version_description="trained by {{ dag.dag_id }} {{ run_id }}",
        )
        # --8<-- [end:register]

        # --8<-- [start:review]
        review = PaiModelVersionApprovalHITLOperator(
            task_id="review",
            model_id="{{ params.model_id }}",
            version_name=REGISTERED,
        )
        # --8<-- [end:review]

        deploy = PaiEasDeployOperator(
            task_id="deploy",
            model_version=review.output,
            instance=1,
            resource_wait_timeout=600,
            poll_interval=2,
            deferrable=True,
        )

        # --8<-- [start:promote]
        promote = PaiSetModelVersionAliasOperator(
            task_id="promote",
            model_id="{{ params.model_id }}",
            version_name=REGISTERED,
            alias="champion",
        )
        # --8<-- [end:promote]

        trained >> register >> review >> deploy >> promote
