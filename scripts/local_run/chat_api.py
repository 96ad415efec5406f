"""chat-api (services/chat-api) run from the project venv on loopback, pointed at an upstream vLLM.

Settings are environment variables (`CHAT_API_*`, listed in docs/chat-api.md); `env`
adds or overrides them, which is how tests start instances with low limits or a dead upstream.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from scripts.local_run.process import REPO_ROOT, ManagedProcess, http_ok

PROJECT_PYTHON = REPO_ROOT / ".venv" / "bin" / "python"
READY_TIMEOUT_S = 60.0


def chat_api_env(port: int, upstream_url: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        "CHAT_API_HOST": "127.0.0.1",
        "CHAT_API_PORT": str(port),
        "CHAT_API_UPSTREAM_URL": upstream_url,
        **(env or {}),
    }


def start_chat_api(
    port: int,
    upstream_url: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    wait: bool = True,
    timeout: float = READY_TIMEOUT_S,
    cpus: frozenset[int] | None = None,
) -> ManagedProcess:
    """Start chat-api on 127.0.0.1:`port` and (by default) wait until `/healthz` answers 200.

    `/healthz` only says the process serves; `/readyz` says whether vLLM is ready behind it.
    """
    python = PROJECT_PYTHON if PROJECT_PYTHON.exists() else Path(sys.executable)
    # The conversation store (SQLite) lives next to the log, not in the working directory. Locally
    # nobody signs in, so it stays empty: the browser keeps the conversations (localStorage).
    database = {"CHAT_API_DATABASE_URL": f"sqlite+aiosqlite:///{log_path.with_suffix('.history.db')}"}
    proc = ManagedProcess(
        name=f"chat-api:{port}",
        argv=[str(python), "-m", "chat_api"],
        log_path=log_path,
        env=chat_api_env(port, upstream_url, {**database, **(env or {})}),
        cpus=cpus,
    ).start()
    if wait:
        proc.wait_ready(
            http_ok(f"http://127.0.0.1:{port}/healthz"), timeout=timeout, interval=0.2, stop_on_failure=True
        )
    return proc
