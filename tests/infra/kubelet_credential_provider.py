"""The kubelet's reading of a CredentialProviderConfig, as Kubernetes 1.29 reads it, for the tests.

A test double of the kubelet's own code (no kubelet can run here), as strict as it is:
- decoding: kubelet.config.k8s.io/v1 (also v1beta1/v1alpha1), kind CredentialProviderConfig,
  unknown fields refused (pkg/credentialprovider/plugin/plugin.go decodes with a strict codec
  factory); the v1 field set of k8s.io/kubelet/config/v1/types.go at 1.29 (CredentialProvider:
  name, matchImages, defaultCacheDuration, apiVersion, args, env; ExecEnvVar: name, value;
  tokenAttributes only exists from 1.33);
- validation: validateCredentialProviderConfig in pkg/credentialprovider/plugin/config.go (at
  least one provider; a name without '/', spaces, '.' or '..', unique; apiVersion one of the
  credentialprovider.kubelet.k8s.io versions; at least one matchImage, each a schemeless URL;
  defaultCacheDuration required and >= 0, parsed as Go's time.ParseDuration);
- startup: each provider's binary must exist in --image-credential-provider-bin-dir
  (plugin.go RegisterCredentialProviderPlugins: os.Stat(filepath.Join(pluginBinDir, name)));
- matching: URLsMatchStr in pkg/credentialprovider/keyring.go (the host split at dots, the same
  number of parts, each part a glob; port and path prefix compared).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path
from urllib.parse import urlsplit

import yaml

CONFIG_API_VERSIONS = {
    "kubelet.config.k8s.io/v1",
    "kubelet.config.k8s.io/v1beta1",
    "kubelet.config.k8s.io/v1alpha1",
}
PROVIDER_API_VERSIONS = {
    "credentialprovider.kubelet.k8s.io/v1",
    "credentialprovider.kubelet.k8s.io/v1beta1",
    "credentialprovider.kubelet.k8s.io/v1alpha1",
}
CONFIG_FIELDS = {"apiVersion", "kind", "providers"}
PROVIDER_FIELDS = {"name", "matchImages", "defaultCacheDuration", "apiVersion", "args", "env"}
ENV_FIELDS = {"name", "value"}
# Go's time.ParseDuration: "0", or a sequence of decimal numbers, each with a unit.
_DURATION = re.compile(r"^[-+]?(0|((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+)$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


class InvalidConfig(ValueError):
    """What the kubelet would refuse at start (it exits: no node)."""


def duration_seconds(text: str) -> float:
    if not isinstance(text, str) or not _DURATION.match(text):
        raise InvalidConfig(f'time: invalid duration "{text}"')
    sign = -1 if text.startswith("-") else 1
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text)
    return sign * sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _strict(obj: object, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise InvalidConfig(f"{where}: expected an object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise InvalidConfig(f'strict decoding error: unknown field "{where}.{unknown[0]}"')
    return obj


def load(text: str) -> dict:
    """Decode and validate; the decoded config, or InvalidConfig with the kubelet's reason."""
    config = _strict(yaml.safe_load(text), CONFIG_FIELDS, "")
    if config.get("kind") != "CredentialProviderConfig":
        raise InvalidConfig(f'failed to decode "{config.get("kind")}" (wrong Kind)')
    if config.get("apiVersion") not in CONFIG_API_VERSIONS:
        raise InvalidConfig(f"no kind CredentialProviderConfig is registered for {config.get('apiVersion')}")
    providers = config.get("providers") or []
    errors: list[str] = []
    if not providers:
        errors.append("providers: Required value: at least 1 item in plugins is required")
    seen: set[str] = set()
    for index, provider in enumerate(providers):
        provider = _strict(provider, PROVIDER_FIELDS, f"providers[{index}]")
        for variable in provider.get("env") or []:
            _strict(variable, ENV_FIELDS, f"providers[{index}].env")
        name = provider.get("name", "")
        if "/" in name:
            errors.append(f"providers.name: Invalid value: {name!r}: provider name cannot contain '/'")
        if " " in name:
            errors.append(f"providers.name: Invalid value: {name!r}: provider name cannot contain spaces")
        if name in (".", ".."):
            errors.append(f"providers.name: Invalid value: {name!r}: provider name cannot be {name!r}")
        if name in seen:
            errors.append(f"providers.name: Duplicate value: {name!r}")
        seen.add(name)
        api_version = provider.get("apiVersion", "")
        if not api_version:
            errors.append("providers.apiVersion: Required value")
        elif api_version not in PROVIDER_API_VERSIONS:
            errors.append(f"providers.apiVersion: Unsupported value: {api_version!r}")
        images = provider.get("matchImages") or []
        if not images:
            errors.append("providers.matchImages: Required value: at least 1 item in matchImages is required")
        for image in images:
            try:
                urlsplit("https://" + image)
            except ValueError as error:
                errors.append(
                    f"providers.matchImages: Invalid value: {image!r}: match image is invalid: {error}"
                )
        if "defaultCacheDuration" not in provider:
            errors.append("providers.defaultCacheDuration: Required value")
        elif duration_seconds(str(provider["defaultCacheDuration"])) < 0:
            errors.append(
                "providers.defaultCacheDuration: defaultCacheDuration must be greater than or equal to 0"
            )
    if errors:
        raise InvalidConfig("; ".join(errors))
    return config


def check_binaries(config: dict, bin_dir: Path) -> None:
    for provider in config["providers"]:
        binary = bin_dir / provider["name"]
        if not binary.is_file():
            raise InvalidConfig(f"plugin binary executable {binary} did not exist")


def _split(url: str) -> tuple[list[str], str, str]:
    parts = urlsplit("https://" + url)
    return (parts.hostname or "").split("."), str(parts.port or ""), parts.path


def matches(pattern: str, image: str) -> bool:
    """URLsMatchStr: does matchImages entry `pattern` cover image `image`?"""
    glob_parts, glob_port, glob_path = _split(pattern)
    target_parts, target_port, target_path = _split(image)
    if len(glob_parts) != len(target_parts) or glob_port != target_port:
        return False
    if not all(fnmatch.fnmatchcase(t, g) for g, t in zip(glob_parts, target_parts, strict=True)):
        return False
    return target_path.startswith(glob_path)


def provider_for(config: dict, image: str) -> str | None:
    """The provider the kubelet runs for `image` (None: the pull stays anonymous)."""
    for provider in config["providers"]:
        if any(matches(pattern, image) for pattern in provider["matchImages"]):
            return provider["name"]
    return None
