"""The Fabric EP deploy's console link and OpenLineage (issue 23): ``FabricEpInstanceLink`` to the instance's page
in the DataArts Fabric console, pushed once the instance id is known and read back from XCom by a deserialized
operator (Airflow 2's webserver), with no token of the instance's URL in it; and the lineage the OpenLineage
provider's ``DefaultExtractor`` reads after a deploy against the emulator: the version's artifact and registry
version in, the instance (``fabric-ep://{region}``, its name) out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from helpers import build_seed, fabric_conn
from test_fabric_ep_deploy import V1, V2, Store, context, first_event
from test_links import FakeXCom, deserialized

from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook
from airflow_provider_modelreg.links import FABRIC_EP_CONSOLE_TEMPLATE, FabricEpInstanceLink
from airflow_provider_modelreg.operators.fabric import FabricGetModelVersionOperator
from airflow_provider_modelreg.operators.fabric_ep import FabricDeployServiceInstanceOperator
from airflow_provider_modelreg.triggers.fabric_ep import FabricEpInstanceTrigger

KEY = "_link_FabricEpInstanceLink"
REGISTRY = "huaweicloud-fabric://cn-north-4/ws-1"


@pytest.fixture
def emu(make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from modelreg_emulator.fabric_ep import FabricEpSettings

    emulator = make_emulator(
        seed=build_seed(), fabric_ep=FabricEpSettings(deploy_seconds=0.3, update_seconds=0.3, delete_seconds=0.2)
    )
    fabric_conn(monkeypatch, emulator.url, ep_endpoint=emulator.url)
    return emulator


def deploy(**kwargs: Any) -> FabricDeployServiceInstanceOperator:
    arguments: dict[str, Any] = {"task_id": "ep", "endpoint_id": "ep-1", "poll_interval": 0.05, **kwargs}
    if "model_version" not in arguments:
        arguments.setdefault("model_id", "fm-1")
        arguments.setdefault("version_id", V1)
    return FabricDeployServiceInstanceOperator(**arguments)


def console(instance_id: str) -> str:
    return (
        "https://console.huaweicloud.com/dataartsfabric/?region=cn-north-4"
        f"#/workspace/ws-1/services/instances/{instance_id}"
    )


def pushed(ctx: dict[str, Any]) -> list[str]:
    return [c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list if c.kwargs.get("key") == KEY]


# ------------------------------------------------------------------------------------------------- the link


def test_the_deploy_links_its_instance_in_the_console(emu: Any) -> None:
    ctx = context()
    op = deploy()
    out = op.execute(ctx)
    url = console(out["instance_id"])
    assert pushed(ctx) == [url]  # known when the deploy is sent; the same again at the end: pushed once
    assert FabricEpInstanceLink().get_link(op, ti_key=mock.MagicMock()) == url
    assert FabricEpInstanceLink.key() == FabricEpInstanceLink().xcom_key == KEY
    token = FabricEpHook().get_instance(out["instance_id"]).address.split("token=")[1]  # type: ignore[union-attr]
    assert token and token not in url and "token" not in url  # the instance's own URL is not part of it


def test_the_deserialized_operator_reads_the_link_back_from_xcom(emu: Any) -> None:
    """What Airflow 2's webserver asks: the link of an operator that never ran, from the XCom the try pushed."""
    from airflow.providers.common.compat.sdk import XCom

    xcom = FakeXCom()
    op = deploy()
    out = op.execute({**xcom.context(), "task_state_store": Store()})
    with mock.patch.object(XCom, "get_value", side_effect=xcom.get_value):
        assert FabricEpInstanceLink().get_link(deserialized(op), ti_key=xcom.ti_key) == console(out["instance_id"])
    assert [link.name for link in deserialized(op).operator_extra_links] == ["DataArts Fabric EP Instance"]


def test_a_deferred_deploy_links_before_deferring_and_on_resume(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    store = Store()
    ctx = context(store)
    with pytest.raises(TaskDeferred) as deferred:
        deploy(deferrable=True).execute(ctx)
    _, kwargs = deferred.value.trigger.serialize()
    url = console(kwargs["instance_id"])
    assert pushed(ctx) == [url]  # the UI links the instance while the triggerer waits
    resumed, again = deploy(deferrable=True), context(store)
    resumed.execute_complete(again, first_event(FabricEpInstanceTrigger(**kwargs)))
    assert pushed(again) == [url] and FabricEpInstanceLink().get_link(resumed, ti_key=mock.MagicMock()) == url


def test_the_link_renders_only_the_region_workspace_and_instance() -> None:
    from airflow_provider_modelreg.links import render_console_url

    ref = {"region": "cn-southwest-2", "workspace_id": "ws-9", "instance_id": "i-1", "url": "https://x?token=s"}
    assert render_console_url(FABRIC_EP_CONSOLE_TEMPLATE, ref) == (
        "https://console.huaweicloud.com/dataartsfabric/?region=cn-southwest-2#/workspace/ws-9/services/instances/i-1"
    )


# ---------------------------------------------------------------------------------------------- the lineage


def lineage(op: Any) -> Any:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    return DefaultExtractor(op).extract_on_complete(None)


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_a_deploy_of_a_version_ref_reports_its_artifact_and_version_in_and_the_instance_out(emu: Any) -> None:
    ref = FabricGetModelVersionOperator(task_id="get", model_id="fm-1", version_id=V2).execute(context())
    op = deploy(model_version=ref, name="lineage-ep")
    assert lineage(op).outputs == [] and lineage(op).inputs == []  # nothing deployed yet: nothing claimed
    op.execute(context())
    found = lineage(op)
    assert names(found.inputs) == [("obs://b", "m/2/"), (REGISTRY, f"fm-1/{V2}")]
    assert names(found.outputs) == [("fabric-ep://cn-north-4", "lineage-ep")]
    (entry,) = found.run_facets["modelreg_model_versions"].versions
    assert (entry["registry"], entry["model_id"], entry["version_id"]) == ("fabric", "fm-1", V2)
    assert entry["approval_status"] is None  # Fabric has no approval


def test_a_deploy_by_ids_reports_the_registry_version_in(emu: Any) -> None:
    """Without a ModelVersionRef the artifact is not known: the registry version alone is the input."""
    op = deploy()
    out = op.execute(context())
    found = lineage(op)
    assert names(found.inputs) == [(REGISTRY, f"fm-1/{V1}")]
    assert names(found.outputs) == [("fabric-ep://cn-north-4", out["name"])]


def test_a_resumed_deploy_reports_the_same_lineage(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    store = Store()
    with pytest.raises(TaskDeferred) as deferred:
        deploy(deferrable=True, name="deferred-ep").execute(context(store))
    _, kwargs = deferred.value.trigger.serialize()
    resumed = deploy(deferrable=True, name="deferred-ep")
    resumed.execute_complete(context(store), first_event(FabricEpInstanceTrigger(**kwargs)))
    found = lineage(resumed)
    assert names(found.inputs) == [(REGISTRY, f"fm-1/{V1}")]
    assert names(found.outputs) == [("fabric-ep://cn-north-4", "deferred-ep")]
