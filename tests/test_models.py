"""The typed models in ``airflow_provider_modelreg.models``.

1. Coverage against the official SDKs (test oracles only): every wire field of the SDK response classes must be a
   declared field of our model, with the same nesting, recursively. Because our models use ``extra="allow"``, a
   missing field would not raise on parse; it would silently land in ``model_extra`` untyped. So this is checked
   twice: by comparing field names/aliases, and by parsing a fully-populated SDK payload and requiring an empty
   ``model_extra`` at every level.
2. Round trips of realistic wire dicts, unknown-field preservation, ``to_ref()`` and the XCom form.
3. ``ApprovalStatus``: terminal states, case-insensitive parse and its errors.
"""

from __future__ import annotations

import copy
import json
import types
import typing
from datetime import datetime, timezone
from typing import Any

import alibabacloud_aiworkspace20210204.models as ali
import huaweicloudsdkdataartsfabric.v1.model as hw
import pytest
from huaweicloudsdkcore.utils.http_utils import sanitize_for_serialization
from pydantic import BaseModel, ValidationError, create_model

from airflow_provider_modelreg.models import (
    ApprovalStatus,
    FabricCreateUser,
    FabricLlmModelConfig,
    FabricModel,
    FabricModelConfig,
    FabricModelPage,
    FabricModelVersion,
    FabricModelVersionPage,
    ModelVersionRef,
    PaiLabel,
    PaiModel,
    PaiModelPage,
    PaiModelVersion,
    PaiModelVersionPage,
)
from airflow_provider_modelreg.validation import check_pai_approval_status

UTC = timezone.utc

# ================================================================================================ SDK introspection


class SdkField(typing.NamedTuple):
    wire_key: str
    kinds: frozenset[type]  # python types our field must accept (BaseModel = a nested typed model)
    nested: type | None  # nested SDK model class (for a list: its item class)
    is_list: bool


def _ali_hint_kind(hint: Any) -> tuple[frozenset[type], type | None, bool]:
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(item, type) and hasattr(item, "to_map"):
            return frozenset({list}), item, True
        return frozenset({list}), None, True
    if origin is dict:
        return frozenset({dict}), None, False
    if isinstance(hint, type) and hasattr(hint, "to_map"):
        return frozenset({BaseModel}), hint, False
    if hint is str:
        # the SDK keeps GmtCreateTime & co. as ISO 8601 strings; we may parse them to datetime
        return frozenset({str, datetime}), None, False
    if hint is int:
        return frozenset({int}), None, False
    raise AssertionError(f"unexpected SDK type hint {hint!r}")


def _ali_sample(attr: str, hint: Any) -> Any:
    """A realistic, non-empty value for one SDK attribute (nested SDK models fully populated too)."""
    kinds, nested, is_list = _ali_hint_kind(hint)
    if nested is not None:
        return [_ali_full(nested)] if is_list else _ali_full(nested)
    if is_list:
        return ["item"]
    if dict in kinds:
        return {"attr": attr, "nested": {"numbers": [1, 2.5], "flag": True}}
    if int in kinds:
        return 7
    if "time" in attr:
        return "2024-05-01T12:00:00Z"
    return f"{attr}-value"


def _ali_full(cls: type) -> Any:
    hints = typing.get_type_hints(cls.__init__)
    return cls(**{attr: _ali_sample(attr, hint) for attr, hint in hints.items() if attr != "return"})


def ali_fields(cls: type) -> dict[str, SdkField]:
    """attribute -> wire key etc., found by setting one attribute at a time and reading ``to_map()``."""
    out: dict[str, SdkField] = {}
    for attr, hint in typing.get_type_hints(cls.__init__).items():
        if attr == "return":
            continue
        kinds, nested, is_list = _ali_hint_kind(hint)
        produced = {k: v for k, v in cls(**{attr: _ali_sample(attr, hint)}).to_map().items() if v not in (None, [])}
        assert len(produced) == 1, (cls.__name__, attr, produced)
        out[attr] = SdkField(next(iter(produced)), kinds, nested, is_list)
    assert out, f"{cls.__name__} has no fields: introspection broke"
    return out


