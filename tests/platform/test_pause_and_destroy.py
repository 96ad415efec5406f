"""`make pause` / `make resume` against moto's EC2, and `make destroy` removing the Helm releases first."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kube_api_double import KubeApiDouble

from .doubles import HelmDouble

TAGS = [{"Key": "Project", "Value": "llama-platform"}, {"Key": "Cluster", "Value": "llama"}]


@pytest.fixture
def ec2(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("ec2", region_name="us-east-1")


def node(ec2: Any, name: str, itype: str, tags: list[dict[str, str]] = TAGS, **extra: Any) -> str:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    spec = [{"ResourceType": "instance", "Tags": [*tags, {"Key": "Name", "Value": name}]}]
    reply = ec2.run_instances(
        ImageId=image, InstanceType=itype, MinCount=1, MaxCount=1, TagSpecifications=spec, **extra
    )
    return str(reply["Instances"][0]["InstanceId"])


def states(ec2: Any) -> dict[str, str]:
    return {
        i["InstanceId"]: i["State"]["Name"]
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
    }


@pytest.mark.unit
def test_pause_stops_every_node_of_the_cluster_and_resume_starts_them(ec2: Any) -> None:
    from node_bootstrap import pause

    ids = [
        node(ec2, "llama-cp-1", "t3.medium"),
        node(ec2, "llama-worker-1", "t3.medium"),
        node(ec2, "llama-gpu-1", "g4dn.xlarge"),
    ]
    other = node(ec2, "someone-else", "t3.micro", tags=[{"Key": "Project", "Value": "other"}])
    said: list[str] = []
    assert sorted(pause.pause(ec2, "llama", said.append, delay_s=1)) == sorted(ids)
    assert {i: states(ec2)[i] for i in ids} == dict.fromkeys(ids, "stopped")
    assert states(ec2)[other] == "running", "only the cluster's own instances"
    text = "\n".join(said)
    assert "lost: the GPU node's NVMe instance store, i.e. the model cache" in text
    assert "kept: the cluster (etcd" in text and "still billed while paused" in text
    assert pause.pause(ec2, "llama", said.append, delay_s=1) == [], "pausing a paused cluster changes nothing"
    assert sorted(pause.resume(ec2, "llama", said.append, delay_s=1)) == sorted(ids)
    assert {i: states(ec2)[i] for i in ids} == dict.fromkeys(ids, "running")
    assert pause.resume(ec2, "llama", said.append, delay_s=1) == []


@pytest.mark.unit
def test_a_one_time_spot_gpu_node_cannot_pause_and_nothing_is_stopped(ec2: Any) -> None:
    from node_bootstrap import pause
    from node_bootstrap.errors import PreflightError

    cp = node(ec2, "llama-cp-1", "t3.medium")
    gpu = node(
        ec2,
        "llama-gpu-1",
        "g4dn.xlarge",
        InstanceMarketOptions={"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time"}},
    )
    lifecycle = ec2.describe_instances(InstanceIds=[gpu])["Reservations"][0]["Instances"][0].get(
        "InstanceLifecycle"
    )
    if lifecycle != "spot":
        pytest.skip(f"moto did not mark the instance as spot (InstanceLifecycle={lifecycle!r})")
    with pytest.raises(PreflightError, match="one-time spot instance, which EC2 cannot stop"):
        pause.pause(ec2, "llama", lambda line: None, delay_s=1)
    assert states(ec2)[cp] == "running" and states(ec2)[gpu] == "running"


@pytest.mark.unit
def test_nothing_to_pause_says_what_to_run(ec2: Any) -> None:
    from node_bootstrap import pause
    from node_bootstrap.errors import PreflightError

    with pytest.raises(PreflightError, match="no instance of cluster 'llama' exists to pause"):
        pause.pause(ec2, "llama", lambda line: None, delay_s=1)


@pytest.mark.chart
def test_destroy_removes_the_platform_release_before_what_it_sits_on(tmp_path: Path) -> None:
    from node_bootstrap.kube_api import KubeAPI
    from node_bootstrap.platform_cli import uninstall_releases

    helm = HelmDouble()
    for name, namespace in (("cert-manager", "cert-manager"), ("kube-prometheus-stack", "monitoring")):
        chart = tmp_path / name
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {name}\nversion: 1.0.0\n")
        helm.install(chart, name, namespace, {}, 60, True)
    helm.releases[("llama", "llama")] = helm.releases[("cert-manager", "cert-manager")].__class__(
        "llama", "llama", "platform", 1, {}, {}
    )
    said: list[str] = []
    with KubeApiDouble(tmp_path / "api") as api:
        removed = uninstall_releases(
            api.kubeconfig,
            lambda: helm,
            lambda: KubeAPI.from_kubeconfig(api.kubeconfig),
            "llama",
            "llama",
            said.append,
        )
    assert removed == ["llama", "kube-prometheus-stack", "cert-manager"]
    assert [c for c in helm.calls if c[0] == "uninstall"] == [
        ("uninstall", "llama", "llama"),
        ("uninstall", "kube-prometheus-stack", "monitoring"),
        ("uninstall", "cert-manager", "cert-manager"),
    ]
    assert helm.releases == {}


@pytest.mark.unit
def test_destroy_says_why_it_cannot_remove_the_releases_of_a_cluster_that_does_not_answer(
    tmp_path: Path,
) -> None:
    from node_bootstrap.kube_api import KubeAPI
    from node_bootstrap.platform_cli import uninstall_releases

    helm = HelmDouble()
    with KubeApiDouble(tmp_path / "api") as api:
        api.stop()  # a paused (stopped) control plane: nothing listens
        said: list[str] = []
        removed = uninstall_releases(
            api.kubeconfig,
            lambda: helm,
            lambda: KubeAPI.from_kubeconfig(api.kubeconfig),
            "llama",
            "llama",
            said.append,
        )
    assert removed == [] and helm.calls == []
    assert (
        "the Helm releases cannot be removed first" in said[0]
        and "no load balancer, no EBS volume" in said[0]
    )
    said.clear()
    assert (
        uninstall_releases(tmp_path / "missing", lambda: helm, lambda: None, "llama", "llama", said.append)
        == []
    )  # type: ignore[arg-type,return-value]
    assert said == [f"no {tmp_path / 'missing'}: no Helm release to remove first"]

    # A kubeconfig whose CA is not a certificate (hand-edited, truncated, a lab's placeholder): the
    # destroy still goes on, saying why the releases stay, instead of stopping on an SSL traceback.
    broken = tmp_path / "kubeconfig"
    config = yaml.safe_load(api.kubeconfig.read_text())
    not_a_certificate = base64.b64encode(b"not a certificate").decode()
    config["clusters"][0]["cluster"]["certificate-authority-data"] = not_a_certificate
    broken.write_text(yaml.safe_dump(config))
    said.clear()
    removed = uninstall_releases(
        broken, lambda: helm, lambda: KubeAPI.from_kubeconfig(broken), "llama", "llama", said.append
    )
    assert removed == [] and helm.calls == []
    assert "is not a kubeconfig this can use (SSLError" in said[0] and "Fix: make kubeconfig" in said[0], said


@pytest.mark.unit
def test_the_cli_runs_make_platform_and_stops_at_preflight_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from node_bootstrap import cli

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    (tmp_path / "terraform").mkdir()
    args = ["--tf-dir", str(tmp_path / "terraform"), "--state-dir", str(tmp_path / "build" / "bootstrap"),
            "--kubeconfig", str(tmp_path / "kubeconfig"), "platform"]  # fmt: skip
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "[1/9] preflight: FAILED" in err and "terraform.tfvars does not exist. Fix: cp " in err
    assert "Fix that, then resume with: make platform" in err
    logs = list((tmp_path / "build" / "platform").glob("*.log"))
    assert len(logs) == 1 and "terraform.tfvars does not exist" in logs[0].read_text()


@pytest.mark.unit
def test_resume_waits_until_every_node_is_ready_again(tmp_path: Path) -> None:
    import threading

    from node_bootstrap.kube_api import KubeAPI
    from node_bootstrap.platform_cli import wait_nodes_ready

    with KubeApiDouble(tmp_path / "api") as api:
        api.add_ready_nodes("llama-cp-1", "llama-worker-1", "llama-gpu-1")
        api.nodes[2]["status"]["conditions"][0]["status"] = "False"  # the GPU node's kubelet not back yet
        threading.Timer(
            0.5, lambda: api.add_ready_nodes("llama-cp-1", "llama-worker-1", "llama-gpu-1")
        ).start()
        said: list[str] = []
        kube = KubeAPI.from_kubeconfig(api.kubeconfig)
        try:
            wait_nodes_ready(kube, said.append, timeout_s=10, interval_s=0.05)
        finally:
            kube.close()
    assert said == ["  2/3 nodes Ready", "  3/3 nodes Ready"]


@pytest.mark.unit
def test_resume_gives_up_with_the_doctor_when_a_node_stays_down(tmp_path: Path) -> None:
    from node_bootstrap.errors import BootstrapError
    from node_bootstrap.kube_api import KubeAPI
    from node_bootstrap.platform_cli import wait_nodes_ready

    with KubeApiDouble(tmp_path / "api") as api:
        api.add_ready_nodes("llama-cp-1", "llama-gpu-1")
        api.nodes[1]["status"]["conditions"][0]["status"] = "False"
        kube = KubeAPI.from_kubeconfig(api.kubeconfig)
        try:
            with pytest.raises(
                BootstrapError, match=r"not back after 0 s \(1/2 nodes Ready\)\. Fix: make doctor"
            ):
                wait_nodes_ready(kube, lambda line: None, timeout_s=0.2, interval_s=0.05)
        finally:
            kube.close()
