"""The retry plan (``RetryPolicy``, ``RetryPlan``) as plain data: each test pins a decision a mutant of
``make mutation`` changed without another test noticing (issue 20). No I/O, no clock: ``now`` is passed in and the
jitter comes from a recording rng."""

from __future__ import annotations

import math
import random

import pytest

from airflow_provider_modelreg.transport import Failure, RetryDecision, RetryPlan, RetryPolicy


class TopOfRange(random.Random):
    """An rng whose "random" draw is the top of the range (full jitter made deterministic); records the ranges."""

    def __init__(self) -> None:
        super().__init__(0)
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


RETRYABLE = Failure("HTTP 503", retryable=True)


def plan(
    policy: RetryPolicy,
    *,
    now: float = 1000.0,
    idempotent: bool = True,
    rng: random.Random | None = None,
    outer_deadline: float | None = None,
) -> RetryPlan:
    return RetryPlan(policy, idempotent=idempotent, now=now, rng=rng or TopOfRange(), outer_deadline=outer_deadline)


# ------------------------------------------------------------------------------------------------ RetryPolicy


def test_the_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay, policy.min_delay) == (5, 0.5, 20.0, 0.1)
    assert (policy.attempt_timeout, policy.call_timeout, policy.floor) == (30.0, 120.0, 0.1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"base_delay": -1e-9}, "base_delay must be a finite number >= 0"),
        ({"base_delay": math.inf}, "base_delay must be a finite number >= 0"),
        ({"max_delay": math.nan}, "max_delay must be a finite number >= 0"),
        ({"min_delay": math.inf}, "min_delay must be a finite number >= 0"),
        ({"attempt_timeout": 0.0}, "attempt_timeout must be a finite number > 0"),
        ({"attempt_timeout": -0.5}, "attempt_timeout must be a finite number > 0"),
        ({"call_timeout": math.inf}, "call_timeout must be a finite number > 0"),
        ({"call_timeout": -1.0}, "call_timeout must be a finite number > 0"),
    ],
    ids=repr,
)
def test_a_bad_policy_is_refused_with_its_exact_message(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 1},
        {"base_delay": 0.0, "max_delay": 0.0, "min_delay": 0.0},
        {"base_delay": 0.5, "max_delay": 0.5, "min_delay": 0.5},
        {"attempt_timeout": 0.5, "call_timeout": 0.5},
        {"attempt_timeout": 1e-9, "call_timeout": 1e-9},
        {"attempt_timeout": 1.0, "call_timeout": 1.0},
    ],
    ids=repr,
)
def test_the_smallest_sound_values_are_accepted(kwargs: dict[str, float]) -> None:
    policy = RetryPolicy(**kwargs)  # type: ignore[arg-type]
    for name, value in kwargs.items():
        assert getattr(policy, name) == value


