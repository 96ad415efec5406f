"""What stage the vLLM pod is in, read from the Kubernetes API (in a cluster only).

Real vLLM does not listen until its model is loaded, and its Service has no ready endpoint before
that, so from chat-api a 5-20 minute cold start looks like an outage. The pod's status tells them
apart: scheduled or not, its init container (the chart's `download-weights`) running, the vLLM
container running but not ready, or waiting in CrashLoopBackOff.

One request: `GET /api/v1/namespaces/<own namespace>/pods?labelSelector=<vLLM's labels>` with the
pod's service-account token (re-read on every call: kubelet rotates bound tokens), the cluster CA
from the same folder. The chart grants only that (a Role with get/list/watch on pods in chat-api's
own namespace). httpx is already chat-api's client; the `kubernetes` package would add a large
synchronous dependency for one GET. Off outside a cluster (no token, no API address).

The fields read are those kubelet 1.29 writes (pkg/kubelet/kubelet_pods.go,
convertToAPIContainerStatuses: a container not yet created waits in `ContainerCreating`, or
`PodInitializing` when the pod has init containers). Pod status does not say whether an image is
being pulled or volumes mounted (that is only in events, which the Role does not grant): a created
pod whose first container using an image is still waiting to be created is reported as `pulling`.
vLLM's loading, compiling and warm-up all happen before it listens, so they are one stage,
`loading`.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

log = logging.getLogger("chat_api.vllm_pods")

# The chart's model download init container (charts/platform/charts/vllm-llama/templates/deployment.yaml).
DOWNLOAD_CONTAINER = "download-weights"
VLLM_CONTAINER = "vllm"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# Stages while the pod is on its way to ready: chat-api reports "starting".
STARTING_STAGES = ("scheduling", "pulling", "downloading", "initializing", "loading")
# Stages that will not become ready by waiting: chat-api reports "unavailable".
DOWN_STAGES = (
    "crashloop",
    "download_failed",
    "image_pull_failed",
    "config_error",
    "failed",
    "terminating",
    "no_pod",
    "ready",  # the pod is ready, yet chat-api cannot reach it: network, not start-up
)
# Which pod to report when there are several (a rolling update): the furthest along, then the newest.
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
# Reasons that may be shown to anyone (/readyz is public): Kubernetes' fixed words, never a message.
PUBLIC_REASONS = frozenset(
    {
        "OOMKilled",
        "Error",
        "ContainerCannotRun",
        "DeadlineExceeded",
        "Evicted",
        "Unschedulable",
        "SchedulingGated",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "CrashLoopBackOff",
    }
)
CREATING = frozenset({"ContainerCreating", "PodInitializing"})
IMAGE_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class PodStage:
    stage: str
    reason: str | None = None  # one of PUBLIC_REASONS, or None
    restarts: int = 0
    created: str = ""  # the pod's creationTimestamp (RFC 3339 sorts as text), to pick the newest

    @property
    def starting(self) -> bool:
        return self.stage in STARTING_STAGES


def _public(reason: object) -> str | None:
    return reason if isinstance(reason, str) and reason in PUBLIC_REASONS else None


def _last_exit(status: dict[str, Any]) -> str | None:
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    return _public(terminated.get("reason"))


def stage_of_pod(pod: dict[str, Any]) -> PodStage:
    """The stage of one vLLM pod, from its spec and status as the API returns them."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    created = str(meta.get("creationTimestamp") or "")

    def at(stage: str, reason: object = None, restarts: int = 0) -> PodStage:
        return PodStage(stage, _public(reason), restarts, created)

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
        waiting = current.get("waiting")
        failed = "download_failed" if name == DOWNLOAD_CONTAINER else "config_error"
        if "terminated" in current and current["terminated"].get("exitCode") == 0:
            images_run.add(container.get("image", ""))
            continue
        if "running" in current:
            return at("downloading" if name == DOWNLOAD_CONTAINER else "initializing", None, restarts)
        if "terminated" in current:
            return at(failed, current["terminated"].get("reason"), restarts)
        reason = (waiting or {}).get("reason")
        if reason in IMAGE_PULL_FAILURES:
            return at("image_pull_failed", reason, restarts)
        if reason in CONFIG_FAILURES:
            return at("config_error", reason, restarts)
        if reason == "CrashLoopBackOff":
            return at(failed, _last_exit(state) or reason, restarts)
        # Not created yet (no status at all, or ContainerCreating / PodInitializing).
        return at("pulling" if container.get("image", "") not in images_run else "initializing")

    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    containers = spec.get("containers") or []
    main: dict[str, Any] = next(
        (c for c in containers if c.get("name") == VLLM_CONTAINER),
        containers[0] if containers else {},
    )
    state = statuses.get(main.get("name")) or {}
    restarts = int(state.get("restartCount") or 0)
    current = state.get("state") or {}
    if "running" in current:
        # Loading, compiling, warming up: vLLM opens its port (and the probes pass) only after all three.
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
    """The stage to report for all vLLM pods: the one furthest along (newest first on a tie)."""
    stages = [stage_of_pod(pod) for pod in pods if isinstance(pod, dict)]
    if not stages:
        return PodStage("no_pod")
    newest_first = sorted(stages, key=lambda s: s.created, reverse=True)
    return min(newest_first, key=lambda s: _RANK[s.stage])


