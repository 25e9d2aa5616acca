"""The emulator itself: IAM tokens, faults (deterministic), latency overlap, seeds and their errors, ``_then``,
generated versions, the request log, the store API, the CLI, and serialisation cost."""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.auth import AcsV3Auth, HuaweiAkSkAuth
from modelreg_emulator.store import iso_ms, parse_time

PAI = AcsV3Auth("LTAIemulatorDemoKey01", "emulator-demo-secret-pai")
FAB = HuaweiAkSkAuth("EMULATORDEMOFABRICAK01", "emulator-demo-secret-fabric", project_id="emulator-demo-project")
FAB_VERSIONS = "/v1/workspaces/ws-demo/models/fabric-model-demo/versions"
IAM_BODY = {
    "auth": {
        "identity": {
            "methods": ["password"],
            "password": {
                "user": {"name": "demo-user", "password": "emulator-demo-password", "domain": {"name": "demo-account"}}
            },
        },
        "scope": {"project": {"id": "emulator-demo-project"}},
    }
}


def small_seed(**pai_model: Any) -> dict[str, Any]:
    model = {"ModelId": "m-1", "ModelName": "one", "WorkspaceId": "ws", "Versions": [], **pai_model}
    return {"pai": {"credentials": [{"access_key_id": "K", "access_key_secret": "S"}], "models": [model]}}


# ------------------------------------------------------------------------------------------------ demo seed


def test_demo_seed_contents(emulator: Any) -> None:
    with httpx.Client(base_url=emulator.url) as client:
        body = client.get("/api/v1/models/model-demo-fraud/versions", params={"PageSize": 100}, auth=PAI).json()
        statuses = {v["VersionName"]: v["ApprovalStatus"] for v in body["Versions"]}
        assert statuses["0.9.0"] == "Rejected" and statuses["1.0.0"] == "Approved" and "1.1.0" in statuses
        fab = client.get(FAB_VERSIONS, auth=FAB)
        assert fab.status_code == 200 and fab.headers["X-Request-Id"]
        assert all(v["config"]["llm_model_config"]["model_path"].startswith("obs://") for v in fab.json()["versions"])
        assert client.get("/api/v1/models/model-demo-big", auth=PAI).json()["LatestVersion"]["VersionName"]


def test_then_schedules_one_change_counted_from_start(make_emulator: Any) -> None:
    from helpers import build_seed, pai_version

    seed = build_seed()
    seed["pai"]["models"][0]["Versions"] += [
        pai_version("2.0.0", "Pending", 10, _then={"after_seconds": 0.4, "ApprovalStatus": "Approved"}),
        pai_version("2.1.0", "Pending", 11, _then={"after_seconds": 0.4, "ApprovalStatus": "Approved"}),
    ]
    emu = make_emulator(seed=seed)
    emu.store.set_approval("m-main", "2.1.0", "Rejected")  # terminal before the change is due: it stays Rejected
    assert emu.store.get_pai_version("m-main", "2.0.0")["ApprovalStatus"] == "Pending"
    auth = AcsV3Auth("LTAItestKey0001", "test-secret-pai-0001")
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=emu.url) as client:  # poll until the change is served (0.4 s after the start)
        while (after := client.get("/api/v1/models/m-main/versions/2.0.0", auth=auth).json())["ApprovalStatus"] == (
            "Pending"
        ):
            assert time.monotonic() < deadline, "the scheduled change was never applied"
            time.sleep(0.02)
    assert after["ApprovalStatus"] == "Approved"
    # counted from the start: the change is dated when it was due, not when a request happened to see it
    due = iso_ms(emu.store.started_wall + timedelta(seconds=0.4))
    assert after["GmtModifiedTime"] == due != after["GmtCreateTime"]
    assert emu.store.get_pai_version("m-main", "2.1.0")["ApprovalStatus"] == "Rejected"


def test_generate_versions_distinct_and_increasing(make_emulator: Any) -> None:
    from helpers import build_seed

    emu = make_emulator(seed=build_seed(pai_generated=120, fabric_generated=130))
    pai = emu.store.pai_versions("m-big")
    fab = emu.store.fabric_versions("ws-1", "fm-big")
    assert len({v["VersionName"] for v in pai}) == 120 and len({v["id"] for v in fab}) == 130
    for versions, key in ((pai, "GmtCreateTime"), (fab, "create_time")):
        times = [v[key] for v in versions]
        assert times == sorted(times) and len(set(times)) == len(times)
    assert all(24 <= len(v["id"]) <= 36 for v in fab)


