#!/usr/bin/env bash
# The release path, locally, with no GitHub and no internet:
#   build this machine's release binary as .github/workflows/release.yml does
#   -> scripts/package.sh -> a loopback web server laid out like GitHub releases
#      (BASE/download/vVERSION/FILE and BASE/latest/download/FILE)
#   -> install.sh into a fresh prefix (a given version; the latest; curl | sh; with wget)
#   -> the installed wpkg builds and runs examples/hello
#   -> a tampered archive, an unwritable prefix, an unknown target and an unknown OS are
#      each refused with one `error:` line, and nothing is installed
#   -> prints the archive's size and the median time of 5 installs from loopback.
# WPKG_BIN=PATH skips the builds and packages that binary instead (then the hello
# example's target/wasm32-wasip2/release/hello.wasm must already exist). WPKG_GEN_BIN is
# passed on to package.sh (a wpkg that writes the man pages and completions).
# The build needs the musl target and musl-gcc (ring and wasmtime compile C):
#   rustup target add x86_64-unknown-linux-musl; apt-get install -y musl-tools
# The web server it starts stops when it exits.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { echo "== $*" >&2; CURRENT="$*"; }
CURRENT=start
trap 'echo "try-release: FAILED at: $CURRENT" >&2' ERR
fail() { echo "try-release: $*" >&2; false; }

# The release target for this machine, as install.sh picks it (one place decides).
TARGET=$(sh install.sh --print-target)

step "check install.sh (sh -n, dash -n, shellcheck)"
sh -n install.sh
if command -v dash >/dev/null; then dash -n install.sh; fi
if command -v shellcheck >/dev/null; then
  shellcheck -s sh install.sh
  shellcheck scripts/package.sh scripts/try-release.sh
else
  echo "(shellcheck not installed: skipped; apt-get install -y shellcheck)" >&2
fi

HELLO_WASM=${HELLO_WASM:-$ROOT/target/wasm32-wasip2/release/hello.wasm}
if [ -z "${WPKG_BIN:-}" ]; then
  step "check the toolchain for $TARGET"
  command -v rustup >/dev/null || fail "rustup is missing: install it from https://rustup.rs"
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
  fi
  case $TARGET in
    *-linux-musl)
      # ring and wasmtime compile C with the cc crate, which for *-linux-musl looks for
      # musl-gcc (x86_64) or aarch64-linux-musl-gcc; the host's gcc is not tried.
      command -v musl-gcc >/dev/null ||
        fail "musl-gcc is missing (ring and wasmtime compile C for $TARGET): apt-get install -y musl-tools"
      if [ "$TARGET" = aarch64-unknown-linux-musl ] && ! command -v aarch64-linux-musl-gcc >/dev/null; then
        export CC_aarch64_unknown_linux_musl=musl-gcc
      fi
      ;;
  esac
  step "build wpkg for $TARGET (cargo build --release --locked --target $TARGET -p wpkg)"
  cargo build --release --locked --target "$TARGET" -p wpkg
  BIN=$ROOT/target/$TARGET/release/wpkg
  step "build the hello example's wasm"
  cargo build --release --locked --target wasm32-wasip2 -p example-hello
else
  BIN=$WPKG_BIN
  [ -x "$BIN" ] || fail "WPKG_BIN=$BIN is not an executable"
fi
[ -s "$HELLO_WASM" ] || fail "$HELLO_WASM is missing: cargo build --release --target wasm32-wasip2 -p example-hello"

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

