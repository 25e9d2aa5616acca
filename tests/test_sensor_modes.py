"""Mode parity of the approval sensor (issue 19, 6 b/c): one failure budget (``max_failures``) in poke, reschedule and
deferrable mode, ``soft_fail`` on every timeout path (the deferral backstop included), ``skip_on_timeout``
deprecated; against the emulator over real HTTP, with outages injected into its request pipeline."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from helpers import PAI_KEY, PAI_SECRET, build_seed, pai_conn

from airflow_provider_modelreg.errors import RegistryInputError
from airflow_provider_modelreg.sensors.pai import FAILURES_KEY, PaiModelVersionApprovedSensor
from modelreg_emulator.faults import Fault

AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def _has_task_state_store() -> bool:
    try:
        from airflow.sdk.execution_time import context as sdk_context
    except ImportError:  # Airflow 2
        return False
    return hasattr(sdk_context, "TaskStateStoreAccessor")


#: Airflow >= 3.3 gives every task ``context["task_state_store"]``
HAS_TASK_STATE_STORE = _has_task_state_store()


class Outage:
    """Stands in for the emulator's fault injector: the first ``failures`` registry requests get a 503."""

    def __init__(self, failures: float) -> None:
        self.left = failures
        self.faulted = 0
        self.lock = threading.Lock()

    def decide(self, method: str, target: str) -> Fault:
        with self.lock:
            if self.left > 0:
                self.left -= 1
                self.faulted += 1
                return Fault.ERROR
        return Fault.NONE


