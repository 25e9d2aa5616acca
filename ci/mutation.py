"""Mutation testing of the trust cores with mutmut, one module at a time (``make mutation``; docs/TESTING.md).

For each module in :data:`MODULES` (all, or those named on the command line) this builds a fresh copy of the
package and the tests under ``out/mutation/<module>/`` (ignored by git), with a ``[tool.mutmut]`` table that
mutates that module only and runs only that module's test selection, then runs ``mutmut run`` there (so
mutmut's ``mutants/`` folder is ``out/mutation/<module>/mutants/``; the checkout is only read). It then counts
the results and prints one table:

    module, mutants, killed, survived, equivalent, score = killed / (mutants - equivalent), run time

A timeout counts as killed (the tests did not pass). Equivalent mutants (a change no test can observe) are listed
in ``ci/mutation_equivalents.txt``, one ``<mutant name> <reason>`` a line. The run fails (exit 1) when a module
scores below :data:`THRESHOLD` or an equivalent names no mutant of the run (the list has gone stale); each
surviving mutant's diff is written to ``out/mutation/<module>/survivors.txt`` and the table to
``out/mutation/summary.json``.

Standard library only; mutmut comes from the ``mutation`` extra (the Makefile installs it).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "out" / "mutation"
EQUIVALENTS = ROOT / "ci" / "mutation_equivalents.txt"
PACKAGE = "airflow_provider_modelreg"
#: Minimal score of every module (killed / non-equivalent mutants): the ratchet.
THRESHOLD = 0.90
#: Files besides the package and tests/ that the selected tests read (copied next to them).
ALSO_COPY = ["README.md", "CHANGELOG.md"]
#: pytest options of every mutant run: file order (pytest-randomly off), no cache folder.
PYTEST_ARGS = ["-p", "no:randomly", "-p", "no:cacheprovider", "-q"]
#: mutmut's wall-clock limit per mutant is (tests' duration + constant) * multiplier seconds; a mutant that loops
#: forever costs that much. Generous enough for a loaded machine (a timeout counts as a kill).
TIMEOUT_MULTIPLIER = 10.0
TIMEOUT_CONSTANT = 3.0

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code) grouped as this script counts them
KILLED = {1, 3, 36, -24, 24, 152, 255, -11, -9}  # test failure, pytest internal error, timeouts, a crash
SURVIVED = {0}
NO_TESTS = {5, 33}  # no selected test reaches the mutated function: a survivor too


@dataclass(frozen=True)
class Module:
    """One module under mutation: its file, the mutants that count (mutmut name globs) and its tests."""

    #: the file, or the files of one package (a module split by concern stays one row)
    path: str | tuple[str, ...]
    tests: tuple[str, ...]
    #: mutant-name globs; mutmut names a mutant ``<dotted module>.x_<function>__mutmut_<n>`` or
    #: ``<dotted module>.xǁ<Class>ǁ<method>__mutmut_<n>``
    names: tuple[str, ...] = ()

    def files(self) -> tuple[str, ...]:
        return (self.path,) if isinstance(self.path, str) else self.path

    def globs(self) -> tuple[str, ...]:
        return self.names or tuple(f.removesuffix(".py").replace("/", ".") + ".*" for f in self.files())


MODULES: dict[str, Module] = {
    "approval": Module(
        (f"{PACKAGE}/approval.py", f"{PACKAGE}/approval_reads.py", f"{PACKAGE}/alias.py"),
        tests=(
            "tests/test_approval_core.py",
            "tests/test_paging_and_approval.py",
            "tests/test_watch_core.py",
            "tests/test_validation.py",
            "tests/test_emulator_times.py",
            "tests/test_mutants_approval.py",
        ),
    ),
    "watch": Module(
        f"{PACKAGE}/watch.py",
        tests=("tests/test_watch_core.py", "tests/test_mutants_watch.py"),
    ),
    # the paging plan (PagePlan, sans-IO); the thread and asyncio shells around it are not mutated
    "paging": Module(
        f"{PACKAGE}/paging.py",
        tests=(
            "tests/test_hostile_paging.py::test_plan",
            "tests/test_hostile_paging.py::test_plan_windows_are_bounded",
            "tests/test_hostile_paging.py::test_plan_refuses_unrequested_pages",
            "tests/test_hostile_paging.py::test_shells_agree",
            "tests/test_hostile_paging.py::test_async_shell_creates_tasks_window_by_window",
            "tests/test_hostile_paging.py::test_bad_max_pages_argument",
            "tests/test_paging_and_approval.py",
            "tests/test_mutants_paging.py",
        ),
        names=(f"{PACKAGE}.paging.xǁPagePlanǁ*",),
    ),
    # the retry plan (RetryPolicy, RetryPlan: plain data); the request loops around it are not mutated
    "retry": Module(
        f"{PACKAGE}/transport/retry.py",
        tests=(
            "tests/test_transport.py",
            "tests/test_untested_transport_settings.py::test_retry_policy_refuses_bad_budgets_delays_and_deadlines",
            "tests/test_untested_transport_settings.py::test_retry_policy_accepts_its_bounds",
            "tests/test_mutants_retry.py",
        ),
        names=(f"{PACKAGE}.transport.retry.xǁRetryPolicyǁ*", f"{PACKAGE}.transport.retry.xǁRetryPlanǁ*"),
    ),
    # the refreshing-credential core; over httpx.MockTransport only (the emulator's threaded servers can hang in
    # mutmut's forked children: a timeout would count as a kill)
    "credentials": Module(
        tuple(f"{PACKAGE}/credentials/base/{m}.py" for m in ("secrets", "flows", "files", "refreshing")),
        tests=(
            "tests/test_credentials_core.py",
            "tests/test_untested_credential_answers.py",
            "tests/test_iam_single_flight.py",
            "tests/test_mutants_credentials_core.py",
        ),
    ),
    # the IAM token auth; over httpx.MockTransport only (as above)
    "iam": Module(
        f"{PACKAGE}/iam.py",
        tests=(
            "tests/test_untested_fabric.py::test_an_unreadable_iam_answer_is_a_credential_source_error",
            "tests/test_iam_single_flight.py",
            "tests/test_mutants_iam.py",
        ),
    ),
}


def _toml_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(name: str, module: Module) -> Path:
    """A fresh work folder: the package, the tests, the files they read, and pyproject.toml with [tool.mutmut]."""
    work = OUT / name
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis")
    shutil.copytree(ROOT / PACKAGE, work / PACKAGE, ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    copied = [f for f in ALSO_COPY if (ROOT / f).is_file()]
    for f in copied:
        shutil.copy2(ROOT / f, work / f)
    missing = [t for t in module.tests if not (ROOT / t.split("::")[0]).is_file()]
    if missing:
        raise SystemExit(f"{name}: test files not found: {', '.join(missing)}")
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    config += (
        "\n[tool.mutmut]\n"
        f'source_paths = ["{PACKAGE}"]\n'
        f"only_mutate = {_toml_list(list(module.files()))}\n"
        f"also_copy = {_toml_list(copied)}\n"
        f"pytest_add_cli_args = {_toml_list(PYTEST_ARGS)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(module.tests)}\n"
        f"timeout_multiplier = {TIMEOUT_MULTIPLIER}\n"
        f"timeout_constant = {TIMEOUT_CONSTANT}\n"
        "use_git_change_detection = false\n"
    )
    (work / "pyproject.toml").write_text(config, encoding="utf-8")
    return work


def load_equivalents() -> dict[str, str]:
    """``{mutant name: reason}`` from the checked-in list (``#`` starts a comment line)."""
    found: dict[str, str] = {}
    if not EQUIVALENTS.exists():
        return found
    for number, line in enumerate(EQUIVALENTS.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        mutant, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{EQUIVALENTS.name}:{number}: {mutant} has no reason")
        found[mutant] = reason.strip()
    return found


def _mutmut() -> list[str]:
    return [str(Path(sys.executable).parent / "mutmut")]


@dataclass
class Row:
    module: str
    mutants: int
    killed: int
    survived: int
    equivalent: int
    score: float
    seconds: int
    survivors: list[str]
    stale_equivalents: list[str]
    killed_equivalents: list[str]


def run(name: str, module: Module, jobs: int, equivalents: dict[str, str]) -> Row:
    work = prepare(name, module)
    started = time.monotonic()
    log = work / "mutmut.log"
    with log.open("w", encoding="utf-8") as out:
        cmd = [*_mutmut(), "run", "--max-children", str(jobs), *module.globs()]
        code = subprocess.run(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    seconds = time.monotonic() - started
    if code != 0:
        print(log.read_text(encoding="utf-8", errors="replace")[-3000:])
        raise SystemExit(f"{name}: mutmut run failed (exit {code}); log: {log.relative_to(ROOT)}")
    codes = {
        key: value
        for file in module.files()
        for key, value in json.loads((work / "mutants" / f"{file}.meta").read_text(encoding="utf-8"))[
            "exit_code_by_key"
        ].items()
        if any(fnmatch.fnmatchcase(key, glob) for glob in module.globs())
    }
    if not codes:
        raise SystemExit(f"{name}: no mutant matches {module.globs()}")
    unchecked = sorted(k for k, v in codes.items() if v is None)
    if unchecked:
        raise SystemExit(f"{name}: {len(unchecked)} mutants were not run (first: {unchecked[0]})")
    killed = sorted(k for k, v in codes.items() if v in KILLED)
    survived = sorted(k for k, v in codes.items() if v in SURVIVED | NO_TESTS)
    odd = sorted(k for k, v in codes.items() if k not in killed and k not in survived)
    mine = {k for k in equivalents if any(fnmatch.fnmatchcase(k, glob) for glob in module.globs())}
    equivalent = sorted(mine & set(survived))
    stale = sorted(mine - set(codes))
    killed_equivalent = sorted(mine & set(killed))
    live = [k for k in survived if k not in mine] + odd
    with (work / "survivors.txt").open("w", encoding="utf-8") as out:
        for key in live:
            shown = subprocess.run(
                [*_mutmut(), "show", key], cwd=work, capture_output=True, text=True, check=False
            ).stdout
            out.write(f"{shown}\n")
    denominator = len(codes) - len(equivalent)
    return Row(
        module=name,
        mutants=len(codes),
        killed=len(killed),
        survived=len(live),
        equivalent=len(equivalent),
        score=len(killed) / denominator if denominator else 1.0,
        seconds=round(seconds),
        survivors=live,
        stale_equivalents=stale,
        killed_equivalents=killed_equivalent,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help=f"modules to run (default: all of {', '.join(MODULES)})")
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MUTATION_JOBS", "2")), help="mutmut workers")
    args = parser.parse_args(argv)
    names = [n for part in args.modules for n in part.split()] or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        parser.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    equivalents = load_equivalents()
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        print(f"== {name}: mutmut run ({', '.join(MODULES[name].files())}) ...", flush=True)
        rows.append(run(name, MODULES[name], args.jobs, equivalents))
    header = f"{'module':<12} {'mutants':>7} {'killed':>6} {'survived':>8} {'equivalent':>10} {'score':>7} {'time':>7}"
    print(header)
    failed = False
    for row in rows:
        print(
            f"{row.module:<12} {row.mutants:>7} {row.killed:>6} {row.survived:>8} {row.equivalent:>10} "
            f"{row.score:>7.1%} {row.seconds:>6}s"
        )
    for row in rows:
        for key in row.survivors:
            print(f"  {row.module}: survived {key}")
        if row.score < THRESHOLD:
            failed = True
            print(f"{row.module}: score below {THRESHOLD:.0%}; diffs in out/mutation/{row.module}/survivors.txt")
        for key in row.stale_equivalents:
            failed = True
            print(f"  {EQUIVALENTS.name} names {key}, which is no mutant of this run: update the list")
        for key in row.killed_equivalents:
            print(f"  warning: {key} is listed as equivalent but was killed: remove it from {EQUIVALENTS.name}")
    (OUT / "summary.json").write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