step "package $BIN as the $TARGET archive"
VERSION=$("$BIN" --version | awk '{ print $2 }')
[[ $VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || fail "'$BIN --version' printed no version: $("$BIN" --version)"
SRV=$WORK/srv
REL=$SRV/download/v$VERSION
LATEST=$SRV/latest/download
mkdir -p "$REL" "$LATEST"
bash scripts/package.sh "$BIN" "$TARGET" "$VERSION" "$REL"
ARCHIVE=wpkg-$VERSION-$TARGET.tar.gz
[ -s "$REL/$ARCHIVE" ] && [ -s "$REL/SHA256SUMS" ]
grep -qx "[0-9a-f]\{64\}  $ARCHIVE" "$REL/SHA256SUMS" || fail "SHA256SUMS has no line for $ARCHIVE"
tar -tzf "$REL/$ARCHIVE" > "$WORK/listing"
for f in wpkg README.md man/wpkg.1 completions/wpkg.bash completions/_wpkg completions/wpkg.fish completions/_wpkg.ps1; do
  grep -qx "wpkg-$VERSION-$TARGET/$f" "$WORK/listing" || fail "$ARCHIVE lacks wpkg-$VERSION-$TARGET/$f"
done
cp "$REL/$ARCHIVE" "$REL/SHA256SUMS" "$LATEST/"
cp install.sh "$LATEST/install.sh"

step "serve the release directory on loopback"
python3 -u -m http.server --bind 127.0.0.1 --directory "$SRV" 0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
PORT=
for _ in $(seq 200); do
  PORT=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$WORK/server.out" | head -n1)
  [ -n "$PORT" ] && curl -sf -o /dev/null "http://127.0.0.1:$PORT/latest/download/SHA256SUMS" && break
  sleep 0.05
done
[ -n "$PORT" ] || { cat "$WORK/server.out" "$WORK/server.log" >&2; fail "the web server did not start"; }
BASE=http://127.0.0.1:$PORT

# install.sh as a user on a fresh machine would run it: a bare environment.
install_sh() { env -i HOME="$WORK/user" PATH=/usr/bin:/bin sh install.sh "$@"; }
requests() { grep -c '"GET ' "$WORK/server.log" || true; }
# expect_refusal WHAT PATTERN ARGS...: install.sh must exit non-zero with exactly one
# stderr line, starting `error:` and matching PATTERN.
expect_refusal() {
  local what=$1 pattern=$2 rc=0
  shift 2
  install_sh "$@" >"$WORK/refusal.out" 2>"$WORK/refusal.err" || rc=$?
  echo "   $what -> exit $rc: $(cat "$WORK/refusal.err")" >&2
  [ "$rc" != 0 ] || fail "$what: install.sh succeeded"
  [ "$(wc -l < "$WORK/refusal.err")" = 1 ] || { cat "$WORK/refusal.err" >&2; fail "$what: expected one error line"; }
  grep -q '^error: ' "$WORK/refusal.err" || fail "$what: the error does not start with 'error: '"
  grep -q -- "$pattern" "$WORK/refusal.err" || fail "$what: the error does not say '$pattern'"
}
check_installed() { # PREFIX
  local p=$1
  [ -x "$p/bin/wpkg" ] || fail "no $p/bin/wpkg"
  [ "$("$p/bin/wpkg" --version)" = "wpkg $VERSION" ] || fail "installed wpkg --version: $("$p/bin/wpkg" --version)"
  [ -s "$p/share/man/man1/wpkg.1" ] || fail "no man page in $p/share/man/man1"
  for f in share/bash-completion/completions/wpkg share/zsh/site-functions/_wpkg share/fish/vendor_completions.d/wpkg.fish; do
    [ -s "$p/$f" ] || fail "no $p/$f"
  done
  if find "$p" -name '.*tmp*' -o -name '.wpkg-install-probe*' | grep -q .; then
    fail "temporary files left in $p"
  fi
}

step "install.sh --version $VERSION"
install_sh --version "$VERSION" --prefix "$WORK/prefix" --base-url "$BASE" | tee "$WORK/install.out"
check_installed "$WORK/prefix"
grep -q "is not on your PATH" "$WORK/install.out" || fail "no PATH hint"
grep -qF "wpkg new http-rust hello && cd hello && wpkg run ." "$WORK/install.out" || fail "no next command"
"$WORK/prefix/bin/wpkg" --version

step "install.sh, latest release (WPKG_INSTALL_BASE_URL), over the previous install"
env -i HOME="$WORK/user" PATH="$WORK/prefix/bin:/usr/bin:/bin" WPKG_INSTALL_BASE_URL="$BASE/" \
  sh install.sh --prefix "$WORK/prefix" > "$WORK/latest.out"
check_installed "$WORK/prefix"
grep -q "installed wpkg $VERSION" "$WORK/latest.out" || fail "the latest install did not report $VERSION"
! grep -q "is not on your PATH" "$WORK/latest.out" || fail "PATH hint although the prefix is on PATH"

step "curl -fsSL BASE/latest/download/install.sh | sh -s -- --prefix DIR"
curl -fsSL "$BASE/latest/download/install.sh" |
  env -i HOME="$WORK/user" PATH=/usr/bin:/bin sh -s -- --prefix "$WORK/piped" --base-url "$BASE" >/dev/null
check_installed "$WORK/piped"

step "install with wget when there is no curl"
mkdir -p "$WORK/nocurl"
for t in sh wget tar gzip mktemp sha256sum cut awk tr dirname basename rm cp chmod mv mkdir rmdir uname cat; do
  ln -s "$(command -v "$t")" "$WORK/nocurl/$t"
done
env -i HOME="$WORK/user" PATH="$WORK/nocurl" sh install.sh --version "v$VERSION" --prefix "$WORK/wget" --base-url "$BASE" >/dev/null
check_installed "$WORK/wget"

step "the installed wpkg builds and runs examples/hello"
export WPKG_HOME=$WORK/home
"$WORK/prefix/bin/wpkg" build examples/hello --no-build-command
RUN=$("$WORK/prefix/bin/wpkg" run hello:0.1.0 -- alice)
echo "$RUN"
[ "$(printf '%s\n' "$RUN" | head -n1)" = "Hello, alice!" ] || fail "unexpected output: $RUN"
unset WPKG_HOME

step "time 5 installs from loopback"
TIMES=()
for i in 1 2 3 4 5; do
  t0=$(date +%s%N)
  install_sh --version "$VERSION" --prefix "$WORK/timed$i" --base-url "$BASE" >/dev/null
  t1=$(date +%s%N)
  TIMES+=($(( (t1 - t0) / 1000000 )))
  check_installed "$WORK/timed$i"
done
MEDIAN_MS=$(printf '%s\n' "${TIMES[@]}" | sort -n | sed -n 3p)

step "refusals: one error line each, nothing installed"
BEFORE=$(requests)
expect_refusal "unwritable prefix" "cannot write to /proc/forbidden/bin" \
  --version "$VERSION" --prefix /proc/forbidden --base-url "$BASE"
[ "$(requests)" = "$BEFORE" ] || fail "install.sh downloaded before checking the prefix"
expect_refusal "unknown --target" "no wpkg release for target riscv64gc-unknown-linux-gnu" \
  --target riscv64gc-unknown-linux-gnu --prefix "$WORK/bad-target" --base-url "$BASE"
[ ! -e "$WORK/bad-target" ] || fail "the unknown --target left $WORK/bad-target"
mkdir -p "$WORK/fake-os"
cat > "$WORK/fake-os/uname" <<'SH'
#!/bin/sh
case "$1" in -s) echo FreeBSD ;; -m) echo riscv64 ;; esac
SH
chmod +x "$WORK/fake-os/uname"
rc=0
env -i HOME="$WORK/user" PATH="$WORK/fake-os:/usr/bin:/bin" sh install.sh --prefix "$WORK/bad-os" \
  --base-url "$BASE" 2>"$WORK/os.err" >/dev/null || rc=$?
