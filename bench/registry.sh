#!/usr/bin/env bash
# Push and pull times against a local registry (Debian's docker-registry on loopback,
# plain HTTP), wpkg side by side with the `oras` Python client and, when it is on PATH,
# `wkg` (cargo install --locked wkg), for a ~100 KB artifact (examples/hello) and a
# ~10 MB one (the same component with a 10 MB custom section). Median of N runs; every
# push goes to a fresh repository so blobs are really uploaded, every pull goes to an
# empty store / directory. Also counts the blobs a re-push of unchanged content uploads.
# Figures are printed, not asserted. Needs: bash scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-7}

command -v docker-registry >/dev/null || [ -x /usr/bin/docker-registry ] \
  || { echo "docker-registry is missing: run bash scripts/setup.sh" >&2; exit 1; }
python3 -c 'import oras.provider' 2>/dev/null \
  || { echo "the oras Python package is missing: run bash scripts/setup.sh" >&2; exit 1; }

cargo build -q --release -p wpkg
cargo build -q --release --target wasm32-wasip2 -p example-hello
WPKG=$PWD/target/release/wpkg
WASM=$PWD/target/wasm32-wasip2/release/hello.wasm
WORK=$(mktemp -d)
REG_PID=""
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
cat > "$WORK/registry.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/storage } }
http: { addr: $HOST }
EOF
timeout 3600 docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -sf "http://$HOST/v2/" >/dev/null && break; sleep 0.05; done

export WPKG_HOME=$WORK/home DOCKER_CONFIG=$WORK/docker

# The two artifacts, built once into the local store: examples/hello (~110 kB), and the
# same component with a 10 MB custom section of random bytes appended (still a valid
# component, so wkg can push it too). oras and wkg push the very same wasm bytes.
mkdir -p "$WORK/small" "$WORK/large"
cp "$WASM" "$WORK/small/hello.wasm"
python3 - "$WASM" "$WORK/large/hello.wasm" <<'PY'
import os, sys
data = os.urandom(10_000_000)
name = b"wpkg-bench"
body = bytes([len(name)]) + name + data
def leb(n):
    out = bytearray()
    while True:
        b = n & 0x7F; n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n: return bytes(out)
wasm = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(wasm + b"\x00" + leb(len(body)) + body)
PY
for size in small large; do
  printf 'manifest_version = 1\n[package]\nname = "hello"\nversion = "0.1.0"\nwasm = "hello.wasm"\n[trigger]\ntype = "command"\n' > "$WORK/$size/wpkg.toml"
  "$WPKG" build -q --no-build-command "$WORK/$size" -t "bench-$size:1" >/dev/null
  # oras pushes the same layer with the config wpkg wrote.
  "$WPKG" inspect --json "bench-$size:1" \
    | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]))' > "$WORK/$size/config.json"
done
SMALL_BYTES=$(stat -c %s "$WORK/small/hello.wasm")
LARGE_BYTES=$(stat -c %s "$WORK/large/hello.wasm")

