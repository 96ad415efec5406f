#!/usr/bin/env bash
# The NVIDIA server driver from Ubuntu's archive; without it the node shows 0 GPUs.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

if nvidia-smi --query-gpu=driver_version --format=csv,noheader >/dev/null 2>&1; then
  already_done "driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1) answers"
  exit 0
fi

read -r -a driver_packages <<<"$NB_NVIDIA_DRIVER_PACKAGES"
missing=()
for p in "${driver_packages[@]}"; do
  [[ -n "$(installed_version "$p")" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  apt_get update
  apt_get install --no-install-recommends "${missing[@]}"
  changed "installed ${missing[*]}"
fi
# The modules exist for the running kernel once the package is in; a kernel upgrade pulled in by
# cloud-init can still require a reboot, which the orchestrator performs on this marker.
if modprobe nvidia 2>/dev/null && nvidia-smi >/dev/null 2>&1; then
  changed "driver loaded"
else
  say "reboot-required: the driver does not answer until the node reboots"
fi
