#!/usr/bin/env bash
# Whole-process time of `wpkg run` on examples/hello, measured with hyperfine (no
# shell in between): warm (compiled-code cache hit) against `wasmtime run -C cache=y`
# of the same .wasm, and first run (compiles) against `wasmtime run -C cache=n`,
# side by side when `wasmtime` is on PATH (cargo install --locked wasmtime-cli@48.0.8).
# Then where a warm run's time goes: WPKG_TIMINGS=1 phases (median of N runs) and the
# process start and exit of an empty `wpkg --version`. Figures are printed, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${N:-30}
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine" >&2; exit 1; }

cargo build -q --release -p wpkg
cargo build -q --release --target wasm32-wasip2 -p example-hello
export WPKG_HOME=$(mktemp -d)
OUT=$(mktemp -d)
trap 'rm -rf "$WPKG_HOME" "$OUT"' EXIT
# Measured as installed, like the peer (`cargo install` copies the binary): a binary
# the linker has just written maps measurably slower (more page faults) than a copy.
cp target/release/wpkg "$OUT/wpkg"
WPKG=$OUT/wpkg
WASM=$PWD/target/wasm32-wasip2/release/hello.wasm
"$WPKG" build -q --no-build-command examples/hello -t hello:bench >/dev/null
"$WPKG" run hello:bench >/dev/null

# median_ms FILE: hyperfine's median of the one command in FILE, in ms.
median_ms() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
# bench NAME [hyperfine options] -- CMD: runs N times (after 3 warm-ups), prints the median.
bench() {
  local name=$1; shift
  hyperfine -N --warmup 3 --runs "$N" --export-json "$OUT/$name.json" "$@" >/dev/null
  median_ms "$OUT/$name.json"
}
ratio() { echo "scale=2; $1 / $2" | bc; }

WARM=$(bench wpkg-warm "$WPKG run hello:bench -- bench")
FIRST=$(bench wpkg-first --prepare "rm -rf $WPKG_HOME/cache" "$WPKG run hello:bench -- bench")
START=$(bench wpkg-version "$WPKG --version")
echo "wpkg run, warm (cache hit):    median ${WARM} ms over $N runs"
echo "wpkg run, first (compiles):    median ${FIRST} ms over $N runs"
echo "wpkg --version (process only): median ${START} ms"

# The split of a warm run: each phase's median over N runs.
for _ in $(seq "$N"); do
  WPKG_TIMINGS=1 "$WPKG" run hello:bench -- bench 2>&1 >/dev/null | grep '^timings' >> "$OUT/split.txt"
done
echo
echo "where a warm run's ${WARM} ms go (WPKG_TIMINGS=1, median of $N runs, ms):"
echo "  process start + exit (wpkg --version)      ${START}"
python3 - "$OUT/split.txt" "$WARM" "$START" <<'EOF'
import re, statistics, sys
runs = [l.split(":", 1)[1] for l in open(sys.argv[1])]
names, values = [], {}
for r in runs:
    for part in r.split(";"):
        m = re.match(r"\s*(.+?) ([0-9.]+)\s*$", part)
        if not m:
            continue
        name, v = m.group(1), float(m.group(2))
        if name not in values:
            names.append(name)
            values[name] = []
        values[name].append(v)
for n in names:
    print(f"  {n:<44} {statistics.median(values[n]):.3f}")
inside = statistics.median(values.get("total", [0]))
rest = float(sys.argv[2]) - inside - float(sys.argv[3])
print(f"  {'unaccounted (loader, teardown, noise)':<44} {rest:.3f}")
EOF

if command -v wasmtime >/dev/null; then
  wasmtime run -C cache=y "$WASM" bench >/dev/null 2>&1 || true
  WT=$(bench wasmtime-warm "wasmtime run -C cache=y $WASM bench")
  WT_NC=$(bench wasmtime-nocache "wasmtime run -C cache=n $WASM bench")
  WT_V=$(bench wasmtime-version "wasmtime --version")
  # Again, right after, so that machine noise hits both alike.
  WARM2=$(bench wpkg-warm2 "$WPKG run hello:bench -- bench")
  echo
  echo "wasmtime run -C cache=y:       median ${WT} ms ($(wasmtime --version))"
  echo "wasmtime run -C cache=n:       median ${WT_NC} ms"
  echo "wasmtime --version:            median ${WT_V} ms"
  echo "wpkg run warm, again:          median ${WARM2} ms"
  echo "summary: run warm vs wasmtime run -C cache=y: $WARM2 ms vs $WT ms = $(ratio "$WARM2" "$WT")x (target: <= 0.5x)"
  echo "summary: run first (compiles) vs wasmtime run -C cache=n: $FIRST ms vs $WT_NC ms = $(ratio "$FIRST" "$WT_NC")x"
  RW=$(ratio "$WARM2" "$WT"); RF=$(ratio "$FIRST" "$WT_NC")
  result "warm run vs wasmtime run -C cache=y" "${RW}x ($WARM2 vs $WT ms)" "<= 0.5x" "$(le "$RW" 0.5)"
  result "first run (compiles) vs wasmtime run -C cache=n" "${RF}x ($FIRST vs $WT_NC ms)" "<= 1.0x" "$(le "$RF" 1.0)"
else
  result "warm run vs wasmtime run -C cache=y" "$WARM ms (no wasmtime on PATH)" "<= 0.5x" n/a
  result "first run (compiles) vs wasmtime run -C cache=n" "$FIRST ms (no wasmtime on PATH)" "<= 1.0x" n/a
  echo "wasmtime not on PATH: install it with 'cargo install --locked wasmtime-cli@48.0.8' for the side-by-side figure"
fi
