"""Typed models of both registries (pydantic v2) and the vendor-neutral :class:`ModelVersionRef`.

Vendor models keep the wire's field names as aliases and keep unknown fields (``extra="allow"``): a field the
service adds later survives a round trip instead of being dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_provider_modelreg.approval_status import ApprovalStatus

__all__ = [
    "ApprovalStatus",
    "FabricCreateUser",
    "FabricLlmModelConfig",
    "FabricModel",
    "FabricModelConfig",
    "FabricModelPage",
    "FabricModelVersion",
    "FabricModelVersionPage",
    "ModelRef",
    "ModelVersionRef",
    "PaiLabel",
    "PaiModel",
    "PaiModelPage",
    "PaiModelVersion",
    "PaiModelVersionPage",
]


class _Wire(BaseModel):
    # defer_build: schemas are built on first use, not at import (DAG parsing imports these modules)
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False, defer_build=True)

    def to_wire(self) -> dict[str, Any]:
        """The JSON-safe dict as the service spells it (aliases, unknown fields included, nulls dropped)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ------------------------------------------------------------------------------------------------- PAI


class PaiLabel(_Wire):
    key: str = Field(alias="Key")
    value: str | None = Field(default=None, alias="Value")


class PaiModelVersion(_Wire):
    """A PAI model version (GetModelVersion body / ListModelVersions item)."""

    version_name: str = Field(alias="VersionName")
    version_description: str | None = Field(default=None, alias="VersionDescription")
    approval_status: str | None = Field(default=None, alias="ApprovalStatus")
    uri: str | None = Field(default=None, alias="Uri")
    format_type: str | None = Field(default=None, alias="FormatType")
    framework_type: str | None = Field(default=None, alias="FrameworkType")
    inference_spec: dict[str, Any] | None = Field(default=None, alias="InferenceSpec")
    training_spec: dict[str, Any] | None = Field(default=None, alias="TrainingSpec")
    evaluation_spec: dict[str, Any] | None = Field(default=None, alias="EvaluationSpec")
    compression_spec: dict[str, Any] | None = Field(default=None, alias="CompressionSpec")
    distillation_spec: dict[str, Any] | None = Field(default=None, alias="DistillationSpec")
    metrics: dict[str, Any] | None = Field(default=None, alias="Metrics")
    extra_info: dict[str, Any] | None = Field(default=None, alias="ExtraInfo")
    options: str | None = Field(default=None, alias="Options")
    labels: list[PaiLabel] | None = Field(default=None, alias="Labels")
    source_type: str | None = Field(default=None, alias="SourceType")
    source_id: str | None = Field(default=None, alias="SourceId")
    owner_id: str | None = Field(default=None, alias="OwnerId")
    user_id: str | None = Field(default=None, alias="UserId")
    gmt_create_time: datetime | None = Field(default=None, alias="GmtCreateTime")
    gmt_modified_time: datetime | None = Field(default=None, alias="GmtModifiedTime")
    request_id: str | None = Field(default=None, alias="RequestId")

    @property
    def status(self) -> ApprovalStatus | None:
        """The approval status as an enum (None when the service sent none or an unknown value)."""
        if self.approval_status is None:
            return None
        try:
            return ApprovalStatus.parse(self.approval_status)
        except ValueError:
            return None

    def to_ref(self, *, model_id: str, region: str | None, workspace_id: str | None) -> ModelVersionRef:
        """The vendor-neutral reference that goes to XCom."""
        return ModelVersionRef(
            registry="pai",
            region=region,
            workspace_id=workspace_id,
            model_id=model_id,
            version_name=self.version_name,
            version_id=self.version_name,
            uri=self.uri,
            approval_status=self.approval_status,
            format_type=self.format_type,
            framework_type=self.framework_type,
            base_model_type=None,
            created_at=self.gmt_create_time,
            labels={lbl.key: lbl.value or "" for lbl in self.labels or []},
            inference_spec=self.inference_spec,
        )


