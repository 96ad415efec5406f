"""`make platform`'s wait for vLLM (node_bootstrap.vllm_wait) against recorded start-ups.

Each sequence of tests/fixtures/vllm_startup/ (pod states shaped like kubelet 1.29's, kubelet's and the
scheduler's events, the real CPU start-up log of vLLM 0.32.0 and GPU logs paraphrased from its source)
is replayed through the Kubernetes API double (tests/fixtures/kube_api_double.py: HTTPS with the
cluster CA, kubeadm's admin client certificate, pods, pods/log and events as kube-apiserver 1.29 and
kubelet serve them), read by the real `KubeApi` from an admin.conf-style kubeconfig. The replay's
clock is the wait's clock, so half an hour of start-up replays in about a second.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from node_bootstrap import vllm_wait
from node_bootstrap.vllm_wait import KubeApi, KubeApiError, WaitResult, wait_for_vllm

from tests.fixtures.kube_api_double import KubeApiDouble, recorded_pod, recorded_pod_names
from tests.fixtures.vllm_startup.replay import HERE, Replay, log_lines, pod_fixture

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApiDouble]:
    with KubeApiDouble(tmp_path_factory.mktemp("kube")) as api:
        yield api


@pytest.fixture(scope="module")
def kube(double: KubeApiDouble, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    config = double.admin_kubeconfig(tmp_path_factory.mktemp("cfg") / "kubeconfig")
    client = KubeApi.from_kubeconfig(config)
    yield client
    client.close()


def replay(
    double: KubeApiDouble, kube: KubeApi, name: str, timeout: float = 1800, **kwargs: Any
) -> tuple[WaitResult, list[str]]:
    """Run the wait over a recorded sequence; the printed lines without their elapsed-time column."""
    sequence = Replay(double, name)
    out = io.StringIO()
    result = wait_for_vllm(
        kube, "llama", "llama", timeout=timeout, out=out, clock=sequence.clock, sleep=sequence.sleep, **kwargs
    )
    lines = [re.sub(r"^\[\s*[\dhms]+\] ", "", line) for line in out.getvalue().splitlines()]
    return result, lines


def in_order(lines: list[str], expected: list[str]) -> None:
    """Each expected fragment is in a line after the previous one's."""
    at = 0
    for fragment in expected:
        for index in range(at, len(lines)):
            if fragment in lines[index]:
                at = index + 1
                break
        else:
            raise AssertionError(f"{fragment!r} not found after line {at}:\n" + "\n".join(lines))


# ---------------------------------------------------------------- the sequences


def test_a_cold_start_on_a_t4_shows_every_stage_then_ready(double: KubeApiDouble, kube: KubeApi) -> None:
    result, lines = replay(double, kube, "t4-cold-start")
    in_order(
        lines,
        [
            "scheduling: waiting for a node: 0/2 nodes are available: 1 Insufficient nvidia.com/gpu",
            "pulling: pod llama-vllm-llama-6c9f8d7b5d-x7k2p on ip-10-0-1-23.ec2.internal: pulling the image",
            'pulling "docker.io/vllm/vllm-openai:v0.32.0"',
            "pulled docker.io/vllm/vllm-openai:v0.32.0 in 2m47.912s",
            "downloading: meta-llama/Llama-3.2-3B-Instruct@main into /models/weights/meta-llama/Llama-3.2-3B",
            "downloading: 6.0 GiB to download",
            "download complete",
            "loading: vLLM is starting in pod llama-vllm-llama-6c9f8d7b5d-x7k2p",
            "loading: starting: vLLM 0.32.0",
            "loading: loading weights: /models/weights/meta-llama/Llama-3.2-3B-Instruct",
            "loading: loading weights: read in 28.41 s",
            "loading: loading weights: weights loaded: 6.02 GiB in 29.61 s",
            "loading: compiling (torch.compile)",
            "loading: compiling (torch.compile): took 50.96 s",
            "loading: sizing the KV cache: 5.62 GiB for the KV cache",
            "loading: sizing the KV cache: GPU KV cache: 52,608 tokens, 6.42x concurrency at 8,192 tokens",
            "loading: capturing CUDA graphs",
            "loading: capturing CUDA graphs: captured in 13 s (0.41 GiB)",
            "loading: starting the API server: engine ready in 72.31 s",
            "loading: starting the API server: listening on http://0.0.0.0:8000",
            "ready: vLLM is ready after 7m00s (pod llama-vllm-llama-6c9f8d7b5d-x7k2p)",
        ],
    )
    assert result == WaitResult(True, "ready", 420.0, pod="llama-vllm-llama-6c9f8d7b5d-x7k2p")
    # One line per change, not per poll: the scheduler's message is said once though it lasts 25 s.
    assert sum("waiting for a node" in line for line in lines) == 1


