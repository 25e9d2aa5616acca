"""Everything that differs between Airflow versions (2.11 to 3.3), in one place.

Imports of Airflow's public classes go through the official compat provider
(``airflow.providers.common.compat.sdk``: ``airflow.sdk`` on Airflow 3, the Airflow 2 homes before that) and the
async connection read through ``airflow.providers.common.compat.connection``. What that provider does not bridge is
decided here, by looking for the feature (never by comparing version numbers), so the rest of the package never
checks a version:

* event triggers for ``AssetWatcher`` (Airflow >= 3.0): :data:`HAS_ASSET_WATCHERS`, :class:`BaseEventTrigger`
  (constructing one on Airflow 2 raises :class:`UnsupportedOnThisAirflowError`, which says so);
* the asset state store that the triggerer injects into watcher triggers (Airflow >= 3.3):
  :func:`asset_state_accessors` (None before; the watcher then keeps its state in memory and says so);
* shared streams in ack mode for event triggers (Airflow >= 3.3): :data:`HAS_SHARED_STREAMS`,
  :class:`SharedStreamProducer` (a stand-in before, never instantiated by Airflow there);
* declarative connection-form fields (``conn-fields``, read from Airflow 3.2): UIs before 3.2 read the hook's
  ``get_connection_form_widgets`` / ``get_ui_field_behaviour``, which :func:`with_connection_form` builds from the
  same ``get_provider_info()`` entry (one source for both).
"""

from __future__ import annotations

from importlib import metadata
from typing import TYPE_CHECKING, Any, TypeVar

import airflow.triggers.base as _triggers_base
from airflow.providers.common.compat.sdk import AirflowException

__all__ = [
    "AIRFLOW_VERSION",
    "HAS_ASSET_WATCHERS",
    "HAS_SHARED_STREAMS",
    "BaseEventTrigger",
    "SharedStreamProducer",
    "UnsupportedOnThisAirflowError",
    "asset_state_accessors",
    "connection_form_widgets",
    "ui_field_behaviour",
    "with_connection_form",
]

#: the installed Airflow release, for messages only (features are detected, not inferred from it)
AIRFLOW_VERSION = metadata.version("apache-airflow")

#: Airflow >= 3.0: event triggers, the kind an ``AssetWatcher`` runs
HAS_ASSET_WATCHERS: bool = hasattr(_triggers_base, "BaseEventTrigger")


class UnsupportedOnThisAirflowError(AirflowException):
    """The feature asked for does not exist in the installed Airflow."""


if TYPE_CHECKING or HAS_ASSET_WATCHERS:
    from airflow.triggers.base import BaseEventTrigger
