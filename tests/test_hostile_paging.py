"""Paging against lying, growing and careless servers (issue 11).

Two layers:

* one table of cases (plain data, no HTTP) drives :class:`PagePlan`, the sans-IO core, with answers delivered in a
  chosen order (to play out concurrency deterministically);
* both shells, through the real hooks and their HTTP transport, against a hostile fake registry written here
  (``http.server`` on 127.0.0.1) that speaks PAI's and Fabric's ListModelVersions shapes.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from helpers import fabric_conn, pai_conn

from airflow_provider_modelreg.errors import (
    RegistryConnectionConfigError,
    RegistryInputError,
    RegistryPagingLimitError,
    RegistryResponseError,
)
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.paging import DEFAULT_MAX_PAGES, PagePlan, acollect_pages, collect_pages

# ------------------------------------------------------------------------------------------------- the plan, as data


def r(start: int, stop: int) -> list[int]:
    """Items ``start`` .. ``stop`` inclusive, counting up or down."""
    return list(range(start, stop + 1)) if stop >= start else list(range(start, stop - 1, -1))


# Each case: answers per page index, as a list of answers to the 1st, 2nd, ... request for that index (the last one
# repeats); "*" answers any index not listed. ``deliver``: "fifo" answers pages in the order they were asked for,
# "lifo" answers the most recent first (a later page is served before an earlier one). ``expect`` is the list, or
# (error type, field). ``requests``: requests sent in all.
CASES: list[dict[str, Any]] = [
    {
        "id": "honest-250",
        "answers": {0: [(r(0, 99), 250)], 1: [(r(100, 199), 250)], 2: [(r(200, 249), 250)]},
        "expect": r(0, 249),
        "requests": 3,
    },
    {
        "id": "honest-250-lifo",
        "deliver": "lifo",
        "answers": {0: [(r(0, 99), 250)], 1: [(r(100, 199), 250)], 2: [(r(200, 249), 250)]},
        "expect": r(0, 249),
        "requests": 3,
    },
    {"id": "empty", "answers": {0: [([], 0)]}, "expect": [], "requests": 1},
    {
        "id": "exact-multiple-ends-on-an-empty-page",
        "answers": {0: [(r(0, 99), 200)], 1: [(r(100, 199), 200)], 2: [([], 200)]},
        "expect": r(0, 199),
        "requests": 3,
    },
    {
        "id": "max-results-reads-only-needed-pages",
        "max_results": 150,
        "answers": {i: [(r(100 * i, 100 * i + 99), 1000)] for i in range(10)},
        "expect": r(0, 149),
        "requests": 2,
    },
    {
        "id": "max-results-takes-what-it-asked-for-whatever-the-total",
        "max_results": 100,
        "answers": {0: [(r(0, 99), 100)]},
        "expect": r(0, 99),
        "requests": 1,
    },
    # issue 11.1: lying or growing totals
    {
        "id": "huge-total-refused-before-sending",
        "answers": {0: [(r(0, 99), 10**13)]},
        "expect": (RegistryPagingLimitError, "TotalCount"),
        "requests": 1,
    },
    {
        "id": "total-needs-more-than-max-pages",
        "max_pages": 2,
        "answers": {0: [(r(0, 99), 250)]},
        "expect": (RegistryPagingLimitError, "TotalCount"),
        "requests": 1,
    },
    {
        "id": "max-pages-just-enough",
        "max_pages": 3,
        "answers": {0: [(r(0, 99), 250)], 1: [(r(100, 199), 250)], 2: [(r(200, 249), 250)]},
        "expect": r(0, 249),
        "requests": 3,
    },
    {
        "id": "total-grows-with-every-page",
        "max_pages": 5,
        "answers": {i: [(r(100 * i, 100 * i + 99), 100 * (i + 2))] for i in range(5)},
        "expect": (RegistryPagingLimitError, "TotalCount"),
        "requests": 5,
    },
    {
        "id": "total-claims-more-than-the-pages-hold",
        "answers": {
            0: [(r(0, 99), 50_000)],
            1: [(r(100, 199), 50_000)],
            2: [(r(200, 249), 50_000)],
            "*": [([], 50_000)],
        },
        "expect": (RegistryResponseError, "TotalCount"),
    },
    # issue 11.2: silent short lists
    {
        "id": "total-lower-than-the-real-count",
        "answers": {0: [(r(0, 99), 100)], 1: [(r(100, 199), 100)]},
        "expect": (RegistryResponseError, "TotalCount"),
        "requests": 2,
    },
    {"id": "total-true", "answers": {0: [(r(0, 99), True)]}, "expect": (RegistryResponseError, "TotalCount")},
    {"id": "total-string", "answers": {0: [(r(0, 99), "250")]}, "expect": (RegistryResponseError, "TotalCount")},
    {"id": "total-negative", "answers": {0: [([], -1)]}, "expect": (RegistryResponseError, "TotalCount")},
    {"id": "total-float", "answers": {0: [(r(0, 99), 250.0)]}, "expect": (RegistryResponseError, "TotalCount")},
    {"id": "page-number-ignored", "answers": {"*": [(r(0, 99), 250)]}, "expect": (RegistryResponseError, "PageNumber")},
    {
        "id": "page-number-ignored-total-creeping-up",
        "answers": {0: [(r(0, 99), 250)], "*": [(r(0, 99), 251)]},
        "expect": (RegistryResponseError, "PageNumber"),
    },
    {
        "id": "unstable-order-repeats-items",
        "answers": {0: [(r(0, 99), 250)], 1: [(r(50, 149), 250)], 2: [(r(200, 249), 250)]},
        "expect": (RegistryResponseError, "PageNumber"),
    },
    {
        "id": "page-larger-than-asked",
        "answers": {0: [(r(0, 149), 250)]},
        "expect": (RegistryResponseError, "PageNumber"),
    },
    # change while listing (newest first: a version created during the listing shifts the others back by one)
    {
        "id": "created-after-page-0",
        "answers": {0: [(r(300, 201), 300)], 1: [(r(201, 102), 301)], 2: [(r(101, 2), 301)], 3: [([1], 301)]},
        "expect": r(300, 1),
        "requests": 4,
    },
    {
        "id": "later-page-served-before-a-creation-is-read-again",
        "deliver": "lifo",
        "answers": {
            0: [(r(299, 200), 300)],
            1: [(r(200, 101), 301)],
            2: [(r(99, 0), 300), (r(100, 1), 301)],
            3: [([], 300), ([0], 301)],
        },
        "expect": r(299, 0),
        "requests": 6,
    },
    # issue 11.3, the documented limit: a Pending-filtered listing while 10 versions get approved after page 0
    # misses 10 versions that stayed Pending (100..109): offset paging over a shrinking filter cannot see them
    {
        "id": "filtered-listing-under-status-changes-can-miss",
        "answers": {0: [(r(0, 99), 240)], 1: [(r(110, 209), 230)], 2: [(r(210, 239), 230)]},
        "expect": r(0, 99) + r(110, 239),
        "requests": 4,
    },
]


def drive(case: dict[str, Any]) -> tuple[list[int] | BaseException, int, int]:
    """Run a plan against a case: (result or error, requests sent, most pages in flight at once)."""
    concurrency = case.get("concurrency", 8)
    plan: PagePlan[int] = PagePlan(
        page_size=case.get("size", 100),
        key=lambda x: x,
        max_results=case.get("max_results"),
        max_pages=case.get("max_pages", DEFAULT_MAX_PAGES),
        concurrency=concurrency,
    )
    served: dict[int, int] = defaultdict(int)
    flight: list[int] = []
    peak = 0
    try:
        while not plan.done:
            flight += plan.next_pages()
            peak = max(peak, len(flight))
            index = flight.pop() if case.get("deliver") == "lifo" else flight.pop(0)
            answers = case["answers"].get(index) or case["answers"]["*"]
            items, total = answers[min(served[index], len(answers) - 1)]
            served[index] += 1
            plan.receive(index, items, total)
    except RegistryResponseError as exc:
        return exc, plan.requests, peak
    return plan.result(), plan.requests, peak


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_plan(case: dict[str, Any]) -> None:
    got, requests, peak = drive(case)
    expect = case["expect"]
    if isinstance(expect, tuple):
        assert isinstance(got, expect[0]), got
        assert got.field == expect[1], got
    else:
        assert got == expect
    if "requests" in case:
        assert requests == case["requests"]
    assert peak <= case.get("concurrency", 8)


def test_plan_windows_are_bounded() -> None:
    """At most ``concurrency`` pages in flight, none more than 2 x concurrency ahead of the first one missing."""
    plan: PagePlan[int] = PagePlan(page_size=10, key=lambda x: x, concurrency=4)
    assert plan.next_pages() == [0]
    plan.receive(0, r(0, 9), 5000)
    assert plan.next_pages() == [1, 2, 3, 4]
    for index in (2, 3, 4):  # page 1 stays slow
        plan.receive(index, r(10 * index, 10 * index + 9), 5000)
    assert plan.next_pages() == [5, 6, 7]
    for index in (5, 6, 7):
        plan.receive(index, r(10 * index, 10 * index + 9), 5000)
    assert plan.next_pages() == [8]
    plan.receive(8, r(80, 89), 5000)
    assert plan.next_pages() == []  # nothing beyond 1 + 2 x 4 while page 1 is missing
    plan.receive(1, r(10, 19), 5000)
    assert plan.next_pages() == [9, 10, 11, 12]


def test_plan_refuses_unrequested_pages() -> None:
    plan: PagePlan[int] = PagePlan(page_size=10, key=lambda x: x)
    with pytest.raises(ValueError, match="not requested"):
        plan.receive(3, [], 0)


# ------------------------------------------------------------------------------------------------- the shells

SHELL_ITEMS = list(range(1234))


def _fetch_sync(index: int) -> tuple[list[int], int]:
    return SHELL_ITEMS[index * 100 : (index + 1) * 100], len(SHELL_ITEMS)


async def _fetch_async(index: int) -> tuple[list[int], int]:
    await asyncio.sleep(0)
    return _fetch_sync(index)


def test_shells_agree() -> None:
    assert collect_pages(_fetch_sync, page_size=100, key=lambda x: x) == SHELL_ITEMS
    assert asyncio.run(acollect_pages(_fetch_async, page_size=100, key=lambda x: x)) == SHELL_ITEMS


async def test_async_shell_creates_tasks_window_by_window() -> None:
    """A total of 10**7 under a generous cap: tasks are created as pages are needed, never one per page up front."""
    peak_tasks = 0

    async def fetch(index: int) -> tuple[list[int], int]:
        nonlocal peak_tasks
        peak_tasks = max(peak_tasks, len(asyncio.all_tasks()))
        await asyncio.sleep(0)
        if index >= 20:
            return [], 10**7  # the truth comes out at page 20: a short page against the total
        return list(range(index * 100, index * 100 + 100)), 10**7

    with pytest.raises(RegistryResponseError) as err:
        await asyncio.wait_for(
            acollect_pages(fetch, page_size=100, key=lambda x: x, max_pages=1_000_000, concurrency=8), 60
        )
    assert err.value.field == "TotalCount"
    assert peak_tasks <= 8 + 2  # the pages in flight, the test's task and wait_for's


# ------------------------------------------------------------------------------------------------- hostile registry

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _pai_version(n: int) -> dict[str, Any]:
    return {"VersionName": f"v{n:05d}", "GmtCreateTime": (T0 + timedelta(minutes=n)).isoformat()}


def _fabric_version(n: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-4000-8000-{n:012d}",
        "name": f"ver-{n:05d}",
        "create_time": (T0 + timedelta(minutes=n)).isoformat(),
    }


class HostileRegistry:
    """A fake PAI + Fabric registry with ``count`` versions that misbehaves as ``mode`` says.

    Modes: ``honest``; ``huge-total`` (10**13); ``low-total`` (100); ``total-true``; ``ignores-page`` (always the
    first page); ``growing`` (every answer claims 100 more versions than the last, and has them); ``creeping`` (the
    total grows by one per answer, the versions do not); ``reversed`` (Fabric: newest first, an order the API does
    not promise either); ``shuffled`` (Fabric: a fixed order by id hash).
    After ``budget`` requests every answer is HTTP 400, so that a runaway client fails instead of running on.
    """

    def __init__(self, mode: str = "honest", count: int = 250, budget: int = 300) -> None:
        self.mode = mode
        self.count = count
        self.budget = budget
        self.requests = 0
        self.in_flight = 0
        self.peak = 0
        self.lock = threading.Lock()
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with registry.lock:
                    registry.requests += 1
                    n = registry.requests
                    registry.in_flight += 1
                    registry.peak = max(registry.peak, registry.in_flight)
                try:
                    status, body = registry.answer(self.path, n)
                    data = json.dumps(body).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("X-Request-Id", f"req-{n}")
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with registry.lock:
                        registry.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def answer(self, path: str, n: int) -> tuple[int, dict[str, Any]]:
        if n > self.budget:
            return 400, {"RequestId": "x", "Code": "InvalidParameter", "Message": "request budget spent"}
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        fabric = parts.path.startswith("/v1/")
        if fabric:
            size = int(query.get("limit", "10"))
            start = int(query.get("offset", "0"))
        else:
            size = int(query.get("PageSize", "10"))
            start = (int(query.get("PageNumber", "1")) - 1) * size
        if self.mode == "ignores-page":
            start = 0
        count = self.count + 100 * n if self.mode == "growing" else self.count
        numbers = list(range(count))
        if self.mode == "reversed":
            numbers.reverse()
        elif self.mode == "shuffled":
            numbers.sort(key=lambda i: (i * 7919) % 1009)
        if not fabric and query.get("Order") == "DESC":
            numbers.reverse()
        page = numbers[start : start + size]
        total: Any = {
            "huge-total": 10**13,
            "low-total": 100,
            "total-true": True,
            "creeping": count + n,
        }.get(self.mode, count)
        if fabric:
            return 200, {"total": total, "versions": [_fabric_version(i) for i in page]}
        return 200, {"RequestId": f"req-{n}", "TotalCount": total, "Versions": [_pai_version(i) for i in page]}

    def __enter__(self) -> HostileRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[Any]:
    started: list[HostileRegistry] = []

    def make(mode: str = "honest", count: int = 250, budget: int = 300) -> HostileRegistry:
        server = HostileRegistry(mode, count, budget).__enter__()
        started.append(server)
        return server

    yield make
    for server in started:
        server.__exit__()


def _pai(server: HostileRegistry, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> PaiModelRegistryHook:
    pai_conn(monkeypatch, server.url, **kwargs.pop("extra", {}))
    return PaiModelRegistryHook(**kwargs)


def _fabric(server: HostileRegistry, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> FabricModelRegistryHook:
    fabric_conn(monkeypatch, server.url, **kwargs.pop("extra", {}))
    return FabricModelRegistryHook(**kwargs)


def _list(hook: Any, is_async: bool, **kwargs: Any) -> Sequence[Any]:
    """The hook's listing, through the sync or the async shell."""
    if isinstance(hook, PaiModelRegistryHook):
        if is_async:
            return asyncio.run(asyncio.wait_for(hook.alist_model_versions("m-1", **kwargs), 120))
        return hook.list_model_versions("m-1", **kwargs)
    if is_async:
        return asyncio.run(asyncio.wait_for(hook.alist_model_versions("fm-1", workspace_id="ws-1", **kwargs), 120))
    return hook.list_model_versions("fm-1", workspace_id="ws-1", **kwargs)


