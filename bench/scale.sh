#!/usr/bin/env bash
# Store scale: `wpkg images` and a warm `wpkg run` of one image with 10, 100 and 1,000
# distinct images in the store (each a build of examples/hello under its own name, so
# each has its own manifest and config). Median of N runs at each size, and the ratio
# 1,000 / 10 (target: flat, i.e. close to 1x). Figures are printed, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${N:-9}
cargo build -q --release -p wpkg
cargo build -q --release --target wasm32-wasip2 -p example-hello
WPKG=$PWD/target/release/wpkg
WASM=$PWD/target/wasm32-wasip2/release/hello.wasm
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export WPKG_HOME=$WORK/home
mkdir -p "$WORK/p"
cp "$WASM" "$WORK/p/hello.wasm"

ms() {
  local s e
  s=$(date +%s%N)
  "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
  e=$(date +%s%N)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f\n", (b - a) / 1e6 }'
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }

have=0
add_until() {
  while [ "$have" -lt "$1" ]; do
    have=$((have + 1))
    printf 'manifest_version = 1\n[package]\nname = "img%d"\nversion = "1.0.0"\nwasm = "hello.wasm"\n[trigger]\ntype = "command"\n' "$have" > "$WORK/p/wpkg.toml"
    "$WPKG" build -q --no-build-command "$WORK/p" -t "img$have:1" >/dev/null
  done
}

declare -A IM RUN
for n in 10 100 1000; do
  add_until "$n"
  "$WPKG" run img1:1 >/dev/null  # compiled-code cache warm
  im=(); rn=()
  for _ in $(seq "$N"); do
    im+=("$(ms "$WPKG" images)")
    rn+=("$(ms "$WPKG" run img1:1)")
  done
  IM[$n]=$(printf '%s\n' "${im[@]}" | median)
  RUN[$n]=$(printf '%s\n' "${rn[@]}" | median)
done
echo "store scale: median of $N runs (ms)"
printf '%-22s %8s %8s %8s   %s\n' "" 10 100 1000 "1000/10"
for what in images run; do
  if [ $what = images ]; then a=${IM[10]} b=${IM[100]} c=${IM[1000]}; else a=${RUN[10]} b=${RUN[100]} c=${RUN[1000]}; fi
  printf '%-22s %8s %8s %8s   %s\n' "wpkg $what" "$a" "$b" "$c" "$(awk -v a="$a" -v c="$c" 'BEGIN{printf "%.2fx", c/a}')"
done
echo "summary: store-scale 'wpkg images' at 1000 vs 10 images: ${IM[1000]} ms vs ${IM[10]} ms = $(awk -v a="${IM[10]}" -v c="${IM[1000]}" 'BEGIN{printf "%.2fx", c/a}') (target: flat, <= 1.5x)"
echo "summary: store-scale 'wpkg run' at 1000 vs 10 images: ${RUN[1000]} ms vs ${RUN[10]} ms = $(awk -v a="${RUN[10]}" -v c="${RUN[1000]}" 'BEGIN{printf "%.2fx", c/a}') (target: flat, <= 1.5x)"
IR=$(awk -v a="${IM[10]}" -v c="${IM[1000]}" 'BEGIN{printf "%.2f", c/a}')
result "wpkg images at 1,000 vs 10 images" "${IR}x (${IM[1000]} vs ${IM[10]} ms)" "<= 1.5x" "$(le "$IR" 1.5)"
