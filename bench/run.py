"""`make bench`: run P1-P4 side by side with their anchors and write BENCHMARKS.md."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _env() -> None:
    home = tempfile.mkdtemp(prefix="modelreg-bench-")
    os.environ.setdefault("AIRFLOW_HOME", home)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")


def _machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


def _version(pkg: str) -> str:
    try:
        return version(pkg)
    except PackageNotFoundError:
        return "(not installed)"


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def render(results: dict[str, Any]) -> str:
    p1, p2, p3, p4 = results["p1"], results["p2"], results["p3"], results["p4"]
    versions = ", ".join(
        f"{pkg} {_version(pkg)}"
        for pkg in (
            "apache-airflow",
            "httpx",
            "pydantic",
            "alibabacloud-aiworkspace20210204",
            "huaweicloudsdkdataartsfabric",
            "apache-airflow-providers-http",
        )
    )
    lines = [
        "# Benchmarks",
        "",
        f"Run {results['date']} on {_machine()}.",
        f"Versions: {versions}.",
        "Each figure is measured side by side with its anchor in the same run, against the emulator on 127.0.0.1 in",
        "its own process. Ratios are the headline; absolute times are context (shared, noisy machines).",
        "Reproduce with `make bench`.",
        "",
        "## P1 — list all 10,000 versions at 20 ms emulator latency",
        "",
        "| registry | ours (s) | official SDK, sequential (s) | speed-up (target >= 8x) | floor (s) | ours / floor (target <= 1.5) |",
        "|---|---|---|---|---|---|",
    ]
    for vendor in ("fabric", "pai"):
        r = p1[vendor]
        lines.append(
            f"| {vendor} | {r['ours_s']:.3f} | {r['sdk_s']:.3f} | {r['speedup']:.1f}x ({_mark(r['speedup'] >= 8)}) | "
            f"{r['floor_s']:.3f} | {r['vs_floor']:.2f} ({_mark(r['vs_floor'] <= 1.5)}) |"
        )
    lines += [
        "",
        f"Page size {p1['page']}, {p1['concurrency']} pages in flight after the first; floor = ceil(pages / "
        f"concurrency) x latency; best of {p1['runs']} runs each.",
        "",
        "## P2 — client CPU per PAI GetModelVersion (sign + send + validate)",
        "",
        "| ours (ms CPU/call) | official SDK (ms CPU/call) | ratio (target <= 1.0) |",
        "|---|---|---|",
        f"| {p2['ours_ms']:.3f} | {p2['sdk_ms']:.3f} | {p2['ratio']:.2f} ({_mark(p2['ratio'] <= 1.0)}) |",
        "",
        f"Median of {p2['runs']} interleaved runs of {p2['calls']} calls each.",
        "",
        f"## P3 — {p3['triggers']} approval triggers in one event loop vs HttpSensorTrigger x{p3['triggers']}",
        "",
        f"Poll interval {p3['interval_s']} s for both.",
        "",
        "| scenario | ours CPU/round (ms) | anchor CPU/round (ms) | CPU ratio | ours bytes/trigger | anchor bytes/trigger | memory ratio | ours round (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label, cpu_target, mem_target in (
        ("spread", "(i) 1,000 waits over 20 models", 0.1, 0.5),
        ("worst", "(ii) 1,000 waits on 1,000 models", 1.0, 1.0),
    ):
        r = p3[name]
        lines.append(
            f"| {label} | {r['ours']['cpu_ms_per_round']:.0f} | {r['anchor']['cpu_ms_per_round']:.0f} | "
            f"{r['cpu_ratio']:.3f} (target <= {cpu_target}: {_mark(r['cpu_ratio'] <= cpu_target)}) | "
            f"{r['ours']['bytes_per_trigger']:.0f} | {r['anchor']['bytes_per_trigger']:.0f} | "
            f"{r['memory_ratio']:.2f} (target <= {mem_target}: {_mark(r['memory_ratio'] <= mem_target)}) | "
            f"{r['ours']['round_s']:.2f} |"
        )
    lines += [
        "",
        "## P4 — import cost on top of `import airflow.sdk`",
        "",
        "| modules | added time (ms, median) | modules added |",
        "|---|---|---|",
        f"| ours: operators, sensor, trigger, links | {p4['ours_ms']:.1f} (target <= 25: {_mark(p4['ours_ms'] <= 25)}) | {p4['ours_modules']} |",
        f"| HTTP provider: operator, sensor, trigger | {p4['anchor_ms']:.1f} | {p4['anchor_modules']} |",
        "",
        f"fastapi / uvicorn / aiohttp / emulator modules imported by ours: {p4['heavy_modules'] or 'none'}.",
        "",
    ]
    p5 = results.get("p5")
    lines += ["## P5 — approval to deploy-task start, real services (`make e2e`)", ""]
    if p5:
        lines += [
            "| approval -> deploy task start (s) | same, triggerer SIGKILLed and restarted mid-wait (s) | target |",
            "|---|---|---|",
            f"| {p5['latency_s']:.1f} ({_mark(p5['latency_s'] <= p5['target_s'])}) | "
            f"{p5['killed_triggerer_latency_s']:.1f} | <= {p5['target_s']:.0f} s |",
            "",
            f"Measured {p5['date']} by `make e2e`: PostgreSQL, separate api-server, scheduler (LocalExecutor), "
            f"dag-processor and triggerer; sensor poke_interval {p5['poke_interval_s']} s; the approval is a signed "
            f"UpdateModelVersion call to the emulator. Whole e2e run: {p5['e2e_duration_s']} s.",
            "",
        ]
    else:
        lines += ["Not measured yet: run `make e2e`.", ""]
    notes = results.get("notes")
    if notes:
        lines += ["## Notes", "", notes, ""]
    return "\n".join(lines)


def main() -> int:
    _env()
    sys.path.insert(0, str(ROOT))
    from bench import p1_paging, p2_cpu, p3_triggers, p4_imports

    results: dict[str, Any] = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    for key, module in (("p4", p4_imports), ("p2", p2_cpu), ("p1", p1_paging), ("p3", p3_triggers)):
        print(f"running {key} ...", flush=True)
        results[key] = module.measure()
        print(json.dumps(results[key], default=str)[:400], flush=True)
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=2, default=str))
    render_file()
    return 0


def render_file() -> None:
    """Write BENCHMARKS.md from bench/results.json (P1-P4, `make bench`) and bench/p5.json (`make e2e`)."""
    measured = ROOT / "bench" / "results.json"
    if not measured.exists():
        print("bench/results.json is missing: run `make bench` to write BENCHMARKS.md")
        return
    results = json.loads(measured.read_text())
    p5 = ROOT / "bench" / "p5.json"
    if p5.exists():
        results["p5"] = json.loads(p5.read_text())
    notes_file = ROOT / "bench" / "NOTES.md"
    if notes_file.exists():
        results["notes"] = notes_file.read_text().strip()
    (ROOT / "BENCHMARKS.md").write_text(render(results))
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    raise SystemExit(main())
