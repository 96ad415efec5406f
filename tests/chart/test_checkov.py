"""checkov's Kubernetes policies over the manifests of every values case: no failed check unless
tests/chart/checkov-skips.yaml skips it with a reason."""

from __future__ import annotations

import pytest

from tests.chart import checkov_scan

pytestmark = pytest.mark.chart


def test_checkov_finds_no_failed_check_that_is_not_skipped_with_a_reason(
    checkov_report: checkov_scan.Report,
) -> None:
    assert checkov_report.resource_count > 0
    assert checkov_report.parsing_errors == 0
    failures = sorted(
        {
            (f["check_id"], f["check_name"], f["resource"], ", ".join(f["cases"]))
            for f in checkov_report.failed
        }
    )
    assert not failures, "fix these or skip them with a reason in checkov-skips.yaml:\n" + "\n".join(
        map(str, failures)
    )


def test_every_checkov_skip_has_a_reason_and_still_matches_a_failure(
    checkov_report: checkov_scan.Report,
) -> None:
    skips = checkov_scan.load_skips()
    used = {skip.check_id for _, skip in checkov_report.skipped}
    assert all(len(skip.reason) >= 20 for skip in skips.values()), "each skip needs a written reason"
    assert set(skips) <= used, f"stale skips, remove them: {sorted(set(skips) - used)}"


def test_a_failed_check_outside_a_skips_resources_still_fails() -> None:
    finding = {"check_id": "CKV_K8S_11", "resource": "Deployment.llama.llama-chat-api"}
    skips = {"CKV_K8S_11": checkov_scan.Skip("CKV_K8S_11", "vLLM only", ("Deployment.*.*-vllm",))}
    report = checkov_scan.classify({"results": {"failed_checks": [finding]}}, skips)
    assert report.failed == [finding] and report.skipped == []
