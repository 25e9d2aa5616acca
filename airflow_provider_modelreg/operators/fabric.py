"""Operators for the DataArts Fabric model registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.approval import rendered_optional, rendered_required
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks import FABRIC_DEFAULT_CONN_ID, PICKS
from airflow_provider_modelreg.links import FabricModelVersionLink
from airflow_provider_modelreg.operators.base import DEFAULT_MAX_RESULTS, RegistryOperatorBase
from airflow_provider_modelreg.validation import check_max_results

if TYPE_CHECKING:  # the hooks load when a task runs, not when a DAG file is parsed
    from airflow.sdk import Context

    from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
    from airflow_provider_modelreg.models import FabricModelVersion

__all__ = ["FabricGetModelVersionOperator", "FabricListModelVersionsOperator", "FabricListModelsOperator"]

_DEFAULT_CONN = FABRIC_DEFAULT_CONN_ID


class _FabricOperator(RegistryOperatorBase["FabricModelRegistryHook"]):
    """A Fabric task: the hook of ``fabric_conn_id`` with the task's request overrides."""

    fabric_conn_id: str
    workspace_id: str | None

    def _make_hook(self, **overrides: Any) -> FabricModelRegistryHook:
        from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook

        return FabricModelRegistryHook(self.fabric_conn_id, **overrides)

    def _workspace(self) -> str:
        """The workspace asked: the rendered argument, else the connection's default."""
        return self.hook.workspace(rendered_optional(self.workspace_id, "workspace_id"))

    def _ref(self, workspace: str, model_id: str, version: FabricModelVersion) -> dict[str, Any]:
        return version.to_ref(workspace_id=workspace, model_id=model_id, region=self.hook.region).to_xcom()

    def _publish_version(self, context: Context, ref: dict[str, Any]) -> dict[str, Any]:
        self.persist_link(FabricModelVersionLink, ref, context)
        return self.publish(context, "model_version", ref)


