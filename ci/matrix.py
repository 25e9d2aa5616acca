"""The Airflow version matrix: build the wheels and sdists (the provider and the emulator), check them, install both
wheels into a clean venv per Airflow minor, run the whole test suite and one example DAG end to end there, and print
one table.

    python3 ci/matrix.py run [--cells 2.11,3.0] [--jobs 2] [--newest-report FILE] [--update-skips]
    python3 ci/matrix.py refresh [--cells ...]     # constraints/airflow-X.txt from constraints/airflow-X.in
    python3 ci/matrix.py skips [--cells ...]       # ci/skips/airflow-X.txt from the cells' venvs (collection only)
    python3 ci/matrix.py newest [--cells ...]      # "today's newest": fresh resolve with only the .in pins (online)

Standard library only (CI has Python 3.11, pip, git and make). Everything it writes goes under ``out/matrix/``,
except ``refresh`` (rewrites ``constraints/airflow-*.txt``) and ``--update-skips`` (rewrites ``ci/skips/*.txt``).

A cell is one Airflow minor: a fresh venv, ``pip install -c constraints/airflow-X.txt <wheel>[test,e2e] <emulator
wheel>`` (exact pins, so reproducible; the emulator is its own distribution, ``emulator/``, issue 21), then

* the whole suite from ``tests/`` against the *installed* wheels (pytest runs outside the source tree, and
  ``MODELREG_TEST_INSTALLED=1`` makes conftest refuse a package imported from the source tree);
* ``dags_examples/demo.py`` (example DAG (a) under ``airflow dags test`` against the emulator, whose process comes
  from its wheel too), run from a copy outside the source tree.

A cell fails when a test fails or errors, when its skipped tests differ from ``ci/skips/airflow-X.txt``, or when
the DAG fails. The newest Airflow is not a cell: ``make test`` runs the suite there; give its report with
``--newest-report`` (written by the ``matrix_report`` plugin) and it becomes the table's first row, checked the
same way against its skip list.

The "today's newest" cells (``newest``, issue 21) see what a user's ``pip install`` gets today: per Airflow minor
(2.11 to 3.3) a fresh venv, ``pip install "apache-airflow==X.*" <wheel> <emulator wheel> -r constraints/airflow-X.in``
resolved online (today's newest of everything but the ``.in`` pins: the known upstream incompatibilities), then the
import of both packages, ``airflow providers list`` showing the provider, and example DAG (a) under ``airflow dags
test`` against the emulator. No test suite: short, so that the next upstream release that breaks Airflow (or us)
fails CI with the step and the packages resolved differently from the tested pins named. Results under
``out/matrix/newest/``.

Downloads: pip's HTTP cache is not used on these machines, so wheels are kept in a wheelhouse
(``$MODELREG_WHEELHOUSE``, default ``~/.cache/modelreg-matrix/wheelhouse``): each pinned file is downloaded once,
then every install is ``--no-index`` from there.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "matrix"
CONSTRAINTS = ROOT / "constraints"
#: the emulator's distribution (modelreg-emulator), built and installed next to the provider's
EMULATOR = ROOT / "emulator"
SKIPS = ROOT / "ci" / "skips"
CELLS = ("2.11", "3.0", "3.1", "3.2")
NEWEST = "3.3"
#: the "today's newest" cells: every supported minor, each from constraints/airflow-X.in alone
NEWEST_CELLS = (*CELLS, NEWEST)
#: the versions the newest table shows (the packages that broke Airflow before, and Airflow's own parts)
NEWEST_SHOWN = ("apache-airflow", "cryptography", "fastapi", "pydantic", "sqlalchemy", "cadwyn", "svcs")
WHEELHOUSE = Path(os.environ.get("MODELREG_WHEELHOUSE", Path.home() / ".cache" / "modelreg-matrix" / "wheelhouse"))
#: the runtime dependencies the wheel may declare (issue 13): nothing else
RUNTIME_DEPENDENCIES = {"apache-airflow", "apache-airflow-providers-common-compat", "httpx", "pydantic"}
#: the whole suite needs the test extra and the e2e extra (its scripts' own tests), and the emulator's wheel
EXTRAS = "test,e2e"
#: what the provider's wheel must not hold or import (issue 21): the emulator and its server
EMULATOR_MODULES = ("modelreg_emulator", "airflow_provider_modelreg.emulator", "fastapi", "uvicorn", "starlette")
#: the emulator wheel's runtime dependencies
EMULATOR_DEPENDENCIES = {"airflow-provider-modelreg", "fastapi", "uvicorn", "httpx", "pydantic"}
TIMEOUTS = {"install": 900, "pytest": 1500, "dag": 300, "resolve": 900, "step": 180}
_PRINT = threading.Lock()
#: process groups started and still running: killed if the matrix itself is stopped
_RUNNING: set[int] = set()
#: set when the matrix is told to stop: no new process starts
_STOPPING = threading.Event()
_STARTED = time.monotonic()


def say(message: str) -> None:
    with _PRINT:
        print(f"[matrix {time.monotonic() - _STARTED:6.0f}s] {message}", flush=True)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def clean_env(venv: Path | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment without Airflow, venv and Python path settings (a cell sees only its own)."""
    drop = ("AIRFLOW", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "MODELREG_", "PIP_REQUIRE_VIRTUALENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(
    cmd: list[Any], *, log: Path, timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> int:
    """Run cmd with output to log; on timeout kill its whole process group (it was started in its own session)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if _STOPPING.is_set():
        return -15
    with log.open("a") as out:
        out.write(f"$ {' '.join(map(str, cmd))}\n")
        out.flush()
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env if env is not None else clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        _RUNNING.add(proc.pid)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            out.write(f"\n[matrix] TIMEOUT after {timeout:.0f} s: killing process group {proc.pid}\n")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return -9
        finally:
            _RUNNING.discard(proc.pid)


def stop_running(*_: Any) -> None:
    """Kill the process groups this run started (cells run in their own sessions, so they would outlive it)."""
    for pgid in list(_RUNNING):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ----------------------------------------------------------------------------------------------------- wheelhouse


def pins(constraints: Path) -> list[str]:
    out = []
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and "==" in line and not line.startswith("-"):
            out.append(line)
    return out


def in_wheelhouse() -> set[tuple[str, str]]:
    have = set()
    for f in WHEELHOUSE.glob("*"):
        name = f.name
        if name.endswith(".whl"):
            dist, version = name.split("-")[:2]
        elif name.endswith((".tar.gz", ".zip")):
            stem = name.removesuffix(".tar.gz").removesuffix(".zip")
            dist, _, version = stem.rpartition("-")
        else:
            continue
        have.add((canonical(dist), version.lower()))
    return have


def prefetch(constraint_files: list[Path], log: Path) -> None:
    """Download every pinned file that the wheelhouse lacks (once per machine)."""
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    have = in_wheelhouse()
    missing = sorted(
        {
            p
            for c in constraint_files
            for p in pins(c)
            if (canonical(p.split("==")[0]), p.split("==")[1].lower()) not in have
        }
    )
    if not missing:
        say(f"wheelhouse {WHEELHOUSE}: every pinned file present")
        return
    started = time.monotonic()
    say(f"wheelhouse {WHEELHOUSE}: downloading {len(missing)} pinned files ...")
    # one version of a distribution per pip call (pip refuses two pins of one name), two calls at a time
    batches: list[list[str]] = []
    for pin in missing:
        name = canonical(pin.split("==")[0])
        batch = next((b for b in batches if name not in {canonical(p.split("==")[0]) for p in b}), None)
        if batch is None:
            batches.append([pin])
        else:
            batch.append(pin)
    if len(batches) == 1:
        batches = [batches[0][0::2], batches[0][1::2]]
    batches = [b for b in batches if b]  # one missing file makes one batch, not an empty second (pip refuses it)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", WHEELHOUSE]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        codes = list(
            pool.map(lambda b: run([*cmd, *b[1]], log=log.with_suffix(f".{b[0]}.log"), timeout=900), enumerate(batches))
        )
    if any(codes):
        raise SystemExit(f"download into the wheelhouse failed; see {log.with_suffix('.*.log')}")
    say(f"wheelhouse: {len(missing)} files in {time.monotonic() - started:.0f} s")


def pip_install(venv: Path, constraints: Path, requirements: list[str], log: Path) -> int:
    """Offline from the wheelhouse with exact pins; on a miss (a pin not fetched yet), fetch it and retry once."""
    py = venv / "bin" / "python"
    cmd = [py, "-m", "pip", "install", "-q", "--no-index", "--find-links", WHEELHOUSE, "-c", constraints]
    code = run([*cmd, *requirements], log=log, timeout=TIMEOUTS["install"], env=clean_env(venv))
    if code != 0:
        prefetch([constraints], log.with_name("prefetch"))
        code = run([*cmd, *requirements], log=log, timeout=TIMEOUTS["install"], env=clean_env(venv))
    return code


def make_venv(venv: Path, log: Path) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    if run([sys.executable, "-m", "venv", venv], log=log, timeout=120) != 0:
        raise SystemExit(f"venv {venv} failed: {tail(log)}")


# ---------------------------------------------------------------------------------------------------------- build


def build(where: Path = OUT) -> tuple[Path, Path]:
    """python -m build (sdist, then the wheel from the sdist) of the provider and of the emulator, twine check, and a
    look inside each. Returns (provider wheel, emulator wheel)."""
    started = time.monotonic()
    venv = where / "build-venv"
    log = where / "build.log"
    log.unlink(missing_ok=True)
    constraints = CONSTRAINTS / "build.txt"
    prefetch([constraints], where / "prefetch-build")
    make_venv(venv, log)
    if pip_install(venv, constraints, ["build", "twine", "setuptools", "wheel"], log) != 0:
        raise SystemExit(f"build tools did not install:\n{tail(log)}")
    dist = where / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    # The backend is pinned in constraints/build.txt and installed above: no isolation, so no unpinned download.
    py = venv / "bin" / "python"
    built: dict[str, tuple[Path, Path]] = {}
    for name, project in (("provider", ROOT), ("emulator", EMULATOR)):
        out = dist / name
        if run([py, "-m", "build", "--no-isolation", "--outdir", out, project], log=log, timeout=300, cwd=project) != 0:
            raise SystemExit(f"python -m build of the {name} failed:\n{tail(log)}")
        files = sorted(out.iterdir())
        if run([py, "-m", "twine", "check", "--strict", *files], log=log, timeout=120) != 0:
            raise SystemExit(f"twine check of the {name} failed:\n{tail(log)}")
        wheel = next(f for f in files if f.suffix == ".whl")
        sdist = next(f for f in files if f.name.endswith(".tar.gz"))
        built[name] = (wheel, sdist)
    wheel, sdist = built["provider"]
    emulator_wheel, emulator_sdist = built["emulator"]
    check_wheel(wheel)
    check_sdist(sdist)
    check_emulator_wheel(emulator_wheel)
    seconds = time.monotonic() - started
    say(
        f"build: {wheel.name} + {sdist.name}, {emulator_wheel.name} + {emulator_sdist.name}, twine check passed, "
        f"contents checked ({seconds:.0f} s)"
    )
    return wheel, emulator_wheel


def _requirements(metadata: str) -> set[str]:
    """The canonical names of a wheel's runtime (non-extra) Requires-Dist."""
    runtime = set()
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            runtime.add(canonical(re.split(r"[\s<>=!~;\[(]", line.removeprefix("Requires-Dist:").strip())[0]))
    return runtime


def _imports(source: str) -> set[str]:
    """Every module a Python file imports (``import a.b``, ``from a.b import c``), by its full dotted name."""
    import ast

    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def wheel_emulator_problems(names: list[str], read: Any) -> list[str]:
    """What of the emulator is in the provider's wheel (issue 21): its modules, its data, its console script, and
    imports of it or of its server (fastapi, uvicorn, starlette). ``read(name)`` gives a member's text."""
    problems = [n for n in names if "emulator" in n.lower() and not n.split("/")[0].endswith(".dist-info")]
    for name in names:
        if name.endswith(".py"):
            heavy = sorted(
                m for m in _imports(read(name)) if any(m == e or m.startswith(e + ".") for e in EMULATOR_MODULES)
            )
            problems += [f"{name} imports {m}" for m in heavy]
        elif name.endswith(".dist-info/entry_points.txt") and "emulator" in read(name):
            problems.append(f"{name} declares an emulator entry point")
    return problems


def check_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(metadata_name).decode()
        emulator = wheel_emulator_problems(names, lambda n: zf.read(n).decode())
    problems = [
        n
        for n in names
        if not (n.startswith("airflow_provider_modelreg/") or n.split("/")[0].endswith(".dist-info"))
        or "/tests/" in n
        or n.rsplit("/", 1)[-1].startswith(("test_", "conftest"))
    ]
    if problems:
        raise SystemExit(f"the wheel ships files that do not run: {problems[:10]}")
    if emulator:
        raise SystemExit(f"the provider's wheel holds emulator code (it is modelreg-emulator's): {emulator[:10]}")
    runtime = _requirements(metadata)
    if runtime != RUNTIME_DEPENDENCIES:
        raise SystemExit(f"runtime dependencies {sorted(runtime)} != {sorted(RUNTIME_DEPENDENCIES)}")
    if "Requires-Python:" not in metadata:
        raise SystemExit("the wheel declares no Requires-Python")
    extras = {line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")}
    if "emulator" in extras:
        raise SystemExit("the provider's wheel still declares an emulator extra")


def check_emulator_wheel(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = zf.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    stray = [n for n in names if not (n.startswith("modelreg_emulator/") or n.split("/")[0].endswith(".dist-info"))]
    if stray:
        raise SystemExit(f"the emulator's wheel ships files outside modelreg_emulator: {stray[:10]}")
    for needed in ("modelreg_emulator/__init__.py", "modelreg_emulator/demo_seed.json", "modelreg_emulator/py.typed"):
        if needed not in names:
            raise SystemExit(f"the emulator's wheel lacks {needed}")
    if not any(n.split("/")[0].endswith(".dist-info") and n.endswith("/LICENSE") for n in names):
        raise SystemExit("the emulator's wheel lacks its LICENSE")
    if "modelreg-emulator = modelreg_emulator.__main__:main" not in entry_points:
        raise SystemExit("the emulator's wheel lacks the modelreg-emulator console script")
    runtime = _requirements(metadata)
    if runtime != EMULATOR_DEPENDENCIES:
        raise SystemExit(f"emulator dependencies {sorted(runtime)} != {sorted(EMULATOR_DEPENDENCIES)}")


def check_sdist(sdist: Path) -> None:
    import tarfile

    with tarfile.open(sdist) as tf:
        names = [n.split("/", 1)[1] for n in tf.getnames() if "/" in n]
    for needed in ("pyproject.toml", "README.md", "LICENSE", "airflow_provider_modelreg/__init__.py"):
        if needed not in names:
            raise SystemExit(f"the sdist lacks {needed}")
    emulator = [n for n in names if n.startswith("emulator/") or "/emulator/" in n]
    if emulator:
        raise SystemExit(f"the provider's sdist carries the emulator (it is modelreg-emulator's): {emulator[:10]}")
    junk = [n for n in names if n.split("/")[0] in (".venv", "out", ".demo", ".e2e", ".git")]
    if junk:
        raise SystemExit(f"the sdist carries local state: {junk[:10]}")


# ---------------------------------------------------------------------------------------------------------- cells


def expected_skips(cell: str) -> set[str]:
    path = SKIPS / f"airflow-{cell}.txt"
    if not path.exists():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def write_skips(cell: str, report: dict[str, Any]) -> None:
    by_reason: dict[str, list[str]] = {}
    for nodeid, result in report["results"].items():
        if result["outcome"] == "skipped":
            by_reason.setdefault(result["reason"], []).append(nodeid)
    lines = [
        f"# Tests skipped on Airflow {cell} (written by `python3 ci/matrix.py skips` or `run --update-skips`).",
        "# The matrix cell fails when the skipped tests differ from this list. One test id a line, grouped by reason.",
    ]
    for reason in sorted(by_reason):
        lines += ["", f"# {reason}", *sorted(by_reason[reason])]
    SKIPS.mkdir(parents=True, exist_ok=True)
    (SKIPS / f"airflow-{cell}.txt").write_text("\n".join(lines) + "\n")


def summarize(cell: str, report: dict[str, Any] | None, *, update_skips: bool) -> dict[str, Any]:
    if report is None:
        return {"cell": cell, "airflow": "?", "passed": 0, "failed": 0, "skipped": 0, "skips": "no report", "ok": False}
    counts: dict[str, int] = {}
    for result in report["results"].values():
        counts[result["outcome"]] = counts.get(result["outcome"], 0) + 1
    skipped = {n for n, r in report["results"].items() if r["outcome"] == "skipped"}
    if update_skips:
        write_skips(cell, report)
    expected = expected_skips(cell)
    unexpected, missing = sorted(skipped - expected), sorted(expected - skipped)
    failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("xpassed", 0)
    skips_note = "as listed" if not (unexpected or missing) else f"+{len(unexpected)} -{len(missing)} vs list"
    return {
        "cell": cell,
        "airflow": report["airflow"],
        "passed": counts.get("passed", 0),
        "failed": failed,
        "skipped": len(skipped),
        "xfailed": counts.get("xfailed", 0),
        "skips": skips_note,
        "unexpected_skips": unexpected,
        "missing_skips": missing,
        "failures": sorted(n for n, r in report["results"].items() if r["outcome"] in ("failed", "error", "xpassed")),
        "exitstatus": report["exitstatus"],
        "ok": failed == 0 and not unexpected and not missing and report["exitstatus"] in (0,),
    }


def run_cell(cell: str, wheels: tuple[Path, Path], *, update_skips: bool) -> dict[str, Any]:
    started = time.monotonic()
    d = OUT / "cells" / cell
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    venv = d / "venv"
    py = venv / "bin" / "python"
    times: dict[str, float] = {}
    wheel, emulator_wheel = wheels

    t = time.monotonic()
    make_venv(venv, d / "install.log")
    requirements = [f"{wheel}[{EXTRAS}]", str(emulator_wheel)]
    code = pip_install(venv, CONSTRAINTS / f"airflow-{cell}.txt", requirements, d / "install.log")
    times["install"] = time.monotonic() - t
    if code != 0:
        say(f"{cell}: install FAILED\n{tail(d / 'install.log')}")
        return {
            "cell": cell,
            "airflow": "?",
            "passed": 0,
            "failed": 0,
            "skipped": 0,
            "skips": "-",
            "dag": "-",
            "ok": False,
            "minutes": (time.monotonic() - started) / 60,
            "times": times,
            "note": "install failed",
        }
    say(
        f"{cell}: installed {wheel.name}[{EXTRAS}] and {emulator_wheel.name} with constraints/airflow-{cell}.txt "
        f"({times['install']:.0f} s)"
    )

    t = time.monotonic()
    report_path = d / "report.json"
    env = clean_env(
        venv,
        PYTHONPATH=str(ROOT / "ci"),
        MODELREG_MATRIX_REPORT=str(report_path),
        MODELREG_TEST_INSTALLED="1",
    )
    pytest_cmd = [py, "-m", "pytest", ROOT / "tests", "-c", ROOT / "pyproject.toml", "--rootdir", ROOT]
    pytest_cmd += ["-p", "matrix_report", "-p", "no:cacheprovider", "-q", "--continue-on-collection-errors"]
    # Tests import the repository's own modules (bench, e2e, dags_examples): the source tree goes on sys.path
    # *after* site-packages (a .pth file), so the package itself still comes from the wheel (conftest checks).
    site_packages = next((venv / "lib").glob("python3*/site-packages"))
    repo_path = site_packages / "modelreg_matrix_repo.pth"
    repo_path.write_text(f"{ROOT}\n")
    try:
        code = run(pytest_cmd, log=d / "pytest.log", timeout=TIMEOUTS["pytest"], cwd=d, env=env)
    finally:
        repo_path.unlink()  # the DAG step below sees the wheel alone, as a user's install
    times["pytest"] = time.monotonic() - t
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    result = summarize(cell, report, update_skips=update_skips)
    if report is not None and ROOT / "airflow_provider_modelreg" in Path(report["package_file"]).parents:
        result.update(ok=False, note="tests imported the source tree, not the wheel")
    if report is not None and EMULATOR in Path(report.get("emulator_file") or EMULATOR / "-").parents:
        result.update(ok=False, note="tests imported the emulator from the source tree, not its wheel")
    say(
        f"{cell}: suite on Airflow {result['airflow']}: {result['passed']} passed, {result['failed']} failed, "
        f"{result['skipped']} skipped ({result['skips']}), exit {code} ({times['pytest']:.0f} s)"
    )

    t = time.monotonic()
    dag_root = d / "dag"
    examples = dag_root / "dags_examples"
    examples.mkdir(parents=True)
    for name in ("__init__.py", "demo.py", "pai_deploy_next_approved.py"):
        shutil.copy2(ROOT / "dags_examples" / name, examples / name)
    code = run(
        [py, examples / "demo.py"],
        log=d / "dag.log",
        timeout=TIMEOUTS["dag"],
        cwd=dag_root,
        env=clean_env(venv, AIRFLOW_HOME=str(dag_root / "airflow-home")),
    )
    times["dag"] = time.monotonic() - t
    result["dag"] = "ok" if code == 0 else "FAILED"
    result["ok"] = result["ok"] and code == 0
    say(f"{cell}: example DAG pai_deploy_next_approved from the wheel: {result['dag']} ({times['dag']:.0f} s)")
    if code != 0:
        say(f"{cell}: DAG log tail:\n{tail(d / 'dag.log')}")
    result["minutes"] = (time.monotonic() - started) / 60
    result["times"] = times
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = "| Airflow | installed | passed | failed | skipped | skips vs ci/skips | example DAG | minutes | cell |"
    rows = [head, "|---|---|---:|---:|---:|---|---|---:|---|"]
    for r in results:
        rows.append(
            f"| {r['cell']} | {r['airflow']} | {r['passed']} | {r['failed']} | {r['skipped']} | {r['skips']} "
            f"| {r.get('dag', '-')} | {r.get('minutes', 0):.1f} | {'ok' if r['ok'] else 'FAILED'} |"
        )
    return "\n".join(rows)


def cmd_run(args: argparse.Namespace) -> int:
    cells = args.cells.split(",") if args.cells else list(CELLS)
    OUT.mkdir(parents=True, exist_ok=True)
    stage = time.monotonic()
    prefetch([CONSTRAINTS / f"airflow-{c}.txt" for c in cells], OUT / "prefetch")
    say(f"stage prefetch: {time.monotonic() - stage:.0f} s")
    stage = time.monotonic()
    wheels = build()
    say(f"stage build: {time.monotonic() - stage:.0f} s")
    stage = time.monotonic()
    results: list[dict[str, Any]] = []
    if args.newest_report:
        path = Path(args.newest_report)
        report = json.loads(path.read_text()) if path.exists() else None
        newest = summarize(NEWEST, report, update_skips=args.update_skips)
        newest.update(dag="in suite", minutes=(report or {}).get("seconds", 0) / 60)
        results.append(newest)
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_cell, c, wheels, update_skips=args.update_skips) for c in cells]
        results += [f.result() for f in futures]
    say(f"stage cells ({len(cells)} cells, {args.jobs} at a time): {time.monotonic() - stage:.0f} s")
    (OUT / "summary.json").write_text(json.dumps(results, indent=1))
    text = table(results)
    (OUT / "summary.md").write_text(text + "\n")
    print(text, flush=True)
    for r in results:
        for key in ("failures", "unexpected_skips", "missing_skips"):
            if r.get(key):
                print(f"{r['cell']} {key}: " + ", ".join(r[key][:20]), flush=True)
        if r.get("note"):
            print(f"{r['cell']}: {r['note']}", flush=True)
    totals = [sum(r[k] for r in results) for k in ("passed", "failed", "skipped")]
    bad = [r["cell"] for r in results if not r["ok"]]
    print(f"matrix: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped", flush=True)
    say(f"matrix {'FAILED: ' + ', '.join(bad) if bad else 'passed'} in {(time.monotonic() - _STARTED) / 60:.1f} min")
    return 1 if bad else 0


# ------------------------------------------------------------------------------------------------- today's newest


def installed_versions(venv: Path) -> dict[str, str]:
    """{canonical name: version} of every distribution in a venv."""
    listed = subprocess.run(
        [venv / "bin" / "python", "-m", "pip", "list", "--format", "json"],
        env=clean_env(venv),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if listed.returncode != 0:
        return {}
    return {canonical(d["name"]): d["version"] for d in json.loads(listed.stdout)}


def tested_pins(cell: str) -> dict[str, str]:
    """{canonical name: version} of the cell's tested pins (constraints/airflow-X.txt; constraints.txt for 3.3)."""
    path = ROOT / "constraints.txt" if cell == NEWEST else CONSTRAINTS / f"airflow-{cell}.txt"
    return {canonical(p.split("==")[0]): p.split("==")[1] for p in pins(path)} if path.exists() else {}


def drift(cell: str, versions: dict[str, str]) -> list[str]:
    """The packages resolved today at another version than the cell's tested pins: where to look when it fails."""
    tested = tested_pins(cell)
    ours = {"airflow-provider-modelreg", "modelreg-emulator", "pip", "setuptools", "wheel"}
    return sorted(
        f"{n} {tested[n]}->{v}" for n, v in versions.items() if n in tested and tested[n] != v and n not in ours
    )


def run_newest_cell(cell: str, wheels: tuple[Path, Path]) -> dict[str, Any]:
    """One "today's newest" cell: fresh online resolve with only the .in pins, import, providers list, DAG (a)."""
    started = time.monotonic()
    d = OUT / "newest" / cell
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    venv = d / "venv"
    py = venv / "bin" / "python"
    wheel, emulator_wheel = wheels
    result: dict[str, Any] = {"cell": cell, "versions": {}, "steps": {}, "times": {}, "drift": [], "ok": False}

    def step(name: str, ok: bool, t: float, log: Path) -> bool:
        result["times"][name] = time.monotonic() - t
        result["steps"][name] = "ok" if ok else "FAILED"
        if not ok:
            result["failed_step"] = name
            result["log"] = str(log.relative_to(ROOT))
            say(f"newest {cell}: {name} FAILED ({result['times'][name]:.0f} s); {log}:\n{tail(log)}")
        return ok

    def finish() -> dict[str, Any]:
        result["seconds"] = time.monotonic() - started
        result["ok"] = all(v == "ok" for v in result["steps"].values()) and len(result["steps"]) == 4
        if not result["ok"] and result["drift"]:
            say(f"newest {cell}: resolved unlike the tested pins: {', '.join(result['drift'])}")
        (d / "result.json").write_text(json.dumps(result, indent=1))
        return result

    # 1. resolve: online, newest of everything but the .in pins. `-r`, not `-c`: a .in may name an extra
    # (fastapi[standard]), which pip refuses in a constraints file. The wheelhouse is a --find-links next to the
    # index, so files already fetched for the pinned cells are not downloaded again (pip still picks the newest).
    t = time.monotonic()
    log = d / "install.log"
    make_venv(venv, log)
    cmd = [py, "-m", "pip", "install", "-q", "--find-links", WHEELHOUSE, f"apache-airflow=={cell}.*"]
    cmd += [wheel, emulator_wheel, "-r", CONSTRAINTS / f"airflow-{cell}.in"]
    ok = run(cmd, log=log, timeout=TIMEOUTS["resolve"], env=clean_env(venv)) == 0
    versions = installed_versions(venv) if ok else {}
    result["versions"] = {n: versions.get(n, "-") for n in NEWEST_SHOWN}
    result["drift"] = drift(cell, versions)
    (d / "resolved.txt").write_text("".join(f"{n}=={v}\n" for n, v in sorted(versions.items())))
    if not step("resolve", ok, t, log):
        return finish()
    say(f"newest {cell}: resolved Airflow {versions.get('apache-airflow')} ({result['times']['resolve']:.0f} s)")

    home = d / "airflow-home"
    env = clean_env(venv, AIRFLOW_HOME=str(home), AIRFLOW__CORE__LOAD_EXAMPLES="False")

    # 2. import, outside the source tree
    t = time.monotonic()
    log = d / "import.log"
    code = "import airflow_provider_modelreg, modelreg_emulator, airflow; print(airflow_provider_modelreg.__file__)"
    ok = run([py, "-c", code], log=log, timeout=TIMEOUTS["step"], cwd=d, env=env) == 0
    ok = ok and str(ROOT / "airflow_provider_modelreg") not in log.read_text()
    if not step("import", ok, t, log):
        return finish()

    # 3. airflow providers list shows the provider
    t = time.monotonic()
    log = d / "providers.log"
    ok = run([venv / "bin" / "airflow", "providers", "list"], log=log, timeout=TIMEOUTS["step"], cwd=d, env=env) == 0
    ok = ok and "airflow-provider-modelreg" in log.read_text()
    if not step("providers", ok, t, log):
        return finish()

    # 4. example DAG (a) under `airflow dags test` against the emulator, as the pinned cells run it
    t = time.monotonic()
    log = d / "dag.log"
    dag_root = d / "dag"
    examples = dag_root / "dags_examples"
    examples.mkdir(parents=True)
    for name in ("__init__.py", "demo.py", "pai_deploy_next_approved.py"):
        shutil.copy2(ROOT / "dags_examples" / name, examples / name)
    dag_env = clean_env(venv, AIRFLOW_HOME=str(dag_root / "airflow-home"))
    ok = run([py, examples / "demo.py"], log=log, timeout=TIMEOUTS["dag"], cwd=dag_root, env=dag_env) == 0
    step("dag", ok, t, log)
    return finish()


def newest_table(results: list[dict[str, Any]]) -> str:
    head = "| cell | " + " | ".join(NEWEST_SHOWN) + " | resolve | import | providers list | example DAG | s | result |"
    rows = [head, "|" + "---|" * (len(NEWEST_SHOWN) + 7)]
    for r in results:
        steps = [r["steps"].get(s, "-") for s in ("resolve", "import", "providers", "dag")]
        versions = [r["versions"].get(n, "-") for n in NEWEST_SHOWN]
        rows.append(
            f"| {r['cell']} | "
            + " | ".join(versions)
            + " | "
            + " | ".join(steps)
            + f" | {r['seconds']:.0f} | {'ok' if r['ok'] else 'FAILED at ' + r.get('failed_step', '?')} |"
        )
    return "\n".join(rows)


def cmd_newest(args: argparse.Namespace) -> int:
    cells = args.cells.split(",") if args.cells else list(NEWEST_CELLS)
    where = OUT / "newest"
    where.mkdir(parents=True, exist_ok=True)
    stage = time.monotonic()
    wheels = build(where)
    say(f"newest: stage build {time.monotonic() - stage:.0f} s")
    stage = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_newest_cell(c, wheels), cells))
    say(f"newest: stage cells ({len(cells)} cells, {args.jobs} at a time): {time.monotonic() - stage:.0f} s")
    (where / "summary.json").write_text(json.dumps(results, indent=1))
    text = newest_table(results)
    (where / "summary.md").write_text(text + "\n")
    print(text, flush=True)
    for r in results:
        if not r["ok"]:
            print(f"{r['cell']}: FAILED at {r.get('failed_step')} (log {r.get('log')})", flush=True)
            print(f"{r['cell']}: resolved unlike the tested pins: {', '.join(r['drift']) or 'nothing'}", flush=True)
    bad = [r["cell"] for r in results if not r["ok"]]
    say(f"newest {'FAILED: ' + ', '.join(bad) if bad else 'passed'} in {(time.monotonic() - _STARTED) / 60:.1f} min")
    return 1 if bad else 0


