"""The built documentation site in a real browser (``make docs-check``, after ``make docs``).

Serves ``out/docs/site`` on a free loopback port and opens it in headless Chromium (the Debian ``chromium`` and
``chromium-driver``, driven by selenium as ``e2e.ui_check`` does, installed with apt-get when missing and running as
root). Checks, and saves screenshots under ``out/docs/screenshots/`` (the results folder, ignored by git):

* the front page renders with its title, the Airflow x feature table and the navigation (``front-page.png``);
* a how-to page shows its example DAG, included from ``dags_examples/``, as highlighted code (``howto.png``);
* the site's search (lunr, in the page's web worker) finds an operator by name (``search.png``).

    python -m ci.docs_browser out/docs/site
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from e2e.ui_check import _chromium

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "out" / "docs" / "screenshots"
HOWTO = "howto-pai-approval.html"
SEARCHED = "PaiEasDeployOperator"
WAIT_S = 30.0


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def _log(message: str) -> None:
    print(f"[docs-browser {time.strftime('%H:%M:%S')}] {message}", flush=True)


def check(site: Path) -> None:
    """Raises AssertionError naming what the browser did not show."""
    if not (site / "index.html").is_file():
        raise AssertionError(f"{site}/index.html is missing: run make docs first")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with _chromium() as driver:
            wait = WebDriverWait(driver, WAIT_S)
            driver.get(f"{base}/index.html")
            title = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "article h1")).text
            assert "airflow-provider-modelreg" in title, f"front page title: {title!r}"
            tables = driver.find_elements(By.CSS_SELECTOR, "article table")
            assert any("2.11" in t.text and "3.3" in t.text for t in tables), "front page: no Airflow x feature table"
            nav = driver.find_element(By.CSS_SELECTOR, ".md-nav--primary").get_attribute("textContent") or ""
            assert "Connections" in nav and "API reference" in nav, "front page: no navigation"
            driver.save_screenshot(str(SCREENSHOTS / "front-page.png"))
            _log("front page: title, feature table and navigation shown (front-page.png)")

            driver.get(f"{base}/{HOWTO}")
            code = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "article .highlight code"))
            shown = "\n".join(c.text for c in code)
            expected = (ROOT / "dags_examples" / "pai_deploy_next_approved.py").read_text(encoding="utf-8")
            assert 'dag_id="pai_deploy_next_approved"' in shown and 'dag_id="pai_deploy_next_approved"' in expected, (
                f"{HOWTO}: the example DAG is not shown"
            )
            included = next(c for c in code if 'dag_id="pai_deploy_next_approved"' in c.text)
            driver.execute_script("arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -80);", included)
            time.sleep(0.3)  # the theme moves its header on scroll
            driver.save_screenshot(str(SCREENSHOTS / "howto.png"))
            _log(f"{HOWTO}: the example DAG from dags_examples/ shown as code (howto.png)")

            driver.get(f"{base}/index.html?q={SEARCHED}")
            results = wait.until(
                lambda d: [r for r in d.find_elements(By.CSS_SELECTOR, ".md-search-result__item") if SEARCHED in r.text]
            )
            driver.save_screenshot(str(SCREENSHOTS / "search.png"))
            _log(f"search for {SEARCHED}: {len(results)} results naming it (search.png)")
    finally:
        server.shutdown()
        server.server_close()


def main(argv: list[str]) -> int:
    site = Path(argv[1] if len(argv) > 1 else ROOT / "out" / "docs" / "site").resolve()
    try:
        check(site)
    except AssertionError as err:
        print(f"docs-browser: FAILED: {err}", file=sys.stderr)
        return 1
    _log(f"OK; screenshots in {SCREENSHOTS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
