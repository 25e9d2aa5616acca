"""What a DAG file loads when it imports the registry operators, sensors and links (issue 25, P4).

Parsing a DAG builds tasks; it sends nothing. So the modules that send (the hooks, the transport and httpx, the
credential sources and signing), the pydantic models of the answers and the triggers must load only when a task
runs. Each check runs in a fresh interpreter, so that no other test has loaded them first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: What DAG files import: the registry operators, the sensors and the console links.
PARSE_MODULES = (
    "airflow_provider_modelreg.operators.pai",
    "airflow_provider_modelreg.operators.fabric",
    "airflow_provider_modelreg.sensors.pai",
    "airflow_provider_modelreg.sensors.fabric",
    "airflow_provider_modelreg.links",
)
#: Ours that must not load at parse time (a module or any module under it).
RUN_TIME_ONLY = (
    "airflow_provider_modelreg.hooks.base",
    "airflow_provider_modelreg.hooks.pai",
    "airflow_provider_modelreg.hooks.fabric",
    "airflow_provider_modelreg.hooks.specs",
    "airflow_provider_modelreg.transport",
    "airflow_provider_modelreg.paging",
    "airflow_provider_modelreg.auth",
    "airflow_provider_modelreg.credentials",
    "airflow_provider_modelreg.iam",
    "airflow_provider_modelreg.models",
    "airflow_provider_modelreg.triggers",
    "airflow_provider_modelreg.approval_io",
    "airflow_provider_modelreg.fabric_wait_io",
)
#: Third-party modules that load only for requests, unless Airflow's own base classes have loaded them already.
THIRD_PARTY = ("httpx", "httpcore", "h11")

_PROBE = """
import importlib, json, sys
# what Airflow itself loads for the base classes our modules derive from
from airflow.providers.common.compat.sdk import BaseOperator, BaseOperatorLink, BaseSensorOperator
base = set(sys.modules)
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({"base": sorted(base), "after": sorted(sys.modules)}))
"""


def _loaded(*modules: str) -> tuple[set[str], set[str]]:
    """The modules loaded by Airflow's base classes, and those loaded after importing ``modules`` too."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *modules], capture_output=True, text=True, timeout=120, check=False, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return set(out["base"]), set(out["after"])


def _under(loaded: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if any(m == p or m.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("module", PARSE_MODULES)
def test_a_dag_file_importing_it_loads_no_hook_transport_model_or_trigger(module: str) -> None:
    base, after = _loaded(module)
    assert module in after
    assert _under(after, RUN_TIME_ONLY) == []
    # httpx & co: not loaded by us (on Airflow 3 the Task SDK's own client may have loaded them already)
    assert _under(after - base, THIRD_PARTY) == []


def test_all_of_them_together_load_none_either() -> None:
    base, after = _loaded(*PARSE_MODULES)
    assert _under(after, RUN_TIME_ONLY) == []
    assert _under(after - base, THIRD_PARTY) == []


def test_the_probe_sees_a_module_that_does_load_them() -> None:
    """The check can fail: importing a hook module loads the transport, the models and httpx (when Airflow has not)."""
    _, after = _loaded("airflow_provider_modelreg.hooks.pai")
    loaded = _under(after, RUN_TIME_ONLY)
    assert "airflow_provider_modelreg.transport" in loaded
    assert "airflow_provider_modelreg.models" in loaded
    assert "httpx" in after


def test_the_lazy_names_still_resolve() -> None:
    """The names that moved out of the module level still work: the re-export, the default connection ids."""
    from airflow_provider_modelreg.hooks.base import hook_overrides
    from airflow_provider_modelreg.hooks.fabric import PICKS, FabricModelRegistryHook
    from airflow_provider_modelreg.hooks.pai import PaiModelRegistryHook
    from airflow_provider_modelreg.models import ApprovalStatus
    from airflow_provider_modelreg.operators import base as operators_base
    from airflow_provider_modelreg.operators.fabric import FabricListModelVersionsOperator
    from airflow_provider_modelreg.operators.pai import PaiListModelVersionsOperator
    from airflow_provider_modelreg.sensors.fabric import FabricModelVersionSensor
    from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
    from airflow_provider_modelreg.validation import check_pai_approval_status

    assert operators_base.hook_overrides is hook_overrides
    with pytest.raises(AttributeError):
        operators_base.no_such_name  # noqa: B018
    assert PICKS == ("unique", "newest")
    assert check_pai_approval_status("approved") is ApprovalStatus.APPROVED
    assert PaiListModelVersionsOperator(task_id="t", model_id="m").pai_conn_id == PaiModelRegistryHook.default_conn_name
    assert PaiModelVersionApprovedSensor(task_id="s", model_id="m", version_name="v").pai_conn_id == "pai_default"
    assert FabricListModelVersionsOperator(task_id="f", model_id="m").fabric_conn_id == "fabric_default"
    assert FabricModelRegistryHook.default_conn_name == "fabric_default"
    sensor = FabricModelVersionSensor(task_id="fs", model_id="m", version_pattern="v*")
    assert sensor.fabric_conn_id == FabricModelRegistryHook.default_conn_name
    assert isinstance(sensor._make_hook(), FabricModelRegistryHook)
