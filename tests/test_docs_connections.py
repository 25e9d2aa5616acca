"""The connection set-ups the documentation shows (the fenced blocks marked ``<!-- run by
tests/test_docs_connections.py -->`` in docs/*.md), run as written in bash, then read back through the provider's
hooks in the same shell: Airflow parses every ``AIRFLOW_CONN_*`` they export into the connection type, login,
password and extras the block's text says, the hook finds its region and workspace in them, and a connection
pointed at the local emulator answers a real registry request (the block's port swapped for the emulator's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- run by tests/test_docs_connections.py -->"
DOC_PORT = "40213"

#: reads every AIRFLOW_CONN_* of the environment through Airflow and the provider's hooks; prints one JSON object
READER = r"""
import json, os, sys
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
out = {}
for var in sorted(v for v in os.environ if v.startswith("AIRFLOW_CONN_")):
    conn_id = var[len("AIRFLOW_CONN_"):].lower()
    hook = PaiModelRegistryHook(conn_id) if "pai" in conn_id else FabricModelRegistryHook(conn_id)
    conn = hook.connection
    seen = {"conn_type": conn.conn_type, "login": conn.login, "password": conn.password,
            "extra": conn.extra_dejson, "region": hook.region, "workspace_id": hook.workspace_id}
    if str(conn.extra_dejson.get("endpoint", "")).startswith("http://127.0.0.1"):
        if conn.conn_type == "pai":
            seen["answer"] = hook.get_model_version("model-demo-fraud", "1.0.0").approval_status
        else:
            seen["answer"] = sorted(m.id for m in hook.list_models())
    hook.close()
    out[conn_id] = seen
print("READ " + json.dumps(out, default=str))
"""


def marked_blocks() -> list[tuple[str, str]]:
    """``(page:line, body)`` of every block marked as run by this test."""
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if line.strip() != MARK:
                continue
            assert lines[i + 1].startswith("```"), f"{page.name}:{i + 1}: the mark is not right before a fence"
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            found.append((f"{page.name}:{i + 2}", "\n".join(lines[i + 2 : end])))
    return found


BLOCKS = marked_blocks()


def expected(block: str) -> dict[str, dict[str, Any]]:
    """What each ``export AIRFLOW_CONN_X='...'`` of the block says, read from its text (JSON or URI), the last
    export of a variable winning as in the shell."""
    wanted: dict[str, dict[str, Any]] = {}
    for var, value in re.findall(r"export AIRFLOW_CONN_(\w+)='(.*?)'", block, flags=re.DOTALL):
        if value.lstrip().startswith("{"):
            conn = json.loads(value)
            wanted[var.lower()] = {
                "conn_type": conn["conn_type"],
                "login": conn.get("login"),
                "password": conn.get("password"),
                "extra": conn.get("extra", {}),
            }
        else:
            parts = urlsplit(value)
            wanted[var.lower()] = {
                "conn_type": parts.scheme,
                "login": unquote(parts.username or "") or None,
                "password": unquote(parts.password or "") or None,
                "extra": dict(parse_qsl(parts.query)),
            }
    return wanted


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    from modelreg_emulator import RegistryEmulator

    with RegistryEmulator() as emulator:  # the built-in demo seed, whose fake keys the pages show
        yield emulator


def test_the_pages_mark_their_connection_blocks() -> None:
    pages = {where.split(":")[0] for where, _ in BLOCKS}
    expected = {"connection-pai.md", "connection-fabric.md", "emulator.md", "guide-no-stored-secrets.md"}
    assert expected | {"guide-oidc-canary-emulator.md"} <= pages
    assert all("export AIRFLOW_CONN_" in body for _, body in BLOCKS)


@pytest.mark.parametrize(("where", "block"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_a_documented_connection_reads_back_as_written(where: str, block: str, emulator: Any, tmp_path: Path) -> None:
    port = emulator.url.rsplit(":", 1)[1]
    script = block.replace(f"127.0.0.1:{DOC_PORT}", f"127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "ALIBABA_CLOUD_", "HUAWEICLOUD_"))}
    env |= {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "NO_PROXY": "*"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = subprocess.run(
        ["bash", "-c", f"set -eu\n{script}\npython - <<'PY'\n{READER}\nPY"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    read = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("READ "))[5:])
    wanted = expected(block)
    assert wanted and sorted(read) == sorted(wanted), (read, wanted)
    for conn_id, conn in wanted.items():
        seen = read[conn_id]
        extra = {k: (v.replace(DOC_PORT, port) if k.endswith("endpoint") else v) for k, v in conn["extra"].items()}
        assert (seen["conn_type"], seen["login"], seen["password"]) == (
            conn["conn_type"],
            conn["login"],
            conn["password"],
        )
        # Some Airflow versions read a URI's query values as JSON (workspace_id=12345 arrives as the number): the
        # connection's extras match as text, and the hook must still read the documented string
        assert {k: str(v) for k, v in seen["extra"].items()} == {k: str(v) for k, v in extra.items()}
        assert seen["workspace_id"] == extra.get("workspace_id")
        if "region" in extra:
            assert seen["region"] == extra["region"]
        if "answer" in seen:  # pointed at the emulator: a signed request was answered
            assert seen["answer"] in ("Approved", ["fabric-model-big", "fabric-model-demo"]), seen["answer"]
    if "127.0.0.1" in block:
        assert any("answer" in seen for seen in read.values())
