"""Live progress per node and step (rich); plain lines when there is no terminal."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.table import Table

_STYLE = {"running": "yellow", "done": "green", "unchanged": "green", "failed": "bold red", "waiting": "dim"}


class Progress:
    def __init__(self, nodes: list[str], live: bool = True, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._state = {name: ("waiting", "", "") for name in nodes}
        self._lock = threading.Lock()
        self._live = Live(self._table(), console=self.console, refresh_per_second=4) if live else None

    def __enter__(self) -> Progress:
        if self._live is not None and self.console.is_terminal:
            self._live.__enter__()
        else:
            self._live = None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(kind, error, tb)

    def update(self, node: str, status: str, step: str, detail: str = "") -> None:
        """status: running | done | unchanged | failed | waiting."""
        with self._lock:
            self._state[node] = (status, step, detail)
            if self._live is not None:
                self._live.update(self._table())
                return
        line = f"[{node}] {step}: {status}" + (f" - {detail}" if detail else "")
        self.console.print(line, markup=False, highlight=False)

    def _table(self) -> Table:
        table = Table(title="node-bootstrap", expand=False)
        table.add_column("node")
        table.add_column("step")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        for node, (status, step, detail) in self._state.items():
            style = _STYLE.get(status, "")
            table.add_row(node, step, f"[{style}]{status}[/]" if style else status, detail)
        return table
