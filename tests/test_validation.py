"""Unit tests of the input rules (``validation.py`` and ``approval.parse_created_after``).

Every refusal is a :class:`RegistryInputError` (also a ``ValueError``) naming the field and the rule. The hook-level
"nothing reaches the wire" checks live in ``test_reliability.py``; here each validator is tested on its own,
boundaries included, and property tests tie the id rules to the URL paths the hooks build.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from airflow_provider_modelreg.approval import parse_created_after
from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.hooks.fabric import _versions_path
from airflow_provider_modelreg.hooks.pai import _version_path
from airflow_provider_modelreg.models import ApprovalStatus
from airflow_provider_modelreg.validation import (
    check_fabric_id,
    check_fabric_limit,
    check_fabric_name_filter,
    check_fabric_offset,
    check_fabric_version_id,
    check_fabric_version_name,
    check_max_results,
    check_order,
    check_pai_approval_status,
    check_pai_model_id,
    check_pai_page_size,
    check_pai_version_name,
)

PAI_ID_RULE = "1-64 characters of letters, digits, '-' and '_'"
PAI_VERSION_RULE = "1-64 characters of letters, digits, '.', '-' and '_'"
DOT_RULE = "must not be '.' or '..' (a dot segment would change the URL path)"
FABRIC_ID_RULE = "1-36 characters of letters, digits and '-'"
FABRIC_VERSION_ID_RULE = "32-36 characters of letters, digits and '-'"
FABRIC_NAME_FILTER_RULE = "4-32 characters of letters, digits, '_' and '-'"
FABRIC_VERSION_NAME_RULE = "1-64 characters of letters, digits, '_', '-', '.' and space"
STATUS_RULE = "must be one of Pending, Approved, Rejected"

# Values that must never reach a URL path: separators, encoded separators, dot segments, whitespace, control
# characters, non-ASCII, query/fragment delimiters.
HOSTILE_IDS = [
    "a/b",
    "/a",
    "a/",
    "a%2Fb",
    "%2F",
    "a%2fb",
    "..%2F..",
    "a?b=1",
    "a#b",
    "a b",
    " a",
    "a\n",
    "a\r\nX-Injected: 1",
    "a\t",
    "a\x00",
    "a\x7f",
    "\u202ea",
    "模型",
    "é",
    "a\\b",
    "",
]


def assert_refused(call: Callable[[], Any], field: str, rule: str, value: Any) -> RegistryInputError:
    with pytest.raises(RegistryInputError) as err:
        call()
    exc = err.value  # the class hierarchy (a ValueError, an AirflowException): test_errors.py
    assert exc.field == field
    assert exc.rule == rule
    assert exc.value == value
    assert str(exc).startswith(f"invalid {field}: {rule}")
    return exc


# ------------------------------------------------------------------------------------------------ PAI ids


@pytest.mark.parametrize("value", ["m", "m-1", "M_2", "a" * 64, "0", "-", "_", "model-abc_DEF-123"])
def test_pai_model_id_accepts(value: str) -> None:
    assert check_pai_model_id(value) == value


@pytest.mark.parametrize("value", [*HOSTILE_IDS, ".", "..", "a.b", "a" * 65], ids=repr)
def test_pai_model_id_refuses(value: str) -> None:
    assert_refused(lambda: check_pai_model_id(value), "model_id", PAI_ID_RULE, value)


@pytest.mark.parametrize("value", [None, 5, 1.0, b"m-1", ["m"], True], ids=repr)
def test_pai_model_id_refuses_non_strings(value: Any) -> None:
    assert_refused(lambda: check_pai_model_id(value), "model_id", f"must be a string; {PAI_ID_RULE}", value)


@pytest.mark.parametrize("value", ["1.0.0", "v_1-2", "...", ".a", "a.", ".hidden", "1" * 64, "x"])
def test_pai_version_name_accepts(value: str) -> None:
    assert check_pai_version_name(value) == value


@pytest.mark.parametrize("value", [*HOSTILE_IDS, "1" * 65, "1/0", "./a"], ids=repr)
def test_pai_version_name_refuses(value: str) -> None:
    assert_refused(lambda: check_pai_version_name(value), "version_name", PAI_VERSION_RULE, value)


@pytest.mark.parametrize("value", [".", ".."])
def test_pai_version_name_refuses_dot_segments(value: str) -> None:
    assert_refused(lambda: check_pai_version_name(value), "version_name", DOT_RULE, value)


def test_dot_segments_really_would_change_the_path() -> None:
    """Why '.'/'..' are refused although every character is allowed: httpx normalises them away."""
    assert httpx.URL("https://h" + _version_path("m", "..")).path == "/api/v1/models/m"
    assert httpx.URL("https://h" + _version_path("m", ".")).path == "/api/v1/models/m/versions"
    assert httpx.URL("https://h" + _version_path("m", "...")).path == "/api/v1/models/m/versions/..."


def test_the_field_name_is_the_callers() -> None:
    assert_refused(lambda: check_pai_version_name("..", "after_version"), "after_version", DOT_RULE, "..")
    assert_refused(lambda: check_pai_model_id("a/b", "source_model"), "source_model", PAI_ID_RULE, "a/b")
    assert_refused(lambda: check_pai_page_size(0, "size"), "size", "must be from 1 to 100", 0)


# ------------------------------------------------------------------------------------------------ Fabric ids


@pytest.mark.parametrize("value", ["ws-1", "a", "a" * 36, "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_fabric_id_accepts(value: str) -> None:
    assert check_fabric_id(value, "workspace_id") == value


@pytest.mark.parametrize("value", [*HOSTILE_IDS, "a_b", "a.b", ".", "..", "a" * 37], ids=repr)
@pytest.mark.parametrize("field", ["workspace_id", "model_id"])
def test_fabric_id_refuses(value: str, field: str) -> None:
    assert_refused(lambda: check_fabric_id(value, field), field, FABRIC_ID_RULE, value)


@pytest.mark.parametrize("value", ["a" * 32, "0f8fad5b-d9cb-469f-a165-70867728950e", "A" * 36])
def test_fabric_version_id_accepts(value: str) -> None:
    assert check_fabric_version_id(value) == value


@pytest.mark.parametrize("value", ["a" * 31, "a" * 37, "", "0f8fad5b_d9cb_469f_a165_70867728950e", "a" * 31 + "/"])
def test_fabric_version_id_refuses(value: str) -> None:
    assert_refused(lambda: check_fabric_version_id(value), "version_id", FABRIC_VERSION_ID_RULE, value)


@pytest.mark.parametrize("value", ["abcd", "a_b-", "x" * 32])
def test_fabric_name_filter_accepts(value: str) -> None:
    assert check_fabric_name_filter(value) == value


@pytest.mark.parametrize("value", ["abc", "x" * 33, "ab cd", "ab.cd", "ab/cd", "", "abcd\n"], ids=repr)
def test_fabric_name_filter_refuses(value: str) -> None:
    assert_refused(lambda: check_fabric_name_filter(value), "name", FABRIC_NAME_FILTER_RULE, value)


@pytest.mark.parametrize("value", ["v1", "release 2", "1.0.0", "a_b-c", "x" * 64])
def test_fabric_version_name_accepts(value: str) -> None:
    assert check_fabric_version_name(value) == value


@pytest.mark.parametrize("value", ["", "x" * 65, "a/b", "a%20b", "a\tb", "名字", "a+b"], ids=repr)
def test_fabric_version_name_refuses(value: str) -> None:
    assert_refused(lambda: check_fabric_version_name(value), "name", FABRIC_VERSION_NAME_RULE, value)


# ------------------------------------------------------------------------------------------------ numbers

INT_CHECKS: list[tuple[str, Callable[[Any], Any], str, int, int]] = [
    ("page_size", check_pai_page_size, "page_size", 1, 100),
    ("limit", check_fabric_limit, "limit", 1, 100),
    ("offset", check_fabric_offset, "offset", 0, 10**9),
    ("max_results", check_max_results, "max_results", 1, 10**9),
]


@pytest.mark.parametrize(("name", "check", "field", "low", "high"), INT_CHECKS, ids=[c[0] for c in INT_CHECKS])
def test_integer_ranges_accept_their_bounds(
    name: str, check: Callable[[Any], Any], field: str, low: int, high: int
) -> None:
    assert check(low) == low
    assert check(high) == high
    assert check((low + high) // 2) == (low + high) // 2


@pytest.mark.parametrize(("name", "check", "field", "low", "high"), INT_CHECKS, ids=[c[0] for c in INT_CHECKS])
def test_integer_ranges_refuse_out_of_range(
    name: str, check: Callable[[Any], Any], field: str, low: int, high: int
) -> None:
    for value in (low - 1, high + 1, -(10**12), 10**12):
        assert_refused(lambda v=value: check(v), field, f"must be from {low} to {high}", value)


@pytest.mark.parametrize("value", [True, False, 1.0, 10.5, "10", b"1", [1]], ids=repr)
@pytest.mark.parametrize(("name", "check", "field", "low", "high"), INT_CHECKS, ids=[c[0] for c in INT_CHECKS])
def test_integer_ranges_refuse_non_integers(
    value: Any, name: str, check: Callable[[Any], Any], field: str, low: int, high: int
) -> None:
    assert_refused(lambda: check(value), field, f"must be an integer from {low} to {high}", value)


def test_max_results_none_means_everything_but_other_checks_refuse_none() -> None:
    assert check_max_results(None) is None
    for check, field, low, high in (
        (check_pai_page_size, "page_size", 1, 100),
        (check_fabric_offset, "offset", 0, 10**9),
    ):
        assert_refused(lambda c=check: c(None), field, f"must be an integer from {low} to {high}", None)


@settings(max_examples=150, deadline=None)
@given(value=st.integers(min_value=-(10**10), max_value=10**10))
def test_page_size_property(value: int) -> None:
    if 1 <= value <= 100:
        assert check_pai_page_size(value) == value == check_fabric_limit(value)
    else:
        for check, field in ((check_pai_page_size, "page_size"), (check_fabric_limit, "limit")):
            with pytest.raises(RegistryInputError) as err:
                check(value)
            assert err.value.field == field and err.value.rule == "must be from 1 to 100"


# ------------------------------------------------------------------------------------------------ enums


@pytest.mark.parametrize(("value", "expected"), [("asc", "ASC"), ("ASC", "ASC"), ("Desc", "DESC"), ("desc", "DESC")])
def test_order_accepts_either_case(value: str, expected: str) -> None:
    assert check_order(value) == expected


@pytest.mark.parametrize("value", ["random", "", " ASC", "ascending", None, 1, True], ids=repr)
def test_order_refuses(value: Any) -> None:
    assert_refused(lambda: check_order(value), "order", "must be 'ASC' or 'DESC'", value)


def test_approval_status_enum_passes_through_and_names_the_rule() -> None:
    for member in ApprovalStatus:
        assert check_pai_approval_status(member) is member
        assert check_pai_approval_status(member.value.upper()) is member
    for bad in ("Done", "Approved ,", 1, None, ["Approved"]):
        assert_refused(lambda b=bad: check_pai_approval_status(b), "approval_status", STATUS_RULE, bad)
    assert_refused(lambda: check_pai_approval_status("x", "status"), "status", STATUS_RULE, "x")


# ------------------------------------------------------------------------------------------------ created_after

T0 = datetime(2024, 5, 1, tzinfo=timezone.utc)
WITH_TIME = "must be an ISO 8601 date *with* a time, e.g. 2024-05-01T00:00:00Z"
ISO = "must be an ISO 8601 datetime, e.g. 2024-05-01T00:00:00Z"
OFFSET = "must carry a UTC offset (e.g. Z or +08:00)"
RENDERED = "must render to a non-empty string (a Jinja template of a missing value renders to '' or 'None')"
TYPE = "must be an aware datetime or an ISO 8601 string"


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T00:00:00Z",
        "2024-05-01T00:00:00+00:00",
        "2024-05-01T08:00:00+08:00",
        "2024-04-30T19:00:00-05:00",
        "2024-05-01 00:00:00Z",
        "  2024-05-01T00:00:00Z  ",
        "2024-05-01T00:00:00.000Z",
        T0,
        datetime(2024, 5, 1, 8, tzinfo=timezone(timedelta(hours=8))),
    ],
    ids=repr,
)
def test_created_after_accepts_aware_values_and_normalises_to_utc(value: Any) -> None:
    parsed = parse_created_after(value)
    assert parsed == T0
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_created_after_native_none_is_unset() -> None:
    assert parse_created_after(None) is None


@pytest.mark.parametrize("value", ["", " ", "None"])
def test_created_after_rendered_empty_is_refused(value: Any) -> None:
    """Issue 10: a template of a missing value renders to '' or 'None'; that is never "no anchor"."""
    assert_refused(lambda: parse_created_after(value), "created_after", RENDERED, value)


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("2024-05-01", WITH_TIME),  # date only: midnight in which zone?
        ("20240501", WITH_TIME),
        ("yesterday", WITH_TIME),
        ("2024-05-01T00:00:00", OFFSET),  # naive string
        ("2024-05-01 00:00", OFFSET),
        (datetime(2024, 5, 1), OFFSET),  # naive datetime
        ("2024-13-01T00:00:00Z", ISO),
        ("2024-05-01T25:00:00Z", ISO),
        ("T", ISO),
        ("2024-05-01T00:00:00+99:00", ISO),
        (date(2024, 5, 1), TYPE),
        (1714521600, TYPE),
        (1714521600.0, TYPE),
    ],
    ids=repr,
)
def test_created_after_refuses(value: Any, rule: str) -> None:
    assert_refused(lambda: parse_created_after(value), "created_after", rule, value)


def test_created_after_uses_the_callers_field() -> None:
    assert_refused(lambda: parse_created_after("2024-05-01", "since"), "since", WITH_TIME, "2024-05-01")


aware = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.builds(
        lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(min_value=-23 * 60, max_value=23 * 60)
    ),
)


@settings(max_examples=150, deadline=None)
@given(value=aware)
def test_created_after_round_trips_any_aware_datetime(value: datetime) -> None:
    assert parse_created_after(value) == value
    assert parse_created_after(value.isoformat()) == value
    assert parse_created_after(value.isoformat().replace("+00:00", "Z")) == value


@settings(max_examples=100, deadline=None)
@given(value=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1)))
def test_created_after_refuses_any_naive_datetime(value: datetime) -> None:
    for given_value in (value, value.isoformat()):
        assert_refused(lambda v=given_value: parse_created_after(v), "created_after", OFFSET, given_value)


# ------------------------------------------------------------------------------------------------ error message


def test_the_message_shows_a_truncated_repr_and_never_none() -> None:
    exc = assert_refused(lambda: check_pai_model_id("m" * 500), "model_id", PAI_ID_RULE, "m" * 500)
    shown = str(exc).split(" (got ", 1)[1]
    assert len(shown) <= 81  # repr cut at 80 characters, plus the closing parenthesis
    assert RegistryInputError("f", "r").args == ("invalid f: r",)
    assert "got" not in str(RegistryInputError("f", "r", None))


# ------------------------------------------------------------------------------------------------ ids in URL paths

PAI_ID = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
PAI_VERSION = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
FABRIC_ID = st.from_regex(r"[A-Za-z0-9-]{1,36}", fullmatch=True)
ANY_TEXT = st.text(st.characters(codec="utf-8"), min_size=0, max_size=70)


def _segments(path: str) -> list[str]:
    url = httpx.URL("https://registry.example.com" + path)
    raw = url.raw_path.decode("ascii")
    assert raw == path  # httpx sends exactly what the hook built: no normalisation, no re-encoding
    assert url.path == path  # nothing to decode either: accepted ids are all unreserved characters
    return raw.split("/")


@settings(max_examples=200, deadline=None)
@given(model_id=st.one_of(PAI_ID, ANY_TEXT), version=st.one_of(PAI_VERSION, ANY_TEXT))
def test_any_accepted_pai_id_is_one_unchanged_path_segment(model_id: str, version: str) -> None:
    try:
        checked_id = check_pai_model_id(model_id)
        checked_version = check_pai_version_name(version)
    except RegistryInputError as err:
        assert err.field in ("model_id", "version_name")
        assume(False)
    assert _segments(_version_path(checked_id, checked_version)) == [
        "",
        "api",
        "v1",
        "models",
        model_id,
        "versions",
        version,
    ]


@settings(max_examples=200, deadline=None)
@given(workspace=st.one_of(FABRIC_ID, ANY_TEXT), model=st.one_of(FABRIC_ID, ANY_TEXT))
def test_any_accepted_fabric_id_is_one_unchanged_path_segment(workspace: str, model: str) -> None:
    try:
        ws = check_fabric_id(workspace, "workspace_id")
        mid = check_fabric_id(model, "model_id")
    except RegistryInputError as err:
        assert err.field in ("workspace_id", "model_id")
        assume(False)
    assert _segments(_versions_path(ws, mid)) == ["", "v1", "workspaces", workspace, "models", model, "versions"]


UNSAFE = re.compile(r"[/%?#\\\s\x00-\x1f\x7f]|[^\x00-\x7f]")


@settings(max_examples=200, deadline=None)
@given(value=ANY_TEXT)
def test_any_id_with_an_unsafe_character_is_refused(value: str) -> None:
    assume(UNSAFE.search(value) is not None or value in ("", ".", ".."))
    for check, field in (
        (check_pai_model_id, "model_id"),
        (check_pai_version_name, "version_name"),
        (lambda v: check_fabric_id(v, "workspace_id"), "workspace_id"),
    ):
        with pytest.raises(RegistryInputError) as err:
            check(value)
        assert err.value.field == field
