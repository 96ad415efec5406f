"""`make images` (scripts/images.py): builder discovery, tags, push and the ECR login, against the
named docker double in tests/chart/doubles/ (no container engine can run on the test machine), and
the link to the chart: what it pushes is what the chart deploys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import chart, images
from tests.chart import cases

pytestmark = pytest.mark.unit

DOUBLES = Path(__file__).with_name("doubles")
REGISTRY = "registry.example.com/team"


def _revision() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(chart.REPO), *args], capture_output=True, text=True).stdout

    sha = git("rev-parse", "--short=12", "HEAD").strip()
    return f"{sha}-dirty" if git("status", "--porcelain", "--untracked-files=no").strip() else sha


def _run(tmp_path: Path, *args: str, path: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    state = tmp_path / "docker"
    state.mkdir(exist_ok=True)
    environment = {
        **os.environ,
        "PATH": path if path is not None else f"{DOUBLES}{os.pathsep}{os.environ['PATH']}",
        "DOCKER_DOUBLE_DIR": str(state),
        **env,
    }
    environment.pop("REGISTRY", None)
    environment.pop("BUILDER", None)
    return subprocess.run(
        [sys.executable, "-m", "scripts.images", *args],
        cwd=chart.REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _argv_log(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "docker" / "argv.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _state(tmp_path: Path, name: str) -> Any:
    path = tmp_path / "docker" / name
    return json.loads(path.read_text()) if path.exists() else None


def test_make_images_builds_chat_api_and_chat_ui_for_amd64_tags_them_and_pushes_every_tag(
    tmp_path: Path,
) -> None:
    proc = _run(tmp_path, "--registry", REGISTRY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    revision = _revision()
    builds = [argv for argv in _argv_log(tmp_path) if argv[0] == "build"]
    expected = {"chat-api": chart.REPO / "services" / "chat-api", "chat-ui": chart.REPO / "ui"}
    assert [argv[-1] for argv in builds] == [str(path) for path in expected.values()]
    for argv, name in zip(builds, expected, strict=True):
        assert argv[argv.index("--platform") + 1] == "linux/amd64"
        assert argv[argv.index("--file") + 1] == str(expected[name] / "Dockerfile")
        tags = [argv[i + 1] for i, a in enumerate(argv) if a == "--tag"]
        assert tags == [
            f"{REGISTRY}/llama-platform/{name}:0.1.0",
            f"{REGISTRY}/llama-platform/{name}:0.1.0-{revision}",
        ]
    tags = ("0.1.0", f"0.1.0-{revision}")
    assert _state(tmp_path, "pushed.json") == [
        f"{REGISTRY}/llama-platform/{name}:{tag}" for name in expected for tag in tags
    ]
    commands = [argv[0] for argv in _argv_log(tmp_path)]
    last_build = max(i for i, c in enumerate(commands) if c == "build")
    assert commands.index("push") > last_build, "pushes only once every image built"
    assert "[1/2] chat-api: build" in proc.stdout and "(123 MB)" in proc.stdout
    assert f"--set global.image.registry={REGISTRY}" in proc.stdout


def test_the_chart_deploys_exactly_the_tags_make_images_pushes(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--registry", REGISTRY)
    assert proc.returncode == 0, proc.stderr
    pushed = set(_state(tmp_path, "pushed.json"))
    t4 = (cases.ENV_VALUES_DIR / "aws-t4.yaml",)
    manifests = cases.render_with(t4, {"global": {"image": {"registry": REGISTRY}}})
    for name in ("llama-chat-api", "llama-chat-ui"):
        pod = cases.find(manifests, "Deployment", name)["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] in pushed


def test_the_subcharts_app_versions_are_the_platform_version_make_images_tags_with() -> None:
    import yaml

    platform = yaml.safe_load((chart.UMBRELLA / "Chart.yaml").read_text())["appVersion"]
    for name in ("chat-api", "chat-ui"):
        sub = yaml.safe_load((chart.UMBRELLA / "charts" / name / "Chart.yaml").read_text())["appVersion"]
        assert sub == platform == images.catalogue()[name].version


def test_the_vllm_llama_image_builds_on_the_vllm_release_and_is_tagged_with_it(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--registry", REGISTRY, "--images", "vllm-llama", "--no-push")
    assert proc.returncode == 0, proc.stderr
    (build,) = [argv for argv in _argv_log(tmp_path) if argv[0] == "build"]
    assert build[build.index("--build-arg") + 1] == "VLLM_VERSION=0.32.0"
    assert f"{REGISTRY}/llama-platform/vllm-llama:v0.32.0" in build
    assert _state(tmp_path, "pushed.json") is None, "--no-push pushes nothing"


def test_without_any_builder_it_names_the_three_it_can_use_and_exits_non_zero(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = _run(tmp_path, "--registry", REGISTRY, path=str(empty))
    assert proc.returncode == 2
    assert "no OCI image builder on PATH" in proc.stderr
    assert all(name in proc.stderr for name in ("docker", "podman", "buildah"))


def test_on_this_machine_make_images_says_what_is_missing() -> None:
    proc = subprocess.run(
        # -o: never (re)install the venv from inside a test; only the images recipe runs.
        ["make", "-s", "-o", ".venv/.installed", "images", "REGISTRY=registry.example.com/team"],
        cwd=chart.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode == 0 or ("daemon does not answer" not in proc.stderr and shutil.which("docker")):
        pytest.skip("a working builder is installed here")
    assert proc.returncode != 0
    assert "no OCI image builder on PATH" in proc.stderr or "its daemon does not answer" in proc.stderr


def test_the_real_docker_cli_accepts_the_argv_the_script_builds() -> None:
    """The docker client on this machine parses flags before it needs a daemon: each argv must get
    as far as "Cannot connect to the Docker daemon", never "unknown flag" or "invalid argument"."""
    docker = shutil.which("docker", path=os.environ["PATH"].replace(str(DOUBLES), ""))
    if not docker or docker.startswith(str(DOUBLES)):
        pytest.skip("no docker client on this machine")
    catalogue = images.catalogue()
    argvs = [images.build_argv(docker, image, image.tags(REGISTRY, "abc")) for image in catalogue.values()]
    argvs.append([docker, "push", catalogue["chat-api"].tags(REGISTRY, "abc")[0]])
    for argv in argvs:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if "Cannot connect to the Docker daemon" not in proc.stderr:
            pytest.skip(f"a docker daemon answers here; not building for real: {proc.stderr[-200:]}")
        assert "unknown flag" not in proc.stderr and "invalid argument" not in proc.stderr, proc.stderr


def _terraform_state(directory: Path, outputs: dict[str, str]) -> Path:
    """A state as `make cluster` leaves it in terraform/ (format version 4, Terraform >= 0.12)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "version": 4,
        "terraform_version": "1.11.4",
        "serial": 1,
        "lineage": "3f0a8d4e-0000-4000-8000-000000000014",
        "outputs": {name: {"value": value, "type": "string"} for name, value in outputs.items()},
        "resources": [],
        "check_results": None,
    }
    (directory / "terraform.tfstate").write_text(json.dumps(state))
    return directory


