"""Registering versions and labelling them (issue 24): the request specs (checked before anything is sent, byte-equal
to the official SDK's), the emulator's CreateModelVersion and label routes driven by the SDK, and
``PaiCreateModelVersionOperator``'s idempotence: a retry finds the version its task instance registered."""

from __future__ import annotations

import http.server
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from helpers import PAI_KEY, PAI_SECRET, RecordingHandler, background_server, build_seed, pai_conn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.errors import RegistryInputError, RegistryTransportError
from airflow_provider_modelreg.hooks.base import PLACEHOLDERS
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.hooks.pai_lifecycle import create_model_version_spec
from airflow_provider_modelreg.operators.pai_lifecycle import (
    RUN_LABEL,
    PaiCreateModelVersionOperator,
    PaiModelVersionLabelsOperator,
    PaiSetModelVersionAliasOperator,
)

URI = "oss://fraud-models.oss-cn-hangzhou.aliyuncs.com/main/2/"


def context(run_id: str = "manual__2026-12-06T10:00:00+00:00", map_index: int = -1) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.configure_mock(dag_id="train", run_id=run_id, task_id="register", map_index=map_index, try_number=1)
    return {"ti": ti, "task_instance": ti, "outlet_events": mock.MagicMock()}


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed())
    pai_conn(monkeypatch, emulator.url)
    return emulator


def creates(emu: Any) -> int:
    return int(emu.request_log.count("pai.CreateModelVersion"))


# ----------------------------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"version_name": "v1"}, "version_name"),
        ({"version_name": "1.2"}, "version_name"),
        ({"version_name": "1.2.3-rc1"}, "version_name"),
        ({"metrics": {"auc": "x" * 8200}}, "metrics"),
        ({"metrics": ["auc"]}, "metrics"),
        ({"labels": {"team": "a=b"}}, "labels[team]"),
        ({"labels": {"a,b": "x"}}, "labels key"),
        ({"labels": {"team": "x" * 129}}, "labels[team]"),
        ({"labels": {"team": ""}}, "labels[team]"),
        ({"labels": ["team"]}, "labels"),
        ({"source_type": "Notebook"}, "source_type"),
        ({"approval_status": "Maybe"}, "approval_status"),
        ({"format_type": "None"}, "format_type"),
        ({"labels": {"team": "null"}}, "labels[team]"),  # a template that rendered nothing
        ({"version_description": "line\nbreak"}, "version_description"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        create_model_version_spec("m-main", URI, **fields)
    assert err.value.field == field


@pytest.mark.parametrize("uri", ["", "None", "   ", "oss://b/\x00k", None])
def test_a_missing_uri_is_refused(uri: Any) -> None:
    with pytest.raises(RegistryInputError) as err:
        create_model_version_spec("m-main", uri)
    assert err.value.field == "uri"


def test_the_metrics_limit_is_the_apis_8192_bytes_of_json() -> None:
    just = {"m": "x" * (8192 - len('{"m":""}'))}
    create_model_version_spec("m-main", URI, metrics=just)
    with pytest.raises(RegistryInputError, match="8,193 bytes"):
        create_model_version_spec("m-main", URI, metrics={"m": just["m"] + "x"})
    with pytest.raises(TypeError, match="'metric'"):
        create_model_version_spec("m-main", URI, metric={})  # type: ignore[call-arg]


# ------------------------------------------------------------------------------ byte-equal to the SDK


class Recorder(RecordingHandler):
    seen: list[tuple[str, str, bytes, str]] = []

    def answer(self) -> tuple[int, bytes]:
        return 200, json.dumps({"RequestId": "r", "VersionName": "1.2.0"}).encode()


@pytest.fixture(scope="module")
def recorder() -> Iterator[http.server.ThreadingHTTPServer]:
    with background_server(Recorder) as srv:
        yield srv


def _sdk(port: int) -> Any:
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_tea_openapi.models import Config

    return Client(
        Config(access_key_id=PAI_KEY, access_key_secret=PAI_SECRET, endpoint=f"127.0.0.1:{port}", protocol="http")
    )


def _one(call: Any) -> tuple[str, str, bytes, str]:
    Recorder.seen.clear()
    call()
    assert len(Recorder.seen) == 1
    return Recorder.seen[0]


texts = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FFF, exclude_characters="=,\x7f"),
    min_size=1,
    max_size=10,
).filter(lambda text: text.strip() and text not in PLACEHOLDERS)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.none() | st.from_regex(r"\A[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(_[a-z0-9]{1,4})?\Z"),
    labels=st.none() | st.dictionaries(texts, texts, min_size=1, max_size=3),
    metrics=st.none() | st.dictionaries(texts, st.floats(allow_nan=False, allow_infinity=False) | texts, max_size=3),
    description=st.none() | texts,
    status=st.none() | st.sampled_from(["Pending", "Approved"]),
)
def test_create_model_version_is_the_sdks_request_byte_for_byte(
    recorder: http.server.ThreadingHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    name: str | None,
    labels: dict[str, str] | None,
    metrics: dict[str, Any] | None,
    description: str | None,
    status: str | None,
) -> None:
    from alibabacloud_aiworkspace20210204 import models

    pai_conn(monkeypatch, f"http://127.0.0.1:{recorder.server_port}")
    request = models.CreateModelVersionRequest(
        uri=URI,
        version_name=name,
        approval_status=status,
        labels=None if labels is None else [models.Label(key=k, value=v) for k, v in labels.items()],
        metrics=metrics,
        version_description=description,
        format_type="SavedModel",
        inference_spec={"processor": "tensorflow_cpu_2.3"},
        source_type="Custom",
        source_id="airflow/train/run 1/register",
    )
    expected = _one(lambda: _sdk(recorder.server_port).create_model_version("m-main_1", request))
    hook = PaiModelRegistryHook()
    ours = _one(
        lambda: hook.create_model_version(
            "m-main_1",
            URI,
            version_name=name,
            approval_status=status,
            labels=labels,
            metrics=metrics,
            version_description=description,
            format_type="SavedModel",
            inference_spec={"processor": "tensorflow_cpu_2.3"},
            source_type="Custom",
            source_id="airflow/train/run 1/register",
        )
    )
    hook.close()
    assert ours[:3] == expected[:3]  # method, path, body bytes
    assert ours[3].split(";")[0] == expected[3].split(";")[0] == "application/json"


