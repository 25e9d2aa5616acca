"""Arguments renamed so that one setting has one name across hooks, operators, sensors, triggers and connection
extras; the old names keep working for a while, with a deprecation warning."""

from __future__ import annotations

import warnings
from typing import Any

from airflow.exceptions import AirflowProviderDeprecationWarning  # same home on Airflow 2.11 to 3.3

from airflow_provider_modelreg.errors import RegistryInputError

__all__ = ["RENAMED_ARGUMENTS", "RENAMED_CLASSES", "current_names", "renamed_class", "take_renamed"]

#: deprecated argument name -> the name it has now (the hook's and the connection extra's)
RENAMED_ARGUMENTS = {
    "request_attempts": "max_attempts",
    "request_timeout": "call_timeout",
    "start_after": "created_after",
}

#: deprecated class name -> the name it has now (read alike: the sensor, its trigger and the watcher)
RENAMED_CLASSES = {
    "PaiModelVersionApprovalTrigger": "PaiModelVersionApprovedTrigger",
    "PaiApprovedVersionEventTrigger": "PaiModelVersionApprovedEventTrigger",
}


def renamed_class(module: dict[str, Any], name: str, renames: dict[str, str] | None = None) -> Any:
    """For a module's ``__getattr__``: what a deprecated ``name`` stands for (a class, or a function), with a warning
    (an import in a DAG file, or a trigger stored under its old classpath); an unknown name is an
    ``AttributeError``.

    :param module: the module's ``globals()``.
    :param name: the name asked for.
    :param renames: old name -> name now, for this module (default :data:`RENAMED_CLASSES`).
    """
    new = (RENAMED_CLASSES if renames is None else renames).get(name)
    if new is None or new not in module:
        raise AttributeError(f"module {module['__name__']!r} has no attribute {name!r}")
    warnings.warn(f"{name} is deprecated, use {new} (the same thing)", AirflowProviderDeprecationWarning, stacklevel=3)
    return module[new]


def take_renamed(owner: str, kwargs: dict[str, Any], *, stacklevel: int = 3, **current: Any) -> dict[str, Any]:
    """The ``current`` arguments, with any deprecated name for one of them moved out of ``kwargs`` (a warning
    each). Giving both names of one setting is refused.

    :param owner: the class whose constructor is called (named in the warning).
    :param kwargs: the constructor's ``**kwargs``; deprecated names are removed from it.
    :param stacklevel: the warning's, from here (3: the caller of the constructor that calls this).
    :param current: the arguments under their names now, as given (None: not given).
    """
    out = dict(current)
    for old, new in RENAMED_ARGUMENTS.items():
        if new not in out or old not in kwargs:
            continue
        value = kwargs.pop(old)
        if out[new] is not None:
            raise RegistryInputError(old, f"is the deprecated name of {new}: give only {new}")
        warnings.warn(
            f"{owner}: {old} is deprecated, use {new} (the same setting's name everywhere)",
            AirflowProviderDeprecationWarning,
            stacklevel=stacklevel,
        )
        out[new] = value
    return out


def current_names(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A copy of stored arguments (e.g. a trigger's, written by an older release) under the names of now, without a
    warning: nobody can change what is stored. A current name wins over its deprecated one."""
    out = dict(kwargs)
    for old, new in RENAMED_ARGUMENTS.items():
        if old in out:
            value = out.pop(old)
            if out.get(new) is None:
                out[new] = value
    return out
