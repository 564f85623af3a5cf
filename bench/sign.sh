#!/usr/bin/env bash
# Sign+push time of examples/hello: keyless (the loopback test Sigstore instance:
# OIDC token from a GitHub-shaped endpoint, Fulcio certificate, Rekor entry, bundle
# checked and pushed as a referrer) against the key-based path (a cosign key, classic
# `.sig`). Both push the same image to Debian's docker-registry on loopback; every run
# goes to a fresh repository so the image blobs are uploaded each time. Median of N
# runs. Figures are printed, not asserted. Needs: bash scripts/setup.sh.
#
# On the public-good instance, add the round trips to fulcio.sigstore.dev,
# rekor.sigstore.dev and GitHub's token endpoint (each ~50-300 ms from CI runners).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-9}

[ -x /usr/bin/docker-registry ] \
  || { echo "docker-registry is missing: run bash scripts/setup.sh" >&2; exit 1; }
cargo build -q --release -p wpkg -p wpkg-tests --bins
cargo build -q --release --target wasm32-wasip2 -p example-hello
WPKG=$PWD/target/release/wpkg
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/storage } }
http: { addr: $HOST }
YML
timeout 3600 /usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
mkdir -p "$WORK/sigstore"
timeout 3600 target/release/test-sigstore --dir "$WORK/sigstore" --timeout 3600 \
  >"$WORK/sigstore/out" 2>"$WORK/sigstore/err" </dev/null &
PIDS+=($!)
for _ in $(seq 200); do
  curl -sf "http://$HOST/v2/" >/dev/null && grep -q ready "$WORK/sigstore/out" 2>/dev/null && break
  sleep 0.05
done
grep -q ready "$WORK/sigstore/out" || { echo "test-sigstore did not start" >&2; cat "$WORK/sigstore/err" >&2; exit 1; }
# shellcheck disable=SC1091
. "$WORK/sigstore/env"

export WPKG_HOME=$WORK/home DOCKER_CONFIG=$WORK/docker COSIGN_PASSWORD=bench
mkdir -p "$WORK/hello"
cp target/wasm32-wasip2/release/hello.wasm "$WORK/hello/hello.wasm"
printf 'manifest_version = 1\n[package]\nname = "hello"\nversion = "0.1.0"\nwasm = "hello.wasm"\n[trigger]\ntype = "command"\n' > "$WORK/hello/wpkg.toml"
"$WPKG" build -q --no-build-command "$WORK/hello" -t hello:1 >/dev/null
(cd "$WORK" && "$WPKG" keygen --output-key-prefix "$WORK/bench" 2>/dev/null)

now_ns() { date +%s%N; }
ms() {
  local s e
  s=$(now_ns)
  "$@" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
  e=$(now_ns)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }'
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

: > "$WORK/plain"; : > "$WORK/key"; : > "$WORK/keyless"
for i in $(seq "$N"); do
  ms "$WPKG" push -q hello:1 "$HOST/plain$i/hello:1" >> "$WORK/plain"
  ms "$WPKG" push -q --sign --key "$WORK/bench.key" hello:1 "$HOST/key$i/hello:1" >> "$WORK/key"
  ms "$WPKG" push -q --sign --keyless hello:1 "$HOST/keyless$i/hello:1" >> "$WORK/keyless"
done
P=$(median < "$WORK/plain"); K=$(median < "$WORK/key"); L=$(median < "$WORK/keyless")
echo "sign+push of examples/hello, median of $N runs (ms):"
printf '  %-34s %8s\n' "push, unsigned" "$P" "push --sign --key (classic .sig)" "$K" \
  "push --sign --keyless (v3 bundle)" "$L"
awk -v k="$K" -v l="$L" -v p="$P" 'BEGIN {
  printf "  keyless / key: %.2fx; signing cost over an unsigned push: key %.1f ms, keyless %.1f ms\n", l / k, k - p, l - p }'
