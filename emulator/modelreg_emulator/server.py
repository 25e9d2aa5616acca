"""Serving the emulator with uvicorn: in a background thread (:class:`RegistryEmulator`) or in the foreground."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import uvicorn

from modelreg_emulator.app import EmulatorConfig, Registry, create_app, direct_asgi
from modelreg_emulator.eas import EasSettings
from modelreg_emulator.fabric_ep import FabricEpSettings
from modelreg_emulator.faults import FaultConfig, RequestLog
from modelreg_emulator.store import Store

__all__ = ["RegistryEmulator", "bind_socket", "make_server"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket (``port`` 0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets, and without it Nagle's algorithm
    # plus the client's delayed ACK add ~40 ms to every keep-alive request
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket, host: str, scheme: str = "http") -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def make_server(
    registry: Registry, *, tls_certfile: str | None = None, tls_keyfile: str | None = None
) -> uvicorn.Server:
    """A quiet uvicorn server for ``registry`` (no access log, no logging reconfiguration, no lifespan); HTTPS
    when given a certificate and key (e.g. from a private CA, to test CA bundles and proxies)."""
    config = uvicorn.Config(
        direct_asgi(create_app(registry=registry)),
        ssl_certfile=tls_certfile,
        ssl_keyfile=tls_keyfile,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        timeout_keep_alive=30,
        timeout_graceful_shutdown=2,
        backlog=1024,
    )
    return uvicorn.Server(config)


class RegistryEmulator:
    """The emulator in a background thread, as a context manager.

    ::

        with RegistryEmulator(seed, latency_ms=20, random_seed=7) as emu:
            hook_url = emu.url
            emu.store.set_approval("model-demo-fraud", "1.1.0", "Approved")
            assert emu.request_log.count("pai.GetModelVersion", authenticated=True) == 1

    :param seed: a seed mapping, a path to a JSON seed file, JSON text, or None for the built-in demo seed.
    :param host: address to bind.
    :param port: port to bind; 0 picks a free one (see :attr:`url`).
    :param latency_ms: non-blocking delay added to every request.
    :param error_rate: share of requests answered with a server error (PAI 503, Fabric 500).
    :param throttle_rate: share answered 429 (PAI ``x-acs-retry-after``, Fabric ``Retry-After``).
    :param reset_rate: share whose connection is dropped half-way through the answer.
    :param random_seed: seed of the deterministic fault decisions.
    :param retry_after_ms: wait requested by throttle answers.
    :param iam_faults: fault IAM token requests too, at the same rates.
    :param tls_certfile: PEM certificate to serve HTTPS with (with ``tls_keyfile``); plain HTTP without.
    :param tls_keyfile: PEM private key of ``tls_certfile``.
    :param eas: how long PAI-EAS services take to create, update and delete (:class:`~.eas.EasSettings`).
    :param fabric_ep: how long Fabric EP instances take to deploy, update and delete
        (:class:`~.fabric_ep.FabricEpSettings`).
    :param token_lifetime: IAM token lifetime in seconds.
    :param credential_lifetime: lifetime in seconds of temporary keys issued by the credential services.
    :param version_delay: seconds a Fabric version takes to be created and listed (default 0.5).
    :raises SeedError: for an invalid seed (raised by the constructor, with the JSON path).
    """

    def __init__(
        self,
        seed: dict[str, Any] | str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0,
        error_rate: float = 0.0,
        throttle_rate: float = 0.0,
        reset_rate: float = 0.0,
        random_seed: int = 0,
        retry_after_ms: int = 1000,
        token_lifetime: float = 86400,
        credential_lifetime: float = 3600,
        version_delay: float = 0.5,
        iam_faults: bool = False,
        tls_certfile: str | None = None,
        tls_keyfile: str | None = None,
        eas: EasSettings | None = None,
        fabric_ep: FabricEpSettings | None = None,
    ) -> None:
        self._tls = (tls_certfile, tls_keyfile)
        faults = FaultConfig(
            latency_ms=latency_ms,
            error_rate=error_rate,
            throttle_rate=throttle_rate,
            reset_rate=reset_rate,
            random_seed=random_seed,
            retry_after_ms=retry_after_ms,
            iam_faults=iam_faults,
        )
        self.config = EmulatorConfig(
            seed=seed,
            host=host,
            port=port,
            token_lifetime=token_lifetime,
            credential_lifetime=credential_lifetime,
            version_delay=version_delay,
            faults=faults,
            eas=eas or EasSettings(),
            fabric_ep=fabric_ep or FabricEpSettings(),
        )
        self.registry = Registry(self.config)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None
        self._error: BaseException | None = None

    @property
    def store(self) -> Store:
        """The in-memory state (``set_approval``, ``add_pai_version``, ``add_fabric_version``, ...)."""
        return self.registry.store

    @property
    def request_log(self) -> RequestLog:
        """Every request received (``count(route=None, authenticated=None)``, ``clear()``, ``entries``)."""
        return self.registry.request_log

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``https://`` with TLS) once started."""
        if self._url is None:
            raise RuntimeError("the emulator is not running")
        return self._url

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def _run(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # pragma: no cover - reported by start()
            self._error = exc
        finally:
            sock.close()

    def start(self, timeout: float = 10.0) -> RegistryEmulator:
        """Start serving in a daemon thread; returns when the port accepts connections."""
        if self._thread is not None:
            return self
        sock = bind_socket(self.config.host, self.config.port)
        self._url = url_of(sock, self.config.host, "https" if self._tls[0] else "http")
        server = make_server(self.registry, tls_certfile=self._tls[0], tls_keyfile=self._tls[1])
        self._server = server
        self.store.mark_started()
        self._thread = threading.Thread(target=self._run, args=(server, sock), name="modelreg-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start: {self._error!r}")
            time.sleep(0.005)
        self.store.mark_started()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._server = None
        self._thread = None

    def __enter__(self) -> RegistryEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RegistryEmulator(url={self._url!r}, running={self._thread is not None})"