def test_the_label_requests_are_the_sdks(
    recorder: http.server.ThreadingHTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alibabacloud_aiworkspace20210204 import models

    pai_conn(monkeypatch, f"http://127.0.0.1:{recorder.server_port}")
    sdk = _sdk(recorder.server_port)
    add = models.CreateModelVersionLabelsRequest(labels=[models.Label(key="alias", value="champion 模型")])
    remove = models.DeleteModelVersionLabelsRequest(label_keys="alias,team")
    hook = PaiModelRegistryHook()
    assert (
        _one(lambda: hook.add_version_labels("m-1", "1.0.0", {"alias": "champion 模型"}))[:3]
        == _one(lambda: sdk.create_model_version_labels("m-1", "1.0.0", add))[:3]
    )
    assert (
        _one(lambda: hook.remove_version_labels("m-1", "1.0.0", ["alias", "team"]))[:2]
        == _one(lambda: sdk.delete_model_version_labels("m-1", "1.0.0", remove))[:2]
    )


# ------------------------------------------------------------------------ the emulator, the SDK as client


def test_the_emulator_registers_and_labels_versions_as_the_api_does(emu: Any) -> None:
    from alibabacloud_aiworkspace20210204 import models
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
    from alibabacloud_tea_openapi.models import Config

    sdk = Client(
        Config(
            access_key_id=PAI_KEY,
            access_key_secret=PAI_SECRET,
            endpoint=emu.url.removeprefix("http://"),
            protocol="http",
        )
    )
    made = sdk.create_model_version("m-main", models.CreateModelVersionRequest(uri=URI)).body
    assert made.version_name == "1.2.0"  # m-main has 0.9.0, 1.0.0, 1.1.0: the next minor
    assert sdk.create_model_version("m-main", models.CreateModelVersionRequest(uri=URI)).body.version_name == "1.3.0"
    for bad in (
        models.CreateModelVersionRequest(uri=URI, version_name="1.3.0"),  # taken
        models.CreateModelVersionRequest(uri=URI, version_name="latest"),
        models.CreateModelVersionRequest(uri=URI, metrics={"m": "x" * 8192}),
        models.CreateModelVersionRequest(uri=URI, labels=[models.Label(key="a", value="b=c")]),
        models.CreateModelVersionRequest(version_name="2.0.0"),  # no Uri
    ):
        with pytest.raises(AlibabaCloudException):
            sdk.create_model_version("m-main", bad)
    labels = models.CreateModelVersionLabelsRequest(labels=[models.Label(key="alias", value="champion")])
    sdk.create_model_version_labels("m-main", "1.2.0", labels)
    got = sdk.get_model_version("m-main", "1.2.0", models.GetModelVersionRequest()).body
    assert {(lb.key, lb.value) for lb in got.labels} == {("alias", "champion")}
    sdk.delete_model_version_labels("m-main", "1.2.0", models.DeleteModelVersionLabelsRequest(label_keys="alias"))
    assert not sdk.get_model_version("m-main", "1.2.0", models.GetModelVersionRequest()).body.labels


# --------------------------------------------------------------------------------------- the operator


def test_a_retry_finds_the_version_its_task_instance_registered(emu: Any) -> None:
    op = PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=URI, metrics={"auc": 0.91})
    ref = op.execute(context())
    assert ref["version_name"] == "1.2.0" and ref["uri"] == URI and ref["labels"][RUN_LABEL]
    assert creates(emu) == 1
    again = PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=URI, metrics={"auc": 0.91})
    assert again.execute(context()) == ref  # the same task instance, another try
    assert creates(emu) == 1
    other_run = PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=URI)
    assert other_run.execute(context(run_id="scheduled__2026-12-07"))["version_name"] == "1.3.0"
    mapped = PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=URI)
    assert mapped.execute(context(map_index=3))["version_name"] == "1.4.0"
    assert creates(emu) == 3


