#!/usr/bin/env bash
# Stream (or fetch) the per-worker logs of a run into local files, one per worker.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/logs.sh --name NAME --zone ZONE [--run-name RUN] [--no-follow] [flags]

Every worker keeps REMOTE_DIR/logs/RUN/worker-N.log of each run started by run.sh. This reads
those files on all workers at once (--worker=all) and splits the stream into LOG_DIR/worker-N.log
(multislice: LOG_DIR/slice-S/worker-N.log), echoing worker 0 of slice 0 to the terminal. Use it
after run.sh --detach, or to reattach after the connection of an attached run.sh dropped
(the run itself keeps going on the workers).

Flags:
  --run-name RUN      which run; default latest (the last run started by run.sh).
  --no-follow         print what is there and stop (default: follow like tail -F, Ctrl-C stops
                      following, not the run).
  --log-dir DIR       local log directory; default logs/NAME under the project root.

$COMMON_FLAGS_HELP
EOF
}

RUN_NAME=latest
FOLLOW=1
LOG_DIR=""
while (( $# )); do
  case "$1" in
    --run-name|--run-name=*) take_value RUN_NAME "$@"; shift "$TAKEN" ;;
    --log-dir|--log-dir=*) take_value LOG_DIR "$@"; shift "$TAKEN" ;;
    --no-follow) FOLLOW=0; shift ;;
    *) parse_common "$@"; shift "$TAKEN" ;;
  esac
done
require_name_zone
[[ "$RUN_NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "--run-name may only contain letters, digits, . _ -"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$HHH_ROOT/logs/$NAME"

if (( FOLLOW )); then reader="tail -n +1 -F"; else reader="cat"; fi
remote="set -o pipefail; $WORKER_ID_SNIPPET; $reader $REMOTE_DIR/logs/$RUN_NAME/worker-\$W.log | sed -u \"s/^/[worker \$W] /\""

set_slice_nodes
stream_worker_logs "$remote"