# ------------------------------------------------------------------------------------------------ IAM


def test_iam_token_flow(make_emulator: Any) -> None:
    emu = make_emulator(token_lifetime=3600)
    with httpx.Client(base_url=emu.url) as client:
        issued = client.post("/v3/auth/tokens", json=IAM_BODY)
        assert issued.status_code == 201 and issued.headers["X-Request-Id"]
        token = issued.headers["X-Subject-Token"]
        expires = issued.json()["token"]["expires_at"]
        assert expires.endswith("Z")
        lifetime = parse_time(expires) - parse_time(issued.json()["token"]["issued_at"])  # type: ignore[operator]
        assert lifetime == timedelta(seconds=3600)  # token_lifetime
        assert client.get(FAB_VERSIONS, headers={"X-Auth-Token": token}).json()["total"] == 3
        assert emu.request_log.count("fabric.ListModelVersions", authenticated=True) == 1
        emu.store.expire_tokens()  # as if the lifetime had passed
        for headers in ({"X-Auth-Token": token}, {"X-Auth-Token": "MIIforged"}, {}):
            refused = client.get(FAB_VERSIONS, headers=headers)
            assert refused.status_code == 401 and refused.json()["error_code"] == "APIG.1002"
            assert refused.headers["X-Request-Id"]
        assert emu.request_log.count("fabric", authenticated=False) == 3
        by_name = json.loads(json.dumps(IAM_BODY))
        by_name["auth"]["scope"]["project"] = {"name": "cn-north-4"}
        assert client.post("/v3/auth/tokens", json=by_name).status_code == 201
        bad = json.loads(json.dumps(IAM_BODY))
        bad["auth"]["identity"]["password"]["user"]["password"] = "wrong"
        refused = client.post("/v3/auth/tokens", json=bad)
        assert refused.status_code == 401 and "X-Subject-Token" not in refused.headers
        assert client.post("/v3/auth/tokens", content=b"{").status_code == 400
        scope_less = {"auth": {"identity": IAM_BODY["auth"]["identity"]}}
        assert client.post("/v3/auth/tokens", json=scope_less).status_code == 400


# ------------------------------------------------------------------------------------------------ faults


def _targets() -> list[tuple[str, str, Any]]:
    out: list[tuple[str, str, Any]] = []
    for page in range(1, 13):
        out.append(("pai", f"/api/v1/models/model-demo-big/versions?PageNumber={page}&PageSize=20", PAI))
    for offset in range(0, 240, 20):
        out.append(("fabric", f"/v1/workspaces/ws-demo/models/fabric-model-big/versions?limit=20&offset={offset}", FAB))
    return out


async def _outcomes(url: str, order: list[tuple[str, str, Any]]) -> dict[str, list[str]]:
    """Send every target 3 times (sequentially per target, targets concurrently, in the given order)."""
    result: dict[str, list[str]] = {}

    async def run(client: httpx.AsyncClient, target: str, auth: Any) -> None:
        seen = result.setdefault(target, [])
        for _ in range(3):
            try:
                answer = await client.get(target, auth=auth)
                seen.append(str(answer.status_code))
            except (httpx.RemoteProtocolError, httpx.ReadError):
                seen.append("reset")

    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        await asyncio.gather(*(run(client, target, auth) for _, target, auth in order))
    return result


def test_faults_are_deterministic_whatever_the_order(make_emulator: Any) -> None:
    faults = {"error_rate": 0.2, "throttle_rate": 0.2, "reset_rate": 0.2, "retry_after_ms": 5}
    targets = _targets()
    runs = []
    for shuffle_seed in (1, 2):
        order = list(targets)
        random.Random(shuffle_seed).shuffle(order)
        emu = make_emulator(random_seed=42, **faults)
        runs.append(asyncio.run(_outcomes(emu.url, order)))
    assert runs[0] == runs[1]
    flat = [o for outcomes in runs[0].values() for o in outcomes]
    assert {"200", "429", "reset"} <= set(flat) and ({"503", "500"} & set(flat))
    other = asyncio.run(_outcomes(make_emulator(random_seed=43, **faults).url, targets))
    assert other != runs[0]  # the seed matters