echo "   unknown OS -> exit $rc: $(cat "$WORK/os.err")" >&2
[ "$rc" = 1 ] || fail "unknown OS: exit $rc, expected 1"
[ "$(cat "$WORK/os.err")" = "error: no wpkg release for FreeBSD riscv64; build from source: cargo install --locked --git https://github.com/wpkg/wpkg wpkg" ] ||
  fail "unknown OS: unexpected message"
[ ! -e "$WORK/bad-os" ] || fail "the unknown OS left $WORK/bad-os"
expect_refusal "no archive for the target in SHA256SUMS" "has no line for wpkg-$VERSION-aarch64-apple-darwin.tar.gz" \
  --version "$VERSION" --target aarch64-apple-darwin --prefix "$WORK/missing" --base-url "$BASE"
[ ! -e "$WORK/missing" ] || fail "the missing line left $WORK/missing"
expect_refusal "unknown version" "could not download" \
  --version 99.0.0 --prefix "$WORK/noversion" --base-url "$BASE"
[ ! -e "$WORK/noversion" ] || fail "the unknown version left $WORK/noversion"

step "tamper with the served archive: install.sh must refuse it"
GOOD_SUM=$(sha256sum "$REL/$ARCHIVE" | cut -d' ' -f1)
python3 - "$REL/$ARCHIVE" <<'PY'
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(os.path.getsize(sys.argv[1]) // 2)
    b = f.read(1)[0]
    f.seek(-1, 1)
    f.write(bytes([b ^ 0x01]))
PY
[ "$(sha256sum "$REL/$ARCHIVE" | cut -d' ' -f1)" != "$GOOD_SUM" ] || fail "the archive did not change"
expect_refusal "tampered archive, --version" "checksum mismatch for $ARCHIVE" \
  --version "$VERSION" --prefix "$WORK/tampered" --base-url "$BASE"
[ ! -e "$WORK/tampered/bin/wpkg" ] || fail "the tampered archive was installed"
[ ! -e "$WORK/tampered" ] || fail "the tampered install left $WORK/tampered behind"
cp "$REL/$ARCHIVE" "$LATEST/$ARCHIVE"
expect_refusal "tampered archive, latest" "checksum mismatch for $ARCHIVE" \
  --prefix "$WORK/tampered2" --base-url "$BASE"
[ ! -e "$WORK/tampered2" ] || fail "the tampered install left $WORK/tampered2 behind"
# A prefix that already holds an install keeps it untouched.
BEFORE_SUM=$(sha256sum "$WORK/prefix/bin/wpkg")
expect_refusal "tampered archive over an existing install" "checksum mismatch" \
  --version "$VERSION" --prefix "$WORK/prefix" --base-url "$BASE"
[ "$(sha256sum "$WORK/prefix/bin/wpkg")" = "$BEFORE_SUM" ] || fail "the existing install changed"

BYTES=$(wc -c < "$REL/$ARCHIVE" | tr -d ' ')
echo "archive: $ARCHIVE $BYTES bytes ($(awk -v s="$BYTES" 'BEGIN { printf "%.2f", s / 1048576 }') MiB)"
echo "install from loopback: median ${MEDIAN_MS} ms of 5 (${TIMES[*]} ms)"
trap - ERR
echo "try-release: OK"
