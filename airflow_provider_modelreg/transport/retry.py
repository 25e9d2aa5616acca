"""The retry plan: which failures are retried, how long to wait, within which budget and deadlines.

Plain data in and out (no I/O), used by both the sync and the async send loop. Only idempotent requests are
retried, on connection errors, timeouts, 408, 429, 5xx and vendor throttling codes, with exponential backoff and
full jitter, honouring the server's delay, never waiting less than a floor.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

import httpx

from airflow_provider_modelreg.renamed import renamed_class

#: Connect timeout inside an attempt (the attempt deadline still applies).
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long and within which deadlines to try a request.

    :param max_attempts: attempts in all, the first included (1 = no retry). Default 5.
    :param base_delay: first backoff step in seconds; step n waits up to ``base_delay * 2**(n-1)`` (full jitter).
    :param max_delay: cap of a single wait, also applied to server-requested waits.
    :param min_delay: floor of every wait (``Retry-After: 0`` must not mean a burst of requests); never above
        ``max_delay``.
    :param attempt_timeout: wall-clock deadline of one attempt: connect, send, headers and the whole body.
    :param call_timeout: wall-clock deadline of a call: every attempt and every wait between them.
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    min_delay: float = 0.1
    attempt_timeout: float = 30.0
    call_timeout: float = 120.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        for name in ("base_delay", "max_delay", "min_delay"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0")
        for name in ("attempt_timeout", "call_timeout"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number > 0")

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for the attempt that just failed (1-based)."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2.0 ** min(attempt - 1, 64)))

    @property
    def floor(self) -> float:
        """The shortest wait between two attempts."""
        return min(self.min_delay, self.max_delay)


DEFAULT_RETRY = RetryPolicy()
DEFAULT_TIMEOUT = httpx.Timeout(DEFAULT_RETRY.attempt_timeout, connect=CONNECT_TIMEOUT)

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_THROTTLE_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api", "APIG.0308"})


def _is_throttle_code(code: str | None) -> bool:
    """Vendor throttling codes (Alibaba ``Throttling*``, Huawei APIG ``APIG.0308``): both classified and retried."""
    return code is not None and (code in _THROTTLE_CODES or code.startswith("Throttling"))


# ------------------------------------------------------------------------------------------------- retry plan


@dataclass(frozen=True)
class Failure:
    """One failed attempt as plain data.

    :param cause: one line for logs and messages (never a header value).
    :param retryable: whether trying again can help (a 503 can, a certificate that does not verify cannot).
    :param server_delay: seconds the server asked us to wait (already validated: finite and > 0), or None.
    """

    cause: str
    retryable: bool
    server_delay: float | None = None


@dataclass(frozen=True)
class RetryDecision:
    """What to do after a failed attempt: wait ``wait`` seconds and try again, or stop (``wait`` None)."""

    wait: float | None
    reason: str


class RetryPlan:
    """The retry decisions of one call. No I/O and no clock of its own: the loops pass ``now`` in.

    :param policy: the budget, waits and deadlines.
    :param idempotent: whether the request may be sent more than once.
    :param now: the call's start (monotonic seconds).
    :param rng: source of the backoff jitter.
    :param outer_deadline: a deadline inherited from an enclosing call (an IAM token fetched inside an attempt).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        idempotent: bool,
        now: float,
        rng: random.Random,
        outer_deadline: float | None = None,
    ) -> None:
        self.policy = policy
        self.idempotent = idempotent
        self.rng = rng
        deadline = now + policy.call_timeout
        self.deadline = deadline if outer_deadline is None else min(deadline, outer_deadline)
        self.attempt = 0

    def begin(self, now: float) -> float:
        """Count a new attempt and return its deadline (monotonic seconds)."""
        self.attempt += 1
        return min(now + self.policy.attempt_timeout, self.deadline)

    def after(self, failure: Failure, now: float) -> RetryDecision:
        """Decide after a failed attempt."""
        policy = self.policy
        if not failure.retryable:
            return RetryDecision(None, "not retryable")
        if not self.idempotent:
            return RetryDecision(None, "not idempotent")
        if self.attempt >= policy.max_attempts:
            return RetryDecision(None, f"retry budget of {policy.max_attempts} attempts spent")
        if failure.server_delay is not None:
            wait = min(failure.server_delay, policy.max_delay)
        else:
            wait = policy.backoff(self.attempt, self.rng)
        wait = max(wait, policy.floor)
        if now + wait >= self.deadline:
            return RetryDecision(None, f"call deadline reached ({policy.call_timeout:g} s)")
        return RetryDecision(wait, "retrying")


def __getattr__(name: str) -> Any:  # the deprecated name: two modules had a class called Decision
    return renamed_class(globals(), name, {"Decision": "RetryDecision"})
