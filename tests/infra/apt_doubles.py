"""Double apt repositories: real .deb packages whose programs are the test doubles.

They stand in for the repositories this machine cannot reach or use (pkgs.k8s.io, NVIDIA's
libnvidia-container, Ubuntu's archive for containerd and the driver). The node scripts run the
real apt-get and dpkg against them, so the pins, holds and "already installed" checks are real.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
from pathlib import Path

# repository -> [(package, version, [commands it provides], Depends)]. The Depends are the real
# packages' where the scripts rely on them (apt must resolve them, as on a node).
# containerd is not here: the nodes use the test machine's real Debian containerd (its overlay
# root shows it, and dpkg lists it installed, like an image with containerd preinstalled).
REPOSITORIES: dict[str, list[tuple[str, str, list[str], str]]] = {
    "nvidia": [
        ("nvidia-container-toolkit-base", "1.17.8-1", ["nvidia-ctk", "nvidia-container-runtime"], ""),
        ("nvidia-container-toolkit", "1.17.8-1", [], "nvidia-container-toolkit-base (= 1.17.8-1)"),
    ],
    "ubuntu": [
        # What install-kubernetes-binaries takes from the distribution (kubeadm's preflight).
        *((p, "1.0-0ubuntu1", [], "") for p in ("conntrack", "socat", "ethtool", "iptables")),
        # Canonical's prebuilt, signed modules for the running kernel (the test machine's, as
        # `uname -r` says on the nodes); the DKMS packages below stay for kernels without them.
        (f"linux-modules-nvidia-580-server-{os.uname().release}", "580.95.05-0ubuntu0.22.04.1", [], ""),
        ("nvidia-headless-no-dkms-580-server", "580.95.05-0ubuntu0.22.04.1", [], ""),
        ("nvidia-headless-580-server", "580.95.05-0ubuntu0.22.04.1", [], ""),
        ("nvidia-utils-580-server", "580.95.05-0ubuntu0.22.04.1", ["nvidia-smi"], ""),
    ],
}

WRAPPER = """#!/bin/sh
# TEST DOUBLE of {command} (llama-platform tests/infra/node_doubles/double.py): records its calls.
exec /usr/bin/python3 /srv/node-doubles/double.py {command} "$@"
"""


def build_deb(workdir: Path, package: str, version: str, commands: list[str], depends: str) -> Path:
    stage = workdir / f"{package}_{version}"
    (stage / "DEBIAN").mkdir(parents=True)
    (stage / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        + (f"Depends: {depends}\n" if depends else "")
        + "Maintainer: llama-platform tests <tests@invalid>\n"
        f"Description: TEST DOUBLE of {package} for the node-bootstrap sandbox\n"
    )
    for command in commands:
        binary = stage / "usr" / "bin" / command
        binary.parent.mkdir(parents=True, exist_ok=True)
        binary.write_text(WRAPPER.format(command=command))
        binary.chmod(0o755)
    deb = workdir / f"{package}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(stage), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


def packages_entry(deb: Path, repo_dir: Path) -> str:
    control = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
    data = deb.read_bytes()
    return (
        control.rstrip("\n")
        + f"\nFilename: ./{deb.relative_to(repo_dir)}\nSize: {len(data)}\n"
        + f"MD5sum: {hashlib.md5(data).hexdigest()}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"  # noqa: S324
    )


def build_repositories(root: Path) -> Path:
    """Flat repositories root/<name>/ (Packages + debs), usable as `deb [trusted=yes] file:DIR ./`."""
    for name, packages in REPOSITORIES.items():
        repo = root / name
        repo.mkdir(parents=True, exist_ok=True)
        entries = [packages_entry(build_deb(repo, *package), repo) for package in packages]
        index = "\n".join(entries)
        (repo / "Packages").write_text(index)
        # apt asks for a compressed index first; without one it logs errors before falling back.
        (repo / "Packages.gz").write_bytes(gzip.compress(index.encode(), mtime=0))
        for stage in repo.iterdir():
            if stage.is_dir():
                subprocess.run(["rm", "-rf", str(stage)], check=True)
    return root


def _tar(path: Path, files: dict[str, str]) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))


def build_kubernetes_release(root: Path) -> dict[str, str]:
    """Double of the release downloads (dl.k8s.io, cri-tools and CNI releases on GitHub) as files
    the nodes fetch with curl from file:// URLs: the doubles' programs, laid out as upstream
    (<version>/bin/linux/amd64/<name>, crictl and CNI tarballs). Returns the node.env overrides
    pointing at them, with their real SHA-256s, so the nodes' checksum verification runs for real.
    v1.29.14 is there too, so a wrong version in a URL would be visible."""
    env: dict[str, str] = {}
    for version in ("v1.29.15", "v1.29.14"):
        bin_dir = root / version / "bin/linux/amd64"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for name in ("kubeadm", "kubelet", "kubectl"):
            (bin_dir / name).write_text(WRAPPER.format(command=name) + f"# release {version}\n")
            if version == "v1.29.15":
                digest = hashlib.sha256((bin_dir / name).read_bytes()).hexdigest()
                env[f"NODE_BOOTSTRAP_K8S_SHA256_{name.upper()}"] = digest
    env["NODE_BOOTSTRAP_K8S_RELEASE_URL"] = "file:///srv/apt-doubles/k8s-release/v1.29.15/bin/linux/amd64"
    _tar(root / "crictl.tar.gz", {"crictl": WRAPPER.format(command="crictl")})
    _tar(root / "cni-plugins.tgz", {"loopback": "#!/bin/sh\n# TEST DOUBLE of the CNI loopback plugin\n"})
    # cloud-provider-aws's ecr-credential-provider (artifacts.k8s.io/binaries/cloud-provider-aws/...).
    ecr = root / "ecr-credential-provider-linux-amd64"
    ecr.write_text(
        "#!/bin/sh\n# TEST DOUBLE of ecr-credential-provider (the kubelet doubles never run it)\nexit 1\n"
    )
    for key, name in (
        ("CRICTL", "crictl.tar.gz"),
        ("CNI", "cni-plugins.tgz"),
        ("ECR_CREDENTIAL_PROVIDER", ecr.name),
    ):
        env[f"NODE_BOOTSTRAP_{key}_URL"] = f"file:///srv/apt-doubles/k8s-release/{name}"
        env[f"NODE_BOOTSTRAP_{key}_SHA256"] = hashlib.sha256((root / name).read_bytes()).hexdigest()
    return env
