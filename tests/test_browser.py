"""The reports in a real browser: headless Chromium (the system's, e.g. Debian's `chromium` package, driven by
Playwright with `executable_path`; nothing is downloaded) opens every page from disk and checks that it loads
without a console error or a script error, that no request leaves file:// (data: URIs stay in the page),
that every plot is drawn with a size, that hostile captions are shown as text and run nothing, and saves a
full-page screenshot of each page.

Screenshots go to $MJBENCH_ARTIFACTS/browser when that is set, else to pytest's tmp folder; the test prints
the folder. Outside CI (`CI` unset) the test is skipped, saying why, where Chromium or Playwright is missing;
in CI it fails instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from test_report_html import EVIL, EVIL_ATTR, hostile_records, image_lookup, write

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str | None:
    explicit = os.environ.get("MJBENCH_CHROMIUM")
    if explicit:
        return explicit
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


def _require_browser() -> str:
    """The Chromium executable, or a skip (outside CI) / failure (in CI) that says what is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright (pip install playwright; no browser download needed)")
    exe = _chromium()
    if exe is None:
        missing.append(f"a Chromium executable ({', '.join(CHROMIUM_NAMES)} on PATH, or MJBENCH_CHROMIUM; "
                       "Debian: apt-get install chromium)")
    if missing:
        message = "BROWSER TEST NOT RUN: missing " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message + " (CI is set: the browser test must run)")
        pytest.skip(message)
    assert exe is not None
    return exe


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    root = os.environ.get("MJBENCH_ARTIFACTS")
    folder = Path(root) / "browser" if root else tmp_path_factory.mktemp("browser")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser test artefacts (pages and screenshots): {folder}")
    return folder


def test_pages_in_headless_chromium(artifacts):
    exe = _require_browser()
    from playwright.sync_api import sync_playwright

    run = artifacts / "run"
    if run.exists():
        shutil.rmtree(run)
    write(run, hostile_records(), images=image_lookup)
    pages = sorted((run / "reports").glob("*.html"))
    assert {p.name for p in pages} == {"index.html", "alignment.html", "safety.html", "bias.html"}

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            for path in pages:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                problems: list[str] = []
                external: list[str] = []

                def route(r, external=external):
                    if r.request.url.startswith(("file://", "data:")):
                        r.continue_()
                    else:
                        external.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.on("console", lambda m, p=problems: p.append(f"console {m.type}: {m.text}")
                        if m.type in ("error", "warning") else None)
                page.on("pageerror", lambda e, p=problems: p.append(f"page error: {e}"))
                page.on("dialog", lambda d, p=problems: (p.append(f"dialog: {d.message}"), d.dismiss()))
                page.goto(path.as_uri(), wait_until="load")
                page.screenshot(path=str(artifacts / f"{path.stem}.png"), full_page=True)

                assert problems == [], (path.name, problems)
                assert external == [], (path.name, external)
                assert page.evaluate("document.querySelectorAll('script, img, iframe').length") == 0, path.name
                plots = page.locator("figure.plot svg")
                assert plots.count() == page.locator("figure.plot").count() > 0, path.name
                for i in range(plots.count()):
                    svg = plots.nth(i)
                    box = svg.bounding_box()
                    assert box is not None and box["width"] > 200 and box["height"] > 80, (path.name, i, box)
                    assert svg.locator("path").count() > 5, (path.name, i)
                if path.name == "alignment.html":
                    prompt = page.locator(".card .prompt").filter(has_text=EVIL)
                    assert prompt.count() == 1
                    assert prompt.inner_text() == f"{EVIL} {EVIL_ATTR} 0"  # the caption, as text
                    thumbs = page.locator(".card .thumb")
                    assert thumbs.count() > 0
                    background = thumbs.first.evaluate("e => getComputedStyle(e).backgroundImage")
                    assert background.startswith('url("data:image/jpeg;base64,'), background
                    assert page.locator(".card .na").count() >= 1  # the unreadable image
                if path.name == "safety.html":
                    details = page.locator(".card details").first
                    assert not details.evaluate("e => e.open")  # raw output collapsed
                    details.locator("summary").click()
                    assert EVIL in details.locator("pre").first.inner_text()
                page.close()
        finally:
            browser.close()
    for path in pages:
        shot = artifacts / f"{path.stem}.png"
        assert shot.is_file() and shot.stat().st_size > 10_000, shot
