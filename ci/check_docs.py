"""Checks the built documentation site (``make docs``): every internal link and anchor resolves.

``mkdocs build --strict`` checks the Markdown's relative links and anchors it can see; this reads the built HTML,
so it also covers what mkdocstrings, the snippets and the theme wrote: every ``href`` to a page of the site must
name a file that was built, and every ``#fragment`` (same page or another) an ``id`` on that page. It also checks
that the search index holds the public operators, sensors and triggers by name (so the site's search finds
them), and that the API reference covers the provider: every module ``get_provider_info()`` lists under operators,
sensors, triggers and hooks has its section, with every class its ``__all__`` names, and every connection type has
its page. Exit status 1 with one line per problem.

    python ci/check_docs.py out/docs/site
"""

from __future__ import annotations

import ast
import json
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


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else "out/docs/site").resolve()
    problems = check(site)
    for problem in problems:
        print(problem)
    pages = len(list(site.rglob("*.html")))
    print(f"check_docs: {pages} pages, {'OK' if not problems else f'{len(problems)} problems'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
