#!/usr/bin/env bash
# Soak: SECS seconds (default 600) of mixed HTTP load on two release-built `wpkg run`
# servers (answers, allowed and denied outbound calls, trapping, out-of-memory and
# timing-out guests, a guest that counts its own state). It is the soak test of the
# test suite (tests/all/soak.rs) run longer: it fails on any unexpected answer and prints
# requests by kind and each server's RSS and open descriptors after warm-up and at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${1:-${SECS:-600}}
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
WPKG_SOAK_SECS=$SECS cargo test -q --release -p wpkg-tests --test all -- \
  --exact soak::mixed_load_keeps_every_answer_right_and_memory_and_descriptors_flat --nocapture 2>&1 \
  | grep -E '^soak:|panicked|unexpected|test result' | tee "$OUT" || true
# Flat: each server's RSS at the end within 1.25x of after warm-up, and at most 4 more
# open descriptors.
passed=$(grep -q 'test result: ok' "$OUT" && echo yes || echo no)
flat=$(awk '/^soak: .*RSS/ { for (i = 1; i <= NF; i++) { if ($i == "RSS") { a = $(i+1); b = $(i+4) } if ($i == "fds") { f = $(i+1); g = $(i+3) } }
  if (b > a * 1.25 || g > f + 4) bad = 1; n++ } END { print (n > 0 && !bad) ? "yes" : "no" }' "$OUT")
rss=$(awk '/^soak: .*RSS/ { sub(/^soak: /, ""); printf "%s%s", sep, $0; sep = "; " }' "$OUT")
result "soak ${SECS} s" "$([ "$passed" = yes ] && echo "0 unexpected" || echo FAILED); $rss" \
  "0 unexpected, RSS/fds flat" "$(both "$passed" "$flat")"
