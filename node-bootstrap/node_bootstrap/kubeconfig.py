"""The admin kubeconfig, fetched from the control plane and pointed at its public address."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .cluster import ADMIN_KUBECONFIG, Cluster


def public_kubeconfig(admin_conf: str, public_ip: str) -> str:
    """Replace the server URL (the private address kubeadm wrote) with the public one (a certSAN)."""
    text, count = re.subn(r"(server:\s*https://)[^:\s]+(:\d+)", rf"\g<1>{public_ip}\g<2>", admin_conf)
    if count == 0:
        raise ValueError("admin.conf has no `server: https://...` line")
    return text


def fetch_kubeconfig(cluster: Cluster, destination: Path) -> Path:
    result = cluster.control_plane.run(f"cat {ADMIN_KUBECONFIG}", secret_output=True, timeout=60)
    text = public_kubeconfig(result.stdout, cluster.inventory.control_plane.public_ip)
    destination.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before the first byte: it holds the cluster-admin client key.
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    destination.chmod(0o600)
    cluster.logs[cluster.inventory.control_plane.name].write(f"kubeconfig written to {destination} (0600)")
    return destination
