"""Every knob of the bootstrap, with a default; the CLI fills it from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import PreflightError
from .inventory import Inventory
from .node_contract import load as load_node_contract
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
    console_interval: float = 15.0  # between reads of an instance's console output
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
    """v1.29.15 -> v1.29."""
    major, minor = version.lstrip("v").split(".")[:2]
    return f"v{major}.{minor}"


# SHA-256 of the linux/amd64 release binaries, as published beside them
# (https://dl.k8s.io/release/<version>/bin/linux/amd64/<name>.sha256); the nodes refuse anything
# else. Taken from a release-tracking pin list (edgelesssys/constellation's versions.go, generated
# from those downloads); check against the .sha256 files when adding a version.
KUBERNETES_SHA256: dict[str, dict[str, str]] = {
    "v1.29.15": {
        "kubeadm": "d0744fbaa1e67fc65c4a3409f083e01a4ede58181c759b2feeb08b1ef10d6201",
        "kubelet": "cd0228a5820f98bbb6371344e5d6645f6486d767c30f927a1d0ec8d17eca4da5",
        "kubectl": "3473e14c7b024a6e5403c6401b273b3faff8e5b1fed022d633815eb3168e4516",
    },
}
# crictl (kubeadm's preflight needs it; CRI v1, works with every supported kubelet) and the
# reference CNI plugins (what the kubernetes-cni package installed): the same two sources agree
# on crictl's hash (kubespray's checksums.yml too).
CRICTL_VERSION = "v1.33.0"
CRICTL_SHA256 = "8307399e714626e69d1213a4cd18c8dec3d0201ecdac009b1802115df8973f0f"
CNI_PLUGINS_VERSION = "v1.7.1"
CNI_PLUGINS_SHA256 = "1a28a0506bfe5bcdc981caf1a49eeab7e72da8321f1119b7be85f22621013098"


# ecr-credential-provider (kubernetes/cloud-provider-aws cmd/ecr-credential-provider): the kubelet
# runs it to get ECR pull tokens from the node's instance profile, so the nodes pull the images
# `make images` pushed to the ECR repositories of terraform/ecr.tf without any registry password.
# One release per Kubernetes minor (cloud-provider-aws releases follow the minors); SHA-256 of the
# linux/amd64 binary as promoted to artifacts.k8s.io, from the promoter's manifest
# (kubernetes/k8s.io artifacts/manifests/k8s-staging-provider-aws/<version>.yaml; the same value is
# published beside the binary as <url>.sha256).
ECR_CREDENTIAL_PROVIDER: dict[str, tuple[str, str]] = {
    "v1.29": ("v1.29.6", "f15b5e45459917b31f89033981b1b9fbdbcdf1d8b853175a0394b8e2e03aa7c7"),
}


def ecr_credential_provider(k8s_version: str) -> tuple[str, str]:
    """(release, sha256) of the ecr-credential-provider for this Kubernetes version's minor."""
    minor = k8s_minor(k8s_version)
    try:
        return ECR_CREDENTIAL_PROVIDER[minor]
    except KeyError:
        raise PreflightError(
            f"no pinned ecr-credential-provider for Kubernetes {minor} (pinned: "
            f"{', '.join(sorted(ECR_CREDENTIAL_PROVIDER))}). Fix: add the newest {minor}.x release of "
            "kubernetes/cloud-provider-aws with the SHA-256 of "
            "https://artifacts.k8s.io/binaries/cloud-provider-aws/<release>/linux/amd64/"
            "ecr-credential-provider-linux-amd64 to ECR_CREDENTIAL_PROVIDER in "
            "node-bootstrap/node_bootstrap/settings.py."
        ) from None


# Where install-ecr-credential-provider.sh puts the provider and its config (node.env); the
# kubelet flags --image-credential-provider-bin-dir and --image-credential-provider-config name them.
CREDENTIAL_PROVIDER_BIN_DIR = "/usr/local/libexec/kubelet-credential-providers"
CREDENTIAL_PROVIDER_CONFIG = "/etc/kubelet-credential-providers/config.yaml"


def ecr_credential_provider_url(release: str) -> str:
    return (
        f"https://artifacts.k8s.io/binaries/cloud-provider-aws/{release}/linux/amd64/"
        "ecr-credential-provider-linux-amd64"
    )


