"""Console links from XCom on every Airflow version (issue 19, 7): the running task pushes each link under
``_link_<class name>``; a deserialized operator (what Airflow 2's webserver asks) reads it back from there.

Before: the link lived only on the running operator, so a deserialized one answered "" (Airflow 2 showed no link)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from helpers import PAI_KEY, PAI_SECRET, build_seed, pai_conn

from airflow_provider_modelreg.links import PaiModelLink, PaiModelVersionLink
from airflow_provider_modelreg.operators.pai import (
    PaiGetModelOperator,
    PaiGetModelVersionOperator,
    PaiListModelVersionsOperator,
)
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
TEMPLATE = "https://console/{region}/{workspace_id}/{model_id}/{version_name}"


class FakeXCom:
    """XCom rows of one task instance: what ``ti.xcom_push`` wrote, read back by ``XCom.get_value``."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.pushes: list[str] = []
        self.ti = mock.MagicMock()
        self.ti.try_number = 1
        self.ti.xcom_push.side_effect = self.push
        self.ti_key = mock.MagicMock(name="ti_key")

    def push(self, key: str, value: Any) -> None:
        self.rows[key] = value
        self.pushes.append(key)

    def get_value(self, *, ti_key: Any, key: str) -> Any:
        assert ti_key is self.ti_key
        return self.rows.get(key)

    def context(self) -> dict[str, Any]:
        return {"ti": self.ti, "task_instance": self.ti, "outlet_events": mock.MagicMock()}


def deserialized(op: Any) -> Any:
    """The operator as Airflow rebuilds it from the serialized DAG (it never ran: nothing set while running)."""
    from airflow.serialization import serialized_objects as so

    serialization = getattr(so, "OperatorSerialization", None) or so.SerializedBaseOperator  # 3.3+, before
    return serialization.deserialize_operator(serialization.serialize_operator(op))


