"""`make bench`: run P1-P4 side by side with their anchors; `make benchmarks-md`: render BENCHMARKS.md.

Runs write only under the ignored results folder: `make bench` writes ``out/bench/results.json`` and `make e2e`
writes ``out/e2e/p5.json``. Each is a set of *records*, one per figure: ``{"run": <date, machine, versions, git
revision, command>, "result": {...}}``. `make benchmarks-md` (``python -m bench.run --render``) takes the records
found there that are newer than the committed ones into ``bench/records.json`` and renders ``BENCHMARKS.md`` from
that file alone, each figure with the date, machine and versions of the run that measured it (never the machine that
renders the table).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
RESULTS = OUT / "bench" / "results.json"
P5_RESULTS = OUT / "e2e" / "p5.json"
SCALE_RESULTS = OUT / "e2e-scale" / "records.json"
RECORDS = ROOT / "bench" / "records.json"
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
FIGURES = ("p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "scale")
#: packages whose versions a run records
RECORDED_PACKAGES = (
    "airflow-provider-modelreg",
    "apache-airflow",
    "httpx",
    "pydantic",
    "alibabacloud-aiworkspace20210204",
    "huaweicloudsdkdataartsfabric",
    "apache-airflow-providers-http",
)


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


def _revision() -> str:
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def run_meta(command: str) -> dict[str, Any]:
    """What a record keeps about the run that measured it: when, where, with what, by which command."""
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "versions": {pkg: _version(pkg) for pkg in RECORDED_PACKAGES if _version(pkg) != "(not installed)"},
        "revision": _revision(),
        "command": command,
    }


def run_line(run: dict[str, Any]) -> str:
    """The line under a figure's heading: the run that produced it."""
    versions = ", ".join(f"{pkg} {ver}" for pkg, ver in run["versions"].items())
    line = f"*Run {run['date']} by `{run['command']}` on {run['machine']}; {versions}; revision {run['revision']}.*"
    if run.get("note"):
        line += f" *{run['note']}*"
    return line


def render(records: dict[str, Any], notes: str | None = None) -> str:
    """BENCHMARKS.md from the records (``{"p1": {"run": ..., "result": ...}, ...}``); missing figures say so."""

    def head(figure: str, title: str) -> list[str]:
        lines = [f"## {title}", ""]
        if figure in records:
            lines += [run_line(records[figure]["run"]), ""]
        return lines

    def missing(figure: str, how: str) -> list[str]:
        return [f"Not measured yet: run `{how}`, then `make benchmarks-md`.", ""]

    lines = [
        "# Benchmarks",
        "",
        "Each figure is measured side by side with its anchor in the same run, against the emulator on 127.0.0.1 in",
        "its own process. Ratios are the headline; absolute times are context (shared, noisy machines). Under each",
        "heading: the date, machine, package versions and revision of the run that measured that figure.",
        "Reproduce with `make bench` (P1-P4, P6-P8), `make e2e` (P5) and `make e2e-scale` (SCALE), which write under",
        "`out/`; `make benchmarks-md`",
        "then records the new runs in `bench/records.json` and renders this file from it.",
        "",
    ]
    lines += _render_p1_to_p4(records, head, missing)
    lines += head("p5", "P5 — approval to deploy-task start, real services (`make e2e`)")
    if "p5" in records:
        p5 = records["p5"]["result"]
        lines += [
            "| approval -> deploy task start (s) | same, triggerer SIGKILLed and restarted mid-wait (s) | target |",
            "|---|---|---|",
            f"| {p5['latency_s']:.1f} ({_mark(p5['latency_s'] <= p5['target_s'])}) | "
            f"{p5['killed_triggerer_latency_s']:.1f} | <= {p5['target_s']:.0f} s |",
            "",
            f"PostgreSQL, separate api-server, scheduler (LocalExecutor), dag-processor and triggerer; sensor "
            f"poke_interval {p5['poke_interval_s']} s; the approval is a signed UpdateModelVersion call to the "
            f"emulator. Whole e2e run: {p5['e2e_duration_s']} s.",
            "",
        ]
    else:
        lines += missing("p5", "make e2e")
    lines += _render_p6(records, head, missing)
    lines += _render_p7(records, head, missing)
    lines += _render_p8(records, head, missing)
    lines += _render_scale(records, head, missing)
    if notes:
        lines += ["## Notes", "", notes, ""]
    return "\n".join(lines)


