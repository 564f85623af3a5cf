#!/usr/bin/env bash
# Push and pull times against a local registry (Debian's docker-registry on loopback,
# plain HTTP), wpkg side by side with the `oras` Python client and, when it is on PATH,
# `wkg` (cargo install --locked wkg), for a ~100 KB artifact (examples/hello) and a
# ~10 MB one (the same wasm plus 10 MB of bundled random data). Median of N runs; every
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

# The two artifacts, built once into the local store; the same blobs for oras.
mkdir -p "$WORK/small" "$WORK/large/data"
cp "$WASM" "$WORK/small/hello.wasm"
cp "$WASM" "$WORK/large/hello.wasm"
head -c 10000000 /dev/urandom > "$WORK/large/data/blob.bin"
common='manifest_version = 1
[package]
name = "hello"
version = "0.1.0"
wasm = "hello.wasm"
[trigger]
type = "command"'
printf '%s\n' "$common" > "$WORK/small/wpkg.toml"
printf '%s\n[capabilities]\nfiles = [{ source = "data", guest = "/data" }]\n' "$common" > "$WORK/large/wpkg.toml"
"$WPKG" build -q --no-build-command "$WORK/small" -t bench-small:1 >/dev/null
"$WPKG" build -q --no-build-command "$WORK/large" -t bench-large:1 >/dev/null
for size in small large; do
  # oras pushes the same layers with the config wpkg wrote.
  d=$("$WPKG" inspect --json "bench-$size:1")
  printf '%s' "$d" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["config"]))' > "$WORK/$size/config.json"
  files="'hello.wasm:application/wasm'"
  if [ "$size" = large ]; then
    tar -C "$WORK/large" -czf "$WORK/large/data.tar.gz" data
    files="$files, 'data.tar.gz:application/vnd.oci.image.layer.v1.tar+gzip'"
  fi
  echo "$files" > "$WORK/$size/files"
done
SMALL_BYTES=$(stat -c %s "$WORK/small/hello.wasm")
LARGE_BYTES=$(( $(stat -c %s "$WORK/large/hello.wasm") + $(stat -c %s "$WORK/large/data.tar.gz") ))

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
r.push(target='$HOST/$2:1', files=[$(cat "$WORK/$1/files")], manifest_config='config.json:application/vnd.wasm.config.v0+json', quiet=True)
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
    if [ -n "$HAVE_WKG" ] && [ "$size" = small ]; then
      kp+=("$(ms wkg oci push --insecure "$HOST" "$HOST/k$i-$size:1" "$WORK/small/hello.wasm")")
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
echo "re-push of unchanged bench-large:1: ${REPUSH} blob(s) uploaded"
[ -z "$HAVE_WKG" ] && echo "(wkg not on PATH: cargo install --locked wkg to add it)"
exit 0
