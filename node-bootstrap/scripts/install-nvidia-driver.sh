#!/usr/bin/env bash
# The NVIDIA server driver from Ubuntu's archive; without it the node shows 0 GPUs.
# Canonical's prebuilt, signed kernel modules for the running kernel (linux-modules-nvidia-*)
# come first: nothing is compiled on the node and Secure Boot accepts them. Only where no such
# package exists for this kernel is the DKMS build used. The driver and the kernel are held:
# unattended-upgrades moving either one alone gives "Driver/library version mismatch".
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

branch="$NODE_BOOTSTRAP_NVIDIA_DRIVER_BRANCH" # e.g. 580-server
kernel="$(uname -r)"
flavour="${kernel##*-}"           # aws on EC2's Ubuntu kernels
prebuilt="linux-modules-nvidia-$branch-$kernel"

# Prints why the module does not load: DKMS's state and the end of its build log.
diagnose() {
  say "the nvidia module does not load on kernel $kernel"
  if command -v dkms >/dev/null 2>&1; then
    dkms status 2>&1 | sed 's/^/  dkms: /' >&2 || true
  fi
  local log
  log="$(find /var/lib/dkms/nvidia -name make.log 2>/dev/null | sort | tail -n 1)"
  if [[ -n "$log" ]]; then
    say "last lines of $log:"
    tail -n 25 "$log" >&2
  else
    say "no DKMS build log (prebuilt modules: check that $prebuilt matches the running kernel)"
  fi
}

hold_driver_and_kernel() {
  local held=() p
  for p in "$@" "linux-image-$kernel" "linux-modules-$kernel" "linux-$flavour" "linux-image-$flavour" \
    "linux-headers-$flavour" "linux-modules-nvidia-$branch-$flavour"; do
    [[ -n "$(installed_version "$p")" ]] && ! is_held "$p" && held+=("$p")
  done
  if ((${#held[@]})); then
    apt-mark hold "${held[@]}" >/dev/null
    changed "held ${held[*]}"
  fi
}

if nvidia-smi --query-gpu=driver_version --format=csv,noheader >/dev/null 2>&1; then
  driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)"
  if [[ -n "$(installed_version "$prebuilt")" ]]; then
    hold_driver_and_kernel "$prebuilt" "nvidia-headless-no-dkms-$branch" "nvidia-utils-$branch"
  else
    hold_driver_and_kernel "nvidia-headless-$branch" "nvidia-utils-$branch"
  fi
  already_done "driver $driver answers, driver and kernel packages held"
  exit 0
fi

apt_get update
if [[ -n "$(apt-cache policy "$prebuilt" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]]; then
  packages=("$prebuilt" "nvidia-headless-no-dkms-$branch" "nvidia-utils-$branch")
  how="prebuilt signed modules for $kernel"
else
  packages=("nvidia-headless-$branch" "nvidia-utils-$branch")
  how="DKMS (no prebuilt modules for $kernel in the archive)"
fi
missing=()
for p in "${packages[@]}"; do
  [[ -n "$(installed_version "$p")" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  apt_get install --no-install-recommends "${missing[@]}"
  changed "installed ${missing[*]} ($how)"
fi
hold_driver_and_kernel "${packages[@]}"
if modprobe nvidia 2>/dev/null && nvidia-smi >/dev/null 2>&1; then
  changed "driver loaded"
  exit 0
fi
# A kernel upgrade pulled in by cloud-init can leave the modules built for the next kernel:
# the orchestrator reboots once on this marker, and a second one fails the step.
diagnose
say "reboot-required: the driver does not answer until the node reboots"
