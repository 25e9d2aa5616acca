"""Asset events of a task: what a sensor or an operator that found a version attaches to its outlets' events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import Asset  # Dataset on Airflow 2

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator
    from airflow.sdk import Context

__all__ = ["emit_asset_events"]


def emit_asset_events(task: BaseOperator, context: Context, key: str, value: Any) -> None:
    """Attach ``value`` under ``key`` to the extra of every ``Asset`` outlet's event (subclasses included).

    :param task: the running task, whose ``outlets`` are read.
    :param context: the task's context (no ``outlet_events`` in it: nothing to do).
    :param key: the key in each event's extra.
    :param value: a JSON-serialisable value.
    """
    outlet_events = context.get("outlet_events")
    if outlet_events is None:
        return
    for outlet in task.outlets or []:
        if isinstance(outlet, Asset):
            outlet_events[outlet].extra.update({key: value})
