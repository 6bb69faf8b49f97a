#!/usr/bin/env bash
# Create a TPU slice: a TPU VM directly, or a queued resource (required for multislice).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/create.sh --name NAME --zone ZONE --accelerator-type TYPE [flags] [-- EXTRA_GCLOUD_FLAGS...]

Without --queued: gcloud compute tpus tpu-vm create NAME (fails at once if there is no capacity).
With --queued, or --num-slices N > 1 (multislice needs queued resources): gcloud compute tpus
queued-resources create NAME, which waits in a queue until the capacity exists. A multislice
request creates the nodes NAME-0 .. NAME-(N-1), which every other script addresses with the
same --name NAME --num-slices N. Watch a queued request with
  gcloud compute tpus queued-resources describe NAME --zone ZONE
until its state is ACTIVE. Arguments after "--" are appended to the gcloud command
(e.g. -- --network=my-net --subnetwork=my-subnet --labels=team=hhh).

Flags:
  --accelerator-type TYPE   e.g. v4-32, v5litepod-16 (v5e), v5p-128, v6e-64. Required.
  --runtime-version V       TPU software version; default by generation: v4 tpu-ubuntu2204-base,
                            v5e v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e.
  --spot                    spot capacity (cheap, preemptible; the trainer saves on SIGTERM).
  --reserved                use the project's reservation.
  --queued                  create through a queued resource even for one slice.
  --valid-until-duration D  queued only: give up if not provisioned within D (e.g. 6h).

$COMMON_FLAGS_HELP
EOF
}

ACCEL=""
RUNTIME=""
SPOT=0
RESERVED=0
QUEUED=0
VALID_UNTIL=""
EXTRA=()
while (( $# )); do
  case "$1" in
    --accelerator-type|--accelerator-type=*) take_value ACCEL "$@"; shift "$TAKEN" ;;
    --runtime-version|--runtime-version=*) take_value RUNTIME "$@"; shift "$TAKEN" ;;
    --valid-until-duration|--valid-until-duration=*) take_value VALID_UNTIL "$@"; shift "$TAKEN" ;;
    --spot) SPOT=1; shift ;;
    --reserved) RESERVED=1; shift ;;
    --queued) QUEUED=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) parse_common "$@"; shift "$TAKEN" ;;
  esac
done
require_name_zone
[[ -n "$ACCEL" ]] || die "--accelerator-type is required (e.g. v5p-128)"
[[ "$ACCEL" =~ ^v[0-9][a-z0-9]*-[0-9]+$ ]] || die "--accelerator-type looks wrong: '$ACCEL' (expected e.g. v5p-128)"
if (( SPOT && RESERVED )); then die "--spot and --reserved are mutually exclusive"; fi
if (( NUM_SLICES > 1 )); then QUEUED=1; fi
if [[ -n "$VALID_UNTIL" ]] && (( ! QUEUED )); then die "--valid-until-duration needs --queued"; fi
if [[ -z "$RUNTIME" ]]; then
  case "$ACCEL" in
    v4-*) RUNTIME=tpu-ubuntu2204-base ;;
    v5litepod-*|v5e-*) RUNTIME=v2-alpha-tpuv5-lite ;;
    v5p-*) RUNTIME=v2-alpha-tpuv5 ;;
    v6e-*) RUNTIME=v2-alpha-tpuv6e ;;
    *) die "no default runtime version for '$ACCEL'; pass --runtime-version" ;;
  esac
fi

set_location_args
if (( QUEUED )); then
  cmd=(gcloud compute tpus queued-resources create "$NAME" "${LOC[@]}"
       "--accelerator-type=$ACCEL" "--runtime-version=$RUNTIME")
  if (( NUM_SLICES > 1 )); then
    cmd+=("--node-count=$NUM_SLICES" "--node-prefix=$NAME")
  else
    cmd+=("--node-id=$NAME")
  fi
  if [[ -n "$VALID_UNTIL" ]]; then cmd+=("--valid-until-duration=$VALID_UNTIL"); fi
else
  cmd=(gcloud compute tpus tpu-vm create "$NAME" "${LOC[@]}"
       "--accelerator-type=$ACCEL" "--version=$RUNTIME")
fi
if (( SPOT )); then cmd+=(--spot); fi
if (( RESERVED )); then cmd+=(--reserved); fi
cmd+=(${EXTRA[@]+"${EXTRA[@]}"})
run "${cmd[@]}"
