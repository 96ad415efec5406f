"""One log file per node; every line passes the redactor first."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from .redact import Redactor


class NodeLog:
    def __init__(self, path: Path, redactor: Redactor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._redact = redactor
        self._lock = threading.Lock()
        self._file = path.open("a", encoding="utf-8")
        path.chmod(0o600)

    def write(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        clean = self._redact(text.rstrip("\n"))
        with self._lock:
            for line in clean.splitlines() or [""]:
                self._file.write(f"{stamp} {line}\n")
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
