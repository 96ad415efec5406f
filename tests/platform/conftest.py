"""The lab for `make platform`: the flow's real code against real local parts and named doubles.

Real here: node_bootstrap.platform and everything it calls, Helm's engine (the platform chart
rendered in-process), helm pulls from a real chart repository on loopback, the Kubernetes client
over HTTPS with the admin's client certificate, huggingface_hub's auth-check call, chat-api over
HTTP in front of vLLM CPU serving the tiny Llama (the first question), and the live wait for vLLM
(node_bootstrap/vllm_wait.py) reading a recorded start-up (tests/fixtures/vllm_startup, replayed on
the replay's clock: a 7-minute cold start takes a moment). Doubles: the Kubernetes API server
(tests/fixtures/kube_api_double.py), Helm's install actions and the Hugging Face Hub
(tests/platform/doubles.py), and the `make cluster` flow (`FakeClusterFlow`: H13's tests run the
real one end to end against the sandboxed nodes; here only its contract matters, a kubeconfig
appears).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.kube_api_double import KubeApiDouble
from tests.fixtures.stack import ChatApiServer, _start_chat_api
from tests.fixtures.vllm_startup.replay import Replay

from .chart_repo import ChartRepository
from .doubles import HelmDouble, HubDouble

REPO = Path(__file__).resolve().parents[2]
HF_TOKEN = "hf_" + "T" * 34
# The operator key of the lab's runs, mounted into chat-api from the start (a key the flow makes itself
# would wait up to chat-api's 10 s key reload: test_platform_flow's first test does that once).
OPERATOR_KEY = "Ok" * 21 + "x"  # the shape of a Hugging Face token; the Hub double grants it the model
MODEL = "meta-llama/Llama-3.2-3B-Instruct"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com/llama"
EDGE_IP = "198.51.100.23"
# The shape of terraform/outputs.tf's outputs after `make cluster` (the lab run test reads the real ones).
OUTPUTS: dict[str, Any] = {
    "image_registry": REGISTRY,
    "edge": {
        "node": "llama-worker-1",
        "public_ip": EDGE_IP,
        "private_ip": "10.10.1.10",
        "url": "https://198-51-100-23.sslip.io",
    },
    "edge_values": (
        "chat-api:\n  store:\n    redis:\n      nodeSelector:\n"
        "        kubernetes.io/hostname: llama-worker-1\n"
        "chat-ui:\n  edge:\n    externalIPs:\n    - 10.10.1.10\n  nodeSelector:\n"
        "    kubernetes.io/hostname: llama-worker-1\n  tls:\n    host: 198-51-100-23.sslip.io\n"
    ),
    "inventory": {"cluster_name": "llama", "region": "us-east-1"},
}
SIGNIN = (
    "chat-api:\n  auth:\n    oidc:\n      issuerUrl: https://accounts.google.com\n"
    "      clientId: 1234567890-abc.apps.googleusercontent.com\n      clientSecretSecret: chat-signin\n"
    "      allowedDomains: [example.com]\n"
)
TFVARS = (
    'region = "us-east-1"\nadmin_cidrs = ["203.0.113.7/32"]\nclient_cidrs = ["203.0.113.7/32"]\n'
    'ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleExampleExampleExampleExample'
    'Example you@laptop"\n'
)


def private_file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)
    path.chmod(0o600)
    return path


@dataclass
class FakeClusterFlow:
    """A fake of `make cluster` (plan, cost, apply, bootstrap, kubeconfig, doctor): it writes the
    kubeconfig that make cluster would fetch. Only for the orchestration tests (see the module doc)."""

    kubeconfig_source: Path
    kubeconfig: Path
    calls: int = 0
    fail_next: str = ""

    def __call__(self) -> None:
        from node_bootstrap.platform import StepFailed

        self.calls += 1
        if self.fail_next:
            message, self.fail_next = self.fail_next, ""
            raise StepFailed(message)
        shutil.copy(self.kubeconfig_source, self.kubeconfig)
        self.kubeconfig.chmod(0o600)


@dataclass
class Lab:
    root: Path
    kube: KubeApiDouble
    hub: HubDouble
    helm: HelmDouble
    charts: ChartRepository
    chat_api: ChatApiServer
    keys_dir: Path
    cluster: FakeClusterFlow
    images: list[str] = field(default_factory=list)
    images_fail_next: str = ""
    edge_down: bool = False  # the edge does not answer (nothing listens where the question goes)
    output: list[str] = field(default_factory=list)
    vllm: Replay | None = None  # the recorded start-up the cluster plays when the release is installed

    def start_vllm(self, sequence: str = "t4-cold-start") -> Replay:
        """The vLLM pod's start-up from now on: one of tests/fixtures/vllm_startup/*.json."""
        self.vllm = Replay(self.kube, sequence)
        return self.vllm

    def settings(self, **overrides: Any) -> Any:
        from node_bootstrap.platform import PlatformSettings

        values = {
            "repo": REPO,
            "tf_dir": self.root / "terraform",
            "state_dir": self.root / "build" / "platform",
            "kubeconfig": self.root / "kubeconfig",
            "values_file": REPO / "values" / "aws-t4.yaml",
            "monitoring_values": PlatformSettings.monitoring_values,
            "hf_token_file": self.root / "hf-token",
            "signin_values": self.root / "signin.yaml",
            "oidc_client_secret_file": self.root / "client-secret",
            "hf_endpoint": self.hub.url,
            "wait_timeout_s": 1800.0,  # seconds of the replay's clock, as the real default
            "question_timeout_s": 30.0,
            "key_sync_grace_s": 15.0,  # chat-api re-reads its keys every 10 s
            "helm_timeout_s": 60,
        }
        return PlatformSettings(**{**values, **overrides})

    def environment(self, settings: Any, **overrides: Any) -> Any:
        from node_bootstrap import helm_release
        from node_bootstrap.kube_api import KubeAPI
        from node_bootstrap.platform import Environment, StepFailed, ask_once, check_hf_access, wait_for_vllm

        def images(registry: str) -> None:
            self.images.append(registry)
            if self.images_fail_next:
                message, self.images_fail_next = self.images_fail_next, ""
                raise StepFailed(message)

        def pull(chart: Any) -> Path:
            local = helm_release.PinnedChart(chart.name.rsplit("/", 1)[-1], chart.version, self.charts.url)
            return helm_release.pull(local, settings.state_dir / "charts")

        env = Environment(
            cluster_flow=self.cluster,
            outputs=lambda: dict(OUTPUTS),
            images=images,
            kube=lambda: KubeAPI.from_kubeconfig(settings.kubeconfig),
            releases=lambda: self.helm,
            pull_chart=pull,
            hf_access=lambda token, model: check_hf_access(settings.hf_endpoint, token, model),
            aws_identity=lambda region: f"arn:aws:iam::123456789012:user/newcomer ({region})",
            wait_for_vllm=lambda namespace, release, timeout_s, say: wait_for_vllm(
                settings.kubeconfig,
                namespace,
                release,
                timeout_s,
                say,
                clock=self.replay_clock,
                sleep=self.replay_sleep,
            ),
            ask=ask_once,
            sleep=lambda seconds: time.sleep(min(seconds, 0.5)),
            question_url=lambda outputs: "http://127.0.0.1:9" if self.edge_down else self.chat_api.base_url,
        )
        for name, value in overrides.items():
            setattr(env, name, value)
        return env

    def platform(self, settings: Any = None, **env_overrides: Any) -> Any:
        from node_bootstrap.platform import Platform

        settings = settings or self.settings()
        return Platform(settings, self.environment(settings, **env_overrides), out=self.output.append)

    def replay_clock(self) -> float:
        assert self.vllm is not None, "no vLLM start-up is playing (Lab.start_vllm)"
        return self.vllm.clock()

    def replay_sleep(self, seconds: float) -> None:
        assert self.vllm is not None, "no vLLM start-up is playing (Lab.start_vllm)"
        self.vllm.sleep(seconds)

    def mounted(self, namespace: str, name: str, data: dict[str, bytes]) -> None:
        """kubelet's part: the operator keys Secret becomes chat-api's CHAT_API_API_KEYS_DIR."""
        if name != "llama-platform-keys":
            return
        for old in self.keys_dir.iterdir():
            if old.name != "unrelated-client" and old.name not in data:
                old.unlink()
        for key, value in data.items():
            if not (self.keys_dir / key).is_file() or (self.keys_dir / key).read_bytes() != value:
                private_file(self.keys_dir / key, value.decode())