_HW_SCALARS: dict[str, frozenset[type]] = {
    "str": frozenset({str}),
    "int": frozenset({int}),
    "datetime": frozenset({datetime}),
    "bool": frozenset({bool}),
}
# headers the SDK folds into response objects, and the field of ours that holds them
_HW_HEADERS = {"X-request-id": "request_id"}


def _hw_class(name: str) -> type | None:
    cls = getattr(hw, name, None)
    # enum-like classes (ModelType) have no attributes: on the wire they are plain strings
    return cls if cls is not None and getattr(cls, "openapi_types", None) else None


def _hw_kind(type_name: str) -> tuple[frozenset[type], type | None, bool]:
    if type_name.startswith("list[") and type_name.endswith("]"):
        inner = type_name[5:-1]
        return frozenset({list}), _hw_class(inner), True
    if type_name in _HW_SCALARS:
        return _HW_SCALARS[type_name], None, False
    nested = _hw_class(type_name)
    if nested is not None:
        return frozenset({BaseModel}), nested, False
    assert hasattr(hw, type_name), f"unknown SDK type {type_name!r}"
    return frozenset({str}), None, False  # enum-like


def hw_fields(cls: type) -> dict[str, SdkField]:
    out = {}
    for attr, type_name in cls.openapi_types.items():
        kinds, nested, is_list = _hw_kind(type_name)
        out[attr] = SdkField(cls.attribute_map[attr], kinds, nested, is_list)
    assert out, f"{cls.__name__} has no fields: introspection broke"
    return out


def _hw_sample(attr: str, type_name: str) -> Any:
    kinds, nested, is_list = _hw_kind(type_name)
    if nested is not None:
        return [_hw_full(nested)] if is_list else _hw_full(nested)
    if is_list:
        return ["DataArtsFabric-item"]
    if datetime in kinds:
        return datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    if int in kinds:
        return 3
    if type_name == "ModelType":
        return "LLM_MODEL"
    return f"{attr}-value"


def _hw_full(cls: type) -> Any:
    return cls(**{attr: _hw_sample(attr, t) for attr, t in cls.openapi_types.items() if not attr.startswith("x_")})


def _hw_wire(instance: Any) -> dict[str, Any]:
    """The JSON body as the service sends it (SDK attribute_map names)."""
    wire = sanitize_for_serialization(instance)
    for header in _HW_HEADERS:
        wire.pop(header, None)
    return wire


# ================================================================================================ our side


