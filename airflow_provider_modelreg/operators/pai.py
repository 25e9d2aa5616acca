"""Operators for the PAI model registry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_modelreg.approval import (
    DEFAULT_ALIAS_KEY,
    alias_holder,
    check_alias,
    check_alias_key,
    check_answer_is_about,
    rendered_optional,
    rendered_required,
)
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks import PAI_DEFAULT_CONN_ID
from airflow_provider_modelreg.links import PaiModelLink, PaiModelVersionLink
from airflow_provider_modelreg.operators.base import DEFAULT_MAX_RESULTS, RegistryOperatorBase
from airflow_provider_modelreg.validation import (
    check_pai_approval_status,
    check_pai_model_id,
    check_pai_version_name,
)

if TYPE_CHECKING:  # the hooks load when a task runs, not when a DAG file is parsed
    from airflow.sdk import Context

    from airflow_provider_modelreg.hooks.base import Listing
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
    from airflow_provider_modelreg.models import PaiModelVersion

__all__ = [
    "PaiGetModelOperator",
    "PaiGetModelVersionOperator",
    "PaiListModelVersionsOperator",
    "PaiListModelsOperator",
    "PaiUpdateModelVersionApprovalOperator",
]

_DEFAULT_CONN = PAI_DEFAULT_CONN_ID
#: The filters of :class:`PaiListModelVersionsOperator`, by argument name; all but ``approval_status`` (the first)
#: cannot be combined with ``alias``.
_VERSION_FILTERS = (
    "approval_status",
    "version_name",
    "label_filter",
    "format_type",
    "framework_type",
    "source_type",
    "source_id",
)


class _PaiOperator(RegistryOperatorBase["PaiModelRegistryHook"]):
    """A PAI task: the hook of ``pai_conn_id`` with the task's request overrides."""

    pai_conn_id: str

    def _make_hook(self, **overrides: Any) -> PaiModelRegistryHook:
        from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

        return PaiModelRegistryHook(self.pai_conn_id, **overrides)

    def _ref(self, model_id: str, version: PaiModelVersion) -> dict[str, Any]:
        return self.hook.version_ref(model_id, version).to_xcom()

    def _publish_version(self, context: Context, ref: dict[str, Any]) -> dict[str, Any]:
        self.persist_link(PaiModelVersionLink, ref, context)
        return self.publish(context, "model_version", ref)