def in_cluster_api_url() -> str:
    """The API server's address as kubelet gives it to every container (KUBERNETES_SERVICE_*)."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return ""
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


class VllmPods:
    """Reads the vLLM pods of chat-api's own namespace with the pod's service-account token."""

    def __init__(self, api_url: str, account_dir: Path, selector: str, timeout_s: float) -> None:
        self.account_dir = account_dir
        self.selector = selector
        self.namespace = (account_dir / "namespace").read_text().strip()
        if not _NAMESPACE.fullmatch(self.namespace):
            raise ValueError(f"{account_dir / 'namespace'} holds {self.namespace!r}, not a namespace name")
        context = ssl.create_default_context(cafile=str(account_dir / "ca.crt"))
        self.client = httpx.AsyncClient(
            base_url=api_url, verify=context, timeout=timeout_s, trust_env=False, follow_redirects=False
        )
        self.path = f"/api/v1/namespaces/{self.namespace}/pods"
        self._last_problem = ""

    async def stage(self) -> PodStage | None:
        """The vLLM pods' stage; None when the API cannot tell (logged once per distinct problem)."""
        try:
            token = (self.account_dir / "token").read_text().strip()
            response = await self.client.get(
                self.path,
                params={"labelSelector": self.selector},
                headers={"authorization": f"Bearer {token}", "accept": "application/json"},
            )
            if response.status_code != 200:
                answer = f"{response.status_code}: {_message(response)}"
                return self._problem(f"the Kubernetes API answered {answer}")
            items = response.json().get("items")
        except (OSError, httpx.HTTPError, ValueError, AttributeError) as exc:
            return self._problem(f"the Kubernetes API could not be read: {exc!r}")
        if not isinstance(items, list):
            return self._problem("the Kubernetes API sent a pod list without items")
        try:
            stage = stage_of_pods(items)
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # not a Pod as the API sends them
            return self._problem(f"a vLLM pod's status could not be read: {exc!r}")
        self._last_problem = ""
        return stage

    def _problem(self, problem: str) -> None:
        if problem != self._last_problem:
            log.warning("vLLM pod status unavailable", extra={"problem": problem, "selector": self.selector})
            self._last_problem = problem
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


def _message(response: httpx.Response) -> str:
    """The `message` of a Kubernetes Status body (e.g. what RBAC refused), for the log."""
    try:
        return str(response.json().get("message", ""))[:300]
    except (ValueError, AttributeError):
        return response.text[:300]


def from_settings(selector: str, api_url: str, account_dir: Path, timeout_s: float) -> VllmPods | None:
    """The reader when a selector is set and chat-api runs in a cluster; else None (logged)."""
    if not selector:
        return None
    url = api_url or in_cluster_api_url()
    token = account_dir / "token"
    if not url or not token.is_file():
        log.warning(
            "vLLM pod status off: not in a Kubernetes cluster",
            extra={"selector": selector, "api_url": url or None, "token_file": str(token)},
        )
        return None
    return VllmPods(url, account_dir, selector, timeout_s)
