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
