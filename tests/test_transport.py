"""Unit tests of the transport layer (``RegistryTransport``, ``RetryPolicy``, ``map_error``, ``parse_model``).

Everything runs against ``httpx.MockTransport``: no emulator, no network, no real sleeping. The sync path gets a
recording ``sleep=`` and the async path a recording ``asleep=`` (the transport's injection points).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from airflow_provider_modelreg.auth import AcsV3Auth, HuaweiAkSkAuth
from airflow_provider_modelreg.errors import (
    ModelRegistryError,
    RegistryAPIError,
    RegistryAuthError,
    RegistryInvalidRequestError,
    RegistryNotFoundError,
    RegistryResponseError,
    RegistryServerError,
    RegistryStateError,
    RegistryThrottledError,
    RegistryTransportError,
)
from airflow_provider_modelreg.models import FabricModelVersionPage, PaiModelVersion, PaiModelVersionPage
from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy, map_error, parse_model

SECRET = "s3cr3t-value"
STS_TOKEN = "sts-t0ken-value"
PATH = "/api/v1/models/m-1/versions/1.0.0"
OK_BODY = {"VersionName": "1.0.0", "ApprovalStatus": "Approved", "RequestId": "rid-ok"}

# ------------------------------------------------------------------------------------------------ answers


def ali_error(status: int, code: str, *, rid: str = "rid-ali", headers: dict[str, str] | None = None) -> httpx.Response:
    """An Alibaba POP error answer, with every field the gateway sends."""
    body = {
        "RequestId": rid,
        "HostId": "aiworkspace.cn-hangzhou.aliyuncs.com",
        "Code": code,
        "Message": f"message for {code}",
        "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}",
    }
    return httpx.Response(status, json=body, headers=headers)


def hw_error(status: int, code: str, *, rid: str = "hw-rid", headers: dict[str, str] | None = None) -> httpx.Response:
    """A Huawei API-gateway error answer (request id in the X-Request-Id header)."""
    return httpx.Response(
        status,
        json={"error_code": code, "error_msg": f"message for {code}"},
        headers={"X-Request-Id": rid, **(headers or {})},
    )


def ok() -> httpx.Response:
    return httpx.Response(200, json=OK_BODY)


def connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def read_timeout(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


# ------------------------------------------------------------------------------------------------ harness


@dataclass
class Harness:
    """A transport whose wire is a script of answers; records what was sent and how long it slept."""

    mode: str
    script: list[Answer]
    vendor: str = "pai"
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=10, base_delay=0.2, max_delay=20.0))
    auth: httpx.Auth | None = None
    rng: Any = None
    seen: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        answers = iter(self.script)

        def handler(request: httpx.Request) -> httpx.Response:
            self.seen.append(request)
            answer = next(answers)  # StopIteration here = the transport sent more than the script allows
            if callable(answer):
                return answer(request)
            return answer

        mock = httpx.MockTransport(handler)
        if self.auth is None:
            self.auth = (
                AcsV3Auth("LTAIkey", SECRET, security_token=STS_TOKEN)
                if self.vendor == "pai"
                else HuaweiAkSkAuth("HWAK", SECRET, project_id="proj", security_token=STS_TOKEN)
            )
        self.transport = RegistryTransport(
            vendor=self.vendor,  # type: ignore[arg-type]
            base_url="https://registry.example.com",
            auth=self.auth,
            retry=self.retry,
            transport=mock,
            async_transport=mock,
            sleep=self.sleeps.append,
            asleep=self._record_async_sleep,
            rng=self.rng,
        )

    async def _record_async_sleep(self, delay: float) -> None:
        self.sleeps.append(delay)

    def request(self, method: str = "GET", target: str = PATH, **kwargs: Any) -> httpx.Response:
        if self.mode == "sync":
            return self.transport.request(method, target, **kwargs)
        return asyncio.run(self.transport.arequest(method, target, **kwargs))


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    """Run a test against ``request`` and ``arequest``; async sleeps are recorded, never awaited for real."""
    return str(request.param)


@pytest.fixture
def make(mode: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def factory(script: list[Answer], **kwargs: Any) -> Harness:
        harness = Harness(mode, list(script), **kwargs)
        made.append(harness)
        return harness

    yield factory


class UpperBound:
    """An rng whose "random" draw is the top of the range: makes full-jitter backoff deterministic."""

    def __init__(self) -> None:
        self.ranges: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        self.ranges.append((a, b))
        return b


# ------------------------------------------------------------------------------------------------ retries

RETRYABLE: list[tuple[str, str, Callable[[], Answer]]] = [
    ("connect error", "pai", lambda: connect_error),
    ("read timeout", "fabric", lambda: read_timeout),
    ("408", "pai", lambda: httpx.Response(408)),
    ("429 bare", "fabric", lambda: httpx.Response(429)),
    ("500", "pai", lambda: ali_error(500, "InternalError")),
    ("502 html", "pai", lambda: httpx.Response(502, text="<html>Bad Gateway</html>")),
    ("503", "fabric", lambda: hw_error(503, "ModelArts.0001")),
    ("504", "pai", lambda: httpx.Response(504)),
    ("ali 400 Throttling", "pai", lambda: ali_error(400, "Throttling")),
    ("ali 400 Throttling.User", "pai", lambda: ali_error(400, "Throttling.User")),
    ("ali 429 Throttling.User", "pai", lambda: ali_error(429, "Throttling.User")),
    ("ali 400 Throttling.Api", "pai", lambda: ali_error(400, "Throttling.Api")),
    ("huawei 429 APIG.0308", "fabric", lambda: hw_error(429, "APIG.0308")),
    ("huawei 400 APIG.0308", "fabric", lambda: hw_error(400, "APIG.0308")),
]


@pytest.mark.parametrize(("name", "vendor", "failure"), RETRYABLE, ids=[r[0] for r in RETRYABLE])
def test_idempotent_get_is_retried_until_it_succeeds(
    make: Callable[..., Harness], name: str, vendor: str, failure: Callable[[], Answer]
) -> None:
    h = make([failure(), failure(), ok()], vendor=vendor)
    response = h.request("GET")
    assert response.status_code == 200
    assert json.loads(response.content) == OK_BODY
    assert len(h.seen) == 3
    assert len(h.sleeps) == 2


EXHAUSTED: list[tuple[str, str, Callable[[], Answer], type[RegistryAPIError], str | None, int, str | None]] = [
    ("ali 400 Throttling", "pai", lambda: ali_error(400, "Throttling", rid="r-1"), RegistryThrottledError,
     "Throttling", 400, "r-1"),
    ("ali 400 Throttling.User", "pai", lambda: ali_error(400, "Throttling.User", rid="r-2"), RegistryThrottledError,
     "Throttling.User", 400, "r-2"),
    ("ali 429 Throttling.User", "pai", lambda: ali_error(429, "Throttling.User", rid="r-3"), RegistryThrottledError,
     "Throttling.User", 429, "r-3"),
    ("huawei 429 APIG.0308", "fabric", lambda: hw_error(429, "APIG.0308", rid="h-1"), RegistryThrottledError,
     "APIG.0308", 429, "h-1"),
    ("huawei 400 APIG.0308", "fabric", lambda: hw_error(400, "APIG.0308", rid="h-2"), RegistryThrottledError,
     "APIG.0308", 400, "h-2"),
    ("bare 429", "pai", lambda: httpx.Response(429), RegistryThrottledError, None, 429, None),
    ("ali 503", "pai", lambda: ali_error(503, "ServiceUnavailable", rid="r-4"), RegistryServerError,
     "ServiceUnavailable", 503, "r-4"),
    ("huawei 500", "fabric", lambda: hw_error(500, "ModelArts.5000", rid="h-3"), RegistryServerError,
     "ModelArts.5000", 500, "h-3"),
    ("408", "fabric", lambda: httpx.Response(408, headers={"X-Request-Id": "h-4"}), RegistryServerError, None, 408,
     "h-4"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "vendor", "failure", "cls", "code", "status", "rid"), EXHAUSTED, ids=[e[0] for e in EXHAUSTED]
)
def test_retry_budget_is_bounded_and_the_last_error_is_typed(
    make: Callable[..., Harness],
    name: str,
    vendor: str,
    failure: Callable[[], Answer],
    cls: type[RegistryAPIError],
    code: str | None,
    status: int,
    rid: str | None,
) -> None:
    h = make([failure() for _ in range(4)], vendor=vendor, retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    with pytest.raises(cls) as err:
        h.request("GET")
    exc = err.value
    assert type(exc) is cls
    assert len(h.seen) == 3  # max_attempts counts the first attempt too
    assert len(h.sleeps) == 2  # no sleep after the last attempt
    assert (exc.attempts, exc.code, exc.http_status, exc.request_id) == (3, code, status, rid)
    assert "after 3 attempts" in str(exc)


def test_connection_errors_exhaust_into_a_transport_error(make: Callable[..., Harness]) -> None:
    h = make([connect_error] * 4, retry=RetryPolicy(max_attempts=4, base_delay=0.01))
    with pytest.raises(RegistryTransportError) as err:
        h.request("GET")
    assert len(h.seen) == 4
    assert len(h.sleeps) == 3
    assert "after 4 attempt(s)" in str(err.value)
    assert "ConnectError" in str(err.value)


def test_transport_error_carries_attempts_and_its_cause(make: Callable[..., Harness]) -> None:
    h = make([connect_error] * 3, retry=RetryPolicy(max_attempts=3, base_delay=0.01))
    with pytest.raises(RegistryTransportError) as err:
        h.request("GET")
    assert getattr(err.value, "attempts", None) == 3
    assert isinstance(err.value.__cause__, httpx.ConnectError)


def test_the_error_raised_is_the_last_one_seen(make: Callable[..., Harness]) -> None:
    h = make(
        [
            ali_error(503, "ServiceUnavailable"),
            ali_error(400, "Throttling.User"),
            ali_error(500, "InternalError", rid="last"),
        ],
        retry=RetryPolicy(max_attempts=3, base_delay=0.01),
    )
    with pytest.raises(RegistryServerError) as err:
        h.request("GET")
    assert (err.value.http_status, err.value.code, err.value.request_id, err.value.attempts) == (
        500,
        "InternalError",
        "last",
        3,
    )


def test_a_non_retryable_answer_stops_the_retries_and_counts_the_attempts(make: Callable[..., Harness]) -> None:
    h = make([ali_error(503, "ServiceUnavailable"), connect_error, ali_error(404, "InvalidModelVersion.NotFound")])
    with pytest.raises(RegistryNotFoundError) as err:
        h.request("GET")
    assert len(h.seen) == 3
    assert len(h.sleeps) == 2
    assert err.value.attempts == 3


POST_FAILURES: list[tuple[str, Callable[[], Answer], type[Exception]]] = [
    ("503", lambda: ali_error(503, "ServiceUnavailable"), RegistryServerError),
    ("429 Throttling.User", lambda: ali_error(429, "Throttling.User"), RegistryThrottledError),
    ("400 Throttling", lambda: ali_error(400, "Throttling"), RegistryThrottledError),
    ("408", lambda: httpx.Response(408), RegistryServerError),
    ("connect error", lambda: connect_error, RegistryTransportError),
    ("read timeout", lambda: read_timeout, RegistryTransportError),
]


@pytest.mark.parametrize(("name", "failure", "cls"), POST_FAILURES, ids=[p[0] for p in POST_FAILURES])
def test_post_is_never_retried(
    make: Callable[..., Harness], name: str, failure: Callable[[], Answer], cls: type[Exception]
) -> None:
    h = make([failure(), ok()])
    with pytest.raises(cls) as err:
        h.request("POST", "/api/v1/models", content=b'{"ModelName":"m"}')
    assert len(h.seen) == 1
    assert h.sleeps == []
    if isinstance(err.value, RegistryAPIError):
        assert err.value.attempts == 1
        assert "attempts" not in str(err.value)


def test_post_explicitly_declared_idempotent_is_retried(make: Callable[..., Harness]) -> None:
    h = make([ali_error(503, "ServiceUnavailable"), ok()])
    assert h.request("POST", "/x", content=b"{}", idempotent=True).status_code == 200
    assert len(h.seen) == 2


def test_put_of_approval_status_is_retried_when_declared_idempotent(make: Callable[..., Harness]) -> None:
    """UpdateModelVersion sends ``idempotent=True`` (setting the same status twice is harmless)."""
    body = b'{"ApprovalStatus":"Approved"}'
    h = make([ali_error(429, "Throttling.User"), connect_error, httpx.Response(200, json={"RequestId": "rid-put"})])
    response = h.request("PUT", PATH, content=body, headers={"x-acs-action": "UpdateModelVersion"}, idempotent=True)
    assert h.transport.request_id(response) == "rid-put"
    assert [r.method for r in h.seen] == ["PUT"] * 3
    assert all(r.content == body for r in h.seen)  # every attempt carries the full body


def test_put_and_get_follow_the_explicit_idempotent_flag(make: Callable[..., Harness]) -> None:
    h = make([ali_error(503, "ServiceUnavailable"), ok()])
    with pytest.raises(RegistryServerError):
        h.request("PUT", PATH, content=b"{}")  # a PUT is not idempotent unless the caller says so
    assert len(h.seen) == 1
    h = make([ali_error(503, "ServiceUnavailable"), ok()])
    with pytest.raises(RegistryServerError):
        h.request("GET", PATH, idempotent=False)
    assert len(h.seen) == 1


NOT_RETRIED: list[tuple[str, str, Callable[[], httpx.Response], type[RegistryAPIError]]] = [
    ("404", "pai", lambda: ali_error(404, "InvalidModelVersion.NotFound"), RegistryNotFoundError),
    ("401", "fabric", lambda: hw_error(401, "APIG.0301"), RegistryAuthError),
    ("403", "pai", lambda: ali_error(403, "Forbidden.RAM"), RegistryAuthError),
    ("400 InvalidParameter", "pai", lambda: ali_error(400, "InvalidParameter"), RegistryInvalidRequestError),
    ("400 terminal", "pai", lambda: ali_error(400, "InvalidApprovalStatus.Terminal"), RegistryStateError),
    ("409", "fabric", lambda: hw_error(409, "ModelArts.4090"), RegistryStateError),
    ("huawei 400 other", "fabric", lambda: hw_error(400, "ModelArts.4001"), RegistryInvalidRequestError),
    ("ali 400 no body", "pai", lambda: httpx.Response(400), RegistryInvalidRequestError),
]


@pytest.mark.parametrize(("name", "vendor", "answer", "cls"), NOT_RETRIED, ids=[n[0] for n in NOT_RETRIED])
def test_client_errors_are_not_retried(
    make: Callable[..., Harness], name: str, vendor: str, answer: Callable[[], httpx.Response], cls: type
) -> None:
    h = make([answer(), ok()], vendor=vendor)
    with pytest.raises(cls) as err:
        h.request("GET")
    assert type(err.value) is cls
    assert len(h.seen) == 1
    assert h.sleeps == []


def test_max_attempts_one_sends_once(make: Callable[..., Harness]) -> None:
    h = make([ali_error(429, "Throttling.User"), ok()], retry=RetryPolicy(max_attempts=1))
    with pytest.raises(RegistryThrottledError) as err:
        h.request("GET")
    assert len(h.seen) == 1
    assert h.sleeps == []
    assert err.value.attempts == 1


def test_retry_policy_refuses_a_budget_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RetryPolicy(max_attempts=0)


# ------------------------------------------------------------------------------------------------ delays

DELAYS: list[tuple[str, str, dict[str, str], float, bool]] = [
    ("Retry-After seconds", "pai", {"Retry-After": "3"}, 3.0, True),
    ("Retry-After fractional", "fabric", {"Retry-After": "0.25"}, 0.25, True),
    ("x-acs-retry-after ms", "pai", {"x-acs-retry-after": "1500"}, 1.5, True),
    ("x-acs-retry-after wins over Retry-After", "pai", {"x-acs-retry-after": "250", "Retry-After": "9"}, 0.25, True),
    ("Retry-After capped by max_delay", "pai", {"Retry-After": "120"}, 5.0, True),
    ("x-acs-retry-after capped by max_delay", "pai", {"x-acs-retry-after": "60000"}, 5.0, True),
    # A server asking for no wait at all (or nonsense) gets our backoff, never a burst of requests.
    ("negative Retry-After falls back to backoff", "fabric", {"Retry-After": "-4"}, 0.5, False),
    ("zero Retry-After falls back to backoff", "fabric", {"Retry-After": "0"}, 0.5, False),
    ("nan Retry-After falls back to backoff", "fabric", {"Retry-After": "nan"}, 0.5, False),
    ("inf Retry-After falls back to backoff", "pai", {"Retry-After": "inf"}, 0.5, False),
    ("zero x-acs-retry-after falls back to backoff", "pai", {"x-acs-retry-after": "0"}, 0.5, False),
    ("negative x-acs-retry-after falls back to backoff", "pai", {"x-acs-retry-after": "-1"}, 0.5, False),
    ("tiny Retry-After is raised to the floor", "fabric", {"Retry-After": "0.001"}, 0.1, True),
]


@pytest.mark.parametrize(("name", "vendor", "headers", "expected", "asked"), DELAYS, ids=[d[0] for d in DELAYS])
def test_server_requested_delay_is_honoured(
    make: Callable[..., Harness], name: str, vendor: str, headers: dict[str, str], expected: float, asked: bool
) -> None:
    rng = UpperBound()
    failure = (
        ali_error(429, "Throttling.User", headers=headers)
        if vendor == "pai"
        else hw_error(429, "APIG.0308", headers=headers)
    )
    h = make([failure, ok()], vendor=vendor, retry=RetryPolicy(max_delay=5.0), rng=rng)
    h.request("GET")
    assert h.sleeps == [pytest.approx(expected)]
    if asked:
        assert rng.ranges == []  # the server's delay replaces the random backoff
    else:
        assert rng.ranges == [(0, 0.5)]


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, {"x-acs-retry-after": "soon"}, {"Retry-After": ""}],
    ids=["http-date", "non-numeric acs", "empty"],
)
def test_unreadable_retry_after_falls_back_to_backoff(make: Callable[..., Harness], headers: dict[str, str]) -> None:
    rng = UpperBound()
    h = make([ali_error(503, "ServiceUnavailable", headers=headers), ok()], rng=rng)
    h.request("GET")
    assert rng.ranges == [(0, 0.2)]
    assert h.sleeps == [0.2]


def test_retry_after_on_a_non_retryable_answer_is_ignored(make: Callable[..., Harness]) -> None:
    h = make([ali_error(404, "InvalidModel.NotFound", headers={"Retry-After": "1"}), ok()])
    with pytest.raises(RegistryNotFoundError):
        h.request("GET")
    assert h.sleeps == []


def test_backoff_is_exponential_and_capped_by_max_delay(make: Callable[..., Harness]) -> None:
    rng = UpperBound()
    policy = RetryPolicy(max_attempts=7, base_delay=0.1, max_delay=1.0)
    h = make([ali_error(503, "ServiceUnavailable")] * 6 + [ok()], retry=policy, rng=rng)
    h.request("GET")
    assert h.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert all(low == 0 for low, _ in rng.ranges)  # full jitter: the draw starts at zero


def test_connection_errors_back_off_too(make: Callable[..., Harness]) -> None:
    rng = UpperBound()
    h = make([connect_error, connect_error, ok()], retry=RetryPolicy(base_delay=0.5), rng=rng)
    h.request("GET")
    assert h.sleeps == [0.5, 1.0]


def test_backoff_uses_full_jitter_from_the_injected_rng() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    draws = [policy.backoff(4, random.Random(seed)) for seed in range(200)]
    assert all(0.0 <= d <= 8.0 for d in draws)
    assert min(draws) < 1.0 and max(draws) > 7.0  # spread over the whole window, not equal jitter
    assert [policy.backoff(3, random.Random(42)) for _ in range(2)] == [policy.backoff(3, random.Random(42))] * 2


@settings(max_examples=200, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=64),
    base=st.floats(min_value=0.001, max_value=5.0),
    cap=st.floats(min_value=0.001, max_value=60.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_stays_inside_the_exponential_window(attempt: int, base: float, cap: float, seed: int) -> None:
    delay = RetryPolicy(base_delay=base, max_delay=cap).backoff(attempt, random.Random(seed))
    assert 0.0 <= delay <= min(cap, base * 2 ** (attempt - 1)) + 1e-12


def test_backoff_of_a_very_late_attempt_is_still_capped() -> None:
    assert RetryPolicy(max_attempts=2000, max_delay=20.0).backoff(1100, random.Random(0)) <= 20.0


# ------------------------------------------------------------------------------------------------ error mapping


def _resp(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> httpx.Response:
    if text is not None:
        return httpx.Response(status, text=text, headers=headers)
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


ALI = {"HostId": "h", "Recommend": "https://r"}
MAPPING: list[tuple[str, str, httpx.Response, type[RegistryAPIError], str | None, str | None, str]] = [
    ("pai 404 NotFound code", "pai",
     _resp(404, {**ALI, "RequestId": "r1", "Code": "InvalidModelVersion.NotFound", "Message": "no such version"}),
     RegistryNotFoundError, "InvalidModelVersion.NotFound", "r1", "no such version"),
    ("pai 404 empty body", "pai", _resp(404), RegistryNotFoundError, None, None, "Not Found"),
    ("pai 401 InvalidAccessKeyId.NotFound is auth, not not-found", "pai",
     _resp(401, {"RequestId": "r2", "Code": "InvalidAccessKeyId.NotFound", "Message": "m"}),
     RegistryAuthError, "InvalidAccessKeyId.NotFound", "r2", "m"),
    ("pai 400 SignatureDoesNotMatch", "pai",
     _resp(400, {"RequestId": "r3", "Code": "SignatureDoesNotMatch", "Message": "m"}),
     RegistryAuthError, "SignatureDoesNotMatch", "r3", "m"),
    ("pai 400 SignatureNonceUsed", "pai",
     _resp(400, {"RequestId": "r3b", "Code": "SignatureNonceUsed", "Message": "m"}),
     RegistryAuthError, "SignatureNonceUsed", "r3b", "m"),
    ("pai 403 Forbidden.RAM", "pai", _resp(403, {"RequestId": "r4", "Code": "Forbidden.RAM", "Message": "m"}),
     RegistryAuthError, "Forbidden.RAM", "r4", "m"),
    ("pai 401 no body", "pai", _resp(401), RegistryAuthError, None, None, "Unauthorized"),
    ("pai 400 InvalidParameter", "pai",
     _resp(400, {**ALI, "RequestId": "r5", "Code": "InvalidParameter", "Message": "PageSize"}),
     RegistryInvalidRequestError, "InvalidParameter", "r5", "PageSize"),
    ("pai 400 MissingParameter.X", "pai",
     _resp(400, {"RequestId": "r6", "Code": "MissingParameter.ApprovalStatus", "Message": "m"}),
     RegistryInvalidRequestError, "MissingParameter.ApprovalStatus", "r6", "m"),
    ("pai 400 terminal status", "pai",
     _resp(400, {**ALI, "RequestId": "r7", "Code": "InvalidApprovalStatus.Terminal", "Message": "is terminal"}),
     RegistryStateError, "InvalidApprovalStatus.Terminal", "r7", "is terminal"),
    ("pai 400 Throttling.User", "pai",
     _resp(400, {**ALI, "RequestId": "r8", "Code": "Throttling.User", "Message": "m"}),
     RegistryThrottledError, "Throttling.User", "r8", "m"),
    ("pai 500", "pai", _resp(500, {"RequestId": "r9", "Code": "InternalError", "Message": "m"}),
     RegistryServerError, "InternalError", "r9", "m"),
    ("pai 503 html", "pai", _resp(503, text="<html>down</html>"), RegistryServerError, None, None, "<html>down</html>"),
    ("pai lower-case keys", "pai", _resp(400, {"requestId": "r10", "code": "InvalidParameter", "message": "lc"}),
     RegistryInvalidRequestError, "InvalidParameter", "r10", "lc"),
    ("pai body request id beats header", "pai",
     _resp(404, {"RequestId": "body-rid", "Code": "InvalidModel.NotFound", "Message": "m"},
           headers={"x-acs-request-id": "hdr-rid", "X-Request-Id": "hdr-rid"}),
     RegistryNotFoundError, "InvalidModel.NotFound", "body-rid", "m"),
    ("fabric 404", "fabric", _resp(404, {"error_code": "ModelArts.4040", "error_msg": "gone"}, {"X-Request-Id": "h1"}),
     RegistryNotFoundError, "ModelArts.4040", "h1", "gone"),
    ("fabric 401 APIG.0301", "fabric",
     _resp(401, {"error_code": "APIG.0301", "error_msg": "m"}, {"x-request-id": "h2"}),
     RegistryAuthError, "APIG.0301", "h2", "m"),
    ("fabric 403 APIG.1002", "fabric",
     _resp(403, {"error_code": "APIG.1002", "error_msg": "m"}, {"X-Request-Id": "h3"}),
     RegistryAuthError, "APIG.1002", "h3", "m"),
    ("fabric 429 APIG.0308", "fabric",
     _resp(429, {"error_code": "APIG.0308", "error_msg": "m"}, {"X-Request-Id": "h4"}),
     RegistryThrottledError, "APIG.0308", "h4", "m"),
    ("fabric 400 APIG.0308", "fabric", _resp(400, {"error_code": "APIG.0308", "error_msg": "m"}),
     RegistryThrottledError, "APIG.0308", None, "m"),
    ("fabric camelCase", "fabric", _resp(400, {"errorCode": "ModelArts.1", "errorMsg": "cc"}),
     RegistryInvalidRequestError, "ModelArts.1", None, "cc"),
    ("fabric nested error", "fabric", _resp(400, {"error": {"code": "APIGW.0301", "message": "nested"}}),
     RegistryInvalidRequestError, "APIGW.0301", None, "nested"),
    ("fabric 409", "fabric", _resp(409, {"error_code": "ModelArts.4090", "error_msg": "busy"}),
     RegistryStateError, "ModelArts.4090", None, "busy"),
    ("fabric 502 text", "fabric", _resp(502, text="bad gateway", headers={"X-Request-Id": "h5"}),
     RegistryServerError, None, "h5", "bad gateway"),
    ("fabric ignores a body RequestId", "fabric", _resp(400, {"RequestId": "x", "code": "E", "message": "m"}),
     RegistryInvalidRequestError, "E", None, "m"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "vendor", "response", "cls", "code", "rid", "message"), MAPPING, ids=[m[0] for m in MAPPING]
)
def test_map_error(
    name: str,
    vendor: str,
    response: httpx.Response,
    cls: type[RegistryAPIError],
    code: str | None,
    rid: str | None,
    message: str,
) -> None:
    exc = map_error(vendor, response, attempts=2)  # type: ignore[arg-type]
    assert type(exc) is cls
    assert (exc.http_status, exc.code, exc.request_id, exc.message, exc.attempts) == (
        response.status_code,
        code,
        rid,
        message,
        2,
    )
    text = str(exc)
    assert f"HTTP {response.status_code}" in text
    assert (code or "-") in text and (rid or "-") in text
    assert cls.__name__ in text


def test_long_non_json_error_bodies_are_truncated_in_the_message() -> None:
    exc = map_error("pai", httpx.Response(502, text="x" * 5000))
    assert exc.message == "x" * 200


def test_errors_seen_through_the_transport_match_map_error(make: Callable[..., Harness]) -> None:
    answer = ali_error(400, "InvalidApprovalStatus.Terminal", rid="rid-term")
    h = make([answer])
    with pytest.raises(RegistryStateError) as err:
        h.request("PUT", PATH, content=b'{"ApprovalStatus":"Pending"}', idempotent=True)
    assert (err.value.code, err.value.request_id, err.value.http_status, err.value.attempts) == (
        "InvalidApprovalStatus.Terminal",
        "rid-term",
        400,
        1,
    )


# ------------------------------------------------------------------------------------------------ malformed answers

MALFORMED: list[tuple[str, str, type[Any], httpx.Response, str, str, str | None]] = [
    ("html", "pai", PaiModelVersion, httpx.Response(200, text="<html>hi</html>"), "body", "not valid JSON", None),
    ("empty", "pai", PaiModelVersion, httpx.Response(200), "body", "(empty body)", None),
    ("truncated", "pai", PaiModelVersion, httpx.Response(200, content=b'{"VersionName": "1"'), "body",
     "not valid JSON", None),
    ("invalid utf-8", "pai", PaiModelVersion, httpx.Response(200, content=b"\xff\xfe{}"), "body", "not valid JSON",
     None),
    ("json array", "pai", PaiModelVersion, httpx.Response(200, json=[1, 2]), "body", "", None),
    ("missing VersionName", "pai", PaiModelVersion, httpx.Response(200, json={"RequestId": "r-miss"}),
     "body.VersionName", "Field required", "r-miss"),
    ("wrong type", "pai", PaiModelVersion, httpx.Response(200, json={"VersionName": 7, "RequestId": "r-type"}),
     "body.VersionName", "string", "r-type"),
    ("nested list item", "pai", PaiModelVersionPage,
     httpx.Response(200, json={"RequestId": "r-n", "TotalCount": 2, "Versions": [{"VersionName": "a"}, {"Uri": "x"}]}),
     "body.Versions[1].VersionName", "Field required", "r-n"),
    ("bad label", "pai", PaiModelVersion,
     httpx.Response(200, json={"VersionName": "a", "Labels": [{"Key": "k"}, {"Value": "v"}]}),
     "body.Labels[1].Key", "Field required", None),
    ("total not a number", "pai", PaiModelVersionPage,
     httpx.Response(200, json={"RequestId": "r-t", "TotalCount": "many", "Versions": []}), "body.TotalCount", "integer",
     "r-t"),
    ("bad date", "pai", PaiModelVersion, httpx.Response(200, json={"VersionName": "a", "GmtCreateTime": "tuesday"}),
     "body.GmtCreateTime", "datetime", None),
    ("fabric versions not a list", "fabric", FabricModelVersionPage,
     httpx.Response(200, json={"total": 1, "versions": {"id": "v"}}, headers={"X-Request-Id": "h-9"}),
     "body.versions", "valid array", "h-9"),
    ("fabric not json", "fabric", FabricModelVersionPage,
     httpx.Response(200, text="gateway says hi", headers={"X-Request-Id": "h-10"}), "body", "not valid JSON", "h-10"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "vendor", "model", "response", "field", "problem", "rid"), MALFORMED, ids=[m[0] for m in MALFORMED]
)
def test_malformed_success_answers_raise_a_response_error_naming_the_field(
    name: str, vendor: str, model: type[Any], response: httpx.Response, field: str, problem: str, rid: str | None
) -> None:
    with pytest.raises(RegistryResponseError) as err:
        parse_model(vendor, response, model)  # type: ignore[arg-type]
    exc = err.value
    assert not isinstance(exc, ValidationError)
    assert exc.__cause__ is None and exc.__suppress_context__  # the pydantic error is not chained into tracebacks
    assert exc.field == field
    assert problem in exc.problem
    assert exc.request_id == rid
    assert exc.http_status == 200
    assert f"{field}: " in str(exc)


def test_parse_names_the_given_root() -> None:
    with pytest.raises(RegistryResponseError) as err:
        parse_model("pai", httpx.Response(200, json={"Uri": "x"}), PaiModelVersion, root="LatestVersion")
    assert err.value.field == "LatestVersion.VersionName"


def test_a_malformed_success_is_not_retried_and_parse_is_typed(make: Callable[..., Harness]) -> None:
    h = make([httpx.Response(200, text="<html>captive portal</html>"), ok()])
    response = h.request("GET")
    with pytest.raises(RegistryResponseError) as err:
        h.transport.parse(response, PaiModelVersion)
    assert err.value.field == "body"
    assert len(h.seen) == 1


def test_an_undecodable_body_is_a_typed_error(make: Callable[..., Harness]) -> None:
    # a stream, as a real answer arrives: the body is decoded only when the transport reads it
    h = make(
        [lambda _: httpx.Response(200, stream=httpx.ByteStream(b"not gzip"), headers={"Content-Encoding": "gzip"})]
    )
    with pytest.raises(RegistryResponseError) as err:
        h.request("GET")
    assert err.value.field == "body" and "content-encoding" in err.value.problem
    assert len(h.seen) == 1  # a corrupt body is not retried


# ------------------------------------------------------------------------------------------------ re-signing


def test_every_alibaba_attempt_is_signed_afresh(make: Callable[..., Harness]) -> None:
    ticks = itertools.count()
    start = datetime(2024, 1, 15, 8, 30, tzinfo=timezone.utc)
    auth = AcsV3Auth("LTAIkey", SECRET, clock=lambda: start + timedelta(seconds=next(ticks)))
    h = make([ali_error(503, "ServiceUnavailable"), connect_error, ali_error(400, "Throttling.User"), ok()], auth=auth)
    h.request("GET")
    assert len(h.seen) == 4
    nonces = [r.headers["x-acs-signature-nonce"] for r in h.seen]
    dates = [r.headers["x-acs-date"] for r in h.seen]
    signatures = [r.headers["authorization"] for r in h.seen]
    assert len(set(nonces)) == 4
    assert len(set(dates)) == 4
    assert len(set(signatures)) == 4
    for r in h.seen:  # no header piles up from one attempt to the next
        assert len(r.headers.get_list("authorization")) == 1
        assert len(r.headers.get_list("x-acs-signature-nonce")) == 1


def test_every_huawei_attempt_is_signed_afresh(make: Callable[..., Harness]) -> None:
    ticks = itertools.count()
    start = datetime(2024, 1, 15, 8, 30, tzinfo=timezone.utc)
    auth = HuaweiAkSkAuth("HWAK", SECRET, project_id="p", clock=lambda: start + timedelta(seconds=next(ticks)))
    h = make([hw_error(429, "APIG.0308"), hw_error(503, "X"), ok()], vendor="fabric", auth=auth)
    h.request("GET", "/v1/workspaces/ws-1/models/fm-1/versions?limit=10&offset=0")
    dates = [r.headers["x-sdk-date"] for r in h.seen]
    signatures = [r.headers["authorization"] for r in h.seen]
    assert dates == ["20240115T083000Z", "20240115T083001Z", "20240115T083002Z"]
    assert len(set(signatures)) == 3
    assert all(r.url.raw_path == b"/v1/workspaces/ws-1/models/fm-1/versions?limit=10&offset=0" for r in h.seen)


# ------------------------------------------------------------------------------------------------ secrets

SECRET_FAILURES: list[tuple[str, str, Callable[[], Answer]]] = [
    ("pai connect error", "pai", lambda: connect_error),
    ("pai 503", "pai", lambda: ali_error(503, "ServiceUnavailable")),
    ("pai 403", "pai", lambda: ali_error(403, "SignatureDoesNotMatch")),
    ("fabric timeout", "fabric", lambda: read_timeout),
    ("fabric 429", "fabric", lambda: hw_error(429, "APIG.0308")),
    ("fabric 401", "fabric", lambda: hw_error(401, "APIG.0301")),
]


@pytest.mark.parametrize(("name", "vendor", "failure"), SECRET_FAILURES, ids=[s[0] for s in SECRET_FAILURES])
def test_secrets_never_appear_in_errors_reprs_or_logs(
    make: Callable[..., Harness],
    caplog: pytest.LogCaptureFixture,
    name: str,
    vendor: str,
    failure: Callable[[], Answer],
) -> None:
    h = make([failure() for _ in range(3)], vendor=vendor, retry=RetryPolicy(max_attempts=3, base_delay=0.0))
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_modelreg"), pytest.raises(ModelRegistryError) as err:
        h.request("GET")
    exc = err.value
    exposed = [str(exc), repr(exc), repr(exc.args), repr(vars(exc)), repr(h.transport), repr(h.auth), caplog.text]
    for text in exposed:
        assert SECRET not in text
        assert STS_TOKEN not in text
    assert "Authorization" not in str(exc) and "Signature=" not in str(exc)


def test_secrets_never_appear_in_response_errors() -> None:
    request = httpx.Request("GET", "https://h/x", headers={"Authorization": f"Bearer {SECRET}"})
    response = httpx.Response(200, text="{bad", request=request)
    with pytest.raises(RegistryResponseError) as err:
        parse_model("pai", response, PaiModelVersion)
    assert SECRET not in str(err.value) and SECRET not in repr(err.value)


def test_liveness_check_matches_httpcore() -> None:
    """Our cached-socket liveness test answers as httpcore's own (which it replaces for async keep-alive pools)."""
    import socket

    from httpcore._utils import is_socket_readable as httpcore_readable

    from airflow_provider_modelreg.transport import is_socket_readable

    a, b = socket.socketpair()
    try:
        assert is_socket_readable(a) is httpcore_readable(a) is False
        b.sendall(b"x")
        assert is_socket_readable(a) is httpcore_readable(a) is True
    finally:
        a.close()
        b.close()
    assert is_socket_readable(a) is True  # closed: fileno() is -1, the next read would be EOF
    assert is_socket_readable(None) is True