def test_the_download_shows_bytes_share_rate_and_time_left(double: KubeApiDouble, kube: KubeApi) -> None:
    result, lines = replay(double, kube, "t4-cold-start", progress_s=20)
    progress = [line for line in lines if line.startswith("downloading:") and "MiB/s" in line]
    assert progress, "\n".join(lines)
    # At 40 s: 4037017600 bytes of 6434047558; the last minute's rate from the script's own samples.
    assert "downloading: 3.8 GiB of 6.0 GiB (62%), 99.0 MiB/s, about 23s left" in progress, progress
    assert result.ready


def test_the_real_cpu_start_up_log_is_read_phase_by_phase(double: KubeApiDouble, kube: KubeApi) -> None:
    result, lines = replay(double, kube, "cpu-tiny-llama")
    in_order(
        lines,
        [
            "downloading: tiny-llama@main already in the cache: no download",
            "loading: vLLM is starting in pod llama-vllm-llama-6c9f8d7b5d-x7k2p",
            "loading: starting: vLLM 0.32.0",
            "loading: loading weights: /work/wt-18b/.cache/tiny-llama",
            "loading: loading weights: read in 0.02 s",
            "loading: sizing the KV cache: 1.0 GiB for the KV cache",
            "loading: sizing the KV cache: CPU KV cache: 1,048,576 tokens, 512.00x concurrency at 2,048",
            "loading: starting the API server: engine ready in 0.75 s",
            "loading: starting the API server: listening on http://127.0.0.1:26628",
            "loading: starting the API server: waiting for the readiness probe",
            "ready: vLLM is ready after 1m10s",
        ],
    )
    assert result.ready
    assert not any("capturing CUDA graphs" in line for line in lines), "a CPU start-up captures none"


def test_the_real_cpu_start_up_with_torch_compile_shows_the_compile(
    double: KubeApiDouble, kube: KubeApi
) -> None:
    result, lines = replay(double, kube, "cpu-tiny-llama-compile")
    in_order(
        lines,
        [
            "loading: loading weights: read in 0.02 s",
            "loading: compiling (torch.compile)",
            "loading: still compiling (torch.compile)",
            "loading: compiling (torch.compile): saved to the compile cache",
            "loading: compiling (torch.compile): done",
            "loading: sizing the KV cache: CPU KV cache: 1,048,576 tokens",
            "loading: starting the API server: engine ready in 180.47 s",
            "ready: vLLM is ready after 4m30s",
        ],
    )
    assert result.ready


def test_an_image_that_is_not_in_the_registry_stops_the_wait_with_make_images(
    double: KubeApiDouble, kube: KubeApi
) -> None:
    result, lines = replay(double, kube, "image-pull-failed")
    assert not result.ready and not result.timed_out
    assert result.stage == "image_pull_failed"
    assert "docker.io/vllm/vllm-openai:v0.32.0: not found" in result.reason
    assert "make images" in result.fix
    assert result.elapsed_s < 30, "ImagePullBackOff is kubelet's verdict: no waiting out the timeout"
    in_order(
        lines, ["Failed: Failed to pull image", "Back-off pulling image", "image_pull_failed: the image"]
    )


def test_a_cuda_oom_crash_loop_ends_with_the_log_and_what_to_lower(
    double: KubeApiDouble, kube: KubeApi
) -> None:
    result, lines = replay(double, kube, "t4-cuda-oom")
    assert (result.ready, result.stage, result.timed_out) == (False, "crashloop", False)
    assert "CUDA out of memory" in result.reason
    assert "vllm-llama.vllm.gpuMemoryUtilization" in result.fix
    assert any("torch.OutOfMemoryError: CUDA out of memory" in line for line in result.log_tail)
    assert result.log_tail[-1].endswith("Failed core proc(s): {'EngineCore': 1}")
    # The last log lines are printed before the cause, then the cause and the fix.
    in_order(
        lines, ["| ", "Engine core initialization failed", "crashloop: the GPU ran out of memory", "fix: "]
    )
    assert result.elapsed_s < 120, "a known cause stops the wait at the first crash"