@pytest.fixture(scope="module")
def chart_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartRepository]:
    with ChartRepository(tmp_path_factory.mktemp("charts")) as repo:
        yield repo


@pytest.fixture(scope="module")
def keyed_chat_api(
    tmp_path_factory: pytest.TempPathFactory, vllm_server: Any
) -> Iterator[tuple[ChatApiServer, Path]]:
    """Real chat-api in front of real vLLM CPU, with API keys from files (as the chart mounts them)."""
    keys = tmp_path_factory.mktemp("chat-api-keys")
    keys.chmod(0o700)
    # chat-api refuses to start with an empty keys directory; a key nobody in the test knows.
    private_file(keys / "unrelated-client", "llp_" + "u" * 43)
    private_file(keys / "make-platform", OPERATOR_KEY)
    server = _start_chat_api(vllm_server.base_url, {"CHAT_API_API_KEYS_DIR": str(keys)}, wait_ready=True)
    try:
        yield server, keys
    finally:
        server.process.stop()


@pytest.fixture
def lab(
    tmp_path: Path,
    chart_repository: ChartRepository,
    keyed_chat_api: tuple[ChatApiServer, Path],
) -> Iterator[Lab]:
    chat_api, keys = keyed_chat_api
    (tmp_path / "terraform").mkdir()
    (tmp_path / "terraform" / "terraform.tfvars").write_text(TFVARS)
    private_file(tmp_path / "hf-token", HF_TOKEN + "\n")
    private_file(tmp_path / "build" / "platform" / "operator-key", OPERATOR_KEY + "\n")
    private_file(tmp_path / "client-secret", "GOCSPX-client-secret-of-the-test-provider")
    (tmp_path / "signin.yaml").write_text(SIGNIN)
    with KubeApiDouble(tmp_path / "apiserver") as kube, HubDouble({HF_TOKEN: {MODEL}}) as hub:
        kube.add_ready_nodes("llama-cp-1", "llama-worker-1", "llama-gpu-1")
        lab = Lab(
            root=tmp_path,
            kube=kube,
            hub=hub,
            helm=HelmDouble(),
            charts=chart_repository,
            chat_api=chat_api,
            keys_dir=keys,
            cluster=FakeClusterFlow(kube.kubeconfig, tmp_path / "kubeconfig"),
        )
        kube.on_secret = lab.mounted
        lab.start_vllm("t4-cold-start")
        yield lab
        lab.mounted("llama", "llama-platform-keys", {"make-platform": OPERATOR_KEY.encode()})


def git_head() -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
