"""One IAM token request in flight, however many callers need a token at once (test audit, section 8, point 2).

Requests go through one :class:`IamTokenAuth` (an ``httpx.Auth``) to a fake registry; the tokens come from a fake
IAM. No test here waits for time to pass: the fake IAM holds the renewal on the wire until every caller has made its
decision (each caller reads the clock to decide whether the cached token serves, so the clock counts the callers
that have decided), and only then answers. A caller that went its own way would have sent its own token request by
then, so "exactly one renewal" proves the callers waited for the one in flight.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from airflow_provider_modelreg.iam import IamTokenAuth
from airflow_provider_modelreg.transport import RetryPolicy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LIFETIME = timedelta(hours=1)
INSIDE_MARGIN = LIFETIME - timedelta(minutes=4)  # 4 min left: inside min(300 s, 20 % of 1 h), still usable
CALLERS = 8
GUARD = 10.0  # seconds a wait may take before the test fails instead of hanging (never reached when it passes)
REGISTRY = "https://fabric.example.test"


class Clock:
    """The callers' clock; it counts its reads, so the fake IAM can wait until ``n`` callers have decided."""

    def __init__(self) -> None:
        self.now = T0
        self.reads = 0
        self.changed = threading.Condition()
        #: (read number, release): that read returns once ``release()`` is true or another read came (or GUARD passed)
        self.pause: tuple[int, Callable[[], bool]] | None = None
        self.paused = threading.Event()
        self.pause_held = True
        #: another caller read the clock while the paused one was inside its decision
        self.overlapped = False

    def __call__(self) -> datetime:
        with self.changed:
            self.reads += 1
            number = self.reads
            self.changed.notify_all()
            if self.pause is not None and self.pause[0] == number:
                release = self.pause[1]
                self.paused.set()
                self.pause_held = self.changed.wait_for(lambda: self.reads > number or release(), GUARD)
                self.overlapped = self.reads > number
            return self.now

    def wait_reads(self, count: int, unless: Callable[[], bool] = lambda: False) -> bool:
        """Wait until ``count`` reads were made; False if ``unless()`` came true first (or GUARD passed)."""
        with self.changed:
            self.changed.wait_for(lambda: self.reads >= count or unless(), GUARD)
            return self.reads >= count and not unless()


class FakeIam:
    """Issues ``token-1``, ``token-2``, ...; ``hold`` (taken by the next token request only) delays that answer."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.issued: list[str] = []
        self.hold: Callable[[], bool] | None = None
        self.held_until_release = True
        self.lock = threading.Lock()

    def _take_hold(self) -> Callable[[], bool] | None:
        with self.lock:
            hold, self.hold = self.hold, None
            return hold

    def _issue(self) -> httpx.Response:
        with self.lock:
            self.issued.append(f"token-{len(self.issued) + 1}")
            value = self.issued[-1]
        with self.clock.changed:
            self.clock.changed.notify_all()  # a held request waits for no other token request
        now = self.clock.now  # read directly: not a caller's decision
        body = {"token": {"issued_at": now.isoformat(), "expires_at": (now + LIFETIME).isoformat()}}
        return httpx.Response(201, headers={"X-Subject-Token": value}, json=body)

    def hold_until_reads(self, count: int) -> None:
        """Hold the next token request until the clock was read ``count`` times in all; released at once (and
        recorded as not held) when another token request is answered meanwhile."""
        before = len(self.issued)
        self.hold = lambda: self.clock.wait_reads(count, unless=lambda: len(self.issued) > before)

    def answer(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v3/auth/tokens"
        hold = self._take_hold()
        if hold is not None and not hold():
            self.held_until_release = False
        return self._issue()

    async def aanswer(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v3/auth/tokens"
        hold = self._take_hold()
        if hold is not None and not await asyncio.to_thread(hold):  # the event loop runs on meanwhile
            self.held_until_release = False
        return self._issue()


class FakeRegistry:
    """Answers 200, or 401 to a token in ``revoked``; records the token of every request."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self.revoked: set[str] = set()
        self.lock = threading.Lock()

    def answer(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("X-Auth-Token", "")
        status = 401 if token in self.revoked else 200
        with self.lock:
            self.seen.append((token, status))
        return httpx.Response(status, json={"token": token})

    async def aanswer(self, request: httpx.Request) -> httpx.Response:
        return self.answer(request)


class Setup:
    def __init__(self) -> None:
        self.clock = Clock()
        self.iam = FakeIam(self.clock)
        self.registry = FakeRegistry()
        self.auth = IamTokenAuth(
            iam_url="https://iam.example.test",
            user_name="u",
            password="p",
            domain_name="d",
            project_id="p1",
            clock=self.clock,  # given a clock, the credential is this object's own, not the process-wide one
            transport=httpx.MockTransport(self.iam.answer),
            async_transport=httpx.MockTransport(self.iam.aanswer),
            retry=RetryPolicy(max_attempts=1),  # a retry could not hide a second token request
        )

    def sync_call(self) -> int:
        with httpx.Client(base_url=REGISTRY, transport=httpx.MockTransport(self.registry.answer)) as client:
            return client.get("/v1/models", auth=self.auth).status_code

    async def async_calls(self, count: int) -> list[int]:
        async with httpx.AsyncClient(base_url=REGISTRY, transport=httpx.MockTransport(self.registry.aanswer)) as client:
            answers = await asyncio.gather(*(client.get("/v1/models", auth=self.auth) for _ in range(count)))
        return [answer.status_code for answer in answers]

    def run(self, threads: int, tasks: int) -> list[int]:
        """``threads`` sync requests in their own threads and ``tasks`` async ones on one loop, all at once."""
        statuses: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def in_thread() -> None:
            try:
                status = self.sync_call()
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)
                return
            with lock:
                statuses.append(status)

        workers = [threading.Thread(target=in_thread) for _ in range(threads)]
        for worker in workers:
            worker.start()
        if tasks:
            statuses.extend(asyncio.run(self.async_calls(tasks)))
        for worker in workers:
            worker.join(GUARD)
        assert not errors, errors
        assert not any(worker.is_alive() for worker in workers)
        return statuses


