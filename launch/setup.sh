#!/usr/bin/env bash
# Install the project on every worker: copy this checkout (or git clone) and pip install it in a venv.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<EOF
usage: launch/setup.sh --name NAME --zone ZONE [--repo URL [--ref REF]] [flags]

Puts the project at REMOTE_DIR (default ~/hhh) on every worker of every slice and installs it
with "pip install -e .[tpu]" into REMOTE_DIR/.venv (run.sh uses that venv's python).

Source, one of:
  (default)           this working tree, uncommitted changes included: tar it (without .git,
                      .venv, logs, caches), scp it to all workers, unpack over REMOTE_DIR.
  --repo URL          git clone URL on every worker (once), then fetch and check out --ref.
  --ref REF           branch, tag or commit for --repo; default main.

Flags:
  --python PY         interpreter that creates the venv; default python3 (3.10-3.12).
  --extras LIST       pip extras; default tpu.
  --tarball PATH      where the local tarball is written; default \${TMPDIR:-/tmp}/hhh-src-NAME.tar.gz.

$COMMON_FLAGS_HELP
EOF
}

REPO=""
REF=main
PY=python3
EXTRAS=tpu
TARBALL=""
while (( $# )); do
  case "$1" in
    --repo|--repo=*) take_value REPO "$@"; shift "$TAKEN" ;;
    --ref|--ref=*) take_value REF "$@"; shift "$TAKEN" ;;
    --python|--python=*) take_value PY "$@"; shift "$TAKEN" ;;
    --extras|--extras=*) take_value EXTRAS "$@"; shift "$TAKEN" ;;
    --tarball|--tarball=*) take_value TARBALL "$@"; shift "$TAKEN" ;;
    *) parse_common "$@"; shift "$TAKEN" ;;
  esac
done
require_name_zone
[[ -n "$TARBALL" ]] || TARBALL="${TMPDIR:-/tmp}/hhh-src-$NAME.tar.gz"

# Ubuntu images may lack ensurepip (python3-venv), without which "python3 -m venv" fails.
install="{ $(q "$PY") -c 'import ensurepip' 2>/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv; }; }"
install+=" && cd $REMOTE_DIR && $(q "$PY") -m venv .venv && .venv/bin/pip install -q -U pip"
install+=" && .venv/bin/pip install -q -e $(q ".[$EXTRAS]") && .venv/bin/python -c 'import hhh, jax; print(\"hhh ready:\", jax.__version__)'"

set_slice_nodes
set_location_args
if [[ -z "$REPO" ]]; then
  run tar -czf "$TARBALL" --exclude=.git --exclude=.venv --exclude=logs --exclude=__pycache__ \
    --exclude='*.egg-info' --exclude=.pytest_cache -C "$HHH_ROOT" .
  for node in "${NODES[@]}"; do
    scp=(gcloud compute tpus tpu-vm scp "$TARBALL" "$node:hhh-src.tar.gz" "${LOC[@]}" --worker=all)
    if (( INTERNAL_IP )); then scp+=(--internal-ip); fi
    run "${scp[@]}"
  done
  remote="set -e; mkdir -p $REMOTE_DIR && tar -xzf ~/hhh-src.tar.gz -C $REMOTE_DIR && rm -f ~/hhh-src.tar.gz && $install"
else
  remote="set -e; if [ ! -d $REMOTE_DIR/.git ]; then git clone $(q "$REPO") $REMOTE_DIR; fi; git -C $REMOTE_DIR fetch origin $(q "$REF") && git -C $REMOTE_DIR checkout --force --detach FETCH_HEAD && $install"
fi
for node in "${NODES[@]}"; do
  set_ssh_argv "$node" all "$remote"
  run "${SSH[@]}"
done
