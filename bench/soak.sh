#!/usr/bin/env bash
# Soak: SECS seconds (default 600) of mixed HTTP load on two release-built `wpkg run`
# servers (answers, allowed and denied outbound calls, trapping, out-of-memory and
# timing-out guests, a guest that counts its own state). It is the soak test of the
# test suite (tests/all/soak.rs) run longer: it fails on any unexpected answer and prints
# requests by kind and each server's RSS and open descriptors after warm-up and at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-${SECS:-600}}
WPKG_SOAK_SECS=$SECS cargo test -q --release -p wpkg-tests --test all -- \
  --exact soak::mixed_load_keeps_every_answer_right_and_memory_and_descriptors_flat --nocapture 2>&1 \
  | grep -E '^soak:|panicked|unexpected|test result' 
