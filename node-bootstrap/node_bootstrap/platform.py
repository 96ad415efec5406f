"""`make platform`: from an empty AWS account to the first answer, in one resumable command.

    preflight -> cluster -> images -> secrets -> cert-manager -> monitoring -> platform -> wait -> question

Each step is idempotent; build/platform/state.json records the finished ones with a digest of
their inputs, so a second run after a failure continues where it stopped (a finished step whose
inputs changed, e.g. an edited values file, runs again; preflight's cheap checks always run). One
line per step with its elapsed time; a log per run in build/platform/<UTC time>.log (0600) with
every secret redacted; on failure the step, the cause in one sentence and the command that resumes.

The steps talk to the outside through `Environment` (terraform and the existing cluster flow, the
image build, the Kubernetes API, Helm, the Hugging Face Hub, the edge). `Environment.real()` is what
`make platform` uses; the tests replace what cannot exist on a laptop with named doubles.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from .errors import BootstrapError, PreflightError
from .helm_release import (
    CERT_MANAGER,
    KUBE_PROMETHEUS_STACK,
    HelmReleases,
    PinnedChart,
    Releases,
    deep_merge,
    deploy,
    values_from_files,
)
from .kube_api import KubeAPI
from .redact import Redactor
from .settings import REPO_ROOT

STEPS = (
    "preflight",
    "cluster",
    "images",
    "secrets",
    "cert-manager",
    "monitoring",
    "platform",
    "wait",
    "question",
)
MODEL = "meta-llama/Llama-3.2-3B-Instruct"
OPERATOR_KEYS_SECRET = "llama-platform-keys"  # noqa: S105 - a Secret's name  # chat-api.apiKeys.existingSecret
OPERATOR_KEY_NAME = "make-platform"  # the key's file name: chat-api logs it as key:make-platform
GRAFANA_ADMIN_SECRET = "grafana-admin"  # noqa: S105 - a Secret's name  # charts/platform/charts/kube-prometheus-dashboards/examples/kube-prometheus-stack.yaml grafana.admin.existingSecret
MANAGED_BY = {"app.kubernetes.io/managed-by": "make-platform"}
REQUIRED_TFVARS = ("region", "admin_cidrs", "client_cidrs", "ssh_public_key")


class StepFailed(BootstrapError):
    """A step could not finish; the message is the cause in one sentence."""


@dataclass
class PlatformSettings:
    repo: Path = REPO_ROOT
    tf_dir: Path = REPO_ROOT / "terraform"
    state_dir: Path = REPO_ROOT / "build" / "platform"
    kubeconfig: Path = REPO_ROOT / "kubeconfig"
    values_file: Path = REPO_ROOT / "values" / "aws-t4.yaml"
    # The dashboards chart's example values: the one kube-prometheus-stack values file.
    monitoring_values: Path = (
        REPO_ROOT / "charts/platform/charts/kube-prometheus-dashboards/examples/kube-prometheus-stack.yaml"
    )
    hf_token_file: Path = REPO_ROOT / "hf-token"
    signin_values: Path = REPO_ROOT / "signin.yaml"
    oidc_client_secret_file: Path = REPO_ROOT / "client-secret"
    hf_endpoint: str = "https://huggingface.co"
    model: str = MODEL
    release: str = "llama"
    namespace: str = "llama"
    monitoring: bool = True
    auto_approve: bool = False
    helm_timeout_s: int = 600
    wait_timeout_s: float = 2400.0  # a cold T4 node: image pull, 6.4 GB download, load, compile
    question_timeout_s: float = 600.0  # the certificate (about a minute) and the edge's first answer
    key_sync_grace_s: float = 90.0  # kubelet's Secret sync plus chat-api's 10 s key reload
    resume_command: str = "make platform"

    @classmethod
    def from_environment(cls, env: dict[str, str] | None = None, **overrides: Any) -> PlatformSettings:
        env = dict(os.environ if env is None else env)
        settings = cls(**overrides)
        for name, attr in (
            ("HF_TOKEN_FILE", "hf_token_file"),
            ("SIGNIN_VALUES", "signin_values"),
            ("OIDC_CLIENT_SECRET_FILE", "oidc_client_secret_file"),
            ("VALUES", "values_file"),
        ):
            if env.get(name):
                setattr(settings, attr, Path(env[name]).expanduser().resolve())
        settings.hf_endpoint = env.get("HF_ENDPOINT", settings.hf_endpoint).rstrip("/")
        settings.monitoring = env.get("MONITORING", "1") != "0"
        settings.auto_approve = env.get("AUTO_APPROVE") == "1" or settings.auto_approve
        if env.get("PLATFORM_NAMESPACE"):
            settings.namespace = env["PLATFORM_NAMESPACE"]
        return settings

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def operator_key_file(self) -> Path:
        return self.state_dir / "operator-key"

    @property
    def grafana_password_file(self) -> Path:
        return self.state_dir / "grafana-admin-password"

    @property
    def session_key_file(self) -> Path:
        return self.state_dir / "session-key"


class Kube(Protocol):
    """The Kubernetes API calls of the flow (kube_api.KubeAPI is the real one)."""

    def version(self) -> str: ...
    def ensure_namespace(self, name: str) -> bool: ...
    def apply_secret(
        self, namespace: str, name: str, data: dict[str, bytes], labels: dict[str, str]
    ) -> str: ...
    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...
    def close(self) -> None: ...


# ----------------------------------------------------------------------------------- the outside


def check_hf_access(endpoint: str, token: str, model: str) -> None:
    """Ask the Hub whether this token may download the gated model (the Hub's auth-check API)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    page = f"https://huggingface.co/{model}"
    try:
        HfApi(endpoint=endpoint).auth_check(model, token=token)
    except GatedRepoError as error:
        raise PreflightError(
            f"the Hugging Face account of this token has not been granted {model} (gated). Fix: sign in at "
            f"{page}, accept the licence, wait for the e-mail that grants access, then re-run"
        ) from error
    except RepositoryNotFoundError as error:
        raise PreflightError(
            f"Hugging Face knows no {model} for this token (a fine-grained token without read access "
            "to public "
            "gated repositories, or a misspelt model). Fix: create a Read token at "
            "https://huggingface.co/settings/tokens and put it in the token file"
        ) from error
    except HfHubHTTPError as error:
        status = getattr(getattr(error, "response", None), "status_code", 0)
        if status == 401:
            raise PreflightError(
                "Hugging Face does not accept this token (invalid, revoked or expired). Fix: create a "
                "Read token "
                "at https://huggingface.co/settings/tokens and put it in the token file"
            ) from error
        raise PreflightError(
            f"the Hugging Face Hub at {endpoint} answered {status}. Fix: retry later"
        ) from error
    except OSError as error:
        raise PreflightError(f"the Hugging Face Hub at {endpoint} did not answer ({error})") from error


def check_aws(region: str) -> str:
    """Credentials that work in the region (STS answers); the caller's ARN."""
    import boto3
    import botocore.exceptions

    from . import terraform

    terraform.require_aws_credentials()
    try:
        return str(boto3.client("sts", region_name=region).get_caller_identity()["Arn"])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise PreflightError(
            f"AWS did not accept the credentials in {region} ({error}). Fix: aws sso login --profile NAME "
            "(and export AWS_PROFILE=NAME), or check the region in terraform/terraform.tfvars"
        ) from error


def terraform_outputs(tf_dir: Path) -> dict[str, Any]:
    """`terraform output -json`, values only (image_registry, edge, edge_values, inventory)."""
    from . import terraform

    result = subprocess.run(
        [terraform.require_terraform(), f"-chdir={tf_dir}", "output", "-no-color", "-json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StepFailed(f"terraform output failed: {result.stderr.strip()[-300:]}")
    return {name: entry.get("value") for name, entry in json.loads(result.stdout or "{}").items()}


def build_images(repo: Path, registry: str) -> None:
    """`make images` to the given registry (its own output goes to the terminal)."""
    result = subprocess.run(
        [sys.executable, "-m", "scripts.images", "--registry", registry], cwd=repo, check=False
    )
    if result.returncode != 0:
        raise StepFailed(
            f"make images REGISTRY={registry} failed with exit status {result.returncode} (output above)"
        )


def ask_once(base_url: str, key: str, question: str, timeout_s: float = 120.0) -> tuple[int, str]:
    """(status, text): the answer's content, or the error body's message."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, timeout=timeout_s, headers=headers) as http:
        models = http.get("/v1/models")
        if models.status_code != 200:
            return models.status_code, models.text[:300]
        model = models.json()["data"][0]["id"]
        body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": 64}
        answer = http.post("/v1/chat/completions", json=body)
        if answer.status_code != 200:
            return answer.status_code, answer.text[:300]
        return 200, str(answer.json()["choices"][0]["message"]["content"])


class _LinesTo(io.TextIOBase):
    """A text stream that hands each finished line to `say` (the wait prints to a stream)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say, self._partial = say, ""

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._say(line)
        return len(text)


def wait_for_vllm(
    kubeconfig: Path,
    namespace: str,
    release: str,
    timeout_s: float,
    say: Callable[[str], None],
    **replay: Any,
) -> None:
    """The live wait-and-explain (node_bootstrap/vllm_wait.py): follows the release's vLLM pod through
    pulling, downloading (bytes and rate), loading, compiling and ready, printing through `say`. A pod
    that fails for good, a start-up past `timeout_s`, a kubeconfig it cannot use or an API that refuses
    becomes this step's one-sentence cause and fix. `replay` (clock, sleep, poll_s, progress_s) is for
    tests replaying a recorded start-up."""
    from . import vllm_wait

    try:
        reader = vllm_wait.KubeApi.from_kubeconfig(kubeconfig)
    except (ValueError, OSError) as error:
        raise StepFailed(f"{error}") from None
    try:
        result = vllm_wait.wait_for_vllm(
            reader, namespace, release, timeout=timeout_s, out=_LinesTo(say), **replay
        )
    except vllm_wait.KubeApiError as error:
        raise StepFailed(
            f"the Kubernetes API could not be read while waiting for vLLM: {error}. "
            "Fix: make doctor (is the control plane up? is the kubeconfig current?)"
        ) from None
    finally:
        reader.close()
    if not result.ready:
        raise StepFailed(f"{result.reason} Fix: {result.fix}")


@dataclass
class Environment:
    """Everything the steps reach outside this process. Tests substitute named doubles."""

    cluster_flow: Callable[[], None]
    outputs: Callable[[], dict[str, Any]]
    images: Callable[[str], None]
    kube: Callable[[], Kube]
    releases: Callable[[], Releases]
    pull_chart: Callable[[PinnedChart], Path]
    hf_access: Callable[[str, str], None]
    aws_identity: Callable[[str], str]
    wait_for_vllm: Callable[[str, str, float, Callable[[str], None]], None]
    ask: Callable[[str, str, str], tuple[int, str]]
    sleep: Callable[[float], None] = time.sleep
    question_url: Callable[[dict[str, Any]], str] | None = None  # default: the edge URL

    @classmethod
    def real(cls, settings: PlatformSettings, cluster_flow: Callable[[], None]) -> Environment:
        from . import helm_release

        return cls(
            cluster_flow=cluster_flow,
            outputs=lambda: terraform_outputs(settings.tf_dir),
            images=lambda registry: build_images(settings.repo, registry),
            kube=lambda: KubeAPI.from_kubeconfig(settings.kubeconfig),
            releases=lambda: HelmReleases(settings.kubeconfig),
            pull_chart=lambda chart: helm_release.pull(chart, settings.state_dir / "charts"),
            hf_access=lambda token, model: check_hf_access(settings.hf_endpoint, token, model),
            aws_identity=check_aws,
            wait_for_vllm=lambda namespace, release, timeout_s, say: wait_for_vllm(
                settings.kubeconfig, namespace, release, timeout_s, say
            ),
            ask=ask_once,
        )


# ----------------------------------------------------------------------------------- state, log


def _digest(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "-"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)


class State:
    """build/platform/state.json: {"steps": {name: {"digest", "finished", "seconds"}}}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"steps": {}}
        if path.is_file():
            try:
                self.data = json.loads(path.read_text())
            except ValueError:
                self.data = {"steps": {}}  # a torn write: every step runs again (each is idempotent)

    def done(self, step: str, digest: str) -> bool:
        entry = self.data["steps"].get(step)
        return bool(entry) and entry.get("digest") == digest

    def finish(self, step: str, digest: str, seconds: float, note: str) -> None:
        self.data["steps"][step] = {
            "digest": digest,
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "note": note,
        }
        self.save()

    def forget(self, step: str) -> None:
        self.data["steps"].pop(step, None)
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        _write_private(tmp, json.dumps(self.data, indent=2, sort_keys=True))
        tmp.replace(self.path)


class RunLog:
    """Console lines and a per-run log file, both through the redactor."""

    def __init__(self, directory: Path, redactor: Redactor, out: Callable[[str], None]) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{stamp}.log"
        suffix = 1
        while self.path.exists():  # two runs in one second
            self.path, suffix = directory / f"{stamp}-{suffix}.log", suffix + 1
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file = os.fdopen(fd, "w", buffering=1)
        self.redactor = redactor
        self._out = out

    def say(self, line: str) -> None:
        clean = self.redactor(line)
        self._out(clean)
        self.file_only(clean)

    def file_only(self, text: str) -> None:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%H:%M:%S")
        for line in self.redactor(text).splitlines() or [""]:
            self._file.write(f"{stamp} {line}\n")

    def close(self) -> None:
        self._file.close()


def _elapsed(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


# ----------------------------------------------------------------------------------- the flow


@dataclass
class Outcome:
    status: str  # done | unchanged | skipped
    note: str = ""


@dataclass
class Platform:
    settings: PlatformSettings
    env: Environment
    redactor: Redactor = field(default_factory=Redactor)
    out: Callable[[str], None] = print
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.state = State(self.settings.state_file)
        self._outputs: dict[str, Any] | None = None
        self._kube: Kube | None = None

    # -- the runner
    def run(self) -> int:
        """0 done, 1 a step failed, 2 something to provide first (preflight)."""
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        self.log = RunLog(self.settings.state_dir, self.redactor, self.out)
        started = self.clock()
        self.log.say(
            f"make platform: {len(STEPS)} steps; log {self.log.path}; state {self.settings.state_file}"
        )
        current = STEPS[0]
        try:
            for number, step in enumerate(STEPS, 1):
                current = step
                self._step(number, step, started)
            self._summary(started)
            return 0
        except BootstrapError as error:
            self.log.file_only(traceback.format_exc())
            self._failed(current, str(error), started)
            return 2 if isinstance(error, PreflightError) and current == "preflight" else 1
        except Exception as error:  # anything else is still one sentence plus the way back in
            self.log.file_only(traceback.format_exc())
            self._failed(current, f"{type(error).__name__}: {error}", started)
            return 1
        finally:
            if self._kube is not None:
                self._kube.close()
            self.log.close()

    def _step(self, number: int, step: str, started: float) -> None:
        label = f"[{number}/{len(STEPS)}] {step}"
        digest = getattr(self, f"_digest_{step.replace('-', '_')}")()
        if step != "preflight" and self.state.done(step, digest):
            note = self.state.data["steps"][step].get("note", "")
            self.log.say(f"{label}: unchanged (done in an earlier run){f' - {note}' if note else ''}")
            return
        self.log.say(f"{label} ...")
        begun = self.clock()
        outcome: Outcome = getattr(self, f"_run_{step.replace('-', '_')}")()
        took = self.clock() - begun
        self.state.finish(step, digest, took, outcome.note)
        detail = f" - {outcome.note}" if outcome.note else ""
        self.log.say(
            f"{label}: {outcome.status} in {_elapsed(took)} "
            f"(total {_elapsed(self.clock() - started)}){detail}"
        )

    def _failed(self, step: str, cause: str, started: float) -> None:
        number = STEPS.index(step) + 1
        cause = " ".join(cause.split())
        self.log.say(
            f"[{number}/{len(STEPS)}] {step}: FAILED after {_elapsed(self.clock() - started)} in all: {cause}"
        )
        self.log.say(
            f"Fix that, then resume with: {self.settings.resume_command} (the finished steps are skipped; "
            f"log {self.log.path})"
        )

    # -- shared facts
    def outputs(self) -> dict[str, Any]:
        if self._outputs is None:
            self._outputs = self.env.outputs()
        return self._outputs

    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = self.env.kube()
        return self._kube

    def user_values(self) -> dict[str, Any]:
        files = [self.settings.values_file]
        if self.settings.signin_values.is_file():
            files.append(self.settings.signin_values)
        return values_from_files(*files)

    def _token(self) -> str:
        token = self.settings.hf_token_file.read_text().strip()
        self.redactor.add(token)
        return token

    def _tfvars(self) -> str:
        return (self.settings.tf_dir / "terraform.tfvars").read_text()

    def region(self) -> str:
        match = re.search(r'^\s*region\s*=\s*"([^"]+)"', self._tfvars(), re.M)
        return match.group(1) if match else ""

    # -- 1 preflight: cheap facts, checked on every run
    def _digest_preflight(self) -> str:
        return "always"

    def _run_preflight(self) -> Outcome:
        s = self.settings
        tfvars = s.tf_dir / "terraform.tfvars"
        if not tfvars.is_file():
            raise PreflightError(
                f"{tfvars} does not exist. Fix: cp {tfvars}.example {tfvars} and fill in region, "
                "your address "
                "(admin_cidrs and client_cidrs) and ssh_public_key"
            )
        text = self._tfvars()
        missing = [n for n in REQUIRED_TFVARS if not re.search(rf"^\s*{n}\s*=", text, re.M)]
        if missing:
            raise PreflightError(
                f"{tfvars} does not set {', '.join(missing)}. Fix: set them (see {tfvars}.example)"
            )
        region = self.region()
        if not region:
            raise PreflightError(f'{tfvars} sets no region = "..." Fix: e.g. region = "us-east-1"')
        identity = self.env.aws_identity(region)
        token_file = s.hf_token_file
        if not token_file.is_file():
            raise PreflightError(
                f"no Hugging Face token file at {token_file}. Fix: create a Read token at "
                "https://huggingface.co/settings/tokens, save it with (umask 077; cat > hf-token), or point "
                "HF_TOKEN_FILE at the file (never the token itself in a command line)"
            )
        if token_file.stat().st_mode & 0o077:
            raise PreflightError(f"{token_file} is readable by others. Fix: chmod 600 {token_file}")
        token = self._token()
        if not token:
            raise PreflightError(f"{token_file} is empty. Fix: put the Hugging Face token in it")
        self.env.hf_access(token, s.model)
        values = self.user_values()
        oidc = values.get("chat-api", {}).get("auth", {}).get("oidc", {})
        if not oidc.get("issuerUrl"):
            raise PreflightError(
                f"nobody would have to sign in: {s.values_file} has no chat-api.auth.oidc.issuerUrl "
                "and there is "
                f"no {s.signin_values}. Fix: write {s.signin_values.name} with your provider's issuerUrl, "
                "clientId, clientSecretSecret and allowedDomains (README, Sign-in: Google and Cognito), or "
                "SIGNIN_VALUES=FILE"
            )
        secret_name = oidc.get("clientSecretSecret")
        if secret_name and not s.oidc_client_secret_file.is_file():
            raise PreflightError(
                f"chat-api.auth.oidc.clientSecretSecret names {secret_name!r} but "
                f"{s.oidc_client_secret_file} "
                "(the provider's client secret) does not exist. Fix: save it there (umask 077) or set "
                "OIDC_CLIENT_SECRET_FILE"
            )
        if s.monitoring and not s.monitoring_values.is_file():
            raise PreflightError(f"{s.monitoring_values} is missing (MONITORING=0 skips monitoring)")
        note = f"AWS {identity} in {region}; Hugging Face grants {s.model}; sign-in {oidc['issuerUrl']}"
        return Outcome("done", note)

    # -- 2 cluster: the existing flow (plan, cost per hour and day, confirmation, apply, bootstrap)
    def _digest_cluster(self) -> str:
        return _digest(_file_digest(self.settings.tf_dir / "terraform.tfvars"))

    def _run_cluster(self) -> Outcome:
        self.env.cluster_flow()
        self._outputs = None  # new resources, new outputs
        return Outcome("done", f"kubeconfig {self.settings.kubeconfig}")

    # -- 3 images: this project's chat-api and chat-ui, to the cluster's ECR (skipped when published)
    def registry(self) -> tuple[str, bool]:
        """(registry, published): the values' global.image.registry when set, else the cluster's ECR."""
        published = (self.user_values().get("global", {}).get("image", {}) or {}).get("registry", "")
        if published:
            return str(published), True
        registry = self.outputs().get("image_registry") or ""
        if not registry:
            raise StepFailed("terraform has no image_registry output; run make cluster again")
        return str(registry), False

    def _digest_images(self) -> str:
        head = subprocess.run(
            ["git", "-C", str(self.settings.repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        return _digest(self.registry(), head)

    def _run_images(self) -> Outcome:
        registry, published = self.registry()
        if published:
            return Outcome("skipped", f"the values use published images from {registry}: nothing to build")
        self.env.images(registry)
        return Outcome("done", f"chat-api and chat-ui pushed to {registry}")

    # -- 4 secrets: the Hugging Face token, the operator key, sign-in, Grafana's admin
    def _persistent_secret(self, path: Path, namespace: str, secret: str, key: str) -> str:
        """A generated secret kept in a 0600 file: read back from the cluster when the file is gone, so a
        re-run never rotates it by accident."""
        if path.is_file():
            value = path.read_text().strip()
        else:
            existing = (self.kube().read_secret(namespace, secret) or {}).get(key)
            value = existing.decode() if existing else secrets.token_urlsafe(32)
            _write_private(path, value + "\n")
        self.redactor.add(value)
        return value

    def _digest_secrets(self) -> str:
        # What the user gives (the generated keys are read back from the cluster when their files are gone).
        s, values = self.settings, self.user_values()
        names = (
            values.get("vllm-llama", {}).get("hfToken"),
            values.get("chat-api", {}).get("auth", {}).get("oidc"),
        )
        return _digest(
            _file_digest(s.hf_token_file), _file_digest(s.oidc_client_secret_file), s.monitoring, names
        )

    def _run_secrets(self) -> Outcome:
        s, kube = self.settings, self.kube()
        namespaces = [s.namespace] + (["monitoring"] if s.monitoring else [])
        for namespace in namespaces:
            kube.ensure_namespace(namespace)
        values = self.user_values()
        hf = values.get("vllm-llama", {}).get("hfToken", {})
        results = []
        hf_secret, hf_key = hf.get("existingSecret") or "hf-token", hf.get("key") or "token"
        token = self._token().encode()
        results.append(
            f"{hf_secret} {kube.apply_secret(s.namespace, hf_secret, {hf_key: token}, MANAGED_BY)}"
        )
        key = self._persistent_secret(
            s.operator_key_file, s.namespace, OPERATOR_KEYS_SECRET, OPERATOR_KEY_NAME
        )
        state = kube.apply_secret(
            s.namespace, OPERATOR_KEYS_SECRET, {OPERATOR_KEY_NAME: key.encode()}, MANAGED_BY
        )
        results.append(f"{OPERATOR_KEYS_SECRET} {state}")
        oidc = values.get("chat-api", {}).get("auth", {}).get("oidc", {})
        if oidc.get("clientSecretSecret"):
            client_secret = s.oidc_client_secret_file.read_text().strip()
            self.redactor.add(client_secret)
            session = self._persistent_secret(
                s.session_key_file, s.namespace, oidc["clientSecretSecret"], "session-key"
            )
            data = {"client-secret": client_secret.encode(), "session-key": session.encode()}
            results.append(
                f"{oidc['clientSecretSecret']} "
                + kube.apply_secret(s.namespace, oidc["clientSecretSecret"], data, MANAGED_BY)
            )
        if s.monitoring:
            password = self._persistent_secret(
                s.grafana_password_file, "monitoring", GRAFANA_ADMIN_SECRET, "admin-password"
            )
            data = {"admin-user": b"admin", "admin-password": password.encode()}
            results.append(
                f"{GRAFANA_ADMIN_SECRET} "
                + kube.apply_secret("monitoring", GRAFANA_ADMIN_SECRET, data, MANAGED_BY)
            )
        return Outcome("done", ", ".join(results))

    # -- 5 cert-manager: the UI's certificate from Let's Encrypt (only when the values ask for it)
    def _needs_cert_manager(self) -> bool:
        tls = self.user_values().get("chat-ui", {}).get("tls", {})
        return bool(tls.get("enabled") and tls.get("certManager", {}).get("enabled"))

    def _digest_cert_manager(self) -> str:
        return _digest(CERT_MANAGER, self._needs_cert_manager())

    def _run_cert_manager(self) -> Outcome:
        if not self._needs_cert_manager():
            return Outcome("skipped", "chat-ui.tls.certManager is off in the values: no cert-manager")
        chart = self.env.pull_chart(CERT_MANAGER)
        values = {"crds": {"enabled": True}}
        deploy(
            self.env.releases(),
            chart,
            "cert-manager",
            "cert-manager",
            values,
            self.settings.helm_timeout_s,
            True,
        )
        return Outcome("done", f"cert-manager {CERT_MANAGER.version} in namespace cert-manager")

    # -- 6 monitoring: kube-prometheus-stack at its pinned version, before the platform (its CRDs)
    def _digest_monitoring(self) -> str:
        s = self.settings
        return _digest(KUBE_PROMETHEUS_STACK, s.monitoring, _file_digest(s.monitoring_values))

    def _run_monitoring(self) -> Outcome:
        s = self.settings
        if not s.monitoring:
            return Outcome(
                "skipped", "MONITORING=0: no kube-prometheus-stack (the platform's dashboards wait for it)"
            )
        chart = self.env.pull_chart(KUBE_PROMETHEUS_STACK)
        values = values_from_files(s.monitoring_values)
        deploy(
            self.env.releases(), chart, "kube-prometheus-stack", "monitoring", values, s.helm_timeout_s, True
        )
        return Outcome(
            "done", f"kube-prometheus-stack {KUBE_PROMETHEUS_STACK.version} in namespace monitoring"
        )

    # -- 7 platform: the umbrella chart with the values files, the edge's values and the flow's own
    def platform_values(self) -> dict[str, Any]:
        outputs = self.outputs()
        values = self.user_values()
        edge_values = outputs.get("edge_values") or ""
        edge = yaml.safe_load(edge_values) or {}
        values = deep_merge(values, edge)
        registry, _ = self.registry()
        edge_url = (outputs.get("edge") or {}).get("url", "")
        flow: dict[str, Any] = {
            "global": {"image": {"registry": registry}},
            "chat-api": {"apiKeys": {"existingSecret": OPERATOR_KEYS_SECRET}},
        }
        oidc = values.get("chat-api", {}).get("auth", {}).get("oidc", {})
        if oidc.get("issuerUrl"):
            flow["chat-ui"] = {"config": {"signIn": True}}
            if not oidc.get("redirectUrl") and edge_url:
                flow["chat-api"]["auth"] = {"oidc": {"redirectUrl": f"{edge_url}/auth/callback"}}
        return deep_merge(values, flow)

    def _digest_platform(self) -> str:
        chart = self.settings.repo / "charts" / "platform"
        files = sorted(p for p in chart.rglob("*") if p.is_file())
        return _digest(self.platform_values(), [(str(p.relative_to(chart)), _file_digest(p)) for p in files])

    def _run_platform(self) -> Outcome:
        s = self.settings
        chart = s.repo / "charts" / "platform"
        release = deploy(
            self.env.releases(),
            chart,
            s.release,
            s.namespace,
            self.platform_values(),
            s.helm_timeout_s,
            False,
        )
        return Outcome(
            "done", f"release {s.release} revision {release.get('version', '?')} in namespace {s.namespace}"
        )

    # -- 8 wait: vLLM from image pull to ready, explained as it goes
    def _digest_wait(self) -> str:
        return self._digest_platform()

    def _run_wait(self) -> Outcome:
        s = self.settings
        self.env.wait_for_vllm(s.namespace, s.release, s.wait_timeout_s, self.log.say)
        return Outcome("done", "vLLM answers")

    # -- 9 question: one real question through the edge and chat-api, with the operator key
    def edge_url(self) -> str:
        url = (self.outputs().get("edge") or {}).get("url")
        if not url:
            raise StepFailed("terraform has no edge output (worker_count = 0?): the UI has no public address")
        return str(url)

    def _digest_question(self) -> str:
        return self._digest_platform()

    def _run_question(self) -> Outcome:
        s = self.settings
        url = self.env.question_url(self.outputs()) if self.env.question_url else self.edge_url()
        key = s.operator_key_file.read_text().strip()
        self.redactor.add(key)
        deadline = time.monotonic() + s.question_timeout_s
        question = "In one sentence: what is Kubernetes?"
        last, first_refusal = "", 0.0
        while True:
            try:
                status, text = self.env.ask(url, key, question)
            except Exception as error:  # TLS before the certificate exists, DNS, a connection refused
                status, text = 0, f"{type(error).__name__}: {error}"
            if status == 200:
                self.log.say(f"  Q: {question}")
                self.log.say(f"  A: {' '.join(text.split())[:300]}")
                return Outcome("done", f"answered through {url}/v1")
            if status == 401:
                # A new or replaced key Secret reaches the pod's files when kubelet syncs it (up to
                # about a minute), and chat-api re-reads its keys every 10 s: only then is it refused.
                first_refusal = first_refusal or time.monotonic()
                if time.monotonic() - first_refusal > s.key_sync_grace_s:
                    raise StepFailed(
                        f"{url}/v1 refuses the operator key from {s.operator_key_file} ({text[:160]}); "
                        f"check the Secret {OPERATOR_KEYS_SECRET} and chat-api.apiKeys.existingSecret"
                    )
            elif status in (400, 403, 404):
                raise StepFailed(f"{url}/v1 refused the question with {status}: {text}")
            if text != last:
                self.log.say(f"  not answering yet ({status or 'no connection'}: {text[:160]}); retrying")
                last = text
            if time.monotonic() > deadline:
                raise StepFailed(
                    f"{url} did not answer within {s.question_timeout_s:.0f} s (last: {text[:200]}); is this "
                    "machine's address in client_cidrs, and is the certificate issued "
                    "(kubectl get certificate)?"
                )
            self.env.sleep(min(10.0, s.key_sync_grace_s / 10) if status == 401 else 10.0)

    # -- the end: where everything is
    def _summary(self, started: float) -> None:
        s = self.settings
        url = self.edge_url()
        self.log.say(f"done in {_elapsed(self.clock() - started)}. The platform:")
        self.log.say(
            f"  chat UI    {url}  (sign in with your provider's account; the callback URL to register "
            f"there is {url}/auth/callback)"
        )
        self.log.say(
            f"  /v1        {url}/v1  (OpenAI-compatible; Authorization: Bearer $(cat {s.operator_key_file}))"
        )
        if s.monitoring:
            self.log.say(
                "  Grafana    kubectl --kubeconfig kubeconfig -n monitoring port-forward "
                "svc/kube-prometheus-stack-grafana "
                f"3000:80, then http://localhost:3000 (user admin, password in {s.grafana_password_file})"
            )
        self.log.say("  stop the bill: make pause (keeps the cluster) or make destroy (removes everything)")
