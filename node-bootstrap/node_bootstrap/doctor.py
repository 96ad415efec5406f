"""Checks of a bootstrapped cluster; each failure comes with the command that fixes it.

What breaks a real cluster, checked where it shows: the runtimes as containerd's CRI plugin
loaded them (`crictl info`), the driver module built for the running kernel and answering NVML
(`nvidia-smi`), the model cache on the instance store, the RuntimeClass `nvidia`, the device
plugin running and registered (`nvidia.com/gpu` allocatable), a pod that runs `nvidia-smi`
under the nvidia runtime and must see exactly one GPU, and pod-to-pod traffic and DNS between
two nodes (VXLAN, security group, MTU). The doctor's own pods are deleted again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from . import node_contract
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
        # Pods an interrupted earlier doctor left behind would block creating them again.
        self.delete_pods(GPU_SMOKE_POD, NET_SERVER, NET_CLIENT, wait=True)
        if self.inventory.gpu_nodes:
            checks.append(self.runtime_class())
        for node in self.inventory.gpu_nodes:
            checks += self.gpu_node(node, by_name.get(node.name))
        checks += self.pod_network()
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
        checks.append(self.driver_module(node))
        checks.append(self.model_cache(node))
        labels = (item or {}).get("metadata", {}).get("labels", {})
        taints = (item or {}).get("spec", {}).get("taints") or []
        contract = node_contract.load()
        placed = labels.get(contract.gpu_label_key) == contract.gpu_label_value and any(
            t.get("key") == contract.gpu_taint_key and t.get("effect") == contract.gpu_taint_effect
            for t in taints
        )
        checks.append(
            Check.passed_if(
                f"{node.name}: GPU label and taint",
                placed,
                f"{contract.gpu_label}, {contract.gpu_taint}" if placed else "missing",
                "make bootstrap (labels and taints GPU nodes)",
            )
        )
        allocatable = int((item or {}).get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", "0"))
        plugin = self.device_plugin(node, allocatable)
        checks.append(plugin)
        checks.append(self.gpu_smoke_pod(node) if plugin.status == "ok" else skipped_smoke_pod(node))
        return checks

    # -- the driver module, the RuntimeClass, the device plugin ------------------------------
    def driver_module(self, node: Node) -> Check:
        session = self.cluster.sessions[node.name]
        kernel = session.run("uname -r", check=False, timeout=30).stdout.strip()
        info = session.run("modinfo -F vermagic nvidia", check=False, timeout=30)
        return driver_module_check(node, kernel, info.stdout if info.code == 0 else None, info.stderr)

    def runtime_class(self) -> Check:
        result = self.cluster.kubectl("get", "runtimeclass", RUNTIME_CLASS, "-o", "json")
        found = json.loads(result.stdout) if result.code == 0 else None
        return runtime_class_check(found, result.stderr)

    def device_plugin(self, node: Node, allocatable: int) -> Check:
        pods = self.cluster.kubectl_json("get", "pods", "-A", "-l", DEVICE_PLUGIN_SELECTOR, check=False)
        daemonsets = self.cluster.kubectl_json(
            "get", "daemonsets", "-A", "-l", DEVICE_PLUGIN_SELECTOR, check=False
        )
        return device_plugin_check(
            node,
            [p for p in (pods or {}).get("items", []) if p.get("spec", {}).get("nodeName") == node.name],
            bool((daemonsets or {}).get("items")),
            allocatable,
        )

    # -- pods the doctor runs ---------------------------------------------------------------
    def run_pod(
        self, manifest: dict[str, Any], server: bool = False
    ) -> tuple[dict[str, Any] | None, str, str]:
        """Create the pod, wait until it ends (or runs, for a server), return (pod, logs, error).

        The caller deletes it again (delete_pods), also when this raises."""
        name = manifest["metadata"]["name"]
        created = self.cluster.kubectl(
            "apply", "-n", DOCTOR_NAMESPACE, "-f", "-", stdin=json.dumps(manifest).encode()
        )
        if created.code != 0:
            return None, "", (created.stdout + created.stderr).strip()
        deadline = time.monotonic() + self.pod_timeout
        pod: dict[str, Any] | None = None
        while True:
            pod = self.cluster.kubectl_json("get", "pod", name, "-n", DOCTOR_NAMESPACE, check=False)
            phase = (pod or {}).get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed") or (phase == "Running" and server):
                break
            if time.monotonic() > deadline:
                return pod, "", f"still {phase or 'absent'} after {self.pod_timeout:.0f} s"
            time.sleep(self.poll_interval)
        if server:
            return pod, "", ""
        logs = self.cluster.kubectl("logs", name, "-n", DOCTOR_NAMESPACE)
        return pod, logs.stdout, ""

    def delete_pods(self, *names: str, wait: bool = False) -> None:
        self.cluster.kubectl(
            "delete",
            "pod",
            *names,
            "-n",
            DOCTOR_NAMESPACE,
            "--ignore-not-found",
            f"--wait={str(wait).lower()}",
        )

    @property
    def pod_timeout(self) -> float:
        return min(self.cluster.settings.gate_timeout, DOCTOR_POD_TIMEOUT)

    @property
    def poll_interval(self) -> float:
        return self.cluster.settings.gate_interval

    def gpu_smoke_pod(self, node: Node) -> Check:
        manifest = gpu_smoke_pod_manifest(node)
        try:
            pod, logs, error = self.run_pod(manifest)
        finally:
            self.delete_pods(manifest["metadata"]["name"])
        return gpu_smoke_check(node, pod, logs, error)

    def pod_network(self) -> list[Check]:
        """A server pod on one node and a client on another: DNS, then HTTP to the server's pod IP."""
        nodes = sorted(self.inventory.joining_nodes, key=lambda n: n.is_gpu) or [self.inventory.control_plane]
        server_node, client_node = nodes[0], nodes[-1]
        if server_node == client_node and len(self.inventory.nodes) > 1:
            server_node = self.inventory.control_plane
        server = net_server_manifest(server_node)
        try:
            pod, _, error = self.run_pod(server, server=True)
            address = (pod or {}).get("status", {}).get("podIP", "")
            if not address or (pod or {}).get("status", {}).get("phase") != "Running":
                return [
                    Check(
                        "pod network",
                        "fail",
                        f"the test server pod on {server_node.name} did not start: "
                        + (error or pod_problem(pod)),
                        f"kubectl describe pod {NET_SERVER} (while make doctor runs);"
                        " kubectl -n calico-system get pods -o wide",
                    )
                ]
            client = net_client_manifest(client_node, address)
            pod, logs, error = self.run_pod(client)
        finally:
            self.delete_pods(NET_SERVER, NET_CLIENT)
        return net_checks(server_node, client_node, address, pod, logs, error)


