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
import contextlib
import copy
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
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


def available_modules() -> set[str]:
    """The modules the node's kernel has: Ubuntu 22.04's AWS kernel ships overlay and br_netfilter
    (no aufs); nvidia exists once the driver package is installed and its module was built for
    the running kernel (a test sets STATE/nvidia-module-missing to mimic a kernel without it)."""
    modules = {"overlay", "br_netfilter"}
    for package in (f"linux-modules-nvidia-580-server-{os.uname().release}", "nvidia-headless-580-server"):
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${db:Status-Abbrev}", package],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if status[1:2] == "i" and not (STATE / "nvidia-module-missing").exists():
            modules.add("nvidia")
    return modules


def modprobe(argv: list[str]) -> None:
    modules = [a for a in argv if not a.startswith("-")]
    quiet = "-q" in argv
    for module in modules:
        if module not in available_modules():
            record("modprobe", argv, False, error="not found")
            fail(
                ""
                if quiet
                else f"modprobe: FATAL: Module {module} not found in directory /lib/modules/6.8.0-1015-aws"
            )
        if Path("/sys/module", module).is_dir():
            record("modprobe", argv, False)
            continue
        record("modprobe", argv, True)
        # The sandbox's /sys is a plain directory of the node's own root, not the host's sysfs.
        Path("/sys/module", module).mkdir(parents=True, exist_ok=True)


def modinfo(argv: list[str]) -> None:
    """TEST DOUBLE of kmod 31's modinfo (tools/modinfo.c): `modinfo [-k KERNEL] -F FIELD MODULE`
    looks in /lib/modules/KERNEL (default: the running kernel, `uname -r`); vermagic starts with
    the release the module was built for. STATE/nvidia-module-kernel names another release: a
    DKMS build for a kernel that is no longer the running one."""
    record("modinfo", argv, False)
    kernel = argv[argv.index("-k") + 1] if "-k" in argv else os.uname().release
    module = argv[-1]
    if module not in available_modules():
        fail(f"modinfo: ERROR: Module {module} not found.")
    built_for = kernel
    if module == "nvidia" and (STATE / "nvidia-module-kernel").exists():
        built_for = (STATE / "nvidia-module-kernel").read_text().strip()
    fields = {
        "vermagic": f"{built_for} SMP preempt mod_unload modversions ",
        "filename": f"/lib/modules/{kernel}/kernel/{module}.ko",
        "version": "580.95.05" if module == "nvidia" else "",
    }
    if "-F" in argv:
        print(fields.get(argv[argv.index("-F") + 1], ""))
    else:
        print("".join(f"{k}:{' ' * (16 - len(k))}{v}\n" for k, v in fields.items()), end="")


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


def run_unit(name: str) -> bool:
    """A oneshot unit with an ExecStart in /etc/systemd/system: run it, as systemd would."""
    unit = Path(f"/etc/systemd/system/{name}.service")
    if not unit.exists():
        return True
    exec_start = re.search(r"^ExecStart=(.+)$", unit.read_text(), re.M)
    if exec_start is None:
        return True
    with open(f"/var/log/{name}.log", "ab") as log:
        return (
            subprocess.run(exec_start.group(1).split(), stdout=log, stderr=log, check=False).returncode == 0
        )


def start_unit(units: dict, name: str) -> None:
    if name == "containerd":
        start_containerd()
    elif not run_unit(name):
        units.setdefault(name, {})["active"] = False
        save(STATE / "units.json", units)
        fail(
            f"Job for {name}.service failed because the control process exited with error code.\n"
            f'See "systemctl status {name}.service" and "journalctl -xeu {name}.service" for details.'
        )
    units.setdefault(name, {})["active"] = True


def systemctl(argv: list[str]) -> None:
    units = load(STATE / "units.json", {})
    args = [a for a in argv if not a.startswith("--")]
    verb, names = args[0], args[1:]
    if verb in ("is-active", "is-enabled"):
        record("systemctl", argv, False)
        key = "active" if verb == "is-active" else "enabled"
        for name in names:
            if key == "active" and name == "containerd":
                ok = containerd_pid() is not None  # the real daemon, not a flag
            else:
                ok = bool(units.get(name, {}).get(key))
            if not ok:
                sys.exit(3)
        return
    record("systemctl", argv, True)
    if verb == "reboot":
        boot([])
        return
    if verb == "daemon-reload":
        return
    for name in names:
        if verb == "enable":
            units.setdefault(name, {})["enabled"] = True
            if "--now" in argv and not units[name].get("active"):
                start_unit(units, name)
        elif verb == "restart" or (verb == "start" and not units.get(name, {}).get("active")):
            start_unit(units, name)
        elif verb != "start":
            fail(f"systemctl double: unsupported verb {verb}")
    save(STATE / "units.json", units)


