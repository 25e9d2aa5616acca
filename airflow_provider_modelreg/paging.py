"""Listing every page of an offset-paged API: a plan without I/O, and thin sync and async shells that do the I/O.

:class:`PagePlan` holds all of the paging logic and performs no I/O (in the style of h11): it says which page
indexes to request next (:meth:`PagePlan.next_pages`), is told what each request returned
(:meth:`PagePlan.receive`), and validates every page as it comes. :func:`collect_pages` (threads) and
:func:`acollect_pages` (asyncio) only carry requests out for it. A page index is 0-based; the hooks turn it into
``PageNumber`` (PAI, from 1) or ``offset`` (Fabric).

What the plan does:

* **Bounded windows.** Page 0 comes alone (it tells the total). Then at most ``concurrency`` pages are in flight,
  and none more than ``2 * concurrency`` pages ahead of the first page not yet received: memory and requests are
  bounded whatever the server claims. Pages are checked and merged in index order. (The thread shell keeps as many
  pages again queued in its pool, not yet sent, so that no thread waits for the next page to be handed out.)
* **A hard cap.** A listing never sends more than ``max_pages`` requests (default :data:`DEFAULT_MAX_PAGES`); when
  the total reported needs more, :class:`~airflow_provider_modelreg.errors.RegistryPagingLimitError` is raised
  before any of them is sent.
* **A listing ends on a short page** (fewer items than the page size, possibly none) or when ``max_results`` items
  were collected. A full last page is never taken as the end, even when the total says so: a total lower than the
  real count cannot cut the list short.
* **Every page is checked against its own total.** The total must be an integer (``true`` is not), a page never
  reaches past the total, and a short page ends exactly at the total. A full page that adds no new item (the
  server ignoring ``PageNumber``/``offset``), or an item repeated while the total did not change, is an error.
  A complete listing whose distinct item count disagrees with the totals is an error. Each of these raises
  :class:`~airflow_provider_modelreg.errors.RegistryResponseError` naming the field; a listing never returns a
  silently short list.
* **Change while listing.** Items are merged by key, so an item that shifts from one page to the next while
  versions are created is returned once. The total may grow. A page that reports a smaller total than an earlier
  page (it was served before a change the earlier page saw) is requested once more, so that, when versions are
  only created (and sort first or last), every version that existed when the listing began is returned exactly
  once; versions created during the listing may or may not be. When items *leave* the listing while it runs
  (deleted, or, with a filter such as ``ApprovalStatus=Pending``, changing status), offset paging shifts the rest
  towards the front: a version that matched throughout can be missed, up to as many as left. That cannot be
  detected from the pages; read again, or use an order-safe read such as the approval gate's.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Generic, Required, TypedDict, TypeVar, Unpack

from airflow_provider_modelreg.errors import RegistryPagingLimitError, RegistryResponseError

__all__ = ["DEFAULT_MAX_PAGES", "MAX_PAGES_LIMIT", "PagePlan", "PagingOptions", "acollect_pages", "collect_pages"]

T = TypeVar("T")

#: Requests one listing may send at most, unless the hook's ``max_pages`` (or the connection extra) says otherwise.
DEFAULT_MAX_PAGES = 1000
#: The largest ``max_pages`` accepted.
MAX_PAGES_LIMIT = 1_000_000


class PagePlan(Generic[T]):
    """Which pages to request next, and the checks and merge of what they returned. No I/O.

    Use: call :meth:`next_pages`, request each index it returns, give each answer to :meth:`receive` (in any
    order), and repeat until :attr:`done`; then :meth:`result`. Any method may raise
    :class:`~airflow_provider_modelreg.errors.RegistryResponseError` (or its subclass
    :class:`~airflow_provider_modelreg.errors.RegistryPagingLimitError`): the listing has failed, drop the
    requests in flight.

    :param page_size: items per page asked for.
    :param key: an item's identity (PAI ``VersionName``, Fabric ``id``); items are merged on it.
    :param max_results: stop once this many distinct items are collected (None: all).
    :param max_pages: requests this listing may send at most.
    :param concurrency: pages in flight at most.
    :param total_field: name of the total in the answers, for error messages (``TotalCount``, ``total``).
    :param page_field: name of the page parameter, for error messages (``PageNumber``, ``offset``).
    """

    def __init__(
        self,
        *,
        page_size: int,
        key: Callable[[T], Hashable],
        max_results: int | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        concurrency: int = 8,
        total_field: str = "TotalCount",
        page_field: str = "PageNumber",
    ) -> None:
        if page_size < 1 or max_pages < 1 or concurrency < 1 or (max_results is not None and max_results < 1):
            raise ValueError("page_size, max_pages, concurrency and max_results must be at least 1")
        self.page_size = page_size
        self.key = key
        self.max_results = max_results
        self.max_pages = max_pages
        self.concurrency = concurrency
        self.total_field = total_field
        self.page_field = page_field
        #: requests handed out so far (refetches included)
        self.requests = 0
        self.done = False
        self._next = 0  # next page index never requested
        self._end = 1  # pages [0, _end) are known to be needed
        self._in_flight: set[int] = set()
        self._again: list[int] = []  # indexes to request once more
        self._buffer: dict[int, tuple[Sequence[T], int]] = {}
        self._at = 0  # next index to check and merge
        self._held: dict[int, Sequence[T]] = {}  # a page set aside while the same index is requested again
        self._seen: set[Hashable] = set()
        self._out: list[T] = []
        self._last_total = -1  # total of the last page merged
        self._min_total: int | None = None
        self._max_total = 0

    # -- what to request

    def next_pages(self) -> list[int]:
        """Page indexes to request now (each is then in flight until :meth:`receive` gets its answer)."""
        if self.done:
            return []
        out: list[int] = []
        while self._again and len(self._in_flight) < self.concurrency:
            out.append(self._issue(self._again.pop()))
        ahead = self._at + 2 * self.concurrency
        while len(self._in_flight) < self.concurrency and self._next < min(self._end, ahead):
            out.append(self._issue(self._next))
            self._next += 1
        return out

    def _issue(self, index: int) -> int:
        if self.requests >= self.max_pages:
            raise self._limit_error(f"the listing needs page {index + 1} beyond the cap")
        self.requests += 1
        self._in_flight.add(index)
        return index

    def _limit_error(self, why: str) -> RegistryPagingLimitError:
        return RegistryPagingLimitError(
            field=self.total_field,
            problem=f"{why}: at most max_pages={self.max_pages} requests per listing (largest {self.total_field} "
            f"seen {self._max_total}, page size {self.page_size}); raise max_pages if the registry really holds "
            "that many",
            max_pages=self.max_pages,
        )

    def _plan_end(self, total: int) -> None:
        # pages up to and including the one that must come back short (empty when total is a multiple of the size)
        needed = total // self.page_size + 1
        if self.max_results is not None:
            needed = min(needed, math.ceil(self.max_results / self.page_size))
        if needed > self.max_pages:
            raise self._limit_error(f"{self.total_field} {total} needs {needed} pages")
        self._end = max(self._end, needed)

    # -- what came back

    def _bad(self, field: str, problem: str) -> RegistryResponseError:
        return RegistryResponseError(field=field, problem=problem, request_id=None, status_code=None)

    def receive(self, index: int, items: Sequence[T], total: Any) -> None:
        """The answer to page ``index``: its items and the total it reported (checked here, any type)."""
        if index not in self._in_flight:
            raise ValueError(f"page {index} was not requested")
        self._in_flight.discard(index)
        if self.done:
            return
        if type(total) is not int or total < 0:  # bool is an int subclass: refused too
            raise self._bad(self.total_field, f"must be a non-negative integer, got {total!r}")
        self._max_total = max(self._max_total, total)
        self._plan_end(total)
        self._buffer[index] = (items, total)
        self._merge()

    def _merge(self) -> None:
        while not self.done and self._at in self._buffer:
            index = self._at
            items, total = self._buffer.pop(index)
            self._check(index, items, total)
            if total < self._last_total and index not in self._held:
                # Served before a change that an earlier page saw: items may have shifted past it. Ask again once
                # (keeping what it brought); a total that keeps shrinking (items leaving) is accepted the 2nd time.
                self._held[index] = items
                self._again.append(index)
                return
            min_total = total if self._min_total is None else min(self._min_total, total)
            stable = min_total == self._max_total  # no page has reported another total so far
            added = self._add(items)
            if added < len(items) and stable:
                raise self._bad(
                    self.page_field,
                    f"page {index + 1} repeats {len(items) - added} item(s) of earlier pages while "
                    f"{self.total_field} stayed {total}: the server ignores {self.page_field} or its order is unstable",
                )
            if index and added == 0 and len(items) == self.page_size and total - min_total < self.page_size:
                raise self._bad(
                    self.page_field,
                    f"page {index + 1} adds no new item ({self.total_field} {total}): the server ignores "
                    f"{self.page_field}",
                )
            self._add(self._held.pop(index, ()))
            self._min_total, self._last_total = min_total, total
            self._at += 1
            if self.max_results is not None and len(self._out) >= self.max_results:
                self._finish(complete=False)
            elif len(items) < self.page_size:
                self._finish(complete=True)
            else:
                self._end = max(self._end, self._at + 1)  # a full page: the next one is needed

    def _check(self, index: int, items: Sequence[T], total: int) -> None:
        """A page against its own total (pages are checked in index order: the first bad page is the one named)."""
        size, count, offset = self.page_size, len(items), index * self.page_size
        if count > size:
            raise self._bad(self.page_field, f"page {index + 1} holds {count} items, more than the {size} asked for")
        if count and offset + count > total:
            raise self._bad(
                self.total_field,
                f"is {total}, but page {index + 1} holds items up to position {offset + count}",
            )
        if count < size and offset + count < total:
            raise self._bad(
                self.total_field,
                f"is {total}, but page {index + 1} ends the list after {offset + count} items",
            )

    def _add(self, items: Sequence[T]) -> int:
        seen, out, key, added = self._seen, self._out, self.key, 0
        for item in items:
            k = key(item)
            if k not in seen:
                seen.add(k)
                out.append(item)
                added += 1
        return added

    def _finish(self, *, complete: bool) -> None:
        self.done = True
        self._buffer.clear()
        self._again.clear()
        if not complete:
            return
        unique, low = len(self._out), self._min_total or 0
        if low == self._max_total and unique != low:
            raise self._bad(self.total_field, f"is {low} on every page, but the pages held {unique} distinct items")
        if unique < low:
            raise self._bad(
                self.total_field,
                f"was at least {low} on every page, but the pages held only {unique} distinct items",
            )

    def result(self) -> list[T]:
        """Every item once, in page order (the first ``max_results``)."""
        if not self.done:
            raise RuntimeError("the listing is not finished")
        return self._out if self.max_results is None else self._out[: self.max_results]


# ------------------------------------------------------------------------------------------------- shells


class PagingOptions(TypedDict, Generic[T], total=False):
    """The keyword arguments of :func:`collect_pages` and :func:`acollect_pages`: those of :class:`PagePlan`."""

    page_size: Required[int]
    key: Required[Callable[[T], Hashable]]
    max_results: int | None
    max_pages: int
    concurrency: int
    total_field: str
    page_field: str


def _to_send(plan: PagePlan[T], running: Collection[object]) -> list[int]:
    """The pages the plan wants requested now."""
    wanted = plan.next_pages()
    if not wanted and not running:
        raise RuntimeError("paging plan stalled")  # a bug in PagePlan, never a server's doing
    return wanted


def _receive(plan: PagePlan[T], running: dict[Any, int], finished: Iterable[Any]) -> None:
    """The answers of the finished requests (futures or tasks of ``running``) to the plan, in page order."""
    for done in sorted(finished, key=running.__getitem__):
        plan.receive(running.pop(done), *done.result())


def collect_pages(fetch: Callable[[int], tuple[Sequence[T], Any]], **options: Unpack[PagingOptions[T]]) -> list[T]:
    """Run a :class:`PagePlan` with threads: ``fetch(index)`` returns ``(items, total reported)``.

    A lone page is fetched in the calling thread; a thread pool is created only when pages can overlap. Any error
    (from ``fetch`` or from the plan's checks) propagates after the requests in flight finish: never a partial list.
    """
    plan: PagePlan[T] = PagePlan(**options)
    # The plan hands out twice as many pages as there are threads: a thread that finishes a page starts the next
    # queued one at once instead of waiting for this thread to wake up; still `concurrency` requests on the wire.
    threads = plan.concurrency
    plan.concurrency = 2 * threads
    pool: ThreadPoolExecutor | None = None
    running: dict[Future[tuple[Sequence[T], Any]], int] = {}
    try:
        while not plan.done:
            wanted = _to_send(plan, running)
            if len(wanted) == 1 and not running:
                plan.receive(wanted[0], *fetch(wanted[0]))
                continue
            if wanted:
                pool = pool or ThreadPoolExecutor(max_workers=threads, thread_name_prefix="modelreg-page")
                for index in wanted:
                    running[pool.submit(fetch, index)] = index
            _receive(plan, running, wait(running, return_when=FIRST_COMPLETED).done)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return plan.result()


async def acollect_pages(
    fetch: Callable[[int], Awaitable[tuple[Sequence[T], Any]]], **options: Unpack[PagingOptions[T]]
) -> list[T]:
    """Run a :class:`PagePlan` with asyncio tasks (the async twin of :func:`collect_pages`).

    Tasks are created only for the pages the plan asks for (never all up front). On any error the pages in flight
    are cancelled: never a partial list.
    """
    plan: PagePlan[T] = PagePlan(**options)
    running: dict[asyncio.Future[tuple[Sequence[T], Any]], int] = {}
    try:
        while not plan.done:
            wanted = _to_send(plan, running)
            if len(wanted) == 1 and not running:
                plan.receive(wanted[0], *(await fetch(wanted[0])))
                continue
            for index in wanted:
                running[asyncio.ensure_future(fetch(index))] = index
            finished, _ = await asyncio.wait(list(running), return_when=asyncio.FIRST_COMPLETED)
            _receive(plan, running, finished)
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    return plan.result()
