"""`make e2e` (j): the DataArts Fabric watcher of the example DAG file ``dags_examples/fabric_lifecycle.py`` on the
real scheduler and triggerer (Airflow 3.3: a shared stream in ack mode, the asset's state store).

The file's ``AssetWatcher`` runs ``FabricVersionEventTrigger`` on a model of its own here (``MODEL``, through
``MODELREG_FABRIC_MODEL_ID``; polled every ``POKE_INTERVAL`` s). Once the watcher's start point is in the asset's
store (nothing announced: the seeded version was there before it), a version is registered in the emulator with a
signed UpdateModelDefinition, as a fine-tuning job would: it is announced exactly once (one asset event), and the
announcing DAG ``fabric_version_announced`` runs once and logs it once, also after a few more polls.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from e2e.stack import Api, say, wait_for

DAG_ID = "fabric_version_announced"
WORKSPACE = "ws-demo"
MODEL = "fabric-model-e2e-watch"
ASSET = f"fabric_new_versions__{MODEL}"
POKE_INTERVAL = 5
VERSION = "e2e-watched-1"
MODEL_PATH = "obs://e2e-llm/watch/e2e-watched-1/"


def add_model(seed: dict[str, Any]) -> None:
    """The watched model in the demo workspace, with one version (the watcher's start point)."""
    workspace = next(w for w in seed["fabric"]["workspaces"] if w["id"] == WORKSPACE)
    template = workspace["models"][0]
    model = copy.deepcopy(template)
    model.update(id=MODEL, name="e2e-fabric-watched", versions=[copy.deepcopy(template["versions"][0])])
    model["versions"][0].update(id="0f9e6c1a-0000-4000-8000-0000000e2e01", name="e2e-seeded")
    workspace["models"].append(model)


def environment() -> dict[str, str]:
    """The example file's watcher on the model of this scenario, polling every ``POKE_INTERVAL`` s."""
    return {"MODELREG_FABRIC_MODEL_ID": MODEL, "MODELREG_FABRIC_WATCH_INTERVAL": str(POKE_INTERVAL)}


def announcements(logs: Path) -> list[str]:
    """The announcing task's log lines naming a version of the model ("New Fabric version <name> (<id>) of ...")."""
    folder = logs / f"dag_id={DAG_ID}"
    pattern = re.compile(rf"New Fabric version (\S+) \(\S+\) of {re.escape(MODEL)}")
    return [
        match.group(1)
        for path in (folder.rglob("attempt=*.log") if folder.exists() else [])
        for match in pattern.finditer(path.read_text())
    ]


def run(api: Api, db_rows: Callable[[str], list[tuple[Any, ...]]], logs: Path) -> dict[str, Any]:
    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook

    say(f"(j) The Fabric watcher of dags_examples/fabric_lifecycle.py: a version of {MODEL} announced exactly once")

    def events() -> list[str]:
        rows = db_rows(
            "SELECT ae.extra::text FROM asset_event ae JOIN asset a ON a.id = ae.asset_id "
            f"WHERE a.name = '{ASSET}' ORDER BY ae.timestamp"
        )
        return [found.group(1) if (found := re.search(r'"version_name": "([^"]+)"', r[0])) else "?" for r in rows]

    def start_point() -> bool:
        rows = db_rows(
            "SELECT s.key FROM asset_state_store s JOIN asset x ON x.id = s.asset_id "
            f"WHERE x.name = '{ASSET}' AND s.key LIKE 'modelreg_fabric_watch:{MODEL}:%'"
        )
        return bool(rows)

    wait_for(start_point, 120, "the Fabric watcher's start point in the asset's store")
    assert events() == [] and api.runs(DAG_ID) == [], "the watcher announced a version that was there before it"
    hook = FabricModelRegistryHook("fabric_default")
    try:
        registered = time.monotonic()
        hook.update_model(
            MODEL, workspace_id=WORKSPACE, version_name=VERSION, model_path=MODEL_PATH, base_model_type="QWEN_2_72B"
        )
    finally:
        hook.close()
    say(f"(j) {MODEL} version {VERSION} registered in the emulator (UpdateModelDefinition)")
    wait_for(lambda: VERSION in events(), 120, f"the asset event of {VERSION}")
    announced_s = time.monotonic() - registered

    def settled() -> bool:
        runs = api.runs(DAG_ID)
        return bool(runs) and all(r["state"] in ("success", "failed") for r in runs) and bool(announcements(logs))

    wait_for(settled, 180, f"the {DAG_ID} run", interval=2)
    time.sleep(3 * POKE_INTERVAL)  # a late duplicate would show now
    runs = api.runs(DAG_ID)
    assert [r["state"] for r in runs] == ["success"], [r["state"] for r in runs]
    assert events() == [VERSION], events()  # announced exactly once, nothing else
    assert announcements(logs) == [VERSION], announcements(logs)
    say(f"(j) {VERSION} announced once, {announced_s:.1f} s after its registration; {DAG_ID} ran once")
    return {"announced_after_s": round(announced_s, 1), "events": events(), "runs": len(runs)}
