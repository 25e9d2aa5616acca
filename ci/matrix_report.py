"""pytest plugin for the version matrix: every test's outcome (and a skip's reason) as JSON.

Loaded with ``-p matrix_report`` (``ci/`` on ``PYTHONPATH``); writes to ``$MODELREG_MATRIX_REPORT`` at session end.
Outcomes: passed, failed, error (setup/teardown/collection), skipped, xfailed, xpassed.
With ``MODELREG_MATRIX_SKIPS_ONLY=1`` it records the tests that carry a skip marker once collected and runs none
(every skip of this suite is a ``requires_airflow`` marker, decided at collection): ``ci/matrix.py skips``.
"""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

_RESULTS: dict[str, dict[str, str]] = {}
_STARTED = time.monotonic()


def _reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)[-500:]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[Any]) -> None:
    if not os.environ.get("MODELREG_MATRIX_SKIPS_ONLY"):
        return
    for item in items:
        mark = item.get_closest_marker("skip")
        if mark is not None:
            _RESULTS[item.nodeid] = {"outcome": "skipped", "reason": str(mark.kwargs.get("reason", ""))}
    items[:] = []


def pytest_runtest_logreport(report: Any) -> None:
    nodeid = report.nodeid
    if hasattr(report, "wasxfail"):
        _RESULTS[nodeid] = {"outcome": "xfailed" if report.skipped else "xpassed", "reason": str(report.wasxfail)}
        return
    if report.when == "setup":
        if report.skipped:
            _RESULTS[nodeid] = {"outcome": "skipped", "reason": _reason(report)}
        elif report.failed:
            _RESULTS[nodeid] = {"outcome": "error", "reason": _reason(report)}
    elif report.when == "call":
        if report.skipped:  # pytest.skip() inside the test
            _RESULTS[nodeid] = {"outcome": "skipped", "reason": _reason(report)}
        else:
            _RESULTS[nodeid] = {"outcome": report.outcome, "reason": _reason(report) if report.failed else ""}
    elif report.when == "teardown" and report.failed:
        _RESULTS[nodeid] = {"outcome": "error", "reason": _reason(report)}


def pytest_collectreport(report: Any) -> None:
    if report.failed:
        _RESULTS[f"collect::{report.nodeid}"] = {"outcome": "error", "reason": _reason(report)}
    elif report.skipped:  # a whole module skipped at collection
        _RESULTS[report.nodeid] = {"outcome": "skipped", "reason": _reason(report)}


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    target = os.environ.get("MODELREG_MATRIX_REPORT")
    if not target or hasattr(session.config, "workerinput"):  # under xdist the controller sees every report
        return
    try:
        airflow_version = metadata.version("apache-airflow")
    except metadata.PackageNotFoundError:
        airflow_version = "?"
    import airflow_provider_modelreg

    try:
        import modelreg_emulator

        emulator_file: str | None = modelreg_emulator.__file__
    except ImportError:
        emulator_file = None
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "airflow": airflow_version,
                "package_file": airflow_provider_modelreg.__file__,
                "emulator_file": emulator_file,
                "exitstatus": int(exitstatus),
                "seconds": round(time.monotonic() - _STARTED, 1),
                "results": dict(sorted(_RESULTS.items())),
            },
            indent=1,
        )
    )
