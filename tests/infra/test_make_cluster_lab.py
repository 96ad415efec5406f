"""`make cluster` end to end in the lab, as one command: `python -m node_bootstrap cluster`
(what the Makefile target runs) with Terraform and the real AWS provider against moto, and the
three sandbox hosts of sandbox.py (real OpenSSH in network namespaces) as the EC2 instances.

This test plays EC2's part and nothing else:
  - moto runs on the admin laptop's side (its network namespace, where the CLI reaches the AWS
    endpoint) and hands out public addresses from the lab's internet (MOTO_PUBLIC_IP_RANGE);
  - when terraform's `inventory` output exists (the same output the bootstrap reads), the
    instances "boot": each sandbox host takes the private and public address moto gave that
    instance, and its sshd starts;
  - cloud-init "prints" each host's real host key to that instance's console output
    (moto answers GetConsoleOutput) only after the CLI has read the console at least once
    without keys, so the CLI's polling really waits.
No --inventory, no --known-hosts: the CLI gets both the way it does on AWS. Then every doctor
check green, a stop/start of the GPU node (new public address, blank instance store, console
without keys), `bootstrap` back to green from the cached keys, a second `bootstrap` that changes
nothing, and `destroy`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scripts.local_run.process import ManagedProcess, tail

from .apt_doubles import build_kubernetes_release, build_repositories
from .conftest import unavailable
from .sandbox import PUBLIC_SUBNET, Lab, SandboxNode, namespaces_available
from .terraform_env import CLI_CONFIG, REPO, moto_amis, offline_reason, terraform, working_copy
from .test_bootstrap_sandbox import (
    DEVICE_PLUGIN_DS,
    STEP_LINE,
    device_plugin_pod,
    upper_snapshot,
)
from .test_console_host_keys_moto import cloud_init_console
from .test_terraform import GRANTED

pytestmark = pytest.mark.integration

REGION = "us-east-1"
MOTO_PORT = 4566  # in the admin namespace, where nothing else listens
# moto's public addresses: the lab's internet bridge, above the admin laptop (.1) and the
# fixed-address lab of the other tests (which uses its own namespaces anyway).
PUBLIC_RANGE = f"{PUBLIC_SUBNET}.128/25"
NODES = (
    ("llama-cp-1", "control-plane", 10),
    ("llama-worker-1", "worker", 11),
    ("llama-gpu-1", "gpu-worker", 12),
)
AWS_ENV = {
    "AWS_ENDPOINT_URL": f"http://127.0.0.1:{MOTO_PORT}",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
    # The offline provider mirror (terraform_env.py); a user's terraform asks the registry.
    "TF_CLI_CONFIG_FILE": str(CLI_CONFIG),
    "TF_IN_AUTOMATION": "1",
    "CHECKPOINT_DISABLE": "1",
    "TF_PLUGIN_CACHE_DIR": "",
}


@dataclass
class Cloud:
    lab: Lab
    tf_dir: Path
    consoles: Path
    state: Path
    moto: ManagedProcess
    booted: dict[str, str] = field(default_factory=dict)  # instance id -> node name
    seconds: list[tuple[str, float]] = field(default_factory=list)  # how long each command took

    def cli_args(self, command: str) -> list[str]:
        return [
            "--tf-dir", str(self.tf_dir),
            "--ssh-key", str(self.lab.client_key),
            "--state-dir", str(self.state),
            "--kubeconfig", str(self.lab.workdir / "kubeconfig"),
            "--node-env", str(self.lab.node_env(self.lab.workdir / "node.env")),
            "--plain",
            "--auto-approve",
            "--connect-attempts", "3",
            "--connect-timeout", "3",
            "--retry-base-delay", "0.2",
            "--gate-timeout", "30",
            "--reboot-wait", "1",
            "--console-timeout", "120",
            "--console-interval", "1",
            command,
        ]  # fmt: skip

    def cli(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = self.lab.run_cli(*self.cli_args(command), timeout=timeout, env=AWS_ENV)
        self.seconds.append((command, time.monotonic() - started))
        return result

    def console_reads(self) -> list[dict[str, Any]]:
        log = self.consoles / "reads.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def ec2(self, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """EC2 API calls, in order, from the admin laptop (where the endpoint is), as `aws ec2 ...`."""
        code = (
            "import boto3, json, sys\n"
            f"ec2 = boto3.client('ec2', region_name={REGION!r})\n"
            "print(json.dumps([getattr(ec2, m)(**a) for m, a in json.loads(sys.argv[1])], default=str))\n"
        )
        result = subprocess.run(
            self.lab.in_admin(str(REPO / ".venv/bin/python"), "-c", code, json.dumps(calls)),
            capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **AWS_ENV},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout)


def lab_node(lab: Lab, name: str) -> SandboxNode:
    return next(n for n in lab.nodes if n.name == name)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    for reason in (offline_reason(), namespaces_available()):
        if reason is not None:
            unavailable(f"`make cluster` in the lab needs terraform and network namespaces: {reason}")
    workdir = tmp_path_factory.mktemp("make-cluster")
    # Its own namespace names: the `lab` fixture of the other modules may exist at the same time.
    lab = Lab(workdir / "nodes", prefix=f"mc{os.getpid() % 100000}")
    moto: ManagedProcess | None = None
    try:
        apt_root = build_repositories(lab.workdir / "apt-doubles")
        lab.release_env = build_kubernetes_release(apt_root / "k8s-release")
        lab.write_client_key()
        lab.build_network()
        for name, role, index in NODES:
            lab.prepare_node(name, role, index, apt_root)  # the image; addresses come from EC2
        tf_dir = working_copy(workdir / "terraform")
        public_key = lab.client_key.with_suffix(".pub").read_text().strip()
        (tf_dir / "terraform.tfvars").write_text(
            f'ssh_public_key = "{public_key}"\n'
            f'region = "{REGION}"\n'
            f'admin_cidrs = ["{PUBLIC_SUBNET}.1/32"]\n'  # the admin laptop's address
            f'client_cidrs = ["{PUBLIC_SUBNET}.0/24"]\n'
        )
        consoles = workdir / "consoles"
        consoles.mkdir()
        quotas = workdir / "ec2-quotas.json"
        quotas.write_text(json.dumps(GRANTED))
        moto = ManagedProcess(
            name="moto_server (admin namespace)",
            argv=lab.in_admin(
                str(REPO / ".venv/bin/python"),
                str(Path(__file__).with_name("moto_server_with_ec2_quotas.py")),
                *("-H", "127.0.0.1", "-p", str(MOTO_PORT)),
            ),
            log_path=workdir / "moto.log",
            env={
                "MOTO_AMIS_PATH": str(moto_amis(workdir / "amis.json")),
                "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
                "MOTO_EC2_QUOTAS_FILE": str(quotas),
                "MOTO_CONSOLE_DIR": str(consoles),
                "MOTO_PUBLIC_IP_RANGE": PUBLIC_RANGE,
            },
        ).start()
        probe = lab.in_admin("curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{MOTO_PORT}/moto-api/")
        moto.wait_ready(lambda: subprocess.run(probe, check=False).returncode == 0, timeout=60)
        yield Cloud(lab, tf_dir, consoles, workdir / "state", moto)
    finally:
        if moto is not None:
            moto.stop()
        lab.close()


class Ec2Boot(threading.Thread):
    """EC2's side of `make cluster`: boot each instance on a sandbox host once terraform created
    it, then print its host keys to its console once the CLI is polling that console."""

    def __init__(self, cloud: Cloud, cli: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.cloud, self.cli = cloud, cli
        self.error: BaseException | None = None
        self.inventory: dict[str, Any] = {}

    def run(self) -> None:
        try:
            self.inventory = self.wait_for_inventory()
            lab = self.cloud.lab
            prefix = int(self.inventory["vpc_cidr"].split("/")[1])
            for entry in self.inventory["nodes"]:
                node = lab_node(lab, entry["name"])
                lab.plug_node(node, entry["private_ip"], entry["public_ip"], vpc_prefix=prefix)
                lab.start_node(node)
                self.cloud.booted[entry["instance_id"]] = node.name
            for node in lab.nodes:
                lab.wait_ssh(node)
            self.print_host_keys()
        except BaseException as error:  # surfaced by the test
            self.error = error

    def running(self) -> bool:
        return self.cli.poll() is None

    def wait_for_inventory(self) -> dict[str, Any]:
        """terraform's `inventory` output (what the bootstrap reads), once apply has written it."""
        deadline = time.monotonic() + 400
        while self.running() and time.monotonic() < deadline:
            output = terraform(self.cloud.tf_dir, "output", "-json", "inventory", timeout=60)
            if output.returncode == 0 and output.stdout.strip().startswith("{"):
                return json.loads(output.stdout)
            time.sleep(2)
        raise AssertionError("terraform never wrote the inventory output (see the CLI's output)")

    def print_host_keys(self) -> None:
        lab = self.cloud.lab
        pending = dict(self.cloud.booted)
        deadline = time.monotonic() + 300
        while pending and self.running() and time.monotonic() < deadline:
            polled = {r["instance"] for r in self.cloud.console_reads()}
            for instance_id in [i for i in pending if i in polled]:
                node = lab_node(lab, pending.pop(instance_id))
                key_b64 = node.host_public_key.split()[1]
                text = cloud_init_console(key_b64, hostname=f"ip-{node.private_address.replace('.', '-')}")
                (self.cloud.consoles / f"{instance_id}.txt").write_text(text)
            time.sleep(0.3)


