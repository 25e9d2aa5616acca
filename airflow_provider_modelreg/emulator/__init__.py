"""Local emulator of the PAI and DataArts Fabric model registries (never imported by the runtime path).

One FastAPI app served by uvicorn speaks PAI AIWorkSpace 2021-02-04 (``/api/v1/models...``), DataArts Fabric
(``/v1/workspaces/...``) and Huawei IAM (``POST /v3/auth/tokens``) on one port, verifies signatures and tokens as the
services do, keeps its state in memory (loaded from a JSON seed) and can inject latency, server errors, throttling
and connection resets, deterministically.

Start it with ``python -m airflow_provider_modelreg.emulator`` (or ``modelreg-emulator``), or in Python::

    from airflow_provider_modelreg.emulator import RegistryEmulator

    with RegistryEmulator() as emu:  # built-in demo seed
        print(emu.url)

Built-in demo seed (``demo_seed.json``) and its demo credentials — fake, for local use only:

* PAI: AccessKey id ``LTAIemulatorDemoKey01``, secret ``emulator-demo-secret-pai``. Workspace ``ws-demo``,
  model ``model-demo-fraud`` ("fraud-detector"): ``0.9.0`` Rejected, ``1.0.0`` Approved (older), ``1.1.0`` Pending
  and turned Approved 10 s after start (``_then``), ``1.2.0-rc1`` Pending and turned Rejected 10 s after start.
  Model ``model-demo-big`` ("paging-demo"): 250 generated versions.
* Fabric: AK ``EMULATORDEMOFABRICAK01``, SK ``emulator-demo-secret-fabric``, project id ``emulator-demo-project``;
  IAM user ``demo-user`` / password ``emulator-demo-password`` in domain (account) ``demo-account``, project
  ``emulator-demo-project`` (name ``cn-north-4``). Workspace ``ws-demo``, model ``fabric-model-demo``
  ("support-assistant") with versions ``v1``, ``v2``, ``1.0.0`` (``obs://`` model paths), model
  ``fabric-model-big`` with 250 generated versions.
* Alibaba credential services (:mod:`.ali_credentials`): STS ``AssumeRole`` with the PAI key above,
  ``AssumeRoleWithOIDC`` with a JWT signed by the demo key ``emulator-demo-oidc-signing-key`` (``make_oidc_token()``
  mints one), ECS metadata role ``EmulatorEcsRole``, credentials URI ``/ecs-credentials-uri``.

Importing this package is cheap: FastAPI and uvicorn are imported only when :class:`RegistryEmulator` (or another
name below) is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_modelreg.emulator.faults import RequestLog
    from airflow_provider_modelreg.emulator.server import RegistryEmulator
    from airflow_provider_modelreg.emulator.store import SeedError, Store

__all__ = ["DEMO_SEED_PATH", "RegistryEmulator", "RequestLog", "SeedError", "Store"]

from pathlib import Path

#: The built-in demo seed.
DEMO_SEED_PATH = Path(__file__).with_name("demo_seed.json")

_LAZY = {
    "RegistryEmulator": "airflow_provider_modelreg.emulator.server",
    "RequestLog": "airflow_provider_modelreg.emulator.faults",
    "SeedError": "airflow_provider_modelreg.emulator.store",
    "Store": "airflow_provider_modelreg.emulator.store",
}


def require_server() -> None:
    """Raise a clear error when the emulator's server packages are missing (Airflow 2 does not ship them).

    Imports nothing of Airflow: the emulator stays apart from the runtime path, and its command line prints only
    its own lines.
    """
    from importlib import metadata
    from importlib.util import find_spec

    missing = [name for name in ("fastapi", "uvicorn") if find_spec(name) is None]
    if missing:
        try:
            airflow = metadata.version("apache-airflow")
        except metadata.PackageNotFoundError:
            airflow = "not installed"
        raise ModuleNotFoundError(
            f"The registry emulator needs {' and '.join(missing)}, which Airflow 3 ships and Airflow 2 does not "
            f"(installed: Airflow {airflow}): pip install 'airflow-provider-modelreg[emulator]'",
            name=missing[0],
        )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    if name == "RegistryEmulator":
        require_server()  # fastapi/uvicorn: the emulator extra on Airflow 2
    return getattr(importlib.import_module(module), name)
