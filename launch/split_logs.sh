#!/usr/bin/env bash
# Demultiplex "[worker N] ..." lines (the merged output of `gcloud ... ssh --worker=all`, whose
# remote command tags every line with its worker index) into LOG_DIR/worker-N.log, one file per
# worker, written as the lines arrive. Lines of worker ECHO_WORKER (default 0) and untagged lines
# (gcloud/ssh messages) are also echoed to stdout, so the terminal shows one worker, not N
# interleaved copies. Each worker ends with "[worker N] hhh-exit-code=RC"; at the end a summary
# names the workers that failed or never reported, and the exit status is 1 if any did.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: split_logs.sh LOG_DIR [ECHO_WORKER]

Reads tagged lines on stdin, writes LOG_DIR/worker-N.log (truncated first), echoes worker
ECHO_WORKER (default 0; -1 for none) and untagged lines to stdout. Used by run.sh and logs.sh.
EOF
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi
if (( $# < 1 || $# > 2 )); then usage >&2; exit 2; fi
log_dir="$1"
echo_worker="${2:-0}"
mkdir -p "$log_dir"

awk -v dir="$log_dir" -v echo_worker="$echo_worker" '
/^\[worker [0-9]+\] / {
  n = substr($0, 9)
  sub(/\].*/, "", n)
  line = substr($0, length(n) + 11)
  f = dir "/worker-" n ".log"
  print line > f
  fflush(f)
  seen[n] = 1
  if (line ~ /^hhh-exit-code=[0-9]+$/) rc[n] = substr(line, 15) + 0
  if (n == echo_worker) { print line; fflush() }
  next
}
{ print; fflush() }
END {
  bad = 0
  for (n in seen) {
    f = dir "/worker-" n ".log"
    if (!(n in rc)) { printf "worker %s: no exit code yet (still running, or connection lost); log: %s\n", n, f; bad = 1 }
    else if (rc[n] != 0) { printf "worker %s: exit code %d; log: %s\n", n, rc[n], f; bad = 1 }
  }
  exit bad
}'
