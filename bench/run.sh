#!/usr/bin/env bash
# Whole-process time of `wpkg run` on examples/hello: first run (compiles) and warm
# run (compiled-code cache hit), median of N runs; and `wasmtime run` of the same
# .wasm with its cache on, side by side, when `wasmtime` is on PATH
# (cargo install --locked wasmtime-cli@48.0.8). Figures are printed, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-15}

cargo build -q --release -p wpkg
cargo build -q --release --target wasm32-wasip2 -p example-hello
WPKG=$PWD/target/release/wpkg
WASM=$PWD/target/wasm32-wasip2/release/hello.wasm
export WPKG_HOME=$(mktemp -d)
trap 'rm -rf "$WPKG_HOME"' EXIT
"$WPKG" build -q --no-build-command examples/hello -t hello:bench >/dev/null

# time_ms CMD...: wall time of one run in milliseconds (fractional).
time_ms() {
  local s e
  s=$(date +%s%N)
  "$@" >/dev/null 2>&1
  e=$(date +%s%N)
  echo "scale=2; ($e - $s) / 1000000" | bc
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

first=(); warm=(); wt=()
for _ in $(seq "$N"); do
  rm -rf "$WPKG_HOME/cache"
  first+=("$(time_ms "$WPKG" run hello:bench -- bench)")
done
"$WPKG" run hello:bench >/dev/null
for _ in $(seq "$N"); do warm+=("$(time_ms "$WPKG" run hello:bench -- bench)"); done
F=$(printf '%s\n' "${first[@]}" | median)
W=$(printf '%s\n' "${warm[@]}" | median)
echo "wpkg run, first (compiles):   median ${F} ms over $N runs"
echo "wpkg run, warm (cache hit):   median ${W} ms over $N runs"

if command -v wasmtime >/dev/null; then
  wasmtime run -C cache=y "$WASM" bench >/dev/null 2>&1 || true
  # Interleave so that machine noise hits both alike.
  warm=()
  for _ in $(seq "$N"); do
    wt+=("$(time_ms wasmtime run -C cache=y "$WASM" bench)")
    warm+=("$(time_ms "$WPKG" run hello:bench -- bench)")
  done
  T=$(printf '%s\n' "${wt[@]}" | median)
  W=$(printf '%s\n' "${warm[@]}" | median)
  echo "wasmtime run (cache on):      median ${T} ms over $N runs ($(wasmtime --version))"
  echo "wpkg warm, same interleaved:  median ${W} ms"
  echo "ratio wpkg warm / wasmtime:   $(echo "scale=2; $W / $T" | bc)x (target: <= 0.5x)"
  echo "summary: run warm vs wasmtime run -C cache=y: $W ms vs $T ms = $(echo "scale=2; $W / $T" | bc)x (target: <= 0.5x)"
else
  echo "wasmtime not on PATH: install it with 'cargo install --locked wasmtime-cli@48.0.8' for the side-by-side figure"
fi
