"""Helm without a helm binary: the real helm_python paths, as far as they go on this machine.

A real chart repository on loopback for the pinned pulls; the platform chart through Helm's install
action as a client-only dry run (what Helm checks before it would talk to a cluster: the chart's
kubeVersion, its schema, its templates, the flow's merged values); and the real install path against
the Kubernetes API double, which ends with a clear message instead of a traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.kube_api_double import KubeApiDouble

from .chart_repo import ChartRepository
from .conftest import OUTPUTS, REGISTRY, SIGNIN, TFVARS, private_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with ChartRepository(tmp_path_factory.mktemp("repo")) as repo:
        yield repo


@pytest.mark.chart
def test_a_pinned_chart_is_pulled_at_its_version_once(repository: ChartRepository, tmp_path: Path) -> None:
    from helm_python import Chart
    from node_bootstrap.helm_release import KUBE_PROMETHEUS_STACK, PinnedChart, pull

    pinned = PinnedChart(KUBE_PROMETHEUS_STACK.name, KUBE_PROMETHEUS_STACK.version, repository.url)
    archive = pull(pinned, tmp_path)
    assert archive.name == "kube-prometheus-stack-88.6.4.tgz"  # the repository also has 88.5.0
    with Chart.load(str(archive)) as chart:
        assert chart.version == "88.6.4"
    mtime = archive.stat().st_mtime_ns
    assert pull(pinned, tmp_path) == archive and archive.stat().st_mtime_ns == mtime


@pytest.mark.chart
def test_a_version_the_repository_lacks_is_refused_with_where_it_looked(
    repository: ChartRepository, tmp_path: Path
) -> None:
    from node_bootstrap.helm_release import PinnedChart, ReleaseError, pull

    with pytest.raises(
        ReleaseError, match=r"could not download the chart kube-prometheus-stack 99\.0\.0 from http://127"
    ):
        pull(PinnedChart("kube-prometheus-stack", "99.0.0", repository.url), tmp_path)
    assert not list(tmp_path.glob("*.tgz"))


def flow_values(tmp_path: Path) -> dict[str, Any]:
    """The values the platform step installs, computed by the flow itself from the files and outputs."""
    from node_bootstrap.platform import Environment, Platform, PlatformSettings

    (tmp_path / "terraform").mkdir(parents=True, exist_ok=True)
    (tmp_path / "terraform" / "terraform.tfvars").write_text(TFVARS)
    (tmp_path / "signin.yaml").write_text(SIGNIN)
    settings = PlatformSettings(
        repo=REPO,
        tf_dir=tmp_path / "terraform",
        state_dir=tmp_path / "state",
        signin_values=tmp_path / "signin.yaml",
    )
    unused = lambda *args: pytest.fail("not part of computing the values")  # noqa: E731
    env = Environment(
        cluster_flow=unused,
        outputs=lambda: dict(OUTPUTS),
        images=unused,
        kube=unused,
        releases=unused,
        pull_chart=unused,
        hf_access=unused,
        aws_identity=unused,
        wait_for_vllm=unused,
        ask=unused,
    )
    return Platform(settings, env, out=lambda line: None).platform_values()


@pytest.mark.chart
def test_helm_install_client_dry_run_accepts_the_platform_with_the_flow_values(tmp_path: Path) -> None:
    import helm_python

    values = flow_values(tmp_path)
    assert values["global"]["image"]["registry"] == REGISTRY
    # A client-only dry run announces no cert-manager API (helm-python-sdk exposes no api_versions for
    # install); the Helm double checks the cert-manager order. Here: the certificate from a Secret.
    values["chat-ui"]["tls"]["certManager"] = {"enabled": False}
    values["chat-ui"]["tls"]["existingSecret"] = "chat-tls"
    kubeconfig = private_file(
        tmp_path / "kubeconfig", "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"
    )
    with helm_python.Config(kubeconfig_path=kubeconfig, namespace="llama") as config:
        release = config.install(
            str(REPO / "charts" / "platform"), "llama", values, namespace="llama", dry_run="client"
        )
    manifest = release["manifest"]
    kinds = {doc["kind"] for doc in yaml.safe_load_all(manifest) if doc}
    assert {"Deployment", "Service", "Secret", "NetworkPolicy"} <= kinds
    assert f"{REGISTRY}/llama-platform/chat-api:" in manifest
    assert "existingSecret" not in manifest and "llama-platform-keys" in manifest


@pytest.mark.chart
def test_helm_refuses_the_platform_without_sign_in_and_the_message_reaches_the_user(tmp_path: Path) -> None:
    import helm_python

    values = flow_values(tmp_path)
    values["chat-ui"]["tls"]["certManager"] = {"enabled": False}
    values["chat-ui"]["tls"]["existingSecret"] = "chat-tls"
    values["chat-api"]["auth"]["oidc"] = {
        "issuerUrl": "",
        "clientId": "",
        "clientSecretSecret": "",
        "redirectUrl": "",
        "allowedDomains": [],
    }
    values["chat-ui"]["config"]["signIn"] = False
    with (
        helm_python.Config(namespace="llama") as config,
        pytest.raises(helm_python.HelmError, match="nobody has to sign in"),
    ):
        config.install(
            str(REPO / "charts" / "platform"), "llama", values, namespace="llama", dry_run="client"
        )


@pytest.mark.chart
def test_the_real_install_goes_through_helms_go_client_to_the_api_double_until_openapi_validation(
    tmp_path: Path,
) -> None:
    """How far the real thing gets here: helm-python-sdk's Go client talks to the Python double over
    HTTPS with the admin's client certificate, reads the release storage (the Secrets labelled
    owner=helm), the server version and the discovery documents, then stops where Helm validates the
    manifest against the server's OpenAPI schema (/openapi/v3, /openapi/v2), which the double does not
    serve. The user gets that as one sentence; a stopped API server gives the fix."""
    from node_bootstrap.helm_release import HelmReleases, ReleaseError, deploy

    with KubeApiDouble(tmp_path / "api") as api:
        releases = HelmReleases(api.kubeconfig)
        assert releases.status("llama", "llama") is None, "an empty release storage is no release"
        values = flow_values(tmp_path)
        # Helm reads the cluster's APIs from discovery: without cert-manager's the chart refuses, so
        # cert-manager must be installed first (the flow's order).
        with pytest.raises(ReleaseError, match="needs cert-manager in the cluster"):
            deploy(releases, REPO / "charts" / "platform", "llama", "llama", values, 30, False)
        api.crd_groups[("cert-manager.io", "v1")] = [("certificates", "Certificate"), ("issuers", "Issuer")]
        api.crd_groups[("monitoring.coreos.com", "v1")] = [
            ("servicemonitors", "ServiceMonitor"), ("prometheusrules", "PrometheusRule")]  # fmt: skip
        with pytest.raises(ReleaseError) as refused:
            deploy(releases, REPO / "charts" / "platform", "llama", "llama", values, 30, False)
        message = str(refused.value)
        assert message.startswith("helm install llama (namespace llama) failed: ") and "openapi" in message
        paths = [seen.path for seen in api.seen]
        assert "/api/v1/namespaces/llama/secrets" in paths and "/version" in paths and "/api/v1" in paths
        assert {seen.user for seen in api.seen} == {"kubernetes-admin"}, (
            "every call with the admin certificate"
        )
        assert api.secrets == {} and ("llama" not in api.namespaces), "nothing was created half way"
    with pytest.raises(ReleaseError, match=r"the Kubernetes API did not answer .*make resume"):
        HelmReleases(api.kubeconfig).status("llama", "llama")
