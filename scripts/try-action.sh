#!/usr/bin/env bash
# The whole CI path, locally, with no GitHub and no internet:
#   1. the release download path: scripts/package.sh packages the built wpkg as a
#      release, a loopback web server serves it laid out like GitHub releases, and the
#      action's install step (scripts/action/install-release.sh, which runs install.sh)
#      installs it (timed); a tampered archive fails the step, with install: release and
#      with install: auto alike (a checksum mismatch never falls back to a source build).
#   2. action.yml's steps (scripts/action/*) in a simulated runner environment, wpkg
#      installed from that loopback release because the action's ref is its tag (vX.Y.Z)
#      -> a GitHub-shaped OIDC token from a loopback endpoint
#      -> keyless signing against loopback Fulcio and Rekor (test-sigstore: real
#         certificates and SCTs, a real Merkle tree and checkpoints)
#      -> push to a local registry that requires a login (Debian's docker-registry,
#         htpasswd), with extra tags; a later step of the job pushes with the login the
#         action kept
#      -> on a "fresh machine" (new WPKG_HOME): the exact `wpkg trust add` line the push
#         step printed, then wpkg run of the pushed reference; another workflow identity
#         is refused (125).
#   3. the fallback: a release that is not there -> a warning, and wpkg from the
#      action's source (here restored from the simulated cache: no compile).
#      With TRY_ACTION_SOURCE=1 also the compile itself, timed: install: source runs
#      `cargo install --locked --path cli` (a release build: ~8 min cold on 2 cores; target/
#      is shared, so later runs are incremental), saves it in the simulated cache, and a
#      second run restores it.
# With WPKG_TRY_OUT=DIR it leaves there: manifest.json (the signed manifest),
# bundle.json, trusted_root.json and trust_config.json (a sigstore ClientTrustConfig for
# the test instance; `sigstore --trust-config trust_config.json verify identity
# --offline --bundle bundle.json ... manifest.json` checks it independently).
# Needs: bash scripts/setup.sh. Every server it starts stops when it exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
step() { echo "== $*" >&2; CURRENT="$*"; }
CURRENT=start
trap 'echo "try-action: FAILED at: $CURRENT" >&2' ERR
fail() { echo "try-action: $*" >&2; false; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f s", ms / 1000 }'; }

[ -x /usr/bin/docker-registry ] || { echo "docker-registry is missing: run bash scripts/setup.sh" >&2; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "python3 yaml is missing: run bash scripts/setup.sh" >&2; exit 1; }
# The release target for this machine, as install.sh picks it (one place decides).
TARGET=$(sh install.sh --print-target)

step "build wpkg and test-sigstore"
cargo build -q --locked -p wpkg -p wpkg-tests --bins
WPKG=$ROOT/target/debug/wpkg
VERSION=$("$WPKG" --version | awk '{print $2}')

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# ------------------------------------------------------------------------------------
step "package wpkg $VERSION as a release ($TARGET) and serve it on loopback"
mkdir -p "$WORK/bin"
# The debug binary is mostly debug info: strip a copy, as a release build would be.
if command -v strip >/dev/null && strip -o "$WORK/bin/wpkg" "$WPKG" 2>/dev/null; then :; else cp "$WPKG" "$WORK/bin/wpkg"; fi
REL=$WORK/release
bash scripts/package.sh "$WORK/bin/wpkg" "$TARGET" "$VERSION" "$REL/download/v$VERSION" >&2
mkdir -p "$REL/latest"
ln -s "../download/v$VERSION" "$REL/latest/download"
python3 -u -m http.server --bind 127.0.0.1 --directory "$REL" 0 >"$WORK/http.out" 2>"$WORK/http.log" </dev/null &
PIDS+=($!)
HTTP_PORT=
for _ in $(seq 200); do
  HTTP_PORT=$(sed -n 's/.* port \([0-9][0-9]*\).*/\1/p' "$WORK/http.out" | head -n1)
  [ -n "$HTTP_PORT" ] && curl -sf -o /dev/null "http://127.0.0.1:$HTTP_PORT/download/v$VERSION/SHA256SUMS" && break
  sleep 0.05
done
[ -n "$HTTP_PORT" ] || { cat "$WORK/http.out" "$WORK/http.log" >&2; fail "the web server did not start"; }
export WPKG_INSTALL_BASE_URL=http://127.0.0.1:$HTTP_PORT

# Runs the action's install step alone in a fresh simulated runner: install_step NAME
# PLAN VERSION FALLBACK. Leaves $WORK/NAME/{out,path,log}; returns the step's status.
install_step() {
  local d=$WORK/$1
  mkdir -p "$d/temp"
  : >"$d/out"; : >"$d/path"
  env GITHUB_ACTION_PATH="$ROOT" RUNNER_TEMP="$d/temp" RUNNER_OS=Linux RUNNER_ARCH=X64 \
    GITHUB_OUTPUT="$d/out" GITHUB_PATH="$d/path" PLAN="$2" VERSION="$3" FALLBACK="$4" \
    bash scripts/action/install-release.sh >"$d/log" 2>&1
}

step "the action's install step downloads release v$VERSION"
t0=$(now_ms)
install_step download release "$VERSION" true || { cat "$WORK/download/log" >&2; false; }
DOWNLOAD_MS=$(($(now_ms) - t0))
cat "$WORK/download/log" >&2
grep -qx "source=false" "$WORK/download/out" || fail "the install step did not take the download path"
[ "$(cat "$WORK/download/path")" = "$WORK/download/temp/wpkg-release/bin" ] || fail "GITHUB_PATH: $(cat "$WORK/download/path")"
[ "$("$WORK/download/temp/wpkg-release/bin/wpkg" --version)" = "wpkg $VERSION" ] || fail "the installed wpkg does not run"
grep -q "GET /download/v$VERSION/wpkg-$VERSION-$TARGET.tar.gz HTTP/1.[01]\" 200" "$WORK/http.log" || fail "the archive was not downloaded"

step "a tampered release archive fails the install step (install: release, and auto: no fallback)"
TV=$VERSION-tampered
mkdir -p "$REL/download/v$TV"
sed "s/wpkg-$VERSION-/wpkg-$TV-/" "$REL/download/v$VERSION/SHA256SUMS" >"$REL/download/v$TV/SHA256SUMS"
cp "$REL/download/v$VERSION/wpkg-$VERSION-$TARGET.tar.gz" "$REL/download/v$TV/wpkg-$TV-$TARGET.tar.gz"
printf 'tampered' >>"$REL/download/v$TV/wpkg-$TV-$TARGET.tar.gz"
for mode in release:false auto:true; do
  if install_step "tampered-${mode%%:*}" release "$TV" "${mode#*:}"; then
    cat "$WORK/tampered-${mode%%:*}/log" >&2
    fail "install: ${mode%%:*} accepted a tampered archive"
  fi
  grep -q '^::error::install: checksum mismatch' "$WORK/tampered-${mode%%:*}/log" || { cat "$WORK/tampered-${mode%%:*}/log" >&2; fail "no checksum error"; }
  ! grep -q "source=true" "$WORK/tampered-${mode%%:*}/out" || fail "install: ${mode%%:*} fell back to a source build on a checksum mismatch"
  [ ! -e "$WORK/tampered-${mode%%:*}/temp/wpkg-release/bin/wpkg" ] || fail "a tampered wpkg was installed"
done

# ------------------------------------------------------------------------------------
step "start the test Sigstore instance (OIDC, Fulcio, Rekor on loopback)"
mkdir -p "$WORK/sigstore"
timeout 900 "$ROOT/target/debug/test-sigstore" --dir "$WORK/sigstore" --timeout 900 \
  >"$WORK/sigstore/out" 2>"$WORK/sigstore/err" </dev/null &
PIDS+=($!)
step "start a registry on loopback that requires a login"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
REG_USER=octocat
REG_PASSWORD=try-action-secret
# bcrypt of REG_PASSWORD (docker-registry's htpasswd reads only bcrypt).
# shellcheck disable=SC2016 # a bcrypt hash, not an expression
echo "$REG_USER:"'$2b$05$wpkgtryactionsaltsalteIWu7AIDTfV0Wv4dgN/blmezY0TLZns.' >"$WORK/htpasswd"
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/storage } }
http: { addr: $HOST }
auth: { htpasswd: { realm: try-action, path: $WORK/htpasswd } }
YML
timeout 900 /usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
reg_status() { curl -s -o /dev/null -w '%{http_code}' -u "$REG_USER:$REG_PASSWORD" "http://$HOST/v2/" || true; }
for _ in $(seq 200); do
  grep -q ready "$WORK/sigstore/out" 2>/dev/null && [ "$(reg_status)" = 200 ] && break
  sleep 0.05
