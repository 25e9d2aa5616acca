"""What every deferrable wait of the provider shares, whatever it waits for: its stored arguments (the fields of a
dataclass, serialized as they are and in their order), its events (``status`` plus the fields that name what is
waited for), and the loop that polls until a verdict, counting failed polls against ``max_failures`` and turning
them into ``error`` events, never a crashed trigger.

A wait subclasses :class:`PollingTrigger` (a trigger with a loop of its own: :class:`StoredTrigger`) as a
``@dataclass(kw_only=True, eq=False, repr=False)`` with its arguments as fields, and runs
:meth:`PollingTrigger.until_verdict` with one poll and the judge of its answer. A wait for a model version that a
decision core decides through a shared-read hub subclasses :class:`ModelVersionWaitTrigger`, which runs it.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, fields
from typing import Any, ClassVar, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.triggers.hub import masked
from airflow_provider_modelreg.validation import (
    check_max_failures,
    check_poke_interval,
    check_request_attempts,
    check_request_timeout,
    rendered_required,
)

__all__ = ["ModelVersionWaitTrigger", "PollingTrigger", "StoredTrigger", "retryable"]

A = TypeVar("A")


def retryable(exc: BaseException) -> bool:
    """The one rule of every mode: only an error that says asking again can help is worth another poll."""
    return bool(getattr(exc, "retryable", False))


class StoredTrigger(BaseTrigger):
    """A trigger whose stored arguments are the fields of its dataclass, serialized as they are and in their order,
    and whose events carry ``status`` and the fields that name what it watches. Triggers are rebuilt from their
    stored kwargs in the triggerer, which only survives a ``TypeError`` there: fields are kept as given and checked
    in ``run()``."""

    #: the classpath this very class serializes with (None: its own; a subclass always has its own), kept whatever
    #: module the class moves to
    stored_classpath: ClassVar[str | None] = None
    #: the fields every event carries, after ``status``
    event_fields: ClassVar[tuple[str, ...]] = ()
    #: the fields a base class declares for every subclass: stored after the subclass's own
    shared_fields: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def log(self) -> Any:
        """The logger of the trigger's class, the same name a trigger's own would have: one per class, not one per
        trigger (about 1.2 KB each, ten thousand waits in one triggerer). The triggerer routes each line to its
        trigger's log by the running task's context, not by the logger object."""
        cls = type(self)
        if "_log" not in cls.__dict__:
            cls._log = None  # a subclass gets a logger of its own name, not its parent's cached one
        return cls.logger()

    def serialize(self) -> tuple[str, dict[str, Any]]:
        cls = type(self)
        classpath = cls.__dict__.get("stored_classpath") or f"{cls.__module__}.{cls.__qualname__}"
        stored = sorted(fields(self), key=lambda f: f.name in self.shared_fields)  # type: ignore[arg-type]
        return classpath, {f.name: getattr(self, f.name) for f in stored}

    def _event(self, status: str, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, **{name: getattr(self, name) for name in self.event_fields}, **payload})

    def _error(self, exc: BaseException) -> TriggerEvent:
        # Airflow stores event payloads unmasked: the message goes through the secrets masker first
        return self._event("error", message=masked(str(exc)), error_type=type(exc).__name__)


@dataclass(kw_only=True, eq=False, repr=False)
class PollingTrigger(StoredTrigger):
    """A deferrable wait that polls until a verdict (see the module docstring). A subclass names what is waited for
    (:meth:`_polled`, for the log) and says what a timeout reports (:meth:`_timeout`).

    Every wait takes, after its own arguments (and stores them last):

    :param end_time: UNIX time at which to give up with a ``timeout`` event (None: never).
    :param max_failures: consecutive failed polls tolerated before an ``error`` event.
    :param max_attempts: attempts per registry request (1-20; None: the connection's ``max_attempts``).
    :param call_timeout: seconds one registry call may take, retries included (None: the connection's
        ``call_timeout``).
    """

    shared_fields: ClassVar[tuple[str, ...]] = ("end_time", "max_failures", "max_attempts", "call_timeout")
    #: whether ``end_time`` also bounds a poll in flight and the last sleep (else it is checked between polls)
    bounded: ClassVar[bool] = False

    end_time: float | None = None
    max_failures: int = 5
    max_attempts: int | None = None
    call_timeout: float | None = None

    def _checked_settings(self) -> dict[str, Any]:
        """``max_failures`` checked, and the request settings, checked, as the hub takes them (a typed error naming
        the field)."""
        self.max_failures = check_max_failures(self.max_failures)
        return {
            "max_attempts": check_request_attempts(self.max_attempts, "max_attempts"),
            "call_timeout": check_request_timeout(self.call_timeout, "call_timeout"),
        }

    @abc.abstractmethod
    def _polled(self) -> str:
        """What a poll reads, for the log (``"of service x"``)."""

    @abc.abstractmethod
    def _timeout(self) -> TriggerEvent:
        """The event of a wait whose ``end_time`` passed."""

    def _fatal(self, exc: BaseException) -> bool:
        """Whether an error ends the wait at once (asking again cannot help)."""
        return not retryable(exc)

    def _failed(self, exc: BaseException, what: str | None = None) -> TriggerEvent | None:
        """Count a failed poll (``what``: of what, default :meth:`_polled`); the ``error`` event once the wait ends."""
        self._failures += 1
        self.log.warning("poll %d/%d %s failed: %s", self._failures, self.max_failures, what or self._polled(), exc)
        if self._fatal(exc) or self._failures >= self.max_failures:
            return self._error(exc)
        return None

    async def until_verdict(
        self,
        poll: Callable[[], Awaitable[A]],
        judge: Callable[[A], Awaitable[TriggerEvent | None]],
        interval: float,
        *,
        first_delay: float | None = None,
    ) -> TriggerEvent:
        """Poll every ``interval`` seconds until ``judge`` gives the event of an answer, ``end_time`` passes, or
        polls fail (see :meth:`_failed`). A judge may count a failure of its own with :meth:`_failed`; a poll
        answered and judged without one ends a run of failures.

        :param first_delay: the sleep after the first poll, when not ``interval`` (see :meth:`until_decided`)."""
        self._failures = 0
        delay = interval if first_delay is None else first_delay
        while True:
            left = None if self.end_time is None else self.end_time - time.time()
            if left is not None and left <= 0:
                return self._timeout()
            try:
                answer = await (poll() if left is None or not self.bounded else asyncio.wait_for(poll(), left))
            except Exception as exc:
                if self.bounded and isinstance(exc, asyncio.TimeoutError):
                    return self._timeout()
                event = self._failed(exc)
                delay = interval  # a failed poll is asked again after the interval: max_failures spans as long
            else:
                failures = self._failures
                event = await judge(answer)
                if self._failures == failures:
                    self._failures = 0
            if event is not None:
                return event
            if self.bounded and self.end_time is not None:
                delay = max(0.0, min(delay, self.end_time - time.time()))
            await asyncio.sleep(delay)
            delay = interval

    def until_decided(
        self, hub: Any, target: Any, interval: float, judge: Callable[[Any], Awaitable[TriggerEvent | None]]
    ) -> Coroutine[Any, Any, TriggerEvent]:
        """:meth:`until_verdict` for a decision core read through a hub: each poll is ``hub.check(target, anchor,
        max_age)`` with the anchor the first poll resolved, what the wait sees is logged when it changes, and
        ``judge`` gives the event of a decision.

        Wake-ups are spread across the interval: the second poll comes after a random share of it (:meth:`_phase`),
        then every ``interval``. Waits that start together (a mapped task deferring, a triggerer restarting) would
        otherwise wake together every interval, and ten thousand wake-ups in one pass of the event loop stall it for
        every other trigger. The second poll takes an answer no older than its own delay, so the spreading delays no
        one's first fresh read; a model's waits still share one read an interval."""
        decided = _DecidedPolls(self, hub, target, interval, judge, interval * self._phase())
        # the loop's own coroutine, not one awaiting it: a frame fewer for each of ten thousand waits to hold
        return self.until_verdict(decided.poll, decided.judged, interval, first_delay=decided.first_delay)

    @staticmethod
    def _phase() -> float:
        """The share of the interval before a shared-read wait's second poll, in (0, 1]."""
        return 1.0 - random.random()


class ModelVersionWaitTrigger(PollingTrigger):
    """A wait for a model version that a decision core decides, read through a shared hub (:meth:`until_decided`):
    the PAI approval wait and the Fabric version wait. A subclass is a ``@dataclass`` declaring its connection field
    (the hub class's ``conn_field``), ``model_id`` and ``poke_interval``, and says what is waited for
    (:meth:`target`) and which decision ends the wait with which event (:meth:`_judge`). ``end_time`` also bounds a
    poll in flight."""

    #: the hub class the polls read through (one hub per event loop, connection and request settings)
    hub_class: ClassVar[Any]
    bounded: ClassVar[bool] = True

    model_id: str
    poke_interval: float

    @abc.abstractmethod
    def target(self) -> Any:
        """The stored arguments, checked (a typed error naming the field): what the decision core waits for."""

    @abc.abstractmethod
    async def _judge(self, hub: Any, decision: Any) -> TriggerEvent | None:
        """The event a decision ends the wait with (None: wait on); ``hub`` for any read the event needs."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            target = self.target()
            conn_field = self.hub_class.conn_field
            conn_id = rendered_required(getattr(self, conn_field), conn_field)
            self.poke_interval = check_poke_interval(self.poke_interval)
            settings = self._checked_settings()
        except RegistryInputError as exc:  # before any request
            yield self._error(exc)
            return
        # acquire and release, not ``using``: an async context manager is memory each of ten thousand waits holds
        hub = self.hub_class.acquire(conn_id, self.poke_interval, **settings)
        try:
            # the judge is a partial of a method, not a closure: no cells for each of ten thousand waits to hold
            yield await self.until_decided(hub, target, self.poke_interval, functools.partial(self._judge, hub))
        finally:
            await hub.release(self.poke_interval)

    def _polled(self) -> str:
        return f"for model {self.model_id}"


class _DecidedPolls:
    """The state of :meth:`PollingTrigger.until_decided` between polls: one slotted object, not closures (ten cells
    and three functions a wait, which the garbage collector walks ten thousand times over in a busy triggerer)."""

    __slots__ = ("anchor", "first_delay", "hub", "interval", "judge", "outlook", "polls", "target", "trigger")

    def __init__(
        self,
        trigger: PollingTrigger,
        hub: Any,
        target: Any,
        interval: float,
        judge: Callable[[Any], Awaitable[TriggerEvent | None]],
        first_delay: float,
    ) -> None:
        self.trigger, self.hub, self.target, self.interval, self.judge = trigger, hub, target, interval, judge
        self.first_delay = first_delay
        self.anchor: Any = None
        self.outlook: str | None = None
        self.polls = 0

    def poll(self) -> Awaitable[Any]:
        # The first poll may take any answer younger than the interval; the second, after ``first_delay``, one
        # younger than that (not staler than what a wait polling every interval would see); the others, the interval.
        self.polls += 1
        max_age = self.first_delay if self.polls == 2 else self.interval
        return self.hub.check(self.target, self.anchor, max_age)  # type: ignore[no-any-return]

    def judged(self, check: Any) -> Awaitable[TriggerEvent | None]:
        self.anchor = check.anchor
        decision = check.decision
        assert decision is not None
        if decision.outlook != self.outlook:  # one wait logs only when what it sees changes
            self.outlook = decision.outlook
            target = self.target
            self.trigger.log.info("Model %s, waiting for %s: %s", target.model_id, target.describe(), self.outlook)
        return self.judge(decision)
