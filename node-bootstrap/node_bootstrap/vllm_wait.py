"""Wait for the platform's vLLM pod to be ready, and say what it is doing meanwhile.

The interface `make platform` calls (everything else here is detail):

    from node_bootstrap.vllm_wait import KubeApi, wait_for_vllm

    kube = KubeApi.from_kubeconfig(Path("kubeconfig"))   # the file `make cluster` writes
    result = wait_for_vllm(kube, namespace="llama", release="llama", timeout=1800, out=sys.stderr)
    kube.close()
    if not result.ready:
        sys.exit(f"{result.reason}\n{result.fix}")        # one-line cause, then what to do

`wait_for_vllm(kube, namespace, release, *, timeout, out, poll_s=5, progress_s=30, clock, sleep)`
prints one line per stage change, one line per milestone vLLM logs (weights loaded, KV cache sized,
CUDA graphs captured...) and a progress line every `progress_s` while a stage lasts (the download
with bytes, share and rate). It returns a `WaitResult`: `ready`, the last `stage`, `elapsed_s`,
and when not ready a one-line `reason`, the `fix` and the `log_tail` it read (secrets masked).
`timed_out` says the deadline passed. It never raises for a pod that fails: a Kubernetes API that
cannot be read at all raises `KubeApiError` (an expired or wrong kubeconfig is not a vLLM state).
`clock` (monotonic seconds) and `sleep` are injectable so tests replay a start-up without waiting.

`kube` is anything with the three reads of `KubeReader` (pods by label selector, a container's log,
a pod's events); `KubeApi` is the real one: plain HTTPS to the API server with the kubeconfig's CA
and client certificate (kubeadm's admin.conf) or bearer token, through httpx. The `kubernetes`
package would add a large dependency for three GETs.

Stages are chat-api's (services/chat-api/chat_api/vllm_pods.py, kept in step; the packages are
separate, tests/.../test_vllm_wait.py checks both classify every recorded pod alike): `no_pod`,
`scheduling`, `pulling`, `downloading` (the chart's `download-weights` init container), `initializing`,
`loading`, `ready`, and the failures `crashloop`, `download_failed`, `image_pull_failed`,
`config_error`, `failed`. Inside `loading` the vLLM container's own log tells the phase: starting,
loading weights, compiling (torch.compile), sizing the KV cache, capturing CUDA graphs, starting the
API server. The format strings matched are vLLM 0.32.0's (file named next to each pattern).
"""

from __future__ import annotations

import base64
import os
import re
import ssl
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import httpx
import yaml

__all__ = ["KubeApi", "KubeApiError", "KubeReader", "WaitResult", "wait_for_vllm"]

DOWNLOAD_CONTAINER = "download-weights"  # charts/platform/charts/vllm-llama/templates/deployment.yaml
VLLM_CONTAINER = "vllm"
VALUES_PREFIX = "vllm-llama."  # the subchart's key in the umbrella's values

READ_LINES = 1000
API_PATIENCE_S = 60
FAILED_STAGES = frozenset({"crashloop", "download_failed", "image_pull_failed", "config_error", "failed"})
# Which pod to follow when there are several (a rolling update): the furthest along, then the newest.
_RANK = {
    "ready": 0,
    "loading": 1,
    "downloading": 2,
    "initializing": 3,
    "pulling": 3,
    "scheduling": 4,
    "crashloop": 5,
    "download_failed": 5,
    "image_pull_failed": 5,
    "config_error": 5,
    "failed": 5,
    "terminating": 6,
}
IMAGE_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
_BEARER = re.compile(r"(?i)(authorization:\s*bearer\s+|token=)\S+")


# ---------------------------------------------------------------- the Kubernetes API


class KubeApiError(RuntimeError):
    """The API answered with an error (its status code and `Status.message`) or could not be reached."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeReader(Protocol):
    """What the wait reads; `KubeApi` is the real one."""

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]: ...

    def pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int, previous: bool = False
    ) -> str | None:
        """The log with kubelet's timestamps, or None while the container has none to give."""

    def pod_events(self, namespace: str, pod: str) -> list[dict[str, Any]]: ...


