"""Dispatch of the emulator's credential services (STS, instance metadata, IAM security tokens).

Each vendor module offers ``match(method, path, req)`` returning ``(route, handler)`` or None; a handler is called
as ``handler(registry, req)`` and returns an :class:`~modelreg_emulator.wire.Answer`. Issued keys
live ``registry.config.credential_lifetime`` seconds and are accepted by the registry routes until they expire
(:meth:`~modelreg_emulator.store.Store.issue_temporary_key`).

Outages (tests, chaos runs): :func:`set_outage` makes the next ``requests`` requests to the credential routes whose
name starts with one of ``routes`` fail with ``status`` (503 by default; 403 for a refusal), in each service's own
error shape, then the services answer normally again.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from modelreg_emulator import ali_credentials, hw_credentials
from modelreg_emulator.wire import Answer, Req

if TYPE_CHECKING:
    from modelreg_emulator.app import Registry

__all__ = ["CREDENTIAL_ROUTES", "CredentialHandler", "match_credential_service", "outage_failures", "set_outage"]

CredentialHandler = Callable[["Registry", Req], Answer]

#: route prefixes of every credential service: Alibaba STS, ECS metadata, credentials URI; Huawei metadata, IAM, STS
CREDENTIAL_ROUTES = ("sts.", "ecs.", "uri.", "hw.metadata.", "hw.iam.", "hw.sts.")


class _Outage:
    """The outage of one emulator: which routes fail, how, and for how many more requests."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: tuple[str, ...] = ()
        self.left = 0
        self.status = 503
        self.failed = 0

    def take(self, route: str) -> int | None:
        """The status to fail this request with, or None to serve it."""
        with self.lock:
            if self.left > 0 and route.startswith(self.routes):
                self.left -= 1
                self.failed += 1
                return self.status
        return None


def _outage(registry: Registry) -> _Outage:
    return registry.service_state("credential_outage", _Outage)


def set_outage(
    registry: Registry, *, requests: int, status: int = 503, routes: Sequence[str] = CREDENTIAL_ROUTES
) -> None:
    """Fail the next ``requests`` credential requests whose route starts with one of ``routes`` with ``status``.

    :param registry: the emulator's :class:`~modelreg_emulator.app.Registry`.
    :param requests: how many requests fail (0 ends an outage).
    :param status: 503 (down), 429 (throttled), 403 (refused) ...
    :param routes: route name prefixes (see :data:`CREDENTIAL_ROUTES`).
    """
    outage = _outage(registry)
    with outage.lock:
        outage.routes = tuple(routes)
        outage.left = requests
        outage.status = status


def outage_failures(registry: Registry) -> int:
    """How many requests an outage has failed so far."""
    outage = _outage(registry)
    with outage.lock:
        return outage.failed


def _failure(route: str, status: int) -> Answer:
    """A failure in the shape of the service the route belongs to."""
    refused = status in (401, 403)
    request_id = str(uuid.uuid4()).upper()
    if route.startswith("sts."):
        code = "NoPermission" if refused else ("Throttling.User" if status == 429 else "ServiceUnavailable")
        message = (
            "You are not authorized to do this action. You should be authorized by RAM."
            if refused
            else "The request has failed due to a temporary failure of the server."
        )
        body: dict[str, Any] = {"RequestId": request_id, "HostId": "sts.aliyuncs.com", "Code": code, "Message": message}
        return Answer(
            status, json.dumps(body).encode(), {"content-type": "application/json", "x-acs-request-id": request_id}
        )
    if route.startswith("hw."):
        title = "Forbidden" if refused else "Service Unavailable"
        body = {"error": {"code": status, "message": f"{title} (emulated outage)", "title": title}}
        return Answer(
            status, json.dumps(body).encode(), {"content-type": "application/json", "x-request-id": request_id}
        )
    text = "Forbidden" if refused else "Service Unavailable"
    return Answer(status, text.encode(), {"content-type": "text/plain"})


def _faultable(route: str, handler: CredentialHandler) -> CredentialHandler:
    def serve(registry: Registry, req: Req) -> Answer:
        status = _outage(registry).take(route)
        return handler(registry, req) if status is None else _failure(route, status)

    return serve


def match_credential_service(req: Req) -> tuple[str, CredentialHandler] | None:
    """The credential service a request is for, if any (route name, handler)."""
    for module in (ali_credentials, hw_credentials):
        found: Any = module.match(req.method, req.path, req)
        if found is not None:
            route, handler = found
            return route, _faultable(route, handler)
    return None
