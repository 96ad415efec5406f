"""The orchestrator against three real OpenSSH servers standing for the EC2 nodes (sandbox.py).

The node scripts run for real inside each node's overlay root (real apt-get/dpkg against the
double repositories, real files in /etc); only kubeadm/kubectl/kubelet, containerd, the NVIDIA
driver and toolkit, and the kernel/init commands are test doubles, and they record every call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import cli_args
from .sandbox import Lab, sh

pytestmark = pytest.mark.integration

STEP_LINE = re.compile(r"^\[(?P<node>[\w-]+)\] (?P<step>[\w-]+): (?P<status>done|unchanged|failed)", re.M)
PREPARE_STEPS = [
    "wait-for-cloud-init",
    "disable-swap",
    "load-kernel-modules",
    "configure-kernel-networking",
    "install-containerd",
    "install-kubernetes-binaries",
]
GPU_STEPS = ["install-nvidia-driver", "install-nvidia-container-toolkit", "prepare-model-cache-disk"]


@dataclass
class Run:
    result: subprocess.CompletedProcess[str]
    calls: list[dict]
    seconds: float

    @property
    def output(self) -> str:
        return self.result.stdout + self.result.stderr


def run(lab: Lab, args: list[str]) -> Run:
    before = len(lab.calls())
    started = time.monotonic()
    result = lab.run_cli(*args)
    return Run(result, lab.calls()[before:], time.monotonic() - started)


def upper_snapshot(lab: Lab) -> dict[str, str]:
    """Content hash of every file the nodes changed (their overlay upper dirs), minus logs."""
    snapshot = {}
    for node in lab.nodes:
        for path in sorted(node.upper.rglob("*")):
            rel = path.relative_to(node.upper)
            # Logs and containerd's own database (the daemon really runs) are not the bootstrap's.
            if rel.parts[:2] == ("var", "log") or rel.parts[:3] == ("var", "lib", "containerd"):
                continue
            if path.is_dir() or path.is_symlink():
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "special"
            snapshot[f"{node.name}:{rel}"] = digest
    return snapshot


@pytest.fixture(scope="module")
def first_run(lab: Lab, cli_files: dict[str, Path]) -> Run:
    return run(lab, cli_args(cli_files, "bootstrap"))


@pytest.fixture(scope="module")
def second_run(lab: Lab, cli_files: dict[str, Path], first_run: Run) -> tuple[Run, dict, dict]:
    before = upper_snapshot(lab)
    second = run(lab, cli_args(cli_files, "bootstrap"))
    return second, before, upper_snapshot(lab)


@pytest.fixture(scope="module")
def doctor_run(lab: Lab, cli_files: dict[str, Path], second_run: tuple) -> Run:
    return run(lab, cli_args(cli_files, "doctor"))


def first_index(calls: list[dict], node: str, cmd: str, *argv_prefix: str) -> int:
    for i, call in enumerate(calls):
        if (
            call["node"] == node
            and call["cmd"] == cmd
            and call["argv"][: len(argv_prefix)] == list(argv_prefix)
        ):
            return i
    raise AssertionError(f"{node} never ran {cmd} {' '.join(argv_prefix)}")


def dpkg_status(lab: Lab, node: str) -> dict[str, tuple[str, str]]:
    upper = next(n.upper for n in lab.nodes if n.name == node)
    text = (upper / "var/lib/dpkg/status").read_text()
    status = {}
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^(Package|Status|Version): (.*)$", block, re.M))
        if "Package" in fields:
            status[fields["Package"]] = (fields.get("Version", ""), fields.get("Status", ""))
    return status


def test_first_bootstrap_follows_the_kubeadm_checklist_on_every_node(lab: Lab, first_run: Run) -> None:
    assert first_run.result.returncode == 0, first_run.output
    calls = first_run.calls
    for node in lab.nodes:
        order = [
            first_index(calls, node.name, "cloud-init", "status", "--wait"),
            first_index(calls, node.name, "swapoff", "-a"),
            first_index(calls, node.name, "modprobe", "br_netfilter"),
            first_index(calls, node.name, "sysctl", "-q", "-p"),
            first_index(calls, node.name, "systemctl", "restart", "containerd"),
            first_index(calls, node.name, "systemctl", "enable", "kubelet"),
        ]
        assert order == sorted(order), f"{node.name}: checklist order broken: {order}"
    init = first_index(calls, "llama-cp-1", "kubeadm", "init")
    assert init > first_index(calls, "llama-cp-1", "systemctl", "enable", "kubelet")
    assert calls[init]["kubernetesVersion"] == "v1.29.15"
    assert calls[init]["podSubnet"] == "192.168.0.0/16"
    # The API server advertises the private address (the public one is on no interface of an
    # EC2 instance: the kubeadm double refuses it) and the nodes join through it.
    assert calls[init]["advertiseAddress"] == "10.250.0.10"
    operator = first_index(calls, "llama-cp-1", "kubectl", "create", "-f")
    installation = first_index(calls, "llama-cp-1", "kubectl", "apply", "-f")
    token = first_index(calls, "llama-cp-1", "kubeadm", "token", "create")
    assert init < operator < installation < token, "Calico must be installed after init and before joins"
    assert calls[token]["argv"][2:4] == ["--ttl", "1h"]
    joins = [first_index(calls, n, "kubeadm", "join") for n in ("llama-worker-1", "llama-gpu-1")]
    assert all(j > token for j in joins)
    assert [calls[j]["endpoint"] for j in joins] == ["10.250.0.10:6443"] * 2
    assert first_index(calls, "llama-cp-1", "kubeadm", "token", "delete") > max(joins)
    # The nvidia runtime is rendered into the one config file; nvidia-ctk never edits it.
    assert not any(c["cmd"] == "nvidia-ctk" for c in calls)
    assert first_index(calls, "llama-gpu-1", "systemctl", "restart", "containerd") < joins[1]


def test_first_bootstrap_leaves_real_node_state_pinned_and_configured(lab: Lab, first_run: Run) -> None:
    assert first_run.result.returncode == 0, first_run.output
    upper = {n.name: n.upper for n in lab.nodes}
    for name in upper:
        status = dpkg_status(lab, name)
        # The release binaries, byte for byte those whose SHA-256 is pinned (the release
        # doubles also hold v1.29.14: only the right URL and pin give these bytes).
        for binary in ("kubelet", "kubeadm", "kubectl"):
            digest = hashlib.sha256((upper[name] / "usr/local/bin" / binary).read_bytes()).hexdigest()
            assert digest == lab.release_env[f"NODE_BOOTSTRAP_K8S_SHA256_{binary.upper()}"], (name, binary)
        assert (upper[name] / "usr/local/bin/crictl").is_file()
        assert (upper[name] / "opt/cni/bin/loopback").is_file()
        assert (
            "ExecStart=/usr/local/bin/kubelet"
            in (upper[name] / "etc/systemd/system/kubelet.service").read_text()
        )
        assert not (upper[name] / "etc/apt/sources.list.d/kubernetes.list").exists(), "no pkgs.k8s.io"
        assert status["conntrack"][1] == "install ok installed"
        assert status["containerd"][1] == "install ok installed"
        config = (upper[name] / "etc/containerd/config.toml").read_text()
        assert "\nimports" not in config, "containerd 1.x replaces whole sections from imported files"
        assert (upper[name] / "etc/modules-load.d/kubernetes.conf").read_text().split() == [
            "overlay",
            "br_netfilter",
        ]
        sysctl = (upper[name] / "etc/sysctl.d/99-kubernetes.conf").read_text()
        for key in (
            "net.bridge.bridge-nf-call-iptables",
            "net.bridge.bridge-nf-call-ip6tables",
            "net.ipv4.ip_forward",
        ):
            assert f"{key} = 1" in sysctl
        fstab = (upper[name] / "etc/fstab").read_text()
        assert "# disabled by node-bootstrap: /swap.img none swap" in fstab
    gpu = dpkg_status(lab, "llama-gpu-1")
    assert gpu["nvidia-container-toolkit"] == ("1.17.8-1", "hold ok installed")
    # Prebuilt, signed modules for the running kernel (no DKMS build), driver packages held.
    prebuilt = f"linux-modules-nvidia-580-server-{os.uname().release}"
    for package in (prebuilt, "nvidia-headless-no-dkms-580-server", "nvidia-utils-580-server"):
        assert gpu[package][1] == "hold ok installed", (package, gpu[package])
    assert "nvidia-headless-580-server" not in gpu, "the DKMS build is only the fallback"
    assert "nvidia-container-toolkit" not in dpkg_status(lab, "llama-worker-1")
    # The model cache is mounted by a unit at every boot, before the kubelet; not by fstab.
    assert "/mnt/model-cache" not in (upper["llama-gpu-1"] / "etc/fstab").read_text()
    unit = (upper["llama-gpu-1"] / "etc/systemd/system/llama-model-cache.service").read_text()
    assert "Before=kubelet.service" in unit and "ExecStart=/usr/local/sbin/llama-model-cache" in unit
    dropin = upper["llama-gpu-1"] / "etc/systemd/system/kubelet.service.d/20-llama-model-cache.conf"
    assert "Requires=llama-model-cache.service" in dropin.read_text()
    assert json.loads((upper["llama-gpu-1"] / "var/lib/node-doubles/mounts.json").read_text()) == [
        "/mnt/model-cache"
    ]
    blkid = sh("blkid", "-o", "value", "-s", "TYPE", str(upper["llama-gpu-1"] / "srv/instance-store.img"))
    assert blkid.stdout.strip() == "ext4"
    nodes = json.loads((lab.shared / "nodes.json").read_text())
    assert set(nodes) == {"llama-cp-1", "llama-worker-1", "llama-gpu-1"}
    assert nodes["llama-gpu-1"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in nodes["llama-gpu-1"][
        "taints"
    ]
    assert nodes["llama-worker-1"]["taints"] == []
    calico = json.loads((lab.shared / "calico.json").read_text())["installation"]["spec"]
    assert calico == {"mtu": "8951", "encapsulation": "VXLAN", "cidr": "192.168.0.0/16"}


def cri_info(lab: Lab, node_name: str) -> dict:
    """What the node's real containerd loaded, asked as `crictl info` asks it (CRI Status)."""
    node = next(n for n in lab.nodes if n.name == node_name)
    return json.loads(lab.in_node(node, "crictl", "info").stdout)


