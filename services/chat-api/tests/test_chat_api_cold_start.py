"""Honest cold start (issue 19, bug 8): /readyz tells `starting` from `unavailable` and `wrong_model`
from `loading`, and in a cluster reports the vLLM pod's stage from the Kubernetes API.

The state machine is tested as a pure function (chat_api.readiness.decide), then through real
chat-api (uvicorn) in front of the crafted vLLM double, and the Kubernetes path against
`KubeApiDouble` (tests/fixtures/kube_api_double.py: HTTPS with a cluster CA, the service-account
token, RBAC refusals, label selectors) serving the pod objects of tests/fixtures/kube_pods/.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest
from chat_api.config import Settings
from chat_api.readiness import PUBLIC_DETAIL, Probe, decide
from chat_api.vllm_pods import (
    DOWN_STAGES,
    STARTING_STAGES,
    PodStage,
    VllmPods,
    from_settings,
    stage_of_pod,
    stage_of_pods,
)
from crafted_upstream import Stack
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.fixtures.kube_api_double import VLLM_SELECTOR, KubeApiDouble, recorded_pod, recorded_pod_names

pytestmark = pytest.mark.unit

URL = "http://10.96.12.7:8000"
UP = Probe(answered=True, health_status=200, models=("tiny-llama",))
SILENT = Probe(answered=False, error="ConnectError('All connection attempts failed')")


def state(
    probe: Probe, *, ever: bool = False, since: float = 5, pod: PodStage | None = None, wanted="tiny-llama"
):
    return decide(
        probe,
        upstream_url=URL,
        wanted_model=wanted,
        ever_reached=ever,
        since_start_s=since,
        cold_start_timeout_s=1800,
        pod=pod,
    )


# ---------------------------------------------------------------- the state machine


def test_never_reached_is_starting_and_reached_then_silent_is_unavailable():
    assert state(SILENT, ever=False).status == "starting"
    assert state(SILENT, ever=True).status == "unavailable"
    assert state(UP).status == "ready" and state(UP).models == ["tiny-llama"]


def test_starting_ends_after_the_cold_start_timeout_with_a_detail_that_says_why():
    late = state(SILENT, since=1801)
    assert late.status == "unavailable"
    assert (
        late.public()["detail"]
        == "the model server has not answered in the 30 minutes since chat-api started"
    )
    assert "CHAT_API_UPSTREAM_URL" in late.detail  # the log says what to check


def test_a_model_vllm_does_not_serve_is_wrong_model_never_loading():
    wrong = state(UP, wanted="llama-3.2-3b-instruct")
    assert wrong.status == "wrong_model"
    assert "will not become ready by waiting" in wrong.public()["detail"]
    assert "tiny-llama" in wrong.detail and "llama-3.2-3b-instruct" in wrong.detail  # in the log only
    assert "tiny-llama" not in str(wrong.public())


def test_answers_but_not_healthy_or_no_model_yet_is_loading():
    assert state(Probe(answered=True, health_status=503)).status == "loading"
    assert state(Probe(answered=True, health_status=200, models=())).status == "loading"


@pytest.mark.parametrize("ever", [False, True])
def test_the_pods_stage_wins_over_what_chat_api_remembers(ever):
    """A pod rescheduled after chat-api saw vLLM is starting again, not down; a crash loop is down
    even before vLLM ever answered."""
    downloading = state(SILENT, ever=ever, pod=PodStage("downloading"))
    assert downloading.status == "starting"
    assert downloading.public() == {
        "status": "starting",
        "detail": "the model server pod is downloading the model weights",
        "stage": "downloading",
    }
    crash = state(SILENT, ever=ever, pod=PodStage("crashloop", "OOMKilled", 4))
    assert crash.status == "unavailable"
    assert crash.public() == {
        "status": "unavailable",
        "detail": "the model server is crash-looping",
        "stage": "crashloop",
        "reason": "OOMKilled",
        "restarts": 4,
    }


EXPECTED = {
    "scheduling": ("scheduling", "Unschedulable", 0, "starting"),
    "pulling": ("pulling", None, 0, "starting"),
    "downloading": ("downloading", None, 0, "starting"),
    "loading": ("loading", None, 0, "starting"),
    "loading-after-restart": ("loading", "OOMKilled", 1, "starting"),
    "ready": ("ready", None, 0, "unavailable"),
    "crashloop": ("crashloop", "OOMKilled", 4, "unavailable"),
    "image-pull-failed": ("image_pull_failed", "ImagePullBackOff", 0, "unavailable"),
    "download-failed": ("download_failed", "Error", 3, "unavailable"),
    "terminating": ("terminating", None, 0, "unavailable"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_stage_of_each_recorded_pod(name):
    stage, reason, restarts, status = EXPECTED[name]
    found = stage_of_pod(recorded_pod(name))
    assert (found.stage, found.reason, found.restarts) == (stage, reason, restarts)
    assert state(SILENT, pod=found).status == status


def test_every_recorded_pod_has_an_expectation():
    assert set(recorded_pod_names()) - {"other-app"} == set(EXPECTED)


def test_a_rollout_reports_the_pod_furthest_along_and_no_pod_is_down():
    old_crashing, new_downloading = recorded_pod("crashloop"), recorded_pod("downloading")
    new_downloading["metadata"]["creationTimestamp"] = "2026-11-30T09:00:00Z"
    assert stage_of_pods([old_crashing, new_downloading]).stage == "downloading"
    assert stage_of_pods([]).stage == "no_pod"
    assert state(SILENT, pod=stage_of_pods([])).status == "unavailable"


def test_a_model_baked_into_the_image_has_no_download_stage():
    pod = recorded_pod("pulling")
    del pod["spec"]["initContainers"], pod["status"]["initContainerStatuses"]
    pod["status"]["containerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    assert stage_of_pod(pod).stage == "pulling"


def test_kubernetes_messages_never_reach_the_public_body():
    """Only Kubernetes' fixed reason words are shown; a message (node names, image refs) never is."""
    pod = recorded_pod("crashloop")
    pod["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"] = "node ip-10-0-1-23 said no"
    body = state(SILENT, pod=stage_of_pod(pod)).public()
    assert body == {
        "status": "unavailable",
        "detail": "the model server is crash-looping",
        "stage": "crashloop",
        "reason": "CrashLoopBackOff",  # the waiting reason, since the last exit's reason is not a known word
        "restarts": 4,
    }


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
POD_KEYS = st.sampled_from(
    "metadata spec status conditions initContainers containers initContainerStatuses containerStatuses "
    "state lastState waiting running terminated reason restartCount name type phase".split()
)


