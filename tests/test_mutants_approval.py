"""The approval gate's core (airflow_provider_modelreg.approval) on the cases mutation testing found untested
(``make mutation``, docs/TESTING.md): every decision exactly (outcome, version, outlook), every error exactly
(field, words, request id), the input checks at their bounds, ties in creation time, and when a poll reads one
more page of Approved versions. Plain data, no I/O; targets are built inside the tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_modelreg.approval import (
    RECENT_PAGE_SIZE,
    Anchor,
    ApprovalCheck,
    ApprovalDecision,
    ApprovalTarget,
    Outcome,
    ReadApproved,
    ReadPending,
    ReadRecent,
    ReadVersion,
    VersionPage,
    check_deployable,
    check_max_failures,
    check_poke_interval,
    describe_page,
    parse_created_after,
    rendered_optional,
)
from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.models import PaiModelVersion

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ver(name: str, status: str | None = "Approved", minutes: float | None = 0, **extra: Any) -> PaiModelVersion:
    data: dict[str, Any] = {"VersionName": name, "Uri": f"oss://b/{name}/", **extra}
    if status is not None:
        data["ApprovalStatus"] = status
    if minutes is not None:
        data["GmtCreateTime"] = (T0 + timedelta(minutes=minutes)).isoformat()
    return PaiModelVersion.model_validate(data)


def page(*versions: PaiModelVersion, total: int | None = None) -> VersionPage:
    return VersionPage(tuple(versions), len(versions) if total is None else total, "req-1")


def drive(check: ApprovalCheck, answers: dict[Any, Any]) -> list[Any]:
    """Feed answers by read; returns the reads asked, in order."""
    asked = []
    while (read := check.next_read()) is not None:
        asked.append(read)
        check.receive(read, answers[read])
    return asked


def failure(check: ApprovalCheck, answers: dict[Any, Any]) -> RegistryResponseError:
    with pytest.raises(RegistryResponseError) as caught:
        drive(check, answers)
    return caught.value


def named(name: str = "1.1.0") -> ApprovalCheck:
    return ApprovalCheck(ApprovalTarget("m", version_name=name))


# ------------------------------------------------------------------------------------------------ input


def test_outcomes_that_end_the_wait() -> None:
    assert [o.is_terminal() for o in (Outcome.WAITING, Outcome.APPROVED, Outcome.REJECTED)] == [False, True, True]


@pytest.mark.parametrize(("value", "expected"), [(0.1, 0.1), (5, 5.0), (86400, 86400.0), (0.5, 0.5)])
def test_poke_interval_accepted(value: float, expected: float) -> None:
    got = check_poke_interval(value)
    assert got == expected and type(got) is float


@pytest.mark.parametrize("value", [0, -1, 86400.5, 86401, True, "5", None])
def test_poke_interval_refused(value: Any) -> None:
    with pytest.raises(RegistryInputError) as bad:
        check_poke_interval(value)
    assert (bad.value.field, bad.value.rule, bad.value.value) == (
        "poke_interval",
        "must be a number of seconds, more than 0 and at most 86400",
        value,
    )
    with pytest.raises(RegistryInputError) as named_field:
        check_poke_interval(value, "interval")
    assert named_field.value.field == "interval"


@pytest.mark.parametrize("value", [1, 2, 999, 1000])
def test_max_failures_accepted(value: int) -> None:
    assert check_max_failures(value) == value


@pytest.mark.parametrize("value", [0, 1001, True, 2.5, 2.0, "3"])
def test_max_failures_refused(value: Any) -> None:
    with pytest.raises(RegistryInputError) as bad:
        check_max_failures(value)
    assert (bad.value.field, bad.value.rule, bad.value.value) == (
        "max_failures",
        "must be an integer from 1 to 1000",
        value,
    )


def test_rendered_optional() -> None:
    assert rendered_optional(None, "f") is None
    assert rendered_optional("1.0.0", "f") == "1.0.0"
    with pytest.raises(RegistryInputError) as bad:
        rendered_optional("None", "after_version")
    assert (bad.value.field, bad.value.value) == ("after_version", "None")


def test_created_after_is_returned_in_utc() -> None:
    parsed = parse_created_after("2024-05-01T08:00:00+08:00")
    assert parsed == datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert parsed is not None and parsed.tzinfo is timezone.utc
    assert parse_created_after("2024-05-01T00:00:00Z") == datetime(2024, 5, 1, tzinfo=timezone.utc)
    with pytest.raises(RegistryInputError):  # ISO 8601 writes UTC as Z; a lowercase z is not taken
        parse_created_after("2024-05-01T00:00:00z")


def test_targets_refuse_bad_names_and_combinations() -> None:
    with pytest.raises(RegistryInputError) as bad:
        ApprovalTarget("m", version_name="no spaces")
    assert bad.value.field == "version_name"
    with pytest.raises(RegistryInputError) as bad:
        ApprovalTarget("m", after_version="no spaces")
    assert bad.value.field == "after_version"
    for extra in ({"after_version": "1.0.0"}, {"created_after": T0}):
        with pytest.raises(RegistryInputError) as bad:
            ApprovalTarget("m", version_name="1.1.0", **extra)  # type: ignore[arg-type]
        assert (bad.value.field, bad.value.rule, bad.value.value) == (
            "version_name",
            "cannot be combined with after_version or created_after",
            "1.1.0",
        )
    with pytest.raises(RegistryInputError) as bad:
        ApprovalTarget("m", after_version="1.0.0", created_after=T0)
    assert (bad.value.field, bad.value.rule) == ("after_version", "give at most one of after_version and created_after")


def test_targets_describe_themselves() -> None:
    assert ApprovalTarget("m", version_name="1.1.0").describe() == "version 1.1.0"
    assert ApprovalTarget("m", after_version="1.0.0").describe() == "the next Approved version after 1.0.0"
    assert (
        ApprovalTarget("m", created_after=T0).describe()
        == "the next Approved version created after 2024-01-01T00:00:00+00:00"
    )
    assert ApprovalTarget("m").describe() == "the newest Approved version"


# ------------------------------------------------------------------------------------------------ named


@pytest.mark.parametrize(
    ("status", "outcome", "outlook"),
    [
        ("Approved", Outcome.APPROVED, "1.1.0 is Approved"),
        ("Rejected", Outcome.REJECTED, "1.1.0 is Rejected"),
        ("Pending", Outcome.WAITING, "1.1.0 is Pending"),
    ],
)
def test_named_decisions(status: str, outcome: Outcome, outlook: str) -> None:
    version = ver("1.1.0", status, 5)
    check = named()
    drive(check, {ReadRecent("m"): page(version)})
    assert check.decision == ApprovalDecision(outcome, version, outlook)


def test_named_missing_from_a_complete_page() -> None:
    check = named()
    drive(check, {ReadRecent("m"): page(ver("1.0.0"))})
    assert check.decision == ApprovalDecision(Outcome.WAITING, None, "1.1.0 does not exist yet")


def test_named_missing_from_a_full_page_is_always_read_directly() -> None:
    """A full page is never taken as the whole model, whatever its total says."""
    full = page(*(ver(f"2.{i}", "Pending", 100 - i) for i in range(RECENT_PAGE_SIZE)), total=RECENT_PAGE_SIZE)
    check = named()
    asked = drive(check, {ReadRecent("m"): full, ReadVersion("m", "1.1.0"): None})
    assert asked == [ReadRecent("m"), ReadVersion("m", "1.1.0")]
    assert check.decision == ApprovalDecision(Outcome.WAITING, None, "1.1.0 does not exist yet")


def _direct(answer: Any) -> dict[Any, Any]:
    full = page(*(ver(f"2.{i}", "Pending", 100 - i) for i in range(RECENT_PAGE_SIZE)), total=150)
    return {ReadRecent("m"): full, ReadVersion("m", "1.1.0"): answer}


def test_named_direct_answers_the_gate_cannot_judge() -> None:
    err = failure(named(), _direct(ver("1.1.0", "Archived", 1, RequestId="req-get")))
    assert (err.field, err.problem, err.request_id) == (
        "ApprovalStatus",
        "version 1.1.0 has status 'Archived'; expected Pending, Approved or Rejected",
        "req-get",
    )
    err = failure(named(), _direct(ver("6.6.6", RequestId="req-get")))
    assert (err.field, err.problem, err.request_id) == (
        "VersionName",
        "asked for version 1.1.0, the answer is about 6.6.6",
        "req-get",
    )
    err = failure(named(), _direct(ver("1.1.0", Uri=" ", RequestId="req-get")))
    assert (err.field, err.problem, err.request_id) == (
        "Uri",
        "version 1.1.0 is Approved but has no Uri to deploy",
        "req-get",
    )
    # an unreadable answer is the registry's doing, answered with HTTP 200: not retried as a transient failure
    assert (err.http_status, err.retryable) == (200, False)


def test_check_deployable() -> None:
    check_deployable(ver("1.1.0"))
    with pytest.raises(RegistryResponseError) as err:
        check_deployable(ver("1.1.0", Uri=None), "req-9")
    assert (err.value.field, err.value.request_id) == ("Uri", "req-9")
    with pytest.raises(RegistryResponseError) as err:
        check_deployable(ver("1.1.0", Uri=""))
    assert err.value.request_id is None


# ------------------------------------------------------------------------------------------------ the anchor


def test_after_version_that_does_not_exist() -> None:
    check = ApprovalCheck(ApprovalTarget("m", after_version="1.0.0"))
    with pytest.raises(RegistryInputError) as bad:
        drive(check, {ReadVersion("m", "1.0.0"): None})
    assert (bad.value.field, bad.value.rule, bad.value.value) == (
        "after_version",
        "names no version of model m (it does not exist)",
        "1.0.0",
    )


@pytest.mark.parametrize(
    ("answer", "field", "problem"),
    [
        (ver("0.9.0", RequestId="req-get"), "VersionName", "asked for version 1.0.0, the answer is about 0.9.0"),
        (
            ver("1.0.0", minutes=None, RequestId="req-get"),
            "GmtCreateTime",
            "after_version 1.0.0 has no creation time, so no version can be judged newer than it",
        ),
    ],
)
def test_an_anchor_answer_the_gate_cannot_use(answer: PaiModelVersion, field: str, problem: str) -> None:
    err = failure(ApprovalCheck(ApprovalTarget("m", after_version="1.0.0")), {ReadVersion("m", "1.0.0"): answer})
    assert (err.field, err.problem, err.request_id) == (field, problem, "req-get")


def test_the_anchor_itself_is_not_newer_but_a_version_of_its_instant_named_after_it_is() -> None:
    target = ApprovalTarget("m", after_version="1.0.0")
    alone = ApprovalCheck(target)
    drive(
        alone,
        {ReadVersion("m", "1.0.0"): ver("1.0.0", minutes=10), ReadApproved("m", 0): page(ver("1.0.0", minutes=10))},
    )
    assert alone.anchor == Anchor(T0 + timedelta(minutes=10), "1.0.0")
    assert alone.decision == ApprovalDecision(
        Outcome.WAITING, None, "no Approved version newer than the anchor (1.0.0)"
    )
    # ListModelVersions orders by creation time only: the anchor may come first among versions of its instant
    tie = ApprovalCheck(target)
    newer = ver("1.0.1", minutes=10)
    drive(
        tie,
        {
            ReadVersion("m", "1.0.0"): ver("1.0.0", minutes=10),
            ReadApproved("m", 0): page(ver("1.0.0", minutes=10), newer, ver("0.9.0", minutes=5)),
        },
    )
    assert tie.decision == ApprovalDecision(Outcome.APPROVED, newer, "1.0.1 is Approved")


# ------------------------------------------------------------------------------------------------ next approved


def test_the_first_deployment_takes_the_newest_approved() -> None:
    newest = ver("1.2.0", minutes=30)
    check = ApprovalCheck(ApprovalTarget("m"))
    assert drive(check, {ReadApproved("m", 0): page(newest, ver("1.1.0", minutes=20))}) == [ReadApproved("m", 0)]
    assert check.decision == ApprovalDecision(Outcome.APPROVED, newest, "1.2.0 is Approved")


def test_nothing_approved_yet() -> None:
    check = ApprovalCheck(ApprovalTarget("m"))
    drive(check, {ReadApproved("m", 0): page()})
    assert check.decision == ApprovalDecision(Outcome.WAITING, None, "no Approved version newer than the anchor (none)")
    later = ApprovalCheck(ApprovalTarget("m", created_after=T0))
    drive(later, {ReadApproved("m", 0): page(ver("1.0.0", minutes=0))})
    assert later.decision == ApprovalDecision(
        Outcome.WAITING, None, "no Approved version newer than the anchor (2024-01-01T00:00:00+00:00)"
    )


def test_a_full_page_whose_best_is_newer_than_its_last_decides_alone() -> None:
    full = page(*(ver(f"2.{i:03d}", minutes=200 - i) for i in range(RECENT_PAGE_SIZE)), total=500)
    for target in (ApprovalTarget("m"), ApprovalTarget("m", created_after=T0)):
        check = ApprovalCheck(target)
        assert drive(check, {ReadApproved("m", 0): full}) == [ReadApproved("m", 0)]
        assert check.decision == ApprovalDecision(Outcome.APPROVED, full.versions[0], "2.000 is Approved")


def test_a_full_page_ending_in_the_best_ones_instant_reads_on() -> None:
    """The best version's creation time is also the last one's: the next page may hold one of that instant whose
    name sorts after it."""
    full = page(*(ver(f"2.{i:03d}", minutes=50) for i in range(RECENT_PAGE_SIZE)), total=101)
    after = ver("2.999", minutes=50)
    check = ApprovalCheck(ApprovalTarget("m"))
    asked = drive(check, {ReadApproved("m", 0): full, ReadApproved("m", 1): page(after, total=101)})
    assert asked == [ReadApproved("m", 0), ReadApproved("m", 1)]
    assert check.decision == ApprovalDecision(Outcome.APPROVED, after, "2.999 is Approved")


def test_approved_pages_must_be_newest_first_across_pages() -> None:
    same_instant = page(*(ver(f"0.0.{i}", minutes=0) for i in range(RECENT_PAGE_SIZE)), total=200)
    check = ApprovalCheck(ApprovalTarget("m", created_after=T0))
    err = failure(check, {ReadApproved("m", 0): same_instant, ReadApproved("m", 1): page(ver("9.0.0", minutes=60))})
    assert (err.field, err.problem, err.request_id) == (
        "GmtCreateTime",
        "versions are not listed newest first",
        "req-1",
    )


def test_one_poll_reads_at_most_100_pages_of_approved_versions() -> None:
    """Every version created in the instant of created_after (which is strict): none counts, each full page asks
    for the next one."""
    same_instant = page(*(ver(f"0.0.{i}", minutes=0) for i in range(RECENT_PAGE_SIZE)), total=100_000)
    answers: dict[Any, Any] = {ReadApproved("m", n): same_instant for n in range(99)}
    answers[ReadApproved("m", 99)] = page(ver("0.0.0", minutes=0), total=100_000)
    check = ApprovalCheck(ApprovalTarget("m", created_after=T0))
    assert len(drive(check, answers)) == 100
    assert check.decision is not None and check.decision.outcome is Outcome.WAITING
    answers[ReadApproved("m", 99)] = same_instant
    err = failure(ApprovalCheck(ApprovalTarget("m", created_after=T0)), answers)
    assert (err.field, err.problem, err.request_id) == (
        "TotalCount",
        "more than 100 pages of Approved versions to read in one poll",
        "req-1",
    )


@pytest.mark.parametrize(
    ("versions", "field", "problem"),
    [
        (
            (ver("1.1.0", "Pending", 20),),
            "ApprovalStatus",
            "version 1.1.0 with status 'Pending' in a listing of Approved versions",
        ),
        ((ver("1.1.0", minutes=None),), "GmtCreateTime", "version 1.1.0 has no creation time"),
        ((ver("1.2.0", minutes=30, Uri=None),), "Uri", "version 1.2.0 is Approved but has no Uri to deploy"),
    ],
)
def test_approved_listings_the_gate_cannot_judge(
    versions: tuple[PaiModelVersion, ...], field: str, problem: str
) -> None:
    err = failure(ApprovalCheck(ApprovalTarget("m")), {ReadApproved("m", 0): page(*versions)})
    assert (err.field, err.problem, err.request_id) == (field, problem, "req-1")


def test_an_answer_to_another_read_is_a_bug() -> None:
    check = named()
    with pytest.raises(RuntimeError) as err:
        check.receive(ReadApproved("m", 0), page())
    assert str(err.value) == (
        "answer for ReadApproved(model_id='m', page=0) while waiting for ReadRecent(model_id='m', page=0)"
    )


# ------------------------------------------------------------------------------------------------ the hub's log line


def test_describe_page() -> None:
    two = page(ver("1.2.0", minutes=2), ver("1.1.0", minutes=1), total=7)
    assert describe_page(ReadApproved("m", 0), two) == "7 Approved versions; newest 1.2.0 (Approved)"
    assert describe_page(ReadPending("m", 0), page()) == "0 Pending versions; newest none"
    assert describe_page(ReadRecent("m", 0), two) == "7 versions; newest 1.2.0 (Approved)"
    assert describe_page(ReadRecent("m", 2), two) == "7 versions; page 3 starts at 1.2.0 (Approved)"
    assert (
        describe_page(ReadPending("m", 1), page(ver("0.1", "Pending")))
        == "1 Pending versions; page 2 starts at 0.1 (Pending)"
    )
    assert describe_page(ReadVersion("m", "1.1.0"), None) == "does not exist"
    # a page answering a read without a page index is described as the first page
    assert describe_page(ReadVersion("m", "1.1.0"), two) == "7 versions; newest 1.2.0 (Approved)"
    assert describe_page(ReadVersion("m", "1.1.0"), ver("1.1.0", "Rejected")) == "1.1.0 (Rejected)"


def test_the_deprecated_name_decision_is_the_approval_decision_with_a_warning() -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning

    import airflow_provider_modelreg.approval as approval

    with pytest.warns(AirflowProviderDeprecationWarning, match="Decision is deprecated, use ApprovalDecision"):
        assert approval.Decision is ApprovalDecision
    with pytest.raises(AttributeError, match="Verdict"):
        approval.Verdict  # noqa: B018


# ------------------------------------------------------------------ the alias lookup, page by page (plain data)


def _holding(name: str, minutes: float, value: str = "champion", key: str = "alias") -> PaiModelVersion:
    return ver(name, minutes=minutes, Labels=[{"Key": key, "Value": value}])


def test_an_alias_lookup_reads_the_label_filtered_pages_until_a_short_one() -> None:
    from airflow_provider_modelreg.approval import RECENT_PAGE_SIZE, AliasLookup, ReadLabelled

    lookup = AliasLookup("m-1", "alias", "champion")
    assert lookup.next_read() == ReadLabelled("m-1", "champion", 0) and not lookup.done
    others = [ver(f"0.{i}.0", minutes=-i) for i in range(RECENT_PAGE_SIZE - 1)]  # matched the filter, hold nothing
    first = VersionPage((_holding("1.0.0", 1), *others), 500, "req-a")
    lookup.receive(ReadLabelled("m-1", "champion", 0), first)
    assert lookup.next_read() == ReadLabelled("m-1", "champion", 1) and not lookup.done and lookup.holder is None
    with pytest.raises(RuntimeError, match="while waiting for"):
        lookup.receive(ReadLabelled("m-1", "champion", 0), first)  # an answer to a read it did not ask
    second = VersionPage((_holding("1.0.0", 1), _holding("2.0.0", 2), _holding("3.0.0", 3, value="champion-2")), 3)
    lookup.receive(ReadLabelled("m-1", "champion", 1), VersionPage(second.versions, 3, "req-b"))
    assert lookup.done and lookup.next_read() is None
    assert lookup.holder is not None and lookup.holder.version_name == "2.0.0"  # newest exact holder, seen once
    assert lookup.request_id == "req-b"


def test_an_alias_lookup_with_no_holder_and_a_key_that_differs() -> None:
    from airflow_provider_modelreg.approval import AliasLookup, ReadLabelled

    lookup = AliasLookup("m-1", "stage", "champion")
    lookup.receive(ReadLabelled("m-1", "champion", 0), VersionPage((_holding("1.0.0", 1),), 1, "r"))
    assert lookup.done and lookup.holder is None  # alias=champion is not stage=champion


def test_an_alias_lookup_refuses_more_pages_than_one_poll_may_read() -> None:
    from airflow_provider_modelreg.approval import MAX_APPROVED_PAGES, RECENT_PAGE_SIZE, AliasLookup, ReadLabelled

    lookup = AliasLookup("m-1", "alias", "champion")
    full = VersionPage(tuple(ver(f"0.{i}.0", minutes=-i) for i in range(RECENT_PAGE_SIZE)), 10**6, "req-z")
    for number in range(MAX_APPROVED_PAGES - 1):
        lookup.receive(ReadLabelled("m-1", "champion", number), full)
    assert lookup.next_read() == ReadLabelled("m-1", "champion", MAX_APPROVED_PAGES - 1)
    with pytest.raises(RegistryResponseError) as err:
        lookup.receive(ReadLabelled("m-1", "champion", MAX_APPROVED_PAGES - 1), full)
    assert err.value.field == "TotalCount" and err.value.request_id == "req-z"
    assert f"more than {MAX_APPROVED_PAGES} pages" in str(err.value) and "'champion'" in str(err.value)
    assert not lookup.done


def test_an_alias_lookup_refuses_a_listing_that_ends_before_its_total() -> None:
    from airflow_provider_modelreg.approval import RECENT_PAGE_SIZE, AliasLookup, ReadLabelled

    full = VersionPage(tuple(ver(f"0.{i}.0", minutes=-i) for i in range(RECENT_PAGE_SIZE)), 160, "req-1")
    for last, total in ((59, 160), (60, 160), (60, 161)):
        lookup = AliasLookup("m-1", "alias", "champion")
        lookup.receive(ReadLabelled("m-1", "champion", 0), full)
        short = VersionPage(tuple(_holding(f"1.{i}.0", i) for i in range(last)), total, "req-2")
        if RECENT_PAGE_SIZE + last >= total:
            lookup.receive(ReadLabelled("m-1", "champion", 1), short)
            assert lookup.done and lookup.holder is not None and lookup.holder.version_name == f"1.{last - 1}.0"
            continue
        with pytest.raises(RegistryResponseError) as err:  # a capped page size: the holder may be further on
            lookup.receive(ReadLabelled("m-1", "champion", 1), short)
        assert err.value.field == "TotalCount" and err.value.request_id == "req-2" and not lookup.done
        assert f"{total} versions labelled 'champion', but the listing ended after {RECENT_PAGE_SIZE + last}" in str(
            err.value
        )


def test_an_alias_holder_without_a_creation_time_is_an_error_with_the_pages_request_id() -> None:
    from airflow_provider_modelreg.approval import AliasLookup, ReadLabelled

    undated = ver("1.0.0", minutes=None, Labels=[{"Key": "alias", "Value": "champion"}])
    lookup = AliasLookup("m-1", "alias", "champion")
    with pytest.raises(RegistryResponseError) as err:
        lookup.receive(ReadLabelled("m-1", "champion", 0), VersionPage((undated,), 1, "req-u"))
    assert err.value.field == "GmtCreateTime" and err.value.request_id == "req-u"


def test_describe_page_of_a_label_filtered_read() -> None:
    from airflow_provider_modelreg.approval import ReadLabelled

    answer = VersionPage((_holding("2.0.0", 2),), 4, "r")
    assert describe_page(ReadLabelled("m", "champion", 0), answer) == (
        "4 versions labelled like 'champion'; newest 2.0.0 (Approved)"
    )
    assert describe_page(ReadLabelled("m", "champion", 2), answer) == (
        "4 versions labelled like 'champion'; page 3 starts at 2.0.0 (Approved)"
    )