# The chart's node contract (global.node in charts/platform/values.yaml).
_CONTRACT = node_contract.load()
MODEL_CACHE_DIR = _CONTRACT.model_cache_mount
VLLM_CACHE_DIR = _CONTRACT.model_cache_path
VLLM_UID_GID = _CONTRACT.owner  # the vllm-llama pod's user and group


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


RUNTIME_CLASS = "nvidia"
DEVICE_PLUGIN_SELECTOR = "app.kubernetes.io/component=gpu-device-plugin"
DOCTOR_NAMESPACE = "default"
DOCTOR_POD_TIMEOUT = 240.0  # an image pull on a fresh node; the pods are tiny
GPU_SMOKE_POD = "node-bootstrap-doctor-gpu"
NET_SERVER = "node-bootstrap-doctor-net-server"
NET_CLIENT = "node-bootstrap-doctor-net-client"
# nvidia-smi comes into the container from the host through the NVIDIA runtime
# (NVIDIA_DRIVER_CAPABILITIES=utility); the image only needs glibc. Pinned, as every image here.
GPU_SMOKE_IMAGE = "nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04"
NET_IMAGE = "busybox:1.36.1"
NET_PORT = 8080
GPU_TOLERATION = {"key": _CONTRACT.gpu_taint_key, "operator": "Exists", "effect": _CONTRACT.gpu_taint_effect}
CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Exists",
    "effect": "NoSchedule",
}
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def driver_module_check(node: Node, kernel: str, vermagic: str | None, error: str = "") -> Check:
    """The nvidia module in /lib/modules of the running kernel, built for exactly that kernel."""
    name = f"{node.name}: driver module for the running kernel"
    fix = (
        f"make bootstrap (installs linux-modules-nvidia-580-server-{kernel or '$(uname -r)'} or rebuilds with"
        " DKMS, then reboots); on the node: dkms status; apt-mark showhold"
    )
    if vermagic is None:
        said = error.strip().splitlines()[-1] if error.strip() else "modinfo failed"
        return Check(name, "fail", f"no nvidia module for kernel {kernel}: {said}", fix)
    built_for = vermagic.split()[0] if vermagic.split() else "?"
    if built_for != kernel:
        return Check(
            name, "fail", f"nvidia module built for {built_for}, the running kernel is {kernel}", fix
        )
    return Check(name, "ok", f"nvidia built for {kernel}")


