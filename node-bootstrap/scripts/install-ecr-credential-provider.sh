#!/usr/bin/env bash
# The kubelet's image credential provider for Amazon ECR, so the workers pull the images
# `make images` pushed to the ECR repositories of terraform/ecr.tf with a token from their
# instance profile (no registry password on the node or in the cluster):
#   - ecr-credential-provider of kubernetes/cloud-provider-aws, the release of the cluster's
#     Kubernetes minor (NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_VERSION), verified against the SHA-256 pinned in
#     node_bootstrap/settings.py before it is installed, in NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR;
#   - the CredentialProviderConfig node-bootstrap rendered (files/ecr-credential-provider.yaml) at
#     NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG;
#   - the two kubelet flags naming them (1.29 has them as flags only) in /etc/default/kubelet,
#     whose KUBELET_EXTRA_ARGS kubeadm's drop-in (install-kubernetes-binaries.sh) passes on.
# The kubelet reads the config when it starts: a running kubelet is restarted when it changed.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

bin="$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR/ecr-credential-provider"
config_content="$(cat "$NODE_BOOTSTRAP_DIR/files/ecr-credential-provider.yaml")"
# Quoted: systemd's EnvironmentFile takes the value whole, and a shell sourcing it agrees.
defaults_content="# Written by node-bootstrap (install-ecr-credential-provider.sh): the kubelet's image credential provider.
KUBELET_EXTRA_ARGS=\"--image-credential-provider-config=$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG --image-credential-provider-bin-dir=$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR\""

binary_ok() { [[ -x "$bin" && "$(sha256sum "$bin" | cut -d' ' -f1)" == "$NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_SHA256" ]]; }

if binary_ok && [[ "$(cat "$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG" 2>/dev/null)" == "$config_content" ]] &&
  [[ "$(cat /etc/default/kubelet 2>/dev/null)" == "$defaults_content" ]]; then
  already_done "ecr-credential-provider $NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_VERSION installed and verified, kubelet flags set"
  exit 0
fi

if ! binary_ok; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  fetch_verified "$NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_URL" "$NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_SHA256" "$work/ecr-credential-provider"
  install -d -m 0755 "$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR"
  install -m 0755 "$work/ecr-credential-provider" "$bin"
  # The kubelet runs the binary for each pull: a new one needs no restart.
  changed "ecr-credential-provider $NODE_BOOTSTRAP_ECR_CREDENTIAL_PROVIDER_VERSION installed in $NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_BIN_DIR (sha256 verified)"
fi
restart=0
if write_if_changed "$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG" "$config_content"; then
  changed "$NODE_BOOTSTRAP_CREDENTIAL_PROVIDER_CONFIG written"
  restart=1
fi
if write_if_changed /etc/default/kubelet "$defaults_content"; then
  changed "/etc/default/kubelet names the credential provider"
  restart=1
fi
if ((restart)) && systemctl is-active --quiet kubelet; then
  systemctl restart kubelet
  changed "kubelet restarted to read the credential provider config"
fi
exit 0