def test_without_a_registry_or_a_cluster_it_says_what_to_run_and_builds_nothing(tmp_path: Path) -> None:
    # Before make cluster: terraform/ has no state, so no image_registry output.
    proc = _run(tmp_path, "--terraform-dir", str(tmp_path / "no-cluster"))
    assert proc.returncode == 2
    said = " ".join(proc.stderr.split())
    assert "REGISTRY is not set and there is no ECR registry from make cluster" in said
    assert "run make cluster first" in said and "make images REGISTRY=ghcr.io/you" in said
    assert _argv_log(tmp_path) == []


def test_without_terraform_on_path_it_says_the_same_and_builds_nothing(tmp_path: Path) -> None:
    state = _terraform_state(
        tmp_path / "terraform", {"image_registry": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x"}
    )
    proc = _run(tmp_path, "--terraform-dir", str(state), path=str(DOUBLES))
    assert proc.returncode == 2 and "REGISTRY is not set" in proc.stderr
    assert _argv_log(tmp_path) == []


def test_after_make_cluster_it_pushes_to_the_clusters_ecr_registry_logged_in_on_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real terraform reads the state make cluster left; ECR's token comes from moto."""
    moto = pytest.importorskip("moto")
    if not shutil.which("terraform"):
        pytest.skip("terraform is not installed")
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/llama"
    state = _terraform_state(
        tmp_path / "terraform", {"image_registry": registry, "control_plane_endpoint": "x"}
    )
    docker = tmp_path / "docker"
    docker.mkdir()
    monkeypatch.setenv("PATH", f"{DOUBLES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_DOUBLE_DIR", str(docker))
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    for key in ("BUILDER", "REGISTRY", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    with moto.mock_aws():
        assert images.main(["--terraform-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert f"the ECR registry make cluster created (terraform output image_registry): {registry}" in out
    assert _state(tmp_path, "logins.json") == ["123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
    pushed = _state(tmp_path, "pushed.json")
    assert len(pushed) == 4 and all(tag.startswith(f"{registry}/llama-platform/chat-") for tag in pushed)
    password = (docker / "login-password").read_text()
    assert password and password not in (docker / "argv.log").read_text()
    assert f"--set global.image.registry={registry}" in out


@pytest.mark.parametrize("registry", ["https://registry.example.com", "Registry.Example.com", "r.example/"])
def test_a_registry_that_is_not_a_reference_is_refused(tmp_path: Path, registry: str) -> None:
    proc = _run(tmp_path, "--registry", registry)
    assert proc.returncode == 2 and f"REGISTRY={registry} is not a registry reference" in proc.stderr
    assert _argv_log(tmp_path) == []


def test_docker_without_its_daemon_is_named_with_the_fix(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--registry", REGISTRY, DOCKER_DOUBLE_NO_DAEMON="1")
    assert proc.returncode == 2
    assert "docker is installed but its daemon does not answer" in proc.stderr
    assert "BUILDER=podman" in proc.stderr
    assert [argv[0] for argv in _argv_log(tmp_path)] == ["version"]


def test_the_double_is_as_strict_as_docker_about_tags_and_unbuilt_pushes(tmp_path: Path) -> None:
    state = tmp_path / "docker"
    state.mkdir()
    env = {**os.environ, "DOCKER_DOUBLE_DIR": str(state)}
    docker = str(DOUBLES / "docker")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([docker, *args], env=env, capture_output=True, text=True, check=False)

    bad_tag = run("build", "--tag", "Registry.example.com/X:1", str(chart.REPO / "ui"))
    assert bad_tag.returncode == 125 and "invalid reference format" in bad_tag.stderr
    assert run("build", "--tga", "r.example/x:1", str(chart.REPO / "ui")).returncode == 125
    assert "does not exist locally" in run("push", "r.example/never-built:1").stderr


def test_an_ecr_registry_is_logged_in_with_a_token_on_stdin_never_in_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    moto = pytest.importorskip("moto")
    state = tmp_path / "docker"
    state.mkdir()
    monkeypatch.setenv("PATH", f"{DOUBLES}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_DOUBLE_DIR", str(state))
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("BUILDER", raising=False)
    registry = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    with moto.mock_aws():
        password = images.ecr_password("eu-west-1")
        assert images.main(["--registry", registry]) == 0
    assert _state(tmp_path, "logins.json") == [registry]
    assert (state / "login-password").read_text() == password
    argv = (state / "argv.log").read_text()
    assert password not in argv
    assert len(_state(tmp_path, "pushed.json")) == 4