def test_every_nodes_real_containerd_loaded_runc_and_gpu_nodes_nvidia_with_systemd_cgroups(
    lab: Lab, first_run: Run
) -> None:
    assert first_run.result.returncode == 0, first_run.output
    for node in lab.nodes:
        config = cri_info(lab, node.name)["config"]
        runtimes = config["containerd"]["runtimes"]
        assert set(runtimes) == ({"runc", "nvidia"} if node.role == "gpu-worker" else {"runc"}), node.name
        assert all(r["options"]["SystemdCgroup"] is True for r in runtimes.values()), (node.name, runtimes)
        assert config["containerd"]["defaultRuntimeName"] == "runc"
        assert config["sandboxImage"] == "registry.k8s.io/pause:3.9"
    gpu_runtimes = cri_info(lab, "llama-gpu-1")["config"]["containerd"]["runtimes"]
    assert gpu_runtimes["nvidia"]["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    assert lab.in_node(gpu, "test", "-x", "/usr/bin/nvidia-container-runtime").returncode == 0


def test_first_bootstrap_writes_a_private_kubeconfig_for_the_public_endpoint(
    first_run: Run, cli_files: dict[str, Path]
) -> None:
    assert first_run.result.returncode == 0, first_run.output
    kubeconfig = cli_files["kubeconfig"]
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    # The control plane's public address (the laptop's way in), never the private one it advertises.
    assert "server: https://198.51.100.110:6443" in kubeconfig.read_text()


def test_join_configuration_with_the_token_only_lived_in_a_0600_file(lab: Lab, first_run: Run) -> None:
    joins = [c for c in first_run.calls if c["cmd"] == "kubeadm" and c["argv"][:1] == ["join"]]
    assert {c["node"] for c in joins} == {"llama-worker-1", "llama-gpu-1"}
    assert all(c["config_mode"] == "0o600" for c in joins)
    for node in lab.nodes:
        assert not list((node.upper / "etc/kubernetes").glob("node-bootstrap-join*")), node.name


def test_second_bootstrap_changes_nothing(second_run: tuple[Run, dict, dict]) -> None:
    second, before, after = second_run
    assert second.result.returncode == 0, second.output
    mutating = [f"{c['node']}: {c['cmd']} {' '.join(c['argv'])}" for c in second.calls if c["mutates"]]
    assert mutating == []
    statuses = {(m["node"], m["step"]): m["status"] for m in STEP_LINE.finditer(second.output)}
    expected_steps = [*PREPARE_STEPS, "init-control-plane", "install-calico", "label-gpu-node"]
    for step in expected_steps:
        assert statuses.get(("llama-cp-1", step)) == "unchanged", (step, statuses.get(("llama-cp-1", step)))
    for step in [*PREPARE_STEPS, *GPU_STEPS, "join-worker"]:
        assert statuses.get(("llama-gpu-1", step)) == "unchanged", step
    assert "join token" not in second.output, "no token is created when every node has joined"
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == []


def test_doctor_checks_the_gpu_through_nvml_and_prints_each_fix(lab: Lab, doctor_run: Run) -> None:
    output = doctor_run.result.stdout + doctor_run.result.stderr
    assert doctor_run.result.returncode == 0, output
    for expected in (
        "Tesla T4",
        "580.95.05",
        "7.5",
        "15360 MiB",
        "Calico",
        "CRI runtimes",
        "runc (SystemdCgroup), nvidia (SystemdCgroup)",
        "/mnt/model-cache on the NVMe instance store",
        "GPU label and taint",
        f"OK   llama-gpu-1: driver module for the running kernel: nvidia built for {os.uname().release}",
        "OK   RuntimeClass nvidia: handler nvidia",
        "OK   DNS from a pod: kubernetes.default from llama-gpu-1",
        "OK   pod-to-pod across nodes: llama-gpu-1 -> llama-worker-1",
        # Before `helm install` no device plugin runs: said, not failed; no GPU pod is tried.
        "WARN llama-gpu-1: device plugin: not installed yet",
        "WARN llama-gpu-1: GPU pod: not run",
    ):
        assert expected in output, expected
    assert "helm install llama ./charts/platform" in output
    assert "FAIL" not in output
    assert [p["metadata"]["name"] for p in lab.api().get("pods", [])] == [], "the doctor's pods are gone"


def test_no_secret_appears_in_any_log_output_or_argv(
    lab: Lab, first_run: Run, second_run: tuple, doctor_run: Run, cli_files: dict[str, Path]
) -> None:
    tokens = json.loads((lab.shared / "tokens-issued.json").read_text())
    assert tokens, "the first run created a join token"
    admin = (lab.nodes[0].upper / "etc/kubernetes/admin.conf").read_text()
    client_key = re.search(r"client-key-data: (\S+)", admin).group(1)
    secrets = [*tokens, *(t.split(".")[1] for t in tokens), client_key]
    texts = {
        "calls.log (argv of every double)": (lab.shared / "calls.log").read_text(),
        "CLI output": first_run.output + second_run[0].output + doctor_run.output,
    }
    for log in (cli_files["state"] / "logs").glob("*.log"):
        texts[str(log)] = log.read_text()
        assert log.stat().st_mode & 0o777 == 0o600
    for node in lab.nodes:
        texts[f"{node.name} sshd log"] = (node.dir / "sshd.log").read_text()
    assert len(texts) >= 5
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"
    assert "(secret input on stdin)" in texts[str(cli_files["state"] / "logs" / "llama-gpu-1.log")]


def test_doctor_names_a_broken_gpu_node_and_bootstrap_repairs_it(
    lab: Lab, cli_files: dict[str, Path], doctor_run: Run
) -> None:
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    # What a kernel update without the matching driver modules looks like, and a containerd
    # config in the old layout: a conf.d drop-in from `nvidia-ctk --config=conf.d/99-nvidia.toml`.
    lab.in_node(gpu, "rmdir", "/sys/module/nvidia")
    config = lab.in_node(gpu, "cat", "/etc/containerd/config.toml").stdout
    old = config.replace("version = 2\n", 'version = 2\nimports = ["/etc/containerd/conf.d/*.toml"]\n', 1)
    old = old.split("# RuntimeClass `nvidia`")[0]
    lab.in_node(
        gpu,
        "sh",
        "-c",
        f"cat > /etc/containerd/config.toml <<'EOF'\n{old}EOF\nmkdir -p /etc/containerd/conf.d",
    )
    lab.in_node(
        gpu,
        "nvidia-ctk",
        "runtime",
        "configure",
        "--runtime=containerd",
        "--config=/etc/containerd/conf.d/99-nvidia.toml",
    )
    lab.in_node(gpu, "systemctl", "restart", "containerd")
    broken = run(lab, cli_args(cli_files, "doctor"))
    assert broken.result.returncode == 1
    said = " ".join(broken.output.split())
    assert "couldn't communicate with the NVIDIA driver" in said
    assert "llama-gpu-1: CRI runtimes" in said and "containerd's CRI plugin does not answer" in said
    # (the real containerd says "unknown service runtime.v1.RuntimeService": test_containerd_real)
    assert said.count("make bootstrap") >= 2, "each failure prints its fix"
    repair = run(lab, cli_args(cli_files, "bootstrap"))
    assert repair.result.returncode == 0, repair.output
    statuses = {(m["node"], m["step"]): m["status"] for m in STEP_LINE.finditer(repair.output)}
    assert statuses[("llama-gpu-1", "install-nvidia-driver")] == "done"
    assert statuses[("llama-gpu-1", "install-containerd")] == "done"
    assert statuses[("llama-worker-1", "install-containerd")] == "unchanged"
    assert [c["argv"] for c in repair.calls if c["mutates"] and c["node"] == "llama-gpu-1"] == [
        ["restart", "containerd"],
        ["nvidia"],
    ]
    runtimes = cri_info(lab, "llama-gpu-1")["config"]["containerd"]["runtimes"]
    assert set(runtimes) == {"runc", "nvidia"}
    assert not [c for c in repair.calls if c["mutates"] and c["node"] != "llama-gpu-1"]
    assert run(lab, cli_args(cli_files, "doctor")).result.returncode == 0


def test_a_release_binary_that_does_not_match_its_pinned_sha256_is_never_installed(
    lab: Lab, cli_files: dict[str, Path], doctor_run: Run
) -> None:
    worker = next(n for n in lab.nodes if n.name == "llama-worker-1")
    download = "/srv/apt-doubles/k8s-release/v1.29.15/bin/linux/amd64/kubectl"
    original = lab.in_node(worker, "cat", download).stdout
    lab.in_node(worker, "sh", "-c", f"echo 'echo tampered' >> {download} && rm /usr/local/bin/kubectl")
    try:
        attempt = run(lab, cli_args(cli_files, "bootstrap"))
        assert attempt.result.returncode == 1
        said = " ".join(attempt.output.split())
        assert "install-kubernetes-binaries failed on llama-worker-1" in said
        assert f"checksum mismatch for file://{download}" in said
        assert lab.in_node(worker, "test", "-e", "/usr/local/bin/kubectl", check=False).returncode == 1
    finally:
        lab.in_node(worker, "sh", "-c", f"cat > {download} <<'EOF'\n{original}EOF")
    repaired = run(lab, cli_args(cli_files, "bootstrap"))
    assert repaired.result.returncode == 0, repaired.output


def test_a_changed_host_key_is_refused_with_a_clear_message(
    lab: Lab, cli_files: dict[str, Path], doctor_run: Run, tmp_path: Path
) -> None:
    impostor = tmp_path / "impostor"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor))
    wrong = " ".join(impostor.with_suffix(".pub").read_text().split()[:2])
    known_hosts = lab.known_hosts(tmp_path / "known_hosts", override={"llama-cp-1": wrong})
    attempt = run(lab, cli_args(cli_files, "bootstrap", known_hosts=known_hosts))
    assert attempt.result.returncode == 1
    assert "llama-cp-1" in attempt.output and "differs from the verified one" in attempt.output
    assert "Refusing to connect" in attempt.output
    assert not [c for c in attempt.calls if c["node"] == "llama-cp-1"], "nothing may run on a refused host"


