"""The repository as a package: one version, the licence, the changelog, project URLs, no references to files
that are not in the repository, and no emulator in the provider's wheel (it is its own distribution, issue 21)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from airflow_provider_modelreg import __version__
from airflow_provider_modelreg.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parent.parent
DIST_NAME = "airflow-provider-modelreg"
#: MD5 of the Apache License 2.0 text as published at https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _tracked_text_files(root: Path = ROOT) -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    names = [n for n in listed.splitlines() if re.search(r"\.(py|md|toml|txt|json)$|^Makefile$|^\.ci/run$", n)]
    return [root / n for n in names if (root / n).is_file()]


# ------------------------------------------------------------------------------------------------ version


def test_version_is_written_once() -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert "version" not in project, "pyproject must not repeat the version: it reads __version__"
    assert project["dynamic"] == ["version"]
    tool = _pyproject()["tool"]
    assert isinstance(tool, dict)
    assert tool["setuptools"]["dynamic"]["version"] == {"attr": "airflow_provider_modelreg.__version__"}
    assert get_provider_info()["versions"] == [__version__]
    assert importlib.metadata.version(DIST_NAME) == __version__
    # and nowhere else: no file of the package spells the version out
    spelled = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "airflow_provider_modelreg").rglob("*.py")
        if re.search(rf"""["']{re.escape(__version__)}["']""", p.read_text(encoding="utf-8"))
    ]
    assert spelled == ["airflow_provider_modelreg/__init__.py"], spelled


# ------------------------------------------------------------------------------------- licence, changelog, URLs


def test_license_is_the_apache_2_text() -> None:
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.md5(text, usedforsecurity=False).hexdigest() == APACHE_2_MD5
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert project["license"] == {"text": "Apache-2.0"}
    assert importlib.metadata.distribution(DIST_NAME).metadata["License"] == "Apache-2.0"


def test_changelog_has_an_entry_for_this_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (\S+)", text, flags=re.MULTILINE)
    assert headings and headings[0] == __version__, headings
    assert all(re.fullmatch(r"0\.\d+\.\d+", h) for h in headings), headings


def test_project_urls_in_the_metadata() -> None:
    urls = dict(
        entry.split(", ", 1)
        for entry in importlib.metadata.distribution(DIST_NAME).metadata.get_all("Project-URL") or []
    )
    assert set(urls) >= {"Homepage", "Repository", "Issues", "Changelog"}, urls
    for name, url in urls.items():
        assert url.startswith("https://github.com/"), (name, url)
    assert urls["Issues"] == urls["Repository"] + "/issues"
    assert urls["Changelog"].endswith("/CHANGELOG.md")


# ------------------------------------------------------------------------------------------------ references

#: References known to be stale in files another change owns (reported, not edited here). Remove when fixed.
KNOWN_STALE: set[tuple[str, str]] = set()

_MD_NAME = re.compile(r"(?<![\w/.-])([\w.-]+/)*([A-Za-z][\w.-]*\.md)\b")


def _dangling_references(files: list[Path], root: Path = ROOT) -> set[tuple[str, str]]:
    """(file, name) for every ``NAME.md`` / ``dir/NAME.md`` mentioned whose file is not in the repository at
    ``root`` (a git work tree); file names relative to ``root``."""
    existing = {p.relative_to(root).as_posix() for p in _tracked_text_files(root)}
    existing |= {"CHANGELOG.md", "LICENSE"}  # new files count before they are committed
    basenames = {name.rsplit("/", 1)[-1] for name in existing}
    dangling: set[tuple[str, str]] = set()
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in _MD_NAME.finditer(text):
            full = match.group(0)
            if text[max(0, match.start() - 3) : match.start()] == '/ "':
                continue  # a file a program writes (``OUT / "summary.md"``), not a reference
            ok = full in existing if "/" in full else full in basenames
            if not ok:
                dangling.add((path.relative_to(root).as_posix(), full))
        if "shared/protocol" in text and path.name != Path(__file__).name:
            dangling.add((path.relative_to(root).as_posix(), "shared/protocol"))
    return dangling


def test_no_reference_to_files_outside_the_repository() -> None:
    files = [
        p
        for p in _tracked_text_files()
        if (p.suffix in (".py", ".md", ".toml") or p.name == "Makefile") and p.name != Path(__file__).name
    ]
    assert len(files) > 50, "the scan found too few files"
    assert _dangling_references(files) - KNOWN_STALE == set()


