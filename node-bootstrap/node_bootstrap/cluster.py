"""Connections to every node of the inventory, the uploaded scripts, and kubectl on the control plane."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import SCRIPTS_DIR
from .errors import BootstrapError
from .hostkeys import (
    HostKeyCache,
    console_host_keys,
    ec2_console_fetcher,
    known_hosts_lines,
    write_known_hosts,
)
from .inventory import Inventory, Node
from .nodelog import NodeLog
from .redact import Redactor
from .render import (
    calico_installation,
    containerd_config,
    ecr_credential_provider_config,
    kubeadm_init_config,
)
from .settings import Settings, ecr_credential_provider, node_env, render_node_env
from .ssh import NodeSession, Result
from .steps import ALL_SCRIPTS

ADMIN_KUBECONFIG = "/etc/kubernetes/admin.conf"


def ensure_known_hosts(
    settings: Settings,
    inventory: Inventory,
    log: NodeLog | None = None,
    fetch: Callable[[str], str] | None = None,
) -> Path:
    """A known_hosts with every node's verified key: the given file, or one built from the keys
    cached per instance id, reading the console only for instances not seen before."""
    if settings.known_hosts is not None:
        if not settings.known_hosts.is_file():
            raise BootstrapError(f"--known-hosts {settings.known_hosts} does not exist")
        return settings.known_hosts
    path = settings.verified_known_hosts
    cache = HostKeyCache(settings.host_key_cache)
    lines: list[str] = []
    for node in inventory.nodes:
        if not node.instance_id:
            raise BootstrapError(
                f"node {node.name} has no instance_id in the inventory: its host key cannot be read"
            )
        keys = cache.get(node.instance_id)
        if keys is None:
            fetch = fetch or ec2_console_fetcher(inventory.region)
            keys = console_host_keys(node, fetch, settings.console_timeout, settings.console_interval)
            cache.put(node.instance_id, keys)
        lines += known_hosts_lines(node, keys)
    cache.keep_only({n.instance_id for n in inventory.nodes})
    write_known_hosts(path, lines)
    if log is not None:
        log.write(f"known_hosts {path} written from the verified keys of {len(inventory.nodes)} instances")
    return path


class Cluster:
    """One NodeSession per node (its own log file), opened in parallel."""

    def __init__(self, settings: Settings, inventory: Inventory, redactor: Redactor) -> None:
        self.settings = settings
        self.inventory = inventory
        self.redactor = redactor
        self.logs = {n.name: NodeLog(settings.log_dir / f"{n.name}.log", redactor) for n in inventory.nodes}
        self.sessions: dict[str, NodeSession] = {}

    def session_for(self, node: Node, known_hosts: Path) -> NodeSession:
        return NodeSession(
            node,
            user=self.inventory.ssh_user,
            key_path=self.settings.ssh_key,
            known_hosts=known_hosts,
            log=self.logs[node.name],
            connect_policy=self.settings.connect,
            connect_timeout=self.settings.connect_timeout,
            keepalive_s=self.settings.keepalive_s,
        )

    def connect_all(self, known_hosts: Path, nodes: Iterable[Node] | None = None) -> None:
        def connect(node: Node) -> None:
            session = self.session_for(node, known_hosts)
            session.connect()
            self.sessions[node.name] = session

        parallel(connect, self.inventory.nodes if nodes is None else nodes)

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        for log in self.logs.values():
            log.close()

    @property
    def control_plane(self) -> NodeSession:
        return self.sessions[self.inventory.control_plane.name]

    # -- files on the nodes ------------------------------------------------------------------
    def upload(self, session: NodeSession) -> None:
        """Scripts, node.env and the rendered configs (none of them secret) into remote_dir."""
        base = f"{self.settings.remote_dir}/scripts"
        dirs = " ".join(shlex.quote(d) for d in (self.settings.remote_dir, base, f"{base}/files"))
        session.run(f"install -d -m 0700 {dirs}", sudo=False)
        for name in ALL_SCRIPTS:
            session.put(f"{base}/{name}.sh", (SCRIPTS_DIR / f"{name}.sh").read_bytes(), 0o700)
        env = render_node_env(node_env(self.settings, self.inventory))
        session.put(f"{base}/node.env", env.encode(), 0o600)
        session.put(
            f"{base}/files/containerd-config.toml",
            containerd_config(self.settings, session.node).encode(),
            0o600,
        )
        release, _ = ecr_credential_provider(self.inventory.kubernetes_version)
        session.put(
            f"{base}/files/ecr-credential-provider.yaml",
            ecr_credential_provider_config(release).encode(),
            0o600,
        )
        if session.node.is_control_plane:
            files = {
                "kubeadm-init.yaml": kubeadm_init_config(self.settings, self.inventory),
                "calico-installation.yaml": calico_installation(self.settings),
            }
            for name, content in files.items():
                session.put(f"{base}/files/{name}", content.encode(), 0o600)

    def script_command(self, script: str, *args: str) -> str:
        path = f"{self.settings.remote_dir}/scripts/{script}.sh"
        return " ".join(["bash", shlex.quote(path), *map(shlex.quote, args)])

    # -- kubectl on the control plane ---------------------------------------------------------
    def kubectl(self, *args: str, stdin: bytes | None = None, timeout: float = 60) -> Result:
        """kubectl on the control plane as the cluster admin; the caller reads the exit code."""
        quoted = " ".join(map(shlex.quote, args))
        return self.control_plane.run(
            f"kubectl --kubeconfig={ADMIN_KUBECONFIG} {quoted}", stdin=stdin, check=False, timeout=timeout
        )

    def kubectl_json(self, *args: str, check: bool = True) -> dict[str, Any] | None:
        quoted = " ".join(map(shlex.quote, args))
        command = f"kubectl --kubeconfig={ADMIN_KUBECONFIG} {quoted} -o json"
        result = self.control_plane.run(command, check=check, timeout=60)
        if result.code != 0:
            return None
        return json.loads(result.stdout)


def parallel(work: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
    """Run `work` for each item in threads; raise the first error after all have finished."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
        futures = [pool.submit(work, item) for item in items]
        errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        if len(errors) > 1:
            raise BootstrapError("\n".join(str(e) for e in errors))
        raise errors[0]
    return [f.result() for f in futures]
