"""`make e2e`: the deployment users run, end to end, against the registry emulator.

PostgreSQL (Debian's packages, a private cluster on 127.0.0.1) as the metadata DB; separate ``airflow api-server``,
``scheduler`` (LocalExecutor), ``dag-processor`` and ``triggerer`` processes; the example DAGs from ``dags_examples``.

1. DAG (a) triggered through ``/api/v2``: the sensor defers, the triggerer runs the trigger, the approval (made with
   a signed UpdateModelVersion call) reaches the deploy task with the URI. Approval -> deploy-task-start latency is P5.
2. DAG (a) again with the triggerer SIGKILLed mid-wait and restarted: the run still succeeds.
3. The asset-scheduled DAG (c): an approval makes the watcher fire and the deploy DAG run once; after a triggerer
   restart the version is not deployed again.
4. The named-version DAG on a version that gets Rejected: fails at the sensor, once, quickly.
   (e) registry traffic through a real proxy to the emulator over HTTPS with a private CA (``e2e.proxy_check``);
   (f) a deferrable wait on a PAI connection with no secret stored (OIDC role, token file rotated mid-wait) and a
   worker task on Fabric metadata credentials, keys living 20 s so both renew mid-run (``e2e.credentials_check``);
   (g) two watchers (two models) on one asset and a triggerer SIGKILLed right after an announcement: the version
   is announced again and deployed once (``e2e.watch_check``).
   (h) the lifecycle DAG: register, a human approval answered through the HITL REST API, an EAS deploy, and the
   OpenLineage events it sends, read from a file transport (``e2e.lifecycle_check``).
   (i) the EAS canary pipeline with its deploy waiting in a worker: the worker SIGKILLed mid-wait, the retry
   reconnects (one CreateService), the canary moves all traffic; an injected EAS failure fails the deploy with
   its reason and the old service keeps all traffic (``e2e.eas_check``).
   (j) the DataArts Fabric watcher of ``dags_examples/fabric_lifecycle.py``: a version registered in the emulator is
   announced exactly once and the announcing DAG runs once (``e2e.fabric_check``).
5. The connection form in headless Chromium (``e2e.ui_check``), screenshots in ``out/e2e/screenshots/``.
6. Secret scan over every log and every PostgreSQL table (the trigger table included).

Every process started here is stopped by pid at the end, also on failure. Nothing tracked by git is written: P5
goes to ``out/e2e/p5.json`` (a run record; ``make benchmarks-md`` puts it into BENCHMARKS.md), screenshots to
``out/e2e/screenshots/`` (``make docs-screenshots`` refreshes ``docs/`` from there).
"""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

from airflow_provider_modelreg.deploy import service_name
from e2e import credentials_check, eas_check, fabric_check, lifecycle_check, proxy_check, watch_check
from e2e.stack import AIRFLOW, ROOT, Api, Stack, free_port, say, wait_for

WORKDIR = ROOT / ".e2e"
MODEL = "model-demo-fraud"
WATCHED_MODEL = "model-e2e-watch"
LATENCY_TARGET_S = 10.0


def e2e_seed() -> dict[str, Any]:
    """The emulator's demo seed, with no scheduled changes (this script approves and rejects), plus a few versions."""
    from modelreg_emulator import DEMO_SEED_PATH

    seed: dict[str, Any] = json.loads(DEMO_SEED_PATH.read_text())
    fraud = seed["pai"]["models"][0]
    assert fraud["ModelId"] == MODEL
    for version in fraud["Versions"]:
        version.pop("_then", None)
    template = next(v for v in fraud["Versions"] if v["VersionName"] == "1.1.0")

    def variant(name: str, uri: str, created: str | None = None, **fields: Any) -> dict[str, Any]:
        version = copy.deepcopy(template)
        version.update(VersionName=name, Uri=uri, **fields)
        if created is not None:
            version.update(GmtCreateTime=created, GmtModifiedTime=created)
        return version

    fraud["Versions"].append(
        variant("1.3.0", "oss://demo-models.oss-cn-hangzhou.aliyuncs.com/fraud/1.3.0/", "2024-05-01T08:00:00.000Z")
    )
    watched = copy.deepcopy(fraud)
    watched.update(ModelId=WATCHED_MODEL, ModelName="e2e-watched")
    watched["Versions"] = [
        variant("1.0.0", "oss://e2e-models/watch/1.0.0/", ApprovalStatus="Approved"),
        variant("2.0.0", "oss://e2e-models/watch/2.0.0/", "2024-06-01T08:00:00.000Z"),
        variant("3.0.0", "oss://e2e-models/watch/3.0.0/", "2024-07-01T08:00:00.000Z"),
    ]
    seed["pai"]["models"].append(watched)
    watch_check.add_models(seed, watched, variant)
    fraud["Versions"].append(credentials_check.seed_version(template))
    lifecycle_check.add_model(seed, fraud)
    eas_check.add_model(seed, fraud)
    fabric_check.add_model(seed)
    return seed