done
grep -q ready "$WORK/sigstore/out" || { cat "$WORK/sigstore/err" >&2; false; }
[ "$(reg_status)" = 200 ] || { cat "$WORK/registry.log" >&2; fail "the registry did not start"; }
# shellcheck disable=SC1091
. "$WORK/sigstore/env"
# The service URLs reach the action as inputs, not ambient variables.
unset WPKG_FULCIO_URL WPKG_REKOR_URL WPKG_TRUSTED_ROOT

# Runs action.yml in a simulated runner: run_action NAME KEY VALUE... (the inputs).
# The runner's files are in $WORK/NAME; its stdout is the action's outputs (JSON).
# GITHUB_ACTION_REF, WPKG_TRY_CACHE and the like pass through from the caller.
run_action() {
  local d=$WORK/$1
  shift
  mkdir -p "$d"
  : >"$d/env"; : >"$d/path"
  env -u SIGSTORE_ID_TOKEN \
    GITHUB_ACTION_PATH="$ROOT" GITHUB_WORKSPACE="$ROOT" RUNNER_TEMP="$d" \
    RUNNER_OS=Linux RUNNER_ARCH=X64 ImageOS=try-action \
    GITHUB_PATH="$d/path" GITHUB_ENV="$d/env" \
    GITHUB_STEP_SUMMARY="$d/summary.md" GITHUB_REPOSITORY=acme/app \
    GITHUB_REF_NAME=v1.0.0 GITHUB_ACTOR="$REG_USER" GITHUB_TOKEN="$REG_PASSWORD" \
    GITHUB_WORKFLOW_REF="${GITHUB_WORKFLOW_REF:-acme/app/.github/workflows/release.yml@refs/tags/v1.0.0}" \
    WPKG_HOME="$d/home" DOCKER_CONFIG="$d/docker" \
    python3 scripts/action/run_local.py action.yml "$(python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' "$@")"
}
# The NAME=VALUE pairs a runner's GITHUB_ENV file sets (heredoc syntax), NUL-separated.
job_env() {
  python3 - "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
k = 0
while k < len(lines):
    line = lines[k]; k += 1
    if "<<" in line:
        name, delim = line.split("<<", 1)
        value = []
        while lines[k] != delim:
            value.append(lines[k]); k += 1
        k += 1
        sys.stdout.write(name + "=" + "\n".join(value) + "\0")
    elif "=" in line:
        sys.stdout.write(line + "\0")
PY
}

