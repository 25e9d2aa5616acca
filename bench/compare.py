"""`make bench-compare`: one benchmark's anchor ratios on two commits, measured back to back on this machine.

Each run measures the base commit and then the working tree, alternately, ``--runs`` times, each in a fresh
process importing that tree's package and benchmark code (a git worktree of the base under ``out/compare``), with
Python logging at INFO (to a file) so that log lines cost what they cost in production. The medians of the
ratios that the issues set limits on are written to ``out/compare/<bench>.json`` and printed.

    python -m bench.compare --base <commit> --bench p3 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "compare"

#: The figures an issue bounds, per benchmark: name -> path into the benchmark's result.
RATIOS: dict[str, dict[str, tuple[str, ...]]] = {
    "p1": {"pai_speedup_vs_sdk": ("pai", "speedup"), "fabric_speedup_vs_sdk": ("fabric", "speedup")},
    "p2": {"cpu_per_call_vs_sdk": ("ratio",)},
    "p3": {"spread_cpu_ratio": ("spread", "cpu_ratio"), "worst_cpu_ratio": ("worst", "cpu_ratio")},
    # P4 reports both sides' import times: the ratio is ours over the HTTP provider's (``ours_ms/anchor_ms``)
    "p4": {"import_ms": ("ours_ms",), "import_vs_http_provider": ("ours_ms/anchor_ms",)},
}

_RUNNER = """
import json, logging, os, sys, tempfile
home = tempfile.mkdtemp(prefix="modelreg-compare-")
os.environ.setdefault("AIRFLOW_HOME", home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home}/airflow.db")
logging.basicConfig(level=logging.INFO, filename=os.path.join(home, "bench.log"))
import importlib
module = importlib.import_module("bench." + sys.argv[1] + ({"p1": "_paging", "p2": "_cpu", "p3": "_triggers", "p4": "_imports"}[sys.argv[1]]))
print("RESULT " + json.dumps(module.measure()))
"""


def _dig(result: dict[str, Any], path: tuple[str, ...]) -> float | None:
    if len(path) == 1 and "/" in path[0]:  # a ratio of two top-level figures
        top, bottom = (_dig(result, (part,)) for part in path[0].split("/"))
        return top / bottom if top is not None and bottom else None
    value: Any = result
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return float(value) if isinstance(value, int | float) else None


def _tree(ref: str) -> Path:
    if ref == "WORKTREE":
        return ROOT
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = OUT / f"tree-{sha.strip()[:12]}"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "worktree", "add", "--detach", str(path), sha.strip()], cwd=ROOT, check=True)
    return path


def _measure(tree: Path, bench: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, bench],
            cwd=tree,
            env={**env, "TMPDIR": scratch},
            capture_output=True,
            text=True,
            check=False,
        )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])  # type: ignore[no-any-return]
    raise RuntimeError(f"{bench} on {tree} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="commit to compare against (e.g. main before a change)")
    parser.add_argument("--bench", choices=sorted(RATIOS), required=True)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--head", default="WORKTREE", help="commit to measure (default: the working tree)")
    args = parser.parse_args()
    trees = {"base": _tree(args.base), "head": _tree(args.head)}
    runs: dict[str, list[dict[str, Any]]] = {"base": [], "head": []}
    for i in range(args.runs):
        for side in ("base", "head"):  # alternate, so drift on the machine hits both sides alike
            print(f"[compare] {args.bench} run {i + 1}/{args.runs}: {side}", flush=True)
            runs[side].append(_measure(trees[side], args.bench))
    summary: dict[str, Any] = {"bench": args.bench, "base": args.base, "runs": args.runs, "medians": {}}
    for name, path in RATIOS[args.bench].items():
        medians = {}
        for side in ("base", "head"):
            values = [v for v in (_dig(r, path) for r in runs[side]) if v is not None]
            medians[side] = statistics.median(values) if values else None
        change = None
        if medians["base"] and medians["head"] is not None:
            change = medians["head"] / medians["base"] - 1
        summary["medians"][name] = {**medians, "change": change}
        shown = f"{change:+.1%}" if change is not None else "n/a"
        print(f"{args.bench} {name}: base {medians['base']}, head {medians['head']} ({shown})")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.bench}.json").write_text(json.dumps({**summary, "raw": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