def test_reference_check_catches_a_dangling_name(tmp_path: Path) -> None:
    """The checker on a small repository of its own under tmp_path (the source tree is only read)."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "tests" / "data").mkdir(parents=True)
    (tmp_path / "README.md").write_text("# r\n", encoding="utf-8")
    (tmp_path / "docs" / "HERE.md").write_text("# h\n", encoding="utf-8")
    probe = tmp_path / "tests" / "data" / "probe.md"
    probe.write_text(
        'see PROTOCOL.md A.2, docs/GONE.md, docs/HERE.md, HERE.md, README.md and shared/protocol; OUT / "x.md"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}  # this repository, not a caller's
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True, env=env)
    subprocess.run(["git", "add", "."], cwd=tmp_path, check=True, env=env)
    assert _dangling_references([probe], root=tmp_path) == {
        ("tests/data/probe.md", "PROTOCOL.md"),
        ("tests/data/probe.md", "docs/GONE.md"),
        ("tests/data/probe.md", "shared/protocol"),
    }


@pytest.mark.parametrize("phrase", ["refused except in endpoints", "httpx.Client per hook", "one ``httpx.Client``"])
def test_comments_do_not_claim_what_the_code_does_not(phrase: str) -> None:
    """Phrases once found in comments that the code does not do (issue 12)."""
    owners_fix = {"refused except in endpoints": {"airflow_provider_modelreg/hooks/base.py"}}
    hits = {
        p.relative_to(ROOT).as_posix()
        for p in _tracked_text_files()
        if p.suffix == ".py" and p.name != Path(__file__).name and phrase in p.read_text(encoding="utf-8")
    }
    assert hits - owners_fix.get(phrase, set()) == set()


# ------------------------------------------------------------------------------- the emulator's own distribution


def _provider_wheel_files(tmp_path: Path) -> tuple[Path, Path]:
    """What setuptools puts into the provider's wheel, from a copy of the sources (the emulator's folder included):
    ``build_py`` (the wheel's files) and ``egg_info`` (its metadata and entry points), run by the installed
    setuptools under tmp_path. The real wheel is built and checked the same way by ``make matrix``
    (ci/matrix.py ``check_wheel``, pinned build tools)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "CHANGELOG.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for folder in ("airflow_provider_modelreg", "emulator"):
        shutil.copytree(ROOT / folder, src / folder, ignore=ignore)
    lib, meta = tmp_path / "lib", tmp_path / "meta"
    meta.mkdir()
    cmd = [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q"]
    cmd += ["egg_info", "--egg-base", str(meta), "build_py", "--build-lib", str(lib)]
    subprocess.run(cmd, cwd=src, check=True, capture_output=True, timeout=300)
    return lib, next(meta.glob("*.egg-info"))


def test_the_provider_wheel_holds_no_emulator(tmp_path: Path) -> None:
    from ci.matrix import wheel_emulator_problems

    lib, egg_info = _provider_wheel_files(tmp_path)
    names = sorted(p.relative_to(lib).as_posix() for p in lib.rglob("*") if p.is_file())
    assert "airflow_provider_modelreg/__init__.py" in names and "airflow_provider_modelreg/py.typed" in names
    assert all(n.startswith("airflow_provider_modelreg/") for n in names), names
    assert wheel_emulator_problems(names, lambda n: (lib / n).read_text(encoding="utf-8")) == []
    # no console script, no emulator extra: the entry points are the provider's alone
    entry_points = (egg_info / "entry_points.txt").read_text(encoding="utf-8")
    assert re.findall(r"^\[(.+)\]$", entry_points, flags=re.MULTILINE) == ["apache_airflow_provider"], entry_points
    requires = (egg_info / "requires.txt").read_text(encoding="utf-8")
    assert "[emulator]" not in requires and not re.search(r"fastapi|uvicorn|starlette", requires), requires


def test_the_wheel_check_finds_emulator_code() -> None:
    """ci/matrix.py's check on a made-up wheel that still holds the emulator, or imports its server."""
    from ci.matrix import wheel_emulator_problems

    files = {
        "airflow_provider_modelreg/hooks/pai.py": "import httpx\n",
        "airflow_provider_modelreg/emulator/app.py": "from fastapi import FastAPI\n",
        "airflow_provider_modelreg/testing.py": "def serve():\n    import uvicorn.server\n",
        "airflow_provider_modelreg/demo.py": "from modelreg_emulator import RegistryEmulator\n",
        "airflow_provider_modelreg-0.1.0.dist-info/entry_points.txt": (
            "[console_scripts]\nmodelreg-emulator = modelreg_emulator.__main__:main\n"
        ),
    }
    assert wheel_emulator_problems(sorted(files), files.__getitem__) == [
        "airflow_provider_modelreg/emulator/app.py",
        "airflow_provider_modelreg-0.1.0.dist-info/entry_points.txt declares an emulator entry point",
        "airflow_provider_modelreg/demo.py imports modelreg_emulator",
        "airflow_provider_modelreg/emulator/app.py imports fastapi",
        "airflow_provider_modelreg/testing.py imports uvicorn.server",
    ]


def test_the_emulator_is_a_distribution_of_its_own() -> None:
    """Installed from emulator/ (make test: editable; the matrix: its wheel), with the console script and the data."""
    import modelreg_emulator

    dist = importlib.metadata.distribution("modelreg-emulator")
    assert {ep.name: ep.value for ep in dist.entry_points.select(group="console_scripts")} == {
        "modelreg-emulator": "modelreg_emulator.__main__:main"
    }
    assert modelreg_emulator.DEMO_SEED_PATH.is_file()
    assert (ROOT / "emulator" / "LICENSE").read_bytes() == (ROOT / "LICENSE").read_bytes()
    assert "airflow-provider-modelreg" in {re.split(r"[\s<>=!~;\[(]", r)[0] for r in dist.requires or []}
    provider = importlib.metadata.distribution(DIST_NAME)
    assert not [ep for ep in provider.entry_points if ep.group == "console_scripts"]
    assert "emulator" not in (provider.metadata.get_all("Provides-Extra") or [])
