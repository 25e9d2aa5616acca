"""ci/check_docs.py, the link and anchor check of ``make docs``, on small sites of its own under tmp_path (the
built site itself is checked by ``make docs``, which the test suite does not run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

# by path: the matrix cells run the suite from another working directory, where ``ci`` is not importable
_CHECKER = Path(__file__).resolve().parents[1] / "ci" / "check_docs.py"
_SPEC = importlib.util.spec_from_file_location("check_docs", _CHECKER)
assert _SPEC is not None and _SPEC.loader is not None
check_docs = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(check_docs)
SEARCHED, _public_classes, check = check_docs.SEARCHED, check_docs._public_classes, check_docs.check
ROOT = Path(__file__).resolve().parents[1]


def _site(tmp_path: Path, pages: dict[str, str], searched: tuple[str, ...] = SEARCHED) -> Path:
    site = tmp_path / "site"
    (site / "search").mkdir(parents=True)
    (site / "sub").mkdir()
    for name, html in pages.items():
        (site / name).write_text(html, encoding="utf-8")
    docs = [{"title": name, "text": ""} for name in searched]
    (site / "search" / "search_index.json").write_text(json.dumps({"docs": docs}), encoding="utf-8")
    return site


def test_a_consistent_site_passes(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        {
            "index.html": '<a href="b.html#there">b</a><a href="#top">top</a><h1 id="top">t</h1>'
            '<a href="https://example.com/x#y">out</a><img src="sub/p.png"><a href="/b.html">root</a>',
            "b.html": '<h2 id="there">b</h2><a href="index.html">back</a>',
            "sub/p.png": "",
        },
    )
    assert check(site, provider=False) == []


def test_missing_pages_anchors_and_search_terms_are_reported(tmp_path: Path) -> None:
    site = _site(
        tmp_path,
        {
            "index.html": '<a href="b.html#gone">x</a><a href="#nowhere">y</a><a href="missing.html">z</a>',
            "b.html": '<h2 id="there">b</h2><a name="legacy"></a><a href="index.html#legacy">no</a>',
        },
        searched=SEARCHED[1:],
    )
    assert sorted(check(site, provider=False)) == sorted(
        [
            "index.html: link 'b.html#gone': no id 'gone' on b.html",
            "index.html: link '#nowhere': no id 'nowhere' on index.html",
            "index.html: link 'missing.html': no such file in the site",
            "b.html: link 'index.html#legacy': no id 'legacy' on index.html",
            f"search index: {SEARCHED[0]!r} not found",
        ]
    )


def test_an_empty_site_is_a_problem(tmp_path: Path) -> None:
    assert check(tmp_path, provider=False) == [f"{tmp_path}: no HTML pages (was the site built?)"]


def test_the_api_reference_check_reads_the_public_classes() -> None:
    assert _public_classes("airflow_provider_modelreg.sensors.pai") == ["PaiModelVersionApprovedSensor"]
    assert "PaiEasDeployOperator" in _public_classes("airflow_provider_modelreg.operators.eas")


def test_every_public_operator_sensor_and_trigger_has_a_complete_howto_section() -> None:
    classes = check_docs.howto_classes()
    # the families: a class that stopped being found would shrink this list silently
    assert {"PaiEasCleanupOperator", "FabricModelVersionSensor", "FabricEpInstanceTrigger"} <= set(classes)
    assert len(classes) >= 30 and not any(name.endswith(("Hub", "Base", "Mixin")) for name in classes)
    assert check_docs.howto_problems(ROOT) == []


def _tree(tmp_path: Path, docs: dict[str, str], tests: dict[str, str] | None = None) -> Path:
    for folder, files in (("docs", docs), ("tests", tests or {})):
        (tmp_path / folder).mkdir()
        for name, text in files.items():
            (tmp_path / folder / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_a_class_without_a_section_or_with_an_incomplete_one_is_reported(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {"howto-list.md": "# X\n\n## `PaiEasDeployOperator` { #PaiEasDeployOperator }\n\n**What it does**: deploys.\n"},
    )
    problems = check_docs.howto_problems(root)
    assert "how-to: no section { #PaiEasCanaryOperator } in docs/howto-*.md" in problems
    assert "howto-list.md#PaiEasDeployOperator: no **XCom**" in problems
    assert "howto-list.md#PaiEasDeployOperator: no example included from dags_examples/" in problems
    assert not any("#PaiEasDeployOperator: no **What it does**" in p for p in problems)


def test_an_included_example_no_test_names_is_reported(tmp_path: Path) -> None:
    include = '```python\n--8<-- "dags_examples/pai_eas_canary.py:canary"\n```\n'
    root = _tree(tmp_path, {"howto-list.md": include})
    (root / "dags_examples").mkdir()
    (root / "dags_examples" / "pai_eas_canary.py").write_text('DAG(dag_id="pai_eas_canary")\n', encoding="utf-8")
    problem = "docs include dags_examples/pai_eas_canary.py: no test in tests/ names its DAG ids"
    assert any(p.startswith(problem) for p in check_docs.howto_problems(root))
    (root / "tests" / "test_x.py").write_text('DAG_ID = "pai_eas_canary"\n', encoding="utf-8")
    assert not any(p.startswith(problem) for p in check_docs.howto_problems(root))


def test_every_code_block_of_the_docs_is_run_by_a_test_or_marked() -> None:
    assert check_docs.code_block_problems(ROOT) == []


def test_an_unmarked_or_wrongly_marked_code_block_is_reported(tmp_path: Path) -> None:
    page = "\n".join(
        [
            "# A",
            "```python",  # line 2: unmarked
            "print(1)",
            "```",
            "<!-- not run: a fragment -->",
            "```sh",  # marked: fine
            "make demo",
            "```",
            "<!-- run by tests/test_a.py -->",
            "```",  # run by a test that names the page: fine
            "export X=1",
            "```",
            "<!-- run by tests/test_b.py -->",
            "```bash",  # line 14: the test does not name the page
            "true",
            "```",
            "<!-- run by tests/test_gone.py -->",
            "```console",  # line 18: no such test
            "$ true",
            "```",
            "<!-- not run: -->",
            "```py",  # line 22: a mark without a reason
            "pass",
            "```",
            "```text",  # not code: not checked
            "a diagram",
            "```",
            '```python title="dags_examples/x.py"',  # an included example: checked with the how-tos
            '--8<-- "dags_examples/x.py"',
            "```",
        ]
    )
    root = _tree(
        tmp_path, {"index.md": page}, {"test_a.py": "PAGE = 'docs/index.md'\n", "test_b.py": "PAGE = 'errors.md'\n"}
    )
    assert [p.split(": ")[0] + ": " + p.split(": ")[1][:12] for p in check_docs.code_block_problems(root)] == [
        "docs/index.md:2: a ```python ",
        "docs/index.md:14: run by tests",
        "docs/index.md:18: run by tests",
        "docs/index.md:22: a ```py bloc",
    ]


def test_the_benchmarks_page_includes_benchmarks_md_rather_than_a_copy() -> None:
    # BENCHMARKS.md is rendered from bench/records.json (make benchmarks-md): the page shows that file, never a copy
    assert (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8").strip() == '--8<-- "BENCHMARKS.md"'