class PaiGetModelVersionOperator(_PaiOperator):
    """Reads one PAI model version and returns its ``ModelVersionRef`` dict (``uri``, ``approval_status``, ...).

    :param model_id: PAI ModelId. (templated)
    :param version_name: the VersionName. (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "pai_conn_id")
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.version_name = version_name
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id = rendered_required(self.model_id, "model_id")
        version_name = rendered_required(self.version_name, "version_name")
        found = self.hook.get_model_version(model_id, version_name)
        check_answer_is_about(found, version_name)
        ref = self._ref(model_id, found)
        self.log.info("Model %s version %s: %s, uri %s", model_id, version_name, ref["approval_status"], ref["uri"])
        return self._publish_version(context, ref)


class PaiListModelVersionsOperator(_PaiOperator):
    """Lists PAI model versions, newest first by default, as a list of ``ModelVersionRef`` dicts ready for
    ``.expand()``.

    At most ``max_results`` (default 100) are returned: a longer list is cut, never silently: the task logs a
    WARNING with the total, and pushes the XCom keys ``total`` (how many match) and ``truncated`` (True when cut)
    next to the list. ``max_results=None`` returns every version (mind ``[core] max_map_length``, 1,024, when the
    list feeds ``.expand()``).

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
    :param order: ``DESC`` (newest first, default) or ``ASC`` by creation time.
    :param max_results: at most this many versions (default 100; None: all).
    :param alias: list the version holding this alias (a label ``alias_key=alias``, as
        ``PaiSetModelVersionAliasOperator`` keeps it): a list of one ref, or an empty list when no version holds
        it. While a move leaves two holders, the newest (by creation time, then name) is the one. With
        ``approval_status`` the holder is listed only when it has that status; other filters cannot be combined
        with it. (templated)
    :param alias_key: the label key of aliases (default ``alias``).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = (
        "model_id",
        "approval_status",
        "version_name",
        "label_filter",
        "alias",
        "format_type",
        "framework_type",
        "source_type",
        "source_id",
        "pai_conn_id",
    )
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        approval_status: str | None = None,
        version_name: str | None = None,
        label_filter: str | None = None,
        format_type: str | None = None,
        framework_type: str | None = None,
        source_type: str | None = None,
        source_id: str | None = None,
        order: str = "DESC",
        max_results: int | None = DEFAULT_MAX_RESULTS,
        alias: str | None = None,
        alias_key: str = DEFAULT_ALIAS_KEY,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.approval_status = approval_status
        self.version_name = version_name
        self.label_filter = label_filter
        self.format_type = format_type
        self.framework_type = framework_type
        self.source_type = source_type
        self.source_id = source_id
        if alias is not None:
            given = [name for name in _VERSION_FILTERS[1:] if getattr(self, name) is not None]
            if given:
                raise RegistryInputError("alias", f"cannot be combined with {given[0]}: give one of them")
        check_alias_key(alias_key)
        self.alias = alias
        self.alias_key = alias_key
        self.keep_listing_bounds(order, max_results)
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> list[dict[str, Any]]:
        model_id = rendered_required(self.model_id, "model_id")
        if self.alias is not None:
            versions = self._alias_holder(model_id)
        else:
            versions = self._listed(model_id)
        refs = [self._ref(model_id, v) for v in versions]
        self.report_listing(context, f"Model {model_id} versions", versions)
        # the link: the first listed version, else the model
        first = refs[0] if refs else self._model_only(model_id)
        self.persist_link(PaiModelVersionLink, first, context)
        return self.publish(context, "model_versions", refs)

    def _alias_holder(self, model_id: str) -> Listing[PaiModelVersion]:
        """The holder of the alias as a listing of one (none: empty), whatever order the server listed in."""
        from airflow_provider_modelreg.hooks.base import Listing

        key, alias = check_alias(self.alias, self.alias_key)  # before anything is sent
        status = rendered_optional(self.approval_status, "approval_status")
        wanted = None if status is None else check_pai_approval_status(status)
        listed = self.hook.list_model_versions(model_id, label_filter=alias, max_results=None)
        holder = alias_holder(listed, key, alias)
        if holder is None:
            self.log.info("Model %s: no version holds %s=%s", model_id, key, alias)
            return Listing()
        self.log.info(
            "Model %s: %s=%s is on %s (%s)", model_id, key, alias, holder.version_name, holder.approval_status
        )
        if wanted is not None and holder.status is not wanted:
            return Listing()
        return Listing([holder])

    def _listed(self, model_id: str) -> Listing[PaiModelVersion]:
        filters = self.rendered_options(*_VERSION_FILTERS)
        return self.hook.list_model_versions(model_id, **filters, order=self.order, max_results=self.max_results)

    def _model_only(self, model_id: str) -> dict[str, Any]:
        hook = self.hook
        return {"model_id": model_id, "region": hook.region, "workspace_id": hook.model_workspace(model_id)}