class _FabricVersionOperator(_FabricOperator):
    """A task on one version, found by server id or exact name (``pick`` when several versions share it)."""

    template_fields: Sequence[str] = ("model_id", "workspace_id", "version_id", "version_name", "fabric_conn_id")
    operator_extra_links = (FabricModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        workspace_id: str | None = None,
        version_id: str | None = None,
        version_name: str | None = None,
        pick: str = "unique",
        fabric_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if pick not in PICKS:
            raise RegistryInputError("pick", "must be 'unique' or 'newest'", pick)
        self.model_id = model_id
        self.workspace_id = workspace_id
        self.version_id = version_id
        self.version_name = version_name
        self.pick = pick
        self.fabric_conn_id = fabric_conn_id

    def _version(self) -> tuple[str, str, FabricModelVersion]:
        """(model id, workspace, the version found)."""
        model_id = rendered_required(self.model_id, "model_id")
        workspace = self._workspace()
        return (
            model_id,
            workspace,
            self.hook.get_model_version(
                model_id, workspace_id=workspace, **self.rendered_options("version_id", "version_name"), pick=self.pick
            ),
        )


class FabricListModelVersionsOperator(_FabricOperator):
    """Lists DataArts Fabric model versions as ``ModelVersionRef`` dicts, ready for ``.expand()``: newest first by
    create_time, then id (``order="ASC"``: oldest first; the API documents no order, so every page is read and
    sorted here); ``uri`` is ``config.llm_model_config.model_path``.

    At most ``max_results`` (default 100) are returned: a longer list is cut, never silently: the task logs a
    WARNING with the total, and pushes the XCom keys ``total`` and ``truncated`` next to the list.
    ``max_results=None`` returns every version (mind ``[core] max_map_length``, 1,024, with ``.expand()``).

    :param model_id: model id. (templated)
    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param name_filter: the API's fuzzy name filter (4-32 of letters, digits, ``_``, ``-``). (templated)
    :param version_id: version id filter. (templated)
    :param order: ``DESC`` (newest first, default) or ``ASC`` by create_time.
    :param max_results: at most this many versions (default 100; None: all).
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("model_id", "workspace_id", "name_filter", "version_id", "fabric_conn_id")
    operator_extra_links = (FabricModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        workspace_id: str | None = None,
        name_filter: str | None = None,
        version_id: str | None = None,
        order: str = "DESC",
        max_results: int | None = DEFAULT_MAX_RESULTS,
        fabric_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.workspace_id = workspace_id
        self.name_filter = name_filter
        self.version_id = version_id
        self.keep_listing_bounds(order, max_results)
        self.fabric_conn_id = fabric_conn_id

    def run_registry(self, context: Context) -> list[dict[str, Any]]:
        model_id = rendered_required(self.model_id, "model_id")
        workspace = self._workspace()
        filters = self.rendered_options("name_filter", "version_id")
        versions = self.hook.list_model_versions(
            model_id, workspace_id=workspace, **filters, order=self.order, max_results=self.max_results
        )
        refs = [self._ref(workspace, model_id, v) for v in versions]
        self.report_listing(context, f"Model {model_id} versions", versions)
        first = refs[0] if refs else {"model_id": model_id, "workspace_id": workspace, "region": self.hook.region}
        self.persist_link(FabricModelVersionLink, first, context)  # the first listed version, else the model
        return self.publish(context, "model_versions", refs)


class FabricGetModelVersionOperator(_FabricVersionOperator):
    """Finds one DataArts Fabric model version, by server id or exact name, and returns its ``ModelVersionRef``.

    Names are not unique in Fabric: when several versions carry ``version_name`` the task fails with
    :class:`~airflow_provider_modelreg.errors.RegistryAmbiguousVersionError`, which lists them, unless
    ``pick="newest"`` asks for the newest of them.

    :param model_id: model id. (templated)
    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param version_id: the version's server id. (templated)
    :param version_name: the exact version name (give exactly one of the two). (templated)
    :param pick: ``"unique"`` (default) or ``"newest"``: what to do when several versions share the name.
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id, workspace, version = self._version()
        ref = self._ref(workspace, model_id, version)
        self.log.info("Model %s version %s (%s): uri %s", model_id, ref["version_name"], ref["version_id"], ref["uri"])
        return self._publish_version(context, ref)


class FabricListModelsOperator(_FabricOperator):
    """Lists the DataArts Fabric models of a workspace, newest first (the API's documented order), as small
    ``ModelRef`` dicts (``registry, region, workspace_id, model_id, model_name, latest_version_name, created_at,
    labels``): e.g. to resolve a model id by name.

    Bounded like :class:`FabricListModelVersionsOperator`: at most ``max_results`` (default 100; None: all), with
    the XCom keys ``total`` and ``truncated`` and a WARNING when the list is cut.

    :param workspace_id: workspace (default: the connection's ``workspace_id``). (templated)
    :param name_filter: the API's fuzzy name filter. (templated)
    :param max_results: at most this many models (default 100; None: all).
    :param fabric_conn_id: connection of type ``huaweicloud_fabric``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("workspace_id", "name_filter", "fabric_conn_id")

    def __init__(
        self,
        *,
        workspace_id: str | None = None,
        name_filter: str | None = None,
        max_results: int | None = DEFAULT_MAX_RESULTS,
        fabric_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.name_filter = name_filter
        self.max_results = check_max_results(max_results)
        self.fabric_conn_id = fabric_conn_id

    def run_registry(self, context: Context) -> list[dict[str, Any]]:
        workspace = self._workspace()
        models = self.hook.list_models(
            workspace_id=workspace,
            name_filter=rendered_optional(self.name_filter, "name_filter"),
            max_results=self.max_results,
        )
        region = self.hook.region
        refs = [m.to_ref(workspace_id=workspace, region=region).to_xcom() for m in models]
        self.report_listing(context, f"Fabric workspace {workspace} models", models)
        return self.publish(context, "models", refs)
