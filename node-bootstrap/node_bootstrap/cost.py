"""What the planned cluster costs per hour and per day, shown before anything is created.

Read from `terraform show -json <plan>`: every instance (type, root volume, spot or not) and
Elastic IP that exists once the plan is applied, priced with terraform/prices.json (list prices
with their date). A type or region missing from the table is named, never guessed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOURS_PER_MONTH = 730  # AWS prices storage per GB-month of 730 hours


@dataclass
class Line:
    what: str
    per_hour: float | None  # None: not in the price table


@dataclass
class Estimate:
    region: str
    as_of: str
    lines: list[Line] = field(default_factory=list)

    @property
    def unknown(self) -> list[str]:
        return [line.what for line in self.lines if line.per_hour is None]

    @property
    def per_hour(self) -> float:
        return sum(line.per_hour or 0.0 for line in self.lines)

    def render(self, prices_path: Path) -> str:
        out = [f"What this creates costs (AWS list prices in {self.region}, as of {self.as_of}):"]
        for line in self.lines:
            price = "   price unknown" if line.per_hour is None else f"${line.per_hour:8.4f}/hour"
            out.append(f"  {price}  {line.what}")
        hour = self.per_hour
        total = f"${hour:.2f}/hour, ${hour * 24:.2f}/day, ${hour * HOURS_PER_MONTH:.0f}/month"
        out.append(f"  total: {total}{' at least' if self.unknown else ''}")
        out.append("  not included: data transfer out, S3/ECR storage (cents), spot discounts")
        if self.unknown:
            out.append(f"  no price for: {', '.join(self.unknown)}; add it to {prices_path}")
        out.append("  `make destroy` stops the bill; a stopped instance still pays for its volume.")
        return "\n".join(out)


def _created(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Managed resources as they will be after the plan: created, updated or kept, not deleted."""
    kept = []
    for change in plan.get("resource_changes", []):
        actions = change.get("change", {}).get("actions", [])
        if change.get("mode") == "managed" and actions != ["delete"]:
            kept.append(change)
    return kept


def estimate(plan: dict[str, Any], prices: dict[str, Any]) -> Estimate:
    region = str(plan.get("variables", {}).get("region", {}).get("value", ""))
    table = prices["regions"].get(region)
    result = Estimate(region=region or "(no region)", as_of=prices["as_of"])
    resources = _created(plan)
    instances = [r for r in resources if r["type"] == "aws_instance"]
    eips = [r for r in resources if r["type"] == "aws_eip"]
    for res in instances:
        after = res["change"].get("after") or {}
        itype = after.get("instance_type", "?")
        spot = bool(after.get("instance_market_options"))
        name = (after.get("tags") or {}).get("Name") or res.get("index") or res["address"]
        per_hour = table["instance_hour"].get(itype) if table else None
        result.lines.append(Line(f"{name}: {itype}{' spot (on-demand ceiling)' if spot else ''}", per_hour))
        volume_gb = sum(int(dev.get("volume_size") or 0) for dev in after.get("root_block_device") or [])
        if volume_gb:
            gb_hour = table["gp3_gb_month"] / HOURS_PER_MONTH if table else None
            result.lines.append(
                Line(f"{name}: {volume_gb} GB gp3 root volume", gb_hour * volume_gb if gb_hour else None)
            )
    # Every instance has a public IPv4 address; an Elastic IP replaces its instance's own, a
    # detached one is billed as well.
    detached = sum(1 for r in eips if not _attached(r))
    addresses = len(instances) + detached
    if addresses:
        per_address = table["public_ipv4_hour"] if table else None
        result.lines.append(
            Line(f"{addresses} public IPv4 addresses", per_address * addresses if per_address else None)
        )
    return result


def _attached(eip: dict[str, Any]) -> bool:
    change = eip["change"]
    # A new instance's id is known only after apply: the plan marks it unknown, not empty.
    return bool(
        (change.get("after") or {}).get("instance") or (change.get("after_unknown") or {}).get("instance")
    )


def load_prices(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())
