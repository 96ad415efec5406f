"""Terraform in the tests: a working copy of terraform/, the offline provider mirror, moto server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "terraform"
MIRROR = Path("/opt/tf-plugins")
CLI_CONFIG = TF_DIR / "cli-offline.tfrc"
CANONICAL = "099720109477"


def offline_reason() -> str | None:
    """None when terraform can run here without a registry, else why not."""
    if shutil.which("terraform") is None:
        return "terraform is not installed"
    if not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        return f"no hashicorp/aws provider in the filesystem mirror {MIRROR} (and no registry here)"
    return None


def working_copy(destination: Path) -> Path:
    """terraform/ without local state or .terraform, so tests never touch the user's directory."""
    # A committed .terraform.lock.hcl travels along, so the mirror install is checked against it.
    ignore = shutil.ignore_patterns(".terraform", "*.tfstate*", "terraform.tfvars")
    shutil.copytree(TF_DIR, destination, ignore=ignore)
    return destination


def terraform(
    workdir: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "TF_CLI_CONFIG_FILE": str(CLI_CONFIG),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
        "TF_PLUGIN_CACHE_DIR": "",
        **(env or {}),
    }
    return subprocess.run(
        ["terraform", f"-chdir={workdir}", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, check=False,
    )  # fmt: skip


def moto_amis(path: Path) -> Path:
    """moto's AMI catalogue plus Canonical's Ubuntu 22.04 images (moto ships none), the newest last."""
    import gzip

    import moto

    default = Path(moto.__file__).parent / "ec2" / "resources" / "amis.json.gz"
    amis = json.loads(gzip.decompress(default.read_bytes()))
    for ami_id, date in (("ami-0a1b2c3d4e5f60718", "20240126"), ("ami-0fedcba9876543210", "20250516")):
        amis.append({
            "ami_id": ami_id,
            "state": "available",
            "public": True,
            "owner_id": CANONICAL,
            "image_location": f"amazon/ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-{date}",
            "sriov": "simple",
            "root_device_type": "ebs",
            "root_device_name": "/dev/sda1",
            "description": f"Canonical, Ubuntu, 22.04 LTS, amd64 jammy image build on {date}",
            "image_type": "machine",
            "platform": None,
            "architecture": "x86_64",
            "name": f"ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-{date}",
            "virtualization_type": "hvm",
            "hypervisor": "xen",
            "creation_date": f"{date[:4]}-{date[4:6]}-{date[6:]}T00:00:00.000Z",
        })  # fmt: skip
    path.write_text(json.dumps(amis))
    return path
