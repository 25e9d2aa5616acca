"""`make e2e` (g): the watcher's delivery promise with real services (Airflow 3.3: shared streams in ack mode).

Two watchers (two models whose version names collide) on one asset (DAG ``modelreg_e2e_shared_asset``):

1. both models' 2.0.0 are approved: each is announced and deployed once (the two states do not mix);
2. model A's 3.0.0 is approved and the triggerer is SIGKILLed as soon as its asset event is stored, before the
   watcher's state could be written (that happens only after Airflow confirms the event and the next poll moves
   past it); model B's 3.0.0 is approved while the triggerer is down;
3. after the restart, A's 3.0.0 is announced again (at least once: two asset events) and B's 3.0.0 once; then A's
   4.0.0 is approved (Airflow <= 3.3.2 may hold an asset's event that arrived a moment after another until the
   asset's next event: apache/airflow#54659), and every (model, version) is deployed exactly once, counted from the
   deploy task's log lines ("DEPLOYED"; a run that sees an announcement again logs "ALREADY").
"""

from __future__ import annotations

import copy
import json
import re
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from e2e.stack import AIRFLOW, Api, Stack, say, wait_for

DAG_ID = "modelreg_e2e_shared_asset"
ASSET = "modelreg_e2e_shared"
MODELS = ("model-e2e-shared-a", "model-e2e-shared-b")
POKE_INTERVAL = 5


def add_models(seed: dict[str, Any], template: dict[str, Any], variant: Callable[..., dict[str, Any]]) -> None:
    """Two models with the same version names: 1.0.0 Approved (the start point), 2.0.0 and 3.0.0 Pending."""
    for model in MODELS:
        entry = copy.deepcopy(template)
        entry.update(ModelId=model, ModelName=model)
        entry["Versions"] = [
            variant("1.0.0", f"oss://e2e-models/{model}/1.0.0/", ApprovalStatus="Approved"),
            variant("2.0.0", f"oss://e2e-models/{model}/2.0.0/", "2024-06-01T08:00:00.000Z"),
            variant("3.0.0", f"oss://e2e-models/{model}/3.0.0/", "2024-07-01T08:00:00.000Z"),
            variant("4.0.0", f"oss://e2e-models/{model}/4.0.0/", "2024-08-01T08:00:00.000Z"),
        ]
        seed["pai"]["models"].append(entry)


def stored(value: Any) -> dict[str, Any]:
    """A state as the store holds it (JSON text, possibly encoded twice)."""
    while isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}


def events(db_rows: Callable[[str], list[tuple[Any, ...]]]) -> list[tuple[datetime, str, str]]:
    """The asset events of the shared asset: (time, model, version), oldest first."""
    rows = db_rows(
        "SELECT ae.timestamp, ae.extra::text FROM asset_event ae JOIN asset a ON a.id = ae.asset_id "
        f"WHERE a.name = '{ASSET}' ORDER BY ae.timestamp"
    )
    out = []
    for stamp, extra in rows:
        model = re.search(r'"model_id": "([^"]+)"', extra)
        version = re.search(r'"version_name": "([^"]+)"', extra)
        out.append((stamp, model.group(1) if model else "?", version.group(1) if version else "?"))
    return out


def deploys(logs: Path) -> dict[str, dict[str, int]]:
    """From the deploy task's log lines: {"model:version": {"DEPLOYED": n, "ALREADY": n}}."""
    counts: dict[str, dict[str, int]] = {}
    folder = logs / f"dag_id={DAG_ID}"
    for path in folder.rglob("attempt=*.log") if folder.exists() else []:
        for match in re.finditer(r"MODELREG_E2E_SHARED (DEPLOYED|ALREADY) model=(\S+) version=(\S+)", path.read_text()):
            key = f"{match.group(2)}:{match.group(3)}"
            counts.setdefault(key, {"DEPLOYED": 0, "ALREADY": 0})[match.group(1)] += 1
    return counts


