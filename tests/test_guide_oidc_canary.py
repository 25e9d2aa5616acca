"""The guide "Try it: an OIDC role, an approval and a canary" (docs/guide-oidc-canary-emulator.md), run as written:
its fenced ``sh`` block split into commands and run one after the other in one bash process in an empty directory,
each command's exit status checked, the guide's fixed port swapped for a free one (the splitter and the runner are
the walkthrough's, tests/test_readme_walkthrough.py). The guide is the new-user trial of issue 26 turned into a
test: a PAI connection with an OIDC role and no key, a DAG that waits for an approval and deploys with an EAS
canary, run with ``airflow dags test`` against the emulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_readme_walkthrough import _free_port, run_documented, split_commands

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
    run = run_documented(
        [c.replace(GUIDE_PORT, port) for c in commands], tmp_path, timeout=240, what="guide", drop_env=("ALIBABA_",)
    )
    out, dag_log, context = run.out, run.dag_log, run.context
    assert run.returncode == 0, context
    assert re.search(r"DagRun Finished: dag_id=fraud_canary,.* state=success", out), context
    # the sensor deferred before the approval; the canary went through its three steps, in order
    steps = [dag_log.find(f"canary step {p}%: fraud_v2 Running") for p in (10, 50, 100)]
    assert -1 < dag_log.index("new_state=deferred") < steps[0] < steps[1] < steps[2], context
    assert "canary step 100%: fraud_v2 Running, weight 100" in dag_log, context
    # the request log: a temporary key for the OIDC token, then everything signed with it; nothing refused
    for route in ("sts.AssumeRoleWithOIDC", "pai.ListModelVersions", "eas.CreateService", "eas.ReleaseService"):
        assert re.search(rf"^{re.escape(route)}\s+yes\s+\d+$", out, flags=re.MULTILINE), (route, context)
    assert not re.search(r"^\S+\s+no\s+\d+$", out, flags=re.MULTILINE), context
