"""Processes of the local stack: started with a log file, recorded by PID, stopped by PID.

Shared by `make up` (scripts.local_run) and the test fixtures (tests/fixtures), so the tests
start vLLM, chat-api, the UI server and Prometheus exactly the way a user's `make up` does.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


class StartupError(RuntimeError):
    """A process exited or did not become ready in time; the message names it and its log."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on `host`, from below the kernel's ephemeral range.

    A port the kernel hands out for outgoing connections (bind to 0 gives one of those) can be
    taken by any client's connection between this check and the server's bind; ports below the
    range are only ever taken by a bind."""
    low, _ = _ephemeral_range()
    candidates = list(range(max(1024, low - 12000), low))
    random.shuffle(candidates)
    for port in candidates[:200]:
        if port_is_free(port, host):
            return port
    raise OSError(f"no free port on {host} in {max(1024, low - 12000)}-{low - 1}")


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"


@dataclass
class ManagedProcess:
    """One child process in its own process group, its log on disk."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path = REPO_ROOT
    # CPUs the process (and everything it forks) may run on; None: all (Linux only).
    cpus: frozenset[int] | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was not started"
        return self.popen.pid

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        # Its own session: stopping the group also stops whatever the process forked
        # (vLLM's engine core, uvicorn workers), and a Ctrl-C in the terminal does not reach it.
        self.popen = subprocess.Popen(
            list(self.argv),
            cwd=self.cwd,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=(lambda cpus=self.cpus: os.sched_setaffinity(0, cpus)) if self.cpus else None,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_ready(
        self,
        probe: Callable[[], bool],
        timeout: float,
        on_wait: Callable[[float], None] | None = None,
        interval: float = 0.5,
        stop_on_failure: bool = False,
    ) -> None:
        """Poll `probe` until it is true; fail fast if the process dies, with its log's tail.

        With `stop_on_failure`, a process that is not ready in time (or an interrupted wait) is
        stopped before the error propagates, so a failed start leaves nothing running.
        """
        if stop_on_failure:
            try:
                self.wait_ready(probe, timeout, on_wait, interval)
            except BaseException:
                self.stop()
                raise
            return
        started = time.monotonic()
        while True:
            if not self.alive():
                code = self.popen.returncode if self.popen else None
                raise StartupError(
                    f"{self.name} exited with status {code} before it was ready; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            if probe():
                return
            waited = time.monotonic() - started
            if waited > timeout:
                raise StartupError(
                    f"{self.name} was not ready after {timeout:.0f} s; "
                    f"last lines of {self.log_path}:\n{tail(self.log_path)}"
                )
            if on_wait is not None:
                on_wait(waited)
            time.sleep(interval)

    def stop(self, grace: float = 15.0) -> None:
        if self.popen is None:
            return
        stop_pid(self.popen.pid, grace)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=1)


def http_ok(url: str, timeout: float = 2.0) -> Callable[[], bool]:
    """A readiness probe: true once `url` answers 200."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_identity(pid: int) -> str | None:
    """When `pid` started (kernel clock ticks since boot), or None when it does not run.

    A recorded PID plus this tells our process from a later one that reuses the PID. Unlike the
    command line, it is fixed from fork on: /proc/PID/cmdline can still be empty while the child
    is inside exec, right after Popen returns. A zombie (exited, not yet reaped: where PID 1 of a
    container does not reap orphans) does not run.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if sys.platform != "darwin" or not pid_alive(pid):
            return None
        out = subprocess.run(["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True)
        return out.stdout.strip() or None
    # Fields 3 (state) and 22; the command name (field 2) may contain spaces: count from its ")".
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in {"Z", "X"} else fields[19]


def stop_pid(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group led by `pid`, then SIGKILL it after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid) and not _group_alive(pid):
                return
            time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
