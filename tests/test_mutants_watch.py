"""The asset watcher's core (airflow_provider_modelreg.watch) on the cases mutation testing found untested
(``make mutation``, docs/TESTING.md): the stored state's exact format, states that must not be read, the 100-page
bound of one poll, ties in creation time, the cursor when versions are deleted, and the exact errors. Plain data,
no I/O."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from test_watch_core import ID, T0, key, page  # the core suite's identity, clock and page builders

from airflow_provider_modelreg.approval import ReadApproved, ReadPending, ReadRecent, ReadVersion, VersionPage
from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.models import PaiModelVersion
from airflow_provider_modelreg.watch import (
    Observation,
    WatchCursor,
    WatchPoll,
    apply_observation,
    check_announce,
    merge_cursors,
    start_cursor,
)


def ver(name: str, status: str = "Approved", minutes: float = 0, **extra: Any) -> PaiModelVersion:
    return PaiModelVersion.model_validate(
        {
            "VersionName": name,
            "ApprovalStatus": status,
            "Uri": f"oss://b/{name}/",
            "GmtCreateTime": (T0 + timedelta(minutes=minutes)).isoformat(),
            **extra,
        }
    )


def run(poll: WatchPoll, answers: dict[Any, Any]) -> list[Any]:
    """Answer every read; the observation exists only once the last answer is in."""
    asked = []
    while (read := poll.next_read()) is not None:
        assert poll.observation is None
        asked.append(read)
        poll.receive(read, answers[read])
    assert poll.observation is not None
    return asked


def names(versions: tuple[PaiModelVersion, ...]) -> list[str]:
    return [v.version_name for v in versions]


# ------------------------------------------------------------------------------------------------ stored state


def test_the_stored_state_format_and_key_are_stable() -> None:
    """A watcher finds the state an earlier release stored: the key and the format are pinned."""
    assert ID.to_json() == {
        "conn_id": "pai_default",
        "endpoint": "https://aiworkspace.cn-hangzhou.aliyuncs.com",
        "model_id": "m",
    }
    assert ID.state_key == "modelreg_pai_watch:m:e63daf1773e751039fb73424"
    cursor = WatchCursor(key(10, "1.1.0"), frozenset({"1.3.0", "1.2.0"}), None)
    assert cursor.to_json(ID) == {
        "v": 3,
        "identity": ID.to_json(),
        "seen": ["2024-01-01T00:10:00+00:00", "1.1.0"],
        "pending": ["1.2.0", "1.3.0"],
        "newest": None,
    }
    assert WatchCursor.from_json(cursor.to_json(ID), ID) == cursor


@pytest.mark.parametrize(
    "change",
    [
        {"pending": "1.2.0"},  # a string, not a list of names
        {"pending": [1]},
        {"seen": ["2024-01-01T00:10:00+00:00", "1.1.0", "extra"]},
        {"newest": ["2024-01-01T00:10:00", "1.1.0"]},  # no offset
        {"v": 2},
    ],
)
def test_a_damaged_state_is_not_read(change: dict[str, Any]) -> None:
    stored = WatchCursor(key(10, "1.1.0"), frozenset({"1.2.0"}), key(10, "1.1.0")).to_json(ID)
    assert WatchCursor.from_json({**stored, **change}, ID) is None


@pytest.mark.parametrize("value", [None, [], "state", 3])
def test_a_state_that_is_no_object_is_not_read(value: Any) -> None:
    assert WatchCursor.from_json(value, ID) is None


def test_start_cursor_counts_versions_created_in_that_instant() -> None:
    cursor = start_cursor(T0)
    assert cursor == WatchCursor((T0, ""), frozenset(), None)
    obs = Observation(key(0, "1.0.0"), frozenset(), (ver("1.0.0", "Approved", 0),))
    assert names(apply_observation(cursor, obs).announce) == ["1.0.0"]


# ------------------------------------------------------------------------------------------------ announce


def test_check_announce() -> None:
    assert check_announce("every") == "every"
    assert check_announce("newer") == "newer"
    with pytest.raises(RegistryInputError) as bad:
        check_announce("all")
    assert (bad.value.field, bad.value.rule, bad.value.value) == ("announce", "must be one of newer, every", "all")


def test_newer_is_the_default_and_passes_over_only_the_older_versions() -> None:
    cursor = WatchCursor(key(10, "1.1.0"), frozenset({"1.0.5"}), key(10, "1.1.0"))
    obs = Observation(key(20, "1.2.0"), frozenset(), (ver("1.0.5", "Approved", 5), ver("1.2.0", "Approved", 20)))
    result = apply_observation(cursor, obs)
    assert names(result.announce) == ["1.2.0"]
    assert names(result.skipped) == ["1.0.5"]
    assert result.cursor == WatchCursor(key(20, "1.2.0"), frozenset(), key(20, "1.2.0"))


def test_every_keeps_the_newest_announced_when_announcing_an_older_version() -> None:
    cursor = WatchCursor(key(10, "1.1.0"), frozenset({"1.0.5"}), key(10, "1.1.0"))
    obs = Observation(key(10, "1.1.0"), frozenset(), (ver("1.0.5", "Approved", 5),))
    result = apply_observation(cursor, obs, announce="every")
    assert names(result.announce) == ["1.0.5"]
    assert result.cursor.newest == key(10, "1.1.0")


def test_a_version_approved_during_the_first_poll_is_not_announced_again() -> None:
    """The first poll lists 1.1.0 as Pending, then reads it as the newest Approved (approved between the two
    reads): it was known Approved when the watcher started, so the next poll does not announce it."""
    first = WatchPoll("m", None, need_newest_approved=True)
    run(
        first,
        {
            ReadRecent("m", 0): page(ver("1.1.0", "Pending", 10), ver("1.0.0", "Approved", 0)),
            ReadPending("m", 0): page(ver("1.1.0", "Pending", 10)),
            ReadApproved("m", 0): page(ver("1.1.0", "Approved", 10), ver("1.0.0", "Approved", 0)),
        },
    )
    assert first.observation is not None
    cursor = apply_observation(None, first.observation).cursor
    assert cursor == WatchCursor(key(10, "1.1.0"), frozenset({"1.1.0"}), key(10, "1.1.0"))
    second = WatchPoll("m", cursor)
    run(
        second,
        {
            ReadRecent("m", 0): page(ver("1.1.0", "Approved", 10), ver("1.0.0", "Approved", 0)),
            ReadPending("m", 0): page(),
            ReadVersion("m", "1.1.0"): ver("1.1.0", "Approved", 10),
        },
    )
    assert second.observation is not None
    result = apply_observation(cursor, second.observation)
    assert result.announce == ()
    assert names(result.skipped) == ["1.1.0"]


def test_a_watcher_ahead_of_the_merged_cursor_takes_nothing_it_has_seen() -> None:
    ahead = WatchCursor(key(10, "1.1.0"), frozenset(), key(10, "1.1.0"))
    obs = Observation(key(10, "1.1.0"), frozenset(), (ver("1.1.0", "Approved", 10),))
    for mode in ("newer", "every"):
        result = apply_observation(ahead, obs, announce=mode)
        assert (result.announce, result.skipped) == ((), ())


# ------------------------------------------------------------------------------------------------ the cursor


def test_seen_moves_forward_only() -> None:
    cursor = WatchCursor(key(20, "1.2.0"), frozenset(), key(20, "1.2.0"))
    forward = apply_observation(cursor, Observation(key(30, "1.3.0"), frozenset({"1.3.0"})))
    assert forward.cursor == WatchCursor(key(30, "1.3.0"), frozenset({"1.3.0"}), key(20, "1.2.0"))
    # 1.2.0 deleted: the model's newest is older than what the watcher saw; the cursor stays
    back = apply_observation(cursor, Observation(key(10, "1.1.0"), frozenset()))
    assert back.cursor.seen == key(20, "1.2.0")
    # every version deleted
    assert apply_observation(cursor, Observation(None, frozenset())).cursor.seen == key(20, "1.2.0")


def test_a_cursor_that_saw_nothing_takes_what_the_poll_saw() -> None:
    cursor = WatchCursor(None, frozenset({"1.0.0"}), None)
    result = apply_observation(cursor, Observation(key(0, "1.0.0"), frozenset(), (ver("1.0.0", "Approved", 0),)))
    assert names(result.announce) == ["1.0.0"]
    assert result.cursor == WatchCursor(key(0, "1.0.0"), frozenset(), key(0, "1.0.0"))


def test_merging_cursors_that_saw_nothing() -> None:
    merged = merge_cursors([WatchCursor(None, frozenset({"a"})), WatchCursor(None, frozenset({"b"}))])
    assert merged == WatchCursor(None, frozenset({"a", "b"}))


def test_what_an_observation_covers() -> None:
    basis = WatchCursor(key(10, "1.1.0"), frozenset({"1.0.5"}))
    obs = Observation(key(20, "1.2.0"), frozenset(), basis=basis, read_newest_approved=False)
    assert obs.covers(WatchCursor(key(10, "1.1.0"), frozenset({"1.0.5"})))
    assert obs.covers(WatchCursor(key(15, "1.1.5"), frozenset()))
    assert not obs.covers(WatchCursor(key(5, "1.0.7"), frozenset()))  # created after 1.0.7 was not all read
    assert not obs.covers(WatchCursor(key(10, "1.1.0"), frozenset({"0.9.0"})))  # 0.9.0 was not asked about
    assert not obs.covers(WatchCursor(None, frozenset()))  # it needs every version
    no_basis = Observation(key(20, "1.2.0"), frozenset(), basis=None, read_newest_approved=True)
    assert not no_basis.covers(WatchCursor(key(10, "1.1.0"), frozenset()))
    assert no_basis.covers(None)
    from_nothing = Observation(key(20, "1.2.0"), frozenset(), basis=WatchCursor(None, frozenset({"a"})))
    assert from_nothing.covers(WatchCursor(None, frozenset({"a"})))
    # a poll from no seen version reads only the newest page: not what a cursor with a seen version needs
    assert not from_nothing.covers(WatchCursor(key(0, "0"), frozenset()))


# ------------------------------------------------------------------------------------------------ one poll


def test_the_recent_read_stops_at_the_version_seen() -> None:
    """A full page whose last version is the one seen: nothing older is read, and the seen version is not new."""
    versions = [ver(f"2.{i:03d}", "Approved", 200 - i) for i in range(100)]
    cursor = WatchCursor(key(101, "2.099"), frozenset(), key(101, "2.099"))
    poll = WatchPoll("m", cursor)
    asked = run(poll, {ReadRecent("m", 0): page(*versions), ReadPending("m", 0): page()})
    assert asked == [ReadRecent("m", 0), ReadPending("m", 0)]
    assert poll.observation is not None
    assert len(poll.observation.approved) == 99
    assert "2.099" not in names(poll.observation.approved)


def test_a_version_created_in_the_instant_seen_and_listed_after_it_is_found() -> None:
    """ListModelVersions orders by creation time only: a version of the same instant whose name sorts after the
    seen one may come after it in the page, and is new."""
    cursor = WatchCursor(key(10, "1.0.0"), frozenset(), key(10, "1.0.0"))
    poll = WatchPoll("m", cursor)
    run(
        poll,
        {
            ReadRecent("m", 0): page(ver("1.0.0", "Approved", 10), ver("1.0.1", "Approved", 10)),
            ReadPending("m", 0): page(),
        },
    )
    assert poll.observation is not None
    assert names(apply_observation(cursor, poll.observation).announce) == ["1.0.1"]


def test_pages_of_the_recent_listing_must_be_newest_first_across_pages() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset(), None)
    first = [ver(f"2.{i:03d}", "Approved", 200 - i) for i in range(100)]
    poll = WatchPoll("m", cursor)
    with pytest.raises(RegistryResponseError) as err:
        run(poll, {ReadRecent("m", 0): page(*first), ReadRecent("m", 1): page(ver("3.0.0", "Approved", 500))})
    assert (err.value.field, err.value.problem) == ("GmtCreateTime", "versions are not listed newest first")


def test_the_pending_listing_is_read_page_after_page() -> None:
    waiting = [ver(f"1.{i:03d}", "Pending", 100 - i) for i in range(100)]
    cursor = WatchCursor(key(500, "9.0.0"), frozenset({"1.000", "0.5"}), key(500, "9.0.0"))
    poll = WatchPoll("m", cursor, need_newest_approved=True)
    asked = run(
        poll,
        {
            ReadRecent("m", 0): page(ver("9.0.0", "Approved", 500)),
            ReadPending("m", 0): page(*waiting),
            ReadPending("m", 1): page(ver("0.5", "Pending", -10)),
            ReadApproved("m", 0): page(ver("9.0.0", "Approved", 500)),
        },
    )
    assert asked == [ReadRecent("m", 0), ReadPending("m", 0), ReadPending("m", 1), ReadApproved("m", 0)]
    assert poll.observation is not None
    assert poll.observation.pending == frozenset({v.version_name for v in waiting} | {"0.5"})


def _same_page(status: str) -> VersionPage:
    return page(*(ver(f"5.{i:03d}", status, 50) for i in range(100)))


@pytest.mark.parametrize(
    ("listing", "what"),
    [(ReadRecent, "versions created since the last poll"), (ReadPending, "Pending versions")],
)
def test_one_poll_reads_at_most_100_pages_of_a_listing(listing: type[Any], what: str) -> None:
    status = "Pending" if listing is ReadPending else "Approved"
    full = _same_page(status)
    cursor = WatchCursor(key(0, "0"), frozenset(), None)
    last_page = page(ver("4.0", status, 40))
    answers: dict[Any, Any] = {ReadRecent("m", 0): page(), ReadPending("m", 0): page()}
    answers |= {listing("m", n): full for n in range(99)} | {listing("m", 99): last_page}
    asked = run(WatchPoll("m", cursor), answers)  # 99 full pages and a short one: read
    assert sum(isinstance(read, listing) for read in asked) == 100
    answers[listing("m", 99)] = full  # a 100th full page: a 101st would be needed
    with pytest.raises(RegistryResponseError) as err:
        run(WatchPoll("m", cursor), answers)
    assert (err.value.field, err.value.problem) == ("TotalCount", f"more than 100 pages of {what} to read in one poll")


def test_a_listing_with_the_wrong_status_names_its_request() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset(), None)
    with pytest.raises(RegistryResponseError) as err:
        run(WatchPoll("m", cursor), {ReadRecent("m", 0): page(), ReadPending("m", 0): page(ver("1.1.0", "Approved"))})
    assert (err.value.field, err.value.request_id) == ("ApprovalStatus", "req-1")
    with pytest.raises(RegistryResponseError) as err:
        run(
            WatchPoll("m", None, need_newest_approved=True),
            {
                ReadRecent("m", 0): page(),
                ReadPending("m", 0): page(),
                ReadApproved("m", 0): page(ver("1.1.0", "Pending")),
            },
        )
    assert (err.value.field, err.value.request_id) == ("ApprovalStatus", "req-1")


def test_an_unknown_status_read_directly_is_refused() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset({"1.1.0"}), None)
    answers = {
        ReadRecent("m", 0): page(),
        ReadPending("m", 0): page(),
        ReadVersion("m", "1.1.0"): ver("1.1.0", "Archived", 5, RequestId="req-get"),
    }
    with pytest.raises(RegistryResponseError) as err:
        run(WatchPoll("m", cursor), answers)
    assert (err.value.field, err.value.problem, err.value.request_id) == (
        "ApprovalStatus",
        "version 1.1.0 has no known approval status ('Archived')",
        "req-get",
    )


def test_an_unknown_status_of_a_new_version_is_refused() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset(), None)
    answers = {ReadRecent("m", 0): page(ver("1.1.0", "Archived", 5, RequestId="req-list")), ReadPending("m", 0): page()}
    with pytest.raises(RegistryResponseError) as err:
        run(WatchPoll("m", cursor), answers)
    assert (err.value.field, err.value.problem, err.value.request_id) == (
        "ApprovalStatus",
        "version 1.1.0 has no known approval status ('Archived')",
        "req-list",
    )


def test_an_answer_to_a_read_not_asked_is_a_bug() -> None:
    poll = WatchPoll("m", None)
    with pytest.raises(RuntimeError) as err:
        poll.receive(ReadPending("m", 0), page())
    assert str(err.value) == (
        "answer for ReadPending(model_id='m', page=0) while waiting for ReadRecent(model_id='m', page=0)"
    )
    run(poll, {ReadRecent("m", 0): page(), ReadPending("m", 0): page()})
    with pytest.raises(RuntimeError) as err:
        poll.receive(ReadPending("m", 0), page())
    assert str(err.value) == "answer for ReadPending(model_id='m', page=0) while waiting for None"


# ------------------------------------------------------------------ state keys a previous release wrote are found again


def test_state_keys_and_stored_identities_are_those_the_previous_release_wrote() -> None:
    """The keys and identities below were computed by the release before the StateIdentity refactor (c82087b):
    a watcher upgraded in place must find the state it stored, so both stay byte for byte."""
    from airflow_provider_modelreg.fabric_watch import FabricWatchIdentity
    from airflow_provider_modelreg.watch import WatchIdentity

    endpoint = "https://pai.cn-hangzhou.aliyuncs.com"
    plain = WatchIdentity(conn_id="pai_prod", endpoint=endpoint, model_id="m-1")
    assert plain.state_key == "modelreg_pai_watch:m-1:766531b91ec8ae90584f0a15"
    assert plain.to_json() == {"conn_id": "pai_prod", "endpoint": endpoint, "model_id": "m-1"}
    alias = WatchIdentity(conn_id="pai_prod", endpoint=endpoint, model_id="m-1", alias=("alias", "champion"))
    assert alias.state_key == "modelreg_pai_alias:m-1:b2e5786f10412f35f6ee144b"
    assert alias.to_json() == {**plain.to_json(), "alias": ["alias", "champion"]}
    fabric = FabricWatchIdentity(
        conn_id="fabric_prod",
        endpoint="https://fabric.cn-north-4.myhuaweicloud.com",
        workspace_id="ws-1",
        model_id="fm-1",
        mode="versions",
    )
    assert fabric.state_key == "modelreg_fabric_watch:fm-1:b734ac00cd2f7b2314fd80dc"


def test_an_alias_cursor_is_read_only_from_an_alias_watchers_well_formed_state() -> None:
    from airflow_provider_modelreg.watch import STATE_VERSION, AliasCursor, WatchIdentity

    endpoint = "https://pai.cn-hangzhou.aliyuncs.com"
    alias = WatchIdentity(conn_id="pai_prod", endpoint=endpoint, model_id="m-1", alias=("alias", "champion"))
    plain = WatchIdentity(conn_id="pai_prod", endpoint=endpoint, model_id="m-1")
    assert AliasCursor.from_json(AliasCursor("1.0.0").to_json(alias), alias) == AliasCursor("1.0.0")
    assert AliasCursor.from_json(AliasCursor(None).to_json(alias), alias) == AliasCursor(None)  # none announced yet
    assert AliasCursor.from_json(alias.state(STATE_VERSION, {}), alias) is None  # no holder field
    assert AliasCursor.from_json(alias.state(STATE_VERSION, {"alias_holder": 5}), alias) is None  # not a name
    assert AliasCursor.from_json(alias.state(STATE_VERSION, {"alias_holder": ["1.0.0"]}), alias) is None
    # a watcher without an alias never reads an alias cursor, even one stored under its identity
    assert AliasCursor.from_json(plain.state(STATE_VERSION, {"alias_holder": "1.0.0"}), plain) is None
