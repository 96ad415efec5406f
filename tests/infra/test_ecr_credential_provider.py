"""The kubelet credential provider for ECR (issue 14): the workers pull the images `make images`
pushed to terraform/ecr.tf's repositories with their instance profile, no registry password.

Unit: the rendered CredentialProviderConfig as the kubelet 1.29 reads it (kubelet_credential_provider.py),
the pin per Kubernetes minor. Integration: install-ecr-credential-provider.sh on the sandboxed
nodes (sandbox.py) through the orchestrator, like every other step: the binary verified against
its pinned SHA-256 (a tampered download is refused), the config and kubelet flags in place, a
running kubelet restarted when they change, and nothing changed on a second run.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from pathlib import Path

import pytest
from node_bootstrap.errors import PreflightError
from node_bootstrap.inventory import parse_inventory
from node_bootstrap.render import ecr_credential_provider_config
from node_bootstrap.settings import (
    CREDENTIAL_PROVIDER_BIN_DIR,
    CREDENTIAL_PROVIDER_CONFIG,
    ECR_CREDENTIAL_PROVIDER,
    Settings,
    ecr_credential_provider,
    node_env,
)
from node_bootstrap.steps import PREPARE

from . import kubelet_credential_provider as kubelet
from .conftest import cli_args
from .sandbox import Lab
from .test_bootstrap_sandbox import STEP_LINE, Run, run

STEP = "install-ecr-credential-provider"
# What terraform output image_registry looks like, and where make images pushes under it.
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/llama/llama-platform/chat-api:0.1.0"
INVENTORY = {
    "cluster_name": "llama",
    "kubernetes_version": "v1.29.15",
    "region": "eu-west-1",
    "ssh_user": "ubuntu",
    "vpc_cidr": "10.10.0.0/16",
    "nodes": [
        {
            "name": "llama-cp-1",
            "role": "control-plane",
            "public_ip": "203.0.113.10",
            "private_ip": "10.10.0.10",
        },
    ],
}


# -- unit: the rendered config and the pins ---------------------------------------------------
@pytest.mark.unit
def test_the_rendered_config_is_what_kubelet_1_29_accepts_and_covers_only_ecr() -> None:
    config = kubelet.load(ecr_credential_provider_config("v1.29.6"))
    (provider,) = config["providers"]
    assert provider["name"] == "ecr-credential-provider"
    assert provider["apiVersion"] == "credentialprovider.kubelet.k8s.io/v1"
    # At most half an ECR token's 12 hours, as the provider itself answers.
    assert 0 < kubelet.duration_seconds(provider["defaultCacheDuration"]) <= 6 * 3600
    assert kubelet.provider_for(config, ECR_IMAGE) == "ecr-credential-provider"
    assert (
        kubelet.provider_for(config, "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1")
        == "ecr-credential-provider"
    )
    for anonymous in (
        "docker.io/vllm/vllm-openai:v0.32.0",
        "registry.k8s.io/pause:3.9",
        "nvcr.io/nvidia/k8s-device-plugin:v0.17.0",
        "ghcr.io/you/llama-platform/chat-api:0.1.0",
        # An ECR-looking name with another suffix is not ECR: no token is sent there.
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example/x:1",
    ):
        assert kubelet.provider_for(config, anonymous) is None, anonymous


BROKEN = {
    "unknown-field": (
        "defaultCacheDuration:",
        "defaultCacheDurations:",
        'unknown field "providers[0].default',
    ),
    "no-cache-duration": (r"\n    defaultCacheDuration: .*", "", "defaultCacheDuration: Required value"),
    "bad-duration": ('"6h"', '"6 hours"', 'invalid duration "6 hours"'),
    "negative-duration": ('"6h"', '"-1h"', "must be greater than or equal to 0"),
    "api-version": ("kubelet.k8s.io/v1$", "kubelet.k8s.io/v2", "Unsupported value"),
    "kind": ("kind: CredentialProviderConfig", "kind: KubeletConfiguration", "wrong Kind"),
    "name": ("name: ecr-credential-provider", "name: bin/ecr", "cannot contain '/'"),
}


@pytest.mark.unit
@pytest.mark.parametrize(("pattern", "replacement", "said"), BROKEN.values(), ids=BROKEN.keys())
def test_the_kubelets_reading_refuses_what_the_kubelet_refuses(
    pattern: str, replacement: str, said: str
) -> None:
    broken = re.sub(pattern, replacement, ecr_credential_provider_config("v1.29.6"), count=1, flags=re.M)
    assert broken != ecr_credential_provider_config("v1.29.6")
    with pytest.raises(kubelet.InvalidConfig, match=re.escape(said)):
        kubelet.load(broken)


@pytest.mark.unit
def test_the_provider_is_pinned_per_kubernetes_minor_and_an_unpinned_minor_is_refused() -> None:
    env = node_env(Settings(), parse_inventory(INVENTORY))
    release, sha256 = ECR_CREDENTIAL_PROVIDER["v1.29"]
    assert release.startswith("v1.29.") and re.fullmatch(r"[0-9a-f]{64}", sha256)
    assert env["NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_URL"] == (
        f"https://artifacts.k8s.io/binaries/cloud-provider-aws/{release}/linux/amd64/ecr-credential-provider-linux-amd64"
    )
    assert env["NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_SHA256"] == sha256
    assert env["NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR"] == CREDENTIAL_PROVIDER_BIN_DIR
    assert env["NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG"] == CREDENTIAL_PROVIDER_CONFIG
    with pytest.raises(PreflightError, match=r"no pinned ecr-credential-provider for Kubernetes v1\.31"):
        ecr_credential_provider("v1.31.2")


@pytest.mark.unit
def test_the_step_runs_on_the_workers_after_the_kubelet_is_installed() -> None:
    scripts = [s.script for s in PREPARE]
    assert scripts.index(STEP) == scripts.index("install-kubernetes-binaries") + 1
    step = PREPARE[scripts.index(STEP)]
    assert step.roles == ("worker", "gpu-worker") and step.network


# -- integration: the script on the sandboxed nodes ---------------------------------------------
WORKERS = ("llama-worker-1", "llama-gpu-1")


@pytest.fixture(scope="module")
def first_run(lab: Lab, cli_files: dict[str, Path]) -> Run:
    return run(lab, cli_args(cli_files, "bootstrap"))


def kubelet_args(lab: Lab, node_name: str) -> list[str]:
    """KUBELET_EXTRA_ARGS as systemd hands it to the kubelet (kubeadm's drop-in, EnvironmentFile; a
    KEY="VALUE" line reads the same to systemd and to a shell), split as ExecStart splits it."""
    node = next(n for n in lab.nodes if n.name == node_name)
    dropin = lab.in_node(node, "cat", "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf").stdout
    assert "EnvironmentFile=-/etc/default/kubelet" in dropin and "$KUBELET_EXTRA_ARGS" in dropin
    shown = lab.in_node(
        node, "bash", "-c", "set -a; . /etc/default/kubelet; printf '%s' \"$KUBELET_EXTRA_ARGS\""
    )
    return shlex.split(shown.stdout)


@pytest.mark.integration
def test_workers_get_the_verified_provider_its_config_and_the_kubelet_flags(lab: Lab, first_run: Run) -> None:
    assert first_run.result.returncode == 0, first_run.output
    statuses = {(m["node"], m["step"]): m["status"] for m in STEP_LINE.finditer(first_run.output)}
    for node in lab.nodes:
        upper = node.upper
        if node.name not in WORKERS:
            assert (node.name, STEP) not in statuses
            assert not (upper / "etc/default/kubelet").exists(), "the control plane pulls nothing of ours"
            continue
        assert statuses[(node.name, STEP)] == "done"
        args = kubelet_args(lab, node.name)
        assert args == [
            f"--image-credential-provider-config={CREDENTIAL_PROVIDER_CONFIG}",
            f"--image-credential-provider-bin-dir={CREDENTIAL_PROVIDER_BIN_DIR}",
        ]
        config_text = (upper / CREDENTIAL_PROVIDER_CONFIG.lstrip("/")).read_text()
        config = kubelet.load(config_text)
        bin_dir = upper / CREDENTIAL_PROVIDER_BIN_DIR.lstrip("/")
        kubelet.check_binaries(config, bin_dir)
        binary = bin_dir / "ecr-credential-provider"
        assert (
            hashlib.sha256(binary.read_bytes()).hexdigest()
            == lab.release_env["NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_SHA256"]
        )
        assert binary.stat().st_mode & 0o777 == 0o755
        assert kubelet.provider_for(config, ECR_IMAGE) == "ecr-credential-provider"


@pytest.mark.integration
def test_a_second_bootstrap_changes_nothing_and_a_changed_config_restarts_a_running_kubelet(
    lab: Lab, cli_files: dict[str, Path], first_run: Run
) -> None:
    assert first_run.result.returncode == 0, first_run.output
    again = run(lab, cli_args(cli_files, "bootstrap"))
    assert again.result.returncode == 0, again.output
    statuses = {(m["node"], m["step"]): m["status"] for m in STEP_LINE.finditer(again.output)}
    assert [statuses[(n, STEP)] for n in WORKERS] == ["unchanged", "unchanged"]
    assert [c for c in again.calls if c["mutates"]] == []
    worker = next(n for n in lab.nodes if n.name == "llama-worker-1")
    lab.in_node(worker, "systemctl", "start", "kubelet")
    # What an older bootstrap, or a hand edit, leaves: no credential provider flags.
    lab.in_node(worker, "sh", "-c", "echo 'KUBELET_EXTRA_ARGS=' > /etc/default/kubelet")
    repair = run(lab, cli_args(cli_files, "bootstrap"))
    assert repair.result.returncode == 0, repair.output
    mutating = [(c["node"], c["cmd"], c["argv"]) for c in repair.calls if c["mutates"]]
    assert mutating == [("llama-worker-1", "systemctl", ["restart", "kubelet"])]
    assert "--image-credential-provider-config=" + CREDENTIAL_PROVIDER_CONFIG in kubelet_args(
        lab, worker.name
    )


@pytest.mark.integration
def test_a_provider_download_that_does_not_match_its_pinned_sha256_is_never_installed(
    lab: Lab, cli_files: dict[str, Path], first_run: Run
) -> None:
    assert first_run.result.returncode == 0, first_run.output
    gpu = next(n for n in lab.nodes if n.name == "llama-gpu-1")
    download = "/srv/apt-doubles/k8s-release/ecr-credential-provider-linux-amd64"
    installed = f"{CREDENTIAL_PROVIDER_BIN_DIR}/ecr-credential-provider"
    original = lab.in_node(gpu, "cat", download).stdout
    lab.in_node(gpu, "sh", "-c", f"echo 'echo tampered' >> {download} && rm {installed}")
    try:
        attempt = run(lab, cli_args(cli_files, "bootstrap"))
        assert attempt.result.returncode == 1
        said = " ".join(attempt.output.split())
        assert f"{STEP} failed on llama-gpu-1" in said
        assert f"checksum mismatch for file://{download}" in said
        assert "correct it from file://" in said and "settings.py" in said
        assert lab.in_node(gpu, "test", "-e", installed, check=False).returncode == 1
    finally:
        lab.in_node(gpu, "sh", "-c", f"cat > {download} <<'EOF'\n{original}EOF")
    repaired = run(lab, cli_args(cli_files, "bootstrap"))
    assert repaired.result.returncode == 0, repaired.output
    assert lab.in_node(gpu, "test", "-x", installed).returncode == 0
