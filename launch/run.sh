#!/usr/bin/env bash
# Run one command (python -m hhh.train ... / python -m hhh.eval ...) on every worker of a TPU
# slice at once and stream each worker's output into its own local log file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/run.sh --name NAME --zone ZONE [flags] -- python -m hhh.train --config=... [overrides...]

Runs the command after "--" on all workers of the slice simultaneously
(gcloud compute tpus tpu-vm ssh NAME --worker=all), from the project checkout that setup.sh
installed. A leading "python"/"python3" becomes the checkout's .venv/bin/python. Every argument
is passed through exactly (overrides with spaces or quotes survive).

On each worker the command runs with JAX_PLATFORMS=tpu (fail loudly instead of falling back to
CPU), HHH_DISTRIBUTED=on (hhh.core.distributed joins the multi-host runtime), PYTHONUNBUFFERED=1,
HHH_RUN_NAME=RUN, plus any --env. Stale processes holding the TPU are killed first (as kill.sh).

Logs: every worker writes REMOTE_DIR/logs/RUN/worker-N.log on its own disk (REMOTE_DIR/logs/latest
points at the last run); locally the merged stream is split into LOG_DIR/worker-N.log
(multislice: LOG_DIR/slice-S/worker-N.log) and worker 0 of slice 0 is echoed to the terminal.
The exit status is non-zero if any worker failed; the failing workers and their logs are named.

Flags:
  --run-name RUN      name of this run (remote log directory); default run-YYYYmmdd-HHMMSS.
  --env KEY=VALUE     extra environment variable on every worker; repeatable.
  --log-dir DIR       local log directory; default logs/NAME under the project root.
  --no-kill           do not kill stale TPU processes before starting.
  --detach            start the command under nohup and return at once; follow with logs.sh.

$COMMON_FLAGS_HELP

Example:
  launch/run.sh --name hhh-v5p --zone us-east5-a -- \\
    python -m hhh.train --config=configs/preference.py:52b --config.run_name='pm 52b'
EOF
}

RUN_NAME=""
LOG_DIR=""
KILL=1
DETACH=0
EXTRA_ENV=()
CMD=()
while (( $# )); do
  case "$1" in
    --run-name|--run-name=*) take_value RUN_NAME "$@"; shift "$TAKEN" ;;
    --log-dir|--log-dir=*) take_value LOG_DIR "$@"; shift "$TAKEN" ;;
    --env|--env=*)
      take_value kv "$@"; shift "$TAKEN"
      [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env expects KEY=VALUE, got '$kv'"
      EXTRA_ENV+=("$kv") ;;
    --no-kill) KILL=0; shift ;;
    --detach) DETACH=1; shift ;;
    --) shift; CMD=("$@"); break ;;
    *) parse_common "$@"; shift "$TAKEN" ;;
  esac
done
require_name_zone
(( ${#CMD[@]} > 0 )) || die "no command given; put it after --, e.g. -- python -m hhh.train --config=..."
[[ -n "$RUN_NAME" ]] || RUN_NAME="run-$(date +%Y%m%d-%H%M%S)"
[[ "$RUN_NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "--run-name may only contain letters, digits, . _ -"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$HHH_ROOT/logs/$NAME"

if [[ "${CMD[0]}" == python || "${CMD[0]}" == python3 ]]; then CMD[0]=.venv/bin/python; fi
ENV=(JAX_PLATFORMS=tpu HHH_DISTRIBUTED=on PYTHONUNBUFFERED=1 "HHH_RUN_NAME=$RUN_NAME")
ENV+=(${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"})
program="$(qargs env "${ENV[@]}" "${CMD[@]}")"

# The script each worker runs (bash: the TPU VM login shell). One line: the dry run prints one
# command per line. REMOTE_DIR is not quoted so that "~" expands on the worker.
log="logs/$RUN_NAME/worker-\$W.log"
remote="set -o pipefail; $WORKER_ID_SNIPPET; cd $REMOTE_DIR || exit 4; mkdir -p logs/$RUN_NAME && ln -sfn $RUN_NAME logs/latest"
if (( KILL )); then remote+="; $KILL_SNIPPET"; fi
if (( DETACH )); then
  inner="$program > $log 2>&1; echo hhh-exit-code=\$? >> $log"
  remote+="; export W; nohup bash -c $(q "$inner") > /dev/null 2>&1 < /dev/null & echo \"[worker \$W] started pid \$! on \$(hostname), log $REMOTE_DIR/$log\""
else
  remote+="; { $program; rc=\$?; echo hhh-exit-code=\$rc; exit \$rc; } 2>&1 | tee $log | sed -u \"s/^/[worker \$W] /\""
fi

set_slice_nodes
if (( DETACH )); then
  for node in "${NODES[@]}"; do
    set_ssh_argv "$node" all "$remote"
    run "${SSH[@]}"
  done
  if (( ! DRY_RUN )); then
    follow=(launch/logs.sh --name "$NAME" --zone "$ZONE")
    if [[ -n "$PROJECT" ]]; then follow+=(--project "$PROJECT"); fi
    if (( NUM_SLICES > 1 )); then follow+=(--num-slices "$NUM_SLICES"); fi
    echo "started $RUN_NAME on ${NODES[*]}; follow with: $(qargs "${follow[@]}" --run-name "$RUN_NAME")" >&2
  fi
  exit 0
fi

stream_worker_logs "$remote"
