"""Checks the built documentation site (``make docs``): every internal link and anchor resolves.

``mkdocs build --strict`` checks the Markdown's relative links and anchors it can see; this reads the built HTML,
so it also covers what mkdocstrings, the snippets and the theme wrote: every ``href`` to a page of the site must
name a file that was built, and every ``#fragment`` (same page or another) an ``id`` on that page. It also checks
that the search index holds the public operators, sensors and triggers by name (so the site's search finds
them), and that the API reference covers the provider: every module ``get_provider_info()`` lists under operators,
sensors, triggers and hooks has its section, with every class its ``__all__`` names, and every connection type has
its page. Exit status 1 with one line per problem.

It also checks the Markdown under docs/ (:func:`source_problems`, also run by ``tests/test_docs_check.py``):

* **one how-to per class**: every public operator, sensor and trigger class (a class named in the ``__all__`` of a
  module ``get_provider_info()`` lists under operators, sensors or triggers, defined there, its name ending in
  ``Operator``, ``Sensor`` or ``Trigger``) has a section ``## ... { #ClassName }`` in a docs/howto-*.md page, with
  the fields :data:`SECTION_FIELDS` and an example included from dags_examples/ (``--8<-- "dags_examples/...``);
* **included examples are tested**: every dags_examples/ file a page includes is named by a test in tests/ (one
  of its ``dag_id`` strings quoted, or its module ``dags_examples.<name>`` imported);
* **code in the docs runs, or says why not**: every fenced block in docs/ whose language is none, ``python``,
  ``py``, ``sh``, ``shell``, ``bash`` or ``console`` is either an include of a dags_examples/ file (checked
  above), or follows (on the line before its fence) ``<!-- not run: <reason> -->``, or
  ``<!-- run by tests/<file>.py -->`` naming a test file that exists and names the page.

    python ci/check_docs.py out/docs/site
"""

from __future__ import annotations

import ast
import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: names the search page must find (one per family): checked against search/search_index.json
SEARCHED = (
    "PaiModelVersionApprovedSensor",
    "PaiEasDeployOperator",
    "FabricModelVersionSensor",
    "PaiModelVersionApprovedEventTrigger",
    "FabricDeployServiceInstanceOperator",
)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("id", "name") and (name == "id" or tag == "a"):
                self.ids.add(value)
            elif (name == "href" and tag in ("a", "link")) or (name == "src" and tag in ("img", "script")):
                self.links.append(value)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


ROOT = Path(__file__).resolve().parents[1]


def _public_classes(module: str) -> list[str]:
    """The class names a module's ``__all__`` lists (read from its source, not imported)."""
    tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
    exported: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            exported = list(ast.literal_eval(node.value))
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    return [name for name in exported if name in classes]


def coverage(site: Path, ids: set[str]) -> list[str]:
    """What the API reference and the connection pages miss of what the provider declares."""
    from airflow_provider_modelreg.get_provider_info import get_provider_info

    info = get_provider_info()
    problems = []
    for kind in ("operators", "sensors", "triggers", "hooks"):
        for entry in info.get(kind, []):
            for module in entry["python-modules"]:
                wanted = [module] + [f"{module}.{name}" for name in _public_classes(module)]
                problems += [f"API reference ({kind}): no section {name!r}" for name in wanted if name not in ids]
    pages = " ".join(p.read_text(encoding="utf-8") for p in site.glob("connection-*.html"))
    for conn in info.get("connection-types", []):
        if f"<code>{conn['connection-type']}</code>" not in pages:
            problems.append(f"no connection page names the connection type {conn['connection-type']!r}")
    return problems


def check(site: Path, *, provider: bool = True) -> list[str]:
    """Problems found in the site under ``site`` (empty: all good); ``provider=False`` leaves out the checks against
    what the provider declares (API reference, connection pages)."""
    pages = {p: _parse(p) for p in sorted(site.rglob("*.html"))}
    if not pages:
        return [f"{site}: no HTML pages (was the site built?)"]
    problems: list[str] = []
    for path, page in pages.items():
        where = path.relative_to(site).as_posix()
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:", "data:")):
                continue  # external: not this site's to check
            if not parts.path:
                target = path
            elif parts.path.startswith("/"):  # 404.html links from the site's root
                target = (site / unquote(parts.path).lstrip("/")).resolve()
            else:
                target = (path.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                problems.append(f"{where}: link {link!r}: no such file in the site")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: link {link!r}: no id {parts.fragment!r} on {target.name}")
    if provider:
        problems += coverage(site, set().union(*(page.ids for page in pages.values())))
    index = site / "search" / "search_index.json"
    if not index.is_file():
        problems.append(f"{index}: no search index")
    else:
        text = " ".join(
            doc.get("title", "") + " " + doc.get("text", "") for doc in json.loads(index.read_text())["docs"]
        )
        problems += [f"search index: {name!r} not found" for name in SEARCHED if name not in text]
    return problems


#: the fields every how-to section of a class has (bold lead-ins)
SECTION_FIELDS = ("What it does", "Arguments", "XCom", "Links", "Failure modes", "Example")
#: the fenced blocks that must be run by a test or marked as not run
CODE_LANGUAGES = ("", "python", "py", "sh", "shell", "bash", "console")
_HEADING = re.compile(r"^(#{1,6}) .*\{\s*#([A-Za-z_][\w-]*)\s*\}\s*$")
_INCLUDE = re.compile(r'--8<--\s+"(dags_examples/[\w/]+\.py)(?::[\w-]+)?"')
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)(.*)$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*\S.*-->$")
_RUN_BY = re.compile(r"^<!--\s*run by (tests/[\w/]+\.py)\s*-->$")


