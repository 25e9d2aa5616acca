"""Input rules from the API docs, checked before any request is sent.

Each check raises :class:`~airflow_provider_modelreg.errors.RegistryInputError` naming the field and the rule.
Ids end up in URL paths: ``/``, ``%2F``, ``.``/``..`` (httpx would normalise the dot segments away and silently
address another resource), unicode, empty and overlong values all fail the character rules below.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from airflow_provider_modelreg.approval_status import ApprovalStatus
from airflow_provider_modelreg.errors import RegistryConnectionConfigError, RegistryInputError
from airflow_provider_modelreg.renamed import renamed_class

__all__ = [
    "MAX_PAI_LABEL_BYTES",
    "PLACEHOLDERS",
    "check_choice",
    "check_eas_id",
    "check_eas_int",
    "check_eas_labels",
    "check_eas_text",
    "check_fabric_id",
    "check_fabric_limit",
    "check_fabric_name_filter",
    "check_fabric_offset",
    "check_fabric_version_id",
    "check_fabric_version_name",
    "check_max_failures",
    "check_max_results",
    "check_order",
    "check_pai_approval_status",
    "check_pai_label_part",
    "check_pai_model_id",
    "check_pai_page_size",
    "check_pai_version_name",
    "check_poke_interval",
    "check_request_attempts",
    "check_request_timeout",
    "rendered_optional",
    "rendered_required",
    "setting_number",
]

_PAI_MODEL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PAI_VERSION_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FABRIC_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_FABRIC_VERSION_ID = re.compile(r"[A-Za-z0-9-]{32,36}")
_FABRIC_NAME_FILTER = re.compile(r"[A-Za-z0-9_-]{4,32}")
_FABRIC_VERSION_NAME = re.compile(r"[A-Za-z0-9_. -]{1,64}")


#: What a form or a template leaves in a field meant to be empty (a Jinja template of a missing value renders to
#: ``'None'``, a JSON null pasted as text to ``'null'``): refused wherever a value is required or secret.
PLACEHOLDERS = frozenset({"None", "none", "null", "NULL"})


def _match(pattern: re.Pattern[str], field: str, value: Any, rule: str) -> str:
    if not isinstance(value, str):
        raise RegistryInputError(field, f"must be a string; {rule}", value)
    if pattern.fullmatch(value) is None:
        raise RegistryInputError(field, rule, value)
    return value


def _int_range(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RegistryInputError(field, f"must be an integer from {low} to {high}", value)
    if not low <= value <= high:
        raise RegistryInputError(field, f"must be from {low} to {high}", value)
    return value


def check_pai_model_id(value: Any, field: str = "model_id") -> str:
    """PAI ModelId: 1-64 of letters, digits, ``-``, ``_``."""
    return _match(_PAI_MODEL_ID, field, value, "1-64 characters of letters, digits, '-' and '_'")


def check_pai_version_name(value: Any, field: str = "version_name") -> str:
    """PAI VersionName: 1-64 of letters, digits, ``.``, ``-``, ``_``; never ``.`` or ``..``."""
    _match(_PAI_VERSION_NAME, field, value, "1-64 characters of letters, digits, '.', '-' and '_'")
    if value in (".", ".."):
        raise RegistryInputError(field, "must not be '.' or '..' (a dot segment would change the URL path)", value)
    return str(value)


def check_pai_approval_status(value: Any, field: str = "approval_status") -> ApprovalStatus:
    """One of Pending, Approved, Rejected (case-insensitive)."""
    if isinstance(value, ApprovalStatus):
        return value
    if not isinstance(value, str):
        raise RegistryInputError(field, "must be one of Pending, Approved, Rejected", value)
    try:
        return ApprovalStatus.parse(value)
    except ValueError:
        raise RegistryInputError(field, "must be one of Pending, Approved, Rejected", value) from None


def check_choice(value: Any, field: str, choices: Sequence[str]) -> str:
    """``value`` when it is one of ``choices`` (typed error naming the field and the choices).

    :param value: the value given.
    :param field: the argument's name.
    :param choices: the values allowed.
    """
    if value not in choices:
        raise RegistryInputError(field, f"must be one of {', '.join(choices)}", value)
    return str(value)


def check_order(value: Any, field: str = "order") -> str:
    """ASC or DESC."""
    if not isinstance(value, str) or value.upper() not in ("ASC", "DESC"):
        raise RegistryInputError(field, "must be 'ASC' or 'DESC'", value)
    return value.upper()


def check_pai_page_size(value: Any, field: str = "page_size") -> int:
    """PageSize 1-100."""
    return _int_range(field, value, 1, 100)


def check_max_results(value: Any, field: str = "max_results") -> int | None:
    """None (everything) or a positive integer."""
    if value is None:
        return None
    return _int_range(field, value, 1, 10**9)


def check_request_attempts(value: Any, field: str = "request_attempts") -> int | None:
    """Per-task attempts per registry request (the first included): None (the connection's) or 1-20."""
    if value is None:
        return None
    return _int_range(field, value, 1, 20)


def check_request_timeout(value: Any, field: str = "request_timeout") -> float | None:
    """Per-task deadline of one registry call in seconds (every attempt and wait): None or 0 < value <= 86400."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise RegistryInputError(field, "must be a number of seconds, more than 0 and at most 86400", value)
    return float(value)


def check_fabric_id(value: Any, field: str) -> str:
    """Fabric workspace_id / model_id: 1-36 of letters, digits, hyphens."""
    return _match(_FABRIC_ID, field, value, "1-36 characters of letters, digits and '-'")


def check_fabric_version_id(value: Any, field: str = "version_id") -> str:
    """Fabric version id: 32-36 of letters, digits, hyphens."""
    return _match(_FABRIC_VERSION_ID, field, value, "32-36 characters of letters, digits and '-'")


def check_fabric_name_filter(value: Any, field: str = "name") -> str:
    """The fuzzy ``name`` list filter: 4-32 of letters, digits, ``_``, ``-``."""
    return _match(_FABRIC_NAME_FILTER, field, value, "4-32 characters of letters, digits, '_' and '-'")


def check_fabric_version_name(value: Any, field: str = "name") -> str:
    """A version name looked up exactly: 1-64 of letters, digits, ``_``, ``-``, ``.``, space."""
    return _match(_FABRIC_VERSION_NAME, field, value, "1-64 characters of letters, digits, '_', '-', '.' and space")


def check_fabric_limit(value: Any, field: str = "limit") -> int:
    """limit 1-100."""
    return _int_range(field, value, 1, 100)


def check_fabric_offset(value: Any, field: str = "offset") -> int:
    """offset 0-1e9."""
    return _int_range(field, value, 0, 10**9)


def setting_number(raw: Any, field: str, low: float, high: float, *, integer: bool = False) -> float | None:
    """A numeric connection setting (an extra, an environment variable, a profile value; strings from the
    connection form included): None when unset, else a number within ``[low, high]`` (whole with ``integer``).

    :raises RegistryConnectionConfigError: naming ``field``, for booleans, non-numbers and values out of range.
    """
    if raw is None or raw == "":
        return None
    rule = f"must be {'an integer' if integer else 'a number'} from {low:g} to {high:g}"
    if isinstance(raw, bool):
        raise RegistryConnectionConfigError(field, rule, raw)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise RegistryConnectionConfigError(field, rule, raw) from None
    if not (low <= value <= high) or (integer and not value.is_integer()):
        raise RegistryConnectionConfigError(field, rule, raw)
    return value


#: PAI label keys and values (CreateModelVersionLabels, the alias of PaiSetModelVersionAliasOperator): at most this
#: many bytes (UTF-8).
MAX_PAI_LABEL_BYTES = 128


def check_pai_label_part(value: Any, field: str) -> str:
    """A PAI label key or value: a non-empty string, not a placeholder (``'None'``, ``'null'``), no control
    characters, no ``=`` or ``,``, at most :data:`MAX_PAI_LABEL_BYTES` bytes (typed error naming ``field``)."""
    if not isinstance(value, str) or not value.strip() or value in PLACEHOLDERS:
        raise RegistryInputError(field, "must be a non-empty string, not a placeholder such as 'None'", value)
    if _CONTROL.search(value):
        raise RegistryInputError(field, "must not contain control characters", value)
    if "=" in value or "," in value:
        raise RegistryInputError(field, "must not contain '=' or ','", value)
    if len(value.encode()) > MAX_PAI_LABEL_BYTES:
        raise RegistryInputError(field, f"must be at most {MAX_PAI_LABEL_BYTES} bytes", value)
    return value


# ------------------------------------------------------------------------ rendered input (templated arguments)


def _is_none_text(value: Any) -> bool:
    return isinstance(value, str) and (not value.strip() or value.strip() in PLACEHOLDERS)


def rendered_required(value: Any, field_name: str) -> str:
    """A rendered argument that must be a non-empty string (``""``, ``"None"``, None, non-strings fail)."""
    if value is None or _is_none_text(value) or not isinstance(value, str):
        raise RegistryInputError(
            field_name,
            "must render to a non-empty string (a Jinja template of a missing value renders to '' or 'None')",
            value,
        )
    return value


def rendered_optional(value: Any, field_name: str) -> str | None:
    """A rendered optional argument: a native None means unset; ``""``, ``"None"`` and non-strings fail."""
    if value is None:
        return None
    return rendered_required(value, field_name)


def check_poke_interval(value: Any, field_name: str = "poke_interval") -> float:
    """Seconds between polls: a number from 0.1 to 86400 (typed error naming the field otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise RegistryInputError(field_name, "must be a number of seconds, more than 0 and at most 86400", value)
    return float(value)


def check_max_failures(value: Any, field_name: str = "max_failures") -> int:
    """Consecutive failed polls tolerated: an integer from 1 to 1000 (typed error naming the field otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise RegistryInputError(field_name, "must be an integer from 1 to 1000", value)
    return value


# ------------------------------------------------------------------------------------------------- PAI-EAS

#: EAS identifiers: (pattern, rule) by kind
_EAS_IDS: dict[str, tuple[re.Pattern[str], str]] = {
    "service_name": (re.compile(r"[a-z][a-z0-9_]{0,62}"), "a lower-case letter, then up to 62 of a-z, 0-9 and '_'"),
    "region": (re.compile(r"[a-z][a-z0-9-]{1,62}"), "a region id such as cn-hangzhou"),
    "workspace_id": (re.compile(r"[A-Za-z0-9_-]{1,64}"), "1-64 characters of letters, digits, '-' and '_'"),
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_eas_id(value: Any, field: str, kind: str | None = None) -> str:
    """An EAS identifier of ``kind`` (default: ``field``): ``service_name`` (a lower-case letter, then up to 62
    lower-case letters, digits and ``_``), ``region`` (the ``ClusterId``, e.g. ``cn-hangzhou``) or
    ``workspace_id``."""
    pattern, rule = _EAS_IDS[kind or field]
    return _match(pattern, field, value, rule)


def check_eas_text(value: Any, field: str, max_length: int = 128) -> str:
    """A free text value (a label key or value, a filter): a non-empty string of at most ``max_length``
    characters, no control characters, not a placeholder (``'None'``, ``'null'``) left by a form or template."""
    if not isinstance(value, str) or not value.strip():
        raise RegistryInputError(field, "must be a non-empty string", value)
    if value in PLACEHOLDERS:
        raise RegistryInputError(field, "holds a placeholder ('None'/'null'): give a value or leave it out", value)
    if _CONTROL.search(value):
        raise RegistryInputError(field, "must not contain control characters (a pasted newline?)", value)
    if len(value) > max_length:
        raise RegistryInputError(field, f"must be at most {max_length} characters", value)
    return value


def check_eas_labels(value: Any, field: str = "labels") -> dict[str, str]:
    """Service labels: a mapping of label key to value, both :func:`check_eas_text` (insertion order kept: the
    SDK sends them in that order)."""
    if not isinstance(value, dict):
        raise RegistryInputError(field, "must be a mapping of label key to value", value)
    return {
        check_eas_text(key, f"{field} key"): check_eas_text(item, f"{field}[{key!r:.40}]")
        for key, item in value.items()
    }


#: EAS integers: (lowest, highest) by name
_EAS_RANGES = {"version": (1, 2**31 - 1), "weight": (-1, 1000), "page_size": (1, 100)}


def check_eas_int(value: Any, field: str, kind: str | None = None) -> int:
    """An EAS integer of ``kind`` (default: ``field``): a service ``version`` (1 or more), ReleaseService's
    ``weight`` (-1 to 1000), a listing's ``page_size`` (1-100)."""
    low, high = _EAS_RANGES[kind or field]
    return _int_range(field, value, low, high)


def __getattr__(name: str) -> Any:  # deprecated names: check_pai_order checks either registry's order
    return renamed_class(globals(), name, {"check_pai_order": "check_order"})
