"""What every registry task (operator or sensor) does with its hook: request settings under the hook's names, one
hook per try built on first use, its client closed when the work ends."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow_provider_modelreg.renamed import take_renamed
from airflow_provider_modelreg.validation import check_request_attempts, check_request_timeout

if TYPE_CHECKING:  # the hooks load when a task runs, not when a DAG file is parsed
    from airflow_provider_modelreg.hooks.base import ModelRegistryHookBase

__all__ = ["TaskHook"]

H = TypeVar("H", bound="ModelRegistryHookBase")
T = TypeVar("T")


class TaskHook(Generic[H]):
    """Mixed into a task class before ``BaseOperator``: the hook of the task, with the task's request settings."""

    max_attempts: int | None
    call_timeout: float | None

    @classmethod
    def request_settings(cls, kwargs: dict[str, Any], max_attempts: Any, call_timeout: Any) -> tuple[Any, Any]:
        """``max_attempts`` and ``call_timeout``, checked; their deprecated names are moved out of the constructor's
        ``kwargs`` (call it before ``BaseOperator.__init__`` sees them)."""
        given = take_renamed(cls.__name__, kwargs, max_attempts=max_attempts, call_timeout=call_timeout)
        return (
            check_request_attempts(given["max_attempts"], "max_attempts"),
            check_request_timeout(given["call_timeout"], "call_timeout"),
        )

    def _make_hook(self, **overrides: Any) -> H:
        """The vendor's hook for this task's connection (each vendor's task class defines it)."""
        raise TypeError(f"{type(self).__name__} must define _make_hook")

    @cached_property
    def hook(self) -> H:
        """The task's hook (one client, reused by every request of the try; closed when the work ends)."""
        from airflow_provider_modelreg.hooks.base import hook_overrides

        return self._make_hook(**hook_overrides(self.max_attempts, self.call_timeout))

    def close_hook(self) -> None:
        """Close the client of the task's hook, if one was opened (the next use builds a new hook)."""
        hook = self.__dict__.pop("hook", None)
        if hook is not None:
            hook.close()

    def closing_hook(self, work: Callable[[], T]) -> T:
        """``work()``, then close the hook whatever happened."""
        try:
            return work()
        finally:
            self.close_hook()
