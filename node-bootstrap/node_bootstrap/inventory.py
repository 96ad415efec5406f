"""The inventory: what terraform's `inventory` output says about the nodes (terraform/outputs.tf)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InventoryError

ROLES = ("control-plane", "worker", "gpu-worker")


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    public_ip: str
    private_ip: str
    instance_id: str = ""
    instance_type: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.role == "gpu-worker"

    @property
    def is_control_plane(self) -> bool:
        return self.role == "control-plane"


@dataclass(frozen=True)
class Inventory:
    cluster_name: str
    kubernetes_version: str
    ssh_user: str
    nodes: tuple[Node, ...]
    region: str = ""

    @property
    def control_plane(self) -> Node:
        return next(n for n in self.nodes if n.is_control_plane)

    @property
    def joining_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if not n.is_control_plane)

    @property
    def gpu_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.is_gpu)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InventoryError(f"no node named {name!r} in the inventory")


def _address(raw: Any, what: str) -> str:
    try:
        return str(ipaddress.ip_address(str(raw)))
    except ValueError:
        raise InventoryError(
            f"{what} is {raw!r}, not an IP address; is the instance running? "
            "(terraform refresh, or start it in the EC2 console)"
        ) from None


def parse_inventory(data: dict[str, Any]) -> Inventory:
    """Validate terraform's `inventory` output (the value, or the `terraform output -json` wrapper)."""
    if "value" in data and isinstance(data["value"], dict):
        data = data["value"]
    for key in ("cluster_name", "kubernetes_version", "ssh_user", "nodes"):
        if key not in data:
            raise InventoryError(f"inventory has no {key!r}; is it terraform's `inventory` output?")
    nodes = []
    for raw in data["nodes"]:
        name = raw.get("name", "?")
        role = raw.get("role")
        if role not in ROLES:
            raise InventoryError(f"node {name}: role {role!r} is not one of {', '.join(ROLES)}")
        nodes.append(
            Node(
                name=name,
                role=role,
                public_ip=_address(raw.get("public_ip"), f"node {name}: public_ip"),
                private_ip=_address(raw.get("private_ip"), f"node {name}: private_ip"),
                instance_id=raw.get("instance_id", ""),
                instance_type=raw.get("instance_type", ""),
            )
        )
    control_planes = [n.name for n in nodes if n.is_control_plane]
    if len(control_planes) != 1:
        raise InventoryError(
            f"the inventory needs exactly one control-plane node, found {len(control_planes)}"
        )
    if len({n.name for n in nodes}) != len(nodes):
        raise InventoryError("node names in the inventory are not unique")
    return Inventory(
        cluster_name=data["cluster_name"],
        kubernetes_version=data["kubernetes_version"],
        ssh_user=data["ssh_user"],
        nodes=tuple(nodes),
        region=data.get("region", ""),
    )


def load_inventory(path: Path) -> Inventory:
    try:
        return parse_inventory(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InventoryError(f"inventory file {path} does not exist") from None
    except json.JSONDecodeError as error:
        raise InventoryError(f"inventory file {path} is not JSON: {error}") from None
