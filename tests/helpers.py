"""Test helpers: seeds for the emulator and Airflow connections pointing at it."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelreg_emulator import DEMO_SEED_PATH

PAI_KEY, PAI_SECRET = "LTAItestKey0001", "test-secret-pai-0001"
FABRIC_AK, FABRIC_SK, FABRIC_PROJECT = "FABRICTESTAK0001", "test-secret-fabric-sk", "proj-0001"
IAM_USER, IAM_PASSWORD, IAM_DOMAIN = "iam-user", "test-iam-password-0001", "acct-0001"
SECRETS = (PAI_SECRET, FABRIC_SK, IAM_PASSWORD)


def demo_seed() -> dict[str, Any]:
    seed: dict[str, Any] = json.loads(DEMO_SEED_PATH.read_text())
    return seed


def pai_version(name: str, status: str = "Pending", day: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "VersionName": name,
        "ApprovalStatus": status,
        "Uri": f"oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/{name}/",
        "FormatType": "SavedModel",
        "FrameworkType": "TensorFlow",
        "GmtCreateTime": f"2024-01-{day:02d}T08:00:00.000Z",
        "InferenceSpec": {"processor": "tensorflow_cpu_2.3"},
        "Labels": [{"Key": "team", "Value": "risk"}],
        **extra,
    }


def fabric_version(index: int, name: str | None = None) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{index:012d}",
        "name": name or f"ver-{index}",
        "description": "d",
        "cap_white_list": [],
        "config": {"llm_model_config": {"base_model_type": "QWEN_2_72B", "model_path": f"obs://b/m/{index}/"}},
        "create_time": f"2024-02-01T00:00:{index % 60:02d}Z",
        "create_user": {"domain_name": "acct", "domain_id": "d1", "user_name": "u", "user_id": "u1"},
    }


def build_seed(*, pai_generated: int = 0, fabric_generated: int = 0) -> dict[str, Any]:
    """A small seed: PAI model m-main (1.0.0 Approved, 1.1.0 Pending, 0.9.0 Rejected) and m-big (generated);
    Fabric workspace ws-1 with model fm-1 (3 versions) and fm-big (generated)."""
    return {
        "pai": {
            "credentials": [{"access_key_id": PAI_KEY, "access_key_secret": PAI_SECRET}],
            "models": [
                {
                    "ModelId": "m-main",
                    "ModelName": "main",
                    "WorkspaceId": "ws-pai",
                    "Versions": [
                        pai_version("0.9.0", "Rejected", 1),
                        pai_version("1.0.0", "Approved", 2),
                        pai_version("1.1.0", "Pending", 3),
                    ],
                    "generate_versions": 0,
                },
                {
                    "ModelId": "m-big",
                    "ModelName": "big",
                    "WorkspaceId": "ws-pai",
                    "Versions": [],
                    "generate_versions": pai_generated,
                },
            ],
        },
        "fabric": {
            "credentials": [{"ak": FABRIC_AK, "sk": FABRIC_SK, "project_id": FABRIC_PROJECT}],
            "users": [{"name": IAM_USER, "password": IAM_PASSWORD, "domain": IAM_DOMAIN, "project_id": FABRIC_PROJECT}],
            "workspaces": [
                {
                    "id": "ws-1",
                    "models": [
                        {
                            "id": "fm-1",
                            "name": "assistant",
                            "versions": [
                                fabric_version(1, "v1"),
                                fabric_version(2, "release-2"),
                                fabric_version(3, "1.0.0"),
                            ],
                            "generate_versions": 0,
                        },
                        {"id": "fm-big", "name": "big", "versions": [], "generate_versions": fabric_generated},
                    ],
                }
            ],
        },
    }


def pai_conn(monkeypatch: pytest.MonkeyPatch, url: str, conn_id: str = "pai_default", **extra: Any) -> None:
    conn = {
        "conn_type": "pai",
        "login": extra.pop("login", PAI_KEY),
        "password": extra.pop("password", PAI_SECRET),
        "extra": {"endpoint": url, "region": "cn-hangzhou", "workspace_id": "ws-pai", **extra},
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def fabric_conn(monkeypatch: pytest.MonkeyPatch, url: str, conn_id: str = "fabric_default", **extra: Any) -> None:
    auth_type = extra.pop("auth_type", "aksk")
    token = auth_type == "token"
    conn = {
        "conn_type": "huaweicloud_fabric",
        "login": extra.pop("login", IAM_USER if token else FABRIC_AK),
        "password": extra.pop("password", IAM_PASSWORD if token else FABRIC_SK),
        "extra": {
            "endpoint": url,
            "region": "cn-north-4",
            "project_id": FABRIC_PROJECT,
            "workspace_id": "ws-1",
            **({"iam_domain": IAM_DOMAIN, "iam_endpoint": url} if token else {}),
            **({"auth_type": auth_type} if auth_type != "aksk" else {}),
            **extra,
        },
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


@contextlib.contextmanager
def scratch_home() -> Iterator[None]:
    """HOME pointed at a scratch folder meanwhile: importing the Huawei SDK writes ~/.huaweicloud."""
    home = os.environ.get("HOME")
    os.environ["HOME"] = tempfile.mkdtemp(prefix="hw-sdk-home-")
    try:
        yield
    finally:
        if home is not None:
            os.environ["HOME"] = home


def huawei_sdk() -> Any:
    """The Huawei SDK's modules (``credentials``, ``exceptions``, ``signer``, ``fabric``), imported in a scratch
    HOME."""
    with scratch_home():
        import huaweicloudsdkcore.auth.credentials as credentials
        import huaweicloudsdkcore.exceptions.exceptions as exceptions
        import huaweicloudsdkcore.signer.signer as signer
        import huaweicloudsdkdataartsfabric.v1 as fabric
    return type("HW", (), {"credentials": credentials, "exceptions": exceptions, "signer": signer, "fabric": fabric})


def reply(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    """Answer the request ``handler`` serves: ``status`` with a JSON ``body``."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Records each request as ``(method, path, body, Content-Type)`` in the class's ``seen`` and answers with
    :meth:`answer`; subclasses set ``seen = []`` and the answer."""

    seen: list[tuple[str, str, bytes, str]]

    def answer(self) -> tuple[int, bytes]:
        return 200, b"{}"

    def _record(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append((self.command, self.path, body, self.headers.get("Content-Type", "")))
        reply(self, *self.answer())

    do_GET = do_POST = do_PUT = do_DELETE = _record

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def background_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[http.server.ThreadingHTTPServer]:
    """A local HTTP server of ``handler`` in a daemon thread (e.g. one that records what clients send)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def example_env(home: Path, emulator_url: str, migrated_db: Path, **pai_extra: Any) -> dict[str, str]:
    """The environment of ``airflow`` commands running the example DAGs against an emulator: a private AIRFLOW_HOME
    (a copy of the migrated SQLite DB), the examples as DAGs folder, and the demo seed's credentials as the
    ``pai_default`` and ``fabric_default`` connections (``pai_extra``: more extras, e.g. ``eas_endpoint``)."""
    import shutil

    seed = demo_seed()
    pai = seed["pai"]["credentials"][0]
    fab = seed["fabric"]["credentials"][0]
    environ = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MODELREG_DEPLOY_DIR": str(home / "deploy"),
        "AIRFLOW_CONN_PAI_DEFAULT": json.dumps(
            {
                "conn_type": "pai",
                "login": pai["access_key_id"],
                "password": pai["access_key_secret"],
                "extra": {"endpoint": emulator_url, "region": "cn-hangzhou", "workspace_id": "ws-demo", **pai_extra},
            }
        ),
        "AIRFLOW_CONN_FABRIC_DEFAULT": json.dumps(
            {
                "conn_type": "huaweicloud_fabric",
                "login": fab["ak"],
                "password": fab["sk"],
                "extra": {"endpoint": emulator_url, "project_id": fab["project_id"], "workspace_id": "ws-demo"},
            }
        ),
    }
    environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    shutil.copyfile(migrated_db, home / "airflow.db")
    return environ
