"""Local emulator of the PAI and DataArts Fabric model registries: the ``modelreg-emulator`` distribution.

Not part of the provider's wheel, and never imported by the provider. It imports three provider modules: the
signing code (``airflow_provider_modelreg.auth``, ``airflow_provider_modelreg.credentials.rpc``) to verify
requests as the services do, and the wire models (``airflow_provider_modelreg.models``) to check seeds.

One FastAPI app served by uvicorn speaks PAI AIWorkSpace 2021-02-04 (``/api/v1/models...``), PAI-EAS 2021-07-01
(``/api/v2/services...``, :mod:`.eas`: services created, updated, rolled back, released and deleted through a state
machine with injectable failures), DataArts Fabric
(``/v1/workspaces/...``) and Huawei IAM (``POST /v3/auth/tokens``) on one port, verifies signatures and tokens as the
services do, keeps its state in memory (loaded from a JSON seed) and can inject latency, server errors, throttling
and connection resets, deterministically.

Start it with ``python -m modelreg_emulator`` (or ``modelreg-emulator``), or in Python::

    from modelreg_emulator import RegistryEmulator

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
    from modelreg_emulator.faults import RequestLog
    from modelreg_emulator.server import RegistryEmulator
    from modelreg_emulator.store import SeedError, Store

__all__ = ["DEMO_SEED_PATH", "RegistryEmulator", "RequestLog", "SeedError", "Store"]

from pathlib import Path

#: The built-in demo seed.
DEMO_SEED_PATH = Path(__file__).with_name("demo_seed.json")

_LAZY = {
    "RegistryEmulator": "modelreg_emulator.server",
    "RequestLog": "modelreg_emulator.faults",
    "SeedError": "modelreg_emulator.store",
    "Store": "modelreg_emulator.store",
}


def require_server() -> None:
    """Raise a clear error when the emulator's server packages are missing (installed without its dependencies).

    Imports nothing of Airflow: the emulator stays apart from the runtime path, and its command line prints only
    its own lines.
    """
    from importlib.util import find_spec

    missing = [name for name in ("fastapi", "uvicorn") if find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(
            f"The registry emulator needs {' and '.join(missing)}, dependencies of the modelreg-emulator distribution "
            f"that are not installed: pip install modelreg-emulator (from this repository: pip install . ./emulator)",
            name=missing[0],
        )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    if name == "RegistryEmulator":
        require_server()  # fastapi/uvicorn: dependencies of modelreg-emulator
    return getattr(importlib.import_module(module), name)
