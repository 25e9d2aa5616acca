"""Operators for the DataArts Fabric model registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.approval import rendered_optional
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.links import FabricConsoleLink
from airflow_provider_modelreg.models import FabricModelVersion
from airflow_provider_modelreg.operators.base import RegistryOperatorBase
from airflow_provider_modelreg.validation import check_max_results

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["FabricGetModelVersionOperator", "FabricListModelVersionsOperator"]


class _FabricOperator(RegistryOperatorBase):
    operator_extra_links = (FabricConsoleLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        workspace_id: str | None = None,
        fabric_conn_id: str = FabricModelRegistryHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.workspace_id = workspace_id
        self.fabric_conn_id = fabric_conn_id

    @property
    def hook(self) -> FabricModelRegistryHook:
        return FabricModelRegistryHook(self.fabric_conn_id)

    def _ref(self, hook: FabricModelRegistryHook, version: FabricModelVersion) -> dict[str, Any]:
        workspace = self.workspace_id or hook.workspace_id or ""
        return version.to_ref(workspace_id=workspace, model_id=self.model_id, region=hook.region).to_xcom()


class FabricListModelVersionsOperator(_FabricOperator):
    """Lists DataArts Fabric model versions as ``ModelVersionRef`` dicts, ready for ``.expand()``: every page,
    oldest first by create_time, then id (the API documents no order); ``uri`` is
    ``config.llm_model_config.model_path``.

    :param model_id: model id. (templated)
    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param name: fuzzy name filter. (templated)
    :param version_id: version id filter. (templated)
    :param max_results: at most this many versions (None: all).
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)
    """

    template_fields: Sequence[str] = ("model_id", "workspace_id", "name", "version_id", "fabric_conn_id")

    def __init__(
        self,
        *,
        name: str | None = None,
        version_id: str | None = None,
        max_results: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.version_id = version_id
        self.max_results = check_max_results(max_results)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        hook = self.hook
        versions = hook.list_model_versions(
            self.workspace_id or None,
            self.model_id,
            name=rendered_optional(self.name, "name"),
            version_id=rendered_optional(self.version_id, "version_id"),
            max_results=self.max_results,
        )
        refs = [self._ref(hook, v) for v in versions]
        self.log.info("Model %s: %d version(s) listed", self.model_id, len(refs))
        return refs


class FabricGetModelVersionOperator(_FabricOperator):
    """Finds one DataArts Fabric model version, by server id or exact name, and returns its ``ModelVersionRef``.

    :param model_id: model id. (templated)
    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param version_id: the version's server id. (templated)
    :param version_name: the exact version name (give exactly one of the two). (templated)
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)
    """

    template_fields: Sequence[str] = ("model_id", "workspace_id", "version_id", "version_name", "fabric_conn_id")

    def __init__(self, *, version_id: str | None = None, version_name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.version_id = version_id
        self.version_name = version_name

    def execute(self, context: Context) -> dict[str, Any]:
        hook = self.hook
        version = hook.get_model_version(
            self.workspace_id or None,
            self.model_id,
            version_id=rendered_optional(self.version_id, "version_id"),
            name=rendered_optional(self.version_name, "version_name"),
        )
        ref = self._ref(hook, version)
        self.log.info(
            "Model %s version %s (%s): uri %s", self.model_id, ref["version_name"], ref["version_id"], ref["uri"]
        )
        return self.publish(context, ref, FabricConsoleLink, hook.connection)
