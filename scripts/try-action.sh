#!/usr/bin/env bash
# The whole CI path, locally, with no GitHub and no internet:
#   action.yml's steps (scripts/action/*) in a simulated runner environment
#   -> a GitHub-shaped OIDC token from a loopback endpoint
#   -> keyless signing against loopback Fulcio and Rekor (test-sigstore: real
#      certificates and SCTs, a real Merkle tree and checkpoints)
#   -> push to a local registry (Debian's docker-registry)
#   -> on a "fresh machine" (new WPKG_HOME): wpkg trust add for the workflow identity,
#      wpkg run of the pushed reference; another workflow identity is refused (125).
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

[ -x /usr/bin/docker-registry ] || { echo "docker-registry is missing: run bash scripts/setup.sh" >&2; exit 1; }
python3 -c 'import yaml' 2>/dev/null || { echo "python3 yaml is missing: run bash scripts/setup.sh" >&2; exit 1; }

step "build wpkg and test-sigstore"
cargo build -q --locked -p wpkg -p wpkg-tests --bins
WPKG=$ROOT/target/debug/wpkg

WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

step "start the test Sigstore instance (OIDC, Fulcio, Rekor on loopback)"
mkdir -p "$WORK/sigstore"
timeout 900 "$ROOT/target/debug/test-sigstore" --dir "$WORK/sigstore" --timeout 900 \
  >"$WORK/sigstore/out" 2>"$WORK/sigstore/err" </dev/null &
PIDS+=($!)
step "start a registry on loopback"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST=127.0.0.1:$PORT
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/storage } }
http: { addr: $HOST }
YML
timeout 900 /usr/bin/docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 200); do
  grep -q ready "$WORK/sigstore/out" 2>/dev/null && curl -sf "http://$HOST/v2/" >/dev/null && break
  sleep 0.05
done
grep -q ready "$WORK/sigstore/out" || { cat "$WORK/sigstore/err" >&2; false; }
curl -sf "http://$HOST/v2/" >/dev/null || { cat "$WORK/registry.log" >&2; false; }
# shellcheck disable=SC1091
. "$WORK/sigstore/env"

step "run action.yml's steps in a simulated GitHub Actions runner"
mkdir -p "$WORK/runner"
# The service URLs reach the action as inputs, not ambient variables.
unset WPKG_FULCIO_URL WPKG_REKOR_URL WPKG_TRUSTED_ROOT
IMAGE=$HOST/acme/app:v1.0.0
OUTPUTS=$(
  env -u SIGSTORE_ID_TOKEN \
    GITHUB_ACTION_PATH="$ROOT" GITHUB_WORKSPACE="$ROOT" RUNNER_TEMP="$WORK/runner" \
    RUNNER_OS=Linux GITHUB_PATH="$WORK/runner/path" GITHUB_ENV="$WORK/runner/env" \
    GITHUB_STEP_SUMMARY="$WORK/runner/summary.md" GITHUB_REPOSITORY=acme/app \
    GITHUB_REF_NAME=v1.0.0 GITHUB_ACTOR=octocat GITHUB_TOKEN=unused-on-this-registry \
    WPKG_HOME="$WORK/ci-home" DOCKER_CONFIG="$WORK/ci-docker" \
    python3 scripts/action/run_local.py action.yml "$(python3 -c 'import json,sys; print(json.dumps(dict(zip(sys.argv[1::2], sys.argv[2::2]))))' \
      path examples/hello image "$IMAGE" registry "$HOST" wpkg-bin "$WPKG" \
      fulcio-url "$TEST_SIGSTORE_FULCIO" rekor-url "$TEST_SIGSTORE_REKOR" \
      trusted-root "$TEST_SIGSTORE_ROOT")"
)
echo "$OUTPUTS"
out() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$OUTPUTS" "$1"; }
DIGEST=$(out digest); REFERENCE=$(out reference); BUNDLE=$(out bundle)
step "check the outputs"
[[ $DIGEST =~ ^sha256:[0-9a-f]{64}$ ]] || { echo "bad digest output: $DIGEST" >&2; false; }
[ "$REFERENCE" = "$IMAGE@$DIGEST" ] || { echo "bad reference output: $REFERENCE" >&2; false; }
[ -s "$BUNDLE" ] || { echo "no bundle at $BUNDLE" >&2; false; }
grep -q "wpkg trust add" "$WORK/runner/summary.md"

step "a fresh machine trusts the workflow and runs the image"
export WPKG_HOME=$WORK/consumer DOCKER_CONFIG=$WORK/consumer-docker
"$WPKG" trust add "$HOST/acme/*" --issuer "$TEST_SIGSTORE_ISSUER" --subject "$TEST_SIGSTORE_IDENTITY"
RUN=$("$WPKG" run "$HOST/acme/app:v1.0.0" --trusted-root "$TEST_SIGSTORE_ROOT" -- alice)
echo "$RUN"
[ "$(printf "%s\n" "$RUN" | head -n1)" = "Hello, alice!" ] || { echo "unexpected output: $RUN" >&2; false; }

step "another workflow identity is refused (exit 125)"
export WPKG_HOME=$WORK/other DOCKER_CONFIG=$WORK/other-docker
"$WPKG" trust add "$HOST/acme/*" --issuer "$TEST_SIGSTORE_ISSUER" \
  --subject "https://github.com/acme/app/.github/workflows/other.yml@refs/heads/main"
set +e; trap - ERR
"$WPKG" run "$HOST/acme/app:v1.0.0" --trusted-root "$TEST_SIGSTORE_ROOT" -- alice >"$WORK/other.out" 2>"$WORK/other.err"
code=$?
set -e; trap 'echo "try-action: FAILED at: $CURRENT" >&2' ERR
cat "$WORK/other.err" >&2
[ "$code" = 125 ] || { echo "expected exit 125, got $code" >&2; false; }
grep -q "does not trust" "$WORK/other.err"
! grep -q "alice" "$WORK/other.out"

if [ -n "${WPKG_TRY_OUT:-}" ]; then
  step "write the signed manifest, the bundle and the trust material to $WPKG_TRY_OUT"
  mkdir -p "$WPKG_TRY_OUT"
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$HOST/v2/acme/app/manifests/$DIGEST" > "$WPKG_TRY_OUT/manifest.json"
  [ "sha256:$(sha256sum "$WPKG_TRY_OUT/manifest.json" | cut -d' ' -f1)" = "$DIGEST" ]
  cp "$BUNDLE" "$WPKG_TRY_OUT/bundle.json"
  cp "$WORK/sigstore/trusted_root.json" "$WORK/sigstore/trust_config.json" "$WPKG_TRY_OUT/"
  echo "identity: $TEST_SIGSTORE_IDENTITY (issuer $TEST_SIGSTORE_ISSUER)" > "$WPKG_TRY_OUT/identity.txt"
fi
trap - ERR
echo "try-action: OK"
