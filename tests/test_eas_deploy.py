"""PaiEasDeployOperator against the emulator (issue 22): create, nothing to do, update, failure with Warning events, a
retry that reconnects instead of deploying again, the deferrable wait, and the write-back label in the registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import httpx
import pytest
from helpers import build_seed, pai_conn

from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.operators.eas import EasDeployError, PaiEasDeployOperator

REGION = "cn-hangzhou"


@pytest.fixture
def emu(make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from modelreg_emulator.eas import EasSettings

    emulator = make_emulator(
        seed=build_seed(), eas=EasSettings(create_seconds=0.3, update_seconds=0.3, delete_seconds=0.3)
    )
    pai_conn(monkeypatch, emulator.url, region=REGION, eas_endpoint=emulator.url)
    return emulator


class Store:
    """Airflow 3.3's task state store, as a dict."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.values[key] = value


def context(store: Store | None = None) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.configure_mock(dag_id="deploy", run_id="r1", task_id="eas", map_index=-1, try_number=1, stats_tags={})
    return {"ti": ti, "task_instance": ti, "outlet_events": mock.MagicMock(), "task_state_store": store or Store()}


def ref(version: str = "1.0.0") -> dict[str, Any]:
    hook = PaiModelRegistryHook()
    return hook.version_ref("m-main", hook.get_model_version("m-main", version)).to_xcom()


def deploy(**kwargs: Any) -> PaiEasDeployOperator:
    return PaiEasDeployOperator(task_id="eas", model_version=ref(), poll_interval=0.1, **kwargs)


def sent(emu: Any, route: str) -> int:
    return int(emu.request_log.count(f"eas.{route}"))


def test_a_new_service_is_created_verified_running_and_written_back(emu: Any) -> None:
    out = deploy().execute(context())
    assert out["status"] == "Running" and out["running_instance"] == out["total_instance"] == 1
    assert out["labels"] == {"model_id": "m-main", "version_name": "1.0.0"}
    assert "access_token" not in out and sent(emu, "CreateService") == 1
    labels = {lb.key: lb.value for lb in PaiModelRegistryHook().get_model_version("m-main", "1.0.0").labels or ()}
    assert labels["deployed-eas"] == f"{out['service_name']}@{REGION}"


def test_a_service_that_runs_the_config_already_is_left_alone(emu: Any) -> None:
    first = deploy().execute(context())
    again = deploy().execute(context())
    assert again["service_name"] == first["service_name"] and again["current_version"] == first["current_version"]
    assert sent(emu, "CreateService") == 1 and sent(emu, "UpdateService") == 0


def test_another_config_updates_the_service_once_and_waits_until_it_serves(emu: Any) -> None:
    first = deploy().execute(context())
    bigger = deploy(instance=2).execute(context())  # scaling: the same version, more instances
    assert sent(emu, "UpdateService") == 1
    assert bigger["current_version"] == bigger["latest_version"] == first["latest_version"]
    assert bigger["running_instance"] == bigger["total_instance"] == 2
    newer = PaiEasDeployOperator(task_id="eas", model_version=ref("1.1.0"), poll_interval=0.1)
    newer.service_name = first["service_name"]  # the same service, another model: a new version
    moved = newer.execute(context())
    assert sent(emu, "UpdateService") == 2
    assert moved["current_version"] == moved["latest_version"] == first["latest_version"] + 1


def test_a_retry_reconnects_to_the_update_in_flight_instead_of_updating_again(emu: Any) -> None:
    deploy().execute(context())
    store = Store()
    crashed = deploy(instance=3)
    record = crashed.submit_job(context(store))  # the try sent UpdateService, then its worker died
    store.set(crashed.external_id_key, record)
    out = deploy(instance=3).execute(context(store))  # the retry
    assert sent(emu, "UpdateService") == 1 and out["total_instance"] == 3


def test_a_cleared_task_deploying_another_version_does_not_reuse_the_stored_deploy(emu: Any) -> None:
    store = Store()  # the task state store outlives a clear of the task
    first = deploy().execute(context(store))
    cleared = PaiEasDeployOperator(task_id="eas", model_version=ref("1.1.0"), poll_interval=0.1)
    second = cleared.execute(context(store))  # the upstream gate now hands over 1.1.0
    assert second["service_name"] != first["service_name"] and second["labels"]["version_name"] == "1.1.0"
    assert sent(emu, "CreateService") == 2
    labels = {lb.key: lb.value for lb in PaiModelRegistryHook().get_model_version("m-main", "1.1.0").labels or ()}
    assert labels["deployed-eas"] == f"{second['service_name']}@{REGION}"  # never the old service's name


