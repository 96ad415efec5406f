"""Build the platform's own images and push them to the registry the user names (`make images`).

    python -m scripts.images [--registry REGISTRY] [--images chat-api chat-ui vllm-llama] [--no-push]

chat-api (services/chat-api) and chat-ui (ui) are published nowhere else: the chart pulls them
from `global.image.registry` as REGISTRY/llama-platform/<name>:<appVersion>. Each image gets two
tags: the chart's appVersion (what the chart deploys) and <appVersion>-<git revision> (what was
built, `-dirty` when the worktree has uncommitted changes). The optional vllm-llama image
(services/vllm-llama, upstream vLLM plus a non-root user) is tagged v<vLLM release> the same way.

The builder is the first of docker, podman and buildah on PATH (or BUILDER). Images are built for
linux/amd64, the nodes' platform, whatever machine builds them. Without REGISTRY the images go to
the ECR registry `make cluster` created (terraform output image_registry), which the cluster's
workers pull from with their instance profile. For an Amazon ECR registry the script logs the
builder in with a token from ECR's API (what `aws ecr get-login-password` prints), passed on
stdin (`login --password-stdin`), never in argv.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = REPO / "terraform"
UMBRELLA = REPO / "charts" / "platform"
BUILDERS = ("docker", "podman", "buildah")
PLATFORM = "linux/amd64"
# host[:port][/path], lowercase, no scheme: what an image reference accepts before the repository.
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9._-]+)*$")
_ECR = re.compile(r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")


class ImagesError(Exception):
    """Something the user must fix; the message says what and how."""


@dataclass(frozen=True)
class Image:
    name: str
    context: Path
    version: str  # the tag the chart deploys
    build_args: tuple[tuple[str, str], ...] = ()

    def tags(self, registry: str, revision: str) -> list[str]:
        repo = f"{registry.rstrip('/')}/llama-platform/{self.name}"
        return [f"{repo}:{self.version}", f"{repo}:{self.version}-{revision}"]


def _chart_yaml(path: Path) -> dict:
    return yaml.safe_load((path / "Chart.yaml").read_text(encoding="utf-8"))


def catalogue() -> dict[str, Image]:
    """Every image `make images` can build, with the version the chart deploys it at."""
    app_version = str(_chart_yaml(UMBRELLA)["appVersion"])
    vllm = str(_chart_yaml(UMBRELLA / "charts" / "vllm-llama")["appVersion"])
    return {
        "chat-api": Image("chat-api", REPO / "services" / "chat-api", app_version),
        "chat-ui": Image("chat-ui", REPO / "ui", app_version),
        "vllm-llama": Image(
            "vllm-llama", REPO / "services" / "vllm-llama", f"v{vllm}", (("VLLM_VERSION", vllm),)
        ),
    }


def git_revision() -> str:
    """Short commit of HEAD, `-dirty` when tracked files changed since."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as error:
        raise ImagesError(f"cannot read the git revision to tag with ({error}); run in a git clone") from None
    return f"{sha}-dirty" if dirty else sha


def find_builder(env: dict[str, str]) -> str:
    wanted = env.get("BUILDER", "")
    if wanted:
        if wanted not in BUILDERS:
            raise ImagesError(f"BUILDER={wanted} is not one of {', '.join(BUILDERS)}")
        if not shutil.which(wanted, path=env.get("PATH")):
            raise ImagesError(f"BUILDER={wanted}, but {wanted} is not on PATH")
        return wanted
    for name in BUILDERS:
        if shutil.which(name, path=env.get("PATH")):
            return name
    raise ImagesError(
        "no OCI image builder on PATH: make images needs one of docker "
        "(https://docs.docker.com/engine/install/), podman (apt-get install podman) or buildah "
        "(apt-get install buildah)"
    )


