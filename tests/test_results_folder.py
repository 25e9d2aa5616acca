"""Runs write under the ignored results folder; BENCHMARKS.md is rendered only from recorded runs, each figure with
the date, machine and versions of the run that measured it; CI fails when a run leaves the work tree changed."""

from __future__ import annotations

import json
import re
import subprocess
import types
from pathlib import Path
from typing import Any

import pytest

from bench import run as bench_run

ROOT = Path(__file__).resolve().parent.parent


def _record(date: str, machine: str, **result: Any) -> dict[str, Any]:
    run = {"date": date, "machine": machine, "versions": {"httpx": "9.9"}, "revision": "abc1234", "command": "x"}
    return {"run": run, "result": result}


def _sections(markdown: str) -> dict[str, str]:
    parts = re.split(r"^## ", markdown, flags=re.MULTILINE)
    return {part.split(" ", 1)[0]: part for part in parts[1:]}


# ------------------------------------------------------------------------------------------------ BENCHMARKS.md


def test_benchmarks_md_is_rendered_from_the_committed_records() -> None:
    """BENCHMARKS.md is exactly what `make benchmarks-md` renders from bench/records.json (no hand edits, no figure
    relabelled by the machine that rendered it)."""
    records = json.loads((ROOT / "bench" / "records.json").read_text())
    notes = (ROOT / "bench" / "NOTES.md").read_text().strip()
    assert (ROOT / "BENCHMARKS.md").read_text() == bench_run.render(records, notes)


def test_each_figure_names_the_run_that_measured_it() -> None:
    records = json.loads((ROOT / "bench" / "records.json").read_text())
    assert set(records) == set(bench_run.FIGURES)
    sections = _sections((ROOT / "BENCHMARKS.md").read_text())
    for figure, record in records.items():
        section = sections[figure.upper()]
        run = record["run"]
        assert bench_run.run_line(run) in section, figure
        assert run["date"] in section and run["machine"] in section
        assert all(f"{pkg} {ver}" in section for pkg, ver in run["versions"].items())


def test_a_figure_keeps_its_own_run_when_another_is_remeasured() -> None:
    records = json.loads((ROOT / "bench" / "records.json").read_text())
    newer = {"p2": {**records["p2"], "run": {**records["p2"]["run"], "date": "2999-01-01 00:00 UTC", "machine": "M2"}}}
    merged, taken = bench_run.merge_records(records, newer)
    assert taken == ["p2 (2999-01-01 00:00 UTC)"]
    before, after = _sections(bench_run.render(records)), _sections(bench_run.render(merged))
    assert "on M2;" in after["P2"] and "on M2;" not in before["P2"]
    for figure in ("P1", "P3", "P4", "P5"):
        assert after[figure] == before[figure], figure
    older = {"p2": {**records["p2"], "run": {**records["p2"]["run"], "date": "2000-01-01 00:00 UTC"}}}
    assert bench_run.merge_records(records, older) == (records, [])


def test_render_file_takes_newer_runs_from_the_results_folder(tmp_path: Path) -> None:
    records_path, target = tmp_path / "records.json", tmp_path / "BENCHMARKS.md"
    committed = json.loads((ROOT / "bench" / "records.json").read_text())
    records_path.write_text(json.dumps(committed))
    p5 = {"latency_s": 1.5, "killed_triggerer_latency_s": 9.0, "target_s": 10.0, "poke_interval_s": 5}
    out = tmp_path / "out" / "e2e" / "p5.json"
    bench_run.write_records(out, {"p5": _record("2999-02-03 04:05 UTC", "E2E-BOX", **p5, e2e_duration_s=200)})
    taken = bench_run.render_file((tmp_path / "out" / "bench" / "results.json", out), records_path, target)
    assert taken == ["p5 (2999-02-03 04:05 UTC)"]
    text = _sections(target.read_text())
    assert "E2E-BOX" in text["P5"] and "| 1.5 (met) | 9.0 |" in text["P5"]
    assert "E2E-BOX" not in text["P1"]
    assert json.loads(records_path.read_text())["p5"]["run"]["machine"] == "E2E-BOX"


