"""Credential services of the emulator (to be filled in)."""

from __future__ import annotations

from typing import Any

from airflow_provider_modelreg.emulator.wire import Req


def match(method: str, path: str, req: Req) -> Any:
    """``(route, handler)`` when the request is for one of these services, else None."""
    return None
