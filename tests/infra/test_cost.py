"""`make cluster` shows what the planned cluster costs before anything exists, and asks.

The estimate reads a real `terraform plan` of terraform/ against moto; prices come from
terraform/prices.json (list prices with their date)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from .terraform_env import CLI_CONFIG, TF_DIR
from .test_terraform import (  # noqa: F401 - fixtures
    cluster_resources,
    ec2_client,
    initialised,
    moto_server,
    needs_offline_terraform,
    write_tfvars,
)

PRICES = TF_DIR / "prices.json"


def change(
    rtype: str, name: str, after: dict, after_unknown: dict | None = None, actions=("create",)
) -> dict:
    return {
        "address": f"{rtype}.{name}",
        "mode": "managed",
        "type": rtype,
        "change": {"actions": list(actions), "after": after, "after_unknown": after_unknown or {}},
    }


def configure_for_moto(
    workdir: Path, moto: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """terraform.tfvars with a fresh key in `workdir`, and this process's AWS and terraform
    settings pointed at moto and the offline provider mirror (the node_bootstrap code runs here)."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    write_tfvars(workdir, key.with_suffix(".pub").read_text().strip())
    for name, value in {**moto, "TF_CLI_CONFIG_FILE": str(CLI_CONFIG)}.items():
        monkeypatch.setenv(name, value)


@pytest.mark.unit
def test_estimate_prices_instances_volumes_and_addresses_and_names_what_it_cannot_price() -> None:
    from node_bootstrap import cost

    plan = {
        "variables": {"region": {"value": "us-east-1"}},
        "resource_changes": [
            change("aws_instance", "cp", {"instance_type": "t3.medium", "tags": {"Name": "cp"},
                   "root_block_device": [{"volume_size": 40}], "instance_market_options": []}),
            change("aws_instance", "gpu", {"instance_type": "g4dn.xlarge", "tags": {"Name": "gpu"},
                   "root_block_device": [{"volume_size": 150}],
                   "instance_market_options": [{"market_type": "spot"}]}),
            change("aws_instance", "odd", {"instance_type": "p5.48xlarge", "tags": {"Name": "odd"}}),
            change("aws_instance", "gone", {"instance_type": "t3.medium"}, actions=("delete",)),
            change("aws_eip", "attached", {"instance": None}, {"instance": True}),
            change("aws_eip", "spare", {"instance": None}),
        ],
    }  # fmt: skip
    est = cost.estimate(plan, cost.load_prices(PRICES))
    whats = [line.what for line in est.lines]
    assert "gpu: g4dn.xlarge spot (on-demand ceiling)" in whats
    assert est.unknown == ["odd: p5.48xlarge"]
    # 3 instances (the deleted one is not counted) + 1 detached Elastic IP.
    assert "4 public IPv4 addresses" in whats
    expected = 0.0416 + 0.526 + 190 * 0.08 / 730 + 4 * 0.005
    assert est.per_hour == pytest.approx(expected)
    text = est.render(PRICES)
    assert "at least" in text and f"add it to {PRICES}" in text
    assert f"${expected * 24:.2f}/day" in text


@pytest.mark.unit
def test_the_price_table_has_a_date_and_the_default_instance_types() -> None:
    from node_bootstrap import cost

    prices = cost.load_prices(PRICES)
    assert prices["as_of"] and prices["currency"] == "USD"
    for region in prices["regions"].values():
        assert {"t3.medium", "g4dn.xlarge"} <= set(region["instance_hour"])


@pytest.mark.integration
@needs_offline_terraform
def test_make_cluster_prints_the_cost_of_the_real_plan_and_creates_nothing_when_declined(
    initialised: Path,  # noqa: F811 - the fixture imported above
    moto_server: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from node_bootstrap import terraform
    from node_bootstrap.errors import PreflightError
    from node_bootstrap.settings import Settings

    configure_for_moto(initialised, moto_server, tmp_path, monkeypatch)
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "no")
    settings = Settings(tf_dir=initialised, state_dir=tmp_path / "state")
    try:
        with pytest.raises(PreflightError, match="declined: nothing was created"):
            terraform.apply(settings)
    finally:
        (initialised / "terraform.tfvars").unlink()
    printed = capfd.readouterr().out
    assert asked == ["Create these resources? Type yes to go on: "]
    assert "AWS list prices in us-east-1" in printed
    for line in ("llama-cp-1: t3.medium", "llama-worker-1: t3.medium", "llama-gpu-1: g4dn.xlarge",
                 "llama-gpu-1: 150 GB gp3 root volume", "3 public IPv4 addresses"):  # fmt: skip
        assert line in printed, printed[-3000:]
    per_hour = 2 * 0.0416 + 0.526 + (40 + 40 + 150) * 0.08 / 730 + 3 * 0.005
    assert f"total: ${per_hour:.2f}/hour, ${per_hour * 24:.2f}/day" in printed
    assert "no price for" not in printed
    assert not list((tmp_path / "state").glob("*.tfplan")), "the plan file (variable values) is removed"
    assert cluster_resources(ec2_client(moto_server)) == []


@pytest.mark.integration
@needs_offline_terraform
def test_make_destroy_asks_aws_what_is_left_and_names_what_still_bills(
    initialised: Path,  # noqa: F811 - the fixture imported above
    moto_server: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """terraform's own apply and destroy on moto are test_terraform's; this is what comes after:
    AWS is asked, not the state, so a tagged volume the state never knew about is named."""
    from node_bootstrap import terraform
    from node_bootstrap.errors import PreflightError
    from node_bootstrap.settings import Settings

    configure_for_moto(initialised, moto_server, tmp_path, monkeypatch)
    ec2 = ec2_client(moto_server)
    tags = [{"Key": "Project", "Value": "llama-platform"}, {"Key": "Cluster", "Value": "llama"}]
    stray = ec2.create_volume(
        AvailabilityZone="us-east-1a", Size=8, TagSpecifications=[{"ResourceType": "volume", "Tags": tags}]
    )["VolumeId"]
    asked: list[str] = []
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "yes")
    try:
        with pytest.raises(PreflightError, match=f"volume {stray} \\(8 GB\\)") as refused:
            terraform.destroy(Settings(tf_dir=initialised, state_dir=tmp_path / "state"))
        assert asked == ["Destroy every AWS resource of cluster 'llama' in us-east-1? Type yes to go on: "]
        assert "still has resources tagged Cluster=llama in us-east-1, and they bill" in str(refused.value)
        ec2.delete_volume(VolumeId=stray)
        stray = ""
        terraform.check_nothing_left("us-east-1", "llama")
        assert "Nothing of cluster 'llama' is left in us-east-1" in capfd.readouterr().out
    finally:
        if stray:
            ec2.delete_volume(VolumeId=stray)
        (initialised / "terraform.tfvars").unlink()
    assert not list((tmp_path / "state").glob("*.tfplan"))
