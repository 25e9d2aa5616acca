"""`make demo`: run example (a) against the local emulator and tell what happens, in plain words.

1. Prepare the Airflow metadata DB, then start the registry emulator (its own process) with its built-in demo seed:
   version 1.1.0 of ``model-demo-fraud`` is Pending and turns Approved 10 s after the emulator starts.
2. Point ``AIRFLOW_CONN_PAI_DEFAULT`` at it, remember 1.0.0 as the version deployed last (Airflow Variable).
3. ``airflow dags test pai_deploy_next_approved``: the sensor checks once, defers, the trigger sees 1.1.0 approved,
   the deploy task receives the URI and writes the EAS spec.
4. Stop the emulator; exit 0 only if the run succeeded and the spec was written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from modelreg_emulator import DEMO_SEED_PATH

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".demo"
DAG_ID = "pai_deploy_next_approved"
MODEL_ID = "model-demo-fraud"

#: (substring of a log line, what to tell the user)
MILESTONES = [
    ("no Approved version newer than the anchor", "The sensor checked once: no version newer than 1.0.0 approved yet."),
    ("Deferring: the triggerer waits", "Deferred: the trigger now polls the registry (no worker slot held)."),
    ("is Approved; uri", "Approved: the sensor hands the version (with its URI) to XCom."),
    ("Spec written", "Deploy task received the URI and wrote the EAS service spec."),
]


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def demo_seed() -> Path:
    """The built-in seed without its timers: the demo approves 1.1.0 itself, once the sensor has deferred (a timer
    from emulator start would race a slow machine's start-up and approve before the sensor first looks)."""
    seed = json.loads(DEMO_SEED_PATH.read_text())
    for model in seed["pai"]["models"]:
        for version in model.get("Versions", []):
            version.pop("_then", None)
    path = STATE / "seed.json"
    path.write_text(json.dumps(seed))
    return path


def approve_later(url: str, delay: float) -> None:
    """A reviewer approves 1.1.0 some time later (a signed UpdateModelVersion call, as the PAI console makes)."""

    def approve() -> None:
        from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

        os.environ["AIRFLOW_CONN_PAI_DEFAULT"] = airflow_env(url)["AIRFLOW_CONN_PAI_DEFAULT"]
        PaiModelRegistryHook().update_model_version(MODEL_ID, "1.1.0", approval_status="Approved")
        say("A reviewer approved 1.1.0 in the registry.")

    threading.Timer(delay, approve).start()


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg_emulator", "--port", "0", "--seed", str(demo_seed())],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    prefix = "modelreg-emulator listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, line[len(prefix) :]


def airflow_env(url: str) -> dict[str, str]:
    seed = json.loads(DEMO_SEED_PATH.read_text())
    cred = seed["pai"]["credentials"][0]
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(STATE / "airflow-home"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags_examples"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "MODELREG_DEPLOY_DIR": str(STATE / "deploy"),
            "AIRFLOW_CONN_PAI_DEFAULT": json.dumps(
                {
                    "conn_type": "pai",
                    "login": cred["access_key_id"],
                    "password": cred["access_key_secret"],
                    "extra": {"endpoint": url, "region": "cn-hangzhou", "workspace_id": "ws-demo"},
                }
            ),
        }
    )
    return env


def airflow(env: dict[str, str], *args: str) -> None:
    exe = str(Path(sys.executable).with_name("airflow"))
    done = subprocess.run([exe, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:  # say why (an upstream break shows here first: make matrix's newest cells read it)
        say(
            f"`airflow {' '.join(args)}` failed (exit {done.returncode}):\n" + "\n".join(done.stdout.splitlines()[-30:])
        )
        raise subprocess.CalledProcessError(done.returncode, [exe, *args])


def main() -> int:
    started = time.monotonic()
    env = airflow_env("http://127.0.0.1:0")  # the endpoint is set once the emulator listens
    (STATE / "deploy").mkdir(parents=True, exist_ok=True)
    say("Preparing the Airflow metadata DB (SQLite under .demo/) ...")
    airflow(env, "db", "migrate")
    airflow(env, "variables", "set", f"modelreg_pai_last_deployed__{MODEL_ID}", "1.0.0")
    say("Starting the local PAI / DataArts Fabric registry emulator ...")
    emulator, url = start_emulator()
    try:
        say(f"Emulator ready at {url}; model {MODEL_ID}: 1.0.0 Approved (deployed last), 1.1.0 Pending.")
        env = airflow_env(url)
        say(f"Running DAG {DAG_ID} with `airflow dags test` (1.1.0 gets approved 3 s after the sensor defers) ...")
        exe = str(Path(sys.executable).with_name("airflow"))
        proc = subprocess.Popen(
            [exe, "dags", "test", DAG_ID],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert proc.stdout is not None
        seen: set[str] = set()
        spec_path = None
        for line in proc.stdout:
            for needle, words in MILESTONES:
                if needle in line and needle not in seen:
                    seen.add(needle)
                    say(words)
                    if needle.startswith("Deferring"):
                        approve_later(url, 3.0)
                    detail = line.split(needle, 1)[1] if needle in ("is Approved; uri", "Spec written") else ""
                    detail = detail.split(" [airflow.", 1)[0].strip()  # drop the logger name and source location
                    if detail:
                        say(f"    {needle} {detail}"[:200])
            if "Spec written" in line and ": " in line:
                spec_path = line.rsplit(": ", 1)[1].strip()
        code = proc.wait()
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        say("Emulator stopped.")
    if code != 0 or spec_path is None or not Path(spec_path).exists():
        say(f"FAILED (airflow dags test exit code {code}); see the output above.")
        return 1
    spec = json.loads(Path(spec_path).read_text())
    say(f"Spec file: {spec_path}")
    say(f"    service {spec['name']}: model_path {spec['model_path']}, processor {spec.get('processor')}")
    say(f"Done in {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