VENDORS = {"pai": (_pai, "TotalCount", "PageNumber"), "fabric": (_fabric, "total", "offset")}
BOTH = pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
VENDOR = pytest.mark.parametrize("vendor", list(VENDORS))


@VENDOR
@BOTH
def test_honest_server(hostile: Any, monkeypatch: pytest.MonkeyPatch, vendor: str, is_async: bool) -> None:
    server = hostile("honest", count=1050)
    versions = _list(VENDORS[vendor][0](server, monkeypatch), is_async)
    assert len(versions) == 1050
    assert server.requests == 11  # pages 0-10, the last one short
    assert server.peak <= 8


@VENDOR
@BOTH
def test_huge_total_fails_fast(hostile: Any, monkeypatch: pytest.MonkeyPatch, vendor: str, is_async: bool) -> None:
    server = hostile("huge-total")
    make, total_field, _ = VENDORS[vendor]
    with pytest.raises(RegistryPagingLimitError) as err:
        _list(make(server, monkeypatch), is_async)
    assert total_field in err.value.field and err.value.max_pages == DEFAULT_MAX_PAGES
    assert server.requests == 1


@VENDOR
@BOTH
def test_growing_total_hits_the_cap(hostile: Any, monkeypatch: pytest.MonkeyPatch, vendor: str, is_async: bool) -> None:
    server = hostile("growing")
    make, total_field, _ = VENDORS[vendor]
    with pytest.raises(RegistryPagingLimitError) as err:
        _list(make(server, monkeypatch, max_pages=30), is_async)
    assert err.value.field == total_field and err.value.max_pages == 30
    assert server.requests <= 30


