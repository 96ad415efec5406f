"""Verified SSH host keys: read from each instance's EC2 console output, written to known_hosts.

cloud-init prints the host's public keys between `-----BEGIN SSH HOST KEY KEYS-----` and
`-----END SSH HOST KEY KEYS-----` on the serial console, which only the AWS API (with the
account's credentials) can read: a trusted channel independent of the SSH connection itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import HostKeyError
from .inventory import Node

_KEY_LINE = re.compile(r"\b(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa)\s+(AAAA[0-9A-Za-z+/]+=*)")
_FINGERPRINT_LINE = re.compile(r"\bSHA256:([0-9A-Za-z+/]+)\s+\S*\s*\((ED25519|ECDSA|RSA)\)")


def sha256_fingerprint(key_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_b64, validate=True)).digest()
    return base64.b64encode(digest).decode().rstrip("=")


def _fingerprint_or_none(key_b64: str) -> str | None:
    try:
        return sha256_fingerprint(key_b64)
    except (binascii.Error, ValueError):
        return None


def _block(text: str, name: str) -> str | None:
    start = text.rfind(f"-----BEGIN {name}-----")  # rfind: the newest boot's block
    if start < 0:
        return None
    end = text.find(f"-----END {name}-----", start)
    return text[start:end] if end > 0 else None


def parse_console_host_keys(console: str) -> list[tuple[str, str]]:
    """(key type, base64) pairs of the host keys cloud-init printed; empty while not printed yet.

    When the fingerprint block is there too, a key is kept only when it matches one of its
    fingerprints: a garbled or truncated console line (the serial console interleaves kernel
    and cloud-init output) is skipped, not trusted; the other keys still count. Only when keys
    were printed and none of them checks out is that an error.
    """
    keys_block = _block(console, "SSH HOST KEY KEYS")
    if keys_block is None:
        return []
    keys = [(m.group(1), m.group(2)) for m in _KEY_LINE.finditer(keys_block)]
    fingerprints_block = _block(console, "SSH HOST KEY FINGERPRINTS")
    if fingerprints_block is None:
        return [(t, k) for t, k in keys if _fingerprint_or_none(k) is not None]
    printed = {m.group(1) for m in _FINGERPRINT_LINE.finditer(fingerprints_block)}
    verified = [(t, k) for t, k in keys if _fingerprint_or_none(k) in printed]
    if keys and not verified:
        raise HostKeyError(
            f"none of the console's {len(keys)} host keys matches a printed fingerprint; refusing to "
            "trust them. Fix: look at the instance's console output in the EC2 console, or pass "
            "--known-hosts with keys you verified another way."
        )
    return verified


def known_hosts_lines(node: Node, keys: Iterable[tuple[str, str]], port: int = 22) -> list[str]:
    host = node.public_ip if port == 22 else f"[{node.public_ip}]:{port}"
    return [f"{host} {key_type} {key_b64}" for key_type, key_b64 in keys]


def write_known_hosts(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))
    path.chmod(0o600)


def console_host_keys(
    node: Node,
    fetch_console: Callable[[str], str],
    timeout: float,
    interval: float = 15.0,
) -> list[tuple[str, str]]:
    """Poll the console output until cloud-init has printed the keys (a few minutes after boot)."""
    deadline = time.monotonic() + timeout
    while True:
        keys = parse_console_host_keys(fetch_console(node.instance_id))
        if keys:
            return keys
        if time.monotonic() > deadline:
            raise HostKeyError(
                f"node {node.name} ({node.instance_id}): no SSH host keys in the EC2 console output "
                f"after {timeout:.0f} s. Fix: wait for the instance to finish booting and re-run, or "
                "pass --known-hosts with keys you verified another way."
            )
        time.sleep(interval)


class HostKeyCache:
    """Verified host keys per EC2 instance id (JSON, 0600), so they outlive the console output.

    cloud-init prints the keys to the console once per instance (cc_keys_to_console runs
    per-instance), and `Latest=True` console output after a stop/start no longer holds them.
    The keys belong to the instance, not its address: a new public IP reuses them, a replaced
    instance (new id) is read from its console again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.entries: dict[str, list[list[str]]] = json.loads(path.read_text())
        except FileNotFoundError:
            self.entries = {}

    def get(self, instance_id: str) -> list[tuple[str, str]] | None:
        keys = self.entries.get(instance_id)
        return [(t, k) for t, k in keys] if keys else None

    def put(self, instance_id: str, keys: list[tuple[str, str]]) -> None:
        self.entries[instance_id] = [[t, k] for t, k in keys]
        self._save()

    def keep_only(self, instance_ids: set[str]) -> None:
        """Forget instances that no longer exist (a replaced node's old id)."""
        if set(self.entries) - instance_ids:
            self.entries = {i: k for i, k in self.entries.items() if i in instance_ids}
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        tmp.chmod(0o600)
        tmp.replace(self.path)


def ec2_console_fetcher(region: str) -> Callable[[str], str]:
    """boto3 get_console_output (botocore decodes the base64 payload)."""
    import boto3

    ec2 = boto3.client("ec2", region_name=region or None)

    def fetch(instance_id: str) -> str:
        return ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""

    return fetch
