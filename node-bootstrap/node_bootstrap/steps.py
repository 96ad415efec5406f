"""The node steps: which script runs where, and which ones touch the network (and may retry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import SCRIPTS_DIR
from .inventory import Node


@dataclass(frozen=True)
class Step:
    script: str  # scripts/<script>.sh
    roles: tuple[str, ...]
    network: bool = False  # downloads: retried with backoff; everything else fails at once

    @property
    def path(self) -> Path:
        return SCRIPTS_DIR / f"{self.script}.sh"

    def applies_to(self, node: Node) -> bool:
        return node.role in self.roles


ALL = ("control-plane", "worker", "gpu-worker")
WORKERS = ("worker", "gpu-worker")  # where the platform's pods run and pull its images
GPU = ("gpu-worker",)

# Every node, in order, then the GPU node's extras. The order follows Kubernetes' "Installing kubeadm"
# (https://kubernetes.io/docs/setup/production-environment/tools/kubeadm/install-kubeadm/: swap off,
# overlay and br_netfilter, the sysctls, a container runtime with the systemd cgroup driver, then
# kubeadm, kubelet and kubectl) and the project's ../shared/REFERENCE.md (section "kubeadm on Ubuntu").
PREPARE = (
    Step("wait-for-cloud-init", ALL),
    Step("disable-swap", ALL),
    Step("load-kernel-modules", ALL),
    Step("configure-kernel-networking", ALL),
    Step("install-containerd", ALL, network=True),
    Step("install-kubernetes-binaries", ALL, network=True),
    Step("install-ecr-credential-provider", WORKERS, network=True),
    Step("install-nvidia-driver", GPU, network=True),
    Step("install-nvidia-container-toolkit", GPU, network=True),
    Step("prepare-model-cache-disk", GPU),
)
INIT_CONTROL_PLANE = Step("init-control-plane", ("control-plane",), network=False)
INSTALL_CALICO = Step("install-calico", ("control-plane",), network=True)
JOIN = Step("join-worker", ("worker", "gpu-worker"))
LABEL_GPU = Step("label-gpu-node", ("control-plane",))

ALL_SCRIPTS = ["lib", *(s.script for s in (*PREPARE, INIT_CONTROL_PLANE, INSTALL_CALICO, JOIN, LABEL_GPU))]
