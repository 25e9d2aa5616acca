"""The emulator's FastAPI application: both registries and IAM on one port, routed by raw path prefix.

Per request: apply due ``_then`` changes, route on the raw (percent-encoded) path so that ``%2F`` never splits a
segment, decide the fault, sleep the latency without blocking, authenticate, then answer — a fault answer, the
operation's answer, or the answer cut off half-way with the connection dropped (``reset``). Faults apply to the
PAI and Fabric routes; IAM token requests get the latency and are faulted only with ``iam_faults`` (503, 429 with
``Retry-After``, reset). Requests whose credentials are refused are answered with the vendor's error and never
faulted. Paths under ``/_emulator/`` are the admin surface (:mod:`.admin`), not a vendor route: loopback clients
only, never faulted or logged.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from modelreg_emulator.admin import ADMIN_PREFIX, handle_admin
from modelreg_emulator.credential_services import match_credential_service
from modelreg_emulator.eas import EasSettings, configure_eas, match_eas
from modelreg_emulator.fabric import IamError, issue_token, match_fabric
from modelreg_emulator.fabric_ep import FabricEpSettings, configure_fabric_ep, match_fabric_ep
from modelreg_emulator.faults import Fault, FaultConfig, FaultInjector, LogEntry, RequestLog
from modelreg_emulator.pai import match_pai
from modelreg_emulator.store import Store
from modelreg_emulator.verify import NonceCache, verify_acs3, verify_huawei
from modelreg_emulator.wire import Answer, ApiError, Req, ali_error, hw_error, hw_ok

S = TypeVar("S")

__all__ = ["ConnectionResetFault", "EmulatorConfig", "Registry", "create_app", "direct_asgi"]


@dataclass
class EmulatorConfig:
    """Everything an emulator instance is built from."""

    seed: Any = None
    host: str = "127.0.0.1"
    port: int = 0
    token_lifetime: float = 86400
    #: lifetime in seconds of temporary keys issued by the credential services (STS, metadata, IAM)
    credential_lifetime: float = 3600
    #: seconds a Fabric version takes to be created and listed (CreateModelDefinition, UpdateModelDefinition)
    version_delay: float = 0.5
    faults: FaultConfig = field(default_factory=FaultConfig)
    #: PAI-EAS: how long the emulated services take to create, update and delete
    eas: EasSettings = field(default_factory=EasSettings)
    #: Fabric EP: how long the emulated service instances take to deploy, update and delete
    fabric_ep: FabricEpSettings = field(default_factory=FabricEpSettings)

    def __post_init__(self) -> None:
        if isinstance(self.seed, Path):
            self.seed = str(self.seed)
        if self.token_lifetime <= 0:
            raise ValueError("token_lifetime must be > 0")
        if self.credential_lifetime <= 0:
            raise ValueError("credential_lifetime must be > 0")
        if self.version_delay < 0:
            raise ValueError("version_delay must be >= 0")


class ConnectionResetFault(Exception):
    """Raised after half an answer was sent, so that uvicorn drops the connection (an injected reset)."""


class _QuietResets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ConnectionResetFault)


_quiet = _QuietResets()


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if _quiet not in logger.filters:
        logger.addFilter(_quiet)


class _ResetResponse(Response):
    """Sends the status line, headers (with the full Content-Length) and half the body, then breaks off."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": bytes(self.body[: len(self.body) // 2]), "more_body": True})
        raise ConnectionResetFault("injected connection reset")


class Registry:
    """The emulator's state and request pipeline (independent of the HTTP server)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config.seed, token_lifetime=config.token_lifetime, version_delay=config.version_delay)
        self.eas = configure_eas(self.store, config.eas)
        self.fabric_ep = configure_fabric_ep(self.store, config.fabric_ep)
        self.faults = FaultInjector(config.faults)
        self._services: dict[str, Any] = {}
        self._services_lock = threading.Lock()
        self.request_log = RequestLog()
        self.nonces = NonceCache()

    def service_state(self, name: str, factory: Callable[[], S]) -> S:
        """The state of one credential service of this emulator (metadata tokens, accepted OIDC tokens ...),
        made by ``factory`` on first use and kept as long as the emulator."""
        with self._services_lock:
            state = self._services.get(name)
            if state is None:
                state = self._services[name] = factory()
            return state

    def _fault_answer(self, vendor: str, fault: Fault) -> ApiError:
        retry_ms = self.config.faults.retry_after_ms
        if vendor == "pai":
            if fault is Fault.THROTTLE:
                return ApiError(
                    429,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                    {"x-acs-retry-after": str(retry_ms)},
                )
            return ApiError(
                503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."
            )
        if fault is Fault.THROTTLE:
            seconds = str(retry_ms // 1000) if retry_ms % 1000 == 0 else f"{retry_ms / 1000:.3f}"
            return ApiError(
                429,
                "APIG.0308",
                "The throttling threshold has been reached: policy user over ratelimit,limit:50,time:1 second",
                {"Retry-After": seconds},
            )
        return ApiError(500, "common.00000500", "internal error")

    def _iam_fault_answer(self, fault: Fault) -> Answer:
        if fault is Fault.THROTTLE:
            retry_ms = self.config.faults.retry_after_ms
            seconds = str(retry_ms // 1000) if retry_ms % 1000 == 0 else f"{retry_ms / 1000:.3f}"
            body = {"error": {"code": 429, "message": "Too many requests.", "title": "Too Many Requests"}}
            answer = hw_ok(body, status=429)
            answer.headers["Retry-After"] = seconds
            return answer
        body = {"error": {"code": 503, "message": "Service unavailable.", "title": "Service Unavailable"}}
        return hw_ok(body, status=503)

    async def serve(self, req: Req) -> Response:
        """Answer one request."""
        path = req.path
        if path.startswith(ADMIN_PREFIX):
            admin = handle_admin(self, req, req.client)
            return Response(content=admin.body, status_code=admin.status, headers=admin.headers)
        self.store.tick()
        vendor = "pai" if path.startswith("/api/") else "fabric"
        fault = Fault.NONE
        authenticated = False
        latency = self.config.faults.latency_ms / 1000.0
        service = match_credential_service(req)
        if service is not None:
            route, serve_credentials = service
            if latency:
                await asyncio.sleep(latency)
            if self.config.faults.iam_faults:
                fault = self.faults.decide(req.method, req.target)
            if fault in (Fault.ERROR, Fault.THROTTLE):
                answer = self._iam_fault_answer(fault)
            else:
                answer = serve_credentials(self, req)
                authenticated = answer.status < 400
                if not authenticated:
                    fault = Fault.NONE
        elif path.startswith("/v3/auth/tokens") and req.method == "POST":
            route = "iam.CreateToken"
            if self.config.faults.iam_faults:
                fault = self.faults.decide(req.method, req.target)
            if latency:
                await asyncio.sleep(latency)
            if fault in (Fault.ERROR, Fault.THROTTLE):
                answer = self._iam_fault_answer(fault)
            else:
                try:
                    answer = issue_token(self.store, req)
                    authenticated = True
                except IamError as err:
                    answer = err.answer()
                    fault = Fault.NONE
        else:
            if vendor == "pai":
                matched = match_pai(req.method, path) or match_eas(req.method, path)
            else:
                matched = match_fabric(req.method, path) or match_fabric_ep(req.method, path)
            if matched is None:
                route = f"{vendor}.Unknown" if path.startswith(("/api/", "/v1/")) else "unknown"
                if vendor == "pai":
                    answer = ali_error(
                        ApiError(404, "InvalidApi.NotFound", f"Specified api is not found: {req.method} {path}")
                    )
                else:
                    answer = hw_error(
                        ApiError(
                            404, "APIG.0101", "The API does not exist or has not been published in the environment"
                        )
                    )
            else:
                route, handler, args = matched
                fault = self.faults.decide(req.method, req.target)
                if latency:
                    await asyncio.sleep(latency)
                try:
                    if vendor == "pai":
                        verify_acs3(req, self.store, self.nonces)
                    else:
                        verify_huawei(req, self.store)
                    authenticated = True
                    if fault in (Fault.ERROR, Fault.THROTTLE):
                        raise self._fault_answer(vendor, fault)
                    answer = handler(self.store, req, args)
                except ApiError as err:
                    answer = ali_error(err) if vendor == "pai" else hw_error(err)
                if not authenticated:
                    fault = Fault.NONE
        self.request_log.add(LogEntry(route, req.method, req.target, authenticated, answer.status, fault))
        if fault is Fault.RESET:
            return _ResetResponse(content=answer.body, status_code=answer.status, headers=answer.headers)
        return Response(content=answer.body, status_code=answer.status, headers=answer.headers)


def create_app(config: EmulatorConfig | None = None, *, registry: Registry | None = None) -> FastAPI:
    """Build the FastAPI app. ``app.state.registry`` holds the :class:`Registry` (store, request log).

    :param config: emulator settings (default: built-in demo seed, no faults).
    :param registry: an existing registry to serve (``config`` is then ignored).
    """
    _install_log_filter()
    reg = registry or Registry(config or EmulatorConfig())
    app = FastAPI(title="modelreg-emulator", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.registry = reg

    async def dispatch(request: Request) -> Response:
        scope = request.scope
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw.decode("latin-1").partition("?")[0]
        query = scope.get("query_string", b"").decode("latin-1")
        body = await request.body()
        client = request.client.host if request.client else None
        return await reg.serve(Req(request.method, path, query, request.headers, body, client))

    app.add_api_route(
        "/{rest:path}", dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH"], include_in_schema=False
    )
    return app


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def direct_asgi(app: FastAPI) -> ASGIApp:
    """Serve ``app``'s HTTP requests straight through its :class:`Registry`, skipping FastAPI's routing and
    middleware layers (every path goes to the one catch-all route anyway); other scopes go to ``app``.

    This halves the per-request framework cost, which keeps a 100-version page under 1 ms of emulator CPU.
    """
    reg: Registry = app.state.registry

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        raw = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw.decode("latin-1").partition("?")[0]
        query = scope.get("query_string", b"").decode("latin-1")
        body = await _read_body(receive)
        client = scope.get("client")
        host = client[0] if client else None
        response = await reg.serve(Req(scope["method"], path, query, Headers(scope=scope), body, host))
        await response(scope, receive, send)

    return asgi