class PaiModel(_Wire):
    """A PAI model (GetModel body / ListModels item); ``LatestVersion`` is typed."""

    model_id: str = Field(alias="ModelId")
    model_name: str | None = Field(default=None, alias="ModelName")
    model_description: str | None = Field(default=None, alias="ModelDescription")
    model_doc: str | None = Field(default=None, alias="ModelDoc")
    model_type: str | None = Field(default=None, alias="ModelType")
    domain: str | None = Field(default=None, alias="Domain")
    task: str | None = Field(default=None, alias="Task")
    origin: str | None = Field(default=None, alias="Origin")
    provider: str | None = Field(default=None, alias="Provider")
    accessibility: str | None = Field(default=None, alias="Accessibility")
    labels: list[PaiLabel] | None = Field(default=None, alias="Labels")
    tags: list[PaiLabel] | None = Field(default=None, alias="Tags")
    extra_info: dict[str, Any] | None = Field(default=None, alias="ExtraInfo")
    order_number: int | None = Field(default=None, alias="OrderNumber")
    parameter_size: int | None = Field(default=None, alias="ParameterSize")
    workspace_id: str | None = Field(default=None, alias="WorkspaceId")
    owner_id: str | None = Field(default=None, alias="OwnerId")
    user_id: str | None = Field(default=None, alias="UserId")
    gmt_create_time: datetime | None = Field(default=None, alias="GmtCreateTime")
    gmt_modified_time: datetime | None = Field(default=None, alias="GmtModifiedTime")
    gmt_latest_version_modified_time: datetime | None = Field(default=None, alias="GmtLatestVersionModifiedTime")
    latest_version: PaiModelVersion | None = Field(default=None, alias="LatestVersion")
    request_id: str | None = Field(default=None, alias="RequestId")

    def to_ref(self, *, region: str | None) -> ModelRef:
        """The small vendor-neutral summary that goes to XCom (the workspace is the model's own)."""
        return ModelRef(
            registry="pai",
            region=region,
            workspace_id=self.workspace_id,
            model_id=self.model_id,
            model_name=self.model_name,
            latest_version_name=self.latest_version.version_name if self.latest_version else None,
            created_at=self.gmt_create_time,
            labels={lbl.key: lbl.value or "" for lbl in self.labels or []},
        )


class PaiModelVersionPage(_Wire):
    """One page of ListModelVersions."""

    request_id: str | None = Field(default=None, alias="RequestId")
    total_count: int = Field(alias="TotalCount", strict=True)  # `true` is not a count
    versions: list[PaiModelVersion] = Field(default_factory=list, alias="Versions")


class PaiModelPage(_Wire):
    """One page of ListModels."""

    request_id: str | None = Field(default=None, alias="RequestId")
    total_count: int = Field(alias="TotalCount", strict=True)
    models: list[PaiModel] = Field(default_factory=list, alias="Models")


# ------------------------------------------------------------------------------------------------- Fabric


class FabricLlmModelConfig(_Wire):
    base_model_type: str | None = None
    model_path: str | None = None
    local_model_path: str | None = None


class FabricModelConfig(_Wire):
    llm_model_config: FabricLlmModelConfig | None = None


class FabricCreateUser(_Wire):
    domain_name: str | None = None
    domain_id: str | None = None
    user_name: str | None = None
    user_id: str | None = None


