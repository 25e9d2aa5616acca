"""PagePlan (the sans-IO paging core) on the cases mutation testing found untested (``make mutation``,
docs/TESTING.md): argument bounds, the exact words of every error, the request cap counting refetches, a page
shifted by exactly one page of new versions, a listing with ``max_results`` whose pages overlap, and the final
count checks. Plain data: answers are delivered in the order the pages were asked for."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from airflow_provider_modelreg.errors import RegistryPagingLimitError, RegistryResponseError
from airflow_provider_modelreg.paging import PagePlan


def r(start: int, stop: int) -> list[int]:
    """Items ``start`` .. ``stop`` inclusive."""
    return list(range(start, stop + 1))


Answers = dict[int, list[tuple[list[int], int]]]


def drive(answers: Answers, **kwargs: Any) -> list[int]:
    """Run a plan with page size 10 (unless given): ``answers[index]`` lists the answers to the 1st, 2nd, ...
    request of that page (the last one repeats); answers come back in the order the pages were asked for."""
    plan: PagePlan[int] = PagePlan(**{"page_size": 10, "key": lambda x: x, **kwargs})
    served: dict[int, int] = defaultdict(int)
    flight: list[int] = []
    while not plan.done:
        flight += plan.next_pages()
        assert flight, "the plan stalled: nothing to request and nothing in flight"
        index = flight.pop(0)
        given = answers[index]
        items, total = given[min(served[index], len(given) - 1)]
        served[index] += 1
        plan.receive(index, items, total)
    return plan.result()


def failure(answers: Answers, **kwargs: Any) -> RegistryResponseError:
    with pytest.raises(RegistryResponseError) as caught:
        drive(answers, **kwargs)
    return caught.value


# ------------------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize("bad", ["page_size", "max_pages", "concurrency", "max_results"])
def test_each_argument_below_one_is_refused_alone(bad: str) -> None:
    kwargs: dict[str, Any] = {"page_size": 10, "max_pages": 5, "concurrency": 2, "max_results": 3, bad: 0}
    with pytest.raises(ValueError) as caught:
        PagePlan(key=lambda x: x, **kwargs)
    assert str(caught.value) == "page_size, max_pages, concurrency and max_results must be at least 1"


def test_one_is_enough_for_every_argument() -> None:
    plan: PagePlan[int] = PagePlan(page_size=1, key=lambda x: x, max_results=1, max_pages=1, concurrency=1)
    assert plan.done is False
    assert plan.next_pages() == [0]
    plan.receive(0, [7], 5)
    assert plan.done is True
    assert plan.result() == [7]


def test_eight_pages_in_flight_by_default() -> None:
    plan: PagePlan[int] = PagePlan(page_size=10, key=lambda x: x)
    assert plan.next_pages() == [0]
    plan.receive(0, r(0, 9), 1000)
    assert plan.next_pages() == [1, 2, 3, 4, 5, 6, 7, 8]


def test_result_before_the_end_is_refused() -> None:
    plan: PagePlan[int] = PagePlan(page_size=10, key=lambda x: x)
    with pytest.raises(RuntimeError) as caught:
        plan.result()
    assert str(caught.value) == "the listing is not finished"


# ------------------------------------------------------------------------------------------------ answers refused


def test_a_total_that_is_no_integer() -> None:
    err = failure({0: [(r(0, 9), True)]})
    assert (err.field, err.problem) == ("TotalCount", "must be a non-negative integer, got True")


def test_a_page_larger_than_asked() -> None:
    err = failure({0: [(r(0, 9), 40)], 1: [(r(10, 20), 40)], 2: [(r(20, 29), 40)], 3: [(r(30, 39), 40)], 4: [([], 40)]})
    assert (err.field, err.problem) == ("PageNumber", "page 2 holds 11 items, more than the 10 asked for")


def test_a_page_past_the_total() -> None:
    err = failure({0: [(r(0, 9), 15)], 1: [(r(10, 19), 15)]})
    assert (err.field, err.problem) == ("TotalCount", "is 15, but page 2 holds items up to position 20")


def test_a_page_ending_before_the_total() -> None:
    err = failure({0: [(r(0, 9), 30)], 1: [(r(10, 14), 30)], 2: [(r(20, 29), 30)], 3: [([], 30)]})
    assert (err.field, err.problem) == ("TotalCount", "is 30, but page 2 ends the list after 15 items")


def test_a_page_repeating_items_while_the_total_stays() -> None:
    err = failure({0: [(r(0, 9), 20)], 1: [(r(5, 14), 20)], 2: [([], 20)]})
    assert (err.field, err.problem) == (
        "PageNumber",
        "page 2 repeats 5 item(s) of earlier pages while TotalCount stayed 20: the server ignores PageNumber or its "
        "order is unstable",
    )


def test_a_full_page_adding_nothing_while_the_total_grew_less_than_a_page() -> None:
    err = failure({0: [(r(0, 9), 20)], 1: [(r(0, 9), 21)], 2: [(r(10, 19), 21)], 3: [([20], 21)]})
    assert (err.field, err.problem) == (
        "PageNumber",
        "page 2 adds no new item (TotalCount 21): the server ignores PageNumber",
    )


def test_a_full_page_adding_nothing_after_exactly_one_page_of_new_versions() -> None:
    """Ten versions created in front while listing push page 1's items to page 2: a page of nothing new is what
    the shift looks like, and every version that existed at the start is still returned."""
    got = drive({0: [(r(0, 9), 20)], 1: [(r(0, 9), 30)], 2: [(r(10, 19), 30)], 3: [([], 30)]})
    assert got == r(0, 19)


# ------------------------------------------------------------------------------------------------ the cap


def test_the_cap_counts_a_refetch() -> None:
    """Three requests allowed: pages 0, 1 and 2 use them; page 1 came back with a smaller total, and asking for it
    again would be the 4th request."""
    answers: Answers = {0: [(r(0, 9), 20)], 1: [(r(10, 14), 15), (r(10, 19), 20)], 2: [([], 20)]}
    with pytest.raises(RegistryPagingLimitError) as caught:
        drive(answers, max_pages=3)
    err = caught.value
    assert err.field == "TotalCount"
    assert err.max_pages == 3
    assert err.problem == (
        "the listing needs page 2 beyond the cap: at most max_pages=3 requests per listing (largest TotalCount seen "
        "20, page size 10); raise max_pages if the registry really holds that many"
    )
    assert drive(answers, max_pages=4) == r(0, 19)


def test_the_cap_against_the_total_reported() -> None:
    with pytest.raises(RegistryPagingLimitError) as caught:
        drive({0: [(r(0, 9), 5000)]}, max_pages=100)
    assert caught.value.problem == (
        "TotalCount 5000 needs 501 pages: at most max_pages=100 requests per listing (largest TotalCount seen 5000, "
        "page size 10); raise max_pages if the registry really holds that many"
    )


# ------------------------------------------------------------------------------------------------ the end


def test_max_results_reads_on_while_overlapping_pages_leave_it_short() -> None:
    """max_results=20 needs two pages, but page 2 overlaps page 1 (the total grew): a third page is read."""
    answers: Answers = {0: [(r(0, 9), 30)], 1: [(r(5, 14), 31)], 2: [(r(15, 24), 31)]}
    assert drive(answers, max_results=20) == r(0, 19)


def test_fewer_distinct_items_than_every_total() -> None:
    err = failure({0: [(r(0, 9), 20)], 1: [(r(5, 14), 21)], 2: [([15], 21)]})
    assert (err.field, err.problem) == (
        "TotalCount",
        "was at least 20 on every page, but the pages held only 16 distinct items",
    )


def test_more_distinct_items_than_the_one_total() -> None:
    """Page 2 first came back with a smaller total (set aside, asked again); its items count too, and then the
    listing holds 25 distinct items where every merged page said 20."""
    answers: Answers = {0: [(r(0, 9), 20)], 1: [(r(100, 104), 15), (r(10, 19), 20)], 2: [([], 20)]}
    err = failure(answers)
    assert (err.field, err.problem) == ("TotalCount", "is 20 on every page, but the pages held 25 distinct items")
