"""Emulator creation times and order (issue 10 case 6, issue 11 item 4): seed versions without a creation time
get distinct past times in seed order; ties in creation time are broken deterministically."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
from helpers import build_seed, fabric_conn, pai_conn

from airflow_provider_modelreg.approval import ApprovalCheck, ApprovalDecision, ApprovalTarget, Outcome
from airflow_provider_modelreg.approval_io import drive, read
from airflow_provider_modelreg.hooks.fabric import FabricModelRegistryHook
from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
from modelreg_emulator.store import Store, parse_time


def _undated_seed() -> dict[str, Any]:
    seed = build_seed()
    seed["pai"]["models"][0]["Versions"] = [
        {"VersionName": "0.9.0", "Uri": "oss://b/0.9.0/"},
        {"VersionName": "1.0.0", "Uri": "oss://b/1.0.0/", "ApprovalStatus": "Approved"},
        {"VersionName": "1.1.0", "Uri": "oss://b/1.1.0/"},
        {"VersionName": "1.2.0", "Uri": "oss://b/1.2.0/"},
    ]
    seed["fabric"]["workspaces"][0]["models"][0]["versions"] = [
        {"id": f"00000000-0000-4000-8000-{n:012d}", "name": f"v{n}"} for n in range(1, 4)
    ]
    return seed


def test_seed_versions_without_a_time_are_distinct_past_and_in_seed_order() -> None:
    before = datetime.now(timezone.utc)
    store = Store(_undated_seed())
    start = store.started_wall.replace(microsecond=store.started_wall.microsecond // 1000 * 1000)
    pai = [parse_time(v["GmtCreateTime"]) for v in store.pai_versions("m-main")]
    assert [v["VersionName"] for v in store.pai_versions("m-main")] == ["0.9.0", "1.0.0", "1.1.0", "1.2.0"]
    assert pai == [start - timedelta(seconds=n) for n in (4, 3, 2, 1)]
    assert all(t is not None and t < before for t in pai)
    fabric = [parse_time(v["create_time"]) for v in store.fabric_versions("ws-1", "fm-1")]
    assert [v["name"] for v in store.fabric_versions("ws-1", "fm-1")] == ["v1", "v2", "v3"]
    assert fabric == [start - timedelta(seconds=n) for n in (3, 2, 1)]


def test_undated_versions_mix_with_dated_ones_in_seed_order() -> None:
    seed = _undated_seed()
    versions = seed["pai"]["models"][0]["Versions"]
    versions[1]["GmtCreateTime"] = "2024-01-01T00:00:00.000Z"  # 1.0.0 dated, long ago
    store = Store(seed)
    times = {v["VersionName"]: parse_time(v["GmtCreateTime"]) for v in store.pai_versions("m-main")}
    assert times["0.9.0"] < times["1.1.0"] < times["1.2.0"]  # type: ignore[operator]
    assert len(set(times.values())) == 4


def test_created_after_an_undated_version_matches(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """created_after against versions the seed gave no time: the gate reads the emulator's times, strictly."""
    emu = make_emulator(seed=_undated_seed())
    pai_conn(monkeypatch, emu.url)
    hook = PaiModelRegistryHook()
    created = {v.version_name: v.gmt_create_time for v in hook.list_model_versions("m-main")}

    def decide(created_after: datetime | None) -> ApprovalDecision:
        check = ApprovalCheck(ApprovalTarget("m-main", created_after=created_after))
        drive(check, lambda what: read(hook, what))
        assert check.decision is not None
        return check.decision

    after_090 = decide(created["0.9.0"])  # 1.0.0, undated too and Approved, was created after 0.9.0
    assert after_090.outcome is Outcome.APPROVED and after_090.version is not None
    assert after_090.version.version_name == "1.0.0"
    assert decide(created["1.0.0"]).outcome is Outcome.WAITING  # strict: not 1.0.0 itself; 1.1.0, 1.2.0 Pending
    hook.close()

    emu.store.set_approval("m-main", "1.2.0", "Approved")
    anchor = created["1.0.0"]
    assert anchor is not None
    sensor = PaiModelVersionApprovedSensor(  # the time as the ISO string a DAG renders
        task_id="wait", model_id="m-main", created_after=anchor.isoformat(), poke_interval=0.05, timeout=60
    )
    ti = mock.MagicMock()
    ref = sensor.execute({"ti": ti, "task_instance": ti})  # type: ignore[arg-type]
    assert ref["version_name"] == "1.2.0" and ref["approval_status"] == "Approved"


def test_ties_in_creation_time_follow_seed_order_and_desc_is_the_reverse(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed = build_seed()
    same = "2024-05-01T00:00:00.000Z"
    names = ["b", "a", "d", "c", "e"]
    seed["pai"]["models"][0]["Versions"] = [
        {"VersionName": n, "Uri": f"oss://b/{n}/", "GmtCreateTime": same} for n in names
    ]
    emu = make_emulator(seed=seed)
    emu.store.add_pai_version("m-main", {"VersionName": "late-tie", "Uri": "oss://b/x/", "GmtCreateTime": same})
    pai_conn(monkeypatch, emu.url)
    hook = PaiModelRegistryHook()
    for _ in range(2):  # the same answer every time
        asc = [v.version_name for v in hook.list_model_versions("m-main", order="ASC", page_size=2)]
        assert asc == [*names, "late-tie"]
        desc = [v.version_name for v in hook.list_model_versions("m-main", order="DESC", page_size=2)]
        assert desc == asc[::-1]


def test_versions_added_at_run_time_come_after_the_seeded_ones() -> None:
    store = Store(_undated_seed())
    added = store.add_pai_version("m-main", {"VersionName": "2.0.0", "Uri": "oss://b/2.0.0/"})
    times = [parse_time(v["GmtCreateTime"]) for v in store.pai_versions("m-main")]
    assert added["VersionName"] == store.pai_versions("m-main")[-1]["VersionName"]
    assert times == sorted(times)  # type: ignore[type-var]
    assert len(set(times)) == len(times)


def test_fabric_hook_sorts_whatever_the_served_order(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator's Fabric order is a guess: serve it reversed and the hook's answer does not change."""
    emu = make_emulator(seed=build_seed(fabric_generated=230))
    fabric_conn(monkeypatch, emu.url)
    hook = FabricModelRegistryHook()
    before = [v.id for v in hook.list_model_versions("fm-big", workspace_id="ws-1", page_size=50)]
    with emu.store.lock:
        emu.store.workspaces["ws-1"]["fm-big"].versions.reverse()
    assert [v.id for v in hook.list_model_versions("fm-big", workspace_id="ws-1", page_size=50)] == before
    created = [v.create_time for v in hook.list_model_versions("fm-big", workspace_id="ws-1")]
    assert created == sorted(created, reverse=True)  # type: ignore[type-var]  # newest first by default
    ascending = [v.create_time for v in hook.list_model_versions("fm-big", workspace_id="ws-1", order="ASC")]
    assert ascending == created[::-1]
