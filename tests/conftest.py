"""Shared test set-up: an isolated AIRFLOW_HOME with SQLite, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="modelreg-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")


# ------------------------------------------------------------------------------------------------ emulator fixtures

from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def emulator() -> Iterator[Any]:
    """One registry emulator with the built-in demo seed for the whole session (read-only use, please)."""
    from airflow_provider_modelreg.emulator import RegistryEmulator

    with RegistryEmulator() as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Any]]:
    """Factory: ``make_emulator(seed=..., **RegistryEmulator kwargs)`` starts an emulator, stopped after the test."""
    from airflow_provider_modelreg.emulator import RegistryEmulator

    started: list[Any] = []

    def make(seed: Any = None, **kwargs: Any) -> Any:
        emu = RegistryEmulator(seed, **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in reversed(started):
        emu.stop()
