"""`make e2e` (f): connections that store no secret, with keys short-lived enough to be renewed mid-wait.

* ``pai_oidc``: PAI with ``credential_source`` ``oidc_role_arn`` — an OIDC token file (as ACK's RRSA mounts it),
  exchanged at the emulator's STS (AssumeRoleWithOIDC) for STS keys. DAG ``modelreg_credential_waits`` defers on
  it; the token file is rotated mid-wait; the triggerer renews the keys; the approval then resumes the sensor.
* ``fabric_metadata``: Fabric with ``auth_type`` ``metadata`` — temporary AK/SK from the emulator's instance
  metadata ``securitykey`` (token mode). The DAG's worker task lists versions for longer than a key lives.

The emulator issues keys living :data:`LIFETIME_S` seconds (``--credential-lifetime``), so both renew at least
once. The emulator's request log proves the renewals; the issued keys and the OIDC tokens go into the secret scan.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from e2e.stack import Api, say, wait_for
from modelreg_emulator.ali_credentials import make_oidc_token

DAG_ID = "modelreg_credential_waits"
MODEL = "model-demo-fraud"
VERSION = "5.0.0"
#: lifetime of the emulator's temporary keys in this run (renewed at 80 %: about every 16 s)
LIFETIME_S = 20
FABRIC_TASK_S = 45
ROLE_ARN = "acs:ram::1234567890123456:role/e2e-airflow"
OIDC_PROVIDER_ARN = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-e2e"
#: the OIDC tokens written to the token file in this run (for the secret scan)
TOKENS_WRITTEN: list[str] = []


def emulator_flags() -> list[str]:
    return ["--credential-lifetime", str(LIFETIME_S)]


def seed_version(template: dict[str, Any]) -> dict[str, Any]:
    """The version ``wait_oidc`` waits for (Pending until this check approves it)."""
    version = json.loads(json.dumps(template))
    version.update(
        VersionName=VERSION,
        Uri="oss://demo-models.oss-cn-hangzhou.aliyuncs.com/fraud/5.0.0/",
        ApprovalStatus="Pending",
        GmtCreateTime="2024-08-01T08:00:00.000Z",
        GmtModifiedTime="2024-08-01T08:00:00.000Z",
    )
    return version


def write_token(workdir: Path, lifetime: float) -> None:
    """Put a fresh OIDC token in the token file, as the kubelet does when it rotates the projected token."""
    token = make_oidc_token(subject="system:serviceaccount:airflow:airflow", lifetime=lifetime)
    TOKENS_WRITTEN.append(token)
    (workdir / "oidc-token").write_text(token)


def connections(workdir: Path, emulator_url: str, seed: dict[str, Any]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` for the two connections (no AccessKey, no AK/SK in either) and the DAG's settings."""
    token_file = workdir / "oidc-token"
    project = seed["fabric"]["credentials"][0]["project_id"]
    return {
        "AIRFLOW_CONN_PAI_OIDC": json.dumps(
            {
                "conn_type": "pai",
                "extra": {
                    "credential_source": "oidc_role_arn",
                    "endpoint": emulator_url,
                    "region": "cn-hangzhou",
                    "sts_endpoint": emulator_url,
                    "role_arn": ROLE_ARN,
                    "oidc_provider_arn": OIDC_PROVIDER_ARN,
                    "oidc_token_file": str(token_file),
                },
            }
        ),
        "AIRFLOW_CONN_FABRIC_METADATA": json.dumps(
            {
                "conn_type": "huaweicloud_fabric",
                "extra": {
                    "auth_type": "metadata",
                    "endpoint": emulator_url,
                    "metadata_endpoint": emulator_url,
                    "project_id": project,
                    "workspace_id": "ws-demo",
                },
            }
        ),
        "MODELREG_E2E_OIDC_MODEL": MODEL,
        "MODELREG_E2E_OIDC_VERSION": VERSION,
        "MODELREG_E2E_FABRIC_SECONDS": str(FABRIC_TASK_S),
    }


def _admin(emulator_url: str, path: str) -> Any:
    answer = httpx.get(f"{emulator_url}/_emulator/{path}", headers={"X-Modelreg-Admin": "1"}, trust_env=False)
    answer.raise_for_status()
    return answer.json()


def route_counts(emulator_url: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in _admin(emulator_url, "requests")["requests"]:
        if row["authenticated"]:
            counts[row["route"]] = counts.get(row["route"], 0) + row["count"]
    return counts


def issued_secrets(emulator_url: str) -> list[str]:
    """Every temporary secret and security token the emulator issued in this run (for the secret scan)."""
    keys = _admin(emulator_url, "credentials")["temporary_keys"]
    return [value for k in keys for value in (k["secret"], k["token"])]


def run(api: Api, workdir: Path, emulator_url: str, approve: Any) -> dict[str, Any]:
    say(f"(f) Connections without stored secrets (OIDC role for PAI, metadata for Fabric), keys living {LIFETIME_S} s")
    # The first token expires before the first key's renewal: only a renewal that reads the rotated file succeeds.
    write_token(workdir, lifetime=LIFETIME_S * 1.1)
    before = route_counts(emulator_url)
    run_id = api.trigger(DAG_ID)

    def deferred() -> bool:
        ti = api.task(DAG_ID, run_id, "wait_oidc")
        if ti["state"] in ("failed", "success", "upstream_failed"):
            raise AssertionError(f"(f) wait_oidc ended {ti['state']} before deferring")
        return ti["state"] == "deferred"

    wait_for(deferred, 120, "(f) wait_oidc to defer")
    time.sleep(LIFETIME_S * 0.6)
    write_token(workdir, lifetime=3600)
    say("(f) OIDC token file rotated mid-wait")
    time.sleep(LIFETIME_S * 1.2)  # past the first key's renewal point: the triggerer renews with the new token
    approve(VERSION, "Approved", model=MODEL)
    state = wait_for(
        lambda: (s := api.run_state(DAG_ID, run_id)) in ("success", "failed") and s, 240, "(f) the credentials run"
    )
    assert state == "success", f"(f) run ended {state}"
    ref = api.xcom(DAG_ID, run_id, "wait_oidc")
    assert ref["version_name"] == VERSION, ref
    fabric = api.xcom(DAG_ID, run_id, "fabric_on_metadata")
    counts = route_counts(emulator_url)
    sts = sum(n - before.get(r, 0) for r, n in counts.items() if "AssumeRoleWithOIDC" in r)
    metadata = sum(n - before.get(r, 0) for r, n in counts.items() if "securitykey" in r.lower())
    # the worker's first check and the triggerer each obtain a key; at least one renewal happens mid-wait
    assert sts >= 3, f"(f) the PAI keys were not renewed (AssumeRoleWithOIDC x{sts}): {counts}"
    assert metadata >= 2, f"(f) the Fabric keys were not renewed (securitykey x{metadata}): {counts}"
    assert "metadata" in fabric["test_connection"], fabric
    say(
        f"(f) success: {VERSION} approved and resumed on STS keys obtained {sts} times (worker, triggerer, renewals "
        f"after the token rotation); the Fabric task made {fabric['calls']} calls on metadata keys fetched "
        f"{metadata} times; connection test: {fabric['test_connection']}"
    )
    return {"run_id": run_id, "assume_role_with_oidc": sts, "metadata_securitykey": metadata, "fabric": fabric}
