"""Every knob of the bootstrap, with a default; the CLI fills it from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .inventory import Inventory
from .retry import RetryPolicy

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Settings:
    tf_dir: Path = REPO_ROOT / "terraform"
    inventory_file: Path | None = None  # None: `terraform output -json inventory`
    ssh_key: Path = Path.home() / ".ssh" / "id_ed25519"
    # None: built from each instance's EC2 console output; a path: a known_hosts you verified.
    known_hosts: Path | None = None
    state_dir: Path = REPO_ROOT / "build" / "bootstrap"
    kubeconfig: Path = REPO_ROOT / "kubeconfig"
    node_env_file: Path | None = None  # KEY=VALUE overrides of node.env (local mirrors, tests)
    # In the SSH user's home (0700), not /tmp where another local user could plant it first.
    remote_dir: str = ".node-bootstrap"
    connect: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=8, base_delay=2))
    network_step: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(attempts=3, base_delay=5, max_delay=60)
    )
    connect_timeout: float = 10.0
    command_timeout: float = 1800.0
    keepalive_s: int = 15
    gate_timeout: float = 900.0
    gate_interval: float = 5.0
    console_timeout: float = 600.0
    reboot_wait: float = 20.0  # before reconnecting: sshd must have gone down first
    auto_approve: bool = False
    live: bool = True
    calico_version: str = "v3.29.3"
    calico_mtu: int = 8951
    pod_subnet: str = "192.168.0.0/16"
    service_subnet: str = "10.96.0.0/12"
    sandbox_image: str = "registry.k8s.io/pause:3.9"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def host_key_cache(self) -> Path:
        """Verified host keys per instance id: the console shows them only on an instance's first boot."""
        return self.state_dir / "host-keys.json"

    @property
    def verified_known_hosts(self) -> Path:
        return self.known_hosts or self.state_dir / "known_hosts"


def k8s_minor(version: str) -> str:
    """v1.29.15 -> v1.29 (the pkgs.k8s.io channel)."""
    major, minor = version.lstrip("v").split(".")[:2]
    return f"v{major}.{minor}"


def node_env(settings: Settings, inventory: Inventory) -> dict[str, str]:
    """The non-secret environment of the node scripts (node.env), overridable by a file."""
    version = inventory.kubernetes_version
    minor = k8s_minor(version)
    env = {
        "NB_K8S_VERSION": version,
        "NB_K8S_MINOR": minor,
        "NB_K8S_PKG_VERSION": f"{version.lstrip('v')}-1.1",
        "NB_K8S_APT_KEY_URL": f"https://pkgs.k8s.io/core:/stable:/{minor}/deb/Release.key",
        "NB_K8S_APT_SOURCE": (
            "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] "
            f"https://pkgs.k8s.io/core:/stable:/{minor}/deb/ /"
        ),
        "NB_CONTAINERD_PACKAGE": "containerd",
        # Ubuntu's driver branch: linux-modules-nvidia-<branch>-<kernel> (prebuilt, signed) or
        # nvidia-headless-<branch> (DKMS), with nvidia-utils-<branch>; 580 for CUDA 13 images.
        "NB_NVIDIA_DRIVER_BRANCH": "580-server",
        "NB_NVIDIA_TOOLKIT_VERSION": "1.17.8-1",
        "NB_NVIDIA_APT_KEY_URL": "https://nvidia.github.io/libnvidia-container/gpgkey",
        "NB_NVIDIA_APT_SOURCE": (
            "deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.gpg] "
            "https://nvidia.github.io/libnvidia-container/stable/deb/amd64 /"
        ),
        "NB_CALICO_VERSION": settings.calico_version,
        "NB_CALICO_OPERATOR_URL": (
            f"https://raw.githubusercontent.com/projectcalico/calico/{settings.calico_version}"
            "/manifests/tigera-operator.yaml"
        ),
        "NB_CALICO_MTU": str(settings.calico_mtu),
        "NB_MODEL_CACHE_DIR": "/mnt/model-cache",
        # The vllm-llama chart's hostPath (values/aws-t4.yaml), owned by the pod's uid/gid.
        "NB_VLLM_CACHE_DIR": "/mnt/model-cache/vllm",
        "NB_VLLM_CACHE_OWNER": "10001:10001",
    }
    if settings.node_env_file is not None:
        for lineno, line in enumerate(settings.node_env_file.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not sep or key not in env:
                raise ValueError(
                    f"{settings.node_env_file}:{lineno}: {line!r} is not KEY=VALUE with a known key "
                    f"({', '.join(sorted(env))})"
                )
            env[key] = value
    return env


def render_node_env(env: dict[str, str]) -> str:
    """Shell-sourceable, every value single-quoted."""
    lines = ["# Written by node-bootstrap; sourced by lib.sh. No secrets here."]
    for key, value in sorted(env.items()):
        quoted = value.replace("'", "'\"'\"'")
        lines.append(f"{key}='{quoted}'")
    return "\n".join(lines) + "\n"
