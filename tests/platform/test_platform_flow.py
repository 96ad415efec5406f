"""`make platform` in the lab (tests/platform/conftest.py): the order of the steps, resumption after a
failure injected at each step, an idempotent second run, what lands in the cluster, and the log. The
wait step is the real live wait (node_bootstrap/vllm_wait.py) over recorded vLLM start-ups."""

from __future__ import annotations

import json
import re
import stat

import pytest
import yaml

from .conftest import EDGE_IP, HF_TOKEN, REGISTRY, Lab, private_file

pytestmark = pytest.mark.integration  # real chat-api and vLLM CPU answer the first question

STEPS = [
    "preflight",
    "cluster",
    "images",
    "secrets",
    "cert-manager",
    "monitoring",
    "platform",
    "wait",
    "question",
]


# What the wait says of the recorded T4 cold start (tests/fixtures/vllm_startup/t4-cold-start.json), in
# this order: the same lines node-bootstrap/tests/test_vllm_wait.py expects of vllm_wait on its own.
COLD_START = [
    "scheduling: waiting for a node: 0/2 nodes are available: 1 Insufficient nvidia.com/gpu",
    'pulling "docker.io/vllm/vllm-openai:v0.32.0"',
    "pulled docker.io/vllm/vllm-openai:v0.32.0 in 2m47.912s",
    "downloading: 6.0 GiB to download",
    "download complete",
    "loading: loading weights: weights loaded: 6.02 GiB in 29.61 s",
    "loading: compiling (torch.compile): took 50.96 s",
    "loading: capturing CUDA graphs: captured in 13 s (0.41 GiB)",
    "ready: vLLM is ready after 7m00s (pod llama-vllm-llama-6c9f8d7b5d-x7k2p)",
]


def in_order(lines: list[str], expected: list[str]) -> list[int]:
    """The index of the line holding each fragment, each after the previous one's."""
    at, found = 0, []
    for fragment in expected:
        index = next((i for i in range(at, len(lines)) if fragment in lines[i]), None)
        assert index is not None, f"{fragment!r} not after line {at}:\n" + "\n".join(lines)
        found.append(index)
        at = index + 1
    return found


def step_lines(lab: Lab) -> list[str]:
    # "[8/9] wait: done in ..." (the wait's own lines start "[ 2m05s] ", its time since it began)
    return [line for line in lab.output if re.match(r"\[\d/9\] ", line) and not line.endswith(" ...")]


