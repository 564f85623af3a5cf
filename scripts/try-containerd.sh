#!/usr/bin/env bash
# wpkg images on containerd, without a cluster: starts Debian's containerd (1.6.20) as
# root in a private state directory with containerd-shim-wpkg-v1 on its PATH, builds
# two examples with `wpkg build --format image`, imports them with `ctr images import`
# and runs them with `ctr run --runtime io.containerd.wpkg.v1`:
#   1. examples/hello with a variable it does not declare: refused before it runs;
#      without it: the guest sees its declared variable and not the runtime's PATH;
#   2. examples/http-fetch served by the shim: its call to the upstream its wpkg.toml
#      allows succeeds, its call to another upstream is denied;
#   3. start time: `ctr run` to the guest's output vs `wpkg run` of the same image
#      (median of N runs, default 9).
# Stops containerd and everything it started at the end. Exits non-zero on any miss.
# Needs root (containerd), `bash scripts/setup.sh` (containerd, protobuf-compiler...).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-9}
[ "$(id -u)" = 0 ] || { echo "try-containerd: containerd needs root; run as root" >&2; exit 1; }
bash scripts/setup.sh >/dev/null
echo "== building wpkg and containerd-shim-wpkg-v1 (release)"
# The same two builds as scripts/try-kubernetes.sh and the test harness (features
# unify per command), so each is built once.
cargo build -q --release --locked -p wpkg -p wpkg-tests --bins
cargo build -q --release --locked -p wpkg-shim --bins
cargo build -q --release --locked --target wasm32-wasip2 -p example-hello -p example-http-fetch
TARGET=$(realpath "${CARGO_TARGET_DIR:-target}")
BIN=$TARGET/release
WPKG=$BIN/wpkg