def test_no_free_gpu_times_out_with_the_schedulers_reason(double: KubeApiDouble, kube: KubeApi) -> None:
    result, lines = replay(double, kube, "unschedulable", timeout=600, progress_s=120)
    assert (result.ready, result.stage, result.timed_out) == (False, "scheduling", True)
    assert result.elapsed_s == 600
    assert "Insufficient nvidia.com/gpu" in result.reason and result.reason.startswith(
        "vLLM was not ready after 10m00s: still scheduling"
    )
    assert "make doctor" in result.fix
    assert sum("still waiting for a node" in line for line in lines) == 4, lines  # at 2, 4, 6 and 8 minutes


def test_a_start_up_that_stops_logging_times_out_naming_the_phase(
    double: KubeApiDouble, kube: KubeApi
) -> None:
    result, lines = replay(double, kube, "t4-compile-stalls", timeout=600)
    assert result.timed_out and result.stage == "loading"
    assert result.reason == "vLLM was not ready after 10m00s: still loading (compiling (torch.compile))"
    assert "still compiling (torch.compile)" in lines[-3]
    assert any("Dynamo bytecode transform time" in line for line in result.log_tail)


def test_a_gated_model_without_access_says_the_token_has_no_access(
    double: KubeApiDouble, kube: KubeApi
) -> None:
    result, lines = replay(double, kube, "gated-model")
    assert (result.ready, result.stage) == (False, "download_failed")
    in_order(
        lines, ["downloading: 6.0 GiB to download", "download_failed: the Hugging Face token has no access"]
    )
    assert result.reason == "the Hugging Face token has no access to the gated model (401/403)"
    assert "accept the model's licence" in result.fix
    assert (
        "Error: Access denied. Model 'meta-llama/Llama-3.2-3B-Instruct' requires approval." in result.log_tail
    )


# ---------------------------------------------------------------- pieces


def test_the_stage_of_every_recorded_pod_is_chat_apis() -> None:
    """The stage names and rules are chat-api's (the packages are separate; this keeps them in step)."""
    from chat_api.vllm_pods import stage_of_pod as chat_api_stage

    pods = [recorded_pod(name) for name in recorded_pod_names() if name != "other-app"]
    pods += [pod_fixture(p.stem) for p in (HERE / "pods").glob("*.json")]
    for pod in pods:
        ours, theirs = vllm_wait.stage_of_pod(pod), chat_api_stage(pod)
        assert (ours.stage, ours.restarts) == (theirs.stage, theirs.restarts)
        assert theirs.reason in (None, ours.reason)


def test_a_rollout_follows_the_pod_furthest_along() -> None:
    old, new = recorded_pod("crashloop"), recorded_pod("downloading")
    new["metadata"]["creationTimestamp"] = "2026-11-30T09:00:00Z"
    assert vllm_wait.stage_of_pods([old, new]).stage == "downloading"
    assert vllm_wait.stage_of_pods([recorded_pod("ready"), new]).stage == "ready"
    assert vllm_wait.stage_of_pods([]).stage == "no_pod"


def test_log_lines_keep_a_carriage_return_redraws_last_state() -> None:
    text = "2026-11-30T08:00:01.000000001Z Capturing 0%|  | 0/7\rCapturing 100%|##| 7/7\n"
    assert vllm_wait.split_log(text) == [("2026-11-30T08:00:01.000000001Z", "Capturing 100%|##| 7/7")]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Error: Access denied. Model 'x/y' requires approval.", "no access to the gated model"),
        ("huggingface_hub.errors.GatedRepoError: 403 Client Error.", "no access to the gated model"),
        ("401 Client Error. Invalid credentials in Authorization header", "refused (401)"),
        ("ValueError: To serve at least one request with the model's max seq len (131072), (14.0 GiB KV "
         "cache is needed, which is larger than the available KV cache memory (5.62 GiB).",
         "cannot hold one request"),
        ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 980.00 MiB.",
         "GPU ran out of memory"),
        ("OSError: [Errno 28] No space left on device", "cache disk is full"),
        ("RuntimeError: No CUDA GPUs are available", "no usable GPU"),
    ],
)  # fmt: skip
def test_diagnose_names_the_likely_cause(line: str, expected: str) -> None:
    cause, fix = vllm_wait.diagnose("crashloop", "Error", ["some earlier line", line])
    assert expected in cause and fix


