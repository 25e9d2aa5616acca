"""The emulator's admin surface (``modelreg-emulator approve|reject|set-status|requests``, ``/_emulator/...``) and
the seed loader's refusal of unknown keys."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.auth import AcsV3Auth
from modelreg_emulator import DEMO_SEED_PATH
from modelreg_emulator.__main__ import main as cli

PAI = AcsV3Auth("LTAIemulatorDemoKey01", "emulator-demo-secret-pai")
MODEL = "model-demo-fraud"


@pytest.fixture(autouse=True)
def _httpx_quiet() -> Iterator[None]:
    """Airflow 2 and 3.0 log INFO on stdout: httpx's request lines would mix with the command output read here."""
    logger = logging.getLogger("httpx")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def _demo_seed() -> dict[str, Any]:
    seed: dict[str, Any] = json.loads(DEMO_SEED_PATH.read_text())
    for version in seed["pai"]["models"][0]["Versions"]:
        version.pop("_then", None)  # nothing changes by itself: only the admin command does
    return seed


# ------------------------------------------------------------------------------------------------ the commands


def test_approve_reject_and_set_status(make_emulator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    emu = make_emulator(seed=_demo_seed())
    assert emu.store.get_pai_version(MODEL, "1.1.0")["ApprovalStatus"] == "Pending"

    assert cli(["approve", MODEL, "1.1.0", "--url", emu.url]) == 0
    assert capsys.readouterr().out == "1.1.0: Approved\n"
    with httpx.Client(base_url=emu.url) as client:  # what a DAG's hook sees
        seen = client.get(f"/api/v1/models/{MODEL}/versions/1.1.0", auth=PAI).json()
    assert seen["ApprovalStatus"] == "Approved"

    # Approved and Rejected are terminal, as in the registry: approve/reject refuse, set-status forces
    assert cli(["reject", MODEL, "1.1.0", "--url", emu.url]) == 1
    assert "is Approved (terminal); use set-status" in capsys.readouterr().err
    assert emu.store.get_pai_version(MODEL, "1.1.0")["ApprovalStatus"] == "Approved"
    assert cli(["set-status", MODEL, "1.1.0", "pending", "--url", emu.url]) == 0
    assert capsys.readouterr().out == "1.1.0: Pending\n"
    assert cli(["reject", MODEL, "1.2.0-rc1", "--url", emu.url]) == 0
    assert emu.store.get_pai_version(MODEL, "1.2.0-rc1")["ApprovalStatus"] == "Rejected"

    assert cli(["approve", MODEL, "9.9.9", "--url", emu.url]) == 1
    assert "has no version '9.9.9'" in capsys.readouterr().err
    assert cli(["approve", "model-nope", "1.0.0", "--url", emu.url]) == 1
    assert "no PAI model 'model-nope'" in capsys.readouterr().err
    assert cli(["set-status", MODEL, "1.1.0", "Done", "--url", emu.url]) == 1
    assert "status must be one of" in capsys.readouterr().err


def test_requests_prints_the_log(make_emulator: Any, capsys: pytest.CaptureFixture[str]) -> None:
    emu = make_emulator()
    with httpx.Client(base_url=emu.url) as client:
        client.get(f"/api/v1/models/{MODEL}/versions/1.0.0", auth=PAI)
        client.get(f"/api/v1/models/{MODEL}/versions/1.0.0", auth=PAI)
        client.get(f"/api/v1/models/{MODEL}/versions/1.0.0", auth=AcsV3Auth("LTAIemulatorDemoKey01", "wrong"))
    assert cli(["approve", MODEL, "1.1.0", "--url", emu.url]) == 0  # admin requests are not logged
    capsys.readouterr()
    assert cli(["requests", "--url", emu.url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [
        {"route": "pai.GetModelVersion", "authenticated": False, "count": 1},
        {"route": "pai.GetModelVersion", "authenticated": True, "count": 2},
    ]
    assert cli(["requests", "--url", emu.url]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["route", "authenticated", "count"]
    assert table[1:] == [
        f"{'pai.GetModelVersion':<28} {'no':<14} 1",
        f"{'pai.GetModelVersion':<28} {'yes':<14} 2",
    ]


def test_url_from_the_environment_and_errors(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MODELREG_EMULATOR_URL", raising=False)
    assert cli(["approve", MODEL, "1.1.0"]) == 2
    assert "give --url" in capsys.readouterr().err
    emu = make_emulator(seed=_demo_seed())
    monkeypatch.setenv("MODELREG_EMULATOR_URL", emu.url)
    assert cli(["approve", MODEL, "1.1.0"]) == 0
    emu.stop()
    assert cli(["requests"]) == 1
    assert "cannot reach" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ loopback only


@pytest.mark.parametrize(
    ("client", "header", "status"),
    [
        (("127.0.0.1", 5000), "1", 200),
        (("127.8.9.10", 5000), "1", 200),
        (("::1", 5000), "1", 200),
        (("::ffff:127.0.0.1", 5000), "1", 200),
        (("192.168.1.20", 5000), "1", 403),
        (("10.0.0.1", 5000), "1", 403),
        (("::ffff:10.0.0.1", 5000), "1", 403),
        (("127.0.0.1", 5000), None, 403),  # a browser page cannot add the header without a preflight
    ],
)
async def test_admin_answers_loopback_clients_only(client: tuple[str, int], header: str | None, status: int) -> None:
    """Through the ASGI app the server runs (the client address comes from the connection, not from a header)."""
    from modelreg_emulator.app import EmulatorConfig, create_app, direct_asgi

    app = direct_asgi(create_app(EmulatorConfig(seed=_demo_seed())))
    headers = {"X-Modelreg-Admin": header} if header else {}
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        answer = await http.put(
            f"/_emulator/pai/models/{MODEL}/versions/1.1.0/status", json={"status": "Approved"}, headers=headers
        )
        requests = await http.get("/_emulator/requests", headers=headers)
    assert (answer.status_code, requests.status_code) == (status, status), answer.text
    if status == 403:
        assert "loopback" in answer.json()["error"] or "X-Modelreg-Admin" in answer.json()["error"]


# ------------------------------------------------------------------------------------------------ seed keys


def _pai_model(**extra: Any) -> dict[str, Any]:
    return {"ModelId": "m", "ModelName": "n", "WorkspaceId": "w", "Versions": [{"VersionName": "1"}], **extra}


def _fabric(**ws: Any) -> dict[str, Any]:
    return {"fabric": {"workspaces": [{"id": "w", **ws}]}}


@pytest.mark.parametrize(
    ("seed", "path", "hint"),
    [
        ({"pai": {"model": []}}, "$.pai.model", "'models'"),
        ({"pai": {"credentials": [{"access_key_id": "K", "secret": "S"}]}}, "$.pai.credentials[0].secret", None),
        ({"pai": {"models": [{**_pai_model(), "Version": [{"VersionName": "2"}]}]}}, "$.pai.models[0].Version", None),
        ({"pai": {"models": [_pai_model(generate_version=3)]}}, "$.pai.models[0].generate_version", None),
        (
            {"pai": {"models": [_pai_model(Versions=[{"VersionName": "1", "_then": {"after": 1}}])]}},
            "$.pai.models[0].Versions[0]._then.after",
            "'after_seconds'",
        ),
        ({"fabric": {"workspace": []}}, "$.fabric.workspace", "'workspaces'"),
        (
            {"fabric": {"credentials": [{"ak": "a", "sk": "s", "projectid": "p"}]}},
            "$.fabric.credentials[0].projectid",
            None,
        ),
        (
            {"fabric": {"users": [{"name": "u", "password": "p", "domain": "d", "pwd": 1}]}},
            "$.fabric.users[0].pwd",
            None,
        ),
        (_fabric(model=[]), "$.fabric.workspaces[0].model", "'models'"),
        (_fabric(models=[{"id": "m", "version": []}]), "$.fabric.workspaces[0].models[0].version", "'versions'"),
        ({"Pai": {}}, "$.Pai", "'pai'"),
    ],
)
def test_unknown_seed_keys_are_refused_with_their_path(seed: dict[str, Any], path: str, hint: str | None) -> None:
    from modelreg_emulator import SeedError, Store

    with pytest.raises(SeedError) as err:
        Store(seed)
    assert err.value.path == path, str(err.value)
    assert "unknown key" in err.value.problem
    if hint:
        assert f"did you mean {hint}" in err.value.problem


def test_the_version_typo_of_issue_12_is_named() -> None:
    from modelreg_emulator import SeedError, Store

    seed = {
        "pai": {"models": [{"ModelId": "m", "ModelName": "n", "WorkspaceId": "w", "Version": [{"VersionName": "1"}]}]}
    }
    with pytest.raises(SeedError, match=r"\$\.pai\.models\[0\]\.Version: unknown key .*did you mean 'Versions'"):
        Store(seed)


def test_wire_fields_stay_free_form() -> None:
    """Inside versions anything goes (the vendors add fields); models take their wire fields."""
    from modelreg_emulator import Store

    seed = copy.deepcopy(_demo_seed())
    seed["pai"]["models"][0]["Versions"][0]["SomeFutureField"] = {"x": 1}
    seed["pai"]["models"][0]["Domain"] = "nlp"
    seed["pai"]["models"][0]["Labels"] = [{"Key": "k", "Value": "v"}]
    seed["fabric"]["workspaces"][0]["models"][0]["versions"][0]["new_field"] = [1, 2]
    seed["fabric"]["workspaces"][0]["models"][0]["description"] = "d"
    store = Store(seed)
    assert store.get_pai_version(MODEL, "0.9.0")["SomeFutureField"] == {"x": 1}
    assert Store(None).pai_models  # the built-in demo seed passes the stricter check


async def test_admin_lists_issued_temporary_keys_to_loopback_clients_only() -> None:
    """``GET /_emulator/credentials``: what the credential services issued (for leak scans), loopback only."""
    from modelreg_emulator.app import EmulatorConfig, Registry, create_app, direct_asgi

    registry = Registry(EmulatorConfig(seed=_demo_seed(), credential_lifetime=60))
    issued = registry.store.issue_temporary_key("pai", 60, issuer="sts.AssumeRole")
    app = direct_asgi(create_app(registry=registry))
    answers = {}
    for client in (("127.0.0.1", 5000), ("10.0.0.1", 5000)):
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            answers[client[0]] = await http.get("/_emulator/credentials", headers={"X-Modelreg-Admin": "1"})
    assert answers["10.0.0.1"].status_code == 403
    keys = answers["127.0.0.1"].json()["temporary_keys"]
    assert [(k["key_id"], k["secret"], k["token"], k["issuer"]) for k in keys] == [
        (issued.key_id, issued.secret, issued.token, "sts.AssumeRole")
    ]
    assert keys[0]["expires_at"] - keys[0]["issued_at"] == pytest.approx(60)
