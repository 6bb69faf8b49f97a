#!/usr/bin/env bash
# Run the same command as run.sh on this machine, optionally as N jax processes on localhost.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/local.sh [--num-processes N] [flags] -- python -m hhh.train --config=... [overrides...]

Runs the command after "--" from the project root with the project's .venv/bin/python (a leading
"python"/"python3" is replaced), like run.sh does on a TPU VM, and logs to LOG_DIR/worker-N.log.

With --num-processes N > 1 it starts N processes that form one jax distributed system on
localhost (JAX_COORDINATOR_ADDRESS=localhost:PORT, JAX_NUM_PROCESSES=N, JAX_PROCESS_ID=i; read by
hhh.core.distributed.maybe_initialize), which exercises the multi-host code paths (process-0-only
logging, per-host input, cooperative checkpoints) on one machine. Process 0 is echoed to the
terminal; if any process fails the others are killed and the exit status is non-zero.

Flags:
  --num-processes N         processes to start; default 1.
  --devices-per-process D   fake CPU devices per process (XLA_FLAGS=--xla_force_host_platform_device_count=D).
  --platform P              JAX_PLATFORMS for the processes; default cpu.
  --port PORT               coordinator port; default 12355.
  --env KEY=VALUE           extra environment variable; repeatable.
  --run-name RUN            exported as HHH_RUN_NAME; default local-YYYYmmdd-HHMMSS.
  --log-dir DIR             default logs/local under the project root.
  --dry-run                 print the exact commands, one per line prefixed "+ ", execute nothing.
  -h, --help                this help.
EOF
}

NPROC=1
DEVICES=""
PLATFORM=cpu
PORT=12355
RUN_NAME=""
LOG_DIR=""
EXTRA_ENV=()
CMD=()
while (( $# )); do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --num-processes|--num-processes=*) take_value NPROC "$@"; shift "$TAKEN" ;;
    --devices-per-process|--devices-per-process=*) take_value DEVICES "$@"; shift "$TAKEN" ;;
    --platform|--platform=*) take_value PLATFORM "$@"; shift "$TAKEN" ;;
    --port|--port=*) take_value PORT "$@"; shift "$TAKEN" ;;
    --run-name|--run-name=*) take_value RUN_NAME "$@"; shift "$TAKEN" ;;
    --log-dir|--log-dir=*) take_value LOG_DIR "$@"; shift "$TAKEN" ;;
    --env|--env=*)
      take_value kv "$@"; shift "$TAKEN"
      [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env expects KEY=VALUE, got '$kv'"
      EXTRA_ENV+=("$kv") ;;
    --) shift; CMD=("$@"); break ;;
    *) die "unknown argument: $1" ;;
  esac
done
(( ${#CMD[@]} > 0 )) || die "no command given; put it after --, e.g. -- python -m hhh.train --config=..."
[[ "$NPROC" =~ ^[1-9][0-9]*$ ]] || die "--num-processes must be a positive integer, got '$NPROC'"
[[ -z "$DEVICES" || "$DEVICES" =~ ^[1-9][0-9]*$ ]] || die "--devices-per-process must be a positive integer, got '$DEVICES'"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"
[[ -n "$RUN_NAME" ]] || RUN_NAME="local-$(date +%Y%m%d-%H%M%S)"
[[ -n "$LOG_DIR" ]] || LOG_DIR="$HHH_ROOT/logs/local"

if [[ "${CMD[0]}" == python || "${CMD[0]}" == python3 ]]; then
  if [[ -x "$HHH_ROOT/.venv/bin/python" ]]; then CMD[0]="$HHH_ROOT/.venv/bin/python"; else CMD[0]=python3; fi
fi
ENV=("JAX_PLATFORMS=$PLATFORM" PYTHONUNBUFFERED=1 "HHH_RUN_NAME=$RUN_NAME")
if [[ -n "$DEVICES" ]]; then
  # Keep the caller's XLA_FLAGS, but replace any device count already in them.
  xla=""
  for f in ${XLA_FLAGS:-}; do
    [[ "$f" == --xla_force_host_platform_device_count=* ]] || xla+="$f "
  done
  ENV+=("XLA_FLAGS=${xla}--xla_force_host_platform_device_count=$DEVICES")
fi
if (( NPROC == 1 )); then ENV+=(HHH_DISTRIBUTED=off); fi
ENV+=(${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"})

run cd "$HHH_ROOT"
run mkdir -p "$LOG_DIR"
if (( NPROC == 1 )); then
  argv=(env "${ENV[@]}" "${CMD[@]}")
  show "$(qargs "${argv[@]}") 2>&1 | $(qargs tee "$LOG_DIR/worker-0.log")"
  if (( DRY_RUN )); then exit 0; fi
  "${argv[@]}" 2>&1 | tee "$LOG_DIR/worker-0.log"
  exit "${PIPESTATUS[0]}"
fi

pids=()
for (( i = 0; i < NPROC; i++ )); do
  argv=(env "${ENV[@]}" "JAX_COORDINATOR_ADDRESS=localhost:$PORT" "JAX_NUM_PROCESSES=$NPROC"
        "JAX_PROCESS_ID=$i" "${CMD[@]}")
  log="$LOG_DIR/worker-$i.log"
  if (( i == 0 )); then
    # Process substitution, not a pipeline: $! must be python itself so fail-fast can kill it.
    show "$(qargs "${argv[@]}") > >($(qargs tee "$log")) 2>&1 &"
    if (( ! DRY_RUN )); then "${argv[@]}" > >(tee "$log") 2>&1 & pids+=($!); fi
  else
    show "$(qargs "${argv[@]}") > $(q "$log") 2>&1 &"
    if (( ! DRY_RUN )); then "${argv[@]}" > "$log" 2>&1 & pids+=($!); fi
  fi
done
show wait
if (( DRY_RUN )); then exit 0; fi

# Fail fast: a process that dies leaves the others waiting for it in a collective forever.
status=0
remaining=$NPROC
declare -a done_=()
while (( remaining > 0 )); do
  for (( i = 0; i < NPROC; i++ )); do
    [[ -z "${done_[$i]:-}" ]] || continue
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      rc=0; wait "${pids[$i]}" || rc=$?
      done_[$i]=1; remaining=$(( remaining - 1 ))
      if (( rc != 0 && ! status )); then
        echo "process $i exited with code $rc; log: $LOG_DIR/worker-$i.log; stopping the others" >&2
        status=1
        for (( j = 0; j < NPROC; j++ )); do
          if [[ -z "${done_[$j]:-}" ]]; then kill "${pids[$j]}" 2>/dev/null || true; fi
        done
      elif (( rc != 0 )); then
        echo "process $i stopped (code $rc)" >&2
      fi
    fi
  done
  if (( remaining > 0 )); then sleep 0.2; fi
done
exit "$status"
