"""`make e2e` (g): two watchers (two models) on one asset, and a triggerer SIGKILLed right after an announcement.

Both watchers keep their state in the one asset's store, each under its own key; ``deploy`` deploys every announced
(model, version) once: the service name is per (model, version), and an identical spec is not rewritten.
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

MODELS = ("model-e2e-shared-a", "model-e2e-shared-b")
DEPLOY_DIR = Path(os.environ.get("MODELREG_DEPLOY_DIR", tempfile.gettempdir())) / "shared"

shared = Asset(
    name="modelreg_e2e_shared",
    uri="modelreg://e2e/shared",
    watchers=[
        AssetWatcher(
            name=f"watch__{model}",
            trigger=PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id=model, poke_interval=5),
        )
        for model in MODELS
    ],
)


def deploy_version(ref: dict[str, Any]) -> tuple[Path, bool]:
    """Write the EAS spec of ``ref`` unless the identical spec is already there (as the example DAG (c) does)."""
    spec = eas_service_spec(ref)
    text = json.dumps(spec, indent=2, sort_keys=True)
    out = DEPLOY_DIR / f"{spec['name']}.json"
    if out.exists() and out.read_text() == text:
        return out, False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out, True


with DAG(
    dag_id="modelreg_e2e_shared_asset",
    schedule=[shared],
    start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["modelreg", "e2e"],
) as dag:

    @task
    def deploy(**context: Any) -> None:
        for events in context["triggering_asset_events"].values():
            for event in events:
                ref = ((event.extra or {}).get("payload") or {}).get("version")
                if not ref:
                    continue
                path, fresh = deploy_version(ref)
                print(
                    f"MODELREG_E2E_SHARED {'DEPLOYED' if fresh else 'ALREADY'} "
                    f"model={ref['model_id']} version={ref['version_name']} spec={path.name}"
                )

    deploy()