def test_backoff_is_drawn_from_zero_to_the_exponential_step() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=100.0)
    rng = TopOfRange()
    assert [policy.backoff(attempt, rng) for attempt in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert rng.ranges == [(0, 0.5), (0, 1.0), (0, 2.0), (0, 4.0)]


def test_backoff_is_capped_by_max_delay() -> None:
    rng = TopOfRange()
    assert RetryPolicy(base_delay=0.5, max_delay=3.0).backoff(4, rng) == 3.0  # 4.0 capped
    assert RetryPolicy(base_delay=0.5, max_delay=4.0).backoff(4, rng) == 4.0


def test_backoff_exponent_stops_growing_at_64() -> None:
    """Attempt 66 and later wait like attempt 65 (2**64 steps): the exponent is capped, not the attempt count."""
    policy = RetryPolicy(max_attempts=1000, base_delay=1e-20, max_delay=1.0)
    rng = TopOfRange()
    step = 1e-20 * 2.0**64
    assert policy.backoff(65, rng) == step == policy.backoff(200, rng)
    assert policy.backoff(64, rng) == step / 2


def test_floor_is_min_delay_never_above_max_delay() -> None:
    assert RetryPolicy(min_delay=0.3, max_delay=2.0).floor == 0.3
    assert RetryPolicy(min_delay=3.0, max_delay=2.0).floor == 2.0


# ------------------------------------------------------------------------------------------------ RetryPlan


def test_a_plan_starts_at_attempt_zero_and_counts_each_begin() -> None:
    p = plan(RetryPolicy(attempt_timeout=10.0, call_timeout=100.0))
    assert p.attempt == 0
    assert p.begin(1000.0) == 1010.0 and p.attempt == 1
    assert p.begin(1020.0) == 1030.0 and p.attempt == 2


def test_the_call_deadline_bounds_the_attempt_deadline() -> None:
    p = plan(RetryPolicy(attempt_timeout=10.0, call_timeout=100.0), now=1000.0)
    assert p.deadline == 1100.0
    assert p.begin(1095.0) == 1100.0  # 5 s of the call left: the attempt gets 5 s, not 10


def test_an_outer_deadline_earlier_than_the_call_deadline_wins() -> None:
    policy = RetryPolicy(attempt_timeout=10.0, call_timeout=100.0)
    assert plan(policy, now=1000.0, outer_deadline=1050.0).deadline == 1050.0
    assert plan(policy, now=1000.0, outer_deadline=2000.0).deadline == 1100.0  # later: the call's own
    assert plan(policy, now=1000.0, outer_deadline=1005.0).begin(1000.0) == 1005.0


def test_the_plan_keeps_what_it_was_given() -> None:
    policy = RetryPolicy()
    rng = TopOfRange()
    p = RetryPlan(policy, idempotent=False, now=0.0, rng=rng)
    assert p.policy is policy and p.rng is rng and p.idempotent is False


def test_a_failure_that_cannot_be_helped_stops_at_once() -> None:
    p = plan(RetryPolicy())
    p.begin(1000.0)
    assert p.after(Failure("HTTP 400", retryable=False), 1000.0) == RetryDecision(None, "not retryable")


def test_a_request_that_may_not_be_repeated_stops_at_once() -> None:
    p = plan(RetryPolicy(), idempotent=False)
    p.begin(1000.0)
    assert p.after(RETRYABLE, 1000.0) == RetryDecision(None, "not idempotent")
    assert p.after(Failure("HTTP 400", retryable=False), 1000.0).reason == "not retryable"  # checked first


def test_the_budget_allows_exactly_max_attempts() -> None:
    rng = TopOfRange()
    p = plan(RetryPolicy(max_attempts=3, base_delay=0.5, min_delay=0.0), rng=rng)
    waits = []
    for _ in range(3):
        p.begin(1000.0)
        waits.append(p.after(RETRYABLE, 1000.0))
    assert waits == [
        RetryDecision(0.5, "retrying"),
        RetryDecision(1.0, "retrying"),  # the backoff of the attempt that just failed (2nd)
        RetryDecision(None, "retry budget of 3 attempts spent"),
    ]
    assert rng.ranges == [(0, 0.5), (0, 1.0)]  # no draw once the budget is spent


def test_a_server_delay_replaces_the_backoff_capped_by_max_delay() -> None:
    rng = TopOfRange()
    p = plan(RetryPolicy(max_delay=5.0, min_delay=0.0), rng=rng)
    p.begin(1000.0)
    assert p.after(Failure("HTTP 429", retryable=True, server_delay=3.0), 1000.0) == RetryDecision(3.0, "retrying")
    assert p.after(Failure("HTTP 429", retryable=True, server_delay=7.0), 1000.0) == RetryDecision(5.0, "retrying")
    assert rng.ranges == []


def test_every_wait_is_raised_to_the_floor() -> None:
    p = plan(RetryPolicy(base_delay=0.01, min_delay=0.2, max_delay=5.0))
    p.begin(1000.0)
    assert p.after(RETRYABLE, 1000.0) == RetryDecision(0.2, "retrying")  # backoff 0.01
    assert p.after(Failure("HTTP 429", retryable=True, server_delay=0.05), 1000.0) == RetryDecision(0.2, "retrying")
    assert p.after(Failure("HTTP 429", retryable=True, server_delay=0.3), 1000.0) == RetryDecision(0.3, "retrying")


def test_a_wait_that_would_reach_the_call_deadline_stops() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=2.0, min_delay=0.0, call_timeout=10.0)
    p = plan(policy, now=1000.0)
    p.begin(1000.0)
    assert p.after(RETRYABLE, 1007.9) == RetryDecision(2.0, "retrying")  # 1009.9: before the deadline
    assert p.after(RETRYABLE, 1008.0) == RetryDecision(None, "call deadline reached (10 s)")  # exactly at it
    assert p.after(RETRYABLE, 1008.1) == RetryDecision(None, "call deadline reached (10 s)")
    assert (
        plan(RetryPolicy(call_timeout=0.25), now=0.0).after(RETRYABLE, 0.3).reason == "call deadline reached (0.25 s)"
    )


def test_the_deadline_check_counts_from_now_not_from_the_start() -> None:
    p = plan(RetryPolicy(base_delay=1.0, max_delay=1.0, min_delay=0.0, call_timeout=100.0), now=0.0)
    p.begin(0.0)
    assert p.after(RETRYABLE, 99.5).wait is None  # 99.5 + 1 > 100
    assert p.after(RETRYABLE, 98.5) == RetryDecision(1.0, "retrying")


def test_the_deprecated_name_decision_is_the_retry_decision_with_a_warning() -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    import airflow_provider_modelreg.transport.retry as retry

    with pytest.warns(AirflowProviderDeprecationWarning, match="Decision is deprecated, use RetryDecision"):
        assert retry.Decision is RetryDecision
    with pytest.raises(AttributeError, match="Verdict"):
        retry.Verdict  # noqa: B018