def test_a_host_without_a_verified_key_is_refused(
    lab: Lab, cli_files: dict[str, Path], tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(f"{n.address} {n.host_public_key}\n" for n in lab.nodes[1:]))
    attempt = run(lab, cli_args(cli_files, "doctor", known_hosts=known_hosts))
    assert attempt.result.returncode == 1
    assert "llama-cp-1" in attempt.output and "no verified host key" in attempt.output


def test_an_unreachable_node_fails_after_bounded_retries(
    lab: Lab, cli_files: dict[str, Path], tmp_path: Path
) -> None:
    ghost = {
        "name": "llama-worker-2",
        "role": "worker",
        "public_ip": "198.51.100.199",
        "private_ip": "10.250.0.99",
    }
    inventory = lab.inventory(tmp_path / "inventory.json", extra_nodes=[ghost])
    state = tmp_path / "state"
    attempt = run(lab, cli_args(cli_files, "bootstrap", inventory=inventory, state=state))
    assert attempt.result.returncode == 1
    assert "llama-worker-2 (ubuntu@198.51.100.199:22) did not answer SSH after 3 attempts" in attempt.output
    assert "admin_cidrs" in attempt.output
    # Only a hang guard (a loaded 2-core machine is slow); the retries are proven by the log below.
    assert attempt.seconds < 240, "hang guard"
    log = (state / "logs" / "llama-worker-2.log").read_text()
    assert "attempt 1/3 failed" in log and "attempt 2/3 failed" in log
    assert not [c for c in attempt.calls if c["mutates"]], "nothing runs while a node is unreachable"