now_ns() { date +%s%N; }
# ms CMD...: wall time in ms; the command's output is discarded, its failure is fatal.
ms() {
  local s e
  s=$(now_ns)
  "$@" >/dev/null 2>"$WORK/last.err" || { echo "failed: $*" >&2; cat "$WORK/last.err" >&2; exit 1; }
  e=$(now_ns)
  awk -v a="$s" -v b="$e" 'BEGIN { printf "%.1f\n", (b - a) / 1e6 }'
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

oras_push() { # size repo
  (cd "$WORK/$1" && python3 -c "
import oras.provider
r = oras.provider.Registry(hostname='$HOST', insecure=True)
r.push(target='$HOST/$2:1', files=['hello.wasm:application/wasm'], manifest_config='config.json:application/vnd.wasm.config.v0+json', quiet=True)
")
}
oras_pull() { # repo outdir
  python3 -c "
import oras.provider
r = oras.provider.Registry(hostname='$HOST', insecure=True)
r.pull(target='$HOST/$1:1', outdir='$2')
"
}
wpkg_pull() { # repo
  rm -rf "$WORK/pullhome"
  WPKG_HOME=$WORK/pullhome "$WPKG" pull -q "$HOST/$1:1"
}
HAVE_WKG=""
command -v wkg >/dev/null && HAVE_WKG=1

declare -A R
i=0
for size in small large; do
  wp=(); wl=(); op=(); ol=(); kp=(); kl=()
  for run in $(seq "$N"); do
    i=$((i + 1))
    # Interleaved in one loop so both tools see the same machine noise.
    wp+=("$(ms "$WPKG" push -q "bench-$size:1" "$HOST/w$i-$size:1")")
    op+=("$(ms oras_push "$size" "o$i-$size")")
    wl+=("$(ms wpkg_pull "w$i-$size")")
    rm -rf "$WORK/orasout"; mkdir -p "$WORK/orasout"
    ol+=("$(ms oras_pull "o$i-$size" "$WORK/orasout")")
    if [ -n "$HAVE_WKG" ]; then
      kp+=("$(ms wkg oci push --insecure "$HOST" "$HOST/k$i-$size:1" "$WORK/$size/hello.wasm")")
      rm -f "$WORK/wkg.wasm"
      kl+=("$(ms wkg oci pull --insecure "$HOST" "$HOST/k$i-$size:1" -o "$WORK/wkg.wasm")")
    fi
  done
  R[$size,wpkg,push]=$(printf '%s\n' "${wp[@]}" | median)
  R[$size,wpkg,pull]=$(printf '%s\n' "${wl[@]}" | median)
  R[$size,oras,push]=$(printf '%s\n' "${op[@]}" | median)
  R[$size,oras,pull]=$(printf '%s\n' "${ol[@]}" | median)
  if [ ${#kp[@]} -gt 0 ]; then
    R[$size,wkg,push]=$(printf '%s\n' "${kp[@]}" | median)
    R[$size,wkg,pull]=$(printf '%s\n' "${kl[@]}" | median)
  fi
done

# The floor for a pull: a plain `curl` of the large artifact's manifest and its blobs
# (what any pull must fetch), from the same registry.
LARGE_BLOBS=$("$WPKG" inspect --json bench-large:1 \
  | python3 -c 'import json,sys; m=json.load(sys.stdin)["manifest"]; print(" ".join([m["config"]["digest"]] + [l["digest"] for l in m["layers"]]))')
curl_floor() {
  curl -sf -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$HOST/v2/w$i-large/manifests/1"
  for d in $LARGE_BLOBS; do curl -sf -o /dev/null "http://$HOST/v2/w$i-large/blobs/$d"; done
}
cf=()
for _ in $(seq "$N"); do cf+=("$(ms curl_floor)"); done
CURL_FLOOR=$(printf '%s\n' "${cf[@]}" | median)

# Re-push of unchanged content: how many blobs go up.
"$WPKG" push -q bench-large:1 "$HOST/repush:1" >/dev/null
REPUSH=$("$WPKG" push bench-large:1 "$HOST/repush:1" 2>&1 >/dev/null | sed -n 's/.*(\([0-9]*\) blob(s) uploaded.*/\1/p')

echo "registry: docker-registry $(docker-registry --version 2>/dev/null | awk '{print $3}') on $HOST; median of $N runs, wall time of the whole command"
printf '%-28s %10s %10s %10s   %s\n' "" "wpkg ms" "oras ms" "wkg ms" "wpkg/fastest peer"
for size in small large; do
  bytes=$SMALL_BYTES; [ "$size" = large ] && bytes=$LARGE_BYTES
  for op in push pull; do
    w=${R[$size,wpkg,$op]}; o=${R[$size,oras,$op]}; k=${R[$size,wkg,$op]:-}
    best=$o
    if [ -n "$k" ]; then best=$(awk -v a="$o" -v b="$k" 'BEGIN{print (a<b)?a:b}'); fi
    ratio=$(awk -v a="$w" -v b="$best" 'BEGIN{printf "%.2fx", a/b}')
    printf '%-28s %10s %10s %10s   %s\n' "$op $size ($((bytes / 1000)) kB)" "$w" "$o" "${k:--}" "$ratio"
  done
done
echo "curl floor for pull large (manifest + blobs, one curl each): ${CURL_FLOOR} ms"
echo "re-push of unchanged bench-large:1: ${REPUSH} blob(s) uploaded"
echo "summary: pull 10 MB vs curl floor: ${R[large,wpkg,pull]} ms vs ${CURL_FLOOR} ms = $(awk -v a="${R[large,wpkg,pull]}" -v b="$CURL_FLOOR" 'BEGIN{printf "%.2fx", a/b}') (target: <= 2x)"
for op in push pull; do
  w=${R[large,wpkg,$op]}; best=${R[large,oras,$op]}; peer=oras
  if [ -n "${R[large,wkg,$op]:-}" ] && awk -v a="${R[large,wkg,$op]}" -v b="$best" 'BEGIN{exit !(a<b)}'; then best=${R[large,wkg,$op]}; peer=wkg; fi
  echo "summary: $op 10 MB vs fastest peer ($peer): $w ms vs $best ms = $(awk -v a="$w" -v b="$best" 'BEGIN{printf "%.2fx", a/b}') (lower is better)"
done
[ -z "$HAVE_WKG" ] && echo "(wkg not on PATH: cargo install --locked wkg to add it)"
exit 0