work=$(mktemp -d /tmp/wpkg-try-ctd.XXXXXX)
export WPKG_HOME=$work/home
pids=()
cleanup() {
  set +e
  if [ -S "$work/c.sock" ]; then
    for id in $(ctr -a "$work/c.sock" -n try containers ls -q 2>/dev/null); do
      ctr -a "$work/c.sock" -n try tasks kill -s SIGKILL "$id" >/dev/null 2>&1
      sleep 0.2
      ctr -a "$work/c.sock" -n try tasks delete "$id" >/dev/null 2>&1
      ctr -a "$work/c.sock" -n try containers delete "$id" >/dev/null 2>&1
    done
  fi
  for p in /proc/[0-9]*; do
    if { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q "containerd-shim.*$work/c.sock"; then
      kill -9 "${p#/proc/}" 2>/dev/null
    fi
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  grep " $work" /proc/self/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/config.toml" <<TOML
version = 2
root = "$work/root"
state = "$work/state"
[grpc]
  address = "$work/c.sock"
[ttrpc]
  address = "$work/c.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
TOML
echo "== starting containerd $(containerd --version | awk '{print $3}') in $work"
PATH="$BIN:$PATH" timeout -k 5 1800 containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)
ctr() { command ctr -a "$work/c.sock" -n try "$@"; }
for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr version >/dev/null || { cat "$work/containerd.log"; echo "try-containerd: containerd did not start" >&2; exit 1; }

import() { # DIR TAG -> image name
  "$WPKG" build -q --no-build-command --format image "$1" -t "$2" >/dev/null
  "$WPKG" save "$2" -o "$work/$3.tar"
  ctr images import "$work/$3.tar" | sed -n 's/^unpacking \([^ ]*\) .*/\1/p' | head -1
}
fail() { echo "try-containerd: FAILED: $*" >&2; exit 1; }

echo
echo "== 1. examples/hello: declares GREETING only; a container that also sets SECRET_TOKEN is refused"
hello=$(import examples/hello hello:ctr hello)
out=$(ctr run --rm --runtime io.containerd.wpkg.v1 --env SECRET_TOKEN=hunter2 "$hello" try-hello0 /app.wasm from-containerd 2>&1) \
  && fail "a container with an undeclared variable started"
echo "$out" | sed 's/^/   | /'
grep -q "wpkg refused the container: the pod sets SECRET_TOKEN" <<<"$out" || fail "the refusal does not name SECRET_TOKEN"
! grep -q "Hello, from-containerd!" <<<"$out" || fail "the guest ran"
out=$(ctr run --rm --runtime io.containerd.wpkg.v1 "$hello" try-hello /app.wasm from-containerd 2>&1)
echo "$out" | sed 's/^/   | /'
grep -q "Hello, from-containerd!" <<<"$out" || fail "hello did not greet"
grep -q "env: GREETING=Hello" <<<"$out" || fail "the declared GREETING is missing"
! grep -q "env: PATH" <<<"$out" || fail "the runtime's PATH reached the guest"
echo "   ok: SECRET_TOKEN refused before anything ran; GREETING seen, PATH absent"

echo
echo "== 2. examples/http-fetch served by the shim, allowed to one upstream only"
mkdir -p "$work/up1" "$work/up2" "$work/fetch"
echo "hello from the allowed upstream" > "$work/up1/index.html"
echo "the denied upstream was reached" > "$work/up2/index.html"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up1=$(free_port); up2=$(free_port); port=$(free_port)
python3 -m http.server -b 127.0.0.1 -d "$work/up1" "$up1" >/dev/null 2>&1 & pids+=($!)
python3 -m http.server -b 127.0.0.1 -d "$work/up2" "$up2" >/dev/null 2>&1 & pids+=($!)
sed -e "s|^wasm = .*|wasm = \"$TARGET/wasm32-wasip2/release/example_http_fetch.wasm\"|" \
    -e "s|^# outbound_http = .*|outbound_http = [\"http://127.0.0.1:$up1\"]|" \
    examples/http-fetch/wpkg.toml > "$work/fetch/wpkg.toml"
grep -n "outbound_http" "$work/fetch/wpkg.toml" | sed 's/^/   wpkg.toml:/'
fetch=$(import "$work/fetch" fetch:ctr fetch)
ctr run -d --runtime io.containerd.wpkg.v1 --net-host --env "WPKG_LISTEN=127.0.0.1:$port" "$fetch" try-fetch >/dev/null
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$port/" >/dev/null || { tail -20 "$work/containerd.log"; fail "the shim did not serve"; }
echo "   GET /fetch?url=http://127.0.0.1:$up1/  (allowed)"
allowed=$(curl -s -w ' [HTTP %{http_code}]' "http://127.0.0.1:$port/fetch?url=http://127.0.0.1:$up1/")
echo "   | $allowed"
grep -q "hello from the allowed upstream" <<<"$allowed" || fail "the allowed call did not succeed"
echo "   GET /fetch?url=http://127.0.0.1:$up2/  (not in wpkg.toml)"
denied=$(curl -s -w ' [HTTP %{http_code}]' "http://127.0.0.1:$port/fetch?url=http://127.0.0.1:$up2/")
echo "   | $denied"
grep -q "HttpRequestDenied" <<<"$denied" || fail "the undeclared call was not denied"
! grep -q "denied upstream was reached" <<<"$denied" || fail "the undeclared upstream was reached"
echo "   ok: allowed call answered, undeclared call denied"
ctr tasks kill -s SIGTERM try-fetch >/dev/null
for _ in $(seq 50); do ctr tasks ls -q | grep -q try-fetch || break; sleep 0.1; done
ctr tasks delete try-fetch >/dev/null 2>&1 || true
ctr containers delete try-fetch >/dev/null 2>&1 || true

echo
echo "== 3. start time, examples/hello, median of $N (ctr run -> guest output; wpkg run of the same image)"
measure() { # label command...
  local label=$1; shift
  local times=()
  for i in $(seq "$N"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" "$i" >/dev/null 2>&1 || fail "$label run $i failed"
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk -v l="$label" '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "   %-34s median %7.1f ms  (min %.1f, max %.1f)\n", l, m/1000, a[1]/1000, a[NR]/1000; print m > "/dev/stderr"}' 2>>"$work/medians"
}
ctr_hello() { ctr run --rm --runtime io.containerd.wpkg.v1 "$hello" "try-t$1" /app.wasm; }
wpkg_hello() { "$WPKG" run hello:ctr -- t; }
ctr_hello warm >/dev/null 2>&1
wpkg_hello >/dev/null 2>&1
measure "ctr run (containerd + wpkg shim)" ctr_hello
measure "wpkg run" wpkg_hello
read -r a b < <(tr '\n' ' ' < "$work/medians"; echo) || true
python3 -c "print(f'   ratio ctr run / wpkg run: {$a/$b:.1f}x')"
echo
echo "try-containerd: OK"
