"""Fixtures of the browser tests: the built UI and a fresh headless Chromium page per test."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.local_run import chat_api as chat_api_proc
from scripts.local_run import ui_nginx
from scripts.local_run.process import ManagedProcess, free_port
from tests.e2e.browser import UI_DIR, Page, browser_unavailable
from tests.e2e.chat_page import LOGS
from tests.e2e.signin_stack import signin_stack_factory  # noqa: F401 - a fixture for the tests that sign in
from tests.fixtures.stack import ChatApiServer


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


@dataclass
class UiStack:
    """The UI's nginx (the chart's configuration, as `make up` runs it) and the chat-api it proxies
    the API to: one origin, no CORS."""

    ui_url: str
    api: ChatApiServer

    def stop_api(self) -> None:
        self.api.process.stop()

    def restart_api(self) -> None:
        """The same chat-api again, on the same port (nginx proxies to it as before)."""
        log = LOGS / f"chat-api-restarted-{self.api.port}.log"
        proc = chat_api_proc.start_chat_api(self.api.port, self.api.upstream_url, log, env=self.api.env)
        self.api = ChatApiServer(
            base_url=self.api.base_url, process=proc, upstream_url=self.api.upstream_url, env=self.api.env
        )


@pytest.fixture
def ui_stack_factory(
    ui_dist: Path, chat_api_factory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., UiStack]]:
    """For an upstream URL: an extra chat-api (shared fixture factory) and the UI's nginx
    (scripts/local_run/ui_nginx.py) in front of it, the page's API on its own origin."""
    servers: list[ManagedProcess] = []
    stacks: list[UiStack] = []

    def make(upstream_url: str, env: dict[str, str] | None = None) -> UiStack:
        ui_port = free_port()
        api = chat_api_factory(env=env or {}, upstream_url=upstream_url)
        run = tmp_path_factory.mktemp("ui-nginx")
        log = LOGS / f"ui-nginx-{ui_port}.log"
        servers.append(ui_nginx.start_ui_nginx(run, ui_dist, ui_port, api.base_url, log))
        stacks.append(UiStack(f"http://127.0.0.1:{ui_port}", api))
        return stacks[-1]

    yield make
    for stack in stacks:
        stack.api.process.stop()  # a restarted chat-api is not the factory's to stop
    for proc in servers:
        proc.stop()