def test_fault_answers(make_emulator: Any) -> None:
    throttled = make_emulator(throttle_rate=1.0, retry_after_ms=250)
    failing = make_emulator(error_rate=1.0)
    slow_throttle = make_emulator(throttle_rate=1.0, retry_after_ms=2000)
    with httpx.Client() as client:
        pai = client.get(f"{throttled.url}/api/v1/models/model-demo-fraud", auth=PAI)
        assert (pai.status_code, pai.json()["Code"], pai.headers["x-acs-retry-after"]) == (
            429,
            "Throttling.User",
            "250",
        )
        fab = client.get(f"{throttled.url}{FAB_VERSIONS}", auth=FAB)
        assert (fab.status_code, fab.json()["error_code"], fab.headers["Retry-After"]) == (429, "APIG.0308", "0.250")
        assert client.get(f"{slow_throttle.url}{FAB_VERSIONS}", auth=FAB).headers["Retry-After"] == "2"
        pai = client.get(f"{failing.url}/api/v1/models/model-demo-fraud", auth=PAI)
        assert (pai.status_code, pai.json()["Code"]) == (503, "ServiceUnavailable") and pai.json()["RequestId"]
        fab = client.get(f"{failing.url}{FAB_VERSIONS}", auth=FAB)
        assert (fab.status_code, fab.json()["error_code"]) == (500, "common.00000500") and fab.headers["X-Request-Id"]
        # bad credentials are refused, not faulted; IAM is never faulted
        wrong = client.get(
            f"{failing.url}/api/v1/models/model-demo-fraud", auth=AcsV3Auth("LTAIemulatorDemoKey01", "x")
        )
        assert wrong.json()["Code"] == "SignatureDoesNotMatch"
        assert client.post(f"{failing.url}/v3/auth/tokens", json=IAM_BODY).status_code == 201


def test_reset_drops_the_connection_mid_response(make_emulator: Any) -> None:
    emu = make_emulator(reset_rate=1.0)
    with httpx.Client(base_url=emu.url) as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/api/v1/models/model-demo-big/versions?PageSize=100", auth=PAI)
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get(FAB_VERSIONS, auth=FAB)
    entries = emu.request_log.entries
    assert [e.fault.value for e in entries] == ["reset", "reset"] and all(e.authenticated for e in entries)


def test_sdk_sees_throttling_exception(make_emulator: Any) -> None:
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_aiworkspace20210204.models import GetModelVersionRequest
    from alibabacloud_tea_openapi.exceptions import ThrottlingException
    from alibabacloud_tea_openapi.models import Config

    emu = make_emulator(throttle_rate=1.0, retry_after_ms=1500)
    config = Config(
        access_key_id="LTAIemulatorDemoKey01",
        access_key_secret="emulator-demo-secret-pai",
        endpoint=emu.url.removeprefix("http://"),
        protocol="http",
    )
    with pytest.raises(ThrottlingException) as err:
        Client(config).get_model_version("model-demo-fraud", "1.0.0", GetModelVersionRequest())
    assert err.value.retry_after == 1500 and err.value.code == "Throttling.User"


def test_latency_is_non_blocking(make_emulator: Any) -> None:
    emu = make_emulator(latency_ms=300)

    async def eight() -> float:
        async with httpx.AsyncClient(base_url=emu.url) as client:
            start = time.monotonic()
            answers = await asyncio.gather(
                *(client.get(f"/api/v1/models/model-demo-big/versions?PageNumber={i}", auth=PAI) for i in range(1, 9))
            )
            assert all(a.status_code == 200 for a in answers)
            return time.monotonic() - start

    elapsed = asyncio.run(eight())
    assert 0.3 <= elapsed < 8 * 0.3 / 2, elapsed  # overlapped: well under the serial 2.4 s


# ------------------------------------------------------------------------------------------------ routing, log, store


