"""API keys from a mounted Secret: one file per key (the file name names the key, for logs only).

Off when CHAT_API_API_KEYS_DIR is unset (local mode). Keys are compared in constant time, and
every key is compared so the time does not say which one nearly matched. The directory is
re-read when its modification time changes (a rotated Secret), at most every few seconds.
"""

from __future__ import annotations

import hmac
import logging
import time
from pathlib import Path

from chat_api.errors import Unauthorized

log = logging.getLogger("chat_api.auth")
RELOAD_INTERVAL_S = 10.0


class KeyStoreError(RuntimeError):
    pass


class ApiKeys:
    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._keys: list[tuple[str, bytes]] = []
        self._stamp: tuple[object, ...] | None = None
        self._checked = 0.0
        if directory is not None:
            self._load(strict=True)

    @property
    def enabled(self) -> bool:
        return self.directory is not None

    def _dir_stamp(self) -> tuple[object, ...]:
        """Names, sizes and times of the entries: a removed file changes it even within one
        tick of a coarse file-system clock."""
        assert self.directory is not None
        entries = []
        for p in sorted(self.directory.iterdir()):
            st = p.stat()
            entries.append((p.name, st.st_mtime_ns, st.st_size))
        return (self.directory.stat().st_mtime_ns, *entries)

    def _load(self, strict: bool) -> None:
        assert self.directory is not None
        if not self.directory.is_dir():
            raise KeyStoreError(
                f"CHAT_API_API_KEYS_DIR={self.directory} is not a directory; mount the API key Secret "
                "there, or unset it to run without authentication (local mode)"
            )
        keys = []
        for path in sorted(self.directory.iterdir()):
            # Kubernetes Secret volumes hold ..data symlinks and dot-directories; keys are plain files.
            if path.name.startswith(".") or not path.is_file():
                continue
            value = path.read_text(errors="strict").strip()
            if value:
                keys.append((path.name, value.encode()))
        if not keys:
            message = (
                f"no API keys in {self.directory}: put one key per file there "
                "(a Secret with one entry per client), or unset CHAT_API_API_KEYS_DIR"
            )
            if strict:
                raise KeyStoreError(message)
            # An emptied Secret is how an operator revokes every key: nobody gets in.
            log.error("%s; every request is refused until keys are back", message)
        self._keys = keys
        self._stamp = self._dir_stamp()
        self._checked = time.monotonic()

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_INTERVAL_S:
            return
        self._checked = now
        try:
            if self._dir_stamp() != self._stamp:
                self._load(strict=False)
                log.info("API keys reloaded: %d keys", len(self._keys))
        except (OSError, KeyStoreError, UnicodeDecodeError) as exc:
            self._keys = []
            log.error("cannot reload API keys: %s; every request is refused until they are readable", exc)

    def identify(self, presented: str | None) -> str:
        """The name of the key that matches `presented`; raises Unauthorized otherwise."""
        if self.directory is None:
            return ""
        self._maybe_reload()
        if not presented:
            raise Unauthorized()
        candidate = presented.encode()
        match = ""
        for name, key in self._keys:
            if hmac.compare_digest(candidate, key) and not match:
                match = name
        if not match:
            raise Unauthorized()
        return match


def presented_key(headers: dict[str, str] | object) -> str | None:
    """The key from `Authorization: Bearer` or `X-API-Key` (never the query string: it is logged)."""
    get = headers.get  # type: ignore[attr-defined]
    auth = get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return get("x-api-key")
