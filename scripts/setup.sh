#!/usr/bin/env bash
# Sets up voiced on a Debian/Ubuntu machine: system packages, a virtualenv in .venv,
# torch (kept if already present, so a CUDA build survives), chatterbox-tts with the
# dependency set it really runs with, voiced itself, and the offline model weights.
#   scripts/setup.sh            runtime only
#   scripts/setup.sh --test     + what the tests need (PulseAudio, espeak-ng, pytest...)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1
VENV=${VOICED_VENV:-.venv}
PY=${PYTHON:-python3}
TORCH_SPEC=${VOICED_TORCH_SPEC:-torch==2.13.0}
start=$(date +%s)

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_pkgs=(portaudio19-dev libsystemd-dev pkg-config build-essential python3-dev python3-venv
          libasound2-plugins ffmpeg espeak-ng)
# Real French and Spanish speech for the language tests: Asterisk's prompts (CC BY-SA 3.0).
test_pkgs=(pulseaudio pulseaudio-utils sox alsa-utils systemd chromium zsh fish groff man-db
           asterisk-core-sounds-fr asterisk-core-sounds-fr-g722 asterisk-core-sounds-es asterisk-core-sounds-es-g722)
if [[ $WITH_TEST == 1 ]]; then apt_pkgs+=("${test_pkgs[@]}"); fi
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if (( ${#missing[@]} )); then
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
  log "apt: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# SVOX Pico speaks replies in German, French, Spanish and Italian clearly (espeak-ng is robotic).
# It is in Debian's non-free component: installed when apt offers it; the test setup (throwaway
# machines, CI) enables contrib/non-free on a Debian that lacks them, as the tests need it.
# A candidate to install (apt-cache show also answers for a package removed but remembered);
# no pipe into grep -q: under pipefail its early exit fails the pipeline.
pico_ok() { [[ $(apt-cache policy libttspico-utils 2>/dev/null) == *"Candidate: "[0-9]* ]]; }
if ! command -v pico2wave >/dev/null; then
  SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
  sources=/etc/apt/sources.list.d/debian.sources
  if ! pico_ok && [[ $WITH_TEST == 1 && -f $sources ]] && grep -q "^Components: main$" "$sources"; then
    log "apt: enabling Debian's contrib and non-free components for libttspico-utils (test setup)"
    $SUDO sed -i 's/^Components: main$/Components: main contrib non-free/' "$sources"
    $SUDO apt-get update -qq
  fi
  if pico_ok; then
    log "apt: installing libttspico-utils (SVOX Pico voices)"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libttspico-utils >/dev/null \
      || log "apt could not install libttspico-utils: replies in other languages use espeak-ng"
  else
    log "SVOX Pico not offered by apt (Debian non-free / Ubuntu multiverse): replies in other languages use espeak-ng"
  fi
fi

[[ -x $VENV/bin/python ]] || { log "creating $VENV"; $PY -m venv "$VENV"; }
# pip warns about every find-links folder this machine lacks; keep real errors only.
pip() { "$VENV/bin/python" -m pip "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip install -q --upgrade pip wheel >/dev/null

# torch first: a later package asking for "torch" in a range it satisfies then installs nothing.
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  log "torch present: $("$VENV/bin/python" -c 'import torch;print(torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")') (kept)"
else
  log "installing $TORCH_SPEC"
  pip install -q "$TORCH_SPEC"
fi

# chatterbox-tts pins exact old versions of everything; like its users we install it
# without its pins and bring the tested dependency set ourselves (requirements/chatterbox.txt).
log "installing chatterbox-tts (no deps) and its tested dependency set"
pip install -q --no-deps -r requirements/chatterbox-nodeps.txt
pip install -q -r requirements/chatterbox.txt
"$VENV/bin/python" scripts/fix_torchaudio.py

log "installing voiced"
if [[ $WITH_TEST == 1 ]]; then pip install -q -e '.[test]'; else pip install -q -e .; fi

[[ $WITH_TEST == 1 ]] && { log "real Wyoming peers for the interop tests"; bash scripts/wyoming_peers.sh; }

log "preparing model weights (voiced models fetch)"
"$VENV/bin/voiced" models fetch

log "done in $(( $(date +%s) - start )) s"
