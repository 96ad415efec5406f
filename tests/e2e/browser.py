"""pytest's handle on one headless Chromium page, driven by playwright-core (ui/e2e/bridge.mjs).

The browser lives in a node process (playwright-core is an npm package); this class sends it one
JSON command per line and reads one JSON answer per line, so a test reads like a user's steps:

    page.goto(url); page.fill("#composer-input", "Hello"); page.press("#composer-input", "Enter")
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from pathlib import Path
from typing import Any

from scripts.local_run.process import REPO_ROOT, stop_pid

UI_DIR = REPO_ROOT / "ui"
BRIDGE = UI_DIR / "e2e" / "bridge.mjs"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"


def browser_unavailable() -> str | None:
    """Why the browser tier cannot run here (with the fix), or None."""
    if shutil.which("node") is None:
        return "node is not installed (Node 20+ is needed for the UI and its browser tests)"
    if not (UI_DIR / "node_modules" / "playwright-core").is_dir():
        return "ui/node_modules is missing: run `make deps-local` (npm ci in ui/)"
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing: apt-get install chromium (or set CHROMIUM_PATH)"
    return None


class BrowserError(AssertionError):
    """A browser step failed; the message says which step and why."""


class Page:
    def __init__(self, log_path: Path, timeout: float = 60.0) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            ["node", str(BRIDGE)],
            cwd=UI_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "CHROMIUM_PATH": CHROMIUM},
            start_new_session=True,
        )
        self._next_id = 0
        self._buffer = b""
        self.timeout = timeout
        hello = self._read(timeout=60.0)
        if not hello.get("ok"):
            raise BrowserError(f"the browser did not start: {hello}; see {log_path}")

    # ---- protocol

    def _read(self, timeout: float) -> dict[str, Any]:
        assert self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            ready, _, _ = select.select([fd], [], [], timeout)
            if not ready:
                raise BrowserError(f"no answer from the browser bridge in {timeout:.0f} s")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BrowserError(f"the browser bridge exited (status {self._proc.poll()}); see its log")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, op: str, wait_s: float | None = None, **args: Any) -> Any:
        """Run one bridge op; `wait_s` bounds how long pytest waits for its answer."""
        assert self._proc.stdin is not None
        self._next_id += 1
        self._proc.stdin.write(json.dumps({"id": self._next_id, "op": op, "args": args}).encode() + b"\n")
        self._proc.stdin.flush()
        answer = self._read(wait_s or self.timeout)
        if not answer.get("ok"):
            raise BrowserError(f"{op}({args}) failed in the browser: {answer.get('error')}")
        return answer.get("value")

    # ---- the steps tests use

    def goto(self, url: str) -> None:
        self.call("goto", url=url)

    def reload(self) -> None:
        self.call("reload")

    def click(self, selector: str) -> None:
        self.call("click", selector=selector, timeout=15000)

    def fill(self, selector: str, text: str) -> None:
        self.call("fill", selector=selector, text=text)

    def press(self, selector: str, key: str) -> None:
        self.call("press", selector=selector, key=key)

    def wait_for(self, selector: str, state: str = "visible", timeout: float = 30.0) -> None:
        self.call("waitFor", wait_s=timeout + 5, selector=selector, state=state, timeout=int(timeout * 1000))

    def wait_until(self, expression: str, timeout: float = 30.0) -> Any:
        """Wait until the JavaScript `expression` is truthy in the page; returns its value."""
        return self.call(
            "waitForFunction", wait_s=timeout + 5, expression=expression, timeout=int(timeout * 1000)
        )

    def text(self, selector: str) -> str:
        return str(self.call("text", selector=selector))

    def texts(self, selector: str) -> list[str]:
        return list(self.call("texts", selector=selector))

    def count(self, selector: str) -> int:
        return int(self.call("count", selector=selector))

    def attr(self, selector: str, name: str) -> str | None:
        return self.call("attr", selector=selector, name=name)

    def enabled(self, selector: str) -> bool:
        return bool(self.call("enabled", selector=selector))

    def focused(self, selector: str) -> bool:
        return bool(self.call("focused", selector=selector))

    def eval(self, expression: str) -> Any:
        return self.call("eval", expression=expression)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.call("screenshot", path=str(path))
        return path

    def viewport(self, width: int, height: int) -> None:
        self.call("viewport", width=width, height=height)

    def color_scheme(self, scheme: str) -> None:
        self.call("colorScheme", scheme=scheme)

    def route_json(self, glob: str, body: str) -> None:
        """Answer requests matching `glob` with `body` (JSON) from now on."""
        self.call("routeJson", glob=glob, body=body)

    def wheel(self, x: int, y: int, dy: int) -> None:
        self.call("wheel", x=x, y=y, dy=dy)

    def seen(self) -> dict[str, list[str]]:
        return dict(self.call("seen"))

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                self.call("close", wait_s=20)
        except (BrowserError, OSError):
            pass
        finally:
            if self._proc.poll() is None:
                stop_pid(self._proc.pid, grace=5)
            self._log.close()