def howto_classes() -> list[str]:
    """The public operator, sensor and trigger classes of the provider, by name."""
    from airflow_provider_modelreg.get_provider_info import get_provider_info

    info = get_provider_info()
    names = []
    for kind in ("operators", "sensors", "triggers"):
        for entry in info.get(kind, []):
            for module in entry["python-modules"]:
                names += [n for n in _public_classes(module) if n.endswith(("Operator", "Sensor", "Trigger"))]
    return sorted(set(names))


def _sections(text: str) -> dict[str, str]:
    """The anchored sections of a page: ``{anchor: the text up to the next heading of its level or above}``."""
    lines = text.splitlines()
    found = {}
    for i, line in enumerate(lines):
        match = _HEADING.match(line)
        if not match:
            continue
        level, end = len(match.group(1)), len(lines)
        for j in range(i + 1, len(lines)):
            heading = re.match(r"^(#{1,6}) ", lines[j])
            if heading and len(heading.group(1)) <= level:
                end = j
                break
        found[match.group(2)] = "\n".join(lines[i:end])
    return found


def _fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line number of the opening fence, language, body)`` of every fenced block of a page."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.group(2), match.group(3).lower()
        start, body = i, []
        closing = re.compile(re.escape(fence[0]) + "{" + str(len(fence)) + ",}")
        i += 1
        while i < len(lines) and not closing.fullmatch(lines[i].strip()):
            body.append(lines[i])
            i += 1
        blocks.append((start + 1, language, "\n".join(body)))
        i += 1
    return blocks


def _sources(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The pages of ``root/docs`` by file name, and the test files of ``root/tests`` by path from ``root``."""
    pages = {p.name: p.read_text(encoding="utf-8") for p in sorted((root / "docs").glob("*.md"))}
    tests = {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in sorted((root / "tests").rglob("*.py"))
    }
    return pages, tests


def howto_problems(root: Path = ROOT) -> list[str]:
    """The public classes without a complete how-to section, and included examples no test names."""
    pages, test_texts = _sources(root)
    problems: list[str] = []
    sections: dict[str, tuple[str, str]] = {}
    for name, text in pages.items():
        if name.startswith("howto-"):
            sections.update({anchor: (name, body) for anchor, body in _sections(text).items()})
    for cls in howto_classes():
        if cls not in sections:
            problems.append(f"how-to: no section {{ #{cls} }} in docs/howto-*.md")
            continue
        page, body = sections[cls]
        problems += [f"{page}#{cls}: no **{f}**" for f in SECTION_FIELDS if f"**{f}**" not in body]
        if not _INCLUDE.search(body):
            problems.append(f"{page}#{cls}: no example included from dags_examples/")
    included = {path for text in pages.values() for path in _INCLUDE.findall(text)}
    for path in sorted(included):
        source = root / path
        if not source.is_file():
            problems.append(f"docs include {path}: no such file")
            continue
        names = re.findall(r"dag_id=\"(\w+)\"", source.read_text(encoding="utf-8"))
        module = "dags_examples." + Path(path).stem
        wanted = [f'"{n}"' for n in names] + [module]
        if not any(w in text for text in test_texts.values() for w in wanted):
            problems.append(f"docs include {path}: no test in tests/ names its DAG ids {names} or imports {module}")
    return problems


def code_block_problems(root: Path = ROOT) -> list[str]:
    """The fenced code blocks of ``root/docs`` neither run by a test nor marked as not run."""
    pages, test_texts = _sources(root)
    problems: list[str] = []
    for name, text in pages.items():
        lines = text.splitlines()
        for line_no, language, body in _fenced_blocks(text):
            if language not in CODE_LANGUAGES:
                continue
            if body.strip() and all(_INCLUDE.search(b) for b in body.strip().splitlines()):
                continue  # an included example file: checked above
            before = next((lines[k].strip() for k in range(line_no - 2, -1, -1) if lines[k].strip()), "")
            run_by = _RUN_BY.match(before)
            if _NOT_RUN.match(before):
                continue
            if run_by:
                test = run_by.group(1)
                if test not in test_texts:
                    problems.append(f"docs/{name}:{line_no}: run by {test}: no such test file")
                elif name not in test_texts[test]:
                    problems.append(f"docs/{name}:{line_no}: run by {test}, which does not name {name}")
                continue
            problems.append(
                f"docs/{name}:{line_no}: a ```{language or '(no language)'} block neither run by a test "
                "(<!-- run by tests/....py -->) nor marked <!-- not run: reason -->"
            )
    return problems


def source_problems(root: Path = ROOT) -> list[str]:
    """What the Markdown under ``root/docs`` misses (see the module's docstring)."""
    return howto_problems(root) + code_block_problems(root)


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "out/docs/site").resolve()
    problems = check(site) + source_problems()
    for problem in problems:
        print(problem)
    pages = len(list(site.rglob("*.html")))
    print(f"check_docs: {pages} pages, {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