def test_a_failed_service_fails_the_task_with_reason_message_and_warnings(emu: Any) -> None:
    op = deploy()
    record = op.submit_job(context())
    name = record["service_name"]
    httpx.put(
        f"{emu.url}/_emulator/eas/services/{REGION}/{name}/fail",
        json={"reason": "ImagePullBackOff", "message": "image not found"},
        headers={"X-Modelreg-Admin": "1"},
        trust_env=False,
    ).raise_for_status()
    with pytest.raises(EasDeployError) as err:
        deploy().execute(context())
    assert err.value.reason == "ImagePullBackOff" and "image not found" in str(err.value)
    assert any("image not found" in w for w in err.value.warnings)
    labels = {lb.key for lb in PaiModelRegistryHook().get_model_version("m-main", "1.0.0").labels or ()}
    assert "deployed-eas" not in labels  # nothing written back for a deploy that did not succeed


def test_the_deferrable_wait_ends_in_the_same_output(emu: Any) -> None:
    import asyncio

    from airflow.providers.common.compat.sdk import TaskDeferred

    store = Store()
    op = deploy(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(store))
    trigger = deferred.value.trigger
    _, kwargs = trigger.serialize()
    assert "token" not in str(kwargs).lower() and store.values[op.external_id_key]["service_name"]

    async def first() -> dict[str, Any]:
        rebuilt = type(trigger)(**kwargs)
        return (await anext(rebuilt.run())).payload  # type: ignore[no-any-return]

    event = asyncio.run(first())
    assert event["status"] == "success" and event["service"]["status"] == "Running"
    out = deploy(deferrable=True).execute_complete(context(store), event)
    assert out == event["service"] and sent(emu, "CreateService") == 1


def test_a_version_that_is_not_from_pai_is_refused_before_any_request(emu: Any) -> None:
    from airflow_provider_modelreg.errors import RegistryInputError

    fabric = {**ref(), "registry": "fabric"}
    before = emu.request_log.count()
    for value, field in ((fabric, "model_version"), ("{{ ti.xcom_pull() }}", "model_version")):
        with pytest.raises(RegistryInputError) as err:
            PaiEasDeployOperator(task_id="eas", model_version=value).execute(context())
        assert err.value.field == field
    assert emu.request_log.count() == before


def test_the_deploy_reports_the_version_in_and_the_service_out_to_openlineage(emu: Any) -> None:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    op = deploy(service_name="lineage_svc")
    assert DefaultExtractor(op).extract_on_complete(None).outputs == []  # nothing deployed yet: nothing claimed
    op.execute(context())
    lineage = DefaultExtractor(op).extract_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.outputs] == [(f"pai-eas://{REGION}", "lineage_svc")]
    names = [(d.namespace.split("://")[0], d.name) for d in lineage.inputs]
    assert ("pai", "m-main/1.0.0") in names and any(scheme == "oss" for scheme, _ in names)
    (entry,) = lineage.run_facets["modelreg_model_versions"].versions
    assert (entry["model_id"], entry["version_name"], entry["approval_status"]) == ("m-main", "1.0.0", "Approved")


