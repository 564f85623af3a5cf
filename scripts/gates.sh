#!/usr/bin/env bash
# The CI gates besides the tests: formatting, clippy, cargo-deny (licenses, duplicate
# versions with reasons, sources, and advisories when the RustSec database can be
# fetched), and wpkg-spec built for wasm32-wasip2 to keep it free of I/O.
# Needs: bash scripts/setup.sh (installs cargo-deny and the wasm targets).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deny >/dev/null \
  || { echo "cargo-deny is missing: run bash scripts/setup.sh" >&2; exit 1; }

echo "== cargo fmt --check"
cargo fmt --all --check

echo "== cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo deny check bans licenses sources"
cargo deny --locked check bans licenses sources

echo "== cargo deny check advisories"
if ! out=$(cargo deny --locked check advisories 2>&1); then
  if grep -q "failed to fetch advisory database" <<<"$out"; then
    # Not a pass: said loudly, once, so nobody mistakes it for one.
    echo "ADVISORIES NOT CHECKED: the RustSec database (github.com/RustSec/advisory-db) cannot be fetched from this machine" >&2
  else
    # Reported, not blocking: the database changes daily, independently of this
    # repository, and wpkg has no way to check it before landing. Set
    # WPKG_STRICT_ADVISORIES=1 to make a finding fail the gate.
    echo "$out" >&2
    echo "ADVISORIES FOUND (see above)" >&2
    [ "${WPKG_STRICT_ADVISORIES:-0}" = 1 ] && exit 1
  fi
else
  echo "advisories ok"
fi

echo "== wpkg-spec builds for wasm32-wasip2 (no I/O in spec)"
cargo build --locked -q -p wpkg-spec --target wasm32-wasip2
echo "gates: OK"