@pytest.fixture
def emu(make_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    emulator = make_emulator(seed=build_seed())
    pai_conn(monkeypatch, emulator.url, console_url_template=TEMPLATE)
    return emulator


def read_back(xcom: FakeXCom, op: Any, link: Any) -> str:
    """What Airflow 2's webserver gets: our link's ``get_link`` on the deserialized operator."""
    from airflow.providers.common.compat.sdk import XCom

    with mock.patch.object(XCom, "get_value", side_effect=xcom.get_value):
        return str(link().get_link(deserialized(op), ti_key=xcom.ti_key))


def test_an_operator_link_is_read_back_from_xcom_through_the_deserialized_operator(emu: Any) -> None:
    xcom = FakeXCom()
    op = PaiGetModelVersionOperator(task_id="get", model_id="m-main", version_name="1.0.0")
    op.execute(xcom.context())
    url = "https://console/cn-hangzhou/ws-pai/m-main/1.0.0"
    assert xcom.rows["_link_PaiModelVersionLink"] == url  # Airflow 3's key, on every version
    assert PaiModelVersionLink().xcom_key == "_link_PaiModelVersionLink"
    assert read_back(xcom, op, PaiModelVersionLink) == url

    model = PaiGetModelOperator(task_id="model", model_id="m-main")
    xcom = FakeXCom()
    model.execute(xcom.context())
    assert read_back(xcom, model, PaiModelLink) == "https://console/cn-hangzhou/ws-pai/m-main/"


def test_a_try_without_a_link_reads_as_empty(emu: Any) -> None:
    xcom = FakeXCom()
    op = PaiListModelVersionsOperator(task_id="list", model_id="m-main")
    assert read_back(xcom, op, PaiModelVersionLink) == ""


def test_the_sensor_pushes_its_link_once_per_change_and_it_reads_back(emu: Any) -> None:
    """Poke mode: the waiting link (the model) once, however many pokes see it; then the approved version's."""
    emu.store.set_approval("m-main", "1.1.0", "Pending")
    xcom = FakeXCom()
    task = PaiModelVersionApprovedSensor(task_id="wait", model_id="m-main", version_name="1.1.0", poke_interval=0.1)
    ctx = xcom.context()
    for _ in range(3):
        assert task.poke(ctx) is False
    assert xcom.pushes == ["_link_PaiModelVersionLink"]
    waiting = xcom.rows["_link_PaiModelVersionLink"]
    assert read_back(xcom, task, PaiModelVersionLink) == waiting == "https://console/cn-hangzhou/ws-pai/m-main/1.1.0"
    emu.store.set_approval("m-main", "1.1.0", "Approved")
    assert task.poke(ctx)
    assert read_back(xcom, task, PaiModelVersionLink) == "https://console/cn-hangzhou/ws-pai/m-main/1.1.0"


def test_the_deferring_sensor_pushes_before_deferring_and_on_resume(emu: Any) -> None:
    from airflow.providers.common.compat.sdk import TaskDeferred

    xcom = FakeXCom()
    task = PaiModelVersionApprovedSensor(task_id="wait", model_id="m-main", after_version="1.0.0", deferrable=True)
    with pytest.raises(TaskDeferred):
        task.execute(xcom.context())
    assert read_back(xcom, task, PaiModelVersionLink) == "https://console/cn-hangzhou/ws-pai/m-main/"
    resumed = PaiModelVersionApprovedSensor(task_id="wait", model_id="m-main", after_version="1.0.0", deferrable=True)
    ref = PaiGetModelVersionOperator(task_id="g", model_id="m-main", version_name="1.0.0").execute(FakeXCom().context())
    resumed.execute_complete(xcom.context(), {"status": "success", "version": ref})
    assert read_back(xcom, resumed, PaiModelVersionLink) == "https://console/cn-hangzhou/ws-pai/m-main/1.0.0"


def test_the_running_operator_never_reads_xcom(emu: Any) -> None:
    """Airflow 3 asks the running operator when a try ends: it answers from what it holds ("" before any link)."""
    from airflow.providers.common.compat.sdk import XCom

    op = PaiListModelVersionsOperator(task_id="list", model_id="m-main")
    with mock.patch.object(XCom, "get_value", side_effect=AssertionError("read XCom")):
        assert PaiModelVersionLink().get_link(op, ti_key=mock.MagicMock()) == ""


# ----------------------------------------------------------------------- the UI's own path, real metadata DB


DAG_FILE = """
from datetime import datetime
from airflow_provider_modelreg.operators.pai import PaiGetModelVersionOperator
from airflow_provider_modelreg.sensors.pai import PaiModelVersionApprovedSensor
try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG

with DAG(dag_id="links_dag", start_date=datetime(2024, 1, 1), schedule=None, catchup=False):
    PaiGetModelVersionOperator(task_id="get", model_id="m-main", version_name="1.0.0")
    PaiModelVersionApprovedSensor(task_id="wait", model_id="m-main", version_name="1.0.0", poke_interval=1)
"""

#: run with the DAG's AIRFLOW_HOME: what the UI shows for each task (the serialized DAG's operator, the TI)
UI_LINKS = """
import json
from airflow.models.serialized_dag import SerializedDagModel
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session

with create_session() as session:
    dag = SerializedDagModel.get_dag("links_dag", session=session)
    if dag is None:  # Airflow 2's `dags test` stores no serialized DAG (its DAG processor would): serialize it here
        from airflow.models.dagbag import DagBag
        from airflow.serialization.serialized_objects import SerializedDAG

        parsed = DagBag(include_examples=False).get_dag("links_dag")
        dag = SerializedDAG.from_dict(SerializedDAG.to_dict(parsed))
    out = {}
    for ti in session.query(TaskInstance).filter(TaskInstance.dag_id == "links_dag"):
        task = dag.get_task(ti.task_id)
        out[ti.task_id] = {name: task.get_extra_links(ti, name) for name in task.extra_links}
print("UI_LINKS=" + json.dumps(out))
"""


def test_the_ui_shows_the_links_from_the_metadata_db(tmp_path: Path, emu: Any, migrated_airflow_db: Path) -> None:
    """``airflow dags test``, then the links as the UI reads them (Airflow 2: our ``get_link`` on the deserialized
    operator, from XCom; Airflow 3: Airflow's XCom link on the same key)."""
    home, dags = tmp_path / "home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "links_dag.py").write_text(textwrap.dedent(DAG_FILE))
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
                "extra": {"endpoint": emu.url, "region": "cn-hangzhou", "console_url_template": TEMPLATE},
            }
        ),
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    shutil.copyfile(migrated_airflow_db, home / "airflow.db")
    ran = subprocess.run([AIRFLOW, "dags", "test", "links_dag"], env=env, capture_output=True, text=True, timeout=240)
    assert "state=success" in ran.stdout + ran.stderr, (ran.stdout + ran.stderr)[-4000:]
    shown = subprocess.run(
        [sys.executable, "-c", UI_LINKS], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    line = next((x for x in shown.stdout.splitlines() if x.startswith("UI_LINKS=")), None)
    assert line is not None, (shown.stdout + shown.stderr)[-4000:]
    links = json.loads(line.removeprefix("UI_LINKS="))
    url = "https://console/cn-hangzhou/ws-pai/m-main/1.0.0"
    assert links == {"get": {"PAI Model Version": url}, "wait": {"PAI Model Version": url}}
