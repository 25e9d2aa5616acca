"""Shared test set-up: an isolated AIRFLOW_HOME with SQLite, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="modelreg-airflow-home-")
os.environ["AIRFLOW_HOME"] = _HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME}/airflow.db"
# Hypothesis keeps its caches (and, unless the profile says otherwise, its example database) in ./.hypothesis:
# under the test home instead, so a run writes nothing into the checkout.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(_HOME, ".hypothesis"))

# ------------------------------------------------------------------------------------------------- property tests

from hypothesis import HealthCheck, settings  # noqa: E402

# Derandomised (the same examples on every run and machine) and without an example database, wherever the suite
# runs, not only where CI is set; `--hypothesis-profile=NAME` still overrides it (the plugin loads that later).
settings.register_profile(
    "ci", derandomize=True, database=None, deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci")

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


# ------------------------------------------------------------------------------------------- Airflow version matrix


def _airflow_minor() -> tuple[int, ...]:
    from importlib import metadata

    return tuple(int(part) for part in metadata.version("apache-airflow").split(".")[:2])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires_airflow(*versions, reason=...): run only on Airflow at or above a version ('3.2') or below one "
        "('<3.0'), any of those given; else skip with the reason. The matrix checks each version's skips against "
        "ci/skips/airflow-X.txt",
    )
    if os.environ.get("MODELREG_TEST_INSTALLED"):  # set by ci/matrix.py: the suite must test the installed wheel
        from pathlib import Path

        import airflow_provider_modelreg

        source = Path(__file__).resolve().parents[1] / "airflow_provider_modelreg"
        if Path(airflow_provider_modelreg.__file__).resolve().parent == source:
            raise pytest.UsageError(f"MODELREG_TEST_INSTALLED is set but the package comes from {source}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    have = _airflow_minor()

    def applies(spec: str) -> bool:
        bound = tuple(int(part) for part in spec.lstrip("<").split("."))
        return have < bound if spec.startswith("<") else have >= bound

    for item in items:
        for mark in item.iter_markers("requires_airflow"):
            specs = [str(spec) for spec in mark.args]
            if not any(applies(spec) for spec in specs):
                wanted = " or ".join(spec if spec.startswith("<") else f">= {spec}" for spec in specs)
                item.add_marker(pytest.mark.skip(reason=f"needs Airflow {wanted}: {mark.kwargs['reason']}"))


# ------------------------------------------------------------------------------------------------ secrets masker


def _secrets_masker() -> Any:
    """Airflow's process-wide secrets masker (its home differs by version), or None."""
    import importlib

    for module in (
        "airflow.sdk._shared.secrets_masker",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow.utils.log.secrets_masker",
    ):
        try:
            found = importlib.import_module(module)._secrets_masker()
        except (ImportError, AttributeError):
            continue
        if hasattr(found, "patterns") and hasattr(found, "replacer"):
            return found
    return None


@pytest.fixture(autouse=True)
def _isolated_secrets_masker() -> Iterator[None]:
    """Secrets a test registers are forgotten after it. The masker is process-wide, and Airflow 2 masks secrets of
    any length: one test's one-letter fake password would otherwise turn every later message's "s" into "***"."""
    masker = _secrets_masker()
    if masker is None:
        yield
        return
    patterns, replacer = set(masker.patterns), masker.replacer
    yield
    masker.patterns, masker.replacer = patterns, replacer