def runtime_class_check(found: dict[str, Any] | None, error: str = "") -> Check:
    name = f"RuntimeClass {RUNTIME_CLASS}"
    fix = "make bootstrap (label-gpu-node creates it)"
    if found is None:
        return Check(name, "fail", f"absent: GPU pods are rejected ({error.strip() or 'NotFound'})", fix)
    if found.get("handler") != RUNTIME_CLASS:
        return Check(
            name,
            "fail",
            f"handler {found.get('handler')!r}, not {RUNTIME_CLASS!r}:"
            " GPU pods would run without the NVIDIA runtime",
            f"kubectl delete runtimeclass {RUNTIME_CLASS}; then {fix}",
        )
    return Check(name, "ok", f"handler {RUNTIME_CLASS} (containerd's nvidia runtime)")


def container_problem(pod: dict[str, Any]) -> str:
    for status in pod.get("status", {}).get("containerStatuses", []):
        state = status.get("state", {})
        if "waiting" in state:
            waiting = state["waiting"]
            return f"waiting: {waiting.get('reason', '?')} {waiting.get('message', '')}".strip()
        if "terminated" in state:
            ended = state["terminated"]
            said = f"exited {ended.get('exitCode')} ({ended.get('reason', '?')})"
            return f"{said} {ended.get('message', '')}".strip()
    return ""


def pod_problem(pod: dict[str, Any] | None) -> str:
    """Why a pod is not where it should be, in the words of the scheduler or the kubelet."""
    if pod is None:
        return "the pod does not exist"
    for condition in pod.get("status", {}).get("conditions", []):
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('message', condition.get('reason', ''))}"
    return container_problem(pod) or f"phase {pod.get('status', {}).get('phase', '?')}"


def device_plugin_check(node: Node, pods: list[dict[str, Any]], installed: bool, allocatable: int) -> Check:
    name = f"{node.name}: device plugin"
    if not pods:
        if not installed:
            return Check(
                name,
                "warn",
                "not installed yet: nvidia.com/gpu allocatable 0 until the platform chart runs it",
                "helm install llama ./charts/platform -f values/aws-t4.yaml",
            )
        return Check(
            name,
            "fail",
            "its DaemonSet exists but no pod of it runs on this node",
            "kubectl get ds -A -l app.kubernetes.io/component=gpu-device-plugin; the node needs the label"
            f" {_CONTRACT.gpu_label} (make bootstrap)",
        )
    pod = pods[0]
    where = f"{pod['metadata'].get('namespace', 'default')}/{pod['metadata']['name']}"
    phase = pod.get("status", {}).get("phase")
    ready = all(c.get("ready") for c in pod.get("status", {}).get("containerStatuses", [{}]))
    if phase != "Running" or not ready:
        return Check(
            name,
            "fail",
            f"{where} is {phase}, not ready: {pod_problem(pod)}",
            f"kubectl -n {pod['metadata'].get('namespace', 'default')} logs {pod['metadata']['name']};"
            " a plugin without NVML is the runtime or driver check above",
        )
    if allocatable < 1:
        return Check(
            name,
            "fail",
            f"{where} runs but never registered with the kubelet: nvidia.com/gpu allocatable 0",
            f"kubectl -n {pod['metadata'].get('namespace', 'default')} logs {pod['metadata']['name']};"
            " on the node: ls /var/lib/kubelet/device-plugins; kubectl delete pod of the plugin to"
            " make it register again",
        )
    return Check(name, "ok", f"{where} Running and registered: nvidia.com/gpu allocatable {allocatable}")


