"""P4: import cost of every operator, sensor and trigger module on top of ``import airflow.sdk``.

Each sample is a fresh interpreter: import ``airflow.sdk`` first, then time the provider's modules and list the
modules they add. The HTTP provider's operator + sensor + trigger modules are the anchor, measured the same way.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

OURS = [
    "airflow_provider_modelreg.operators.pai",
    "airflow_provider_modelreg.operators.fabric",
    "airflow_provider_modelreg.sensors.pai",
    "airflow_provider_modelreg.triggers.pai",
    "airflow_provider_modelreg.links",
]
#: What a DAG file imports (no trigger): at parse time, nothing that sends requests should load (issue 25).
PARSE = [
    "airflow_provider_modelreg.operators.pai",
    "airflow_provider_modelreg.operators.fabric",
    "airflow_provider_modelreg.sensors.pai",
    "airflow_provider_modelreg.sensors.fabric",
    "airflow_provider_modelreg.links",
]
ANCHOR = [
    "airflow.providers.http.operators.http",
    "airflow.providers.http.sensors.http",
    "airflow.providers.http.triggers.http",
]

_PROBE = """
import json, sys, time, importlib
import airflow.sdk
before = set(sys.modules)
t0 = time.perf_counter()
for name in {modules!r}:
    importlib.import_module(name)
elapsed = time.perf_counter() - t0
added = sorted(set(sys.modules) - before)
print(json.dumps({{"ms": elapsed * 1000, "added": added}}))
"""


def sample(modules: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(modules=modules)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def measure(runs: int = 7) -> dict[str, Any]:
    # A wheel install byte-compiles the package (the anchor's modules are compiled): do the same for ours, or the
    # editable checkout would be measured compiling from source (PYTHONDONTWRITEBYTECODE is set on these machines).
    import airflow_provider_modelreg

    package_dir = str(Path(airflow_provider_modelreg.__file__).parent)
    subprocess.run([sys.executable, "-m", "compileall", "-q", package_dir], check=True, capture_output=True)
    ours, parse, anchor = [], [], []
    for _ in range(runs):  # interleaved, so drift hits both alike
        ours.append(sample(OURS))
        parse.append(sample(PARSE))
        anchor.append(sample(ANCHOR))
    heavy = [m for m in ours[-1]["added"] if m.split(".")[0] in ("fastapi", "uvicorn", "starlette", "aiohttp")]
    heavy += [m for m in ours[-1]["added"] if m.startswith("modelreg_emulator")]
    return {
        "ours_ms": statistics.median(s["ms"] for s in ours),
        "ours_modules": len(ours[-1]["added"]),
        "anchor_ms": statistics.median(s["ms"] for s in anchor),
        "anchor_modules": len(anchor[-1]["added"]),
        "heavy_modules": heavy,
        # the DAG-parse set alone (operators, sensors, links; no trigger module)
        "parse_ms": statistics.median(s["ms"] for s in parse),
        "parse_modules": len(parse[-1]["added"]),
        "parse_added": parse[-1]["added"],
        "ours_added": ours[-1]["added"],
        "runs": runs,
    }


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
