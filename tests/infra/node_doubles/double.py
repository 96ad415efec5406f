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
        record("kubeadm", argv, True, config_mode=oct(mode), name=name)
        with Locked():
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


def kubeconfig_server(path: str) -> str:
    match = re.search(r"server: https://(\S+)", Path(path).read_text())
    return match.group(1) if match else "localhost:8080"


def kubectl(argv: list[str]) -> None:
    kubeconfig = os.environ.get("KUBECONFIG", "")
    args = []
    namespace = "default"
    rest = iter(argv)
    for arg in rest:
        # kubectl takes its global flags anywhere on the line.
        if arg.startswith("--kubeconfig="):
            kubeconfig = arg.split("=", 1)[1]
        elif arg in ("-n", "--namespace"):
            namespace = next(rest)
        elif arg.startswith("--namespace="):
            namespace = arg.split("=", 1)[1]
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
    if result.returncode != 0:
        raise RuntimeError(f"connect: connection error: {headers.strip()}")
    status = re.search(r"^grpc-status: (\d+)", headers, re.M)
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