def terraform_registry(tf_dir: Path) -> str:
    """The ECR registry `make cluster` created (terraform output image_registry), "" without one."""
    terraform = shutil.which("terraform")
    if terraform is None:
        return ""
    proc = subprocess.run(
        [terraform, f"-chdir={tf_dir}", "output", "-no-color", "-json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        return ""
    try:
        outputs = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:
        return ""
    value = outputs.get("image_registry", {}).get("value", "")
    return value if isinstance(value, str) else ""


def check_registry(registry: str, tf_dir: Path = TERRAFORM_DIR) -> str:
    if not registry:
        registry = terraform_registry(tf_dir)
        if not registry:
            raise ImagesError(
                "REGISTRY is not set and there is no ECR registry from make cluster (terraform output "
                f"image_registry in {tf_dir} is empty). Fix: run make cluster first (it creates the ECR "
                "repositories the nodes pull from; then plain make images pushes there), or name a "
                "registry the nodes can pull from: make images REGISTRY=ghcr.io/you"
            )
        print(
            "REGISTRY not set: pushing to the ECR registry make cluster created "
            f"(terraform output image_registry): {registry}"
        )
    if not _REGISTRY.match(registry):
        raise ImagesError(
            f"REGISTRY={registry} is not a registry reference: write host[:port][/path] in lowercase, "
            "without https://, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        )
    return registry


def _run(argv: list[str], stdin: str | None = None) -> None:
    print("  $ " + " ".join(argv), flush=True)
    proc = subprocess.run(argv, input=stdin, text=True, check=False)
    if proc.returncode != 0:
        raise ImagesError(f"{argv[0]} {argv[1]} failed with exit status {proc.returncode} (output above)")


def check_builder_works(builder: str) -> None:
    if builder != "docker":
        return
    proc = subprocess.run(
        [builder, "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise ImagesError(
            "docker is installed but its daemon does not answer "
            f"({proc.stderr.strip() or proc.stdout.strip()}): start it (sudo systemctl start docker), "
            "or use another builder: make images BUILDER=podman"
        )


def ecr_password(region: str) -> str:
    """A 12-hour ECR token for the builder's login (AWS credentials as for `make cluster`)."""
    import boto3

    data = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if user != "AWS" or not password:
        raise ImagesError("ECR returned an authorization token in an unexpected shape")
    return password


def login_if_ecr(builder: str, registry: str) -> None:
    host = registry.split("/", 1)[0]
    match = _ECR.match(host)
    if not match:
        return
    print(f"logging {builder} in to {host} with a token from ECR (on stdin)", flush=True)
    password = ecr_password(match["region"])
    _run([builder, "login", "--username", "AWS", "--password-stdin", host], stdin=password)


def build_argv(builder: str, image: Image, tags: Sequence[str]) -> list[str]:
    # docker, podman and buildah share this shape: `build` with --platform, --file, --tag (repeatable),
    # --build-arg (repeatable) and the context directory last.
    argv = [builder, "build", "--platform", PLATFORM, "--file", str(image.context / "Dockerfile")]
    for tag in tags:
        argv += ["--tag", tag]
    for key, value in image.build_args:
        argv += ["--build-arg", f"{key}={value}"]
    return [*argv, str(image.context)]


def image_size(builder: str, tag: str) -> str:
    argv = (
        [builder, "inspect", "--format", "{{.Docker.Size}}", tag]
        if builder == "buildah"
        else [builder, "image", "inspect", "--format", "{{.Size}}", tag]
    )
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    try:
        return f"{int(proc.stdout.strip()) / 1e6:.0f} MB"
    except ValueError:
        return "size unknown"


def main(argv: Sequence[str] | None = None) -> int:
    images = catalogue()
    parser = argparse.ArgumentParser(prog="python -m scripts.images", description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=os.environ.get("REGISTRY", ""), help="host[:port][/path]")
    parser.add_argument(
        "--images", nargs="+", default=["chat-api", "chat-ui"], choices=sorted(images), help="what to build"
    )
    parser.add_argument("--no-push", action="store_true", help="build and tag only")
    parser.add_argument(
        "--terraform-dir",
        type=Path,
        default=TERRAFORM_DIR,
        help="where make cluster's state is (default REGISTRY)",
    )
    args = parser.parse_args(argv)
    try:
        registry = check_registry(args.registry, args.terraform_dir)
        builder = find_builder(dict(os.environ))
        check_builder_works(builder)
        revision = git_revision()
        chosen = [images[name] for name in args.images]
        pushed: list[tuple[str, str]] = []
        print(f"building {', '.join(args.images)} with {builder} for {PLATFORM} (revision {revision})")
        for number, image in enumerate(chosen, 1):
            tags = image.tags(registry, revision)
            started = time.monotonic()
            print(f"[{number}/{len(chosen)}] {image.name}: build", flush=True)
            _run(build_argv(builder, image, tags))
            print(f"[{number}/{len(chosen)}] {image.name}: built in {time.monotonic() - started:.0f} s")
            pushed.append((tags[0], image_size(builder, tags[0])))
        if not args.no_push:
            login_if_ecr(builder, registry)
            for image in chosen:
                for tag in image.tags(registry, revision):
                    print(f"pushing {tag}", flush=True)
                    _run([builder, "push", tag])
    except ImagesError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\nimages:" if not args.no_push else "\nimages (built, not pushed):")
    for tag, size in pushed:
        print(f"  {tag}  ({size})")
    print(f"\ninstall with: --set global.image.registry={registry}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
