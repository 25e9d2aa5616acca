"""Deterministic fault injection and the request log.

Each request gets one uniform number ``u`` in ``[0, 1)`` from SHA-256 over (random seed, method, path + query, the
how-many-th request for that same method + path + query). Then ``u < error_rate`` is a server error,
``u < error_rate + throttle_rate`` a throttle answer, ``u < error_rate + throttle_rate + reset_rate`` a connection
reset mid-response; otherwise the request is served normally. Because the decision depends only on the request
itself and how often it was seen, concurrent clients that send the same set of requests in any order see the same
faults on every run.
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections import Counter
from dataclasses import dataclass

__all__ = ["Fault", "FaultConfig", "FaultInjector", "LogEntry", "RequestLog"]


class Fault(enum.Enum):
    """What happens to one request."""

    NONE = "none"
    ERROR = "error"
    THROTTLE = "throttle"
    RESET = "reset"


@dataclass(frozen=True)
class FaultConfig:
    """Fault-injection settings (rates are probabilities per request; they must add up to at most 1)."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    throttle_rate: float = 0.0
    reset_rate: float = 0.0
    random_seed: int = 0
    retry_after_ms: int = 1000
    #: fault IAM ``POST /v3/auth/tokens`` too (503, 429 with ``Retry-After``, reset), at the same rates
    iam_faults: bool = False

    def __post_init__(self) -> None:
        for name in ("error_rate", "throttle_rate", "reset_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.error_rate + self.throttle_rate + self.reset_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + throttle_rate + reset_rate must not exceed 1")
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        if self.retry_after_ms < 0:
            raise ValueError("retry_after_ms must be >= 0")


class FaultInjector:
    """Decides faults; thread-safe."""

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._active = config.error_rate + config.throttle_rate + config.reset_rate > 0

    @staticmethod
    def uniform(random_seed: int, method: str, target: str, nth: int) -> float:
        """The deterministic number in ``[0, 1)`` for the ``nth`` (1-based) request ``method target``."""
        digest = hashlib.sha256(f"{random_seed}\x00{method.upper()}\x00{target}\x00{nth}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2.0**64

    def decide(self, method: str, target: str) -> Fault:
        """The fault for this request (``target`` = raw path, plus ``?query`` when there is one)."""
        if not self._active:
            return Fault.NONE
        key = (method.upper(), target)
        with self._lock:
            self._seen[key] += 1
            nth = self._seen[key]
        u = self.uniform(self.config.random_seed, method, target, nth)
        cfg = self.config
        if u < cfg.error_rate:
            return Fault.ERROR
        if u < cfg.error_rate + cfg.throttle_rate:
            return Fault.THROTTLE
        if u < cfg.error_rate + cfg.throttle_rate + cfg.reset_rate:
            return Fault.RESET
        return Fault.NONE


@dataclass(frozen=True)
class LogEntry:
    """One request as the emulator saw it."""

    route: str
    method: str
    target: str
    authenticated: bool
    status: int
    fault: Fault


class RequestLog:
    """Every request received, readable from tests (thread-safe).

    Route names: ``pai.ListModels``, ``pai.GetModel``, ``pai.ListModelVersions``, ``pai.GetModelVersion``,
    ``pai.UpdateModelVersion``, ``pai.CreateModelVersion``, ``fabric.ListModels``, ``fabric.ListModelVersions``,
    ``iam.CreateToken``, and ``pai.Unknown`` / ``fabric.Unknown`` / ``unknown`` for paths no route serves.
    """

    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._lock = threading.Lock()

    def add(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LogEntry]:
        """A snapshot of all entries, oldest first."""
        with self._lock:
            return list(self._entries)

    def count(self, route: str | None = None, authenticated: bool | None = None) -> int:
        """How many requests match.

        :param route: a route name (``pai.GetModelVersion``) or a vendor prefix (``pai``, ``fabric``, ``iam``);
            None for all.
        :param authenticated: True for requests whose credentials were accepted, False for refused or missing
            ones; None for both.
        """
        with self._lock:
            entries = list(self._entries)
        return sum(
            1
            for e in entries
            if (route is None or e.route == route or e.route.startswith(route + "."))
            and (authenticated is None or e.authenticated is authenticated)
        )

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return self.count()
