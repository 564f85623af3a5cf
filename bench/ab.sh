#!/usr/bin/env bash
# A/B of two wpkg binaries on the same guests, interleaved in one run (the machine is
# noisy): HTTP requests/s of examples/http-hello under wrk, and the whole-process time of
# a warm `wpkg run` of examples/hello under hyperfine. Prints each side's median over
# ROUNDS rounds and the ratio B/A. Used for a change's before/after figures:
#   git worktree add /tmp/before REV && (cd /tmp/before && cargo build --release -p wpkg)
#   bash bench/ab.sh /tmp/before/target/release/wpkg target/release/wpkg
# Needs wrk and hyperfine (apt-get install wrk hyperfine). Figures are printed, not asserted.
set -euo pipefail
cd "$(dirname "$0")/.."
A=${1:?usage: bench/ab.sh WPKG_A WPKG_B}
B=${2:?usage: bench/ab.sh WPKG_A WPKG_B}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8}
CONNS=${CONNS:-50}
N=${N:-30}
for t in wrk hyperfine; do
  command -v $t >/dev/null || { echo "$t is needed: apt-get install $t" >&2; exit 1; }
done
cargo build -q --release --target wasm32-wasip2 -p example-http-hello -p example-hello
WORK=$(mktemp -d)
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
SERVER=
# Copies, as installed binaries are (a just-linked binary maps slower).
cp "$A" "$WORK/wpkg-a"; cp "$B" "$WORK/wpkg-b"
HELLO=$PWD/target/wasm32-wasip2/release/example_http_hello.wasm
sed "s|../../target/wasm32-wasip2/release/example_http_hello.wasm|$HELLO|" examples/http-hello/wpkg.toml \
  | sed 's|^\[limits\]|[capabilities]\noutbound_http = ["https://api.example.com"]\n\n[limits]|' > "$WORK/wpkg.toml"
for side in a b; do
  export WPKG_HOME=$WORK/home-$side
  "$WORK/wpkg-$side" build -q --no-build-command "$WORK" -t http-hello:bench >/dev/null
  "$WORK/wpkg-$side" build -q --no-build-command examples/hello -t hello:bench >/dev/null
  "$WORK/wpkg-$side" run hello:bench >/dev/null
done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "server on $1 did not start" >&2; return 1; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for round in $(seq "$ROUNDS"); do
  for side in a b; do
    export WPKG_HOME=$WORK/home-$side
    PORT=$(free_port)
    "$WORK/wpkg-$side" run http-hello:bench --listen "127.0.0.1:$PORT" --max-concurrent 256 >/dev/null 2>&1 &
    SERVER=$!
    wait_up "$PORT"
    wrk -t1 -c4 -d1s "http://127.0.0.1:$PORT/" >/dev/null 2>&1 || true
    wrk -t2 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:$PORT/" | awk '/Requests\/sec/ {print $2}' >> "$WORK/rps-$side"
    kill -INT $SERVER; wait $SERVER 2>/dev/null || true
    hyperfine -N --warmup 3 --runs "$N" --export-json "$WORK/run.json" "$WORK/wpkg-$side run hello:bench -- bench" >/dev/null
    python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$WORK/run.json" >> "$WORK/run-$side"
  done
done
RA=$(median < "$WORK/rps-a"); RB=$(median < "$WORK/rps-b")
WA=$(median < "$WORK/run-a"); WB=$(median < "$WORK/run-b")
echo "per round req/s  A: $(tr '\n' ' ' < "$WORK/rps-a")  B: $(tr '\n' ' ' < "$WORK/rps-b")"
echo "per round warm ms A: $(tr '\n' ' ' < "$WORK/run-a")  B: $(tr '\n' ' ' < "$WORK/run-b")"
echo "summary: http-hello req/s (${DURATION}s, $CONNS conns, median of $ROUNDS): A $RA, B $RB, B/A $(echo "scale=3; $RB / $RA" | bc)"
echo "summary: warm run ms (median of $ROUNDS medians of $N): A $WA, B $WB, B/A $(echo "scale=3; $WB / $WA" | bc)"
