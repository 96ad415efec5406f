"""`make up` / `make down` from a clean copy of the repository, the way a newcomer meets the project.

The copy has the repository's files (tracked and not ignored) and nothing installed: the first
`make up` installs the venvs, the npm packages and the UI build itself, so this test also times
the cold start. It takes several minutes; it is the README's first command, so it is worth it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.local_run.process import REPO_ROOT, free_port, pid_alive, port_is_free

pytestmark = pytest.mark.e2e

COLD_UP_TIMEOUT_S = 1500


def clean_copy(dest: Path) -> Path:
    """The files `git clone` of this working tree would give, uncommitted edits included."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = REPO_ROOT / rel
        if src.is_file():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dest


def part_pids(status_out: str) -> dict[str, int]:
    """{part name: pid} from `make status` ("  UI          running  pid 1234 ...")."""
    return {
        line.split()[0]: int(line.split(" pid ")[1].split()[0])
        for line in status_out.splitlines()
        if " pid " in line
    }


def httpx_answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket in LISTEN on `port` (the kernel's /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: TCP_LISTEN
                raw = bytes.fromhex(address)
                # The kernel prints each 32-bit word in host (little-endian) order.
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def make(repo: Path, target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", target], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    names = ("LOCAL_RUN_VLLM_PORT", "LOCAL_RUN_API_PORT", "LOCAL_RUN_UI_PORT", "LOCAL_RUN_PROM_PORT")
    ports = {name: free_port() for name in names}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTEST"))}
    return {**env, **{k: str(v) for k, v in ports.items()}, "LLAMA_MODEL": "tiny"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, stack_env: dict[str, str]) -> Iterator[Path]:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: `make up` builds the UI with it")
    copy = clean_copy(tmp_path_factory.mktemp("fresh-clone"))
    yield copy
    # Whatever happened above, leave no process behind.
    make(copy, "down", stack_env, timeout=120)


@pytest.mark.timeout(COLD_UP_TIMEOUT_S + 900)
def test_make_up_starts_everything_and_make_down_stops_exactly_it(
    repo: Path, stack_env: dict[str, str]
) -> None:
    started = time.monotonic()
    cold = make(repo, "up", stack_env, timeout=COLD_UP_TIMEOUT_S)
    cold_s = time.monotonic() - started
    assert cold.returncode == 0, f"make up failed:\n{cold.stdout[-4000:]}\n{cold.stderr[-4000:]}"
    print(f"\ncold `make up` (installs included): {cold_s:.0f} s")

    ui_url = f"http://127.0.0.1:{stack_env['LOCAL_RUN_UI_PORT']}"
    api_url = f"http://127.0.0.1:{stack_env['LOCAL_RUN_API_PORT']}"
    vllm_url = f"http://127.0.0.1:{stack_env['LOCAL_RUN_VLLM_PORT']}"
    assert f"Open the chat:      {ui_url}" in cold.stdout
    assert "Sign-in:            off: open to whoever reaches 127.0.0.1" in cold.stdout
    assert "make down" in cold.stdout
    assert "replies are random" in cold.stdout  # the tiny model says what it is
    # It says it is for this machine only, and it is: nothing listens beyond loopback.
    assert "Only this machine can reach it: every part listens on 127.0.0.1" in cold.stdout
    for name in ("LOCAL_RUN_VLLM_PORT", "LOCAL_RUN_API_PORT", "LOCAL_RUN_UI_PORT"):
        assert listening_addresses(int(stack_env[name])) == {"127.0.0.1"}, name

    page = httpx.get(ui_url, timeout=10)
    assert page.status_code == 200 and '<div id="root"' in page.text
    # The cluster's topology: nginx with the chart's config serves the page and proxies the API on
    # the same origin (no CORS).
    assert page.headers["server"] == "nginx"
    assert httpx.get(f"{ui_url}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"{ui_url}/config.json", timeout=10).json()["apiBaseUrl"] == ""
    assert httpx.get(f"{vllm_url}/health", timeout=10).status_code == 200
    assert httpx.get(f"{api_url}/readyz", timeout=10).json()["status"] == "ready"
    reply = httpx.post(
        f"{api_url}/v1/chat/completions",
        json={"model": "tiny-llama", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] is not None

    status = make(repo, "status", stack_env, timeout=60)
    assert status.returncode == 0, status.stdout + status.stderr
    pids = part_pids(status.stdout)
    expected_parts = 4 if shutil.which("prometheus") else 3
    assert len(pids) == expected_parts, status.stdout

    started = time.monotonic()
    warm = make(repo, "up", stack_env, timeout=300)
    warm_s = time.monotonic() - started
    assert warm.returncode == 0, warm.stdout + warm.stderr
    assert "already running" in warm.stdout
    print(f"second `make up` while running: {warm_s:.1f} s")

    # A part that crashed is started again by the next `make up`; the others keep running.
    crashed = pids["UI"]
    os.kill(crashed, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while httpx_answers(ui_url) and time.monotonic() < deadline:
        time.sleep(0.1)
    restarted = make(repo, "up", stack_env, timeout=300)
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert f"UI (pid {crashed}) has stopped" in restarted.stdout, restarted.stdout
    assert httpx.get(ui_url, timeout=10).status_code == 200
    after = part_pids(make(repo, "status", stack_env, timeout=60).stdout)
    assert after["UI"] != crashed
    assert {n: p for n, p in after.items() if n != "UI"} == {n: p for n, p in pids.items() if n != "UI"}
    pids = after

    down = make(repo, "down", stack_env, timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [pid for pid in pids.values() if pid_alive(pid)], "make down left processes of the stack"
    for var in ("LOCAL_RUN_VLLM_PORT", "LOCAL_RUN_API_PORT", "LOCAL_RUN_UI_PORT"):
        assert port_is_free(int(stack_env[var])), f"{var} still taken after make down"

    started = time.monotonic()
    again = make(repo, "up", stack_env, timeout=600)
    warm_restart_s = time.monotonic() - started
    assert again.returncode == 0, again.stdout + again.stderr
    print(f"warm `make up` (installed, stopped stack): {warm_restart_s:.0f} s")
    assert make(repo, "down", stack_env, timeout=120).returncode == 0


def test_make_up_names_a_busy_port(repo: Path, stack_env: dict[str, str]) -> None:
    import socket

    make(repo, "down", stack_env, timeout=120)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        env = {**stack_env, "LOCAL_RUN_UI_PORT": str(busy)}
        result = make(repo, "up", env, timeout=600)
    assert result.returncode != 0
    assert f"LOCAL_RUN_UI_PORT={busy}" in result.stderr
    assert not (repo / ".run" / "stack.json").exists(), "nothing may be started when a port is busy"
