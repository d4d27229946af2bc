#!/usr/bin/env bash
# The real Wyoming programs the interop tests (tests/test_wyoming_peers.py) talk to, each in
# a small virtualenv of its own (wyoming-openwakeword pins wyoming==1.2.0 and numpy<2, so none
# of them can share voiced's venv). Idempotent: a venv whose pinned package imports is kept.
#   scripts/wyoming_peers.sh            all of them
#   scripts/wyoming_peers.sh piper ...  only those named
# Where: $VOICED_PEERS_DIR, else ${XDG_CACHE_HOME:-~/.cache}/voiced-tests/wyoming-peers/<name>.
set -euo pipefail
PY=${VOICED_PEERS_PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
ROOT=${VOICED_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/voiced-tests/wyoming-peers}

# name | pip requirement(s), space-separated | module that must import afterwards
PEERS=(
  "faster-whisper|wyoming-faster-whisper==3.8.1|wyoming_faster_whisper"
  "piper|wyoming-piper==2.5.2|wyoming_piper"
  "openwakeword|wyoming-openwakeword==1.8.2 numpy<2|wyoming_openwakeword"   # its tflite-runtime needs numpy 1
  "satellite|wyoming-satellite==1.0.0|wyoming_satellite"
  "bench|wyoming-bench==2026.10.0|wyoming_bench"
)
log() { printf '\033[1m[wyoming-peers]\033[0m %s\n' "$*"; }

want=("$@")
for row in "${PEERS[@]}"; do
  IFS='|' read -r name spec module <<<"$row"
  if (( ${#want[@]} )) && [[ " ${want[*]} " != *" $name "* ]]; then continue; fi
  venv=$ROOT/$name
  stamp=$venv/.voiced-peer
  if [[ -f $stamp && "$(cat "$stamp")" == "$spec" ]] && "$venv/bin/python" -c "import $module" 2>/dev/null; then
    log "$name: $spec present in $venv"
    continue
  fi
  log "$name: installing $spec in $venv"
  rm -rf "$venv"
  mkdir -p "$ROOT"
  "$PY" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip 2> >(grep -v "is ignored: it is neither" >&2) >/dev/null
  read -ra reqs <<<"$spec"
  "$venv/bin/python" -m pip install -q "${reqs[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
  "$venv/bin/python" -c "import $module"
  echo "$spec" >"$stamp"
done
log "peers in $ROOT"
