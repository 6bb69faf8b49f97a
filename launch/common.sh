# Shared by every launch/*.sh script: argument parsing, quoting, and the `run` helper.
# Sourced, never executed. Callers have already done `set -euo pipefail`.
#
# Dry-run contract: with --dry-run every command that would run is printed on its own line as
# "+ <command>" with POSIX shell quoting (python's shlex.split(line[2:]) gives back the argv), and
# nothing is executed, created or queried.

HHH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LAUNCH_DIR="$HHH_ROOT/launch"

DRY_RUN=0
NAME="${HHH_TPU_NAME:-}"
ZONE="${HHH_ZONE:-}"
PROJECT="${HHH_PROJECT:-}"
NUM_SLICES=1
INTERNAL_IP=0
REMOTE_DIR='~/hhh'          # project checkout on every worker (setup.sh puts it there)
TAKEN=0                     # how many arguments the last parse_* call consumed

# The worker's index inside its slice, from the TPU VM metadata server (the same source
# jax.distributed uses). Evaluated on the worker, inside --command.
WORKER_ID_SNIPPET='W=$(curl -sf -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number) || { echo "cannot read agent-worker-number from the metadata server" >&2; exit 3; }'

# Kill whatever holds the TPU (a crashed or stale run keeps /dev/accel* (v4) or /dev/vfio/*
# (v5e, v5p, v6e) open and the next run fails with "TPU in use"), then drop libtpu's lock file.
KILL_SNIPPET='pids=$( (sudo lsof -t -w /dev/accel* /dev/vfio/* 2>/dev/null || true) | sort -u); if [ -n "$pids" ]; then echo "killing stale TPU processes: $pids"; for p in $pids; do sudo kill -9 "$p" || true; timeout 30 tail --pid="$p" -f /dev/null || true; done; fi; sudo rm -f /tmp/libtpu_lockfile'

die() {
  echo "error: $*" >&2
  echo "run '$(basename "$0") --help' for usage" >&2
  exit 2
}

# POSIX single-quote an argument unless it only has characters that need no quoting.
q() {
  local s="$1"
  if [[ -n "$s" && "$s" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$s"
  else
    printf "'%s'" "${s//\'/\'\\\'\'}"
  fi
}

# Quote a whole argv into one command line.
qargs() {
  local out="" a
  for a in "$@"; do
    out+="${out:+ }$(q "$a")"
  done
  printf '%s' "$out"
}

# Print a command line (already formatted) in the dry-run format.
show() {
  printf '+ %s\n' "$1"
}

# Print, then execute unless --dry-run.
run() {
  show "$(qargs "$@")"
  if (( ! DRY_RUN )); then
    "$@"
  fi
}

# take_value VAR "$@": read the value of "--flag value" or "--flag=value" into VAR.
take_value() {
  local var="$1" flag="$2"
  if [[ "$flag" == *=* ]]; then
    printf -v "$var" '%s' "${flag#*=}"
    TAKEN=1
  else
    (( $# >= 3 )) || die "$flag needs a value"
    printf -v "$var" '%s' "$3"
    TAKEN=2
  fi
}

# Flags shared by the scripts that talk to a TPU VM. Sets TAKEN; dies on unknown flags.
parse_common() {
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1; TAKEN=1 ;;
    --name|--name=*) take_value NAME "$@" ;;
    --zone|--zone=*) take_value ZONE "$@" ;;
    --project|--project=*) take_value PROJECT "$@" ;;
    --num-slices|--num-slices=*) take_value NUM_SLICES "$@" ;;
    --internal-ip) INTERNAL_IP=1; TAKEN=1 ;;
    --remote-dir|--remote-dir=*) take_value REMOTE_DIR "$@" ;;
    *) die "unknown argument: $1" ;;
  esac
}

COMMON_FLAGS_HELP='Common flags:
  --name NAME         TPU VM / queued resource name (env HHH_TPU_NAME). With --num-slices N > 1
                      the slices are the nodes NAME-0 .. NAME-(N-1) created by create.sh.
  --zone ZONE         e.g. us-east5-a (env HHH_ZONE). Required.
  --project PROJECT   GCP project (env HHH_PROJECT); default: gcloud config.
  --num-slices N      number of slices (multislice over DCN); default 1.
  --internal-ip       ssh/scp over internal IPs (when running from a VM in the same VPC).
  --remote-dir DIR    project checkout on each worker; default ~/hhh.
  --dry-run           print the exact commands, one per line prefixed "+ ", execute nothing.
  -h, --help          this help.'

require_name_zone() {
  [[ -n "$NAME" ]] || die "--name is required"
  [[ -n "$ZONE" ]] || die "--zone is required"
  [[ "$NUM_SLICES" =~ ^[1-9][0-9]*$ ]] || die "--num-slices must be a positive integer, got '$NUM_SLICES'"
}

# Globals instead of namerefs: macOS still ships bash 3.2, which has no `local -n`.
# LOC: --zone=.. [--project=..] as an argv fragment.
set_location_args() {
  LOC=("--zone=$ZONE")
  if [[ -n "$PROJECT" ]]; then LOC+=("--project=$PROJECT"); fi
}

# NODES: NAME for one slice, NAME-0 .. NAME-(N-1) for a multislice.
set_slice_nodes() {
  NODES=()
  if (( NUM_SLICES == 1 )); then
    NODES=("$NAME")
  else
    local i
    for (( i = 0; i < NUM_SLICES; i++ )); do NODES+=("$NAME-$i"); done
  fi
}

# SSH: the gcloud ssh argv for set_ssh_argv NODE WORKER REMOTE_COMMAND.
set_ssh_argv() {
  set_location_args
  SSH=(gcloud compute tpus tpu-vm ssh "$1" "${LOC[@]}" "--worker=$2")
  if (( INTERNAL_IP )); then SSH+=(--internal-ip); fi
  SSH+=("--command=$3")
}

# Runs REMOTE_COMMAND on every worker of every slice (NODES from set_slice_nodes) and splits each
# slice's merged output into LOG_DIR/worker-N.log (multislice: LOG_DIR/slice-S/worker-N.log),
# echoing worker 0 of slice 0 to the terminal. One slice runs in the foreground; several run in
# parallel. Returns non-zero if any slice failed, naming it.
stream_worker_logs() {
  local remote="$1" s dir echo_worker status=0
  local -a pids=() split=()
  for (( s = 0; s < NUM_SLICES; s++ )); do
    if (( NUM_SLICES == 1 )); then dir="$LOG_DIR"; else dir="$LOG_DIR/slice-$s"; fi
    echo_worker=0
    if (( s > 0 )); then echo_worker=-1; fi
    set_ssh_argv "${NODES[$s]}" all "$remote"
    split=(bash "$LAUNCH_DIR/split_logs.sh" "$dir" "$echo_worker")
    if (( NUM_SLICES == 1 )); then
      show "$(qargs "${SSH[@]}") 2>&1 | $(qargs "${split[@]}")"
      if (( ! DRY_RUN )); then "${SSH[@]}" 2>&1 | "${split[@]}" || status=$?; fi
    else
      show "$(qargs "${SSH[@]}") 2>&1 | $(qargs "${split[@]}") &"
      if (( ! DRY_RUN )); then ( "${SSH[@]}" 2>&1 | "${split[@]}" ) & pids+=($!); fi
    fi
  done
  if (( NUM_SLICES > 1 )); then
    show wait
    for (( s = 0; s < ${#pids[@]}; s++ )); do
      if ! wait "${pids[$s]}"; then echo "slice $s failed; logs in $LOG_DIR/slice-$s" >&2; status=1; fi
    done
  fi
  return "$status"
}
