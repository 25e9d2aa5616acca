"""PaiEasRollbackOperator, PaiEasDeleteServiceOperator and PaiEasCleanupOperator against the emulator over 127.0.0.1
(issue 22): rollbacks verified by DescribeService (and never sent twice by a retry), deletes that tolerate a missing
service and refuse a locked one, cleanups that keep the newest by CreateTime whatever the server's order."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import httpx
import pytest
from helpers import build_seed, pai_conn

from airflow_provider_modelreg.eas_traffic import EasRollbackError, EasSafetyLockError
from airflow_provider_modelreg.errors import RegistryInputError, RegistryNotFoundError
from airflow_provider_modelreg.hooks.eas import PaiEasHook
from airflow_provider_modelreg.operators.eas_traffic import (
    PaiEasCleanupOperator,
    PaiEasDeleteServiceOperator,
    PaiEasRollbackOperator,
)

REGION = "cn-hangzhou"


@pytest.fixture
def emu(make_emulator: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from modelreg_emulator.eas import EasSettings

    emulator = make_emulator(
        seed=build_seed(), eas=EasSettings(create_seconds=0.1, update_seconds=0.2, delete_seconds=0.1)
    )
    pai_conn(monkeypatch, emulator.url, region=REGION, eas_endpoint=emulator.url)
    return emulator


@pytest.fixture
def hook(emu: Any) -> Iterator[PaiEasHook]:
    hook = PaiEasHook()
    yield hook
    hook.close()


class Store:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.values[key] = value


def context(store: Store | None = None) -> dict[str, Any]:
    return {"ti": mock.MagicMock(), "task_state_store": store or Store()}


def admin(emu: Any, name: str, action: str, **body: Any) -> None:
    httpx.put(
        f"{emu.url}/_emulator/eas/services/{REGION}/{name}/{action}",
        json=body,
        headers={"X-Modelreg-Admin": "1"},
        trust_env=False,
    ).raise_for_status()


def sent(emu: Any, route: str) -> int:
    return int(emu.request_log.count(f"eas.{route}"))


def running(emu: Any, hook: PaiEasHook, name: str, model_id: str = "m-1", versions: int = 1) -> None:
    """A Running service with ``versions`` versions (processor p1, p2, ...)."""
    config = {"name": name, "model_path": "oss://b/m/", "processor": "p1", "metadata": {"instance": 1}}
    hook.create_service(config, labels={"model_id": model_id, "version_name": "1.0.0"})
    admin(emu, name, "advance")
    for number in range(2, versions + 1):
        hook.update_service(name, {"processor": f"p{number}"})
        admin(emu, name, "advance")
    assert hook.describe_service(name).current_version == versions


# ------------------------------------------------------------------------------------------------ rollback


def rollback(**kwargs: Any) -> PaiEasRollbackOperator:
    return PaiEasRollbackOperator(task_id="rollback", poll_interval=0.05, timeout=10, **kwargs)


def test_a_rollback_to_the_previous_version_is_verified_current_and_running(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "svc", versions=3)
    out = rollback(service_name="svc").execute(context())
    assert (out["current_version"], out["latest_version"], out["status"]) == (2, 2, "Running")
    assert out["running_instance"] == out["total_instance"] == 1 and sent(emu, "UpdateServiceVersion") == 1
    assert '"p2"' in (hook.describe_service("svc").service_config or "")
    assert rollback(service_name="svc", version=1).execute(context())["current_version"] == 1


def test_a_retry_verifies_the_same_rollback_instead_of_rolling_back_again(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "svc", versions=3)
    store = Store()
    first = rollback(service_name="svc")
    with mock.patch.object(PaiEasHook, "describe_service", side_effect=[hook.describe_service("svc"), OSError]):
        with pytest.raises(OSError):  # the try sent UpdateServiceVersion, then lost its worker
            first.execute(context(store))
    assert sent(emu, "UpdateServiceVersion") == 1 and store.values["modelreg_eas_rollback"]["version"] == 2
    out = rollback(service_name="svc").execute(context(store))
    assert out["current_version"] == 2 and sent(emu, "UpdateServiceVersion") == 1  # not to version 1


def test_without_a_task_state_store_a_retried_rollback_needs_its_version(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "svc", versions=3)
    no_store = {"ti": mock.MagicMock()}  # Airflow below 3.3
    with pytest.raises(RegistryInputError) as err:
        rollback(service_name="svc", retries=2).execute(no_store)
    assert err.value.field == "version" and sent(emu, "UpdateServiceVersion") == 0
    assert rollback(service_name="svc", retries=2, version=2).execute(no_store)["current_version"] == 2
    assert rollback(service_name="svc", retries=0).execute(no_store)["current_version"] == 1  # no retry: no risk


def test_a_rollback_refused_by_the_lock_or_without_an_earlier_version_sends_nothing(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "svc", versions=2)
    hook.update_service_safety_lock("svc", "all")
    with pytest.raises(EasSafetyLockError) as err:
        rollback(service_name="svc").execute(context())
    assert (err.value.lock, err.value.operation) == ("all", "UpdateServiceVersion")
    running(emu, hook, "single")
    with pytest.raises(RegistryInputError) as bad:
        rollback(service_name="single").execute(context())
    assert bad.value.field == "version"
    with pytest.raises(RegistryInputError):
        rollback(service_name="svc", version="two").execute(context())
    assert sent(emu, "UpdateServiceVersion") == 0


def test_a_rollback_that_fails_is_a_typed_error_with_the_reason(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "svc", versions=2)
    real = PaiEasHook.update_service_version

    def then_crash(self: PaiEasHook, name: str, version: int) -> Any:
        answer = real(self, name, version)
        admin(emu, name, "fail", reason="ImagePullBackOff", message="version 1 image is gone")
        return answer

    with mock.patch.object(PaiEasHook, "update_service_version", then_crash):
        with pytest.raises(EasRollbackError) as err:
            rollback(service_name="svc").execute(context())
    assert (err.value.version, err.value.reason) == (1, "ImagePullBackOff") and "image is gone" in str(err.value)


def test_the_deferrable_rollback_ends_in_the_same_output_and_checks_the_version(emu: Any, hook: PaiEasHook) -> None:
    import asyncio

    from airflow.providers.common.compat.sdk import TaskDeferred

    running(emu, hook, "svc", versions=3)
    op = rollback(service_name="svc", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context())
    trigger, target = deferred.value.trigger, deferred.value.kwargs["target"]
    _, kwargs = trigger.serialize()
    assert target == 2 and kwargs["expected_version"] == 2 and sent(emu, "UpdateServiceVersion") == 1

    async def first() -> dict[str, Any]:
        rebuilt = type(trigger)(**kwargs)
        return (await anext(rebuilt.run())).payload  # type: ignore[no-any-return]

    event = asyncio.run(first())
    assert event["status"] == "success"
    assert op.execute_complete(context(), event, target=2)["current_version"] == 2
    elsewhere = {**event, "service": {**event["service"], "current_version": 3}}
    with pytest.raises(EasRollbackError) as err:
        op.execute_complete(context(), elsewhere, target=2)
    assert err.value.reason == "RolledElsewhere"
    with pytest.raises(EasRollbackError):
        op.execute_complete(context(), {"status": "failed", "service_name": "svc", "reason": "X"}, target=2)


# ------------------------------------------------------------------------------------------------ delete


def delete(name: str, **kwargs: Any) -> PaiEasDeleteServiceOperator:
    return PaiEasDeleteServiceOperator(task_id="delete", service_name=name, poll_interval=0.05, timeout=10, **kwargs)


def test_delete_waits_until_gone_and_a_second_delete_is_already_gone(
    emu: Any, hook: PaiEasHook, capsys: pytest.CaptureFixture[str]
) -> None:
    running(emu, hook, "doomed")
    assert delete("doomed").execute(context()) == {"service_name": "doomed", "deleted": True}
    with pytest.raises(RegistryNotFoundError):
        hook.describe_service("doomed")
    capsys.readouterr()
    assert delete("doomed").execute(context()) == {"service_name": "doomed", "deleted": False}
    assert "doomed is already gone" in capsys.readouterr().out and sent(emu, "DeleteService") == 1


def test_a_404_from_delete_itself_is_already_gone(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "racy")
    op = delete("racy")
    found = hook.describe_service("racy")
    hook.delete_service("racy")  # someone else deletes it after we looked
    deadline = time.monotonic() + 10
    while True:  # gone after delete_seconds (0.1 s; longer on a loaded machine)
        try:
            hook.describe_service("racy")
        except RegistryNotFoundError:
            break
        assert time.monotonic() < deadline, "the emulated delete never finished"
        time.sleep(0.05)
    with mock.patch.object(PaiEasDeleteServiceOperator, "_found", side_effect=[found, None]):
        assert op.execute(context())["deleted"] is False
    assert sent(emu, "DeleteService") == 2  # theirs, then ours answered 404


@pytest.mark.parametrize("lock", ["dangerous", "all"])
def test_a_locked_service_is_refused_naming_the_lock_and_nothing_is_sent(emu: Any, hook: PaiEasHook, lock: str) -> None:
    running(emu, hook, "guarded")
    hook.update_service_safety_lock("guarded", lock)  # type: ignore[arg-type]
    with pytest.raises(EasSafetyLockError) as err:
        delete("guarded").execute(context())
    assert err.value.lock == lock and f"'{lock}'" in str(err.value) and sent(emu, "DeleteService") == 0
    assert hook.describe_service("guarded").status.value == "Running"


def test_a_lock_set_after_we_looked_is_refused_by_eas_and_reported_as_a_lock(emu: Any, hook: PaiEasHook) -> None:
    running(emu, hook, "guarded")
    stale = hook.describe_service("guarded")
    hook.update_service_safety_lock("guarded", "dangerous")
    with mock.patch.object(PaiEasDeleteServiceOperator, "_found", return_value=stale):
        with pytest.raises(EasSafetyLockError) as err:
            delete("guarded").execute(context())
    assert "ServiceSafetyLocked" in str(err.value.lock) and sent(emu, "DeleteService") == 1
    assert hook.describe_service("guarded").status.value == "Running"


# ------------------------------------------------------------------------------------------------ cleanup


def aged(emu: Any, ages: dict[str, str]) -> None:
    for name, created in ages.items():
        emu.registry.eas.services[(REGION, name)].created = created


def cleanup(**kwargs: Any) -> PaiEasCleanupOperator:
    return PaiEasCleanupOperator(task_id="cleanup", model_id="m-1", **kwargs)


def test_cleanup_keeps_the_newest_by_create_time_not_by_the_servers_order(emu: Any, hook: PaiEasHook) -> None:
    for name in ("svc_a", "svc_b", "svc_c", "svc_d", "svc_e"):  # the server lists newest created first: e, d, ...
        running(emu, hook, name)
    running(emu, hook, "other_model", model_id="m-2")
    aged(
        emu,
        {
            "svc_a": "2026-12-05T00:00:00Z",  # created first, but the newest CreateTime
            "svc_b": "2026-12-01T00:00:00Z",
            "svc_c": "2026-12-04T00:00:00Z",
            "svc_d": "2026-12-02T00:00:00Z",
            "svc_e": "2026-12-03T00:00:00Z",
            "other_model": "2020-01-01T00:00:00Z",
        },
    )
    listed = [s.service_name for s in hook.list_services(label={"model_id": "m-1"})]
    assert listed == ["svc_e", "svc_d", "svc_c", "svc_b", "svc_a"]  # server order: not what decides
    hook.update_service_safety_lock("svc_d", "dangerous")
    emu.registry.eas.settings.delete_seconds = 600  # a deleted service stays Deleting: seen below
    out = cleanup(keep=2, protect=["svc_b"]).execute(context())
    assert out["kept"] == ["svc_a", "svc_c", "svc_b"]
    assert out["deleted"] == ["svc_e"]
    assert out["skipped"] == [{"service_name": "svc_d", "reason": "SafetyLock dangerous"}]
    assert sent(emu, "DeleteService") == 1 and hook.describe_service("svc_e").status.value == "Deleting"
    assert hook.describe_service("other_model").status.value == "Running"


def test_cleanup_honours_a_lock_set_after_the_listing(
    emu: Any, hook: PaiEasHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("svc_a", "svc_b", "svc_c"):
        running(emu, hook, name)
    aged(emu, {"svc_a": "2026-12-01T00:00:00Z", "svc_b": "2026-12-02T00:00:00Z", "svc_c": "2026-12-03T00:00:00Z"})
    real = PaiEasHook.list_services

    def then_locked(self: PaiEasHook, **query: Any) -> Any:
        listed = real(self, **query)
        self.update_service_safety_lock("svc_a", "all")  # someone locks it while we decide
        return listed

    monkeypatch.setattr(PaiEasHook, "list_services", then_locked)
    out = cleanup(keep=1).execute(context())
    assert out["deleted"] == ["svc_b"] and out["skipped"] == [{"service_name": "svc_a", "reason": "SafetyLock all"}]
    assert sent(emu, "DeleteService") == 1 and hook.describe_service("svc_a").status.value == "Running"


def test_cleanup_reports_a_delete_eas_refused_for_a_lock_as_skipped(emu: Any, hook: PaiEasHook) -> None:
    for name in ("svc_a", "svc_b"):
        running(emu, hook, name)
    aged(emu, {"svc_a": "2026-12-01T00:00:00Z", "svc_b": "2026-12-02T00:00:00Z"})
    stale = hook.describe_service("svc_a")
    real = PaiEasHook.list_services

    def then_locked(self: PaiEasHook, **query: Any) -> Any:
        listed = real(self, **query)
        self.update_service_safety_lock("svc_a", "dangerous")  # locked after the listing and the second look
        return listed

    with (
        mock.patch.object(PaiEasHook, "list_services", then_locked),
        mock.patch.object(PaiEasCleanupOperator, "_found", return_value=stale),
    ):
        out = cleanup(keep=1).execute(context())
    assert out["deleted"] == [] and out["kept"] == ["svc_b"]
    assert out["skipped"] == [{"service_name": "svc_a", "reason": "EAS refused: ServiceSafetyLocked"}]
    assert sent(emu, "DeleteService") == 1


def test_cleanup_plan_only_deletes_nothing(emu: Any, hook: PaiEasHook) -> None:
    for name in ("svc_a", "svc_b", "svc_c"):
        running(emu, hook, name)
    aged(emu, {"svc_a": "2026-12-01T00:00:00Z", "svc_b": "2026-12-02T00:00:00Z", "svc_c": "2026-12-03T00:00:00Z"})
    out = cleanup(keep=1, plan_only=True).execute(context())
    assert out == {"deleted": ["svc_b", "svc_a"], "kept": ["svc_c"], "skipped": [], "plan_only": True}
    assert sent(emu, "DeleteService") == 0
    with pytest.raises(RegistryInputError):
        cleanup(keep=0).execute(context())
