#!/usr/bin/env bash
# A new user's first minute, timed: `wpkg new TEMPLATE`, `wpkg build` (the template's own
# toolchain: cargo, componentize-js or componentize-py), `wpkg run --listen`, until `/`
# answers. Each run uses a fresh directory and a fresh WPKG_HOME (nothing cached by wpkg;
# the toolchains' own caches stay warm). Prints each run and the median. Figures are
# printed, not asserted.
#
#     bash bench/first-request.sh                      # http-js, http-python, http-rust
#     N=5 WPKG=target/release/wpkg bash bench/first-request.sh http-js
# Needs the toolchains: bash scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
if [ -z "${WPKG:-}" ]; then
  cargo build -q --release --locked -p wpkg
  WPKG=$PWD/target/release/wpkg
fi
WPKG=$(realpath "$WPKG")
templates=("$@")
[ ${#templates[@]} -gt 0 ] || templates=(http-js http-python http-rust)
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
for t in "${templates[@]}"; do
  builds=(); firsts=()
  for i in $(seq "$N"); do
    W=$(mktemp -d)
    pid=
    trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$W"' EXIT
    export WPKG_HOME=$W/home
    s=$(date +%s%N)
    (cd "$W" && "$WPKG" new "$t" svc 2>/dev/null)
    (cd "$W/svc" && "$WPKG" build -q . >/dev/null 2>"$W/build.err") || { cat "$W/build.err" >&2; exit 1; }
    b=$(date +%s%N)
    "$WPKG" run svc:0.1.0 --listen 127.0.0.1:0 >"$W/addr" 2>"$W/err" &
    pid=$!
    until [ -s "$W/addr" ]; do kill -0 "$pid" 2>/dev/null || { cat "$W/err" >&2; exit 1; }; sleep 0.02; done
    addr=$(head -n1 "$W/addr")
    until curl -sf -o /dev/null "$addr/"; do sleep 0.02; done
    e=$(date +%s%N)
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    builds+=("$(ms "$s" "$b")"); firsts+=("$(ms "$s" "$e")")
    echo "$t run $i: new+build $(ms "$s" "$b") ms; new to first answer $(ms "$s" "$e") ms"
    rm -rf "$W"
  done
  echo "$t: median new+build $(printf '%s\n' "${builds[@]}" | median) ms; median new to first answer $(printf '%s\n' "${firsts[@]}" | median) ms (N=$N)"
done
