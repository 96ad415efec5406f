"""The whole `make platform`, then `make destroy`, against the lab: the real terraform plan, cost and
apply against moto server (EC2, VPC, IAM, ECR, STS, Service Quotas), terraform's real outputs feeding
the images, the edge values and the URLs, the real STS check of the credentials; then destroy removes
the Helm releases first, terraform destroys, and AWS (moto) is asked that nothing is left.

The node bootstrap inside `make cluster` is the fake of conftest.py (H13's test runs it for real
against the sandboxed nodes); everything else is as in test_platform_flow.py. The run's output is
written to test-artifacts/platform-lab-run.txt (docs/platform-lab-run.md shows one).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.terraform_env import REPO
from tests.infra.test_cost import configure_for_moto
from tests.infra.test_terraform import (  # noqa: F401 - fixtures
    cluster_resources,
    ec2_client,
    initialised,
    moto_server,
    needs_offline_terraform,
)

from .conftest import Lab


@pytest.mark.integration
@needs_offline_terraform
def test_make_platform_then_make_destroy_in_the_lab(
    lab: Lab,
    initialised: Path,  # noqa: F811
    moto_server: dict[str, str],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from node_bootstrap import terraform
    from node_bootstrap.kube_api import KubeAPI
    from node_bootstrap.platform import check_aws, terraform_outputs
    from node_bootstrap.platform_cli import uninstall_releases
    from node_bootstrap.settings import Settings

    configure_for_moto(initialised, moto_server, tmp_path, monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    (initialised / "terraform.tfvars").write_text(
        (initialised / "terraform.tfvars")
        .read_text()
        .replace('client_cidrs = ["198.51.100.0/24"]', 'client_cidrs = ["203.0.113.7/32"]')
    )
    tf = Settings(
        tf_dir=initialised,
        state_dir=tmp_path / "bootstrap",
        kubeconfig=lab.root / "kubeconfig",
        auto_approve=True,
    )
    order: list[str] = []

    def make_cluster() -> None:
        terraform.apply(tf)  # plan, the cost per hour and day, (AUTO_APPROVE) apply
        order.append("terraform apply")
        lab.cluster()  # the bootstrap's contract: a kubeconfig

    settings = lab.settings(tf_dir=initialised, auto_approve=True)
    transcript: list[str] = []
    try:
        platform = lab.platform(
            settings,
            cluster_flow=make_cluster,
            outputs=lambda: terraform_outputs(initialised),
            aws_identity=check_aws,
        )
        code = platform.run()
        printed = capfd.readouterr().out  # terraform's own output and the cost table
        transcript += [printed, *lab.output]
        assert code == 0, "\n".join(transcript)[-6000:]
        # the price table applied to the planned resources: 2 x t3.medium, g4dn.xlarge, 230 GB gp3, 3 IPv4
        per_hour = 2 * 0.0416 + 0.526 + (40 + 40 + 150) * 0.08 / 730 + 3 * 0.005
        assert f"total: ${per_hour:.2f}/hour, ${per_hour * 24:.2f}/day" in printed, printed[-3000:]
        outputs = terraform_outputs(initialised)
        assert lab.images == [outputs["image_registry"]]
        edge = outputs["edge"]["url"]
        text = "\n".join(lab.output)
        assert f"chat UI    {edge}" in text and "AWS arn:aws:sts::123456789012:" in text
        assert lab.helm.releases[("llama", "llama")].values["chat-ui"]["tls"]["host"] == edge.removeprefix(
            "https://"
        )

        # make destroy: the releases first, then terraform, then AWS is asked.
        def releases_first() -> None:
            uninstall_releases(
                settings.kubeconfig,
                lambda: lab.helm,
                lambda: KubeAPI.from_kubeconfig(settings.kubeconfig),
                "llama",
                "llama",
                transcript.append,
            )
            order.append("helm uninstall")

        terraform.destroy(tf, before_destroy=releases_first)
        order.append("terraform destroy")
        printed = capfd.readouterr().out
        transcript.append(printed)
        assert "Nothing of cluster 'llama' is left in us-east-1" in printed
        assert order == ["terraform apply", "helm uninstall", "terraform destroy"]
        assert lab.helm.releases == {}
        assert cluster_resources(ec2_client(moto_server)) == []
    finally:
        out = REPO / "test-artifacts" / "platform-lab-run.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(transcript))
        _destroy_quietly(initialised)
        (initialised / "terraform.tfvars").unlink(missing_ok=True)


def _destroy_quietly(workdir: Path) -> None:
    """After a failure half way, leave nothing in moto for the module's other tests."""
    from tests.infra.terraform_env import terraform as run_terraform

    state = workdir / "terraform.tfstate"
    if state.is_file() and '"resources": []' not in state.read_text():
        run_terraform(workdir, "destroy", "-auto-approve", "-input=false")