# -- the doctor's GPU and network branches, driven through the kubectl double's state ----------
DEVICE_PLUGIN_DS = {
    "apiVersion": "apps/v1",
    "kind": "DaemonSet",
    "metadata": {
        "name": "llama-nvidia-device-plugin",
        "namespace": "default",
        "labels": {"app.kubernetes.io/component": "gpu-device-plugin"},
    },
}


def device_plugin_pod(phase: str = "Running", ready: bool = True, waiting: str = "") -> dict:
    state = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "llama-nvidia-device-plugin-x7k2p",
            "namespace": "default",
            "labels": {"app.kubernetes.io/component": "gpu-device-plugin"},
        },
        "spec": {"nodeName": "llama-gpu-1", "containers": [{"name": "nvidia-device-plugin"}]},
        "status": {"phase": phase, "containerStatuses": [{"ready": ready, "state": state}]},
    }


@pytest.fixture
def plugin_installed(lab: Lab, doctor_run: Run):
    """What `helm install` leaves: the device plugin's DaemonSet and its pod on the GPU node."""
    saved = lab.api()
    lab.set_api(daemonsets=[DEVICE_PLUGIN_DS], pods=[device_plugin_pod()])
    yield
    (lab.shared / "api.json").write_text(json.dumps(saved))


def test_doctor_runs_a_gpu_pod_once_the_device_plugin_registered_and_removes_its_pods(
    lab: Lab, cli_files: dict[str, Path], plugin_installed: None
) -> None:
    doctor = run(lab, cli_args(cli_files, "doctor"))
    assert doctor.result.returncode == 0, doctor.output
    for expected in (
        "OK   llama-gpu-1: device plugin: default/llama-nvidia-device-plugin-x7k2p Running and registered:"
        " nvidia.com/gpu allocatable 1",
        "OK   llama-gpu-1: GPU pod: runtimeClassName nvidia, 1 GPU: GPU 0: Tesla T4",
        "OK   pod-to-pod across nodes",
    ):
        assert expected in doctor.output, expected
    created = [c for c in doctor.calls if c["cmd"] == "kubectl" and c["argv"][1:2] == ["apply"]]
    assert len(created) == 3, "the GPU pod, the network server and client"
    pods = [p["metadata"]["name"] for p in lab.api()["pods"]]
    assert pods == ["llama-nvidia-device-plugin-x7k2p"], "the doctor deleted its own pods"


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        pytest.param(
            {"pods": [device_plugin_pod(ready=False, waiting="CrashLoopBackOff")]},
            [
                (
                    "llama-gpu-1: device plugin: default/llama-nvidia-device-plugin-x7k2p is Running,"
                    " not ready: waiting: CrashLoopBackOff",
                    "kubectl -n default logs llama-nvidia-device-plugin-x7k2p",
                )
            ],
            id="plugin-crashing",
        ),
        pytest.param(
            {"allocatable_gpus": {"llama-gpu-1": 0}},
            [
                (
                    "runs but never registered with the kubelet: nvidia.com/gpu allocatable 0",
                    "ls /var/lib/kubelet/device-plugins",
                )
            ],
            id="plugin-not-registered",
        ),
        pytest.param(
            {"pods": []},
            [
                (
                    "llama-gpu-1: device plugin: its DaemonSet exists but no pod of it runs on this node",
                    "nvidia.com/gpu.present=true",
                )
            ],
            id="plugin-not-on-the-node",
        ),
        # Two independent faults per run (each has its own check), to keep the tier short.
        pytest.param(
            {"pod_gpus_visible": {"llama-gpu-1": 4}, "network": {"cross_node": False}},
            [
                ("llama-gpu-1: GPU pod: the pod asked for 1 GPU and sees 4", "NVIDIA_VISIBLE_DEVICES"),
                (
                    "pod-to-pod across nodes: llama-gpu-1 -> llama-worker-1 (192.168.",
                    "UDP 4789 (Calico VXLAN) between the nodes",
                ),
            ],
            id="pod-sees-every-gpu+vxlan-blocked",
        ),
        pytest.param(
            {"pod_gpus_visible": {"llama-gpu-1": 0}, "network": {"dns": False}},
            [
                (
                    "llama-gpu-1: GPU pod: nvidia-smi under RuntimeClass nvidia failed:"
                    " No devices were found",
                    "see the CRI runtimes, RuntimeClass and device plugin checks",
                ),
                (
                    "DNS from a pod: kubernetes.default from llama-gpu-1: ;; connection timed out",
                    "k8s-app=kube-dns",
                ),
            ],
            id="pod-sees-no-gpu+dns-broken",
        ),
        pytest.param(
            {"runtimeclasses": {}},
            [
                (
                    "RuntimeClass nvidia: absent: GPU pods are rejected (Error from server (NotFound): "
                    'runtimeclasses.node.k8s.io "nvidia" not found)',
                    "make bootstrap (label-gpu-node creates it)",
                ),
                ('pod rejected: RuntimeClass "nvidia" not found', "see the CRI runtimes"),
            ],
            id="no-runtimeclass",
        ),
        pytest.param(
            {"runtimeclasses": {"nvidia": "runc"}},
            [
                ("RuntimeClass nvidia: handler 'runc', not 'nvidia'", "kubectl delete runtimeclass nvidia"),
                ('exec: "nvidia-smi": executable file not found in $PATH', "see the CRI runtimes"),
            ],
            id="runtimeclass-with-the-runc-handler",
        ),
    ],
)
def test_doctor_fails_what_would_break_gpu_pods_and_prints_the_fix(
    lab: Lab,
    cli_files: dict[str, Path],
    plugin_installed: None,
    state: dict,
    expected: list[tuple[str, str]],
) -> None:
    lab.set_api(**state)
    doctor = run(lab, cli_args(cli_files, "doctor"))
    assert doctor.result.returncode == 1, doctor.output
    failures = re.findall(r"^FAIL (.*)\n  fix: (.*)$", doctor.output, re.M)
    for said, fix in expected:
        assert any(said in line and fix in advice for line, advice in failures), (said, failures)
    assert len(failures) == len(expected), failures
    leftovers = [p["metadata"]["name"] for p in lab.api()["pods"] if "doctor" in p["metadata"]["name"]]
    assert leftovers == []


