"""What differs between Airflow versions (``_compat``), checked on the version installed: the matrix runs this on
2.11, 3.0, 3.1, 3.2 and 3.3, and the README's feature x version table says the same."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_modelreg import _compat
from airflow_provider_modelreg.get_provider_info import get_provider_info
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook

HOOKS = [PaiModelRegistryHook, FabricModelRegistryHook]
AIRFLOW_2_UI = (
    "the Airflow 2 UI (flask-appbuilder, shipped with Airflow 2) renders hook widgets; 3.0 and 3.1 render them only "
    "with the FAB provider installed, and 3.2+ read the declarative conn-fields instead"
)


def _entry(hook: Any) -> dict[str, Any]:
    return next(e for e in get_provider_info()["connection-types"] if e["connection-type"] == hook.conn_type)


@pytest.mark.parametrize("hook", HOOKS)
def test_hooks_define_the_form_methods_on_their_own_class(hook: Any) -> None:
    """Airflow looks for them in the hook class's own ``__dict__`` (an inherited one is ignored)."""
    assert "get_connection_form_widgets" in hook.__dict__
    assert "get_ui_field_behaviour" in hook.__dict__


@pytest.mark.parametrize("hook", HOOKS)
def test_ui_field_behaviour_is_the_provider_info_entry(hook: Any) -> None:
    declared = _entry(hook)["ui-field-behaviour"]
    assert hook.get_ui_field_behaviour() == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }


@pytest.mark.requires_airflow("<3.0", reason=AIRFLOW_2_UI)
@pytest.mark.parametrize("hook", HOOKS)
def test_form_widgets_cover_every_conn_field_with_secrets_masked(hook: Any) -> None:
    fields = _entry(hook)["conn-fields"]
    widgets = hook.get_connection_form_widgets()
    assert set(widgets) == set(fields)
    for name, field in fields.items():
        kind = widgets[name].field_class.__name__
        assert kind in {"StringField", "PasswordField", "IntegerField", "BooleanField"}, name
        assert (kind == "PasswordField") == (field["schema"].get("format") == "password"), name


@pytest.mark.requires_airflow("<3.0", reason=AIRFLOW_2_UI)
def test_airflow_2_connection_form_shows_our_fields() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    for hook in HOOKS:
        for name in _entry(hook)["conn-fields"]:
            assert f"extra__{hook.conn_type}__{name}" in widgets, name
    assert manager.field_behaviours["pai"]["relabeling"]["login"] == "AccessKey ID"
    assert "host" in manager.field_behaviours["huaweicloud_fabric"]["hidden_fields"]


@pytest.mark.requires_airflow("<3.0", reason="Airflow 3 has AssetWatcher and its event triggers")
def test_the_event_trigger_is_refused_with_the_reason_on_airflow_2() -> None:
    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger

    assert not _compat.HAS_ASSET_WATCHERS
    with pytest.raises(_compat.UnsupportedOnThisAirflowError, match=r"AssetWatcher, which needs Airflow >= 3\.0"):
        PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-1")


@pytest.mark.requires_airflow("3.0", reason="AssetWatcher and event triggers exist from Airflow 3.0")
def test_the_event_trigger_is_an_event_trigger_from_airflow_3() -> None:
    from airflow.triggers.base import BaseEventTrigger

    from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedEventTrigger

    assert _compat.HAS_ASSET_WATCHERS
    trigger = PaiModelVersionApprovedEventTrigger(pai_conn_id="pai_default", model_id="m-1")
    assert isinstance(trigger, BaseEventTrigger)