def test_request_log_and_unknown_routes(make_emulator: Any) -> None:
    emu = make_emulator()
    with httpx.Client(base_url=emu.url) as client:
        assert client.get("/api/v1/models/model-demo-fraud", auth=PAI).status_code == 200
        assert client.get("/api/v1/models/model-demo-fraud").status_code == 400
        unknown = client.delete("/api/v1/models/model-demo-fraud", auth=PAI)
        assert (unknown.status_code, unknown.json()["Code"]) == (404, "InvalidApi.NotFound")
        assert client.get("/v1/workspaces/ws-demo/elsewhere", auth=FAB).json()["error_code"] == "APIG.0101"
        assert client.get("/v1/workspaces/nope/models/x/versions", auth=FAB).json()["error_code"] == "common.01000001"
    log = emu.request_log
    assert log.count() == 5 and len(log) == 5
    assert log.count("pai.GetModel") == 2 and log.count("pai.GetModel", authenticated=True) == 1
    assert log.count("pai") == 3 and log.count("fabric") == 2 and log.count(authenticated=False) == 3
    log.clear()
    assert log.count() == 0


def test_store_api_and_create_version(make_emulator: Any) -> None:
    emu = make_emulator()
    store = emu.store
    store.add_pai_version("model-demo-fraud", {"VersionName": "9.0.0", "Uri": "oss://b/k/"})
    store.add_fabric_version("ws-demo", "fabric-model-demo", {"id": "f" * 32, "name": "late-one"})
    with httpx.Client(base_url=emu.url) as client:
        newest = client.get(
            "/api/v1/models/model-demo-fraud/versions", params={"Order": "DESC", "PageSize": 1}, auth=PAI
        ).json()
        assert newest["Versions"][0]["VersionName"] == "9.0.0" and newest["Versions"][0]["ApprovalStatus"] == "Pending"
        created = client.post(
            "/api/v1/models/model-demo-fraud/versions", json={"VersionName": "9.1.0", "Uri": "oss://b/9.1/"}, auth=PAI
        )
        assert created.status_code == 200 and created.json()["VersionName"] == "9.1.0"
        again = client.post(
            "/api/v1/models/model-demo-fraud/versions", json={"VersionName": "9.1.0", "Uri": "oss://b/9.1/"}, auth=PAI
        )
        assert again.json()["Code"] == "InvalidParameter"
        assert client.post("/api/v1/models/model-demo-fraud/versions", json={}, auth=PAI).status_code == 400
        store.set_approval("model-demo-fraud", "9.1.0", "Approved")
        got = client.get("/api/v1/models/model-demo-fraud/versions/9.1.0", auth=PAI).json()
        assert got["ApprovalStatus"] == "Approved"
        assert client.get(f"{FAB_VERSIONS}?name=late-one", auth=FAB).json()["total"] == 1
    with pytest.raises(ValueError):
        store.set_approval("model-demo-fraud", "9.1.0", "Done")


# ------------------------------------------------------------------------------------------------ seeds


@pytest.mark.parametrize(
    ("seed", "path"),
    [
        (
            {"pai": {"models": [{"ModelId": "m", "Versions": [{"VersionName": "1", "ApprovalStatus": "Done"}]}]}},
            "$.pai.models[0].Versions[0].ApprovalStatus",
        ),
        ({"pai": {"credentials": [{"access_key_id": "K"}]}}, "$.pai.credentials[0].access_key_secret"),
        ({"pai": {"models": [{"ModelId": ""}]}}, "$.pai.models[0].ModelId"),
        ({"pai": {"models": [{"ModelId": "m"}, {"ModelId": "m"}]}}, "$.pai.models[1].ModelId"),
        (
            small_seed(Versions=[{"VersionName": "1", "_then": {"after_seconds": -1, "ApprovalStatus": "Approved"}}]),
            "$.pai.models[0].Versions[0]._then.after_seconds",
        ),
        (
            small_seed(Versions=[{"VersionName": "1", "GmtCreateTime": "yesterday"}]),
            "$.pai.models[0].Versions[0].GmtCreateTime",
        ),
        (small_seed(Versions=[{"VersionName": "1", "Labels": "x"}]), "$.pai.models[0].Versions[0].Labels"),
        (small_seed(generate_versions="many"), "$.pai.models[0].generate_versions"),
        (
            {"fabric": {"workspaces": [{"id": "w", "models": [{"id": "m", "versions": [{"name": "x"}]}]}]}},
            "$.fabric.workspaces[0].models[0].versions[0].id",
        ),
        ({"fabric": {"users": [{"name": "u", "password": "p"}]}}, "$.fabric.users[0].domain"),
        ({"fabric": {"workspaces": {"id": "w"}}}, "$.fabric.workspaces"),
        ({"azure": {}}, "$.azure"),
    ],
)
def test_bad_seed_names_the_json_path(seed: dict[str, Any], path: str) -> None:
    from modelreg_emulator import RegistryEmulator, SeedError

    with pytest.raises(SeedError) as err:
        RegistryEmulator(seed)
    assert err.value.path == path and path in str(err.value)


