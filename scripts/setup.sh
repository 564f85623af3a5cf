#!/usr/bin/env bash
# Installs what building and testing wpkg needs on a fresh Debian machine.
# Idempotent; safe to run again.
set -euo pipefail
rustup target add wasm32-wasip1 wasm32-wasip2
need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v sha256sum >/dev/null || need_apt+=(coreutils)
command -v gzip >/dev/null || need_apt+=(gzip)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
