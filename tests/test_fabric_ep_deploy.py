"""FabricDeployServiceInstanceOperator and FabricDeleteServiceInstanceOperator against the emulator (issue 23): a new
instance, a re-run that deploys nothing, a new version swapped in through UpdateServiceInstance, a retry after a
worker crash that reconnects, FAILED as a typed error with the service's error_code/error_msg, the deferrable wait,
a delete that tolerates 404, and hostile answers (unknown status, missing fields, throttling, 5xx). Plus the sans-IO
core's decisions on plain data."""

from __future__ import annotations

import asyncio
import http.server
import json
from collections.abc import Callable, Iterator
from typing import Any, ClassVar
from unittest import mock

import httpx
import pytest
from helpers import background_server, build_seed, fabric_conn

from airflow_provider_modelreg.errors import RegistryResponseError, RegistryWaitTimeoutError
from airflow_provider_modelreg.fabric_ep_deploy import (
    Deploy,
    EpDeployIntent,
    EpDeployRecord,
    InstanceWatch,
    Refuse,
    Swap,
    Wait,
    plan_deploy,
)
from airflow_provider_modelreg.fabric_ep_models import FabricEpInstance
from airflow_provider_modelreg.hooks.fabric_ep import FabricEpHook
from airflow_provider_modelreg.operators.fabric_ep import (
    FabricDeleteServiceInstanceOperator,
    FabricDeployServiceInstanceOperator,
    FabricEpDeployError,
)
from airflow_provider_modelreg.triggers.fabric_ep import FabricEpInstanceTrigger

V1 = "00000000-0000-4000-8000-000000000001"
V2 = "00000000-0000-4000-8000-000000000002"


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
    ti.configure_mock(dag_id="deploy", run_id="r1", task_id="ep", map_index=-1, try_number=1, stats_tags={})
    return {"ti": ti, "task_instance": ti, "outlet_events": mock.MagicMock(), "task_state_store": store or Store()}


