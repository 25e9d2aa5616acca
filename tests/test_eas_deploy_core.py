"""The EAS deploy core (issue 22), plain data in and out: what a deploy does next (create, update, reconnect, wait,
refuse) and whether a service it waits on is done, for every status and every shape of a hostile answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_modelreg.eas_deploy import (
    Create,
    DeployRecord,
    Refuse,
    Update,
    Wait,
    config_digest,
    deployed_label,
    drift,
    judge_rollout,
    plan_deploy,
)
from airflow_provider_modelreg.eas_models import EasService, EasServiceStatus

CONFIG: dict[str, Any] = {
    "name": "fraud_1_2_0_ab12",
    "model_path": "oss://models/fraud/1.2.0/",
    "processor": "tensorflow_cpu_2.3",
    "metadata": {"instance": 2, "cpu": 2, "memory": 4000},
}


def service(status: str = "Running", **fields: Any) -> EasService:
    wire: dict[str, Any] = {
        "ServiceName": CONFIG["name"],
        "Status": status,
        "CurrentVersion": 3,
        "LatestVersion": 3,
        "RunningInstance": 2,
        "TotalInstance": 2,
        # EAS answers with its own defaults next to what was sent
        "ServiceConfig": json.dumps({**CONFIG, "metadata": {**CONFIG["metadata"], "rpc": {"keepalive": 5000}}}),
    }
    wire.update({k: v for k, v in fields.items()})
    return EasService.model_validate({k: v for k, v in wire.items() if v is not None})


# ------------------------------------------------------------------------------------------------ plan


def test_a_service_that_does_not_exist_is_created() -> None:
    assert plan_deploy(CONFIG["name"], CONFIG, None, None) == Create()
    assert plan_deploy(CONFIG["name"], CONFIG, service("Deleted"), None) == Create()


def test_a_service_running_this_config_needs_nothing_but_a_check() -> None:
    action = plan_deploy(CONFIG["name"], CONFIG, service(), None)
    assert action == Wait(3, "the service already runs this config")


def test_a_service_with_another_config_is_updated_by_merge_naming_what_changed() -> None:
    wanted = {**CONFIG, "model_path": "oss://models/fraud/1.3.0/", "metadata": {**CONFIG["metadata"], "instance": 3}}
    action = plan_deploy(CONFIG["name"], wanted, service(), None)
    assert action == Update(3, ("model_path", "metadata.instance"))


def test_a_retry_reconnects_to_the_create_or_update_an_earlier_try_started() -> None:
    wanted = {**CONFIG, "model_path": "oss://models/fraud/1.3.0/"}
    record = DeployRecord(CONFIG["name"], config_digest(wanted), "update", expected_version=4)
    # the service still shows the old config (the update is rolling): no second update
    assert plan_deploy(CONFIG["name"], wanted, service("Updating", LatestVersion=4), record) == Wait(
        4, "an earlier try's update is in flight: reconnecting to it"
    )
    # a record of another config or another service is not this deploy's
    other = DeployRecord(CONFIG["name"], config_digest(CONFIG), "update", expected_version=4)
    assert isinstance(plan_deploy(CONFIG["name"], wanted, service(), other), Update)
    elsewhere = DeployRecord("another_service", config_digest(wanted), "create")
    assert isinstance(plan_deploy(CONFIG["name"], wanted, service(), elsewhere), Update)
    # a create that left no service never happened: create
    created = DeployRecord(CONFIG["name"], config_digest(wanted), "create")
    assert plan_deploy(CONFIG["name"], wanted, None, created) == Create()


@pytest.mark.parametrize(("status", "retryable"), [("Deleting", True), ("DeleteFailed", False)])
def test_a_service_being_deleted_or_failing_to_is_refused(status: str, retryable: bool) -> None:
    action = plan_deploy(CONFIG["name"], CONFIG, service(status, Reason="Quota", Message="m"), None)
    assert isinstance(action, Refuse) and action.retryable is retryable


def test_drift_ignores_what_only_the_service_has_and_compares_nested_objects() -> None:
    assert drift({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}) == []
    assert drift({"a": {"b": 1}}, {"a": {"b": 2}}) == ["a.b"]
    assert drift({"a": {"b": 1}}, {"a": 5}) == ["a"]
    assert drift({"a": [1, 2]}, {"a": [2, 1]}) == ["a"]
    assert drift({"a": None}, {}) == []  # absent and null read the same


def test_the_config_digest_ignores_key_order_only() -> None:
    assert config_digest({"a": 1, "b": {"c": 2, "d": 3}}) == config_digest({"b": {"d": 3, "c": 2}, "a": 1})
    assert config_digest({"a": 1}) != config_digest({"a": 2})


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "x",
        [],
        {"service_name": "s"},
        {"service_name": "s", "config_digest": "d", "action": "delete"},
        {"service_name": "s", "config_digest": "d", "action": "create", "expected_version": "4"},
        {"service_name": "s", "config_digest": "d", "action": "create", "expected_version": True},
        {"service_name": "s", "config_digest": "d", "action": "create", "surprise": 1},
    ],
)
def test_a_stored_record_that_is_not_one_is_ignored(stored: Any) -> None:
    assert DeployRecord.from_json(stored) is None


def test_a_record_survives_its_json() -> None:
    record = DeployRecord("s", "d", "update", 7)
    assert DeployRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


# ---------------------------------------------------------------------------------------------- judge


def judge(found: EasService, expected: int | None = None, since: float | None = None, now: float = 1000.0) -> Any:
    return judge_rollout(found, expected_version=expected, now=now, waiting_since=since, resource_wait_timeout=300)


def test_running_every_instance_and_the_latest_version_current_is_done() -> None:
    assert judge(service()).state == "done"
    assert judge(service(), expected=3).state == "done"


@pytest.mark.parametrize(
    "fields",
    [
        {"RunningInstance": 1},  # Running with fewer running instances
        {"CurrentVersion": 2},  # the update is not current yet
        {"TotalInstance": 0, "RunningInstance": 0},  # no instance at all
        {"CurrentVersion": None},  # a field missing
        {"RunningInstance": None},
    ],
)
def test_running_is_not_done_until_every_part_of_the_rule_holds(fields: dict[str, Any]) -> None:
    assert judge(service(**fields)).state == "wait"


@pytest.mark.parametrize("status", [s.value for s in EasServiceStatus if s.is_transient() and s.value != "Waiting"])
def test_a_transient_status_waits(status: str) -> None:
    assert judge(service(status)).state == "wait"


@pytest.mark.parametrize("status", ["Failed", "DeleteFailed"])
def test_a_failed_service_fails_with_its_reason_and_message(status: str) -> None:
    verdict = judge(service(status, Reason="ImagePullFailed", Message="image not found"))
    assert (verdict.state, verdict.reason, verdict.message) == ("failed", "ImagePullFailed", "image not found")


@pytest.mark.parametrize("status", ["Stopped", "Complete", "Developing", "Deleted"])
def test_a_settled_status_a_deploy_does_not_end_in_fails(status: str) -> None:
    verdict = judge(service(status))
    assert verdict.state == "failed" and status in (verdict.message or "")


def test_an_update_that_never_reaches_its_version_fails_once_another_version_settles() -> None:
    verdict = judge(service(LatestVersion=3, CurrentVersion=3), expected=4)
    assert verdict.state == "failed" and "another change" in (verdict.message or "")


def test_waiting_for_resources_has_its_own_budget() -> None:
    first = judge(service("Waiting", Message="no GPU"), since=None, now=1000)
    assert first.state == "wait" and first.waiting_since == 1000
    later = judge(service("Waiting"), since=first.waiting_since, now=1299)
    assert later.state == "wait" and later.waiting_since == 1000
    over = judge(service("Waiting", Message="no GPU"), since=1000, now=1301)
    assert (
        over.state == "failed"
        and "resource_wait_timeout 300" in (over.message or "")
        and "no GPU" in (over.message or "")
    )
    # leaving Waiting resets the budget
    assert judge(service("Creating"), since=1000, now=1400).waiting_since is None


def test_an_unknown_status_or_a_count_that_is_not_one_is_no_answer_at_all() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        service("Exploded")
    with pytest.raises(ValidationError):
        service(RunningInstance="2")


def test_the_write_back_label_is_a_valid_registry_label() -> None:
    from airflow_provider_modelreg.hooks.pai_lifecycle import label_list

    assert label_list(deployed_label("fraud_1_2_0_ab12", "cn-hangzhou")) == [
        {"Key": "deployed-eas", "Value": "fraud_1_2_0_ab12@cn-hangzhou"}
    ]


def test_a_watch_reports_what_changed_only_and_carries_the_resource_wait() -> None:
    from airflow_provider_modelreg.eas_deploy import RolloutWatch

    watch = RolloutWatch(expected_version=None, resource_wait_timeout=300)
    first, news = watch.observe(service("Waiting", Message="no GPU"), now=1000)
    assert first.state == "wait" and news is not None and watch.waiting_since == 1000
    again, news = watch.observe(service("Waiting", Message="no GPU"), now=1200)
    assert again.state == "wait" and news is None  # the same outlook: nothing new to log
    late, news = watch.observe(service("Waiting", Message="no GPU"), now=1301)
    assert late.state == "failed" and news is None  # same outlook, but the budget is spent
    fresh = RolloutWatch(expected_version=None, resource_wait_timeout=300)
    assert fresh.observe(service(), now=0)[0].state == "done"
