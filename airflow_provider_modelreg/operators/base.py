"""Shared behaviour of the registry operators: one hook per task, closed when the task ends; XCom shape, console
links, bounded listings and asset events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_modelreg.asset_events import emit_asset_events
from airflow_provider_modelreg.links import track_links
from airflow_provider_modelreg.task_hook import TaskHook
from airflow_provider_modelreg.validation import check_max_results, check_order, rendered_optional

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_modelreg.hooks.base import Listing, ModelRegistryHookBase, hook_overrides
    from airflow_provider_modelreg.links import _ConsoleLink

__all__ = ["DEFAULT_MAX_RESULTS", "RegistryOperatorBase", "emit_asset_events", "hook_overrides"]

#: The XCom keys under which operators publish model versions (their lineage).
_VERSION_KEYS = ("model_version", "model_versions")
#: Default ``max_results`` of the list operators: far below ``[core] max_map_length`` (1,024), a small XCom.
DEFAULT_MAX_RESULTS = 100

H = TypeVar("H", bound="ModelRegistryHookBase")
V = TypeVar("V")


class RegistryOperatorBase(TaskHook[H], BaseOperator):
    """One hook per task (built on first use, its client closed when ``execute`` ends); pushes JSON-safe dicts.

    Every registry operator takes these request settings, under the names the hook and the connection extras
    use (``request_attempts`` and ``request_timeout`` are their deprecated names):

    :param max_attempts: attempts per registry request, the first included (1-20), for this task; default: the
        connection's ``max_attempts`` (else 5). Not the task's ``retries``.
    :param call_timeout: seconds one registry call may take, every attempt and wait included, for this task;
        default: the connection's ``call_timeout`` (else 120).
    """

    ui_color = "#e8f4ff"

    def __init__(self, *, max_attempts: int | None = None, call_timeout: float | None = None, **kwargs: Any) -> None:
        settings = self.request_settings(kwargs, max_attempts, call_timeout)
        super().__init__(**kwargs)
        self.max_attempts, self.call_timeout = settings
        track_links(self)

    def execute(self, context: Context) -> Any:
        return self.closing_hook(lambda: self.run_registry(context))

    def run_registry(self, context: Context) -> Any:
        """The task's work (``execute`` closes the hook afterwards); each operator defines it."""
        raise TypeError(f"{type(self).__name__} must define run_registry")

    # -- arguments

    def keep_listing_bounds(self, order: str, max_results: int | None) -> None:
        """Keep a listing's ``order`` and ``max_results``, checked when the task is built (what
        :meth:`report_listing` reports a cut against)."""
        self.order = check_order(order)
        self.max_results = check_max_results(max_results)

    def rendered_options(self, *names: str) -> dict[str, Any]:
        """The optional arguments ``names`` as rendered, by name: a native None is no value; one that renders to
        ``""`` or ``"None"`` is an error naming the field (it would otherwise widen a filter to everything)."""
        return {name: rendered_optional(getattr(self, name), name) for name in names}

    # -- outputs

    def _template(self) -> str | None:
        from airflow_provider_modelreg.hooks.base import extra_str

        return extra_str(self.hook.connection.extra_dejson, "console_url_template")

    def persist_link(self, link: type[_ConsoleLink], ref: dict[str, Any], context: Context) -> None:
        """Render the console link for ``ref`` (a version, or the model when it names none) for this try, and
        store it in XCom (where the UI reads it, on every Airflow version)."""
        link.persist(self, ref, self._template(), context=context)

    def publish(self, context: Context, key: str, value: V) -> V:
        """Attach ``value`` to the outlets' asset events under ``key``; returns ``value`` (the XCom). Model versions
        (``model_version``, ``model_versions``) are also this try's lineage."""
        emit_asset_events(self, context, key, value)
        if key in _VERSION_KEYS:
            self._lineage_refs = value if isinstance(value, list) else [value]
        return value

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (the provider calls it when installed): each version's artifact in (``oss://{bucket}`` /
        ``obs://{bucket}``, the key as name), the registry version out (``pai://{region}/{workspace}`` or
        ``huaweicloud-fabric://...``, ``{model_id}/{version}``), and the run facet ``modelreg_model_versions``
        (each version's name, id and approval status)."""
        from airflow_provider_modelreg.lineage_facets import operator_lineage  # only when OpenLineage asks (P4)

        return operator_lineage(getattr(self, "_lineage_refs", []))

    def report_listing(self, context: Context, what: str, listing: Listing[Any]) -> None:
        """Push ``total`` and ``truncated`` (XCom keys) and say at WARNING when ``max_results`` cut the listing."""
        if listing.truncated:
            self.log.warning(
                "%s: returning %d of %d (max_results=%d); the XCom key 'truncated' is True. Pass max_results=None "
                "for all (or a narrower filter)",
                what,
                len(listing),
                listing.total,
                len(listing),
            )
        else:
            self.log.info("%s: %d listed", what, len(listing))
        if self.do_xcom_push:
            context["ti"].xcom_push(key="total", value=listing.total)
            context["ti"].xcom_push(key="truncated", value=listing.truncated)


def __getattr__(name: str) -> Any:
    """``hook_overrides``, re-exported from :mod:`airflow_provider_modelreg.hooks.base` on first use (PEP 562): the
    hooks load when a task runs, not when a DAG file imports the operators."""
    if name == "hook_overrides":
        from airflow_provider_modelreg.hooks.base import hook_overrides

        return hook_overrides
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