def check_lines(output: str) -> list[tuple[str, str]]:
    """(status, line) of every doctor check in --plain output."""
    return re.findall(r"^(OK|WARN|FAIL) +(.*)$", output, re.M)


def test_make_cluster_end_to_end_then_a_gpu_stop_start_and_bootstrap_back_to_green(cloud: Cloud) -> None:
    lab = cloud.lab
    started = time.monotonic()
    cluster = subprocess.Popen(
        lab.in_admin(str(REPO / ".venv/bin/python"), "-m", "node_bootstrap", *cloud.cli_args("cluster")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, "COLUMNS": "200", **AWS_ENV},
    )  # fmt: skip
    ec2 = Ec2Boot(cloud, cluster)
    ec2.start()
    try:
        output, _ = cluster.communicate(timeout=480)  # hang guard; about 2 min on a quiet 2-core box
        output = re.sub(r"\x1b\[[0-9;]*m", "", output)  # terraform's colours
        (cloud.lab.workdir / "make-cluster.log").write_text(output)
    finally:
        if cluster.poll() is None:
            cluster.kill()
        ec2.join(timeout=30)
    cloud.seconds.append(("cluster", time.monotonic() - started))
    assert ec2.error is None, f"{ec2.error!r}\n{output[-4000:]}\nmoto:\n{tail(cloud.moto.log_path)}"
    assert cluster.returncode == 0, output[-6000:]
    inventory = ec2.inventory
    nodes = {n["name"]: n for n in inventory["nodes"]}
    assert sorted(nodes) == ["llama-cp-1", "llama-gpu-1", "llama-worker-1"]

    # terraform ran inside the command: the cost of the plan was shown, then the apply.
    assert re.search(r"^  total: \$[0-9.]+/hour", output, re.M) and "Apply complete!" in output

    # The console was polled until cloud-init printed the keys, for every instance, and the
    # known_hosts holds the sandbox hosts' real keys at the addresses moto gave the instances.
    reads = cloud.console_reads()
    for name, entry in nodes.items():
        seen = [r["host_keys"] for r in reads if r["instance"] == entry["instance_id"]]
        assert seen[:1] == [False] and seen[-1:] == [True] and seen.count(True) == 1, (name, seen)
    known_hosts = (cloud.state / "known_hosts").read_text()
    assert known_hosts == "".join(
        f"{nodes[n.name]['public_ip']} {n.host_public_key}\n" for n in sorted(lab.nodes, key=lambda n: n.name)
    )
    cached = json.loads((cloud.state / "host-keys.json").read_text())
    assert sorted(cached) == sorted(e["instance_id"] for e in nodes.values())

    # The private addresses moto gave are what kubeadm advertises and the nodes join through; the
    # kubeconfig points at the control plane's Elastic IP.
    calls = lab.calls()
    init = next(c for c in calls if c["cmd"] == "kubeadm" and c["argv"][:1] == ["init"])
    assert init["advertiseAddress"] == nodes["llama-cp-1"]["private_ip"]
    joins = [c for c in calls if c["cmd"] == "kubeadm" and c["argv"][:1] == ["join"]]
    assert {c["endpoint"] for c in joins} == {f"{nodes['llama-cp-1']['private_ip']}:6443"}
    assert nodes["llama-cp-1"]["private_ip"] != nodes["llama-cp-1"]["public_ip"]
    [addresses] = cloud.ec2(("describe_addresses", {}))
    eips = {a["InstanceId"]: a["PublicIp"] for a in addresses["Addresses"]}
    assert eips[nodes["llama-cp-1"]["instance_id"]] == nodes["llama-cp-1"]["public_ip"]
    kubeconfig = (lab.workdir / "kubeconfig").read_text()
    assert f"server: https://{nodes['llama-cp-1']['public_ip']}:6443" in kubeconfig

    # The doctor that ended `make cluster`: nothing failed; before `helm install` only the device
    # plugin and the GPU pod are not there yet.
    statuses = check_lines(output)
    assert not [line for status, line in statuses if status == "FAIL"], output[-4000:]
    assert sorted(line.split(":")[1].strip() for status, line in statuses if status == "WARN") == [
        "GPU pod",
        "device plugin",
    ]

    # What `helm install` leaves: the device plugin running and registered. (The doctor then has
    # every check green: asserted after the stop/start below, one `make doctor` fewer to wait for.)
    lab.set_api(daemonsets=[DEVICE_PLUGIN_DS], pods=[device_plugin_pod()])

    # Stop/start of the GPU node: a new public address (no Elastic IP), a blank instance store,
    # runtime state gone, and a console without host keys (cloud-init prints them once per instance).
    gpu_id = nodes["llama-gpu-1"]["instance_id"]
    *_, described = cloud.ec2(
        ("stop_instances", {"InstanceIds": [gpu_id]}),
        ("start_instances", {"InstanceIds": [gpu_id]}),
        ("describe_instances", {"InstanceIds": [gpu_id]}),
    )
    new_ip = described["Reservations"][0]["Instances"][0]["PublicIpAddress"]
    assert new_ip != nodes["llama-gpu-1"]["public_ip"]
    (cloud.consoles / f"{gpu_id}.txt").unlink()
    gpu = lab_node(lab, "llama-gpu-1")
    lab.move_public_address(gpu, new_ip)
    image = "/srv/instance-store.img"
    lab.in_node(gpu, "sh", "-c", f"truncate -s 0 {image} && truncate -s 64M {image}")
    assert lab.in_node(gpu, "blkid", image, check=False).stdout == ""
    booted = lab.in_node(gpu, "python3", "/srv/node-doubles/double.py", "boot", check=False)
    assert booted.returncode == 0, booted.stderr

    reads_before = len(cloud.console_reads())
    back = cloud.cli("bootstrap")
    assert back.returncode == 0, back.stdout + back.stderr
    assert cloud.console_reads()[reads_before:] == [], "the cached keys are used; no console wait"
    assert f"{new_ip} {gpu.host_public_key}\n" in (cloud.state / "known_hosts").read_text()
    assert lab.in_node(gpu, "blkid", "-o", "value", "-s", "TYPE", image).stdout.strip() == "ext4"
    assert lab.in_node(gpu, "stat", "-c", "%u:%g", "/mnt/model-cache/vllm").stdout.strip() == "10001:10001"
    doctor = cloud.cli("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    green = check_lines(doctor.stdout + doctor.stderr)
    assert len(green) == len(statuses) and {status for status, _ in green} == {"OK"}, green
    assert "OK   llama-gpu-1: GPU pod: runtimeClassName nvidia, 1 GPU: GPU 0: Tesla T4" in doctor.stderr
    assert "OK   llama-gpu-1: model cache: /mnt/model-cache on the NVMe instance store" in doctor.stderr

    # A second run changes nothing: no step reports a change, no double was asked to change
    # anything, and no file on any node differs.
    before, calls_before = upper_snapshot(lab), len(lab.calls())
    again = cloud.cli("bootstrap")
    assert again.returncode == 0, again.stdout + again.stderr
    said = again.stderr + again.stdout
    steps = {(m["node"], m["step"]): m["status"] for m in STEP_LINE.finditer(said) if m["step"] != "ready"}
    assert len(steps) >= 20 and set(steps.values()) == {"unchanged"}, steps
    for node in lab.nodes:
        assert f"[{node.name}] ready: done - 0 steps changed something" in said
    assert [c for c in lab.calls()[calls_before:] if c["mutates"]] == []
    after = upper_snapshot(lab)
    assert sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k)) == []

    # `make destroy`: terraform removes everything, and AWS (moto) is asked, not the state.
    destroyed = cloud.cli("destroy")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert "Nothing of cluster 'llama' is left in us-east-1" in destroyed.stdout
    assert not (cloud.state / "host-keys.json").exists()
    live = [
        i["InstanceId"]
        for r in cloud.ec2(("describe_instances", {}))[0]["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    assert live == []
    print(", ".join(f"{c} {s:.0f} s" for c, s in cloud.seconds), f"all: {time.monotonic() - started:.0f} s")
