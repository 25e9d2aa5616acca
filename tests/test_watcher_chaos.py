"""Issue 19: the chaos case against the credential services, through the deferrable trigger. Five waits share one
PAI connection whose key comes from a credential service of the emulator: the service down for 3 polls, then back
-> every wait succeeds within its failure budget; a 403 from STS -> every wait fails at once, naming the source."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers import build_seed
from test_credentials_alibaba import connect, make_oidc_token, source_extras
from test_watcher_delivery import first_event

from airflow_provider_modelreg.triggers.pai import PaiModelVersionApprovedTrigger
from modelreg_emulator.credential_services import outage_failures, set_outage

WAITS = 5


def waits(conn_id: str) -> list[PaiModelVersionApprovedTrigger]:
    return [
        PaiModelVersionApprovedTrigger(
            pai_conn_id=conn_id, model_id="m-main", version_name="1.0.0", poke_interval=0.05, max_failures=5
        )
        for _ in range(WAITS)
    ]


@pytest.mark.parametrize("kind", ["ecs_ram_role", "ram_role_arn", "oidc_role_arn", "credentials_uri"])
async def test_a_credential_service_down_for_three_polls_then_back_every_wait_succeeds(
    kind: str, make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(build_seed())
    token = tmp_path / "oidc-token"
    token.write_text(make_oidc_token())
    conn_id = f"chaos_{kind}"
    connect(monkeypatch, emu, conn_id, {**source_extras(kind, emu, token), "max_attempts": 1})
    set_outage(emu.registry, requests=3, status=503)
    events = await asyncio.gather(*(first_event(t) for t in waits(conn_id)))
    assert [e.payload["status"] for e in events] == ["success"] * WAITS, [e.payload for e in events]
    assert outage_failures(emu.registry) == 3  # the outage really was seen, and outlived


async def test_a_403_from_sts_fails_every_wait_at_once_naming_the_source(
    make_emulator: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    emu = make_emulator(build_seed())
    connect(monkeypatch, emu, "chaos_refused", {**source_extras("ram_role_arn", emu, tmp_path), "max_attempts": 1})
    set_outage(emu.registry, requests=100, status=403)
    events = await asyncio.gather(*(first_event(t) for t in waits("chaos_refused")))
    for event in events:
        assert event.payload["status"] == "error", event.payload
        assert event.payload["error_type"] == "CredentialSourceError"
        assert event.payload["message"].startswith("credential source ram_role_arn: "), event.payload
    assert outage_failures(emu.registry) <= 2  # refused at once: not asked again poll after poll
