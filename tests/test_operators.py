"""Every operator against the emulator; XCom values are JSON-safe ModelVersionRef dicts."""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from helpers import build_seed, fabric_conn, pai_conn

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.links import FabricConsoleLink, PaiModelVersionLink
from airflow_provider_modelreg.operators.fabric import FabricGetModelVersionOperator, FabricListModelVersionsOperator
from airflow_provider_modelreg.operators.pai import (
    PaiGetModelVersionOperator,
    PaiListModelVersionsOperator,
    PaiUpdateModelVersionApprovalOperator,
)


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed(pai_generated=120, fabric_generated=130))
    pai_conn(monkeypatch, emulator.url, console_url_template="https://console/{region}/{model_id}/{version_name}")
    fabric_conn(monkeypatch, emulator.url)
    return emulator


def context() -> dict[str, Any]:
    ti = mock.MagicMock()
    return {"ti": ti, "task_instance": ti, "outlet_events": mock.MagicMock()}


def pushed_link(ctx: dict[str, Any], key: str) -> str:
    for call in ctx["ti"].xcom_push.call_args_list:
        if call.kwargs.get("key") == key:
            return str(call.kwargs["value"]["url"])
    raise AssertionError(f"no XCom {key}")


def test_pai_get(emu: Any) -> None:
    ctx = context()
    ref = PaiGetModelVersionOperator(task_id="get", model_id="m-main", version_name="1.0.0").execute(ctx)
    assert ref["uri"] == "oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/1.0.0/"
    assert ref["registry"] == "pai" and ref["labels"] == {"team": "risk"}
    json.dumps(ref)
    assert pushed_link(ctx, PaiModelVersionLink.xcom_key) == "https://console/cn-hangzhou/m-main/1.0.0"


def test_pai_list_is_expandable(emu: Any) -> None:
    refs = PaiListModelVersionsOperator(task_id="list", model_id="m-big").execute(context())
    assert len(refs) == 120 == len({r["version_name"] for r in refs})
    assert all(isinstance(r, dict) and r["uri"] for r in refs)
    json.dumps(refs)
    approved = PaiListModelVersionsOperator(
        task_id="list2", model_id="m-main", approval_status="Approved", label_filter="risk", max_results=5
    ).execute(context())
    assert [r["version_name"] for r in approved] == ["1.0.0"]


def test_pai_update_approval(emu: Any) -> None:
    ref = PaiUpdateModelVersionApprovalOperator(
        task_id="approve", model_id="m-main", version_name="1.1.0", approval_status="Approved"
    ).execute(context())
    assert ref["approval_status"] == "Approved"
    again = PaiUpdateModelVersionApprovalOperator(
        task_id="approve2", model_id="m-main", version_name="1.1.0", approval_status="Approved"
    ).execute(context())
    assert again["approval_status"] == "Approved"
    from airflow.sdk.exceptions import AirflowFailException

    before = emu.request_log.count()
    with pytest.raises(AirflowFailException, match="terminal"):
        PaiUpdateModelVersionApprovalOperator(
            task_id="reject", model_id="m-main", version_name="1.1.0", approval_status="Rejected"
        ).execute(context())
    assert emu.request_log.count() == before + 1  # read only: the refused change is never sent


def test_pai_update_rejects_bad_status_before_sending(emu: Any) -> None:
    before = emu.request_log.count()
    with pytest.raises(RegistryInputError) as err:
        PaiUpdateModelVersionApprovalOperator(
            task_id="x", model_id="m-main", version_name="1.1.0", approval_status="Maybe"
        ).execute(context())
    assert err.value.field == "approval_status" and emu.request_log.count() == before


def test_fabric_list_and_get(emu: Any) -> None:
    refs = FabricListModelVersionsOperator(task_id="list", model_id="fm-big").execute(context())
    assert len(refs) == 130 == len({r["version_id"] for r in refs})
    assert all(r["registry"] == "fabric" and r["approval_status"] is None for r in refs)
    ctx = context()
    ref = FabricGetModelVersionOperator(
        task_id="get", model_id="fm-1", workspace_id="ws-1", version_name="release-2"
    ).execute(ctx)
    assert ref["uri"] == "obs://b/m/2/" and ref["version_id"] == "00000000-0000-4000-8000-000000000002"
    assert "ws-1" in pushed_link(ctx, FabricConsoleLink.xcom_key)
    by_id = FabricGetModelVersionOperator(task_id="get2", model_id="fm-1", version_id=ref["version_id"]).execute(
        context()
    )
    assert by_id == ref


def test_outlets_carry_the_ref(emu: Any) -> None:
    from airflow.sdk import Asset

    asset = Asset(name="model_version", uri="modelreg://pai/m-main")
    ctx = context()
    PaiGetModelVersionOperator(task_id="get", model_id="m-main", version_name="1.0.0", outlets=[asset]).execute(ctx)
    extra_update = ctx["outlet_events"].__getitem__.return_value.extra.update
    assert extra_update.call_args.args[0]["model_version"]["version_name"] == "1.0.0"


def test_template_fields_cover_ids_and_conn_ids() -> None:
    for op, fields in [
        (PaiGetModelVersionOperator, {"model_id", "version_name", "pai_conn_id"}),
        (PaiListModelVersionsOperator, {"model_id", "pai_conn_id", "approval_status"}),
        (PaiUpdateModelVersionApprovalOperator, {"model_id", "version_name", "pai_conn_id", "approval_status"}),
        (FabricListModelVersionsOperator, {"model_id", "workspace_id", "fabric_conn_id"}),
        (FabricGetModelVersionOperator, {"model_id", "workspace_id", "version_id", "version_name", "fabric_conn_id"}),
    ]:
        assert fields <= set(op.template_fields), op
