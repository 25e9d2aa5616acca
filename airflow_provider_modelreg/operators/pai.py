"""Operators for the PAI model registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_modelreg.approval import check_answer_is_about, rendered_optional
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.links import PaiModelVersionLink
from airflow_provider_modelreg.models import PaiModelVersion
from airflow_provider_modelreg.operators.base import RegistryOperatorBase
from airflow_provider_modelreg.validation import (
    check_max_results,
    check_pai_approval_status,
    check_pai_model_id,
    check_pai_order,
    check_pai_version_name,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PaiGetModelVersionOperator", "PaiListModelVersionsOperator", "PaiUpdateModelVersionApprovalOperator"]


class _PaiOperator(RegistryOperatorBase):
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(self, *, model_id: str, pai_conn_id: str = PaiModelRegistryHook.default_conn_name, **kwargs: Any):
        super().__init__(**kwargs)
        self.model_id = model_id
        self.pai_conn_id = pai_conn_id

    @property
    def hook(self) -> PaiModelRegistryHook:
        return PaiModelRegistryHook(self.pai_conn_id)

    def _ref(self, hook: PaiModelRegistryHook, version: PaiModelVersion) -> dict[str, Any]:
        return version.to_ref(model_id=self.model_id, region=hook.region, workspace_id=hook.workspace_id).to_xcom()


class PaiGetModelVersionOperator(_PaiOperator):
    """Reads one PAI model version and returns its ``ModelVersionRef`` dict (``uri``, ``approval_status``, ...).

    :param model_id: PAI ModelId. (templated)
    :param version_name: the VersionName. (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "pai_conn_id")

    def __init__(self, *, version_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version_name = version_name

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        found = hook.get_model_version(self.model_id, self.version_name)
        check_answer_is_about(found, self.version_name)
        ref = self._ref(hook, found)
        self.log.info(
            "Model %s version %s: %s, uri %s", self.model_id, self.version_name, ref["approval_status"], ref["uri"]
        )
        return self.publish(context, ref, PaiModelVersionLink, hook.connection)


class PaiListModelVersionsOperator(_PaiOperator):
    """Lists PAI model versions (every page) and returns a list of ``ModelVersionRef`` dicts, ready for
    ``.expand()``.

    Filters: a native None is no filter; a filter that renders to ``""`` or ``"None"`` is an error (it would
    otherwise list every version instead of none).

    :param model_id: PAI ModelId. (templated)
    :param approval_status: Pending, Approved or Rejected. (templated)
    :param version_name: exact VersionName filter. (templated)
    :param label_filter: ``Label`` filter: substring of a label key or value. (templated)
    :param format_type: FormatType filter. (templated)
    :param framework_type: FrameworkType filter. (templated)
    :param source_type: SourceType filter. (templated)
    :param source_id: SourceId filter. (templated)
    :param order: ``DESC`` (newest first) or ``ASC`` by creation time.
    :param max_results: at most this many versions (None: all).
    :param pai_conn_id: connection of type ``pai``. (templated)
    """

    template_fields: Sequence[str] = (
        "model_id",
        "approval_status",
        "version_name",
        "label_filter",
        "format_type",
        "framework_type",
        "source_type",
        "source_id",
        "pai_conn_id",
    )

    def __init__(
        self,
        *,
        approval_status: str | None = None,
        version_name: str | None = None,
        label_filter: str | None = None,
        format_type: str | None = None,
        framework_type: str | None = None,
        source_type: str | None = None,
        source_id: str | None = None,
        order: str = "DESC",
        max_results: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.approval_status = approval_status
        self.version_name = version_name
        self.label_filter = label_filter
        self.format_type = format_type
        self.framework_type = framework_type
        self.source_type = source_type
        self.source_id = source_id
        self.order = check_pai_order(order)
        self.max_results = check_max_results(max_results)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        hook = self.hook
        versions = hook.list_model_versions(
            self.model_id,
            approval_status=rendered_optional(self.approval_status, "approval_status"),
            version_name=rendered_optional(self.version_name, "version_name"),
            label=rendered_optional(self.label_filter, "label_filter"),
            format_type=rendered_optional(self.format_type, "format_type"),
            framework_type=rendered_optional(self.framework_type, "framework_type"),
            source_type=rendered_optional(self.source_type, "source_type"),
            source_id=rendered_optional(self.source_id, "source_id"),
            order=self.order,
            max_results=self.max_results,
        )
        refs = [self._ref(hook, v) for v in versions]
        self.log.info("Model %s: %d version(s) listed", self.model_id, len(refs))
        return refs


class PaiUpdateModelVersionApprovalOperator(_PaiOperator):
    """Approves or rejects a PAI model version; returns its ``ModelVersionRef`` dict afterwards.

    Approved and Rejected are terminal in PAI: changing one fails the task without retries; asking for the status
    a version already has is a no-op.

    :param model_id: PAI ModelId. (templated)
    :param version_name: the VersionName. (templated)
    :param approval_status: ``Approved`` or ``Rejected`` (or ``Pending``). (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "approval_status", "pai_conn_id")

    def __init__(self, *, version_name: str, approval_status: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version_name = version_name
        self.approval_status = approval_status

    def execute(self, context: Context) -> dict[str, Any]:
        wanted = check_pai_approval_status(self.approval_status)
        check_pai_model_id(self.model_id)
        check_pai_version_name(self.version_name)
        hook = self.hook
        current = hook.get_model_version(self.model_id, self.version_name)
        status = current.status
        if status is wanted:
            self.log.info("Model %s version %s is already %s", self.model_id, self.version_name, wanted.value)
        elif status is not None and status.is_terminal():
            raise AirflowFailException(
                f"Model {self.model_id} version {self.version_name} is {status.value}, which is terminal in PAI: "
                f"refusing to change it to {wanted.value}"
            )
        else:
            hook.update_model_version(self.model_id, self.version_name, approval_status=wanted)
            self.log.info("Model %s version %s set to %s", self.model_id, self.version_name, wanted.value)
            current = hook.get_model_version(self.model_id, self.version_name)
        return self.publish(context, self._ref(hook, current), PaiModelVersionLink, hook.connection)