class PaiUpdateModelVersionApprovalOperator(_PaiOperator):
    """Approves or rejects a PAI model version; returns its ``ModelVersionRef`` dict afterwards.

    Approved and Rejected are terminal in PAI: changing one fails the task without retries; asking for the status
    a version already has is a no-op.

    :param model_id: PAI ModelId. (templated)
    :param version_name: the VersionName. (templated)
    :param approval_status: ``Approved`` or ``Rejected`` (or ``Pending``). (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("model_id", "version_name", "approval_status", "pai_conn_id")
    operator_extra_links = (PaiModelVersionLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        version_name: str,
        approval_status: str,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.version_name = version_name
        self.approval_status = approval_status
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> dict[str, Any]:
        wanted = check_pai_approval_status(self.approval_status)
        model_id = check_pai_model_id(self.model_id)
        version_name = check_pai_version_name(self.version_name)
        hook = self.hook
        current = hook.get_model_version(model_id, version_name)
        status = current.status
        if status is wanted:
            self.log.info("Model %s version %s is already %s", model_id, version_name, wanted.value)
        elif status is not None and status.is_terminal():
            raise AirflowFailException(
                f"Model {model_id} version {version_name} is {status.value}, which is terminal in PAI: "
                f"refusing to change it to {wanted.value}"
            )
        else:
            hook.update_model_version(model_id, version_name, approval_status=wanted)
            self.log.info("Model %s version %s set to %s", model_id, version_name, wanted.value)
            current = hook.get_model_version(model_id, version_name)
        return self._publish_version(context, self._ref(model_id, current))


class PaiGetModelOperator(_PaiOperator):
    """Reads one PAI model (GetModel) and returns a small ``ModelRef`` dict: ``registry, region, workspace_id,
    model_id, model_name, latest_version_name, created_at, labels``.

    :param model_id: PAI ModelId. (templated)
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("model_id", "pai_conn_id")
    operator_extra_links = (PaiModelLink(),)

    def __init__(
        self,
        *,
        model_id: str,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_id = model_id
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> dict[str, Any]:
        model_id = rendered_required(self.model_id, "model_id")
        ref = self.hook.get_model(model_id).to_ref(region=self.hook.region).to_xcom()
        self.log.info(
            "Model %s (%s) in workspace %s: latest version %s",
            model_id,
            ref["model_name"],
            ref["workspace_id"],
            ref["latest_version_name"],
        )
        self.persist_link(PaiModelLink, ref, context)
        return self.publish(context, "model", ref)


class PaiListModelsOperator(_PaiOperator):
    """Lists PAI models, newest first by default, as small ``ModelRef`` dicts (see :class:`PaiGetModelOperator`):
    e.g. to resolve a model id by name (``name_filter='"fraud"'`` matches the name exactly).

    Bounded like :class:`PaiListModelVersionsOperator`: at most ``max_results`` (default 100; None: all), with
    the XCom keys ``total`` and ``truncated`` and a WARNING when the list is cut.

    :param workspace_id: workspace (default: the connection's ``workspace_id``; None there too: every workspace
        the credentials see). (templated)
    :param name_filter: ``ModelName`` filter, fuzzy; wrap in double quotes for an exact match. (templated)
    :param label_filter: ``Label`` filter: substring of a label key or value. (templated)
    :param provider: ``Provider`` filter (exact), e.g. ``pai``. (templated)
    :param order: ``DESC`` (newest first, default) or ``ASC`` by creation time.
    :param max_results: at most this many models (default 100; None: all).
    :param pai_conn_id: connection of type ``pai``. (templated)

    Also ``max_attempts`` and ``call_timeout``, as every registry operator
    (:class:`~airflow_provider_modelreg.operators.base.RegistryOperatorBase`).
    """

    template_fields: Sequence[str] = ("workspace_id", "name_filter", "label_filter", "provider", "pai_conn_id")

    def __init__(
        self,
        *,
        workspace_id: str | None = None,
        name_filter: str | None = None,
        label_filter: str | None = None,
        provider: str | None = None,
        order: str = "DESC",
        max_results: int | None = DEFAULT_MAX_RESULTS,
        pai_conn_id: str = _DEFAULT_CONN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.name_filter = name_filter
        self.label_filter = label_filter
        self.provider = provider
        self.keep_listing_bounds(order, max_results)
        self.pai_conn_id = pai_conn_id

    def run_registry(self, context: Context) -> list[dict[str, Any]]:
        hook = self.hook
        filters = self.rendered_options("workspace_id", "name_filter", "label_filter", "provider")
        models = hook.list_models(**filters, order=self.order, max_results=self.max_results)
        region = hook.region
        refs = [m.to_ref(region=region).to_xcom() for m in models]
        self.report_listing(context, "PAI models", models)
        return self.publish(context, "models", refs)
