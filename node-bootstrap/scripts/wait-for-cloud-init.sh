#!/usr/bin/env bash
# cloud-init still runs apt and writes users when SSH opens; everything else waits for it.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

status="$(cloud-init status --wait 2>&1 || true)"
case "$status" in
  *"status: done"*) already_done "cloud-init finished" ;;
  *"status: disabled"*) already_done "cloud-init is disabled on this image" ;;
  *)
    say "cloud-init did not finish cleanly: $status"
    say "fix: read /var/log/cloud-init-output.log on the node, then re-run 'make bootstrap'"
    exit 1
    ;;
esac