def boot(argv: list[str]) -> None:
    """TEST HOOK, not a program: the node boots again (a reboot, or a stop/start: then the test
    blanks the instance store first). What the kernel and systemd do at boot, in their order:
    runtime state is gone, systemd-modules-load and udev load modules (nvidia when its module
    exists for the kernel), systemd-sysctl applies /etc/sysctl.d, then the enabled units start,
    each after what it is ordered after (Before=kubelet.service first, the kubelet last, and
    not at all when a unit its drop-ins Require failed)."""
    record("boot", argv, True)
    stop_containerd()
    save(STATE / "mounts.json", [])
    save(STATE / "sysctl.json", {})
    for module in Path("/sys/module").glob("*"):
        module.rmdir()
    for conf in sorted(c for c in Path("/etc/modules-load.d").glob("*.conf") if c.is_file()):
        for line in conf.read_text().splitlines():
            if line.strip() and not line.lstrip().startswith(("#", ";")):
                modprobe([line.strip()])
    if "nvidia" in available_modules():
        modprobe(["nvidia"])
    for conf in sorted(c for c in Path("/etc/sysctl.d").glob("*.conf") if c.is_file()):
        sysctl(["-q", "-p", str(conf)])
    units = load(STATE / "units.json", {})
    for unit in units.values():
        unit["active"] = False

    def order(name: str) -> int:
        unit = Path(f"/etc/systemd/system/{name}.service")
        if unit.exists() and "Before=kubelet.service" in unit.read_text():
            return 0
        return {"containerd": 1, "kubelet": 3}.get(name, 2)

    for name in sorted((n for n, u in units.items() if u.get("enabled")), key=order):
        required = [
            m.group(1).removesuffix(".service")
            for dropin in Path(f"/etc/systemd/system/{name}.service.d").glob("*.conf")
            for m in re.finditer(r"^Requires=(\S+)", dropin.read_text(), re.M)
        ]
        if any(not units.get(r, {}).get("active") for r in required):
            continue  # systemd: "Dependency failed for ..."
        if name == "containerd":
            start_containerd()
            units[name]["active"] = True
        else:
            units[name]["active"] = run_unit(name)
    save(STATE / "units.json", units)


def mountpoint(argv: list[str]) -> None:
    record("mountpoint", argv, False)
    if argv[-1] not in load(STATE / "mounts.json", []):
        sys.exit(32)


def mount(argv: list[str]) -> None:
    """`mount TARGET` (from /etc/fstab) or `mount [-o OPTS] DEVICE TARGET`, as util-linux's mount."""
    positional = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] != "-o")]
    target = positional[-1]
    if len(positional) == 1:
        entry = [line for line in Path("/etc/fstab").read_text().splitlines() if f" {target} " in line]
        if not entry:
            fail(f"mount: {target}: can't find in /etc/fstab.")
        device = entry[0].split()[0]
    else:
        device = positional[0]
    if not Path(target).is_dir():
        fail(f"mount: {target}: mount point does not exist.")
    blkid = subprocess.run(["blkid", "-o", "value", "-s", "TYPE", device], capture_output=True, text=True)
    if device.startswith("/") and blkid.stdout.strip() == "":
        fail(f"mount: {target}: wrong fs type, bad option, bad superblock on {device}, or other error.")
    record("mount", argv, True, device=device)
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


def instance_addresses() -> set[str]:
    """The addresses the instance itself has: eth0's (the VPC). eth1 carries the sandbox's public
    address, which on EC2 is the internet gateway's NAT and on no interface of the instance."""
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"], capture_output=True, text=True)
    return set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", shown.stdout))


