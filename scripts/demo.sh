#!/usr/bin/env bash
# The main demo on a fresh machine: installs the wasm targets, then builds the
# http-fetch guest, serves it with wpkg from the local store (no registry account),
# shows its outbound call denied, adds one line to wpkg.toml, and shows it succeed.
# Exits non-zero if any step does not behave as described.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run -q --locked -p wpkg-tests --bin demo
