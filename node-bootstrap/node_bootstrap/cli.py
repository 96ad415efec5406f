"""`python -m node_bootstrap cluster|bootstrap|doctor|kubeconfig|destroy` (the Makefile targets).

Exit status: 0 success, 1 a step/gate/check failed, 2 something to provide first (terraform,
AWS credentials, SSH key, tfvars, inventory).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console

from . import platform_cli, terraform
from .cluster import Cluster, ensure_known_hosts
from .doctor import Doctor, print_checks
from .errors import BootstrapError, InventoryError, PreflightError
from .inventory import Inventory, load_inventory, parse_inventory
from .kubeconfig import fetch_kubeconfig
from .orchestrator import Bootstrap
from .progress import Progress
from .redact import Redactor
from .retry import RetryPolicy
from .settings import Settings, node_env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="node_bootstrap", description=__doc__)
    env = os.environ.get
    parser.add_argument("--tf-dir", type=Path, default=Settings.tf_dir, help="the terraform/ directory")
    parser.add_argument(
        "--inventory",
        type=Path,
        default=env("NODE_BOOTSTRAP_INVENTORY"),
        help="inventory JSON (terraform output -json inventory); default: ask terraform",
    )
    parser.add_argument(
        "--ssh-key",
        type=Path,
        default=Path(env("NODE_BOOTSTRAP_SSH_KEY") or "~/.ssh/id_ed25519").expanduser(),
        help="private key matching ssh_public_key (env NODE_BOOTSTRAP_SSH_KEY; make cluster SSH_KEY=PATH)",
    )
    parser.add_argument(
        "--known-hosts",
        type=Path,
        default=env("NODE_BOOTSTRAP_KNOWN_HOSTS"),
        help="verified known_hosts to use; default: built from the EC2 console output",
    )
    parser.add_argument("--state-dir", type=Path, default=env("NODE_BOOTSTRAP_STATE_DIR", Settings.state_dir))
    parser.add_argument(
        "--kubeconfig", type=Path, default=env("NODE_BOOTSTRAP_KUBECONFIG", Settings.kubeconfig)
    )
    parser.add_argument(
        "--node-env", type=Path, default=env("NODE_BOOTSTRAP_NODE_ENV"), help="node.env overrides"
    )
    parser.add_argument("--connect-attempts", type=int, default=8)
    parser.add_argument("--connect-timeout", type=float, default=10.0)
    parser.add_argument("--retry-base-delay", type=float, default=2.0)
    parser.add_argument("--gate-timeout", type=float, default=900.0)
    parser.add_argument(
        "--console-timeout",
        type=float,
        default=Settings.console_timeout,
        help="seconds to wait per instance for cloud-init's host keys on the EC2 console",
    )
    parser.add_argument(
        "--console-interval",
        type=float,
        default=Settings.console_interval,
        help="seconds between reads of an instance's console output",
    )
    parser.add_argument(
        "--reboot-wait", type=float, default=20.0, help="seconds before reconnecting after a reboot"
    )
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        default=env("NODE_BOOTSTRAP_AUTO_APPROVE") == "1",
        help="apply the plan without asking (NODE_BOOTSTRAP_AUTO_APPROVE=1, make cluster AUTO_APPROVE=1)",
    )
    parser.add_argument("--plain", action="store_true", help="plain progress lines instead of the live table")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("cluster", help="terraform apply + bootstrap + kubeconfig + doctor")
    sub.add_parser("bootstrap", help="(re-)run the node bootstrap; idempotent")
    sub.add_parser("doctor", help="check nodes, Calico, runtimes, driver, device plugin, GPU pod, network")
    sub.add_parser("kubeconfig", help="fetch the admin kubeconfig")
    sub.add_parser("destroy", help="helm uninstall the releases, terraform destroy, ask AWS what is left")
    sub.add_parser(
        "platform", help="preflight, cost, cluster, images, secrets, monitoring, release, wait, ask"
    )
    sub.add_parser("pause", help="stop every instance (keeps the cluster; the model cache is lost)")
    sub.add_parser("resume", help="start them again and wait for the nodes and vLLM")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        tf_dir=args.tf_dir,
        inventory_file=args.inventory,
        ssh_key=args.ssh_key,
        known_hosts=args.known_hosts,
        state_dir=args.state_dir,
        kubeconfig=args.kubeconfig,
        node_env_file=args.node_env,
        connect=RetryPolicy(attempts=args.connect_attempts, base_delay=args.retry_base_delay, max_delay=30),
        network_step=RetryPolicy(attempts=3, base_delay=max(args.retry_base_delay, 0.1) * 2.5, max_delay=60),
        connect_timeout=args.connect_timeout,
        gate_timeout=args.gate_timeout,
        gate_interval=min(5.0, max(args.gate_timeout / 20, 0.2)),
        console_timeout=args.console_timeout,
        console_interval=args.console_interval,
        reboot_wait=args.reboot_wait,
        auto_approve=args.auto_approve,
        live=not args.plain,
    )


def inventory_for(settings: Settings) -> Inventory:
    if settings.inventory_file is not None:
        return load_inventory(settings.inventory_file)
    terraform.require_terraform()
    return parse_inventory(terraform.inventory_output(settings))


def preflight_ssh(settings: Settings) -> None:
    if settings.known_hosts is None:
        terraform.require_aws_credentials()  # the console output comes from the EC2 API
    terraform.require_ssh_key(settings)


def run(args: argparse.Namespace, console: Console, redactor: Redactor) -> int:
    settings = settings_from(args)
    if args.command == "platform":
        return platform_cli.run_platform(args, console, redactor, lambda a: run(a, console, redactor))
    if args.command in ("pause", "resume"):
        return platform_cli.pause_or_resume(args, console)
    if args.command == "destroy":
        platform_cli.destroy(args, settings, console)
        for stale in (settings.verified_known_hosts, settings.host_key_cache, settings.kubeconfig):
            if settings.known_hosts is None or stale != settings.known_hosts:
                stale.unlink(missing_ok=True)
        console.print("destroyed; known_hosts and kubeconfig removed")
        return 0
    if args.command == "cluster":
        terraform.require_terraform()
        terraform.require_aws_credentials()
        terraform.require_ssh_key(settings)
        terraform.apply(settings)
    inventory = inventory_for(settings)
    node_env(settings, inventory)  # an unpinned kubernetes_version stops here, before any SSH
    preflight_ssh(settings)
    cluster = Cluster(settings, inventory, redactor)
    try:
        if args.command in ("cluster", "bootstrap"):
            with Progress([n.name for n in inventory.nodes], live=settings.live, console=console) as progress:
                Bootstrap(cluster, progress).run()
            console.print(f"bootstrap finished; logs in {settings.log_dir}")
        if args.command in ("cluster", "bootstrap", "kubeconfig"):
            if not cluster.sessions:
                known_hosts = ensure_known_hosts(settings, inventory)
                cluster.connect_all(known_hosts, [inventory.control_plane])
            path = fetch_kubeconfig(cluster, settings.kubeconfig)
            console.print(f"kubeconfig written to {path}: export KUBECONFIG={path}")
        if args.command in ("cluster", "doctor"):
            checks = Doctor(cluster).run()
            print_checks(checks, console, table=settings.live)
            if any(c.status == "fail" for c in checks):
                return 1
        return 0
    finally:
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console(stderr=True)
    redactor = Redactor()
    try:
        return run(args, console, redactor)
    except (PreflightError, InventoryError) as error:
        console.print(f"[bold red]error:[/] {redactor(str(error))}", highlight=False)
        return 2
    except BootstrapError as error:
        console.print(f"[bold red]failed:[/] {redactor(str(error))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("interrupted; re-run the same command to resume (every step is idempotent)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