def dags_folder() -> Path:
    """The example DAGs plus the credentials check's DAG, linked into one folder under the work directory."""
    folder = WORKDIR / "dags"
    folder.mkdir(exist_ok=True)
    sources = [
        ROOT / "dags_examples",
        ROOT / "e2e" / "credential_dags",
        ROOT / "e2e" / "watch_dags",
        ROOT / "e2e" / "eas_dags",
    ]
    for dag_file in [path for source in sources for path in sorted(source.glob("*.py"))]:
        link = folder / dag_file.name
        if not link.exists():
            link.symlink_to(dag_file)
    return folder


def airflow_env(db_url: str, api_port: int, emulator_url: str, seed: dict[str, Any]) -> dict[str, str]:
    cred = seed["pai"]["credentials"][0]
    home = WORKDIR / "airflow-home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            # one key for every component: workers' execution-API tokens and encrypted connection passwords
            "AIRFLOW__API_AUTH__JWT_SECRET": base64.b64encode(os.urandom(32)).decode(),
            "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "MODELREG_DEPLOY_DIR": str(WORKDIR / "deploy"),
            "MODELREG_ASSET_MODEL_ID": WATCHED_MODEL,
            "AIRFLOW_CONN_PAI_DEFAULT": json.dumps(
                {
                    "conn_type": "pai",
                    "login": cred["access_key_id"],
                    "password": cred["access_key_secret"],
                    "extra": {
                        "endpoint": emulator_url,
                        "eas_endpoint": emulator_url,
                        "region": "cn-hangzhou",
                        "workspace_id": "ws-demo",
                    },
                }
            ),
            "AIRFLOW_CONN_FABRIC_DEFAULT": json.dumps(
                {
                    "conn_type": "huaweicloud_fabric",
                    "login": seed["fabric"]["credentials"][0]["ak"],
                    "password": seed["fabric"]["credentials"][0]["sk"],
                    "extra": {
                        "endpoint": emulator_url,
                        "project_id": seed["fabric"]["credentials"][0]["project_id"],
                        "workspace_id": "ws-demo",
                    },
                }
            ),
            "PYTHONUNBUFFERED": "1",
            **lifecycle_check.environment(WORKDIR),
            **fabric_check.environment(),
        }
    )
    return env