class FabricModelVersion(_Wire):
    """A DataArts Fabric model version (``ModelVersionInfo``). Fabric has no approval status."""

    id: str
    name: str | None = None
    description: str | None = None
    cap_white_list: list[str] | None = None
    config: FabricModelConfig | None = None
    create_time: datetime | None = None
    create_user: FabricCreateUser | None = None

    @property
    def model_path(self) -> str | None:
        """``config.llm_model_config.model_path``: the OBS URI of the weights."""
        if self.config is None or self.config.llm_model_config is None:
            return None
        return self.config.llm_model_config.model_path

    def to_ref(self, *, workspace_id: str, model_id: str, region: str | None) -> ModelVersionRef:
        """The vendor-neutral reference that goes to XCom."""
        llm = self.config.llm_model_config if self.config else None
        return ModelVersionRef(
            registry="fabric",
            region=region,
            workspace_id=workspace_id,
            model_id=model_id,
            version_name=self.name or "",
            version_id=self.id,
            uri=self.model_path,
            approval_status=None,
            format_type=None,
            framework_type=None,
            base_model_type=llm.base_model_type if llm else None,
            created_at=self.create_time,
            labels={},
            inference_spec=None,
        )


class FabricModelVersionPage(_Wire):
    """One page of ListModelVersions, as the API returns it (``total`` counts all matches)."""

    total: int = Field(strict=True)  # `true` is not a count
    versions: list[FabricModelVersion] = Field(default_factory=list)
    request_id: str | None = Field(default=None, exclude=True)


class FabricModel(_Wire):
    """A DataArts Fabric model (``ModelInfo``)."""

    id: str
    name: str | None = None
    description: str | None = None
    type: str | None = None
    visibility: str | None = None
    create_time: datetime | None = None
    update_time: datetime | None = None
    current_version: FabricModelVersion | None = None
    create_user: FabricCreateUser | None = None
    update_user: FabricCreateUser | None = None

    def to_ref(self, *, workspace_id: str, region: str | None) -> ModelRef:
        """The small vendor-neutral summary that goes to XCom (``workspace_id``: the workspace listed)."""
        current = self.current_version
        return ModelRef(
            registry="fabric",
            region=region,
            workspace_id=workspace_id,
            model_id=self.id,
            model_name=self.name,
            latest_version_name=(current.name or current.id) if current else None,
            created_at=self.create_time,
            labels={},
        )


class FabricModelPage(_Wire):
    """One page of ListModels."""

    total: int = Field(strict=True)
    models: list[FabricModel] = Field(default_factory=list)
    request_id: str | None = Field(default=None, exclude=True)


# ------------------------------------------------------------------------------------------------- neutral


class ModelVersionRef(BaseModel):
    """A registry-neutral reference to one model version: what sensors and operators push to XCom.

    ``version_id`` is the VersionName on PAI and the server-generated id on Fabric; ``approval_status`` is None on
    Fabric, which has no approval. ``uri`` is where the weights are (``oss://...``, ``obs://...``, ``https://...``).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    registry: Literal["pai", "fabric"]
    region: str | None = None
    workspace_id: str | None = None
    model_id: str
    version_name: str
    version_id: str
    uri: str | None = None
    approval_status: str | None = None
    format_type: str | None = None
    framework_type: str | None = None
    base_model_type: str | None = None
    created_at: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    inference_spec: dict[str, Any] | None = None

    def to_xcom(self) -> dict[str, Any]:
        """A JSON-safe dict (datetimes as ISO 8601 strings)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> ModelVersionRef:
        """Rebuild from :meth:`to_xcom` output."""
        return cls.model_validate(value)


class ModelRef(BaseModel):
    """A registry-neutral summary of one model: what the model operators push to XCom (a few hundred bytes).

    ``latest_version_name`` is PAI's ``LatestVersion.VersionName`` and Fabric's ``current_version`` name.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    registry: Literal["pai", "fabric"]
    region: str | None = None
    workspace_id: str | None = None
    model_id: str
    model_name: str | None = None
    latest_version_name: str | None = None
    created_at: datetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)

    def to_xcom(self) -> dict[str, Any]:
        """A JSON-safe dict (datetimes as ISO 8601 strings)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_xcom(cls, value: dict[str, Any]) -> ModelRef:
        """Rebuild from :meth:`to_xcom` output."""
        return cls.model_validate(value)
