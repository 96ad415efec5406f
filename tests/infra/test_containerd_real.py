"""The node's containerd configuration loaded by the real containerd (Debian's package).

containerd 1.x replaces a whole plugin section from an imported file instead of merging keys
(services/server/config/config.go mergeConfig; containerd#5837, #7982), so what the CRI plugin
runs with can only be known by asking it. These tests start the test machine's containerd on
a private socket with the node's /etc/containerd and ask CRI `Status` (verbose), as `crictl info` does.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from node_bootstrap.inventory import Node
from node_bootstrap.render import containerd_config
from node_bootstrap.settings import Settings

from .conftest import unavailable
from .real_containerd import containerd_missing, cri_plugin_status, loaded_by_containerd

pytestmark = pytest.mark.integration

GPU = Node("llama-gpu-1", "gpu-worker", "203.0.113.12", "10.10.2.12")
CPU = Node("llama-worker-1", "worker", "203.0.113.11", "10.10.1.11")


@pytest.fixture(autouse=True)
def _containerd() -> None:
    reason = containerd_missing()
    if reason is not None:
        unavailable(reason)


def nvidia_ctk_1_17_8(config: Path) -> None:
    """Run the faithful double of `nvidia-ctk runtime configure` (node_doubles/double.py)."""
    double = Path(__file__).parent / "node_doubles" / "double.py"
    subprocess.run(
        [
            "python3",
            str(double),
            "nvidia-ctk",
            "runtime",
            "configure",
            "--runtime=containerd",
            f"--config={config}",
        ],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin"},
        cwd=config.parent,
    )


def runtimes(loaded: dict) -> dict[str, dict]:
    return loaded["config"]["containerd"]["runtimes"]


def test_the_gpu_nodes_config_loads_runc_and_nvidia_with_systemd_cgroups(tmp_path: Path) -> None:
    etc = tmp_path / "etc-containerd"
    etc.mkdir()
    (etc / "config.toml").write_text(containerd_config(Settings(), GPU))
    loaded = loaded_by_containerd(etc, tmp_path / "run")
    assert cri_plugin_status(loaded["plugins"]) == "ok", loaded
    config = loaded["config"]
    assert config["sandboxImage"] == "registry.k8s.io/pause:3.9"
    assert config["containerd"]["defaultRuntimeName"] == "runc"
    assert set(runtimes(loaded)) == {"runc", "nvidia"}
    for name, runtime in runtimes(loaded).items():
        assert runtime["runtimeType"] == "io.containerd.runc.v2", name
        assert runtime["options"]["SystemdCgroup"] is True, name
    assert runtimes(loaded)["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert "BinaryName" not in runtimes(loaded)["runc"]["options"]


def test_a_cpu_nodes_config_loads_runc_only(tmp_path: Path) -> None:
    etc = tmp_path / "etc-containerd"
    etc.mkdir()
    (etc / "config.toml").write_text(containerd_config(Settings(), CPU))
    loaded = loaded_by_containerd(etc, tmp_path / "run")
    assert set(runtimes(loaded)) == {"runc"}
    assert runtimes(loaded)["runc"]["options"]["SystemdCgroup"] is True


def test_nvidia_ctk_writing_into_the_main_config_keeps_what_the_cri_plugin_needs(tmp_path: Path) -> None:
    """Why the rendered nvidia runtime copies runc's options: nvidia-ctk does the same when it
    edits the file that holds runc, and the real containerd then loads the same runtimes."""
    etc = tmp_path / "etc-containerd"
    etc.mkdir()
    (etc / "config.toml").write_text(containerd_config(Settings(), CPU))
    nvidia_ctk_1_17_8(etc / "config.toml")
    loaded = loaded_by_containerd(etc, tmp_path / "run")
    assert set(runtimes(loaded)) == {"runc", "nvidia"}
    assert all(r["options"]["SystemdCgroup"] is True for r in runtimes(loaded).values())


def test_a_drop_in_from_nvidia_ctk_replaces_the_whole_cri_section(tmp_path: Path) -> None:
    """The layout node-bootstrap used before (imports + `nvidia-ctk --config=conf.d/99-nvidia.toml`):
    the real containerd 1.x loses runc, SystemdCgroup and the sandbox image, and its CRI plugin
    refuses to load. Kept as the evidence for the one-file config."""
    etc = tmp_path / "etc-containerd"
    (etc / "conf.d").mkdir(parents=True)
    main = (
        'version = 2\nimports = ["/etc/containerd/conf.d/*.toml"]\n'
        + containerd_config(Settings(), CPU).split("version = 2\n", 1)[1]
    )
    (etc / "config.toml").write_text(main)
    (etc / "conf.d" / "99-nvidia.toml").touch()
    nvidia_ctk_1_17_8(etc / "conf.d" / "99-nvidia.toml")
    drop_in = (etc / "conf.d" / "99-nvidia.toml").read_text()
    assert "runtimes.runc" not in drop_in and "SystemdCgroup" not in drop_in  # what 1.17.8 writes
    loaded = loaded_by_containerd(etc, tmp_path / "run")
    assert cri_plugin_status(loaded["plugins"]) == "error"
    assert "unknown service runtime.v1.RuntimeService" in loaded["error"]
