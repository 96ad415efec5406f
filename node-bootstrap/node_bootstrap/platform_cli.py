"""`python -m node_bootstrap platform|pause|resume|destroy`: the commands around the whole platform.

destroy: the Helm releases first (so nothing they made outlives the cluster), then everything
Terraform made, then AWS is asked that nothing tagged for the cluster is left (terraform.py).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from . import pause as pausing
from . import terraform
from .errors import BootstrapError, PreflightError
from .helm_release import HelmReleases, Releases
from .kube_api import KubeAPI, KubeError, node_ready
from .platform import (
    Environment,
    Kube,
    Platform,
    PlatformSettings,
    StepFailed,
    terraform_outputs,
    wait_for_vllm,
)
from .redact import Redactor
from .settings import Settings


# Removed in this order on destroy: the platform, then what it sat on.
def releases_to_remove(namespace: str, release: str) -> list[tuple[str, str]]:
    return [(release, namespace), ("kube-prometheus-stack", "monitoring"), ("cert-manager", "cert-manager")]


def platform_settings(args: argparse.Namespace) -> PlatformSettings:
    # build/platform beside the bootstrap's build/bootstrap (--state-dir)
    return PlatformSettings.from_environment(
        tf_dir=args.tf_dir,
        kubeconfig=args.kubeconfig,
        auto_approve=args.auto_approve,
        state_dir=Path(args.state_dir).parent / "platform",
    )


def run_platform(
    args: argparse.Namespace,
    console: Console,
    redactor: Redactor,
    cluster_command: Callable[[argparse.Namespace], int],
) -> int:
    settings = platform_settings(args)

    def cluster_flow() -> None:
        code = cluster_command(argparse.Namespace(**{**vars(args), "command": "cluster", "plain": True}))
        if code != 0:
            raise StepFailed("make cluster finished with failed checks (the doctor's table above names them)")

    env = Environment.real(settings, cluster_flow)

    def out(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    return Platform(settings, env, redactor=redactor, out=out).run()


def uninstall_releases(
    kubeconfig: Path,
    releases: Callable[[], Releases],
    kube: Callable[[], Kube],
    namespace: str,
    release: str,
    say: Callable[[str], None],
    timeout_s: int = 600,
) -> list[str]:
    """Remove the releases while the cluster still answers; say plainly when it cannot."""
    if not kubeconfig.is_file():
        say(f"no {kubeconfig}: no Helm release to remove first")
        return []
    client = None
    try:
        client = kube()
        client.version()
    except KubeError as error:
        say(
            f"the Kubernetes API does not answer ({error}); the Helm releases cannot be removed first. "
            "On this platform they make no AWS resource of their own (kubeadm without a cloud provider: "
            "no load balancer, no EBS volume), so Terraform below removes everything, and the check "
            "after it asks AWS."
        )
        return []
    finally:
        if client is not None:
            client.close()
    removed = []
    helm = releases()
    for name, ns in releases_to_remove(namespace, release):
        if helm.uninstall(name, ns, timeout_s):
            say(f"helm uninstall {name} (namespace {ns}): removed")
            removed.append(name)
        else:
            say(f"helm uninstall {name} (namespace {ns}): not installed")
    return removed


def destroy(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    platform = platform_settings(args)

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    terraform.require_aws_credentials()
    terraform.destroy(
        settings,
        before_destroy=lambda: uninstall_releases(
            settings.kubeconfig,
            lambda: HelmReleases(settings.kubeconfig),
            lambda: KubeAPI.from_kubeconfig(settings.kubeconfig),
            platform.namespace,
            platform.release,
            say,
        ),
    )
    # What the platform flow generated belongs to the cluster that is gone: a new one starts afresh.
    for stale in (
        platform.state_file,
        platform.operator_key_file,
        platform.grafana_password_file,
        platform.session_key_file,
    ):
        stale.unlink(missing_ok=True)
    return 0


def _cluster_and_region(tf_dir: Path) -> tuple[str, str]:
    inventory = terraform_outputs(tf_dir).get("inventory")
    if not inventory:
        raise PreflightError(
            "terraform knows no cluster (no inventory output). Fix: make platform or make cluster"
        )
    return str(inventory["cluster_name"]), str(inventory["region"])


def pause_or_resume(args: argparse.Namespace, console: Console) -> int:
    import boto3

    def say(line: str) -> None:
        console.print(line, markup=False, highlight=False, soft_wrap=True)

    terraform.require_aws_credentials()
    cluster, region = _cluster_and_region(args.tf_dir)
    ec2 = boto3.client("ec2", region_name=region)
    if args.command == "pause":
        pausing.pause(ec2, cluster, say)
        say("make resume starts it again")
        return 0
    pausing.resume(ec2, cluster, say)
    settings = platform_settings(args)
    if not settings.kubeconfig.is_file():
        say(f"no {settings.kubeconfig}: not waiting for the cluster (make kubeconfig)")
        return 0
    kube = KubeAPI.from_kubeconfig(settings.kubeconfig)
    try:
        wait_nodes_ready(kube, say, timeout_s=900)
        say(pausing.SURVIVES)
        say(pausing.LOST)
        wait_for_vllm(settings.kubeconfig, settings.namespace, settings.release, settings.wait_timeout_s, say)
    finally:
        kube.close()
    return 0


def wait_nodes_ready(
    kube: KubeAPI, say: Callable[[str], None], timeout_s: float, interval_s: float = 10
) -> None:
    deadline, last = time.monotonic() + timeout_s, ""
    while True:
        try:
            nodes = kube.nodes()
            ready = sorted(n["metadata"]["name"] for n in nodes if node_ready(n))
            now = f"{len(ready)}/{len(nodes)} nodes Ready"
            if nodes and len(ready) == len(nodes):
                say(f"  {now}")
                return
        except KubeError as error:
            now = f"API not answering yet ({str(error)[:120]})"
        if now != last:
            say(f"  {now}")
            last = now
        if time.monotonic() > deadline:
            raise BootstrapError(
                f"the cluster was not back after {timeout_s:.0f} s ({now}). Fix: make doctor"
            )
        time.sleep(interval_s)
