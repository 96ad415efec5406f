"""The aws tier: `terraform plan` against a real AWS account (reads only, creates nothing).

Runs only with `--run-aws` and credentials. It proves what moto cannot: that Canonical's Ubuntu
22.04 AMI lookup, the availability zones and the g4dn.xlarge offering resolve in the chosen
region (AWS_REGION, default eu-west-1), and that the plan creates exactly the three nodes.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.infra.terraform_env import offline_reason, terraform, working_copy

pytestmark = pytest.mark.aws


def aws_credentials_reason() -> str | None:
    import boto3

    if boto3.session.Session().get_credentials() is None:
        return "no AWS credentials (AWS_PROFILE or AWS_ACCESS_KEY_ID): the aws tier needs a real account"
    return None


def test_plan_against_real_aws_resolves_the_ami_and_creates_three_nodes(tmp_path: Path) -> None:
    reason = aws_credentials_reason()
    if reason:
        pytest.skip(reason)
    workdir = working_copy(tmp_path / "terraform")
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (workdir / "terraform.tfvars.json").write_text(
        json.dumps({
            "region": os.environ.get("AWS_REGION", "eu-west-1"),
            "cluster_name": "llama-plan-check",
            "admin_cidrs": ["203.0.113.7/32"],  # a documentation address: the plan is never applied
            "ssh_public_key": key.with_suffix(".pub").read_text().strip(),
        })
    )  # fmt: skip
    # The provider from the offline mirror where there is one, else from the registry.
    env = {} if offline_reason() is None else {"TF_CLI_CONFIG_FILE": ""}
    init = terraform(workdir, "init", "-input=false", "-no-color", env=env)
    assert init.returncode == 0, init.stdout + init.stderr
    plan = terraform(workdir, "plan", "-input=false", "-no-color", "-out=plan.tfplan", env=env, timeout=600)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    shown = terraform(workdir, "show", "-json", "plan.tfplan", env=env)
    assert shown.returncode == 0, shown.stderr
    changes = json.loads(shown.stdout)["resource_changes"]
    instances = [c for c in changes if c["type"] == "aws_instance" and "create" in c["change"]["actions"]]
    types = sorted(c["change"]["after"]["instance_type"] for c in instances)
    assert types == ["g4dn.xlarge", "t3.medium", "t3.medium"]
