"""The rendered node configs (kubeadm, containerd, Calico) from templates/*.j2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jinja2

from . import TEMPLATES_DIR, node_contract
from .inventory import Inventory, Node
from .settings import Settings

# YAML and TOML, never HTML: HTML autoescaping would corrupt quotes. StrictUndefined turns a
# missing value into an error instead of an empty string in a config.
_ENV = jinja2.Environment(  # noqa: S701
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def render(template: str, **values: Any) -> str:
    return _ENV.get_template(template).render(**values)


@dataclass(frozen=True)
class KubeletReserved:
    """What the kubelet keeps from pods on every node (KubeletConfiguration)."""

    system_cpu: str = "200m"
    system_memory_mib: int = 512
    kube_cpu: str = "200m"
    kube_memory_mib: int = 512
    eviction_memory_mib: int = 300

    @property
    def system_memory(self) -> str:
        return f"{self.system_memory_mib}Mi"

    @property
    def kube_memory(self) -> str:
        return f"{self.kube_memory_mib}Mi"

    @property
    def eviction_memory(self) -> str:
        return f"{self.eviction_memory_mib}Mi"

    @property
    def total_memory_mib(self) -> int:
        return self.system_memory_mib + self.kube_memory_mib + self.eviction_memory_mib

    def allocatable_memory_mib(self, capacity_mib: int) -> int:
        return capacity_mib - self.total_memory_mib


KUBELET_RESERVED = KubeletReserved()


def kubeadm_init_config(settings: Settings, inventory: Inventory) -> str:
    node = inventory.control_plane
    sans = list(dict.fromkeys([node.public_ip, node.private_ip, node.name, "localhost", "127.0.0.1"]))
    return render(
        "kubeadm-init.yaml.j2",
        node=node,
        cluster_name=inventory.cluster_name,
        kubernetes_version=inventory.kubernetes_version,
        pod_subnet=settings.pod_subnet,
        service_subnet=settings.service_subnet,
        cert_sans=sans,
        reserved=KUBELET_RESERVED,
    )


def kubeadm_join_config(node: Node, api_endpoint: str, token: str, ca_cert_hash: str) -> str:
    return render(
        "kubeadm-join.yaml.j2",
        node=node,
        api_endpoint=api_endpoint,
        token=token,
        ca_cert_hash=ca_cert_hash,
        contract=node_contract.load(),
    )


# Installed by nvidia-container-toolkit; the path nvidia-ctk 1.17.8 writes as BinaryName
# (cmd/nvidia-ctk/runtime/configure/configure.go defaultNVIDIARuntimeExpecutablePath).
NVIDIA_CONTAINER_RUNTIME = "/usr/bin/nvidia-container-runtime"


def containerd_config(settings: Settings, node: Node) -> str:
    """The node's one containerd config; GPU nodes also get the runtime `nvidia`."""
    return render(
        "containerd-config.toml.j2",
        sandbox_image=settings.sandbox_image,
        nvidia_runtime=NVIDIA_CONTAINER_RUNTIME if node.is_gpu else "",
    )


def ecr_credential_provider_config(release: str, cache_duration: str = "6h") -> str:
    """The kubelet's CredentialProviderConfig: ECR images get a token from the instance profile."""
    return render("ecr-credential-provider.yaml.j2", release=release, cache_duration=cache_duration)


def calico_installation(settings: Settings) -> str:
    return render(
        "calico-installation.yaml.j2",
        calico_version=settings.calico_version,
        mtu=settings.calico_mtu,
        pod_subnet=settings.pod_subnet,
    )