def check_node_ip(config: str) -> None:
    """kubelet v1.29 (pkg/kubelet/nodestatus/setters.go, validateNodeIP): --node-ip must be one of
    the host's addresses, else the kubelet never starts and kubeadm times out waiting for it."""
    node_ip = field(config, "node-ip")
    if node_ip and node_ip not in instance_addresses():
        fail(
            f'[kubelet-check] kubelet: failed to validate nodeIP: node IP: "{node_ip}" not found in the '
            "host's network interfaces\n"
            "error execution phase kubelet-start: timed out waiting for the condition"
        )


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
            advertiseAddress=field(config, "advertiseAddress"),
        )
        if "--skip-token-print" not in argv:
            fail("kubeadm double: init must not print its token (--skip-token-print)")
        kube = Path("/etc/kubernetes")
        # kubeadm v1.29 preflight (cmd/kubeadm/app/preflight/checks.go FileAvailableCheck): files
        # of an earlier init stop it until `kubeadm reset`.
        for leftover in ("manifests/kube-apiserver.yaml", "admin.conf"):
            if (kube / leftover).exists():
                fail(
                    "error execution phase preflight: [preflight] Some fatal errors occurred:\n"
                    f"\t[ERROR FileAvailable--etc-kubernetes-{leftover.replace('/', '-')}]: "
                    f"/etc/kubernetes/{leftover} already exists\n"
                    "[preflight] If you know what you are doing, you can make a check non-fatal with "
                    "`--ignore-preflight-errors=...`"
                )
        address = field(config, "advertiseAddress")
        if address not in instance_addresses():
            # etcd and the API server bind the advertise address (kubeadm v1.29's etcd manifest:
            # --listen-peer-urls=https://ADDRESS:2380): an address the instance lacks stops init.
            fail(
                f"[wait-control-plane] etcd: listen tcp {address}:2380: "
                "bind: cannot assign requested address\n"
                "error execution phase wait-control-plane: couldn't initialize a Kubernetes cluster"
            )
        check_node_ip(config)
        (kube / "manifests").mkdir(parents=True, exist_ok=True)
        (kube / "manifests/kube-apiserver.yaml").write_text("# kube-apiserver static pod (double)\n")
        (kube / "admin.conf").write_text(kubeconfig_text(f"https://{address}:6443"))
        (kube / "admin.conf").chmod(0o600)
        (kube / "kubelet.conf").write_text("# kubelet.conf (double)\n")
        with Locked():
            save(CLUSTER / "apiserver.json", {"endpoint": f"{address}:6443", "node": NODE})
            register(
                field(config, "name"),
                {"node-role.kubernetes.io/control-plane": ""},
                [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            )
            # A test can cut init short after a phase, as a lost SSH session or a timeout would.
            inject = load(CLUSTER / "inject.json", {})
            if inject.pop("kubeadm-init-stops-before", None) == "addon":
                save(CLUSTER / "inject.json", inject)
                save(CLUSTER / "kube-system.json", {"configmap": ["kubeadm-config"]})
                fail("error execution phase addon/coredns: unable to create deployment: deadline exceeded")
            save(
                CLUSTER / "kube-system.json",
                {"configmap": ["kubeadm-config"], "daemonset": ["kube-proxy"], "deployment": ["coredns"]},
            )
        print("Your Kubernetes control-plane has initialized successfully!")
        return
    if argv[:1] == ["reset"]:
        record("kubeadm", argv, True)
        if "--force" not in argv and "-f" not in argv:
            fail("kubeadm double: reset asks for confirmation on a terminal; use --force")
        shutil.rmtree("/etc/kubernetes", ignore_errors=True)
        Path("/etc/kubernetes/manifests").mkdir(parents=True, exist_ok=True)
        with Locked():
            nodes = load(CLUSTER / "nodes.json", {})
            nodes.pop(NODE, None)
            save(CLUSTER / "nodes.json", nodes)
            if (CLUSTER / "apiserver.json").exists() and load(CLUSTER / "apiserver.json", {}).get(
                "node", NODE
            ) == NODE:
                (CLUSTER / "apiserver.json").unlink()
                (CLUSTER / "kube-system.json").unlink(missing_ok=True)
        print("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
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
        record(
            "kubeadm",
            argv,
            True,
            config_mode=oct(mode),
            name=name,
            endpoint=field(config, "apiServerEndpoint"),
        )
        check_node_ip(config)
        endpoint = field(config, "apiServerEndpoint")
        with Locked():
            served = load(CLUSTER / "apiserver.json", {}).get("endpoint")
            if endpoint != served:
                # Only the API server's private address is open to the nodes (security group).
                fail(
                    "error execution phase preflight: couldn't validate the identity of the API Server: "
                    f'Get "https://{endpoint}/api/v1/namespaces/kube-public/configmaps/cluster-info'
                    f'?timeout=10s": dial tcp {endpoint}: i/o timeout'
                )
            if field(config, "token") not in load(CLUSTER / "tokens.json", {}):
                fail("kubeadm double: [discovery] token is invalid or expired")
            if name in load(CLUSTER / "nodes.json", {}):
                # kubeadm v1.29 phases/kubelet.go (join): a Ready Node of that name blocks the join.
                fail(
                    f'error execution phase kubelet-start: a Node with name "{name}" and status "Ready" '
                    "already exists in the cluster. You must delete the existing Node or change the "
                    "name of this new joining Node"
                )
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


# -- kubectl and the API server's objects -------------------------------------------------------
# TEST DOUBLE of kubectl v1.29.15 against a kube-apiserver, scheduler and kubelets of the same
# release. What the cluster would decide (a node Ready, nvidia.com/gpu allocatable, where a pod
# lands, what its container prints) follows upstream and is driven by CLUSTER/api.json, which a
# test sets (sandbox.Lab.set_api):
#   not_ready_polls   {node: N}  the node reports Ready=False to the next N reads of it (a kubelet
#                                still starting), then Ready
#   gpus              {node: N}  GPUs the device plugin finds on the node (default 1 on a node
#                                labelled nvidia.com/gpu.present=true)
#   allocatable_gpus  {node: N}  overrides what the kubelet advertises (a plugin that runs but
#                                never registered: 0)
#   pod_gpus_visible  {node: N}  GPUs a container on the node sees (default: those it was given)
#   network           {"dns": bool, "cross_node": bool}  CoreDNS answers; VXLAN between nodes
#   daemonsets, pods  objects as the API returns them (pods with a status are taken as they are)
#   runtimeclasses    {name: handler}
# Upstream behaviour followed (kubernetes v1.29):
#   - the kubelet's device manager (pkg/kubelet/cm/devicemanager/manager.go) advertises
#     nvidia.com/gpu only once a device plugin registered: here, once a Running and Ready pod of
#     the device plugin is on the node;
#   - the RuntimeClass admission plugin (plugin/pkg/admission/runtimeclass/admission.go) rejects
#     a pod whose runtimeClassName does not exist: `pod rejected: RuntimeClass "x" not found`;
#   - the scheduler (pkg/scheduler/framework/plugins: tainttoleration, nodeaffinity,
#     noderesources) leaves a pod Pending with "0/N nodes are available: ..." when no node fits;
#   - a container's command runs under its node's runtime: without RuntimeClass nvidia, runc has
#     no nvidia-smi to start (StartError); with it, nvidia-smi -L lists the GPUs it was given.
API = CLUSTER / "api.json"
POD_NETWORK = "192.168"


def node_ready(name: str, network_ready: bool, api: dict) -> tuple[bool, str]:
    if not network_ready:
        return False, "container runtime network not ready: cni plugin not initialized"
    waiting = api.setdefault("not_ready_polls", {})
    if waiting.get(name, 0) > 0:
        waiting[name] -= 1
        return False, "[container runtime status check may not have completed yet, PLEG is not healthy]"
    return True, "kubelet is posting ready status"


def pod_ready(pod: dict) -> bool:
    status = pod.get("status", {})
    return status.get("phase") == "Running" and all(
        c.get("ready") for c in status.get("containerStatuses", [{}])
    )


def is_device_plugin(pod: dict) -> bool:
    labels = pod.get("metadata", {}).get("labels", {})
    return labels.get("app.kubernetes.io/component") == "gpu-device-plugin"


def allocatable_gpus(name: str, node: dict, api: dict) -> int:
    if name in api.get("allocatable_gpus", {}):
        return int(api["allocatable_gpus"][name])
    if node["labels"].get("nvidia.com/gpu.present") != "true":
        return 0
    registered = any(
        is_device_plugin(p) and p.get("spec", {}).get("nodeName") == name and pod_ready(p)
        for p in api.get("pods", [])
    )
    return int(api.get("gpus", {}).get(name, 1)) if registered else 0


def node_object(name: str, node: dict, network_ready: bool, api: dict) -> dict:
    gpu = node["labels"].get("nvidia.com/gpu.present") == "true"
    ready, message = node_ready(name, network_ready, api)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": node["labels"]},
        "spec": {"taints": node["taints"]} if node["taints"] else {},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False", "message": message}],
            "allocatable": {
                "cpu": "4",
                "memory": "14848Mi",
                **({"nvidia.com/gpu": str(allocatable_gpus(name, node, api))} if gpu else {}),
            },
        },
    }


