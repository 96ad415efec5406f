"""Fixtures of the browser tests: the built UI and a fresh headless Chromium page per test."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.browser import UI_DIR, Page, browser_unavailable
from tests.e2e.chat_page import LOGS


def _newest_source_mtime() -> float:
    paths = [UI_DIR / "index.html", UI_DIR / "vite.config.ts", UI_DIR / "package-lock.json"]
    for folder in ("src", "public"):
        paths += [p for p in (UI_DIR / folder).rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in paths if p.exists())


@pytest.fixture(scope="session")
def ui_dist() -> Path:
    """ui/dist built from the current sources (rebuilt here when older than them)."""
    reason = browser_unavailable()
    if reason:
        pytest.skip(reason)
    index = UI_DIR / "dist" / "index.html"
    if not index.exists() or index.stat().st_mtime < _newest_source_mtime():
        npm_build = ["npm", "run", "build"]
        build = subprocess.run(npm_build, cwd=UI_DIR, capture_output=True, text=True, timeout=300)
        assert build.returncode == 0, f"npm run build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return index.parent


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh Chromium profile (empty localStorage) for each test."""
    browser = Page(LOGS / f"browser-{request.node.name}.log")
    yield browser
    seen = browser.seen()
    browser.close()
    # Anything the page logged as an error (a CSP violation, an exception) fails the test that caused it.
    # ("Failed to load resource" is the browser noting a refused connection or a 503 the page expects.)
    errors = [e for e in seen["console"] if e.startswith("error") and "Failed to load resource" not in e]
    assert not seen["pageErrors"], f"uncaught errors in the page: {seen['pageErrors']}"
    assert not errors, f"console errors in the page: {errors}"