class FakeStateStore:
    """Airflow 3.3's ``context["task_state_store"]`` surface the sensor uses (get/set), kept across sensor objects."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        assert value is not None
        self.values[key] = value
        self.writes += 1


def context(store: Any = None) -> dict[str, Any]:
    ti = mock.MagicMock()
    ti.try_number = 1
    ti.get_first_reschedule_date.return_value = None
    ctx: dict[str, Any] = {"ti": ti, "task_instance": ti}
    if store is not None:
        ctx["task_state_store"] = store
    return ctx


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed())
    pai_conn(monkeypatch, emulator.url, max_attempts=1)  # one request per poke: the pokes are countable
    return emulator


def outage(emu: Any, failures: float) -> Outage:
    emu.registry.faults = Outage(failures)
    return emu.registry.faults  # type: ignore[no-any-return]


def sensor(**kwargs: Any) -> PaiModelVersionApprovedSensor:
    kwargs.setdefault("task_id", "wait")
    kwargs.setdefault("model_id", "m-main")
    kwargs.setdefault("version_name", "1.0.0")  # Approved in the seed
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 30)
    return PaiModelVersionApprovedSensor(**kwargs)


def requests(emu: Any) -> int:
    return int(emu.request_log.count())


def failed(emu: Any) -> int:
    """Requests answered 503 by the current outage (one per failed poke: the connection's max_attempts is 1)."""
    return int(emu.registry.faults.faulted)


#: Airflow 2's reschedule mode reads the first try's start date from the metadata DB, which these unit tests lack
RESCHEDULE_NEEDS_3 = pytest.mark.requires_airflow(
    "3.0", reason="reschedule mode through a mocked task instance (Airflow 2 reads task_reschedule from the DB)"
)

# ------------------------------------------------------------------------------------------------ the budget


@pytest.mark.parametrize("bad", [0, -1, 1001, True, 1.5, "5", None])
def test_max_failures_is_validated(bad: Any) -> None:
    with pytest.raises(RegistryInputError) as err:
        sensor(max_failures=bad)
    assert err.value.field == "max_failures"


def test_max_failures_is_keyword_only_with_default_5() -> None:
    assert sensor().max_failures == 5
    # positional arguments are refused: a TypeError (keyword-only signature); Airflow 2's operator metaclass refuses
    # them first with its own AirflowException
    from airflow.providers.common.compat.sdk import AirflowException

    with pytest.raises((TypeError, AirflowException)):
        PaiModelVersionApprovedSensor("wait", "m-main")  # type: ignore[misc]


def test_poke_mode_tolerates_retryable_failures_then_succeeds(
    emu: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    outage(emu, 3)
    with caplog.at_level(logging.WARNING):
        ref = sensor(max_failures=5).execute(context())
    assert ref["version_name"] == "1.0.0"
    assert failed(emu) == 3
    # task logs: structlog on the console on Airflow 3, the logging module on Airflow 2
    printed = capsys.readouterr()
    # Airflow 2 shows each line twice here (caplog and the console handler): look in one of them
    text = caplog.text if "Poke 1/5" in caplog.text else printed.out + printed.err
    assert re.findall(r"(?i)warning.*(Poke \d/5) for model m-main failed \(retryable\)", text) == [
        "Poke 1/5",
        "Poke 2/5",
        "Poke 3/5",
    ]


def test_poke_mode_fails_on_the_budget_th_failure_in_a_row(emu: Any) -> None:
    from airflow_provider_modelreg.errors import RegistryServerError

    outage(emu, float("inf"))
    with pytest.raises(RegistryServerError) as err:
        sensor(max_failures=3).execute(context())
    assert err.value.retryable
    assert failed(emu) == requests(emu) == 3


def test_the_budget_counts_failures_in_a_row(emu: Any) -> None:
    """A poke that answers resets the count: 2 failures, an answer (still waiting), 2 failures: under budget."""
    task = sensor(version_name="1.1.0", max_failures=3)  # 1.1.0 stays Pending in the seed
    outage(emu, 2)
    ctx = context()
    assert task.poke(ctx) is False and task.poke(ctx) is False
    assert task.poke(ctx) is False  # answered: Pending
    assert task._failures == 0
    outage(emu, 2)
    assert task.poke(ctx) is False and task.poke(ctx) is False  # 2 in a row again: under the budget of 3
    assert task._failures == 2


def test_non_retryable_error_fails_at_once(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_modelreg.errors import RegistryAuthError

    pai_conn(monkeypatch, emu.url, max_attempts=1, password="wrong-secret")
    with pytest.raises(RegistryAuthError) as err:
        sensor(max_failures=5).execute(context())
    assert not err.value.retryable
    assert requests(emu) == 1


@RESCHEDULE_NEEDS_3
def test_reschedule_mode_keeps_the_count_in_the_task_state_store(emu: Any) -> None:
    """Airflow >= 3.3: every reschedule builds a new sensor; the count lives in the task state store."""
    from airflow.exceptions import AirflowRescheduleException

    from airflow_provider_modelreg.errors import RegistryServerError

    store = FakeStateStore()
    outage(emu, float("inf"))
    for run in (1, 2):
        with pytest.raises(AirflowRescheduleException):  # a failed poke: rescheduled, the slot freed
            sensor(mode="reschedule", max_failures=3).execute(context(store))
        assert store.values[FAILURES_KEY] == run
    assert failed(emu) == requests(emu) == 2
    with pytest.raises(RegistryServerError):  # the third failure in a row, in a third sensor object
        sensor(mode="reschedule", max_failures=3).execute(context(store))
    assert failed(emu) == requests(emu) == 3
    # an answer resets the count for the rest of the try
    store.values[FAILURES_KEY] = 2
    outage(emu, 0)
    with pytest.raises(AirflowRescheduleException):
        sensor(mode="reschedule", version_name="1.1.0", max_failures=3).execute(context(store))
    assert store.values[FAILURES_KEY] == 0
    writes = store.writes
    with pytest.raises(AirflowRescheduleException):  # healthy pokes do not write
        sensor(mode="reschedule", version_name="1.1.0", max_failures=3).execute(context(store))
    assert store.writes == writes


@RESCHEDULE_NEEDS_3
def test_reschedule_mode_without_a_state_store_retries_in_the_run(emu: Any) -> None:
    """Below Airflow 3.3 nothing of a try survives a reschedule: failed pokes are retried in the same run."""
    from airflow_provider_modelreg.errors import RegistryServerError

    outage(emu, 2)
    assert sensor(mode="reschedule", max_failures=3).execute(context())["version_name"] == "1.0.0"
    assert failed(emu) == 2
    outage(emu, float("inf"))
    with pytest.raises(RegistryServerError):
        sensor(mode="reschedule", max_failures=3).execute(context())
    assert failed(emu) == 3


def test_deferrable_passes_the_budget_and_defers_through_a_failed_first_check(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    outage(emu, 1)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(deferrable=True, max_failures=4).execute(context())
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["max_failures"] == 4
    outage(emu, 1)
    from airflow_provider_modelreg.errors import RegistryServerError

    with pytest.raises(RegistryServerError):  # a budget of 1: the first failure fails
        sensor(deferrable=True, max_failures=1).execute(context())


@pytest.mark.parametrize("mode", ["poke", pytest.param("reschedule", marks=RESCHEDULE_NEEDS_3), "deferrable"])
@pytest.mark.parametrize("bad", ["None", "", " None "])
def test_version_name_none_text_is_refused_in_every_mode(emu: Any, mode: str, bad: str) -> None:
    task = sensor(
        version_name="{{ params.v }}", mode="poke" if mode == "deferrable" else mode, deferrable=mode == "deferrable"
    )
    task.version_name = bad  # as rendered
    with pytest.raises(RegistryInputError) as err:
        task.execute(context())
    assert err.value.field == "version_name"
    assert requests(emu) == 0


# ------------------------------------------------------------------------------------------------ soft_fail


BACKSTOPS = ["Trigger timeout", "Trigger/execution timeout"]  # Airflow 3's, Airflow 2's


@pytest.mark.parametrize("error", BACKSTOPS)
def test_soft_fail_skips_when_the_backstop_fires(error: str) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException):
        sensor(deferrable=True, soft_fail=True).resume_execution("__fail__", {"error": error}, context())


def test_soft_fail_skips_on_the_trigger_timeout_event() -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException

    event = {"event": {"status": "timeout", "message": "late"}}
    with pytest.raises(AirflowSkipException):
        sensor(deferrable=True, soft_fail=True).resume_execution("execute_complete", event, context())
    with pytest.raises(AirflowSensorTimeout):
        sensor(deferrable=True).resume_execution("execute_complete", event, context())


def test_soft_fail_skips_on_the_poke_mode_timeout(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.raises(AirflowSkipException):
        sensor(version_name="1.1.0", soft_fail=True, timeout=0.3).execute(context())


@pytest.mark.parametrize("error", BACKSTOPS)
def test_skip_on_timeout_still_works_on_the_backstop_with_a_deprecation_warning(error: str) -> None:
    from airflow.exceptions import AirflowProviderDeprecationWarning
    from airflow.providers.common.compat.sdk import AirflowSkipException

    with pytest.warns(AirflowProviderDeprecationWarning, match="soft_fail"):
        task = sensor(deferrable=True, skip_on_timeout=True)
    with pytest.raises(AirflowSkipException, match="Nothing approved in time"):
        task.resume_execution("__fail__", {"error": error}, context())
    # a trigger that failed for another reason still fails
    with pytest.raises(Exception) as err:
        task.resume_execution("__fail__", {"error": "Trigger failure"}, context())
    assert not isinstance(err.value, AirflowSkipException)


def test_no_deprecation_warning_without_skip_on_timeout(recwarn: pytest.WarningsRecorder) -> None:
    sensor(deferrable=True, soft_fail=True)
    assert not [w for w in recwarn if "skip_on_timeout" in str(w.message)]


# ------------------------------------------------------------------------------- reschedule under real Airflow


DAG_FILE = """
from datetime import datetime
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(dag_id="budget_reschedule", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    PaiModelVersionApprovedSensor(
        task_id="wait",
        model_id="m-main",
        version_name="{version}",
        mode="reschedule",
        poke_interval=1,
        timeout=120,
        max_failures=3,
        max_attempts=1,
    )
"""


@pytest.fixture
def airflow_env(tmp_path: Path, emu: Any, migrated_airflow_db: Path) -> dict[str, str]:
    home = tmp_path / "home"
    dags = tmp_path / "dags"
    dags.mkdir(parents=True)
    (home).mkdir()
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_PAI_DEFAULT": json.dumps(
            {
                "conn_type": "pai",
                "login": PAI_KEY,
                "password": PAI_SECRET,
                "extra": {"endpoint": emu.url, "region": "cn-hangzhou", "workspace_id": "ws-pai"},
            }
        ),
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    shutil.copyfile(migrated_airflow_db, home / "airflow.db")
    return env


def dags_test(env: dict[str, str], version: str) -> str:
    dags = Path(env["AIRFLOW__CORE__DAGS_FOLDER"])
    (dags / "budget.py").write_text(textwrap.dedent(DAG_FILE).replace("{version}", version))
    done = subprocess.run(
        [AIRFLOW, "dags", "test", "budget_reschedule"], env=env, capture_output=True, text=True, timeout=240
    )
    return done.stdout + done.stderr


def test_reschedule_budget_holds_across_real_reschedules(emu: Any, airflow_env: dict[str, str]) -> None:
    """``airflow dags test`` runs each reschedule as a new task run. A registry that is down for good: the task
    fails on its third failed poke, not on its first (no budget) nor never (a count that does not survive)."""
    outage(emu, float("inf"))
    out = dags_test(airflow_env, "1.0.0")
    assert failed(emu) == requests(emu) == 3, out[-4000:]
    assert "Poke 3/3" in out and "RegistryServerError" in out, out[-4000:]
    assert "DagRun Finished" in out and "DagRun failed" in out, out[-4000:]
    # Airflow >= 3.3: each failed poke rescheduled, the count read back from the task state store in the next
    # run; below, the failed pokes were retried in one run
    assert out.count("Rescheduling task") == (2 if HAS_TASK_STATE_STORE else 0), out[-4000:]


@pytest.mark.requires_airflow("3.3", reason="the task state store, where a reschedule keeps the count, is new in 3.3")
def test_reschedule_frees_the_slot_between_failed_pokes_on_airflow_3_3(emu: Any, airflow_env: dict[str, str]) -> None:
    """On Airflow >= 3.3 a failed poke reschedules (the count waits in the task state store) instead of holding
    the worker: two failures, two reschedules, then the version is found."""
    outage(emu, 2)
    out = dags_test(airflow_env, "1.0.0")
    assert failed(emu) == 2, out[-4000:]
    assert out.count("Rescheduling task") == 2, out[-4000:]
    assert "Poke 2/3" in out, out[-4000:]
    assert "DagRun Finished" in out and "state=success" in out, out[-4000:]