def test_waits_on_one_service_share_the_hubs_client_and_each_describe(emu: Any) -> None:
    """Ten deferred waits on one service (a deploy and the rollbacks and canaries watching it): one client for the
    connection, one DescribeService per round however many wait, and the hub gone with its last wait."""
    import asyncio

    from airflow_provider_modelreg.hooks.eas import PaiEasHook
    from airflow_provider_modelreg.triggers.eas import EasPollHub, PaiEasServiceTrigger

    PaiEasHook().create_service({"name": "shared_wait", "metadata": {"instance": 1}, "processor": "pmml"})
    built: list[Any] = []
    original = EasPollHub.hook_class

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(args)
        return original(*args, **kwargs)

    async def all_waits() -> list[dict[str, Any]]:
        waits = [
            PaiEasServiceTrigger(pai_conn_id="pai_default", service_name="shared_wait", poll_interval=0.1)
            for _ in range(10)
        ]
        events = await asyncio.gather(*(anext(w.run()) for w in waits))
        return [e.payload for e in events]

    before = sent(emu, "DescribeService")
    EasPollHub.hook_class = counting
    try:
        events = asyncio.run(all_waits())
    finally:
        EasPollHub.hook_class = original
    assert [e["status"] for e in events] == ["success"] * 10
    described = sent(emu, "DescribeService") - before
    rounds = 0.3 / 0.1 + 3  # Creating for 0.3 s, polled every 0.1 s, plus scheduling slack
    assert 1 <= described <= rounds, described  # ten waits, yet one read a round (unshared: about 40)
    assert len(built) == 1  # one hook, one client, for every wait of the connection
    assert EasPollHub.hubs == {}  # released with the last wait: its client closed


def test_a_waits_first_read_is_fresh_then_shared_within_half_an_interval(
    emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cached DescribeService may predate the change the task sent before deferring: the first poll never takes
    it; later polls share answers up to half an interval old."""
    import asyncio

    from airflow_provider_modelreg.hooks.eas import PaiEasHook
    from airflow_provider_modelreg.triggers.eas import EasPollHub, PaiEasServiceTrigger

    PaiEasHook().create_service({"name": "fresh_wait", "metadata": {"instance": 1}, "processor": "pmml"})
    ages: list[float] = []
    real = EasPollHub.read

    async def read(self: Any, what: Any, max_age: float) -> Any:
        ages.append(max_age)
        return await real(self, what, max_age)

    monkeypatch.setattr(EasPollHub, "read", read)
    trigger = PaiEasServiceTrigger(pai_conn_id="pai_default", service_name="fresh_wait", poll_interval=0.1)

    async def first() -> Any:
        events = trigger.run()
        try:
            return await anext(events)
        finally:
            await events.aclose()

    assert asyncio.run(first()).payload["status"] == "success"
    assert len(ages) >= 2 and ages[0] == 0.0 and set(ages[1:]) == {0.05}


def _describe_failing(monkeypatch: pytest.MonkeyPatch, failures: int) -> list[int]:
    """DescribeService answers 503 ``failures`` times once the service exists (the deploy's first look passes)."""
    from modelreg_emulator import eas
    from modelreg_emulator.wire import ApiError

    name, real = eas._SERVICE_ROUTES["GET "]
    left = [failures]

    def handler(state: Any, req: Any, args: list[str]) -> Any:
        answer = real(state, req, args)  # a missing service raises its 404 here, before any injected failure
        if left[0] > 0:
            left[0] -= 1
            raise ApiError(503, "ServiceUnavailable", "try later")
        return answer

    monkeypatch.setitem(eas._SERVICE_ROUTES, "GET ", (name, handler))
    return left


def test_the_worker_wait_rides_out_failed_polls_within_its_budget(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    left = _describe_failing(monkeypatch, 3)
    out = deploy(service_name="budget_ok", max_attempts=1, max_failures=4).execute(context())
    assert out["status"] == "Running" and left == [0] and sent(emu, "CreateService") == 1


def test_the_worker_wait_fails_once_failed_polls_exhaust_its_budget(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_modelreg.errors import RegistryInputError, RegistryServerError

    _describe_failing(monkeypatch, 3)
    with pytest.raises(RegistryServerError, match="503"):
        deploy(service_name="budget_out", max_attempts=1, max_failures=3).execute(context())
    for bad in (0, True, "5", 1001):
        with pytest.raises(RegistryInputError, match="max_failures"):
            deploy(service_name="budget_bad", max_failures=bad)


def test_the_deploy_stores_a_console_link_to_its_service(emu: Any) -> None:
    from airflow_provider_modelreg.links import PaiEasServiceLink

    ctx = context()
    op = deploy(service_name="linked_svc")
    op.execute(ctx)
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list if "key" in c.kwargs}
    url = pushed[PaiEasServiceLink.key()]
    assert url == f"https://pai.console.aliyun.com/?regionId={REGION}#/eas/serviceDetail/linked_svc/detail"
    assert PaiEasServiceLink().get_link(op, ti_key=None) == url  # type: ignore[arg-type]