def test_an_oomkilled_container_is_host_memory_not_the_gpu() -> None:
    cause, fix = vllm_wait.diagnose("crashloop", "OOMKilled", ["INFO loading"])
    assert "OOMKilled" in cause and "resources.limits.memory" in fix


def test_secrets_in_log_lines_are_masked() -> None:
    line = "token hf_abcdefghijklmnopqrstuvwxyz0123 and Authorization: Bearer eyJhbGciOi.x.y"
    assert vllm_wait.redact(line) == "token hf_*** and Authorization: Bearer ***"


# ---------------------------------------------------------------- the Kubernetes API client


def test_the_kubeconfig_needs_a_verified_server_and_an_identity(
    tmp_path: Path, double: KubeApiDouble
) -> None:
    import yaml

    config = yaml.safe_load(double.admin_kubeconfig(tmp_path / "kubeconfig").read_text())

    def refused(change: Any, says: str) -> None:
        broken = yaml.safe_load(yaml.safe_dump(config))
        change(broken)
        path = tmp_path / "broken"
        path.write_text(yaml.safe_dump(broken))
        with pytest.raises(ValueError, match=says):
            KubeApi.from_kubeconfig(path)

    refused(lambda c: c["clusters"][0]["cluster"].update({"insecure-skip-tls-verify": True}), "insecure")
    refused(lambda c: c["clusters"][0]["cluster"].update({"server": "http://10.0.0.1:6443"}), "not an https")
    refused(lambda c: c["users"][0].update({"user": {"exec": {"command": "aws"}}}), "exec plugin")
    refused(lambda c: c["users"][0].update({"user": {}}), "no client certificate and no token")
    refused(lambda c: c.update({"current-context": "other"}), "no context named 'other'")
    with pytest.raises(ValueError, match="make kubeconfig"):
        KubeApi.from_kubeconfig(tmp_path / "missing")


def test_a_wrong_identity_is_an_error_not_a_vllm_state(tmp_path: Path, double: KubeApiDouble) -> None:
    """The chat-api service account may list pods but not read logs or events: the wait raises
    with the API's own refusal instead of reporting a stage it cannot see."""
    Replay(double, "t4-cuda-oom")
    token_only = KubeApi(double.url, _ca_context(double), token=double.token)
    try:
        with pytest.raises(KubeApiError, match='cannot list resource "events"') as error:
            wait_for_vllm(token_only, "llama", "llama", timeout=5, out=io.StringIO(), sleep=lambda s: None)
        assert error.value.status == 403
    finally:
        token_only.close()
    stranger = KubeApi(double.url, _ca_context(double), token="not-a-token")
    try:
        with pytest.raises(KubeApiError, match="answered 401"):
            stranger.list_pods("llama", "app.kubernetes.io/name=vllm-llama")
    finally:
        stranger.close()