def test_async_pool_reuses_a_live_connection_and_drops_a_dead_one(emulator: Any) -> None:
    """Keep-alive through the deadline stream wrapper: a live idle connection is reused, a closed one replaced."""
    import asyncio

    from airflow_provider_modelreg.auth import AcsV3Auth
    from airflow_provider_modelreg.transport import RegistryTransport, RetryPolicy

    transport = RegistryTransport(
        vendor="pai",
        base_url=emulator.url,
        auth=AcsV3Auth("LTAIemulatorDemoKey01", "emulator-demo-secret-pai"),
        headers={"x-acs-version": "2021-02-04"},
        retry=RetryPolicy(max_attempts=1),  # reusing the dead connection would fail the call, not be retried
    )

    async def three_calls() -> list[Any]:
        peers = []
        for _ in range(2):
            await transport.arequest("GET", "/api/v1/models", params=[("PageSize", "1")])
            conns = transport.ahttp._pool.connections  # type: ignore[attr-defined]
            peers.append([c._connection._network_stream for c in conns])
        stream = peers[-1][0]
        stream._stream._stream._transport.close()  # the server side would look the same: EOF waiting
        await asyncio.sleep(0.05)
        await transport.arequest("GET", "/api/v1/models", params=[("PageSize", "1")])
        peers.append([c._connection._network_stream for c in transport.ahttp._pool.connections])  # type: ignore[attr-defined]
        await transport.aclose()
        return peers

    first, second, third = asyncio.run(three_calls())
    assert len(first) == 1 and second[0] is first[0]  # reused while alive
    assert third[0] is not first[0]  # the dead one was noticed and replaced
