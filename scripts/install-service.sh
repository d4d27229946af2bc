#!/usr/bin/env bash
# Installs voiced as a systemd service.
#   sudo bash scripts/install-service.sh    system service: user "voiced", code in /opt/voiced,
#                                           config /etc/voiced/voiced.toml, models /var/cache/voiced
#   bash scripts/install-service.sh --user  user service (desktop; the audio server lives in
#                                           your session): code in ~/.local/share/voiced
# The prefixes are fixed because the units' ExecStart= names them. Re-running updates the
# code and keeps the virtualenv (setup.sh is idempotent) and any existing config.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd -P)
MODE=system
case "${1:-}" in
  "" | --system) ;;
  --user) MODE=user ;;
  -h | --help) sed -n '2,8p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--user]" >&2; exit 2 ;;
esac

log() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
die() { printf 'install-service: %s\n' "$*" >&2; exit 1; }

# Copy this checkout into $1 (unless it is already there), without build outputs.
copy_checkout() {
  local dest=$1
  dest=$(realpath -m "$dest")
  if [[ $dest == "$SRC" ]]; then
    log "using the checkout in place: $dest"
    return
  fi
  # The clean-up below must never reach the checkout we copy from.
  [[ $SRC/ != "$dest"/* ]] || die "$SRC is inside $dest: move the checkout elsewhere first"
  log "copying $SRC -> $dest"
  mkdir -p "$dest"
  # Drop old code but keep the virtualenv (torch is large; setup.sh keeps it).
  find "$dest" -mindepth 1 -maxdepth 1 ! -name .venv -exec rm -rf {} +
  tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=__pycache__ \
      --exclude='*.egg-info' --exclude=./.pytest_cache --exclude=./models \
      --exclude=./build --exclude=./dist --exclude=./bench-results --exclude=./.ruff_cache \
      --exclude=./.mypy_cache -cf - . \
    | tar -C "$dest" --no-same-owner -xf -
}

if [[ $MODE == system ]]; then
  [[ $(id -u) == 0 ]] || die "the system service needs root: sudo bash $0 (or use --user)"
  PREFIX=/opt/voiced
  CACHE=/var/cache/voiced   # = the unit's CacheDirectory=; models in $CACHE/models

  # The unit's SupplementaryGroups= must all exist or the service fails with 216/GROUP.
  for g in audio input render video; do
    getent group "$g" >/dev/null || { log "creating group $g"; groupadd --system "$g"; }
  done
  if ! id voiced >/dev/null 2>&1; then
    log "creating system user voiced"
    useradd --system --user-group --home-dir /var/lib/voiced --no-create-home \
            --shell /usr/sbin/nologin --groups audio,input voiced
  else
    usermod -a -G audio,input voiced
  fi

  copy_checkout "$PREFIX"
  # Same cache layout as the running service, so `voiced models fetch` fills the
  # folder the service reads (voiced/config.py models_dir() honours CACHE_DIRECTORY).
  mkdir -p "$CACHE"
  (cd "$PREFIX" && CACHE_DIRECTORY=$CACHE XDG_CACHE_HOME=$CACHE bash scripts/setup.sh)
  chown -R voiced:voiced "$CACHE"

  if [[ ! -e /etc/voiced/voiced.toml ]]; then
    # Group-readable only: it may hold a responder API key.
    install -D -m 0640 -g voiced "$SRC/config/voiced.toml" /etc/voiced/voiced.toml
    log "installed /etc/voiced/voiced.toml"
  else
    log "kept /etc/voiced/voiced.toml"
  fi
  install -D -m 0644 "$SRC/systemd/voiced.service" /etc/systemd/system/voiced.service
  log "installed /etc/systemd/system/voiced.service"
  SYSTEMCTL=(systemctl)
  JOURNAL="journalctl -u voiced -f"
else
  [[ $(id -u) != 0 ]] || log "warning: --user as root installs into root's own session"
  PREFIX=$HOME/.local/share/voiced   # = the user unit's ExecStart=%h/.local/share/voiced/...
  UNIT_DIR=$HOME/.config/systemd/user
  copy_checkout "$PREFIX"
  (cd "$PREFIX" && bash scripts/setup.sh)   # models go to ~/.cache/voiced/models
  if [[ ! -e $HOME/.config/voiced/voiced.toml ]]; then
    install -D -m 0600 "$SRC/config/voiced.toml" "$HOME/.config/voiced/voiced.toml"
    log "installed ~/.config/voiced/voiced.toml"
  fi
  install -D -m 0644 "$SRC/systemd/voiced-user.service" "$UNIT_DIR/voiced.service"
  log "installed $UNIT_DIR/voiced.service"
  SYSTEMCTL=(systemctl --user)
  JOURNAL="journalctl --user -u voiced -f"
fi

# Shell completions and the man page, generated from the installed voiced's own parser.
# $1: bash dir, $2: zsh dir ("" = none), $3: fish dir, $4: man1 dir.
install_shell_files() {
  local voiced=$PREFIX/.venv/bin/voiced tmp
  tmp=$(mktemp -d)
  if "$voiced" completion bash >"$tmp/bash" && "$voiced" completion zsh >"$tmp/zsh" \
      && "$voiced" completion fish >"$tmp/fish" && "$voiced" man >"$tmp/man"; then
    install -D -m 0644 "$tmp/bash" "$1/voiced"
    [[ -z $2 ]] || install -D -m 0644 "$tmp/zsh" "$2/_voiced"
    install -D -m 0644 "$tmp/fish" "$3/voiced.fish"
    install -D -m 0644 "$tmp/man" "$4/voiced.1"
    log "installed shell completions (bash, ${2:+zsh, }fish) and the man page $4/voiced.1"
  else
    log "warning: could not generate the shell completions and man page"
  fi
  rm -rf "$tmp"
}
if [[ $MODE == system ]]; then
  install_shell_files /usr/share/bash-completion/completions /usr/share/zsh/vendor-completions \
    /usr/share/fish/vendor_completions.d /usr/share/man/man1
else   # zsh has no per-user standard folder: add `voiced completion zsh` to your fpath yourself
  DATA=${XDG_DATA_HOME:-$HOME/.local/share}
  install_shell_files "$DATA/bash-completion/completions" "" "${XDG_CONFIG_HOME:-$HOME/.config}/fish/completions" \
    "$DATA/man/man1"
fi

# systemctl talks to a running manager; say what to do instead of failing with its error.
if ! command -v systemctl >/dev/null; then
  log "systemctl not found: this machine does not run systemd. Start voiced by hand:"
  log "  $PREFIX/.venv/bin/voiced run"
  exit 0
fi
manager_running() {
  if [[ $MODE == system ]]; then [[ -d /run/systemd/system ]]  # what sd_booted() checks
  else systemctl --user show-environment >/dev/null 2>&1; fi
}
if manager_running; then
  "${SYSTEMCTL[@]}" daemon-reload
else
  log "no running systemd ${MODE} manager here; once there is one, run:"
  log "  ${SYSTEMCTL[*]} daemon-reload"
fi

log "next:"
log "  ${SYSTEMCTL[*]} enable --now voiced"
log "  $JOURNAL"
if [[ $MODE == user ]]; then
  log "To start voiced at boot, without logging in (your audio server must linger too):"
  log "  loginctl enable-linger $(id -un)"
fi
