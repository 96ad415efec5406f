#!/usr/bin/env bash
# nvidia-container-toolkit: the nvidia-container-runtime that containerd's runtime "nvidia" (used by
# RuntimeClass nvidia) runs. The runtime itself is in the rendered containerd config
# (install-containerd.sh): `nvidia-ctk runtime configure` is not run, because a drop-in written by
# it would replace the whole CRI section in containerd 1.x (see containerd-config.toml.j2).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

want="$NODE_BOOTSTRAP_NVIDIA_TOOLKIT_VERSION"
packages=(nvidia-container-toolkit nvidia-container-toolkit-base)

all_pinned() {
  local p
  for p in "${packages[@]}"; do
    [[ "$(installed_version "$p")" == "$want" ]] && is_held "$p" || return 1
  done
}

if all_pinned && [[ -x /usr/bin/nvidia-container-runtime ]]; then
  already_done "toolkit $want installed and held, /usr/bin/nvidia-container-runtime present"
  exit 0
fi
install_apt_key "$NODE_BOOTSTRAP_NVIDIA_APT_KEY_URL" /etc/apt/keyrings/nvidia-container-toolkit.gpg
if write_if_changed /etc/apt/sources.list.d/nvidia-container-toolkit.list "$NODE_BOOTSTRAP_NVIDIA_APT_SOURCE"; then
  changed "apt source for the NVIDIA container toolkit written"
fi
apt_get update
apt-mark unhold "${packages[@]}" >/dev/null 2>&1 || true
apt_get install --allow-downgrades --allow-change-held-packages --no-install-recommends \
  "${packages[@]/%/=$want}"
apt-mark hold "${packages[@]}" >/dev/null
if [[ ! -x /usr/bin/nvidia-container-runtime ]]; then
  say "nvidia-container-toolkit $want did not install /usr/bin/nvidia-container-runtime"
  exit 1
fi
changed "nvidia-container-toolkit $want installed and held"