def test_the_first_run_goes_from_preflight_to_an_answer_in_order_and_the_second_changes_nothing(
    lab: Lab,
) -> None:
    lab.settings().operator_key_file.unlink()  # the flow makes the operator key itself
    assert lab.platform().run() == 0, "\n".join(lab.output)
    finished = step_lines(lab)
    assert [line.split("] ", 1)[1].split(":")[0] for line in finished] == STEPS
    for number, line in enumerate(finished, 1):  # one line per step with its elapsed time
        assert line.startswith(f"[{number}/9] ") and " in " in line and "(total " in line, line
    # preflight asked the Hub (the token's access to the gated model) and AWS before anything was made
    assert lab.hub.seen == ["/api/models/meta-llama/Llama-3.2-3B-Instruct/auth-check"]
    assert lab.cluster.calls == 1 and lab.images == [REGISTRY]
    # Helm: cert-manager and kube-prometheus-stack before the platform, which renders their objects
    assert lab.helm.calls == [
        ("install", "cert-manager", "cert-manager"),
        ("install", "kube-prometheus-stack", "monitoring"),
        ("install", "llama", "llama"),
    ]
    platform = lab.helm.releases[("llama", "llama")]
    kinds = "\n".join(platform.manifest.values())
    assert (
        "kind: ServiceMonitor" in kinds and "kind: Certificate" in kinds and "kind: PrometheusRule" in kinds
    )
    values = platform.values
    assert values["global"]["image"]["registry"] == REGISTRY
    assert values["chat-api"]["apiKeys"]["existingSecret"] == "llama-platform-keys"
    assert values["chat-api"]["auth"]["oidc"]["redirectUrl"] == "https://198-51-100-23.sslip.io/auth/callback"
    assert (
        values["chat-ui"]["tls"]["host"] == "198-51-100-23.sslip.io" and values["chat-ui"]["config"]["signIn"]
    )
    monitoring = lab.helm.releases[("kube-prometheus-stack", "monitoring")]
    assert monitoring.values["grafana"]["admin"]["existingSecret"] == "grafana-admin"
    assert "kube-prometheus-stack-88.6.4" in "".join(monitoring.manifest.values())  # the pinned version
    # the Secrets, from files
    settings = lab.settings()
    assert lab.kube.secret_data("llama", "hf-token") == {"token": HF_TOKEN.encode()}
    key = settings.operator_key_file.read_text().strip()
    assert lab.kube.secret_data("llama", "llama-platform-keys") == {"make-platform": key.encode()}
    assert set(lab.kube.secret_data("llama", "chat-signin") or {}) == {"client-secret", "session-key"}
    grafana = lab.kube.secret_data("monitoring", "grafana-admin") or {}
    assert grafana["admin-password"].decode() == settings.grafana_password_file.read_text().strip()
    for private in (settings.operator_key_file, settings.grafana_password_file, settings.session_key_file):
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
    # the live wait told vLLM's stages as the recorded start-up went, between the platform step's
    # line and the wait step's, then the question got a real answer through chat-api
    found = in_order(lab.output, ["[7/9] platform: done", *COLD_START, "[8/9] wait: done", "  A: "])
    assert found == sorted(found)
    log = next(settings.state_dir.glob("*.log")).read_text().splitlines()
    in_order(log, COLD_START)  # the run's log has them too
    text = "\n".join(lab.output)
    assert "chat UI    https://198-51-100-23.sslip.io" in text and "https://198-51-100-23.sslip.io/v1" in text
    assert "port-forward svc/kube-prometheus-stack-grafana" in text

    # The second run: cheap facts again, nothing else redone.
    lab.output.clear()
    secrets_before = {k: v["metadata"]["resourceVersion"] for k, v in lab.kube.secrets.items()}
    assert lab.platform().run() == 0, "\n".join(lab.output)
    finished = step_lines(lab)
    assert finished[0].startswith("[1/9] preflight: done")
    assert all(": unchanged (done in an earlier run)" in line for line in finished[1:]), finished
    assert lab.cluster.calls == 1 and lab.images == [REGISTRY] and len(lab.helm.calls) == 3
    assert {k: v["metadata"]["resourceVersion"] for k, v in lab.kube.secrets.items()} == secrets_before


def test_a_changed_values_file_upgrades_the_release_and_asks_again(lab: Lab) -> None:
    assert lab.platform().run() == 0, "\n".join(lab.output)
    values = lab.root / "signin.yaml"
    changed = yaml.safe_load(values.read_text())
    changed["chat-api"]["limits"] = {"maxConcurrentStreams": 16}
    values.write_text(yaml.safe_dump(changed))
    lab.start_vllm("cpu-tiny-llama")  # the upgrade's new pod: the CPU build's real start-up log
    lab.output.clear()
    assert lab.platform().run() == 0, "\n".join(lab.output)
    redone = [line.split("] ", 1)[1].split(":")[0] for line in step_lines(lab) if "unchanged" not in line]
    assert redone == ["preflight", "platform", "wait", "question"]
    assert lab.helm.calls[-1] == ("upgrade", "llama", "llama")
    assert lab.helm.releases[("llama", "llama")].version == 2


