#!/usr/bin/env bash
# Requests/s and latency (p50/p99) of examples/http-hello under load from a second
# process (wrk: apt-get install wrk), DURATION seconds at CONNS connections, plus peak
# RSS of the server; and `wasmtime serve` on the same component in the same run when
# `wasmtime` is on PATH (cargo install --locked wasmtime-cli@48.0.8), with the ratio.
# wpkg runs with allow-list enforcement on (the guest's manifest allows one
# destination). `wasmtime serve` gets `-S cli=y` because the Rust guest imports
# wasi:cli/environment, which its default proxy-only linker lacks. Figures are printed, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
DURATION=${DURATION:-30}
CONNS=${CONNS:-50}
THREADS=${THREADS:-2}
# wpkg's cap on concurrent requests: above the connection count, so that none is shed.
MAXC=${MAXC:-$(( CONNS > 256 ? CONNS : 256 ))}
# wpkg's worker processes: one per core (`--workers`; wpkg's default is 1).
WORKERS=${WORKERS:-$(nproc)}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ROUNDS=${ROUNDS:-1}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build -q --release -p wpkg
cargo build -q --release --target wasm32-wasip2 -p example-http-hello
WPKG=$PWD/target/release/wpkg
WASM=$PWD/target/wasm32-wasip2/release/example_http_hello.wasm
export WPKG_HOME=$(mktemp -d)
PROJ=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WPKG_HOME" "$PROJ"' EXIT
sed "s|../../target/wasm32-wasip2/release/example_http_hello.wasm|$WASM|" examples/http-hello/wpkg.toml \
  | sed 's|^\[limits\]|[capabilities]\noutbound_http = ["https://api.example.com"]\n\n[limits]|' > "$PROJ/wpkg.toml"
"$WPKG" build -q --no-build-command "$PROJ" -t http-hello:bench >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; return 1; }
# Peak RSS of a server: its process's and its worker processes' peaks, summed (pages
# they share count in each, so this overstates a multi-process server).
peak_rss_kb() {
  local pids="$1 $(cat /proc/$1/task/*/children 2>/dev/null)" sum=0 p v
  for p in $pids; do
    v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    sum=$(( sum + ${v:-0} ))
  done
  echo "$sum"
}

# load NAME PORT: prints "NAME rps p50 p99 errors rss_kb"
load() {
  local name=$1 port=$2 out
  wrk -t1 -c4 -d2s "http://127.0.0.1:$port/" >/dev/null 2>&1 || true  # warm-up
  out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
  local rps p50 p99 errs non2xx
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Socket errors/ {gsub(",",""); print $4+$6+$8+$10}')
  non2xx=$(echo "$out" | awk '/Non-2xx/ {print $5}')
  echo "$name $rps $p50 $p99 $(( ${errs:-0} + ${non2xx:-0} )) $(peak_rss_kb "$SERVER")"
}

results=()
for round in $(seq "$ROUNDS"); do
  PORT=$(free_port)
  "$WPKG" run http-hello:bench --listen "127.0.0.1:$PORT" --max-concurrent "$MAXC" --workers "$WORKERS" >/dev/null 2>&1 &
  SERVER=$!
  wait_up "$PORT"
  results+=("$(load wpkg "$PORT")")
  kill -INT $SERVER; wait $SERVER 2>/dev/null || true
  if command -v wasmtime >/dev/null; then
    PORT=$(free_port)
    wasmtime serve -S cli=y -C cache=y --addr "127.0.0.1:$PORT" "$WASM" >/dev/null 2>&1 &
    SERVER=$!
    wait_up "$PORT"
    results+=("$(load wasmtime-serve "$PORT")")
    kill -INT $SERVER; wait $SERVER 2>/dev/null || true
  fi
done

echo
echo "per round: server req/s p50 p99 errors peak-RSS-kB"
printf '  %s\n' "${results[@]}"
echo "http-hello, ${DURATION}s at $CONNS connections (wrk -t$THREADS), wpkg --workers $WORKERS, $ROUNDS round(s); median req/s and errors over rounds; p50/p99 of round 1"
printf '%-16s %12s %10s %10s %8s %10s\n' server "req/s" p50 p99 errors "peak RSS"
for name in wpkg wasmtime-serve; do
  rows=$(printf '%s\n' "${results[@]}" | awk -v n=$name '$1==n')
  [ -z "$rows" ] && continue
  med() { echo "$rows" | awk -v c=$1 '{print $c}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  printf '%-16s %12s %10s %10s %8s %9sMB\n' "$name" "$(med 2)" "$(echo "$rows" | awk '{print $3}' | head -1)" \
    "$(echo "$rows" | awk '{print $4}' | head -1)" "$(med 5)" "$(( $(med 6) / 1024 ))"
done
med_of() { printf '%s\n' "${results[@]}" | awk -v n="$1" -v c="$2" '$1==n {print $c}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
W=$(med_of wpkg 2)
E=$(printf '%s\n' "${results[@]}" | awk '$1=="wpkg" {print $5}' | sort -n | tail -1)
M=$(printf '%s\n' "${results[@]}" | awk '$1=="wpkg" {print $6}' | sort -n | tail -1)
P99=$(printf '%s\n' "${results[@]}" | awk '$1=="wpkg" {print $4; exit}')
# p99 in ms whatever unit wrk printed it in (us, ms, s).
P99_MS=$(echo "$P99" | awk '/us$/ {printf "%.2f", $1/1000; next} /ms$/ {printf "%.2f", $1+0; next} /s$/ {printf "%.2f", $1*1000; next} {print $1}')
if command -v wasmtime >/dev/null; then
  T=$(med_of wasmtime-serve 2)
  TM=$(printf '%s\n' "${results[@]}" | awk '$1=="wasmtime-serve" {print $6}' | sort -n | tail -1)
  R=$(echo "scale=2; $W / $T" | bc)
  RSS_R=$(echo "scale=2; $M / $TM" | bc)
  echo "ratio wpkg / wasmtime serve (req/s): ${R}x (target: >= 2x)"
  echo "summary: http req/s at $CONNS connections vs wasmtime serve: $W vs $T = ${R}x (target: >= 2x); wpkg p99 $P99 (target: <= 5ms at 50)"
  result "http req/s vs wasmtime serve ($CONNS conns)" "${R}x ($W vs $T req/s), $E errors" ">= 2.0x, 0 errors" \
    "$(both "$(ge "$R" 2.0)" "$(le "$E" 0)")"
  if [ "$CONNS" -le 50 ]; then
    result "p99 at $CONNS connections" "${P99_MS} ms" "<= 5 ms" "$(le "$P99_MS" 5)"
  else
    result "peak RSS at $CONNS connections vs wasmtime serve" "${RSS_R}x ($(( M / 1024 )) vs $(( TM / 1024 )) MB)" \
      "<= 1.5x" "$(le "$RSS_R" 1.5)"
  fi
else
  echo "wasmtime not on PATH: 'cargo install --locked wasmtime-cli@48.0.8' for the side-by-side figure"
  echo "summary: http req/s at $CONNS connections: $W (no wasmtime on PATH for the ratio)"
  result "http req/s vs wasmtime serve ($CONNS conns)" "$W req/s (no wasmtime on PATH)" ">= 2.0x, 0 errors" n/a
fi
echo "summary: http errors and peak RSS at $CONNS connections: $E errors, $(( M / 1024 )) MB (target: 0 errors, bounded)"