def _render_p1_to_p4(records: dict[str, Any], head: Any, missing: Any) -> list[str]:
    lines: list[str] = []
    lines += head("p1", "P1 — list all 10,000 versions at 20 ms emulator latency")
    if "p1" not in records:
        lines += missing("p1", "make bench")
    else:
        p1 = records["p1"]["result"]
        lines += [
            "| registry | ours (s) | official SDK, sequential (s) | speed-up (target >= 8x) | floor (s) | ours / floor (target <= 1.3) |",
            "|---|---|---|---|---|---|",
        ]
        for vendor in ("fabric", "pai"):
            r = p1[vendor]
            lines.append(
                f"| {vendor} | {r['ours_s']:.3f} | {r['sdk_s']:.3f} | {r['speedup']:.1f}x ({_mark(r['speedup'] >= 8)}) | "
                f"{r['floor_s']:.3f} | {r['vs_floor']:.2f} ({_mark(r['vs_floor'] <= 1.3)}) |"
            )
        lines += [
            "",
            f"Page size {p1['page']}, {p1['concurrency']} pages in flight after the first; floor = ceil(pages / "
            f"concurrency) x latency; best of {p1['runs']} runs each.",
            "",
        ]
    lines += head("p2", "P2 — client CPU per PAI GetModelVersion (sign + send + validate)")
    if "p2" not in records:
        lines += missing("p2", "make bench")
    else:
        p2 = records["p2"]["result"]
        lines += [
            "| ours (ms CPU/call) | official SDK (ms CPU/call) | ratio (target <= 1.0) |",
            "|---|---|---|",
            f"| {p2['ours_ms']:.3f} | {p2['sdk_ms']:.3f} | {p2['ratio']:.2f} ({_mark(p2['ratio'] <= 1.0)}) |",
            "",
            f"Median of {p2['runs']} interleaved runs of {p2['calls']} calls each.",
            "",
        ]
    triggers = records["p3"]["result"]["triggers"] if "p3" in records else 1000
    lines += head("p3", f"P3 — {triggers} approval triggers in one event loop vs HttpSensorTrigger x{triggers}")
    if "p3" not in records:
        lines += missing("p3", "make bench")
    else:
        p3 = records["p3"]["result"]
        lines += [
            f"Poll interval {p3['interval_s']} s for both.",
            "",
            "| scenario | ours CPU/round (ms) | anchor CPU/round (ms) | CPU ratio | ours bytes/trigger "
            "| anchor bytes/trigger | memory ratio | round (s), ours / anchor | loop lag p99 / max (s), ours | anchor |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, label, cpu_target, mem_target in (
            ("spread", "(i) 1,000 waits over 20 models", 0.1, 0.5),
            ("worst", "(ii) 1,000 waits on 1,000 models", 0.8, 1.0),
        ):
            r = p3[name]
            ours, anchor = r["ours"], r["anchor"]
            # a shape meets only when its rounds keep up with the interval (old records did not say: assumed)
            kept = bool(ours.get("rounds_kept_up", 1.0))
            lines.append(
                f"| {label} | {ours['cpu_ms_per_round']:.0f} | {anchor['cpu_ms_per_round']:.0f} | "
                f"{r['cpu_ratio']:.3f} (target <= {cpu_target}: {_mark(kept and r['cpu_ratio'] <= cpu_target)}) | "
                f"{ours['bytes_per_trigger']:.0f} | {anchor['bytes_per_trigger']:.0f} | "
                f"{r['memory_ratio']:.2f} (target <= {mem_target}: {_mark(r['memory_ratio'] <= mem_target)}) | "
                f"{ours['round_s']:.2f} / {anchor['round_s']:.2f} (keeps up: {_mark(kept)}) | "
                + (
                    f"{ours['loop_lag_p99_s']:.3f} / {ours['loop_lag_s']:.3f} | "
                    f"{anchor['loop_lag_p99_s']:.3f} / {anchor['loop_lag_s']:.3f} |"
                    if "loop_lag_s" in ours
                    else "— | — |"
                )
            )
        lines.append("")
        lines += _shares_lines(
            [
                (f"{label} {who}", p3[name][side])
                for name, label in (("spread", "(i)"), ("worst", "(ii)"))
                for side, who in (("ours", "ours"), ("anchor", "anchor"))
            ]
        )
    lines += head("p4", "P4 — import cost on top of `import airflow.sdk`")
    if "p4" not in records:
        lines += missing("p4", "make bench")
    else:
        p4 = records["p4"]["result"]
        anchor = p4["anchor_ms"]
        lines += [
            "| modules | added time (ms, median) | vs the HTTP provider (target <= 0.15) | modules added |",
            "|---|---|---|---|",
            f"| ours: operators, sensor, trigger, links | {p4['ours_ms']:.1f} | {p4['ours_ms'] / anchor:.2f} "
            f"({_mark(p4['ours_ms'] / anchor <= 0.15)}) | {p4['ours_modules']} |",
        ]
        if "parse_ms" in p4:  # recorded since issue 25
            lines.append(
                f"| ours, what a DAG file imports: operators, sensors, links | {p4['parse_ms']:.1f} | "
                f"{p4['parse_ms'] / anchor:.2f} ({_mark(p4['parse_ms'] / anchor <= 0.15)}) | {p4['parse_modules']} |"
            )
        lines += [
            f"| HTTP provider: operator, sensor, trigger | {anchor:.1f} | 1.00 | {p4['anchor_modules']} |",
            "",
            f"fastapi / uvicorn / aiohttp / emulator modules imported by ours: {p4['heavy_modules'] or 'none'}.",
            "",
        ]
    return lines