def gpu_smoke_pod_manifest(node: Node) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": GPU_SMOKE_POD, "labels": {"app.kubernetes.io/name": "node-bootstrap-doctor"}},
        "spec": {
            "restartPolicy": "Never",
            "runtimeClassName": RUNTIME_CLASS,
            "nodeSelector": {"kubernetes.io/hostname": node.name},
            "tolerations": [GPU_TOLERATION],
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "nvidia-smi",
                    "image": GPU_SMOKE_IMAGE,
                    "command": ["nvidia-smi", "-L"],
                    "env": [{"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "utility"}],
                    "resources": {"limits": {"nvidia.com/gpu": 1}},
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }


def skipped_smoke_pod(node: Node) -> Check:
    return Check(
        f"{node.name}: GPU pod", "warn", "not run: no device plugin with an allocatable GPU (see above)"
    )


def gpu_smoke_check(node: Node, pod: dict[str, Any] | None, logs: str, error: str) -> Check:
    name = f"{node.name}: GPU pod"
    fix = (
        "see the CRI runtimes, RuntimeClass and device plugin checks; kubectl describe pod"
        f" {GPU_SMOKE_POD} while it runs (make doctor)"
    )
    phase = (pod or {}).get("status", {}).get("phase")
    if pod is None or phase not in ("Succeeded", "Failed"):
        return Check(name, "fail", f"nvidia-smi pod did not finish: {error or pod_problem(pod)}", fix)
    gpus = [line for line in logs.splitlines() if line.startswith("GPU ")]
    if phase == "Failed":
        said = logs.strip().splitlines()[-1] if logs.strip() else pod_problem(pod)
        return Check(name, "fail", f"nvidia-smi under RuntimeClass {RUNTIME_CLASS} failed: {said}", fix)
    if len(gpus) != 1:
        return Check(
            name,
            "fail",
            f"the pod asked for 1 GPU and sees {len(gpus)}",
            "the device plugin must pass only the allocated GPU (NVIDIA_VISIBLE_DEVICES); check the"
            " plugin's deviceListStrategy and that no pod sets NVIDIA_VISIBLE_DEVICES=all",
        )
    return Check(name, "ok", f"runtimeClassName {RUNTIME_CLASS}, 1 GPU: {gpus[0]}")


def _net_pod(name: str, node: Node, command: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "node-bootstrap-doctor"}},
        "spec": {
            "restartPolicy": "Never",
            "nodeName": node.name,
            "tolerations": [GPU_TOLERATION, CONTROL_PLANE_TOLERATION],
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "net",
                    "image": NET_IMAGE,
                    "command": ["sh", "-c", command],
                    "securityContext": RESTRICTED,
                }
            ],
        },
    }


def net_server_manifest(node: Node) -> dict[str, Any]:
    return _net_pod(NET_SERVER, node, f"mkdir -p /tmp/www && exec httpd -f -p {NET_PORT} -h /tmp/www")


def net_client_manifest(node: Node, server_ip: str) -> dict[str, Any]:
    return _net_pod(
        NET_CLIENT,
        node,
        "nslookup kubernetes.default.svc.cluster.local && echo dns-ok"
        f" && wget -q -T 5 -O /dev/null http://{server_ip}:{NET_PORT}/ && echo pod-to-pod-ok",
    )


def net_checks(
    server: Node, client: Node, address: str, pod: dict[str, Any] | None, logs: str, error: str
) -> list[Check]:
    across = f"{client.name} -> {server.name}"
    dns_fix = (
        "kubectl -n kube-system get pods -l k8s-app=kube-dns -o wide; CoreDNS on another node is reached"
        " over VXLAN: see the pod-to-pod check"
    )
    net_fix = (
        "the security group must allow UDP 4789 (Calico VXLAN) between the nodes (terraform/security.tf);"
        " Calico's MTU must be the ENI's minus 50 (8951 for 9001); kubectl -n calico-system get pods -o wide"
    )
    phase = (pod or {}).get("status", {}).get("phase")
    if pod is None or phase not in ("Succeeded", "Failed"):
        problem = error or pod_problem(pod)
        return [
            Check("DNS from a pod", "fail", f"client pod on {client.name} did not finish: {problem}", dns_fix)
        ]
    said = logs.strip().splitlines()[-1] if logs.strip() else pod_problem(pod)
    dns_ok = "dns-ok" in logs.split()
    checks = [
        Check.passed_if(
            "DNS from a pod",
            dns_ok,
            f"kubernetes.default from {client.name}" + ("" if dns_ok else f": {said}"),
            dns_fix,
        )
    ]
    if dns_ok:
        reached = "pod-to-pod-ok" in logs.split()
        checks.append(
            Check.passed_if(
                "pod-to-pod across nodes",
                reached,
                f"{across} ({address}:{NET_PORT})" + ("" if reached else f": {said}"),
                net_fix,
            )
        )
    return checks


def print_checks(checks: list[Check], console: Console, table: bool = True) -> None:
    """A table (table=False: one plain line per check, for logs), then every failure once more."""
    if table:
        view = Table(title="node-bootstrap doctor")
        view.add_column("check")
        view.add_column("result")
        view.add_column("detail", overflow="fold")
        view.add_column("fix", overflow="fold")
        colours = {"ok": "green", "warn": "yellow", "fail": "bold red"}
        for check in checks:
            view.add_row(check.name, f"[{colours[check.status]}]{check.status}[/]", check.detail, check.fix)
        console.print(view)
    else:
        for check in checks:
            if check.status != "fail":
                line = f"{check.status.upper():4} {check.name}: {check.detail}"
                console.print(
                    line + (f" (next: {check.fix})" if check.fix else ""),
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
    # The failures once more as plain lines: whole sentences to copy, also in a narrow CI log.
    for check in checks:
        if check.status == "fail":
            console.print(
                f"FAIL {check.name}: {check.detail}\n  fix: {check.fix}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