else:  # pragma: no cover - Airflow 2

    class BaseEventTrigger(_triggers_base.BaseTrigger):  # type: ignore[no-redef]
        """Airflow 2 has no asset watchers: an event trigger is refused when it is made, with the reason."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise UnsupportedOnThisAirflowError(
                f"{type(self).__name__} is an event trigger for an AssetWatcher, which needs Airflow >= 3.0 "
                f"(installed: {AIRFLOW_VERSION}). On Airflow 2, wait with the sensor (deferrable=True) instead."
            )


def asset_state_accessors(trigger: Any) -> list[Any] | None:
    """One state accessor per asset the trigger watches, or None where Airflow has no asset state store (< 3.3).

    The triggerer runs one trigger for all watchers with equal kwargs, so one trigger can serve several assets
    (e.g. a staging and a prod deploy DAG on one model); Airflow 3.3's accessor object then refuses the
    single-asset calls. Its per-asset accessors are not exposed publicly, so they are read here, once.
    """
    store = getattr(trigger, "asset_state_store", None)
    if store is None:
        return None
    per_asset = [*getattr(store, "_by_name", {}).values(), *getattr(store, "_by_uri", {}).values()]
    return per_asset or [store]


try:
    from airflow.triggers.shared_stream import SharedStreamProducer

    #: Airflow >= 3.3: the triggerer runs one poll per shared-stream key and advances it only after the events
    #: derived from it are stored (ack mode)
    HAS_SHARED_STREAMS = True
except ImportError:  # pragma: no cover - Airflow < 3.3
    HAS_SHARED_STREAMS = False

    class SharedStreamProducer:  # type: ignore[no-redef]
        """Stand-in below Airflow 3.3: the triggerer never asks for a producer there (it calls ``run()``)."""


# ------------------------------------------------------------------------------------ connection form before 3.2


def _connection_type(conn_type: str) -> dict[str, Any]:
    from airflow_provider_modelreg.get_provider_info import get_provider_info

    for entry in get_provider_info()["connection-types"]:
        if entry["connection-type"] == conn_type:
            return dict(entry)
    raise KeyError(conn_type)


def connection_form_widgets(conn_type: str) -> dict[str, Any]:
    """The ``conn-fields`` of ``conn_type`` as the form widgets that Airflow < 3.2 reads from a hook.

    Only the field classes those versions accept (String, Password, Integer, Boolean): a number is a text field,
    an enum a text field whose description names the choices. Needs flask-appbuilder and wtforms (Airflow 2 ships
    them; Airflow 3.0/3.1 render these widgets only with the FAB provider installed).
    """
    from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import NumberRange, Optional

    widgets: dict[str, Any] = {}
    for name, field in _connection_type(conn_type)["conn-fields"].items():
        schema = field.get("schema", {})
        types = schema.get("type", "string")
        types = [types] if isinstance(types, str) else list(types)
        description = field.get("description", "")
        if schema.get("enum"):
            description = f"{description} One of: {', '.join(str(v) for v in schema['enum'] if v is not None)}."
        common: dict[str, Any] = {"description": description}
        if schema.get("default") is not None:
            common["default"] = schema["default"]
        label = lazy_gettext(field.get("label", name))
        if schema.get("format") == "password":
            widgets[name] = PasswordField(label, widget=BS3PasswordFieldWidget(), **common)
        elif "boolean" in types:
            widgets[name] = BooleanField(label, **common)
        elif "integer" in types:
            limits = NumberRange(min=schema.get("minimum"), max=schema.get("maximum"))
            widgets[name] = IntegerField(label, validators=[Optional(), limits], widget=BS3TextFieldWidget(), **common)
        else:
            widgets[name] = StringField(label, widget=BS3TextFieldWidget(), **common)
    return widgets


def ui_field_behaviour(conn_type: str) -> dict[str, Any]:
    """The ``ui-field-behaviour`` of ``conn_type`` in the shape ``get_ui_field_behaviour`` returns (Airflow < 3.2)."""
    behaviour = _connection_type(conn_type).get("ui-field-behaviour", {})
    return {
        "hidden_fields": list(behaviour.get("hidden-fields", [])),
        "relabeling": dict(behaviour.get("relabeling", {})),
        "placeholders": dict(behaviour.get("placeholders", {})),
    }


H = TypeVar("H", bound=type)


def with_connection_form(hook_class: H) -> H:
    """Give a hook class ``get_connection_form_widgets`` / ``get_ui_field_behaviour`` from its provider-info entry.

    Airflow reads them only from the class's own ``__dict__`` (not inherited), and only when the provider info
    has no ``conn-fields`` for the type: so from 3.2 on they are never called, and before 3.2 they show our fields.
    """
    conn_type = hook_class.conn_type  # type: ignore[attr-defined]

    def get_connection_form_widgets(cls: type) -> dict[str, Any]:
        """Form widgets for Airflow < 3.2 (built from this connection type's conn-fields)."""
        return connection_form_widgets(conn_type)

    def get_ui_field_behaviour(cls: type) -> dict[str, Any]:
        """Hidden, relabelled and placeholder fields for Airflow < 3.2 (from this type's ui-field-behaviour)."""
        return ui_field_behaviour(conn_type)

    setattr(hook_class, "get_connection_form_widgets", classmethod(get_connection_form_widgets))  # noqa: B010
    setattr(hook_class, "get_ui_field_behaviour", classmethod(get_ui_field_behaviour))  # noqa: B010
    return hook_class