def cmd_skips(args: argparse.Namespace) -> int:
    """Rewrite ci/skips/airflow-X.txt from collection alone in the venvs of the last run (and .venv for the newest):
    the requires_airflow markers decide every skip when the tests are collected."""
    cells = args.cells.split(",") if args.cells else [*CELLS, NEWEST]
    for cell in cells:
        d = OUT / "cells" / cell
        venv = ROOT / ".venv" if cell == NEWEST else d / "venv"
        report_path = d / "skips.json"
        report_path.unlink(missing_ok=True)
        # the repository's package and emulator ahead of the wheels the last run installed: the tests collected
        # here may import modules those wheels do not have yet
        path = os.pathsep.join(str(p) for p in (ROOT / "ci", ROOT, ROOT / "emulator"))
        env = clean_env(venv, PYTHONPATH=path, MODELREG_MATRIX_REPORT=str(report_path))
        env["MODELREG_MATRIX_SKIPS_ONLY"] = "1"
        cmd = [venv / "bin" / "python", "-m", "pytest", ROOT / "tests", "-c", ROOT / "pyproject.toml"]
        cmd += ["--rootdir", ROOT, "-p", "matrix_report", "-p", "no:cacheprovider", "-q"]
        cmd += ["--continue-on-collection-errors"]
        pth = (
            None if cell == NEWEST else next((venv / "lib").glob("python3*/site-packages")) / "modelreg_matrix_repo.pth"
        )
        if pth is not None:
            pth.write_text(f"{ROOT}\n")
        try:
            run(cmd, log=d / "skips.log", timeout=600, cwd=ROOT if cell == NEWEST else d, env=env)
        finally:
            if pth is not None:
                pth.unlink()
        report = json.loads(report_path.read_text())
        write_skips(cell, report)
        say(f"{cell}: {sum(r['outcome'] == 'skipped' for r in report['results'].values())} skips -> ci/skips")
    return 0