def test_a_benchmark_run_writes_only_its_results_file(tmp_path: Path) -> None:
    fake = types.SimpleNamespace(measure=lambda: {"ours_ms": 1.0})
    tracked = {p: p.read_bytes() for p in (ROOT / "BENCHMARKS.md", ROOT / "bench" / "records.json")}
    out = tmp_path / "out" / "bench" / "results.json"
    records = bench_run.run_benchmarks([("p2", fake)], out)  # type: ignore[list-item]
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()] == [
        "out/bench/results.json"
    ]
    written = json.loads(out.read_text())
    assert written == json.loads(json.dumps(records))
    run = written["p2"]["run"]
    assert run["command"] == "make bench" and run["machine"] and run["date"]
    assert run["versions"]["airflow-provider-modelreg"]
    assert {p: p.read_bytes() for p in tracked} == tracked


def test_e2e_writes_p5_as_a_record_under_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from e2e import run as e2e_run

    target = tmp_path / "out" / "e2e" / "p5.json"
    monkeypatch.setattr(bench_run, "P5_RESULTS", target)
    e2e_run.write_p5({"latency_s": 2.0})
    record = json.loads(target.read_text())["p5"]
    assert record["result"] == {"latency_s": 2.0}
    assert record["run"]["command"] == "make e2e" and record["run"]["machine"]


def test_the_runs_point_at_the_results_folder() -> None:
    assert bench_run.RESULTS.relative_to(ROOT).parts[0] == "out"
    assert bench_run.P5_RESULTS.relative_to(ROOT).parts[0] == "out"
    # read, not imported: e2e.ui_check needs selenium, which only the e2e extra installs
    ui_check = (ROOT / "e2e" / "ui_check.py").read_text()
    assert re.search(r'^SCREENSHOTS = ROOT / "out" / ', ui_check, re.MULTILINE), "screenshots must go under out/"
    ignored = subprocess.run(
        ["git", "check-ignore", "out/bench/results.json", "out/e2e/screenshots/x.png"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )
    assert ignored.stdout.split() == ["out/bench/results.json", "out/e2e/screenshots/x.png"], "out/ must be ignored"
    sources = "\n".join((ROOT / rel).read_text() for rel in ("e2e/run.py", "e2e/ui_check.py", "bench/run.py"))
    assert 'ROOT / "docs"' not in sources and '"bench" / "p5.json"' not in sources


# ------------------------------------------------------------------------------------------------ CI's tree check


def _clean_tree_function() -> str:
    script = (ROOT / ".ci" / "run").read_text()
    match = re.search(r"^clean_tree\(\) \{.*?^\}$", script, flags=re.MULTILINE | re.DOTALL)
    assert match, ".ci/run has no clean_tree function"
    return match.group(0)


def test_ci_checks_the_tree_after_test_demo_and_e2e() -> None:
    stages = re.findall(r"^stage (\S+) (.*)$", (ROOT / ".ci" / "run").read_text(), flags=re.MULTILINE)
    names = [name for name, _ in stages]
    for step in ("test", "demo", "e2e"):
        assert step in names, names
        assert names[names.index(step) + 1] == f"{step}-tree", names
        assert dict(stages)[f"{step}-tree"] == "clean_tree"


def test_clean_tree_fails_and_names_the_files(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".gitignore").write_text("/out/\n")
    (tmp_path / "BENCHMARKS.md").write_text("old\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    check = f"{_clean_tree_function()}\nclean_tree"

    def run_check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", check], cwd=tmp_path, capture_output=True, text=True, check=False)

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.json").write_text("{}")
    assert run_check().returncode == 0  # the results folder is ignored
    (tmp_path / "BENCHMARKS.md").write_text("new\n")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "shot.png").write_bytes(b"png")
    done = run_check()
    assert done.returncode == 1
    assert "M BENCHMARKS.md" in done.stdout and "?? docs/shot.png" in done.stdout
