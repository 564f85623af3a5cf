#!/usr/bin/env bash
# Runs every bench and prints one table: what was measured, wpkg against its peer, the
# ratio and the target (each bench's `summary:` lines). The peers: wasmtime-cli 48.0.8
# on PATH for http and run (cargo install --locked wasmtime-cli@48.0.8 --no-default-features
# --features run,serve,cache,config,cranelift,parallel-compilation,pooling-allocator,component-model,component-model-async),
# oras (bash scripts/setup.sh) and wkg (cargo install --locked wkg) for the registry,
# curl for the pull floor. Each bench's full output goes to $OUT/NAME.log. Ends with the
# table of speed targets (bench, measured, target, met), from each bench's `result:` lines.
# DURATION (http seconds, default 15), ROUNDS (default 3), N (runs per median).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
export DURATION=${DURATION:-15} ROUNDS=${ROUNDS:-3}
run() { # name script [env...]
  local name=$1 script=$2; shift 2
  echo "== $name" >&2
  if ! env "$@" bash "bench/$script" > "$OUT/$name.log" 2>&1; then
    echo "summary: $name FAILED (see $OUT/$name.log)" >> "$OUT/$name.log"
  fi
}
run http-50 http.sh CONNS=50
run http-1000 http.sh CONNS=1000 ROUNDS=1
run run run.sh
run registry registry.sh
run scale scale.sh
run sign sign.sh
# The soak runs SOAK seconds (default 600; SOAK=0 leaves it out of the table).
SOAK=${SOAK:-600}
[ "$SOAK" != 0 ] && run soak soak.sh SECS="$SOAK"
echo
echo "wpkg benches, $(date -u +%Y-%m-%d), $(nproc) cores; logs in $OUT"
for f in http-50 http-1000 run registry scale; do
  grep -h '^summary: ' "$OUT/$f.log" | sed 's/^summary: /  /'
done
# The targets of the speed work (issue 25), each measured above, met or not.
echo
printf '| %s | %s | %s | %s |\n' bench measured target met
printf '|---|---|---|---|\n'
for f in http-50 http-1000 run scale soak; do
  [ -f "$OUT/$f.log" ] || { printf '| %s | not run | | n/a |\n' "$f"; continue; }
  if grep -q '^result: ' "$OUT/$f.log"; then
    grep -h '^result: ' "$OUT/$f.log" | sed 's/^result: //' | awk -F'|' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }'
  else
    printf '| %s | FAILED (see %s) | | no |\n' "$f" "$OUT/$f.log"
  fi
done
