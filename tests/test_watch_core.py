"""Issue 19: the bounded watcher core (airflow_provider_modelreg.watch) with plain data: what a poll reads, what it
saw, what each watcher announces, and that a state never grows with the model's history."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_modelreg.approval import ReadApproved, ReadPending, ReadRecent, ReadVersion, VersionPage
from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.models import PaiModelVersion
from airflow_provider_modelreg.watch import (
    Observation,
    WatchCursor,
    WatchIdentity,
    WatchPoll,
    apply_observation,
    check_announce,
    merge_cursors,
    start_cursor,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
ID = WatchIdentity("pai_default", "https://aiworkspace.cn-hangzhou.aliyuncs.com", "m")


def ver(name: str, status: str = "Approved", minutes: float = 0) -> PaiModelVersion:
    return PaiModelVersion.model_validate(
        {
            "VersionName": name,
            "ApprovalStatus": status,
            "Uri": f"oss://b/{name}/",
            "GmtCreateTime": (T0 + timedelta(minutes=minutes)).isoformat(),
        }
    )


def key(minutes: float, name: str) -> tuple[datetime, str]:
    return T0 + timedelta(minutes=minutes), name


def page(*versions: PaiModelVersion) -> VersionPage:
    return VersionPage(tuple(versions), len(versions), "req-1")


def run(poll: WatchPoll, answers: dict[Any, Any]) -> list[Any]:
    asked = []
    while (read := poll.next_read()) is not None:
        asked.append(read)
        poll.receive(read, answers[read])
    return asked


def test_first_start_takes_the_model_as_it_stands_and_announces_nothing() -> None:
    poll = WatchPoll("m", None, need_newest_approved=True)
    asked = run(
        poll,
        {
            ReadRecent("m", 0): page(ver("1.1.0", "Pending", 20), ver("1.0.0", "Approved", 10)),
            ReadPending("m", 0): page(ver("1.1.0", "Pending", 20)),
            ReadApproved("m", 0): page(ver("1.0.0", "Approved", 10)),
        },
    )
    assert asked == [ReadRecent("m", 0), ReadPending("m", 0), ReadApproved("m", 0)]
    assert poll.observation is not None
    result = apply_observation(None, poll.observation)
    assert result.announce == ()
    assert result.cursor == WatchCursor(key(20, "1.1.0"), frozenset({"1.1.0"}), key(10, "1.0.0"))


def test_steady_state_is_two_reads_and_a_decision_adds_one() -> None:
    cursor = WatchCursor(key(20, "1.1.0"), frozenset({"1.1.0"}), key(10, "1.0.0"))
    quiet = WatchPoll("m", cursor)
    asked = run(
        quiet,
        {ReadRecent("m", 0): page(ver("1.1.0", "Pending", 20)), ReadPending("m", 0): page(ver("1.1.0", "Pending", 20))},
    )
    assert len(asked) == 2
    assert quiet.observation is not None and apply_observation(cursor, quiet.observation).announce == ()
    decided = WatchPoll("m", cursor)
    asked = run(
        decided,
        {
            ReadRecent("m", 0): page(ver("1.1.0", "Approved", 20)),
            ReadPending("m", 0): page(),
            ReadVersion("m", "1.1.0"): ver("1.1.0", "Approved", 20),
        },
    )
    assert asked[-1] == ReadVersion("m", "1.1.0") and len(asked) == 3
    assert decided.observation is not None
    result = apply_observation(cursor, decided.observation)
    assert [v.version_name for v in result.announce] == ["1.1.0"]
    assert result.cursor.pending == frozenset() and result.cursor.newest == key(20, "1.1.0")


def test_versions_created_since_are_read_page_by_page_until_a_known_one() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset(), key(0, "1.0.0"))
    burst = [ver(f"2.{i:03d}", "Approved", 200 - i) for i in range(150)]  # newest first
    poll = WatchPoll("m", cursor)
    asked = run(
        poll,
        {
            ReadRecent("m", 0): page(*burst[:100]),
            ReadRecent("m", 1): page(*burst[100:], ver("1.0.0", "Approved", 0)),
            ReadPending("m", 0): page(),
        },
    )
    assert asked == [ReadRecent("m", 0), ReadRecent("m", 1), ReadPending("m", 0)]
    assert poll.observation is not None
    result = apply_observation(cursor, poll.observation)
    assert [v.version_name for v in result.announce] == [v.version_name for v in reversed(burst)]  # oldest first


def test_a_version_approved_between_the_two_reads_of_one_poll_is_not_lost() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset(), key(0, "1.0.0"))
    poll = WatchPoll("m", cursor)
    run(
        poll,
        {
            ReadRecent("m", 0): page(ver("1.1.0", "Pending", 5), ver("1.0.0", "Approved", 0)),
            ReadPending("m", 0): page(),  # 1.1.0 was approved after the first read
            ReadVersion("m", "1.1.0"): ver("1.1.0", "Approved", 5),
        },
    )
    assert poll.observation is not None
    assert [v.version_name for v in apply_observation(cursor, poll.observation).announce] == ["1.1.0"]


def test_a_pending_version_shifted_between_pages_stays_pending() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset({"0.5.0"}), None)
    poll = WatchPoll("m", cursor)
    run(
        poll,
        {
            ReadRecent("m", 0): page(ver("1.0.0", "Approved", 0)),
            ReadPending("m", 0): page(),
            ReadVersion("m", "0.5.0"): ver("0.5.0", "Pending", -5),
        },
    )
    assert poll.observation is not None
    result = apply_observation(cursor, poll.observation)
    assert result.announce == () and result.cursor.pending == frozenset({"0.5.0"})


@pytest.mark.parametrize(
    ("mode", "announced", "skipped"),
    [("newer", ["1.2.0"], ["1.1.0"]), ("every", ["1.2.0", "1.1.0"], [])],
)
def test_announce_newer_passes_over_a_late_approval_of_an_older_version(
    mode: str, announced: list[str], skipped: list[str]
) -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset({"1.1.0"}), key(0, "1.0.0"))
    first = apply_observation(
        cursor, Observation(key(20, "1.2.0"), frozenset({"1.1.0"}), (ver("1.2.0", "Approved", 20),)), announce=mode
    )
    second = apply_observation(
        first.cursor, Observation(key(20, "1.2.0"), frozenset(), (ver("1.1.0", "Approved", 10),)), announce=mode
    )
    assert [v.version_name for v in first.announce + second.announce] == announced
    assert [v.version_name for v in second.skipped] == skipped


def test_one_poll_serves_watchers_at_different_cursors() -> None:
    behind = WatchCursor(key(0, "1.0.0"), frozenset(), key(0, "1.0.0"))
    ahead = WatchCursor(key(10, "1.1.0"), frozenset(), key(10, "1.1.0"))
    merged = merge_cursors([behind, ahead, None])
    assert merged == WatchCursor(key(0, "1.0.0"), frozenset())
    obs = Observation(key(20, "1.2.0"), frozenset(), (ver("1.1.0", "Approved", 10), ver("1.2.0", "Approved", 20)))
    assert [v.version_name for v in apply_observation(behind, obs).announce] == ["1.1.0", "1.2.0"]
    assert [v.version_name for v in apply_observation(ahead, obs).announce] == ["1.2.0"]
    assert merge_cursors([None, None]) is None


def test_start_after_announces_what_was_created_after_it() -> None:
    cursor = start_cursor(T0 + timedelta(minutes=5))
    assert cursor is not None
    obs = Observation(key(10, "1.1.0"), frozenset(), (ver("1.0.0", "Approved", 0), ver("1.1.0", "Approved", 10)))
    assert [v.version_name for v in apply_observation(cursor, obs).announce] == ["1.1.0"]
    assert start_cursor(None) is None


def test_a_state_of_another_watcher_is_never_read_as_ours() -> None:
    cursor = WatchCursor(key(10, "1.1.0"), frozenset({"1.2.0"}), key(10, "1.1.0"))
    stored = json.loads(json.dumps(cursor.to_json(ID)))
    assert WatchCursor.from_json(stored, ID) == cursor
    for other in (
        WatchIdentity("pai_default", ID.endpoint, "m2"),
        WatchIdentity("pai_other", ID.endpoint, "m"),
        WatchIdentity("pai_default", "https://aiworkspace.cn-shanghai.aliyuncs.com", "m"),
    ):
        assert other.state_key != ID.state_key
        assert WatchCursor.from_json(stored, other) is None
    assert WatchCursor.from_json({"v": 2, "known": ["1.0.0"]}, ID) is None  # the old, unnamespaced format
    assert WatchCursor.from_json({**stored, "seen": ["not a time", "x"]}, ID) is None


def test_the_state_does_not_grow_with_history() -> None:
    # 100,000 Approved versions in the model: the state is the cursor, whatever the history
    cursor = WatchCursor(
        key(100_000, "9.99.999"), frozenset({f"10.0.{i}" for i in range(20)}), key(100_000, "9.99.999")
    )
    assert len(json.dumps(cursor.to_json(ID))) < 1024


def test_unjudgeable_answers_fail_closed() -> None:
    cursor = WatchCursor(key(0, "1.0.0"), frozenset({"1.1.0"}), None)
    poll = WatchPoll("m", cursor)
    with pytest.raises(RegistryResponseError) as err:
        run(
            poll,
            {
                ReadRecent("m", 0): page(ver("1.0.0", "Approved", 0)),
                ReadPending("m", 0): page(ver("1.1.0", "Approved", 5)),
            },
        )
    assert err.value.field == "ApprovalStatus"
    poll = WatchPoll("m", cursor)
    with pytest.raises(RegistryResponseError) as err:
        run(
            poll,
            {
                ReadRecent("m", 0): page(ver("1.0.0", "Approved", 0)),
                ReadPending("m", 0): page(),
                ReadVersion("m", "1.1.0"): ver("1.2.0", "Approved", 5),
            },
        )
    assert err.value.field == "VersionName"
    with pytest.raises(RegistryInputError) as bad:
        check_announce("all")
    assert bad.value.field == "announce"


def test_a_poll_planned_without_a_watcher_does_not_serve_it() -> None:
    """A watcher that joins a shared poll late (its cursor was not merged in) takes only a poll that read what it
    needs: versions created after its own ``seen`` and every name it knew as Pending."""
    behind = WatchCursor(key(0, "1.0.0"), frozenset({"1.1.0"}), key(0, "1.0.0"))
    ahead = WatchCursor(key(10, "1.2.0"), frozenset(), key(10, "1.2.0"))
    poll = WatchPoll("m", merge_cursors([ahead]))
    run(
        poll,
        {
            ReadRecent("m", 0): page(ver("1.2.0", "Approved", 10)),
            ReadPending("m", 0): page(),
        },
    )
    obs = poll.observation
    assert obs is not None
    assert obs.covers(ahead) and not obs.covers(behind)  # 1.1.0 (Pending for it) was never asked about
    assert not obs.covers(None)  # nor can it start a watcher: the newest Approved was not read
    merged = WatchPoll("m", merge_cursors([ahead, behind]), need_newest_approved=True)
    run(
        merged,
        {
            ReadRecent("m", 0): page(ver("1.2.0", "Approved", 10), ver("1.0.0", "Approved", 0)),
            ReadPending("m", 0): page(),
            ReadApproved("m", 0): page(ver("1.2.0", "Approved", 10)),
            ReadVersion("m", "1.1.0"): ver("1.1.0", "Approved", 5),
        },
    )
    assert merged.observation is not None
    assert all(merged.observation.covers(c) for c in (ahead, behind, None))
    assert [v.version_name for v in apply_observation(behind, merged.observation, announce="every").announce] == [
        "1.1.0",
        "1.2.0",
    ]


# -- issue 24: alias watchers (the holder given; who holds it is approval.alias_holder's table)


@pytest.mark.parametrize(
    ("cursor", "holder", "created_after", "announced", "after"),
    [
        pytest.param(None, None, None, None, None, id="start-no-holder"),
        pytest.param(None, ver("1.0.0"), None, None, "1.0.0", id="start-approved-holder-is-known-not-announced"),
        pytest.param(None, ver("1.0.0", "Pending"), None, None, None, id="start-pending-holder"),
        pytest.param(None, ver("1.0.0", minutes=5), T0, "1.0.0", "1.0.0", id="start-holder-created-after"),
        pytest.param(None, ver("1.0.0", minutes=0), T0, None, "1.0.0", id="start-created-after-is-strict"),
        pytest.param("1.0.0", ver("1.0.0"), None, None, "1.0.0", id="same-holder-once"),
        pytest.param("1.0.0", ver("1.1.0"), None, "1.1.0", "1.1.0", id="new-approved-holder"),
        pytest.param("1.0.0", ver("1.1.0", "Pending"), None, None, "1.0.0", id="new-pending-holder-waits"),
        pytest.param("1.0.0", ver("1.1.0", "Rejected"), None, None, "1.0.0", id="new-rejected-holder"),
        pytest.param("1.0.0", None, None, None, "1.0.0", id="no-holder-keeps-the-last"),
        pytest.param("1.1.0", ver("1.0.0"), None, "1.0.0", "1.0.0", id="moved-back-is-announced-again"),
    ],
)
def test_apply_alias(
    cursor: str | None, holder: PaiModelVersion | None, created_after: Any, announced: str | None, after: str | None
) -> None:
    from airflow_provider_modelreg.watch import AliasCursor, apply_alias

    result = apply_alias(None if cursor is None else AliasCursor(cursor), holder, created_after=created_after)
    assert (result.announce.version_name if result.announce else None) == announced
    assert result.cursor == AliasCursor(after)


def test_an_empty_alias_state_announces_the_next_approved_holder() -> None:
    from airflow_provider_modelreg.watch import AliasCursor, apply_alias

    result = apply_alias(AliasCursor(None), ver("1.0.0"))
    assert result.announce is not None and result.cursor == AliasCursor("1.0.0")


def test_alias_state_is_namespaced_and_round_trips() -> None:
    from airflow_provider_modelreg.watch import AliasCursor, merge_alias_cursors

    mine = WatchIdentity(ID.conn_id, ID.endpoint, ID.model_id, ("alias", "champion"))
    other = WatchIdentity(ID.conn_id, ID.endpoint, ID.model_id, ("alias", "challenger"))
    assert len({ID.state_key, mine.state_key, other.state_key}) == 3
    assert ID.to_json() == {"conn_id": ID.conn_id, "endpoint": ID.endpoint, "model_id": "m"}  # unchanged
    stored = json.loads(json.dumps(AliasCursor("1.0.0").to_json(mine)))
    assert AliasCursor.from_json(stored, mine) == AliasCursor("1.0.0")
    assert AliasCursor.from_json(stored, other) is None
    assert AliasCursor.from_json(stored, ID) is None
    assert WatchCursor.from_json(stored, ID) is None  # a plain watcher never reads an alias state
    assert AliasCursor.from_json(WatchCursor(None).to_json(ID), mine) is None
    assert merge_alias_cursors([AliasCursor("1.0.0"), AliasCursor("1.0.0")]) == AliasCursor("1.0.0")
    assert merge_alias_cursors([AliasCursor("1.0.0"), AliasCursor("1.1.0")]) == AliasCursor(None)