def cmd_refresh(args: argparse.Namespace) -> int:
    """Resolve each constraints/airflow-X.in (newest patch of the minor + the known-breakage pins) with the wheel and
    its extras and the emulator's wheel in a fresh venv and freeze the result into constraints/airflow-X.txt.

    ``--keep-pins``: resolve under the current constraints/airflow-X.txt (and build.txt) as well, so that only what
    they do not pin yet (a new test dependency) is resolved; every existing pin stays as it is."""
    cells = args.cells.split(",") if args.cells else list(CELLS)
    d = OUT / "refresh" / "build"
    make_venv(d / "venv", d / "refresh.log")
    py = d / "venv" / "bin" / "python"
    keep: list[str | Path] = ["-c", CONSTRAINTS / "build.txt"] if args.keep_pins else []
    if (
        run(
            [py, "-m", "pip", "install", "-q", "-r", CONSTRAINTS / "build.in", *keep],
            log=d / "refresh.log",
            timeout=600,
        )
        != 0
    ):
        raise SystemExit(f"build tools did not resolve:\n{tail(d / 'refresh.log')}")
    frozen = subprocess.run(
        [py, "-m", "pip", "freeze", "--all", "--exclude", "pip"], capture_output=True, text=True, check=True
    ).stdout
    header = "# Pins for make matrix's build stage, Python 3.11. Generated by `make matrix-constraints` (build.in).\n"
    (CONSTRAINTS / "build.txt").write_text(header + frozen)
    wheel, emulator_wheel = build(OUT / "refresh")

    def refresh(cell: str) -> str:
        d = OUT / "refresh" / cell
        venv = d / "venv"
        log = d / "refresh.log"
        log.unlink(missing_ok=True)
        make_venv(venv, log)
        py = venv / "bin" / "python"
        cmd = [py, "-m", "pip", "install", "-q", "-r", CONSTRAINTS / f"airflow-{cell}.in", f"{wheel}[{EXTRAS}]"]
        cmd.append(emulator_wheel)
        if args.keep_pins:
            cmd += ["-c", CONSTRAINTS / f"airflow-{cell}.txt"]
        if run(cmd, log=log, timeout=1200, env=clean_env(venv)) != 0:
            return f"{cell}: FAILED\n{tail(log)}"
        frozen = subprocess.run(
            [py, "-m", "pip", "freeze", "--exclude", "airflow-provider-modelreg", "--exclude", "modelreg-emulator"],
            env=clean_env(venv),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        airflow = next(line for line in frozen.splitlines() if line.startswith("apache-airflow=="))
        header = (
            f"# Pins for the Airflow {cell} matrix cell ({airflow}), Python {sys.version_info.major}."
            f"{sys.version_info.minor}.\n"
            f"# Generated by `make matrix-constraints` from constraints/airflow-{cell}.in; do not edit by hand.\n"
        )
        (CONSTRAINTS / f"airflow-{cell}.txt").write_text(header + frozen)
        return f"{cell}: {airflow}, {len(frozen.splitlines())} pins"

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        lines = list(pool.map(refresh, cells))
    for line in lines:
        say(line)
    return 1 if any("FAILED" in line for line in lines) else 0


def main() -> int:
    def stop(*_: Any) -> None:
        _STOPPING.set()
        stop_running()
        sys.exit(143)

    signal.signal(signal.SIGTERM, stop)
    try:
        return _main()
    finally:
        stop_running()


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "refresh", "skips", "newest"):
        p = sub.add_parser(name)
        default = NEWEST_CELLS if name == "newest" else CELLS
        p.add_argument("--cells", help=f"comma-separated Airflow minors (default: {','.join(default)})")
        p.add_argument("--jobs", type=int, default=2, help="cells at a time (default 2: one per core)")
        if name == "refresh":
            p.add_argument("--keep-pins", action="store_true", help="keep every current pin; resolve only new ones")
        if name == "run":
            p.add_argument("--newest-report", help="matrix_report JSON of `make test` on the newest Airflow")
            p.add_argument("--update-skips", action="store_true", help="rewrite ci/skips/*.txt from this run")
    args = parser.parse_args()
    return {"run": cmd_run, "refresh": cmd_refresh, "skips": cmd_skips, "newest": cmd_newest}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