def set_status(version: str, status: str, model: str = MODEL) -> datetime:
    """Approve or reject through the registry API (a signed UpdateModelVersion), as a reviewer would."""
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    at = datetime.now(timezone.utc)
    PaiModelRegistryHook("pai_default").update_model_version(model, version, approval_status=status)
    say(f"{model} {version} set to {status} in the registry")
    return at


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def db_rows(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg2

    conn = psycopg2.connect(db_url.replace("postgresql+psycopg2://", "postgresql://"))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def wait_deferred(api: Api, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    def deferred() -> dict[str, Any] | None:
        ti = api.task(dag_id, run_id, task_id)
        if ti["state"] in ("failed", "success", "upstream_failed"):
            raise AssertionError(f"{dag_id}.{task_id} ended {ti['state']} before deferring")
        return ti if ti["state"] == "deferred" else None

    return wait_for(deferred, 120, f"{dag_id}.{task_id} to defer")  # type: ignore[no-any-return]


def wait_run(api: Api, dag_id: str, run_id: str, timeout: float = 180) -> str:
    return wait_for(  # type: ignore[no-any-return]
        lambda: (s := api.run_state(dag_id, run_id)) in ("success", "failed") and s, timeout, f"{dag_id} {run_id}"
    )


def triggers_in_db(db_url: str, classname: str) -> list[tuple[Any, ...]]:
    return db_rows(db_url, f"SELECT id, triggerer_id, kwargs::text FROM trigger WHERE classpath LIKE '%{classname}'")


def settle_scheduled_run(api: Api, dag: str) -> None:
    """DAG (a) is hourly: on creation the scheduler starts the latest interval's run. With no version remembered
    it deploys the newest approved one (1.0.0) at once; let it finish so that it does not hold max_active_runs."""
    wait_for(lambda: api.runs(dag), 90, f"the scheduled run of {dag}")
    wait_for(lambda: all(r["state"] in ("success", "failed") for r in api.runs(dag)), 120, f"scheduled {dag} runs")
    say(f"(a) the scheduled run of {dag} finished: {[r['state'] for r in api.runs(dag)]}")


def scenario_a(api: Api, db_url: str) -> dict[str, Any]:
    dag = "pai_deploy_next_approved"
    settle_scheduled_run(api, dag)
    say("(a) Triggering pai_deploy_next_approved through /api/v2 (wait for the next approved version after 1.0.0)")
    run_id = api.trigger(dag, {"after_version": "1.0.0"})
    wait_deferred(api, dag, run_id, "wait_for_approval")
    rows = wait_for(
        lambda: [r for r in triggers_in_db(db_url, "PaiModelVersionApprovedTrigger") if r[1] is not None],
        60,
        "the triggerer to take the trigger",
    )
    say(f"(a) sensor deferred; trigger row {rows[0][0]} held by triggerer job {rows[0][1]}")
    time.sleep(3)  # the trigger has polled at least once and seen nothing approved
    approved_at = set_status("1.1.0", "Approved")
    state = wait_run(api, dag, run_id)
    assert state == "success", f"(a) run ended {state}"
    sensor = api.task(dag, run_id, "wait_for_approval")
    deploy = api.task(dag, run_id, "deploy")
    ref = api.xcom(dag, run_id, "wait_for_approval")
    assert ref["version_name"] == "1.1.0" and ref["uri"].endswith("/fraud/1.1.0/"), ref
    assert sensor["try_number"] == 1, sensor  # resumed after the trigger event, not retried
    latency = (parse_time(deploy["start_date"]) - approved_at).total_seconds()
    spec = json.loads((WORKDIR / "deploy" / f"{service_name('model-demo-fraud', '1.1.0')}.json").read_text())
    assert spec["model_path"] == "oss://demo-models/fraud/1.1.0/", spec
    say(f"(a) success: deploy task got {ref['uri']}; approval -> deploy start {latency:.1f} s")
    return {"run_id": run_id, "latency_s": latency, "trigger_rows": len(rows)}


def scenario_b(api: Api, stack: Stack, env: dict[str, str]) -> dict[str, Any]:
    dag = "pai_deploy_next_approved"
    say("(b) Triggering again (after 1.1.0), then SIGKILL the triggerer mid-wait")
    run_id = api.trigger(dag, {"after_version": "1.1.0"})
    wait_deferred(api, dag, run_id, "wait_for_approval")
    time.sleep(3)
    killed_pid = stack.procs["triggerer"].pid
    stack.stop("triggerer", signal.SIGKILL)
    stack.start("triggerer", [AIRFLOW, "triggerer"], env)
    approved_at = set_status("1.3.0", "Approved")
    state = wait_run(api, dag, run_id, timeout=240)
    assert state == "success", f"(b) run ended {state}"
    ref = api.xcom(dag, run_id, "wait_for_approval")
    assert ref["version_name"] == "1.3.0", ref
    took = (parse_time(api.task(dag, run_id, "deploy")["start_date"]) - approved_at).total_seconds()
    say(f"(b) success after the triggerer (pid {killed_pid}) was killed: 1.3.0 deployed {took:.1f} s after approval")
    return {"run_id": run_id, "approval_to_deploy_s": took}


def scenario_c(api: Api, stack: Stack, env: dict[str, str], db_url: str) -> dict[str, Any]:
    dags = ("pai_asset_deploy", "pai_asset_deploy_staging")  # two assets, identical watchers: one trigger
    say("(c) Asset watcher on two assets of one model: approve 2.0.0, expect one deploy run per asset")
    wait_for(
        lambda: [r for r in triggers_in_db(db_url, "PaiModelVersionApprovedEventTrigger") if r[1] is not None],
        120,
        "the triggerer to run the asset watcher",
    )
    time.sleep(12)  # one poll (10 s) sets the start point: 1.0.0, approved before the watcher started
    for dag in dags:
        assert api.runs(dag) == [], f"{dag}: the watcher announced a version approved before it started"
    set_status("2.0.0", "Approved", model=WATCHED_MODEL)
    for dag in dags:
        wait_for(lambda dag=dag: [r for r in api.runs(dag) if r["state"] == "success"], 120, f"{dag}'s run")
    prod = WORKDIR / "deploy" / f"{service_name(WATCHED_MODEL, '2.0.0')}.json"
    staging = WORKDIR / "deploy" / "staging" / prod.name
    assert prod.exists() and staging.exists(), sorted(str(p) for p in (WORKDIR / "deploy").rglob("*.json"))
    written_at = (prod.stat().st_mtime, staging.stat().st_mtime)
    say("(c) both deploy DAGs ran for 2.0.0; stopping the triggerer, approving 3.0.0 while it is down")
    stack.stop("triggerer")
    set_status("3.0.0", "Approved", model=WATCHED_MODEL)
    stack.start("triggerer", [AIRFLOW, "triggerer"], env)
    for dag in dags:
        wait_for(lambda dag=dag: len([r for r in api.runs(dag) if r["state"] == "success"]) >= 2, 180, f"{dag} 3.0.0")
    time.sleep(25)  # two more polls by the restarted watcher
    counts = {dag: len(api.runs(dag)) for dag in dags}
    assert (prod.stat().st_mtime, staging.stat().st_mtime) == written_at, "2.0.0 was deployed again after the restart"
    assert counts == dict.fromkeys(dags, 2), counts
    for folder in (prod.parent, staging.parent):
        assert (folder / f"{service_name(WATCHED_MODEL, '3.0.0')}.json").exists(), folder
    say(f"(c) after the restart: 3.0.0 (approved while it was down) deployed once per asset, 2.0.0 not again: {counts}")
    return {"runs": counts}


def scenario_d(api: Api) -> dict[str, Any]:
    dag = "pai_deploy_named_version"
    say("(d) Named version 1.2.0-rc1, then rejected in the registry")
    run_id = api.trigger(dag, {"version_name": "1.2.0-rc1"})
    wait_deferred(api, dag, run_id, "wait_for_named_version")
    rejected_at = set_status("1.2.0-rc1", "Rejected")
    state = wait_run(api, dag, run_id)
    assert state == "failed", f"(d) run ended {state}"
    sensor = api.task(dag, run_id, "wait_for_named_version")
    assert sensor["state"] == "failed" and sensor["try_number"] == 1, sensor
    took = (parse_time(sensor["end_date"]) - rejected_at).total_seconds()
    assert took < 30, took
    say(f"(d) failed at the sensor, once (try 1), {took:.1f} s after the rejection")
    return {"run_id": run_id, "reject_to_fail_s": took}


def secret_scan(db_url: str, secrets: list[str], stack: Stack) -> dict[str, Any]:
    say("Secret scan: every log file and every row of every PostgreSQL table")
    texts: list[tuple[str, str]] = []
    for path in [*(WORKDIR / "airflow-home" / "logs").rglob("*"), *stack.logs.glob("*.log")]:
        if path.is_file():
            texts.append((str(path), path.read_text(errors="replace")))
    log_files = len(texts)
    tables = [r[0] for r in db_rows(db_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    rows_per_table: dict[str, int] = {}
    for table in tables:
        rows = db_rows(db_url, f'SELECT t::text FROM "{table}" t')
        rows_per_table[table] = len(rows)
        texts.extend((f"table {table}", str(r[0])) for r in rows)
    assert rows_per_table.get("trigger", 0) > 0, "the trigger table was empty: nothing to scan"
    assert rows_per_table.get("xcom", 0) > 0 and rows_per_table.get("task_instance", 0) > 0, rows_per_table
    assert any("oss://demo-models" in t for _, t in texts), "the scan did not see the real content"
    leaks = [where for where, text in texts for s in secrets if s in text]
    leaks += [where for where, text in texts if "Signature=" in text or "X-Auth-Token" in text]
    assert not leaks, f"secrets found in: {sorted(set(leaks))}"
    scanned_rows = sum(rows_per_table.values())
    say(f"Secret scan clean: {log_files} log files, {scanned_rows} rows in {len(tables)} tables")
    return {
        "log_files": log_files,
        "rows": scanned_rows,
        "tables": len(tables),
        "trigger_rows": rows_per_table["trigger"],
    }


def write_p5(result: dict[str, Any]) -> None:
    """P5 as a run record (date, machine, versions of this run) under the results folder."""
    from bench.run import P5_RESULTS, run_meta, write_records

    write_records(P5_RESULTS, {"p5": {"run": run_meta("make e2e"), "result": result}})


def _only() -> set[str]:
    """Scenario letters from ``E2E_ONLY`` (e.g. ``h,i``): a developer's loop over one scenario, never CI's run."""
    return {letter.strip() for letter in os.environ.get("E2E_ONLY", "").split(",") if letter.strip()}


def main() -> int:
    started = time.monotonic()
    if WORKDIR.exists():
        shutil.rmtree(WORKDIR)
    WORKDIR.mkdir()
    (WORKDIR / "deploy").mkdir()
    stack = Stack(WORKDIR)
    results: dict[str, Any] = {}
    try:
        db_url = stack.start_postgres()
        seed = e2e_seed()
        emulator_url = stack.start_emulator(seed, dict(os.environ), *credentials_check.emulator_flags())
        api_port = free_port()
        env = airflow_env(db_url, api_port, emulator_url, seed)
        env.update(credentials_check.connections(WORKDIR, emulator_url, seed))
        os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_HOME"))})
        say("airflow db migrate (PostgreSQL) ...")
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        stack.start("api-server", [AIRFLOW, "api-server", "-H", "127.0.0.1", "-p", str(api_port)], env)
        for name in ("scheduler", "dag-processor", "triggerer"):
            stack.start(name, [AIRFLOW, name], env)
        api_url = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: httpx.get(f"{api_url}/api/v2/monitor/health").status_code == 200, 120, "the api-server")
        api = Api(api_url)
        dags = (
            "pai_deploy_next_approved",
            "pai_deploy_named_version",
            "pai_asset_deploy",
            "pai_asset_deploy_staging",
            credentials_check.DAG_ID,
            watch_check.DAG_ID,
            lifecycle_check.DAG_ID,
            eas_check.DAG_ID,
            fabric_check.DAG_ID,
        )
        wait_for(lambda: all(api.get(f"/dags/{d}") for d in dags), 120, "the dag-processor to parse the DAGs")
        say(f"Airflow is up ({time.monotonic() - started:.0f} s): api-server, scheduler, dag-processor, triggerer")

        only = _only()
        if not only or "a" in only:
            results["a"] = scenario_a(api, db_url)
        if not only or "b" in only:
            results["b"] = scenario_b(api, stack, env)
        if not only or "c" in only:
            results["c"] = scenario_c(api, stack, env, db_url)
        if not only or "d" in only:
            results["d"] = scenario_d(api)
        if not only or "g" in only:
            results["g"] = watch_check.run(
                api,
                stack,
                env,
                lambda sql: db_rows(db_url, sql),
                set_status,
                WORKDIR / "airflow-home" / "logs",
            )
        if not only or "j" in only:
            results["j"] = fabric_check.run(api, lambda sql: db_rows(db_url, sql), WORKDIR / "airflow-home" / "logs")
        if not only or "e" in only:
            results["e"] = proxy_check.run(stack, WORKDIR, dict(os.environ), seed)
        if not only or "f" in only:
            results["f"] = credentials_check.run(api, WORKDIR, emulator_url, set_status)
        for _ in range(int(os.environ.get("E2E_REPEAT", "1")) if only else 1):
            if not only or "h" in only:
                results["h"] = lifecycle_check.run(api, WORKDIR)
            if not only or "i" in only:
                results["i"] = eas_check.run(api, emulator_url)
        if only:  # a developer's partial run (E2E_ONLY): no browser, scan or P5 record, which need every scenario
            say(f"make e2e ran only {sorted(only)} in {time.monotonic() - started:.0f} s")
            return 0

        if "--no-browser" not in sys.argv:
            from e2e.ui_check import run_ui_check

            say("Connection form in headless Chromium ...")
            from e2e.ui_check import SCREENSHOTS

            results["ui"] = run_ui_check(api_url, emulator_url, SCREENSHOTS)

        secrets = [
            seed["pai"]["credentials"][0]["access_key_secret"],
            seed["fabric"]["credentials"][0]["sk"],
            *credentials_check.TOKENS_WRITTEN,
            *credentials_check.issued_secrets(emulator_url),
        ]
        results["scan"] = secret_scan(db_url, secrets, stack)
        results["duration_s"] = round(time.monotonic() - started)
        latency = results["a"]["latency_s"]
        write_p5(
            {
                "latency_s": round(latency, 2),
                "killed_triggerer_latency_s": round(results["b"]["approval_to_deploy_s"], 2),
                "target_s": LATENCY_TARGET_S,
                "poke_interval_s": 5,
                "e2e_duration_s": results["duration_s"],
            }
        )
        say(f"P5 approval -> deploy-task start: {latency:.1f} s (target <= {LATENCY_TARGET_S:.0f} s)")
    finally:
        say("Stopping every process started ...")
        stack.stop_all()
    (WORKDIR / "results.json").write_text(json.dumps(results, indent=2, default=str))
    say(f"make e2e passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
