#!/usr/bin/env bash
# Formats and mounts the NVMe instance store (125 GB on g4dn.xlarge) as the model cache, and makes
# the vLLM pod's cache directory (the chart's hostPath) owned by the pod's user.
# Instance store is blank after a stop/start: this step then formats it again.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

dir="$NB_MODEL_CACHE_DIR"
marker="# node-bootstrap model-cache"

ensure_vllm_cache_dir() {
  if [[ -d "$NB_VLLM_CACHE_DIR" && "$(stat -c %u:%g "$NB_VLLM_CACHE_DIR")" == "$NB_VLLM_CACHE_OWNER" ]]; then
    already_done "$NB_VLLM_CACHE_DIR exists, owned by $NB_VLLM_CACHE_OWNER"
  else
    install -d -m 0750 -o "${NB_VLLM_CACHE_OWNER%%:*}" -g "${NB_VLLM_CACHE_OWNER##*:}" "$NB_VLLM_CACHE_DIR"
    changed "$NB_VLLM_CACHE_DIR created, owned by $NB_VLLM_CACHE_OWNER"
  fi
}

if mountpoint -q "$dir"; then
  already_done "$dir is mounted"
  ensure_vllm_cache_dir
  exit 0
fi
device="$(lsblk -dpno NAME,MODEL | awk '/Amazon EC2 NVMe Instance Storage/ {print $1; exit}')"
if [[ -z "$device" ]]; then
  install -d -m 0755 "$dir"
  already_done "no NVMe instance store on this instance type; $dir stays on the root volume"
  ensure_vllm_cache_dir
  exit 0
fi
if ! blkid "$device" >/dev/null 2>&1; then
  mkfs.ext4 -q -F -L model-cache "$device"
  changed "$device formatted (ext4, label model-cache)"
fi
uuid="$(blkid -s UUID -o value "$device")"
line="UUID=$uuid $dir ext4 defaults,nofail,noatime 0 2 $marker"
if ! grep -qxF "$line" /etc/fstab; then
  # Drop the entry of a previous (now blank) instance store, keep everything else.
  sed -i.nb-bak "\|$marker\$|d" /etc/fstab
  printf '%s\n' "$line" >>/etc/fstab
  changed "/etc/fstab entry for $dir written"
fi
install -d -m 0755 "$dir"
mount "$dir"
changed "$device mounted on $dir"
ensure_vllm_cache_dir
