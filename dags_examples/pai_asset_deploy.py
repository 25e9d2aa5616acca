"""(c) Event-driven: deploy whenever a new version of a PAI model is approved, with no waiting task.

An ``AssetWatcher`` runs :class:`PaiModelVersionApprovedEventTrigger` in the triggerer; each newly approved version
becomes an asset event whose extra carries the ModelVersionRef; the deploy DAG is scheduled on the asset.
Delivery is at least once (see the trigger's docstring), so ``deploy`` is idempotent per version: the spec file
is named after the version and an identical spec is not rewritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_modelreg.deploy import eas_service_spec
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger

DEPLOY_DIR = os.environ.get("MODELREG_DEPLOY_DIR", os.path.join(tempfile.gettempdir(), "modelreg-deploy"))
MODEL_ID = os.environ.get("MODELREG_ASSET_MODEL_ID", "model-demo-fraud")

# --8<-- [start:watcher]
approved_versions = Asset(
    name=f"pai_approved_versions__{MODEL_ID}",
    uri=f"modelreg://pai/{MODEL_ID}",
    watchers=[
        AssetWatcher(
            name=f"pai_approval_watcher__{MODEL_ID}",
            trigger=PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id=MODEL_ID, poke_interval=10),
        )
    ],
)
# --8<-- [end:watcher]


# A second asset on the same model (a staging deploy) with an identical watcher: Airflow runs one trigger for
# watchers with equal kwargs, and that trigger keeps its state in both assets' stores.
approved_versions_staging = Asset(
    name=f"pai_approved_versions_staging__{MODEL_ID}",
    uri=f"modelreg://pai/{MODEL_ID}/staging",
    watchers=[
        AssetWatcher(
            name=f"pai_approval_watcher_staging__{MODEL_ID}",
            trigger=PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id=MODEL_ID, poke_interval=10),
        )
    ],
)


def deploy_version(ref: dict[str, Any], deploy_dir: str = DEPLOY_DIR) -> tuple[Path, bool]:
    """Write the EAS spec of ``ref`` unless the identical spec is already there. Returns (path, written)."""
    spec = json.dumps(eas_service_spec(ref), indent=2, sort_keys=True)
    out = Path(deploy_dir) / f"{eas_service_spec(ref)['name']}.json"
    if out.exists() and out.read_text() == spec:
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(spec)
    return out, True


def deploy_events(context: dict[str, Any], deploy_dir: str) -> list[str]:
    """Deploy every version announced by the triggering asset events (Airflow may fold several into one run)."""
    written = []
    for events in context["triggering_asset_events"].values():
        for event in events:
            # Airflow stores a watcher's trigger event as extra {"from_trigger": true, "payload": <event>}
            ref = ((event.extra or {}).get("payload") or {}).get("version")
            if not ref:
                continue
            path, fresh = deploy_version(ref, deploy_dir)
            print(f"{'Spec written' if fresh else 'Already deployed'} for {ref['version_name']}: {path}")
            written.append(str(path))
    return written


with DAG(
    dag_id="pai_asset_deploy",
    schedule=[approved_versions],
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["modelreg", "pai", "example", "asset"],
) as dag:

    @task
    def deploy(**context: Any) -> list[str]:
        """Deploy every version announced by the triggering asset events."""
        return deploy_events(context, DEPLOY_DIR)

    deploy()


with DAG(
    dag_id="pai_asset_deploy_staging",
    schedule=[approved_versions_staging],
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["modelreg", "pai", "example", "asset"],
) as staging_dag:

    @task(task_id="deploy")
    def deploy_staging(**context: Any) -> list[str]:
        """Deploy every announced version to staging."""
        return deploy_events(context, str(Path(DEPLOY_DIR) / "staging"))

    deploy_staging()