@pytest.fixture(params=["aksk", "token"])
def emu(request: pytest.FixtureRequest, make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from modelreg_emulator.fabric_ep import FabricEpSettings

    emulator = make_emulator(
        seed=build_seed(), fabric_ep=FabricEpSettings(deploy_seconds=0.3, update_seconds=0.3, delete_seconds=0.2)
    )
    fabric_conn(monkeypatch, emulator.url, auth_type=request.param, ep_endpoint=emulator.url)
    return emulator


def deploy(version: str = V1, **kwargs: Any) -> FabricDeployServiceInstanceOperator:
    arguments = {"task_id": "ep", "endpoint_id": "ep-1", "model_id": "fm-1", "version_id": version, **kwargs}
    return FabricDeployServiceInstanceOperator(poll_interval=0.05, **arguments)


def sent(emu: Any, operation: str) -> int:
    return int(emu.request_log.count(f"fabric_ep.{operation}"))


def fail(emu: Any, instance_id: str, code: str = "EP.5001", msg: str = "the model does not fit: out of memory") -> None:
    """The emulator's admin route (``PUT /_emulator/fabric-ep/instances/{workspace}/{id}/fail``)."""
    answer = httpx.put(
        f"{emu.url}/_emulator/fabric-ep/instances/ws-1/{instance_id}/fail",
        json={"error_code": code, "error_msg": msg},
        headers={"X-Modelreg-Admin": "1"},
        trust_env=False,
    )
    answer.raise_for_status()
    assert answer.json()["status"] == "FAILED"


# ------------------------------------------------------------------------------------------- the operator


def test_a_new_instance_is_deployed_and_reported_with_its_url_masked(emu: Any) -> None:
    ctx = context()
    out = deploy().execute(ctx)
    assert out["status"] == "RUNNING" and out["version_id"] == V1 and out["endpoint_id"] == "ep-1"
    assert out["url"].startswith("https://") and "token=***" in out["url"]
    token = FabricEpHook().get_instance(out["instance_id"]).address.split("token=")[1]  # type: ignore[union-attr]
    assert token not in json.dumps(out)
    assert sent(emu, "DeployServiceInstance") == 1 and sent(emu, "UpdateServiceInstance") == 0


def test_the_asset_event_carries_the_instance(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import Asset

    asset = Asset("fabric-ep://ep-1/fm-1")
    ctx = context()
    out = deploy(outlets=[asset]).execute(ctx)
    ctx["outlet_events"][asset].extra.update.assert_called_with({"fabric_ep_instance": out})


def test_a_rerun_deploys_nothing(emu: Any) -> None:
    first = deploy().execute(context())
    again = deploy().execute(context())
    assert again["instance_id"] == first["instance_id"]
    assert sent(emu, "DeployServiceInstance") == 1 and sent(emu, "UpdateServiceInstance") == 0


def test_a_new_version_is_swapped_onto_the_instance(emu: Any) -> None:
    first = deploy(V1).execute(context())
    second = deploy(V2).execute(context())
    assert second["instance_id"] == first["instance_id"] and second["version_id"] == V2
    assert second["status"] == "RUNNING"
    assert sent(emu, "DeployServiceInstance") == 1 and sent(emu, "UpdateServiceInstance") == 1
    assert deploy(V2).execute(context())["instance_id"] == first["instance_id"]
    assert sent(emu, "UpdateServiceInstance") == 1  # a re-run of the swap swaps nothing


def test_a_cleared_task_deploying_another_version_does_not_reuse_the_stored_deploy(emu: Any) -> None:
    store = Store()  # the task state store outlives a clear of the task
    first = deploy(V1).execute(context(store))
    second = deploy(V2).execute(context(store))  # cleared; the upstream task now hands over V2
    assert second["instance_id"] == first["instance_id"] and second["version_id"] == V2
    assert sent(emu, "UpdateServiceInstance") == 1  # swapped, never reported as the stored V1 deploy


def test_an_instance_that_never_runs_fails_at_the_timeout_in_either_mode(emu: Any) -> None:
    import time

    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(RegistryWaitTimeoutError) as err:
        deploy(timeout=0.1).execute(context())  # the instance takes 0.3 s
    assert "not there after 0.1 s" in str(err.value) and err.value.retryable
    op = deploy(timeout=0.1, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger = deferred.value.trigger
    assert trigger.end_time is not None and trigger.end_time <= time.time() + 0.1
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() == pytest.approx(60.1)
    with pytest.raises(RegistryWaitTimeoutError):
        op.execute_complete(context(), {"status": "timeout", "instance_id": "i-1", "message": "late"})
    assert deploy().timeout == 3600.0


class Crash(Exception):
    """The worker dies."""


@pytest.mark.requires_airflow(
    "3.3",
    reason="the task state store keeps the crashed try's record from Airflow 3.3; below, the compat stand-in of "
    "ResumableJobMixin keeps none (a retry finds the instance by listing: the swap test below)",
)
def test_a_retry_after_a_crash_reconnects_instead_of_deploying_again(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    op = deploy()
    monkeypatch.setattr(type(op), "poll_until_complete", mock.Mock(side_effect=Crash()))
    with pytest.raises(Crash):
        op.execute(context(store))
    monkeypatch.undo()
    fabric_conn(monkeypatch, emu.url, ep_endpoint=emu.url)
    record = EpDeployRecord.from_json(store.values[op.external_id_key])
    assert record is not None and record.action == "deploy"
    out = deploy().execute(context(store))
    assert out["instance_id"] == record.instance_id and out["status"] == "RUNNING"
    assert sent(emu, "DeployServiceInstance") == 1


def test_a_swap_interrupted_by_a_crash_is_not_sent_twice(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = deploy(V1).execute(context())
    store = Store()
    op = deploy(V2)
    monkeypatch.setattr(type(op), "poll_until_complete", mock.Mock(side_effect=Crash()))
    with pytest.raises(Crash):
        op.execute(context(store))
    monkeypatch.undo()
    fabric_conn(monkeypatch, emu.url, ep_endpoint=emu.url)
    out = deploy(V2).execute(context(store))  # the instance is UPDATING: reconnected, not refused as busy
    assert out["instance_id"] == first["instance_id"] and out["version_id"] == V2
    assert sent(emu, "UpdateServiceInstance") == 1


def test_a_failed_instance_is_a_typed_error_with_the_services_code_and_message(
    emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = FabricEpHook.deploy_instance

    def deploy_then_fail(self: FabricEpHook, *args: Any, **kwargs: Any) -> Any:
        created = real(self, *args, **kwargs)
        fail(emu, created.id)
        return created

    monkeypatch.setattr(FabricEpHook, "deploy_instance", deploy_then_fail)
    with pytest.raises(FabricEpDeployError) as err:
        deploy().execute(context())
    assert (err.value.error_code, err.value.error_msg) == ("EP.5001", "the model does not fit: out of memory")
    assert err.value.instance_id is not None
    monkeypatch.setattr(FabricEpHook, "deploy_instance", real)
    with pytest.raises(FabricEpDeployError) as again:  # a retry finds the failed instance: no second deploy
        deploy().execute(context())
    assert again.value.error_code == "EP.5001" and sent(emu, "DeployServiceInstance") == 1


def test_a_lost_deploy_answer_is_not_a_second_instance(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_modelreg.errors import RegistryTransportError

    real = FabricEpHook.deploy_instance

    def arrives_then_fails(self: FabricEpHook, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RegistryTransportError("read timed out")

    monkeypatch.setattr(FabricEpHook, "deploy_instance", arrives_then_fails)
    with pytest.raises(RegistryTransportError):
        deploy().execute(context())
    monkeypatch.setattr(FabricEpHook, "deploy_instance", real)
    out = deploy().execute(context())  # a fresh store: the listing finds the instance the lost answer named
    assert out["status"] == "RUNNING" and sent(emu, "DeployServiceInstance") == 1


def test_the_listing_reads_every_page(emu: Any) -> None:
    hook = FabricEpHook()
    for index in range(3):
        body = {
            "source": {"id": "fm-1", "version_id": V1},
            "name": f"svc {index}",
            "endpoint_id": f"ep-{index % 2}",
            "config": {"model_instance_config": {"resource": {"min": 1, "max": 1}}},
        }
        hook.deploy_instance(body)
    every = hook.list_instances(source_id="fm-1", page_size=1)
    assert len(every) == 3 and sent(emu, "ListServicesInstances") >= 3
    assert [i.name for i in hook.list_instances(endpoint_id="ep-0", page_size=1)] == ["svc 0", "svc 2"]
    assert len(hook.list_instances(source_id="fm-1", version_id=V2)) == 0
    hook.close()


def test_the_trigger_times_out_and_the_operator_reports_every_event_kind(emu: Any) -> None:
    out = deploy().execute(context())
    trigger = FabricEpInstanceTrigger(
        fabric_conn_id="fabric_default", instance_id=out["instance_id"], version_id=V1, end_time=0.0
    )
    assert first_event(trigger)["status"] == "timeout"
    op = deploy(deferrable=True)
    for event in (
        None,
        {"nothing": 1},
        {"status": "timeout", "instance_id": "i-1", "message": "late"},
        {"status": "error", "instance_id": "i-1", "error_type": "X", "message": "m"},
        {"status": "success", "instance_id": "i-1"},  # no instance summary: not a success
    ):
        with pytest.raises(Exception) as err:
            op.execute_complete(context(), event)
        assert not isinstance(err.value, FabricEpDeployError)
    gone = FabricEpInstanceTrigger(fabric_conn_id="fabric_default", instance_id="nope", version_id=V1)
    event = first_event(gone)
    assert event["status"] == "error" and event["error_type"] == "RegistryNotFoundError"


def test_the_admin_command_line(emu: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from modelreg_emulator.admin import main as cli

    created = FabricEpHook().deploy_instance(
        {
            "source": {"id": "fm-1", "version_id": V1},
            "name": "cli",
            "endpoint_id": "ep-1",
            "config": {"model_instance_config": {"resource": {"min": 1, "max": 1}}},
        }
    )
    assert cli(["fabric-ep", "advance", "ws-1", created.id, "--url", emu.url]) == 0
    assert f"{created.id}: RUNNING (version {V1})" in capsys.readouterr().out
    assert (
        cli(["fabric-ep", "fail", "ws-1", created.id, "--error-code", "E9", "--error-msg", "x", "--url", emu.url]) == 0
    )
    found = FabricEpHook().get_instance(created.id)
    assert (found.status.value, found.error_code, found.error_msg) == ("FAILED", "E9", "x")
    assert cli(["fabric-ep", "advance", "ws-1", "no-such", "--url", emu.url]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_the_deferrable_wait_ends_in_the_same_output(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    store = Store()
    op = deploy(deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context(store))
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "airflow_provider_modelreg.triggers.fabric_ep.FabricEpInstanceTrigger"
    event = first_event(FabricEpInstanceTrigger(**kwargs))
    assert event["status"] == "success" and event["instance"]["status"] == "RUNNING"
    assert "token=***" in event["instance"]["url"]
    out = deploy(deferrable=True).execute_complete(context(store), event)
    assert out == event["instance"] and sent(emu, "DeployServiceInstance") == 1


def test_a_deferred_deploy_that_fails_is_the_typed_error(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        deploy(deferrable=True).execute(context())
    _, kwargs = deferred.value.trigger.serialize()
    fail(emu, kwargs["instance_id"], "EP.4002", "image pull failed")
    event = first_event(FabricEpInstanceTrigger(**kwargs))
    assert event == {
        "status": "failed",
        "instance_id": kwargs["instance_id"],
        "error_code": "EP.4002",
        "error_msg": "image pull failed",
    }
    with pytest.raises(FabricEpDeployError) as err:
        deploy(deferrable=True).execute_complete(context(), event)
    assert (err.value.error_code, err.value.error_msg) == ("EP.4002", "image pull failed")


def test_delete_tolerates_an_instance_that_is_gone(emu: Any) -> None:
    import time

    out = deploy().execute(context())
    delete = FabricDeleteServiceInstanceOperator(task_id="rm", instance_id=out["instance_id"])
    assert delete.execute(context()) == {"instance_id": out["instance_id"], "deleted": True}
    time.sleep(0.3)
    assert delete.execute(context()) == {"instance_id": out["instance_id"], "deleted": False}
    assert sent(emu, "DeleteServiceInstance") == 2


def test_bad_input_fails_before_any_request(emu: Any) -> None:
    from airflow_provider_modelreg.errors import RegistryInputError

    with pytest.raises(RegistryInputError):
        deploy(version="v1").execute(context())
    with pytest.raises(RegistryInputError):
        deploy(model_version={"registry": "pai", "model_id": "m", "version_name": "1", "version_id": "1"}).execute(
            context()
        )
    assert emu.request_log.entries == [] or all(not e.route.startswith("fabric_ep.") for e in emu.request_log.entries)


# ----------------------------------------------------------------------------------------- hostile answers


def first_event(trigger: FabricEpInstanceTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    return asyncio.run(first())


class Hostile(http.server.BaseHTTPRequestHandler):
    answers: ClassVar[list[tuple[int, bytes, dict[str, str]]]] = []

    def do_GET(self) -> None:
        status, body, headers = type(self).answers.pop(0) if len(type(self).answers) > 1 else type(self).answers[0]
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with background_server(Hostile) as srv:
        url = f"http://127.0.0.1:{srv.server_port}"
        fabric_conn(monkeypatch, url, ep_endpoint=url)
        yield Hostile


def running(**fields: Any) -> bytes:
    return json.dumps({"id": "i-1", "status": "RUNNING", "source": {"id": "fm-1", "version_id": V1}, **fields}).encode()


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps({"id": "i-1", "status": "EXPLODED"}).encode(),
        json.dumps({"id": "i-1"}).encode(),
        json.dumps({"status": "RUNNING"}).encode(),
        json.dumps({"id": "i-1", "status": "RUNNING", "url": "not an object"}).encode(),
        b"[1, 2]",
    ],
)
def test_an_unreadable_instance_is_an_error_never_a_success(hostile: Any, answer: bytes) -> None:
    hostile.answers = [(200, answer, {})]
    with pytest.raises(RegistryResponseError):
        FabricEpHook().get_instance("i-1")
    event = first_event(FabricEpInstanceTrigger(fabric_conn_id="fabric_default", instance_id="i-1", version_id=V1))
    assert event["status"] == "error" and event["error_type"] == "RegistryResponseError"


def test_throttling_and_5xx_are_retried_then_succeed(hostile: Any) -> None:
    throttled = json.dumps({"error_code": "APIG.0308", "error_msg": "throttled"}).encode()
    broken = json.dumps({"error_code": "common.00000500", "error_msg": "internal error"}).encode()
    hostile.answers = [(429, throttled, {"Retry-After": "0"}), (500, broken, {}), (200, running(), {})]
    assert FabricEpHook().get_instance("i-1").version_id == V1
    hostile.answers = [(503, broken, {}), (200, running(), {})]
    event = first_event(
        FabricEpInstanceTrigger(fabric_conn_id="fabric_default", instance_id="i-1", version_id=V1, poll_interval=0.01)
    )
    assert event["status"] == "success"


def test_a_trigger_gives_up_after_repeated_server_errors(hostile: Any) -> None:
    broken = json.dumps({"error_code": "common.00000500", "error_msg": "internal error"}).encode()
    hostile.answers = [(500, broken, {})]
    trigger = FabricEpInstanceTrigger(
        fabric_conn_id="fabric_default",
        instance_id="i-1",
        version_id=V1,
        poll_interval=0.01,
        max_failures=2,
        max_attempts=1,
    )
    event = first_event(trigger)
    assert event["status"] == "error" and event["error_type"] == "RegistryServerError"


def test_a_token_in_the_url_is_masked_in_the_answer(hostile: Any) -> None:
    secret = "s3cr3t-token-value"
    hostile.answers = [(200, running(url={"address": f"https://h/v1?token={secret}", "type": "REST"}), {})]
    out = FabricEpHook().get_instance("i-1").to_output()
    assert secret not in json.dumps(out) and out["url"] == "https://h/v1?token=***"


# ------------------------------------------------------------------------------------------ the sans-IO core


INTENT = EpDeployIntent("fm-1", V1, "ep-1", "svc")


def inst(status: str = "RUNNING", version: str = V1, name: str = "svc", iid: str = "i-1", **extra: Any) -> Any:
    return FabricEpInstance.model_validate(
        {
            "id": iid,
            "status": status,
            "name": name,
            "endpoint_id": "ep-1",
            "source": {"id": "fm-1", "version_id": version},
        }
        | extra
    )


def test_the_plan_deploys_waits_swaps_or_refuses() -> None:
    assert plan_deploy(INTENT, [], None) == Deploy()
    assert isinstance(plan_deploy(INTENT, [inst("CREATING")], None), Wait)
    assert plan_deploy(INTENT, [inst(version=V2)], None) == Swap("i-1", V2)
    assert plan_deploy(INTENT, [inst(version=V2, name="other")], None) == Deploy()
    busy = plan_deploy(INTENT, [inst("UPDATING", version=V2)], None)
    assert isinstance(busy, Refuse) and busy.retryable
    failed = plan_deploy(INTENT, [inst("FAILED", error_code="E1", error_msg="m")], None)
    assert isinstance(failed, Refuse) and failed.instance is not None and failed.instance.error_code == "E1"
    twins = plan_deploy(INTENT, [inst(version=V2), inst(version=V2, iid="i-2")], None)
    assert isinstance(twins, Refuse) and not twins.retryable
    assert plan_deploy(INTENT, [inst("DELETING")], None) == Deploy()
    record = EpDeployRecord("i-9", "fm-1", V1, "ep-1", "svc", "swap")
    assert plan_deploy(INTENT, [], record, inst("UPDATING", iid="i-9")) == Wait("i-9", mock.ANY, "swap")
    assert plan_deploy(INTENT, [], record, None) == Deploy()  # the recorded instance is gone
    other = EpDeployRecord("i-9", "fm-1", V2, "ep-1", "svc", "deploy")
    assert plan_deploy(INTENT, [], other, inst(iid="i-9", version=V2)) == Deploy()


def test_records_round_trip_and_junk_is_no_record() -> None:
    record = EpDeployRecord("i-1", "fm-1", V1, "ep-1", "svc", "deploy")
    assert EpDeployRecord.from_json(record.to_json()) == record
    for junk in (
        None,
        "i-1",
        {"instance_id": "i-1"},
        {**record.to_json(), "action": "x"},
        {**record.to_json(), "name": 3},
    ):
        assert EpDeployRecord.from_json(junk) is None


def test_the_watch_judges_each_answer() -> None:
    watch = InstanceWatch(V1, max_stale=2)
    assert watch.observe(inst("PENDING"))[0].state == "wait"
    assert watch.observe(inst("RUNNING", version=V2))[0].state == "wait"
    assert watch.observe(inst("RUNNING", version=V2))[0].state == "wait"
    verdict = watch.observe(inst("RUNNING", version=V2))[0]
    assert verdict.state == "failed" and verdict.error_code == "VersionMismatch"
    assert InstanceWatch(V1).observe(inst())[0].state == "done"
    failed = InstanceWatch(V1).observe(inst("FAILED", error_code="E", error_msg="m"))[0]
    assert (failed.state, failed.error_code, failed.error_msg) == ("failed", "E", "m")
    for settled in ("STOPPED", "SUCCEEDED", "DELETED", "DELETING", "STOPPING"):
        assert InstanceWatch(V1).observe(inst(settled))[0].state == "failed"
