"""Every CHAT_API_* variable the chart gives chat-api is a setting chat-api reads: chat-api refuses
to start on one that is not (chat_api.config.unknown_settings), so a renamed setting on one side
fails here, not in a pod's crash loop."""

from __future__ import annotations

import pytest
from chat_api.config import unknown_settings

from tests.chart import cases

pytestmark = pytest.mark.chart


@pytest.mark.parametrize("case", cases.all_cases(), ids=lambda c: c.name)
def test_the_chart_sets_only_settings_chat_api_reads(case: cases.Case) -> None:
    names = {
        env["name"]: "x"
        for manifest in cases.rendered(case)
        if manifest["kind"] in {"Deployment", "Job", "Pod"}
        for container in manifest["spec"].get("template", manifest)["spec"]["containers"]
        for env in container.get("env", [])
    }
    assert any(name.startswith("CHAT_API_") for name in names), "the chart sets chat-api's settings"
    assert unknown_settings(names) == []