def test_a_named_version_is_idempotent_on_name_and_uri(emu: Any) -> None:
    def op(uri: str) -> PaiCreateModelVersionOperator:
        return PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=uri, version_name="2.0.0_rc1")

    first = op(URI).execute(context())
    assert op(URI).execute(context(run_id="another")) == first  # same name, same weights: the same version
    assert creates(emu) == 1
    from airflow.providers.common.compat.sdk import AirflowFailException

    with pytest.raises(AirflowFailException, match="another uri"):
        op("oss://fraud-models/other/").execute(context())
    assert creates(emu) == 1


def test_an_answer_lost_after_the_create_arrived_is_not_a_second_version(
    emu: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = PaiModelRegistryHook.create_model_version

    def arrives_then_fails(self: PaiModelRegistryHook, *args: Any, **kwargs: Any) -> Any:
        real(self, *args, **kwargs)
        raise RegistryTransportError("connection reset after the request was sent")

    monkeypatch.setattr(PaiModelRegistryHook, "create_model_version", arrives_then_fails)
    ref = PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=URI).execute(context())
    assert ref["version_name"] == "1.2.0" and creates(emu) == 1
    monkeypatch.setattr(
        PaiModelRegistryHook,
        "create_model_version",
        lambda *a, **k: (_ for _ in ()).throw(RegistryTransportError("no answer")),
    )
    with pytest.raises(RegistryTransportError):  # nothing arrived: the error stands
        PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=URI).execute(context(run_id="r2"))


def test_bad_input_fails_before_any_request(emu: Any) -> None:
    before = emu.request_log.count()
    for kwargs, field in (
        ({"metrics": {"blob": "x" * 9000}}, "metrics"),
        ({"uri": "None"}, "uri"),
        ({"version_name": "{{ params.v }}"}, "version_name"),
        ({"labels": {"k": "a,b"}}, "labels[k]"),
    ):
        arguments = {"task_id": "register", "model_id": "m-main", "uri": URI, **kwargs}
        with pytest.raises(RegistryInputError) as err:
            PaiCreateModelVersionOperator(**arguments).execute(context())
        assert err.value.field == field
    assert emu.request_log.count() == before


# ------------------------------------------------------------------------------------- labels, aliases


def labels_of(ref: dict[str, Any]) -> dict[str, str]:
    return dict(ref["labels"])


