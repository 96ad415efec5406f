"""Checks of a bootstrapped cluster; each failure comes with the command that fixes it.

The GPU checks go through NVML on the node (`nvidia-smi` is NVML's command-line front end):
driver version, compute capability and memory, then the containerd runtime and, once the
platform chart is installed, `nvidia.com/gpu` allocatable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from .cluster import Cluster, ensure_known_hosts
from .errors import BootstrapError
from .inventory import Node

NVIDIA_SMI_QUERY = (
    "nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader,nounits"
)
MIN_COMPUTE_CAPABILITY = 7.5  # T4; vLLM's half-precision kernels need sm75+
MIN_GPU_MEMORY_MIB = 15000  # a T4 reports 15360 MiB


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    @classmethod
    def passed_if(cls, name: str, ok: bool, detail: str, fix: str) -> Check:
        """ok, or fail with the fix: the fix is shown only when there is something to fix."""
        return cls(name, "ok" if ok else "fail", detail, "" if ok else fix)


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    compute_capability: float
    memory_mib: int


def parse_nvidia_smi(output: str) -> list[GpuInfo]:
    """One GpuInfo per line of NVIDIA_SMI_QUERY's CSV output."""
    gpus = []
    for line in output.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 4:
            raise ValueError(f"unexpected nvidia-smi line: {line!r}")
        gpus.append(GpuInfo(parts[0], parts[1], float(parts[2]), int(float(parts[3]))))
    return gpus


def gpu_checks(node: str, gpus: list[GpuInfo]) -> list[Check]:
    if not gpus:
        return [Check(f"{node}: GPU visible", "fail", "nvidia-smi lists no GPU", "use a GPU instance type")]
    checks = []
    for i, gpu in enumerate(gpus):
        label = f"{node}: GPU {i} {gpu.name}"
        checks.append(Check(f"{label} driver", "ok", f"driver {gpu.driver} answers through NVML"))
        checks.append(
            Check.passed_if(
                f"{label} compute capability",
                gpu.compute_capability >= MIN_COMPUTE_CAPABILITY,
                f"{gpu.compute_capability:.1f} (needs >= {MIN_COMPUTE_CAPABILITY})",
                "use g4dn (T4, 7.5) or g5 (A10G, 8.6) instances",
            )
        )
        checks.append(
            Check.passed_if(
                f"{label} memory",
                gpu.memory_mib >= MIN_GPU_MEMORY_MIB,
                f"{gpu.memory_mib} MiB (needs >= {MIN_GPU_MEMORY_MIB} for Llama 3.2 3B in fp16)",
                "pick a GPU with at least 16 GB (T4, A10G, L4)",
            )
        )
    return checks


CRICTL_INFO = "crictl --runtime-endpoint unix:///run/containerd/containerd.sock info"
SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"


def cri_runtime_check(node: Node, info: dict | None, error: str = "") -> Check:
    """The runtimes as containerd's CRI plugin loaded them (`crictl info`), not a grep of a file:
    runc, and on GPU nodes nvidia too, each with SystemdCgroup = true, and the sandbox image."""
    name = f"{node.name}: CRI runtimes"
    fix = "make bootstrap (rewrites /etc/containerd/config.toml, restarts containerd)"
    if info is None or "config" not in info:
        said = error.strip().splitlines()[-1] if error.strip() else "no reply"
        return Check(
            name,
            "fail",
            f"containerd's CRI plugin does not answer ({said}); the kubelet cannot run pods",
            f"{fix}; on the node: sudo ctr plugins ls --detailed id==cri",
        )
    config = info["config"]
    runtimes = config.get("containerd", {}).get("runtimes", {})
    wanted = ["runc", "nvidia"] if node.is_gpu else ["runc"]
    problems = []
    for runtime in wanted:
        if runtime not in runtimes:
            problems.append(
                f"no runtime {runtime}" + (": the node shows 0 GPUs" if runtime == "nvidia" else "")
            )
        elif runtimes[runtime].get("options", {}).get("SystemdCgroup") is not True:
            problems.append(f"runtime {runtime} without SystemdCgroup = true (pods restart: SandboxChanged)")
    if config.get("containerd", {}).get("defaultRuntimeName") != "runc":
        problems.append(
            f"default runtime {config.get('containerd', {}).get('defaultRuntimeName')!r}, not runc"
        )
    if config.get("sandboxImage") != SANDBOX_IMAGE:
        problems.append(f"sandbox image {config.get('sandboxImage')!r}, not {SANDBOX_IMAGE}")
    if problems:
        return Check(name, "fail", "; ".join(problems), fix)
    return Check(name, "ok", ", ".join(f"{r} (SystemdCgroup)" for r in wanted) + f", {SANDBOX_IMAGE}")


