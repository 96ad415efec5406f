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
