"""node_bootstrap's logic alone: redaction, retries, host keys, inventory, rendering, doctor parsing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tomllib
from pathlib import Path

import paramiko
import pytest
import yaml
from node_bootstrap import SCRIPTS_DIR
from node_bootstrap.cli import main
from node_bootstrap.cluster import ensure_known_hosts
from node_bootstrap.doctor import gpu_checks, parse_nvidia_smi
from node_bootstrap.errors import HostKeyError, InventoryError, PreflightError
from node_bootstrap.hostkeys import known_hosts_lines, parse_console_host_keys, sha256_fingerprint
from node_bootstrap.inventory import parse_inventory
from node_bootstrap.kubeconfig import public_kubeconfig
from node_bootstrap.orchestrator import step_outcome
from node_bootstrap.redact import MASK, Redactor
from node_bootstrap.render import (
    KUBELET_RESERVED,
    calico_installation,
    containerd_config,
    kubeadm_init_config,
    kubeadm_join_config,
)
from node_bootstrap.retry import RetryPolicy, retry
from node_bootstrap.settings import Settings, k8s_minor, node_env, render_node_env
from node_bootstrap.steps import ALL_SCRIPTS, PREPARE

pytestmark = pytest.mark.unit

INVENTORY = {
    "cluster_name": "llama",
    "kubernetes_version": "v1.29.15",
    "region": "eu-west-1",
    "ssh_user": "ubuntu",
    "nodes": [
        {
            "name": "llama-cp-1",
            "role": "control-plane",
            "public_ip": "203.0.113.10",
            "private_ip": "10.10.0.10",
            "instance_id": "i-0aaa00000000000a1",
        },
        {
            "name": "llama-worker-1",
            "role": "worker",
            "public_ip": "203.0.113.11",
            "private_ip": "10.10.1.11",
            "instance_id": "i-0aaa00000000000a2",
        },
        {
            "name": "llama-gpu-1",
            "role": "gpu-worker",
            "public_ip": "203.0.113.12",
            "private_ip": "10.10.2.12",
            "instance_id": "i-0aaa00000000000a3",
        },
    ],
}


def test_redactor_masks_registered_secrets_and_token_shapes_it_never_saw() -> None:
    redact = Redactor()
    redact.add("s3cr3t-join-value")
    text = "join with s3cr3t-join-value and --token abcdef.0123456789abcdef\nclient-key-data: LS0tQUJD"
    clean = redact(text)
    assert "s3cr3t-join-value" not in clean and "0123456789abcdef" not in clean and "LS0tQUJD" not in clean
    assert "abcdef." + MASK in clean  # the token id alone is not secret and helps debugging
    assert redact("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----") == MASK


def test_retry_is_bounded_and_backs_off_with_jitter() -> None:
    calls, sleeps = [], []

    def flaky() -> str:
        calls.append(1)
        raise OSError("no route to host")

    with pytest.raises(OSError):
        retry(flaky, RetryPolicy(attempts=4, base_delay=1, max_delay=3), (OSError,), sleep=sleeps.append)
    assert len(calls) == 4 and len(sleeps) == 3
    assert all(0 <= s <= min(3, 2**i) for i, s in enumerate(sleeps))


def test_retry_does_not_retry_errors_outside_the_network_class() -> None:
    calls = []

    def broken() -> None:
        calls.append(1)
        raise ValueError("bad config")

    with pytest.raises(ValueError):
        retry(broken, RetryPolicy(attempts=5, base_delay=0), (OSError,), sleep=lambda s: None)
    assert calls == [1]


def _console_with(key_b64: str, fingerprint: str) -> str:
    return (
        "[   12.3] cloud-init[812]: Cloud-init v. 24.1 running 'modules:final'\n"
        "ec2: #############################################################\n"
        "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"ec2: 256 SHA256:{fingerprint} root@ip-10-10-0-10 (ED25519)\n"
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----\n"
        "-----BEGIN SSH HOST KEY KEYS-----\n"
        f"ssh-ed25519 {key_b64} root@ip-10-10-0-10\n"
        "-----END SSH HOST KEY KEYS-----\n"
    )


def test_host_keys_are_read_from_the_console_and_checked_against_the_printed_fingerprints(
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)], check=True)
    key_b64 = key_file.with_suffix(".pub").read_text().split()[1]
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(key_file.with_suffix(".pub"))], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert printed == f"SHA256:{sha256_fingerprint(key_b64)}"
    keys = parse_console_host_keys(_console_with(key_b64, sha256_fingerprint(key_b64)))
    assert keys == [("ssh-ed25519", key_b64)]
    node = parse_inventory(INVENTORY).control_plane
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("\n".join(known_hosts_lines(node, keys)) + "\n")
    # paramiko (what the bootstrap connects with) reads the file back to exactly that key.
    loaded = paramiko.HostKeys(str(known_hosts)).lookup("203.0.113.10")
    assert loaded is not None and loaded["ssh-ed25519"].get_base64() == key_b64


def test_a_console_key_that_does_not_match_its_fingerprint_is_rejected() -> None:
    key_b64 = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + b"k" * 32).decode()
    other = base64.b64encode(hashlib.sha256(b"other").digest()).decode().rstrip("=")
    with pytest.raises(HostKeyError, match="none of the console's 1 host keys matches a printed fingerprint"):
        parse_console_host_keys(_console_with(key_b64, other))


def _fake_key(seed: bytes) -> str:
    return base64.b64encode(
        b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + hashlib.sha256(seed).digest()
    ).decode()


def test_a_garbled_console_key_line_is_skipped_and_the_verified_keys_are_used() -> None:
    good, other = _fake_key(b"ed25519"), _fake_key(b"ecdsa")
    console = _console_with(good, sha256_fingerprint(good)).replace(
        "-----END SSH HOST KEY KEYS-----",
        # The serial console interleaves kernel messages: a key line cut in the middle.
        f"ecdsa-sha2-nistp256 {other[:30]}[   13.1] random: crng init done\n"
        f"ssh-rsa AAAA{'%' * 8}garbled\n-----END SSH HOST KEY KEYS-----",
    )
    assert parse_console_host_keys(console) == [("ssh-ed25519", good)]


def test_host_keys_are_read_once_per_instance_and_reused_after_a_stop_start(tmp_path: Path) -> None:
    inventory = parse_inventory(INVENTORY)
    keys = {n.instance_id: _fake_key(n.instance_id.encode()) for n in inventory.nodes}
    consoles = {i: _console_with(k, sha256_fingerprint(k)) for i, k in keys.items()}
    asked: list[str] = []

    def console(instance_id: str) -> str:
        asked.append(instance_id)
        return consoles[instance_id]

    settings = Settings(state_dir=tmp_path, console_timeout=0)
    first = ensure_known_hosts(settings, inventory, fetch=console).read_text()
    assert sorted(asked) == sorted(keys)
    assert (tmp_path / "host-keys.json").stat().st_mode & 0o777 == 0o600
    # Stop/start: cloud-init does not print the keys again and the public addresses change.
    consoles = dict.fromkeys(keys, "[    1.0] Booting Linux\n")
    moved = dict(
        INVENTORY, nodes=[dict(n, public_ip=f"198.51.100.{i}") for i, n in enumerate(INVENTORY["nodes"])]
    )
    second = ensure_known_hosts(settings, parse_inventory(moved), fetch=console).read_text()
    assert len(asked) == 3, "no console read for instances whose keys are cached"
    assert [line.split()[1:] for line in first.splitlines()] == [
        line.split()[1:] for line in second.splitlines()
    ]
    assert "198.51.100.0 ssh-ed25519" in second
    # A replaced node (same name, new instance id) is read from its console, the old id forgotten.
    replaced = dict(
        INVENTORY, nodes=[*INVENTORY["nodes"][:2], dict(INVENTORY["nodes"][2], instance_id="i-0new")]
    )
    new_key = _fake_key(b"new")
    consoles["i-0new"] = _console_with(new_key, sha256_fingerprint(new_key))
    third = ensure_known_hosts(settings, parse_inventory(replaced), fetch=console).read_text()
    assert asked[-1] == "i-0new" and new_key in third
    assert set(json.loads((tmp_path / "host-keys.json").read_text())) == {
        "i-0aaa00000000000a1",
        "i-0aaa00000000000a2",
        "i-0new",
    }


def test_console_without_keys_yet_gives_nothing_to_trust() -> None:
    assert parse_console_host_keys("[    1.0] Booting Linux\n") == []


def test_inventory_parses_terraform_output_and_names_what_is_wrong() -> None:
    inventory = parse_inventory({"sensitive": False, "type": [], "value": INVENTORY})
    assert inventory.control_plane.name == "llama-cp-1"
    assert [n.name for n in inventory.gpu_nodes] == ["llama-gpu-1"]
    assert [n.name for n in inventory.joining_nodes] == ["llama-worker-1", "llama-gpu-1"]
    broken = json.loads(json.dumps(INVENTORY))
    broken["nodes"][2]["public_ip"] = None
    with pytest.raises(InventoryError, match="llama-gpu-1: public_ip is None, not an IP address"):
        parse_inventory(broken)
    broken["nodes"] = INVENTORY["nodes"][1:]
    with pytest.raises(InventoryError, match="exactly one control-plane"):
        parse_inventory(broken)


def test_rendered_kubeadm_init_config_follows_the_checklist() -> None:
    docs = list(yaml.safe_load_all(kubeadm_init_config(Settings(), parse_inventory(INVENTORY))))
    init, cluster, kubelet = docs
    assert init["nodeRegistration"]["kubeletExtraArgs"]["node-ip"] == "10.10.0.10"
    assert init["bootstrapTokens"][0]["ttl"] == "15m0s"
    assert cluster["kubernetesVersion"] == "v1.29.15"
    assert cluster["networking"]["podSubnet"] == "192.168.0.0/16"
    assert "203.0.113.10" in cluster["apiServer"]["certSANs"]
    assert kubelet["cgroupDriver"] == "systemd"


def test_kubelet_reserves_memory_so_vllms_limit_still_fits_the_gpu_node() -> None:
    docs = list(yaml.safe_load_all(kubeadm_init_config(Settings(), parse_inventory(INVENTORY))))
    kubelet = next(d for d in docs if d["kind"] == "KubeletConfiguration")
    assert kubelet["cgroupDriver"] == "systemd"
    assert kubelet["systemReserved"]["memory"] == "512Mi" and kubelet["kubeReserved"]["memory"] == "512Mi"
    assert kubelet["evictionHard"]["memory.available"] == "300Mi"
    assert kubelet["enforceNodeAllocatable"] == ["pods"]
    # The chart's validation of vLLM's memory limit counts on exactly these reservations: one set
    # of numbers, kept equal here (charts/platform/charts/vllm-llama/values.yaml gpu.profiles).
    values = Path(__file__).resolve().parents[2] / "charts/platform/charts/vllm-llama/values.yaml"
    chart = yaml.safe_load(values.read_text())["gpu"]
    for name, profile in chart["profiles"].items():
        assert profile["nodeReservedMemoryMiB"] == KUBELET_RESERVED.total_memory_mib, name
        allocatable = KUBELET_RESERVED.allocatable_memory_mib(profile["nodeMemoryMiB"])
        t4_limit = 13 * 1024  # values/aws-t4.yaml and aws-a10g.yaml
        assert t4_limit + chart["nodeAgentsMemoryMiB"] <= allocatable < profile["nodeMemoryMiB"] - 1024, name


def test_rendered_join_config_taints_and_labels_only_gpu_nodes() -> None:
    inventory = parse_inventory(INVENTORY)
    gpu = yaml.safe_load(
        kubeadm_join_config(
            inventory.node("llama-gpu-1"), "10.10.0.10:6443", "a" * 6 + "." + "b" * 16, "sha256:" + "c" * 64
        )
    )
    cpu = yaml.safe_load(kubeadm_join_config(inventory.node("llama-worker-1"), "10.10.0.10:6443", "t", "h"))
    assert gpu["nodeRegistration"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]
    assert gpu["nodeRegistration"]["kubeletExtraArgs"]["node-labels"] == "nvidia.com/gpu.present=true"
    assert cpu["nodeRegistration"]["taints"] == []
    assert gpu["discovery"]["bootstrapToken"]["caCertHashes"] == ["sha256:" + "c" * 64]


def test_rendered_containerd_and_calico_configs() -> None:
    settings = Settings()
    inventory = parse_inventory(INVENTORY)
    cpu = tomllib.loads(containerd_config(settings, inventory.node("llama-worker-1")))
    gpu = tomllib.loads(containerd_config(settings, inventory.node("llama-gpu-1")))
    for config in (cpu, gpu):
        # One file: containerd 1.x would replace whole sections from an imported drop-in.
        assert "imports" not in config
        cri = config["plugins"]["io.containerd.grpc.v1.cri"]
        assert cri["sandbox_image"] == "registry.k8s.io/pause:3.9"
        assert cri["containerd"]["default_runtime_name"] == "runc"
    assert set(cpu["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]) == {"runc"}
    runtimes = gpu["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes["runc"]["options"] == {"SystemdCgroup": True}
    assert runtimes["nvidia"]["options"] == {
        "BinaryName": "/usr/bin/nvidia-container-runtime",
        "SystemdCgroup": True,
    }
    installation, apiserver = yaml.safe_load_all(calico_installation(settings))
    network = installation["spec"]["calicoNetwork"]
    assert network["mtu"] == 8951
    assert network["ipPools"][0]["encapsulation"] == "VXLAN"
    assert network["ipPools"][0]["cidr"] == "192.168.0.0/16"
    assert apiserver["kind"] == "APIServer"


def test_node_env_pins_the_kubernetes_channel_and_accepts_only_known_overrides(tmp_path: Path) -> None:
    inventory = parse_inventory(INVENTORY)
    env = node_env(Settings(), inventory)
    assert k8s_minor("v1.30.2") == "v1.30"
    # Release binaries with pinned checksums, not the pkgs.k8s.io repository whose key expires.
    assert env["NODE_BOOTSTRAP_K8S_RELEASE_URL"] == "https://dl.k8s.io/release/v1.29.15/bin/linux/amd64"
    assert all(len(env[f"NODE_BOOTSTRAP_K8S_SHA256_{b}"]) == 64 for b in ("KUBEADM", "KUBELET", "KUBECTL"))
    assert not [k for k in env if "APT" in k and "K8S" in k]
    unpinned = parse_inventory(dict(INVENTORY, kubernetes_version="v1.30.14"))
    with pytest.raises(PreflightError, match=r"no pinned SHA-256 for Kubernetes v1\.30\.14"):
        node_env(Settings(), unpinned)
    overrides = tmp_path / "node.env"
    overrides.write_text("NODE_BOOTSTRAP_K8S_RELEASE_URL=file:///srv/mirror\n")
    assert (
        node_env(Settings(node_env_file=overrides), inventory)["NODE_BOOTSTRAP_K8S_RELEASE_URL"]
        == "file:///srv/mirror"
    )
    overrides.write_text("NODE_BOOTSTRAP_TYPO=1\n")
    with pytest.raises(ValueError, match="NODE_BOOTSTRAP_TYPO=1"):
        node_env(Settings(node_env_file=overrides), inventory)
    rendered = render_node_env({"A": "it's"})
    assert (
        subprocess.run(["bash", "-c", f'{rendered}\necho "$A"'], capture_output=True, text=True).stdout
        == "it's\n"
    )


def test_step_outcome_reads_what_the_script_said() -> None:
    assert step_outcome("node-bootstrap: x: already done: fine\n") == "unchanged"
    assert step_outcome("node-bootstrap: x: changed: wrote it\n") == "changed"
    assert step_outcome("node-bootstrap: install-nvidia-driver: reboot-required: ...\n") == "reboot"


def test_nvidia_smi_output_feeds_the_gpu_checks() -> None:
    gpus = parse_nvidia_smi("Tesla T4, 580.95.05, 7.5, 15360\n")
    assert [c.status for c in gpu_checks("gpu-1", gpus)] == ["ok", "ok", "ok"]
    small = gpu_checks("gpu-1", parse_nvidia_smi("Tesla K80, 470.1, 3.7, 11441\n"))
    assert [c.status for c in small] == ["ok", "fail", "fail"]
    assert all(c.fix for c in small if c.status == "fail")
    assert gpu_checks("gpu-1", [])[0].status == "fail"


def test_kubeconfig_points_at_the_public_address() -> None:
    text = "clusters:\n- cluster:\n    server: https://10.10.0.10:6443\n"
    assert "server: https://203.0.113.10:6443" in public_kubeconfig(text, "203.0.113.10")


def test_every_step_script_exists_is_strict_and_checks_before_acting() -> None:
    for name in ALL_SCRIPTS:
        text = (SCRIPTS_DIR / f"{name}.sh").read_text()
        assert "set -euo pipefail" in text, name
        if name != "lib":
            assert "already_done" in text, f"{name}.sh never says 'already done'"
    assert [s.script for s in PREPARE][:2] == ["wait-for-cloud-init", "disable-swap"]


def test_node_scripts_are_shellcheck_clean() -> None:
    if subprocess.run(["which", "shellcheck"], capture_output=True).returncode != 0:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    scripts = sorted(str(p) for p in SCRIPTS_DIR.glob("*.sh"))
    result = subprocess.run(["shellcheck", "-x", "-S", "style", *scripts], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_cli_names_the_missing_ssh_key_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(INVENTORY))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("")
    code = main(["--inventory", str(inventory), "--known-hosts", str(known_hosts),
                 "--ssh-key", str(tmp_path / "nope"), "--state-dir", str(tmp_path), "doctor"])  # fmt: skip
    assert code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"SSH private key {tmp_path / 'nope'} does not exist" in err and "ssh-keygen -t ed25519" in err


def test_cli_says_terraform_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["--state-dir", str(tmp_path), "bootstrap"]) == 2
    assert "terraform is not installed or not on PATH" in " ".join(capsys.readouterr().err.split())


def test_cli_says_aws_credentials_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(INVENTORY))
    assert main(["--inventory", str(inventory), "--state-dir", str(tmp_path), "doctor"]) == 2
    assert "no AWS credentials found" in " ".join(capsys.readouterr().err.split())


def test_live_progress_shows_every_node_and_its_current_step() -> None:
    import io

    from node_bootstrap.progress import Progress
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with Progress(["llama-cp-1", "llama-gpu-1"], live=True, console=console) as progress:
        progress.update("llama-cp-1", "running", "install-calico")
        progress.update(
            "llama-gpu-1", "failed", "install-nvidia-driver", "see build/bootstrap/logs/llama-gpu-1.log"
        )
    screen = out.getvalue()
    for expected in ("llama-cp-1", "install-calico", "llama-gpu-1", "install-nvidia-driver", "failed"):
        assert expected in screen
