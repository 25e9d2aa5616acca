"""Human approval written back to PAI (issue 24): ``PaiModelVersionApprovalHITLOperator`` against the emulator, the
standard provider's human-in-the-loop machinery doing its part (the request is recorded, the task waits for the
answer), and the answer delivered as Airflow delivers it to ``execute_complete``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from unittest import mock

import pytest
from helpers import build_seed, pai_conn

hitl = pytest.mark.requires_airflow("3.1", reason="human-in-the-loop operators exist from Airflow 3.1")


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed())
    pai_conn(monkeypatch, emulator.url)
    return emulator


class FakeTI:
    """The task instance's XCom, as the two halves of a human-in-the-loop task share it."""

    def __init__(self) -> None:
        self.id = "0199a1b2-0000-7000-8000-000000000001"
        self.dag_id, self.run_id, self.task_id, self.try_number, self.map_index = "release", "r1", "review", 1, -1
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        return self.xcoms.get(key)


def context() -> dict[str, Any]:
    ti = FakeTI()
    return {"ti": ti, "task_instance": ti, "task": mock.MagicMock(), "outlet_events": mock.MagicMock()}


def ask(op: Any, ctx: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Run the asking half: the HITL request is recorded (Airflow's API is not there), then the task waits."""
    from airflow.providers.standard.operators import hitl as standard

    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(standard, "upsert_hitl_detail", lambda **kwargs: recorded.append(kwargs))
    waits = tuple(
        e
        for e in (getattr(__import__("airflow.sdk.exceptions", fromlist=["x"]), "TaskAwaitingInput", None),)
        if e is not None
    )
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises((TaskDeferred, *waits)):
        op.execute(ctx)
    return recorded


def answer(option: str, user: str = "alice") -> dict[str, Any]:
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc),
        "responded_by_user": {"id": user, "name": user.title()},
    }


def operator(**kwargs: Any) -> Any:
    from airflow_provider_modelreg.operators.pai_hitl import PaiModelVersionApprovalHITLOperator

    return PaiModelVersionApprovalHITLOperator(task_id="review", model_id="m-main", **kwargs)


def status(version: str) -> tuple[str | None, dict[str, Any]]:
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    found = PaiModelRegistryHook().get_model_version("m-main", version)
    return found.approval_status, dict(found.extra_info or {})


@hitl
def test_an_approval_is_asked_with_the_versions_facts_and_written_back_with_who_and_when(
    emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = context()
    op = operator(version_name="1.1.0")
    recorded = ask(op, ctx, monkeypatch)
    assert len(recorded) == 1 and recorded[0]["options"] == ["Approve", "Reject"]
    assert "oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/1.1.0/" in recorded[0]["body"]
    assert "`team=risk`" in recorded[0]["body"]
    assert status("1.1.0")[0] == "Pending"  # asking writes nothing
    resumed = operator(version_name="1.1.0")  # a fresh object, as on resume
    ref = resumed.execute_complete(ctx, answer("Approve"))
    assert ref["approval_status"] == "Approved" and ref["version_name"] == "1.1.0"
    written, extra = status("1.1.0")
    assert written == "Approved"
    assert extra["airflow_approval"]["by"] == {"id": "alice", "name": "Alice"}
    assert extra["airflow_approval"]["at"] == "2026-12-06T12:00:00+00:00"
    assert extra["airflow_approval"]["run_id"] == "r1"
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    lineage = DefaultExtractor(resumed).extract_on_complete(None)  # what OpenLineage reports for the decision
    assert lineage is not None and [(d.namespace, d.name) for d in lineage.inputs] == [
        ("oss://bucket", "models/1.1.0/")
    ]
    assert lineage.outputs[0].name == "m-main/1.1.0"
    (entry,) = lineage.run_facets["modelreg_model_versions"].versions
    assert entry["approval_status"] == "Approved" and entry["approved_by"] == {"id": "alice", "name": "Alice"}


@hitl
def test_a_rejection_is_written_and_skips_what_follows(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = context()
    op = operator(version_name="1.1.0")
    ask(op, ctx, monkeypatch)
    ref = op.execute_complete(ctx, answer("Reject", "bob"))  # no downstream task here: nothing to skip
    assert ref["approval_status"] == "Rejected" and status("1.1.0")[0] == "Rejected"
    assert status("1.1.0")[1]["airflow_approval"]["status"] == "Rejected"


@hitl
def test_a_decided_version_is_not_asked_about(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException
    from airflow.providers.standard.operators import hitl as standard

    recorded: list[Any] = []
    monkeypatch.setattr(standard, "upsert_hitl_detail", lambda **kwargs: recorded.append(kwargs))
    ref = operator(version_name="1.0.0").execute(context())  # Approved in the seed
    assert ref["approval_status"] == "Approved"
    with pytest.raises(AirflowSkipException, match="Rejected already"):
        operator(version_name="0.9.0").execute(context())
    assert recorded == []


@hitl
def test_a_version_changed_while_waiting_is_a_conflict_never_an_overwrite(
    emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

    ctx = context()
    ask(operator(version_name="1.1.0"), ctx, monkeypatch)
    PaiModelRegistryHook().update_model_version("m-main", "1.1.0", approval_status="Rejected")  # decided elsewhere
    before = emu.request_log.count("pai.UpdateModelVersion")
    with pytest.raises(AirflowFailException, match="changed while waiting"):
        operator(version_name="1.1.0").execute_complete(ctx, answer("Approve"))
    assert status("1.1.0")[0] == "Rejected" and emu.request_log.count("pai.UpdateModelVersion") == before


@hitl
def test_no_answer_in_time_writes_nothing_unless_asked(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.standard.exceptions import HITLTimeoutError

    timeout = {"error": "timed out", "error_type": "timeout"}
    ctx = context()
    ask(operator(version_name="1.1.0"), ctx, monkeypatch)
    with pytest.raises(HITLTimeoutError):
        operator(version_name="1.1.0").execute_complete(ctx, timeout)
    assert status("1.1.0")[0] == "Pending"
    ref = operator(version_name="1.1.0", write_on_timeout="Rejected").execute_complete(ctx, timeout)
    assert ref["approval_status"] == "Rejected"
    assert status("1.1.0")[1]["airflow_approval"]["by"] == {"id": "timeout", "name": "response_timeout"}


@pytest.mark.requires_airflow("<3.1", reason="below Airflow 3.1 there is no human-in-the-loop")
def test_below_airflow_3_1_building_the_task_says_what_it_needs() -> None:
    from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

    with pytest.raises(AirflowOptionalProviderFeatureException, match=r"needs Airflow 3\.1"):
        operator(version_name="1.1.0")


def test_the_write_back_is_one_update_with_status_and_extra_info() -> None:
    import json

    from airflow_provider_modelreg.errors import RegistryInputError
    from airflow_provider_modelreg.hooks.pai_specs import update_model_version_spec

    spec = update_model_version_spec("m-1", "1.0.0", "Approved", {"airflow_approval": {"by": "é"}})
    assert spec.method == "PUT" and json.loads(spec.body or b"") == {
        "ApprovalStatus": "Approved",
        "ExtraInfo": {"airflow_approval": {"by": "é"}},
    }
    assert spec.body == '{"ApprovalStatus":"Approved","ExtraInfo":{"airflow_approval":{"by":"é"}}}'.encode()
    with pytest.raises(RegistryInputError, match="extra_info"):
        update_model_version_spec("m-1", "1.0.0", "Approved", ["x"])  # type: ignore[arg-type]
