"""terraform/: formatting, validation and checkov (unit/chart), apply + destroy on moto (integration)."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import chart
from scripts.local_run.process import ManagedProcess, free_port, http_ok
from tests.chart import cases as chart_cases

from .terraform_env import CLI_CONFIG, REPO, TF_DIR, moto_amis, offline_reason, terraform, working_copy

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
SKIPS = Path(__file__).with_name("checkov-skips.yaml")
needs_offline_terraform = pytest.mark.skipif(offline_reason() is not None, reason=str(offline_reason()))
# Under CI=true a tier that cannot run fails the run instead of skipping (never green by skipping).
if os.environ.get("CI") == "true":
    for missing in (
        offline_reason(),
        None if CHECKOV.exists() else "checkov is not installed (.venv-checkov)",
    ):
        if missing is not None:
            pytest.fail(f"CI=true and the Terraform tests cannot run: {missing}", pytrace=False)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if offline_reason() is not None:
        pytest.skip(str(offline_reason()))
    workdir = working_copy(tmp_path_factory.mktemp("tf") / "terraform")
    result = terraform(workdir, "init", "-backend=false", "-input=false")
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


@pytest.mark.unit
@pytest.mark.skipif(offline_reason() == "terraform is not installed", reason="terraform is not installed")
def test_terraform_files_are_formatted() -> None:
    result = subprocess.run(
        ["terraform", f"-chdir={TF_DIR}", "fmt", "-check", "-recursive", "-diff"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "TF_CLI_CONFIG_FILE": str(TF_DIR / "cli-offline.tfrc")},
    )  # fmt: skip
    assert result.returncode == 0, f"run `terraform -chdir=terraform fmt`:\n{result.stdout}"


@pytest.mark.unit
@needs_offline_terraform
def test_terraform_configuration_is_valid(initialised: Path) -> None:
    result = terraform(initialised, "validate", "-json")
    report = json.loads(result.stdout)
    assert report["valid"], json.dumps(report["diagnostics"], indent=1)
    assert report["warning_count"] == 0, json.dumps(report["diagnostics"], indent=1)


NO_AWS = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.unit
@needs_offline_terraform
@pytest.mark.parametrize(
    ("bad", "messages"),
    [
        (
            {
                "admin_cidrs": '["0.0.0.0/0"]',
                "ssh_public_key": '"~/.ssh/id_ed25519.pub"',
                "gpu_root_volume_gb": "50",
                "kubernetes_version": '"1.29"',
                "vpc_cidr": '"192.168.0.0/16"',
            },
            [
                "must not contain 0.0.0.0/0",
                "OpenSSH public key line",
                "at least 100",
                "look like v1.29.15",
                "outside 192.168.0.0/16",
            ],
        ),
        ({"admin_cidrs": "[]"}, ["at least one IPv4 CIDR"]),
        # Half the internet, a typo with host bits, IPv6: each would open more than meant.
        ({"admin_cidrs": '["0.0.0.0/1"]'}, ["wider than /16"]),
        ({"admin_cidrs": '["203.0.113.7/24"]'}, ["without host bits"]),
        ({"admin_cidrs": '["2001:db8::/64"]'}, ["IPv6 is not supported"]),
        ({"client_cidrs": '["128.0.0.0/1"]'}, ["wider than /8"]),
        ({"client_cidrs": '["198.51.100.7/24"]'}, ["without host bits"]),
        ({"client_cidrs": '["::/0"]'}, ["IPv6 is not supported", "must not contain 0.0.0.0/0 or ::/0"]),
        # The whole internet, by name: the UI and /v1 would face everyone.
        (
            {"client_cidrs": '["198.51.100.0/24", "0.0.0.0/0"]'},
            ["client_cidrs must not contain 0.0.0.0/0 or ::/0: the chat UI and /v1 would face the whole"],
        ),
    ],
    ids=[
        "five-bad-values",
        "no-admin-cidr",
        "admin-half-internet",
        "admin-host-bits",
        "admin-ipv6",
        "client-half-internet",
        "client-host-bits",
        "client-ipv6",
        "client-world",
    ],
)
def test_bad_variables_are_refused_with_the_fix(
    initialised: Path, bad: dict[str, str], messages: list[str]
) -> None:
    good = {
        "region": '"eu-west-1"',
        "admin_cidrs": '["203.0.113.7/32"]',
        "ssh_public_key": '"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1 me@laptop"',
    }
    args = [f"-var={k}={v}" for k, v in {**good, **bad}.items()]
    # Variable validation fails the plan before any AWS call: no credentials are needed.
    result = terraform(
        initialised, "plan", "-no-color", "-input=false", "-refresh=false", "-lock=false", *args, env=NO_AWS
    )
    assert result.returncode != 0
    said = " ".join(result.stderr.replace("│", " ").split())
    for message in messages:
        assert message in said, message


@pytest.mark.chart
@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed: make .venv-checkov/.installed")
def test_checkov_finds_no_failed_check_without_a_written_reason(tmp_path: Path) -> None:
    workdir = working_copy(tmp_path / "terraform")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(workdir), "--framework", "terraform", "--skip-download", "--compact",
         "-o", "json"],
        capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    assert proc.stdout.lstrip().startswith(("{", "[")), proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    data = data[0] if isinstance(data, list) else data
    skips = yaml.safe_load(SKIPS.read_text())
    for check_id, skip in skips.items():
        assert len(skip["reason"].split()) >= 10, f"{check_id}: the reason must explain the skip"
    failed = data["results"]["failed_checks"]
    unexplained = [
        f"{f['check_id']} {f['resource']}: {f['check_name']}"
        for f in failed
        if not any(
            fnmatch.fnmatchcase(f["resource"], p) for p in skips.get(f["check_id"], {}).get("resources", [])
        )
    ]
    assert unexplained == [], "fix these or add a reason to tests/infra/checkov-skips.yaml"
    stale = sorted(set(skips) - {f["check_id"] for f in failed})
    assert stale == [], f"skips that match no failure any more: {stale}"
    assert data["summary"]["parsing_errors"] == 0
    assert len(data["results"]["passed_checks"]) >= 50


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    workdir = tmp_path_factory.mktemp("moto")
    port = free_port()
    quotas = workdir / "ec2-quotas.json"
    quotas.write_text(json.dumps(GRANTED))
    server = ManagedProcess(
        name="moto_server",
        argv=[
            str(REPO / ".venv/bin/python"),
            str(Path(__file__).with_name("moto_server_with_ec2_quotas.py")),
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        log_path=workdir / "moto.log",
        env={
            "MOTO_AMIS_PATH": str(moto_amis(workdir / "amis.json")),
            # AWS managed policies (AmazonSSMManagedInstanceCore) exist in moto only on request.
            "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",
            "MOTO_EC2_QUOTAS_FILE": str(quotas),
        },
    ).start()
    try:
        server.wait_ready(http_ok(f"http://127.0.0.1:{port}/moto-api/"), timeout=60)
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "MOTO_EC2_QUOTAS_FILE": str(quotas),  # for the tests that change the account's quota
        }
    finally:
        server.stop()


# An account that may run one g4dn.xlarge on demand (4 vCPUs) and no spot G instance.
GRANTED = {"L-DB2E81BA": 4, "L-3819A6DF": 0}


def write_tfvars(workdir: Path, public_key: str) -> None:
    (workdir / "terraform.tfvars").write_text(
        f'ssh_public_key = "{public_key}"\n'
        'region = "us-east-1"\n'
        'admin_cidrs = ["203.0.113.7/32"]\n'
        'client_cidrs = ["198.51.100.0/24"]\n'
        'model_cache_bucket = "llama-models-test"\n'
    )


def ec2_client(moto: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "ec2",
        region_name="us-east-1",
        endpoint_url=moto["AWS_ENDPOINT_URL"],
        aws_access_key_id=moto["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=moto["AWS_SECRET_ACCESS_KEY"],
    )


def cluster_resources(ec2: Any) -> list[str]:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["llama-vpc"]}])["Vpcs"]
    keys = ec2.describe_key_pairs()["KeyPairs"]
    running = [
        i["InstanceId"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    return (
        [v["VpcId"] for v in vpcs] + [k["KeyName"] for k in keys if k["KeyName"] == "llama-admin"] + running
    )


@pytest.mark.integration
@needs_offline_terraform
@pytest.mark.parametrize(
    ("extra", "quotas", "messages"),
    [
        (
            "",
            {"L-DB2E81BA": 0},
            [
                "GPU quota too low in us-east-1: 1 x g4dn.xlarge need 4 vCPUs of 'Running On-Demand G and VT"
                " instances' (L-DB2E81BA), the account is granted 0. Nothing was created.",
                "servicequotas/home/services/ec2/quotas/L-DB2E81BA",
                "--desired-value 4",
            ],
        ),
        ("gpu_spot = true\n", GRANTED, ["'All G and VT Spot Instance Requests' (L-3819A6DF)", "granted 0"]),
        (
            'availability_zones = ["us-east-1e"]\navailability_zone_count = 1\n',
            GRANTED,
            ["g4dn.xlarge is not offered in any of the zones us-east-1e", "set availability_zones"],
        ),
    ],
    ids=["on-demand-quota-0", "spot-quota-0", "gpu-type-not-in-zone"],
)
def test_apply_stops_before_creating_anything_when_the_gpu_node_cannot_start(
    initialised: Path,
    moto_server: dict[str, str],
    tmp_path: Path,
    extra: str,
    quotas: dict[str, int],
    messages: list[str],
) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    write_tfvars(initialised, key.with_suffix(".pub").read_text().strip())
    with (initialised / "terraform.tfvars").open("a") as tfvars:
        tfvars.write(extra)
    quotas_file = Path(moto_server["MOTO_EC2_QUOTAS_FILE"])
    quotas_file.write_text(json.dumps(quotas))
    try:
        apply = terraform(
            initialised, "apply", "-no-color", "-input=false", "-auto-approve", env=moto_server, timeout=300
        )
    finally:
        quotas_file.write_text(json.dumps(GRANTED))
        (initialised / "terraform.tfvars").unlink()
    assert apply.returncode != 0, apply.stdout[-2000:]
    said = " ".join(apply.stderr.replace("│", " ").split())
    for message in messages:
        assert message in said, (message, said[-3000:])
    assert cluster_resources(ec2_client(moto_server)) == [], "nothing may exist (or bill) after the refusal"


@pytest.mark.integration
@needs_offline_terraform
def test_apply_then_destroy_on_moto_feeds_the_bootstrap_inventory(
    initialised: Path, moto_server: dict[str, str], tmp_path: Path
) -> None:
    import boto3
    from node_bootstrap.inventory import parse_inventory
    from node_bootstrap.render import kubeadm_init_config
    from node_bootstrap.settings import Settings
    from node_bootstrap.terraform import inventory_output

    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public_key = key.with_suffix(".pub").read_text().strip()
    # detailed_monitoring stays at its default, false (moto would also answer MonitorInstances
    # with NotImplemented, and the provider would retry for ever).
    write_tfvars(initialised, public_key)
    started = time.monotonic()
    apply = terraform(initialised, "apply", "-input=false", "-auto-approve", env=moto_server, timeout=400)
    assert apply.returncode == 0, apply.stdout[-3000:] + apply.stderr[-3000:]
    try:
        output = terraform(initialised, "output", "-json", "inventory", env=moto_server)
        inventory = parse_inventory(json.loads(output.stdout))
        assert [(n.name, n.role) for n in inventory.nodes] == [
            ("llama-cp-1", "control-plane"), ("llama-gpu-1", "gpu-worker"), ("llama-worker-1", "worker"),
        ]  # fmt: skip
        assert inventory.kubernetes_version == "v1.29.15" and inventory.ssh_user == "ubuntu"
        assert all(n.private_ip.startswith("10.10.") for n in inventory.nodes)
        assert "10.10." not in kubeadm_init_config(Settings(), inventory).split("certSANs:")[1].split("\n")[1]

        session = boto3.Session(
            aws_access_key_id=moto_server["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=moto_server["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )
        ec2 = session.client("ec2", endpoint_url=moto_server["AWS_ENDPOINT_URL"])
        reservations = ec2.describe_instances(InstanceIds=[n.instance_id for n in inventory.nodes])[
            "Reservations"
        ]
        instances = {i["InstanceId"]: i for r in reservations for i in r["Instances"]}
        by_name = {n.name: instances[n.instance_id] for n in inventory.nodes}
        assert by_name["llama-gpu-1"]["InstanceType"] == "g4dn.xlarge"
        assert by_name["llama-cp-1"]["InstanceType"] == "t3.medium"
        # The newest Canonical Ubuntu 22.04 image, found by the data source, not hard-coded.
        assert {i["ImageId"] for i in instances.values()} == {"ami-0fedcba9876543210"}
        assert all(i["MetadataOptions"]["HttpTokens"] == "required" for i in instances.values())
        volumes = ec2.describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": list(instances)}]
        )["Volumes"]
        assert all(v["Encrypted"] and v["VolumeType"] == "gp3" for v in volumes)
        gpu_volume = next(
            v
            for v in volumes
            if v["Attachments"][0]["InstanceId"] == inventory.node("llama-gpu-1").instance_id
        )
        assert gpu_volume["Size"] >= 100

        def from_outside(group_name: str) -> list[tuple[Any, ...]]:
            group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name]}])
            return sorted(
                (r["IpProtocol"], r.get("FromPort"), r.get("ToPort"), ip["CidrIp"])
                for r in group["SecurityGroups"][0]["IpPermissions"]
                for ip in r.get("IpRanges", [])
            )

        # Only the ports that are needed: SSH and the API server to the admins and ICMP 3/4 on every
        # node; on the edge worker alone HTTPS to the clients and port 80 (redirect, ACME challenge)
        # to anyone. No NodePort range (30000-32767) any more.
        assert from_outside("llama-cluster") == [
            ("icmp", 3, 4, "0.0.0.0/0"),
            ("tcp", 22, 22, "203.0.113.7/32"),
            ("tcp", 6443, 6443, "203.0.113.7/32"),
        ]
        assert from_outside("llama-edge") == [
            ("tcp", 80, 80, "0.0.0.0/0"),
            ("tcp", 443, 443, "198.51.100.0/24"),
        ]
        group_names = {g["GroupId"]: g["GroupName"] for g in ec2.describe_security_groups()["SecurityGroups"]}
        groups = {
            name: {group_names[g["GroupId"]] for eni in instance["NetworkInterfaces"] for g in eni["Groups"]}
            for name, instance in by_name.items()
        }
        assert groups == {
            "llama-cp-1": {"llama-cluster"},
            "llama-worker-1": {"llama-cluster", "llama-edge"},
            "llama-gpu-1": {"llama-cluster"},
        }

        # The control plane's and the edge worker's addresses are Elastic IPs (certSAN, kubeconfig,
        # and the UI's certificate name survive stop/start).
        addresses = ec2.describe_addresses()["Addresses"]
        cp, edge_node = inventory.control_plane, inventory.node("llama-worker-1")
        assert sorted((a["InstanceId"], a["PublicIp"]) for a in addresses) == sorted(
            [(cp.instance_id, cp.public_ip), (edge_node.instance_id, edge_node.public_ip)]
        )
        # edge_values is what values/aws-t4.yaml needs from this machine, and the chart takes it.
        edge_values = yaml.safe_load(
            terraform(initialised, "output", "-raw", "edge_values", env=moto_server).stdout
        )
        dashed = edge_node.public_ip.replace(".", "-")
        assert edge_values == {
            "chat-ui": {
                "edge": {"externalIPs": [edge_node.private_ip]},
                "nodeSelector": {"kubernetes.io/hostname": "llama-worker-1"},
                "tls": {"host": f"{dashed}.sslip.io"},
            },
            "chat-api": {"store": {"redis": {"nodeSelector": {"kubernetes.io/hostname": "llama-worker-1"}}}},
        }
        t4 = [REPO / "values" / "aws-t4.yaml"]
        with_edge = chart.deep_merge(
            chart.deep_merge(edge_values, chart_cases.SIGN_IN), chart_cases.install_layers([])
        )
        manifests = chart.render(t4, extra_values=with_edge)
        assert chart_cases.find(manifests, "Service", "llama-chat-ui-edge")["spec"]["externalIPs"] == [
            edge_node.private_ip
        ]
        # A node's public address changes behind terraform's back (as after a stop/start): the
        # bootstrap's inventory is read after a refresh, a plain `terraform output` is stale.
        worker = inventory.node("llama-gpu-1")
        moved = ec2.allocate_address(Domain="vpc")
        ec2.associate_address(InstanceId=worker.instance_id, AllocationId=moved["AllocationId"])
        stale = json.loads(terraform(initialised, "output", "-json", "inventory", env=moto_server).stdout)
        assert {n["name"]: n["public_ip"] for n in stale["nodes"]}["llama-gpu-1"] == worker.public_ip
        with pytest.MonkeyPatch.context() as patch:
            for name, value in {**moto_server, "TF_CLI_CONFIG_FILE": str(CLI_CONFIG)}.items():
                patch.setenv(name, value)
            fresh = parse_inventory(inventory_output(Settings(tf_dir=initialised)))
        assert fresh.node("llama-gpu-1").public_ip == moved["PublicIp"]
        assert fresh.control_plane.public_ip == cp.public_ip
        ec2.disassociate_address(AssociationId=ec2.describe_addresses(AllocationIds=[moved["AllocationId"]])[
            "Addresses"][0]["AssociationId"])  # fmt: skip
        ec2.release_address(AllocationId=moved["AllocationId"])
        assert not any(i.get("Monitoring", {}).get("State") == "enabled" for i in instances.values())

        iam = session.client("iam", endpoint_url=moto_server["AWS_ENDPOINT_URL"])
        gpu_policies = iam.list_role_policies(RoleName="llama-gpu-worker")["PolicyNames"]
        # ecr-pull-platform-images: terraform/ecr.tf (issue 14), pull-only on the platform's
        # repositories, for the roles whose nodes run its pods; the control plane pulls nothing of ours.
        assert sorted(gpu_policies) == ["ecr-pull-platform-images", "model-cache-read"]
        assert iam.list_role_policies(RoleName="llama-worker")["PolicyNames"] == ["ecr-pull-platform-images"]
        assert iam.list_role_policies(RoleName="llama-control-plane")["PolicyNames"] == []
        attached = iam.list_attached_role_policies(RoleName="llama-worker")["AttachedPolicies"]
        assert [p["PolicyName"] for p in attached] == ["AmazonSSMManagedInstanceCore"]
        ecr = session.client("ecr", endpoint_url=moto_server["AWS_ENDPOINT_URL"])
        repositories = {
            r["repositoryName"]: r["repositoryArn"] for r in ecr.describe_repositories()["repositories"]
        }
        assert sorted(repositories) == [
            f"llama/llama-platform/{n}" for n in ("chat-api", "chat-ui", "vllm-llama")
        ]
        registry = terraform(initialised, "output", "-raw", "image_registry", env=moto_server).stdout
        assert registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com/llama"
        for role in ("llama-worker", "llama-gpu-worker"):
            document = iam.get_role_policy(RoleName=role, PolicyName="ecr-pull-platform-images")[
                "PolicyDocument"
            ]
            statements = {s["Sid"]: s for s in document["Statement"]}
            # The token (no resource scope exists for it) and the three read actions a pull makes,
            # on these repositories only: no push, no delete, no other repository.
            assert statements["EcrToken"]["Action"] == "ecr:GetAuthorizationToken"
            assert statements["EcrToken"]["Resource"] == "*"
            pull = statements["PullPlatformImages"]
            assert sorted(pull["Action"]) == [
                "ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
            ]  # fmt: skip
            assert sorted(pull["Resource"]) == sorted(repositories.values())
            assert all(s["Effect"] == "Allow" for s in statements.values()) and len(statements) == 2
    finally:
        destroy = terraform(
            initialised, "destroy", "-input=false", "-auto-approve", env=moto_server, timeout=400
        )
    assert destroy.returncode == 0, destroy.stdout[-3000:] + destroy.stderr[-3000:]
    state = json.loads(terraform(initialised, "show", "-json", env=moto_server).stdout)
    assert not state.get("values", {}).get("root_module", {}).get("resources")
    assert time.monotonic() - started < 240


@pytest.mark.integration
@needs_offline_terraform
def test_a_spot_gpu_node_is_a_one_time_request_that_cannot_outlive_destroy(
    initialised: Path, moto_server: dict[str, str], tmp_path: Path
) -> None:
    """A persistent spot request outlives `terraform destroy` and starts a new, billed instance
    (terraform-provider-aws#38142): the plan must ask for a one-time request, terminated when
    reclaimed. Read from the plan the provider made against moto, not from the .tf text."""
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    write_tfvars(initialised, key.with_suffix(".pub").read_text().strip())
    with (initialised / "terraform.tfvars").open("a") as tfvars:
        tfvars.write("gpu_spot = true\n")
    quotas_file = Path(moto_server["MOTO_EC2_QUOTAS_FILE"])
    quotas_file.write_text(json.dumps({**GRANTED, "L-3819A6DF": 4}))
    plan_file = tmp_path / "spot.tfplan"
    try:
        plan = terraform(
            initialised, "plan", "-no-color", "-input=false", "-lock=false", f"-out={plan_file}",
            env=moto_server, timeout=300,
        )  # fmt: skip
        assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
        shown = json.loads(terraform(initialised, "show", "-json", str(plan_file), env=moto_server).stdout)
    finally:
        quotas_file.write_text(json.dumps(GRANTED))
        (initialised / "terraform.tfvars").unlink()
    after = {c["address"]: c["change"]["after"] for c in shown["resource_changes"]}
    gpu = after['aws_instance.node["llama-gpu-1"]']
    assert gpu["instance_market_options"][0]["market_type"] == "spot"
    spot = gpu["instance_market_options"][0]["spot_options"][0]
    assert spot["spot_instance_type"] == "one-time"
    assert spot["instance_interruption_behavior"] == "terminate"
    assert not after['aws_instance.node["llama-cp-1"]'].get("instance_market_options")