class KubeApi:
    """The three reads over HTTPS, authenticated as the kubeconfig's current context says."""

    def __init__(
        self, server: str, verify: ssl.SSLContext, token: str | None = None, timeout: float = 15
    ) -> None:
        headers = {"accept": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self.server = server
        self._client = httpx.Client(
            base_url=server, verify=verify, headers=headers, timeout=timeout, trust_env=False
        )

    @classmethod
    def from_kubeconfig(cls, path: Path, context: str | None = None, timeout: float = 15) -> KubeApi:
        """From a kubeconfig file; ValueError naming the file and the field for one it cannot use."""
        try:
            config = yaml.safe_load(path.read_text())
        except OSError as exc:
            raise ValueError(
                f"cannot read the kubeconfig {path}: {exc.strerror}; run `make kubeconfig`"
            ) from None
        except yaml.YAMLError as exc:
            raise ValueError(
                f"{path} is not YAML ({exc.__class__.__name__}); run `make kubeconfig`"
            ) from None
        if not isinstance(config, dict):
            raise ValueError(f"{path} is not a kubeconfig; run `make kubeconfig`")

        def named(kind: str, name: object) -> dict[str, Any]:
            for entry in config.get(kind) or []:
                if isinstance(entry, dict) and entry.get("name") == name:
                    return entry.get(kind[:-1]) or {}
            raise ValueError(f"{path}: no {kind[:-1]} named {name!r} (see `{kind}:`)")

        context_name = context or config.get("current-context")
        if not context_name:
            raise ValueError(f"{path} has no current-context; pass a context")
        ctx = named("contexts", context_name)
        cluster = named("clusters", ctx.get("cluster"))
        user = named("users", ctx.get("user"))
        server = str(cluster.get("server") or "")
        if not server.startswith("https://"):
            raise ValueError(f"{path}: cluster server {server!r} is not an https:// URL")
        if cluster.get("insecure-skip-tls-verify"):
            raise ValueError(
                f"{path}: insecure-skip-tls-verify is set; give the cluster's certificate-authority"
            )
        for plugin in ("exec", "auth-provider"):
            if plugin in user:
                raise ValueError(
                    f"{path}: user {ctx.get('user')!r} uses an {plugin} plugin, which this reader lacks"
                )

        verify = ssl.create_default_context()
        if cluster.get("certificate-authority-data"):
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            verify = ssl.create_default_context(cadata=ca)
        elif cluster.get("certificate-authority"):
            verify = ssl.create_default_context(cafile=_relative(path, cluster["certificate-authority"]))

        cert = user.get("client-certificate-data")
        key = user.get("client-key-data")
        if cert and key:
            _load_client_cert(verify, base64.b64decode(cert), base64.b64decode(key))
        elif user.get("client-certificate") and user.get("client-key"):
            verify.load_cert_chain(
                _relative(path, user["client-certificate"]), _relative(path, user["client-key"])
            )
        token = user.get("token")
        if not token and user.get("tokenFile"):
            token = Path(_relative(path, user["tokenFile"])).read_text().strip()
        if not (cert and key) and not user.get("client-certificate") and not token:
            raise ValueError(f"{path}: user {ctx.get('user')!r} has no client certificate and no token")
        return cls(server, verify, token=token, timeout=timeout)

    def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise KubeApiError(f"the Kubernetes API at {self.server} did not answer: {exc}") from None
        return response

    def _json(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._get(path, params)
        if response.status_code != 200:
            raise KubeApiError(
                f"GET {path} answered {response.status_code}: {_status_message(response)}",
                response.status_code,
            )
        body = response.json()
        if not isinstance(body, dict):
            raise KubeApiError(f"GET {path} answered something that is not a Kubernetes object")
        return body

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        items = self._json(f"/api/v1/namespaces/{namespace}/pods", {"labelSelector": selector}).get("items")
        return [p for p in items or [] if isinstance(p, dict)]

    def pod_log(
        self, namespace: str, pod: str, container: str, *, tail_lines: int, previous: bool = False
    ) -> str | None:
        params = {"container": container, "timestamps": "true", "tailLines": str(tail_lines)}
        if previous:
            params["previous"] = "true"
        response = self._get(f"/api/v1/namespaces/{namespace}/pods/{pod}/log", params)
        if response.status_code == 400:
            # "container ... is waiting to start", "previous terminated container ... not found": no log yet.
            return None
        if response.status_code != 200:
            raise KubeApiError(
                f"reading the log of {pod}/{container} answered {response.status_code}: "
                f"{_status_message(response)}",
                response.status_code,
            )
        return response.text

    def pod_events(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        selector = f"involvedObject.kind=Pod,involvedObject.name={pod}"
        items = self._json(f"/api/v1/namespaces/{namespace}/events", {"fieldSelector": selector}).get("items")
        return [e for e in items or [] if isinstance(e, dict)]

    def close(self) -> None:
        self._client.close()


def _relative(kubeconfig: Path, name: str) -> str:
    """kubectl resolves relative file names in a kubeconfig against the file's own folder."""
    return str(name if os.path.isabs(name) else kubeconfig.parent / name)


def _load_client_cert(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads a key only from a file: a private 0700 folder, removed at once."""
    with tempfile.TemporaryDirectory(prefix="kube-client-") as folder:
        cert_file, key_file = Path(folder) / "client.crt", Path(folder) / "client.key"
        cert_file.write_bytes(cert)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        context.load_cert_chain(cert_file, key_file)


def _status_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


# ---------------------------------------------------------------- the pod's stage (chat-api's vllm_pods.py)


@dataclass(frozen=True)
class PodStage:
    stage: str
    reason: str | None = None  # the waiting or terminated reason Kubernetes gives, when there is one
    restarts: int = 0
    created: str = ""
    pod: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        return str((self.pod.get("metadata") or {}).get("name") or "")


def _last_exit(status: dict[str, Any]) -> str | None:
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    return terminated.get("reason")


def stage_of_pod(pod: dict[str, Any]) -> PodStage:
    """The stage of one vLLM pod (the rules of chat_api.vllm_pods.stage_of_pod, with the raw reason)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    created = str(meta.get("creationTimestamp") or "")

    def at(stage: str, reason: object = None, restarts: int = 0) -> PodStage:
        return PodStage(stage, reason if isinstance(reason, str) else None, restarts, created, pod)

    if meta.get("deletionTimestamp"):
        return at("terminating")
    if status.get("phase") in ("Failed", "Succeeded"):
        return at("failed", status.get("reason"))
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}
    if (conditions.get("Ready") or {}).get("status") == "True":
        return at("ready")
    scheduled = conditions.get("PodScheduled") or {}
    if scheduled.get("status") != "True":
        return at("scheduling", scheduled.get("reason"))

    images_run: set[str] = set()
    init_statuses = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
    for container in spec.get("initContainers") or []:
        name = container.get("name")
        state = init_statuses.get(name) or {}
        restarts = int(state.get("restartCount") or 0)
        current = state.get("state") or {}
        failed = "download_failed" if name == DOWNLOAD_CONTAINER else "config_error"
        if "terminated" in current and current["terminated"].get("exitCode") == 0:
            images_run.add(container.get("image", ""))
            continue
        if "running" in current:
            return at("downloading" if name == DOWNLOAD_CONTAINER else "initializing", None, restarts)
        if "terminated" in current:
            return at(failed, current["terminated"].get("reason"), restarts)
        reason = (current.get("waiting") or {}).get("reason")
        if reason in IMAGE_PULL_FAILURES:
            return at("image_pull_failed", reason, restarts)
        if reason in CONFIG_FAILURES:
            return at("config_error", reason, restarts)
        if reason == "CrashLoopBackOff":
            return at(failed, _last_exit(state) or reason, restarts)
        return at("pulling" if container.get("image", "") not in images_run else "initializing")

    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    containers = spec.get("containers") or []
    main: dict[str, Any] = next(
        (c for c in containers if c.get("name") == VLLM_CONTAINER), containers[0] if containers else {}
    )
    state = statuses.get(main.get("name")) or {}
    restarts = int(state.get("restartCount") or 0)
    current = state.get("state") or {}
    if "running" in current:
        return at("loading", _last_exit(state) if restarts else None, restarts)
    if "terminated" in current:
        return at("crashloop", current["terminated"].get("reason"), restarts)
    reason = (current.get("waiting") or {}).get("reason")
    if reason == "CrashLoopBackOff":
        return at("crashloop", _last_exit(state) or reason, restarts)
    if reason in IMAGE_PULL_FAILURES:
        return at("image_pull_failed", reason, restarts)
    if reason in CONFIG_FAILURES:
        return at("config_error", reason, restarts)
    return at("pulling" if main.get("image", "") not in images_run else "loading")


def stage_of_pods(pods: list[dict[str, Any]]) -> PodStage:
    stages = [stage_of_pod(pod) for pod in pods]
    if not stages:
        return PodStage("no_pod")
    newest_first = sorted(stages, key=lambda s: s.created, reverse=True)
    return min(newest_first, key=lambda s: _RANK[s.stage])


# ---------------------------------------------------------------- what the logs say

# kubelet's `timestamps=true` prefix: RFC 3339 with nanoseconds, then one space.
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (.*)$")


def split_log(text: str) -> list[tuple[str, str]]:
    """(timestamp, line) for each line of a `timestamps=true` log; carriage-return redraws keep their last."""
    lines = []
    for raw in text.split("\n"):  # not splitlines(): a bare "\r" is a redraw inside one log line
        if not raw:
            continue
        match = _TIMESTAMP.match(raw)
        stamp, line = (match.group(1), match.group(2)) if match else ("", raw)
        lines.append((stamp, line.rsplit("\r", 1)[-1].rstrip()))
    return lines


def _gib(num_bytes: float) -> str:
    return f"{num_bytes / 2**30:.1f} GiB" if num_bytes >= 2**30 / 10 else f"{num_bytes / 2**20:.0f} MiB"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


# The download script's own lines (the chart's `download-weights` container; a stable format for this parser).
_DOWNLOAD_START = re.compile(r"^downloading (\S+) into (\S+)")
_DOWNLOAD_SKIP = re.compile(r"^weights of (\S+) already in (\S+): skipping download")
_DOWNLOAD_SIZE = re.compile(r"^download size: (\d+) bytes")
_DOWNLOAD_PROGRESS = re.compile(r"^download progress: (\d+) bytes after (\d+) s")
_DOWNLOAD_DONE = re.compile(r"^download complete")


@dataclass
class DownloadProgress:
    model: str = ""
    total: int | None = None
    samples: list[tuple[int, int]] = field(default_factory=list)  # (seconds since start, bytes)

    def line(self) -> str:
        if not self.samples:
            return f"downloading {self.model}".rstrip()
        seconds, done = self.samples[-1]
        text = _gib(done)
        if self.total:
            text += f" of {_gib(self.total)} ({min(100, 100 * done // self.total)}%)"
        earlier = [s for s in self.samples if s[0] < seconds]
        if earlier:
            window = [s for s in earlier if seconds - s[0] <= 60] or earlier[-1:]
            t0, b0 = window[0]
            rate = (done - b0) / (seconds - t0)
            text += f", {rate / 2**20:.1f} MiB/s"
            if self.total and rate > 0 and done < self.total:
                text += f", about {_duration((self.total - done) / rate)} left"
        return text


# vLLM 0.32.0's lines that mark a loading phase or a figure worth showing: (pattern, phase, detail).
# The detail is a format over the match's groups; None keeps the phase's line only.
_VLLM_MILESTONES: list[tuple[re.Pattern[str], str, str | None]] = [
    # vllm/entrypoints/serve/utils/api_utils.py, log_version_and_model: a logo whose second line ends in
    # "version 0.32.0", or with VLLM_DISABLE_LOG_LOGO "vLLM server version %s, serving model %s"
    (re.compile(r"█\s+version (\S+)$"), "starting", "vLLM {0}"),
    (re.compile(r"vLLM server version (\S+?),? serving model"), "starting", "vLLM {0}"),
    # vllm/v1/worker/gpu_model_runner.py, cpu_model_runner.py: "Starting to load model %s..."
    (re.compile(r"Starting to load model (\S+?)\.\.\."), "loading weights", "{0}"),
    # vllm/model_executor/model_loader/default_loader.py: "Loading weights took %.2f seconds"
    (re.compile(r"Loading weights took ([\d.]+) seconds"), "loading weights", "read in {0} s"),
    # vllm/v1/worker/gpu_model_runner.py: "Model loading took %s GiB memory and %.6f seconds"
    (
        re.compile(r"Model loading took ([\d.]+) GiB memory and (\d+(?:\.\d\d?)?)\d* seconds"),
        "loading weights",
        "weights loaded: {0} GiB in {1} s",
    ),
    # vllm/compilation/backends.py: "Dynamo bytecode transform time: %.2f s", "Compiling a graph ...
    # takes %.2f s", "Directly load the compiled graph(s) ... from the cache, took %.3f s"
    # vllm/v1/worker/cpu_model_runner.py (the CPU build compiles while warming up): "Warming up model for
    # the compilation...", "Warming up done."; vllm/compilation/decorators.py: "saved AOT compiled function"
    (re.compile(r"Warming up model for the compilation"), "compiling (torch.compile)", None),
    (re.compile(r"saved AOT compiled function"), "compiling (torch.compile)", "saved to the compile cache"),
    (re.compile(r"Warming up done\."), "compiling (torch.compile)", "done"),
    # vllm/compilation/monitor.py: "Starting torch.compile", "torch.compile took %.2f s in total"
    (re.compile(r"Starting torch\.compile"), "compiling (torch.compile)", None),
    (re.compile(r"Dynamo bytecode transform time: ([\d.]+) s"), "compiling (torch.compile)", None),
    (
        re.compile(r"Compiling a graph for compile range .* takes ([\d.]+) s"),
        "compiling (torch.compile)",
        None,
    ),
    (re.compile(r"Directly load the compiled graph"), "compiling (torch.compile)", "from the compile cache"),
    (re.compile(r"torch\.compile took ([\d.]+) s in total"), "compiling (torch.compile)", "took {0} s"),
    # vllm/utils/mem_utils.py, vllm/v1/worker/gpu_worker.py: "Available KV cache memory: %s GiB"
    (re.compile(r"Memory profiling takes ([\d.]+) seconds"), "sizing the KV cache", None),
    # vllm/v1/worker/cpu_worker.py: "Explicitly set (%s/%s) GiB for KV cache on node %d."
    (
        re.compile(r"Explicitly set \(([\d.]+)/[\d.]+\) GiB for KV cache"),
        "sizing the KV cache",
        "{0} GiB for the KV cache",
    ),
    (
        re.compile(r"Available KV cache memory: ([\d.]+) GiB"),
        "sizing the KV cache",
        "{0} GiB for the KV cache",
    ),
    # vllm/v1/core/kv_cache_utils.py: "%s KV cache size: %s tokens, Maximum concurrency for %s tokens
    # per request: %.2fx"
    (
        re.compile(
            r"(\w+) KV cache size: ([\d,]+) tokens, "
            r"Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x"
        ),
        "sizing the KV cache",
        "{0} KV cache: {1} tokens, {3}x concurrency at {2} tokens per request",
    ),
    # vllm/v1/worker/gpu_model_runner.py: tqdm "Capturing CUDA graphs (...)", then "Graph capturing
    # finished in %.0f secs, took %.2f GiB"
    (re.compile(r"Capturing CUDA graphs"), "capturing CUDA graphs", None),
    (
        re.compile(r"Graph capturing finished in (\d+) secs, took ([\d.]+) GiB"),
        "capturing CUDA graphs",
        "captured in {0} s ({1} GiB)",
    ),
    # vllm/v1/engine/core.py: "init engine (profile, create kv cache, warmup model) took %.2f s"
    (
        re.compile(r"init engine \(profile, create kv cache, warmup model\) took ([\d.]+) s"),
        "starting the API server",
        "engine ready in {0} s",
    ),
    # vllm/entrypoints/openai/api_server.py / launcher.py
    (re.compile(r"Starting vLLM (?:API )?server on (\S+)"), "starting the API server", "listening on {0}"),
    (
        re.compile(r"Application startup complete"),
        "starting the API server",
        "waiting for the readiness probe",
    ),
]


def _milestone(line: str) -> tuple[str, str | None] | None:
    for pattern, phase, detail in _VLLM_MILESTONES:
        match = pattern.search(line)
        if match:
            return phase, detail.format(*match.groups()) if detail else None
    return None


# ---------------------------------------------------------------- why it failed, in one line

_CAUSES: list[tuple[re.Pattern[str], str, str]] = [
    (
        # vllm/v1/core/kv_cache_utils.py, _check_enough_kv_cache_memory and the auto-fit
        re.compile(
            r"larger than the available KV cache memory|No available memory for the cache blocks"
            r"|Cannot auto-fit max_model_len"
        ),
        "the KV cache that fits in the GPU cannot hold one request of maxModelLen tokens",
        f"lower {VALUES_PREFIX}vllm.maxModelLen (vLLM's log above estimates the longest that fits), or raise "
        f"{VALUES_PREFIX}vllm.gpuMemoryUtilization, then run again",
    ),
    (
        # torch's OutOfMemoryError; vLLM's own wording when loading or warming up
        re.compile(r"CUDA out of memory|OutOfMemoryError|not enough GPU memory"),
        "the GPU ran out of memory (CUDA out of memory)",
        f"lower {VALUES_PREFIX}vllm.gpuMemoryUtilization (room for activations and CUDA graphs), or "
        f"{VALUES_PREFIX}vllm.maxNumSeqs or {VALUES_PREFIX}vllm.maxModelLen; `nvidia-smi` on the node shows "
        "whether another process holds GPU memory",
    ),
    (
        re.compile(
            r"Cannot access gated repo|GatedRepoError|requires approval|Access to model .* is restricted"
        ),
        "the Hugging Face token has no access to the gated model (401/403)",
        "accept the model's licence on huggingface.co with the token's account (or use a token of an "
        "account that has), then run again",
    ),
    (
        re.compile(r"Invalid credentials in Authorization header|401 Client Error|Invalid user token"),
        "the Hugging Face token was refused (401): it is wrong or revoked",
        "create a read token at https://huggingface.co/settings/tokens, put it in the token file, run again",
    ),
    (
        re.compile(r"Repository Not Found|RepositoryNotFoundError|Revision Not Found|RevisionNotFoundError"),
        "the model or revision was not found on the Hugging Face Hub (or the token may not see it)",
        f"check {VALUES_PREFIX}model.name and {VALUES_PREFIX}model.revision",
    ),
    (
        re.compile(r"No space left on device"),
        "the model cache disk is full",
        "free the node's /mnt/model-cache (old revisions) or use an instance with a larger instance store",
    ),
    (
        re.compile(
            r"No CUDA GPUs are available|Found no NVIDIA driver|CUDA driver version is insufficient"
            r"|Failed to infer device type"
        ),
        "vLLM sees no usable GPU in its container",
        "run `make doctor`: the nvidia RuntimeClass, the device plugin, the driver (>= 580 for this image)",
    ),
    (
        re.compile(r"Bfloat16 is only supported on GPUs with compute capability"),
        "the GPU cannot run bfloat16 (a T4 is compute capability 7.5)",
        f"set {VALUES_PREFIX}vllm.dtype to half (values/aws-t4.yaml does)",
    ),
    (
        re.compile(r"unrecognized arguments|error: argument"),
        "vLLM refused its command-line arguments",
        f"check {VALUES_PREFIX}vllm.extraArgs against `vllm serve --help` of the image's release",
    ),
    (
        re.compile(
            r"(?:Temporary failure in name resolution|Connection refused|ConnectTimeout|Max retries exceeded)"
        ),
        "the download could not reach huggingface.co",
        "check the node's egress (NAT, security group, NetworkPolicy) and try again",
    ),
]


def diagnose(stage: str, reason: str | None, lines: list[str], message: str = "") -> tuple[str, str]:
    """A one-line likely cause and the fix, from the stage, Kubernetes' reason and the last log lines."""
    text = "\n".join(lines) + "\n" + message
    for pattern, cause, fix in _CAUSES:
        if pattern.search(text):
            return cause, fix
    if stage == "image_pull_failed":
        if re.search(r"not found|manifest unknown|unauthorized|denied|403|401", message, re.I):
            return (
                f"the image cannot be pulled ({reason}): {message or 'see the pod events'}",
                "run `make images` (it pushes the images to the cluster's registry), or fix the image values",
            )
        return (
            f"the image cannot be pulled ({reason}): {message or 'see the pod events'}",
            "run `make images`",
        )
    if stage == "config_error":
        return (
            f"the container cannot be created ({reason}): {message or 'see the pod events'}",
            "a Secret or ConfigMap the pod names is missing: run `make platform` again (it makes the Secret)",
        )
    if reason == "OOMKilled":
        return (
            "the container ran out of memory (OOMKilled: its memory limit, not the GPU's)",
            f"raise {VALUES_PREFIX}resources.limits.memory or lower {VALUES_PREFIX}vllm.maxNumSeqs",
        )
    if stage == "scheduling":
        return (
            f"no node can take the vLLM pod: {message or reason or 'see the pod events'}",
            "`make doctor` shows whether the GPU node is Ready and offers nvidia.com/gpu (its device plugin)",
        )
    last = next((line for line in reversed(lines) if line.strip()), "")
    return (
        f"{stage} ({reason or 'no reason given'})" + (f": {last}" if last else ""),
        "read the log above; `kubectl logs` of the pod has all of it",
    )


def redact(line: str) -> str:
    return _BEARER.sub(lambda m: m.group(1) + "***", _HF_TOKEN.sub("hf_***", line))


# ---------------------------------------------------------------- the wait


@dataclass(frozen=True)
class WaitResult:
    ready: bool
    stage: str  # the last stage seen (chat-api's names)
    elapsed_s: float
    reason: str = ""  # when not ready: the cause in one line
    fix: str = ""  # when not ready: what to do
    log_tail: tuple[str, ...] = ()  # the last log lines read, secrets masked
    timed_out: bool = False
    pod: str = ""


@dataclass
class _LogCursor:
    """Lines of one container already seen (kubelet's timestamps are nanoseconds: (stamp, line) is unique)."""

    container_id: str = ""
    last: str = ""
    at_last: set[str] = field(default_factory=set)

    def new(self, lines: list[tuple[str, str]]) -> list[str]:
        fresh = []
        for stamp, line in lines:
            if stamp < self.last or (stamp == self.last and line in self.at_last):
                continue
            if stamp != self.last:
                self.last, self.at_last = stamp, set()
            self.at_last.add(line)
            fresh.append(line)
        return fresh


class _Waiter:
    def __init__(
        self,
        kube: KubeReader,
        namespace: str,
        release: str,
        out: TextIO,
        clock: Callable[[], float],
        tail_lines: int,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.selector = f"app.kubernetes.io/name=vllm-llama,app.kubernetes.io/instance={release}"
        self.out = out
        self.clock = clock
        self.start = clock()
        self.tail_lines = tail_lines
        self.stage = ""
        self.detail = ""
        self.phase = ""
        self.pod = ""
        self.cursors: dict[tuple[str, str], _LogCursor] = {}
        self.events_seen: set[str] = set()
        self.download = DownloadProgress()
        self.last_lines: list[str] = []
        self.event_message = ""
        self.pull_error = ""  # kubelet's "Failed to pull image ...: <the registry's answer>"
        self.pulling: tuple[str, float] | None = None  # the image kubelet pulls, since when
        self.last_said = self.start

    # -- output
    def say(self, stage: str, text: str) -> None:
        self.last_said = self.clock()
        print(
            f"[{_duration(self.clock() - self.start):>6}] {stage}: {redact(text)}", file=self.out, flush=True
        )

    # -- reads
    def read_log(self, pod: str, container: str, status: dict[str, Any] | None) -> list[str]:
        """New lines of the container's current run (a restart starts a new cursor)."""
        container_id = str((status or {}).get("containerID") or "")
        cursor = self.cursors.get((pod, container))
        if cursor is None or cursor.container_id != container_id:
            cursor = self.cursors[(pod, container)] = _LogCursor(container_id)
        # Enough lines that a chatty 5 s (vLLM prints its whole config at start) loses none.
        text = self.kube.pod_log(self.namespace, pod, container, tail_lines=READ_LINES)
        if text is None:
            return []
        fresh = cursor.new(split_log(text))
        self.last_lines = [*self.last_lines, *fresh][-self.tail_lines :]
        return fresh

    def previous_log(self, pod: str, container: str) -> list[str]:
        text = self.kube.pod_log(self.namespace, pod, container, tail_lines=self.tail_lines, previous=True)
        if text is None:  # not restarted yet: the terminated run is the current one
            text = self.kube.pod_log(self.namespace, pod, container, tail_lines=self.tail_lines) or ""
        return [line for _, line in split_log(text)]

    def new_events(self, pod: str) -> list[dict[str, Any]]:
        events = self.kube.pod_events(self.namespace, pod)
        events.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
        fresh = []
        for event in events:
            meta = event.get("metadata") or {}
            key = f"{meta.get('uid') or meta.get('name')}/{event.get('count', 1)}"
            if key not in self.events_seen:
                self.events_seen.add(key)
                fresh.append(event)
        return fresh

    # -- one poll
    def poll(self) -> PodStage:
        current = stage_of_pods(self.kube.list_pods(self.namespace, self.selector))
        if current.name and current.name != self.pod:
            if self.pod:
                self.say(current.stage, f"following the newer pod {current.name}")
            self.pod = current.name
        changed = current.stage != self.stage
        if changed and self.stage == "downloading" and current.pod:
            self._download_lines(current)  # its last lines ("download complete") if the poll missed them
        self.stage = current.stage
        getattr(self, f"_on_{current.stage}", self._on_other)(current, changed)
        return current

    def _container_status(self, pod: dict[str, Any], name: str, init: bool) -> dict[str, Any]:
        key = "initContainerStatuses" if init else "containerStatuses"
        statuses = (pod.get("status") or {}).get(key) or []
        return next((s for s in statuses if s.get("name") == name), {})

    def _pod_events(self, current: PodStage) -> None:
        """kubelet's and the scheduler's words on the pod (pulling, pulled with time and size, back-off)."""
        for event in self.new_events(current.name):
            reason, message = event.get("reason", ""), str(event.get("message", ""))
            if reason in ("Pulling", "Pulled", "Failed", "BackOff", "FailedMount", "FailedCreatePodSandBox"):
                if message.startswith("Failed to pull image"):
                    self.pull_error = message
                if reason == "Pulling" and (image := re.search(r'"([^"]+)"', message)):
                    self.pulling = (image.group(1), self.clock())
                if reason.startswith("Failed") and not message.startswith("Error: "):
                    self.event_message = message
                self.say(self.stage, _event_line(reason, message))

    def _on_no_pod(self, current: PodStage, changed: bool) -> None:
        if changed:
            self.say("no_pod", f"no vLLM pod yet ({self.selector} in {self.namespace})")

    def _on_scheduling(self, current: PodStage, changed: bool) -> None:
        conditions = (current.pod.get("status") or {}).get("conditions") or []
        scheduled = next((c for c in conditions if c.get("type") == "PodScheduled"), {})
        message = str(scheduled.get("message") or "")
        if changed or message != self.detail:
            self.detail = message
            self.event_message = message
            self.say("scheduling", f"waiting for a node: {message or current.reason or 'not scheduled yet'}")

    def _on_pulling(self, current: PodStage, changed: bool) -> None:
        if changed:
            self.say(
                "pulling",
                f"pod {current.name} on {(current.pod.get('spec') or {}).get('nodeName', '?')}: "
                "pulling the image",
            )
        self._pod_events(current)

    def _on_downloading(self, current: PodStage, changed: bool) -> None:
        self._pod_events(current)
        self._download_lines(current)
        if changed and not self.download.model:
            self.say("downloading", "the download-weights init container is running")

    def _download_lines(self, current: PodStage) -> None:
        status = self._container_status(current.pod, DOWNLOAD_CONTAINER, init=True)
        for line in self.read_log(current.name, DOWNLOAD_CONTAINER, status):
            if match := _DOWNLOAD_START.match(line):
                self.download = DownloadProgress(model=match.group(1))
                self.say("downloading", f"{match.group(1)} into {match.group(2)}")
            elif match := _DOWNLOAD_SIZE.match(line):
                self.download.total = int(match.group(1))
                self.say("downloading", f"{_gib(self.download.total)} to download")
            elif match := _DOWNLOAD_PROGRESS.match(line):
                self.download.samples.append((int(match.group(2)), int(match.group(1))))
            elif match := _DOWNLOAD_SKIP.match(line):
                self.download = DownloadProgress(model=match.group(1))
                self.say("downloading", f"{match.group(1)} already in the cache: no download")
            elif _DOWNLOAD_DONE.match(line):
                self.say("downloading", "download complete")

    def _on_loading(self, current: PodStage, changed: bool) -> None:
        if changed:
            restarts = (
                f" (after {current.restarts} restarts, last: {current.reason})" if current.restarts else ""
            )
            self.say("loading", f"vLLM is starting in pod {current.name}{restarts}")
            self.phase = ""
        self._pod_events(current)
        status = self._container_status(current.pod, VLLM_CONTAINER, init=False)
        for line in self.read_log(current.name, VLLM_CONTAINER, status):
            found = _milestone(line)
            if found is None:
                continue
            phase, detail = found
            if phase != self.phase:
                self.phase = phase
                self.say("loading", phase + (f": {detail}" if detail else ""))
            elif detail:
                self.say("loading", f"{phase}: {detail}")

    def _on_ready(self, current: PodStage, changed: bool) -> None:
        pass  # wait_for_vllm says it, with the time it took

    def _on_other(self, current: PodStage, changed: bool) -> None:
        if changed:
            self.say(
                current.stage, f"pod {current.name}" + (f" ({current.reason})" if current.reason else "")
            )

    # -- periodic
    def progress(self, current: PodStage) -> None:
        if current.stage == "downloading" and self.download.samples:
            self.say("downloading", self.download.line())
        elif current.stage == "loading":
            self.say("loading", f"still {self.phase or 'starting'}")
        elif current.stage == "scheduling":
            self.say("scheduling", f"still waiting for a node: {self.detail or current.reason or '?'}")
        else:
            pulling = self.pulling if current.stage == "pulling" else None
            if pulling:
                self.say(
                    "pulling", f"still pulling {pulling[0]} ({_duration(self.clock() - pulling[1])} so far)"
                )
            else:
                self.say(current.stage, "still waiting")

    # -- a failure worth stopping for
    def failure(self, current: PodStage) -> tuple[str, str, list[str]] | None:
        stage = current.stage
        if stage not in FAILED_STAGES:
            return None
        if stage == "image_pull_failed":
            self._pod_events(current)
            permanent = current.reason in ("InvalidImageName", "ErrImageNeverPull", "ImagePullBackOff")
            if not permanent:
                return None  # ErrImagePull: kubelet tries again; ImagePullBackOff is its verdict
            cause, fix = diagnose(stage, current.reason, [], self.pull_error or _waiting_message(current))
            return cause, fix, []
        if stage == "config_error":
            self._pod_events(current)
            cause, fix = diagnose(stage, current.reason, [], self.event_message or _waiting_message(current))
            return cause, fix, []
        if stage == "failed":
            cause, fix = diagnose(
                stage, current.reason, [], str((current.pod.get("status") or {}).get("message", ""))
            )
            return cause, fix, []
        container = DOWNLOAD_CONTAINER if stage == "download_failed" else VLLM_CONTAINER
        lines = [redact(line) for line in self.previous_log(current.name, container)]
        cause, fix = diagnose(stage, current.reason, lines)
        return cause, fix, lines


def _waiting_message(current: PodStage) -> str:
    status = current.pod.get("status") or {}
    for entry in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        message = ((entry.get("state") or {}).get("waiting") or {}).get("message")
        if message:
            return str(message)
    return ""


_PULLED = re.compile(
    r'Successfully pulled image "([^"]+)" in ([^ ]+) \(([^ ]+) including waiting\)'
    r"(?:\. Image size: (\d+) bytes)?"
)


def _event_line(reason: str, message: str) -> str:
    """kubelet 1.29's event messages (pkg/kubelet/images/image_manager.go), shortened."""
    pulled = _PULLED.search(message)
    if pulled:
        size = f", {_gib(int(pulled.group(4)))}" if pulled.group(4) else ""
        return f"pulled {pulled.group(1)} in {pulled.group(2)}{size}"
    if reason == "Pulling":
        return message.replace("Pulling image", "pulling", 1)
    return f"{reason}: {message}"


def wait_for_vllm(
    kube: KubeReader,
    namespace: str,
    release: str,
    *,
    timeout: float = 1800,
    out: TextIO | None = None,
    poll_s: float = 5,
    progress_s: float = 30,
    max_restarts: int = 2,
    tail_lines: int = 40,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    """Follow the release's vLLM pod until it is ready, fails for good, or `timeout` seconds pass.

    A crash loop stops the wait once its cause is known (CUDA OOM, no access to the model...) or after
    `max_restarts` restarts; an image that cannot be pulled stops it at kubelet's back-off.
    """
    stream = out if out is not None else sys.stderr
    waiter = _Waiter(kube, namespace, release, stream, clock, tail_lines)
    deadline = waiter.start + timeout
    current = PodStage("no_pod")
    unanswered = 0
    while True:
        try:
            current = waiter.poll()
            unanswered = 0
        except KubeApiError as exc:
            # A refusal (401, 403, 404, 400) will not change by waiting; a dropped connection or a 5xx
            # (the API server restarting, a NAT hiccup) may, for up to `API_PATIENCE_S`.
            unanswered += 1
            if exc.status in (400, 401, 403, 404) or unanswered * poll_s > API_PATIENCE_S:
                raise
            if unanswered == 1:
                waiter.say(waiter.stage or "no_pod", f"{exc}; trying again")
            sleep(poll_s)
            continue
        now = clock()
        if current.stage == "ready":
            waiter.say("ready", f"vLLM is ready after {_duration(now - waiter.start)} (pod {current.name})")
            return WaitResult(True, "ready", now - waiter.start, pod=current.name)
        failure = waiter.failure(current)
        if failure is not None:
            cause, fix, lines = failure
            known = not cause.startswith(current.stage)
            if (
                current.stage not in ("crashloop", "download_failed")
                or known
                or current.restarts >= max_restarts
            ):
                for line in lines[-10:]:
                    print(f"    | {line}", file=stream, flush=True)
                waiter.say(current.stage, f"{cause}\n    fix: {fix}")
                return WaitResult(
                    False, current.stage, now - waiter.start, cause, fix, tuple(lines), pod=current.name
                )
        if now >= deadline:
            stage_text = f"still {current.stage}" + (
                f" ({waiter.phase})" if current.stage == "loading" else ""
            )
            reason = f"vLLM was not ready after {_duration(timeout)}: {stage_text}"
            if current.stage == "scheduling":
                cause, fix = diagnose("scheduling", current.reason, [], waiter.detail)
                reason += f": {cause}"
            elif current.stage == "downloading" and waiter.download.samples:
                fix = "the download is slow, not failed: run again to keep waiting (it resumes)"
                reason += f": {waiter.download.line()}"
            else:
                fix = "run again to keep waiting, or read `kubectl -n {ns} describe pod {pod}`".format(
                    ns=namespace, pod=current.name or "-l " + waiter.selector
                )
            waiter.say(current.stage, f"{reason}\n    fix: {fix}")
            tail = tuple(redact(line) for line in waiter.last_lines)
            return WaitResult(False, current.stage, now - waiter.start, reason, fix, tail, True, current.name)
        if now - waiter.last_said >= progress_s:  # a line at least every progress_s
            waiter.progress(current)
        sleep(min(poll_s, max(0.0, deadline - now)))
