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


# -- issue 24: alias= (the holder resolved from plain data)


def held(name: str, status: str | None = "Approved", minutes: float = 0, *pairs: tuple[str, str]) -> PaiModelVersion:
    return ver(name, status, minutes, Labels=[{"Key": k, "Value": x} for k, x in pairs or [("alias", "champion")]])


HOLDER_CASES = [
    pytest.param([], None, id="no-versions"),
    pytest.param([ver("1.0.0")], None, id="no-labels"),
    pytest.param([held("1.0.0")], "1.0.0", id="one-holder"),
    pytest.param([held("1.0.0", "Approved", 1), held("2.0.0", "Pending", 2)], "2.0.0", id="newer-holder-wins"),
    pytest.param([held("2.0.0", "Pending", 2), held("1.0.0", "Approved", 1)], "2.0.0", id="whatever-the-order"),
    pytest.param([held("1.0.0", "Approved", 2), held("1.0.1", "Approved", 2)], "1.0.1", id="same-instant-by-name"),
    pytest.param([held("1.0.1", "Approved", 2), held("1.0.0", "Approved", 2)], "1.0.1", id="same-instant-reversed"),
    pytest.param([held("9.0", "Approved", 1), held("10.0", "Approved", 1)], "9.0", id="names-as-plain-strings"),
    pytest.param([held("1.0.0", "Approved", 5, ("alias", "champion-old"))], None, id="a-value-containing-it"),
    pytest.param([held("1.0.0", "Approved", 5, ("other", "champion"))], None, id="another-key"),
    pytest.param([held("1.0.0", "Approved", 5, ("Alias", "champion"))], None, id="keys-are-case-sensitive"),
    pytest.param([held("1.0.0", "Approved", 5, ("alias", "Champion"))], None, id="values-are-case-sensitive"),
    pytest.param(
        [held("1.0.0", "Approved", 1), held("2.0.0", "Approved", 9, ("alias", "challenger"))], "1.0.0", id="other-alias"
    ),
    pytest.param(
        [held("1.0.0", "Approved", 1, ("team", "x"), ("alias", "champion"))], "1.0.0", id="among-other-labels"
    ),
]


@pytest.mark.parametrize(("versions", "expected"), HOLDER_CASES)
def test_alias_holder(versions: list[PaiModelVersion], expected: str | None) -> None:
    from airflow_provider_modelreg.approval import alias_holder

    found = alias_holder(versions, "alias", "champion")
    assert (found.version_name if found else None) == expected


def test_alias_holder_without_a_creation_time_cannot_be_ordered() -> None:
    from airflow_provider_modelreg.approval import alias_holder

    with pytest.raises(RegistryResponseError, match="GmtCreateTime"):
        alias_holder([held("1.0.0", "Approved", None)], "alias", "champion")  # type: ignore[arg-type]
    assert alias_holder([ver("1.0.0", "Approved", None)], "alias", "champion") is None  # not a holder: not judged


@pytest.mark.parametrize(
    ("holders", "outcome", "name"),
    [
        pytest.param([held("1.0.0", "Approved", 1)], Outcome.APPROVED, "1.0.0", id="approved"),
        pytest.param([held("1.0.0", "Pending", 1)], Outcome.WAITING, None, id="pending"),
        pytest.param([held("1.0.0", "Rejected", 1)], Outcome.WAITING, None, id="rejected-waits-the-alias-can-move"),
        pytest.param([], Outcome.WAITING, None, id="no-holder"),
        pytest.param(
            [held("1.1.0", "Pending", 2), held("1.0.0", "Approved", 1)], Outcome.WAITING, None, id="newest-pending"
        ),
    ],
)
def test_alias_check_judges_the_newest_holder(
    holders: list[PaiModelVersion], outcome: Outcome, name: str | None
) -> None:
    from airflow_provider_modelreg.approval import ReadLabelled

    check = ApprovalCheck(ApprovalTarget("m", alias="champion"))
    asked = drive(check, {ReadLabelled("m", "champion"): page(*holders)})
    assert asked == [ReadLabelled("m", "champion")]
    assert check.decision is not None and check.decision.outcome is outcome
    assert (check.decision.version.version_name if check.decision.version else None) == name


def test_alias_check_reads_every_labelled_page() -> None:
    from airflow_provider_modelreg.approval import ReadLabelled

    first = page(*(held(f"9.{i}", "Approved", 100 - i, ("alias", "champion-x")) for i in range(RECENT_PAGE_SIZE)))
    check = ApprovalCheck(ApprovalTarget("m", alias="champion"))
    asked = drive(
        check,
        {ReadLabelled("m", "champion"): first, ReadLabelled("m", "champion", 1): page(held("1.0.0", "Approved", 1))},
    )
    assert asked == [ReadLabelled("m", "champion"), ReadLabelled("m", "champion", 1)]
    assert check.decision is not None and check.decision.version is not None
    assert check.decision.version.version_name == "1.0.0"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"alias": "None"}, "alias", id="placeholder"),
        pytest.param({"alias": "null"}, "alias", id="null"),
        pytest.param({"alias": ""}, "alias", id="empty"),
        pytest.param({"alias": "a=b"}, "alias", id="equals"),
        pytest.param({"alias": "a,b"}, "alias", id="comma"),
        pytest.param({"alias": "x" * 129}, "alias", id="129-bytes"),
        pytest.param({"alias": "a\nb"}, "alias", id="newline"),
        pytest.param({"alias": 7}, "alias", id="not-a-string"),
        pytest.param({"alias": "champion", "alias_key": "None"}, "alias_key", id="key-placeholder"),
        pytest.param({"alias": "champion", "alias_key": "a=b"}, "alias_key", id="key-equals"),
        pytest.param({"alias": "champion", "version_name": "1.0.0"}, "alias", id="with-version-name"),
        pytest.param({"alias": "champion", "after_version": "1.0.0"}, "alias", id="with-after-version"),
        pytest.param({"alias": "champion", "created_after": T0}, "alias", id="with-created-after"),
    ],
)
def test_alias_input_is_refused_naming_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        ApprovalTarget("m", **kwargs)
    assert err.value.field == field


def test_alias_of_128_bytes_is_accepted() -> None:
    assert ApprovalTarget("m", alias="é" * 64).label == ("alias", "é" * 64)
