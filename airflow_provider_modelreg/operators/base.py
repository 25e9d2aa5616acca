"""Shared behaviour of the registry operators: XCom shape, console links and asset events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_modelreg.hooks.base import extra_str
from airflow_provider_modelreg.links import _ConsoleLink

if TYPE_CHECKING:
    from airflow.sdk import Connection, Context

__all__ = ["RegistryOperatorBase"]


class RegistryOperatorBase(BaseOperator):
    """Pushes ModelVersionRef dicts to XCom; when the task has Asset outlets, their events carry the ref too."""

    ui_color = "#e8f4ff"

    def publish(
        self, context: Context, ref: dict[str, Any], link: type[_ConsoleLink], conn: Connection
    ) -> dict[str, Any]:
        """Persist the console link for ``ref`` and attach ``ref`` to the outlets' asset events."""
        link.persist(context, ref, extra_str(conn.extra_dejson, "console_url_template"))
        outlet_events = context.get("outlet_events")
        for outlet in self.outlets or []:
            if outlet_events is not None and type(outlet).__name__ == "Asset":
                outlet_events[outlet].extra.update({"model_version": ref})
        return ref