def test_cap_from_the_connection_extra(hostile: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = hostile("growing")
    with pytest.raises(RegistryPagingLimitError) as err:
        _list(_pai(server, monkeypatch, extra={"max_pages": "12"}), False)
    assert err.value.max_pages == 12 and server.requests <= 12


@pytest.mark.parametrize(
    ("mode", "count"), [("low-total", 250), ("total-true", 250), ("creeping", 250), ("ignores-page", 250)]
)
@VENDOR
@BOTH
def test_never_a_silently_short_list(
    hostile: Any, monkeypatch: pytest.MonkeyPatch, vendor: str, is_async: bool, mode: str, count: int
) -> None:
    server = hostile(mode, count)
    make, total_field, page_field = VENDORS[vendor]
    with pytest.raises(RegistryResponseError) as err:
        _list(make(server, monkeypatch), is_async)
    assert not isinstance(err.value, RegistryPagingLimitError)
    assert (page_field if mode == "ignores-page" else total_field) in err.value.field
    assert server.requests <= 1 + 2 * 8


@pytest.mark.parametrize("mode", ["honest", "reversed", "shuffled"])
@BOTH
def test_fabric_order_does_not_depend_on_the_server(
    hostile: Any, monkeypatch: pytest.MonkeyPatch, is_async: bool, mode: str
) -> None:
    server = hostile(mode, count=250)
    versions = _list(_fabric(server, monkeypatch), is_async)
    assert [v.name for v in versions] == [f"ver-{n:05d}" for n in reversed(range(250))]  # newest first
    newest = _list(_fabric(server, monkeypatch), is_async, max_results=5)
    assert [v.name for v in newest] == [f"ver-{n:05d}" for n in reversed(range(245, 250))]
    oldest = _list(_fabric(server, monkeypatch), is_async, max_results=5, order="ASC")
    assert [v.name for v in oldest] == [f"ver-{n:05d}" for n in range(5)]


@pytest.mark.parametrize("mode", ["low-total", "ignores-page"])
def test_fabric_get_by_name_is_not_fooled(hostile: Any, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    """The wanted version sits beyond what a lying server's total admits: an error, not a wrong 'not found'."""
    server = hostile(mode, count=250)
    hook = _fabric(server, monkeypatch)
    with pytest.raises(RegistryResponseError):
        hook.get_model_version("fm-1", workspace_id="ws-1", version_name="ver-00200")
    with pytest.raises(RegistryResponseError):
        asyncio.run(hook.aget_model_version("fm-1", workspace_id="ws-1", version_name="ver-00200"))


def test_fabric_get_by_name_under_an_unknown_order(hostile: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    server = hostile("shuffled", count=250)
    assert (
        _fabric(server, monkeypatch)
        .get_model_version("fm-1", workspace_id="ws-1", version_name="ver-00200")
        .id.endswith("000000000200")
    )


@pytest.mark.parametrize("value", ["0", "lots", "1000001", True])
def test_bad_max_pages_extra(hostile: Any, monkeypatch: pytest.MonkeyPatch, value: Any) -> None:
    server = hostile()
    with pytest.raises(RegistryConnectionConfigError) as err:
        _list(_pai(server, monkeypatch, extra={"max_pages": value}), False)
    assert err.value.field == "max_pages"
    assert server.requests == 0


@pytest.mark.parametrize("value", [0, -1, 1_000_001, True, "5"])
def test_bad_max_pages_argument(value: Any) -> None:
    with pytest.raises(RegistryInputError) as err:
        PaiModelRegistryHook(max_pages=value)
    assert err.value.field == "max_pages"


def test_readme_states_the_cap_and_the_guarantee() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()  # the README's until issue 26
    assert f"max_pages` (default {DEFAULT_MAX_PAGES:,})" in readme
    assert "can be missed" in readme
