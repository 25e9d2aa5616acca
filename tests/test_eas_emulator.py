"""The emulator's PAI-EAS routes (issue 22), with the official SDK (``alibabacloud-eas20210701`` 7.0.0) as the client
of every operation the provider uses, and PaiEasHook against the same emulator: signatures are checked, services
move through the state machine (Creating -> Running, updates, rollbacks, traffic, deletes), failures, waits for
resources and slow updates are injected by the admin surface, and every request is in the request log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from helpers import PAI_KEY, PAI_SECRET, build_seed, pai_conn

from airflow_provider_modelreg.errors import RegistryAuthError, RegistryInvalidRequestError, RegistryNotFoundError
from airflow_provider_modelreg.hooks.eas import PaiEasHook

REGION = "cn-hangzhou"
#: every transition waits for an admin "advance" (a test of the clock sets its own times): no race with the load
HELD = {"create_seconds": 600, "update_seconds": 600, "delete_seconds": 600}


@pytest.fixture
def emu(make_emulator: Callable[..., Any]) -> Any:
    from modelreg_emulator.eas import EasSettings

    return make_emulator(seed=build_seed(), eas=EasSettings(**HELD))


@pytest.fixture
def hook(emu: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[PaiEasHook]:
    pai_conn(monkeypatch, emu.url, region=REGION, eas_endpoint=emu.url)
    hook = PaiEasHook()
    yield hook
    hook.close()


def sdk(emu: Any, secret: str = PAI_SECRET) -> Any:
    from alibabacloud_eas20210701.client import Client
    from alibabacloud_tea_openapi.models import Config

    endpoint = emu.url.removeprefix("http://")
    return Client(Config(access_key_id=PAI_KEY, access_key_secret=secret, endpoint=endpoint, protocol="http"))


def models() -> Any:
    from alibabacloud_eas20210701 import models as eas_models

    return eas_models


def sdk_error(call: Callable[[], Any]) -> Any:
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException

    with pytest.raises(AlibabaCloudException) as err:
        call()
    return err.value


def service_json(name: str, instance: int = 2, **extra: Any) -> str:
    config = {"name": name, "model_path": "oss://b/m/", "processor": "pmml", "metadata": {"instance": instance}}
    return json.dumps({**config, **extra})


def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the emulated service never got there"
        time.sleep(0.05)


def admin(emu: Any, name: str, action: str, **body: Any) -> dict[str, Any]:
    answer = httpx.put(
        f"{emu.url}/_emulator/eas/services/{REGION}/{name}/{action}",
        json=body,
        headers={"X-Modelreg-Admin": "1"},
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


# ------------------------------------------------------------------------------------------------ the SDK as client


def test_sdk_create_describe_and_the_state_machine(emu: Any) -> None:
    client = sdk(emu)
    created = client.create_service(
        models().CreateServiceRequest(
            body=service_json("fraud_v1"), labels={"model_id": "m-1", "版本": "1.0 a"}, workspace_id="ws-1"
        )
    ).body
    assert (created.service_name, created.status, created.region) == ("fraud_v1", "Creating", REGION)
    assert created.service_id and created.internet_endpoint and created.request_id
    described = client.describe_service(REGION, "fraud_v1").body
    assert (described.status, described.running_instance, described.total_instance) == ("Creating", 0, 2)
    assert (described.current_version, described.latest_version) == (1, 1)
    assert {(label.label_key, label.label_value) for label in described.labels} == {
        ("model_id", "m-1"),
        ("版本", "1.0 a"),
    }
    assert described.access_token and json.loads(described.service_config)["processor"] == "pmml"
    emu.registry.eas.settings.create_seconds = 0.2  # Creating -> Running after a configurable time
    client.create_service(models().CreateServiceRequest(body=service_json("fraud_v2")))
    until(lambda: client.describe_service(REGION, "fraud_v2").body.status == "Running")
    assert client.describe_service(REGION, "fraud_v1").body.status == "Creating"  # 600 s
    admin(emu, "fraud_v1", "advance")
    running = client.describe_service(REGION, "fraud_v1").body
    assert (running.running_instance, running.total_instance) == (2, 2)
    assert emu.request_log.count("eas.CreateService", authenticated=True) == 2
    assert emu.request_log.count("eas.DescribeService", authenticated=True) >= 4


def test_sdk_update_rollback_versions_and_events(emu: Any) -> None:
    client = sdk(emu)
    client.create_service(models().CreateServiceRequest(body=service_json("svc_a", instance=1)))
    admin(emu, "svc_a", "advance")
    update = models().UpdateServiceRequest(body=json.dumps({"processor": "pmml_2"}))
    assert client.update_service(REGION, "svc_a", update).body.request_id
    updating = client.describe_service(REGION, "svc_a").body
    assert (updating.status, updating.current_version, updating.latest_version) == ("Updating", 1, 2)
    admin(emu, "svc_a", "advance")
    assert client.describe_service(REGION, "svc_a").body.current_version == 2
    assert json.loads(client.describe_service(REGION, "svc_a").body.service_config)["processor"] == "pmml_2"
    # replace: the body is the whole config
    replace = models().UpdateServiceRequest(update_type="replace", body=json.dumps({"processor": "xgboost"}))
    client.update_service(REGION, "svc_a", replace)
    admin(emu, "svc_a", "advance")
    assert json.loads(client.describe_service(REGION, "svc_a").body.service_config) == {
        "processor": "xgboost",
        "name": "svc_a",
    }
    versions = client.list_service_versions(REGION, "svc_a", models().ListServiceVersionsRequest()).body
    assert versions.total_count == 3 and [v.image_id for v in versions.versions] == [3, 2, 1]
    client.update_service_version(REGION, "svc_a", models().UpdateServiceVersionRequest(version=1))
    admin(emu, "svc_a", "advance")
    back = client.describe_service(REGION, "svc_a").body
    assert (back.current_version, json.loads(back.service_config)["processor"]) == (1, "pmml")
    err = sdk_error(
        lambda: client.update_service_version(REGION, "svc_a", models().UpdateServiceVersionRequest(version=1))
    )
    assert (err.status_code, err.code) == (400, "InvalidParameter")  # not below the current version
    # scaling alone makes no new version
    scale = models().UpdateServiceRequest(body=json.dumps({"metadata": {"instance": 3}}))
    client.update_service(REGION, "svc_a", scale)
    assert client.describe_service(REGION, "svc_a").body.status == "Scaling"
    admin(emu, "svc_a", "advance")
    assert client.describe_service(REGION, "svc_a").body.running_instance == 3
    assert client.describe_service(REGION, "svc_a").body.latest_version == 1
    events = client.describe_service_event(REGION, "svc_a", models().DescribeServiceEventRequest(page_size="100")).body
    assert events.total_count == len(events.events) >= 8 and {e.type for e in events.events} == {"Normal"}


def test_sdk_release_traffic_in_a_service_group(emu: Any) -> None:
    client = sdk(emu)
    client.create_service(models().CreateServiceRequest(body=service_json("old_svc", metadata={"group": "fraud"})))
    client.create_service(models().CreateServiceRequest(body=service_json("lonely")))
    new = client.describe_service(REGION, "old_svc").body
    assert (new.service_group, new.traffic_state, new.weight) == ("fraud", "standalone", 0)
    client.release_service(REGION, "old_svc", models().ReleaseServiceRequest(traffic_state="grouping", weight=10))
    released = client.describe_service(REGION, "old_svc").body
    assert (released.traffic_state, released.weight) == ("grouping", 10)
    for bad in (
        models().ReleaseServiceRequest(weight=1001),
        models().ReleaseServiceRequest(traffic_state="everything"),
    ):
        err = sdk_error(lambda b=bad: client.release_service(REGION, "old_svc", b))
        assert (err.status_code, err.code) == (400, "InvalidParameter")
    err = sdk_error(
        lambda: client.release_service(REGION, "lonely", models().ReleaseServiceRequest(traffic_state="grouping"))
    )
    assert err.code == "InvalidParameter"  # no service group


def test_sdk_safety_lock_refuses_the_locked_operations(emu: Any) -> None:
    client = sdk(emu)
    client.create_service(models().CreateServiceRequest(body=service_json("guarded", metadata={"group": "g"})))
    admin(emu, "guarded", "advance")
    assert client.describe_service(REGION, "guarded").body.safety_lock == "none"
    lock = models().UpdateServiceSafetyLockRequest
    assert client.update_service_safety_lock(REGION, "guarded", lock(lock="all")).body.request_id
    assert client.describe_service(REGION, "guarded").body.safety_lock == "all"
    for call in (
        lambda: client.delete_service(REGION, "guarded"),
        lambda: client.release_service(REGION, "guarded", models().ReleaseServiceRequest(weight=5)),
        lambda: client.update_service_version(REGION, "guarded", models().UpdateServiceVersionRequest(version=1)),
        lambda: client.update_service(REGION, "guarded", models().UpdateServiceRequest(body='{"processor": "x"}')),
    ):
        err = sdk_error(call)
        assert (err.status_code, err.code) == (400, "ServiceSafetyLocked") and "all" in err.message
    client.update_service_safety_lock(REGION, "guarded", lock(lock="dangerous"))
    client.release_service(REGION, "guarded", models().ReleaseServiceRequest(weight=5))  # allowed now
    assert client.describe_service(REGION, "guarded").body.weight == 5
    assert sdk_error(lambda: client.delete_service(REGION, "guarded")).code == "ServiceSafetyLocked"
    err = sdk_error(lambda: client.update_service_safety_lock(REGION, "guarded", lock(lock="some")))
    assert err.code == "InvalidParameter"
    client.update_service_safety_lock(REGION, "guarded", lock(lock="none"))
    client.delete_service(REGION, "guarded")
    assert client.describe_service(REGION, "guarded").body.status == "Deleting"
    assert emu.request_log.count("eas.UpdateServiceSafetyLock", authenticated=True) == 4
    bad = sdk_error(lambda: sdk(emu, secret="wrong").update_service_safety_lock(REGION, "guarded", lock(lock="all")))
    assert bad.code == "SignatureDoesNotMatch"


def test_sdk_list_services_by_label_and_paging(emu: Any) -> None:
    client = sdk(emu)
    for index in range(5):
        labels = {"model_id": "m-1" if index % 2 == 0 else "m-2", "stage": "prod a"}
        request = models().CreateServiceRequest(body=service_json(f"svc_{index}"), labels=labels)
        client.create_service(request)
        time.sleep(0.01)
    listed = client.list_services(models().ListServicesRequest(label={"model_id": "m-1"})).body
    assert listed.total_count == 3 and [s.service_name for s in listed.services] == ["svc_4", "svc_2", "svc_0"]
    both = client.list_services(models().ListServicesRequest(label={"model_id": "m-2", "stage": "prod a"})).body
    assert {s.service_name for s in both.services} == {"svc_1", "svc_3"}
    page = client.list_services(models().ListServicesRequest(page_number=2, page_size=2, order="asc")).body
    assert page.total_count == 5 and [s.service_name for s in page.services] == ["svc_2", "svc_3"]
    assert client.list_services(models().ListServicesRequest(service_name="svc_1")).body.total_count == 1
    assert client.list_services(models().ListServicesRequest(filter="svc_")).body.total_count == 5
    assert client.list_services(models().ListServicesRequest(service_status="Running")).body.total_count == 0
    admin(emu, "svc_3", "advance")
    running = client.list_services(models().ListServicesRequest(service_status="Running")).body
    assert [s.service_name for s in running.services] == ["svc_3"]


def test_sdk_delete_then_gone(emu: Any) -> None:
    client = sdk(emu)
    client.create_service(models().CreateServiceRequest(body=service_json("doomed")))
    emu.registry.eas.settings.delete_seconds = 0.1
    assert client.delete_service(REGION, "doomed").body.request_id
    assert client.describe_service(REGION, "doomed").body.status == "Deleting"

    def gone() -> bool:
        try:
            client.describe_service(REGION, "doomed")
        except Exception as exc:
            return getattr(exc, "code", None) == "InvalidService.NotFound"
        return False

    until(gone)
    err = sdk_error(lambda: client.delete_service(REGION, "doomed"))
    assert (err.status_code, err.code) == (404, "InvalidService.NotFound")


def test_sdk_refused(emu: Any) -> None:
    err = sdk_error(lambda: sdk(emu, secret="wrong").describe_service(REGION, "x"))
    assert (err.status_code, err.code) == (400, "SignatureDoesNotMatch")
    client = sdk(emu)
    client.create_service(models().CreateServiceRequest(body=service_json("dup")))
    err = sdk_error(lambda: client.create_service(models().CreateServiceRequest(body=service_json("dup"))))
    assert (err.status_code, err.code) == (400, "ServiceAlreadyExists")
    err = sdk_error(lambda: client.create_service(models().CreateServiceRequest(body=service_json("Bad-Name"))))
    assert err.code == "InvalidParameter"
    err = sdk_error(lambda: client.update_service(REGION, "dup", models().UpdateServiceRequest(body="{}")))
    assert (err.status_code, err.code) == (400, "ServiceBusy")  # still Creating
    assert emu.request_log.count("eas.DescribeService", authenticated=False) == 1


# ------------------------------------------------------------------------------------------------ injected trouble


def test_an_injected_failure_reads_as_failed_with_warning_events(emu: Any, hook: PaiEasHook) -> None:
    hook.create_service(json.loads(service_json("fails")), labels={"model_id": "m-1"})
    shown = admin(emu, "fails", "fail", reason="ContainerCrashLoop", message="exit code 137")
    assert shown["Status"] == "Failed"
    service = hook.describe_service("fails")
    assert service.rollout() == "failed" and (service.reason, service.message) == (
        "ContainerCrashLoop",
        "exit code 137",
    )
    warnings = hook.describe_service_events("fails", event_type="Warning")
    assert [(e.reason, e.message) for e in warnings.events] == [("ContainerCrashLoop", "exit code 137")]


def test_waiting_for_resources_until_advanced(emu: Any, hook: PaiEasHook) -> None:
    hook.create_service(json.loads(service_json("queued")))
    admin(emu, "queued", "wait", message="0/3 nodes are available: insufficient nvidia.com/gpu")
    emu.registry.eas.settings.create_seconds = 0.0
    time.sleep(0.1)  # past the create time: still waiting
    service = hook.describe_service("queued")
    assert service.rollout() == "waiting_for_resources" and "insufficient" in (service.message or "")
    assert hook.describe_service_events("queued", event_type="Warning").warnings[0].reason == "FailedScheduling"
    admin(emu, "queued", "advance")
    assert hook.describe_service("queued").rollout() == "ready"


def test_a_slow_update_never_reaches_the_latest_version_in_time(emu: Any, hook: PaiEasHook) -> None:
    hook.create_service(json.loads(service_json("slowpoke", instance=1)))
    admin(emu, "slowpoke", "advance")
    admin(emu, "slowpoke", "slow", seconds=60)
    emu.registry.eas.settings.update_seconds = 0.0  # due at once, but for the 60 s slowness
    hook.update_service("slowpoke", {"processor": "pmml_2"})
    time.sleep(0.1)
    service = hook.describe_service("slowpoke")
    assert (service.current_version, service.latest_version, service.rollout(2)) == (1, 2, "in_progress")
    admin(emu, "slowpoke", "advance")
    assert hook.describe_service("slowpoke").rollout(2) == "ready"


# ------------------------------------------------------------------------------------------------ the hook


def test_the_hook_end_to_end(emu: Any, hook: PaiEasHook) -> None:
    created = hook.create_service(json.loads(service_json("hooked")), labels={"model_id": "m-9"}, workspace_id="77")
    assert created.status.value == "Creating"
    admin(emu, "hooked", "advance")
    assert hook.describe_service("hooked").rollout() == "ready"
    service = hook.describe_service("hooked")
    assert service.label_map == {"model_id": "m-9"} and service.workspace_id == "77"
    assert service.access_token is not None and "AccessToken" not in json.dumps(service.to_output())
    hook.update_service("hooked", {"processor": "pmml_2"})
    assert hook.describe_service("hooked").rollout(2) == "in_progress"
    admin(emu, "hooked", "advance")
    assert hook.describe_service("hooked").rollout(2) == "ready"
    assert [v.image_id for v in hook.list_service_versions("hooked", page_size=1)] == [2, 1]
    hook.update_service_version("hooked", 1)
    admin(emu, "hooked", "advance")
    assert hook.describe_service("hooked").rollout(1) == "ready"
    assert [s.service_name for s in hook.list_services(label={"model_id": "m-9"}, page_size=1)] == ["hooked"]
    with pytest.raises(RegistryInvalidRequestError):
        hook.release_service("hooked", traffic_state="grouping")
    emu.registry.eas.settings.delete_seconds = 0.0
    hook.delete_service("hooked")
    with pytest.raises(RegistryNotFoundError):
        hook.describe_service("hooked")


def test_the_async_hook_against_the_emulator(emu: Any, hook: PaiEasHook) -> None:
    import asyncio

    async def run() -> None:
        created = await hook.acreate_service(json.loads(service_json("async_svc")), labels={"a": "b"})
        assert created.service_name == "async_svc"
        assert (await hook.adescribe_service("async_svc")).status.value == "Creating"
        assert [s.service_name for s in await hook.alist_services(label={"a": "b"})] == ["async_svc"]
        await hook.aclose()

    asyncio.run(run())
    assert emu.request_log.count("eas.CreateService", authenticated=True) == 1


def test_a_wrong_secret_is_an_auth_error(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    pai_conn(monkeypatch, emu.url, region=REGION, eas_endpoint=emu.url, password="wrong-secret")
    with pytest.raises(RegistryAuthError):
        PaiEasHook().describe_service("anything")


def test_the_admin_command_line(emu: Any, hook: PaiEasHook, capsys: pytest.CaptureFixture[str]) -> None:
    from modelreg_emulator.admin import main as cli

    hook.create_service(json.loads(service_json("cli_svc")))
    assert cli(["eas", "advance", REGION, "cli_svc", "--url", emu.url]) == 0
    assert "cli_svc: Running (version 1)" in capsys.readouterr().out
    assert (
        cli(["eas", "fail", REGION, "cli_svc", "--reason", "OOMKilled", "--message", "out of memory", "--url", emu.url])
        == 0
    )
    service = hook.describe_service("cli_svc")
    assert (service.status.value, service.reason, service.message) == ("Failed", "OOMKilled", "out of memory")
    assert cli(["eas", "advance", REGION, "no_such_svc", "--url", emu.url]) == 1
    assert "HTTP 404" in capsys.readouterr().err


def test_test_connection(emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = hook.test_connection()
    assert ok and "PAI-EAS reachable" in message
    pai_conn(monkeypatch, emu.url, region=REGION, eas_endpoint=emu.url, password="wrong-secret")
    ok, message = PaiEasHook().test_connection()
    assert not ok and "SignatureDoesNotMatch" in message and "wrong-secret" not in message
