"""`make e2e` (f), e2e/credentials_check.py: waits on connections that store no secret, with short-lived keys.

``modelreg_credential_waits``:

* ``wait_oidc``: a deferrable named-version sensor on ``pai_oidc`` — a PAI connection with ``credential_source``
  ``oidc_role_arn`` (an OIDC token file, RRSA style) and no AccessKey at all. The triggerer obtains STS keys with
  AssumeRoleWithOIDC and renews them while it waits.
* ``fabric_on_metadata``: lists a Fabric model's versions every 2 s for ``MODELREG_E2E_FABRIC_SECONDS`` on
  ``fabric_metadata`` — a Fabric connection with ``auth_type`` ``metadata`` (instance metadata securitykey), so
  the worker renews its temporary AK/SK mid-task. Returns the connection test's message (source, expiry).
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor

MODEL = os.environ.get("MODELREG_E2E_OIDC_MODEL", "model-demo-fraud")
VERSION = os.environ.get("MODELREG_E2E_OIDC_VERSION", "5.0.0")

with DAG(
    dag_id="modelreg_credential_waits",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["e2e"],
):
    PaiModelVersionApprovedSensor(
        task_id="wait_oidc",
        pai_conn_id="pai_oidc",
        model_id=MODEL,
        version_name=VERSION,
        deferrable=True,
        poke_interval=3,
        timeout=600,
    )

    @task
    def fabric_on_metadata() -> dict[str, object]:
        seconds = float(os.environ.get("MODELREG_E2E_FABRIC_SECONDS", "45"))
        hook = FabricModelRegistryHook("fabric_metadata")
        calls = 0
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                versions = hook.list_model_versions("fabric-model-demo", workspace_id="ws-demo")
                assert versions, "no versions listed"
                calls += 1
                time.sleep(2)
            ok, message = hook.test_connection()
        finally:
            hook.close()
        assert ok, message
        return {"calls": calls, "test_connection": message}

    fabric_on_metadata()
