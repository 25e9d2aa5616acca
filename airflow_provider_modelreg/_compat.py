"""Everything that differs between Airflow versions, in one place.

Features that exist only in newer Airflow (event triggers for ``AssetWatcher`` from 3.0, the asset state store
that the triggerer injects into watcher triggers from 3.3) are looked up here, with a fallback, so the rest of the
package never checks a version.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BaseEventTrigger", "asset_state_accessors"]

try:  # Airflow >= 3.0
    from airflow.triggers.base import BaseEventTrigger
except ImportError:  # pragma: no cover - Airflow 2 has no event triggers
    from airflow.triggers.base import BaseTrigger as BaseEventTrigger  # type: ignore[assignment]


def asset_state_accessors(trigger: Any) -> list[Any] | None:
    """One state accessor per asset the trigger watches, or None where Airflow has no asset state store.

    The triggerer runs one trigger for all watchers with equal kwargs, so one trigger can serve several assets
    (e.g. a staging and a prod deploy DAG on one model); Airflow 3.3's accessor object then refuses the
    single-asset calls. Its per-asset accessors are not exposed publicly, so they are read here, once.
    """
    store = getattr(trigger, "asset_state_store", None)
    if store is None:
        return None
    per_asset = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
    return per_asset or [store]
