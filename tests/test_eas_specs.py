"""PAI-EAS request specs and answer models as plain values (issue 22): what each builder sends, what it refuses
before anything is sent (a typed error naming the field), and what the models make of answers, hostile ones
included. The wire itself is compared with the official SDK in test_eas_wire.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.deploy import eas_service_labels, eas_service_spec
from airflow_provider_modelreg.eas_models import (
    EasEventPage,
    EasPage,
    EasRollout,
    EasService,
    EasServiceStatus,
)
from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.hooks import eas_specs as specs
from airflow_provider_modelreg.transport import RegistryTransport

SERVICE = {"name": "fraud_v1", "model_path": "oss://b/m/", "processor": "pmml", "metadata": {"instance": 1}}
STATUSES = (
    "Creating Stopped Failed Complete Cloning Stopping Updating Waiting HotUpdate Committing Starting DeleteFailed "
    "Running Developing Scaling Deleted Pending Deleting"
).split()


def _header(spec: Any) -> dict[str, str]:
    return dict(spec.headers)


def test_create_service_spec() -> None:
    spec = specs.create_service_spec(
        SERVICE, labels={"model_id": "m-1", "版本": "1.0 a"}, workspace_id="123", develop=False
    )
    assert (spec.method, spec.path, _header(spec)) == ("POST", "/api/v2/services", {"x-acs-action": "CreateService"})
    assert spec.query == (
        ("Develop", "false"),
        ("Labels", '{"model_id":"m-1","版本":"1.0 a"}'),
        ("WorkspaceId", "123"),
    )
    assert json.loads(spec.body or b"") == SERVICE and b"labels" not in (spec.body or b"")
    assert spec.idempotent is None  # a POST: never retried
    assert specs.create_service_spec(SERVICE).query == ()


def test_service_path_specs() -> None:
    base = "/api/v2/services/cn-shanghai/fraud_v1"
    assert specs.describe_service_spec("cn-shanghai", "fraud_v1").path == base
    update = specs.update_service_spec("cn-shanghai", "fraud_v1", {"metadata": {"instance": 2}})
    assert (update.method, update.query, update.body) == (
        "PUT",
        (("UpdateType", "merge"),),
        b'{"metadata":{"instance":2}}',
    )
    assert update.idempotent is None
    assert specs.update_service_spec("cn-shanghai", "fraud_v1", {"a": 1}, update_type="replace").query == (
        ("UpdateType", "replace"),
    )
    rollback = specs.update_service_version_spec("cn-shanghai", "fraud_v1", 3)
    assert (rollback.path, rollback.body, rollback.idempotent) == (f"{base}/version", b'{"Version":3}', True)
    release = specs.release_service_spec("cn-shanghai", "fraud_v1", traffic_state="grouping", weight=10)
    assert (release.path, release.body) == (f"{base}/release", b'{"TrafficState":"grouping","Weight":10}')
    assert specs.release_service_spec("cn-shanghai", "fraud_v1", weight=-1).body == b'{"Weight":-1}'
    delete = specs.delete_service_spec("cn-shanghai", "fraud_v1")
    assert (delete.method, delete.path, delete.body, delete.idempotent) == ("DELETE", base, None, True)
    events = specs.describe_service_events_spec("cn-shanghai", "fraud_v1", event_type="Warning", page=1, page_size=5)
    assert events.path == f"{base}/events"
    assert events.query == (("EventType", "Warning"), ("PageNum", "2"), ("PageSize", "5"))
    actions = [_header(spec)["x-acs-action"] for spec in (update, rollback, release, delete, events)]
    assert actions == [
        "UpdateService",
        "UpdateServiceVersion",
        "ReleaseService",
        "DeleteService",
        "DescribeServiceEvent",
    ]


@pytest.mark.parametrize(
    "build",
    [
        lambda: specs.create_service_spec(SERVICE, label={"a": "b"}),
        lambda: specs.list_services_spec(labels={"a": "b"}),
        lambda: specs.describe_service_events_spec("cn-a", "svc", type="Warning"),
    ],
)
def test_a_misspelt_option_is_refused(build: Any) -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        build()


def test_listing_specs() -> None:
    listing = specs.list_services_spec(label={"model_id": "m-1"}, status="Running", order="desc", page_size=20)
    first = listing.page(0)
    assert isinstance(first, type(specs.describe_service_spec("cn-a", "a")))
    assert first.query == (
        ("Label", '{"model_id":"m-1"}'),
        ("Order", "desc"),
        ("PageNumber", "1"),
        ("PageSize", "20"),
        ("ServiceStatus", "Running"),
    )
    assert listing.page(2).query[2] == ("PageNumber", "3")  # type: ignore[union-attr]
    versions = specs.list_service_versions_spec("cn-a", "svc", page_size=10).page(0)
    assert versions.path == "/api/v2/services/cn-a/svc/versions"  # type: ignore[union-attr]
    assert versions.query == (("PageNumber", "1"), ("PageSize", "10"))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: specs.describe_service_spec("cn-a", ""), "service_name"),
        (lambda: specs.describe_service_spec("cn-a", "None"), "service_name"),
        (lambda: specs.describe_service_spec("cn-a", "Fraud"), "service_name"),
        (lambda: specs.describe_service_spec("cn-a", "a/b"), "service_name"),
        (lambda: specs.describe_service_spec("cn-a", "a" * 64), "service_name"),
        (lambda: specs.describe_service_spec("cn-a", "1abc"), "service_name"),
        (lambda: specs.describe_service_spec("", "svc"), "region"),
        (lambda: specs.describe_service_spec("../x", "svc"), "region"),
        (lambda: specs.create_service_spec({}), "service"),
        (lambda: specs.create_service_spec({"model_path": "x"}), "service.name"),
        (lambda: specs.create_service_spec({"name": "ok", "x": object()}), "service"),
        (lambda: specs.create_service_spec(SERVICE, labels={"k": ""}), "labels['k']"),
        (lambda: specs.create_service_spec(SERVICE, labels={"k": "None"}), "labels['k']"),
        (lambda: specs.create_service_spec(SERVICE, labels={"k": "a\nb"}), "labels['k']"),
        (lambda: specs.create_service_spec(SERVICE, labels={"": "v"}), "labels key"),
        (lambda: specs.create_service_spec(SERVICE, labels={"k": 1}), "labels['k']"),
        (lambda: specs.create_service_spec(SERVICE, labels=["k"]), "labels"),  # type: ignore[arg-type]
        (lambda: specs.create_service_spec(SERVICE, workspace_id=""), "workspace_id"),
        (lambda: specs.create_service_spec(SERVICE, workspace_id="ws 1"), "workspace_id"),
        (lambda: specs.create_service_spec(SERVICE, develop="true"), "develop"),  # type: ignore[arg-type]
        (lambda: specs.update_service_spec("cn-a", "svc", {}), "config"),
        (lambda: specs.update_service_spec("cn-a", "svc", {"a": 1}, update_type="patch"), "update_type"),
        (lambda: specs.update_service_version_spec("cn-a", "svc", 0), "version"),
        (lambda: specs.update_service_version_spec("cn-a", "svc", True), "version"),  # type: ignore[arg-type]
        (lambda: specs.update_service_version_spec("cn-a", "svc", "2"), "version"),  # type: ignore[arg-type]
        (lambda: specs.release_service_spec("cn-a", "svc"), "traffic_state"),
        (lambda: specs.release_service_spec("cn-a", "svc", traffic_state="all"), "traffic_state"),
        (lambda: specs.release_service_spec("cn-a", "svc", weight=1001), "weight"),
        (lambda: specs.release_service_spec("cn-a", "svc", weight=-2), "weight"),
        (lambda: specs.describe_service_events_spec("cn-a", "svc", event_type="Error"), "event_type"),
        (lambda: specs.describe_service_events_spec("cn-a", "svc", page=-1), "page"),
        (lambda: specs.describe_service_events_spec("cn-a", "svc", page_size=0), "page_size"),
        (lambda: specs.describe_service_events_spec("cn-a", "svc", start_time="\x00"), "start_time"),
        (lambda: specs.list_services_spec(label={"k": "null"}), "label['k']"),
        (lambda: specs.list_services_spec(status="Sleeping"), "status"),
        (lambda: specs.list_services_spec(order="DESC"), "order"),
        (lambda: specs.list_services_spec(page_size=101), "page_size"),
        (lambda: specs.list_services_spec(service_name="Bad Name"), "service_name"),
        (lambda: specs.list_services_spec(max_results=0), "max_results"),
        (lambda: specs.list_service_versions_spec("cn-a", "svc", page_size=0), "page_size"),
    ],
)
def test_bad_arguments_are_refused_before_sending(build: Any, field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        build()
    assert err.value.field == field


# ------------------------------------------------------------------------------------------------ models


def _service(**fields: Any) -> dict[str, Any]:
    return {
        "ServiceName": "svc",
        "Status": "Running",
        "CurrentVersion": 2,
        "LatestVersion": 2,
        "RunningInstance": 2,
        "TotalInstance": 2,
        **fields,
    }


def _parse(model: Any, body: Any) -> Any:
    transport = RegistryTransport(vendor="pai", base_url="https://pai-eas.cn-hangzhou.aliyuncs.com", auth=httpx.Auth())
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return transport.parse(httpx.Response(200, content=raw), model)


def test_every_documented_status_parses_and_is_classified() -> None:
    assert [s.value for s in EasServiceStatus] == STATUSES
    transient = {s.value for s in EasServiceStatus if s.is_transient()}
    assert transient == {
        "Creating",
        "Cloning",
        "Stopping",
        "Updating",
        "Waiting",
        "HotUpdate",
        "Committing",
        "Starting",
        "Scaling",
        "Pending",
        "Deleting",
    }
    assert all(s.is_terminal() != s.is_transient() for s in EasServiceStatus)
    assert {s.value for s in EasServiceStatus if s.is_failure()} == {"Failed", "DeleteFailed"}
    for status in STATUSES:
        assert _parse(EasService, _service(Status=status)).status.value == status


@pytest.mark.parametrize(
    "body",
    [
        _service(Status="Sleeping"),
        _service(Status="running"),
        _service(Status=None),
        {"ServiceName": "svc"},
        _service(RunningInstance="2"),
        _service(TotalInstance=True),
        _service(CurrentVersion=1.5),
        {"Status": "Running"},
        [],
        b"<html>502</html>",
        b'{"ServiceName": "svc", "Status": "Run',
        b"",
    ],
)
def test_hostile_service_answers_are_typed_errors_never_a_success(body: Any) -> None:
    with pytest.raises(RegistryResponseError):
        _parse(EasService, body)


@pytest.mark.parametrize(
    ("fields", "expected", "rollout"),
    [
        ({}, None, "ready"),
        ({"RunningInstance": 1}, None, "in_progress"),  # Running, but not every instance
        ({"RunningInstance": 0, "TotalInstance": 0}, None, "in_progress"),
        ({"TotalInstance": None}, None, "in_progress"),
        ({"LatestVersion": 3}, None, "in_progress"),  # an update not current yet
        ({"CurrentVersion": None}, None, "in_progress"),
        ({}, 3, "stuck"),  # Running an older version than the one our update made
        ({"LatestVersion": 3, "CurrentVersion": 3}, 3, "ready"),
        ({"Status": "Failed"}, None, "failed"),
        ({"Status": "DeleteFailed"}, None, "failed"),
        ({"Status": "Waiting"}, None, "waiting_for_resources"),
        ({"Status": "Creating"}, None, "in_progress"),
        ({"Status": "HotUpdate"}, None, "in_progress"),
        ({"Status": "Stopped"}, None, "stuck"),
        ({"Status": "Deleted"}, None, "stuck"),
    ],
)
def test_rollout_is_the_success_rule(fields: dict[str, Any], expected: int | None, rollout: EasRollout) -> None:
    assert _parse(EasService, _service(**fields)).rollout(expected) == rollout


def test_the_access_token_never_leaves_the_model() -> None:
    token, config_token = "tok-SECRET-0001", "cfg-SECRET-0002"
    service = _parse(
        EasService,
        _service(
            AccessToken=token,
            ServiceConfig=json.dumps({"name": "svc", "token": config_token}),
            Labels=[{"LabelKey": "model_id", "LabelValue": "m-1"}],
            Future="kept",
        ),
    )
    assert service.access_token is not None and service.access_token.get_secret_value() == token
    for text in (repr(service), str(service), json.dumps(service.to_output()), json.dumps(service.to_wire())):
        assert token not in text and config_token not in text
    assert service.to_output()["labels"] == {"model_id": "m-1"} and service.to_wire()["Future"] == "kept"
    assert service.config == {"name": "svc"}


def test_pages_and_events() -> None:
    page = _parse(EasPage, {"TotalCount": 1, "Services": [_service()], "RequestId": "r"})
    assert page.services[0].service_name == "svc"
    with pytest.raises(RegistryResponseError):
        _parse(EasPage, {"TotalCount": "1", "Services": []})
    events = _parse(
        EasEventPage,
        {"Events": [{"Type": "Normal", "Reason": "Pulled"}, {"Type": "Warning", "Reason": "FailedScheduling"}]},
    )
    assert [e.reason for e in events.warnings] == ["FailedScheduling"]


def test_eas_service_spec_keeps_labels_out_of_the_body() -> None:
    ref = {"model_id": "m-1", "version_name": "1.0.0", "uri": "oss://b.oss-cn-hangzhou.aliyuncs.com/m/"}
    spec = eas_service_spec(ref)
    assert "labels" not in spec
    labels = eas_service_labels(ref)
    assert labels == {"model_id": "m-1", "version_name": "1.0.0"}
    sent = specs.create_service_spec(spec, labels=labels)
    assert dict(sent.query)["Labels"] == '{"model_id":"m-1","version_name":"1.0.0"}'