@settings(max_examples=300, deadline=None)
@given(st.recursive(JSON, lambda inner: st.dictionaries(POD_KEYS, inner, max_size=5), max_leaves=20))
def test_any_json_as_a_pod_gives_a_stage_or_an_error_that_is_caught(pod):
    """The API sends well-formed Pods, but /readyz must never fail on one that is not: stage_of_pod
    returns a stage or raises only what VllmPods.stage catches (and logs)."""
    try:
        found = stage_of_pods([pod])
    except (TypeError, ValueError, AttributeError, KeyError):
        return
    assert found.stage in {*STARTING_STAGES, *DOWN_STAGES}
    assert found.reason is None or found.reason.isalpha()


def test_a_pod_the_api_would_never_send_is_logged_not_a_500(kube, caplog):
    broken = recorded_pod("loading")
    broken["status"]["containerStatuses"][0]["restartCount"] = "many"
    kube.pods = [broken]
    with caplog.at_level(logging.WARNING, logger="chat_api.vllm_pods"):
        assert read(kube) is None
    assert any("could not be read" in getattr(r, "problem", "") for r in caplog.records)


# ---------------------------------------------------------------- settings


def test_settings_refuse_a_plain_http_api_server_and_a_set_based_selector():
    with pytest.raises(
        ValidationError, match=r"CHAT_API_KUBERNETES_API_URL='http://10\.0\.0\.1:6443' must start"
    ):
        Settings(kubernetes_api_url="http://10.0.0.1:6443")
    with pytest.raises(ValidationError, match=r"'app in \(a\)' is not key=value"):
        Settings(vllm_pod_selector="app in (a)")
    assert Settings(vllm_pod_selector=f" {VLLM_SELECTOR} ").vllm_pod_selector == VLLM_SELECTOR


