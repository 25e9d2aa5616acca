"""Triggers are stored by classpath: splitting triggers/pai.py (issue 21: the hub, the approval trigger and the watcher
in their own modules) keeps the classpath each one serializes with, and every name it had stays importable there."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from airflow_provider_modelreg.triggers import hub, pai, watcher


def _resolve(classpath: str) -> Any:
    module, _, name = classpath.rpartition(".")
    return getattr(importlib.import_module(module), name)


#: the watcher is an event trigger for an AssetWatcher: it exists from Airflow 3.0
WATCHERS = pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")


@pytest.mark.parametrize(
    ("make", "classpath"),
    [
        pytest.param(
            lambda: pai.PaiModelVersionApprovalTrigger(pai_conn_id="pai_default", model_id="m-1"),
            "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovalTrigger",
            id="approval",
        ),
        pytest.param(
            lambda: pai.PaiApprovedVersionEventTrigger(pai_conn_id="pai_default", model_id="m-1"),
            "airflow_provider_modelreg.triggers.pai.PaiApprovedVersionEventTrigger",
            id="watcher",
            marks=WATCHERS,
        ),
    ],
)
def test_each_trigger_keeps_the_classpath_it_was_stored_with(make: Any, classpath: str) -> None:
    trigger = make()  # built in the test: on Airflow 2 the watcher refuses to exist, and this case is skipped
    stored, kwargs = trigger.serialize()
    assert stored == classpath
    rebuilt = _resolve(stored)(**kwargs)  # as the triggerer rebuilds a stored trigger
    assert type(rebuilt) is type(trigger) and rebuilt.serialize() == (stored, kwargs)


@WATCHERS
def test_a_subclass_of_the_watcher_serializes_with_its_own_classpath() -> None:
    class MyWatcher(watcher.PaiApprovedVersionEventTrigger):
        pass

    stored, _ = MyWatcher(pai_conn_id="pai_default", model_id="m-1").serialize()
    assert stored == f"{__name__}.{MyWatcher.__qualname__}"


def test_the_names_of_the_split_modules_stay_importable_from_triggers_pai() -> None:
    for module in (hub, watcher):
        for name in [*module.__all__, *(n for n in vars(module) if n.startswith("_") and n.isupper())]:
            if name in ("CLASSPATH",):
                continue
            assert getattr(pai, name) is getattr(module, name), name
    assert pai._Entry is hub._Entry and pai._WatchGroup is watcher._WatchGroup
