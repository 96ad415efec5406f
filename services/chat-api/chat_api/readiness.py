"""What /readyz says, decided in one place from what vLLM's HTTP API and the cluster said.

| vLLM's HTTP API                          | cluster (vLLM pod)      | status        |
| ---------------------------------------- | ----------------------- | ------------- |
| /health 200 and lists the wanted model   | (not asked)             | `ready`       |
| answers, not healthy or lists no model   | (not asked)             | `loading`     |
| answers, lists models but not the wanted | (not asked)             | `wrong_model` |
| does not answer                          | a start-up stage        | `starting`    |
| does not answer                          | crash-looping, no pod.. | `unavailable` |
| does not answer, never has since start   | unknown (off, error)    | `starting` (*) |
| does not answer, answered before         | unknown (off, error)    | `unavailable` |

(*) for CHAT_API_COLD_START_TIMEOUT_S after chat-api started, then `unavailable`.

Real vLLM opens its port only once the model is loaded, so "never answered since chat-api started"
is what a cold start looks like; "answered before and stopped" is an outage. A model name vLLM
does not serve is `wrong_model` at once: it never becomes ready by waiting.

`detail` names vLLM's address and goes to the log; `public()` is what /readyz shows (it is proxied
to the internet): fixed sentences, the stage and Kubernetes' reason words, never an address.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chat_api.vllm_pods import PodStage

PUBLIC_DETAIL = {
    "loading": "the model server answers but is not ready yet",
    "wrong_model": "the model server does not serve the model chat-api is set to use; it will not become "
    "ready by waiting",
    "starting": "the model server has not answered since chat-api started; it is most likely starting",
    "unavailable": "the model server stopped answering",
}
STAGE_DETAIL = {
    "scheduling": "the model server pod is waiting for a node",
    "pulling": "the model server pod is pulling its image",
    "downloading": "the model server pod is downloading the model weights",
    "initializing": "the model server pod is initializing",
    "loading": "the model server is loading the model (weights, compilation, warm-up)",
    "crashloop": "the model server is crash-looping",
    "download_failed": "the model download keeps failing",
    "image_pull_failed": "the model server image cannot be pulled",
    "config_error": "the model server pod cannot start its container (configuration)",
    "failed": "the model server pod failed",
    "terminating": "the model server pod is shutting down",
    "no_pod": "no model server pod exists (scaled to zero or not deployed)",
    "ready": "the model server pod is ready but chat-api cannot reach it",
}


@dataclass
class Readiness:
    status: str  # ready | loading | wrong_model | starting | unavailable
    detail: str = ""  # for the log only (names vLLM's address)
    models: list[str] = field(default_factory=list)
    pod: PodStage | None = None
    public_detail: str = ""

    @property
    def ready(self) -> bool:
        return self.status == "ready"

    def public(self) -> dict[str, Any]:
        """/readyz's body."""
        if self.ready:
            return {"status": "ready", "models": self.models}
        body: dict[str, Any] = {
            "status": self.status,
            "detail": self.public_detail or PUBLIC_DETAIL[self.status],
        }
        if self.pod is not None:
            body["stage"] = self.pod.stage
            if self.pod.reason:
                body["reason"] = self.pod.reason
            if self.pod.restarts:
                body["restarts"] = self.pod.restarts
        return body


@dataclass(frozen=True)
class Probe:
    """What vLLM's HTTP API said: nothing (not answering), or /health's status and the models listed."""

    answered: bool
    health_status: int = 0
    models: tuple[str, ...] = ()
    error: str = ""


def decide(
    probe: Probe,
    *,
    upstream_url: str,
    wanted_model: str,
    ever_reached: bool,
    since_start_s: float,
    cold_start_timeout_s: float,
    pod: PodStage | None,
) -> Readiness:
    where = f"vLLM at {upstream_url}"
    if probe.answered:
        if probe.health_status != 200:
            return Readiness("loading", f"{where} answers /health with {probe.health_status}")
        if not probe.models:
            return Readiness("loading", f"{where} is up but lists no model yet")
        if wanted_model and wanted_model not in probe.models:
            return Readiness(
                "wrong_model",
                f"{where} does not serve model {wanted_model!r} (CHAT_API_DEFAULT_MODEL); it serves "
                f"{list(probe.models)}",
            )
        return Readiness("ready", "", list(probe.models))

    silent = f"{where} does not answer ({probe.error})"
    if pod is not None:
        status = "starting" if pod.starting else "unavailable"
        why = f"{silent}; its pod is at stage {pod.stage} (reason {pod.reason}, restarts {pod.restarts})"
        return Readiness(status, why, pod=pod, public_detail=STAGE_DETAIL[pod.stage])
    if ever_reached:
        return Readiness("unavailable", f"{silent}; it answered earlier")
    if since_start_s < cold_start_timeout_s:
        return Readiness("starting", f"{silent}; it has not answered since chat-api started")
    minutes = int(since_start_s // 60)
    return Readiness(
        "unavailable",
        f"{silent}; it has not answered in the {since_start_s:.0f} s since chat-api started "
        "(CHAT_API_COLD_START_TIMEOUT_S): check CHAT_API_UPSTREAM_URL and vLLM's log",
        public_detail=f"the model server has not answered in the {minutes} minutes since chat-api started",
    )