def kubernetes_sha256(version: str) -> dict[str, str]:
    try:
        return KUBERNETES_SHA256[version]
    except KeyError:
        raise PreflightError(
            f"no pinned SHA-256 for Kubernetes {version} (pinned: {', '.join(sorted(KUBERNETES_SHA256))}). "
            "Fix: add kubeadm, kubelet and kubectl from "
            f"https://dl.k8s.io/release/{version}/bin/linux/amd64/<name>.sha256 to KUBERNETES_SHA256 in "
            "node-bootstrap/node_bootstrap/settings.py, or set kubernetes_version to a pinned one."
        ) from None


def node_env(settings: Settings, inventory: Inventory) -> dict[str, str]:
    """The non-secret environment of the node scripts (node.env), overridable by a file."""
    version = inventory.kubernetes_version
    minor = k8s_minor(version)
    k8s_pins = kubernetes_sha256(version)  # the binaries' pins first: their error names the version
    contract = load_node_contract()
    ecr_release, ecr_sha256 = ecr_credential_provider(version)
    env = {
        "NODE_BOOTSTRAP_K8S_VERSION": version,
        "NODE_BOOTSTRAP_K8S_MINOR": minor,
        "NODE_BOOTSTRAP_K8S_RELEASE_URL": f"https://dl.k8s.io/release/{version}/bin/linux/amd64",
        **{f"NODE_BOOTSTRAP_K8S_SHA256_{name.upper()}": sha for name, sha in k8s_pins.items()},
        "NODE_BOOTSTRAP_CRICTL_URL": (
            f"https://github.com/kubernetes-sigs/cri-tools/releases/download/{CRICTL_VERSION}/"
            f"crictl-{CRICTL_VERSION}-linux-amd64.tar.gz"
        ),
        "NODE_BOOTSTRAP_CRICTL_SHA256": CRICTL_SHA256,
        "NODE_BOOTSTRAP_CNI_URL": (
            f"https://github.com/containernetworking/plugins/releases/download/{CNI_PLUGINS_VERSION}/"
            f"cni-plugins-linux-amd64-{CNI_PLUGINS_VERSION}.tgz"
        ),
        "NODE_BOOTSTRAP_CNI_SHA256": CNI_PLUGINS_SHA256,
        "NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_VERSION": ecr_release,
        "NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_URL": ecr_credential_provider_url(ecr_release),
        "NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_SHA256": ecr_sha256,
        "NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR": CREDENTIAL_PROVIDER_BIN_DIR,
        "NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG": CREDENTIAL_PROVIDER_CONFIG,
        "NODE_BOOTSTRAP_CONTAINERD_PACKAGE": "containerd",
        # Ubuntu's driver branch: linux-modules-nvidia-<branch>-<kernel> (prebuilt, signed) or
        # nvidia-headless-<branch> (DKMS), with nvidia-utils-<branch>; 580 for CUDA 13 images.
        "NODE_BOOTSTRAP_NVIDIA_DRIVER_BRANCH": "580-server",
        "NODE_BOOTSTRAP_NVIDIA_TOOLKIT_VERSION": "1.17.8-1",
        "NODE_BOOTSTRAP_NVIDIA_APT_KEY_URL": "https://nvidia.github.io/libnvidia-container/gpgkey",
        "NODE_BOOTSTRAP_NVIDIA_APT_SOURCE": (
            "deb [signed-by=/etc/apt/keyrings/nvidia-container-toolkit.gpg] "
            "https://nvidia.github.io/libnvidia-container/stable/deb/amd64 /"
        ),
        "NODE_BOOTSTRAP_CALICO_VERSION": settings.calico_version,
        "NODE_BOOTSTRAP_CALICO_OPERATOR_URL": (
            f"https://raw.githubusercontent.com/projectcalico/calico/{settings.calico_version}"
            "/manifests/tigera-operator.yaml"
        ),
        "NODE_BOOTSTRAP_CALICO_MTU": str(settings.calico_mtu),
        # The chart's node contract (global.node in charts/platform/values.yaml, node_contract.py).
        "NODE_BOOTSTRAP_MODEL_CACHE_DIR": contract.model_cache_mount,
        "NODE_BOOTSTRAP_VLLM_CACHE_DIR": contract.model_cache_path,
        "NODE_BOOTSTRAP_VLLM_CACHE_OWNER": contract.owner,
        "NODE_BOOTSTRAP_GPU_LABEL": contract.gpu_label,
        "NODE_BOOTSTRAP_GPU_TAINT": contract.gpu_taint,
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