class Doctor:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.inventory = cluster.inventory

    def run(self) -> list[Check]:
        checks: list[Check] = []
        known_hosts = ensure_known_hosts(self.cluster.settings, self.inventory)
        for node in self.inventory.nodes:
            session = self.cluster.session_for(node, known_hosts)
            try:
                session.connect()
            except BootstrapError as error:
                reason, _, fix = str(error).partition(" Fix: ")
                checks.append(Check(f"{node.name}: SSH", "fail", reason, fix))
                continue
            self.cluster.sessions[node.name] = session
            checks.append(Check(f"{node.name}: SSH", "ok", f"{session.target}, host key verified"))
        if self.inventory.control_plane.name not in self.cluster.sessions:
            return checks
        nodes = self.cluster.kubectl_json("get", "nodes", check=False)
        if nodes is None:
            checks.append(
                Check("API server", "fail", "kubectl get nodes failed on the control plane", "make bootstrap")
            )
            return checks
        by_name = {item["metadata"]["name"]: item for item in nodes["items"]}
        for node in self.inventory.nodes:
            checks.append(self.node_ready(node, by_name.get(node.name)))
        for node in self.inventory.nodes:
            checks.append(self.cri_runtimes(node))
        checks.append(self.calico())
        for node in self.inventory.gpu_nodes:
            checks += self.gpu_node(node, by_name.get(node.name))
        return checks

    def node_ready(self, node: Node, item: dict | None) -> Check:
        if item is None:
            return Check(f"{node.name}: registered", "fail", "not in `kubectl get nodes`", "make bootstrap")
        conditions = {c["type"]: c for c in item.get("status", {}).get("conditions", [])}
        ready = conditions.get("Ready", {})
        if ready.get("status") == "True":
            return Check(f"{node.name}: Ready", "ok", "kubelet reports Ready")
        return Check(
            f"{node.name}: Ready",
            "fail",
            f"Ready={ready.get('status', '?')}: {ready.get('message', '')}",
            f"ssh to {node.public_ip}: sudo journalctl -u kubelet -n 100; then make bootstrap",
        )

    def cri_runtimes(self, node: Node) -> Check:
        session = self.cluster.sessions.get(node.name)
        if session is None:
            return Check(
                f"{node.name}: CRI runtimes", "fail", "not checked: no SSH session", "see the SSH check"
            )
        result = session.run(CRICTL_INFO, check=False, timeout=60)
        if result.code != 0:
            return cri_runtime_check(node, None, result.stdout + result.stderr)
        try:
            return cri_runtime_check(node, json.loads(result.stdout))
        except json.JSONDecodeError:
            return cri_runtime_check(node, None, "crictl info printed no JSON")

    def model_cache(self, node: Node) -> Check:
        session = self.cluster.sessions[node.name]
        mounted = session.run(f"mountpoint -q {MODEL_CACHE_DIR}", check=False, timeout=30).code == 0
        store = session.run("lsblk -dpno NAME,MODEL", check=False, timeout=30).stdout
        owner = session.run(f"stat -c %u:%g {VLLM_CACHE_DIR}", check=False, timeout=30).stdout.strip()
        return model_cache_check(node, mounted, "Amazon EC2 NVMe Instance Storage" in store, owner)

    def calico(self) -> Check:
        status = self.cluster.kubectl_json("get", "tigerastatus", "calico", check=False)
        conditions = {c["type"]: c["status"] for c in (status or {}).get("status", {}).get("conditions", [])}
        if conditions.get("Available") == "True":
            return Check("Calico", "ok", "tigerastatus calico Available")
        return Check(
            "Calico",
            "fail",
            f"tigerastatus calico: {conditions or 'absent'}",
            "kubectl -n calico-system get pods; kubectl -n tigera-operator logs deploy/tigera-operator;"
            " then make bootstrap",
        )

    def gpu_node(self, node: Node, item: dict | None) -> list[Check]:
        session = self.cluster.sessions.get(node.name)
        if session is None:
            return []
        checks = []
        smi = session.run(NVIDIA_SMI_QUERY, check=False, timeout=60)
        if smi.code != 0:
            lines = (smi.stdout + smi.stderr).strip().splitlines()
            checks.append(
                Check(
                    f"{node.name}: NVIDIA driver",
                    "fail",
                    lines[-1] if lines else "nvidia-smi failed",
                    "make bootstrap (installs the driver; reboots the node when the kernel needs it)",
                )
            )
        else:
            checks += gpu_checks(node.name, parse_nvidia_smi(smi.stdout))
        checks.append(self.model_cache(node))
        labels = (item or {}).get("metadata", {}).get("labels", {})
        taints = (item or {}).get("spec", {}).get("taints") or []
        placed = labels.get("nvidia.com/gpu.present") == "true" and any(
            t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NoSchedule" for t in taints
        )
        checks.append(
            Check.passed_if(
                f"{node.name}: GPU label and taint",
                placed,
                "nvidia.com/gpu.present=true, nvidia.com/gpu=present:NoSchedule" if placed else "missing",
                "make bootstrap (labels and taints GPU nodes)",
            )
        )
        allocatable = (item or {}).get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", "0")
        if int(allocatable) > 0:
            checks.append(Check(f"{node.name}: nvidia.com/gpu allocatable", "ok", allocatable))
        else:
            plugin = self.cluster.kubectl_json(
                "get", "daemonsets", "-A", "-l", "app.kubernetes.io/component=gpu-device-plugin", check=False
            )
            installed = bool(plugin and plugin.get("items"))
            checks.append(
                Check(
                    f"{node.name}: nvidia.com/gpu allocatable",
                    "fail" if installed else "warn",
                    "0 although the device plugin runs" if installed else "0: no device plugin installed yet",
                    "kubectl -n NAMESPACE logs ds/RELEASE-nvidia-device-plugin; see the runtime check"
                    if installed
                    else "helm install llama ./charts/platform -f values/aws-t4.yaml",
                )
            )
        return checks


