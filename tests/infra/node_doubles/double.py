#!/usr/bin/env python3
"""TEST DOUBLES for what cannot exist on the test machine, run inside each sandboxed node.

One multi-call program: `double.py NAME ARGS...`, installed as NAME by the sandbox (kernel and
init: cloud-init, modprobe, sysctl, swapon, swapoff, systemctl, mount, mountpoint, lsblk) or by
the double apt packages (kubeadm, kubelet, kubectl, containerd, nvidia-smi, nvidia-ctk).
Every call is appended to the shared calls log with `mutates` telling whether it changed
state, so a test can assert the kubeadm checklist order and that a second run changes nothing.

The cluster "API server" these doubles share is a directory bind-mounted into every node
(/srv/cluster-double): kubeadm init/join register nodes there, kubectl reads and edits it.
Runs under the node's system python3 with the standard library only.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path

CLUSTER = Path("/srv/cluster-double")
STATE = Path("/var/lib/node-doubles")
NODE = Path("/etc/node-double-name").read_text().strip() if Path("/etc/node-double-name").exists() else "?"
CALLS = CLUSTER / "calls.log"


def record(command: str, argv: list[str], mutates: bool, **extra: object) -> None:
    CLUSTER.mkdir(parents=True, exist_ok=True)
    line = json.dumps(
        {"t": time.time(), "node": NODE, "cmd": command, "argv": argv, "mutates": mutates, **extra}
    )
    with CALLS.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.write(line + "\n")


def load(path: Path, default: object) -> object:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return default


def save(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1))
    tmp.replace(path)


class Locked:
    """The shared cluster state is edited by several nodes at once."""

    def __enter__(self) -> Locked:
        CLUSTER.mkdir(parents=True, exist_ok=True)
        self.handle = (CLUSTER / ".lock").open("a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def fail(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


# -- kernel and init -------------------------------------------------------------------------
def cloud_init(argv: list[str]) -> None:
    record("cloud-init", argv, False)
    if argv[:1] == ["status"]:
        print("status: done")


def modprobe(argv: list[str]) -> None:
    modules = [a for a in argv if not a.startswith("-")]
    record("modprobe", argv, True)
    for module in modules:
        # The sandbox's /sys is a plain directory of the node's own root, not the host's sysfs.
        Path("/sys/module", module).mkdir(parents=True, exist_ok=True)


def sysctl(argv: list[str]) -> None:
    values = load(STATE / "sysctl.json", {})
    if "-n" in argv:
        key = argv[-1]
        record("sysctl", argv, False)
        if key not in values:
            fail(f"sysctl: cannot stat /proc/sys/{key.replace('.', '/')}: No such file or directory", 255)
        print(values[key])
        return
    if "-p" in argv:
        record("sysctl", argv, True)
        for line in Path(argv[-1]).read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = (part.strip() for part in line.split("=", 1))
                values[key] = value
        save(STATE / "sysctl.json", values)
        return
    fail(f"sysctl double: unsupported arguments {argv}")


def swapon(argv: list[str]) -> None:
    record("swapon", argv, False)
    for device in load(STATE / "swap.json", []):
        print(device)


def swapoff(argv: list[str]) -> None:
    record("swapoff", argv, True)
    save(STATE / "swap.json", [])


def systemctl(argv: list[str]) -> None:
    units = load(STATE / "units.json", {})
    args = [a for a in argv if not a.startswith("--")]
    verb, names = args[0], args[1:]
    if verb in ("is-active", "is-enabled"):
        record("systemctl", argv, False)
        key = "active" if verb == "is-active" else "enabled"
        if not all(units.get(n, {}).get(key) for n in names):
            sys.exit(3)
        return
    record("systemctl", argv, True)
    for name in names:
        unit = units.setdefault(name, {})
        if verb in ("restart", "start"):
            unit["active"] = True
        elif verb == "enable":
            unit["enabled"] = True
            if "--now" in argv:
                unit["active"] = True
        elif verb != "reboot":
            fail(f"systemctl double: unsupported verb {verb}")
    save(STATE / "units.json", units)


def mountpoint(argv: list[str]) -> None:
    record("mountpoint", argv, False)
    if argv[-1] not in load(STATE / "mounts.json", []):
        sys.exit(32)


def mount(argv: list[str]) -> None:
    target = argv[-1]
    entry = [line for line in Path("/etc/fstab").read_text().splitlines() if f" {target} " in line]
    if not entry:
        fail(f"mount: {target}: can't find in /etc/fstab.")
    record("mount", argv, True, fstab=entry[0])
    mounts = load(STATE / "mounts.json", [])
    save(STATE / "mounts.json", [*mounts, target])


def lsblk(argv: list[str]) -> None:
    record("lsblk", argv, False)
    print("/dev/nvme0n1 Amazon Elastic Block Store")
    if Path("/srv/instance-store.img").exists():
        print("/srv/instance-store.img Amazon EC2 NVMe Instance Storage")


# -- kubeadm ------------------------------------------------------------------------------------
def kubeconfig_text(server: str) -> str:
    key = base64.b64encode(secrets.token_bytes(48)).decode()
    return (
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: Q0EK\n"
        f"    server: {server}\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n"
        "    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\n"
        "current-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user:\n"
        f"    client-certificate-data: Q0VSVAo=\n    client-key-data: {key}\n"
    )


def field(text: str, name: str) -> str:
    match = re.search(rf"^\s*{name}:\s*\"?([^\"\n]*)\"?", text, re.M)
    return match.group(1).strip() if match else ""


def kubeadm(argv: list[str]) -> None:
    if argv[:1] == ["init"]:
        config = Path(argv[argv.index("--config") + 1]).read_text()
        record(
            "kubeadm",
            argv,
            True,
            kubernetesVersion=field(config, "kubernetesVersion"),
            podSubnet=field(config, "podSubnet"),
            name=field(config, "name"),
        )
        if "--skip-token-print" not in argv:
            fail("kubeadm double: init must not print its token (--skip-token-print)")
        address = field(config, "advertiseAddress")
        kube = Path("/etc/kubernetes")
        (kube / "manifests").mkdir(parents=True, exist_ok=True)
        (kube / "manifests/kube-apiserver.yaml").write_text("# kube-apiserver static pod (double)\n")
        (kube / "admin.conf").write_text(kubeconfig_text(f"https://{address}:6443"))
        (kube / "admin.conf").chmod(0o600)
        (kube / "kubelet.conf").write_text("# kubelet.conf (double)\n")
        with Locked():
            save(CLUSTER / "apiserver.json", {"endpoint": f"{address}:6443"})
            register(
                field(config, "name"),
                {"node-role.kubernetes.io/control-plane": ""},
                [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            )
        print("Your Kubernetes control-plane has initialized successfully!")
        return
    if argv[:2] == ["token", "create"]:
        record("kubeadm", argv, True)
        token = f"{secrets.token_hex(3)}.{secrets.token_hex(8)}"
        with Locked():
            tokens = load(CLUSTER / "tokens.json", {})
            tokens[token] = {"ttl": argv[argv.index("--ttl") + 1] if "--ttl" in argv else "24h"}
            save(CLUSTER / "tokens.json", tokens)
            issued = load(CLUSTER / "tokens-issued.json", [])
            save(CLUSTER / "tokens-issued.json", [*issued, token])
            endpoint = load(CLUSTER / "apiserver.json", {})["endpoint"]
        print(f"kubeadm join {endpoint} --token {token} --discovery-token-ca-cert-hash sha256:{'ab' * 32} ")
        return
    if argv[:2] == ["token", "delete"]:
        record("kubeadm", argv, True)
        with Locked():
            tokens = load(CLUSTER / "tokens.json", {})
            save(
                CLUSTER / "tokens.json", {t: v for t, v in tokens.items() if not t.startswith(argv[2] + ".")}
            )
        return
    if argv[:1] == ["join"]:
        path = Path(argv[argv.index("--config") + 1])
        mode = path.stat().st_mode & 0o777
        config = path.read_text()
        name = field(config, "name")
        record("kubeadm", argv, True, config_mode=oct(mode), name=name)
        with Locked():
            if field(config, "token") not in load(CLUSTER / "tokens.json", {}):
                fail("kubeadm double: [discovery] token is invalid or expired")
            labels = dict(kv.split("=", 1) for kv in field(config, "node-labels").split(",") if "=" in kv)
            taints = (
                [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
                if ("key: nvidia.com/gpu" in config)
                else []
            )
            register(name, labels, taints)
        Path("/etc/kubernetes/kubelet.conf").write_text("# kubelet.conf (double)\n")
        print("This node has joined the cluster")
        return
    if argv[:1] == ["version"]:
        record("kubeadm", argv, False)
        print("kubeadm version: v1.29.15 (test double)")
        return
    fail(f"kubeadm double: unsupported arguments {argv}")


def register(name: str, labels: dict, taints: list) -> None:
    nodes = load(CLUSTER / "nodes.json", {})
    nodes[name] = {"labels": {"kubernetes.io/hostname": name, **labels}, "taints": taints}
    save(CLUSTER / "nodes.json", nodes)


# -- kubectl ------------------------------------------------------------------------------------
def node_object(name: str, node: dict, network_ready: bool) -> dict:
    gpu = node["labels"].get("nvidia.com/gpu.present") == "true"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node["labels"]},
        "spec": {"taints": node["taints"]} if node["taints"] else {},
        "status": {
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True" if network_ready else "False",
                    "message": "kubelet is posting ready status"
                    if network_ready
                    else "container runtime network not ready: cni plugin not initialized",
                }
            ],
            "allocatable": {"cpu": "2", "memory": "3Gi", **({"nvidia.com/gpu": "0"} if gpu else {})},
        },
    }


def kubectl(argv: list[str]) -> None:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    args = []
    for arg in argv:
        if arg.startswith("--kubeconfig="):
            kubeconfig = arg.split("=", 1)[1]
        else:
            args.append(arg)
    if not kubeconfig or not Path(kubeconfig).exists():
        fail(
            "The connection to the server localhost:8080 was refused - "
            "did you specify the right host or port?"
        )
    verb = args[0]
    mutating = verb in ("create", "apply", "annotate", "label", "taint")
    record("kubectl", argv, mutating)
    with Locked():
        nodes = load(CLUSTER / "nodes.json", {})
        calico = load(CLUSTER / "calico.json", {})
        network_ready = bool(calico.get("installation"))
        if verb == "get":
            kind = args[1]
            as_json = "-o" in args and args[args.index("-o") + 1] == "json"
            if kind == "nodes":
                items = [node_object(n, v, network_ready) for n, v in sorted(nodes.items())]
                print(json.dumps({"kind": "List", "items": items}))
            elif kind == "node":
                name = args[2]
                if name not in nodes:
                    fail(f'Error from server (NotFound): nodes "{name}" not found')
                print(json.dumps(node_object(name, nodes[name], network_ready)))
            elif kind == "deployment":
                if not calico.get("operator"):
                    fail('Error from server (NotFound): deployments.apps "tigera-operator" not found')
                print("tigera-operator   1/1     1            1           1m")
            elif kind == "installation":
                if not calico.get("installation"):
                    fail('Error from server (NotFound): installations.operator.tigera.io "default" not found')
                print(json.dumps(calico["installation"]))
            elif kind == "tigerastatus":
                if not calico.get("installation"):
                    fail('Error from server (NotFound): tigerastatuses.operator.tigera.io "calico" not found')
                print(json.dumps({"status": {"conditions": [{"type": "Available", "status": "True"}]}}))
            elif kind == "daemonsets":
                print(json.dumps({"items": []}))
            else:
                fail(f"kubectl double: unsupported get {kind}")
            _ = as_json
        elif verb == "create":
            calico["operator"] = {"source": args[args.index("-f") + 1]}
        elif verb == "wait":
            if not calico.get("operator"):
                fail('error: the server doesn\'t have a resource type "crd/installations.operator.tigera.io"')
        elif verb == "apply":
            text = Path(args[args.index("-f") + 1]).read_text()
            calico["installation"] = {
                "metadata": {"name": "default", "annotations": {}},
                "spec": {
                    "mtu": field(text, "mtu"),
                    "encapsulation": field(text, "encapsulation"),
                    "cidr": field(text, "cidr"),
                },
            }
        elif verb == "annotate":
            key, value = args[3].split("=", 1)
            calico["installation"]["metadata"]["annotations"][key] = value
        elif verb == "label":
            key, value = args[3].split("=", 1)
            nodes[args[2]]["labels"][key] = value
        elif verb == "taint":
            key, rest = args[3].split("=", 1)
            value, effect = rest.split(":")
            taints = [t for t in nodes[args[2]]["taints"] if t["key"] != key]
            nodes[args[2]]["taints"] = [*taints, {"key": key, "value": value, "effect": effect}]
        else:
            fail(f"kubectl double: unsupported verb {verb}")
        save(CLUSTER / "nodes.json", nodes)
        save(CLUSTER / "calico.json", calico)


# -- containerd and NVIDIA ------------------------------------------------------------------
def containerd(argv: list[str]) -> None:
    record("containerd", argv, False)
    if argv[:2] == ["config", "dump"]:
        parts = [Path("/etc/containerd/config.toml"), *sorted(Path("/etc/containerd/conf.d").glob("*.toml"))]
        print("\n".join(p.read_text() for p in parts if p.exists()))
    elif argv[:1] == ["--version"]:
        print("containerd github.com/containerd/containerd 1.7.12 (test double)")


def nvidia_smi(argv: list[str]) -> None:
    record("nvidia-smi", argv, False)
    if not Path("/sys/module/nvidia").is_dir():
        fail(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
            "Make sure that the latest NVIDIA driver is installed and running.",
            9,
        )
    query = next((a.split("=", 1)[1] for a in argv if a.startswith("--query-gpu=")), "")
    values = {
        "name": "Tesla T4",
        "driver_version": "580.95.05",
        "compute_cap": "7.5",
        "memory.total": "15360",
    }
    if query:
        print(", ".join(values[q] for q in query.split(",")))
    else:
        print("Tesla T4 (test double)")


def nvidia_ctk(argv: list[str]) -> None:
    record("nvidia-ctk", argv, True)
    config = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
    Path(config).write_text(
        'version = 2\n\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]\n'
        '  runtime_type = "io.containerd.runc.v2"\n\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]\n'
        '  BinaryName = "/usr/bin/nvidia-container-runtime"\n  SystemdCgroup = true\n'
    )


def kubelet(argv: list[str]) -> None:
    record("kubelet", argv, False)
    print("Kubernetes v1.29.15 (test double)")


COMMANDS = {
    "cloud-init": cloud_init,
    "modprobe": modprobe,
    "sysctl": sysctl,
    "swapon": swapon,
    "swapoff": swapoff,
    "systemctl": systemctl,
    "mountpoint": mountpoint,
    "mount": mount,
    "lsblk": lsblk,
    "kubeadm": kubeadm,
    "kubectl": kubectl,
    "kubelet": kubelet,
    "containerd": containerd,
    "nvidia-smi": nvidia_smi,
    "nvidia-ctk": nvidia_ctk,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