# Where no compile is expected, a `cargo install` fails at once instead of building for
# a quarter of an hour (`cargo build` of the guest goes through).
NO_INSTALL=$WORK/no-cargo-install
mkdir -p "$NO_INSTALL"
cat >"$NO_INSTALL/cargo" <<SH
#!/bin/sh
if [ "\$1" = install ]; then echo "try-action: cargo install was not expected here" >&2; exit 1; fi
exec $(command -v cargo) "\$@"
SH
chmod +x "$NO_INSTALL/cargo"

step "run action.yml's steps in a simulated runner: pinned to v$VERSION, so wpkg comes from that release"
IMAGE=$HOST/acme/app:v1.0.0
# A reusable workflow: GITHUB_WORKFLOW_REF names the caller, the certificate (and so the
# trust line the push step prints) the called workflow, release.yml.
GITHUB_ACTION_REF="v$VERSION" PATH="$NO_INSTALL:$PATH" \
  GITHUB_WORKFLOW_REF=acme/app/.github/workflows/caller.yml@refs/tags/v1.0.0 \
  run_action runner path examples/hello image "$IMAGE" tags "latest, v1" registry "$HOST" \
  fulcio-url "$TEST_SIGSTORE_FULCIO" rekor-url "$TEST_SIGSTORE_REKOR" \
  trusted-root "$TEST_SIGSTORE_ROOT" 2>&1 >"$WORK/runner.json" | tee "$WORK/runner.log" >&2
