"""Host keys read from the EC2 console through boto3 against moto (GetConsoleOutput), polled until
cloud-init printed them, cached per instance id, and the cache used after a stop/start.

moto_server_with_ec2_quotas.py answers GetConsoleOutput from MOTO_CONSOLE_DIR/<instance id>.txt:
the test writes that file when the "instance" has booted, in the format cloud-init 24.1's
cc_keys_to_console (write-ssh-key-fingerprints) prints.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from node_bootstrap.cluster import ensure_known_hosts
from node_bootstrap.hostkeys import HostKeyCache, ec2_console_fetcher, sha256_fingerprint
from node_bootstrap.inventory import parse_inventory
from node_bootstrap.settings import Settings

from scripts.local_run.process import ManagedProcess, free_port, http_ok

from .terraform_env import REPO

pytestmark = pytest.mark.integration
REGION = "eu-west-1"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("moto-console")
    consoles = workdir / "consoles"
    consoles.mkdir()
    port = free_port()
    server = ManagedProcess(
        name="moto_server",
        argv=[
            str(REPO / ".venv/bin/python"),
            str(Path(__file__).with_name("moto_server_with_ec2_quotas.py")),
            "-H", "127.0.0.1", "-p", str(port),
        ],
        log_path=workdir / "moto.log",
        env={"MOTO_CONSOLE_DIR": str(consoles)},
    ).start()  # fmt: skip
    try:
        server.wait_ready(http_ok(f"http://127.0.0.1:{port}/moto-api/"), timeout=60)
        yield f"http://127.0.0.1:{port}", consoles
    finally:
        server.stop()


def console_text(key_file: Path) -> str:
    """What cloud-init prints to the console on an instance's first boot."""
    return cloud_init_console(key_file.with_suffix(".pub").read_text().split()[1])


def cloud_init_console(key_b64: str, hostname: str = "ip-10-10-0-10") -> str:
    """The console text of cloud-init 24.1's cc_keys_to_console for one ed25519 host key."""
    return (
        "[   12.3] cloud-init[812]: Cloud-init v. 24.1 running 'modules:final'\n"
        "ec2: #############################################################\n"
        "ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"ec2: 256 SHA256:{sha256_fingerprint(key_b64)} root@{hostname} (ED25519)\n"
        "ec2: -----END SSH HOST KEY FINGERPRINTS-----\n"
        "ec2: #############################################################\n"
        "-----BEGIN SSH HOST KEY KEYS-----\n"
        f"ssh-ed25519 {key_b64} root@{hostname}\n"
        "-----END SSH HOST KEY KEYS-----\n"
    )


def host_key(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_console_keys_are_polled_from_ec2_cached_per_instance_and_reused_after_a_stop_start(
    moto: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, consoles = moto
    for key, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(key, value)
    ec2 = boto3.client("ec2", region_name=REGION)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    ids = [
        i["InstanceId"]
        for i in ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, InstanceType="t3.medium")[
            "Instances"
        ]
    ]
    inventory = parse_inventory(
        {
            "cluster_name": "llama",
            "kubernetes_version": "v1.29.15",
            "ssh_user": "ubuntu",
            "region": REGION,
            "nodes": [
                {"name": "llama-cp-1", "role": "control-plane", "public_ip": "198.51.100.110",
                 "private_ip": "10.10.0.10", "instance_id": ids[0]},
                {"name": "llama-worker-1", "role": "worker", "public_ip": "198.51.100.111",
                 "private_ip": "10.10.0.11", "instance_id": ids[1]},
            ],
        }
    )  # fmt: skip
    keys = [host_key(tmp_path / f"host{i}") for i in range(3)]
    settings = Settings(state_dir=tmp_path / "state", console_timeout=60, console_interval=0.3)
    reads: list[str] = []
    ec2_fetch = ec2_console_fetcher(REGION)

    def fetch(instance_id: str) -> str:
        reads.append(instance_id)
        return ec2_fetch(instance_id)

    # The control plane printed its keys already; the worker is still booting for a second.
    (consoles / f"{ids[0]}.txt").write_text(console_text(keys[0]))
    booting = threading.Timer(1.0, lambda: (consoles / f"{ids[1]}.txt").write_text(console_text(keys[1])))
    booting.start()
    started = time.monotonic()
    path = ensure_known_hosts(settings, inventory, fetch=fetch)
    booting.join()
    assert time.monotonic() - started >= 1.0, "it waited for the worker's console"
    assert reads.count(ids[1]) >= 2 and reads.count(ids[0]) == 1
    pub = [k.with_suffix(".pub").read_text().split()[1] for k in keys]
    assert path.read_text() == (f"198.51.100.110 ssh-ed25519 {pub[0]}\n198.51.100.111 ssh-ed25519 {pub[1]}\n")
    assert path.stat().st_mode & 0o777 == 0o600

    # Stop/start of both: the latest console output has no keys any more (moto's sample text).
    ec2.stop_instances(InstanceIds=ids)
    ec2.start_instances(InstanceIds=ids)
    for console in consoles.glob("*.txt"):
        console.unlink()
    assert "SSH HOST KEY" not in ec2_fetch(ids[0])
    reads.clear()
    again = ensure_known_hosts(settings, inventory, fetch=fetch)
    assert reads == [], "the cached keys are used; the console is not read"
    assert again.read_text() == path.read_text()

    # A replaced worker (new instance id): its console is read, the old id is forgotten.
    new = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.medium")["Instances"][0]
    ec2.terminate_instances(InstanceIds=[ids[1]])
    (consoles / f"{new['InstanceId']}.txt").write_text(console_text(keys[2]))
    replaced = parse_inventory(
        {
            "cluster_name": "llama", "kubernetes_version": "v1.29.15", "ssh_user": "ubuntu", "region": REGION,
            "nodes": [
                {"name": "llama-cp-1", "role": "control-plane", "public_ip": "198.51.100.110",
                 "private_ip": "10.10.0.10", "instance_id": ids[0]},
                {"name": "llama-worker-1", "role": "worker", "public_ip": "198.51.100.112",
                 "private_ip": "10.10.0.11", "instance_id": new["InstanceId"]},
            ],
        }
    )  # fmt: skip
    reads.clear()
    third = ensure_known_hosts(settings, replaced, fetch=fetch)
    assert reads == [new["InstanceId"]]
    assert f"198.51.100.112 ssh-ed25519 {pub[2]}\n" in third.read_text()
    assert set(HostKeyCache(settings.host_key_cache).entries) == {ids[0], new["InstanceId"]}
