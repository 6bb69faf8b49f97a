#!/usr/bin/env bash
# Kill stale processes holding the TPU on every worker and remove libtpu's lock file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/kill.sh --name NAME --zone ZONE [--worker all|N] [flags]

On each selected worker: find the processes that hold /dev/accel* (TPU v4) or /dev/vfio/*
(v5e, v5p, v6e) with "sudo lsof -t -w", kill -9 them and wait until they are gone, then
"sudo rm -f /tmp/libtpu_lockfile". A crashed or interrupted run leaves these behind and the
next run fails with "TPU in use" or, worse, silently falls back to CPU. run.sh does the same
before every run unless --no-kill.

Flags:
  --worker W          all (default) or one worker index.

$COMMON_FLAGS_HELP
EOF
}

WORKER=all
while (( $# )); do
  case "$1" in
    --worker|--worker=*) take_value WORKER "$@"; shift "$TAKEN" ;;
    *) parse_common "$@"; shift "$TAKEN" ;;
  esac
done
require_name_zone
[[ "$WORKER" == all || "$WORKER" =~ ^[0-9]+$ ]] || die "--worker must be 'all' or a worker index, got '$WORKER'"

set_slice_nodes
for node in "${NODES[@]}"; do
  set_ssh_argv "$node" "$WORKER" "$KILL_SNIPPET"
  run "${SSH[@]}"
done