def _annotation_parts(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [p for arg in typing.get_args(annotation) for p in _annotation_parts(arg)]
    return [annotation]


def _our_kinds(annotation: Any) -> tuple[frozenset[type], type[BaseModel] | None]:
    """Python kinds a pydantic annotation accepts, and the nested model (also inside list[...])."""
    kinds: set[type] = set()
    model: type[BaseModel] | None = None
    for part in _annotation_parts(annotation):
        origin = typing.get_origin(part)
        if origin is list:
            kinds.add(list)
            (item,) = typing.get_args(part) or (Any,)
            if isinstance(item, type) and issubclass(item, BaseModel):
                model = item
        elif origin is dict:
            kinds.add(dict)
        elif isinstance(part, type) and issubclass(part, BaseModel):
            kinds.add(BaseModel)
            model = part
        elif isinstance(part, type):
            kinds.add(part)
    return frozenset(kinds), model


def coverage_gaps(ours: type[BaseModel], sdk_cls: type, introspect: Any, path: str = "") -> list[str]:
    """Wire fields of ``sdk_cls`` (recursively) that ``ours`` does not declare with a matching shape."""
    path = path or ours.__name__
    by_wire = {(f.alias or name): (name, f) for name, f in ours.model_fields.items()}
    gaps: list[str] = []
    for attr, sdk in introspect(sdk_cls).items():
        key = _HW_HEADERS.get(sdk.wire_key, sdk.wire_key)
        if key not in by_wire:
            gaps.append(f"{path}.{sdk.wire_key}: missing (SDK {sdk_cls.__name__}.{attr})")
            continue
        name, field = by_wire[key]
        kinds, nested_model = _our_kinds(field.annotation)
        if not kinds & sdk.kinds:
            gaps.append(f"{path}.{sdk.wire_key}: our {name}: {field.annotation} accepts none of {set(sdk.kinds)}")
        if sdk.nested is not None:
            if nested_model is None:
                gaps.append(f"{path}.{sdk.wire_key}: SDK nests {sdk.nested.__name__}, ours is untyped")
            else:
                sub = f"{path}.{sdk.wire_key}{'[]' if sdk.is_list else ''}"
                gaps.extend(coverage_gaps(nested_model, sdk.nested, introspect, sub))
    return gaps


def extra_fields(model: BaseModel, path: str = "$") -> list[str]:
    """Every key that landed in ``model_extra`` anywhere in a parsed tree (= a field we do not declare)."""
    found = [f"{path}.{key}" for key in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            if isinstance(item, BaseModel):
                found.extend(extra_fields(item, f"{path}.{name}" + (f"[{i}]" if isinstance(value, list) else "")))
    return found


def _normalise_times(value: Any) -> Any:
    """ISO 8601 strings -> aware datetimes, so '+00:00' and 'Z' spellings compare equal."""
    if isinstance(value, dict):
        return {k: _normalise_times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_times(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value


# ================================================================================================ coverage: PAI

PAI_PAIRS = [
    pytest.param(PaiModelVersion, ali.ModelVersion, id="ModelVersion (ListModelVersions item, LatestVersion)"),
    pytest.param(PaiModelVersion, ali.GetModelVersionResponseBody, id="GetModelVersionResponseBody"),
    pytest.param(PaiModel, ali.Model, id="Model (ListModels item)"),
    pytest.param(PaiModel, ali.GetModelResponseBody, id="GetModelResponseBody"),
    pytest.param(PaiModelVersionPage, ali.ListModelVersionsResponseBody, id="ListModelVersionsResponseBody"),
    pytest.param(PaiModelPage, ali.ListModelsResponseBody, id="ListModelsResponseBody"),
    pytest.param(PaiLabel, ali.Label, id="Label"),
    pytest.param(PaiLabel, ali.ModelVersionLabels, id="ModelVersionLabels"),
]


def test_sdk_oracle_classes_are_the_ones_the_responses_use() -> None:
    """Pin the oracle: the list bodies really nest ModelVersion / Model, and Model.LatestVersion is a ModelVersion."""
    versions = ali_fields(ali.ListModelVersionsResponseBody)["versions"]
    assert (versions.wire_key, versions.nested, versions.is_list) == ("Versions", ali.ModelVersion, True)
    models = ali_fields(ali.ListModelsResponseBody)["models"]
    assert (models.wire_key, models.nested, models.is_list) == ("Models", ali.Model, True)
    assert ali_fields(ali.Model)["latest_version"].nested is ali.ModelVersion
    assert {f.wire_key for f in ali_fields(ali.ListModelVersionsResponseBody).values()} == {
        "RequestId",
        "TotalCount",
        "Versions",
    }
    # sanity of the introspection on a well-known class
    assert ali_fields(ali.ModelVersion)["approval_status"].wire_key == "ApprovalStatus"
    assert len(ali_fields(ali.ModelVersion)) >= 20


@pytest.mark.parametrize(("ours", "sdk_cls"), PAI_PAIRS)
def test_pai_model_declares_every_sdk_field(ours: type[BaseModel], sdk_cls: type) -> None:
    assert coverage_gaps(ours, sdk_cls, ali_fields) == []


@pytest.mark.parametrize(("ours", "sdk_cls"), PAI_PAIRS)
def test_pai_full_sdk_payload_parses_without_extras_and_round_trips(ours: type[BaseModel], sdk_cls: type) -> None:
    wire = _ali_full(sdk_cls).to_map()
    parsed = ours.model_validate(wire)
    assert extra_fields(parsed) == []
    back = parsed.to_wire()  # type: ignore[attr-defined]
    assert back == wire
    # and the SDK reads what we write back to the same object
    assert sdk_cls().from_map(back).to_map() == wire


# ================================================================================================ coverage: Fabric

FABRIC_PAIRS = [
    pytest.param(FabricModelVersion, hw.ModelVersionInfo, id="ModelVersionInfo"),
    pytest.param(FabricModelConfig, hw.ModelConfig, id="ModelConfig"),
    pytest.param(FabricLlmModelConfig, hw.LlmModelConfig, id="LlmModelConfig"),
    pytest.param(FabricCreateUser, hw.User, id="User"),
    pytest.param(FabricModel, hw.ModelInfo, id="ModelInfo"),
    pytest.param(FabricModelVersionPage, hw.ListModelVersionsResponse, id="ListModelVersionsResponse"),
    pytest.param(FabricModelPage, hw.ListModelsResponse, id="ListModelsResponse"),
]


def test_fabric_oracle_classes_are_the_ones_the_responses_use() -> None:
    versions = hw_fields(hw.ListModelVersionsResponse)["versions"]
    assert (versions.wire_key, versions.nested, versions.is_list) == ("versions", hw.ModelVersionInfo, True)
    info = hw_fields(hw.ModelVersionInfo)
    assert info["config"].nested is hw.ModelConfig
    assert info["create_user"].nested is hw.User
    assert hw_fields(hw.ModelConfig)["llm_model_config"].nested is hw.LlmModelConfig
    assert hw_fields(hw.ModelInfo)["current_version"].nested is hw.ModelVersionInfo
    assert set(hw_fields(hw.LlmModelConfig)) >= {"base_model_type", "model_path"}


@pytest.mark.parametrize(("ours", "sdk_cls"), FABRIC_PAIRS)
def test_fabric_model_declares_every_sdk_field(ours: type[BaseModel], sdk_cls: type) -> None:
    assert coverage_gaps(ours, sdk_cls, hw_fields) == []


@pytest.mark.parametrize(("ours", "sdk_cls"), FABRIC_PAIRS)
def test_fabric_full_sdk_payload_parses_without_extras_and_round_trips(ours: type[BaseModel], sdk_cls: type) -> None:
    wire = _hw_wire(_hw_full(sdk_cls))
    parsed = ours.model_validate(wire)
    assert extra_fields(parsed) == []
    assert _normalise_times(parsed.to_wire()) == _normalise_times(wire)  # type: ignore[attr-defined]


# ================================================================================================ the checks bite


def _without(model: type[BaseModel], field_name: str) -> type[BaseModel]:
    """A copy of ``model`` (same base, same config) lacking one field."""
    fields = {name: (f.annotation, copy.copy(f)) for name, f in model.model_fields.items() if name != field_name}
    base = model.__mro__[1]
    return create_model(f"{model.__name__}Without_{field_name}", __base__=base, **fields)  # type: ignore[call-overload,no-any-return]


def _retyped(model: type[BaseModel], field_name: str, annotation: Any) -> type[BaseModel]:
    fields = {name: (f.annotation, copy.copy(f)) for name, f in model.model_fields.items()}
    fields[field_name] = (annotation, copy.copy(model.model_fields[field_name]))
    return create_model(f"{model.__name__}Retyped_{field_name}", __base__=model.__mro__[1], **fields)  # type: ignore[call-overload,no-any-return]


def test_coverage_check_reports_a_missing_pai_field() -> None:
    broken = _without(PaiModelVersion, "uri")
    gaps = coverage_gaps(broken, ali.ModelVersion, ali_fields)
    assert len(gaps) == 1 and gaps[0].endswith(".Uri: missing (SDK ModelVersion.uri)"), gaps
    # and the missing field is caught by the extras check too: it lands, untyped, in model_extra
    parsed = broken.model_validate(_ali_full(ali.ModelVersion).to_map())
    assert extra_fields(parsed) == ["$.Uri"]


def test_coverage_check_reports_a_missing_nested_fabric_field() -> None:
    broken_llm = _without(FabricLlmModelConfig, "model_path")
    broken_config = _retyped(FabricModelConfig, "llm_model_config", broken_llm | None)
    broken_version = _retyped(FabricModelVersion, "config", broken_config | None)
    gaps = coverage_gaps(broken_version, hw.ModelVersionInfo, hw_fields)
    assert len(gaps) == 1, gaps
    assert gaps[0].endswith(".config.llm_model_config.model_path: missing (SDK LlmModelConfig.model_path)"), gaps
    parsed = broken_version.model_validate(_hw_wire(_hw_full(hw.ModelVersionInfo)))
    assert extra_fields(parsed) == ["$.config.llm_model_config.model_path"]


def test_coverage_check_reports_an_untyped_nested_object() -> None:
    """A nested SDK object kept as a plain dict on our side would lose typing: reported."""
    loose = _retyped(FabricModelVersion, "create_user", dict[str, Any] | None)
    gaps = coverage_gaps(loose, hw.ModelVersionInfo, hw_fields)
    assert any("create_user" in gap and "accepts none of" in gap for gap in gaps), gaps
    assert any("create_user: SDK nests User, ours is untyped" in gap for gap in gaps), gaps


def test_coverage_check_reports_a_missing_page_field() -> None:
    gaps = coverage_gaps(_without(PaiModelVersionPage, "total_count"), ali.ListModelVersionsResponseBody, ali_fields)
    assert any(gap.endswith(".TotalCount: missing (SDK ListModelVersionsResponseBody.total_count)") for gap in gaps)


# ================================================================================================ PAI round trips

PAI_VERSION_WIRE: dict[str, Any] = {
    "RequestId": "5A14FA81-DD4E-5A1C-9B6D-3E1F0D8C7B21",
    "VersionName": "1.0.1",
    "VersionDescription": "fine-tuned on the March data",
    "ApprovalStatus": "Approved",
    "Uri": "oss://mybucket.oss-cn-hangzhou.aliyuncs.com/models/churn/1.0.1/",
    "FormatType": "SavedModel",
    "FrameworkType": "TensorFlow",
    "InferenceSpec": {"processor": "tensorflow_cpu_2.3", "metadata": {"instance": 1, "cpu": 2, "memory": 4000}},
    "TrainingSpec": {},
    "Metrics": {"auc": 0.913, "ks": 0.41},
    "ExtraInfo": {"dataset": "d-123"},
    "Options": '{"notes": "x"}',
    "Labels": [{"Key": "team", "Value": "risk"}, {"Key": "stage"}],
    "SourceType": "PAIFlow",
    "SourceId": "region=cn-hangzhou,workspaceId=12345,kind=PipelineRun,id=flow-abc",
    "OwnerId": "1234567890123456",
    "UserId": "2345678901234567",
    "GmtCreateTime": "2024-05-01T12:00:00.123Z",
    "GmtModifiedTime": "2024-05-02T08:30:00Z",
    # a field the service may add later
    "EvaluationReport": {"Pass": True, "Checks": [1, 2]},
}


def test_pai_version_parses_pascal_case_wire() -> None:
    version = PaiModelVersion.model_validate(PAI_VERSION_WIRE)
    assert version.version_name == "1.0.1"
    assert version.approval_status == "Approved"
    assert version.status is ApprovalStatus.APPROVED
    assert version.uri == PAI_VERSION_WIRE["Uri"]
    assert version.inference_spec == PAI_VERSION_WIRE["InferenceSpec"]
    assert version.training_spec == {}
    assert version.labels == [PaiLabel(Key="team", Value="risk"), PaiLabel(Key="stage")]
    assert version.gmt_create_time == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert version.request_id == PAI_VERSION_WIRE["RequestId"]


def test_pai_version_keeps_unknown_fields_through_a_round_trip() -> None:
    version = PaiModelVersion.model_validate(PAI_VERSION_WIRE)
    assert version.model_extra == {"EvaluationReport": {"Pass": True, "Checks": [1, 2]}}
    wire = version.to_wire()
    assert wire["EvaluationReport"] == PAI_VERSION_WIRE["EvaluationReport"]
    assert _normalise_times(wire) == _normalise_times(PAI_VERSION_WIRE)
    json.dumps(wire)  # JSON-safe
    assert PaiModelVersion.model_validate(wire) == version


def test_pai_version_requires_version_name_and_accepts_snake_case() -> None:
    with pytest.raises(ValidationError):
        PaiModelVersion.model_validate({"Uri": "oss://b/k"})
    assert PaiModelVersion(version_name="2", approval_status="Pending").status is ApprovalStatus.PENDING


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Approved", ApprovalStatus.APPROVED), ("PENDING", ApprovalStatus.PENDING), ("rejected", ApprovalStatus.REJECTED)],
)
def test_pai_version_status_is_case_insensitive(raw: str, expected: ApprovalStatus) -> None:
    assert PaiModelVersion(VersionName="1", ApprovalStatus=raw).status is expected


def test_pai_version_status_is_none_when_absent_or_unknown() -> None:
    assert PaiModelVersion(VersionName="1").status is None
    unknown = PaiModelVersion(VersionName="1", ApprovalStatus="Archived")
    assert unknown.status is None
    assert unknown.approval_status == "Archived"  # kept verbatim


def test_pai_to_ref_and_xcom_round_trip() -> None:
    version = PaiModelVersion.model_validate(PAI_VERSION_WIRE)
    ref = version.to_ref(model_id="model-abc123", region="cn-hangzhou", workspace_id="12345")
    assert isinstance(ref, ModelVersionRef)
    assert ref.registry == "pai"
    assert ref.model_id == "model-abc123"
    assert ref.version_name == ref.version_id == "1.0.1"
    assert ref.uri == PAI_VERSION_WIRE["Uri"]
    assert ref.approval_status == "Approved"
    assert (ref.format_type, ref.framework_type, ref.base_model_type) == ("SavedModel", "TensorFlow", None)
    assert ref.labels == {"team": "risk", "stage": ""}
    assert ref.inference_spec == PAI_VERSION_WIRE["InferenceSpec"]
    assert ref.created_at == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)

    xcom = ref.to_xcom()
    text = json.dumps(xcom)  # what XCom's JSON serialisation needs
    assert isinstance(xcom["created_at"], str)
    restored = ModelVersionRef.from_xcom(json.loads(text))
    assert restored == ref
    assert restored.created_at == ref.created_at


def test_pai_page_parses_items_and_keeps_total() -> None:
    page = PaiModelVersionPage.model_validate(
        {"RequestId": "r-1", "TotalCount": 42, "Versions": [PAI_VERSION_WIRE, {"VersionName": "0.9"}]}
    )
    assert page.total_count == 42
    assert page.request_id == "r-1"
    assert [v.version_name for v in page.versions] == ["1.0.1", "0.9"]
    assert PaiModelVersionPage.model_validate({"TotalCount": 0}).versions == []
    with pytest.raises(ValidationError):
        PaiModelVersionPage.model_validate({"Versions": []})  # TotalCount is required for paging


def test_pai_model_with_latest_version_round_trips() -> None:
    wire = {
        "ModelId": "model-abc123",
        "ModelName": "churn",
        "WorkspaceId": "12345",
        "Labels": [{"Key": "team", "Value": "risk"}],
        "Tags": [{"Key": "k", "Value": "v"}],
        "OrderNumber": 3,
        "ParameterSize": 7000000000,
        "GmtLatestVersionModifiedTime": "2024-05-02T08:30:00Z",
        "LatestVersion": PAI_VERSION_WIRE,
    }
    model = PaiModel.model_validate(wire)
    assert model.latest_version is not None and model.latest_version.version_name == "1.0.1"
    assert model.latest_version.model_extra == {"EvaluationReport": PAI_VERSION_WIRE["EvaluationReport"]}
    assert _normalise_times(model.to_wire()) == _normalise_times(wire)


# ================================================================================================ Fabric round trips

FABRIC_VERSION_WIRE: dict[str, Any] = {
    "id": "0f3c5a8e-6b1d-4c2e-9a7f-1234567890ab",
    "name": "v20240501",
    "description": "qwen2 fine-tune",
    "cap_white_list": ["CHAT"],
    "config": {"llm_model_config": {"base_model_type": "QWEN_2_72B", "model_path": "obs://bucket/models/qwen2/"}},
    "create_time": "2024-05-01T12:00:00+00:00",
    "create_user": {"domain_name": "acme", "domain_id": "d-1", "user_name": "alice", "user_id": "u-1"},
    "status": "READY",  # not in the SDK snapshot; the docs hint at one
}


def test_fabric_version_parses_and_keeps_unknown_fields() -> None:
    version = FabricModelVersion.model_validate(FABRIC_VERSION_WIRE)
    assert version.model_path == "obs://bucket/models/qwen2/"
    assert version.create_user is not None and version.create_user.user_name == "alice"
    assert version.model_extra == {"status": "READY"}
    assert _normalise_times(version.to_wire()) == _normalise_times(FABRIC_VERSION_WIRE)
    assert FabricModelVersion.model_validate(version.to_wire()) == version


def test_fabric_to_ref_and_xcom_round_trip() -> None:
    version = FabricModelVersion.model_validate(FABRIC_VERSION_WIRE)
    ref = version.to_ref(workspace_id="ws-1", model_id="m-1", region="cn-north-4")
    assert ref.registry == "fabric"
    assert ref.approval_status is None  # Fabric has no approval
    assert ref.version_id == FABRIC_VERSION_WIRE["id"]  # the server-generated id, not the name
    assert ref.version_name == "v20240501"
    assert ref.uri == "obs://bucket/models/qwen2/"
    assert ref.base_model_type == "QWEN_2_72B"
    assert ref.labels == {}
    assert ref.created_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    restored = ModelVersionRef.from_xcom(json.loads(json.dumps(ref.to_xcom())))
    assert restored == ref


def test_fabric_to_ref_without_config_or_name() -> None:
    ref = FabricModelVersion(id="0f3c5a8e-6b1d-4c2e-9a7f-1234567890ab").to_ref(
        workspace_id="ws", model_id="m", region=None
    )
    assert (ref.uri, ref.base_model_type, ref.version_name, ref.approval_status) == (None, None, "", None)
    assert FabricModelVersion(id="x", config={}).model_path is None


def test_fabric_page_drops_header_request_id_from_the_wire() -> None:
    page = FabricModelVersionPage.model_validate({"total": 1, "versions": [FABRIC_VERSION_WIRE]})
    page.request_id = "req-1"
    assert page.versions[0].id == FABRIC_VERSION_WIRE["id"]
    assert "request_id" not in page.to_wire()
    with pytest.raises(ValidationError):
        FabricModelVersionPage.model_validate({"versions": []})


def test_model_version_ref_is_frozen_and_strict_about_registry() -> None:
    ref = FabricModelVersion.model_validate(FABRIC_VERSION_WIRE).to_ref(workspace_id="w", model_id="m", region=None)
    with pytest.raises(ValidationError):
        ref.uri = "obs://elsewhere/"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        ModelVersionRef.from_xcom({**ref.to_xcom(), "registry": "sagemaker"})


# ================================================================================================ ApprovalStatus


@pytest.mark.parametrize(
    ("status", "terminal"),
    [(ApprovalStatus.PENDING, False), (ApprovalStatus.APPROVED, True), (ApprovalStatus.REJECTED, True)],
)
def test_approval_status_terminal(status: ApprovalStatus, terminal: bool) -> None:
    assert status.is_terminal() is terminal


def test_approval_status_members_are_exactly_the_api_values() -> None:
    assert [s.value for s in ApprovalStatus] == ["Pending", "Approved", "Rejected"]
    assert ApprovalStatus.APPROVED == "Approved"  # str enum: usable as a query/body value
    assert json.dumps({"ApprovalStatus": ApprovalStatus.REJECTED}) == '{"ApprovalStatus": "Rejected"}'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Approved", ApprovalStatus.APPROVED),
        ("APPROVED", ApprovalStatus.APPROVED),  # the PAI SDK docstring spelling
        ("approved", ApprovalStatus.APPROVED),
        (" Pending ", ApprovalStatus.PENDING),
        ("rEjEcTeD", ApprovalStatus.REJECTED),
    ],
)
def test_approval_status_parse_case_variants(raw: str, expected: ApprovalStatus) -> None:
    assert ApprovalStatus.parse(raw) is expected
    assert check_pai_approval_status(raw) is expected


@pytest.mark.parametrize("raw", ["Archived", "", "Approve", "Approved!", "待审批"])
def test_approval_status_parse_rejects_unknown_values(raw: str) -> None:
    # models.py raises a plain ValueError; the input validator's refusal is tested in test_validation.py
    with pytest.raises(ValueError, match="unknown approval status"):
        ApprovalStatus.parse(raw)
