"""The test machine's real containerd (Debian's package), started on a private socket and asked
through CRI what its CRI plugin loaded: the same question `crictl info` asks on a node.

containerd runs in a private mount namespace in which DIR is bind-mounted over /etc/containerd,
so a config with `imports = ["/etc/containerd/conf.d/*.toml"]` is read exactly as on a node,
while root, state and socket live in a temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from .node_doubles.double import cri_status

CONTAINERD = "/usr/bin/containerd"


def containerd_missing() -> str | None:
    if not Path(CONTAINERD).is_file() or shutil.which("ctr") is None:
        return "Debian's containerd is not installed (apt-get install containerd)"
    if shutil.which("curl") is None:
        return "curl is not installed (the CRI client speaks gRPC through curl's HTTP/2)"
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    import os

    if os.geteuid() != 0:
        return "needs root (a private mount namespace over /etc/containerd)"
    return None


def loaded_by_containerd(etc_containerd: Path, workdir: Path) -> dict:
    """Start containerd with ETC_CONTAINERD as /etc/containerd; return crictl-info-shaped JSON
    ({"status", "config", ...}) plus "plugins" (`ctr plugins ls` lines) and "log"."""
    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "containerd.sock"
    log = workdir / "containerd.log"
    script = (
        f"mount --bind {etc_containerd} /etc/containerd && exec {CONTAINERD} "
        f"--config /etc/containerd/config.toml --address {sock} "
        f"--root {workdir / 'root'} --state {workdir / 'state'}"
    )
    # /etc/containerd must exist as a mount point; Debian's package creates it.
    Path("/etc/containerd").mkdir(exist_ok=True)
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"containerd did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        plugins = subprocess.run(
            ["ctr", "--address", str(sock), "plugins", "ls"], capture_output=True, text=True, check=True
        ).stdout
        # The socket appears before every gRPC service is served: right after the start an
        # answer can be a reset stream (curl exit 92, no gRPC status). Ask again then, briefly.
        for _ in range(20):
            try:
                result = cri_status(str(sock))
            except RuntimeError as error:
                result = {"error": str(error)}
                if str(error).startswith("connect: connection error"):
                    time.sleep(0.25)
                    continue
            break
        result["plugins"] = plugins
        return result
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        result_log = log.read_text() if log.exists() else ""
        _ = result_log


def cri_plugin_status(plugins: str) -> str:
    for line in plugins.splitlines():
        parts = line.split()
        if parts[:2] == ["io.containerd.grpc.v1", "cri"]:
            return parts[-1]
    return "absent"
