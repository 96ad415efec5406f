"""Validation of rendered manifests: Kubernetes 1.29 OpenAPI schemas in strict mode for built-in
kinds, the prometheus-operator, KEDA and cert-manager CRD models for their custom resources."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import re
import sys
from functools import cache
from types import ModuleType
from typing import Any

import jsonschema
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

KUBE_VERSION = "1.29.15"


@cache
def _schema_dir() -> str:
    """kubernetes-validate's folder for the newest schema version not newer than KUBE_VERSION."""
    wanted = kv_utils.Version(kv_utils.major_minor(KUBE_VERSION))
    version = [v for v in kv_utils.all_versions() if kv_utils.Version(kv_utils.major_minor(v)) <= wanted][-1]
    return f"kubernetes-json-schema/v{version}-local-strict"


@cache
def _validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    # Same files and draft as kubernetes_validate.validate(strict=True), but the 1.2 MB definitions
    # document is parsed once per session instead of once per manifest.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv_utils.schema_contents(f"{_schema_dir()}/{kind.lower()}-{group_version}.json", KUBE_VERSION)
    definitions = kv_utils.schema_contents(f"{_schema_dir()}/_definitions.json", KUBE_VERSION)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _import_version(package: str, version: str) -> ModuleType:
    """Import `package.version` without the package's __init__, which imports every API version."""
    if package not in sys.modules:
        spec = importlib.util.find_spec(package)
        assert spec is not None, f"{package} is not installed"
        sys.modules[package] = importlib.util.module_from_spec(spec)
    return importlib.import_module(f"{package}.{version}")


@cache
def _crd_models() -> dict[tuple[str, str], Any]:
    # Imported lazily and one API version only: these modules define thousands of pydantic classes.
    keda = _import_version("cloudcoil.models.keda", "v1alpha1")
    prom = _import_version("cloudcoil.models.prometheus_operator", "v1")
    cert_manager = _import_version("cloudcoil.models.cert_manager", "v1")

    return {
        ("monitoring.coreos.com/v1", "ServiceMonitor"): prom.ServiceMonitor,
        ("monitoring.coreos.com/v1", "PodMonitor"): prom.PodMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): prom.PrometheusRule,
        ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
        ("cert-manager.io/v1", "Certificate"): cert_manager.Certificate,
        ("cert-manager.io/v1", "Issuer"): cert_manager.Issuer,
    }


def _unknown_fields(given: Any, known: Any, path: str) -> list[str]:
    """Keys present in the manifest but dropped by the model: fields the CRD does not have."""
    problems: list[str] = []
    if isinstance(given, dict) and isinstance(known, dict):
        for key, value in given.items():
            if key not in known:
                if value not in (None, {}, []):
                    problems.append(f"{path}.{key}: unknown field")
            else:
                problems += _unknown_fields(value, known[key], f"{path}.{key}")
    elif isinstance(given, list) and isinstance(known, list):
        for index, (a, b) in enumerate(zip(given, known, strict=False)):
            problems += _unknown_fields(a, b, f"{path}[{index}]")
    return problems


def validate_custom_resource(manifest: dict[str, Any]) -> list[str]:
    """Problems of a custom resource against its CRD model (unknown fields included)."""
    model = _crd_models().get((manifest.get("apiVersion", ""), manifest.get("kind", "")))
    if model is None:
        return [
            f"no CRD model for {manifest.get('apiVersion')} {manifest.get('kind')}: add it to kube_schemas.py"
        ]
    try:
        parsed = model.model_validate(manifest)
    except Exception as exc:  # pydantic.ValidationError; its text names the field
        return [str(exc)]
    dumped = parsed.model_dump(by_alias=True, exclude_none=True, mode="json")
    return _unknown_fields(manifest, dumped, manifest["kind"])


def is_builtin(manifest: dict[str, Any]) -> bool:
    group = manifest.get("apiVersion", "").rpartition("/")[0]
    return group == "" or group.endswith(".k8s.io") or group in {"apps", "batch", "policy", "autoscaling"}


def _validate_builtin(manifest: dict[str, Any]) -> list[str]:
    try:
        validator = _validator(manifest["apiVersion"], manifest["kind"])
    except FileNotFoundError:
        return [f"Kubernetes {KUBE_VERSION} has no {manifest['apiVersion']} {manifest['kind']}"]
    problems = []
    for error in validator.iter_errors(manifest):
        where = ".".join(str(part) for part in error.absolute_path)
        problems.append(f"{where}: {error.message}")
    return problems


@cache
def _validate_cached(document: str) -> tuple[str, ...]:
    manifest = json.loads(document)
    problems = _validate_builtin(manifest) if is_builtin(manifest) else validate_custom_resource(manifest)
    return tuple(problems)


def validate_manifest(manifest: dict[str, Any]) -> list[str]:
    """Problems of one manifest; empty when it is valid for Kubernetes 1.29 (strict).

    Identical manifests (most subcharts render the same objects for every values case) are
    validated once per session.
    """
    return list(_validate_cached(json.dumps(manifest, sort_keys=True)))


def manifest_digest(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
