#!/usr/bin/env bash
# nvidia-container-toolkit and the containerd runtime "nvidia" (used by RuntimeClass nvidia).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

dropin=/etc/containerd/conf.d/99-nvidia.toml
want="$NB_NVIDIA_TOOLKIT_VERSION"
did=0

if [[ "$(installed_version nvidia-container-toolkit)" != "$want" ]]; then
  install_apt_key "$NB_NVIDIA_APT_KEY_URL" /etc/apt/keyrings/nvidia-container-toolkit.gpg
  if write_if_changed /etc/apt/sources.list.d/nvidia-container-toolkit.list "$NB_NVIDIA_APT_SOURCE"; then
    changed "apt source for the NVIDIA container toolkit written"
  fi
  apt_get update
  apt_get install --allow-downgrades --no-install-recommends \
    "nvidia-container-toolkit=$want" "nvidia-container-toolkit-base=$want"
  apt-mark hold nvidia-container-toolkit nvidia-container-toolkit-base >/dev/null
  changed "nvidia-container-toolkit $want installed and held"
  did=1
fi
# A drop-in (imported by the main config) keeps the rendered config.toml ours alone, so a re-run
# of install-containerd.sh never erases the NVIDIA runtime.
if ! grep -qs 'runtimes.nvidia' "$dropin"; then
  install -d -m 0755 "$(dirname "$dropin")"
  nvidia-ctk runtime configure --runtime=containerd --config="$dropin"
  systemctl restart containerd
  changed "containerd runtime nvidia configured in $dropin, containerd restarted"
  did=1
fi
[[ "$did" == 0 ]] && already_done "toolkit $want installed, containerd runtime nvidia configured"
exit 0
