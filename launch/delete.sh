#!/usr/bin/env bash
# Delete a TPU slice (or the queued resource holding one or more slices).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/delete.sh --name NAME --zone ZONE [--queued] [--yes] [flags]

Deletes the TPU VM NAME, or with --queued (implied by --num-slices > 1) the queued resource
NAME together with its nodes (--force). gcloud asks for confirmation unless --yes.

Flags:
  --queued            NAME is a queued resource (create.sh --queued / --num-slices).
  --yes               do not ask for confirmation (passes --quiet to gcloud).
  --async             return without waiting for the deletion to finish.

$COMMON_FLAGS_HELP
EOF
}

QUEUED=0
YES=0
ASYNC=0
while (( $# )); do
  case "$1" in
    --queued) QUEUED=1; shift ;;
    --yes) YES=1; shift ;;
    --async) ASYNC=1; shift ;;
    *) parse_common "$@"; shift "$TAKEN" ;;
  esac
done
require_name_zone
if (( NUM_SLICES > 1 )); then QUEUED=1; fi

set_location_args
if (( QUEUED )); then
  cmd=(gcloud compute tpus queued-resources delete "$NAME" "${LOC[@]}" --force)
else
  cmd=(gcloud compute tpus tpu-vm delete "$NAME" "${LOC[@]}")
fi
if (( ASYNC )); then cmd+=(--async); fi
if (( YES )); then cmd+=(--quiet); fi
run "${cmd[@]}"