def test_doctor_fails_a_driver_module_built_for_another_kernel(
    lab: Lab, cli_files: dict[str, Path], doctor_run: Run
) -> None:
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    # A DKMS build for the previous kernel after an unattended kernel upgrade.
    lab.in_node(gpu, "sh", "-c", "echo 6.8.0-1014-aws > /var/lib/node-doubles/nvidia-module-kernel")
    try:
        doctor = run(lab, cli_args(cli_files, "doctor"))
    finally:
        lab.in_node(gpu, "rm", "/var/lib/node-doubles/nvidia-module-kernel")
    assert doctor.result.returncode == 1
    said = " ".join(doctor.output.split())
    assert (
        "FAIL llama-gpu-1: driver module for the running kernel: nvidia module built for 6.8.0-1014-aws,"
        f" the running kernel is {os.uname().release}" in said
    )
    assert f"linux-modules-nvidia-580-server-{os.uname().release}" in said


def test_the_ready_gate_waits_for_a_slow_kubelet_and_times_out_on_a_stuck_one(
    lab: Lab, cli_files: dict[str, Path], doctor_run: Run
) -> None:
    lab.set_api(not_ready_polls={"llama-worker-1": 10**6})
    try:
        stuck = run(lab, [*cli_args(cli_files, "bootstrap")[:-1], "--gate-timeout", "4", "bootstrap"])
    finally:
        lab.set_api(not_ready_polls={})
    assert stuck.result.returncode == 1
    said = " ".join(stuck.output.split())
    assert "gate 'nodes Ready (llama-cp-1, llama-worker-1, llama-gpu-1)' did not pass within 4 s" in said
    assert "not Ready yet: llama-worker-1" in said and "journalctl -u kubelet" in said
    assert stuck.seconds >= 4, "the gate waited its timeout"
    assert stuck.seconds < 200, "hang guard"
    # A kubelet that needs three more looks: the gate polls until it is Ready, and passes.
    lab.set_api(not_ready_polls={"llama-worker-1": 3})
    slow = run(lab, cli_args(cli_files, "bootstrap"))
    assert slow.result.returncode == 0, slow.output
    assert lab.api()["not_ready_polls"] == {"llama-worker-1": 0}
    polls = [c for c in slow.calls if c["cmd"] == "kubectl" and "nodes" in c["argv"]]
    assert len(polls) >= 4, "the gate asked again until the node was Ready"
