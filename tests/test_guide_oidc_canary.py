"""The guide "Try it: an OIDC role, an approval and a canary" (docs/guide-oidc-canary-emulator.md), run as written:
its fenced ``sh`` block split into commands and run one after the other in one bash process in an empty directory,
each command's exit status checked, the guide's fixed port swapped for a free one (the splitter and the runner are
the walkthrough's, tests/test_readme_walkthrough.py). The guide is the new-user trial of issue 26 turned into a
test: a PAI connection with an OIDC role and no key, a DAG that waits for an approval and deploys with an EAS
canary, run with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme_walkthrough import _free_port, as_checked_script, split_commands

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide-oidc-canary-emulator.md"
GUIDE_PORT = "40214"


def guide_block() -> str:
    match = re.search(r"^```sh\n(.*?)^```$", GUIDE.read_text(encoding="utf-8"), flags=re.MULTILINE | re.DOTALL)
    assert match, "the guide has no ```sh block"
    return match.group(1)


@pytest.mark.requires_airflow("3.0", reason="the guide is written for Airflow 3 (its DAG imports airflow.sdk)")
def test_the_oidc_canary_guide_runs_as_written(tmp_path: Path) -> None:
    commands = split_commands(guide_block())
    text = "\n".join(commands)
    # the block is what the guide promises (so that this test cannot pass on a gutted guide)
    for needed in (
        '"credential_source": "oidc_role_arn"',
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
        "PaiModelVersionApprovedSensor(",
        "PaiEasDeployOperator(",
        "PaiEasCanaryOperator(",
        "modelreg-emulator approve model-fraud 1.1.0",
        "airflow dags test fraud_canary",
    ):
        assert needed in text, needed
    assert '"login"' not in text and '"password"' not in text.split("AIRFLOW_CONN_PAI_DEFAULT", 1)[1]
    port = str(_free_port())
    script = as_checked_script([c.replace(GUIDE_PORT, port) for c in commands])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MODELREG_", "PYTEST_", "ALIBABA_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the guide did not finish in 240 s:\n{err[-3000:]}")
    finally:
        try:  # background jobs left by a failed command (the emulator, airflow dags test)
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    log = tmp_path / "dags-test.log"
    dag_log = log.read_text() if log.exists() else ""
    context = f"stderr:\n{err[-3000:]}\nstdout:\n{out[-3000:]}\ndags-test.log:\n{dag_log[-4000:]}"
    assert proc.returncode == 0, context
    assert re.search(r"DagRun Finished: dag_id=fraud_canary,.* state=success", out), context
    # the sensor deferred before the approval; the canary went through its three steps, in order
    steps = [dag_log.find(f"canary step {p}%: fraud_v2 Running") for p in (10, 50, 100)]
    assert -1 < dag_log.index("new_state=deferred") < steps[0] < steps[1] < steps[2], context
    assert "canary step 100%: fraud_v2 Running, weight 100" in dag_log, context
    # the request log: a temporary key for the OIDC token, then everything signed with it; nothing refused
    for route in ("sts.AssumeRoleWithOIDC", "pai.ListModelVersions", "eas.CreateService", "eas.ReleaseService"):
        assert re.search(rf"^{re.escape(route)}\s+yes\s+\d+$", out, flags=re.MULTILINE), (route, context)
    assert not re.search(r"^\S+\s+no\s+\d+$", out, flags=re.MULTILINE), context
