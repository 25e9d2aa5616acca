"""The decision core with plain data only (no HTTP, no Airflow): reads asked for, answers given, decision made."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_modelreg.approval import (
    RECENT_PAGE_SIZE,
    Anchor,
    ApprovalCheck,
    ApprovalTarget,
    Outcome,
    ReadApproved,
    ReadRecent,
    ReadVersion,
    VersionPage,
)
from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.models import PaiModelVersion

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def ver(name: str, status: str | None = "Approved", minutes: float = 0, **extra: Any) -> PaiModelVersion:
    data: dict[str, Any] = {"VersionName": name, "Uri": f"oss://b/{name}/", **extra}
    if status is not None:
        data["ApprovalStatus"] = status
    if minutes is not None:
        data["GmtCreateTime"] = (T0 + timedelta(minutes=minutes)).isoformat()
    return PaiModelVersion.model_validate(data)


def page(*versions: PaiModelVersion, total: int | None = None) -> VersionPage:
    return VersionPage(tuple(versions), len(versions) if total is None else total, "req-1")


def drive(check: Any, answers: dict[Any, Any]) -> list[Any]:
    """Feed answers by read; returns the reads asked, in order."""
    asked = []
    while (read := check.next_read()) is not None:
        asked.append(read)
        check.receive(read, answers[read])
    return asked


NAMED = ApprovalTarget("m", version_name="1.1.0")
AFTER = ApprovalTarget("m", after_version="1.0.0")


def test_named_is_answered_from_the_shared_newest_page_when_it_is_there() -> None:
    check = ApprovalCheck(NAMED)
    asked = drive(check, {ReadRecent("m"): page(ver("1.1.0", "Pending", 2), ver("1.0.0", "Approved", 1))})
    assert asked == [ReadRecent("m")]
    assert check.decision is not None and check.decision.outcome is Outcome.WAITING
    assert check.decision.outlook == "1.1.0 is Pending"


def test_named_missing_from_a_complete_page_does_not_exist_yet_without_another_read() -> None:
    check = ApprovalCheck(NAMED)
    assert drive(check, {ReadRecent("m"): page(ver("1.0.0"))}) == [ReadRecent("m")]
    assert check.decision is not None and check.decision.outcome is Outcome.WAITING
    assert check.decision.version is None


def test_named_missing_from_a_full_page_is_read_directly() -> None:
    full = page(*(ver(f"2.{i}", "Pending", 100 - i) for i in range(RECENT_PAGE_SIZE)), total=150)
    check = ApprovalCheck(NAMED)
    asked = drive(check, {ReadRecent("m"): full, ReadVersion("m", "1.1.0"): ver("1.1.0", "Rejected", 1)})
    assert asked == [ReadRecent("m"), ReadVersion("m", "1.1.0")]
    assert check.decision is not None and check.decision.outcome is Outcome.REJECTED


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        (ver("1.1.0", None), "ApprovalStatus"),
        (ver("1.1.0", "Approving"), "ApprovalStatus"),
        (ver("1.1.0", "Approved", Uri=""), "Uri"),
        (ver("1.1.0", "Approved", Uri="   "), "Uri"),
    ],
)
def test_named_answers_the_gate_cannot_judge(answer: PaiModelVersion, field: str) -> None:
    with pytest.raises(RegistryResponseError) as err:
        drive(ApprovalCheck(NAMED), {ReadRecent("m"): page(answer)})
    assert err.value.field == field and err.value.request_id == "req-1"


def test_a_direct_read_about_another_version_is_refused() -> None:
    full = page(*(ver(f"2.{i}", "Pending", 100 - i) for i in range(RECENT_PAGE_SIZE)), total=150)
    with pytest.raises(RegistryResponseError) as err:
        drive(ApprovalCheck(NAMED), {ReadRecent("m"): full, ReadVersion("m", "1.1.0"): ver("6.6.6")})
    assert err.value.field == "VersionName"


def test_next_resolves_the_anchor_once_then_reads_approved_pages() -> None:
    check = ApprovalCheck(AFTER)
    answers = {
        ReadVersion("m", "1.0.0"): ver("1.0.0", "Approved", 10),
        ReadApproved("m", 0): page(
            ver("1.2.0", "Approved", 30), ver("1.1.0", "Approved", 20), ver("1.0.0", minutes=10)
        ),
    }
    assert drive(check, answers) == [ReadVersion("m", "1.0.0"), ReadApproved("m", 0)]
    assert check.decision is not None and check.decision.version is not None
    assert check.decision.version.version_name == "1.2.0"
    again = ApprovalCheck(AFTER, anchor=check.anchor)  # the next poll of the same wait
    assert drive(again, answers) == [ReadApproved("m", 0)]


@pytest.mark.parametrize(
    ("anchor_answer", "error", "field"),
    [
        (None, RegistryInputError, "after_version"),
        (ver("1.0.0", minutes=None), RegistryResponseError, "GmtCreateTime"),
        (ver("0.9.0", minutes=1), RegistryResponseError, "VersionName"),
    ],
)
def test_an_anchor_the_gate_cannot_use(anchor_answer: Any, error: type[Exception], field: str) -> None:
    with pytest.raises(error) as err:
        drive(ApprovalCheck(AFTER), {ReadVersion("m", "1.0.0"): anchor_answer})
    assert err.value.field == field  # type: ignore[attr-defined]


def test_ties_with_the_anchor_continue_to_the_next_page() -> None:
    anchor = Anchor(T0, "1.0.0")
    same_instant = [ver(f"0.0.{i}", "Approved", 0) for i in range(RECENT_PAGE_SIZE)]
    check = ApprovalCheck(AFTER, anchor=anchor)
    answers = {ReadApproved("m", 0): page(*same_instant, total=102), ReadApproved("m", 1): page(ver("1.5.0"))}
    assert drive(check, answers) == [ReadApproved("m", 0), ReadApproved("m", 1)]
    assert check.decision is not None and check.decision.version is not None
    assert check.decision.version.version_name == "1.5.0"


def test_created_after_is_strict_and_time_only() -> None:
    target = ApprovalTarget("m", created_after=T0)
    check = ApprovalCheck(target)
    drive(check, {ReadApproved("m", 0): page(ver("z-same-instant", minutes=0))})
    assert check.decision is not None and check.decision.outcome is Outcome.WAITING


@pytest.mark.parametrize(
    ("versions", "field"),
    [
        ((ver("1.1.0", "Pending", 20),), "ApprovalStatus"),  # not Approved in an Approved listing
        ((ver("1.1.0", minutes=None),), "GmtCreateTime"),
        ((ver("1.1.0", minutes=5), ver("1.2.0", minutes=30)), "GmtCreateTime"),  # not newest first
        ((ver("1.2.0", minutes=30, Uri=None),), "Uri"),
    ],
)
def test_approved_listings_the_gate_cannot_judge(versions: tuple[PaiModelVersion, ...], field: str) -> None:
    with pytest.raises(RegistryResponseError) as err:
        drive(ApprovalCheck(AFTER, anchor=Anchor(T0, "1.0.0")), {ReadApproved("m", 0): page(*versions)})
    assert err.value.field == field


def test_an_answer_to_another_read_is_a_bug_not_a_decision() -> None:
    check = ApprovalCheck(NAMED)
    with pytest.raises(RuntimeError):
        check.receive(ReadApproved("m", 0), page())
