"""The EAS traffic and lifecycle decisions as plain data (issue 22): the canary's step planner (exhaustively over
small step lists), whether a release took, the rollback's target, the cleanup's choice, and what a lock forbids."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_modelreg.eas_deploy import RolloutWatch
from airflow_provider_modelreg.eas_models import EasService
from airflow_provider_modelreg.eas_traffic import (
    RESTORE,
    CanaryStep,
    EasCanaryError,
    EasSafetyLockError,
    RollbackPlan,
    judge_rollback,
    lock_forbids,
    plan_canary,
    plan_cleanup,
    plan_rollback,
    resume_index,
    traffic_mismatch,
)
from airflow_provider_modelreg.errors import RegistryInputError


def service(name: str = "svc", **fields: Any) -> EasService:
    wire = {"ServiceName": name, "Status": "Running", **fields}
    return EasService.model_validate(wire)


# ------------------------------------------------------------------------------------------------ canary steps


def test_every_increasing_plan_of_up_to_three_steps_is_planned_exactly() -> None:
    values = [1, 2, 10, 50, 99, 100]
    seen = 0
    for size in (1, 2, 3):
        for steps in itertools.product(values, repeat=size):
            increasing = all(a < b for a, b in itertools.pairwise(steps))
            if not increasing:
                with pytest.raises(RegistryInputError) as err:
                    plan_canary(list(steps))
                assert err.value.field == "steps" and "increasing" in str(err.value)
                continue
            plan = plan_canary(list(steps))
            seen += 1
            assert [s.percent for s in plan] == list(steps)
            assert all(s.new_weight == s.percent and s.new_weight + s.old_weight == 100 for s in plan)
    assert seen == 6 + 15 + 20  # C(6,1) + C(6,2) + C(6,3)


@given(st.lists(st.integers(1, 100), min_size=1, max_size=8, unique=True).map(sorted))
def test_any_sorted_unique_plan_ends_where_declared(steps: list[int]) -> None:
    plan = plan_canary(steps)
    assert plan[-1].percent == steps[-1] and (plan[-1].old_weight == 0) == (steps[-1] == 100)


@pytest.mark.parametrize(
    "steps", [[], "10,50", b"1", [0], [101], [-5], [10, 10], [50, 10], [True], [10.0], ["10"], None, {10: 1}]
)
def test_a_bad_plan_is_refused(steps: Any) -> None:
    with pytest.raises(RegistryInputError) as err:
        plan_canary(steps)
    assert err.value.field == "steps"


def test_restore_puts_everything_on_the_old_service() -> None:
    assert RESTORE == CanaryStep(0, 0, 100)


def test_a_release_took_only_when_describe_shows_both_settings() -> None:
    assert traffic_mismatch(service(TrafficState="grouping", Weight=10), 10) is None
    assert "Weight 0" in str(traffic_mismatch(service(TrafficState="grouping", Weight=0), 10))
    assert "standalone" in str(traffic_mismatch(service(TrafficState="standalone", Weight=10), 10))
    assert traffic_mismatch(service(), 10) is not None  # nothing reported: never assumed


def at(weight: int | None, state: str | None = "grouping") -> EasService:
    return service(TrafficState=state, Weight=weight) if weight is not None else service(TrafficState=state)


@pytest.mark.parametrize(
    ("new", "old", "start"),
    [
        (at(0), at(100), 0),  # fresh: the new member at 0, the old service serving the group
        (at(10), at(90), 0),  # step 10% already applied: released and verified again
        (at(50), at(50), 1),  # a retry after a crash at 50%: resumes there, never back to 10%
        (at(100), at(0), 2),  # the last step reached: verified again, nothing moves
        (at(50), at(90), 0),  # half a step (the crash fell between the two releases): from the start
        (at(50, "standalone"), at(50), 0),  # not grouping: not a step's setting
        (at(None), at(None), 0),  # nothing reported: never assumed
    ],
)
def test_a_retry_resumes_at_the_latest_step_describe_shows(new: EasService, old: EasService, start: int) -> None:
    assert resume_index(plan_canary([10, 50, 100]), new, old) == start


@given(st.lists(st.integers(1, 100), min_size=1, max_size=6, unique=True).map(sorted), st.data())
def test_resume_finds_any_applied_step(steps: list[int], data: st.DataObject) -> None:
    plan = plan_canary(steps)
    index = data.draw(st.integers(0, len(plan) - 1))
    assert resume_index(plan, at(plan[index].new_weight), at(plan[index].old_weight)) == index


# ------------------------------------------------------------------------------------------------ locks


@pytest.mark.parametrize(
    ("lock", "delete", "release"),
    [
        (None, False, False),
        ("", False, False),
        ("none", False, False),
        ("dangerous", True, False),
        ("all", True, True),
        ("something-new", True, True),  # a lock not understood forbids every change
    ],
)
def test_what_a_lock_forbids(lock: str | None, delete: bool, release: bool) -> None:
    assert lock_forbids(lock, "DeleteService") is delete
    assert lock_forbids(lock, "ReleaseService") is release
    assert lock_forbids(lock, "UpdateServiceVersion") is release
    assert not lock_forbids(lock, "DescribeService")


def test_the_errors_name_the_lock_the_step_and_the_outcome() -> None:
    assert "'dangerous'" in str(EasSafetyLockError("svc", "dangerous", "DeleteService"))
    restored = EasCanaryError("new", 50, "probe answered HTTP 503", restored=True)
    assert "step 50%" in str(restored) and "503" in str(restored) and "verified" in str(restored)
    assert "could NOT" in str(EasCanaryError("new", 10, "x", restored=False))


# ------------------------------------------------------------------------------------------------ rollback


def test_the_rollback_target() -> None:
    on3 = service(CurrentVersion=3, LatestVersion=3)
    assert (plan_rollback(on3, None).target, plan_rollback(on3, None).send) == (2, True)
    assert plan_rollback(on3, 1).target == 1
    assert plan_rollback(on3, None, recorded=1).target == 1  # an earlier try's choice wins over "previous"
    done = service(CurrentVersion=2, LatestVersion=2)
    assert plan_rollback(done, None, recorded=2).send is False  # a retry after the rollback: verify only
    in_flight = service(Status="Updating", CurrentVersion=3, LatestVersion=2)
    assert plan_rollback(in_flight, None, recorded=2).send is False  # never a second UpdateServiceVersion
    assert plan_rollback(on3, 3) == (RollbackPlan(3, send=False))  # already the current one: verify only
    with pytest.raises(RegistryInputError):
        plan_rollback(service(CurrentVersion=1, LatestVersion=1), None)  # no earlier version
    for bad in (4, 0):
        with pytest.raises(RegistryInputError) as err:
            plan_rollback(on3, bad)
        assert err.value.field == "version" and "1 to 2" in str(err.value)
    with pytest.raises(EasSafetyLockError) as err:
        plan_rollback(service(CurrentVersion=3, LatestVersion=3, SafetyLock="all"), None)
    assert err.value.operation == "UpdateServiceVersion"
    assert plan_rollback(service(CurrentVersion=3, LatestVersion=3, SafetyLock="dangerous"), None).send


def test_judge_rollback_wants_the_target_current() -> None:
    ready = {"RunningInstance": 1, "TotalInstance": 1}
    verdict, news = judge_rollback(RolloutWatch(2, 60), service(CurrentVersion=2, LatestVersion=2, **ready), 2, 0)
    assert verdict.state == "done" and news
    verdict, _ = judge_rollback(RolloutWatch(2, 60), service(CurrentVersion=3, LatestVersion=3, **ready), 2, 0)
    assert (verdict.state, verdict.reason) == ("failed", "RolledElsewhere")
    updating = service(Status="Updating", CurrentVersion=3, LatestVersion=2, **ready)
    assert judge_rollback(RolloutWatch(2, 60), updating, 2, 0)[0].state == "wait"
    assert judge_rollback(RolloutWatch(2, 60), service(Status="Failed", CurrentVersion=2), 2, 0)[0].state == "failed"


# ------------------------------------------------------------------------------------------------ cleanup


def listed(*rows: tuple[str, str | None, str | None]) -> list[EasService]:
    return [service(name, CreateTime=created, SafetyLock=lock) for name, created, lock in rows]


def test_cleanup_keeps_the_newest_by_create_time_whatever_the_server_order() -> None:
    rows = [
        ("svc_b", "2026-12-01T10:00:00Z", None),
        ("svc_d", "2026-12-04T10:00:00Z", None),
        ("svc_a", "2026-12-02T10:00:00Z", None),
        ("svc_c", "2026-12-03T10:00:00Z", "none"),
    ]
    for order in itertools.permutations(rows):
        plan = plan_cleanup(listed(*order), keep=2)
        assert plan.keep == ("svc_d", "svc_c") and plan.delete == ("svc_a", "svc_b") and plan.skipped == ()


def test_cleanup_breaks_create_time_ties_by_name_and_reads_offsets() -> None:
    rows = listed(
        ("svc_x", "2026-12-01T10:00:00Z", None),
        ("svc_y", "2026-12-01T10:00:00Z", None),
        ("svc_z", "2026-12-01T11:30:00+02:00", None),  # 09:30 UTC: the oldest
    )
    assert plan_cleanup(rows, keep=1) == plan_cleanup(rows[::-1], keep=1)
    plan = plan_cleanup(rows, keep=1)
    assert plan.keep == ("svc_y",) and plan.delete == ("svc_x", "svc_z")


def test_cleanup_protects_skips_locked_gone_and_undated() -> None:
    rows = [
        *listed(
            ("newest", "2026-12-05T00:00:00Z", None),
            ("serving", "2026-12-01T00:00:00Z", None),
            ("locked", "2026-12-02T00:00:00Z", "dangerous"),
            ("old", "2026-12-03T00:00:00Z", None),
            ("undated", None, None),
            ("garbled", "yesterday", None),
        ),
        service("going", CreateTime="2026-11-01T00:00:00Z", Status="Deleting"),
    ]
    plan = plan_cleanup(rows, keep=1, protect={"serving"})
    assert plan.keep == ("newest", "serving") and plan.delete == ("old",)
    assert dict(plan.skipped) == {
        "locked": "SafetyLock dangerous",
        "going": "already Deleting",
        "undated": "CreateTime None unreadable: age unknown",
        "garbled": "CreateTime 'yesterday' unreadable: age unknown",
    }
    assert plan_cleanup(rows, keep=10).delete == ()


@pytest.mark.parametrize("keep", [0, -1, True, 1.5, "2"])
def test_cleanup_never_deletes_everything(keep: Any) -> None:
    with pytest.raises(RegistryInputError) as err:
        plan_cleanup(listed(("a", "2026-12-01T00:00:00Z", None)), keep=keep)
    assert err.value.field == "keep"
