"""Three sandboxed "EC2 nodes" on this machine: real OpenSSH servers in network namespaces.

Each node is
  - a network namespace with two addresses, as an EC2 instance has: a private one on the VPC
    bridge (10.250.0.0/24, eth0), which only the nodes share, and a public one on the "internet"
    bridge (198.51.100.0/24, TEST-NET-2, eth1), the only one the admin namespace reaches. On EC2
    the public address is the internet gateway's 1:1 NAT and is on no interface of the instance:
    the doubles treat eth1 as absent (kubeadm cannot advertise it, a join through it times out).
    So a public address used where the private one belongs, or the reverse, fails a test. Both
    networks exist only inside the namespaces created here; the host's own gets no address,
  - a private mount namespace whose root is an overlay of this machine's / with a per-node
    upper directory, entered with chroot: the node scripts really write /etc/fstab,
    /etc/modules-load.d, /etc/sysctl.d, apt sources, containerd config and run real apt-get and
    dpkg, and all of it lands in that node's upper directory, never on this machine,
  - an sshd (Debian openssh-server) with its own host key, listening on all the node's addresses,
  - the test doubles (tests/infra/node_doubles) for the kernel and init (modprobe, sysctl,
    swapon/swapoff, systemctl, mount) in /usr/local/sbin, and double apt repositories
    (apt_doubles.py) for kubeadm/kubelet/kubectl/crictl, the NVIDIA driver and toolkit,
  - the real containerd of this machine (Debian's package, seen through the overlay root):
    `systemctl restart containerd` (double) really starts it with the node's
    /etc/containerd/config.toml, and `ctr` and crictl's double ask it what it loaded.
The orchestrator runs in a fourth namespace ("admin") on the public bridge only, like a laptop.
`build_lab` gives the nodes fixed addresses; test_make_cluster_lab.py prepares the nodes first and
plugs them in with the addresses moto gave the instances (`prepare_node`, then `plug_node`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from scripts.local_run.process import ManagedProcess, stop_pid

from .apt_doubles import build_kubernetes_release, build_repositories

HERE = Path(__file__).resolve().parent
SUBNET = "10.250.0"  # the VPC: eth0 of every node
PUBLIC_SUBNET = "198.51.100"  # the internet: eth1 of every node (its public IP) and the admin laptop
KERNEL_DOUBLES = [
    "cloud-init",
    "modprobe",
    "modinfo",
    "sysctl",
    "swapon",
    "swapoff",
    "systemctl",
    "mount",
    "mountpoint",
    "lsblk",
]
DOUBLE_APT_SOURCES = {
    "NODE_BOOTSTRAP_NVIDIA_APT_SOURCE": "deb [trusted=yes] file:/srv/apt-doubles/nvidia ./",
    # The double repositories need no key: declared [trusted=yes] above.
    "NODE_BOOTSTRAP_NVIDIA_APT_KEY_URL": "",
}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True)


def namespaces_available() -> str | None:
    """None when this machine can create network namespaces and overlays, else the reason."""
    if os.geteuid() != 0:
        return "needs root (ip netns, mount namespaces, overlayfs, chroot)"
    for tool in ("ip", "unshare", "chroot", "/usr/sbin/sshd", "ssh-keygen", "dpkg-deb", "sudo"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install openssh-server iproute2 sudo)"
    # The nodes run the real containerd (and ctr) of this machine; crictl's double asks it over curl.
    for tool in ("/usr/bin/containerd", "/usr/bin/ctr", "curl"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install containerd curl)"
    probe = f"nbprobe{os.getpid()}"
    result = sh("ip", "netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"ip netns add failed: {result.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


@dataclass
class SandboxNode:
    name: str
    role: str
    private_address: str
    public_address: str
    netns: str
    dir: Path
    index: int = 0  # names its veth ports in the lan namespace
    host_public_key: str = ""
    sshd: ManagedProcess | None = None

    @property
    def address(self) -> str:
        """Where the admin laptop reaches the node (SSH, the API server): its public address."""
        return self.public_address

    @property
    def upper(self) -> Path:
        return self.dir / "upper"

    def inventory_entry(self) -> dict[str, str]:
        return {
            "name": self.name,
            "role": self.role,
            "public_ip": self.public_address,
            "private_ip": self.private_address,
            "instance_id": f"i-{abs(hash(self.name)) % 16**17:017x}",
            "instance_type": "g4dn.xlarge" if self.role == "gpu-worker" else "t3.medium",
        }


@dataclass
class Lab:
    """The bridge, the admin namespace and the nodes; everything removed by `close()`."""

    workdir: Path
    prefix: str = field(default_factory=lambda: f"nb{os.getpid() % 100000}")
    nodes: list[SandboxNode] = field(default_factory=list)
    client_key: Path = field(init=False)
    shared: Path = field(init=False)
    release_env: dict[str, str] = field(default_factory=dict)  # the release doubles' URLs and SHA-256s

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.client_key = self.workdir / "id_ed25519"
        self.shared = self.workdir / "cluster-double"
        self.shared.mkdir(exist_ok=True)
        self._netns: list[str] = []

    @property
    def lan(self) -> str:
        return f"{self.prefix}-lan"

    @property
    def admin(self) -> str:
        return f"{self.prefix}-admin"

    # -- network ----------------------------------------------------------------------------
    def _add_netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self._netns.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")

    def _plug(self, netns: str, port: str, bridge: str, device: str, address: str) -> None:
        """A veth from `bridge` (in the lan namespace) to `device` in `netns`, `address` as a CIDR."""
        sh("ip", "-n", self.lan, "link", "add", port, "type", "veth", "peer", "name", device, "netns", netns)
        sh("ip", "-n", self.lan, "link", "set", port, "master", bridge, "up")
        sh("ip", "-n", netns, "addr", "add", address if "/" in address else f"{address}/24", "dev", device)
        sh("ip", "-n", netns, "link", "set", device, "up")

    def build_network(self) -> None:
        self._add_netns(self.lan)
        for bridge in ("vpc", "inet"):
            sh("ip", "-n", self.lan, "link", "add", bridge, "type", "bridge")
            sh("ip", "-n", self.lan, "link", "set", bridge, "up")
        self._add_netns(self.admin)
        self._plug(self.admin, "a1", "inet", "eth0", f"{PUBLIC_SUBNET}.1")

    # -- nodes --------------------------------------------------------------------------------
    def add_node(self, name: str, role: str, host_octet: int, apt_root: Path) -> SandboxNode:
        node = self.prepare_node(name, role, host_octet, apt_root)
        # A public address unrelated to the private one, as EC2 hands them out.
        self.plug_node(node, f"{SUBNET}.{host_octet}", f"{PUBLIC_SUBNET}.{host_octet + 100}")
        return node

    def prepare_node(self, name: str, role: str, host_octet: int, apt_root: Path) -> SandboxNode:
        """The node's image (root files, host key, doubles), before it has a network: what an
        AMI is before EC2 gives the instance its addresses."""
        node = SandboxNode(
            name,
            role,
            private_address="",
            public_address="",
            netns=f"{self.prefix}-{host_octet}",
            dir=self.workdir / name,
            index=host_octet,
        )
        for sub in ("upper", "work", "merged"):
            (node.dir / sub).mkdir(parents=True, exist_ok=True)
        self._prepare_root(node, apt_root)
        self.nodes.append(node)
        return node

    def plug_node(self, node: SandboxNode, private: str, public: str, vpc_prefix: int = 24) -> None:
        """Give the node its addresses: `private` on the VPC bridge (on-link within /vpc_prefix,
        as the VPC routes between its subnets), `public` on the internet bridge."""
        node.private_address, node.public_address = private, public
        self._add_netns(node.netns)
        self._plug(node.netns, f"v{node.index}", "vpc", "eth0", f"{private}/{vpc_prefix}")
        self._plug(node.netns, f"i{node.index}", "inet", "eth1", f"{public}/24")

    def move_public_address(self, node: SandboxNode, public: str) -> None:
        """A stop/start: EC2 gives an instance without an Elastic IP a new public address."""
        sh("ip", "-n", node.netns, "addr", "flush", "dev", "eth1")
        sh("ip", "-n", node.netns, "addr", "add", f"{public}/24", "dev", "eth1")
        node.public_address = public

    def _prepare_root(self, node: SandboxNode, apt_root: Path) -> None:
        """Files the node image has before boot, written into its upper directory."""
        up = node.upper
        for sub in (
            "etc/ssh",
            "srv/node-doubles",
            "srv/cluster-double",
            "usr/local/sbin",
            "var/lib/node-doubles",
        ):
            (up / sub).mkdir(parents=True, exist_ok=True)
        key = up / "etc/ssh/nb_host_ed25519_key"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.name}", "-f", str(key))
        node.host_public_key = " ".join(key.with_suffix(".pub").read_text().split()[:2])
        (up / "etc/ssh/sshd_config_nb").write_text(
            textwrap.dedent("""\
                ListenAddress 0.0.0.0
                Port 22
                HostKey /etc/ssh/nb_host_ed25519_key
                PidFile /run/sshd-nb.pid
                UsePAM no
                PasswordAuthentication no
                KbdInteractiveAuthentication no
                PermitRootLogin no
                AuthorizedKeysFile .ssh/authorized_keys
                Subsystem sftp internal-sftp
                LogLevel VERBOSE
                """)
        )
        (up / "etc/node-double-name").write_text(node.name + "\n")
        shutil.copy(HERE / "node_doubles" / "double.py", up / "srv/node-doubles/double.py")
        for command in KERNEL_DOUBLES:
            wrapper = up / "usr/local/sbin" / command
            wrapper.write_text(
                f"#!/bin/sh\n# TEST DOUBLE of {command}: the kernel and init belong to the test machine.\n"
                f'exec /usr/bin/python3 /srv/node-doubles/double.py {command} "$@"\n'
            )
            wrapper.chmod(0o755)
        # An Ubuntu cloud image boots with a swap file in fstab; here it is active too.
        (up / "var/lib/node-doubles/swap.json").write_text(json.dumps(["/swap.img"]))
        shutil.copytree(apt_root, up / "srv/apt-doubles")
        if node.role == "gpu-worker":
            # The g4dn NVMe instance store: a sparse file that mkfs.ext4 and blkid really work on.
            with (up / "srv/instance-store.img").open("wb") as image:
                image.truncate(64 * 1024 * 1024)
        public = self.client_key.with_suffix(".pub").read_text()
        (up / "srv/node-setup.sh").write_text(
            textwrap.dedent(f"""\
                set -eu
                id ubuntu >/dev/null 2>&1 || useradd -m -s /bin/bash ubuntu
                usermod -p '*' ubuntu  # no password, but not locked (sshd refuses locked accounts)
                install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh
                printf '%s' '{public.strip()}' > /home/ubuntu/.ssh/authorized_keys
                chown ubuntu:ubuntu /home/ubuntu/.ssh/authorized_keys
                chmod 0600 /home/ubuntu/.ssh/authorized_keys
                echo 'ubuntu ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/90-cloud-init-users
                chmod 0440 /etc/sudoers.d/90-cloud-init-users
                grep -q '^/swap.img' /etc/fstab || echo '/swap.img none swap sw 0 0' >> /etc/fstab
                rm -f /etc/apt/sources.list /etc/apt/sources.list.d/*
                echo 'deb [trusted=yes] file:/srv/apt-doubles/ubuntu ./' \\
                  > /etc/apt/sources.list.d/ubuntu-archive.list
                chmod -R a+rX /srv/apt-doubles
                mkdir -p /run/sshd /sys/module
                exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config_nb
                """)
        )

    def start_node(self, node: SandboxNode) -> None:
        merged = node.dir / "merged"
        boot = textwrap.dedent(f"""\
            set -eu
            mount -t overlay overlay -o lowerdir=/,upperdir={node.upper},workdir={node.dir / "work"} {merged}
            mount --rbind /dev {merged}/dev
            mount -t proc proc {merged}/proc
            mount --bind {self.shared} {merged}/srv/cluster-double
            mount -t tmpfs -o mode=0755 tmpfs {merged}/run
            exec chroot {merged} /bin/sh /srv/node-setup.sh
            """)
        node.sshd = ManagedProcess(
            name=f"sshd {node.name}",
            argv=[
                "ip",
                "netns",
                "exec",
                node.netns,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "/bin/sh",
                "-c",
                boot,
            ],
            log_path=node.dir / "sshd.log",
        ).start()

    def wait_ssh(self, node: SandboxNode, timeout: float = 20.0) -> None:
        probe = f"exec 3<>/dev/tcp/{node.address}/22 && head -c 4 <&3"
        assert node.sshd is not None
        node.sshd.wait_ready(
            lambda: sh("ip", "netns", "exec", self.admin, "bash", "-c", probe, check=False).stdout == "SSH-",
            timeout=timeout,
        )

    # -- files the orchestrator reads ---------------------------------------------------------
    def write_client_key(self) -> None:
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin@laptop", "-f", str(self.client_key))

    def known_hosts(self, path: Path, override: dict[str, str] | None = None) -> Path:
        override = override or {}
        path.write_text(
            "".join(f"{n.address} {override.get(n.name, n.host_public_key)}\n" for n in self.nodes)
        )
        return path

    def inventory(self, path: Path, extra_nodes: list[dict[str, str]] | None = None) -> Path:
        path.write_text(
            json.dumps(
                {
                    "cluster_name": "llama",
                    "kubernetes_version": "v1.29.15",
                    "region": "eu-west-1",
                    "ssh_user": "ubuntu",
                    "vpc_cidr": f"{SUBNET}.0/24",
                    "nodes": [n.inventory_entry() for n in self.nodes] + (extra_nodes or []),
                }
            )
        )
        return path

    def node_env(self, path: Path) -> Path:
        overrides = {**DOUBLE_APT_SOURCES, **self.release_env}
        path.write_text("".join(f"{k}={v}\n" for k, v in overrides.items()))
        return path

    def set_api(self, **state: object) -> None:
        """Set what the API server and the kubelets report (the kubectl double's CLUSTER/api.json:
        not_ready_polls, gpus, allocatable_gpus, pod_gpus_visible, network, daemonsets, pods,
        runtimeclasses); keys not given keep their value."""
        path = self.shared / "api.json"
        current = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**current, **state}))

    def api(self) -> dict:
        path = self.shared / "api.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def calls(self) -> list[dict]:
        log = self.shared / "calls.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def in_admin(self, *argv: str) -> list[str]:
        """argv run on the admin laptop (its network namespace)."""
        return ["ip", "netns", "exec", self.admin, *argv]

    def run_cli(
        self, *args: str, timeout: float = 240, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`python -m node_bootstrap ...` from the admin namespace, as a user would."""
        repo = HERE.parents[1]
        return subprocess.run(
            self.in_admin(str(repo / ".venv/bin/python"), "-m", "node_bootstrap", *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            cwd=repo,
            check=False,
        )

    def in_node(self, node: SandboxNode, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside a node's mount namespace and root (as if on its console)."""
        assert node.sshd is not None
        merged = str(node.dir / "merged")
        return sh("nsenter", "-t", str(node.sshd.pid), "-m", "-n", "chroot", merged, *argv, check=check)

    # -- teardown -------------------------------------------------------------------------------
    def close(self) -> None:
        for node in self.nodes:
            if node.sshd is not None and node.sshd.popen is not None:
                stop_pid(node.sshd.pid, grace=5)
        for name in reversed(self._netns):
            # Processes still inside (none expected) would keep a namespace alive: kill them by PID.
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            sh("ip", "netns", "del", name, check=False)


def build_lab(workdir: Path) -> Lab:
    """Control plane, CPU worker and GPU worker, sshd running on each."""
    lab = Lab(workdir)
    try:
        apt_root = build_repositories(workdir / "apt-doubles")
        lab.release_env = build_kubernetes_release(apt_root / "k8s-release")
        lab.write_client_key()
        lab.build_network()
        for name, role, octet in (
            ("llama-cp-1", "control-plane", 10),
            ("llama-worker-1", "worker", 11),
            ("llama-gpu-1", "gpu-worker", 12),
        ):
            lab.add_node(name, role, octet, apt_root)
        for node in lab.nodes:
            lab.start_node(node)
        for node in lab.nodes:
            lab.wait_ssh(node)
    except BaseException:
        lab.close()
        raise
    return lab
