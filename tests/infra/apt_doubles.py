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
    "k8s": [
        ("kubelet", "1.29.15-1.1", ["kubelet"], ""),
        # pkgs.k8s.io's kubeadm depends on cri-tools (crictl): kubeadm's preflight needs it.
        ("kubeadm", "1.29.15-1.1", ["kubeadm"], "cri-tools (>= 1.28.0)"),
        ("kubectl", "1.29.15-1.1", ["kubectl"], ""),
        ("cri-tools", "1.29.0-1.1", ["crictl"], ""),
        # An older patch release, so a wrong pin would be visible.
        ("kubeadm", "1.29.14-1.1", ["kubeadm"], "cri-tools (>= 1.28.0)"),
    ],
    "nvidia": [
        ("nvidia-container-toolkit-base", "1.17.8-1", ["nvidia-ctk", "nvidia-container-runtime"], ""),
        ("nvidia-container-toolkit", "1.17.8-1", [], "nvidia-container-toolkit-base (= 1.17.8-1)"),
    ],
    "ubuntu": [
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
