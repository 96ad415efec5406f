"""Fixtures of the infra tests: the sandboxed nodes (sandbox.py) and the Terraform working copy."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.tier import unavailable

from .sandbox import Lab, build_lab, namespaces_available


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    reason = namespaces_available()
    if reason is not None:
        unavailable(f"sandboxed nodes need network namespaces: {reason}")
    lab = build_lab(tmp_path_factory.mktemp("nodes"))
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def cli_files(lab: Lab) -> dict[str, Path]:
    base = lab.workdir
    return {
        "inventory": lab.inventory(base / "inventory.json"),
        "known_hosts": lab.known_hosts(base / "known_hosts"),
        "node_env": lab.node_env(base / "node.env"),
        "state": base / "state",
        "kubeconfig": base / "kubeconfig",
        "ssh_key": lab.client_key,
    }


def cli_args(files: dict[str, Path], command: str, **overrides: Path) -> list[str]:
    files = {**files, **overrides}
    return [
        "--inventory", str(files["inventory"]),
        "--known-hosts", str(files["known_hosts"]),
        "--ssh-key", str(files["ssh_key"]),
        "--state-dir", str(files["state"]),
        "--kubeconfig", str(files["kubeconfig"]),
        "--node-env", str(files["node_env"]),
        "--plain",
        "--connect-attempts", "3",
        "--connect-timeout", "3",
        "--retry-base-delay", "0.2",
        "--gate-timeout", "30",
        "--reboot-wait", "1",
        command,
    ]  # fmt: skip
