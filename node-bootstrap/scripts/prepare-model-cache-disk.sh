#!/usr/bin/env bash
# The NVMe instance store (125 GB on g4dn.xlarge) as the model cache, at every boot.
# Instance store is blank after every stop/start (a spot "stop" too), so formatting it once is
# not enough: a systemd unit (llama-model-cache.service) finds it, formats it when blank, mounts
# it and makes the vLLM pod's cache directory (the chart's hostPath) owned by the pod's user,
# and the kubelet is ordered after it and requires it, so no pod starts on an empty mount point.
# No fstab entry: with `nofail` a blank disk would be silently skipped.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

helper=/usr/local/sbin/llama-model-cache
unit=/etc/systemd/system/llama-model-cache.service
kubelet_dropin=/etc/systemd/system/kubelet.service.d/20-llama-model-cache.conf
marker="# node-bootstrap model-cache"
did=0

helper_content="$(cat <<HELPER
#!/usr/bin/env bash
# Written by node-bootstrap (prepare-model-cache-disk.sh); run by llama-model-cache.service at boot.
set -euo pipefail
dir='$NODE_BOOTSTRAP_MODEL_CACHE_DIR'
vllm_dir='$NODE_BOOTSTRAP_VLLM_CACHE_DIR'
owner='$NODE_BOOTSTRAP_VLLM_CACHE_OWNER'
device="\$(lsblk -dpno NAME,MODEL | awk '/Amazon EC2 NVMe Instance Storage/ {print \$1; exit}')"
install -d -m 0755 "\$dir"
if [[ -z "\$device" ]]; then
  echo "llama-model-cache: no NVMe instance store on this instance type; \$dir stays on the root volume"
else
  if ! blkid "\$device" >/dev/null 2>&1; then
    mkfs.ext4 -q -F -L model-cache "\$device"
    echo "llama-model-cache: \$device was blank (new instance or stop/start): formatted"
  fi
  if ! mountpoint -q "\$dir"; then
    mount -o defaults,noatime "\$device" "\$dir"
    echo "llama-model-cache: \$device mounted on \$dir"
  fi
fi
install -d -m 0750 -o "\${owner%%:*}" -g "\${owner##*:}" "\$vllm_dir"
chown "\$owner" "\$vllm_dir"
HELPER
)"

unit_content="[Unit]
Description=Model cache on the NVMe instance store (formatted when blank, mounted, owned by vLLM's uid)
DefaultDependencies=no
After=local-fs.target
Before=kubelet.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=$helper

[Install]
WantedBy=multi-user.target"

dropin_content="# Written by node-bootstrap: no pod may start before the model cache is mounted.
[Unit]
Requires=llama-model-cache.service
After=llama-model-cache.service"

if write_if_changed "$helper" "$helper_content" 0755; then
  changed "$helper written"
  did=1
fi
if write_if_changed "$unit" "$unit_content"; then
  changed "$unit written"
  did=1
fi
if write_if_changed "$kubelet_dropin" "$dropin_content"; then
  changed "$kubelet_dropin written"
  did=1
fi
if grep -qs "$marker" /etc/fstab; then
  sed -i.nb-bak "\|$marker\$|d" /etc/fstab
  changed "old /etc/fstab entry for $NODE_BOOTSTRAP_MODEL_CACHE_DIR removed (the unit mounts it)"
  did=1
fi
if [[ "$did" == 1 ]]; then
  systemctl daemon-reload
fi
if ! systemctl is-enabled --quiet llama-model-cache; then
  systemctl enable llama-model-cache
  changed "llama-model-cache.service enabled"
  did=1
fi
if [[ "$did" == 1 ]] || ! systemctl is-active --quiet llama-model-cache; then
  systemctl restart llama-model-cache
  changed "llama-model-cache.service run"
  did=1
fi
device="$(lsblk -dpno NAME,MODEL | awk '/Amazon EC2 NVMe Instance Storage/ {print $1; exit}')"
if [[ -n "$device" ]] && ! mountpoint -q "$NODE_BOOTSTRAP_MODEL_CACHE_DIR"; then
  say "$NODE_BOOTSTRAP_MODEL_CACHE_DIR is not mounted after llama-model-cache.service ran"
  say "fix: sudo journalctl -u llama-model-cache on this node; then re-run 'make bootstrap'"
  exit 1
fi
[[ "$did" == 0 ]] && already_done "$NODE_BOOTSTRAP_MODEL_CACHE_DIR mounted by llama-model-cache.service at every boot, before the kubelet"
exit 0
