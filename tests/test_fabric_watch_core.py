"""Issue 23: the Fabric watch core (sans-IO) and the wait's decision core on plain data: the order is create_time then
id whatever the server's order, failed versions are never announced, a new version without create_time is an error
naming it, a state round-trips and is never read as another watcher's."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from helpers import fabric_version

from airflow_provider_modelreg.errors import RegistryInputError, RegistryResponseError
from airflow_provider_modelreg.fabric_wait import (
    FabricOutcome,
    FabricVersionCheck,
    FabricVersionList,
    FabricWaitTarget,
    ReadFabricModel,
    ReadFabricVersions,
    version_state,
)
from airflow_provider_modelreg.fabric_watch import (
    FabricObservation,
    FabricWatchCursor,
    FabricWatchIdentity,
    FabricWatchPoll,
    apply_fabric_observation,
    check_watch_mode,
    merge_fabric_cursors,
)
from airflow_provider_modelreg.models import FabricModel, FabricModelVersion


def ver(index: int, name: str | None = None, second: int | None = None, **extra: Any) -> FabricModelVersion:
    wire = {**fabric_version(index, name), **extra}
    if second is not None:
        wire["create_time"] = f"2024-02-01T00:00:{second:02d}Z"
    return FabricModelVersion.model_validate({k: v for k, v in wire.items() if v is not None})


def listing(*versions: FabricModelVersion) -> FabricObservation:
    return FabricObservation("fm-1", versions=FabricVersionList(tuple(versions)))


def model(current: FabricModelVersion | None) -> FabricObservation:
    return FabricObservation("fm-1", model=FabricModel(id="fm-1", current_version=current))


def names(versions: tuple[FabricModelVersion, ...]) -> list[str | None]:
    return [v.name for v in versions]


def test_new_versions_are_announced_oldest_first_by_create_time_then_id_not_in_server_order() -> None:
    start = apply_fabric_observation(None, listing(ver(1)), mode="new_version")
    assert start.announce == () and start.cursor.known == {ver(1).id}
    # the server lists them newest first, and two share a creation instant: the id breaks the tie
    later = listing(ver(9, "late", 5), ver(3, "tie-b", 4), ver(2, "tie-a", 4), ver(1))
    result = apply_fabric_observation(start.cursor, later, mode="new_version")
    assert names(result.announce) == ["tie-a", "tie-b", "late"]
    again = apply_fabric_observation(result.cursor, later, mode="new_version")
    assert again.announce == ()  # each once


def test_a_version_listed_late_with_an_older_create_time_is_still_new() -> None:
    cursor = FabricWatchCursor(frozenset({ver(5).id}))
    result = apply_fabric_observation(cursor, listing(ver(5, second=50), ver(4, "slow", 10)), mode="new_version")
    assert names(result.announce) == ["slow"]


def test_failed_versions_are_reported_not_announced() -> None:
    cursor = FabricWatchCursor(frozenset())
    result = apply_fabric_observation(cursor, listing(ver(1), ver(2, status="CREATE_FAILED")), mode="new_version")
    assert names(result.announce) == ["ver-1"] and names(result.failed) == ["ver-2"]
    assert result.cursor.known == {ver(1).id, ver(2).id}  # not reported again


def test_a_new_version_without_create_time_fails_the_poll_naming_it() -> None:
    undated = FabricModelVersion.model_validate({k: v for k, v in fabric_version(2).items() if k != "create_time"})
    with pytest.raises(RegistryResponseError, match="create_time"):
        apply_fabric_observation(FabricWatchCursor(frozenset()), listing(ver(1), undated), mode="new_version")
    # known already (or at a first start without created_after): nothing to order, nothing raised
    assert apply_fabric_observation(FabricWatchCursor(frozenset({undated.id})), listing(undated), mode="new_version")
    assert apply_fabric_observation(None, listing(undated), mode="new_version").announce == ()


def test_created_after_announces_what_was_created_after_it_at_the_first_start() -> None:
    when = datetime(2024, 2, 1, 0, 0, 2, tzinfo=timezone.utc)
    result = apply_fabric_observation(None, listing(ver(3), ver(1), ver(2)), mode="new_version", created_after=when)
    assert names(result.announce) == ["ver-3"]


def test_each_new_current_version_is_announced_once() -> None:
    start = apply_fabric_observation(None, model(ver(1)), mode="current_version")
    assert start.announce == () and start.cursor.current == ver(1).id
    moved = apply_fabric_observation(start.cursor, model(ver(2)), mode="current_version")
    assert names(moved.announce) == ["ver-2"]
    assert apply_fabric_observation(moved.cursor, model(ver(2)), mode="current_version").announce == ()
    back = apply_fabric_observation(moved.cursor, model(ver(1)), mode="current_version")
    assert names(back.announce) == ["ver-1"]  # a new current version, though an older one
    none = apply_fabric_observation(back.cursor, model(None), mode="current_version")
    assert none.announce == () and none.cursor.current is None
    failed = apply_fabric_observation(none.cursor, model(ver(3, status="FAILED")), mode="current_version")
    assert failed.announce == () and names(failed.failed) == ["ver-3"]


def test_the_state_round_trips_and_is_never_read_as_another_watchers() -> None:
    mine = FabricWatchIdentity("fabric_default", "https://x", "ws-1", "fm-1", "new_version")
    other = FabricWatchIdentity("fabric_default", "https://x", "ws-1", "fm-1", "current_version")
    cursor = FabricWatchCursor(frozenset({"a", "b"}), None)
    assert FabricWatchCursor.from_json(cursor.to_json(mine), mine) == cursor
    assert FabricWatchCursor.from_json(cursor.to_json(mine), other) is None
    assert mine.state_key != other.state_key and mine.state_key.startswith("modelreg_fabric_watch:fm-1:")
    assert FabricWatchCursor.from_json({"v": 1, "identity": mine.to_json(), "known": "a"}, mine) is None
    merged = merge_fabric_cursors([cursor, FabricWatchCursor(frozenset({"a"}))])
    assert merged.known == {"a"}  # the state furthest behind: "b" is announced again rather than never


def test_the_watch_poll_reads_one_thing_per_mode_and_checks_the_answer() -> None:
    poll = FabricWatchPoll(None, "fm-1", "current_version")
    assert poll.next_read() == ReadFabricModel(None, "fm-1")
    with pytest.raises(RegistryResponseError, match="fm-2"):
        poll.receive(ReadFabricModel(None, "fm-1"), FabricModel(id="fm-2"))
    poll = FabricWatchPoll("ws-1", "fm-1", "new_version")
    assert poll.next_read() == ReadFabricVersions("ws-1", "fm-1")
    poll.receive(ReadFabricVersions("ws-1", "fm-1"), FabricVersionList((ver(1),)))
    assert poll.next_read() is None and poll.observation is not None
    with pytest.raises(RegistryInputError) as err:
        check_watch_mode("every_version")
    assert err.value.field == "mode"


def test_the_wait_core_decides_from_plain_data() -> None:
    check = FabricVersionCheck(FabricWaitTarget("fm-1", version_pattern=r"rc-\d+"))
    read = check.next_read()
    assert read == ReadFabricVersions(None, "fm-1")
    check.receive(read, FabricVersionList((ver(2, "rc-2", 9), ver(1, "rc-1", 10), ver(3, "rc-3", 1))))
    assert check.decision is not None and check.decision.outcome is FabricOutcome.FOUND
    assert check.decision.version is not None and check.decision.version.name == "rc-1"  # newest by create_time
    current = FabricVersionCheck(FabricWaitTarget("fm-1", current_after=ver(1).id))
    current.receive(ReadFabricVersions(None, "fm-1"), FabricVersionList((ver(1), ver(2))))
    assert current.anchor is not None and current.next_read() == ReadFabricModel(None, "fm-1")
    current.receive(ReadFabricModel(None, "fm-1"), FabricModel(id="fm-1", current_version=ver(2)))
    assert current.decision is not None and current.decision.outcome is FabricOutcome.FOUND
    # the anchor resolved once: the next poll reads the model only
    assert FabricVersionCheck(current.target, anchor=current.anchor).next_read() == ReadFabricModel(None, "fm-1")


# -- a version listed while still being created (Fabric's status is undocumented; its SDK shows none)


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (None, "ready"),  # the SDK's ModelVersionInfo: no status, usable once listed
        ("", "ready"),
        ("SUCCEEDED", "ready"),
        ("active", "ready"),
        ("FAILED", "failed"),
        ("CREATE_FAILED", "failed"),
        ("CREATING", "pending"),
        ("PENDING", "pending"),
        ("UPDATING", "pending"),
        ("SOMETHING_NEW", "pending"),  # not known to mean done: waited on, never deployed
        (3, "pending"),
    ],
)
def test_a_listed_version_is_ready_failed_or_pending(status: Any, state: str) -> None:
    assert version_state(ver(1, status=status) if status is not None else ver(1)) == state


def test_a_version_still_being_created_is_announced_once_by_the_poll_that_sees_it_ready() -> None:
    start = apply_fabric_observation(None, listing(ver(1)), mode="new_version")
    creating = apply_fabric_observation(start.cursor, listing(ver(2, status="CREATING"), ver(1)), mode="new_version")
    assert creating.announce == () and creating.failed == () and ver(2).id not in creating.cursor.known
    ready = apply_fabric_observation(creating.cursor, listing(ver(2, status="SUCCEEDED"), ver(1)), mode="new_version")
    assert names(ready.announce) == ["ver-2"]
    assert apply_fabric_observation(ready.cursor, listing(ver(2), ver(1)), mode="new_version").announce == ()


def test_a_current_version_still_being_created_is_announced_when_ready() -> None:
    start = apply_fabric_observation(None, model(ver(1)), mode="current_version")
    creating = apply_fabric_observation(start.cursor, model(ver(2, status="CREATING")), mode="current_version")
    assert creating.announce == () and creating.cursor == start.cursor
    ready = apply_fabric_observation(creating.cursor, model(ver(2)), mode="current_version")
    assert names(ready.announce) == ["ver-2"]


def test_the_wait_never_opens_on_a_version_still_being_created() -> None:
    check = FabricVersionCheck(FabricWaitTarget("fm-1", version_name="rc-2"))
    check.receive(check.next_read(), FabricVersionList((ver(2, "rc-2", 9, status="CREATING"),)))
    assert check.decision is not None and check.decision.outcome is FabricOutcome.WAITING
    assert "CREATING" in check.decision.outlook and check.decision.version is None
    current = FabricVersionCheck(FabricWaitTarget("fm-1", current_after=ver(1).id))
    current.receive(ReadFabricVersions(None, "fm-1"), FabricVersionList((ver(1), ver(2))))
    current.receive(ReadFabricModel(None, "fm-1"), FabricModel(id="fm-1", current_version=ver(2, status="PENDING")))
    assert current.decision is not None and current.decision.outcome is FabricOutcome.WAITING
