"""terraform init/apply/output/destroy for `make cluster` and `make destroy`, with preflight checks."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import cost, leftovers
from .errors import PreflightError
from .settings import Settings


def require_terraform() -> str:
    path = shutil.which("terraform")
    if path is None:
        raise PreflightError(
            "terraform is not installed or not on PATH. Fix: install Terraform >= 1.5 "
            "(https://developer.hashicorp.com/terraform/install), then re-run."
        )
    return path


def require_aws_credentials() -> None:
    import boto3

    session = boto3.Session()
    if session.get_credentials() is None:
        raise PreflightError(
            "no AWS credentials found. Fix: `aws configure` or `aws sso login --profile NAME` and "
            "export AWS_PROFILE=NAME (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), then re-run."
        )


def require_tfvars(settings: Settings) -> Path:
    tfvars = settings.tf_dir / "terraform.tfvars"
    if not tfvars.is_file():
        raise PreflightError(
            f"{tfvars} does not exist. Fix: cp {tfvars}.example {tfvars} and set region, "
            "admin_cidrs (your address /32) and ssh_public_key."
        )
    return tfvars


def require_ssh_key(settings: Settings) -> None:
    key = settings.ssh_key
    if not key.is_file():
        raise PreflightError(
            f"SSH private key {key} does not exist. Fix: ssh-keygen -t ed25519 -f {key}, put the "
            f"contents of {key}.pub into ssh_public_key in terraform/terraform.tfvars, or use another "
            "key: make cluster SSH_KEY=PATH."
        )
    if key.stat().st_mode & 0o077:
        raise PreflightError(f"SSH private key {key} is readable by others. Fix: chmod 600 {key}")
    tfvars = settings.tf_dir / "terraform.tfvars"
    pub = key.with_name(key.name + ".pub")
    if tfvars.is_file() and pub.is_file():
        wanted = pub.read_text().split()[:2]
        match = re.search(r'ssh_public_key\s*=\s*"([^"]+)"', tfvars.read_text())
        if match and match.group(1).split()[:2] != wanted:
            raise PreflightError(
                f"ssh_public_key in {tfvars} is not the public half of {key} ({pub}). "
                "Fix: paste the contents of that .pub file, or use the matching private key: "
                "make cluster SSH_KEY=PATH."
            )


def _terraform(settings: Settings, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    argv = [require_terraform(), f"-chdir={settings.tf_dir}", *args]
    return subprocess.run(argv, check=False, text=True, capture_output=capture, env=os.environ.copy())


def apply(settings: Settings) -> None:
    """Plan, show what the plan costs, ask (unless AUTO_APPROVE=1), then apply exactly that plan."""
    require_tfvars(settings)
    if _terraform(settings, "init", "-input=false").returncode != 0:
        raise PreflightError("terraform init failed (its output is above)")
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    plan_file = settings.state_dir / "cluster.tfplan"
    if _terraform(settings, "plan", "-input=false", f"-out={plan_file}").returncode != 0:
        raise PreflightError("terraform plan failed (its output is above); nothing was created")
    try:
        shown = _terraform(settings, "show", "-no-color", "-json", str(plan_file), capture=True)
        if shown.returncode != 0:
            raise PreflightError(f"terraform could not read its plan (terraform said: {_said(shown)})")
        prices_path = settings.tf_dir / "prices.json"
        print(cost.estimate(json.loads(shown.stdout), cost.load_prices(prices_path)).render(prices_path))
        if not settings.auto_approve and not _confirmed("Create these resources? Type yes to go on: "):
            raise PreflightError("declined: nothing was created")
        if _terraform(settings, "apply", "-input=false", str(plan_file)).returncode != 0:
            raise PreflightError(
                "terraform apply failed (its output is above); `make cluster` again resumes it"
            )
    finally:
        plan_file.unlink(missing_ok=True)  # a plan file holds variable values; keep none lying around


def _confirmed(question: str) -> bool:
    try:
        return input(question).strip().lower() == "yes"
    except EOFError:
        return False


def _said(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip(" │╷╵") for line in result.stderr.splitlines()]
    return next((line for line in lines if line.startswith("Error:")), "") or "nothing"


def inventory_output(settings: Settings) -> dict[str, Any]:
    """The `inventory` output, read after a refresh: a stopped and started instance has a new
    public address that the state only learns by refreshing (the control plane's Elastic IP stays)."""
    result = _terraform(settings, "output", "-no-color", "-json", "inventory", capture=True)
    if result.returncode != 0:
        raise PreflightError(
            "terraform has no `inventory` output: the cluster does not exist yet. Fix: make cluster "
            f"(terraform said: {_said(result)})"
        )
    # -refresh-only changes no resource, only what the state knows about them.
    refresh = _terraform(
        settings, "apply", "-refresh-only", "-auto-approve", "-input=false", "-no-color", capture=True
    )
    if refresh.returncode != 0:
        raise PreflightError(
            "terraform could not refresh the cluster's state (the node addresses may have changed). "
            f"Fix: check AWS credentials and region, then re-run (terraform said: {_said(refresh)})"
        )
    result = _terraform(settings, "output", "-no-color", "-json", "inventory", capture=True)
    return json.loads(result.stdout)


def destroy(settings: Settings, before_destroy: Callable[[], object] | None = None) -> None:
    """Destroy what the state holds, then ask AWS whether anything tagged for the cluster is left.
    `before_destroy` runs once the user said yes, before terraform removes anything (the Helm releases)."""
    require_tfvars(settings)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    plan_file = settings.state_dir / "destroy.tfplan"
    if _terraform(settings, "plan", "-destroy", "-input=false", f"-out={plan_file}").returncode != 0:
        raise PreflightError(
            "terraform could not plan the destroy (its output is above); nothing was removed"
        )
    try:
        shown = _terraform(settings, "show", "-no-color", "-json", str(plan_file), capture=True)
        if shown.returncode != 0:
            raise PreflightError(f"terraform could not read its plan (terraform said: {_said(shown)})")
        variables = json.loads(shown.stdout).get("variables", {})
        region = str(variables.get("region", {}).get("value", ""))
        cluster = str(variables.get("cluster_name", {}).get("value", ""))
        if not settings.auto_approve and not _confirmed(
            f"Destroy every AWS resource of cluster {cluster!r} in {region}? Type yes to go on: "
        ):
            raise PreflightError("declined: nothing was removed")
        if before_destroy is not None:
            before_destroy()
        if _terraform(settings, "apply", "-input=false", str(plan_file)).returncode != 0:
            raise PreflightError(
                "terraform destroy failed (its output is above); `make destroy` again resumes it"
            )
    finally:
        plan_file.unlink(missing_ok=True)
    check_nothing_left(region, cluster)


def check_nothing_left(region: str, cluster: str) -> None:
    import boto3

    left = leftovers.find(boto3.client("ec2", region_name=region), cluster)
    if left:
        raise PreflightError(
            f"terraform is done, but AWS still has resources tagged Cluster={cluster} in {region}, and "
            f"they bill: {'; '.join(left)}. Fix: `make destroy` again; if they stay, delete them in the EC2 "
            f"console (https://console.aws.amazon.com/ec2/home?region={region}) or with the aws CLI"
        )
    print(
        f"Nothing of cluster {cluster!r} is left in {region}: no instance, volume, address, spot request "
        "or VPC tagged for it (asked AWS, not the state)."
    )