@pytest.fixture
def setup() -> Setup:
    made = Setup()
    assert made.auth.token().value == "token-1"
    assert made.registry.seen == [] and made.iam.issued == ["token-1"]
    return made


MODES = [pytest.param(CALLERS, 0, id="threads"), pytest.param(0, CALLERS, id="tasks"), pytest.param(4, 4, id="both")]


@pytest.mark.parametrize(("threads", "tasks"), MODES)
def test_callers_that_all_need_a_renewal_at_once_share_one_token_request(
    setup: Setup, threads: int, tasks: int
) -> None:
    """The token enters its renewal margin; every caller decides it needs a new one while the renewal is on the
    wire: one token request, every request carries the new token."""
    setup.clock.now = T0 + INSIDE_MARGIN
    decided = setup.clock.reads + threads + tasks
    setup.iam.hold_until_reads(decided)
    assert setup.run(threads, tasks) == [200] * (threads + tasks)
    assert setup.iam.issued == ["token-1", "token-2"]
    assert setup.iam.held_until_release  # the renewal was held until every caller had decided
    assert setup.auth.fetch_count == 2
    assert setup.registry.seen == [("token-2", 200)] * (threads + tasks)


@pytest.mark.parametrize(("threads", "tasks"), MODES)
def test_callers_whose_token_is_refused_at_once_share_one_token_request(setup: Setup, threads: int, tasks: int) -> None:
    """IAM revoked the token early: every caller's request is answered 401 and each asks for a renewal while the
    renewal is on the wire: one token request, every request is sent again with the new token and succeeds."""
    setup.registry.revoked.add("token-1")
    decided = setup.clock.reads + 2 * (threads + tasks)  # each caller decides twice: before sending, after the 401
    setup.iam.hold_until_reads(decided)
    assert setup.run(threads, tasks) == [200] * (threads + tasks)
    assert setup.iam.issued == ["token-1", "token-2"]
    assert setup.iam.held_until_release
    assert setup.auth.fetch_count == 2
    assert sorted(setup.registry.seen) == [("token-1", 401)] * (threads + tasks) + [("token-2", 200)] * (
        threads + tasks
    )


def test_the_first_token_is_fetched_once_for_callers_arriving_together() -> None:
    """No token yet: the callers that arrive together wait for the first one's request."""
    made = Setup()
    made.iam.hold_until_reads(CALLERS)
    assert made.run(CALLERS // 2, CALLERS // 2) == [200] * CALLERS
    assert made.iam.issued == ["token-1"] and made.auth.fetch_count == 1
    assert made.iam.held_until_release
    assert made.registry.seen == [("token-1", 200)] * CALLERS


class WatchedLock:
    """A lock that says when a second thread is waiting for it."""

    def __init__(self, clock: Clock) -> None:
        self.inner = threading.Lock()
        self.clock = clock
        self.contended = False

    def __enter__(self) -> bool:
        if not self.inner.acquire(blocking=False):
            with self.clock.changed:
                self.contended = True
                self.clock.changed.notify_all()
            self.inner.acquire()
        return True

    def __exit__(self, *exc: object) -> None:
        self.inner.release()


@contextmanager
def thread(target: Callable[[], Any]) -> Iterator[list[Any]]:
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(target()))
    worker.start()
    try:
        yield result
    finally:
        worker.join(GUARD)
        assert not worker.is_alive()


def test_a_caller_deciding_holds_back_every_other_caller(setup: Setup) -> None:
    """Deciding whether to renew and claiming the renewal is one step: a second thread cannot decide while the
    first is between its decision and its claim (else both could see no renewal in flight and both renew). The
    first caller is paused inside its decision (on its clock read) until the second either reads the clock too
    (decides at the same time: the failure) or is seen waiting for the credential's lock (the lock is watched for
    that: a blocked thread is otherwise invisible)."""
    lock = WatchedLock(setup.clock)
    setup.auth.credential._lock = lock  # type: ignore[assignment]  # the only way to see a caller wait for it
    setup.clock.now = T0 + INSIDE_MARGIN
    first_read = setup.clock.reads + 1
    setup.clock.pause = (first_read, lambda: lock.contended)
    with thread(lambda: setup.auth.token().value) as first:
        assert setup.clock.paused.wait(GUARD)
        with thread(lambda: setup.auth.token().value) as second:
            pass
    assert setup.clock.pause_held
    assert not setup.clock.overlapped  # the second caller did not decide while the first was deciding
    assert lock.contended  # it waited for the first one's decision instead
    assert first == second == ["token-2"]
    assert setup.iam.issued == ["token-1", "token-2"] and setup.auth.fetch_count == 2