MODEL_CACHE_DIR = "/mnt/model-cache"
VLLM_CACHE_DIR = "/mnt/model-cache/vllm"
VLLM_UID_GID = "10001:10001"  # the vllm-llama chart's pod user (values/aws-t4.yaml)


def model_cache_check(node: Node, mounted: bool, has_instance_store: bool, owner: str) -> Check:
    name = f"{node.name}: model cache"
    fix = "make bootstrap (installs llama-model-cache.service); on the node: journalctl -u llama-model-cache"
    if has_instance_store and not mounted:
        return Check(
            name,
            "fail",
            f"{MODEL_CACHE_DIR} is not mounted: vLLM would fill the root volume and lose its cache",
            fix,
        )
    if owner != VLLM_UID_GID:
        return Check(
            name, "fail", f"{VLLM_CACHE_DIR} owned by {owner or 'nobody (missing)'}, not {VLLM_UID_GID}", fix
        )
    where = "the NVMe instance store" if mounted else "the root volume (no instance store)"
    return Check(name, "ok", f"{MODEL_CACHE_DIR} on {where}, {VLLM_CACHE_DIR} owned by {VLLM_UID_GID}")


def print_checks(checks: list[Check], console: Console) -> None:
    table = Table(title="node-bootstrap doctor")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    table.add_column("fix", overflow="fold")
    colours = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for check in checks:
        table.add_row(check.name, f"[{colours[check.status]}]{check.status}[/]", check.detail, check.fix)
    console.print(table)
    # The failures once more as plain lines: whole sentences to copy, also in a narrow CI log.
    for check in checks:
        if check.status == "fail":
            console.print(
                f"FAIL {check.name}: {check.detail}\n  fix: {check.fix}", markup=False, highlight=False
            )
