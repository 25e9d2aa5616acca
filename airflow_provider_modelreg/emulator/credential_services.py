"""Dispatch of the emulator's credential services (STS, instance metadata, IAM security tokens).

Each vendor module offers ``match(method, path, req)`` returning ``(route, handler)`` or None; a handler is called
as ``handler(registry, req)`` and returns an :class:`~airflow_provider_modelreg.emulator.wire.Answer`. Issued keys
live ``registry.config.credential_lifetime`` seconds and are accepted by the registry routes until they expire
(:meth:`~airflow_provider_modelreg.emulator.store.Store.issue_temporary_key`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow_provider_modelreg.emulator import ali_credentials, hw_credentials
from airflow_provider_modelreg.emulator.wire import Answer, Req

if TYPE_CHECKING:
    from airflow_provider_modelreg.emulator.app import Registry

__all__ = ["CredentialHandler", "match_credential_service"]

CredentialHandler = Callable[["Registry", Req], Answer]


def match_credential_service(req: Req) -> tuple[str, CredentialHandler] | None:
    """The credential service a request is for, if any (route name, handler)."""
    for module in (ali_credentials, hw_credentials):
        found: Any = module.match(req.method, req.path, req)
        if found is not None:
            return found  # type: ignore[no-any-return]
    return None
