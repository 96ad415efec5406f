"""Verified SSH host keys: read from each instance's EC2 console output, written to known_hosts.

cloud-init prints the host's public keys between `-----BEGIN SSH HOST KEY KEYS-----` and
`-----END SSH HOST KEY KEYS-----` on the serial console, which only the AWS API (with the
account's credentials) can read: a trusted channel independent of the SSH connection itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import HostKeyError
from .inventory import Node

_KEY_LINE = re.compile(r"\b(ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa)\s+(AAAA[0-9A-Za-z+/]+=*)")
_FINGERPRINT_LINE = re.compile(r"\bSHA256:([0-9A-Za-z+/]+)\s+\S*\s*\((ED25519|ECDSA|RSA)\)")


def sha256_fingerprint(key_b64: str) -> str:
    digest = hashlib.sha256(base64.b64decode(key_b64)).digest()
    return base64.b64encode(digest).decode().rstrip("=")


def _block(text: str, name: str) -> str | None:
    start = text.rfind(f"-----BEGIN {name}-----")  # rfind: the newest boot's block
    if start < 0:
        return None
    end = text.find(f"-----END {name}-----", start)
    return text[start:end] if end > 0 else None


def parse_console_host_keys(console: str) -> list[tuple[str, str]]:
    """(key type, base64) pairs of the host keys cloud-init printed; empty while not printed yet.

    When the fingerprint block is there too, every key must match one of its fingerprints: a
    garbled or truncated console line is rejected rather than trusted.
    """
    keys_block = _block(console, "SSH HOST KEY KEYS")
    if keys_block is None:
        return []
    keys = [(m.group(1), m.group(2)) for m in _KEY_LINE.finditer(keys_block)]
    fingerprints_block = _block(console, "SSH HOST KEY FINGERPRINTS")
    if fingerprints_block is not None:
        printed = {m.group(1) for m in _FINGERPRINT_LINE.finditer(fingerprints_block)}
        for key_type, key_b64 in keys:
            if sha256_fingerprint(key_b64) not in printed:
                raise HostKeyError(
                    f"the console's {key_type} host key does not match any printed fingerprint; "
                    "refusing to trust it. Fix: look at the instance's console output in the EC2 console."
                )
    return keys


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


def ec2_console_fetcher(region: str) -> Callable[[str], str]:
    """boto3 get_console_output (botocore decodes the base64 payload)."""
    import boto3

    ec2 = boto3.client("ec2", region_name=region or None)

    def fetch(instance_id: str) -> str:
        return ec2.get_console_output(InstanceId=instance_id, Latest=True).get("Output") or ""

    return fetch