def test_labels_are_added_and_removed_and_read_back(emu: Any) -> None:
    op = PaiModelVersionLabelsOperator(
        task_id="label", model_id="m-main", version_name="1.0.0", add={"stage": "prod"}, remove=["team"]
    )
    assert labels_of(op.execute(context())) == {"stage": "prod"}  # the seed's team=risk is gone
    again = PaiModelVersionLabelsOperator(
        task_id="label", model_id="m-main", version_name="1.0.0", add={"stage": "prod"}, remove=["team"]
    )
    assert labels_of(again.execute(context())) == {"stage": "prod"}  # a retry changes nothing
    before = emu.request_log.count()
    for kwargs, field in (({"add": {"a": "x=y"}}, "add[a]"), ({}, "add")):
        with pytest.raises(RegistryInputError) as err:
            PaiModelVersionLabelsOperator(task_id="l", model_id="m-main", version_name="1.0.0", **kwargs).execute(
                context()
            )
        assert err.value.field == field
    assert emu.request_log.count() == before


def test_an_alias_moves_to_one_version_and_the_overlap_is_reported(emu: Any) -> None:
    def move(version: str) -> dict[str, Any]:
        ctx = context()
        ref = PaiSetModelVersionAliasOperator(
            task_id="alias", model_id="m-main", version_name=version, alias="champion"
        ).execute(ctx)
        overlap = [
            c.kwargs["value"]
            for c in ctx["ti"].xcom_push.call_args_list
            if c.kwargs.get("key") == "alias_overlap_seconds"
        ]
        assert len(overlap) == 1 and overlap[0] >= 0
        return ref

    assert labels_of(move("1.0.0"))["alias"] == "champion"
    assert labels_of(move("1.1.0"))["alias"] == "champion"
    hook = PaiModelRegistryHook()
    holders = [
        v.version_name
        for v in hook.list_model_versions("m-main")
        if any(lb.key == "alias" and lb.value == "champion" for lb in v.labels or ())
    ]
    assert holders == ["1.1.0"]
    hook.add_version_labels("m-main", "0.9.0", {"alias": "challenger"})  # another alias under the same key stays
    move("1.0.0")
    assert {lb.value for lb in hook.get_model_version("m-main", "0.9.0").labels or () if lb.key == "alias"} == {
        "challenger"
    }


def test_an_alias_still_held_elsewhere_after_the_move_fails_the_task(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    PaiModelRegistryHook().add_version_labels("m-main", "0.9.0", {"alias": "champion"})
    monkeypatch.setattr(
        PaiModelRegistryHook, "remove_version_labels", lambda *a, **k: None
    )  # a removal that did not happen
    with pytest.raises(AirflowFailException, match=r"held by \['1.0.0', '0.9.0'\]|held by \['0.9.0', '1.0.0'\]"):
        PaiSetModelVersionAliasOperator(task_id="a", model_id="m-main", version_name="1.0.0", alias="champion").execute(
            context()
        )


def test_a_registration_reports_its_artifact_in_and_the_new_version_out_to_openlineage(emu: Any) -> None:
    from airflow.providers.openlineage.extractors.base import DefaultExtractor

    uri = "oss://train-out.oss-cn-hangzhou-internal.aliyuncs.com/fraud/run-7/"
    op = PaiCreateModelVersionOperator(task_id="register", model_id="m-main", uri=uri)
    ref = op.execute(context())
    lineage = DefaultExtractor(op).extract_on_complete(None)
    assert lineage is not None
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("oss://train-out", "fraud/run-7/")]
    (out,) = lineage.outputs
    assert out.namespace.startswith("pai://") and out.name == f"m-main/{ref['version_name']}"
    (entry,) = lineage.run_facets["modelreg_model_versions"].versions
    assert entry["version_name"] == ref["version_name"] and entry["approval_status"] == "Pending"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alias": "None"}, "alias"),
        ({"alias": "a,b"}, "alias"),
        ({"alias_key": "a=b"}, "alias_key"),
        ({"alias_key": ""}, "alias_key"),
        ({"alias_key": "k\x00"}, "alias_key"),
    ],
)
def test_a_bad_alias_or_alias_key_is_refused_naming_it_before_any_request(
    emu: Any, kwargs: dict[str, Any], field: str
) -> None:
    before = emu.request_log.count()
    arguments = {"task_id": "alias", "model_id": "m-main", "version_name": "1.0.0", "alias": "champion", **kwargs}
    with pytest.raises(RegistryInputError) as err:
        PaiSetModelVersionAliasOperator(**arguments).execute(context())
    assert err.value.field == field
    assert emu.request_log.count() == before
