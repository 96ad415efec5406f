"""The bootstrap phases: prepare every node in parallel, init once, Calico, join in parallel, gates.

Every phase ends with a gate that checks its outcome on the cluster itself, so a re-run starts
from what is there, and every step script first checks whether its work is already done.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Callable

from .cluster import ADMIN_KUBECONFIG, Cluster, ensure_known_hosts, parallel
from .errors import BootstrapError, GateError, StepError
from .inventory import Node
from .progress import Progress
from .render import kubeadm_join_config
from .retry import retry
from .ssh import NodeSession
from .steps import INIT_CONTROL_PLANE, INSTALL_CALICO, JOIN, LABEL_GPU, PREPARE, Step

KUBELET_CONF = "/etc/kubernetes/kubelet.conf"

_JOIN_COMMAND = re.compile(
    r"kubeadm join (?P<endpoint>\S+) --token (?P<token>[a-z0-9]{6}\.[a-z0-9]{16})\s+"
    r"--discovery-token-ca-cert-hash (?P<hash>sha256:[0-9a-f]{64})"
)


def step_outcome(stdout: str) -> str:
    """changed | unchanged | reboot, from the lines the step printed (lib.sh's say/changed)."""
    if "reboot-required" in stdout:
        return "reboot"
    if ": changed: " in stdout:
        return "changed"
    if ": already done" in stdout:
        return "unchanged"
    return "changed"


class Bootstrap:
    def __init__(self, cluster: Cluster, progress: Progress) -> None:
        self.cluster = cluster
        self.settings = cluster.settings
        self.inventory = cluster.inventory
        self.progress = progress
        self.outcomes: dict[str, dict[str, str]] = {n.name: {} for n in self.inventory.nodes}

    # -- one step on one node -------------------------------------------------------------
    def run_step(self, session: NodeSession, step: Step, *args: str, stdin: bytes | None = None) -> str:
        name = session.node.name
        self.progress.update(name, "running", step.script)

        said: list[str] = []

        def once() -> str:
            result = session.run(
                self.cluster.script_command(step.script, *args),
                stdin=stdin,
                timeout=self.settings.command_timeout,
            )
            said[:] = (result.stdout + result.stderr).strip().splitlines()
            return step_outcome(result.stdout)

        def on_retry(attempt: int, error: BaseException, wait: float) -> None:
            session.log.write(f"{step.script}: attempt {attempt} failed, retrying in {wait:.0f} s: {error}")
            self.progress.update(name, "running", step.script, f"retry {attempt} in {wait:.0f} s")

        try:
            if step.network and stdin is None:
                outcome = retry(once, self.settings.network_step, (StepError,), on_retry)
            else:
                outcome = once()
            if outcome == "reboot":
                self._reboot(session)
                outcome = once()
                if outcome == "reboot":
                    raise StepError(
                        "still needs a reboot after one reboot: the driver's kernel module does not "
                        "load. Fix: read the diagnosis below (the DKMS build log's tail; also in "
                        f"{session.log.path}), then re-run 'make bootstrap'.\n" + "\n".join(said[-30:])
                    )
        except BootstrapError as error:
            self.progress.update(name, "failed", step.script, f"see {session.log.path}")
            raise StepError(f"{step.script} failed on {name}: {error}") from None
        self.outcomes[name][step.script] = outcome
        self.progress.update(name, "done" if outcome == "changed" else "unchanged", step.script)
        return outcome

    def _reboot(self, session: NodeSession) -> None:
        self.progress.update(session.node.name, "running", "reboot")
        session.run("systemctl reboot", check=False, timeout=30)
        session.close()
        time.sleep(self.settings.reboot_wait)
        session.connect()
        session.run(self.cluster.script_command("wait-for-cloud-init"), timeout=self.settings.command_timeout)

    # -- phases -----------------------------------------------------------------------------
    def run(self) -> None:
        known_hosts = ensure_known_hosts(self.settings, self.inventory)
        for node in self.inventory.nodes:
            self.progress.update(node.name, "running", "connect")
        self.cluster.connect_all(known_hosts)
        parallel(self.prepare, self.inventory.nodes)
        self.init_control_plane()
        self.join_nodes()
        self.label_gpu_nodes()
        self.gate_nodes_ready([n.name for n in self.inventory.nodes])
        for node in self.inventory.nodes:
            changed = sum(1 for o in self.outcomes[node.name].values() if o == "changed")
            self.progress.update(node.name, "done", "ready", f"{changed} steps changed something")

    def prepare(self, node: Node) -> None:
        session = self.cluster.sessions[node.name]
        self.progress.update(node.name, "running", "upload")
        self.cluster.upload(session)
        for step in PREPARE:
            if step.applies_to(node):
                self.run_step(session, step)

    def init_control_plane(self) -> None:
        session = self.cluster.control_plane
        self.run_step(session, INIT_CONTROL_PLANE)
        self.run_step(session, INSTALL_CALICO)
        self.gate(
            "Calico ready",
            self.calico_ready,
            "kubectl -n calico-system get pods; kubectl get tigerastatus (on the control plane)",
        )
        self.gate_nodes_ready([self.inventory.control_plane.name])

    def registered_nodes(self) -> set[str]:
        nodes = self.cluster.kubectl_json("get", "nodes") or {"items": []}
        return {item["metadata"]["name"] for item in nodes["items"]}

    def machine_joined(self, node: Node) -> bool:
        """Joined is a fact of the machine (kubeadm join wrote its kubelet.conf), not of the API's
        Node list: a replaced instance under an old name has a Node object but no kubelet.conf."""
        session = self.cluster.sessions[node.name]
        return session.run(f"test -f {KUBELET_CONF}", check=False, timeout=30).code == 0

    def join_nodes(self) -> None:
        missing = [n for n in self.inventory.joining_nodes if not self.machine_joined(n)]
        for node in self.inventory.joining_nodes:
            if node not in missing:
                # Still run the step: it only confirms (already done) and keeps the record complete.
                self.run_step(self.cluster.sessions[node.name], JOIN, stdin=b"")
        if not missing:
            return
        cp = self.cluster.control_plane
        registered = self.registered_nodes()
        for node in missing:
            if node.name in registered:
                # The Node object of the instance this one replaced: kubeadm join refuses a name
                # whose Node exists and is Ready, and its old status would mislead the gates.
                self.progress.update(node.name, "running", "join", "deleting the stale Node object")
                cp.run(
                    f"kubectl --kubeconfig={ADMIN_KUBECONFIG} delete node {shlex.quote(node.name)}",
                    timeout=120,
                )
                cp.log.write(f"stale Node {node.name} deleted: its machine has no {KUBELET_CONF}")
        self.progress.update(cp.node.name, "running", "join token")
        # The join command holds the token: secret_output keeps it out of every log, and the
        # redactor learns it before anything else could print it.
        result = cp.run("kubeadm token create --ttl 1h --print-join-command", secret_output=True, timeout=120)
        match = _JOIN_COMMAND.search(result.stdout)
        if match is None:
            raise StepError("kubeadm token create printed no join command (output withheld: secrets)")
        token = match.group("token")
        self.cluster.redactor.add(token)
        self.cluster.redactor.add(token.split(".")[1])
        try:

            def join(node: Node) -> None:
                config = kubeadm_join_config(node, match.group("endpoint"), token, match.group("hash"))
                self.run_step(self.cluster.sessions[node.name], JOIN, stdin=config.encode())

            parallel(join, missing)
        finally:
            # The token id is not secret; deleting it ends the token's life before its TTL.
            cp.run(f"kubeadm token delete {token.split('.')[0]}", check=False, timeout=60)
        self.progress.update(cp.node.name, "done", "join token", "token deleted")

    def label_gpu_nodes(self) -> None:
        for node in self.inventory.gpu_nodes:
            self.run_step(self.cluster.control_plane, LABEL_GPU, node.name)

    # -- gates ------------------------------------------------------------------------------
    def calico_ready(self) -> tuple[bool, str]:
        status = self.cluster.kubectl_json("get", "tigerastatus", "calico", check=False)
        if status is None:
            return False, "tigerastatus calico not reported yet"
        conditions = {c["type"]: c["status"] for c in status.get("status", {}).get("conditions", [])}
        return conditions.get("Available") == "True", f"conditions {conditions}"

    def nodes_ready(self, names: list[str]) -> tuple[bool, str]:
        nodes = self.cluster.kubectl_json("get", "nodes") or {"items": []}
        ready = set()
        for item in nodes["items"]:
            conditions = {c["type"]: c["status"] for c in item.get("status", {}).get("conditions", [])}
            if conditions.get("Ready") == "True":
                ready.add(item["metadata"]["name"])
        waiting = sorted(set(names) - ready)
        return not waiting, f"not Ready yet: {', '.join(waiting)}" if waiting else "all Ready"

    def gate_nodes_ready(self, names: list[str]) -> None:
        self.gate(
            f"nodes Ready ({', '.join(names)})",
            lambda: self.nodes_ready(names),
            "kubectl describe node NAME; journalctl -u kubelet on that node",
        )

    def gate(self, what: str, check: Callable[[], tuple[bool, str]], look_at: str) -> None:
        cp = self.inventory.control_plane.name
        deadline = time.monotonic() + self.settings.gate_timeout
        while True:
            ok, detail = check()
            self.progress.update(cp, "done" if ok else "running", f"gate: {what}", detail)
            if ok:
                return
            if time.monotonic() > deadline:
                raise GateError(
                    f"gate '{what}' did not pass within {self.settings.gate_timeout:.0f} s ({detail}). "
                    f"Look at: {look_at}. Then re-run 'make bootstrap' (it resumes where it stopped)."
                )
            time.sleep(self.settings.gate_interval)