OUTPUTS=$(cat "$WORK/runner.json")
echo "$OUTPUTS"
out() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$OUTPUTS" "$1"; }
DIGEST=$(out digest); REFERENCE=$(out reference); BUNDLE=$(out bundle)
step "check the outputs, the install path, the tags"
[[ $DIGEST =~ ^sha256:[0-9a-f]{64}$ ]] || fail "bad digest output: $DIGEST"
[ "$REFERENCE" = "$IMAGE@$DIGEST" ] || fail "bad reference output: $REFERENCE"
[ -s "$BUNDLE" ] || fail "no bundle at $BUNDLE"
grep -q "^== step source: skipped" "$WORK/runner.log" || fail "the action built wpkg from source instead of downloading v$VERSION"
grep -q "^downloading $WPKG_INSTALL_BASE_URL/download/v$VERSION/" "$WORK/runner.log" || fail "the action did not download v$VERSION"
for t in v1.0.0 latest v1; do
  got=$(curl -sfI -u "$REG_USER:$REG_PASSWORD" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$HOST/v2/acme/app/manifests/$t" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
  [ "$got" = "$DIGEST" ] || fail "tag $t is ${got:-missing}, not $DIGEST"
done

step "the push step's trust line is exact: this repository, the certificate's workflow at its ref"
SUBJECT="https://github.com/acme/app/.github/workflows/release.yml@refs/tags/v1.0.0"
[ "$SUBJECT" = "$TEST_SIGSTORE_IDENTITY" ] || fail "test-sigstore's identity is $TEST_SIGSTORE_IDENTITY"
# test-sigstore's tokens name GitHub's issuer: the printed lines run as they are below.
[ "$TEST_SIGSTORE_ISSUER" = https://token.actions.githubusercontent.com ] || fail "test-sigstore's issuer is $TEST_SIGSTORE_ISSUER"
TRUST="wpkg trust add '$HOST/acme/app' --issuer https://token.actions.githubusercontent.com --subject '$SUBJECT'"
grep -qxF "$TRUST" "$WORK/runner/summary.md" || { cat "$WORK/runner/summary.md" >&2; fail "the summary lacks: $TRUST"; }
grep -qxF "Consumers trust it with: $TRUST" "$WORK/runner.log" || fail "the log lacks the trust line"
ALSO="wpkg trust add '$HOST/acme/app' --issuer https://token.actions.githubusercontent.com --subject-regexp '^https://github\.com/acme/app/\.github/workflows/release\.yml@refs/tags/.+\$'"
grep -qxF "$ALSO" "$WORK/runner/summary.md" || { cat "$WORK/runner/summary.md" >&2; fail "the summary lacks: $ALSO"; }

step "a later step of the job pushes with the login the action kept (GITHUB_ENV)"
mapfile -d '' KEPT < <(job_env "$WORK/runner/env")
printf '%s\n' "${KEPT[@]}" | grep -qx "WPKG_REGISTRY=$HOST" || fail "GITHUB_ENV does not keep the login: $(cat "$WORK/runner/env")"
if WPKG_HOME=$WORK/runner/home DOCKER_CONFIG=$WORK/runner/docker \
  "$WPKG" push -q wpkg-action/build:latest "$HOST/acme/app:later" >/dev/null 2>"$WORK/later.err"; then
  fail "the registry accepted a push without credentials: the next check would prove nothing"
fi
LATER=$(env "${KEPT[@]}" WPKG_HOME="$WORK/runner/home" DOCKER_CONFIG="$WORK/runner/docker" \
  "$WPKG" push -q wpkg-action/build:latest "$HOST/acme/app:later")
[ "$LATER" = "$HOST/acme/app:later@$DIGEST" ] || fail "the later push printed: $LATER"

consumer() { # a fresh machine: WPKG_HOME and DOCKER_CONFIG of its own, logged in
  export WPKG_HOME=$WORK/$1 DOCKER_CONFIG=$WORK/$1-docker
  printf '%s\n' "$REG_PASSWORD" | "$WPKG" login "$HOST" -u "$REG_USER" --password-stdin >/dev/null 2>&1
}
step "a fresh machine runs the printed trust line, then the image"
consumer consumer
eval "\"\$WPKG\" ${TRUST#wpkg }"
RUN=$("$WPKG" run "$HOST/acme/app:v1.0.0" --trusted-root "$TEST_SIGSTORE_ROOT" -- alice)
echo "$RUN"
[ "$(printf "%s\n" "$RUN" | head -n1)" = "Hello, alice!" ] || fail "unexpected output: $RUN"
step "another fresh machine trusts the workflow's later tags (the printed regexp) and runs it"
consumer consumer-regexp
eval "\"\$WPKG\" ${ALSO#wpkg }"
RUN=$("$WPKG" run "$HOST/acme/app:latest" --trusted-root "$TEST_SIGSTORE_ROOT" -- bob)
[ "$(printf "%s\n" "$RUN" | head -n1)" = "Hello, bob!" ] || fail "unexpected output: $RUN"

step "another workflow identity is refused (exit 125)"
consumer other
"$WPKG" trust add "$HOST/acme/*" --issuer "$TEST_SIGSTORE_ISSUER" \
  --subject "https://github.com/acme/app/.github/workflows/other.yml@refs/heads/main"
set +e; trap - ERR
"$WPKG" run "$HOST/acme/app:v1.0.0" --trusted-root "$TEST_SIGSTORE_ROOT" -- alice >"$WORK/other.out" 2>"$WORK/other.err"
code=$?
set -e; trap 'echo "try-action: FAILED at: $CURRENT" >&2' ERR
cat "$WORK/other.err" >&2
[ "$code" = 125 ] || fail "expected exit 125, got $code"
grep -q "does not trust" "$WORK/other.err"
if grep -q "alice" "$WORK/other.out"; then fail "the refused image ran"; fi
unset WPKG_HOME DOCKER_CONFIG

if [ -n "${WPKG_TRY_OUT:-}" ]; then
  step "write the signed manifest, the bundle and the trust material to $WPKG_TRY_OUT"
  mkdir -p "$WPKG_TRY_OUT"
  curl -sf -u "$REG_USER:$REG_PASSWORD" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$HOST/v2/acme/app/manifests/$DIGEST" > "$WPKG_TRY_OUT/manifest.json"
  [ "sha256:$(sha256sum "$WPKG_TRY_OUT/manifest.json" | cut -d' ' -f1)" = "$DIGEST" ]
  cp "$BUNDLE" "$WPKG_TRY_OUT/bundle.json"
  cp "$WORK/sigstore/trusted_root.json" "$WORK/sigstore/trust_config.json" "$WPKG_TRY_OUT/"
  echo "identity: $TEST_SIGSTORE_IDENTITY (issuer $TEST_SIGSTORE_ISSUER)" > "$WPKG_TRY_OUT/identity.txt"
fi

# ------------------------------------------------------------------------------------
export WPKG_TRY_CACHE=$WORK/cache
KEY=$(GITHUB_ACTION_PATH=$ROOT RUNNER_OS=Linux RUNNER_ARCH=X64 ImageOS=try-action bash scripts/action/cache-key.sh)
SOURCE_MS=""
if [ "${TRY_ACTION_SOURCE:-}" = 1 ]; then
  step "install: source compiles wpkg from the action's source (cargo install --locked --path cli), saved in the cache"
  t0=$(now_ms)
  CARGO_TARGET_DIR=$ROOT/target run_action source-build path examples/hello install source image "$HOST/acme/app:source" \
    registry "$HOST" sign none 2>&1 >/dev/null | tee "$WORK/source-build.log" >&2
  SOURCE_MS=$(($(now_ms) - t0))
  grep -q "^built in " "$WORK/source-build.log" || fail "install: source did not compile wpkg"
  grep -q "simulated: saved $KEY" "$WORK/source-build.log" || fail "the build was not saved in the cache"
  [ "$("$WORK/source-build/wpkg-source/bin/wpkg" --version)" = "wpkg $VERSION" ]
else
  step "SKIPPED: compiling wpkg from source (a release build, ~8 min cold on 2 cores); run with TRY_ACTION_SOURCE=1 for it"
  # What that build would have saved: the fallback below restores it.
  mkdir -p "$WPKG_TRY_CACHE/$KEY/bin"
  cp "$WORK/bin/wpkg" "$WPKG_TRY_CACHE/$KEY/bin/wpkg"
fi
step "the fallback: a release that does not exist -> a warning, then wpkg from source (cache hit)"
GITHUB_ACTION_REF=v0.0.0-missing PATH="$NO_INSTALL:$PATH" \
  run_action fallback path examples/hello image "$HOST/acme/app:fallback" registry "$HOST" sign none \
  2>&1 >/dev/null | tee "$WORK/fallback.log" >&2
grep -q "^::warning::wpkg release 0.0.0-missing not installed (could not download " "$WORK/fallback.log" \
  || fail "no fallback warning"
grep -q "simulated: hit $KEY" "$WORK/fallback.log" || fail "the cache was not restored"
grep -q "^wpkg from the cache" "$WORK/fallback.log" || fail "wpkg did not come from the cache"
grep -q "^== step save: skipped" "$WORK/fallback.log" || fail "a cache hit was saved again"
! grep -q "^built in " "$WORK/fallback.log" || fail "wpkg was compiled despite the cache hit"
curl -sfI -u "$REG_USER:$REG_PASSWORD" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
  "http://$HOST/v2/acme/app/manifests/fallback" >/dev/null || fail "the fallback run did not push"

trap - ERR
if [ -n "$SOURCE_MS" ]; then
  built="$(secs "$SOURCE_MS") (cargo install --locked --path cli, then build and push)"
else
  built="skipped (TRY_ACTION_SOURCE=1 runs it)"
fi
echo "timings: install from the release (download, SHA256SUMS check, unpack): $(secs "$DOWNLOAD_MS"); from source: $built" >&2
echo "try-action: OK"