def _shares_lines(rows: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Where each shape's CPU went over its measured rounds (``bench/sampling.py``), when the record has it."""
    from bench.sampling import render_shares

    found = [(label, r["shares"]) for label, r in rows if r.get("shares")]
    if not found:
        return []
    lines = ["Where the CPU went over the measured rounds (sampled stacks of the event loop, by concern):", ""]
    lines += [f"- {label}: {render_shares(shares)}" for label, shares in found]
    return [*lines, ""]


def _lag(r: dict[str, Any], target: float) -> str:
    """Loop lag, p99 / max (the target applies to the max)."""
    if "loop_lag_s" not in r:
        return "—"
    p99 = f"{r['loop_lag_p99_s']:.3f} / " if "loop_lag_p99_s" in r else ""
    gc = f"; longest GC pause {r['gc_pause_max_s']:.3f}" if "gc_pause_max_s" in r else ""
    return f"{p99}{r['loop_lag_s']:.3f} (target < {target}: {_mark(r['loop_lag_s'] < target)}){gc}"


def _render_p6(records: dict[str, Any], head: Any, missing: Any) -> list[str]:
    triggers = records["p6"]["result"]["triggers"] if "p6" in records else 10_000
    lines: list[str] = head("p6", f"P6 — one triggerer's capacity: {triggers:,} waits in one event loop")
    if "p6" not in records:
        return lines + missing("p6", "make bench")
    p6 = records["p6"]["result"]
    targets = p6.get("targets", {"spread": {"lag_s": 0.1, "bytes": 3072}, "wide": {"lag_s": 0.2, "bytes": 4000}})
    lines += [
        f"Emulator latency {p6['latency_ms']} ms; CPU per round = process CPU / rounds completed after a warm-up round; "
        "loop lag = how late a 10 ms `asyncio.sleep` monitor woke over the measured rounds (p99 / max); bytes per "
        "trigger from tracemalloc. A shape meets only when its rounds keep up with the interval.",
        "",
        "| scenario | CPU/round ours (s) | CPU/round HttpSensorTrigger (s) | CPU ratio | bytes/trigger | round (s) "
        "| loop lag p99 / max (s) | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, label in (("spread", "(i)"), ("wide", "(ii)")):
        shape = p6[name]
        r, t = shape["ours"], targets[name]
        anchor = shape.get("anchor")
        if anchor is not None and "cpu_ratio_at_most" not in shape and 0 < anchor.get("rounds", 1) < 1:
            from bench.p6_capacity import anchor_ratio  # records from before the rule: a ratio of part of a round

            shape = {**shape, **anchor_ratio(r, anchor)}
        if anchor is None:
            anchor_cpu, ratio = "not run", "—"
        elif shape.get("cpu_ratio") is not None:
            anchor_cpu, ratio = f"{anchor['cpu_s_per_round']:.2f}", f"{shape['cpu_ratio']:.3f}"
        else:
            anchor_cpu = shape.get("anchor_incomplete", "anchor did not complete a round")
            ratio = f"at most {shape['cpu_ratio_at_most']:.3f}" if "cpu_ratio_at_most" in shape else "—"
        cpu = f"{r['cpu_s_per_round']:.2f}" if "cpu_s_per_round" in r else "—"
        if t.get("cpu_s") and "cpu_s_per_round" in r:
            cpu += f" (target <= {t['cpu_s']:.0f}: {_mark(r['cpu_s_per_round'] <= t['cpu_s'])})"
        kept = bool(r.get("rounds_kept_up"))
        rnd = f"{r['round_s']:.1f}" if "round_s" in r else "—"
        lines.append(
            f"| {label} {triggers:,} waits over {shape['models']:,} models, {shape['interval_s']:.0f} s | {cpu} | "
            f"{anchor_cpu} | {ratio} | {r['bytes_per_trigger']:.0f} (target <= {t['bytes']:,}: "
            f"{_mark(r['bytes_per_trigger'] <= t['bytes'])}) | {rnd} (keeps up: {_mark(kept)}) | "
            f"{_lag(r, t['lag_s'])} | {_mark(shape['met'])} |"
        )
    lines.append("")
    lines += _shares_lines(
        [(f"{label} ours", p6[name]["ours"]) for name, label in (("spread", "(i)"), ("wide", "(ii)"))]
        + [("(i) anchor", p6["spread"]["anchor"])]
    )
    for name, label in (("spread", "(i)"), ("wide", "(ii)")):
        shape = p6[name]
        if shape.get("profile"):
            lines += [
                f"Missed {label}: {shape.get('miss', '')}. Profile of one round (cProfile, top functions by own time):",
                "",
                "```",
                *shape["profile"],
                "```",
                "",
            ]
    return lines


def _render_p7(records: dict[str, Any], head: Any, missing: Any) -> list[str]:
    lines: list[str] = head("p7", "P7 — the asset watcher's requests per poll and state, by model history")
    if "p7" not in records:
        return lines + missing("p7", "make bench")
    p7 = records["p7"]["result"]
    lines += [
        "| Approved versions | requests, first poll | requests per steady poll (target <= 3) | requests, poll with an "
        "approval | state (bytes, target <= 16 KB) | before issue 19: requests per poll | before: state (bytes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in p7["models"]:
        anchor = f"{m['anchor_requests_per_poll']:,}" + (" (fails: > 100 pages)" if m["anchor_fails"] else "")
        lines.append(
            f"| {m['approved']:,} | {m['first_poll_requests']} | {m['steady_requests_per_poll']} "
            f"({_mark(m['steady_requests_per_poll'] <= 3)}) | {m['approval_poll_requests']} | {m['state_bytes']} "
            f"({_mark(m['state_bytes'] <= 16 * 1024)}) | {anchor} | {m['anchor_state_bytes']:,} |"
        )
    lines += [
        "",
        f"The watcher's own poll against the emulator (no latency), {p7['pending']} Pending versions per model, "
        f"{p7['steady_polls']} steady polls each; requests from the emulator's request log. The poll with an approval "
        "adds GetModelVersion for the version that left Pending. The anchor (the design before issue 19) read every "
        "Approved page each poll and kept every Approved name; it is computed, as it could not run past 10,000.",
        "",
    ]
    return lines


def _render_p8(records: dict[str, Any], head: Any, missing: Any) -> list[str]:
    lines: list[str] = head("p8", "P8 — triggerer CPU per poll: an EAS deploy wait next to an approval wait")
    if "p8" not in records:
        return lines + missing("p8", "make bench")
    p8 = records["p8"]["result"]
    lines += [
        "| deploy wait, per poll (ms CPU) | approval wait, per poll (ms CPU) | deploy / approval |",
        "|---|---|---|",
        f"| {p8['deploy_ms']:.3f} | {p8['approval_ms']:.3f} | {p8['ratio']:.2f} |",
        "",
        f"One wait of each kind in one event loop, {p8['polls']} polls each, interleaved, median of {p8['runs']} "
        "runs; every read fresh (one request a poll, as a lone wait makes). The deploy wait: DescribeService "
        "through the EAS hub, judged by RolloutWatch; the approval wait: one ApprovalCheck of a named Pending "
        "version through the PAI hub. The emulator's CPU is not counted.",
        "",
    ]
    return lines


def _render_scale(records: dict[str, Any], head: Any, missing: Any) -> list[str]:
    lines: list[str] = head("scale", "SCALE — CeleryExecutor, two workers, two triggerers (`make e2e-scale`)")
    if "scale" not in records:
        return lines + missing("scale", "make e2e-scale")
    r = records["scale"]["result"]
    cfg, spread, fo, dep = r["settings"], r["spread"], r["failover"], r["deploys"]
    held = ", ".join(
        f"{name} {h['triggers']} waits on {h['models']} models" for name, h in spread["per_triggerer"].items()
    )
    poll = spread["polling"]
    lat = r["latency"]

    dups = "; ".join(f"{d['version']}: {d['deploys']} deploys ({d['why']})" for d in dep["duplicates"]) or "none"
    lines += [
        f"{cfg['waits']} deferrable waits (a mapped task group over {cfg['models']} models, poke_interval "
        f"{cfg['poke_interval_s']:.0f} s) and one asset watcher; emulator latency {cfg['emulator_latency_ms']} ms; "
        f"{cfg['celery_workers']} Celery workers x {cfg['celery_concurrency']}, Redis broker, PostgreSQL; triggerer "
        f"capacity {cfg['triggerer_capacity']}, max_trigger_to_select_per_loop {cfg['max_trigger_to_select_per_loop']}, "
        f"job_heartbeat_sec {cfg['job_heartbeat_sec']}, triggerer_health_check_threshold "
        f"{cfg['triggerer_health_check_threshold']} s. Whole run: {r['duration_s']} s.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| spread (trigger table) | {held} |",
        f"| registry reads per {cfg['poke_interval_s']:.0f} s round | {poll['reads_per_round']:.1f} for "
        f"{poll['waits']} waits (models held per triggerer, summed: {poll['distinct_models_per_triggerer_sum']}) |",
        f"| failover: SIGKILL -> orphans reassigned | {fo['reassigned_s']:.1f} s ({fo['orphaned_triggers']} triggers) |",
        f"| failover: SIGKILL -> last orphan running again | {fo['last_orphan_running_again_s']:.1f} s |",
        f"| asset watcher: deploys per version | {dep['deploys_per_version']} (missing: {dep['missing'] or 'none'}) |",
        f"| second deploys (at-least-once window) | {dups} |",
        "",
        f"Versions approved in bursts of {cfg.get('burst_models', 10)} models ({cfg.get('burst_models', 10) * 10} "
        "waits); seconds from the approval to: the trigger firing (the provider's part), the resumed wait ending (a "
        "worker ran it), the model's deploy task starting (after all 10 waits of the model ended):",
        "",
        "| from approval to | waits | n | p50 (s) | p95 (s) | max (s) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {what} | {which} | {s['n']} | {s['p50_s']:.1f} | {s['p95_s']:.1f} | {s['max_s']:.1f} |"
            for what, key, key_without in (
                ("trigger fired", "approval_to_trigger_fired", "approval_to_trigger_fired_excluding_failover_burst"),
                ("wait ended", "approval_to_wait_end", "approval_to_wait_end_excluding_failover_burst"),
                ("**deploy task started**", "all_waits", "excluding_failover_burst"),
            )
            for which, s in (
                ("all", lat.get(key)),
                ("without the burst approved while a triggerer was dead", lat.get(key_without)),
            )
            if s
        ),
        "",
    ]
    return lines


def write_records(path: Path, records: dict[str, Any]) -> None:
    """Write run records under the results folder (creating it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2, default=str) + "\n")


def run_benchmarks(modules: Iterable[tuple[str, ModuleType]], out: Path = RESULTS) -> dict[str, Any]:
    """Measure each ``(figure, module)`` and write the records to ``out`` (nothing else is written)."""
    meta = run_meta("make bench")
    records: dict[str, Any] = {}
    for key, module in modules:
        print(f"running {key} ...", flush=True)
        result = module.measure()
        records[key] = {"run": meta, "result": result}
        print(json.dumps(result, default=str)[:400], flush=True)
    write_records(out, records)
    return records


def merge_records(committed: dict[str, Any], *found: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``committed`` with each figure of ``found`` that was measured later; returns the merge and what changed."""
    merged = dict(committed)
    taken: list[str] = []
    for records in found:
        for figure, record in records.items():
            if figure not in FIGURES:
                continue
            current = merged.get(figure)
            if current is None or record["run"]["date"] > current["run"]["date"]:
                merged[figure] = record
                taken.append(f"{figure} ({record['run']['date']})")
    return merged, taken


def render_file(
    results: Iterable[Path] | None = None, records_path: Path = RECORDS, target: Path = BENCHMARKS_MD
) -> list[str]:
    """`make benchmarks-md`: take newer records from the results folder into ``records_path``, render ``target``."""
    if results is None:  # the runs' records: make bench (all, or --only some), make e2e, make e2e-scale
        results = (RESULTS, P5_RESULTS, SCALE_RESULTS, *sorted(RESULTS.parent.glob("results-*.json")))
    committed = json.loads(records_path.read_text()) if records_path.exists() else {}
    found = [json.loads(p.read_text()) for p in results if p.exists()]
    merged, taken = merge_records(committed, *found)
    if taken:
        records_path.write_text(json.dumps(merged, indent=2, default=str) + "\n")
    notes_file = ROOT / "bench" / "NOTES.md"
    notes = notes_file.read_text().strip() if notes_file.exists() else None
    target.write_text(render(merged, notes))
    return taken


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--render"]:
        taken = render_file()
        print(f"recorded {', '.join(taken) or 'no newer run'} in bench/records.json; wrote BENCHMARKS.md")
        return 0
    _env()
    sys.path.insert(0, str(ROOT))
    from bench import p1_paging, p2_cpu, p3_triggers, p4_imports, p6_capacity, p7_watcher, p8_deploy_wait

    figures = (
        ("p4", p4_imports),
        ("p2", p2_cpu),
        ("p1", p1_paging),
        ("p3", p3_triggers),
        ("p6", p6_capacity),
        ("p7", p7_watcher),
        ("p8", p8_deploy_wait),
    )
    if argv[:1] == ["--only"]:  # e.g. `python -m bench.run --only p6`: those figures only (the others keep theirs)
        figures = tuple(f for f in figures if f[0] in argv[1:])
    out = RESULTS if len(figures) == 7 else RESULTS.with_name(f"results-{'-'.join(f[0] for f in figures)}.json")
    run_benchmarks(figures, out)
    print(f"results in {out.relative_to(ROOT)}; `make benchmarks-md` renders them into BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
