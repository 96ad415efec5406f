"""Redaction of secrets from everything that is logged or printed.

Known secrets (the join token) are registered the moment they are read; the patterns are a
second line of defence for secrets that were never registered (a token printed by some tool,
a kubeconfig's client key).
"""

from __future__ import annotations

import re
import threading

MASK = "***REDACTED***"

_PATTERNS = [
    # kubeadm bootstrap tokens: [a-z0-9]{6}.[a-z0-9]{16}; the id alone is not secret.
    re.compile(r"\b([a-z0-9]{6})\.[a-z0-9]{16}\b"),
    re.compile(r"(client-key-data|client-certificate-data|token):\s*\S+"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S),
    re.compile(r"(--certificate-key[ =])[0-9a-f]{64}"),
]


class Redactor:
    """Thread-safe: the nodes log from parallel threads."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret and len(secret) >= 6:
            with self._lock:
                self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, MASK)
        text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}.{MASK}", text)
        text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}: {MASK}", text)
        text = _PATTERNS[2].sub(MASK, text)
        return _PATTERNS[3].sub(lambda m: f"{m.group(1)}{MASK}", text)
