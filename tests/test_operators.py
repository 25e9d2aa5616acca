"""Every operator against the emulator (or the suite's fake PAI server); XCom values are JSON-safe dicts.

Issue 12: refs name the model's own workspace and the endpoint's region; list outputs are bounded and never cut
silently; Fabric get-by-name refuses to pick among equal names; one default order (newest first); every declared
link is stored; asset events for every task that yields a ref; one hook per task, closed at the end; explicit
keyword-only constructors; per-task max_attempts / call_timeout (and their deprecated names).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from fake_pai import FakePai, fake_pai_server
from helpers import build_seed, fabric_conn, fabric_version, pai_conn

from airflow_provider_modelreg.errors import (
    RegistryAmbiguousVersionError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryServerError,
    RegistryTransportError,
)
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.links import FabricModelVersionLink, PaiModelLink, PaiModelVersionLink
from airflow_provider_modelreg.operators.base import RegistryOperatorBase
from airflow_provider_modelreg.operators.eas import PaiEasDeployOperator
from airflow_provider_modelreg.operators.fabric import (
    FabricGetModelVersionOperator,
    FabricListModelsOperator,
    FabricListModelVersionsOperator,
)
from airflow_provider_modelreg.operators.fabric_lifecycle import (
    FabricRegisterModelVersionOperator,
    FabricSetCurrentVersionOperator,
)
from airflow_provider_modelreg.operators.pai import (
    PaiGetModelOperator,
    PaiGetModelVersionOperator,
    PaiListModelsOperator,
    PaiListModelVersionsOperator,
    PaiUpdateModelVersionApprovalOperator,
)
from airflow_provider_modelreg.operators.pai_hitl import HAS_HITL, PaiModelVersionApprovalHITLOperator
from airflow_provider_modelreg.operators.pai_lifecycle import (
    PaiCreateModelVersionOperator,
    PaiModelVersionLabelsOperator,
    PaiSetModelVersionAliasOperator,
)
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from airflow_provider_modelreg.transport import RegistryTransport
from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger

PUBLIC = [
    PaiGetModelVersionOperator,
    PaiListModelVersionsOperator,
    PaiUpdateModelVersionApprovalOperator,
    PaiGetModelOperator,
    PaiListModelsOperator,
    FabricListModelVersionsOperator,
    FabricGetModelVersionOperator,
    FabricListModelsOperator,
    PaiModelVersionApprovedSensor,
    PaiCreateModelVersionOperator,
    PaiModelVersionLabelsOperator,
    PaiSetModelVersionAliasOperator,
    *([PaiModelVersionApprovalHITLOperator] if HAS_HITL else []),  # Airflow 3.1+
    FabricRegisterModelVersionOperator,
    FabricSetCurrentVersionOperator,
    PaiEasDeployOperator,
]


def seed() -> dict[str, Any]:
    out = build_seed(pai_generated=120, fabric_generated=130)
    fm1 = out["fabric"]["workspaces"][0]["models"][0]
    fm1["versions"].append(fabric_version(4, "dup-name"))
    fm1["versions"].append(fabric_version(5, "dup-name"))  # created a second later: the newer one
    return out


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=seed())
    pai_conn(
        monkeypatch,
        emulator.url,
        console_url_template="https://console/{region}/{workspace_id}/{model_id}/{version_name}",
    )
    fabric_conn(monkeypatch, emulator.url)
    return emulator


def context() -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = 1
    return {"ti": ti, "task_instance": ti, "outlet_events": mock.MagicMock()}


def pushed(ctx: dict[str, Any], key: str) -> Any:
    for call in ctx["ti"].xcom_push.call_args_list:
        if call.kwargs.get("key") == key:
            return call.kwargs["value"]
    raise AssertionError(f"no XCom {key}")


def link(op: Any, cls: Any) -> str:
    return str(cls().get_link(op, ti_key=mock.MagicMock()))


def wait_until(condition: Callable[[], bool], what: str, deadline: float = 30.0) -> None:
    """Wait for an event (e.g. the emulator's request log advancing), with a generous deadline."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline} s waiting for {what}")
        time.sleep(0.01)


# -------------------------------------------------------------------------------------- behaviour kept


def test_pai_get(emu: Any) -> None:
    op = PaiGetModelVersionOperator(task_id="get", model_id="m-main", version_name="1.0.0")
    ref = op.execute(context())
    assert ref["uri"] == "oss://bucket.oss-cn-hangzhou.aliyuncs.com/models/1.0.0/"
    assert ref["registry"] == "pai" and ref["labels"] == {"team": "risk"}
    json.dumps(ref)
    assert link(op, PaiModelVersionLink) == "https://console/cn-hangzhou/ws-pai/m-main/1.0.0"


def test_pai_list_filters(emu: Any) -> None:
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
    from airflow.providers.common.compat.sdk import AirflowFailException

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


def test_fabric_get(emu: Any) -> None:
    op = FabricGetModelVersionOperator(task_id="get", model_id="fm-1", workspace_id="ws-1", version_name="release-2")
    ref = op.execute(context())
    assert ref["uri"] == "obs://b/m/2/" and ref["version_id"] == "00000000-0000-4000-8000-000000000002"
    assert "ws-1" in link(op, FabricModelVersionLink)
    by_id = FabricGetModelVersionOperator(task_id="get2", model_id="fm-1", version_id=ref["version_id"]).execute(
        context()
    )
    assert by_id == ref


#: constructor parameters that name what a task reads: each must be templated (a DAG passes them from XCom or params)
NAMES = ("model_id", "workspace_id", "version_id", "version_name", "after_version", "created_after", "approval_status")


def _templated_in_docstring(cls: Any) -> set[str]:
    text = " ".join((cls.__doc__ or "").split())  # a param's description may wrap over lines
    return {part.split(":", 1)[0] for part in text.split(":param ")[1:] if "(templated)" in part.split(" :", 1)[0]}


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_template_fields_cover_ids_and_conn_ids_and_render(cls: Any) -> None:
    params = inspect.signature(cls.__init__).parameters
    fields = set(cls.template_fields)
    # every templated field is a constructor parameter; every id, name and conn id parameter is templated
    assert fields <= set(params), fields - set(params)
    wanted = {name for name in params if name in NAMES or name.endswith("_conn_id")}
    assert wanted <= fields, wanted - fields
    # the docstring says "(templated)" for exactly the template fields
    assert _templated_in_docstring(cls) == fields
    # each one renders into the attribute the task reads
    required = {
        name: "x"
        for name, p in params.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty
    }
    for field in sorted(fields):
        op = cls(task_id="t", **{**required, field: "{{ params.value }}-" + field})
        assert getattr(op, field) == "{{ params.value }}-" + field
        op.render_template_fields({"params": {"value": "rendered"}})
        assert getattr(op, field) == "rendered-" + field, field


# -------------------------------------------------------------------------------- 1. workspace, region


def test_1_ref_and_link_name_the_models_workspace_not_the_connections(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(seed=seed())
    for default in ("ws-other", None):  # a connection defaulting to another workspace, and one with no default
        pai_conn(monkeypatch, emu.url, workspace_id=default)
        op = PaiGetModelVersionOperator(task_id="get", model_id="m-main", version_name="1.0.0")
        ref = op.execute(context())
        assert ref["workspace_id"] == "ws-pai" and ref["region"] == "cn-hangzhou"
        assert "workspaceId=ws-pai" in link(op, PaiModelVersionLink)


def test_1_a_listing_costs_one_get_model_per_task(emu: Any) -> None:
    before = emu.request_log.count("pai.GetModel")
    refs = PaiListModelVersionsOperator(task_id="list", model_id="m-big", max_results=None).execute(context())
    assert len(refs) == 120 and {r["workspace_id"] for r in refs} == {"ws-pai"}
    assert emu.request_log.count("pai.GetModel") == before + 1


def test_1_region_comes_from_the_endpoint_when_the_extra_has_none(monkeypatch: pytest.MonkeyPatch) -> None:
    pai_conn(monkeypatch, "https://aiworkspace-vpc.cn-shanghai.aliyuncs.com", region=None)
    fabric_conn(monkeypatch, "https://fabric.cn-southwest-2.myhuaweicloud.com", region=None)
    assert PaiModelRegistryHook().region == "cn-shanghai"
    assert FabricModelRegistryHook().region == "cn-southwest-2"
    pai_conn(monkeypatch, "http://127.0.0.1:1", region=None)
    assert PaiModelRegistryHook().region is None  # an emulator's address says nothing: no guess


def test_1_sensor_polls_cost_no_get_model_after_the_first(emu: Any) -> None:
    task = PaiModelVersionApprovedSensor(
        task_id="wait", model_id="m-main", version_name="1.1.0", poke_interval=0.05, timeout=120, mode="poke"
    )
    before_get, before_all = emu.request_log.count("pai.GetModel"), emu.request_log.count("pai")
    seen: dict[str, Any] = {}

    def polls() -> int:
        return emu.request_log.count("pai") - before_all - (emu.request_log.count("pai.GetModel") - before_get)

    def approve_after_4_polls() -> None:  # Airflow 2 runs an operator only on the thread that built it
        try:
            wait_until(lambda: polls() >= 4, "4 polls of the waiting sensor")
            seen["get_model"] = emu.request_log.count("pai.GetModel") - before_get
            seen["link"] = link(task, PaiModelVersionLink)  # while waiting
        except AssertionError as exc:
            seen["error"] = exc
        finally:
            emu.store.set_approval("m-main", "1.1.0", "Approved")

    approver = threading.Thread(target=approve_after_4_polls)
    approver.start()
    try:
        ref = task.execute(context())
    finally:
        approver.join()
    assert "error" not in seen, seen["error"]
    assert seen["get_model"] == 1  # after 4 polls, still the one GetModel
    assert seen["link"] == "https://console/cn-hangzhou/ws-pai/m-main/1.1.0"
    assert ref["version_name"] == "1.1.0" and ref["approval_status"] == "Approved"
    assert emu.request_log.count("pai.GetModel") == before_get + 1


async def test_1_triggers_share_one_get_model(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    emu = make_emulator(seed=seed())
    pai_conn(monkeypatch, emu.url, workspace_id="ws-other")

    async def first(trigger: PaiModelVersionApprovedTrigger) -> dict[str, Any]:
        return (await anext(trigger.run())).payload  # type: ignore[no-any-return]

    triggers = [
        PaiModelVersionApprovedTrigger(pai_conn_id="pai_default", model_id="m-main", version_name="1.0.0")
        for _ in range(5)
    ]
    events = await asyncio.gather(*(first(t) for t in triggers))
    assert {e["version"]["workspace_id"] for e in events} == {"ws-pai"}
    assert emu.request_log.count("pai.GetModel") == 1


# ------------------------------------------------------------------------------------ 2. bounded lists


#: the warnings() helper reads Airflow 3's structlog console lines
STRUCTLOG = pytest.mark.requires_airflow(
    "3.1", reason="reads the operator's warning on stdout, where the task SDK prints it from Airflow 3.1 on"
)


def warnings(out: str) -> list[str]:
    # Airflow 3.1 also warns that a connection type read from a URI contains '_' (RFC 3986): not the operator's
    return [line for line in out.splitlines() if "[warning" in line and "Connection schemes" not in line]


@STRUCTLOG
def test_2_pai_list_is_bounded_by_default_and_says_so(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = context()
    capsys.readouterr()
    refs = PaiListModelVersionsOperator(task_id="list", model_id="m-big").execute(ctx)
    assert len(refs) == 100 == len({r["version_name"] for r in refs})
    assert pushed(ctx, "total") == 120 and pushed(ctx, "truncated") is True
    said = warnings(capsys.readouterr().out)
    assert len(said) == 1 and "returning 100 of 120" in said[0], said
    json.dumps(refs)

    ctx = context()
    everything = PaiListModelVersionsOperator(task_id="all", model_id="m-big", max_results=None).execute(ctx)
    assert len(everything) == 120 and pushed(ctx, "total") == 120 and pushed(ctx, "truncated") is False
    assert warnings(capsys.readouterr().out) == []


@STRUCTLOG
def test_2_fabric_list_is_bounded_by_default_and_says_so(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = context()
    capsys.readouterr()
    refs = FabricListModelVersionsOperator(task_id="list", model_id="fm-big").execute(ctx)
    assert len(refs) == 100 and pushed(ctx, "total") == 130 and pushed(ctx, "truncated") is True
    said = warnings(capsys.readouterr().out)
    assert len(said) == 1 and "returning 100 of 130" in said[0], said
    ctx = context()
    everything = FabricListModelVersionsOperator(task_id="all", model_id="fm-big", max_results=None).execute(ctx)
    assert len(everything) == 130 == len({r["version_id"] for r in everything})
    assert all(r["registry"] == "fabric" and r["approval_status"] is None for r in everything)
    assert pushed(ctx, "truncated") is False


# ---------------------------------------------------------------------------------- 3. ambiguous names


def test_3_fabric_get_by_a_shared_name_is_an_error_listing_the_candidates(emu: Any) -> None:
    op = FabricGetModelVersionOperator(task_id="get", model_id="fm-1", version_name="dup-name")
    with pytest.raises(RegistryAmbiguousVersionError) as err:
        op.execute(context())
    ids = [c["version_id"] for c in err.value.candidates]
    assert ids == ["00000000-0000-4000-8000-000000000005", "00000000-0000-4000-8000-000000000004"]  # newest first
    assert all(i in str(err.value) for i in ids) and "pick='newest'" in str(err.value)
    newest = FabricGetModelVersionOperator(
        task_id="get2", model_id="fm-1", version_name="dup-name", pick="newest"
    ).execute(context())
    assert newest["version_id"] == ids[0]
    with pytest.raises(RegistryInputError):
        FabricGetModelVersionOperator(task_id="x", model_id="fm-1", version_name="dup-name", pick="any")


# ---------------------------------------------------------------------------------------- 4. one order


def test_4_both_registries_list_newest_first_by_default(emu: Any) -> None:
    pai = PaiListModelVersionsOperator(task_id="p", model_id="m-big", max_results=None).execute(context())
    fabric = FabricListModelVersionsOperator(task_id="f", model_id="fm-big", max_results=None).execute(context())
    for refs in (pai, fabric):
        created = [r["created_at"] for r in refs]
        assert created == sorted(created, reverse=True) and created[0] > created[-1]
    oldest_first = FabricListModelVersionsOperator(task_id="f2", model_id="fm-big", order="ASC", max_results=3).execute(
        context()
    )
    assert [r["version_id"] for r in oldest_first] == [r["version_id"] for r in fabric[::-1][:3]]


# ------------------------------------------------------------------------------------- 5. links stored


def test_5_list_operators_store_their_declared_link(emu: Any) -> None:
    pai = PaiListModelVersionsOperator(task_id="p", model_id="m-main")
    refs = pai.execute(context())
    assert link(pai, PaiModelVersionLink) == f"https://console/cn-hangzhou/ws-pai/m-main/{refs[0]['version_name']}"
    empty = PaiListModelVersionsOperator(task_id="e", model_id="m-main", version_name="9.9.9")
    assert empty.execute(context()) == []
    assert link(empty, PaiModelVersionLink) == "https://console/cn-hangzhou/ws-pai/m-main/"  # the model
    fabric = FabricListModelVersionsOperator(task_id="f", model_id="fm-1")
    frefs = fabric.execute(context())
    assert link(fabric, FabricModelVersionLink).endswith(
        f"/workspace/ws-1/models/fm-1/versions/{frefs[0]['version_id']}"
    )


@pytest.mark.requires_airflow("3.0", reason="Airflow 3 asks every declared link when a try ends (XCom of the task SDK)")
def test_5_get_link_never_reads_xcom(emu: Any) -> None:
    """Airflow asks every declared link when a try ends (deferred too): a link not rendered yet is '' without an
    XCom read (which logs "[error] XCom not found" in a successful run)."""
    from airflow.sdk.execution_time import xcom

    op = PaiListModelVersionsOperator(task_id="p", model_id="m-main")
    with mock.patch.object(xcom.XCom, "get_value", side_effect=AssertionError("read XCom")):
        assert link(op, PaiModelVersionLink) == ""
        op.execute(context())
        assert link(op, PaiModelVersionLink).startswith("https://console/")


def test_5_the_sensor_stores_a_link_before_it_defers(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    task = PaiModelVersionApprovedSensor(task_id="wait", model_id="m-main", after_version="1.0.0", deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(context())
    assert link(task, PaiModelVersionLink) == "https://console/cn-hangzhou/ws-pai/m-main/"


# ------------------------------------------------------------------------------------- 6. asset events


def test_6_every_task_that_yields_a_ref_emits_asset_events_subclasses_included(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import Asset  # Dataset on Airflow 2

    class ModelAsset(Asset):
        pass

    asset = ModelAsset(uri="modelreg://pai/m-main")  # by uri: Airflow 2's Dataset has no name
    cases: list[tuple[Any, str]] = [
        (
            PaiGetModelVersionOperator(task_id="a", model_id="m-main", version_name="1.0.0", outlets=[asset]),
            "model_version",
        ),
        (PaiListModelVersionsOperator(task_id="b", model_id="m-main", outlets=[asset]), "model_versions"),
        (FabricListModelVersionsOperator(task_id="c", model_id="fm-1", outlets=[asset]), "model_versions"),
        (
            PaiModelVersionApprovedSensor(task_id="d", model_id="m-main", version_name="1.0.0", outlets=[asset]),
            "model_version",
        ),
        (PaiGetModelOperator(task_id="e", model_id="m-main", outlets=[asset]), "model"),
    ]
    for op, key in cases:
        ctx = context()
        ctx["outlet_events"] = accessors = _outlet_event_accessors()  # Airflow's own, as the task runner passes
        value = op.execute(ctx)
        assert value, op
        assert len(accessors) == 1, op  # one event: the task's asset
        assert accessors[asset].extra == {key: value}, op


def _outlet_event_accessors() -> Any:
    try:  # Airflow 3: the task SDK's accessors
        from airflow.sdk.execution_time.context import OutletEventAccessors
    except ImportError:  # Airflow 2
        from airflow.utils.context import OutletEventAccessors  # type: ignore[attr-defined,no-redef]
    return OutletEventAccessors()


# -------------------------------------------------------------------------------- 8. one hook per task


def test_8_get_conn_returns_the_sync_transport(emu: Any) -> None:
    hook = PaiModelRegistryHook()
    assert isinstance(hook.get_conn(), RegistryTransport) and hook.get_conn() is hook.transport
    hook.close()
    assert isinstance(FabricModelRegistryHook().get_conn(), RegistryTransport)


def _spy_hooks(monkeypatch: pytest.MonkeyPatch, cls: Any) -> list[Any]:
    made: list[Any] = []
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(cls, "__init__", init)
    return made


def test_8_one_hook_per_task_closed_when_the_task_ends(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    made = _spy_hooks(monkeypatch, PaiModelRegistryHook)
    PaiUpdateModelVersionApprovalOperator(
        task_id="u", model_id="m-main", version_name="1.1.0", approval_status="Approved"
    ).execute(context())  # three requests, one hook
    assert len(made) == 1 and made[0]._transport is None  # closed
    made.clear()
    task = PaiModelVersionApprovedSensor(
        task_id="w", model_id="m-main", version_name="0.0.1", poke_interval=0.05, timeout=0.3
    )
    with pytest.raises(AirflowSensorTimeout):
        task.execute(context())  # poke mode: many pokes
    assert len(made) == 1 and made[0]._transport is None
    made.clear()
    before = emu.request_log.count("pai")
    with pytest.raises(RegistryNotFoundError):  # a task failing after its client sent a request closes it too
        PaiGetModelVersionOperator(task_id="g", model_id="m-main", version_name="9.9.9").execute(context())
    assert emu.request_log.count("pai") > before  # the client existed and was used
    assert len(made) == 1 and made[0]._transport is None


def test_8_deferral_and_resume_close_the_client(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    made = _spy_hooks(monkeypatch, PaiModelRegistryHook)
    task = PaiModelVersionApprovedSensor(task_id="w", model_id="m-main", version_name="1.1.0", deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(context())
    assert len(made) == 1 and made[0]._transport is None
    emu.store.set_approval("m-main", "1.1.0", "Approved")  # the version waited for (the event is checked against it)
    ref = PaiGetModelVersionOperator(task_id="g", model_id="m-main", version_name="1.1.0").execute(context())
    made.clear()
    clients = _spy_hooks(monkeypatch, RegistryTransport)
    before = emu.request_log.count()
    resumed = task.execute_complete(context(), {"status": "success", "version": ref})
    assert resumed == ref
    # the resume sends no request, and opens no client (it may read the connection for the link's template)
    assert clients == [] and emu.request_log.count() == before
    assert all(h._transport is None for h in made)


# --------------------------------------------------------------------------------------- 9. signatures


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda c: c.__name__)
def test_9_constructors_list_their_parameters_keyword_only_and_typed(cls: Any) -> None:
    params = inspect.signature(cls.__init__).parameters
    documented = {
        line.split(":param ", 1)[1].split(":", 1)[0] for line in (cls.__doc__ or "").splitlines() if ":param " in line
    }
    for name in documented:
        assert name in params, (cls.__name__, name)
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, (cls.__name__, name)
        assert params[name].annotation is not inspect.Parameter.empty, (cls.__name__, name)
    conn_id = "fabric_conn_id" if "Fabric" in cls.__name__ else "pai_conn_id"
    assert conn_id in params and conn_id in cls.template_fields
    if "model_id" in params and "create_model" not in params:  # a model being created has no id yet
        assert params["model_id"].default is inspect.Parameter.empty  # required, by name
    from airflow.providers.common.compat.sdk import AirflowException

    with pytest.raises((TypeError, AirflowException)):  # Airflow 2's BaseOperator refuses them first
        cls("task", model_id="m")  # positional arguments are refused


@pytest.mark.parametrize("cls", [RegistryOperatorBase, PaiModelVersionApprovedSensor], ids=lambda c: c.__name__)
def test_9_request_settings_are_keyword_only_and_typed_where_they_are_taken(cls: Any) -> None:
    # every registry operator takes them from RegistryOperatorBase (its docstring says so); the sensor has its own
    params = inspect.signature(cls.__init__).parameters
    for name in ("max_attempts", "call_timeout"):
        assert (
            params[name].kind is inspect.Parameter.KEYWORD_ONLY
            and params[name].annotation is not inspect.Parameter.empty
        )
        assert f":param {name}:" in (cls.__doc__ or "")
    for op in PUBLIC:
        if issubclass(op, RegistryOperatorBase):
            assert "``max_attempts`` and ``call_timeout``" in " ".join((op.__doc__ or "").split()), op


# ------------------------------------------------------------------------------------------- 10. names


def test_10_pairs_that_mean_the_same_read_the_same(emu: Any) -> None:
    # Fabric: the list's name filter and the get's version name find the same version; the model id comes first
    hook = FabricModelRegistryHook()
    listed = hook.list_model_versions("fm-1", workspace_id="ws-1", name_filter="release-2")
    got = hook.get_model_version("fm-1", workspace_id="ws-1", version_name="release-2")
    assert [v.id for v in listed] == [got.id] and got.name == "release-2"
    everything = FabricListModelVersionsOperator(task_id="f", model_id="fm-1", max_results=None).execute(context())
    assert len(everything) > 1  # the filter did filter
    by_operator = FabricGetModelVersionOperator(task_id="g", model_id="fm-1", version_name="release-2")
    assert by_operator.execute(context())["version_id"] == got.id
    for cls in (FabricModelRegistryHook, PaiModelRegistryHook):
        assert list(inspect.signature(cls.list_model_versions).parameters)[1] == "model_id", cls
    # PAI: the hook's label_filter and name_filter read what the operators' parameters of the same name read
    pai = PaiModelRegistryHook()
    by_hook = [v.version_name for v in pai.list_model_versions("m-main", label_filter="risk")]
    by_op = PaiListModelVersionsOperator(task_id="l", model_id="m-main", label_filter="risk").execute(context())
    assert by_hook == [r["version_name"] for r in by_op] and len(by_hook) == 3
    assert pai.list_model_versions("m-main", label_filter="no-such-label") == []
    models = [m.model_id for m in pai.list_models(name_filter='"main"', workspace_id="ws-pai")]
    ops = PaiListModelsOperator(task_id="m", name_filter='"main"', workspace_id="ws-pai").execute(context())
    assert models == [m["model_id"] for m in ops] == ["m-main"]


# --------------------------------------------------------------------------------- 11. model operators


def test_11_model_operators_resolve_a_model_by_name(emu: Any) -> None:
    op = PaiGetModelOperator(task_id="m", model_id="m-main")
    model = op.execute(context())
    assert model["model_name"] == "main" and model["workspace_id"] == "ws-pai" and model["registry"] == "pai"
    assert model["latest_version_name"] in {"0.9.0", "1.0.0", "1.1.0"}
    assert link(op, PaiModelLink).startswith("https://console/cn-hangzhou/ws-pai/m-main")
    json.dumps(model)

    ctx = context()
    found = PaiListModelsOperator(task_id="l", name_filter='"big"').execute(ctx)
    assert [m["model_id"] for m in found] == ["m-big"] and pushed(ctx, "truncated") is False
    ctx = context()
    one = PaiListModelsOperator(task_id="l2", max_results=1).execute(ctx)
    assert len(one) == 1 and pushed(ctx, "total") == 2 and pushed(ctx, "truncated") is True

    ctx = context()
    fabric = FabricListModelsOperator(task_id="f", name_filter="assistant").execute(ctx)
    assert [(m["model_id"], m["workspace_id"], m["registry"]) for m in fabric] == [("fm-1", "ws-1", "fabric")]
    assert len(json.dumps(fabric)) < 1000  # small dicts


# ------------------------------------------------------------------------------ 14. per-task overrides


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    with fake_pai_server() as server:
        pai_conn(monkeypatch, server.url, max_attempts=5)
        yield server


def test_14_max_attempts_override_the_connection(fake: FakePai) -> None:
    fake.models["m-1"] = []
    fake.fail_with = (503, "ServiceUnavailable")
    with pytest.raises(RegistryServerError):
        PaiGetModelVersionOperator(task_id="g", model_id="m-1", version_name="1.0.0", max_attempts=1).execute(context())
    assert fake.count() == 1
    with pytest.raises(RegistryServerError):
        PaiGetModelVersionOperator(task_id="g", model_id="m-1", version_name="1.0.0", max_attempts=2).execute(context())
    assert fake.count() == 3


def test_14_call_timeout_bounds_a_call(fake: FakePai) -> None:
    fake.models["m-1"] = []
    fake.hang.set()
    started = time.monotonic()
    with pytest.raises(RegistryTransportError):
        PaiGetModelVersionOperator(task_id="g", model_id="m-1", version_name="1.0.0", call_timeout=0.5).execute(
            context()
        )
    assert time.monotonic() - started < 3  # the connection's budget would be 5 attempts of 30 s


def test_14_overrides_reach_the_trigger_as_plain_numbers(fake: FakePai) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    fake.models["m-1"] = [
        {"VersionName": "1.0.0", "ApprovalStatus": "Pending", "GmtCreateTime": "2024-01-01T00:00:00Z"}
    ]
    task = PaiModelVersionApprovedSensor(
        task_id="w", model_id="m-1", version_name="1.0.0", deferrable=True, max_attempts=2, call_timeout=7
    )
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context())
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["max_attempts"] == 2 and kwargs["call_timeout"] == 7.0
    kwargs = json.loads(json.dumps(kwargs))
    fake.fail_with = (503, "ServiceUnavailable")
    before = fake.count()
    event = asyncio.run(_first(PaiModelVersionApprovedTrigger(**{**kwargs, "max_failures": 1})))
    assert event["status"] == "error" and fake.count() - before == 2  # one poll, two attempts


async def _first(trigger: Any) -> dict[str, Any]:
    return (await anext(trigger.run())).payload  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": 21}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"call_timeout": float("nan")}, "call_timeout"),
        ({"call_timeout": "5"}, "call_timeout"),
        ({"request_attempts": 21}, "max_attempts"),  # the deprecated name of the same setting
        ({"request_timeout": "5"}, "call_timeout"),
    ],
)
def test_14_bad_overrides_fail_at_parse_time(kwargs: dict[str, Any], field: str) -> None:
    for build in (
        lambda: PaiGetModelVersionOperator(task_id="g", model_id="m", version_name="1", **kwargs),
        lambda: PaiModelVersionApprovedSensor(task_id="w", model_id="m", version_name="1", **kwargs),
    ):
        with pytest.raises(RegistryInputError) as err:
            build()
        assert err.value.field == field
    # the trigger is rebuilt from stored kwargs in the triggerer: it keeps them and reports an error event instead
    trigger = PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id="m", **kwargs)
    event = asyncio.run(anext(trigger.run())).payload
    assert event["status"] == "error" and field in event["message"]


def test_14_the_deprecated_names_still_work_with_a_warning_and_never_twice(fake: FakePai) -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    with pytest.warns(AirflowProviderDeprecationWarning, match="request_attempts is deprecated, use max_attempts"):
        op = PaiGetModelVersionOperator(task_id="g", model_id="m-1", version_name="1.0.0", request_attempts=1)
    assert op.max_attempts == 1 and op.hook._max_attempts == 1
    with pytest.warns(AirflowProviderDeprecationWarning, match="request_timeout is deprecated, use call_timeout"):
        sensor = PaiModelVersionApprovedSensor(task_id="w", model_id="m", version_name="1", request_timeout=7)
    assert sensor.call_timeout == 7.0
    with pytest.warns(AirflowProviderDeprecationWarning, match="request_attempts"):
        trigger = PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id="m", request_attempts=3)
    assert trigger.serialize()[1]["max_attempts"] == 3 and "request_attempts" not in trigger.serialize()[1]
    for build in (
        lambda: PaiGetModelVersionOperator(
            task_id="g", model_id="m", version_name="1", max_attempts=2, request_attempts=3
        ),
        lambda: PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id="m", call_timeout=2, request_timeout=3),
    ):
        with pytest.raises(RegistryInputError, match="deprecated name"):
            build()
    with pytest.raises(TypeError, match="'bogus'"):
        PaiModelVersionApprovedTrigger(pai_conn_id="c", model_id="m", bogus=1)
    with pytest.raises(TypeError, match="'lable_filter'"):  # a misspelt filter never lists everything
        PaiModelRegistryHook().list_model_versions("m-1", lable_filter="risk")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'ofset'"):
        FabricModelRegistryHook().list_model_versions_page("fm-1", workspace_id="ws-1", ofset=3)  # type: ignore[call-arg]
    assert fake.count() == 0
