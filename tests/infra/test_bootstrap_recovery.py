"""The bootstrap recovering from what happens to real clusters, on the sandboxed nodes (sandbox.py):
an interrupted `kubeadm init`, a replaced node. Its own lab (the `lab` fixture is per module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import cli_args
from .sandbox import Lab
from .test_bootstrap_sandbox import Run, first_index, run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def interrupted(lab: Lab, cli_files: dict[str, Path]) -> Run:
    # kubeadm init stops after writing admin.conf, the manifests and kubeadm-config, before
    # its addon phase (kube-proxy, CoreDNS): what a dropped SSH session or a timeout leaves.
    (lab.shared / "inject.json").write_text(json.dumps({"kubeadm-init-stops-before": "addon"}))
    return run(lab, cli_args(cli_files, "bootstrap"))


@pytest.fixture(scope="module")
def resumed(lab: Lab, cli_files: dict[str, Path], interrupted: Run) -> Run:
    return run(lab, cli_args(cli_files, "bootstrap"))


def test_an_interrupted_kubeadm_init_fails_the_run_with_the_step_named(interrupted: Run) -> None:
    assert interrupted.result.returncode == 1
    assert "init-control-plane failed on llama-cp-1" in interrupted.output
    assert not [c for c in interrupted.calls if c["cmd"] == "kubeadm" and c["argv"][:1] == ["join"]]


def test_a_partial_init_is_reset_and_initialised_again(lab: Lab, resumed: Run) -> None:
    assert resumed.result.returncode == 0, resumed.output
    calls = resumed.calls
    reset = first_index(calls, "llama-cp-1", "kubeadm", "reset", "--force")
    init = first_index(calls, "llama-cp-1", "kubeadm", "init")
    assert reset < init < first_index(calls, "llama-cp-1", "kubeadm", "token", "create")
    system = json.loads((lab.shared / "kube-system.json").read_text())
    assert system == {"configmap": ["kubeadm-config"], "daemonset": ["kube-proxy"], "deployment": ["coredns"]}
    nodes = json.loads((lab.shared / "nodes.json").read_text())
    assert set(nodes) == {"llama-cp-1", "llama-worker-1", "llama-gpu-1"}


def test_a_finished_init_is_never_reset(lab: Lab, cli_files: dict[str, Path], resumed: Run) -> None:
    again = run(lab, cli_args(cli_files, "bootstrap"))
    assert again.result.returncode == 0, again.output
    assert [c for c in again.calls if c["mutates"]] == []
    assert (
        "control plane initialised (kubeadm-config, kube-proxy, CoreDNS present)"
        in (lab.workdir / "state" / "logs" / "llama-cp-1.log").read_text()
    )


def test_a_replaced_node_under_its_old_name_is_joined_with_a_fresh_token(
    lab: Lab, cli_files: dict[str, Path], resumed: Run
) -> None:
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    # A new instance under the old name: its machine never joined, while the API still lists
    # the old instance's Node (Ready, labelled).
    lab.in_node(gpu, "rm", "-rf", "/etc/kubernetes")
    assert "llama-gpu-1" in json.loads((lab.shared / "nodes.json").read_text())
    issued_before = len(json.loads((lab.shared / "tokens-issued.json").read_text()))
    replaced = run(lab, cli_args(cli_files, "bootstrap"))
    assert replaced.result.returncode == 0, replaced.output
    calls = replaced.calls
    delete = first_index(calls, "llama-cp-1", "kubectl", "--kubeconfig=/etc/kubernetes/admin.conf", "delete")
    assert calls[delete]["argv"][-2:] == ["node", "llama-gpu-1"]
    token = first_index(calls, "llama-cp-1", "kubeadm", "token", "create")
    join = first_index(calls, "llama-gpu-1", "kubeadm", "join")
    assert delete < join and token < join
    assert len(json.loads((lab.shared / "tokens-issued.json").read_text())) == issued_before + 1
    assert not [c for c in calls if c["node"] == "llama-worker-1" and c["cmd"] == "kubeadm"]
    node = json.loads((lab.shared / "nodes.json").read_text())["llama-gpu-1"]
    assert node["labels"]["nvidia.com/gpu.present"] == "true"


def test_after_a_stop_start_the_blank_instance_store_is_mounted_again_before_the_kubelet(
    lab: Lab, cli_files: dict[str, Path], resumed: Run
) -> None:
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    image = "/srv/instance-store.img"

    def fs_type() -> str:
        return lab.in_node(gpu, "blkid", "-o", "value", "-s", "TYPE", image, check=False).stdout.strip()

    assert fs_type() == "ext4"
    # Stop/start: a new, blank instance store; runtime state gone; the node boots.
    lab.in_node(gpu, "sh", "-c", f"truncate -s 0 {image} && truncate -s 64M {image}")
    assert fs_type() == ""
    before = len(lab.calls())
    boot = lab.in_node(gpu, "python3", "/srv/node-doubles/double.py", "boot", check=False)
    assert boot.returncode == 0, boot.stderr
    booted = [c for c in lab.calls()[before:] if c["node"] == "llama-gpu-1"]
    assert fs_type() == "ext4"
    mounts = json.loads(lab.in_node(gpu, "cat", "/var/lib/node-doubles/mounts.json").stdout)
    assert mounts == ["/mnt/model-cache"]
    owner = lab.in_node(gpu, "stat", "-c", "%u:%g", "/mnt/model-cache/vllm").stdout.strip()
    assert owner == "10001:10001"
    mount = next(i for i, c in enumerate(booted) if c["cmd"] == "mount")
    containerd = next(i for i, c in enumerate(booted) if c["cmd"] == "modprobe" and c["argv"] == ["aufs"])
    assert mount < containerd, "the cache is mounted before containerd and the kubelet start"
    units = json.loads(lab.in_node(gpu, "cat", "/var/lib/node-doubles/units.json").stdout)
    assert units["kubelet"]["active"] and units["llama-model-cache"]["active"]
    # `make bootstrap` after the start finds everything in place.
    after = run(lab, cli_args(cli_files, "bootstrap"))
    assert after.result.returncode == 0, after.output
    assert [c for c in after.calls if c["mutates"] and c["node"] == "llama-gpu-1"] == []
    doctor = run(lab, cli_args(cli_files, "doctor"))
    assert doctor.result.returncode == 0, doctor.output


def test_a_failing_model_cache_keeps_the_kubelet_from_starting(
    lab: Lab, cli_files: dict[str, Path], resumed: Run
) -> None:
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    helper = "/usr/local/sbin/llama-model-cache"
    saved = lab.in_node(gpu, "cat", helper).stdout
    lab.in_node(gpu, "sh", "-c", f"printf '#!/bin/sh\\nexit 1\\n' > {helper}")
    try:
        lab.in_node(gpu, "python3", "/srv/node-doubles/double.py", "boot")
        units = json.loads(lab.in_node(gpu, "cat", "/var/lib/node-doubles/units.json").stdout)
        assert units["llama-model-cache"]["active"] is False
        assert units["kubelet"]["active"] is False, "no pod may start on an empty /mnt/model-cache"
        doctor = run(lab, cli_args(cli_files, "doctor"))
        assert doctor.result.returncode == 1
        assert "/mnt/model-cache is not mounted" in " ".join(doctor.output.split())
    finally:
        lab.in_node(gpu, "sh", "-c", f"cat > {helper} <<'EOF'\n{saved}EOF")
        lab.in_node(gpu, "python3", "/srv/node-doubles/double.py", "boot")


def test_a_driver_that_still_does_not_load_after_one_reboot_fails_with_the_dkms_log(
    lab: Lab, cli_files: dict[str, Path], resumed: Run
) -> None:
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    # A kernel without the driver's module (what a kernel update without its modules package
    # leaves), and the DKMS build log that says why.
    lab.in_node(gpu, "touch", "/var/lib/node-doubles/nvidia-module-missing")
    log_dir = "/var/lib/dkms/nvidia/580.95.05/build"
    lab.in_node(
        gpu,
        "sh",
        "-c",
        f"mkdir -p {log_dir} && echo 'error: implicit declaration of function' > {log_dir}/make.log",
    )
    lab.in_node(gpu, "python3", "/srv/node-doubles/double.py", "boot")
    try:
        attempt = run(lab, cli_args(cli_files, "bootstrap"))
        assert attempt.result.returncode == 1
        reboots = [c for c in attempt.calls if c["cmd"] == "systemctl" and c["argv"] == ["reboot"]]
        assert len(reboots) == 1, "one reboot, not a loop"
        said = " ".join(attempt.output.split())
        assert "install-nvidia-driver failed on llama-gpu-1" in said
        assert "still needs a reboot after one reboot" in said
        assert "error: implicit declaration of function" in said, "the DKMS log tail is shown"
    finally:
        lab.in_node(gpu, "rm", "-rf", "/var/lib/node-doubles/nvidia-module-missing", "/var/lib/dkms")
    healed = run(lab, cli_args(cli_files, "bootstrap"))
    assert healed.result.returncode == 0, healed.output
