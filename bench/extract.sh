#!/usr/bin/env bash
# What unpacking an image costs: `wpkg run` of a `--format image` image that bundles 200
# files, measured with hyperfine. First run: the layers are applied (store/rootfs removed
# before each run; the compiled-code cache kept). Later runs: the unpacked files are
# reused (their record checked). With BASE=<git ref>, the same is measured for wpkg built
# from that ref (a worktree under target/, sharing the target dir: only wpkg's own crates
# build again), side by side, and the ratio printed. Figures are printed, not asserted.
#
#     bash bench/extract.sh                 # this checkout only
#     BASE=53af7da bash bench/extract.sh    # against an older wpkg
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
FILES=${FILES:-200}
command -v hyperfine >/dev/null || { echo "hyperfine is needed: apt-get install hyperfine" >&2; exit 1; }

cargo build -q --release --target wasm32-wasip1 -p example-hello-p1
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
BINS=(new)
if [ -n "${BASE:-}" ]; then
  WT=target/bench-base-src
  [ -d "$WT" ] || git worktree add -q --detach "$WT" "$BASE"
  git -C "$WT" checkout -q --detach "$BASE"
  (cd "$WT" && CARGO_TARGET_DIR="$PWD/.." cargo build -q --release -p wpkg)
  cp target/release/wpkg "$OUT/wpkg-base"
  cargo build -q --release -p wpkg
  BINS=(base new)
else
  cargo build -q --release -p wpkg
fi
cp target/release/wpkg "$OUT/wpkg-new"

# A project bundling $FILES small files under static/ (and a few directories).
PROJ=$OUT/proj
mkdir -p "$PROJ/static"
cp target/wasm32-wasip1/release/hello_p1.wasm "$PROJ/app.wasm"
for i in $(seq 1 "$FILES"); do
  d="$PROJ/static/d$((i % 10))"
  mkdir -p "$d"
  head -c $((512 + i * 7)) /dev/zero | tr '\0' 'x' > "$d/f$i.txt"
done
cat > "$PROJ/wpkg.toml" <<EOF
manifest_version = 1
[package]
name = "many"
version = "1.0.0"
wasm = "app.wasm"
[trigger]
type = "command"
[capabilities]
files = [{ source = "static", guest = "/static" }]
EOF

median_ms() { python3 -c 'import json,sys; print("%.2f" % (json.load(open(sys.argv[1]))["results"][0]["median"]*1000))' "$1"; }
declare -A FIRST LATER
for b in "${BINS[@]}"; do
  export WPKG_HOME=$OUT/home-$b
  W=$OUT/wpkg-$b
  "$W" build -q --no-build-command --format image "$PROJ" -t many:bench >/dev/null
  "$W" run many:bench >/dev/null
  hyperfine -N --warmup 3 --runs "$N" --export-json "$OUT/$b-first.json" \
    --prepare "rm -rf $WPKG_HOME/store/rootfs" "$W run many:bench" >/dev/null
  hyperfine -N --warmup 3 --runs "$N" --export-json "$OUT/$b-later.json" \
    "$W run many:bench" >/dev/null
  FIRST[$b]=$(median_ms "$OUT/$b-first.json")
  LATER[$b]=$(median_ms "$OUT/$b-later.json")
  echo "wpkg ($b): image with $FILES files, first run (unpacks): median ${FIRST[$b]} ms; later runs: median ${LATER[$b]} ms ($N runs each)"
done
if [ -n "${BASE:-}" ]; then
  echo "ratio new/base: first run $(echo "scale=2; ${FIRST[new]} / ${FIRST[base]}" | bc)x, later runs $(echo "scale=2; ${LATER[new]} / ${LATER[base]}" | bc)x"
fi