def inject(lab: Lab, step: str) -> None:
    """One failure at `step`, as the outside would cause it."""
    if step == "preflight":
        (lab.root / "hf-token").unlink()
    elif step == "cluster":
        lab.cluster.fail_next = (
            "terraform apply failed (its output is above); `make cluster` again resumes it"
        )
    elif step == "images":
        lab.images_fail_next = "make images failed with exit status 2 (output above)"
    elif step == "secrets":
        lab.kube.refuse_next[("POST", "/api/v1/namespaces/llama/secrets")] = (
            500,
            "InternalError",
            "Internal error occurred: etcdserver: request timed out",
        )
    elif step in ("cert-manager", "monitoring", "platform"):
        name = {"cert-manager": "cert-manager", "monitoring": "kube-prometheus-stack", "platform": "llama"}[
            step
        ]
        lab.helm.fail_next[name] = f"helm install {name} failed: context deadline exceeded"
    elif step == "wait":
        lab.start_vllm("t4-cuda-oom")  # vLLM crash-loops: the GPU runs out of memory at start-up
    elif step == "question":
        lab.edge_down = True  # nothing answers where the question goes


def uninject(lab: Lab, step: str) -> None:
    if step == "preflight":
        private_file(lab.root / "hf-token", HF_TOKEN + "\n")
    elif step == "wait":
        lab.start_vllm("t4-cold-start")  # with the memory lowered, it starts
    elif step == "question":
        lab.edge_down = False


@pytest.mark.parametrize("step", STEPS)
def test_a_failure_at_each_step_stops_there_says_why_and_the_next_run_resumes_there(
    lab: Lab, step: str
) -> None:
    number = STEPS.index(step) + 1
    inject(lab, step)
    overrides = {"question": {"question_timeout_s": 0.0}}
    settings = lab.settings(**overrides.get(step, {}))
    code = lab.platform(settings).run()
    assert code == (2 if step == "preflight" else 1), "\n".join(lab.output)
    text = "\n".join(lab.output)
    failed = [line for line in lab.output if ": FAILED after " in line]
    assert len(failed) == 1 and failed[0].startswith(f"[{number}/9] {step}: FAILED after "), text
    assert "Fix that, then resume with: make platform" in text
    if step == "wait":
        # the real wait's verdict on the recorded CUDA-OOM crash loop: vLLM's last lines, then the
        # cause and the fix, then the step fails with them in one line
        assert "the GPU ran out of memory" in failed[0]
        assert "vllm-llama.vllm.gpuMemoryUtilization" in failed[0]
        in_order(lab.output, ["    | ", "crashloop: the GPU ran out of memory", "    fix: ", failed[0]])
    state = json.loads(settings.state_file.read_text())["steps"] if settings.state_file.is_file() else {}
    assert set(state) == set(STEPS[: number - 1]), "only the steps before the failure are recorded done"
    calls = (lab.cluster.calls, list(lab.images), list(lab.helm.calls))

    uninject(lab, step)
    lab.output.clear()
    assert lab.platform().run() == 0, "\n".join(lab.output)
    lines = step_lines(lab)
    for earlier in STEPS[1 : number - 1]:
        assert any(
            line.startswith(f"[{STEPS.index(earlier) + 1}/9] {earlier}: unchanged") for line in lines
        ), lines
    if step == "wait":  # the resumed run waits again, from the start of the new pod's start-up
        in_order(lines, ["[7/9] platform: unchanged", "[8/9] wait: done"])
        in_order(lab.output, ["[7/9] platform: unchanged", *COLD_START, "[8/9] wait: done"])
    # nothing before the failed step ran again
    if number > STEPS.index("cluster") + 1:
        assert lab.cluster.calls == calls[0]
    if number > STEPS.index("images") + 1:
        assert lab.images == calls[1]
    assert lab.helm.calls[: len(calls[2])] == calls[2]
    assert {name for _, name, _ in lab.helm.calls} == {"cert-manager", "kube-prometheus-stack", "llama"}
    assert all(r.status == "deployed" for r in lab.helm.releases.values()) and len(lab.helm.releases) == 3
    if step == "platform":
        # the failed first install (no --wait, so no rollback) is removed, then installed again
        assert lab.helm.calls[len(calls[2]) :][:2] == [
            ("uninstall", "llama", "llama"),
            ("install", "llama", "llama"),
        ]
    elif step in ("cert-manager", "monitoring"):
        # with --wait --rollback-on-failure nothing was left: installed afresh
        name = {"cert-manager": "cert-manager", "monitoring": "kube-prometheus-stack"}[step]
        assert lab.helm.calls[len(calls[2])][:2] == ("install", name)