def kubeconfig_server(path: str) -> str:
    match = re.search(r"server: https://(\S+)", Path(path).read_text())
    return match.group(1) if match else "localhost:8080"


def selector_matches(selector: str, labels: dict) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def tolerated(taint: dict, tolerations: list[dict]) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, "", taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


def gpus_requested(pod: dict) -> int:
    return sum(
        int(c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu", 0))
        for c in pod["spec"].get("containers", [])
    )


def schedule(pod: dict, nodes: dict, api: dict) -> tuple[str | None, str]:
    """The node the scheduler binds the pod to, or None and the FailedScheduling message."""
    if pod["spec"].get("nodeName"):
        return pod["spec"]["nodeName"], ""
    reasons: dict[str, int] = {}
    for name, node in sorted(nodes.items()):
        selector = pod["spec"].get("nodeSelector", {})
        untolerated = [
            t
            for t in node["taints"]
            if t.get("effect") == "NoSchedule" and not tolerated(t, pod["spec"].get("tolerations", []))
        ]
        if any(node["labels"].get(k) != v for k, v in selector.items()):
            reason = "node(s) didn't match Pod's node affinity/selector"
        elif untolerated:
            t = untolerated[0]
            reason = f"node(s) had untolerated taint {{{t['key']}: {t.get('value', '')}}}"
        elif gpus_requested(pod) > allocatable_gpus(name, node, api) - gpus_in_use(name, api, pod):
            reason = "Insufficient nvidia.com/gpu"
        else:
            return name, ""
        reasons[reason] = reasons.get(reason, 0) + 1
    listed = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
    return (
        None,
        f"0/{len(nodes)} nodes are available: {listed}. preemption: 0/{len(nodes)} nodes are available.",
    )


def gpus_in_use(node: str, api: dict, other_than: dict) -> int:
    return sum(
        gpus_requested(p)
        for p in api.get("pods", [])
        if p is not other_than
        and p.get("spec", {}).get("nodeName") == node
        and p.get("status", {}).get("phase") in ("Pending", "Running")
    )


def container_run(pod: dict, node: str, api: dict) -> tuple[str, int, str]:
    """(phase, exit code, output) of the pod's one container on `node` (see the header)."""
    container = pod["spec"]["containers"][0]
    command = [*container.get("command", []), *container.get("args", [])]
    script = command[-1] if command[:2] == ["sh", "-c"] else " ".join(command)
    if command[:1] == ["nvidia-smi"]:
        handler = api.get("runtimeclasses", {}).get(pod["spec"].get("runtimeClassName", ""), "runc")
        if handler != "nvidia":
            return (
                "Failed",
                128,
                "failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                'runc create failed: unable to start container process: exec: "nvidia-smi": executable '
                "file not found in $PATH: unknown",
            )
        visible = int(api.get("pod_gpus_visible", {}).get(node, gpus_requested(pod)))
        if visible == 0:
            return "Failed", 6, "No devices were found"
        return (
            "Succeeded",
            0,
            "".join(
                f"GPU {i}: Tesla T4 (UUID: GPU-{i:08x}-5ad0-e7a1-91b4-0c7e1f2d3a4b)\n" for i in range(visible)
            ),
        )
    if "httpd" in script:
        return "Running", 0, ""
    # busybox sh running `a && b && ...` of nslookup, wget and echo
    network = {"dns": True, "cross_node": True, **api.get("network", {})}
    out = ""
    for part in script.split(" && "):
        words = part.split()
        if words[0] == "nslookup":
            if not network["dns"]:
                return "Failed", 1, out + ";; connection timed out; no servers could be reached\n"
            out += (
                f"Server:\t\t10.96.0.10\nAddress:\t10.96.0.10:53\n\nName:\t{words[1]}\nAddress: 10.96.0.1\n"
            )
        elif words[0] == "wget":
            url = next(w for w in words if w.startswith("http://"))
            address = url.removeprefix("http://").split("/")[0].split(":")[0]
            server = next(
                (p for p in api.get("pods", []) if p.get("status", {}).get("podIP") == address), None
            )
            reachable = server is not None and server["status"].get("phase") == "Running"
            if reachable and server["spec"]["nodeName"] != node:
                reachable = network["cross_node"]
            if not reachable:
                return "Failed", 1, out + "wget: download timed out\n"
        elif words[0] == "echo":
            out += " ".join(words[1:]) + "\n"
        else:
            return "Failed", 127, out + f"sh: {words[0]}: not found\n"
    return "Succeeded", 0, out


def settle(pod: dict, nodes: dict, api: dict) -> None:
    """What the scheduler and the kubelet have done with a pod by the time it is read again."""
    status = pod.setdefault("status", {"phase": "Pending"})
    if status.get("phase") != "Pending" or pod.get("fixed"):
        return
    node, message = schedule(pod, nodes, api)
    if node is None:
        status["conditions"] = [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
        ]
        return
    if not pod["spec"].get("nodeName"):
        pod["spec"]["nodeName"] = node
        status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
        status["containerStatuses"] = [
            {"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]
        return  # bound now; the container starts by the next read
    index = sorted(nodes).index(node) if node in nodes else 0
    status["podIP"] = f"{POD_NETWORK}.{index}.{10 + len(api.get('pods', []))}"
    phase, code, output = container_run(pod, node, api)
    status["phase"] = phase
    pod["logs"] = "" if code == 128 else output  # a container that never started printed nothing
    if phase == "Running":
        status["containerStatuses"] = [{"ready": True, "state": {"running": {}}}]
    else:
        reason = "Completed" if code == 0 else ("StartError" if code == 128 else "Error")
        terminated = {"exitCode": code, "reason": reason, **({"message": output} if code == 128 else {})}
        status["containerStatuses"] = [{"ready": False, "state": {"terminated": terminated}}]


def public_pod(pod: dict) -> dict:
    return {k: v for k, v in pod.items() if k not in ("logs", "fixed")}


def kubectl_api(args: list[str], namespace: str, all_namespaces: bool, nodes: dict) -> bool:
    """The verbs on RuntimeClasses, DaemonSets and pods; False when `args` is none of them."""
    api = load(API, {})
    pods = api.setdefault("pods", [])
    for pod in pods:
        pod.setdefault("metadata", {}).setdefault("namespace", "default")
        if "status" in pod and "fixed" not in pod and pod.get("spec", {}).get("nodeName"):
            pod["fixed"] = pod["status"].get("phase") != "Pending"  # set by a test: taken as it is
    verb, kind = args[0], (args[1] if len(args) > 1 else "")
    name = args[2] if len(args) > 2 and not args[2].startswith("-") else ""
    selector = args[args.index("-l") + 1] if "-l" in args else ""

    def here(pod: dict) -> bool:
        return all_namespaces or pod["metadata"]["namespace"] == namespace

    if verb == "get" and kind in ("runtimeclass", "runtimeclasses"):
        classes = api.get("runtimeclasses", {})
        if name and name not in classes:
            fail(f'Error from server (NotFound): runtimeclasses.node.k8s.io "{name}" not found')
        objects = [
            {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": n}, "handler": h}
            for n, h in sorted(classes.items())
            if not name or n == name
        ]
        print(json.dumps(objects[0] if name else {"kind": "List", "items": objects}))
    elif verb == "get" and kind == "daemonsets":
        items = [
            d
            for d in api.get("daemonsets", [])
            if selector_matches(selector, d.get("metadata", {}).get("labels", {}))
        ]
        print(json.dumps({"kind": "List", "items": items}))
    elif verb == "get" and kind in ("pod", "pods"):
        for pod in pods:
            settle(pod, nodes, api)
        if name:
            found = [p for p in pods if here(p) and p["metadata"]["name"] == name]
            if not found:
                fail(f'Error from server (NotFound): pods "{name}" not found')
            print(json.dumps(public_pod(found[0])))
        else:
            items = [
                public_pod(p)
                for p in pods
                if here(p) and selector_matches(selector, p["metadata"].get("labels", {}))
            ]
            print(json.dumps({"kind": "List", "items": items}))
    elif verb == "logs":
        found = [p for p in pods if here(p) and p["metadata"]["name"] == args[1]]
        if not found:
            fail(f'Error from server (NotFound): pods "{args[1]}" not found')
        if "logs" not in found[0]:
            fail(
                f'Error from server (BadRequest): container "{found[0]["spec"]["containers"][0]["name"]}" '
                f'in pod "{args[1]}" is waiting to start: ContainerCreating'
            )
        print(found[0]["logs"], end="")
    elif verb == "delete" and kind in ("pod", "pods"):
        for name in [a for a in args[2:] if not a.startswith("-")]:
            kept = [p for p in api["pods"] if not (here(p) and p["metadata"]["name"] == name)]
            if len(kept) == len(api["pods"]) and "--ignore-not-found" not in args:
                fail(f'Error from server (NotFound): pods "{name}" not found')
            if len(kept) != len(api["pods"]):
                print(f'pod "{name}" deleted')
            api["pods"] = kept
    elif verb in ("apply", "create") and args[args.index("-f") + 1] == "-":
        manifest = json.loads(sys.stdin.read())
        meta = manifest["metadata"]
        if manifest["kind"] == "RuntimeClass":
            api.setdefault("runtimeclasses", {})[meta["name"]] = manifest["handler"]
            print(f"runtimeclass.node.k8s.io/{meta['name']} created")
        elif manifest["kind"] == "Pod":
            meta.setdefault("namespace", namespace)
            handler = manifest["spec"].get("runtimeClassName")
            if handler and handler not in api.get("runtimeclasses", {}):
                fail(
                    f'Error from server (Forbidden): error when creating "STDIN": pods "{meta["name"]}" is '
                    f'forbidden: pod rejected: RuntimeClass "{handler}" not found'
                )
            if any(p["metadata"]["name"] == meta["name"] and here(p) for p in pods):
                fail(f'Error from server (AlreadyExists): pods "{meta["name"]}" already exists')
            pods.append({**manifest, "status": {"phase": "Pending"}})
            print(f"pod/{meta['name']} created")
        else:
            fail(f"kubectl double: unsupported kind {manifest['kind']}")
    else:
        return False
    save(API, api)
    return True


def kubectl(argv: list[str]) -> None:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    args = []
    namespace = "default"
    all_namespaces = False
    rest = iter(argv)
    for arg in rest:
        # kubectl takes its global flags anywhere on the line.
        if arg.startswith("--kubeconfig="):
            kubeconfig = arg.split("=", 1)[1]
        elif arg in ("-n", "--namespace"):
            namespace = next(rest)
        elif arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
        elif arg in ("-A", "--all-namespaces"):
            all_namespaces = True
        else:
            args.append(arg)
    if not kubeconfig or not Path(kubeconfig).exists():
        fail(
            "The connection to the server localhost:8080 was refused - "
            "did you specify the right host or port?"
        )
    verb = args[0]
    mutating = verb in ("create", "apply", "annotate", "label", "taint", "delete")
    record("kubectl", argv, mutating)
    with Locked():
        nodes = load(CLUSTER / "nodes.json", {})
        calico = load(CLUSTER / "calico.json", {})
        network_ready = bool(calico.get("installation"))
        if not (CLUSTER / "apiserver.json").exists():
            server = kubeconfig_server(kubeconfig)
            fail(
                f"The connection to the server {server} was refused - did you specify the right host or port?"
            )
        kube_system = load(CLUSTER / "kube-system.json", {})
        if verb == "get" and args[1] == "--raw":
            print("ok")
            return
        if (
            verb == "get"
            and args[1] in ("configmap", "daemonset", "deployment")
            and namespace == "kube-system"
        ):
            if args[2] not in kube_system.get(args[1], []):
                fail(f'Error from server (NotFound): {args[1]}s "{args[2]}" not found')
            print(json.dumps({"kind": args[1], "metadata": {"name": args[2], "namespace": "kube-system"}}))
            return
        if verb == "delete" and args[1] == "node":
            if args[2] not in nodes:
                fail(f'Error from server (NotFound): nodes "{args[2]}" not found')
            del nodes[args[2]]
            save(CLUSTER / "nodes.json", nodes)
            print(f'node "{args[2]}" deleted')
            return
        if kubectl_api(args, namespace, all_namespaces, nodes):
            return
        if verb == "get":
            kind = args[1]
            api = load(API, {})
            if kind == "nodes":
                items = [node_object(n, v, network_ready, api) for n, v in sorted(nodes.items())]
                print(json.dumps({"kind": "List", "items": items}))
            elif kind == "node":
                name = args[2]
                if name not in nodes:
                    fail(f'Error from server (NotFound): nodes "{name}" not found')
                print(json.dumps(node_object(name, nodes[name], network_ready, api)))
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
            else:
                fail(f"kubectl double: unsupported get {kind}")
            save(API, api)  # the Ready countdowns
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
            key, rest_ = args[3].split("=", 1)
            value, effect = rest_.split(":")
            taints = [t for t in nodes[args[2]]["taints"] if t["key"] != key]
            nodes[args[2]]["taints"] = [*taints, {"key": key, "value": value, "effect": effect}]
        else:
            fail(f"kubectl double: unsupported verb {verb}")
        save(CLUSTER / "nodes.json", nodes)
        save(CLUSTER / "calico.json", calico)


# -- containerd (real), crictl and NVIDIA ----------------------------------------------------
# containerd itself is not doubled: the nodes run the test machine's real Debian containerd
# (/usr/bin/containerd, 1.6.x) from their overlay root; `systemctl start containerd` starts it.
CONTAINERD_PID = Path("/run/node-doubles/containerd.pid")
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "containerd"
    except OSError:
        return False


def containerd_pid() -> int | None:
    try:
        pid = int(CONTAINERD_PID.read_text())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def stop_containerd() -> None:
    pid = containerd_pid()
    if pid is None:
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    CONTAINERD_PID.unlink(missing_ok=True)


def start_containerd() -> None:
    """Like systemd with containerd.service (Type=notify): returns once the socket answers."""
    stop_containerd()
    CONTAINERD_PID.parent.mkdir(parents=True, exist_ok=True)
    with open("/var/log/containerd.log", "ab") as log:
        process = subprocess.Popen(
            ["/usr/bin/containerd"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    CONTAINERD_PID.write_text(str(process.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            CONTAINERD_PID.unlink(missing_ok=True)
            fail(
                "Job for containerd.service failed because the control process exited with error code.\n"
                'See "systemctl status containerd.service" and "journalctl -xeu containerd.service" '
                "for details."
            )
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as probe:
            probe.connect(CONTAINERD_SOCKET)
            return
        time.sleep(0.1)
    fail("Job for containerd.service failed because a timeout was exceeded.")


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, i


def proto_fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message, decoded from the wire format alone."""
    fields: list[tuple[int, int | bytes]] = []
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = data[i : i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, value))
    return fields


def cri_status(socket_path: str, timeout: float = 10.0) -> dict:
    """CRI runtime.v1.RuntimeService/Status with verbose=true over gRPC (HTTP/2 through curl).

    What `crictl info` asks (cri-tools v1.29 cmd/crictl/info.go) and prints: the runtime
    conditions plus every entry of the verbose info map decoded as JSON; `config` is the CRI
    plugin's configuration as containerd loaded it. Raises RuntimeError with the gRPC status when
    the CRI service is not there (the plugin failed to load).
    """
    request = b"\x00" + (2).to_bytes(4, "big") + b"\x08\x01"  # StatusRequest{verbose: true}
    result = subprocess.run(
        [
            "curl", "-sS", "--http2-prior-knowledge", "--unix-socket", socket_path,
            "--max-time", str(timeout), "-H", "content-type: application/grpc", "-H", "te: trailers",
            "--data-binary", "@-", "-D", "/dev/stderr", "http://localhost/runtime.v1.RuntimeService/Status",
        ],
        input=request,
        capture_output=True,
        check=False,
    )  # fmt: skip
    headers = result.stderr.decode(errors="replace")
    status = re.search(r"^grpc-status: (\d+)", headers, re.M)
    # A trailers-only error answer (grpc-go: unknown service) may be followed by RST_STREAM while
    # curl still sends the request body: curl then exits 92, but the status arrived and counts.
    if result.returncode != 0 and status is None:
        raise RuntimeError(f"connect: connection error: {headers.strip()}")
    if status is None or status.group(1) != "0":
        message = re.search(r"^grpc-message: (.*?)\r?$", headers, re.M)
        code = status.group(1) if status else "?"
        raise RuntimeError(f"rpc error: code = {code} desc = {message.group(1) if message else ''}")
    body = result.stdout[5 : 5 + int.from_bytes(result.stdout[1:5], "big")]
    out: dict = {"status": {"conditions": []}}
    for number, value in proto_fields(body):
        if number == 1:
            for _, condition in proto_fields(value):
                parts = dict(proto_fields(condition))
                out["status"]["conditions"].append(
                    {
                        "type": parts.get(1, b"").decode(),
                        "status": bool(parts.get(2, 0)),
                        "reason": parts.get(3, b"").decode(),
                        "message": parts.get(4, b"").decode(),
                    }
                )
        elif number == 2:
            entry = dict(proto_fields(value))
            key, raw = entry.get(1, b"").decode(), entry.get(2, b"").decode()
            try:
                out[key] = json.loads(raw)
            except json.JSONDecodeError:
                out[key] = raw
    return out


def crictl(argv: list[str]) -> None:
    """TEST DOUBLE of crictl (cri-tools v1.29): `info` answered by the node's real containerd."""
    record("crictl", argv, False)
    endpoint = CONTAINERD_SOCKET
    args = []
    for i, arg in enumerate(argv):
        if arg.startswith("--runtime-endpoint="):
            endpoint = arg.split("=", 1)[1]
        elif arg in ("--runtime-endpoint", "-r"):
            endpoint = argv[i + 1]
        elif i == 0 or argv[i - 1] not in ("--runtime-endpoint", "-r"):
            args.append(arg)
    endpoint = endpoint.removeprefix("unix://")
    if args[:1] != ["info"]:
        fail(f"crictl double: unsupported arguments {argv}")
    try:
        print(json.dumps(cri_status(endpoint), indent=2))
    except RuntimeError as error:
        fail(
            f'validate service connection: validate CRI v1 runtime API for endpoint "unix://{endpoint}": '
            + str(error)
        )


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


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_dump(tree: dict, path: tuple[str, ...] = ()) -> str:
    """Keys before sub-tables, each sub-table under its full dotted header (as go-toml writes)."""
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sorted(tree.items()) if not isinstance(v, dict)]
    text = "\n".join(lines) + ("\n" if lines else "")
    for key, value in sorted(tree.items()):
        if isinstance(value, dict):
            sub = (*path, key)
            text += "\n[" + ".".join(_toml_key(p) for p in sub) + "]\n" + toml_dump(value, sub)
    return text


def nvidia_ctk(argv: list[str]) -> None:
    """TEST DOUBLE of `nvidia-ctk runtime configure --runtime=containerd` (nvidia-container-toolkit
    1.17.8: cmd/nvidia-ctk/runtime/configure/configure.go, pkg/config/engine/containerd/config.go).

    As the real one: the config source is the file --config names (default
    /etc/containerd/config.toml), only that file is read and written (no imports followed); an
    empty file becomes a version 2 config; runtime `nvidia` copies the whole runtime entry of
    the default runtime (when not nvidia*), else runc, else crun, when that file has one, and
    otherwise gets the defaults (runtime_type io.containerd.runc.v2, empty runtime_root and
    runtime_engine, privileged_without_host_devices false: no SystemdCgroup); then
    options.BinaryName = /usr/bin/nvidia-container-runtime.
    """
    if argv[:2] != ["runtime", "configure"] or "--runtime=containerd" not in argv:
        fail(f"nvidia-ctk double: unsupported arguments {argv}")
    record("nvidia-ctk", argv, True)
    config = next(
        (a.split("=", 1)[1] for a in argv if a.startswith("--config=")), "/etc/containerd/config.toml"
    )
    path = Path(config)
    text = path.read_text() if path.exists() else ""
    tree = tomllib.loads(text)
    tree.setdefault("version", 2)
    cri = "io.containerd.grpc.v1.cri" if tree["version"] == 2 else "io.containerd.cri.v1.runtime"
    containerd = tree.setdefault("plugins", {}).setdefault(cri, {}).setdefault("containerd", {})
    runtimes = containerd.setdefault("runtimes", {})
    default = containerd.get("default_runtime_name", "")
    candidates = ([default] if default and not default.startswith("nvidia") else []) + ["runc", "crun"]
    source = next((runtimes[r] for r in candidates if r in runtimes), None)
    if source is not None:
        nvidia = copy.deepcopy(source)
    else:
        print(
            f'level=warning msg="could not infer options from runtimes {candidates}; using defaults"',
            file=sys.stderr,
        )
        nvidia = {
            "runtime_type": "io.containerd.runc.v2",
            "runtime_root": "",
            "runtime_engine": "",
            "privileged_without_host_devices": False,
        }
    nvidia.setdefault("options", {})["BinaryName"] = "/usr/bin/nvidia-container-runtime"
    runtimes["nvidia"] = nvidia
    path.write_text(toml_dump(tree))
    print(f'level=info msg="Wrote updated config to {config}"', file=sys.stderr)


def nvidia_container_runtime(argv: list[str]) -> None:
    record("nvidia-container-runtime", argv, False)
    print("NVIDIA Container Runtime version 1.17.8 (test double)")


def kubelet(argv: list[str]) -> None:
    record("kubelet", argv, False)
    print("Kubernetes v1.29.15 (test double)")


COMMANDS = {
    "cloud-init": cloud_init,
    "modprobe": modprobe,
    "modinfo": modinfo,
    "sysctl": sysctl,
    "swapon": swapon,
    "swapoff": swapoff,
    "systemctl": systemctl,
    "mountpoint": mountpoint,
    "mount": mount,
    "boot": boot,
    "lsblk": lsblk,
    "kubeadm": kubeadm,
    "kubectl": kubectl,
    "kubelet": kubelet,
    "crictl": crictl,
    "nvidia-smi": nvidia_smi,
    "nvidia-ctk": nvidia_ctk,
    "nvidia-container-runtime": nvidia_container_runtime,
}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](sys.argv[2:])
