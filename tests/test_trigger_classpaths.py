"""Triggers are stored by classpath: splitting triggers/pai.py (issue 21: the hub, the approval trigger and the watcher
in their own modules) keeps the module each one serializes with, every name it had stays importable there, and the
classes' old names (renamed to read like the sensor's) still resolve, so triggers stored under them rebuild."""

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
            lambda: pai.PaiModelVersionApprovedTrigger(pai_conn_id="pai_default", model_id="m-1"),
            "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedTrigger",
            id="approval",
        ),
        pytest.param(
            lambda: pai.PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-1"),
            "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedEventTrigger",
            id="watcher",
            marks=WATCHERS,
        ),
        pytest.param(
            lambda: pai.PaiModelVersionApprovedTrigger(
                pai_conn_id="pai_default", model_id="m-1", alias="champion", alias_key="stage"
            ),
            "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedTrigger",
            id="approval-alias",
        ),
        pytest.param(
            lambda: pai.PaiModelVersionApprovedEventTrigger(
                pai_conn_id="pai_default", model_id="m-1", alias="champion", alias_key="stage"
            ),
            "airflow_provider_modelreg.triggers.pai.PaiModelVersionApprovedEventTrigger",
            id="watcher-alias",
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


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("PaiModelVersionApprovalTrigger", "PaiModelVersionApprovedTrigger"),
        pytest.param("PaiApprovedVersionEventTrigger", "PaiModelVersionApprovedEventTrigger", marks=WATCHERS),
    ],
)
def test_a_trigger_stored_under_its_old_classpath_rebuilds_as_the_renamed_class(old: str, new: str) -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    with pytest.warns(AirflowProviderDeprecationWarning, match=f"{old} is deprecated, use {new}"):
        cls = _resolve(f"airflow_provider_modelreg.triggers.pai.{old}")
    assert cls is getattr(pai, new)
    stored = {"pai_conn_id": "pai_default", "model_id": "m-1", "poke_interval": 60.0, "request_attempts": 2}
    with pytest.warns(AirflowProviderDeprecationWarning):  # kwargs stored by that release
        rebuilt = cls(**stored)
    classpath, kwargs = rebuilt.serialize()
    assert classpath == f"airflow_provider_modelreg.triggers.pai.{new}" and kwargs["max_attempts"] == 2
    with pytest.raises(AttributeError):
        _resolve("airflow_provider_modelreg.triggers.pai.NoSuchTrigger")


@WATCHERS
def test_a_subclass_of_the_watcher_serializes_with_its_own_classpath() -> None:
    class MyWatcher(watcher.PaiModelVersionApprovedEventTrigger):
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


def test_a_stored_approval_trigger_of_an_older_release_rebuilds_without_the_alias_kwargs() -> None:
    stored = {  # what a release before issue 24 stored
        "pai_conn_id": "pai_default",
        "model_id": "m-1",
        "version_name": None,
        "after_version": "1.0.0",
        "created_after": None,
        "poke_interval": 60.0,
        "end_time": None,
        "max_failures": 5,
        "max_attempts": None,
        "call_timeout": None,
    }
    classpath, kwargs = pai.PaiModelVersionApprovedTrigger(**stored).serialize()
    assert kwargs == {**stored, "alias": None, "alias_key": "alias"}
    assert _resolve(classpath)(**kwargs).serialize() == (classpath, kwargs)