def run(
    api: Api,
    stack: Stack,
    env: dict[str, str],
    db_rows: Callable[[str], list[tuple[Any, ...]]],
    set_status: Callable[..., datetime],
    logs: Path,
) -> dict[str, Any]:
    a, b = MODELS
    say("(g) Two watchers (two models, colliding version names) on one asset; SIGKILL right after an announcement")

    def states() -> list[tuple[Any, ...]]:
        return db_rows(
            "SELECT s.key, s.value FROM asset_state_store s JOIN asset x ON x.id = s.asset_id "
            f"WHERE x.name = '{ASSET}' AND s.key LIKE 'modelreg_pai_watch:%'"
        )

    wait_for(lambda: len(states()) == 2, 120, "both watchers' start points in the asset's store")
    assert api.runs(DAG_ID) == [], "a watcher announced a version approved before it started"
    for model in MODELS:
        set_status("2.0.0", "Approved", model=model)
    wait_for(lambda: len(events(db_rows)) >= 2, 120, "both 2.0.0 announcements")

    set_status("3.0.0", "Approved", model=a)

    def announced() -> datetime | None:
        found = [stamp for stamp, model, version in events(db_rows) if (model, version) == (a, "3.0.0")]
        return found[0] if found else None

    stored_at = wait_for(announced, 120, f"{a} 3.0.0's asset event", interval=0.1)
    killed_pid = stack.procs["triggerer"].pid
    stack.stop("triggerer", signal.SIGKILL)
    killed = time.monotonic()
    state_a = [stored(v) for k, v in states() if f":{a}:" in k]
    say(f"(g) triggerer (pid {killed_pid}) SIGKILLed right after {a} 3.0.0 was stored ({stored_at}); state: {state_a}")
    newest = state_a[0].get("newest") if state_a else None
    # the state may or may not have stored 2.0.0 yet (it is written once the next poll moves past an event), but
    # never 3.0.0: its event was stored a moment ago
    assert newest and newest[1] in ("1.0.0", "2.0.0"), f"the state moved past 3.0.0 before the kill: {state_a}"
    set_status("3.0.0", "Approved", model=b)  # while the triggerer is down
    stack.start("triggerer", [AIRFLOW, "triggerer"], env)

    def again() -> bool:
        got = events(db_rows)
        return (
            sum((m, v) == (a, "3.0.0") for _, m, v in got) >= 2 and sum((m, v) == (b, "3.0.0") for _, m, v in got) >= 1
        )

    wait_for(again, 180, f"{a} 3.0.0 announced again and {b} 3.0.0 announced after the restart")
    reannounced = time.monotonic() - killed
    # Airflow <= 3.3.2 consumes an asset's events up to its queue row's creation time and then deletes the row:
    # an event of the same asset stored a moment later (here: the other watcher's, in its own transaction) waits
    # for the asset's next event (apache/airflow#54659). One more approval is that next event.
    set_status("4.0.0", "Approved", model=a)
    wanted = {f"{m}:{v}" for m in MODELS for v in ("2.0.0", "3.0.0")} | {f"{a}:4.0.0"}

    def settled() -> bool:
        runs = api.runs(DAG_ID)
        return wanted <= set(deploys(logs)) and bool(runs) and all(r["state"] in ("success", "failed") for r in runs)

    wait_for(settled, 240, "a deploy of every announced (model, version)", interval=2)
    time.sleep(3 * POKE_INTERVAL)  # a late duplicate would show now
    wait_for(lambda: all(r["state"] in ("success", "failed") for r in api.runs(DAG_ID)), 120, "deploy runs")
    runs = api.runs(DAG_ID)
    assert all(r["state"] == "success" for r in runs), [r["state"] for r in runs]
    counts = deploys(logs)
    per_version: dict[str, int] = {}
    for _, m, v in events(db_rows):
        per_version[f"{m}:{v}"] = per_version.get(f"{m}:{v}", 0) + 1
    assert set(counts) == wanted, counts
    assert all(c["DEPLOYED"] == 1 for c in counts.values()), counts  # each (model, version) deployed once
    # announced again after the kill (Airflow may fold the second event into a run, or consume it with another)
    assert per_version[f"{a}:3.0.0"] >= 2, (per_version, counts)
    # nothing else was announced: no start point, no version of the other model, nothing not approved
    assert set(per_version) == wanted, per_version
    say(
        f"(g) announcements per (model, version): {per_version}; deploys: "
        f"{ {k: c['DEPLOYED'] for k, c in counts.items()} }; {a} 3.0.0 announced again {reannounced:.1f} s after "
        f"the kill and deployed once; {len(runs)} runs"
    )
    return {
        "announcements": per_version,
        "deploys": counts,
        "reannounced_after_kill_s": round(reannounced, 1),
        "runs": len(runs),
    }