class _Flaky:
    """The real client; its API server drops the connection on the calls named (kube-apiserver restarting)."""

    def __init__(self, kube: KubeApi, failing: set[int]) -> None:
        self.kube, self.failing, self.calls = kube, failing, 0

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.calls += 1
        if self.calls in self.failing:
            raise KubeApiError(
                "the Kubernetes API at https://10.0.1.10:6443 did not answer: Connection reset"
            )
        return self.kube.list_pods(namespace, selector)

    def pod_log(self, *args: Any, **kwargs: Any) -> str | None:
        return self.kube.pod_log(*args, **kwargs)

    def pod_events(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        return self.kube.pod_events(namespace, pod)


def test_an_api_server_that_drops_a_few_calls_is_waited_for(double: KubeApiDouble, kube: KubeApi) -> None:
    sequence = Replay(double, "cpu-tiny-llama")
    out = io.StringIO()
    flaky = _Flaky(kube, {3, 4, 5})
    result = wait_for_vllm(flaky, "llama", "llama", out=out, clock=sequence.clock, sleep=sequence.sleep)
    assert result.ready
    assert out.getvalue().count("did not answer: Connection reset; trying again") == 1
    pending = Replay(double, "unschedulable")
    down = _Flaky(kube, set(range(3, 100)))
    with pytest.raises(KubeApiError, match="Connection reset"):
        wait_for_vllm(down, "llama", "llama", out=io.StringIO(), clock=pending.clock, sleep=pending.sleep)
    assert down.calls == 3 + 12, "gives up after a minute of silence (12 polls of 5 s)"


def _ca_context(double: KubeApiDouble) -> Any:
    import ssl

    return ssl.create_default_context(cafile=str(double.account_dir / "ca.crt"))


def test_the_double_serves_logs_as_kubelet_chooses_them(double: KubeApiDouble, kube: KubeApi) -> None:
    """What the wait relies on from kubelet: no log while a container waits to start, the previous
    run's log only after a restart, the current run's otherwise."""
    double.pods = [recorded_pod("pulling")]
    double.logs = {}
    assert kube.pod_log("llama", "llama-vllm-llama-6c9f8d7b5d-x7k2p", "vllm", tail_lines=5) is None
    double.pods = [recorded_pod("loading-after-restart")]
    double.logs = {
        "containerd://" + "a" * 64: [("2026-11-30T08:14:06.000000001Z", "second run")],
        "containerd://" + "c" * 64: [("2026-11-30T08:10:00.000000001Z", "first run")],
    }
    name = "llama-vllm-llama-6c9f8d7b5d-x7k2p"
    assert kube.pod_log("llama", name, "vllm", tail_lines=5) == "2026-11-30T08:14:06.000000001Z second run\n"
    assert kube.pod_log("llama", name, "vllm", tail_lines=5, previous=True).endswith(" first run\n")
    double.pods = [recorded_pod("loading")]
    assert kube.pod_log("llama", name, "vllm", tail_lines=5, previous=True) is None


# ---------------------------------------------------------------- the chart's download script, run for real


class _HubApi(BaseHTTPRequestHandler):
    """TEST DOUBLE of the Hugging Face Hub's model API, the one call the download script's size line makes:
    `GET /api/models/<repo>/revision/<rev>?blobs=True` (huggingface_hub 2.4.0 hf_api.py, model_info with
    files_metadata), answering a model info with its siblings and their sizes."""

    files = {"config.json": 683, "model.safetensors": 1_100_000, "original/consolidated.00.pth": 9_999_999}

    def do_GET(self) -> None:
        if not self.path.startswith("/api/models/meta-llama/Llama-3.2-3B-Instruct/revision/main"):
            self.send_error(404)
            return
        import json

        body = json.dumps(
            {
                "_id": "66eb1f5c0c8d0bb1f5d0e5a2",
                "id": "meta-llama/Llama-3.2-3B-Instruct",
                "modelId": "meta-llama/Llama-3.2-3B-Instruct",
                "sha": "0cb88a4f764b7a12671c53f0838cd831a0843b95",
                "private": False,
                "gated": "manual",
                "siblings": [{"rfilename": name, "size": size} for name, size in self.files.items()],
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


HF_DOUBLE = """#!/bin/sh
# TEST DOUBLE of `hf download MODEL --revision REV --local-dir DIR [--exclude P]...` (huggingface_hub 2.4.0):
# writes the model's one big file in 4 pieces, or fails as the CLI does for a gated model.
set -eu
model=$2; dir=$6
if [ -n "${HF_DOUBLE_GATED:-}" ]; then
  echo "Error: Access denied. Model '$model' requires approval." >&2
  echo "Hint: set HF_DEBUG=1 as environment variable for full traceback." >&2
  exit 1
fi
for i in 1 2 3 4; do head -c 275000 /dev/zero >> "$dir/model.safetensors"; sleep 0.6; done
printf '{}' > "$dir/config.json"
"""


def _download_script(tmp_path: Path, gated: bool) -> subprocess.CompletedProcess[str]:
    from tests.chart import cases
    from tests.chart.test_vllm_aws_t4 import T4

    vllm_python = REPO_ROOT / ".venv-vllm" / "bin" / "python3"
    if not vllm_python.exists() or shutil.which("du") is None:
        pytest.skip("needs .venv-vllm (huggingface_hub for the size line) and coreutils")
    deployment = cases.find(cases.rendered(T4), "Deployment", "llama-vllm-llama")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"] if "value" in e}
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "hf").write_text(HF_DOUBLE)
    (bin_dir / "hf").chmod(0o755)
    # A wrapper, not a link: a venv's python finds its pyvenv.cfg from the path it was started by.
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{vllm_python}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HubApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env.update(
            WEIGHTS_DIR=str(tmp_path / "weights"),
            HOME=str(tmp_path),
            HF_HOME=str(tmp_path / "hf"),
            HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
            HF_TOKEN="hf_" + "x" * 34,
            PROGRESS_S="1",
            PATH=f"{bin_dir}:{os.environ['PATH']}",
            **({"HF_DOUBLE_GATED": "1"} if gated else {}),
        )
        return subprocess.run(
            [*init["command"], init["args"][0]],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.chart
def test_the_charts_download_script_prints_lines_the_wait_reads(tmp_path: Path) -> None:
    proc = _download_script(tmp_path, gated=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == f"downloading meta-llama/Llama-3.2-3B-Instruct@main into {tmp_path}/weights"
    # The real huggingface_hub read the size from the Hub API double; original/* is excluded.
    assert lines[1] == "download size: 1100683 bytes in 2 files"
    samples = [vllm_wait._DOWNLOAD_PROGRESS.match(line) for line in lines]
    counts = [int(m.group(1)) for m in samples if m]
    assert len(counts) >= 2 and counts == sorted(counts), lines
    assert counts[-1] >= 1_100_000 and lines[-1] == "download complete"
    # What the wait makes of them.
    progress = vllm_wait.DownloadProgress(
        "m", 1100683, [(int(m.group(2)), int(m.group(1))) for m in samples if m]
    )
    assert "of 1 MiB (100%)" in progress.line()
    # A second start finds the marker and skips.
    again = _download_script(tmp_path, gated=False)
    assert again.stdout.strip().endswith("already in " + f"{tmp_path}/weights: skipping download"), (
        again.stdout
    )


@pytest.mark.chart
def test_the_charts_download_script_fails_and_its_error_is_diagnosed(tmp_path: Path) -> None:
    proc = _download_script(tmp_path, gated=True)
    assert proc.returncode == 1
    assert not (tmp_path / "weights" / ".download-complete").exists()
    cause, _ = vllm_wait.diagnose("download_failed", "Error", (proc.stdout + proc.stderr).splitlines())
    assert cause == "the Hugging Face token has no access to the gated model (401/403)"
    assert "hf_" not in proc.stdout + proc.stderr


@pytest.mark.chart
def test_the_charts_download_script_passes_shellcheck(tmp_path: Path) -> None:
    from tests.chart import cases
    from tests.chart.test_vllm_aws_t4 import T4

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    deployment = cases.find(cases.rendered(T4), "Deployment", "llama-vllm-llama")
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    script = tmp_path / "download.sh"
    script.write_text(init["args"][0])
    # SC2086: $cli and $EXCLUDE_ARGS are split on purpose (one word per option).
    result = subprocess.run(
        ["shellcheck", "-s", "sh", "-e", "SC2086", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.chart
def test_the_sequences_pods_and_events_are_valid_kubernetes_1_29_objects(double: KubeApiDouble) -> None:
    from tests.chart import kube_schemas
    from tests.fixtures.vllm_startup.replay import sequence_names

    for path in (HERE / "pods").glob("*.json"):
        assert kube_schemas.validate_manifest(pod_fixture(path.stem)) == [], path.name
    for name in sequence_names():
        sequence = Replay(double, name)
        while sequence.actions:
            sequence.sleep(min(60.0, sequence.actions[0].at - sequence.now))
        for event in double.events:
            assert kube_schemas.validate_manifest({"kind": "Event", "apiVersion": "v1", **event}) == [], name
        for stamp, _ in (entry for lines in double.logs.values() for entry in lines):
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", stamp), (name, stamp)


def test_every_log_fixture_says_where_it_comes_from() -> None:
    for path in HERE.glob("*.log"):
        head = path.read_text().splitlines()[0]
        assert head.startswith("# "), f"{path.name}: first line says whether it is recorded or paraphrased"
        assert log_lines(path.name), path.name
    assert sys.version_info >= (3, 11)