def test_off_outside_a_cluster(tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert from_settings("", "", tmp_path, 2) is None
    with caplog.at_level(logging.WARNING, logger="chat_api.vllm_pods"):
        assert from_settings(VLLM_SELECTOR, "", tmp_path, 2) is None
    assert "not in a Kubernetes cluster" in caplog.text
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    assert from_settings(VLLM_SELECTOR, "", tmp_path, 2) is None  # an address, but no token mounted
    from chat_api.vllm_pods import in_cluster_api_url

    assert in_cluster_api_url() == "https://[fd00::1]:443"


# ---------------------------------------------------------------- the Kubernetes API path


@pytest.fixture
def kube(tmp_path: Path):
    with KubeApiDouble(tmp_path) as api:
        api.pods = [recorded_pod("other-app"), recorded_pod("downloading")]
        yield api


def read(kube: KubeApiDouble, selector: str = VLLM_SELECTOR, account_dir: Path | None = None):
    async def go():
        pods = VllmPods(kube.url, account_dir or kube.account_dir, selector, 2.0)
        try:
            return await pods.stage()
        finally:
            await pods.aclose()

    return asyncio.run(go())


def test_reads_the_vllm_pods_of_its_namespace_with_the_token_and_the_cluster_ca(kube):
    assert read(kube).stage == "downloading"
    [seen] = kube.seen
    assert seen.path == "/api/v1/namespaces/llama/pods"
    assert seen.query == {"labelSelector": [VLLM_SELECTOR]}
    assert seen.user == "system:serviceaccount:llama:llama-chat-api"


def test_the_label_selector_leaves_other_apps_pods_out(kube):
    kube.pods = [recorded_pod("other-app")]  # ready, but not vLLM
    assert read(kube).stage == "no_pod"
    assert read(kube, selector="app.kubernetes.io/instance=llama").stage == "ready"  # the double filters


def test_a_rotated_token_is_read_again(kube):
    assert read(kube).stage == "downloading"
    kube.rotate_token()
    assert read(kube).stage == "downloading"
    assert [s.user for s in kube.seen] == ["system:serviceaccount:llama:llama-chat-api"] * 2


def test_what_the_role_refuses_is_logged_and_reported_as_unknown(tmp_path, caplog):
    with KubeApiDouble(
        tmp_path, rules=[{"apiGroups": [""], "resources": ["services"], "verbs": ["list"]}]
    ) as api:
        api.pods = [recorded_pod("downloading")]
        with caplog.at_level(logging.WARNING, logger="chat_api.vllm_pods"):
            assert read(api) is None
    [problem] = [r.problem for r in caplog.records if hasattr(r, "problem")]
    assert 'cannot list resource "pods" in API group "" in the namespace "llama"' in problem
    assert api.token not in problem


def test_a_server_that_the_cluster_ca_did_not_sign_is_refused(kube, tmp_path, caplog):
    other = tmp_path / "other-account"
    other.mkdir()
    with KubeApiDouble(tmp_path / "elsewhere") as stranger:
        (other / "ca.crt").write_bytes((stranger.account_dir / "ca.crt").read_bytes())
    (other / "token").write_text(kube.token)
    (other / "namespace").write_text("llama")
    with caplog.at_level(logging.WARNING, logger="chat_api.vllm_pods"):
        assert read(kube, account_dir=other) is None
    assert any("CERTIFICATE_VERIFY_FAILED" in getattr(r, "problem", "") for r in caplog.records)
    assert kube.seen == []  # the token never left


# ---------------------------------------------------------------- through real chat-api


def readyz(stack: Stack) -> tuple[int, dict]:
    response = httpx.get(stack.url + "/readyz", timeout=10)
    return response.status_code, response.json()


def close_upstream(stack: Stack) -> None:
    stack.call(stack.upstream.stop())


def test_readyz_starting_before_vllm_ever_answered_and_unavailable_after_it_stopped():
    with Stack(readiness_cache_s=0) as never:
        close_upstream(never)
        assert readyz(never) == (
            503,
            {
                "status": "starting",
                "detail": PUBLIC_DETAIL["starting"],
            },
        )
    with Stack(readiness_cache_s=0) as lost:
        assert readyz(lost) == (200, {"status": "ready", "models": ["tiny-llama"]})
        close_upstream(lost)
        assert readyz(lost) == (
            503,
            {"status": "unavailable", "detail": "the model server stopped answering"},
        )


def test_readyz_wrong_model_at_once():
    with Stack(readiness_cache_s=0, default_model="llama-3.2-3b-instruct") as stack:
        status, body = readyz(stack)
    assert status == 503 and body["status"] == "wrong_model"


def test_readyz_starting_turns_unavailable_after_the_cold_start_timeout():
    with Stack(readiness_cache_s=0, cold_start_timeout_s=1.0) as stack:
        close_upstream(stack)
        assert readyz(stack)[1]["status"] == "starting"
        time.sleep(1.1)
        assert readyz(stack)[1]["status"] == "unavailable"


def test_readyz_shows_the_pods_stage_and_nothing_internal(tmp_path):
    with KubeApiDouble(tmp_path) as kube:
        kube.pods = [recorded_pod("other-app"), recorded_pod("scheduling")]
        settings = {
            "readiness_cache_s": 0,
            "vllm_pod_selector": VLLM_SELECTOR,
            "kubernetes_api_url": kube.url,
            "kubernetes_account_dir": kube.account_dir,
        }
        with Stack(**settings) as stack:
            # vLLM answers: the cluster is not asked.
            assert readyz(stack)[0] == 200
            assert kube.seen == []
            close_upstream(stack)
            seen = {}
            for name in ("scheduling", "pulling", "downloading", "loading", "crashloop"):
                kube.pods = [recorded_pod("other-app"), recorded_pod(name)]
                seen[name] = readyz(stack)
            upstream = stack.settings.upstream_url
    assert {name: (code, body["status"], body.get("stage")) for name, (code, body) in seen.items()} == {
        "scheduling": (503, "starting", "scheduling"),
        "pulling": (503, "starting", "pulling"),
        "downloading": (503, "starting", "downloading"),
        "loading": (503, "starting", "loading"),
        "crashloop": (503, "unavailable", "crashloop"),
    }
    assert seen["scheduling"][1] == {
        "status": "starting",
        "detail": "the model server pod is waiting for a node",
        "stage": "scheduling",
        "reason": "Unschedulable",
    }
    text = str(seen)
    for internal in (
        upstream,
        kube.url,
        "10.0.1.23",
        "10.244.1.17",
        "ip-10-0-1-23",
        "llama-vllm-",
        "nvidia.com/gpu",
    ):
        assert internal not in text, f"/readyz leaks {internal}"