def test_seed_from_file_and_bad_json(tmp_path: Path) -> None:
    from modelreg_emulator import SeedError, Store

    good = tmp_path / "seed.json"
    good.write_text(json.dumps(small_seed(generate_versions=3)))
    assert len(Store(good).pai_versions("m-1")) == 3
    assert len(Store(str(good)).pai_versions("m-1")) == 3
    bad = tmp_path / "bad.json"
    bad.write_text('{"pai": ')
    with pytest.raises(SeedError, match="not valid JSON"):
        Store(bad)
    with pytest.raises(SeedError, match="cannot read"):
        Store(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_prints_one_line_and_serves(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg_emulator", "--port", "0", "--latency-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.fullmatch(r"modelreg-emulator listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match and int(match.group(2)) > 0, line
        answer = httpx.get(f"{match.group(1)}/api/v1/models/model-demo-fraud/versions/1.0.0", auth=PAI, timeout=5)
        assert answer.status_code == 200 and answer.json()["ApprovalStatus"] == "Approved"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert out == "" and proc.returncode == 0, (out, err)


def test_cli_reports_bad_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"pai": {"models": [{"ModelId": "m", "Versions": [{"VersionName": 7}]}]}}))
    done = subprocess.run(
        [sys.executable, "-m", "modelreg_emulator", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "$.pai.models[0].Versions[0].VersionName" in done.stderr


# ------------------------------------------------------------------------------------------------ large pages


def test_pages_of_100_over_10000_versions() -> None:
    """The list handlers page a 10,000-version model: full pages, each version once (CPU cost: bench/)."""
    from helpers import build_seed
    from starlette.datastructures import Headers

    from modelreg_emulator.fabric import list_model_versions as fabric_list
    from modelreg_emulator.pai import list_model_versions as pai_list
    from modelreg_emulator.store import Store
    from modelreg_emulator.wire import Req

    store = Store(build_seed(pai_generated=10_000, fabric_generated=10_000))
    seen: dict[str, list[str]] = {"pai": [], "fabric": []}
    for i in range(60):
        query = f"PageNumber={i + 1}&PageSize=100&Order=DESC"
        req = Req("GET", "/api/v1/models/m-big/versions", query, Headers(), b"")
        body = json.loads(pai_list(store, req, ["m-big"]).body)
        assert len(body["Versions"]) == 100 and body["TotalCount"] == 10_000
        seen["pai"] += [v["VersionName"] for v in body["Versions"]]
        req = Req("GET", "/v1/workspaces/ws-1/models/fm-big/versions", f"offset={i * 100}&limit=100", Headers(), b"")
        body = json.loads(fabric_list(store, req, ["ws-1", "fm-big"]).body)
        assert len(body["versions"]) == 100 and body["total"] == 10_000
        seen["fabric"] += [v["id"] for v in body["versions"]]
    for vendor, ids in seen.items():
        assert len(set(ids)) == 6000, vendor


def test_emulator_package_import_is_light() -> None:
    code = (
        "import sys, modelreg_emulator as e; "
        "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules, 'heavy import'; "
        "import airflow_provider_modelreg.hooks.pai, airflow_provider_modelreg.hooks.fabric; "
        "assert not [m for m in sys.modules if m.startswith('modelreg_emulator.')]"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_emulator_server_is_there_or_the_error_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from modelreg_emulator import require_server

    require_server()  # the suite runs the emulator: its server packages are installed
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else object())
    with pytest.raises(ModuleNotFoundError, match=r"needs uvicorn.*pip install modelreg-emulator"):
        require_server()


def test_listening_socket_lets_asyncio_disable_nagle() -> None:
    """asyncio sets TCP_NODELAY only on IPPROTO_TCP sockets; without it each keep-alive answer waits ~40 ms."""
    import socket

    from modelreg_emulator.server import bind_socket

    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
