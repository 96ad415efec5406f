"""What the first `helm install` of values/aws-t4.yaml on a fresh `make cluster` cluster needs
(issue 14, items 3-7): no HPA without a metrics API, a `helm test` that waits for vLLM, RuntimeClass
`nvidia` before any pod and owned by no release, KEDA checked, and NOTES with a URL to open."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts import chart
from tests.chart import cases

pytestmark = pytest.mark.chart

T4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)
# A fresh kubeadm cluster from `make cluster` plus cert-manager, which README "On AWS" installs
# before the platform (values/aws-t4.yaml's certificate): no metrics-server, KEDA or prometheus-operator.
KUBEADM: tuple[str, ...] = ("cert-manager.io/v1",)
WITH_METRICS_SERVER = (*chart.API_VERSIONS, "metrics.k8s.io/v1beta1")


def _render(files: tuple[Path, ...], api_versions: tuple[str, ...], extra: dict[str, Any] | None = None):
    return chart.render(list(files), release=cases.RELEASE, namespace=cases.NAMESPACE,
                        extra_values=cases.with_image_registry(files, extra),
                        api_versions=api_versions)  # fmt: skip


def _notes(extra: dict[str, Any] | None = None, api_versions: tuple[str, ...] = KUBEADM) -> str:
    values = chart.merged_values(list(T4), cases.with_image_registry(T4, extra))
    return chart.render_templates(values, cases.RELEASE, cases.NAMESPACE, api_versions)[
        "platform/templates/NOTES.txt"
    ]


# --- 3. chat-api HPA only where a metrics API exists ------------------------------------------


def test_without_metrics_server_chat_api_runs_fixed_pods_and_no_hpa() -> None:
    manifests = _render(T4, KUBEADM)
    assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]
    assert cases.find(manifests, "Deployment", "llama-chat-api")["spec"]["replicas"] == 2
    notes = _notes()
    assert "no HorizontalPodAutoscaler" in notes and "Install metrics-server" in notes


def test_with_the_metrics_api_the_hpa_owns_the_chat_api_replicas() -> None:
    manifests = _render(T4, WITH_METRICS_SERVER)
    hpa = cases.find(manifests, "HorizontalPodAutoscaler", "llama-chat-api")
    assert hpa["spec"]["minReplicas"] == 2
    assert "replicas" not in cases.find(manifests, "Deployment", "llama-chat-api")["spec"]
    assert "no HorizontalPodAutoscaler" not in _notes(api_versions=WITH_METRICS_SERVER)


@pytest.mark.parametrize(("enabled", "has_hpa"), [(True, True), (False, False)])
def test_chat_api_autoscaling_true_or_false_forces_the_hpa_either_way(enabled: bool, has_hpa: bool) -> None:
    manifests = _render(T4, KUBEADM, {"chat-api": {"autoscaling": {"enabled": enabled}}})
    assert bool([m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]) is has_hpa


def test_the_chart_says_why_the_hpa_is_auto() -> None:
    # The AWS values no longer restate the default (tests/chart/test_environment_values.py): the
    # reason lives beside the default in chat-api's values.yaml.
    text = (chart.UMBRELLA / "charts" / "chat-api" / "values.yaml").read_text(encoding="utf-8")
    block = text[text.index("\nautoscaling:") :]
    assert "enabled: auto" in block and "metrics-server" in block


# --- 4. helm test waits for vLLM up to a deadline, with progress --------------------------------


class _FakeVllm(BaseHTTPRequestHandler):
    """Answers like vLLM while it loads: /health 503 for the first `not_ready` checks, then 200;
    /v1/completions only once healthy (vLLM's API server does not listen before that)."""

    not_ready = 2
    health_checks = 0

    def do_GET(self) -> None:
        if self.path != "/health":
            self.send_error(404)
            return
        type(self).health_checks += 1
        self.send_response(503 if type(self).health_checks <= type(self).not_ready else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        ready = type(self).health_checks > type(self).not_ready
        body = b'{"choices": [{"index": 0, "text": " Hi"}]}' if ready else b'{"error": "loading"}'
        self.send_response(200 if ready else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_vllm() -> Iterator[str]:
    _FakeVllm.health_checks = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeVllm)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _run_test_pod(url: str, ready_timeout: int) -> subprocess.CompletedProcess[str]:
    """The rendered helm test container, run by a real sh with the real curl against `url`."""
    if not shutil.which("curl"):
        pytest.skip("curl is not installed (apt-get install curl)")
    pod = cases.find(cases.rendered(cases.Case("values/aws-t4.yaml", T4)), "Pod", "llama-test-completion")
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["VLLM_URL"] == "http://llama-vllm-llama:8000" and env["MODEL"] == "llama-3.2-3b-instruct"
    env.update(VLLM_URL=url, READY_TIMEOUT_S=str(ready_timeout), POLL_S="1")
    return subprocess.run(
        [*container["command"], container["args"][0]],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_helm_test_waits_for_vllm_to_load_then_asks_for_one_token(fake_vllm: str) -> None:
    proc = _run_test_pod(fake_vllm, ready_timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("/health answers 503") == 2, proc.stdout
    assert "vLLM ready after" in proc.stdout and "one-token completion: ok" in proc.stdout


def test_helm_test_gives_up_at_its_deadline_with_the_last_answer(fake_vllm: str) -> None:
    _FakeVllm.not_ready = 10_000
    try:
        proc = _run_test_pod(fake_vllm, ready_timeout=2)
    finally:
        _FakeVllm.not_ready = 2
    assert proc.returncode == 1
    assert "vLLM not ready after 2s (last /health answer: 503)" in proc.stderr
    assert "kubectl -n llama logs deploy/llama-vllm-llama -c vllm" in proc.stderr


def test_helm_test_deadline_covers_the_startup_probe_and_the_notes_give_helm_a_longer_timeout() -> None:
    manifests = cases.rendered(cases.Case("values/aws-t4.yaml", T4))
    deployment = cases.find(manifests, "Deployment", "llama-vllm-llama")
    vllm = deployment["spec"]["template"]["spec"]["containers"][0]
    probe = vllm["startupProbe"]["periodSeconds"] * vllm["startupProbe"]["failureThreshold"]
    pod = cases.find(manifests, "Pod", "llama-test-completion")
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    ready_timeout = int(env["READY_TIMEOUT_S"])
    assert ready_timeout > probe
    assert f"--timeout {ready_timeout // 60 + 5}m" in _notes()


# --- 5. RuntimeClass nvidia: before any pod, owned by no release ---------------------------------


def test_runtime_class_is_created_before_the_release_pods_and_kept_on_uninstall() -> None:
    runtime_class = cases.find(_render(T4, KUBEADM), "RuntimeClass", "nvidia")
    annotations = runtime_class["metadata"]["annotations"]
    # A pre-install hook exists before Helm creates any Deployment or DaemonSet of the release.
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    # Helm deletes hook objects only by a hook-delete-policy; with none, uninstall leaves it alone.
    assert "helm.sh/hook-delete-policy" not in annotations
    assert annotations["helm.sh/resource-policy"] == "keep"


def test_runtime_class_is_skipped_where_it_already_exists() -> None:
    template = (chart.UMBRELLA / "charts/gpu-operator-lite/templates/runtimeclass.yaml").read_text()
    # Helm's lookup is empty in a client-side render; against a cluster it returns the existing
    # object, and nothing is rendered: no "already exists" failure, no takeover of another's object.
    assert '(lookup "node.k8s.io/v1" "RuntimeClass" "" .Values.runtimeClass.name)' in template


# --- 6. KEDA ScaledObject gated -----------------------------------------------------------------


def test_vllm_autoscaling_without_keda_is_refused_with_a_message_naming_keda() -> None:
    with pytest.raises(chart.ChartError) as caught:
        _render((cases.SCENARIO_DIR / "autoscaling-keda.yaml",), KUBEADM)
    message = str(caught.value)
    assert "vllm-llama.autoscaling.enabled needs KEDA" in message
    assert "keda.sh/v1alpha1" in message and "vllm-llama.autoscaling.enabled: false" in message


def test_vllm_autoscaling_with_keda_renders_the_scaled_object() -> None:
    manifests = _render((cases.SCENARIO_DIR / "autoscaling-keda.yaml",), chart.API_VERSIONS)
    assert cases.find(manifests, "ScaledObject", "llama-vllm-llama")


# --- 7. NOTES print a URL the user can open ------------------------------------------------------


def test_notes_print_the_https_url_of_the_edge() -> None:
    notes = _notes()
    assert (
        "Open https://203-0-113-7.sslip.io  (OpenAI clients: base_url https://203-0-113-7.sslip.io/v1)"
        in notes
    )
    assert "kubectl -n llama get certificate llama-chat-ui -w" in notes


# A team that opens a NodePort itself (a VPN in front; the acknowledgement says so).
NODE_PORT = {
    "chat-ui": {
        "service": {"type": "NodePort", "nodePort": 30080},
        "tls": {"enabled": False},
        "edge": {"externalIPs": []},
    },
    "global": {"exposure": {"iAcceptAnUnauthenticatedPublicEndpoint": True}},
}


def test_notes_print_the_ui_url_from_public_host() -> None:
    assert "Open http://203.0.113.7:30080" in _notes(
        chart.deep_merge(NODE_PORT, {"publicHost": "203.0.113.7"})
    )


def test_notes_without_public_host_print_the_command_that_finds_the_address() -> None:
    notes = _notes(NODE_PORT)
    assert "kubectl get nodes -o wide`: kubeadm" in notes
    command = next(line.strip() for line in notes.splitlines() if "kubectl config view" in line)
    # The whole printed command, run by a real shell; kubectl is a shell function standing in for
    # `kubectl config view --minify -o jsonpath=...`, which prints the kubeconfig's server URL.
    proc = subprocess.run(
        ["sh", "-c", f"kubectl() {{ printf %s 'https://198.51.100.4:6443'; }}; {command}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert proc.stdout.strip() == "http://198.51.100.4:30080"


def test_a_public_host_that_is_not_a_host_name_is_refused() -> None:
    with pytest.raises(chart.ChartError, match="publicHost"):
        _render(T4, KUBEADM, {"publicHost": "http://x/"})
