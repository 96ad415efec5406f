"""Every value of every chart is documented in place (helm-docs `# --` comments): a key needs a
`# --` comment right above it or above one of its parent keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import chart

pytestmark = pytest.mark.chart

KEY = re.compile(r"^(\s*)([A-Za-z0-9_.\-/]+):")


def undocumented_keys(values_file: Path) -> list[str]:
    """Leaf keys (holding a value, not further keys) with no `# --` above them or a parent key."""
    entries: list[tuple[int, str, bool]] = []  # (indent, key, has its own `# --` comment)
    comment_block: list[str] = []
    for line in values_file.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment_block.append(stripped)
            continue
        match = KEY.match(line)
        if match and not stripped.startswith("- "):
            own_doc = any(c.startswith("# --") for c in comment_block)
            entries.append((len(match.group(1)), match.group(2), own_doc))
        comment_block = []
    missing: list[str] = []
    stack: list[tuple[int, str, bool]] = []
    for index, (indent, key, own_doc) in enumerate(entries):
        while stack and stack[-1][0] >= indent:
            stack.pop()
        documented = own_doc or any(doc for _, _, doc in stack)
        is_parent = index + 1 < len(entries) and entries[index + 1][0] > indent
        if not documented and not is_parent:
            missing.append(".".join([k for _, k, _ in stack] + [key]))
        stack.append((indent, key, documented))
    return missing


@pytest.mark.parametrize("values", sorted(chart.UMBRELLA.rglob("values.yaml")), ids=lambda p: p.parent.name)
def test_every_value_is_documented_in_place(values: Path) -> None:
    assert undocumented_keys(values) == []


def test_the_documentation_check_finds_an_undocumented_key(tmp_path: Path) -> None:
    sample = tmp_path / "values.yaml"
    sample.write_text("# -- documented\na: 1\nb:\n  # -- child documented\n  c: 2\n  d: 3\n")
    assert undocumented_keys(sample) == ["b.d"]