def test_no_secret_reaches_the_console_or_the_log_and_the_log_is_private(lab: Lab) -> None:
    assert lab.platform().run() == 0
    settings = lab.settings()
    logs = sorted(settings.state_dir.glob("*.log"))
    assert len(logs) == 1 and stat.S_IMODE(logs[0].stat().st_mode) == 0o600
    written = logs[0].read_text() + "\n".join(lab.output)
    assert "[9/9] question: done" in written
    for secret in (
        HF_TOKEN,
        settings.operator_key_file.read_text().strip(),
        settings.grafana_password_file.read_text().strip(),
        settings.session_key_file.read_text().strip(),
        "GOCSPX-client-secret-of-the-test-provider",
    ):
        assert secret not in written


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("no-token", "no Hugging Face token file at"),
        ("token-readable", "is readable by others. Fix: chmod 600"),
        ("not-granted", "has not been granted meta-llama/Llama-3.2-3B-Instruct (gated)"),
        ("bad-token", "Hugging Face does not accept this token"),
        ("no-signin", "nobody would have to sign in"),
        ("no-tfvars", "terraform.tfvars does not exist"),
        ("tfvars-incomplete", "does not set client_cidrs"),
    ],
)
def test_preflight_refuses_before_anything_is_created(lab: Lab, change: str, message: str) -> None:
    token = lab.root / "hf-token"
    if change == "no-token":
        token.unlink()
    elif change == "token-readable":
        token.chmod(0o644)
    elif change == "not-granted":
        lab.hub.granted[HF_TOKEN] = set()
    elif change == "bad-token":
        private_file(token, "hf_revoked" + "x" * 28)
    elif change == "no-signin":
        (lab.root / "signin.yaml").unlink()
    elif change == "no-tfvars":
        (lab.root / "terraform" / "terraform.tfvars").unlink()
    elif change == "tfvars-incomplete":
        tfvars = lab.root / "terraform" / "terraform.tfvars"
        tfvars.write_text(
            "\n".join(line for line in tfvars.read_text().splitlines() if not line.startswith("client_cidrs"))
        )
    assert lab.platform().run() == 2
    text = "\n".join(lab.output)
    assert "[1/9] preflight: FAILED" in text and message in text, text
    assert lab.cluster.calls == 0 and lab.helm.calls == [] and lab.kube.secrets == {}
    assert HF_TOKEN not in text


def test_the_hugging_face_token_is_sent_only_to_the_hub_and_only_in_a_header(lab: Lab) -> None:
    assert lab.platform().run() == 0
    assert all(HF_TOKEN not in path for path in lab.hub.seen)
    assert all(HF_TOKEN not in seen.path for seen in lab.kube.seen)


def test_the_kubernetes_api_refuses_a_client_without_the_admin_certificate(lab: Lab) -> None:
    import ssl

    import httpx

    ca = ssl.create_default_context(cafile=str(lab.kube.folder / "pki" / "ca.crt"))
    answer = httpx.get(f"{lab.kube.url}/api/v1/nodes", verify=ca)
    assert answer.status_code == 401 and answer.json()["reason"] == "Unauthorized"


def test_an_edge_that_never_answers_fails_the_question_with_where_to_look(lab: Lab) -> None:
    settings = lab.settings(question_timeout_s=0.0)
    platform = lab.platform(settings, question_url=lambda outputs: "http://127.0.0.1:9")  # nothing listens
    assert platform.run() == 1
    text = "\n".join(lab.output)
    assert "[9/9] question: FAILED" in text and "is this machine's address in client_cidrs" in text


def test_the_summary_says_where_everything_is_and_how_to_sign_in(lab: Lab) -> None:
    assert lab.platform().run() == 0
    settings = lab.settings()
    text = "\n".join(lab.output)
    assert f"Authorization: Bearer $(cat {settings.operator_key_file})" in text
    assert f"password in {settings.grafana_password_file}" in text
    assert "the callback URL to register there is https://198-51-100-23.sslip.io/auth/callback" in text
    assert EDGE_IP.replace(".", "-") in text
