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
    from modelreg_emulator import RegistryEmulator

    with RegistryEmulator() as emu:
        yield emu


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., Any]]:
    """Factory: ``make_emulator(seed=..., **RegistryEmulator kwargs)`` starts an emulator, stopped after the test."""
    from modelreg_emulator import RegistryEmulator

    started: list[Any] = []

    def make(seed: Any = None, **kwargs: Any) -> Any:
        emu = RegistryEmulator(seed, **kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in reversed(started):
        emu.stop()


@pytest.fixture(scope="session")
def migrated_airflow_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The path of a SQLite metadata DB just after ``airflow db migrate``, made once per run and shared by the xdist
    workers: a test that runs Airflow's CLI copies it into its own AIRFLOW_HOME instead of migrating (4 s of CPU)."""
    import fcntl
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # the parent is this run's, under xdist
    template = shared / "migrated-airflow.db"
    with open(shared / "migrated-airflow.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker migrates; the others wait for it, then copy
        if not template.exists():
            home = Path(tempfile.mkdtemp(prefix="migrate-", dir=shared))
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            }
            env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
            airflow = str(Path(sys.executable).with_name("airflow"))
            subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=180)
            shutil.copyfile(home / "airflow.db", shared / "migrated-airflow.db.partial")
            (shared / "migrated-airflow.db.partial").rename(template)
    return template


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
        import modelreg_emulator

        source = Path(__file__).resolve().parents[1] / "airflow_provider_modelreg"
        if Path(airflow_provider_modelreg.__file__).resolve().parent == source:
            raise pytest.UsageError(f"MODELREG_TEST_INSTALLED is set but the package comes from {source}")
        emulator_source = Path(__file__).resolve().parents[1] / "emulator" / "modelreg_emulator"
        if Path(modelreg_emulator.__file__).resolve().parent == emulator_source:
            raise pytest.UsageError(f"MODELREG_TEST_INSTALLED is set but the emulator comes from {emulator_source}")


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


@pytest.hookimpl(optionalhook=True)  # the matrix cells run without xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``make test`` runs on xdist workers. A module whose tests share a module-scoped fixture (an ``airflow dags
    test`` run, a migrated DB, a 10,000-version emulator) goes to one worker as a unit, so the fixture is built once
    rather than once per worker; every other test goes wherever a worker is free. (xdist's own ``loadgroup`` would do
    this from ``xdist_group`` marks, but xdist 3.8 groups by rewriting ``item._nodeid``, which pytest 9.2 no longer
    reads.)"""
    from pathlib import Path

    from xdist.scheduler import LoadScopeScheduling

    here = Path(__file__).parent
    shared = {
        f"{here.name}/{path.name}" for path in here.glob("test_*.py") if 'scope="module"' in path.read_text("utf-8")
    }

    class SharedModuleFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module in shared else nodeid

    return SharedModuleFixtureScheduling(config, log)


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
