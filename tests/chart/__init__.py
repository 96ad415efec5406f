"""The chart tier (`pytest -m chart`): Helm's own engine in-process, no cluster.

- Every chart directory under charts/ is linted strictly on its own (test_lint.py), so a new
  subchart in charts/platform/charts/<name>/ is checked without touching this harness.
- Every values case renders once per session (cases.py): the chart defaults, each environment in
  values/, each scenario in charts/platform/ci/. Add a scenario by adding a file there.
- Every rendered manifest is validated against the Kubernetes 1.29 schemas in strict mode, and
  monitoring.coreos.com / keda.sh objects against their CRD models (kube_schemas.py).
- checkov's Kubernetes policies run once over all distinct manifests (checkov_scan.py); a failure
  is allowed only with a reason in checkov-skips.yaml.
- Behaviour tests pin what the vLLM release renders and how bad values fail (test_vllm_*.py,
  test_bad_values.py).
"""
